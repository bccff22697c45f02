//! A Prometheus condition, as faultctl's `prometheus:` probes and faultd's
//! `[[health.probe]] prometheus = ...` both check it: an instant query through the HTTP
//! API (`GET /api/v1/query?query=...`, what `promtool query instant URL QUERY` sends) and
//! bounds its value must stay within. A query that fails, an empty result or a value out
//! of bounds is a failed sample, with the reason.
//!
//! A result of several series passes only if every series is within the bounds; the
//! reason names the first one that is not, by its labels.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use crate::http::{self, HttpUrl};

/// The bounds a query's value must stay within: `min <= value <= max`, at least one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Bounds {
    /// Checks the bounds: at least one, finite, `min <= max`.
    pub fn new(min: Option<f64>, max: Option<f64>) -> Result<Bounds, String> {
        if min.is_none() && max.is_none() {
            return Err(
                "give max, min or both: the bounds the query's value must stay within".into(),
            );
        }
        for (name, v) in [("min", min), ("max", max)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return Err(format!("{name} {v} is not a finite number"));
            }
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return Err(format!("min {lo} is above max {hi}: no value could pass"));
        }
        Ok(Bounds { min, max })
    }

    /// `Err(reason)` if `v` is out of bounds (or not a number).
    pub fn check(&self, v: f64) -> Result<(), String> {
        if v.is_nan() {
            return Err("value NaN is not a number".into());
        }
        if let Some(max) = self.max
            && v > max
        {
            return Err(format!("value {v} > max {max}"));
        }
        if let Some(min) = self.min
            && v < min
        {
            return Err(format!("value {v} < min {min}"));
        }
        Ok(())
    }
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => write!(f, "in {lo}..={hi}"),
            (None, Some(hi)) => write!(f, "<= {hi}"),
            (Some(lo), None) => write!(f, ">= {lo}"),
            (None, None) => write!(f, "anything"),
        }
    }
}

/// One series of an instant query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `{job="api",instance="a:9100"}`, or empty for a scalar or a series without labels.
    pub labels: String,
    pub value: f64,
}

/// Why a query gave no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// Not connected, or no whole answer (the caller's timeout too).
    #[error("cannot reach Prometheus at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Prometheus answered `"status": "error"`: the query is wrong (`bad_data`), or
    /// timed out or failed inside Prometheus.
    #[error("Prometheus rejected the query ({error_type}): {error}")]
    Rejected { error_type: String, error: String },
    /// An answer that is not the Prometheus API's.
    #[error("{url} did not answer as the Prometheus HTTP API does: {reason}")]
    NotPrometheus { url: String, reason: String },
    /// A vector without any series.
    #[error("the query returned no series (empty result)")]
    Empty,
    /// A range vector or a string.
    #[error(
        "the query returned a {0}: give an expression that returns an instant vector or a scalar"
    )]
    Unsupported(String),
}

impl QueryError {
    /// Whether Prometheus looked at the query and said it is malformed (`bad_data`):
    /// bad input, as opposed to a Prometheus that is down or slow.
    pub fn is_bad_query(&self) -> bool {
        matches!(self, QueryError::Rejected { error_type, .. } if error_type == "bad_data")
    }
}

/// An instant query against one Prometheus server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantQuery {
    base: HttpUrl,
    query: String,
}

impl InstantQuery {
    /// `url` is the server (`http://prom:9090`, or with a path prefix); `query` PromQL.
    pub fn new(url: &str, query: &str) -> Result<InstantQuery, String> {
        let base = HttpUrl::parse(url).map_err(|e| format!("url {e}"))?;
        if query.trim().is_empty() {
            return Err("query is empty".into());
        }
        Ok(InstantQuery {
            base,
            query: query.to_string(),
        })
    }

    /// The server URL as given.
    pub fn server(&self) -> String {
        self.base.to_string()
    }

    /// The PromQL text.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// `BASE/api/v1/query?query=ENCODED`.
    pub fn endpoint(&self) -> HttpUrl {
        let q = utf8_percent_encode(&self.query, NON_ALPHANUMERIC).to_string();
        self.base.join("/api/v1/query", &format!("query={q}"))
    }

    /// Sends the query once (no time bound: the caller adds one) and returns its series.
    pub async fn run(&self) -> Result<Vec<Series>, QueryError> {
        let url = self.endpoint();
        let a = http::get(&url)
            .await
            .map_err(|reason| QueryError::Unreachable {
                url: self.base.to_string(),
                reason,
            })?;
        parse_answer(&self.base.to_string(), a.status, &a.body)
    }
}

/// The value a result shows and whether it is within `bounds`: the first series out of
/// bounds (named by its labels when there are several), else the largest value (the
/// smallest when only `min` is given).
pub fn judge(series: &[Series], bounds: &Bounds) -> (Option<f64>, Result<(), String>) {
    for s in series {
        if let Err(e) = bounds.check(s.value) {
            let e = if series.len() > 1 {
                format!("{e} ({}, {} series)", nonempty(&s.labels), series.len())
            } else {
                e
            };
            return (Some(s.value), Err(e));
        }
    }
    let shown = if bounds.max.is_none() {
        series.iter().map(|s| s.value).reduce(f64::min)
    } else {
        series.iter().map(|s| s.value).reduce(f64::max)
    };
    (shown, Ok(()))
}

