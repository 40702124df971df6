//! signals: (to be written)
