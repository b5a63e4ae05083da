#!/usr/bin/python3
# The oracle for the regf parser's tests: walks a hive with hivex (libhivex's Python
# bindings, Debian package python3-hivex) and prints one line per key and per value,
# names and data in hex, in the order hivex lists them:
#   K <path-hex> <last-written FILETIME>
#   V <path-hex> <name-hex> <type> <data-hex>
# <path-hex> is the UTF-8 of the names from the root, joined with "\".
import sys
import hivex

h = hivex.Hivex(sys.argv[1])


def walk(node, path):
    print("K", path.encode("utf-8").hex() or "-", h.node_timestamp(node))
    for v in h.node_values(node):
        t, data = h.value_value(v)
        print("V", path.encode("utf-8").hex() or "-", h.value_key(v).encode("utf-8").hex() or "-", t, data.hex() or "-")
    for c in h.node_children(node):
        name = h.node_name(c)
        walk(c, name if path == "" else path + "\\" + name)


walk(h.root(), "")
