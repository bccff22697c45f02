//! Containers found from procfs alone: which processes belong to which container, read
//! from the cgroup paths in `/proc/PID/cgroup` ([`naming`]), with no runtime API.
//!
//! [`resolve`] turns an id or an id prefix ([`ContainerQuery`]) into a [`Container`]: its
//! full id, runtime, cgroup driver, its group in each cgroup hierarchy, its processes and
//! its network namespace. Every path is taken from a `/proc` root parameter, so unit
//! tests run against a temporary directory laid out like procfs.

mod id;
mod naming;

pub use id::{BadContainerId, ContainerQuery, FULL_LEN, MIN_PREFIX};
pub use naming::{Driver, Naming, Runtime, container_in_path, is_full_id};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::sys::cgroup::{Hierarchy, parse_proc_cgroup};

/// How many containers an error lists by name before it says "and N more".
const LIST_AT_MOST: usize = 8;

/// One process that belongs to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub pid: i32,
    pub ppid: i32,
    pub comm: String,
    /// The container, as the process's preferred hierarchy (cgroup2 first) names it.
    pub naming: Naming,
    /// The container's group in every hierarchy whose path names the same id.
    pub groups: Vec<(Hierarchy, String)>,
}

/// A container's network namespace, by the inode of `/proc/PID/ns/net`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetnsInfo {
    /// The process whose namespace it is (the container's first process).
    pub pid: i32,
    pub inode: u64,
    /// The namespace is the agent's own (the node's): a `--network host` /
    /// `hostNetwork` container.
    pub host: bool,
}

/// A running container, resolved from procfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub runtime: Runtime,
    pub driver: Driver,
    pub pod_uid: Option<String>,
    /// Its group, hierarchy-relative, in each hierarchy (in `/proc/PID/cgroup` order).
    pub cgroups: Vec<(Hierarchy, String)>,
    /// Its processes, sorted, each with its comm.
    pub procs: Vec<(i32, String)>,
    /// Its first process: the one whose parent is outside the container.
    pub init: i32,
    /// `None` when the namespace link cannot be read (the process exited meanwhile, or
    /// the agent may not read it).
    pub netns: Option<NetnsInfo>,
}

impl Container {
    /// The first 12 digits of the id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..MIN_PREFIX]
    }

    /// The pids, sorted.
    pub fn pids(&self) -> Vec<i32> {
        self.procs.iter().map(|(p, _)| *p).collect()
    }

    /// Its group: the cgroup2 path if it has one, else the first v1 path.
    pub fn cgroup(&self) -> &str {
        self.cgroups
            .iter()
            .find(|(h, _)| *h == Hierarchy::V2)
            .or(self.cgroups.first())
            .map(|(_, p)| p.as_str())
            .unwrap_or("/")
    }

    /// Its group in one hierarchy (a v1 name matches by controller).
    pub fn cgroup_in(&self, h: &Hierarchy) -> Option<&str> {
        self.cgroups
            .iter()
            .find(|(have, _)| match (have, h) {
                (Hierarchy::V2, Hierarchy::V2) => true,
                (Hierarchy::V1(a), Hierarchy::V1(b)) => {
                    a.split(',').any(|c| b.split(',').any(|d| c == d))
                }
                _ => false,
            })
            .map(|(_, p)| p.as_str())
    }

    /// `podman, cgroupfs driver` or `containerd (cri), systemd driver, pod UID`.
    pub fn kind(&self) -> String {
        let pod = match &self.pod_uid {
            Some(u) => format!(", pod {u}"),
            None => String::new(),
        };
        format!("{}, {} driver{pod}", self.runtime, self.driver)
    }
}

impl fmt::Display for Container {
    /// What a dry run shows: the container, its cgroup, its processes, its namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let procs: Vec<String> = self
            .procs
            .iter()
            .map(|(p, c)| format!("{p} ({c})"))
            .collect();
        write!(
            f,
            "container {} ({}): cgroup {}; {} {}; ",
            self.id,
            self.kind(),
            self.cgroup(),
            if procs.len() == 1 {
                "process"
            } else {
                "processes"
            },
            procs.join(", ")
        )?;
        match &self.netns {
            Some(n) if n.host => write!(
                f,
                "network namespace net:[{}] of pid {}, the agent's own (host network)",
                n.inode, n.pid
            ),
            Some(n) => write!(f, "network namespace net:[{}] of pid {}", n.inode, n.pid),
            None => write!(
                f,
                "network namespace unknown (cannot read /proc/{}/ns/net)",
                self.init
            ),
        }
    }
}

/// Why a container could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    BadId(#[from] BadContainerId),
    #[error("no running container on this node has an id starting with {query}; {seen}")]
    NotFound { query: String, seen: String },
    #[error(
        "container id {query} is ambiguous: it starts {count} containers' ids: {list}; give more digits"
    )]
    Ambiguous {
        query: String,
        count: usize,
        list: String,
    },
    #[error("cannot list processes in {}: {source}", root.display())]
    Proc {
        root: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `(ppid, comm)` from `PROC/PID/stat`; `None` if the process is gone.
fn stat(root: &Path, pid: i32) -> Option<(i32, String)> {
    let text = std::fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?;
    // "PID (COMM) STATE PPID ...": comm may hold spaces and parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let ppid = text
        .get(close + 1..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ppid, comm))
}

