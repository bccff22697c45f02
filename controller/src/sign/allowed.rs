//! `allowed_signers` files, read as `ssh-keygen -Y verify` reads them (ssh-keygen(1),
//! "ALLOWED SIGNERS"; git's `gpg.ssh.allowedSignersFile` is the same file):
//!
//! ```text
//! # principals [options] keytype base64-key [comment]
//! alice@example.com ssh-ed25519 AAAAC3Nza... alice's laptop
//! ops-*,!ops-intern namespaces="faultline-report@faultline",valid-before="20271231Z" ecdsa-sha2-nistp256 AAAAE2Vj...
//! ```
//!
//! - principals: a comma list of patterns (`*`, `?`; a `!pattern` that matches excludes),
//!   optionally in double quotes;
//! - options (comma list): `cert-authority`, `namespaces="PATTERNS"`,
//!   `valid-after="TIME"`, `valid-before="TIME"`, TIME being `YYYYMMDD[HHMM[SS]]` in local
//!   time, or in UTC with a `Z` or `UTC` suffix;
//! - blank lines and lines starting with `#` are ignored.
//!
//! A line allows a signature when its principals match the identity asked for (any, if
//! none was), its key is the signing key, and its options allow the namespace and the
//! time of the check. `cert-authority` lines vouch for certificates, never for a plain
//! key, as in ssh-keygen; faultctl signs with plain keys.
//!
//! One deliberate difference: faultctl parses the whole file first and refuses it if any
//! line is malformed (naming the file and line), where ssh-keygen prints the same
//! complaint on stderr, skips the line and goes on. A typo in the file that decides whom
//! to trust (perhaps in the very line meant to trust someone) is bad input, not noise.

use std::path::{Path, PathBuf};

use ssh_key::PublicKey;
use ssh_key::public::KeyData;

/// A malformed line of an allowed_signers file.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {reason}", path.display())]
pub struct LineError {
    pub path: PathBuf,
    pub line: usize,
    pub reason: String,
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// The principals field as written (comma list of patterns).
    pub principals: String,
    pub key: KeyData,
    pub cert_authority: bool,
    /// `namespaces="..."`: the signature namespaces this key may sign in.
    pub namespaces: Option<String>,
    /// Unix seconds.
    pub valid_after: Option<i64>,
    /// Unix seconds.
    pub valid_before: Option<i64>,
}

/// A parsed allowed_signers file.
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

