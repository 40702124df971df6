//! service: (to be written)
