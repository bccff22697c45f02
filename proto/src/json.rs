//! The JSON mapping of `faultline.v1`: every message is `serde::Serialize` (the
//! attributes are set by `build.rs` from the descriptors), so `faultctl -o json` prints the
//! messages themselves and no field can be left out by hand.
//!
//! - Field names are the proto field names (snake_case); 64-bit integers are numbers.
//! - Enums are their short lowercase names (`"kill"`, `"active"`, `"health-abort"`); a
//!   value this build does not know is `"unknown(N)"`.
//! - A oneof appears as its member: `"spec": {"kill": {...}}`, `"pick": {"count": 1}`.
//! - Maps are sorted by key; unset proto3 `optional` fields are left out.

use std::collections::{BTreeMap, HashMap};

use serde::Serializer;

/// An enum with a short lowercase name for tables and JSON.
pub trait ShortName: TryFrom<i32> {
    /// `kill`, `active`, `health-abort`...
    fn short_name(self) -> &'static str;
}

impl ShortName for crate::v1::FaultKind {
    fn short_name(self) -> &'static str {
        crate::v1::FaultKind::short_name(self)
    }
}

impl ShortName for crate::v1::FaultState {
    fn short_name(self) -> &'static str {
        crate::v1::FaultState::short_name(self)
    }
}

impl ShortName for crate::v1::EventType {
    fn short_name(self) -> &'static str {
        crate::v1::EventType::short_name(self)
    }
}

/// The short name of an enum value, or `unknown(N)` for a value this build does not know
/// (an agent newer than this client).
pub fn name_of<E: ShortName>(v: i32) -> std::borrow::Cow<'static, str> {
    match E::try_from(v) {
        Ok(e) => e.short_name().into(),
        Err(_) => format!("unknown({v})").into(),
    }
}

/// `serialize_with` for an enum field (an `i32` in the generated struct).
pub(crate) fn enum_name<E: ShortName, S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&name_of::<E>(*v))
}

/// `serialize_with` for a map field: sorted by key, so the output is stable.
pub(crate) fn sorted_map<K, V, S>(m: &HashMap<K, V>, s: S) -> Result<S::Ok, S::Error>
where
    K: serde::Serialize + Ord,
    V: serde::Serialize,
    S: Serializer,
{
    s.collect_map(m.iter().collect::<BTreeMap<_, _>>())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::{Value, json};

    use crate::v1::{Fault, FaultKind, FaultSpec, FaultState, KillSpec, Pick, fault_spec, pick};

    mod generated {
        include!(concat!(env!("OUT_DIR"), "/json_samples.rs"));
    }

    #[test]
    fn every_field_of_every_message_appears_in_its_json() {
        let want: BTreeMap<&str, BTreeSet<String>> = generated::FIELDS
            .iter()
            .map(|(m, f)| (*m, f.iter().map(|s| s.to_string()).collect()))
            .collect();
        assert!(want.len() > 30, "only {} messages", want.len());
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, v) in generated::samples() {
            let Value::Object(m) = v else {
                panic!("{name} is not a JSON object")
            };
            seen.entry(name.to_string())
                .or_default()
                .extend(m.keys().cloned());
        }
        for (msg, fields) in &want {
            let got = seen
                .get(*msg)
                .unwrap_or_else(|| panic!("no JSON sample of {msg}"));
            let missing: Vec<&String> = fields.difference(got).collect();
            assert!(
                missing.is_empty(),
                "{msg}: {missing:?} missing from its JSON"
            );
            let extra: Vec<&String> = got.difference(fields).collect();
            assert!(
                extra.is_empty(),
                "{msg}: {extra:?} in its JSON but not in the proto"
            );
        }
    }

    #[test]
    fn enums_oneofs_maps_and_optionals_read_well() {
        let f = Fault {
            id: "f-1".into(),
            kind: FaultKind::Kill as i32,
            state: FaultState::Active as i32,
            spec: Some(FaultSpec {
                kind: Some(fault_spec::Kind::Kill(KillSpec {
                    selector: Some(crate::v1::ProcessSelector {
                        name: Some("nginx".into()),
                        ..Default::default()
                    }),
                    pick: Some(Pick {
                        mode: Some(pick::Mode::Count(1)),
                    }),
                    signal: "KILL".into(),
                    every_ms: 30_000,
                })),
            }),
            labels: [("z", "1"), ("a", "2")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            duration_ms: u64::MAX,
            ..Default::default()
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "kill");
        assert_eq!(v["state"], "active");
        assert_eq!(
            v["spec"],
            json!({"kill": {"selector": {"name": "nginx"}, "pick": {"count": 1},
                            "signal": "KILL", "every_ms": 30000}})
        );
        assert_eq!(v["duration_ms"], json!(u64::MAX));
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""labels":{"a":"2","z":"1"}"#), "{text}");
        let unknown = Fault {
            kind: 99,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&unknown).unwrap()["kind"],
            "unknown(99)"
        );
        let e = crate::v1::Event {
            r#type: crate::v1::EventType::HealthAbort as i32,
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&e).unwrap()["type"], "health-abort");
    }
}