impl AllowedSigners {
    /// Parses `text`, the content of the file at `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<AllowedSigners, LineError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |reason: String| LineError {
                path: path.to_path_buf(),
                line,
                reason,
            };
            if let Some(e) = parse_line(raw).map_err(err)? {
                entries.push(Entry { line, ..e });
            }
        }
        Ok(AllowedSigners {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The first line that allows `key` to sign in `namespace` at `now` (Unix seconds) for
    /// `identity` (any identity if None, as `ssh-keygen -Y find-principals`). On no match,
    /// why each line naming this key did not allow it (empty: the key is in no line).
    pub fn find(
        &self,
        key: &KeyData,
        identity: Option<&str>,
        namespace: &str,
        now: i64,
    ) -> Result<&Entry, Vec<String>> {
        let mut why = Vec::new();
        for e in &self.entries {
            if &e.key != key {
                continue;
            }
            let at = format!("line {}", e.line);
            if let Some(who) = identity
                && !match_pattern_list(who, &e.principals)
            {
                why.push(format!(
                    "{at} lists this key for {:?}, not for {who:?}",
                    e.principals
                ));
                continue;
            }
            if e.cert_authority {
                why.push(format!(
                    "{at} is a cert-authority line: it vouches for certificates signed by \
                     this key, not for signatures made with it"
                ));
                continue;
            }
            if let Some(ns) = &e.namespaces
                && !match_pattern_list(namespace, ns)
            {
                why.push(format!(
                    "{at} does not allow namespace {namespace:?} (namespaces=\"{ns}\")"
                ));
                continue;
            }
            if let Some(t) = e.valid_after
                && now < t
            {
                why.push(format!("{at}: the key is not valid before {}", utc(t)));
                continue;
            }
            if let Some(t) = e.valid_before
                && now > t
            {
                why.push(format!("{at}: the key expired at {}", utc(t)));
                continue;
            }
            return Ok(e);
        }
        Err(why)
    }
}

fn utc(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The key type names of OpenSSH public keys (to tell a bad key from options).
fn looks_like_key_type(token: &str) -> bool {
    !token.contains('=')
        && ["ssh-", "ecdsa-", "sk-", "rsa-"]
            .iter()
            .any(|p| token.starts_with(p))
}

/// Splits off the first whitespace-delimited token, honouring one pair of double quotes
/// around it (which are removed), like OpenSSH's `strdelimw`.
fn principals_token(s: &str) -> Result<(String, &str), String> {
    if let Some(rest) = s.strip_prefix('"') {
        let end = rest
            .find('"')
            .ok_or("the quoted principals have no closing quote")?;
        let after = &rest[end + 1..];
        if !after.is_empty() && !after.starts_with([' ', '\t']) {
            return Err("text right after the quoted principals".into());
        }
        return Ok((rest[..end].to_string(), after));
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Ok((s[..end].to_string(), &s[end..]))
}

/// The end of an options field: the first blank outside double quotes (`\"` escapes).
fn options_end(s: &str) -> Result<usize, String> {
    let b = s.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if b.get(i + 1) == Some(&b'"') => i += 1,
            b'"' => quoted = !quoted,
            b' ' | b'\t' if !quoted => return Ok(i),
            _ => {}
        }
        i += 1;
    }
    if quoted {
        return Err("unterminated quote in the options".into());
    }
    Ok(b.len())
}

fn parse_key(s: &str) -> Result<KeyData, String> {
    PublicKey::from_openssh(s.trim())
        .map(|k| k.key_data().clone())
        .map_err(|e| {
            let ty = s.split_whitespace().next().unwrap_or("");
            format!("invalid {ty} public key ({e}); expected KEYTYPE BASE64 as in a .pub file")
        })
}

/// One line: None for a blank or comment line.
fn parse_line(raw: &str) -> Result<Option<Entry>, String> {
    let s = raw.trim_start_matches([' ', '\t']).trim_end_matches('\r');
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let (principals, rest) = principals_token(s)?;
    if principals.is_empty() {
        return Err("empty principals field".into());
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    if rest.trim().is_empty() {
        return Err(format!(
            "no key after the principals {principals:?}: expected \
             PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]"
        ));
    }
    let first = rest.split([' ', '\t']).next().unwrap_or("");
    let (options, key) = if looks_like_key_type(first) {
        (None, parse_key(rest)?)
    } else {
        let end = options_end(rest)?;
        let key = rest[end..].trim_start_matches([' ', '\t']);
        if key.trim().is_empty() {
            return Err(format!(
                "no key after the options {:?}: expected \
                 PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]",
                &rest[..end]
            ));
        }
        (Some(&rest[..end]), parse_key(key)?)
    };
    let mut e = Entry {
        line: 0,
        principals,
        key,
        cert_authority: false,
        namespaces: None,
        valid_after: None,
        valid_before: None,
    };
    if let Some(o) = options {
        parse_options(o, &mut e)?;
    }
    Ok(Some(e))
}

/// `opt,opt,...` as OpenSSH's `sshsigopt_parse` reads it.
fn parse_options(mut o: &str, e: &mut Entry) -> Result<(), String> {
    fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
        (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
            .then(|| &s[prefix.len()..])
    }
    loop {
        if let Some(r) = strip_ci(o, "cert-authority")
            && (r.is_empty() || r.starts_with(','))
        {
            e.cert_authority = true;
            o = r;
        } else if let Some((name, r)) = ["namespaces=", "valid-after=", "valid-before="]
            .iter()
            .find_map(|n| strip_ci(o, n).map(|r| (*n, r)))
        {
            let (value, r) = dequote(r, name)?;
            o = r;
            let name = name.trim_end_matches('=');
            let dup = || format!("{name} is given twice");
            match name {
                "namespaces" => {
                    if e.namespaces.replace(value).is_some() {
                        return Err(dup());
                    }
                }
                _ => {
                    let t = parse_time(&value).map_err(|why| {
                        format!("invalid {name}=\"{value}\": {why} (expected YYYYMMDD[HHMM[SS]], with Z or UTC for UTC)")
                    })?;
                    let slot = if name == "valid-after" {
                        &mut e.valid_after
                    } else {
                        &mut e.valid_before
                    };
                    if slot.replace(t).is_some() {
                        return Err(dup());
                    }
                }
            }
        } else {
            let name = o.split([',', '=']).next().unwrap_or(o);
            return Err(format!(
                "unknown option {name:?} (allowed: cert-authority, namespaces=\"...\", \
                 valid-after=\"...\", valid-before=\"...\")"
            ));
        }
        match o.strip_prefix(',') {
            None if o.is_empty() => break,
            None => {
                return Err(format!(
                    "unexpected {o:?} in the options (expected a comma)"
                ));
            }
            Some("") => return Err("the options end with a comma".into()),
            Some(r) => o = r,
        }
    }
    if let (Some(a), Some(b)) = (e.valid_after, e.valid_before)
        && b <= a
    {
        return Err("valid-before is not after valid-after".into());
    }
    Ok(())
}

/// `"value"` at the start of `s` (with `\"` escapes): the value and what follows it.
fn dequote<'a>(s: &'a str, name: &str) -> Result<(String, &'a str), String> {
    let Some(body) = s.strip_prefix('"') else {
        return Err(format!("{name} needs a quoted value: {name}\"...\""));
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if body[i + 1..].starts_with('"') => {
                out.push('"');
                chars.next();
            }
            '"' => return Ok((out, &body[i + 1..])),
            c => out.push(c),
        }
    }
    Err(format!("{name} has no closing quote"))
}

