//! The signatures faultctl made before SSHSIG, kept verifiable (read-only): ed25519 over
//! the exact bytes of a file, in a JSON `FILE.sig`
//! (`{"algorithm": "ed25519", "public_key": B64, "signature": B64, "file": NAME}`), with
//! key files of one line, `faultline-ed25519-secret B64` and `faultline-ed25519-public B64`.
//!
//! Nothing signs in this format any more. An old key is the same ed25519 key as an
//! `ssh-ed25519` one, so it has the same fingerprint and matches an allowed_signers line
//! holding that key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;
use ssh_key::public::{Ed25519PublicKey, KeyData};

pub const SECRET_TAG: &str = "faultline-ed25519-secret";
pub const PUBLIC_TAG: &str = "faultline-ed25519-public";

/// An old signature file.
#[derive(Debug, Clone)]
pub struct LegacySig {
    pub key: VerifyingKey,
    pub signature: Signature,
}

#[derive(Deserialize)]
struct SigFile {
    algorithm: String,
    public_key: String,
    signature: String,
}

/// Whether `bytes` look like an old signature file (JSON rather than an armored SSHSIG).
pub fn is_legacy_sig(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"{")
}

/// Parses an old signature file; Err is the reason it is not one.
pub fn parse_sig(bytes: &[u8]) -> Result<LegacySig, String> {
    let s: SigFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if s.algorithm != "ed25519" {
        return Err(format!("unknown algorithm {:?}", s.algorithm));
    }
    let pk: [u8; 32] = B64
        .decode(&s.public_key)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("public_key is not 32 bytes of base64")?;
    let key = VerifyingKey::from_bytes(&pk).map_err(|_| "public_key is not valid")?;
    let sig: [u8; 64] = B64
        .decode(&s.signature)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or("signature is not 64 bytes of base64")?;
    Ok(LegacySig {
        key,
        signature: Signature::from_bytes(&sig),
    })
}

impl LegacySig {
    /// Whether the signature holds over `data`.
    pub fn verify(&self, data: &[u8]) -> bool {
        self.key.verify_strict(data, &self.signature).is_ok()
    }
}

/// The SSH form of an old key.
pub fn key_data(key: &VerifyingKey) -> KeyData {
    KeyData::Ed25519(Ed25519PublicKey(key.to_bytes()))
}

/// An old public key file's key, if `text` is one.
pub fn parse_public(text: &str) -> Option<VerifyingKey> {
    let b: [u8; 32] = B64
        .decode(text.trim().strip_prefix(PUBLIC_TAG)?.trim())
        .ok()?
        .try_into()
        .ok()?;
    VerifyingKey::from_bytes(&b).ok()
}

/// Whether `text` is an old secret key file.
pub fn is_secret(text: &str) -> bool {
    text.trim_start().starts_with(SECRET_TAG)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    /// Writes what the old `faultctl keygen` and `run --sign-key` wrote: `dir/k`,
    /// `dir/k.pub`, and `file.sig` for `file`. Returns the key.
    pub fn old_sign(dir: &std::path::Path, file: &std::path::Path) -> VerifyingKey {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let vk = sk.verifying_key();
        std::fs::write(
            dir.join("k"),
            format!("{SECRET_TAG} {}\n", B64.encode(sk.to_bytes())),
        )
        .unwrap();
        std::fs::write(
            dir.join("k.pub"),
            format!("{PUBLIC_TAG} {}\n", B64.encode(vk.to_bytes())),
        )
        .unwrap();
        let sig = sk.sign(&std::fs::read(file).unwrap());
        let json = serde_json::json!({
            "algorithm": "ed25519",
            "public_key": B64.encode(vk.to_bytes()),
            "signature": B64.encode(sig.to_bytes()),
            "file": file.file_name().unwrap().to_string_lossy(),
        });
        let mut sig_path = file.as_os_str().to_owned();
        sig_path.push(".sig");
        std::fs::write(sig_path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        vk
    }

    #[test]
    fn old_files_parse_and_verify() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r.json");
        std::fs::write(&f, b"{\"outcome\":\"completed\"}\n").unwrap();
        let vk = old_sign(d.path(), &f);
        let sig = std::fs::read(d.path().join("r.json.sig")).unwrap();
        assert!(is_legacy_sig(&sig));
        let s = parse_sig(&sig).unwrap();
        assert_eq!(s.key, vk);
        assert!(s.verify(&std::fs::read(&f).unwrap()));
        assert!(!s.verify(b"{\"outcome\":\"completeD\"}\n"));
        let pubtext = std::fs::read_to_string(d.path().join("k.pub")).unwrap();
        assert_eq!(parse_public(&pubtext), Some(vk));
        assert!(is_secret(
            &std::fs::read_to_string(d.path().join("k")).unwrap()
        ));
        assert!(
            parse_sig(b"{\"algorithm\":\"rsa\",\"public_key\":\"\",\"signature\":\"\"}")
                .unwrap_err()
                .contains("unknown algorithm")
        );
    }
}
