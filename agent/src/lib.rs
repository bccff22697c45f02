//! faultline-agent: the library behind `faultd`.
//!
//! Layers, depending one way: [`api`] -> [`engine`] -> [`fault`] -> [`sys`], with
//! [`policy`] a pure function beside them. `sys` never sees proto types; `policy` never
//! touches the kernel.

pub mod api;
pub mod audit;
pub mod cleanup;
pub mod config;
pub mod engine;
pub mod error;
pub mod fault;
pub mod host;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod server;
pub mod support;
pub mod sys;
