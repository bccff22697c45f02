//! Signed drill reports: ed25519 over the exact bytes of a report file, in a detached
//! `REPORT.sig` beside it, so that changing any byte of the report breaks the signature.
//!
//! Key files (from `faultctl keygen FILE`) are one line each:
//! `faultline-ed25519-secret <base64 32-byte seed>` (FILE, mode 0600) and
//! `faultline-ed25519-public <base64 32-byte key>` (FILE.pub).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

const SECRET_TAG: &str = "faultline-ed25519-secret";
const PUBLIC_TAG: &str = "faultline-ed25519-public";

/// Signing and verification failures.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error(
        "{path} is not a {what} (expected one line \"{tag} BASE64\", as faultctl keygen writes)"
    )]
    BadKey {
        path: PathBuf,
        what: &'static str,
        tag: &'static str,
    },
    #[error("{path} is not a faultctl signature file: {reason}")]
    BadSig { path: PathBuf, reason: String },
    #[error(
        "signature check FAILED for {report}: the report was changed after it was signed, \
         or it was signed with another key"
    )]
    Mismatch { report: PathBuf },
    #[error(
        "{report} was signed by key {signed_by}, not by the trusted key {trusted}: \
         do not trust this report"
    )]
    WrongKey {
        report: PathBuf,
        signed_by: String,
        trusted: String,
    },
}

/// The detached signature of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigFile {
    pub algorithm: String,
    /// The signer's public key, base64.
    pub public_key: String,
    /// ed25519 over the file's exact bytes, base64.
    pub signature: String,
    /// The file name it signs (informational).
    pub file: String,
}

fn read(path: &Path) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|source| SignError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), SignError> {
    use std::os::unix::fs::OpenOptionsExt;
    let w = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)?;
        f.write_all(data)?;
        f.sync_all()
    };
    w().map_err(|source| SignError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn key_bytes(path: &Path, tag: &'static str, what: &'static str) -> Result<[u8; 32], SignError> {
    let text = String::from_utf8(read(path)?).unwrap_or_default();
    let bad = || SignError::BadKey {
        path: path.to_path_buf(),
        what,
        tag,
    };
    let b64 = text
        .trim()
        .strip_prefix(tag)
        .map(str::trim)
        .ok_or_else(bad)?;
    B64.decode(b64)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(bad)
}

/// Reads a secret key written by [`keygen`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey, SignError> {
    Ok(SigningKey::from_bytes(&key_bytes(
        path,
        SECRET_TAG,
        "faultctl secret key",
    )?))
}

/// Reads a public key (FILE.pub from [`keygen`]).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, SignError> {
    let b = key_bytes(path, PUBLIC_TAG, "faultctl public key")?;
    VerifyingKey::from_bytes(&b).map_err(|_| SignError::BadKey {
        path: path.to_path_buf(),
        what: "valid ed25519 public key",
        tag: PUBLIC_TAG,
    })
}

/// Makes a key pair: `file` (secret, 0600) and `file.pub`. Returns the public key.
pub fn keygen(file: &Path, force: bool) -> Result<VerifyingKey, SignError> {
    let pub_path = pub_path(file);
    for p in [file, pub_path.as_path()] {
        if !force && p.exists() {
            return Err(SignError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    let seed: [u8; 32] = rand::random();
    let sk = SigningKey::from_bytes(&seed);
    let vk = sk.verifying_key();
    write(
        file,
        format!("{SECRET_TAG} {}\n", B64.encode(sk.to_bytes())).as_bytes(),
        0o600,
    )?;
    write(
        &pub_path,
        format!("{PUBLIC_TAG} {}\n", public_key_text(&vk)).as_bytes(),
        0o644,
    )?;
    Ok(vk)
}

/// A public key as key files and `report verify` print it (base64).
pub fn public_key_text(vk: &VerifyingKey) -> String {
    B64.encode(vk.to_bytes())
}

/// Where the public key of the secret key `file` is written: `FILE.pub`.
pub fn pub_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// `REPORT.sig`.
pub fn sig_path(report: &Path) -> PathBuf {
    let mut s = report.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Signs the file at `path` as it is on disk, writing `path.sig`.
pub fn sign_file(path: &Path, key: &SigningKey) -> Result<PathBuf, SignError> {
    let data = read(path)?;
    let sig = key.sign(&data);
    let s = SigFile {
        algorithm: "ed25519".into(),
        public_key: B64.encode(key.verifying_key().to_bytes()),
        signature: B64.encode(sig.to_bytes()),
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let out = sig_path(path);
    let mut text = serde_json::to_vec_pretty(&s).expect("plain struct");
    text.push(b'\n');
    write(&out, &text, 0o644)?;
    Ok(out)
}

/// Checks `report` against its signature file. With `trusted`, the signer must be that
/// key. Returns the signer's public key (base64).
pub fn verify_file(
    report: &Path,
    sig: Option<&Path>,
    trusted: Option<&VerifyingKey>,
) -> Result<String, SignError> {
    let sig_path = sig
        .map(Path::to_path_buf)
        .unwrap_or_else(|| sig_path(report));
    let bad = |reason: &str| SignError::BadSig {
        path: sig_path.clone(),
        reason: reason.to_string(),
    };
    let s: SigFile = serde_json::from_slice(&read(&sig_path)?).map_err(|e| bad(&e.to_string()))?;
    if s.algorithm != "ed25519" {
        return Err(bad(&format!("unknown algorithm {:?}", s.algorithm)));
    }
    let pk: [u8; 32] = B64
        .decode(&s.public_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("public_key is not 32 bytes of base64"))?;
    let signer = VerifyingKey::from_bytes(&pk).map_err(|_| bad("public_key is not valid"))?;
    let sig: [u8; 64] = B64
        .decode(&s.signature)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("signature is not 64 bytes of base64"))?;
    if let Some(t) = trusted
        && t != &signer
    {
        return Err(SignError::WrongKey {
            report: report.to_path_buf(),
            signed_by: s.public_key.clone(),
            trusted: B64.encode(t.to_bytes()),
        });
    }
    let data = read(report)?;
    signer
        .verify_strict(&data, &Signature::from_bytes(&sig))
        .map_err(|_| SignError::Mismatch {
            report: report.to_path_buf(),
        })?;
    Ok(s.public_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("k");
        let vk = keygen(&key, false).unwrap();
        assert!(matches!(keygen(&key, false), Err(SignError::Exists { .. })));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sk = load_signing_key(&key).unwrap();
        assert_eq!(load_public_key(&pub_path(&key)).unwrap(), vk);
        let r = d.path().join("r.json");
        std::fs::write(&r, b"{\"outcome\":\"completed\"}\n").unwrap();
        sign_file(&r, &sk).unwrap();
        verify_file(&r, None, Some(&vk)).unwrap();
        verify_file(&r, None, None).unwrap();
        // Another trusted key is refused.
        let other = d.path().join("o");
        let ovk = keygen(&other, false).unwrap();
        assert!(matches!(
            verify_file(&r, None, Some(&ovk)),
            Err(SignError::WrongKey { .. })
        ));
        // One byte changed.
        let mut b = std::fs::read(&r).unwrap();
        b[3] ^= 1;
        std::fs::write(&r, &b).unwrap();
        let e = verify_file(&r, None, Some(&vk)).unwrap_err();
        assert!(e.to_string().starts_with("signature check FAILED"), "{e}");
        assert!(load_signing_key(&r).is_err());
    }
}
