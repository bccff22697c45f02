//! Signed drill reports: SSH signatures (SSHSIG, the format of `ssh-keygen -Y sign`, which
//! git uses for signed commits) over the exact bytes of each report file, in an armored
//! `FILE.sig` beside it, in the namespace [`NAMESPACE`]. Anyone can check one without
//! faultctl:
//!
//! ```text
//! ssh-keygen -Y verify -f allowed_signers -I WHO -n faultline-report@faultline -s REPORT.sig < REPORT
//! ```
//!
//! - signing ([`ReportSigner`]): an OpenSSH private key file (ed25519, ECDSA P-256/384/521,
//!   RSA), or any key held by ssh-agent ([`agent`]); signatures come from RustCrypto's
//!   `ssh-key`. [`keygen`] writes an OpenSSH ed25519 key.
//! - verifying ([`verify`], [`verify_report`]): against a git-style allowed_signers file
//!   ([`allowed`]), one trusted public key, or (integrity only) the key in the signature.
//! - [`legacy`]: the `faultline-ed25519-*` signatures of older faultctl still verify;
//!   nothing makes new ones.
//!
//! For tools: [`verify_report`] says who signed a report ([`Signer`]); a signed report's
//! JSON records who signed it in `signed_by` ([`SignerInfo`]).

pub mod agent;
pub mod allowed;
pub mod legacy;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

pub use agent::{Agent, AgentError};
pub use allowed::{AllowedSigners, LineError};

/// The SSHSIG namespace of faultline reports (`ssh-keygen -Y ... -n`).
pub const NAMESPACE: &str = "faultline-report@faultline";

/// The message hash, as `ssh-keygen -Y sign` uses by default.
const HASH: HashAlg = HashAlg::Sha512;

/// Who signed a report, as the report's JSON records it (`signed_by`). Written by the
/// signer: the signature proves it has not changed since, and an allowed_signers file
/// says whether to believe it ([`verify_report`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerInfo {
    /// Who the signer said they are: `--sign-identity`, else the key's comment (often
    /// user@host or an email), else the fingerprint.
    pub identity: String,
    /// The key's fingerprint as `ssh-keygen -l` prints it: `SHA256:...`.
    pub fingerprint: String,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...
    pub key_type: String,
}

/// The format of a signature file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigFormat {
    /// An armored SSH signature (`-----BEGIN SSH SIGNATURE-----`).
    Sshsig,
    /// The JSON signature of older faultctl ([`legacy`]).
    FaultlineEd25519,
}

/// What a successful check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The identity the trust source vouches for: the `--identity` asked for, else the
    /// principals of the allowed_signers line that matched (`ssh-keygen -Y
    /// find-principals`), the comment of a `--public-key`, or "" when nothing vouched.
    pub identity: String,
    pub fingerprint: String,
    pub key_type: String,
    pub format: SigFormat,
    /// What vouched for the key: `FILE:LINE` of the allowed_signers line, or the trusted
    /// public key file. None: the signature is intact, but nothing says whose key it is.
    pub trusted_by: Option<String>,
    /// What the report's JSON says about its signer (`signed_by`), if it says.
    pub claimed: Option<SignerInfo>,
}

impl Signer {
    /// The claimed signer, when it is not the key that signed: someone re-signed the
    /// report (the signature is good, the record inside names another key).
    pub fn claim_mismatch(&self) -> Option<&SignerInfo> {
        self.claimed
            .as_ref()
            .filter(|c| c.fingerprint != self.fingerprint)
    }
}

