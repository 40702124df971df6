//! cli: (to be written)
