//! The journal: one small JSON file per live fault in `<state-dir>/journal/`, written
//! crash-safely (write a temp file, fsync, rename; fsync the directory for a new entry).
//!
//! The engine records a fault's *prospective* undo before it touches the kernel (phase
//! `applying`) and the actual undo after (phase `active`); it removes the file once the
//! fault is reverted. A file left behind means a previous run died with the fault live:
//! on start the agent reverts every such fault before it accepts requests. Because every
//! undo is idempotent, reverting a prospective undo of a change that never happened is
//! harmless.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::fault::{ProcId, UndoRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// About to change the kernel; the undo is what it will be if the change lands.
    Applying,
    /// In effect.
    Active,
    /// A revert was tried and failed; the next start tries again.
    RevertFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub kind: String,
    pub phase: Phase,
    pub created_at_ms: u64,
    pub requested_by: String,
    pub description: String,
    pub undo: UndoRecord,
}

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {op}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    pub op: &'static str,
    pub source: std::io::Error,
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    /// `<state_dir>/journal-removed`: removed entries waiting for the reaper thread.
    removed: PathBuf,
    /// Files moved to `removed`, for the reaper thread to unlink.
    reap: std::sync::mpsc::Sender<PathBuf>,
    /// `netns.json` as last read or written (None until first needed); its lock also
    /// keeps two notes from losing one another's namespace.
    noted: std::sync::Arc<std::sync::Mutex<Option<Vec<crate::sys::netns::NetnsTarget>>>>,
}

/// Replaces `path`'s contents with `data` durably: a temp file written and fsynced,
/// then renamed over it.
pub fn replace_durably(path: &Path, data: &[u8]) -> Result<(), JournalError> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(wrap(&tmp, "create"))?;
    f.write_all(data).map_err(wrap(&tmp, "write"))?;
    f.sync_all().map_err(wrap(&tmp, "fsync"))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(wrap(path, "rename"))
}