/// Why a report could not be signed, or a key not made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read key {}: {source}", path.display())]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error(
        "{path} is protected by a passphrase, and faultctl does not ask for passphrases: \
         load it into ssh-agent (`ssh-add {path}`) and sign through the agent with \
         --sign-agent --sign-key {path}.pub",
        path = path.display()
    )]
    Encrypted { path: PathBuf },
    #[error(
        "{} is an old faultline-ed25519 key: faultctl now signs with OpenSSH keys only; \
         make one with `faultctl keygen FILE` or `ssh-keygen -t ed25519` (old reports still \
         verify with report verify --public-key OLD.pub)",
        path.display()
    )]
    LegacyKey { path: PathBuf },
    #[error("{} is not an OpenSSH private key: {reason}", path.display())]
    NotPrivateKey { path: PathBuf, reason: String },
    #[error("{} is not an OpenSSH public key: {reason}", path.display())]
    NotPublicKey { path: PathBuf, reason: String },
    #[error(
        "{what} is a {key_type} key, which faultctl cannot sign with: use an ssh-ed25519, \
         ecdsa-sha2-nistp256/384/521 or ssh-rsa key (ssh-keygen -t ed25519)"
    )]
    Unsupported { what: String, key_type: String },
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(
        "the ssh-agent at {} does not hold {wanted} ({}): add it with `ssh-add KEY`",
        socket.display(),
        if held.is_empty() { "it holds no keys".to_string() } else { format!("it holds {}", held.join(", ")) }
    )]
    NotInAgent {
        socket: PathBuf,
        wanted: String,
        held: Vec<String>,
    },
    #[error(
        "the ssh-agent at {} holds {} keys ({}): choose one with --sign-key FILE.pub",
        socket.display(),
        held.len(),
        held.join(", ")
    )]
    AgentAmbiguous { socket: PathBuf, held: Vec<String> },
    #[error("signing with {what} failed: {reason}")]
    Sign { what: String, reason: String },
}

impl SignError {
    /// Whether the error is in what the user gave (a key file, a flag), not in the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            SignError::Exists { .. }
                | SignError::ReadKey { .. }
                | SignError::Encrypted { .. }
                | SignError::LegacyKey { .. }
                | SignError::NotPrivateKey { .. }
                | SignError::NotPublicKey { .. }
                | SignError::Unsupported { .. }
                | SignError::NotInAgent { .. }
                | SignError::AgentAmbiguous { .. }
                | SignError::Agent(AgentError::NoSocket)
        )
    }
}

/// Why a report did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not signed: there is no {}", report.display(), sig.display())]
    Unsigned { report: PathBuf, sig: PathBuf },
    #[error("malformed allowed_signers file {0}")]
    AllowedSigners(#[from] LineError),
    #[error("{} is not a public key (an OpenSSH .pub or an old faultline-ed25519-public file): {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{} is not a signature file: {reason}", path.display())]
    BadSig { path: PathBuf, reason: String },
    #[error(
        "{} is a signature in namespace {found:?}, not {NAMESPACE:?}: it was not made for a faultline report",
        sig.display()
    )]
    WrongNamespace { sig: PathBuf, found: String },
    #[error("{} cannot be checked: {reason}", sig.display())]
    Unsupported { sig: PathBuf, reason: String },
    #[error(
        "signature check FAILED for {}: the report was changed after it was signed, or the \
         signature is not for it",
        report.display()
    )]
    Mismatch { report: PathBuf },
    /// A good signature by a key the allowed_signers file does not allow.
    #[error(transparent)]
    NotAllowed(Box<NotAllowed>),
    #[error(
        "{} was signed by key {signed_by}, not by the trusted key {trusted}: do not trust this report",
        report.display()
    )]
    WrongKey {
        report: PathBuf,
        signed_by: String,
        trusted: String,
    },
}

/// A good signature by a key the allowed_signers file does not allow (or not for the
/// identity asked for).
#[derive(Debug, thiserror::Error)]
#[error(
    "{} was signed by {key_type} key {fingerprint}, which {} does not allow{}: {}; do not \
     trust this report (if you trust the key, add a line \
     `PRINCIPAL namespaces=\"{NAMESPACE}\" {key}` to the file)",
    report.display(),
    file.display(),
    identity.as_ref().map(|i| format!(" for {i:?}")).unwrap_or_default(),
    if why.is_empty() { "the key is on no line".to_string() } else { why.join("; ") }
)]
pub struct NotAllowed {
    pub report: PathBuf,
    /// `TYPE BASE64`.
    pub key: String,
    pub key_type: String,
    pub fingerprint: String,
    pub file: PathBuf,
    pub identity: Option<String>,
    pub why: Vec<String>,
}

