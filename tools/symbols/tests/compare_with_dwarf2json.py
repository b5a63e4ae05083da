#!/usr/bin/env python3
"""Compares an ISF from vestige-symbols with dwarf2json's for the same kernel.

Usage: compare_with_dwarf2json.py OURS.json DWARF2JSON.json

Not run by `cargo test` (it needs a kernel's -dbg package and a dwarf2json build); the
cross-check behind the "known differences" in src/isf/types.rs. Recipe for a Debian kernel:

    apt-get download linux-image-$V-dbg        # vmlinux with DWARF, the real System.map
    dpkg-deb --fsys-tarfile linux-image-$V-dbg_*.deb | tar -x ./usr/lib/debug/boot/
    objcopy -O binary --only-section=.BTF vmlinux-$V vmlinux.btf
    dwarf2json linux --elf vmlinux-$V > dwarf2json.json
    cargo run --release -p vestige-symbols --example generate_isf -- \
        vmlinux.btf System.map-$V banner.txt $V ours.json

Prints counts of what was compared and what differs, with a few examples of each.
Anonymous types are compared by kind only (the two tools name them differently), and
dwarf2json's zero-length arrays ("count": 0 for `char x[]`) match any count.
"""
import collections
import json
import sys


def norm(t):
    if t is None:
        return None
    t = dict(t)
    if t.get("name", "").startswith("unnamed_"):
        t["name"] = "<anonymous>"
    for key in ("subtype", "type"):
        if isinstance(t.get(key), dict):
            t[key] = norm(t[key])
    if t.get("kind") == "array" and t.get("count") == 0:
        t["count"] = "?"
    return t


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        ours = json.load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        ref = json.load(f)
    counts = collections.Counter()
    examples = collections.defaultdict(list)

    def note(kind, message):
        counts[kind] += 1
        if len(examples[kind]) < 8:
            examples[kind].append(message)

    our_types, ref_types = ours["user_types"], ref["user_types"]
    for name, r in ref_types.items():
        if name.startswith("unnamed_"):
            continue
        o = our_types.get(name)
        if o is None:
            note("type missing from ours", name)
            continue
        counts["types compared"] += 1
        if (o["size"], o["kind"]) != (r["size"], r["kind"]):
            note("size or kind differs", f"{name}: {o['size']} {o['kind']} vs {r['size']} {r['kind']}")
        for field, rf in r["fields"].items():
            if field.startswith("unnamed_field"):
                continue
            of = o["fields"].get(field)
            if of is None:
                note("field missing from ours", f"{name}.{field}")
                continue
            counts["fields compared"] += 1
            if of["offset"] != rf["offset"]:
                note("offset differs", f"{name}.{field}: {of['offset']} vs {rf['offset']}")
            if norm(of["type"]) != norm(rf["type"]):
                note("field type differs", f"{name}.{field}: {norm(of['type'])} vs {norm(rf['type'])}")
    for name, r in ref["symbols"].items():
        o = ours["symbols"].get(name)
        if o is None:
            counts["symbol missing from ours"] += 1
            continue
        counts["symbols compared"] += 1
        if o["address"] != r["address"]:
            note("address differs", f"{name}: {o['address']:#x} vs {r['address']:#x}")
        if o.get("type") != {"kind": "base", "name": "void"}:
            counts["typed symbols compared"] += 1
            if norm(o.get("type")) != norm(r.get("type")):
                note("symbol type differs", f"{name}: {o.get('type')} vs {r.get('type')}")
    for name, r in ref["enums"].items():
        if name.startswith("unnamed_"):
            continue
        o = ours["enums"].get(name)
        if o is None:
            note("enum missing from ours", name)
            continue
        counts["enums compared"] += 1
        if (o["constants"], o["size"]) != (r["constants"], r["size"]):
            note("enum constants differ", name)
    for name, r in ref["base_types"].items():
        if ours["base_types"].get(name) != r:
            note("base type differs", f"{name}: {ours['base_types'].get(name)} vs {r}")
    for kind, n in sorted(counts.items()):
        print(f"{n:8d} {kind}")
    for kind, messages in sorted(examples.items()):
        print(f"{kind}:")
        for m in messages:
            print(f"    {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
