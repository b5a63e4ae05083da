#!/usr/bin/env python3
"""Validates an ISF JSON file against Volatility 3's schema, then loads it with Volatility.

Usage: validate_isf.py ISF.json

1. jsonschema against `schema-<format>.json`, the check `vol isfinfo --validate` makes;
2. references Volatility dereferences beyond the schema (enum bases, anonymous members);
3. with volatility3 importable: the file loaded as a `LinuxKernelIntermedSymbols` table
   (which binds Volatility's task_struct, list_head... classes), every type, enum and
   symbol resolved, and a task_struct read from a buffer (pid, comm, a bitfield).

The schema is not copied into this repository (it is Volatility's, under its licence):
it is read from an installed volatility3 package (`volatility3/schemas/schema-<format>.json`)
or from the file named by $VESTIGE_ISF_SCHEMA.

Exit status: 0 valid, 1 invalid (reason on stderr), 77 jsonschema or the schema missing.
"""
import json
import os
import sys

SKIP = 77


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import jsonschema
    except ImportError:
        print("python module jsonschema not installed", file=sys.stderr)
        return SKIP
    with open(sys.argv[1], encoding="utf-8") as f:
        isf = json.load(f)
    fmt = isf.get("metadata", {}).get("format")
    schema_path = os.environ.get("VESTIGE_ISF_SCHEMA")
    volatility_schemas = None
    if not schema_path:
        try:
            from volatility3 import schemas as volatility_schemas
        except ImportError:
            print("volatility3 not installed and VESTIGE_ISF_SCHEMA unset", file=sys.stderr)
            return SKIP
        schema_path = os.path.join(
            os.path.dirname(volatility_schemas.__file__), f"schema-{fmt}.json"
        )
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    try:
        jsonschema.validate(isf, schema)
    except jsonschema.ValidationError as e:
        path = "/".join(str(p) for p in e.absolute_path)
        print(f"schema {schema_path}: {path}: {e.message[:500]}", file=sys.stderr)
        return 1
    # What Volatility's loader dereferences beyond the schema: enum bases and anonymous
    # members must name entries that exist (intermed.py _lookup_enum, _reduce_fields).
    base_types, user_types = isf["base_types"], isf["user_types"]
    for name, enum in isf["enums"].items():
        if enum["base"] not in base_types:
            print(f"enum {name}: base {enum['base']!r} is not a base type", file=sys.stderr)
            return 1
    for name, ut in user_types.items():
        for field, value in ut["fields"].items():
            if value.get("anonymous") and value["type"].get("name") not in user_types:
                print(f"{name}.{field}: anonymous member of unknown type", file=sys.stderr)
                return 1
    if "pointer" not in base_types:
        print("base type 'pointer' missing", file=sys.stderr)
        return 1
    print(f"valid against {schema_path}")
    if volatility_schemas is not None:
        load_with_volatility(sys.argv[1], isf)
    return 0


def load_with_volatility(path: str, isf: dict) -> None:
    """Raises if Volatility cannot load the table or read a task through it."""
    import pathlib
    import struct

    import volatility3.framework.symbols
    from volatility3 import framework
    from volatility3.framework import contexts
    from volatility3.framework.layers import physical
    from volatility3.framework.symbols.linux import LinuxKernelIntermedSymbols

    framework.require_interface_version(2, 0, 0)
    # Loads the symbol extensions (task_struct, network...) as `vol` does at start-up.
    framework.import_files(volatility3.framework.symbols, True)
    ctx = contexts.Context()
    table = LinuxKernelIntermedSymbols(
        ctx, "temporary.isfcheck", name="isfcheck", isf_url=pathlib.Path(path).resolve().as_uri()
    )
    ctx.symbol_space.append(table)
    for name in table.types:
        table.get_type(name)
    for name in table.enumerations:
        table.get_enumeration(name)
    for name in table.symbols:
        table.get_symbol(name)
    task_type = isf["user_types"].get("task_struct")
    if task_type is None:
        print("loaded by volatility3 (no task_struct to read)")
        return
    fields = task_type["fields"]
    buf = bytearray(task_type["size"])
    struct.pack_into("<i", buf, fields["pid"]["offset"], 4242)
    comm = fields["comm"]["offset"]
    buf[comm : comm + 5] = b"bash\0"
    bitfield = next(
        (n, f) for n, f in fields.items() if f["type"]["kind"] == "bitfield" and f["type"]["bit_length"] == 1
    )
    name, field = bitfield
    buf[field["offset"]] |= 1 << field["type"]["bit_position"]
    ctx.add_layer(physical.BufferDataLayer(ctx, "isfcheck_buf", "isfcheck_buf", buffer=bytes(buf)))
    task = ctx.object("isfcheck!task_struct", "isfcheck_buf", 0)
    got = (int(task.pid), task.comm.cast("string", max_length=16), int(getattr(task, name)))
    if got != (4242, "bash", 1):
        raise SystemExit(f"task_struct read through volatility3 gave {got}")
    print(f"loaded by volatility3: {len(table.types)} types; task_struct pid/comm/{name} read back")


if __name__ == "__main__":
    sys.exit(main())
