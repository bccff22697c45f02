//! A client for the ssh-agent protocol (draft-miller-ssh-agent): the two requests faultctl
//! needs, list the keys and sign, over the unix socket named by `SSH_AUTH_SOCK`.
//!
//! Written here rather than taken from `ssh-agent-lib`: that crate is built on `ssh-key`
//! 0.6 / `ssh-encoding` 0.2 / `signature` 2, so it would bring a second copy of the whole
//! SSH and RustCrypto stack beside the one faultctl uses, plus an async server framework,
//! for two small messages. The messages are encoded with `ssh-encoding`, the keys and
//! signatures decoded by `ssh-key`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ssh_encoding::{Decode, Encode};
use ssh_key::public::KeyData;
use ssh_key::{PublicKey, Signature};

const SSH_AGENT_FAILURE: u8 = 5;
const SSH_AGENTC_REQUEST_IDENTITIES: u8 = 11;
const SSH_AGENT_IDENTITIES_ANSWER: u8 = 12;
const SSH_AGENTC_SIGN_REQUEST: u8 = 13;
const SSH_AGENT_SIGN_RESPONSE: u8 = 14;
/// Sign-request flag: an RSA key signs with rsa-sha2-512 (what SSHSIG uses), not SHA-1.
const SSH_AGENT_RSA_SHA2_512: u32 = 4;
/// OpenSSH's own limit on one agent message (`AGENT_MAX_LEN`).
const MAX_MESSAGE: usize = 256 * 1024;
/// How long to wait for an answer: the agent may ask its user to confirm (`ssh-add -c`)
/// or to touch a security key.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Why the agent did not sign.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "--sign-agent needs a running ssh-agent: SSH_AUTH_SOCK is not set \
         (start one with `eval $(ssh-agent)` and add the key with `ssh-add KEY`)"
    )]
    NoSocket,
    #[error("cannot talk to ssh-agent at {}: {source}", socket.display())]
    Io {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("ssh-agent at {} refused to {what}{hint}", socket.display())]
    Refused {
        socket: PathBuf,
        what: &'static str,
        hint: &'static str,
    },
    #[error("ssh-agent at {} sent an answer faultctl cannot read: {reason}", socket.display())]
    Protocol { socket: PathBuf, reason: String },
}

/// An ssh-agent, by its socket.
#[derive(Debug, Clone)]
pub struct Agent {
    socket: PathBuf,
}

impl Agent {
    pub fn new(socket: impl Into<PathBuf>) -> Agent {
        Agent {
            socket: socket.into(),
        }
    }

    /// The agent named by `SSH_AUTH_SOCK`.
    pub fn from_env() -> Result<Agent, AgentError> {
        match std::env::var_os("SSH_AUTH_SOCK") {
            Some(s) if !s.is_empty() => Ok(Agent::new(s)),
            _ => Err(AgentError::NoSocket),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The keys the agent holds (with their comments).
    pub fn keys(&self) -> Result<Vec<PublicKey>, AgentError> {
        let answer = self.call(&[SSH_AGENTC_REQUEST_IDENTITIES], "list its keys", "")?;
        let mut r = self.expect(&answer, SSH_AGENT_IDENTITIES_ANSWER)?;
        let n = u32::decode(&mut r).map_err(|e| self.garbled(e))?;
        let mut keys = Vec::new();
        for _ in 0..n {
            let blob = Vec::<u8>::decode(&mut r).map_err(|e| self.garbled(e))?;
            let comment = Vec::<u8>::decode(&mut r).map_err(|e| self.garbled(e))?;
            // A key type ssh-key does not know (a certificate, a newer algorithm) is not
            // one faultctl can sign with: skip it rather than fail the whole list.
            if let Ok(k) = KeyData::decode(&mut blob.as_slice()) {
                keys.push(PublicKey::new(
                    k,
                    String::from_utf8_lossy(&comment).into_owned(),
                ));
            }
        }
        Ok(keys)
    }

    /// Signs `data` with the agent's `key` (RSA keys with rsa-sha2-512).
    pub fn sign(&self, key: &KeyData, data: &[u8]) -> Result<Signature, AgentError> {
        let mut req = vec![SSH_AGENTC_SIGN_REQUEST];
        let flags = if key.is_rsa() {
            SSH_AGENT_RSA_SHA2_512
        } else {
            0
        };
        (|| -> ssh_encoding::Result<()> {
            key.encode_prefixed(&mut req)?;
            data.encode(&mut req)?;
            flags.encode(&mut req)
        })()
        .map_err(|e| self.garbled(e))?;
        let answer = self.call(
            &req,
            "sign",
            " (is the key still loaded? was a confirmation declined?)",
        )?;
        let mut r = self.expect(&answer, SSH_AGENT_SIGN_RESPONSE)?;
        let blob = Vec::<u8>::decode(&mut r).map_err(|e| self.garbled(e))?;
        Signature::decode(&mut blob.as_slice()).map_err(|e| AgentError::Protocol {
            socket: self.socket.clone(),
            reason: format!("its signature does not decode: {e}"),
        })
    }

    fn garbled(&self, e: ssh_encoding::Error) -> AgentError {
        AgentError::Protocol {
            socket: self.socket.clone(),
            reason: e.to_string(),
        }
    }

    /// The body of `answer` after its type byte, which must be `want`.
    fn expect<'a>(&self, answer: &'a [u8], want: u8) -> Result<&'a [u8], AgentError> {
        match answer.split_first() {
            Some((&t, rest)) if t == want => Ok(rest),
            Some((t, _)) => Err(AgentError::Protocol {
                socket: self.socket.clone(),
                reason: format!("message type {t}, expected {want}"),
            }),
            None => Err(AgentError::Protocol {
                socket: self.socket.clone(),
                reason: "an empty message".into(),
            }),
        }
    }

