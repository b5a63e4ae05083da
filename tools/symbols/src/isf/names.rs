//! The ISF name of each BTF type that ISF refers to by name: structs, unions, enums,
//! forward declarations and base types.
//!
//! ISF has no typedefs and no anonymous types: every aggregate is a named entry. Named
//! types keep their C tag. An anonymous struct or union that a typedef names directly
//! (`typedef struct { int counter; } atomic_t;`) takes the typedef's name, so Volatility
//! code that asks for `atomic_t` finds it. Other anonymous types get
//! `unnamed_<kind>_<btf id>`: unique within one kernel, which is all ISF needs
//! (dwarf2json hashes the definition instead).
//!
//! A typedef that directly names a struct or union of another name (`typedef struct
//! spinlock spinlock_t;`) also becomes an *alias*: a user type of its own with the
//! target's layout, as dwarf2json emits one, so `get_type("spinlock_t")` works. Members
//! still refer to the tag (`spinlock`), unlike dwarf2json (whose `typeName` takes every
//! typedef of a struct for a name, as Go's `dwarf.StructType` never carries a `Name`):
//! Volatility binds its classes by tag and picks implementations by type name, e.g.
//! `kernel_cap_struct` for kernels before 6.3 and `kernel_cap_t` (then anonymous) after.
//! Referring by typedef, as dwarf2json does, makes `linux.capabilities` fail on a Debian
//! 6.1 image ("Unsupported kernel capabilities implementation"); by tag it works. The
//! first typedef of a name wins; a name already used by a struct or union tag is never
//! reused.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::btf::{Btf, BtfType, TypeId};

/// Names indexed by BTF type id; `None` for kinds ISF never names.
#[derive(Debug)]
pub(crate) struct Names<'a> {
    by_id: Vec<Option<Cow<'a, str>>>,
    /// Typedefs that are user types of their own, in id order.
    aliases: Vec<(TypeId, &'a str)>,
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

        let mut aliases = Vec::new();
        for (id, ty) in btf.iter() {
            let BtfType::Typedef { name, target } = ty else {
                continue;
            };
            let (Some(BtfType::Struct(c) | BtfType::Union(c)), Ok(index)) =
                (btf.get(*target), usize::try_from(target.0))
            else {
                continue;
            };
            let Some(slot) = by_id.get_mut(index) else {
                continue;
            };
            if name.is_empty() || slot.as_deref() == Some(*name) || !taken.insert(*name) {
                continue;
            }
            if c.name.is_empty() && slot.is_none() {
                *slot = Some(Cow::Borrowed(*name));
            } else {
                aliases.push((id, *name));
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
        Names { by_id, aliases }
    }

    /// Every alias: typedef id and name.
    pub(crate) fn aliases(&self) -> impl Iterator<Item = (TypeId, &'a str)> + '_ {
        self.aliases.iter().copied()
    }

    /// The ISF name of `id`, if it is a kind ISF names.
    pub(crate) fn get(&self, id: TypeId) -> Option<&str> {
        self.by_id
            .get(usize::try_from(id.0).ok()?)
            .and_then(|n| n.as_deref())
    }
}
