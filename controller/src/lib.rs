//! faultline-controller: the library behind `faultctl`.
