//! Why a request was refused before anything was sent. Errors name the request's fields
//! by their domain name (the scenario document's key); each edge renders them with its
//! own names ([`RequestError::message`]): the CLI with its flags, a scenario with its keys.

/// A field of a request, by its domain name: `delay`, `loss_gemodel`, `duration`.
pub type Field = &'static str;

/// Input refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// A value that does not parse, or is out of range.
    Invalid { field: Field, reason: String },
    /// A label that is not `KEY=VALUE` with a non-empty key.
    BadLabel { field: Field, text: String },
    /// The same label key twice.
    DuplicateLabel { field: Field, text: String },
    /// Fields of which at most one may be given.
    Exclusive { fields: Vec<Field> },
    /// None of the required combinations was given: one of these groups, all of a group.
    Missing { any_of: &'static [&'static [Field]] },
    /// Fields this kind does not take.
    NotTaken {
        kind: &'static str,
        fields: Vec<Field>,
    },
    /// Not exactly one fault kind.
    Kinds { given: usize },
}

impl RequestError {
    /// A refusal of `field`'s value.
    pub fn invalid(field: Field, reason: impl Into<String>) -> RequestError {
        RequestError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The message, with each field named by `name` (an edge's own name for it).
    pub fn message(&self, name: &dyn Fn(Field) -> String) -> String {
        let list = |fields: &[Field], sep: &str| {
            fields.iter().map(|f| name(f)).collect::<Vec<_>>().join(sep)
        };
        match self {
            RequestError::Invalid { field, reason } => format!("invalid {}: {reason}", name(field)),
            RequestError::BadLabel { field, text } => format!(
                "invalid {} {text:?}: expected KEY=VALUE with a non-empty key",
                name(field)
            ),
            RequestError::DuplicateLabel { field, text } => {
                format!("invalid {} {text:?}: the key is given twice", name(field))
            }
            RequestError::Exclusive { fields } => format!("give one of {}", list(fields, ", ")),
            RequestError::Missing { any_of } => format!(
                "give {}",
                any_of
                    .iter()
                    .map(|g| list(g, " with "))
                    .collect::<Vec<_>>()
                    .join(", or ")
            ),
            RequestError::NotTaken { kind, fields } => {
                format!("{kind} takes no {}", list(fields, " or "))
            }
            RequestError::Kinds { given } => format!(
                "give exactly one fault kind ({}), got {given}",
                super::KINDS.join(", ")
            ),
        }
    }
}

/// The fields by their domain names (as a scenario document writes them).
impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(&|field| field.to_string()))
    }
}

impl std::error::Error for RequestError {}

/// At most one of `given` (pairs of field and whether it was given).
pub(crate) fn at_most_one(given: &[(Field, bool)]) -> Result<(), RequestError> {
    if given.iter().filter(|(_, g)| *g).count() > 1 {
        return Err(RequestError::Exclusive {
            fields: given.iter().map(|(f, _)| *f).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_edge_names_its_own_fields() {
        let flag = |f: Field| format!("--{}", f.replace('_', "-"));
        let e = RequestError::invalid("delay_correlation", "\"x\" is not a percentage");
        assert_eq!(
            e.message(&flag),
            "invalid --delay-correlation: \"x\" is not a percentage"
        );
        assert_eq!(
            e.to_string(),
            "invalid delay_correlation: \"x\" is not a percentage"
        );
        let e = RequestError::Missing {
            any_of: &[&["percent"], &["cores", "load"]],
        };
        assert_eq!(e.message(&flag), "give --percent, or --cores with --load");
        assert_eq!(e.to_string(), "give percent, or cores with load");
        assert_eq!(
            at_most_one(&[("all", true), ("count", true), ("percent", false)])
                .unwrap_err()
                .to_string(),
            "give one of all, count, percent"
        );
    }
}
