//! Text from evidence, made safe to show: one implementation, in
//! [`vestige_evidence::text`], shared with the output-directory and report writers.

pub use vestige_evidence::text::{display_safe, html_escape};