impl VerifyError {
    /// Whether the error is in what the user gave (a malformed file), rather than a
    /// report that does not verify.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            VerifyError::AllowedSigners(_) | VerifyError::BadKey { .. }
        )
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|source| SignError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_key(path: &Path) -> Result<Vec<u8>, SignError> {
    std::fs::read(path).map_err(|source| SignError::ReadKey {
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

/// `FILE.pub`.
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

/// `SHA256:...`.
pub fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn key_type(key: &KeyData) -> String {
    key.algorithm().as_str().to_string()
}

/// A public key from `path`: an OpenSSH `.pub` line, the public half of an OpenSSH
/// private key file (readable even when the key is encrypted), or an old
/// `faultline-ed25519-public` file. Err is the reason it is none of them.
pub fn load_public_key(path: &Path) -> Result<PublicKey, SignError> {
    let bad = |reason: String| SignError::NotPublicKey {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_key(path)?;
    let text = String::from_utf8_lossy(&bytes);
    if let Some(vk) = legacy::parse_public(&text) {
        return Ok(PublicKey::new(legacy::key_data(&vk), ""));
    }
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return PrivateKey::from_openssh(&*bytes)
            .map(|k| k.public_key().clone())
            .map_err(|e| bad(e.to_string()));
    }
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| bad("the file is empty".into()))?;
    PublicKey::from_openssh(line).map_err(|e| {
        bad(format!(
            "{e}; expected one line KEYTYPE BASE64 [COMMENT], as ssh-keygen writes to FILE.pub"
        ))
    })
}

/// Reads an unencrypted OpenSSH private key, with clear errors for the keys faultctl
/// cannot use (encrypted, old faultline keys, PEM keys, public keys).
pub fn load_private_key(path: &Path) -> Result<PrivateKey, SignError> {
    let bytes = read_key(path)?;
    let text = String::from_utf8_lossy(&bytes);
    if legacy::is_secret(&text) {
        return Err(SignError::LegacyKey {
            path: path.to_path_buf(),
        });
    }
    let bad = |reason: String| SignError::NotPrivateKey {
        path: path.to_path_buf(),
        reason,
    };
    let key = match PrivateKey::from_openssh(&*bytes) {
        Ok(k) => k,
        Err(e) if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") => {
            return Err(bad(e.to_string()));
        }
        Err(_) if text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----") => {
            return Err(bad(format!(
                "it is a PEM key; rewrite it in the OpenSSH format with `ssh-keygen -p -f {}`",
                path.display()
            )));
        }
        Err(_) if PublicKey::from_openssh(text.trim()).is_ok() => {
            return Err(bad(
                "it is a public key: --sign-key takes the private key, or, with --sign-agent, \
                 the public key of a key the agent holds"
                    .into(),
            ));
        }
        Err(e) => {
            return Err(bad(format!(
                "{e} (expected -----BEGIN OPENSSH PRIVATE KEY-----, as ssh-keygen writes)"
            )));
        }
    };
    if key.is_encrypted() {
        return Err(SignError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    Ok(key)
}

enum Key {
    File(Box<PrivateKey>),
    Agent { agent: Agent, key: KeyData },
}

/// Signs report files: a private key from a file, or a key held by ssh-agent.
pub struct ReportSigner {
    key: Key,
    what: String,
    info: SignerInfo,
}

impl std::fmt::Debug for ReportSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSigner")
            .field("key", &self.what)
            .field("info", &self.info)
            .finish()
    }
}

fn info(key: &KeyData, comment: &str, identity: Option<&str>) -> SignerInfo {
    let fingerprint = fingerprint(key);
    SignerInfo {
        identity: identity
            .map(str::to_string)
            .or_else(|| (!comment.trim().is_empty()).then(|| comment.trim().to_string()))
            .unwrap_or_else(|| fingerprint.clone()),
        fingerprint,
        key_type: key_type(key),
    }
}

impl ReportSigner {
    /// What `faultctl run --sign-key FILE [--sign-agent] [--sign-identity WHO]` signs
    /// with: the private key in `key`, or with `agent` the ssh-agent of `SSH_AUTH_SOCK`
    /// and its key whose public key is in `key` (its only key if `key` is None).
    pub fn open(
        key: Option<&Path>,
        agent: bool,
        identity: Option<&str>,
    ) -> Result<ReportSigner, SignError> {
        match (agent, key) {
            (true, key) => ReportSigner::from_agent(Agent::from_env()?, key, identity),
            (false, Some(key)) => ReportSigner::from_file(key, identity),
            (false, None) => Err(SignError::NotPrivateKey {
                path: PathBuf::new(),
                reason: "no key given: pass --sign-key FILE or --sign-agent".into(),
            }),
        }
    }

