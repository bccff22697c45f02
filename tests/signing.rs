//! Signed drill reports end to end: a real `faultd`, a real drill (`faultctl run` pauses a
//! victim process), and the reports signed with keys from OpenSSH's own `ssh-keygen`, in
//! files or in a real `ssh-agent` started here. Every signature is checked by
//! `ssh-keygen -Y verify` (a verifier nobody here wrote) and by `faultctl report verify`,
//! and the two must agree.
//!
//! Needs OpenSSH's client tools (`openssh`: Debian's openssh-client, which
//! tests/install-deps installs); the VM guest has none, so there these tests skip.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use faultline_tests::agent::{Agent, Victim, output_text as text, stderr};
use faultline_tests::{bin, require, unique_name};

const NAMESPACE: &str = "faultline-report@faultline";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// One agent, one victim, a one-step scenario (pause the victim for 300 ms) and a
/// temporary directory for keys and reports.
struct Drill {
    _agent: Agent,
    _victim: Victim,
    dir: tempfile::TempDir,
    scenario: PathBuf,
    runs: std::cell::Cell<u32>,
}

impl Drill {
    fn new() -> Drill {
        let agent = Agent::start_staging();
        let tag = unique_name("sgv");
        let victim = Victim::sleep(&tag);
        let dir = tempfile::Builder::new()
            .prefix("faultline-sign-")
            .tempdir()
            .unwrap();
        std::fs::write(
            dir.path().join("fleet.toml"),
            format!(
                "[[agents]]\nname = \"node-1\"\naddress = \"{}\"\n",
                agent.uri()
            ),
        )
        .unwrap();
        let scenario = dir.path().join("drill.yaml");
        std::fs::write(
            &scenario,
            format!(
                "name: signed-drill\ninventory: fleet.toml\nmax_duration: 30s\nbaseline: 50ms\n\
                 lease_ttl: 5s\nsteps:\n  - name: pause the worker\n    \
                 inject: {{pause: {{cmdline: \"^{tag}\"}}}}\n    duration: 300ms\n"
            ),
        )
        .unwrap();
        Drill {
            _agent: agent,
            _victim: victim,
            dir,
            scenario,
            runs: std::cell::Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `faultctl run drill.yaml --report-dir DIR ARGS` with SSH_AUTH_SOCK set to `agent`
    /// (or unset): its output and the report directory.
    fn run(&self, args: &[&str], agent: Option<&Path>) -> (Output, PathBuf) {
        self.runs.set(self.runs.get() + 1);
        let reports = self.path(&format!("reports-{}", self.runs.get()));
        let mut c = Command::new(bin("faultctl"));
        c.arg("run")
            .arg(&self.scenario)
            .arg("--report-dir")
            .arg(&reports)
            .args(args)
            .stdin(Stdio::null())
            .env_remove("SSH_AUTH_SOCK");
        if let Some(a) = agent {
            c.env("SSH_AUTH_SOCK", a);
        }
        (c.output().unwrap(), reports)
    }

    /// A key made by `ssh-keygen -t TYPE` (with `extra` flags), optionally with a
    /// passphrase: its private key path (the public key is PATH.pub).
    fn ssh_keygen(&self, name: &str, ty: &[&str], passphrase: &str, comment: &str) -> PathBuf {
        let key = self.path(name);
        let o = Command::new("ssh-keygen")
            .args(["-q", "-t"])
            .args(ty)
            .args(["-N", passphrase, "-C", comment, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "ssh-keygen -t {ty:?}: {}", text(&o));
        key
    }

    /// An allowed_signers file: one line per (principal, public key file).
    fn allowed_signers(&self, name: &str, lines: &[(&str, &Path)]) -> PathBuf {
        let mut t = String::from("# who may sign faultline drill reports\n");
        for (who, key) in lines {
            t += &format!("{who} namespaces=\"{NAMESPACE}\" {}\n", pub_key(key));
        }
        let p = self.path(name);
        std::fs::write(&p, t).unwrap();
        p
    }
}

fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// `TYPE BASE64` of a key's .pub file (the comment left off).
fn pub_key(key: &Path) -> String {
    let t = std::fs::read_to_string(pub_path(key)).unwrap();
    let mut f = t.split_whitespace();
    format!("{} {}", f.next().unwrap(), f.next().unwrap())
}

/// `SHA256:...` of a key, as `ssh-keygen -l` prints it.
fn fingerprint(key: &Path) -> String {
    let o = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(pub_path(key))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    stdout(&o).split_whitespace().nth(1).unwrap().to_string()
}

/// `ssh-keygen -Y verify -f ALLOWED -I WHO -n NAMESPACE -s FILE.sig < FILE`.
fn ssh_verify(allowed: &Path, who: &str, file: &Path) -> Output {
    Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", who, "-n", NAMESPACE, "-s"])
        .arg(sig_path(file))
        .stdin(std::fs::File::open(file).unwrap())
        .output()
        .unwrap()
}

/// `faultctl report verify FILE ARGS`.
fn ctl_verify(file: &Path, args: &[&str]) -> Output {
    Command::new(bin("faultctl"))
        .args(["report", "verify"])
        .arg(file)
        .args(args)
        .env_remove("FAULTLINE_ALLOWED_SIGNERS")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The report files of a run (everything but the signatures), sorted; asserts each has
/// its `.sig`.
fn signed_files(reports: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "sig"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        assert!(sig_path(f).exists(), "{} has no signature", f.display());
    }
    files
}

fn report_json(reports: &Path) -> serde_json::Value {
    let p = signed_files(reports)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Both verifiers accept every file of `reports` as signed by `who` with `key`.
fn both_accept(reports: &Path, allowed: &Path, who: &str, key: &Path) {
    let fp = fingerprint(key);
    let allowed_s = allowed.to_str().unwrap();
    for f in signed_files(reports) {
        let o = ssh_verify(allowed, who, &f);
        assert!(
            o.status.success(),
            "ssh-keygen on {}: {}",
            f.display(),
            text(&o)
        );
        assert!(
            stdout(&o).contains(&format!("Good \"{NAMESPACE}\" signature for {who} with "))
                && stdout(&o).contains(&fp),
            "{}",
            text(&o)
        );
        for args in [
            vec!["--allowed-signers", allowed_s],
            vec!["--allowed-signers", allowed_s, "--identity", who],
        ] {
            let o = ctl_verify(&f, &args);
            assert!(o.status.success(), "faultctl {args:?}: {}", text(&o));
            assert!(
                stdout(&o).starts_with(&format!(
                    "signature OK: {} was signed by {who} with ",
                    f.display()
                )) && stdout(&o).contains(&fp),
                "{}",
                text(&o)
            );
        }
    }
}

#[test]
fn a_report_signed_with_an_ssh_keygen_key_verifies_with_ssh_keygen_and_faultctl() {
    require!("openssh");
    let d = Drill::new();
    let alice = d.ssh_keygen("alice", &["ed25519"], "", "alice@example.com");
    let bob = d.ssh_keygen("bob", &["ed25519"], "", "bob@example.com");
    let (o, reports) = d.run(&["--sign-key", alice.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains(".json.sig"), "{}", text(&o));

    // The report records who signed it, and with which key.
    let r = report_json(&reports);
    assert_eq!(r["outcome"], "completed", "{r:#}");
    assert_eq!(
        r["signed_by"],
        serde_json::json!({
            "identity": "alice@example.com",
            "fingerprint": fingerprint(&alice),
            "key_type": "ssh-ed25519",
        })
    );
    let md = signed_files(&reports)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "md"))
        .unwrap();
    let mdt = std::fs::read_to_string(&md).unwrap();
    assert!(
        mdt.contains(&format!(
            "- signed by: alice@example.com (ssh-ed25519 {})\n",
            fingerprint(&alice)
        )),
        "{mdt}"
    );

    let allowed = d.allowed_signers(
        "allowed_signers",
        &[("bob@example.com", &bob), ("alice@example.com", &alice)],
    );
    both_accept(&reports, &allowed, "alice@example.com", &alice);

    // Without --identity faultctl names the principals the file gives the key, as
    // `ssh-keygen -Y find-principals` does; -o json for scripts.
    let json = signed_files(&reports)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-Y", "find-principals", "-f"])
        .arg(&allowed)
        .arg("-s")
        .arg(sig_path(&json))
        .output()
        .unwrap();
    assert_eq!(stdout(&o).trim(), "alice@example.com", "{}", text(&o));
    let o = Command::new(bin("faultctl"))
        .args(["-o", "json", "report", "verify"])
        .arg(&json)
        .arg("--allowed-signers")
        .arg(&allowed)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["identity"], "alice@example.com", "{v:#}");
    assert_eq!(v["fingerprint"], fingerprint(&alice).as_str(), "{v:#}");
    assert_eq!(v["format"], "sshsig", "{v:#}");
    assert_eq!(v["claimed"], r["signed_by"], "{v:#}");
    assert_eq!(
        v["trusted_by"],
        format!("{}:3", allowed.display()).as_str(),
        "{v:#}"
    );

    // A signer missing from allowed_signers: both refuse, faultctl naming the key.
    let only_bob = d.allowed_signers("only_bob", &[("bob@example.com", &bob)]);
    let o = ssh_verify(&only_bob, "alice@example.com", &json);
    assert!(!o.status.success(), "{}", text(&o));
    let o = ctl_verify(&json, &["--allowed-signers", only_bob.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!(
            "was signed by ssh-ed25519 key {}, which {} does not allow",
            fingerprint(&alice),
            only_bob.display()
        )),
        "{}",
        text(&o)
    );
    // The right key under another identity: both refuse.
    let o = ssh_verify(&allowed, "bob@example.com", &json);
    assert!(!o.status.success(), "{}", text(&o));
    let o = ctl_verify(
        &json,
        &[
            "--allowed-signers",
            allowed.to_str().unwrap(),
            "--identity",
            "bob@example.com",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains(
            "line 3 lists this key for \"alice@example.com\", not for \"bob@example.com\""
        ),
        "{}",
        text(&o)
    );

    // One changed byte: both refuse.
    let mut bytes = std::fs::read(&json).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&json, &bytes).unwrap();
    let o = ssh_verify(&allowed, "alice@example.com", &json);
    assert!(!o.status.success(), "{}", text(&o));
    let o = ctl_verify(&json, &["--allowed-signers", allowed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("signature check FAILED"),
        "{}",
        text(&o)
    );
    // The Markdown report, untouched, still verifies.
    let o = ctl_verify(&md, &["--allowed-signers", allowed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn ecdsa_and_rsa_keys_sign_reports_that_ssh_keygen_accepts() {
    require!("openssh");
    let d = Drill::new();
    for (name, ty, key_type) in [
        ("ecdsa", &["ecdsa", "-b", "384"][..], "ecdsa-sha2-nistp384"),
        ("rsa", &["rsa", "-b", "3072"][..], "ssh-rsa"),
    ] {
        let who = format!("{name}@example.com");
        let key = d.ssh_keygen(name, ty, "", &who);
        let (o, reports) = d.run(&["--sign-key", key.to_str().unwrap()], None);
        assert!(o.status.success(), "{name}: {}", text(&o));
        assert_eq!(report_json(&reports)["signed_by"]["key_type"], key_type);
        let allowed = d.allowed_signers(&format!("allowed-{name}"), &[(&who, &key)]);
        both_accept(&reports, &allowed, &who, &key);
    }
}

/// `ssh-agent -D -a SOCK`, killed when dropped.
struct SshAgent {
    child: Child,
    socket: PathBuf,
}

impl SshAgent {
    fn start(dir: &Path) -> SshAgent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        SshAgent { child, socket }
    }

    /// `ssh-add KEY`, answering its passphrase prompt through SSH_ASKPASS.
    fn add(&self, key: &Path, passphrase: &str) {
        let askpass = key.with_extension("askpass");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{passphrase}'\n")).unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
        let o = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "ssh-add: {}", text(&o));
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn reports_are_signed_through_a_real_ssh_agent() {
    require!("openssh");
    let d = Drill::new();
    let enc = d.ssh_keygen("enc", &["ed25519"], "correct horse", "carol@example.com");
    let enc_s = enc.to_str().unwrap();
    let enc_pub = pub_path(&enc);

    // Bad input first, while the agent has done nothing yet: an encrypted key without an
    // agent is refused before the drill, asking for the agent.
    let (o, reports) = d.run(&["--sign-key", enc_s], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{enc_s} is protected by a passphrase"))
            && e.contains(&format!("ssh-add {enc_s}"))
            && e.contains("--sign-agent"),
        "{}",
        text(&o)
    );
    assert!(
        !reports.exists(),
        "a report was written: nothing should have run"
    );
    assert!(
        d._agent.ctl_json(&["list", "--all"])["faults"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the drill ran although its key was refused"
    );
    // --sign-agent with no agent.
    let (o, _) = d.run(&["--sign-agent", "--sign-key", enc_s], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("SSH_AUTH_SOCK is not set"),
        "{}",
        text(&o)
    );

    let agent = SshAgent::start(d.dir.path());
    agent.add(&enc, "correct horse");
    // The agent holds the encrypted key: it signs, and both verifiers accept it.
    let (o, reports) = d.run(
        &["--sign-agent", "--sign-key", enc_pub.to_str().unwrap()],
        Some(&agent.socket),
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = report_json(&reports);
    assert_eq!(r["signed_by"]["fingerprint"], fingerprint(&enc).as_str());
    assert_eq!(r["signed_by"]["identity"], "carol@example.com");
    let allowed = d.allowed_signers("allowed", &[("carol@example.com", &enc)]);
    both_accept(&reports, &allowed, "carol@example.com", &enc);
    // Its only key, without --sign-key.
    let (o, reports) = d.run(&["--sign-agent"], Some(&agent.socket));
    assert!(o.status.success(), "{}", text(&o));
    both_accept(&reports, &allowed, "carol@example.com", &enc);

    // An RSA key in the agent signs with rsa-sha2-512, as SSHSIG needs.
    let rsa = d.ssh_keygen("rsa", &["rsa", "-b", "3072"], "", "dave@example.com");
    agent.add(&rsa, "");
    let (o, reports) = d.run(
        &[
            "--sign-agent",
            "--sign-key",
            pub_path(&rsa).to_str().unwrap(),
        ],
        Some(&agent.socket),
    );
    assert!(o.status.success(), "{}", text(&o));
    let allowed = d.allowed_signers("allowed-rsa", &[("dave@example.com", &rsa)]);
    both_accept(&reports, &allowed, "dave@example.com", &rsa);

    // Two keys and no --sign-key; a key the agent does not hold: refused, naming them.
    let (o, _) = d.run(&["--sign-agent"], Some(&agent.socket));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("holds 2 keys"), "{}", text(&o));
    let stranger = d.ssh_keygen("stranger", &["ed25519"], "", "eve@example.com");
    let (o, reports) = d.run(
        &[
            "--sign-agent",
            "--sign-key",
            pub_path(&stranger).to_str().unwrap(),
        ],
        Some(&agent.socket),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!(
            "does not hold the key in {}",
            pub_path(&stranger).display()
        )) && stderr(&o).contains(&fingerprint(&enc))
            && stderr(&o).contains(&fingerprint(&stranger)),
        "{}",
        text(&o)
    );
    assert!(!reports.exists());
}

#[test]
fn unsupported_keys_and_malformed_allowed_signers_are_refused_clearly() {
    require!("openssh");
    let d = Drill::new();
    // A DSA key: OpenSSH can still make one (up to 9.x), faultctl cannot sign with it.
    let dsa = d.path("dsa");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "dsa", "-N", "", "-f"])
        .arg(&dsa)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if made.status.success() {
        let (o, reports) = d.run(&["--sign-key", dsa.to_str().unwrap()], None);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            stderr(&o).contains(&format!(
                "{} is a ssh-dss key, which faultctl cannot sign with",
                dsa.display()
            )),
            "{}",
            text(&o)
        );
        assert!(!reports.exists());
    } else {
        eprintln!("note: this ssh-keygen makes no DSA keys; the unit tests cover an sk key");
    }
    // An old faultline key.
    let old = d.path("old.key");
    std::fs::write(
        &old,
        "faultline-ed25519-secret AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    )
    .unwrap();
    let (o, _) = d.run(&["--sign-key", old.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("is an old faultline-ed25519 key"),
        "{}",
        text(&o)
    );

    // A malformed allowed_signers line: faultctl refuses the file, naming the file and
    // line (exit 2). ssh-keygen names the same line on stderr, then skips it and goes on.
    let key = d.ssh_keygen("alice", &["ed25519"], "", "alice@example.com");
    let (o, reports) = d.run(&["--sign-key", key.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", text(&o));
    let allowed = d.path("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "# signers\nalice@example.com namespaces=\"{NAMESPACE}\" ssh-ed25519 AAAA-not-base64\n\
             alice@example.com {}\n",
            pub_key(&key)
        ),
    )
    .unwrap();
    for f in signed_files(&reports) {
        let o = ctl_verify(&f, &["--allowed-signers", allowed.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            stderr(&o).contains(&format!(
                "malformed allowed_signers file {}:2: invalid ssh-ed25519 public key",
                allowed.display()
            )),
            "{}",
            text(&o)
        );
        let o = ssh_verify(&allowed, "alice@example.com", &f);
        assert!(
            stderr(&o).contains(&format!("{}:2: invalid key", allowed.display())),
            "{}",
            text(&o)
        );
    }
    // --identity needs --allowed-signers.
    let o = ctl_verify(&reports, &["--identity", "alice@example.com"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn reports_signed_by_older_faultctl_still_verify() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::{Signer, SigningKey};
    require!("openssh");
    let dir = tempfile::Builder::new()
        .prefix("faultline-sign-old-")
        .tempdir()
        .unwrap();
    // What `faultctl keygen` and `run --sign-key` wrote before SSH signatures.
    let sk = SigningKey::from_bytes(&std::array::from_fn(|i| (i as u8).wrapping_mul(37)));
    let vk = sk.verifying_key();
    let oldpub = dir.path().join("drill.key.pub");
    std::fs::write(
        &oldpub,
        format!("faultline-ed25519-public {}\n", B64.encode(vk.to_bytes())),
    )
    .unwrap();
    let report = dir.path().join("old-drill-r1.json");
    std::fs::write(&report, "{\n  \"format\": \"faultline-report/1\"\n}\n").unwrap();
    let sig = sk.sign(&std::fs::read(&report).unwrap());
    std::fs::write(
        sig_path(&report),
        serde_json::to_vec_pretty(&serde_json::json!({
            "algorithm": "ed25519",
            "public_key": B64.encode(vk.to_bytes()),
            "signature": B64.encode(sig.to_bytes()),
            "file": "old-drill-r1.json",
        }))
        .unwrap(),
    )
    .unwrap();
    let o = ctl_verify(&report, &["--public-key", oldpub.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).starts_with("signature OK"), "{}", text(&o));
    // The same key as an ssh-ed25519 line of allowed_signers.
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &vk.to_bytes()[..]] {
        blob.extend((part.len() as u32).to_be_bytes());
        blob.extend(part);
    }
    let allowed = dir.path().join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("ops@example.com ssh-ed25519 {}\n", B64.encode(&blob)),
    )
    .unwrap();
    let o = ctl_verify(&report, &["--allowed-signers", allowed.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("signed by ops@example.com"),
        "{}",
        text(&o)
    );
    // One changed byte.
    std::fs::write(&report, "{\n  \"format\": \"faultline-report/2\"\n}\n").unwrap();
    let o = ctl_verify(&report, &["--public-key", oldpub.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("signature check FAILED"),
        "{}",
        text(&o)
    );
}

#[test]
fn faultctl_keygen_writes_a_key_openssh_reads_and_signs_with() {
    require!("openssh");
    let d = Drill::new();
    let key = d.path("drill.key");
    let o = Command::new(bin("faultctl"))
        .args(["keygen", "--comment", "frank@example.com"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The allowed_signers line it prints is one ssh-keygen accepts.
    let line = stdout(&o).lines().last().unwrap().to_string();
    assert!(
        line.starts_with(&format!(
            "frank@example.com namespaces=\"{NAMESPACE}\" ssh-ed25519 "
        )),
        "{line}"
    );
    // ssh-keygen reads the private key (derives the same public key) ...
    let o = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o).trim(),
        std::fs::read_to_string(pub_path(&key)).unwrap().trim()
    );
    // ... and a report signed with it verifies with ssh-keygen.
    let (o, reports) = d.run(&["--sign-key", key.to_str().unwrap()], None);
    assert!(o.status.success(), "{}", text(&o));
    let allowed = d.path("allowed_signers");
    std::fs::write(&allowed, format!("{line}\n")).unwrap();
    both_accept(&reports, &allowed, "frank@example.com", &key);
    // It will not overwrite a key.
    let o = Command::new(bin("faultctl"))
        .arg("keygen")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("already exists"), "{}", text(&o));
}
