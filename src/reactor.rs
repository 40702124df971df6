//! reactor: (to be written)
