//! How container runtimes name their cgroups, and reading a container id back out of a
//! cgroup path as `/proc/PID/cgroup` shows it. No runtime API is asked.
//!
//! | path component | runtime | cgroup driver |
//! |---|---|---|
//! | `docker-<id>.scope` | Docker (also cri-dockerd under `kubepods.slice`) | systemd |
//! | `docker/<id>` | Docker | cgroupfs |
//! | `cri-containerd-<id>.scope` | containerd, CRI plugin (Kubernetes) | systemd |
//! | `kubepods/.../pod<uid>/<id>` | containerd CRI or cri-dockerd | cgroupfs |
//! | `nerdctl-<id>.scope` | containerd without CRI (nerdctl) | systemd |
//! | `<namespace>/<id>` (e.g. `default/<id>`) | containerd without CRI (ctr, nerdctl) | cgroupfs |
//! | `crio-<id>.scope` | CRI-O | systemd |
//! | `crio-<id>` | CRI-O | cgroupfs |
//! | `libpod-<id>.scope` | Podman | systemd |
//! | `libpod-<id>` (under `libpod_parent`) | Podman | cgroupfs |
//!
//! `<id>` is 64 lowercase hex digits. The monitors `crio-conmon-<id>` and
//! `libpod-conmon-<id>` and Podman's pod slices `machine-libpod_pod_<id>.slice` are not
//! containers and never match. The same names appear in cgroup v1 hierarchies and in
//! cgroup v2. The deepest matching component wins (a container in a kind node, itself a
//! Docker container), and the container's group is the path up to it: runtimes such as
//! crun put the processes one level below (`libpod-<id>.scope/container`).

use std::fmt;

/// Which runtime a cgroup name points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Runtime {
    Docker,
    /// containerd's CRI plugin (`cri-containerd-<id>.scope`).
    ContainerdCri,
    /// containerd without CRI: ctr, nerdctl (`nerdctl-<id>.scope`, `<namespace>/<id>`).
    Containerd,
    CriO,
    Podman,
    /// A bare id in a kubelet pod group with the cgroupfs driver, which both containerd's
    /// CRI plugin and cri-dockerd write.
    KubeletCgroupfs,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Docker => "docker",
            Runtime::ContainerdCri => "containerd (cri)",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::KubeletCgroupfs => "containerd (cri) or cri-dockerd",
        })
    }
}

/// The cgroup driver that named the group: systemd scopes, or plain directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Driver {
    Systemd,
    Cgroupfs,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Systemd => "systemd",
            Driver::Cgroupfs => "cgroupfs",
        })
    }
}

/// A container read out of one cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The full id: 64 lowercase hex digits.
    pub id: String,
    pub runtime: Runtime,
    pub driver: Driver,
    /// The container's group: the path up to and including the component that names it.
    pub group: String,
    /// The Kubernetes pod's uid, when the path runs through a kubelet pod group.
    pub pod_uid: Option<String>,
}

/// Whether `s` is a full container id: 64 lowercase hex digits.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Systemd scope prefixes: `PREFIX<id>.scope`.
const SCOPES: [(&str, Runtime); 5] = [
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::ContainerdCri),
    ("crio-", Runtime::CriO),
    ("libpod-", Runtime::Podman),
    ("nerdctl-", Runtime::Containerd),
];

/// Cgroupfs prefixes: `PREFIX<id>`.
const PLAIN: [(&str, Runtime); 2] = [("crio-", Runtime::CriO), ("libpod-", Runtime::Podman)];

fn is_kubepods(c: &str) -> bool {
    c == "kubepods" || c.starts_with("kubepods.") || c.starts_with("kubepods-")
}

/// The pod uid in a kubelet pod group name: `pod<uid>` (cgroupfs) or
/// `kubepods-<qos>-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid(c: &str) -> Option<String> {
    let uid = if let Some(s) = c.strip_suffix(".slice") {
        let i = s.rfind("pod")?;
        if !is_kubepods(s) {
            return None;
        }
        &s[i + 3..]
    } else {
        c.strip_prefix("pod")?
    };
    if uid.len() < 8
        || !uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(uid.replace('_', "-"))
}

/// Which runtime names its container `c` (one path component), given the components
/// above it.
fn component(c: &str, above: &[&str]) -> Option<(String, Runtime, Driver)> {
    if let Some(stem) = c.strip_suffix(".scope") {
        return SCOPES.iter().find_map(|(p, rt)| {
            let id = stem.strip_prefix(p)?;
            is_full_id(id).then(|| (id.to_string(), *rt, Driver::Systemd))
        });
    }
    if let Some(found) = PLAIN.iter().find_map(|(p, rt)| {
        let id = c.strip_prefix(p)?;
        is_full_id(id).then(|| (id.to_string(), *rt, Driver::Cgroupfs))
    }) {
        return Some(found);
    }
    if !is_full_id(c) {
        return None;
    }
    let parent = above.last().copied().unwrap_or("");
    let runtime = if parent == "docker" {
        Runtime::Docker
    } else if above.iter().any(|a| is_kubepods(a)) {
        Runtime::KubeletCgroupfs
    } else if parent.is_empty() {
        // A bare id right under the root names no runtime.
        return None;
    } else {
        Runtime::Containerd
    };
    Some((c.to_string(), runtime, Driver::Cgroupfs))
}

