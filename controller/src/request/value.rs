//! The values of a request, one type per rule, each checked in its constructor:
//! [`Period`] (a fault's duration: whole milliseconds, at least 1 ms), [`Span`] (any
//! duration as people type it), [`Percent`] (`20%` or `20`, in 0..=100), [`Size`]
//! (`512MiB`, more than 0), [`Rate`] (`10mbit`, more than 0) and [`Labels`]
//! (`key=value`, non-empty unique keys). Constructors return the reason only; the caller
//! knows which field it was ([`super::RequestError::invalid`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use faultline_proto::units;
use serde::Deserialize;

use super::{Field, RequestError};

/// A scalar as a document writes it (string or number), kept as text for the value's
/// own parser: `loss: 2%`, `loss: 2`, `dport: 5432`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(s)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(s.to_string())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum S {
            Str(String),
            Int(i64),
            Float(f64),
        }
        Ok(Text(match S::deserialize(d)? {
            S::Str(s) => s,
            S::Int(i) => i.to_string(),
            S::Float(f) => f.to_string(),
        }))
    }
}

/// How long a fault lasts (or how often it repeats): whole milliseconds, at least 1 ms,
/// because zero means "unset" on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Period(u64);

impl Period {
    /// Parses `30s`, `5m`, `1h30m`.
    pub fn parse(text: &str) -> Result<Period, String> {
        let d = units::parse_duration(text)?;
        let ms = d.as_millis();
        if ms == 0 {
            return Err(format!(
                "{text:?} is {}: a duration must be at least 1ms",
                if d.is_zero() {
                    "zero"
                } else {
                    "under a millisecond"
                }
            ));
        }
        Ok(Period(u64::try_from(ms).unwrap_or(u64::MAX)))
    }

