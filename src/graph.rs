//! graph: (to be written)
