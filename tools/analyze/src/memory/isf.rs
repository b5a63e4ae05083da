//! What the walkers need from a Volatility 3 symbol table (ISF JSON) and from kallsyms:
//! field offsets, found through the kernel's anonymous unions and structs, and the
//! runtime addresses of a few symbols.
//!
//! Kernel structures hide many fields in anonymous members (`sock_common`'s
//! `skc_daddr` lives in an unnamed union holding an unnamed struct). The ISF names such
//! members `unnamed_field_N` with types `unnamed_union_N`/`unnamed_struct_N`, as
//! dwarf2json does; a field is looked up in the type and then, depth-first, in its
//! anonymous members, the way C resolves `sk->skc_daddr`.

use super::physical::MemoryError;
use serde_json::Value;
use std::collections::HashMap;

/// Anonymous members nest a few levels in practice; a symbol table deeper than this is
/// malformed (or hostile: a type that contains itself).
const MAX_ANONYMOUS_DEPTH: usize = 8;

fn missing(what: String) -> MemoryError {
    MemoryError::Kernel(format!("the symbol table has no {what}"))
}

/// The `user_types` of an ISF.
#[derive(Debug, Clone, Copy)]
pub struct Types<'a>(&'a Value);

impl<'a> Types<'a> {
    /// The types of `isf`.
    #[must_use]
    pub fn new(isf: &'a Value) -> Self {
        Types(isf.get("user_types").unwrap_or(&Value::Null))
    }

    fn fields(&self, ty: &str) -> Option<&'a serde_json::Map<String, Value>> {
        self.0.get(ty)?.get("fields")?.as_object()
    }

    /// Size in bytes of struct `ty`.
    pub fn size(&self, ty: &str) -> Result<u64, MemoryError> {
        self.0
            .get(ty)
            .and_then(|t| t.get("size"))
            .and_then(Value::as_u64)
            .ok_or_else(|| missing(format!("size of {ty}")))
    }

    /// Offset and type of field `name` of `ty`, looking into anonymous members.
    fn member(&self, ty: &str, name: &str, depth: usize) -> Option<(u64, &'a Value)> {
        let fields = self.fields(ty)?;
        if let Some(f) = fields.get(name) {
            return Some((f.get("offset")?.as_u64()?, f.get("type")?));
        }
        if depth >= MAX_ANONYMOUS_DEPTH {
            return None;
        }
        fields
            .iter()
            .filter(|(n, _)| n.starts_with("unnamed_field"))
            .find_map(|(_, f)| {
                let inner = f.get("type")?.get("name")?.as_str()?;
                let (off, t) = self.member(inner, name, depth + 1)?;
                Some((f.get("offset")?.as_u64()?.checked_add(off)?, t))
            })
    }

    /// Byte offset of `path` (nested field names, such as `["__sk_common",
    /// "skc_family"]`) from the start of a `ty`.
    pub fn offset(&self, ty: &str, path: &[&str]) -> Result<u64, MemoryError> {
        let mut current = ty.to_string();
        let mut total = 0u64;
        for (i, name) in path.iter().enumerate() {
            let whole = || format!("{ty}.{}", path.get(..=i).unwrap_or_default().join("."));
            let (off, t) = self
                .member(&current, name, 0)
                .ok_or_else(|| missing(whole()))?;
            total = total.checked_add(off).ok_or_else(|| missing(whole()))?;
            if i + 1 < path.len() {
                current = t
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing(format!("struct type of {}", whole())))?
                    .to_string();
            }
        }
        Ok(total)
    }
}

/// Runtime addresses of the kernel's own (not modules') symbols, from kallsyms text.
#[derive(Debug, Clone, Default)]
pub struct Symbols(HashMap<String, u64>);

impl Symbols {
    /// Parses `/proc/kallsyms` text as captured with the memory.
    #[must_use]
    pub fn parse(kallsyms: &str) -> Self {
        let mut map = HashMap::new();
        for s in vestige_symbols::kallsyms::parse(kallsyms).symbols {
            if s.module.is_none() && s.address != 0 {
                map.entry(s.name.to_string()).or_insert(s.address);
            }
        }
        Symbols(map)
    }

    /// The address of `name`, if kallsyms gives one (not zeroed by kptr_restrict).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied()
    }

    /// The address of `name`, or an error naming it.
    pub fn need(&self, name: &str) -> Result<u64, MemoryError> {
        self.get(name)
            .ok_or_else(|| MemoryError::Kernel(format!("kallsyms has no address for {name}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_through_anonymous_members() {
        let isf = serde_json::json!({"user_types": {
            "sock": {"size": 64, "fields": {
                "__sk_common": {"offset": 0, "type": {"kind": "struct", "name": "sock_common"}},
                "sk_protocol": {"offset": 40, "type": {"kind": "base", "name": "short"}}}},
            "sock_common": {"size": 32, "fields": {
                "unnamed_field_0": {"offset": 0, "type": {"kind": "union", "name": "u0"}},
                "unnamed_field_1": {"offset": 12, "type": {"kind": "union", "name": "u1"}},
                "skc_family": {"offset": 16, "type": {"kind": "base", "name": "short"}}}},
            "u0": {"size": 8, "fields": {
                "skc_addrpair": {"offset": 0, "type": {"kind": "base", "name": "long"}},
                "unnamed_field_0": {"offset": 0, "type": {"kind": "struct", "name": "s0"}}}},
            "s0": {"size": 8, "fields": {
                "skc_daddr": {"offset": 0, "type": {"kind": "base", "name": "int"}},
                "skc_rcv_saddr": {"offset": 4, "type": {"kind": "base", "name": "int"}}}},
            "u1": {"size": 4, "fields": {
                "unnamed_field_0": {"offset": 0, "type": {"kind": "struct", "name": "s1"}}}},
            "s1": {"size": 4, "fields": {
                "skc_dport": {"offset": 0, "type": {"kind": "base", "name": "short"}},
                "skc_num": {"offset": 2, "type": {"kind": "base", "name": "short"}}}},
            // A type that contains itself anonymously: bounded, not a stack overflow.
            "loop": {"size": 8, "fields": {
                "unnamed_field_0": {"offset": 0, "type": {"kind": "union", "name": "loop"}}}}
        }});
        let t = Types::new(&isf);
        assert_eq!(
            t.offset("sock", &["__sk_common", "skc_family"]).unwrap(),
            16
        );
        assert_eq!(
            t.offset("sock", &["__sk_common", "skc_rcv_saddr"]).unwrap(),
            4
        );
        assert_eq!(t.offset("sock_common", &["skc_num"]).unwrap(), 14);
        assert_eq!(t.offset("sock", &["sk_protocol"]).unwrap(), 40);
        assert_eq!(t.size("sock").unwrap(), 64);
        let e = t.offset("sock", &["__sk_common", "nope"]).unwrap_err();
        assert!(e.to_string().contains("sock.__sk_common.nope"), "{e}");
        assert!(t.offset("loop", &["x"]).is_err());
        assert!(t.offset("sock", &["sk_protocol", "x"]).is_err());
    }

    #[test]
    fn kallsyms_zeroed_and_module_symbols_are_not_addresses() {
        let s = Symbols::parse(
            "ffffffff81000000 T _text\n0000000000000000 T hidden\nffffffffc0000000 t m_fn\t[mod]\n",
        );
        assert_eq!(s.get("_text"), Some(0xffff_ffff_8100_0000));
        assert_eq!(s.get("hidden"), None);
        assert_eq!(s.get("m_fn"), None);
        assert!(s.need("hidden").unwrap_err().to_string().contains("hidden"));
    }
}
