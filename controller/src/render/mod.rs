//! Rendering answers for people (tables and sentences) and for scripts (JSON).
//!
//! Every function is pure: times are rendered relative to a `now_ms` the caller passes
//! (Unix milliseconds), so the output is testable. JSON is the serde mapping of the
//! `faultline.v1` messages themselves ([`faultline_proto::json`]): field names are the
//! proto's, enums lowercase strings, and no field can be left out by hand.
//!
//! - [`spec`]: a fault spec in one line (one row per fault kind).
//! - [`answer`]: each command's answer as a table, and as a one-line fleet summary.

pub mod answer;
pub mod spec;

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use faultline_proto::json::name_of;
use faultline_proto::units::format_ms;
use faultline_proto::v1::{EventType, FaultKind, FaultState};

pub use answer::{answer_table, summary};
pub use spec::spec_text;

/// How a command prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned tables and sentences.
    #[default]
    Table,
    /// One JSON document per command (`watch`: one object per line).
    Json,
}

/// Writes `v` as pretty JSON and a newline.
pub fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut (dyn Write + Send),
    v: &T,
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v).map_err(std::io::Error::from)?;
    writeln!(out)
}

/// Writes `v` as JSON on one line (a stream of objects, one per line).
pub fn write_json_line<T: serde::Serialize + ?Sized>(
    out: &mut (dyn Write + Send),
    v: &T,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::from)?;
    writeln!(out)
}

// ---------------------------------------------------------------- names

/// `kill`, `pause`, ... (`unknown(N)` for a kind this faultctl does not know).
pub fn kind_name(v: i32) -> String {
    name_of::<FaultKind>(v).into_owned()
}

/// `active`, `reverted`, ...
pub fn state_name(v: i32) -> String {
    name_of::<FaultState>(v).into_owned()
}

/// `injected`, `expired`, ...
pub fn event_name(v: i32) -> String {
    name_of::<EventType>(v).into_owned()
}

// ---------------------------------------------------------------- times

/// `2026-11-23T14:05:01Z`, or `-` for zero.
pub fn absolute(at_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// `in 4m55s`, `12s ago`, `now`; `-` for zero. Whole seconds from a second up.
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    let (diff, future) = if at_ms >= now_ms {
        (at_ms - now_ms, true)
    } else {
        (now_ms - at_ms, false)
    };
    if diff < 1000 && !future {
        return "just now".into();
    }
    let d = if diff >= 1000 {
        diff / 1000 * 1000
    } else {
        diff
    };
    if future {
        format!("in {}", format_ms(d))
    } else {
        format!("{} ago", format_ms(d))
    }
}

/// `2026-11-23T14:05:01Z (in 4m55s)`.
pub fn when(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    format!("{} ({})", absolute(at_ms), relative(at_ms, now_ms))
}

// ---------------------------------------------------------------- tables

/// A table with aligned columns; the last column is not padded.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Renders it, each line indented by `indent` spaces.
    pub fn render(&self, indent: usize) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut width = vec![0; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = " ".repeat(indent);
            for (i, c) in r.iter().enumerate() {
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines, the values aligned.
pub(crate) fn kv(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:w$}  {v}\n"))
        .collect()
}

pub(crate) fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

pub(crate) fn list_or_dash(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// `s` when `n` is not 1: `1 fault`, `2 faults`.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const NOW: u64 = 1_795_000_000_000;

    #[test]
    fn relative_times() {
        assert_eq!(relative(NOW + 295_400, NOW), "in 4m55s");
        assert_eq!(relative(NOW - 12_900, NOW), "12s ago");
        assert_eq!(relative(NOW - 10, NOW), "just now");
        assert_eq!(relative(NOW + 300, NOW), "in 300ms");
        assert_eq!(relative(0, NOW), "-");
        assert_eq!(absolute(1_795_000_000_000), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&["A", "LONGER", "C"]);
        t.row(vec!["xxxx".into(), "y".into(), "last column".into()]);
        assert_eq!(t.render(0), "A     LONGER  C\nxxxx  y       last column\n");
        assert_eq!(t.render(2).lines().next(), Some("  A     LONGER  C"));
        assert_eq!(kind_name(99), "unknown(99)");
    }
}