    /// A private key file. Checks now that it can sign (a test signature), so that a
    /// drill does not run to its end only to fail at signing.
    pub fn from_file(path: &Path, identity: Option<&str>) -> Result<ReportSigner, SignError> {
        let key = load_private_key(path)?;
        let what = path.display().to_string();
        if let Err(e) = SshSig::sign(&key, NAMESPACE, HASH, b"faultctl signing check") {
            return Err(match e {
                ssh_key::Error::AlgorithmUnsupported { algorithm } => SignError::Unsupported {
                    what,
                    key_type: algorithm.to_string(),
                },
                e => SignError::Sign {
                    what,
                    reason: e.to_string(),
                },
            });
        }
        let info = info(
            key.public_key().key_data(),
            key.comment().as_str_lossy(),
            identity,
        );
        Ok(ReportSigner {
            key: Key::File(Box::new(key)),
            what,
            info,
        })
    }

    /// A key held by `agent`: the one whose public key is in `public_key` (a `.pub`, or
    /// the private key file itself), or the agent's only key.
    pub fn from_agent(
        agent: Agent,
        public_key: Option<&Path>,
        identity: Option<&str>,
    ) -> Result<ReportSigner, SignError> {
        let held = agent.keys()?;
        let names = || {
            held.iter()
                .map(|k| format!("{} {}", key_type(k.key_data()), fingerprint(k.key_data())))
                .collect::<Vec<_>>()
        };
        let (key, comment) = match public_key {
            Some(p) => {
                let want = load_public_key(p)?;
                let Some(k) = held.iter().find(|k| k.key_data() == want.key_data()) else {
                    return Err(SignError::NotInAgent {
                        socket: agent.socket().to_path_buf(),
                        wanted: format!(
                            "the key in {} ({})",
                            p.display(),
                            fingerprint(want.key_data())
                        ),
                        held: names(),
                    });
                };
                let comment = match want.comment().as_str_lossy().trim() {
                    "" => k.comment().as_str_lossy().to_string(),
                    c => c.to_string(),
                };
                (k.key_data().clone(), comment)
            }
            None => match held.as_slice() {
                [k] => (k.key_data().clone(), k.comment().as_str_lossy().to_string()),
                [] => {
                    return Err(SignError::NotInAgent {
                        socket: agent.socket().to_path_buf(),
                        wanted: "any key".into(),
                        held: vec![],
                    });
                }
                _ => {
                    return Err(SignError::AgentAmbiguous {
                        socket: agent.socket().to_path_buf(),
                        held: names(),
                    });
                }
            },
        };
        let what = format!(
            "the {} key {} in ssh-agent ({})",
            key_type(&key),
            fingerprint(&key),
            agent.socket().display()
        );
        let info = info(&key, &comment, identity);
        Ok(ReportSigner {
            key: Key::Agent { agent, key },
            what,
            info,
        })
    }

    /// Who signs: recorded in the report before it is signed.
    pub fn info(&self) -> &SignerInfo {
        &self.info
    }

    /// An SSH signature of `data` in [`NAMESPACE`], checked before it is returned.
    pub fn sign(&self, data: &[u8]) -> Result<SshSig, SignError> {
        let failed = |reason: String| SignError::Sign {
            what: self.what.clone(),
            reason,
        };
        let (sig, key) = match &self.key {
            Key::File(k) => (
                SshSig::sign(k.as_ref(), NAMESPACE, HASH, data)
                    .map_err(|e| failed(e.to_string()))?,
                k.public_key().key_data().clone(),
            ),
            Key::Agent { agent, key } => {
                let signed = SshSig::signed_data(NAMESPACE, HASH, data)
                    .map_err(|e| failed(e.to_string()))?;
                let s = agent.sign(key, &signed)?;
                (
                    SshSig::new(key.clone(), NAMESPACE, HASH, s)
                        .map_err(|e| failed(e.to_string()))?,
                    key.clone(),
                )
            }
        };
        PublicKey::from(key)
            .verify(NAMESPACE, data, &sig)
            .map_err(|e| match e {
                ssh_key::Error::AlgorithmUnsupported { algorithm } => failed(format!(
                    "it made a {algorithm} signature, which cannot be checked (for RSA, SSH \
                     signatures need rsa-sha2-512: is the agent older than OpenSSH 7.2?)"
                )),
                e => failed(format!("the signature it made does not verify: {e}")),
            })?;
        Ok(sig)
    }