/// `YYYYMMDD[HHMM[SS]]`, local time, or UTC with a `Z`/`UTC` suffix (OpenSSH's
/// `parse_absolute_time`): Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let (digits, utc) = if let Some(d) = s.strip_suffix(['Z', 'z']) {
        (d, true)
    } else if s.len() > 3 && s[s.len() - 3..].eq_ignore_ascii_case("UTC") {
        (&s[..s.len() - 3], true)
    } else {
        (s, false)
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not 8, 12 or 14 digits".into());
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).map_or(0, |d| d.parse::<i32>().unwrap());
    let dt = jiff::civil::DateTime::new(
        n(0..4) as i16,
        n(4..6) as i8,
        n(6..8) as i8,
        n(8..10) as i8,
        n(10..12) as i8,
        n(12..14) as i8,
        0,
    )
    .map_err(|e| e.to_string())?;
    let tz = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    let t = tz.to_timestamp(dt).map_err(|e| e.to_string())?.as_second();
    if t <= 0 {
        return Err("before 1970".into());
    }
    Ok(t)
}

/// OpenSSH's `match_pattern_list`: true if `s` matches one of the comma-separated
/// patterns and none of the negated (`!pattern`) ones.
pub fn match_pattern_list(s: &str, list: &str) -> bool {
    let mut positive = false;
    for p in list.split(',') {
        match p.strip_prefix('!') {
            Some(neg) if match_pattern(s, neg) => return false,
            Some(_) => {}
            None if match_pattern(s, p) => positive = true,
            None => {}
        }
    }
    positive
}

