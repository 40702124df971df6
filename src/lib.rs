//! ankh: a tiny static init and service supervisor. The binary is `src/main.rs`; this crate root
//! lists the modules in the order data flows through them (design §3).
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

// Pure core: no file descriptors, time passed in.
pub mod backoff;
pub mod cli;
pub mod config;
pub mod graph;
pub mod health;
pub mod proto;
pub mod service;
pub mod sorted;
pub mod spec;
pub mod supervisor;
pub mod validate;

// Effects: the only code that touches the OS.
pub mod cgroup;
pub mod control;
pub mod ctl;
pub mod logbuf;
pub mod logger;
pub mod notify;
pub mod pid1;
pub mod probe;
pub mod proxy;
pub mod reactor;
pub mod signals;
pub mod sockets;
pub mod spawn;
#[allow(unsafe_code)]
pub mod sys;
