//! faultline-owned groups for stress workers: created with hard caps under a
//! configurable parent, emptied with SIGKILL, removed; plus usage counters and limits
//! of any group.
//!
//! On cgroup v2 a fault gets one directory; on v1 one directory of the same name in each
//! hierarchy it needs (cpu and cpuacct for CPU, memory for memory). Every name starts
//! with [`OWNED_PREFIX`], so [`Cgroups::sweep_owned`] finds leftovers without a journal.

use std::path::PathBuf;
use std::time::Duration;

use super::{CgroupError, CgroupMode, CgroupRef, Cgroups, Hierarchy, fs, signal, v1, v2};

/// The prefix of every group faultline creates.
pub const OWNED_PREFIX: &str = "faultline-";

/// The leaf the agent moves itself into on cgroup v2 when its own group must hold
/// children with controllers (a v2 group with enabled controllers holds no processes).
pub const AGENT_LEAF: &str = "agent";

/// A CPU bandwidth limit: `quota_us` of CPU time per `period_us` of wall time
/// (`None` = unlimited). 30000/100000 is 0.3 CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuMax {
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

impl CpuMax {
    /// The limit in CPUs (`None` if unlimited).
    pub fn cpus(&self) -> Option<f64> {
        self.quota_us.map(|q| q as f64 / self.period_us as f64)
    }
}

/// Caps for a new group, or the limits read back from any group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// `cpu.max` (v2) / `cpu.cfs_quota_us` + `cpu.cfs_period_us` (v1).
    pub cpu: Option<CpuMax>,
    /// `memory.max` (v2) / `memory.limit_in_bytes` (v1), bytes; `None` = unlimited.
    pub memory_max: Option<u64>,
    /// CPU weight on the v2 scale (100 = default, 1..=10000): `cpu.weight` (v2) /
    /// `cpu.shares` = weight * 1024 / 100 (v1). A weight of 100 per worker makes the
    /// group compete for CPU like that many ordinary processes. `None` when creating:
    /// leave the default; when reading: no such file.
    pub cpu_weight: Option<u64>,
}

/// Usage counters of a group; `None` where the hierarchy has no such counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Total CPU time used, µs (v2 `cpu.stat` usage_usec; v1 `cpuacct.usage` / 1000).
    pub cpu_usec: Option<u64>,
    /// Memory charged now, bytes (v2 `memory.current`; v1 `memory.usage_in_bytes`).
    pub memory_bytes: Option<u64>,
    /// OOM kills inside the group (v2 `memory.events` oom_kill; v1
    /// `memory.oom_control` oom_kill).
    pub oom_kills: Option<u64>,
}

/// Where faultline's own groups go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentSpec {
    /// The agent's own group in each hierarchy (`/proc/self/cgroup`): under systemd with
    /// `Delegate=yes`, the unit's delegated subtree.
    Own,
    /// The same hierarchy-relative path in each hierarchy (`/` for the root).
    Path(String),
}

/// Which cgroup version carries the stress groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StressBackend {
    /// cgroup2 with the cpu and memory controllers.
    V2,
    /// v1 cpu, cpuacct and memory hierarchies.
    V1,
}

/// A faultline-owned group: one directory per hierarchy it lives in. Serializable, so
/// an undo record in the journal can name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OwnedGroup {
    /// The directory name, starting with [`OWNED_PREFIX`].
    pub name: String,
    /// The group in each hierarchy (one on v2).
    pub groups: Vec<CgroupRef>,
    /// The v2 directories (parent first, then its ancestors up from it) whose
    /// `cgroup.subtree_control` lacked `io` until this group's blk-throttle part
    /// enabled it: [`Cgroups::remove_owned`] disables it there again once no other
    /// group below uses it, so the subtree reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_enabled: Vec<PathBuf>,
}

impl OwnedGroup {
    /// The `cgroup.procs` file of each part: a worker joins the group by writing its pid
    /// (or `0`, meaning itself) into every one.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.groups
            .iter()
            .map(|g| g.dir.join("cgroup.procs"))
            .collect()
    }
}

/// Checks an owned group name: [`OWNED_PREFIX`] then `[A-Za-z0-9._-]`.
fn check_name(name: &str) -> Result<(), CgroupError> {
    let ok = name.starts_with(OWNED_PREFIX)
        && name.len() > OWNED_PREFIX.len()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CgroupError::InvalidPath {
            path: name.to_string(),
            why: format!(
                "a faultline group name is {OWNED_PREFIX}NAME with letters, digits, '.', '_' and '-'"
            ),
        })
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{}/{name}", parent.trim_end_matches('/'))
    }
}

/// The hierarchy-relative ancestors of `path`, root first, `path` excluded:
/// `/a/b/c` gives `/`, `/a`, `/a/b`.
fn ancestors(path: &str) -> Vec<String> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (0..parts.len())
        .map(|i| format!("/{}", parts[..i].join("/")))
        .collect()
}

