//! The audit log: one JSON line per RPC, accepted or refused, in `<state-dir>/audit.log`.
//!
//! Durability: each line is written with a single `write(2)` on a file opened with
//! `O_APPEND` (no userspace buffer), before the reply is sent. Once `write` returns the
//! line is in the kernel's page cache, so it survives the agent being killed (even with
//! SIGKILL) or crashing; it does not survive a power loss before the kernel writes the
//! page back. With `audit_fsync = true` in faultd.toml every line is also `fdatasync`ed
//! (costs a disk flush per RPC). `reopen` (called on SIGHUP) closes and reopens the path,
//! so logrotate can move the file away and signal the agent.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// The file name inside the state directory.
pub const AUDIT_FILE: &str = "audit.log";

/// One audit record (one line of JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    /// Who: `uid=0(root)` on the socket, the certificate's CN/SAN over TLS.
    pub identity: String,
    /// The peer address: `unix:/run/faultline/faultd.sock pid=123` or `tcp:10.0.0.1:50522`.
    pub peer: String,
    /// The RPC's name, e.g. `Inject`.
    pub rpc: String,
    /// A summary of the request.
    pub request: String,
    /// `allowed` or `refused`.
    pub decision: Decision,
    /// The limit (of the limits file) that refused it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The fault (or lease) the RPC concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_id: Option<String>,
    /// `ok`, or the gRPC code name.
    pub result: String,
    /// The error message when the result is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Authorized and within the limits (the RPC may still fail later: see `result`).
    Allowed,
    /// Refused: unknown identity, wrong role, malformed request or over a limit.
    Refused,
}

/// The open audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    fsync: bool,
    file: Mutex<File>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write audit log {path}: {source} (check the state directory's disk and permissions)"
)]
pub struct AuditError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn open(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuditError {
            path: path.to_path_buf(),
            source,
        })
}

impl AuditLog {
    /// Opens (creating, mode 0600) `<state_dir>/audit.log` for appending.
    pub fn open(state_dir: &Path, fsync: bool) -> Result<AuditLog, AuditError> {
        let path = state_dir.join(AUDIT_FILE);
        let file = open(&path)?;
        Ok(AuditLog {
            path,
            fsync,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes and reopens the file (after logrotate moved it).
    pub fn reopen(&self) -> Result<(), AuditError> {
        let f = open(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = f;
        Ok(())
    }

    /// Appends one line; returns when the kernel has it (and, with fsync, the disk).
    pub fn write(&self, rec: &Record) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(rec).expect("a record always serializes");
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let err = |source| AuditError {
            path: self.path.clone(),
            source,
        };
        f.write_all(&line).map_err(err)?;
        if self.fsync {
            f.sync_data().map_err(err)?;
        }
        Ok(())
    }
}

/// Now, as RFC 3339 with milliseconds (`2026-11-23T14:35:02.123Z`).
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A gRPC code's name as the audit log writes it (`PermissionDenied`).
pub fn code_name(c: tonic::Code) -> String {
    format!("{c:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rpc: &str) -> Record {
        Record {
            time: now(),
            identity: "alice".into(),
            peer: "tcp:127.0.0.1:5555".into(),
            rpc: rpc.into(),
            request: "kind=process-pause".into(),
            decision: Decision::Refused,
            limit: Some("max_duration".into()),
            fault_id: None,
            result: code_name(tonic::Code::PermissionDenied),
            message: Some("refused by limit".into()),
        }
    }

    #[test]
    fn one_json_line_per_record_and_reopen_after_rotation() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path(), false).unwrap();
        log.write(&rec("Inject")).unwrap();
        log.write(&rec("Get")).unwrap();
        let text = std::fs::read_to_string(d.path().join(AUDIT_FILE)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["decision"], "refused");
        assert_eq!(v["limit"], "max_duration");
        assert_eq!(v["result"], "PermissionDenied");
        assert!(v.get("fault_id").is_none());
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        // logrotate: move the file away, reopen, the next line goes to a new file.
        std::fs::rename(d.path().join(AUDIT_FILE), d.path().join("audit.log.1")).unwrap();
        log.write(&rec("List")).unwrap();
        log.reopen().unwrap();
        log.write(&rec("Status")).unwrap();
        let old = std::fs::read_to_string(d.path().join("audit.log.1")).unwrap();
        assert_eq!(old.lines().count(), 3);
        let new = std::fs::read_to_string(d.path().join(AUDIT_FILE)).unwrap();
        assert_eq!(new.lines().count(), 1);
        assert!(new.contains("\"rpc\":\"Status\""));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join(AUDIT_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
