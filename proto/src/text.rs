//! Caller text echoed back bounded (audit summaries, error messages): cut at a byte
//! limit, always on a character boundary. `String::truncate` panics when the limit lands
//! inside a multi-byte character; these never do.

/// The longest prefix of `s` that is at most `max` bytes and ends on a character
/// boundary.
pub fn prefix(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

/// `s` cut to at most `max` bytes on a character boundary (an owned copy).
pub fn bounded(s: &str, max: usize) -> String {
    prefix(s, max).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_char_boundary_at_every_offset() {
        // 1-, 2-, 3- and 4-byte characters, so every limit lands once inside each.
        let s = "aé€😀b".repeat(5);
        for max in 0..=s.len() + 2 {
            let p = prefix(&s, max);
            assert!(p.len() <= max, "{max}: {p:?}");
            assert!(s.starts_with(p));
            // The longest such prefix: one more character would not fit.
            let next = s[p.len()..].chars().next().map_or(0, char::len_utf8);
            assert!(p.len() == s.len() || p.len() + next > max, "{max}: {p:?}");
            assert_eq!(bounded(&s, max), p);
        }
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(prefix("", 0), "");
    }
}