fn wrap<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> JournalError + 'a {
    move |source| JournalError {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl Journal {
    /// Opens (creating) `<state_dir>/journal`.
    ///
    /// A thread of its own unlinks removed entries ([`remove`](Journal::remove)), and
    /// first whatever a previous run left in `<state_dir>/journal-removed/`.
    pub fn open(state_dir: &Path) -> Result<Journal, JournalError> {
        let dir = state_dir.join("journal");
        std::fs::create_dir_all(&dir).map_err(wrap(&dir, "create"))?;
        let removed = state_dir.join("journal-removed");
        std::fs::create_dir_all(&removed).map_err(wrap(&removed, "create"))?;
        let (reap, rx) = std::sync::mpsc::channel::<PathBuf>();
        for de in std::fs::read_dir(&removed).into_iter().flatten().flatten() {
            let _ = reap.send(de.path());
        }
        std::thread::Builder::new()
            .name("journal-reaper".into())
            .spawn(move || {
                for p in rx {
                    if let Err(e) = std::fs::remove_file(&p)
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        tracing::warn!(path = %p.display(), error = %e, "cannot delete a removed journal entry");
                    }
                }
            })
            .map_err(wrap(&dir, "start the reaper thread for"))?;
        Ok(Journal {
            dir,
            removed,
            reap,
            noted: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes (or replaces) a fault's entry durably. A new entry's name is made durable
    /// with a directory fsync; a replacement skips it: `rename(2)` is atomic, so after a
    /// crash the old entry or the new one is there, each fsynced before it was named,
    /// and either covers the fault (this saves one directory fsync per inject).
    pub fn record(&self, e: &Entry) -> Result<(), JournalError> {
        let path = self.path(&e.id);
        let replacing = std::fs::symlink_metadata(&path).is_ok();
        let tmp = self.dir.join(format!(".{}.tmp", e.id));
        let data = serde_json::to_vec_pretty(e).expect("journal entries serialize");
        let mut f = std::fs::File::create(&tmp).map_err(wrap(&tmp, "create"))?;
        f.write_all(&data).map_err(wrap(&tmp, "write"))?;
        f.sync_all().map_err(wrap(&tmp, "fsync"))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(wrap(&path, "rename"))?;
        if replacing {
            return Ok(());
        }
        self.sync_dir()
    }

    /// Forgets a fault (it is reverted). The removal is not fsynced: a removal lost to
    /// a crash only makes the next start revert the fault again, which every undo
    /// survives (they are idempotent and check the target is still the one they
    /// changed). Skipping the directory fsync is what lets `RevertAll` of 100 faults
    /// return in milliseconds rather than 100 fsyncs.
    ///
    /// The file is renamed into `journal-removed/` (beside `journal/`) and unlinked
    /// later by the reaper thread: on a filesystem mounted with `discard` (this VM's
    /// ext4; common on cloud images) unlinking a file whose blocks reached the disk
    /// waits for a TRIM, ~70 µs here against ~6 µs for the rename, which made 100 of
    /// them most of a `RevertAll`'s time.
    pub fn remove(&self, id: &str) -> Result<(), JournalError> {
        let path = self.path(id);
        let to = self.removed.join(format!("{id}.json"));
        match std::fs::rename(&path, &to) {
            Ok(()) => {
                if let Err(std::sync::mpsc::SendError(p)) = self.reap.send(to) {
                    let _ = std::fs::remove_file(p);
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(JournalError {
                path,
                op: "remove",
                source: e,
            }),
        }
    }

    fn sync_dir(&self) -> Result<(), JournalError> {
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(wrap(&self.dir, "fsync"))
    }

    /// `<state_dir>/netns.json`: every network namespace a network fault touched.
    fn netns_path(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join("netns.json")
    }

    /// The namespaces network faults have touched (for `faultd cleanup`'s sweep).
    pub fn netns(&self) -> Vec<crate::sys::netns::NetnsTarget> {
        std::fs::read(self.netns_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Adds a namespace to `netns.json` durably (before any change is made in it).
    pub fn note_netns(&self, t: &crate::sys::netns::NetnsTarget) -> Result<(), JournalError> {
        let mut noted = self.noted.lock().unwrap_or_else(|p| p.into_inner());
        let all = noted.get_or_insert_with(|| self.netns());
        if all.contains(t) {
            return Ok(());
        }
        let mut more = all.clone();
        more.push(t.clone());
        let data = serde_json::to_vec_pretty(&more).expect("namespaces serialize");
        replace_durably(&self.netns_path(), &data)?;
        *all = more;
        Ok(())
    }

    /// Every entry left on disk, and the files that could not be read (path, why).
    pub fn load(&self) -> (Vec<Entry>, Vec<(PathBuf, String)>) {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return (entries, bad);
        };
        for de in rd.flatten() {
            let p = de.path();
            let name = de.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write that never reached its rename: the fault was not yet applied.
                let _ = std::fs::remove_file(&p);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
            {
                Ok(e) => entries.push(e),
                Err(why) => bad.push((p, why)),
            }
        }
        entries.sort_by_key(|e| e.created_at_ms);
        (entries, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.into(),
            kind: "pause".into(),
            phase: Phase::Applying,
            created_at_ms: 1,
            requested_by: "test".into(),
            description: "SIGSTOP 42".into(),
            undo: UndoRecord::Resume {
                procs: vec![ProcId {
                    pid: 42,
                    starttime: 7,
                    comm: "sleep".into(),
                }],
            },
        }
    }

    /// Whether `done` holds within a second (the reaper works on its own thread).
    fn within_a_second(done: impl Fn() -> bool) -> bool {
        for _ in 0..200 {
            if done() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        done()
    }

    #[test]
    fn records_replaces_loads_and_removes() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        j.record(&entry("f-1")).unwrap();
        let mut e = entry("f-1");
        e.phase = Phase::Active;
        j.record(&e).unwrap();
        j.record(&entry("f-2")).unwrap();
        std::fs::write(j.dir().join(".f-3.tmp"), "partial").unwrap();
        std::fs::write(j.dir().join("f-4.json"), "{ not json").unwrap();
        let (entries, bad) = j.load();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries.iter().find(|x| x.id == "f-1").unwrap().phase,
            Phase::Active
        );
        assert_eq!(bad.len(), 1);
        assert!(
            !j.dir().join(".f-3.tmp").exists(),
            "stale temp files are dropped"
        );
        j.remove("f-1").unwrap();
        j.remove("f-1").unwrap();
        assert_eq!(j.load().0.len(), 1);
        assert!(!j.dir().join("f-1.json").exists());
        // The reaper deletes what remove moved aside.
        let removed = d.path().join("journal-removed");
        assert!(
            within_a_second(|| std::fs::read_dir(&removed).unwrap().count() == 0),
            "journal-removed/ still holds the removed entry"
        );
    }

    /// What a crash left moved aside but not yet deleted goes when the journal opens;
    /// it is never loaded.
    #[test]
    fn entries_removed_before_a_crash_are_deleted_not_loaded() {
        let d = tempfile::tempdir().unwrap();
        let removed = d.path().join("journal-removed");
        std::fs::create_dir_all(&removed).unwrap();
        let e = serde_json::to_vec(&entry("f-9")).unwrap();
        std::fs::write(removed.join("f-9.json"), e).unwrap();
        let j = Journal::open(d.path()).unwrap();
        assert!(j.load().0.is_empty());
        assert!(
            within_a_second(|| !removed.join("f-9.json").exists()),
            "the leftover was not deleted"
        );
    }

    /// Network faults injected at once each note their namespace: none is lost (the
    /// notes read, extend and rewrite one file), a namespace is noted once, and the
    /// file is what a later start (a new `Journal`) reads.
    #[test]
    fn concurrent_namespace_notes_keep_every_namespace() {
        use crate::sys::netns::NetnsTarget;
        let d = tempfile::tempdir().unwrap();
        let j = Journal::open(d.path()).unwrap();
        let names: Vec<NetnsTarget> = (0..16)
            .map(|i| NetnsTarget::Named(format!("ns-{i}")))
            .collect();
        std::thread::scope(|s| {
            for chunk in names.chunks(2) {
                let j = j.clone();
                s.spawn(move || {
                    for t in chunk.iter().chain(chunk) {
                        j.note_netns(t).unwrap();
                    }
                });
            }
        });
        let mut noted = Journal::open(d.path()).unwrap().netns();
        noted.sort_by_key(|t| t.to_string());
        let mut want = names.clone();
        want.sort_by_key(|t| t.to_string());
        assert_eq!(noted, want);
    }
}
