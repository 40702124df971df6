//! ankh: a tiny static init and service supervisor. The binary is `src/main.rs`; this crate root
//! lists the modules in the order data flows through them (design §3).
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

// Pure core: no file descriptors, time passed in.
pub mod spec;
pub mod config;
pub mod validate;
pub mod graph;
pub mod backoff;
pub mod service;
pub mod supervisor;
pub mod cli;

// Effects: the only code that touches the OS.
#[allow(unsafe_code)]
pub mod sys;
pub mod spawn;
pub mod signals;
pub mod logger;
pub mod logbuf;
pub mod reactor;
