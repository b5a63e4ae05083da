//! vestige-image
