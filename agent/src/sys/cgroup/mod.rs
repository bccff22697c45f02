//! cgroup v1 and v2, hybrid included: finding a user's group or a systemd unit's group,
//! freezing and thawing it, listing its processes.
//!
//! Modelled on youki's libcgroups: [`v1`] and [`v2`] hold the per-version control files;
//! every path comes from the mounts found in a mountinfo text, which tests rebase under a
//! temporary directory laid out like cgroupfs ([`Cgroups::from_mountinfo`]). Errors name
//! the file and the data written.
//!
//! The calls here block (freezing waits up to [`Cgroups::freeze_timeout`] for the kernel to
//! confirm); call them from `spawn_blocking` in async code.

mod fs;
mod mountinfo;
mod ns;
mod owned;
mod signal;
mod v1;
mod v2;

pub(crate) use mountinfo::parse_proc_cgroup;
pub use ns::{CgroupNs, join_node_namespace};
pub use owned::{
    AGENT_LEAF, CpuMax, Limits, OWNED_PREFIX, OwnedGroup, ParentSpec, StressBackend, Usage,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many directories a walk of one hierarchy ([`Cgroups::find_unit`],
/// [`Cgroups::procs_recursive`]) visits at most.
pub const WALK_LIMIT: usize = 100_000;

/// Which cgroup layout the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    V1,
    /// Only the unified v2 hierarchy.
    V2,
    /// v1 controller hierarchies plus a v2 hierarchy (systemd's "hybrid", v2 usually at
    /// `/sys/fs/cgroup/unified` with no controllers).
    Hybrid,
    /// No cgroup file system mounted.
    None,
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
            CgroupMode::Hybrid => "hybrid",
            CgroupMode::None => "none",
        })
    }
}

/// A cgroup hierarchy: the unified one, or a v1 one named by its controller list as
/// `/proc/PID/cgroup` spells it (`freezer`, `cpu,cpuacct`, `name=systemd`). A v1 name
/// matches every mounted hierarchy that carries one of its controllers, so `V1("cpu")`
/// finds a `cpu,cpuacct` mount.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Hierarchy {
    V2,
    V1(String),
}

impl fmt::Display for Hierarchy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hierarchy::V2 => f.write_str("cgroup2"),
            Hierarchy::V1(c) => write!(f, "cgroup v1 {c}"),
        }
    }
}

/// One cgroup: its hierarchy, its directory, and its path inside the hierarchy.
/// Serializable, so an undo record in the journal can name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CgroupRef {
    pub hierarchy: Hierarchy,
    /// Absolute directory, e.g. `/sys/fs/cgroup/freezer/a/b`.
    pub dir: PathBuf,
    /// Hierarchy-relative path, e.g. `/a/b` (`/` for the root group).
    pub path: String,
}

impl fmt::Display for CgroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.dir.display(), self.hierarchy)
    }
}

/// Errors of the cgroup layer. Messages are lowercase, name the group or file, and say
/// what to do.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path} not found (looked in {looked}); check the path or unit name")]
    NotFound { path: String, looked: String },
    #[error(
        "cgroup {path} cannot be frozen: neither a cgroup2 group with cgroup.freeze nor a v1 freezer group exists at that path; mount a freezer hierarchy or pause the processes with signals instead"
    )]
    NoFreezer { path: String },
    #[error("cannot {op} {}{}: {source}", path.display(), data.as_ref().map(|d| format!(" (writing {d:?})")).unwrap_or_default())]
    Io {
        path: PathBuf,
        op: &'static str,
        data: Option<String>,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {waited:?} waiting for {what} in {}; check for tasks stuck in uninterruptible sleep", path.display())]
    Timeout {
        path: PathBuf,
        what: String,
        waited: Duration,
    },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("invalid cgroup path {path:?}: {why}")]
    InvalidPath { path: String, why: String },
    #[error("no {hierarchy} hierarchy is mounted (cgroup mode {mode}); this host cannot do {need}")]
    NoHierarchy {
        hierarchy: String,
        mode: CgroupMode,
        need: String,
    },
}

