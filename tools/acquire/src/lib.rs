//! vestige-acquire
