//! faultline-agent: the library behind `faultd`.
//!
//! Layers, depending one way: [`api`] (not yet) -> `engine` -> `fault` -> [`sys`].

pub mod sys;