/// A v1 hierarchy mount.
#[derive(Debug, Clone)]
struct V1Mount {
    controllers: Vec<String>,
    /// Mount point as mountinfo says (matched against user paths).
    mount_point: PathBuf,
    /// Where to read and write (the mount point, rebased for tests).
    dir: PathBuf,
    /// The hierarchy path the mount point shows.
    root: String,
}

/// The cgroup hierarchies mounted on this host. Cheap to clone; Send + Sync.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// (mount point as mountinfo says, directory, hierarchy root) of cgroup2.
    v2: Option<(PathBuf, PathBuf, String)>,
    v1: Vec<V1Mount>,
    freeze_timeout: Duration,
}

/// Joins a hierarchy-relative path (`/a/b`) onto a mount whose root is `root`; `None`
/// if the path lies outside what that mount shows.
fn dir_under(dir: &Path, root: &str, path: &str) -> Option<PathBuf> {
    let rest = if root == "/" {
        path
    } else {
        let r = path.strip_prefix(root.trim_end_matches('/'))?;
        if !(r.is_empty() || r.starts_with('/')) {
            return None;
        }
        r
    };
    let rest = rest.trim_start_matches('/');
    Some(if rest.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(rest)
    })
}

/// Checks a hierarchy-relative or absolute cgroup path: absolute, no `.`/`..`.
fn check_path(p: &str) -> Result<(), CgroupError> {
    let bad = |why: &str| CgroupError::InvalidPath {
        path: p.to_string(),
        why: why.to_string(),
    };
    if !p.starts_with('/') {
        return Err(bad("it must start with '/'"));
    }
    if p.split('/').any(|c| c == "." || c == "..") {
        return Err(bad("'.' and '..' are not allowed"));
    }
    Ok(())
}

