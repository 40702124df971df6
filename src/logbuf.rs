//! logbuf: (to be written)