    /// One request, one answer: each a uint32 length and that many bytes.
    fn call(
        &self,
        request: &[u8],
        what: &'static str,
        hint: &'static str,
    ) -> Result<Vec<u8>, AgentError> {
        let io = |source| AgentError::Io {
            socket: self.socket.clone(),
            source,
        };
        let mut s = UnixStream::connect(&self.socket).map_err(io)?;
        s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        let mut framed = Vec::with_capacity(request.len() + 4);
        framed.extend_from_slice(&(request.len() as u32).to_be_bytes());
        framed.extend_from_slice(request);
        s.write_all(&framed).map_err(io)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).map_err(io)?;
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_MESSAGE {
            return Err(AgentError::Protocol {
                socket: self.socket.clone(),
                reason: format!("a {len}-byte answer (the limit is {MAX_MESSAGE})"),
            });
        }
        let mut answer = vec![0u8; len];
        s.read_exact(&mut answer).map_err(io)?;
        if answer.first() == Some(&SSH_AGENT_FAILURE) {
            return Err(AgentError::Refused {
                socket: self.socket.clone(),
                what,
                hint,
            });
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A one-connection agent that answers with `answer` and hands back what it was sent.
    fn fake_agent(answer: Vec<u8>) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<u8>>) {
        let d = tempfile::tempdir().unwrap();
        let l = UnixListener::bind(d.path().join("agent.sock")).unwrap();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut len = [0u8; 4];
            c.read_exact(&mut len).unwrap();
            let mut req = vec![0u8; u32::from_be_bytes(len) as usize];
            c.read_exact(&mut req).unwrap();
            let mut out = (answer.len() as u32).to_be_bytes().to_vec();
            out.extend(answer);
            c.write_all(&out).unwrap();
            req
        });
        (d, h)
    }

    #[test]
    fn a_failure_answer_is_a_clear_refusal() {
        let (d, h) = fake_agent(vec![SSH_AGENT_FAILURE]);
        let a = Agent::new(d.path().join("agent.sock"));
        let k = PublicKey::from_openssh(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJVE2YPTRGtyb5Dy64o1EqQUvFfrfIjsTUsxKXYiSOPP",
        )
        .unwrap();
        let e = a.sign(k.key_data(), b"data").unwrap_err();
        assert!(e.to_string().contains("refused to sign"), "{e}");
        // The request: type 13, the key blob, the data, flags 0.
        let req = h.join().unwrap();
        assert_eq!(req[0], SSH_AGENTC_SIGN_REQUEST);
        let mut r = &req[1..];
        let blob = Vec::<u8>::decode(&mut r).unwrap();
        assert_eq!(
            &KeyData::decode(&mut blob.as_slice()).unwrap(),
            k.key_data()
        );
        assert_eq!(Vec::<u8>::decode(&mut r).unwrap(), b"data");
        assert_eq!(u32::decode(&mut r).unwrap(), 0);
        assert!(r.is_empty());
    }

    #[test]
    fn an_oversized_or_unexpected_answer_is_refused() {
        let (d, h) = fake_agent(vec![99]);
        let a = Agent::new(d.path().join("agent.sock"));
        let e = a.keys().unwrap_err();
        assert!(
            e.to_string().contains("message type 99, expected 12"),
            "{e}"
        );
        assert_eq!(h.join().unwrap(), vec![SSH_AGENTC_REQUEST_IDENTITIES]);
        let e = Agent::new(d.path().join("none.sock")).keys().unwrap_err();
        assert!(e.to_string().starts_with("cannot talk to ssh-agent"), "{e}");
    }
}