/// Normalises `/a//b/` to `/a/b`.
fn normalise(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

impl Cgroups {
    /// Reads `/proc/self/mountinfo` (`findmnt -t cgroup,cgroup2`).
    pub fn detect() -> Result<Cgroups, CgroupError> {
        let p = Path::new("/proc/self/mountinfo");
        let text = fs::read(p)?;
        Self::from_mountinfo(&text, None)
    }

    /// The hierarchies in a mountinfo text. With `rebase`, every mount point `/x/y` is
    /// read and written at `REBASE/x/y` (tests lay out a fake cgroupfs there); user paths
    /// given to [`Cgroups::resolve`] may use either form.
    pub fn from_mountinfo(mountinfo: &str, rebase: Option<&Path>) -> Result<Cgroups, CgroupError> {
        let place = |mp: &Path| match rebase {
            Some(base) => base.join(mp.strip_prefix("/").unwrap_or(mp)),
            None => mp.to_path_buf(),
        };
        let mut v2 = None;
        let mut v1: Vec<V1Mount> = Vec::new();
        for m in mountinfo::parse_mountinfo(mountinfo)? {
            let dir = place(&m.mount_point);
            match m.controllers {
                None => {
                    // The first cgroup2 mount, or a later one showing the whole tree.
                    let replace = match &v2 {
                        None => true,
                        Some((_, _, root)) => root != "/" && m.root == "/",
                    };
                    if replace {
                        v2 = Some((m.mount_point, dir, m.root));
                    }
                }
                Some(controllers) => {
                    if controllers.is_empty() {
                        continue;
                    }
                    match v1.iter_mut().find(|h| h.controllers == controllers) {
                        Some(h) if h.root != "/" && m.root == "/" => {
                            h.mount_point = m.mount_point;
                            h.dir = dir;
                            h.root = m.root;
                        }
                        Some(_) => {}
                        None => v1.push(V1Mount {
                            controllers,
                            mount_point: m.mount_point,
                            dir,
                            root: m.root,
                        }),
                    }
                }
            }
        }
        Ok(Cgroups {
            v2,
            v1,
            freeze_timeout: Duration::from_secs(2),
        })
    }

    /// How long [`Cgroups::freeze`] waits for the kernel to report the group frozen.
    pub fn freeze_timeout(&self) -> Duration {
        self.freeze_timeout
    }

    /// Sets how long [`Cgroups::freeze`] and [`Cgroups::thaw`] wait (default 2 s).
    pub fn with_freeze_timeout(mut self, t: Duration) -> Self {
        self.freeze_timeout = t;
        self
    }

    /// v1, v2, hybrid or none. Hybrid means v1 hierarchies carrying real controllers
    /// next to a cgroup2 mount; a lone `name=systemd` v1 mount next to cgroup2 is v2.
    pub fn mode(&self) -> CgroupMode {
        let real_v1 = self
            .v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (self.v2.is_some(), self.v1.is_empty()) {
            (true, _) if real_v1 => CgroupMode::Hybrid,
            (true, _) => CgroupMode::V2,
            (false, false) => CgroupMode::V1,
            (false, true) => CgroupMode::None,
        }
    }

    /// The directory of the cgroup2 root group, if cgroup2 is mounted.
    pub fn v2_root(&self) -> Option<&Path> {
        self.v2.as_ref().map(|(_, d, _)| d.as_path())
    }

    /// The directory of the v1 hierarchy carrying `controller` (`freezer`, `cpu`,
    /// `name=systemd`), if mounted.
    pub fn v1_root(&self, controller: &str) -> Option<&Path> {
        self.v1_mount(controller).map(|h| h.dir.as_path())
    }

    /// The v1 controller list names of every mounted v1 hierarchy, in mount order
    /// (`cpu`, `cpu,cpuacct`, `name=systemd`, ...).
    pub fn v1_hierarchies(&self) -> Vec<String> {
        self.v1.iter().map(|h| h.controllers.join(",")).collect()
    }

    fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    fn v1_mount_for(&self, name: &str) -> Option<&V1Mount> {
        name.split(',').find_map(|c| self.v1_mount(c))
    }

    /// The [`Hierarchy`] value naming the v1 mount that carries `controller`.
    fn v1_hierarchy(&self, controller: &str) -> Option<Hierarchy> {
        self.v1_mount(controller)
            .map(|h| Hierarchy::V1(h.controllers.join(",")))
    }

    /// The directory a hierarchy-relative `path` has in `hierarchy` (whether it exists
    /// or not); `None` if that hierarchy is not mounted or does not show that path.
    pub fn dir_of(&self, hierarchy: &Hierarchy, path: &str) -> Option<PathBuf> {
        match hierarchy {
            Hierarchy::V2 => {
                let (_, dir, root) = self.v2.as_ref()?;
                dir_under(dir, root, path)
            }
            Hierarchy::V1(name) => {
                let h = self.v1_mount_for(name)?;
                dir_under(&h.dir, &h.root, path)
            }
        }
    }

    /// The group at hierarchy-relative `path` in `hierarchy`, which must exist.
    pub fn group(&self, hierarchy: &Hierarchy, path: &str) -> Result<CgroupRef, CgroupError> {
        check_path(path)?;
        let path = normalise(path);
        let hierarchy = match hierarchy {
            Hierarchy::V2 => Hierarchy::V2,
            Hierarchy::V1(name) => Hierarchy::V1(
                self.v1_mount_for(name)
                    .map(|h| h.controllers.join(","))
                    .unwrap_or_else(|| name.clone()),
            ),
        };
        match self.dir_of(&hierarchy, &path) {
            Some(dir) if dir.is_dir() => Ok(CgroupRef {
                hierarchy,
                dir,
                path,
            }),
            Some(dir) => Err(CgroupError::NotFound {
                path,
                looked: dir.display().to_string(),
            }),
            None => Err(CgroupError::NotFound {
                path,
                looked: format!("{hierarchy}, which is not mounted or does not show that path"),
            }),
        }
    }

    /// Every hierarchy in search order: v2, then the v1 freezer, then the other v1 ones.
    fn search_order(&self) -> Vec<Hierarchy> {
        let mut out = Vec::new();
        if self.v2.is_some() {
            out.push(Hierarchy::V2);
        }
        if let Some(h) = self.v1_hierarchy("freezer") {
            out.push(h);
        }
        for h in &self.v1 {
            let name = Hierarchy::V1(h.controllers.join(","));
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// A user-given cgroup: an absolute path under a cgroup mount
    /// (`/sys/fs/cgroup/freezer/x` is `/x` in the freezer hierarchy), or a
    /// hierarchy-relative path (`/system.slice/x.service`: the v2 group if it exists,
    /// else the first v1 hierarchy where it exists, freezer first).
    /// Shell: `ls -d /sys/fs/cgroup/{unified,freezer,...}/PATH`.
    pub fn resolve(&self, user_path: &str) -> Result<CgroupRef, CgroupError> {
        check_path(user_path)?;
        let user = Path::new(user_path);
        // Longest mount point (as mountinfo says, or rebased) that contains the path.
        let mut best: Option<(usize, Hierarchy, String)> = None;
        let mut consider = |mp: &Path, dir: &Path, root: &str, h: Hierarchy| {
            for base in [mp, dir] {
                if let Ok(rest) = user.strip_prefix(base) {
                    let len = base.as_os_str().len();
                    if best.as_ref().is_none_or(|b| len > b.0) {
                        let rest = rest.to_string_lossy();
                        let rel = if root == "/" {
                            normalise(&rest)
                        } else {
                            normalise(&format!("{root}/{rest}"))
                        };
                        best = Some((len, h.clone(), rel));
                    }
                }
            }
        };
        if let Some((mp, dir, root)) = &self.v2 {
            consider(mp, dir, root, Hierarchy::V2);
        }
        for h in &self.v1 {
            consider(
                &h.mount_point,
                &h.dir,
                &h.root,
                Hierarchy::V1(h.controllers.join(",")),
            );
        }
        if let Some((_, hierarchy, rel)) = best {
            return self.group(&hierarchy, &rel).map_err(|e| match e {
                CgroupError::NotFound { looked, .. } => CgroupError::NotFound {
                    path: user_path.to_string(),
                    looked,
                },
                e => e,
            });
        }
        let path = normalise(user_path);
        let mut looked = Vec::new();
        for h in self.search_order() {
            match self.group(&h, &path) {
                Ok(g) => return Ok(g),
                Err(CgroupError::NotFound { looked: l, .. }) => looked.push(l),
                Err(e) => return Err(e),
            }
        }
        Err(CgroupError::NotFound {
            path: user_path.to_string(),
            looked: if looked.is_empty() {
                format!("no cgroup hierarchy: mode {}", self.mode())
            } else {
                looked.join(", ")
            },
        })
    }

    /// A systemd unit's cgroup, found by directory name (`nginx.service`) in the v2
    /// hierarchy, else the v1 `name=systemd` hierarchy, else any v1 hierarchy; the
    /// shallowest match wins; each walk visits at most [`WALK_LIMIT`] directories.
    /// Shell: `find /sys/fs/cgroup/unified -type d -name UNIT`.
    pub fn find_unit(&self, unit: &str) -> Result<CgroupRef, CgroupError> {
        if unit.is_empty() || unit.contains('/') || unit == "." || unit == ".." {
            return Err(CgroupError::InvalidPath {
                path: unit.to_string(),
                why: "a unit name is one directory name such as nginx.service".into(),
            });
        }
        let mut order = Vec::new();
        if self.v2.is_some() {
            order.push(Hierarchy::V2);
        }
        if let Some(h) = self.v1_hierarchy("name=systemd") {
            order.push(h);
        }
        for h in self.search_order() {
            if !order.contains(&h) {
                order.push(h);
            }
        }
        let mut looked = Vec::new();
        for h in order {
            let Some(root) = self.dir_of(&h, "/") else {
                continue;
            };
            looked.push(root.display().to_string());
            let dirs = fs::walk_dirs(&root, WALK_LIMIT)?;
            if let Some(d) = dirs
                .iter()
                .skip(1)
                .find(|d| d.file_name().is_some_and(|n| n == unit))
            {
                let rel = d.strip_prefix(&root).unwrap_or(d).to_string_lossy();
                let base = match &h {
                    Hierarchy::V2 => self.v2.as_ref().map(|v| v.2.clone()),
                    Hierarchy::V1(n) => self.v1_mount_for(n).map(|m| m.root.clone()),
                }
                .unwrap_or_else(|| "/".into());
                return Ok(CgroupRef {
                    hierarchy: h,
                    dir: d.clone(),
                    path: normalise(&format!("{base}/{rel}")),
                });
            }
        }
        Err(CgroupError::NotFound {
            path: unit.to_string(),
            looked: if looked.is_empty() {
                "no cgroup hierarchy is mounted".into()
            } else {
                looked.join(", ")
            },
        })
    }

    /// Pids in the group and all its descendants, sorted, without duplicates.
    /// Shell: `find DIR -name cgroup.procs | xargs cat`.
    pub fn procs_recursive(&self, cg: &CgroupRef) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for d in fs::walk_dirs(&cg.dir, WALK_LIMIT)? {
            match fs::read_pids(&d.join("cgroup.procs")) {
                Ok(p) => pids.extend(p),
                // A child group removed during the walk.
                Err(CgroupError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && d != cg.dir =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// The group that freezing `cg` acts on: `cg` itself if its hierarchy can freeze it,
    /// else the same path in cgroup2 (with `cgroup.freeze`) or in the v1 freezer.
    pub fn freezable(&self, cg: &CgroupRef) -> Result<CgroupRef, CgroupError> {
        if cg.path == "/" {
            return Err(CgroupError::InvalidPath {
                path: cg.dir.display().to_string(),
                why: "a root cgroup cannot be frozen; name a child group".into(),
            });
        }
        let is_freezer = |h: &Hierarchy| match h {
            Hierarchy::V2 => false,
            Hierarchy::V1(n) => n.split(',').any(|c| c == "freezer"),
        };
        match &cg.hierarchy {
            Hierarchy::V2 if v2::can_freeze(&cg.dir) => return Ok(cg.clone()),
            h if is_freezer(h) && v1::can_freeze(&cg.dir) => return Ok(cg.clone()),
            _ => {}
        }
        if let Ok(g) = self.group(&Hierarchy::V2, &cg.path)
            && v2::can_freeze(&g.dir)
        {
            return Ok(g);
        }
        if let Some(h) = self.v1_hierarchy("freezer")
            && let Ok(g) = self.group(&h, &cg.path)
            && v1::can_freeze(&g.dir)
        {
            return Ok(g);
        }
        Err(CgroupError::NoFreezer {
            path: cg.dir.display().to_string(),
        })
    }

    fn set_frozen(g: &CgroupRef, frozen: bool) -> Result<(), CgroupError> {
        match g.hierarchy {
            Hierarchy::V2 => v2::set_frozen(&g.dir, frozen),
            Hierarchy::V1(_) => v1::set_frozen(&g.dir, frozen),
        }
    }

    fn frozen_now(g: &CgroupRef) -> Result<bool, CgroupError> {
        match g.hierarchy {
            Hierarchy::V2 => v2::is_frozen(&g.dir),
            Hierarchy::V1(_) => v1::is_frozen(&g.dir),
        }
    }

    fn frozen_what(g: &CgroupRef, frozen: bool) -> String {
        match (&g.hierarchy, frozen) {
            (Hierarchy::V2, true) => "cgroup.events to say frozen 1".into(),
            (Hierarchy::V2, false) => "cgroup.events to say frozen 0".into(),
            (_, true) => "freezer.state to read FROZEN".into(),
            (_, false) => "freezer.state to leave FROZEN (is a parent group frozen?)".into(),
        }
    }

    /// Freezes every process in the group and below, and waits (up to
    /// [`Cgroups::freeze_timeout`]) until the kernel says the group is frozen. If it does
    /// not settle in time, the group is thawed again and [`CgroupError::Timeout`] returned.
    /// Returns the group actually frozen (see [`Cgroups::freezable`]).
    /// Shell: `echo 1 > DIR/cgroup.freeze` (v2), `echo FROZEN > DIR/freezer.state` (v1).
    pub fn freeze(&self, cg: &CgroupRef) -> Result<CgroupRef, CgroupError> {
        let g = self.freezable(cg)?;
        Self::set_frozen(&g, true)?;
        if fs::poll_until(self.freeze_timeout, || Self::frozen_now(&g))? {
            return Ok(g);
        }
        let _ = Self::set_frozen(&g, false);
        Err(CgroupError::Timeout {
            path: g.dir.clone(),
            what: Self::frozen_what(&g, true),
            waited: self.freeze_timeout,
        })
    }

    /// Thaws the group (the one [`Cgroups::freeze`] returned, or the one it was given).
    /// Idempotent; a group that no longer exists counts as thawed.
    /// Shell: `echo 0 > DIR/cgroup.freeze` (v2), `echo THAWED > DIR/freezer.state` (v1).
    pub fn thaw(&self, cg: &CgroupRef) -> Result<(), CgroupError> {
        if !cg.dir.exists() {
            return Ok(());
        }
        let g = match self.freezable(cg) {
            Ok(g) => g,
            Err(CgroupError::NoFreezer { .. }) if !cg.dir.exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        match Self::set_frozen(&g, false) {
            Ok(()) => {}
            Err(CgroupError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound || !g.dir.exists() =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let thawed = fs::poll_until(self.freeze_timeout, || match Self::frozen_now(&g) {
            Ok(f) => Ok(!f),
            Err(_) if !g.dir.exists() => Ok(true),
            Err(e) => Err(e),
        })?;
        if thawed {
            Ok(())
        } else {
            Err(CgroupError::Timeout {
                path: g.dir.clone(),
                what: Self::frozen_what(&g, false),
                waited: self.freeze_timeout,
            })
        }
    }

    /// Whether the group (or the group [`Cgroups::freezable`] maps it to) is frozen now.
    /// Shell: `grep frozen DIR/cgroup.events` (v2), `cat DIR/freezer.state` (v1).
    pub fn is_frozen(&self, cg: &CgroupRef) -> Result<bool, CgroupError> {
        let g = self.freezable(cg)?;
        Self::frozen_now(&g)
    }

    /// The cgroup path of `pid` in each hierarchy. Shell: `cat /proc/PID/cgroup`.
    pub fn pid_cgroups(pid: i32) -> Result<Vec<(Hierarchy, String)>, CgroupError> {
        let p = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = fs::read(&p)?;
        mountinfo::parse_proc_cgroup(&text, &p.display().to_string())
    }

    /// The group `pid` belongs to in `hierarchy` (a v1 name matches by controller).
    /// Shell: `grep HIERARCHY /proc/PID/cgroup`.
    pub fn pid_group(&self, pid: i32, hierarchy: &Hierarchy) -> Result<CgroupRef, CgroupError> {
        let want = match hierarchy {
            Hierarchy::V2 => None,
            Hierarchy::V1(n) => Some(
                self.v1_mount_for(n)
                    .map(|h| h.controllers.clone())
                    .unwrap_or_else(|| n.split(',').map(str::to_string).collect()),
            ),
        };
        let found = Self::pid_cgroups(pid)?
            .into_iter()
            .find(|(h, _)| match (h, &want) {
                (Hierarchy::V2, None) => true,
                (Hierarchy::V1(n), Some(w)) => n.split(',').any(|c| w.iter().any(|x| x == c)),
                _ => false,
            });
        match found {
            Some((h, path)) => self.group(&h, &path),
            None => Err(CgroupError::NotFound {
                path: format!("{hierarchy} group of pid {pid}"),
                looked: format!("/proc/{pid}/cgroup"),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
