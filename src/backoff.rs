//! backoff: (to be written)