/// The container a cgroup path (as `/proc/PID/cgroup` shows it, `/..` components of a
/// cgroup namespace included) belongs to, if any.
///
/// Shell: `grep -oE '[0-9a-f]{64}' /proc/PID/cgroup`, minus the non-containers.
pub fn container_in_path(path: &str) -> Option<Naming> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for i in (0..comps.len()).rev() {
        if let Some((id, runtime, driver)) = component(comps[i], &comps[..i]) {
            let prefix = if path.starts_with('/') { "/" } else { "" };
            return Some(Naming {
                id,
                runtime,
                driver,
                group: format!("{prefix}{}", comps[..=i].join("/")),
                pod_uid: comps[..i].iter().rev().find_map(|c| pod_uid(c)),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "75bd73545e7023a79a68ca9c3590f63ef1397b86ab461edfab5e0a8456d68212";

    fn n(path: &str) -> Option<(Runtime, Driver, String, Option<String>)> {
        container_in_path(path).map(|n| {
            assert_eq!(n.id, ID, "{path}");
            (n.runtime, n.driver, n.group, n.pod_uid)
        })
    }

    #[test]
    fn every_runtime_and_driver() {
        use Driver::*;
        use Runtime::*;
        let cases = [
            (format!("/system.slice/docker-{ID}.scope"), Docker, Systemd),
            (format!("/docker/{ID}"), Docker, Cgroupfs),
            (format!("/machine.slice/libpod-{ID}.scope"), Podman, Systemd),
            (format!("/libpod_parent/libpod-{ID}"), Podman, Cgroupfs),
            (
                format!("/system.slice/nerdctl-{ID}.scope"),
                Containerd,
                Systemd,
            ),
            (format!("/default/{ID}"), Containerd, Cgroupfs),
            (format!("/k8s.io/{ID}"), Containerd, Cgroupfs),
        ];
        for (p, rt, d) in cases {
            assert_eq!(n(&p), Some((rt, d, p.clone(), None)), "{p}");
        }
    }

    #[test]
    fn kubelet_pods_carry_the_pod_uid() {
        use Driver::*;
        use Runtime::*;
        let slice = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3c5b2e_9a7f_4c1e_8b1a_2f6e0c9d4a11.slice";
        let uid = Some("0d3c5b2e-9a7f-4c1e-8b1a-2f6e0c9d4a11".to_string());
        for (leaf, rt) in [
            (format!("cri-containerd-{ID}.scope"), ContainerdCri),
            (format!("crio-{ID}.scope"), CriO),
            (format!("docker-{ID}.scope"), Docker),
        ] {
            let p = format!("{slice}/{leaf}");
            assert_eq!(n(&p), Some((rt, Systemd, p.clone(), uid.clone())), "{p}");
        }
        // Guaranteed pods have no QoS level in their slice name.
        let p = format!(
            "/kubepods.slice/kubepods-pod0d3c5b2e_9a7f_4c1e_8b1a_2f6e0c9d4a11.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(n(&p).unwrap().3, uid);
        let dir = "/kubepods/besteffort/pod0d3c5b2e-9a7f-4c1e-8b1a-2f6e0c9d4a11";
        let p = format!("{dir}/{ID}");
        assert_eq!(
            n(&p),
            Some((KubeletCgroupfs, Cgroupfs, p.clone(), uid.clone()))
        );
        let p = format!("{dir}/crio-{ID}");
        assert_eq!(n(&p), Some((CriO, Cgroupfs, p.clone(), uid.clone())));
    }

    #[test]
    fn the_group_stops_at_the_id_and_the_deepest_id_wins() {
        // crun's leaf group below the scope.
        let g = container_in_path(&format!("/machine.slice/libpod-{ID}.scope/container")).unwrap();
        assert_eq!(g.group, format!("/machine.slice/libpod-{ID}.scope"));
        // A pod's container inside a kind node (itself a Docker container).
        let node = "1111111111111111111111111111111111111111111111111111111111111111";
        let p = format!(
            "/docker/{node}/kubepods/besteffort/pod1234abcd-0000-0000-0000-000000000000/{ID}"
        );
        let g = container_in_path(&p).unwrap();
        assert_eq!(g.id, ID);
        assert_eq!(g.runtime, Runtime::KubeletCgroupfs);
        let g = container_in_path(&format!("/docker/{node}/init.scope")).unwrap();
        assert_eq!((g.id.as_str(), g.runtime), (node, Runtime::Docker));
        // Paths outside the reader's cgroup namespace.
        let g = container_in_path(&format!("/../../system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!(g.group, format!("/../../system.slice/docker-{ID}.scope"));
    }

    #[test]
    fn monitors_pods_and_lookalikes_are_not_containers() {
        for p in [
            "/".to_string(),
            "/system.slice/sshd.service".into(),
            "/init.scope".into(),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/kubepods.slice/kubepods-besteffort.slice/crio-conmon-{ID}.scope"),
            format!("/libpod_parent/libpod-conmon-{ID}"),
            format!("/machine.slice/machine-libpod_pod_{ID}.slice"),
            format!("/{ID}"),
            format!("/system.slice/docker-{}.scope", &ID[..63]),
            format!("/system.slice/docker-{}.scope", ID.to_uppercase()),
            format!("/system.slice/docker-{ID}.service"),
            format!("/docker/{ID}x"),
            "/libpod_parent/conmon".into(),
        ] {
            assert_eq!(container_in_path(&p), None, "{p}");
        }
    }
}
