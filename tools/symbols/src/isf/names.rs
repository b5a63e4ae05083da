//! The ISF name of each BTF type that ISF refers to by name: structs, unions, enums,
//! forward declarations and base types.
//!
//! ISF has no typedefs and no anonymous types: every aggregate is a named entry. Named
//! types keep their C tag. An anonymous struct or union that a typedef names directly
//! (`typedef struct { int counter; } atomic_t;`) takes the typedef's name, as dwarf2json
//! does (`main.go`, the `TagTypedef` case), so Volatility code that asks for `atomic_t`
//! finds it. Other anonymous types get `unnamed_<kind>_<btf id>`: unique within one
//! kernel, which is all ISF needs (dwarf2json hashes the definition instead).

use std::borrow::Cow;
use std::collections::HashSet;

use crate::btf::{Btf, BtfType, TypeId};

/// Names indexed by BTF type id; `None` for kinds ISF never names.
#[derive(Debug)]
pub(crate) struct Names<'a> {
    by_id: Vec<Option<Cow<'a, str>>>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(btf: &Btf<'a>) -> Self {
        // Names already used by user types; a typedef name must not shadow one.
        let mut taken: HashSet<&str> = HashSet::new();
        let mut by_id: Vec<Option<Cow<'a, str>>> = btf
            .iter()
            .map(|(_, ty)| {
                let name = match ty {
                    BtfType::Struct(c) | BtfType::Union(c) => {
                        if !c.name.is_empty() {
                            taken.insert(c.name);
                        }
                        c.name
                    }
                    BtfType::Enum { name, .. }
                    | BtfType::Fwd { name, .. }
                    | BtfType::Int { name, .. }
                    | BtfType::Float { name, .. } => name,
                    _ => return None,
                };
                (!name.is_empty()).then_some(Cow::Borrowed(name))
            })
            .collect();

        for (_, ty) in btf.iter() {
            let BtfType::Typedef { name, target } = ty else {
                continue;
            };
            let Ok(index) = usize::try_from(target.0) else {
                continue;
            };
            let anonymous_aggregate = matches!(
                btf.get(*target),
                Some(BtfType::Struct(c) | BtfType::Union(c)) if c.name.is_empty()
            );
            if let Some(slot @ None) = by_id.get_mut(index) {
                if anonymous_aggregate && !name.is_empty() && taken.insert(name) {
                    *slot = Some(Cow::Borrowed(*name));
                }
            }
        }

        for ((id, ty), slot) in btf.iter().zip(by_id.iter_mut()) {
            if slot.is_some() {
                continue;
            }
            let kind = match ty {
                BtfType::Struct(_) => "struct",
                BtfType::Union(_) => "union",
                BtfType::Enum { .. } => "enum",
                BtfType::Fwd { .. } => "fwd",
                BtfType::Int { .. } => "int",
                BtfType::Float { .. } => "float",
                _ => continue,
            };
            let mut name = format!("unnamed_{kind}_{id}");
            // A kernel could name a struct like this; never merge two types.
            while taken.contains(name.as_str()) {
                name.push('_');
            }
            *slot = Some(Cow::Owned(name));
        }
        Names { by_id }
    }

    /// The ISF name of `id`, if it is a kind ISF names.
    pub(crate) fn get(&self, id: TypeId) -> Option<&str> {
        self.by_id
            .get(usize::try_from(id.0).ok()?)
            .and_then(|n| n.as_deref())
    }
}
