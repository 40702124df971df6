//! logger: (to be written)
