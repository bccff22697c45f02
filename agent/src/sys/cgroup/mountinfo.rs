//! Parsing of `/proc/self/mountinfo` (cgroup mounts) and `/proc/PID/cgroup`.

use std::path::PathBuf;

use super::{CgroupError, Hierarchy};

/// One cgroup hierarchy mount, as found in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// `None` for cgroup2; the v1 controllers (and `name=...`) otherwise, in the
    /// kernel's order (the same order `/proc/PID/cgroup` uses).
    pub controllers: Option<Vec<String>>,
    /// Where it is mounted (already rebased for tests).
    pub mount_point: PathBuf,
    /// The hierarchy path that the mount point shows (field 4 of mountinfo; "/" unless
    /// inside a cgroup namespace or a bind mount of a subtree).
    pub root: String,
}

/// Mount options that are not v1 controllers.
const NON_CONTROLLER_OPTS: &[&str] = &[
    "rw",
    "ro",
    "nosuid",
    "nodev",
    "noexec",
    "relatime",
    "noatime",
    "clone_children",
    "xattr",
    "noprefix",
    "cpuset_v2_mode",
    "favordynmods",
];

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts in a mountinfo text, in order. Lines of other file
/// systems are ignored; a cgroup line that cannot be parsed is an error naming it.
pub(crate) fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, CgroupError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut r = right.split_whitespace();
        let fstype = r.next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let bad = |what: &str| CgroupError::Parse {
            what: "/proc/self/mountinfo".into(),
            detail: format!("line {}: {what}: {line:?}", n + 1),
        };
        let _source = r.next().ok_or_else(|| bad("no mount source"))?;
        let super_opts = r.next().unwrap_or("");
        let fields: Vec<&str> = left.split_whitespace().collect();
        if fields.len() < 6 {
            return Err(bad("fewer than 6 fields before the separator"));
        }
        let root = unescape(fields[3]);
        let mount_point = PathBuf::from(unescape(fields[4]));
        let controllers = if fstype == "cgroup2" {
            None
        } else {
            Some(
                super_opts
                    .split(',')
                    .filter(|o| !o.is_empty() && !NON_CONTROLLER_OPTS.contains(o))
                    .filter(|o| !o.starts_with("release_agent="))
                    .map(str::to_string)
                    .collect(),
            )
        };
        out.push(Mount {
            controllers,
            mount_point,
            root,
        });
    }
    Ok(out)
}

/// Parses `/proc/PID/cgroup` text: `0::/path` is the v2 group, `N:ctrl,ctrl:/path` a v1
/// one (the controller list, e.g. `cpu,cpuacct` or `name=systemd`, names the hierarchy).
pub(crate) fn parse_proc_cgroup(
    text: &str,
    source: &str,
) -> Result<Vec<(Hierarchy, String)>, CgroupError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CgroupError::Parse {
                what: source.to_string(),
                detail: format!("expected ID:CONTROLLERS:PATH, found {line:?}"),
            });
        };
        // A deleted group shows as "/path (deleted)"; keep the path.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path).to_string();
        if id == "0" && ctrls.is_empty() {
            out.push((Hierarchy::V2, path));
        } else if !ctrls.is_empty() {
            out.push((Hierarchy::V1(ctrls.to_string()), path));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
43 31 0:40 / /mnt/my\\040cg rw shared:9 master:2 - cgroup cgroup rw,pids
";

    #[test]
    fn parses_cgroup_mounts_and_skips_others() {
        let m = parse_mountinfo(HYBRID).unwrap();
        assert_eq!(m.len(), 7);
        assert_eq!(m[0].controllers, Some(vec!["cpu".to_string()]));
        assert_eq!(m[3].controllers, Some(vec!["name=systemd".to_string()]));
        assert_eq!(m[4].controllers, None);
        assert_eq!(m[4].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(
            m[5].controllers,
            Some(vec!["cpu".to_string(), "cpuacct".to_string()])
        );
        assert_eq!(m[6].mount_point, PathBuf::from("/mnt/my cg"));
        assert_eq!(m[6].root, "/");
    }

    #[test]
    fn bad_cgroup_line_is_an_error_naming_it() {
        let e = parse_mountinfo("1 2 - cgroup cgroup rw,cpu\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn parses_proc_cgroup() {
        let t = "9:name=systemd:/user.slice\n4:cpu,cpuacct:/a/b\n0::/system.slice/x.service\n1:freezer:/gone (deleted)\n";
        let v = parse_proc_cgroup(t, "test").unwrap();
        assert_eq!(
            v,
            vec![
                (Hierarchy::V1("name=systemd".into()), "/user.slice".into()),
                (Hierarchy::V1("cpu,cpuacct".into()), "/a/b".into()),
                (Hierarchy::V2, "/system.slice/x.service".into()),
                (Hierarchy::V1("freezer".into()), "/gone".into()),
            ]
        );
        assert!(parse_proc_cgroup("garbage\n", "test").is_err());
    }
}
