//! Disk faults: fill a filesystem with one tagged file.

use faultline_proto::v1::{self, fault_spec};
use serde::Deserialize;

use super::error::at_most_one;
use super::value::{opt, opt_span};
use super::{Kind, RequestError, Size, Span, Text};

/// A disk fill as a document or the command line gives it (`disk_fill:`; the flags of
/// `faultctl inject disk-fill`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFillInput {
    pub path: Option<String>,
    pub size: Option<Text>,
    pub percent: Option<f64>,
    pub free: Option<Text>,
    pub ramp: Option<Text>,
}

/// How much to fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FillAmount {
    /// This much more used.
    Size(Size),
    /// Until the filesystem is this many percent used.
    Percent(f64),
    /// Until only this much is free.
    Free(Size),
}

/// Fill the filesystem holding `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskFill {
    pub path: String,
    pub amount: FillAmount,
    /// Grow linearly over this long.
    pub ramp: Option<Span>,
}

impl Kind for DiskFill {
    type Input = DiskFillInput;

    fn new(i: &Self::Input) -> Result<Self, RequestError> {
        let path = match &i.path {
            None => {
                return Err(RequestError::Missing {
                    any_of: &[&["path"]],
                });
            }
            Some(p) if !p.starts_with('/') => {
                return Err(RequestError::invalid(
                    "path",
                    format!("{p:?} is not an absolute path"),
                ));
            }
            Some(p) => p.clone(),
        };
        at_most_one(&[
            ("size", i.size.is_some()),
            ("percent", i.percent.is_some()),
            ("free", i.free.is_some()),
        ])?;
        let amount = match (
            opt("size", &i.size, Size::parse)?,
            i.percent,
            opt("free", &i.free, Size::parse)?,
        ) {
            (Some(s), ..) => FillAmount::Size(s),
            (None, Some(p), _) => {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(RequestError::invalid(
                        "percent",
                        format!("{p} is not in (0, 100]"),
                    ));
                }
                FillAmount::Percent(p)
            }
            (None, None, Some(f)) => FillAmount::Free(f),
            (None, None, None) => {
                return Err(RequestError::Missing {
                    any_of: &[&["size"], &["percent"], &["free"]],
                });
            }
        };
        Ok(DiskFill {
            path,
            amount,
            ramp: opt_span("ramp", &i.ramp)?,
        })
    }

    fn to_proto(&self) -> fault_spec::Kind {
        let mut s = v1::DiskFillSpec {
            path: self.path.clone(),
            ramp_ms: self.ramp.map_or(0, Span::as_millis),
            ..Default::default()
        };
        match self.amount {
            FillAmount::Size(b) => s.size_bytes = b.bytes(),
            FillAmount::Percent(p) => s.percent = p,
            FillAmount::Free(b) => s.free_bytes = b.bytes(),
        }
        fault_spec::Kind::DiskFill(s)
    }
}