fn nonempty(labels: &str) -> &str {
    if labels.is_empty() { "{}" } else { labels }
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct ApiSample {
    #[serde(default)]
    metric: std::collections::BTreeMap<String, String>,
    value: (f64, String),
}

/// Reads an answer of `/api/v1/query` (`status` is the HTTP status).
pub fn parse_answer(url: &str, status: u16, body: &[u8]) -> Result<Vec<Series>, QueryError> {
    let not_prom = |reason: String| QueryError::NotPrometheus {
        url: url.to_string(),
        reason,
    };
    let a: ApiAnswer = serde_json::from_slice(body).map_err(|e| {
        let head = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        not_prom(format!("HTTP status {status}, body {head:?} ({e})"))
    })?;
    if a.status != "success" {
        return Err(QueryError::Rejected {
            error_type: if a.error_type.is_empty() {
                format!("HTTP {status}")
            } else {
                a.error_type
            },
            error: a.error,
        });
    }
    let data = a
        .data
        .ok_or_else(|| not_prom("\"status\": \"success\" without \"data\"".into()))?;
    let value = |s: &str| -> Result<f64, QueryError> {
        s.parse::<f64>()
            .map_err(|_| not_prom(format!("sample value {s:?} is not a number")))
    };
    match data.result_type.as_str() {
        "vector" => {
            let v: Vec<ApiSample> = serde_json::from_value(data.result)
                .map_err(|e| not_prom(format!("a vector result that does not parse: {e}")))?;
            if v.is_empty() {
                return Err(QueryError::Empty);
            }
            v.into_iter()
                .map(|s| {
                    let labels = if s.metric.is_empty() {
                        String::new()
                    } else {
                        let l: Vec<String> =
                            s.metric.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                        format!("{{{}}}", l.join(","))
                    };
                    Ok(Series {
                        labels,
                        value: value(&s.value.1)?,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, v): (f64, String) = serde_json::from_value(data.result)
                .map_err(|e| not_prom(format!("a scalar result that does not parse: {e}")))?;
            Ok(vec![Series {
                labels: String::new(),
                value: value(&v)?,
            }])
        }
        "matrix" => Err(QueryError::Unsupported("range vector (matrix)".into())),
        other => Err(QueryError::Unsupported(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let b = Bounds::new(None, Some(0.005)).unwrap();
        assert!(b.check(0.005).is_ok());
        assert_eq!(b.check(0.01).unwrap_err(), "value 0.01 > max 0.005");
        assert_eq!(b.check(f64::NAN).unwrap_err(), "value NaN is not a number");
        let b = Bounds::new(Some(1.0), None).unwrap();
        assert_eq!(b.check(0.5).unwrap_err(), "value 0.5 < min 1");
        assert_eq!(b.to_string(), ">= 1");
        assert_eq!(
            Bounds::new(None, None).unwrap_err(),
            "give max, min or both: the bounds the query's value must stay within"
        );
        assert_eq!(
            Bounds::new(Some(5.0), Some(3.0)).unwrap_err(),
            "min 5 is above max 3: no value could pass"
        );
        assert!(Bounds::new(Some(f64::INFINITY), None).is_err());
    }

    #[test]
    fn answers() {
        let u = "http://prom:9090";
        let v = parse_answer(
            u,
            200,
            br#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"job":"a"},"value":[1700000000.1,"3"]},
                {"metric":{"job":"b"},"value":[1700000000.1,"+Inf"]}]}}"#,
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels, r#"{job="a"}"#);
        assert_eq!(v[1].value, f64::INFINITY);
        let b = Bounds::new(None, Some(5.0)).unwrap();
        let (shown, r) = judge(&v, &b);
        assert_eq!(shown, Some(f64::INFINITY));
        assert_eq!(r.unwrap_err(), r#"value inf > max 5 ({job="b"}, 2 series)"#);
        let (shown, r) = judge(&v[..1], &b);
        assert_eq!((shown, r), (Some(3.0), Ok(())));
        let s = parse_answer(
            u,
            200,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.25"]}}"#,
        )
        .unwrap();
        assert_eq!(
            s,
            vec![Series {
                labels: String::new(),
                value: 0.25
            }]
        );
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_answer(u, 200, empty), Err(QueryError::Empty));
        let bad = br#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}"#;
        let e = parse_answer(u, 400, bad).unwrap_err();
        assert!(e.is_bad_query());
        assert_eq!(
            e.to_string(),
            "Prometheus rejected the query (bad_data): invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"
        );
        let m = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            parse_answer(u, 200, m)
                .unwrap_err()
                .to_string()
                .starts_with("the query returned a range vector (matrix)")
        );
        let e = parse_answer(u, 404, b"404 page not found").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "http://prom:9090 did not answer as the Prometheus HTTP API does: HTTP status 404"
            ),
            "{e}"
        );
    }

    #[test]
    fn endpoint_encodes_the_query() {
        let q =
            InstantQuery::new("http://127.0.0.1:9090/", r#"sum(rate(x{a="b c"}[5m]))"#).unwrap();
        assert_eq!(
            q.endpoint().to_string(),
            "http://127.0.0.1:9090/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B5m%5D%29%29"
        );
        assert_eq!(
            InstantQuery::new("http://p:9090", " ").unwrap_err(),
            "query is empty"
        );
        assert!(
            InstantQuery::new("p:9090", "up")
                .unwrap_err()
                .starts_with("url ")
        );
    }
}
