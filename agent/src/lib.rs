//! faultline-agent: the library behind `faultd`.
