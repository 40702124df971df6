//! sys: (to be written)
