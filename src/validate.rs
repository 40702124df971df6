//! validate: (to be written)
