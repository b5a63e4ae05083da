//! A tiny BTF writer for tests: builds blobs record by record, following the layout that
//! [`super::parse`] reads (and that `pahole`/the kernel write), so tests need no binary
//! fixtures. Ids are handed out in order, starting at 1.

/// Encoding bits of `INT` records.
pub(crate) const SIGNED: u8 = 1;
pub(crate) const BOOL: u8 = 4;

/// Accumulates type records and names; [`Builder::finish`] prepends the header.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
    big_endian: bool,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
            big_endian: false,
        }
    }

    /// A builder writing every field big-endian (magic `eb 9f`).
    pub(crate) fn big_endian() -> Self {
        Builder {
            big_endian: true,
            ..Builder::new()
        }
    }

    /// The id the next record will get, for forward references (a struct whose members
    /// point to itself).
    pub(crate) fn next_id(&self) -> u32 {
        self.next_id
    }

    fn put(&mut self, w: u32) {
        let bytes = if self.big_endian {
            w.to_be_bytes()
        } else {
            w.to_le_bytes()
        };
        self.types.extend_from_slice(&bytes);
    }

    /// Adds `s` to the string section; "" is offset 0.
    pub(crate) fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = u32::try_from(self.strings.len()).expect("test strings fit u32");
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    /// Writes the 12-byte `btf_type` and returns its id.
    pub(crate) fn record(&mut self, name: &str, kind: u8, vlen: u16, flag: bool, st: u32) -> u32 {
        let name_off = self.name(name);
        let info = u32::from(vlen) | (u32::from(kind) << 24) | (u32::from(flag) << 31);
        self.put(name_off);
        self.put(info);
        self.put(st);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(crate) fn int(&mut self, name: &str, size: u32, encoding: u8, offset: u8, bits: u8) -> u32 {
        let id = self.record(name, 1, 0, false, size);
        self.put((u32::from(encoding) << 24) | (u32::from(offset) << 16) | u32::from(bits));
        id
    }

    pub(crate) fn ptr(&mut self, target: u32) -> u32 {
        self.record("", 2, 0, false, target)
    }

    pub(crate) fn array(&mut self, element: u32, index: u32, count: u32) -> u32 {
        let id = self.record("", 3, 0, false, 0);
        self.put(element);
        self.put(index);
        self.put(count);
        id
    }

    /// A struct (`union` false) or union; members are (name, type, bit offset, bitfield
    /// bits). With `kind_flag` the bitfield width is packed into the offset word.
    pub(crate) fn composite(
        &mut self,
        union: bool,
        name: &str,
        size: u32,
        kind_flag: bool,
        members: &[(&str, u32, u32, u8)],
    ) -> u32 {
        let kind = if union { 5 } else { 4 };
        let vlen = u16::try_from(members.len()).expect("few members");
        let id = self.record(name, kind, vlen, kind_flag, size);
        for &(m, ty, bit_offset, bits) in members {
            let off = self.name(m);
            self.put(off);
            self.put(ty);
            let word = if kind_flag {
                (u32::from(bits) << 24) | bit_offset
            } else {
                bit_offset
            };
            self.put(word);
        }
        id
    }

    pub(crate) fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
        self.composite(false, name, size, false, &m)
    }

    pub(crate) fn union_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let m: Vec<_> = members.iter().map(|&(n, t, o)| (n, t, o, 0)).collect();
        self.composite(true, name, size, false, &m)
    }

    pub(crate) fn enum32(
        &mut self,
        name: &str,
        size: u32,
        signed: bool,
        values: &[(&str, i32)],
    ) -> u32 {
        let vlen = u16::try_from(values.len()).expect("few values");
        let id = self.record(name, 6, vlen, signed, size);
        for &(n, v) in values {
            let off = self.name(n);
            self.put(off);
            self.put(u32::from_ne_bytes(v.to_ne_bytes()));
        }
        id
    }

    pub(crate) fn enum64(
        &mut self,
        name: &str,
        size: u32,
        signed: bool,
        values: &[(&str, u64)],
    ) -> u32 {
        let vlen = u16::try_from(values.len()).expect("few values");
        let id = self.record(name, 19, vlen, signed, size);
        for &(n, v) in values {
            let off = self.name(n);
            self.put(off);
            self.put(u32::try_from(v & 0xffff_ffff).expect("masked"));
            self.put(u32::try_from(v >> 32).expect("shifted"));
        }
        id
    }

    pub(crate) fn fwd(&mut self, name: &str, union: bool) -> u32 {
        self.record(name, 7, 0, union, 0)
    }

    pub(crate) fn typedef(&mut self, name: &str, target: u32) -> u32 {
        self.record(name, 8, 0, false, target)
    }

    /// VOLATILE (9), CONST (10), RESTRICT (11) or TYPE_TAG (18, named).
    pub(crate) fn modifier(&mut self, kind: u8, name: &str, target: u32) -> u32 {
        self.record(name, kind, 0, false, target)
    }

    pub(crate) fn func(&mut self, name: &str, proto: u32) -> u32 {
        self.record(name, 12, 1, false, proto)
    }

    pub(crate) fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let vlen = u16::try_from(params.len()).expect("few params");
        let id = self.record("", 13, vlen, false, ret);
        for &(n, t) in params {
            let off = self.name(n);
            self.put(off);
            self.put(t);
        }
        id
    }

    pub(crate) fn var(&mut self, name: &str, target: u32) -> u32 {
        let id = self.record(name, 14, 0, false, target);
        self.put(1);
        id
    }

    pub(crate) fn datasec(&mut self, name: &str, size: u32, vars: &[(u32, u32, u32)]) -> u32 {
        let vlen = u16::try_from(vars.len()).expect("few vars");
        let id = self.record(name, 15, vlen, false, size);
        for &(t, off, sz) in vars {
            self.put(t);
            self.put(off);
            self.put(sz);
        }
        id
    }

    pub(crate) fn float(&mut self, name: &str, size: u32) -> u32 {
        self.record(name, 16, 0, false, size)
    }

    pub(crate) fn decl_tag(&mut self, name: &str, target: u32, component: i32) -> u32 {
        let id = self.record(name, 17, 0, false, target);
        self.put(u32::from_ne_bytes(component.to_ne_bytes()));
        id
    }

    /// The blob: a 24-byte header, the type section, then the string section.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let type_len = u32::try_from(self.types.len()).expect("small");
        let str_len = u32::try_from(self.strings.len()).expect("small");
        let mut out = Vec::new();
        let mut put = |w: u32| {
            let b = if self.big_endian {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            };
            out.extend_from_slice(&b);
        };
        put(0); // placeholder for magic/version/flags, patched below
        for w in [24, 0, type_len, type_len, str_len] {
            put(w);
        }
        let magic = if self.big_endian {
            [0xeb, 0x9f]
        } else {
            [0x9f, 0xeb]
        };
        out.splice(0..4, [magic[0], magic[1], 1, 0]);
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}