/// The inode of a process's network namespace link (`net:[4026532177]`); `who` is a
/// pid or `self`. Reading another process's link takes CAP_SYS_PTRACE when it holds
/// capabilities the reader lacks (the kernel's ptrace access check).
fn ns_inode(root: &Path, who: &str) -> Option<u64> {
    let link = std::fs::read_link(root.join(who).join("ns/net")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// The container a process belongs to, from its `/proc/PID/cgroup` text: the cgroup2
/// line's container if it names one, else the first v1 line's; with the container's
/// group in every hierarchy whose path names the same id.
pub fn container_of(cgroup_text: &str) -> Option<(Naming, Vec<(Hierarchy, String)>)> {
    let lines = parse_proc_cgroup(cgroup_text, "/proc/PID/cgroup").ok()?;
    let named: Vec<(Hierarchy, Naming)> = lines
        .into_iter()
        .filter_map(|(h, p)| container_in_path(&p).map(|n| (h, n)))
        .collect();
    let naming = named
        .iter()
        .find(|(h, _)| *h == Hierarchy::V2)
        .or(named.first())
        .map(|(_, n)| n.clone())?;
    let groups = named
        .into_iter()
        .filter(|(_, n)| n.id == naming.id)
        .map(|(h, n)| (h, n.group))
        .collect();
    Some((naming, groups))
}

/// Every process under `proc_root` that belongs to a container. Processes that exit
/// while being read are skipped.
/// Shell: `grep -lE '[0-9a-f]{64}' /proc/[0-9]*/cgroup`.
pub fn scan(proc_root: &Path) -> Result<Vec<Member>, ContainerError> {
    let dir = std::fs::read_dir(proc_root).map_err(|source| ContainerError::Proc {
        root: proc_root.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(e.path().join("cgroup")) else {
            continue;
        };
        let Some((naming, groups)) = container_of(&text) else {
            continue;
        };
        let Some((ppid, comm)) = stat(proc_root, pid) else {
            continue;
        };
        out.push(Member {
            pid,
            ppid,
            comm,
            naming,
            groups,
        });
    }
    out.sort_by_key(|m| m.pid);
    Ok(out)
}

/// Groups members by container id.
fn by_id(members: Vec<Member>) -> BTreeMap<String, Vec<Member>> {
    let mut map: BTreeMap<String, Vec<Member>> = BTreeMap::new();
    for m in members {
        map.entry(m.naming.id.clone()).or_default().push(m);
    }
    map
}

/// `75bd73545e70 (podman)`, for lists in errors; with `full`, the whole id.
fn named(id: &str, m: &[Member], full: bool) -> String {
    let rt = m
        .first()
        .map(|m| m.naming.runtime.to_string())
        .unwrap_or_default();
    let id = if full { id } else { &id[..MIN_PREFIX] };
    format!("{id} ({rt})")
}

fn listing<'a>(
    items: impl Iterator<Item = (&'a String, &'a Vec<Member>)>,
    total: usize,
    full: bool,
) -> String {
    let mut names: Vec<String> = items
        .take(LIST_AT_MOST)
        .map(|(id, m)| named(id, m, full))
        .collect();
    if total > LIST_AT_MOST {
        names.push(format!("and {} more", total - LIST_AT_MOST));
    }
    names.join(", ")
}

/// The container whose id is, or starts with, `query`.
///
/// Refuses an unknown id (listing the containers that run), and a prefix that starts
/// several ids (listing them). Shell: `docker inspect`, without asking the runtime.
pub fn resolve(query: &ContainerQuery, proc_root: &Path) -> Result<Container, ContainerError> {
    let all = by_id(scan(proc_root)?);
    let matching: Vec<(&String, &Vec<Member>)> =
        all.iter().filter(|(id, _)| query.matches(id)).collect();
    match matching.len() {
        0 => {
            let seen = if all.is_empty() {
                "no process on this node is in a container's cgroup (read /proc/*/cgroup)".into()
            } else {
                format!(
                    "{} running: {}",
                    if all.len() == 1 {
                        "1 container is".to_string()
                    } else {
                        format!("{} containers are", all.len())
                    },
                    listing(all.iter(), all.len(), false)
                )
            };
            Err(ContainerError::NotFound {
                query: query.to_string(),
                seen,
            })
        }
        1 => {
            let (id, members) = matching[0];
            Ok(container(id, members, proc_root))
        }
        n => Err(ContainerError::Ambiguous {
            query: query.to_string(),
            count: n,
            list: listing(matching.into_iter(), n, true),
        }),
    }
}

fn container(id: &str, members: &[Member], proc_root: &Path) -> Container {
    let pids: Vec<i32> = members.iter().map(|m| m.pid).collect();
    // The first process: its parent is outside (the runtime's shim); the lowest such pid
    // if there are several (exec sessions).
    let init = members
        .iter()
        .find(|m| !pids.contains(&m.ppid))
        .unwrap_or(&members[0]);
    let netns = ns_inode(proc_root, &init.pid.to_string()).map(|inode| NetnsInfo {
        pid: init.pid,
        inode,
        host: ns_inode(proc_root, "self") == Some(inode),
    });
    Container {
        id: id.to_string(),
        runtime: init.naming.runtime,
        driver: init.naming.driver,
        pod_uid: init.naming.pod_uid.clone(),
        cgroups: init.groups.clone(),
        procs: members.iter().map(|m| (m.pid, m.comm.clone())).collect(),
        init: init.pid,
        netns,
    }
}

#[cfg(test)]
mod tests;
