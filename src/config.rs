//! config: (to be written)