    /// Signs the file at `path` as it is on disk, writing the armored `path.sig`.
    pub fn sign_file(&self, path: &Path) -> Result<PathBuf, SignError> {
        let sig = self.sign(&read(path)?)?;
        let out = sig_path(path);
        let pem = sig.to_pem(LineEnding::LF).map_err(|e| SignError::Sign {
            what: self.what.clone(),
            reason: e.to_string(),
        })?;
        let mut text = pem.into_bytes();
        if text.last() != Some(&b'\n') {
            text.push(b'\n');
        }
        write(&out, &text, 0o644)?;
        Ok(out)
    }
}

/// `user@host`, the comment ssh-keygen gives new keys.
fn default_comment() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "faultctl".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}

/// Makes an OpenSSH ed25519 key: `file` (private, unencrypted, mode 0600) and `file.pub`,
/// the same files `ssh-keygen -t ed25519 -N ''` writes. `comment` defaults to user@host.
pub fn keygen(file: &Path, force: bool, comment: Option<&str>) -> Result<PublicKey, SignError> {
    let pub_path = pub_path(file);
    for p in [file, pub_path.as_path()] {
        if !force && p.exists() {
            return Err(SignError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    let seed: [u8; 32] = rand::random();
    let comment = comment.map_or_else(default_comment, str::to_string);
    let failed = |e: ssh_key::Error| SignError::Sign {
        what: "a new ed25519 key".into(),
        reason: e.to_string(),
    };
    let key = PrivateKey::new(
        KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed)),
        comment,
    )
    .map_err(failed)?;
    let private = key.to_openssh(LineEnding::LF).map_err(failed)?;
    let public = key.public_key().to_openssh().map_err(failed)?;
    write(file, private.as_bytes(), 0o600)?;
    write(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(key.public_key().clone())
}

/// What to trust when checking a signature.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// A git-style allowed_signers file, and optionally the identity the signer must be
    /// (`ssh-keygen -Y verify -I`); without it, any identity the file gives the key.
    AllowedSigners {
        file: &'a Path,
        identity: Option<&'a str>,
    },
    /// Exactly this public key (an OpenSSH `.pub` or an old faultline-ed25519-public).
    Key(&'a Path),
    /// Nothing: the signature is checked against its own key, which proves the report
    /// intact but not who signed it (`ssh-keygen -Y check-novalidate`).
    Nothing,
}

/// Who signed `report` according to `allowed_signers`, if its signature (`REPORT.sig`)
/// holds: the answer of `ssh-keygen -Y verify -f allowed_signers [-I identity] -n
/// faultline-report@faultline -s REPORT.sig < REPORT`. [`VerifyError::Unsigned`] when
/// there is no signature file.
pub fn verify_report(
    report: &Path,
    allowed_signers: &Path,
    identity: Option<&str>,
) -> Result<Signer, VerifyError> {
    verify(
        report,
        None,
        Trust::AllowedSigners {
            file: allowed_signers,
            identity,
        },
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Checks `report` against its signature (`sig`, default `REPORT.sig`) and `trust`.
pub fn verify(report: &Path, sig: Option<&Path>, trust: Trust<'_>) -> Result<Signer, VerifyError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| VerifyError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    // The trust source first: a malformed one is bad input whatever the report is.
    let allowed = match trust {
        Trust::AllowedSigners { file, .. } => Some(AllowedSigners::parse(
            file,
            &String::from_utf8_lossy(&read(file)?),
        )?),
        _ => None,
    };
    let trusted_key = match trust {
        Trust::Key(p) => Some(load_public_key(p).map_err(|e| VerifyError::BadKey {
            path: p.to_path_buf(),
            reason: match e {
                SignError::NotPublicKey { reason, .. } => reason,
                e => e.to_string(),
            },
        })?),
        _ => None,
    };
    let sig_path = sig.map_or_else(|| sig_path(report), Path::to_path_buf);
    let sig_bytes = match std::fs::read(&sig_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && sig.is_none() => {
            return Err(VerifyError::Unsigned {
                report: report.to_path_buf(),
                sig: sig_path,
            });
        }
        r => r.map_err(|source| VerifyError::Read {
            path: sig_path.clone(),
            source,
        })?,
    };
    let data = read(report)?;
    let bad_sig = |reason: String| VerifyError::BadSig {
        path: sig_path.clone(),
        reason,
    };
    let mismatch = || VerifyError::Mismatch {
        report: report.to_path_buf(),
    };
    let (key, format) = if legacy::is_legacy_sig(&sig_bytes) {
        let s = legacy::parse_sig(&sig_bytes).map_err(bad_sig)?;
        if !s.verify(&data) {
            return Err(mismatch());
        }
        (legacy::key_data(&s.key), SigFormat::FaultlineEd25519)
    } else {
        let s = SshSig::from_pem(&sig_bytes).map_err(|e| {
            bad_sig(format!(
                "{e} (expected -----BEGIN SSH SIGNATURE-----, as faultctl and ssh-keygen -Y sign write)"
            ))
        })?;
        if s.namespace() != NAMESPACE {
            return Err(VerifyError::WrongNamespace {
                sig: sig_path,
                found: s.namespace().to_string(),
            });
        }
        let key = s.public_key().clone();
        PublicKey::from(key.clone())
            .verify(NAMESPACE, &data, &s)
            .map_err(|e| match e {
                ssh_key::Error::AlgorithmUnsupported { algorithm } => VerifyError::Unsupported {
                    sig: sig_path.clone(),
                    reason: format!("faultctl cannot check {algorithm} signatures"),
                },
                _ => mismatch(),
            })?;
        (key, SigFormat::Sshsig)
    };
    let (identity, trusted_by) = match (trust, allowed, trusted_key) {
        (Trust::AllowedSigners { file, identity }, Some(a), _) => {
            match a.find(&key, identity, NAMESPACE, now_secs()) {
                Ok(e) => (
                    identity.map_or_else(|| e.principals.clone(), str::to_string),
                    Some(format!("{}:{}", file.display(), e.line)),
                ),
                Err(why) => {
                    return Err(VerifyError::NotAllowed(Box::new(NotAllowed {
                        report: report.to_path_buf(),
                        key: PublicKey::from(key.clone())
                            .to_openssh()
                            .unwrap_or_default(),
                        key_type: key_type(&key),
                        fingerprint: fingerprint(&key),
                        file: file.to_path_buf(),
                        identity: identity.map(str::to_string),
                        why,
                    })));
                }
            }
        }
        (Trust::Key(p), _, Some(k)) => {
            if k.key_data() != &key {
                return Err(VerifyError::WrongKey {
                    report: report.to_path_buf(),
                    signed_by: fingerprint(&key),
                    trusted: fingerprint(k.key_data()),
                });
            }
            (
                k.comment().as_str_lossy().trim().to_string(),
                Some(p.display().to_string()),
            )
        }
        _ => (String::new(), None),
    };
    Ok(Signer {
        identity,
        fingerprint: fingerprint(&key),
        key_type: key_type(&key),
        format,
        trusted_by,
        claimed: claimed_signer(&data),
    })
}

/// The `signed_by` a faultline JSON report records, if `data` is one.
fn claimed_signer(data: &[u8]) -> Option<SignerInfo> {
    #[derive(Deserialize)]
    struct Claim {
        signed_by: Option<SignerInfo>,
    }
    serde_json::from_slice::<Claim>(data).ok()?.signed_by
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(d: &Path) -> (ReportSigner, PathBuf) {
        let key = d.join("id_ed25519");
        keygen(&key, false, Some("alice@example.com")).unwrap();
        (ReportSigner::from_file(&key, None).unwrap(), key)
    }

    fn allowed(d: &Path, text: &str) -> PathBuf {
        let p = d.join("allowed_signers");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn keygen_writes_an_openssh_key_that_signs_and_verifies() {
        let d = tempfile::tempdir().unwrap();
        let (s, key) = signer(d.path());
        assert!(matches!(
            keygen(&key, false, None),
            Err(SignError::Exists { .. })
        ));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pubtext = std::fs::read_to_string(pub_path(&key)).unwrap();
        assert!(
            pubtext.starts_with("ssh-ed25519 AAAA") && pubtext.ends_with(" alice@example.com\n"),
            "{pubtext}"
        );
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert_eq!(s.info().identity, "alice@example.com");
        assert_eq!(s.info().key_type, "ssh-ed25519");
        assert!(s.info().fingerprint.starts_with("SHA256:"));

        let r = d.path().join("r.json");
        std::fs::write(&r, b"{\"outcome\":\"completed\"}\n").unwrap();
        let sig = s.sign_file(&r).unwrap();
        let armored = std::fs::read_to_string(&sig).unwrap();
        assert!(
            armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"),
            "{armored}"
        );
        let pubkey = pubtext.trim().split_once(' ').unwrap().1;
        let a = allowed(
            d.path(),
            &format!(
                "# drill signers\nbob@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJVE2YPTRGtyb5Dy64o1EqQUvFfrfIjsTUsxKXYiSOPP\n*@example.com namespaces=\"{NAMESPACE}\" ssh-ed25519 {pubkey}\n"
            ),
        );
        let got = verify_report(&r, &a, None).unwrap();
        assert_eq!(got.identity, "*@example.com");
        assert_eq!(got.fingerprint, s.info().fingerprint);
        assert_eq!(got.format, SigFormat::Sshsig);
        assert_eq!(got.trusted_by, Some(format!("{}:3", a.display())));
        let got = verify_report(&r, &a, Some("alice@example.com")).unwrap();
        assert_eq!(got.identity, "alice@example.com");

        // Another identity: refused, naming the fingerprint and why.
        let e = verify_report(&r, &a, Some("mallory@evil.test")).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, VerifyError::NotAllowed(_)), "{msg}");
        assert!(msg.contains(&s.info().fingerprint), "{msg}");
        assert!(
            msg.contains("line 3 lists this key for \"*@example.com\""),
            "{msg}"
        );

        // A trusted key file, and no trust at all.
        let got = verify(&r, None, Trust::Key(&pub_path(&key))).unwrap();
        assert_eq!(
            (got.identity.as_str(), got.trusted_by.is_some()),
            ("alice@example.com", true)
        );
        let got = verify(&r, None, Trust::Nothing).unwrap();
        assert_eq!((got.identity.as_str(), got.trusted_by), ("", None));

        // One changed byte.
        let mut b = std::fs::read(&r).unwrap();
        b[3] ^= 1;
        std::fs::write(&r, &b).unwrap();
        let e = verify_report(&r, &a, None).unwrap_err();
        assert!(matches!(e, VerifyError::Mismatch { .. }), "{e}");
        assert!(e.to_string().starts_with("signature check FAILED"), "{e}");
    }

    #[test]
    fn a_key_on_no_line_is_refused_naming_its_fingerprint() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = signer(d.path());
        let r = d.path().join("r.md");
        std::fs::write(&r, "# Game day report\n").unwrap();
        s.sign_file(&r).unwrap();
        let a = allowed(
            d.path(),
            "bob@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJVE2YPTRGtyb5Dy64o1EqQUvFfrfIjsTUsxKXYiSOPP\n",
        );
        let e = verify_report(&r, &a, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "was signed by ssh-ed25519 key {}, which {} does not allow: the key is on no line",
                s.info().fingerprint,
                a.display()
            )),
            "{msg}"
        );
        assert!(!e.is_bad_input());
    }

    #[test]
    fn unsigned_malformed_and_foreign_signatures_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let (s, key) = signer(d.path());
        let r = d.path().join("r.json");
        std::fs::write(&r, "{}\n").unwrap();
        let a = allowed(d.path(), "");
        assert!(matches!(
            verify_report(&r, &a, None),
            Err(VerifyError::Unsigned { .. })
        ));
        std::fs::write(sig_path(&r), "not a signature\n").unwrap();
        let e = verify_report(&r, &a, None).unwrap_err();
        assert!(matches!(e, VerifyError::BadSig { .. }), "{e}");
        // A valid SSH signature in another namespace (a git commit signature, say).
        let k = load_private_key(&key).unwrap();
        let git = SshSig::sign(&k, "git", HASH, b"{}\n").unwrap();
        std::fs::write(sig_path(&r), git.to_pem(LineEnding::LF).unwrap()).unwrap();
        let e = verify_report(&r, &a, None).unwrap_err();
        assert!(e.to_string().contains("namespace \"git\""), "{e}");
        // A malformed allowed_signers file is bad input, named with its line.
        s.sign_file(&r).unwrap();
        let a = allowed(d.path(), "\nalice@example.com ssh-ed25519\n");
        let e = verify_report(&r, &a, None).unwrap_err();
        assert!(e.is_bad_input());
        assert!(
            e.to_string().starts_with(&format!(
                "malformed allowed_signers file {}:2: ",
                a.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn bad_signing_keys_are_refused_with_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        // An old faultline key.
        let r = d.path().join("r.json");
        std::fs::write(&r, "{}\n").unwrap();
        legacy::tests::old_sign(d.path(), &r);
        let e = ReportSigner::from_file(&d.path().join("k"), None).unwrap_err();
        assert!(matches!(e, SignError::LegacyKey { .. }), "{e}");
        // A public key given as the private key.
        let (_, key) = signer(d.path());
        let e = ReportSigner::from_file(&pub_path(&key), None).unwrap_err();
        assert!(e.to_string().contains("it is a public key"), "{e}");
        // A hardware-token key: ssh-key can read it, but nothing here can sign with it.
        let sk = PrivateKey::new(
            KeypairData::SkEd25519(
                ssh_key::private::SkEd25519::new(
                    ssh_key::public::SkEd25519::new(
                        ssh_key::public::Ed25519PublicKey([9; 32]),
                        "ssh:",
                    ),
                    0,
                    vec![1; 32],
                )
                .unwrap(),
            ),
            "token",
        )
        .unwrap();
        let skp = d.path().join("sk");
        std::fs::write(&skp, sk.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
        let e = ReportSigner::from_file(&skp, None).unwrap_err();
        assert!(matches!(e, SignError::Unsupported { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("is a sk-ssh-ed25519@openssh.com key, which faultctl cannot sign with"),
            "{e}"
        );
        assert!(e.is_bad_input());
    }

    #[test]
    fn old_signatures_still_verify_and_match_allowed_signers() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("r.json");
        std::fs::write(&r, b"{\"outcome\":\"completed\"}\n").unwrap();
        let vk = legacy::tests::old_sign(d.path(), &r);
        let oldpub = d.path().join("k.pub");
        let got = verify(&r, None, Trust::Key(&oldpub)).unwrap();
        assert_eq!(got.format, SigFormat::FaultlineEd25519);
        let ssh = PublicKey::new(legacy::key_data(&vk), "")
            .to_openssh()
            .unwrap();
        assert_eq!(got.fingerprint, fingerprint(&legacy::key_data(&vk)));
        let a = allowed(d.path(), &format!("ops@example.com {ssh}\n"));
        let got = verify_report(&r, &a, None).unwrap();
        assert_eq!(got.identity, "ops@example.com");
        // Another trusted key.
        let (_, key) = signer(d.path());
        let e = verify(&r, None, Trust::Key(&pub_path(&key))).unwrap_err();
        assert!(matches!(e, VerifyError::WrongKey { .. }), "{e}");
        // One changed byte.
        std::fs::write(&r, b"{\"outcome\":\"completeD\"}\n").unwrap();
        let e = verify(&r, None, Trust::Key(&oldpub)).unwrap_err();
        assert!(e.to_string().starts_with("signature check FAILED"), "{e}");
    }

    #[test]
    fn the_claimed_signer_is_read_from_a_json_report() {
        let d = tempfile::tempdir().unwrap();
        let (s, _) = signer(d.path());
        let r = d.path().join("r.json");
        let body = serde_json::json!({"outcome": "completed", "signed_by": s.info()});
        std::fs::write(&r, serde_json::to_vec(&body).unwrap()).unwrap();
        s.sign_file(&r).unwrap();
        let got = verify(&r, None, Trust::Nothing).unwrap();
        assert_eq!(got.claimed.as_ref(), Some(s.info()));
        assert!(got.claim_mismatch().is_none());
        // Re-signed by someone else: the signature holds, the record names another key.
        let d2 = tempfile::tempdir().unwrap();
        let (other, _) = signer(d2.path());
        other.sign_file(&r).unwrap();
        let got = verify(&r, None, Trust::Nothing).unwrap();
        assert_eq!(got.claim_mismatch(), Some(s.info()));
    }
}