/// A glob: `*` matches any run of characters, `?` one character.
pub fn match_pattern(s: &str, p: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), p.chars().collect());
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            si += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    fn parse(text: &str) -> Result<AllowedSigners, LineError> {
        AllowedSigners::parse(Path::new("/etc/allowed_signers"), text)
    }

    fn key() -> KeyData {
        PublicKey::from_openssh(ED).unwrap().key_data().clone()
    }

    #[test]
    fn patterns_match_like_openssh() {
        assert!(match_pattern("alice@example.com", "*@example.com"));
        assert!(match_pattern("ab", "a?"));
        assert!(!match_pattern("abc", "a?"));
        assert!(match_pattern("", "*"));
        assert!(match_pattern("a*b", "a*b"));
        assert!(match_pattern("axxbxxb", "a*b"));
        assert!(!match_pattern("axxbxxc", "a*b"));
        assert!(match_pattern_list("ops-bob", "ops-*,!ops-intern"));
        assert!(!match_pattern_list("ops-intern", "ops-*,!ops-intern"));
        assert!(!match_pattern_list("ops-intern", "!ops-intern"));
        assert!(!match_pattern_list("dev", "ops-*"));
    }

    #[test]
    fn parses_lines_options_and_comments() {
        let f = parse(&format!(
            "# trusted drill signers\n\n   \n\
             alice@example.com {ED} alice laptop\n\
             \"bob@x,carol@x\" namespaces=\"faultline-report@faultline,git\",valid-after=\"20200101Z\",valid-before=\"20991231235959UTC\" {ED}\n\
             ca@x cert-authority {ED}\r\n"
        ))
        .unwrap();
        assert_eq!(f.entries.len(), 3);
        let a = &f.entries[0];
        assert_eq!((a.line, a.principals.as_str()), (4, "alice@example.com"));
        assert!(!a.cert_authority && a.namespaces.is_none());
        let b = &f.entries[1];
        assert_eq!(b.principals, "bob@x,carol@x");
        assert_eq!(
            b.namespaces.as_deref(),
            Some("faultline-report@faultline,git")
        );
        assert_eq!(b.valid_after, Some(1_577_836_800));
        assert_eq!(b.valid_before, Some(4_102_444_799));
        assert!(f.entries[2].cert_authority);
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let cases = [
            ("alice\n", "no key after the principals"),
            (
                "alice ssh-ed25519 AAAAnotbase64!\n",
                "invalid ssh-ed25519 public key",
            ),
            ("alice bogus=\"x\" ", "no key after the options"),
            (
                &format!("alice bogus=\"x\" {ED}"),
                "unknown option \"bogus\"",
            ),
            (
                &format!("alice namespaces=git {ED}"),
                "needs a quoted value",
            ),
            (
                &format!("alice namespaces=\"git {ED}"),
                "unterminated quote",
            ),
            (
                &format!("alice valid-after=\"2020\" {ED}"),
                "invalid valid-after=\"2020\": not 8, 12 or 14 digits",
            ),
            (
                &format!("alice valid-after=\"20201340Z\" {ED}"),
                "invalid valid-after",
            ),
            (
                &format!("alice valid-after=\"20250101Z\",valid-before=\"20240101Z\" {ED}"),
                "valid-before is not after valid-after",
            ),
            (
                &format!("alice namespaces=\"a\",namespaces=\"b\" {ED}"),
                "namespaces is given twice",
            ),
            (&format!("alice cert-authority, {ED}"), "end with a comma"),
            (&format!("\"alice {ED}"), "no closing quote"),
        ];
        for (line, want) in cases {
            let text = format!("# ok\nalice@x {ED}\n");
            // The malformed line is line 3, after a comment and a (principal-only) line.
            let text = format!("{text}{line}");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, 3, "{line}: {e}");
            let msg = e.to_string();
            assert!(msg.starts_with("/etc/allowed_signers:3: "), "{msg}");
            assert!(msg.contains(want), "{line:?}: {msg}");
        }
    }

    #[test]
    fn find_checks_identity_namespace_time_and_cert_authority() {
        let ns = "faultline-report@faultline";
        let f = parse(&format!(
            "ca@x cert-authority {ED}\n\
             git@x namespaces=\"git\" {ED}\n\
             old@x valid-before=\"20200101Z\" {ED}\n\
             ops-*,!ops-intern {ED}\n"
        ))
        .unwrap();
        let k = key();
        let now = 1_800_000_000;
        assert_eq!(f.find(&k, Some("ops-alice"), ns, now).unwrap().line, 4);
        assert_eq!(f.find(&k, None, ns, now).unwrap().line, 4);
        let why = f.find(&k, Some("ops-intern"), ns, now).unwrap_err();
        assert_eq!(why.len(), 4, "{why:?}");
        assert!(why[3].contains("not for \"ops-intern\""), "{why:?}");
        let why = f.find(&k, Some("git@x"), ns, now).unwrap_err();
        assert!(why[1].contains("does not allow namespace"), "{why:?}");
        let why = f.find(&k, Some("old@x"), ns, now).unwrap_err();
        assert!(
            why[2].contains("expired at 2020-01-01T00:00:00Z"),
            "{why:?}"
        );
        let why = f.find(&k, Some("ca@x"), ns, now).unwrap_err();
        assert!(why[0].contains("cert-authority"), "{why:?}");
        assert_eq!(f.find(&k, Some("git@x"), "git", now).unwrap().line, 2);
        let other = PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJVE2YPTRGtyb5Dy64o1EqQUvFfrfIjsTUsxKXYiSOPP",
        )
        .unwrap();
        assert!(
            f.find(other.key_data(), None, ns, now)
                .unwrap_err()
                .is_empty()
        );
    }
}
