//! A container id as a person gives it: the full id, a prefix of at least
//! [`MIN_PREFIX`] hex digits, optionally with the `RUNTIME://` scheme Kubernetes puts in
//! front (`containerd://...`, `cri-o://...`, `docker://...`).

use std::fmt;

/// The shortest prefix accepted: what `docker ps` and `podman ps` show.
pub const MIN_PREFIX: usize = 12;
/// A full id's length.
pub const FULL_LEN: usize = 64;

/// A validated id or id prefix: 12 to 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerQuery(String);

/// Why a container id was refused; the text names the field the caller sent it in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct BadContainerId {
    pub why: String,
}

impl ContainerQuery {
    /// Parses `containerd://75bd73545e70...`, `75bd73545e70` or `75BD73545E70`.
    pub fn parse(text: &str) -> Result<ContainerQuery, BadContainerId> {
        let t = text.trim();
        let id = match t.split_once("://") {
            Some((scheme, rest)) => {
                if scheme.is_empty()
                    || !scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(bad(format!(
                        "{:?} has a malformed runtime scheme {scheme:?}; give the id as `kubectl get pod` shows it (containerd://ID) or just the hex id",
                        clip(t)
                    )));
                }
                rest
            }
            None => t,
        };
        if id.is_empty() {
            return Err(bad(format!(
                "the id is empty; give at least {MIN_PREFIX} hex digits of it (`docker ps`, `podman ps`, `crictl ps` show them)"
            )));
        }
        if let Some(c) = id.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(bad(format!(
                "{:?} is not a container id: {c:?} is not a hex digit (container ids are 64 hex digits; a name is not accepted)",
                clip(id)
            )));
        }
        if id.len() < MIN_PREFIX {
            return Err(bad(format!(
                "{id:?} is {} hex digits; give at least {MIN_PREFIX} (what `docker ps` shows) so that it names one container",
                id.len()
            )));
        }
        if id.len() > FULL_LEN {
            return Err(bad(format!(
                "{}... is {} hex digits; a container id has {FULL_LEN}",
                &id[..16],
                id.len()
            )));
        }
        Ok(ContainerQuery(id.to_ascii_lowercase()))
    }

    /// The hex digits (lowercase).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the full id `id` starts with this prefix.
    pub fn matches(&self, id: &str) -> bool {
        id.starts_with(&self.0)
    }
}

/// At most 80 characters of caller text, cut at a character boundary.
fn clip(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn bad(why: String) -> BadContainerId {
    BadContainerId { why }
}

impl fmt::Display for ContainerQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "75bd73545e7023a79a68ca9c3590f63ef1397b86ab461edfab5e0a8456d68212";

    #[test]
    fn accepts_ids_prefixes_and_kubernetes_ids() {
        for (text, want) in [
            (ID.to_string(), ID),
            (format!("containerd://{ID}"), ID),
            (format!("cri-o://{ID}"), ID),
            (format!(" docker://{} ", ID.to_uppercase()), ID),
            ("75bd73545e70".into(), "75bd73545e70"),
        ] {
            assert_eq!(ContainerQuery::parse(&text).unwrap().as_str(), want);
        }
        let q = ContainerQuery::parse("75bd73545e70").unwrap();
        assert!(q.matches(ID));
        assert!(!q.matches("75bd73545e71"));
    }

    #[test]
    fn refusals_say_why_word_for_word() {
        let e = |t: &str| ContainerQuery::parse(t).unwrap_err().to_string();
        assert_eq!(
            e("75bd7354"),
            "\"75bd7354\" is 8 hex digits; give at least 12 (what `docker ps` shows) so that it names one container"
        );
        assert_eq!(
            e("my-nginx"),
            "\"my-nginx\" is not a container id: 'm' is not a hex digit (container ids are 64 hex digits; a name is not accepted)"
        );
        assert_eq!(
            e(""),
            "the id is empty; give at least 12 hex digits of it (`docker ps`, `podman ps`, `crictl ps` show them)"
        );
        assert_eq!(
            e("containerd://"),
            "the id is empty; give at least 12 hex digits of it (`docker ps`, `podman ps`, `crictl ps` show them)"
        );
        assert_eq!(
            e(&format!("{ID}0")),
            "75bd73545e7023a7... is 65 hex digits; a container id has 64"
        );
        assert!(e("a b://75bd73545e70").contains("malformed runtime scheme"));
    }
}