    /// Parses `text` as the value of `field`.
    pub fn field(field: Field, text: &str) -> Result<Period, RequestError> {
        Period::parse(text).map_err(|r| RequestError::invalid(field, r))
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

/// Any duration as people type it (`500ms`, `30s`, `5m`; zero allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub Duration);

impl Span {
    pub fn parse(text: &str) -> Result<Span, String> {
        units::parse_duration(text).map(Span)
    }

    fn field(field: Field, text: &Text) -> Result<Span, RequestError> {
        Span::parse(&text.0).map_err(|r| RequestError::invalid(field, r))
    }

    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn as_micros(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A percentage written as `20%` or `20`, in 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(f64);

impl Percent {
    /// 100 %.
    pub const MAX: Percent = Percent(100.0);

    pub fn parse(text: &str) -> Result<Percent, String> {
        let n: f64 = text
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("{text:?} is not a percentage (e.g. 1%, 0.5)"))?;
        if !(0.0..=100.0).contains(&n) {
            return Err(format!("{text:?} is not in 0..=100%"));
        }
        Ok(Percent(n))
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

/// An amount of memory (`512MiB`, `2GiB`), more than 0 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(u64);

impl Size {
    pub fn parse(text: &str) -> Result<Size, String> {
        match units::parse_size(text)? {
            0 => Err("must be more than 0".into()),
            n => Ok(Size(n)),
        }
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// A rate limit as tc writes it (`10mbit`, `512kbit`), more than 0 bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(u64);

impl Rate {
    pub fn parse(text: &str) -> Result<Rate, String> {
        match units::parse_rate(text)? {
            0 => Err("a rate of 0 would stop all traffic".into()),
            n => Ok(Rate(n)),
        }
    }

    pub fn bits_per_sec(self) -> u64 {
        self.0
    }
}

/// Labels recorded with a fault: non-empty keys, each once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// From `KEY=VALUE` texts (an empty value is allowed), as the value of `field`.
    pub fn from_pairs(field: Field, pairs: &[String]) -> Result<Labels, RequestError> {
        let mut out = Labels::default();
        for l in pairs {
            let bad = || RequestError::BadLabel {
                field,
                text: l.clone(),
            };
            let (k, v) = l.split_once('=').ok_or_else(bad)?;
            let k = k.trim();
            if k.is_empty() {
                return Err(bad());
            }
            if out.0.insert(k.to_string(), v.to_string()).is_some() {
                return Err(RequestError::DuplicateLabel {
                    field,
                    text: l.clone(),
                });
            }
        }
        Ok(out)
    }

    /// From a map (a document's `labels:`), as the value of `field`.
    pub fn from_map(field: Field, map: &BTreeMap<String, String>) -> Result<Labels, RequestError> {
        if let Some((k, v)) = map.iter().find(|(k, _)| k.trim().is_empty()) {
            return Err(RequestError::BadLabel {
                field,
                text: format!("{k}={v}"),
            });
        }
        Ok(Labels(map.clone()))
    }

    /// Sets `key` (replacing a value already there).
    pub fn set(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_string(), value.to_string());
    }

    pub fn to_proto(&self) -> HashMap<String, String> {
        self.0.clone().into_iter().collect()
    }
}

/// Parses an optional text field with `parse`; `None` stays `None`.
pub(crate) fn opt<T>(
    field: Field,
    text: &Option<Text>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, RequestError> {
    text.as_ref()
        .map(|t| parse(&t.0).map_err(|r| RequestError::invalid(field, r)))
        .transpose()
}

/// An optional duration field.
pub(crate) fn opt_span(field: Field, text: &Option<Text>) -> Result<Option<Span>, RequestError> {
    text.as_ref().map(|t| Span::field(field, t)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_checks_its_rule() {
        assert_eq!(Period::parse("1m30s").unwrap().as_millis(), 90_000);
        assert_eq!(
            Period::parse("-5s").unwrap_err(),
            "\"-5s\" is negative: a duration must be positive"
        );
        assert_eq!(
            Period::parse("0s").unwrap_err(),
            "\"0s\" is zero: a duration must be at least 1ms"
        );
        assert_eq!(
            Period::parse("10us").unwrap_err(),
            "\"10us\" is under a millisecond: a duration must be at least 1ms"
        );
        assert_eq!(Percent::parse("2%").unwrap().value(), 2.0);
        assert_eq!(Percent::parse("0.5").unwrap().value(), 0.5);
        assert_eq!(
            Percent::parse("200%").unwrap_err(),
            "\"200%\" is not in 0..=100%"
        );
        assert!(Percent::parse("lots").is_err());
        assert_eq!(Size::parse("512MiB").unwrap().bytes(), 512 << 20);
        assert_eq!(Size::parse("0MiB").unwrap_err(), "must be more than 0");
        assert!(Size::parse("12").unwrap_err().contains("no unit"));
        assert_eq!(Rate::parse("10mbit").unwrap().bits_per_sec(), 10_000_000);
        assert_eq!(
            Rate::parse("0mbit").unwrap_err(),
            "a rate of 0 would stop all traffic"
        );
        assert_eq!(Span::parse("0s").unwrap(), Span(Duration::ZERO));
    }

    #[test]
    fn labels_are_key_value_with_unique_keys() {
        let l =
            Labels::from_pairs("labels", &["a=b".into(), "team=x=y".into(), "k=".into()]).unwrap();
        let p = l.to_proto();
        assert_eq!(
            (p["a"].as_str(), p["team"].as_str(), p["k"].as_str()),
            ("b", "x=y", "")
        );
        assert_eq!(
            Labels::from_pairs("labels", &["novalue".into()]).unwrap_err(),
            RequestError::BadLabel {
                field: "labels",
                text: "novalue".into()
            }
        );
        assert!(Labels::from_pairs("labels", &["=v".into()]).is_err());
        assert!(matches!(
            Labels::from_pairs("labels", &["a=1".into(), "a=2".into()]),
            Err(RequestError::DuplicateLabel { .. })
        ));
        let m: BTreeMap<String, String> = [(" ".to_string(), "v".to_string())].into();
        assert!(Labels::from_map("labels", &m).is_err());
    }
}
