//! vestige-analyze