impl Cgroups {
    /// Which version carries stress groups here: v2 if its root offers cpu and memory,
    /// else v1 if cpu and memory hierarchies are mounted.
    /// Shell: `cat /sys/fs/cgroup/cgroup.controllers`.
    pub fn stress_backend(&self) -> Result<StressBackend, CgroupError> {
        if let Some(root) = self.v2_root() {
            let c = v2::controllers(&root.join("cgroup.controllers")).unwrap_or_default();
            if c.iter().any(|x| x == "cpu") && c.iter().any(|x| x == "memory") {
                return Ok(StressBackend::V2);
            }
        }
        if self.v1_root("cpu").is_some() && self.v1_root("memory").is_some() {
            return Ok(StressBackend::V1);
        }
        Err(CgroupError::NoHierarchy {
            hierarchy: "cgroup2 with cpu and memory controllers, or v1 cpu and memory".into(),
            mode: self.mode(),
            need: "confined CPU and memory stress".into(),
        })
    }

    /// The hierarchies an owned group with `caps` lives in.
    fn owned_hierarchies(&self, backend: StressBackend) -> Result<Vec<Hierarchy>, CgroupError> {
        if backend == StressBackend::V2 {
            return Ok(vec![Hierarchy::V2]);
        }
        let mut out: Vec<Hierarchy> = Vec::new();
        for c in ["cpu", "cpuacct", "memory"] {
            let Some(h) = self.v1_hierarchy(c) else {
                if c == "cpuacct" {
                    continue; // usage then comes from nowhere, but the cap still holds
                }
                return Err(CgroupError::NoHierarchy {
                    hierarchy: format!("cgroup v1 {c}"),
                    mode: self.mode(),
                    need: "a capped stress group".into(),
                });
            };
            if !out.contains(&h) {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// The hierarchy-relative parent path in `hierarchy`.
    fn parent_path(
        &self,
        parent: &ParentSpec,
        hierarchy: &Hierarchy,
    ) -> Result<String, CgroupError> {
        match parent {
            ParentSpec::Path(p) => {
                super::check_path(p)?;
                Ok(super::normalise(p))
            }
            ParentSpec::Own => {
                let me = std::process::id() as i32;
                let own = self.pid_group(me, hierarchy)?.path;
                // Once moved into its v2 leaf, the agent's subtree is the leaf's parent.
                let leaf = format!("/{AGENT_LEAF}");
                Ok(match own.strip_suffix(&leaf) {
                    Some("") => "/".to_string(),
                    Some(p) if *hierarchy == Hierarchy::V2 => p.to_string(),
                    _ => own,
                })
            }
        }
    }

    /// Makes `parent` on v2 able to hold children with `controllers`: enables them in
    /// every ancestor's `cgroup.subtree_control`, moves the processes of `parent` into
    /// its leaf [`AGENT_LEAF`] if (and only if) `parent` is the agent's own group, then
    /// enables them in `parent` itself.
    /// Shell: `echo +cpu +memory > /sys/fs/cgroup/A/cgroup.subtree_control` for each A.
    fn prepare_v2_parent(
        &self,
        parent: &str,
        controllers: &[&str],
        own: bool,
    ) -> Result<(), CgroupError> {
        if controllers.is_empty() {
            return Ok(());
        }
        let root = self.v2_root().ok_or_else(|| CgroupError::NoHierarchy {
            hierarchy: "cgroup2".into(),
            mode: self.mode(),
            need: "a v2 stress group".into(),
        })?;
        let offered = v2::controllers(&root.join("cgroup.controllers"))?;
        if let Some(c) = controllers
            .iter()
            .find(|c| !offered.iter().any(|o| o == *c))
        {
            return Err(CgroupError::NoHierarchy {
                hierarchy: format!(
                    "cgroup2 {c} controller (root offers [{}])",
                    offered.join(" ")
                ),
                mode: self.mode(),
                need: "a capped v2 stress group".into(),
            });
        }
        for a in ancestors(parent) {
            let dir = self.group(&Hierarchy::V2, &a)?.dir;
            v2::enable_controllers(&dir, controllers)?;
        }
        let pg = self.group(&Hierarchy::V2, parent)?;
        let sc = v2::controllers(&pg.dir.join("cgroup.subtree_control"))?;
        if controllers.iter().all(|c| sc.iter().any(|s| s == *c)) {
            return Ok(());
        }
        if parent != "/" {
            let procs = fs::read_pids(&pg.dir.join("cgroup.procs"))?;
            if !procs.is_empty() {
                if !own {
                    return Err(CgroupError::InvalidPath {
                        path: pg.dir.display().to_string(),
                        why: format!(
                            "it holds processes {procs:?}, and cgroup v2 lets a group with processes enable no controllers for children; choose an empty parent"
                        ),
                    });
                }
                // Our own (delegated) group: move its processes into a leaf.
                let leaf = pg.dir.join(AGENT_LEAF);
                fs::mkdir(&leaf)?;
                for p in procs {
                    match fs::write(&leaf.join("cgroup.procs"), &p.to_string()) {
                        Ok(()) => {}
                        // Exited meanwhile.
                        Err(CgroupError::Io { source, .. })
                            if source.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        v2::enable_controllers(&pg.dir, controllers)
    }

    /// Creates the faultline-owned group `name` under `parent` with hard `caps`, in the
    /// hierarchies the backend needs; on failure removes what it made.
    /// Shell (v2): `mkdir P/NAME; echo "30000 100000" > P/NAME/cpu.max;
    /// echo BYTES > P/NAME/memory.max`. Shell (v1): `mkdir /sys/fs/cgroup/{cpu,cpuacct,memory}/P/NAME;
    /// echo 100000 > .../cpu.cfs_period_us; echo 30000 > .../cpu.cfs_quota_us;
    /// echo BYTES > .../memory.limit_in_bytes`.
    pub fn create_owned(
        &self,
        parent: &ParentSpec,
        name: &str,
        caps: &Limits,
    ) -> Result<OwnedGroup, CgroupError> {
        check_name(name)?;
        let backend = self.stress_backend()?;
        let mut made = OwnedGroup {
            name: name.to_string(),
            groups: Vec::new(),
            io_enabled: Vec::new(),
        };
        let result = (|| {
            for h in self.owned_hierarchies(backend)? {
                let ppath = self.parent_path(parent, &h)?;
                if h == Hierarchy::V2 {
                    // Both always, so usage can be read whatever the caps.
                    self.prepare_v2_parent(&ppath, &["cpu", "memory"], *parent == ParentSpec::Own)?;
                }
                let path = join(&ppath, name);
                let dir = self
                    .dir_of(&h, &path)
                    .ok_or_else(|| CgroupError::NotFound {
                        path: path.clone(),
                        looked: format!("{h}, which does not show that path"),
                    })?;
                if dir.exists() {
                    return Err(CgroupError::InvalidPath {
                        path: dir.display().to_string(),
                        why: "it exists already; remove the leftover (sweep) or pick another name"
                            .into(),
                    });
                }
                fs::mkdir(&dir)?;
                let g = CgroupRef {
                    hierarchy: h.clone(),
                    dir,
                    path,
                };
                made.groups.push(g.clone());
                self.apply_caps(&g, caps)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                let _ = self.remove_owned(&made, Duration::from_secs(2));
                Err(e)
            }
        }
    }

    /// Adds a blk-throttle part to an owned group and caps it on device `dev` (`MAJ:MIN`
    /// of a whole disk) at `rbps`/`wbps` bytes per second: on v1 a group of the same
    /// name in the blkio hierarchy, on v2 the group's own `io.max` (the io controller
    /// enabled for it as cpu and memory are for every stress group). Processes started
    /// in the group afterwards are in every part. On failure the new part is removed.
    /// Shell (v1): `mkdir /sys/fs/cgroup/blkio/P/NAME; echo "8:0 BPS" >
    /// .../blkio.throttle.{read,write}_bps_device`. Shell (v2): `echo +io >
    /// P/cgroup.subtree_control; echo "8:0 rbps=R wbps=W" > P/NAME/io.max`. On v2 the
    /// directories where this enabled `io` are recorded in [`OwnedGroup::io_enabled`].
    pub fn add_blkio_part(
        &self,
        g: &mut OwnedGroup,
        parent: &ParentSpec,
        dev: &str,
        rbps: u64,
        wbps: u64,
    ) -> Result<(), CgroupError> {
        if let Some(v2g) = g.groups.iter().find(|p| p.hierarchy == Hierarchy::V2) {
            let ppath = self.parent_path(parent, &Hierarchy::V2)?;
            let mut paths = ancestors(&ppath);
            paths.push(ppath.clone());
            let mut lacking = Vec::new();
            for p in paths.iter().rev() {
                let dir = self.group(&Hierarchy::V2, p)?.dir;
                if !v2::controllers(&dir.join("cgroup.subtree_control"))?
                    .iter()
                    .any(|c| c == "io")
                {
                    lacking.push(dir);
                }
            }
            let v2dir = v2g.dir.clone();
            let r = self
                .prepare_v2_parent(&ppath, &["io"], *parent == ParentSpec::Own)
                .and_then(|()| {
                    fs::write(
                        &v2dir.join("io.max"),
                        &format!("{dev} rbps={rbps} wbps={wbps}"),
                    )
                });
            // Recorded even on failure: the caller's removal then undoes what was enabled.
            g.io_enabled = lacking
                .into_iter()
                .filter(|d| {
                    v2::controllers(&d.join("cgroup.subtree_control"))
                        .is_ok_and(|c| c.iter().any(|x| x == "io"))
                })
                .collect();
            return r;
        }
        let h = self
            .v1_hierarchy("blkio")
            .ok_or_else(|| CgroupError::NoHierarchy {
                hierarchy: "cgroup v1 blkio".into(),
                mode: self.mode(),
                need: "a throttled io stress group".into(),
            })?;
        let path = join(&self.parent_path(parent, &h)?, &g.name);
        let dir = self
            .dir_of(&h, &path)
            .ok_or_else(|| CgroupError::NotFound {
                path: path.clone(),
                looked: format!("{h}, which does not show that path"),
            })?;
        fs::mkdir(&dir)?;
        let part = CgroupRef {
            hierarchy: h,
            dir: dir.clone(),
            path,
        };
        let r = fs::write(
            &dir.join("blkio.throttle.read_bps_device"),
            &format!("{dev} {rbps}"),
        )
        .and_then(|()| {
            fs::write(
                &dir.join("blkio.throttle.write_bps_device"),
                &format!("{dev} {wbps}"),
            )
        });
        if let Err(e) = r {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        g.groups.push(part);
        Ok(())
    }

    /// Writes the caps that belong to `g`'s hierarchy.
    fn apply_caps(&self, g: &CgroupRef, caps: &Limits) -> Result<(), CgroupError> {
        let has = |c: &str| match &g.hierarchy {
            Hierarchy::V2 => true,
            Hierarchy::V1(n) => n.split(',').any(|x| x == c),
        };
        if let Some(cpu) = caps.cpu
            && has("cpu")
        {
            match g.hierarchy {
                Hierarchy::V2 => v2::set_cpu_max(&g.dir, cpu.quota_us, cpu.period_us)?,
                Hierarchy::V1(_) => v1::set_cfs(&g.dir, cpu.quota_us, cpu.period_us)?,
            }
        }
        if let Some(w) = caps.cpu_weight
            && has("cpu")
        {
            match g.hierarchy {
                Hierarchy::V2 => v2::set_cpu_weight(&g.dir, w)?,
                Hierarchy::V1(_) => v1::set_cpu_shares(&g.dir, w)?,
            }
        }
        if let Some(mem) = caps.memory_max
            && has("memory")
        {
            match g.hierarchy {
                Hierarchy::V2 => v2::set_memory_max(&g.dir, mem)?,
                Hierarchy::V1(_) => v1::set_memory_limit(&g.dir, mem)?,
            }
        }
        Ok(())
    }

    /// Moves `pid` into every part of the group.
    /// Shell: `echo PID > DIR/cgroup.procs` for each part.
    pub fn add_pid(&self, g: &OwnedGroup, pid: i32) -> Result<(), CgroupError> {
        for f in g.procs_files() {
            fs::write(&f, &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids in any part of the group (and below), sorted, deduplicated.
    /// Shell: `cat /sys/fs/cgroup/*/P/NAME/cgroup.procs | sort -un`.
    pub fn owned_procs(&self, g: &OwnedGroup) -> Result<Vec<i32>, CgroupError> {
        let mut all = Vec::new();
        for part in &g.groups {
            // A directory without cgroup.procs holds no processes (and is no cgroup).
            if part.dir.join("cgroup.procs").exists() {
                match self.procs_recursive(part) {
                    Ok(p) => all.extend(p),
                    Err(_) if !part.dir.exists() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(all)
    }

    /// SIGKILLs every process in the group and waits (up to `timeout`) until it is empty.
    /// v2: `echo 1 > DIR/cgroup.kill`; v1: `kill -KILL` each pid of `cgroup.procs`
    /// (through a pidfd, re-checking membership), repeated until none is left.
    pub fn kill_all(&self, g: &OwnedGroup, timeout: Duration) -> Result<(), CgroupError> {
        let empty = fs::poll_until(timeout, || {
            let pids = self.owned_procs(g)?;
            if pids.is_empty() {
                return Ok(true);
            }
            for part in &g.groups {
                if part.hierarchy == Hierarchy::V2 && v2::can_kill(&part.dir) {
                    match v2::kill(&part.dir) {
                        Ok(()) => continue,
                        Err(_) if !part.dir.exists() => continue,
                        Err(e) => return Err(e),
                    }
                }
                for d in fs::walk_dirs(&part.dir, super::WALK_LIMIT).unwrap_or_default() {
                    let Ok(pids) = fs::read_pids(&d.join("cgroup.procs")) else {
                        continue;
                    };
                    for pid in pids {
                        signal::kill_member(self, pid, part)
                            .map_err(|e| fs::io_err("signal a process of", &d, None, e))?;
                    }
                }
            }
            Ok(false)
        })?;
        if empty {
            Ok(())
        } else {
            Err(CgroupError::Timeout {
                path: g.groups.first().map(|p| p.dir.clone()).unwrap_or_default(),
                what: format!(
                    "group {} to empty after SIGKILL (pids left: {:?})",
                    g.name,
                    self.owned_procs(g).unwrap_or_default()
                ),
                waited: timeout,
            })
        }
    }

    /// Kills what is left in the group, waits until it is empty, and removes every part.
    /// Idempotent: parts already gone count as removed.
    /// Shell: `echo 1 > DIR/cgroup.kill; rmdir DIR` (v2), `kill -KILL $(cat DIR/cgroup.procs);
    /// rmdir DIR` for each v1 part.
    pub fn remove_owned(&self, g: &OwnedGroup, timeout: Duration) -> Result<(), CgroupError> {
        self.kill_all(g, timeout)?;
        for part in &g.groups {
            // Children first (a worker cannot make any, but a leftover might have some).
            let mut dirs = match fs::walk_dirs(&part.dir, super::WALK_LIMIT) {
                Ok(d) => d,
                Err(_) if !part.dir.exists() => continue,
                Err(e) => return Err(e),
            };
            dirs.reverse();
            for d in dirs {
                // rmdir can see EBUSY for a moment after the last task has left.
                let mut last = None;
                let gone = fs::poll_until(timeout, || match std::fs::remove_dir(&d) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
                    Err(e) => {
                        last = Some(e);
                        Ok(false)
                    }
                })?;
                if !gone {
                    let e = last.unwrap_or_else(|| std::io::Error::other("timed out"));
                    return Err(fs::io_err("remove cgroup directory", &d, None, e));
                }
            }
        }
        // The io controller this group enabled, off again (parent first) unless another
        // group still uses it there: a child with io limits or with io enabled below it.
        for dir in &g.io_enabled {
            let in_use = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .any(|e| {
                    let p = e.path();
                    std::fs::read_to_string(p.join("io.max")).is_ok_and(|m| !m.trim().is_empty())
                        || v2::controllers(&p.join("cgroup.subtree_control"))
                            .is_ok_and(|c| c.iter().any(|x| x == "io"))
                });
            if in_use {
                break;
            }
            let file = dir.join("cgroup.subtree_control");
            if v2::controllers(&file).is_ok_and(|c| c.iter().any(|x| x == "io")) {
                fs::write(&file, "-io")?;
            }
        }
        Ok(())
    }

    /// Finds leftover faultline-owned groups (directories starting with
    /// [`OWNED_PREFIX`]) under `parent` in every hierarchy a stress group can use,
    /// grouped by name. Shell: `ls -d /sys/fs/cgroup/*/P/faultline-*`.
    pub fn find_owned(&self, parent: &ParentSpec) -> Result<Vec<OwnedGroup>, CgroupError> {
        let mut hs = Vec::new();
        if self.v2_root().is_some() {
            hs.push(Hierarchy::V2);
        }
        for c in ["cpu", "cpuacct", "memory", "blkio"] {
            if let Some(h) = self.v1_hierarchy(c)
                && !hs.contains(&h)
            {
                hs.push(h);
            }
        }
        let mut out: Vec<OwnedGroup> = Vec::new();
        for h in hs {
            let Ok(ppath) = self.parent_path(parent, &h) else {
                continue;
            };
            let Some(pdir) = self.dir_of(&h, &ppath) else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(&pdir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !name.starts_with(OWNED_PREFIX) || !e.path().is_dir() {
                    continue;
                }
                let part = CgroupRef {
                    hierarchy: h.clone(),
                    dir: e.path(),
                    path: join(&ppath, &name),
                };
                match out.iter_mut().find(|g| g.name == name) {
                    Some(g) => g.groups.push(part),
                    None => out.push(OwnedGroup {
                        name,
                        groups: vec![part],
                        io_enabled: Vec::new(),
                    }),
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes every leftover faultline-owned group under `parent` (crash recovery);
    /// returns the names removed. Groups it could not remove are reported in the error
    /// after the others are done.
    pub fn sweep_owned(
        &self,
        parent: &ParentSpec,
        timeout: Duration,
    ) -> Result<Vec<String>, CgroupError> {
        let mut removed = Vec::new();
        let mut first_err = None;
        for g in self.find_owned(parent)? {
            match self.remove_owned(&g, timeout) {
                Ok(()) => removed.push(g.name),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// The same path as `cg` in the hierarchy carrying v1 `controller`, if it exists
    /// there (or `cg` itself if it is in that hierarchy already).
    fn v1_sibling(&self, cg: &CgroupRef, controller: &str) -> Option<CgroupRef> {
        if let Hierarchy::V1(n) = &cg.hierarchy
            && n.split(',').any(|c| c == controller)
        {
            return Some(cg.clone());
        }
        let h = self.v1_hierarchy(controller)?;
        self.group(&h, &cg.path).ok()
    }

    /// Usage counters of any group: for a v1 group, of the same path in the cpuacct and
    /// memory hierarchies. Shell: `grep usage_usec DIR/cpu.stat; cat DIR/memory.current`
    /// (v2), `cat .../cpuacct/P/cpuacct.usage .../memory/P/memory.usage_in_bytes` (v1).
    pub fn usage(&self, cg: &CgroupRef) -> Result<Usage, CgroupError> {
        let mut u = Usage::default();
        if cg.hierarchy == Hierarchy::V2 {
            u.cpu_usec = v2::cpu_usage_usec(&cg.dir)?;
            u.memory_bytes = v2::memory_current(&cg.dir)?;
            u.oom_kills = v2::oom_kills(&cg.dir)?;
            // Hybrid: no v2 memory controller, but maybe a v1 memory group.
            if u.memory_bytes.is_some() || self.mode() != CgroupMode::Hybrid {
                return Ok(u);
            }
        }
        if u.cpu_usec.is_none()
            && let Some(g) = self.v1_sibling(cg, "cpuacct")
        {
            u.cpu_usec = v1::cpuacct_usage_usec(&g.dir)?;
        }
        if let Some(g) = self.v1_sibling(cg, "memory") {
            u.memory_bytes = v1::memory_usage(&g.dir)?;
            u.oom_kills = v1::oom_kills(&g.dir)?;
        }
        Ok(u)
    }

    /// Usage of an owned group, summed sensibly over its parts (each counter comes from
    /// the one part that has it).
    pub fn owned_usage(&self, g: &OwnedGroup) -> Result<Usage, CgroupError> {
        let mut u = Usage::default();
        for part in &g.groups {
            let p = self.usage(part)?;
            u.cpu_usec = u.cpu_usec.or(p.cpu_usec);
            u.memory_bytes = u.memory_bytes.or(p.memory_bytes);
            u.oom_kills = u.oom_kills.or(p.oom_kills);
        }
        Ok(u)
    }

    /// The group's own limits (not its ancestors'): for a v1 group, of the same path in
    /// the cpu and memory hierarchies. Shell: `cat DIR/cpu.max DIR/memory.max` (v2),
    /// `cat .../cpu/P/cpu.cfs_quota_us .../memory/P/memory.limit_in_bytes` (v1).
    pub fn limits(&self, cg: &CgroupRef) -> Result<Limits, CgroupError> {
        let mut l = Limits::default();
        let mut cpu_done = false;
        let mut mem_done = false;
        if cg.hierarchy == Hierarchy::V2 {
            if let Some((q, p)) = v2::cpu_max(&cg.dir)? {
                l.cpu = q.map(|q| CpuMax {
                    quota_us: Some(q),
                    period_us: p,
                });
                cpu_done = true;
            }
            if let Some(m) = v2::memory_max(&cg.dir)? {
                l.memory_max = m;
                mem_done = true;
            }
            l.cpu_weight = v2::cpu_weight(&cg.dir)?;
        }
        if !cpu_done && let Some(g) = self.v1_sibling(cg, "cpu") {
            if let Some((q, p)) = v1::cfs(&g.dir)? {
                l.cpu = q.map(|q| CpuMax {
                    quota_us: Some(q),
                    period_us: p,
                });
            }
            l.cpu_weight = v1::cpu_weight(&g.dir)?;
        }
        if !mem_done
            && let Some(g) = self.v1_sibling(cg, "memory")
            && let Some(m) = v1::memory_limit(&g.dir)?
        {
            l.memory_max = m;
        }
        Ok(l)
    }

    /// The limits that bind `cg`: the smallest CPU share and memory limit of the group
    /// and its ancestors (what "percent of the target cgroup's limit" means). The CPU
    /// weight is the group's own. Shell: `cat` each ancestor's `cpu.max` and `memory.max`
    /// (v2) or `cpu.cfs_quota_us` and `memory.limit_in_bytes` (v1).
    pub fn effective_limits(&self, cg: &CgroupRef) -> Result<Limits, CgroupError> {
        let mut eff = self.limits(cg)?;
        for a in ancestors(&cg.path).into_iter().rev() {
            let Ok(g) = self.group(&cg.hierarchy, &a) else {
                continue;
            };
            let l = self.limits(&g)?;
            if let Some(c) = l.cpu
                && eff
                    .cpu
                    .and_then(|e| e.cpus())
                    .is_none_or(|e| c.cpus().is_some_and(|x| x < e))
            {
                eff.cpu = Some(c);
            }
            if let Some(m) = l.memory_max
                && eff.memory_max.is_none_or(|e| m < e)
            {
                eff.memory_max = Some(m);
            }
        }
        Ok(eff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::cgroup::tests::{HYBRID, V2_ONLY, get, put};

    fn v1_tree() -> (tempfile::TempDir, Cgroups) {
        let t = tempfile::tempdir().unwrap();
        for c in ["cpu", "cpuacct", "memory", "freezer", "systemd"] {
            put(t.path(), &format!("sys/fs/cgroup/{c}/cgroup.procs"), "");
        }
        let cg = Cgroups::from_mountinfo(HYBRID, Some(t.path())).unwrap();
        (t, cg)
    }

    /// A v1 group as the kernel would populate it, in cpu, cpuacct and memory.
    fn v1_group(root: &std::path::Path, rel: &str) {
        put(root, &format!("sys/fs/cgroup/cpu{rel}/cgroup.procs"), "");
        put(
            root,
            &format!("sys/fs/cgroup/cpu{rel}/cpu.shares"),
            "1024\n",
        );
        put(
            root,
            &format!("sys/fs/cgroup/cpu{rel}/cpu.cfs_quota_us"),
            "-1\n",
        );
        put(
            root,
            &format!("sys/fs/cgroup/cpu{rel}/cpu.cfs_period_us"),
            "100000\n",
        );
        put(
            root,
            &format!("sys/fs/cgroup/cpuacct{rel}/cgroup.procs"),
            "",
        );
        put(
            root,
            &format!("sys/fs/cgroup/cpuacct{rel}/cpuacct.usage"),
            "1234567\n",
        );
        put(root, &format!("sys/fs/cgroup/memory{rel}/cgroup.procs"), "");
        put(
            root,
            &format!("sys/fs/cgroup/memory{rel}/memory.limit_in_bytes"),
            "9223372036854771712\n",
        );
        put(
            root,
            &format!("sys/fs/cgroup/memory{rel}/memory.usage_in_bytes"),
            "4096\n",
        );
        put(
            root,
            &format!("sys/fs/cgroup/memory{rel}/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
    }

    #[test]
    fn names_and_ancestors() {
        assert!(check_name("faultline-abc_1.x").is_ok());
        for bad in [
            "faultline-",
            "other",
            "faultline-a/b",
            "faultline-a b",
            "faultline-..",
        ] {
            if bad == "faultline-.." {
                // dots are allowed characters, but the name is still one component
                assert!(check_name(bad).is_ok());
                continue;
            }
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(ancestors("/a/b/c"), vec!["/", "/a", "/a/b"]);
        assert_eq!(ancestors("/"), Vec::<String>::new());
        assert_eq!(join("/", "x"), "/x");
        assert_eq!(join("/a/", "x"), "/a/x");
    }

    #[test]
    fn backend_is_v1_on_hybrid_without_v2_controllers() {
        let (t, cg) = v1_tree();
        put(t.path(), "sys/fs/cgroup/unified/cgroup.controllers", "\n");
        assert_eq!(cg.stress_backend().unwrap(), StressBackend::V1);
        put(
            t.path(),
            "sys/fs/cgroup/unified/cgroup.controllers",
            "cpu io memory pids\n",
        );
        assert_eq!(cg.stress_backend().unwrap(), StressBackend::V2);
        let none = Cgroups::from_mountinfo("", None).unwrap();
        let e = none.stress_backend().unwrap_err().to_string();
        assert!(e.contains("cgroup mode none"), "{e}");
    }

    #[test]
    fn v1_caps_written_and_read_back() {
        let (t, cg) = v1_tree();
        v1_group(t.path(), "/faultline-x");
        let caps = Limits {
            cpu: Some(CpuMax {
                quota_us: Some(30_000),
                period_us: 100_000,
            }),
            memory_max: Some(64 << 20),
            cpu_weight: Some(200),
        };
        let parts: Vec<CgroupRef> = ["cpu", "cpuacct", "memory"]
            .iter()
            .map(|c| {
                cg.group(&Hierarchy::V1(c.to_string()), "/faultline-x")
                    .unwrap()
            })
            .collect();
        for p in &parts {
            cg.apply_caps(p, &caps).unwrap();
        }
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/cpu/faultline-x/cpu.cfs_quota_us"),
            "30000"
        );
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/cpu/faultline-x/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(
            get(
                t.path(),
                "sys/fs/cgroup/memory/faultline-x/memory.limit_in_bytes"
            ),
            (64u64 << 20).to_string()
        );
        // Limits of the cpu part find the memory sibling, and the other way round.
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/cpu/faultline-x/cpu.shares"),
            "2048"
        );
        assert_eq!(cg.limits(&parts[0]).unwrap(), caps);
        assert_eq!(cg.limits(&parts[2]).unwrap(), caps);
        let g = OwnedGroup {
            name: "faultline-x".into(),
            groups: parts,
            io_enabled: Vec::new(),
        };
        let u = cg.owned_usage(&g).unwrap();
        assert_eq!(
            u,
            Usage {
                cpu_usec: Some(1234),
                memory_bytes: Some(4096),
                oom_kills: Some(2)
            }
        );
        assert_eq!(g.procs_files().len(), 3);
    }

    #[test]
    fn unlimited_v1_reads_as_none_and_effective_limits_take_the_ancestors() {
        let (t, cg) = v1_tree();
        v1_group(t.path(), "/app");
        v1_group(t.path(), "/app/inner");
        let inner = cg.resolve("/sys/fs/cgroup/cpu/app/inner").unwrap();
        let unlimited = Limits {
            cpu_weight: Some(100),
            ..Limits::default()
        };
        assert_eq!(cg.limits(&inner).unwrap(), unlimited);
        put(
            t.path(),
            "sys/fs/cgroup/cpu/app/cpu.cfs_quota_us",
            "50000\n",
        );
        put(
            t.path(),
            "sys/fs/cgroup/memory/app/memory.limit_in_bytes",
            "1073741824\n",
        );
        let eff = cg.effective_limits(&inner).unwrap();
        assert_eq!(eff.cpu.unwrap().cpus(), Some(0.5));
        assert_eq!(eff.memory_max, Some(1 << 30));
    }

    #[test]
    fn create_cleans_up_after_a_failed_cap_write_and_names_the_file() {
        let (t, cg) = v1_tree();
        // mkdir in a tempdir makes an empty directory: the cap file is missing, as when
        // a controller is absent.
        let caps = Limits {
            cpu: Some(CpuMax {
                quota_us: Some(30_000),
                period_us: 100_000,
            }),
            memory_max: None,
            cpu_weight: None,
        };
        let e = cg
            .create_owned(&ParentSpec::Path("/".into()), "faultline-y", &caps)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu/faultline-y/cpu.cfs_period_us"), "{e}");
        assert!(e.contains("(writing \"100000\")"), "{e}");
        assert!(!t.path().join("sys/fs/cgroup/cpu/faultline-y").exists());
        let e = cg
            .create_owned(&ParentSpec::Path("/".into()), "bad", &caps)
            .unwrap_err();
        assert!(matches!(e, CgroupError::InvalidPath { .. }));
    }

    #[test]
    fn v2_parent_preparation() {
        let t = tempfile::tempdir().unwrap();
        let cg = Cgroups::from_mountinfo(V2_ONLY, Some(t.path())).unwrap();
        put(
            t.path(),
            "sys/fs/cgroup/cgroup.controllers",
            "cpu io memory\n",
        );
        put(t.path(), "sys/fs/cgroup/cgroup.subtree_control", "io\n");
        put(t.path(), "sys/fs/cgroup/svc/cgroup.subtree_control", "");
        put(t.path(), "sys/fs/cgroup/svc/cgroup.procs", "100\n101\n");
        put(t.path(), "sys/fs/cgroup/svc/agent/cgroup.procs", "");
        // Someone else's group with processes: refused, nothing moved.
        let e = cg
            .prepare_v2_parent("/svc", &["cpu", "memory"], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds processes [100, 101]"), "{e}");
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/cgroup.subtree_control"),
            "+cpu +memory"
        );
        // Our own: processes go to the leaf, then controllers are enabled.
        cg.prepare_v2_parent("/svc", &["cpu", "memory"], true)
            .unwrap();
        // (The fake file keeps only the last write.)
        assert_eq!(get(t.path(), "sys/fs/cgroup/svc/agent/cgroup.procs"), "101");
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/svc/cgroup.subtree_control"),
            "+cpu +memory"
        );
        // A controller the root does not offer.
        put(t.path(), "sys/fs/cgroup/cgroup.controllers", "io memory\n");
        let e = cg
            .prepare_v2_parent("/svc", &["cpu"], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpu controller"), "{e}");
    }

    #[test]
    fn v2_caps_and_usage() {
        let t = tempfile::tempdir().unwrap();
        let cg = Cgroups::from_mountinfo(V2_ONLY, Some(t.path())).unwrap();
        put(t.path(), "sys/fs/cgroup/faultline-z/cgroup.procs", "");
        put(
            t.path(),
            "sys/fs/cgroup/faultline-z/cpu.max",
            "max 100000\n",
        );
        put(t.path(), "sys/fs/cgroup/faultline-z/memory.max", "max\n");
        put(t.path(), "sys/fs/cgroup/faultline-z/cpu.weight", "100\n");
        put(
            t.path(),
            "sys/fs/cgroup/faultline-z/memory.swap.max",
            "max\n",
        );
        put(
            t.path(),
            "sys/fs/cgroup/faultline-z/cpu.stat",
            "usage_usec 777\nuser_usec 700\n",
        );
        put(
            t.path(),
            "sys/fs/cgroup/faultline-z/memory.current",
            "8192\n",
        );
        put(
            t.path(),
            "sys/fs/cgroup/faultline-z/memory.events",
            "low 0\noom 1\noom_kill 1\n",
        );
        let g = cg.group(&Hierarchy::V2, "/faultline-z").unwrap();
        assert_eq!(
            cg.limits(&g).unwrap(),
            Limits {
                cpu_weight: Some(100),
                ..Limits::default()
            }
        );
        let caps = Limits {
            cpu: Some(CpuMax {
                quota_us: Some(150_000),
                period_us: 100_000,
            }),
            memory_max: Some(1 << 20),
            cpu_weight: Some(300),
        };
        cg.apply_caps(&g, &caps).unwrap();
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/faultline-z/cpu.max"),
            "150000 100000"
        );
        assert_eq!(
            get(t.path(), "sys/fs/cgroup/faultline-z/memory.swap.max"),
            "0"
        );
        assert_eq!(get(t.path(), "sys/fs/cgroup/faultline-z/cpu.weight"), "300");
        assert_eq!(cg.limits(&g).unwrap(), caps);
        assert_eq!(
            cg.usage(&g).unwrap(),
            Usage {
                cpu_usec: Some(777),
                memory_bytes: Some(8192),
                oom_kills: Some(1)
            }
        );
        let found = cg.find_owned(&ParentSpec::Path("/".into())).unwrap();
        let json = serde_json::to_string(&found[0]).unwrap();
        assert_eq!(serde_json::from_str::<OwnedGroup>(&json).unwrap(), found[0]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "faultline-z");
        assert_eq!(found[0].groups, vec![g]);
    }
}
