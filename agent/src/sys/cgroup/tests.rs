//! Unit tests against a temporary directory laid out like cgroupfs.

use super::*;

/// This host's layout: hybrid, v1 controllers under /sys/fs/cgroup/<ctrl>, v2 at
/// /sys/fs/cgroup/unified.
pub(crate) const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

pub(crate) const V2_ONLY: &str = "30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

pub(crate) const V1_ONLY: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
";

/// Writes `content` to `root/rel`, creating directories.
pub(crate) fn put(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

pub(crate) fn get(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel.trim_start_matches('/'))).unwrap()
}

/// A fake v2 group: cgroup.procs, cgroup.freeze, cgroup.events.
pub(crate) fn v2_group(root: &Path, rel: &str, pids: &str, frozen: bool) {
    put(root, &format!("{rel}/cgroup.procs"), pids);
    put(root, &format!("{rel}/cgroup.freeze"), "0\n");
    put(
        root,
        &format!("{rel}/cgroup.events"),
        &format!("populated 1\nfrozen {}\n", u8::from(frozen)),
    );
}

/// A fake v1 freezer group.
pub(crate) fn v1_freezer_group(root: &Path, rel: &str, pids: &str) {
    put(root, &format!("{rel}/cgroup.procs"), pids);
    put(root, &format!("{rel}/freezer.state"), "THAWED\n");
}

fn hybrid() -> (tempfile::TempDir, Cgroups) {
    let t = tempfile::tempdir().unwrap();
    for c in ["cpu", "cpuacct", "memory", "freezer", "systemd", "unified"] {
        put(t.path(), &format!("sys/fs/cgroup/{c}/cgroup.procs"), "1\n");
    }
    let cg = Cgroups::from_mountinfo(HYBRID, Some(t.path())).unwrap();
    (t, cg)
}

#[test]
fn detects_modes() {
    assert_eq!(
        Cgroups::from_mountinfo(HYBRID, None).unwrap().mode(),
        CgroupMode::Hybrid
    );
    assert_eq!(
        Cgroups::from_mountinfo(V2_ONLY, None).unwrap().mode(),
        CgroupMode::V2
    );
    assert_eq!(
        Cgroups::from_mountinfo(V1_ONLY, None).unwrap().mode(),
        CgroupMode::V1
    );
    assert_eq!(
        Cgroups::from_mountinfo("", None).unwrap().mode(),
        CgroupMode::None
    );
    // systemd's "unified with legacy name=systemd" is still v2 for our purposes.
    let text = format!(
        "{V2_ONLY}40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
    );
    assert_eq!(
        Cgroups::from_mountinfo(&text, None).unwrap().mode(),
        CgroupMode::V2
    );
    assert_eq!(CgroupMode::Hybrid.to_string(), "hybrid");
    assert_eq!(CgroupMode::None.to_string(), "none");
}

#[test]
fn roots_are_rebased() {
    let (t, cg) = hybrid();
    let base = t.path().join("sys/fs/cgroup");
    assert_eq!(cg.v2_root(), Some(base.join("unified").as_path()));
    assert_eq!(cg.v1_root("freezer"), Some(base.join("freezer").as_path()));
    assert_eq!(
        cg.v1_root("name=systemd"),
        Some(base.join("systemd").as_path())
    );
    assert_eq!(cg.v1_root("blkio"), None);
    let v1 = Cgroups::from_mountinfo(V1_ONLY, None).unwrap();
    assert_eq!(
        v1.v1_root("cpuacct"),
        Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
    );
    assert_eq!(v1.v2_root(), None);
}

#[test]
fn resolves_absolute_paths_under_a_mount() {
    let (t, cg) = hybrid();
    v1_freezer_group(t.path(), "sys/fs/cgroup/freezer/a/b", "");
    // As the user would type it (the real mount point) ...
    let g = cg.resolve("/sys/fs/cgroup/freezer/a/b/").unwrap();
    assert_eq!(g.hierarchy, Hierarchy::V1("freezer".into()));
    assert_eq!(g.path, "/a/b");
    assert_eq!(g.dir, t.path().join("sys/fs/cgroup/freezer/a/b"));
    // ... or the rebased directory.
    let abs = t.path().join("sys/fs/cgroup/freezer/a");
    let g = cg.resolve(abs.to_str().unwrap()).unwrap();
    assert_eq!(g.path, "/a");
    let e = cg.resolve("/sys/fs/cgroup/freezer/nope").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, CgroupError::NotFound { .. }), "{e}");
    assert!(msg.contains("/sys/fs/cgroup/freezer/nope"), "{msg}");
    assert!(msg.contains("looked in"), "{msg}");
}

#[test]
fn resolves_relative_paths_v2_first_then_freezer() {
    let (t, cg) = hybrid();
    // Only in cpu and freezer: freezer wins over cpu (freezer first).
    put(t.path(), "sys/fs/cgroup/cpu/x/cgroup.procs", "");
    v1_freezer_group(t.path(), "sys/fs/cgroup/freezer/x", "");
    let g = cg.resolve("/x").unwrap();
    assert_eq!(g.hierarchy, Hierarchy::V1("freezer".into()));
    // In v2 too: v2 wins.
    v2_group(t.path(), "sys/fs/cgroup/unified/x", "", false);
    assert_eq!(cg.resolve("/x").unwrap().hierarchy, Hierarchy::V2);
    // Only in memory.
    put(t.path(), "sys/fs/cgroup/memory/m/cgroup.procs", "");
    assert_eq!(
        cg.resolve("/m").unwrap().hierarchy,
        Hierarchy::V1("memory".into())
    );
    let msg = cg.resolve("/missing.service").unwrap_err().to_string();
    assert!(
        msg.starts_with("cgroup /missing.service not found"),
        "{msg}"
    );
    assert!(msg.contains("unified/missing.service"), "{msg}");
    assert!(msg.contains("freezer/missing.service"), "{msg}");
}

#[test]
fn rejects_bad_paths() {
    let (_t, cg) = hybrid();
    for bad in ["relative", "/a/../../etc", "/./a", ""] {
        let e = cg.resolve(bad).unwrap_err();
        assert!(matches!(e, CgroupError::InvalidPath { .. }), "{bad}: {e}");
    }
    assert!(matches!(
        cg.find_unit("a/b").unwrap_err(),
        CgroupError::InvalidPath { .. }
    ));
}

#[test]
fn finds_units_v2_then_name_systemd_then_any() {
    let (t, cg) = hybrid();
    put(
        t.path(),
        "sys/fs/cgroup/systemd/system.slice/web.service/cgroup.procs",
        "",
    );
    put(
        t.path(),
        "sys/fs/cgroup/memory/system.slice/db.service/cgroup.procs",
        "",
    );
    let g = cg.find_unit("web.service").unwrap();
    assert_eq!(g.hierarchy, Hierarchy::V1("name=systemd".into()));
    assert_eq!(g.path, "/system.slice/web.service");
    v2_group(
        t.path(),
        "sys/fs/cgroup/unified/system.slice/web.service",
        "",
        false,
    );
    let g = cg.find_unit("web.service").unwrap();
    assert_eq!(g.hierarchy, Hierarchy::V2);
    assert_eq!(g.path, "/system.slice/web.service");
    let g = cg.find_unit("db.service").unwrap();
    assert_eq!(g.hierarchy, Hierarchy::V1("memory".into()));
    // The shallowest match wins.
    v2_group(
        t.path(),
        "sys/fs/cgroup/unified/user.slice/user-1.slice/user@1.service/app.slice/web2.service",
        "",
        false,
    );
    v2_group(
        t.path(),
        "sys/fs/cgroup/unified/system.slice/web2.service",
        "",
        false,
    );
    assert_eq!(
        cg.find_unit("web2.service").unwrap().path,
        "/system.slice/web2.service"
    );
    let msg = cg.find_unit("nope.service").unwrap_err().to_string();
    assert!(msg.contains("nope.service not found"), "{msg}");
}

#[test]
fn procs_recursive_collects_descendants() {
    let (t, cg) = hybrid();
    v2_group(t.path(), "sys/fs/cgroup/unified/p", "10\n11\n", false);
    v2_group(t.path(), "sys/fs/cgroup/unified/p/c1", "12\n", false);
    v2_group(t.path(), "sys/fs/cgroup/unified/p/c1/d", "13\n10\n", false);
    v2_group(t.path(), "sys/fs/cgroup/unified/p/c2", "", false);
    let g = cg.resolve("/sys/fs/cgroup/unified/p").unwrap();
    assert_eq!(cg.procs_recursive(&g).unwrap(), vec![10, 11, 12, 13]);
    put(t.path(), "sys/fs/cgroup/unified/p/c2/cgroup.procs", "x\n");
    let msg = cg.procs_recursive(&g).unwrap_err().to_string();
    assert!(
        msg.contains("c2/cgroup.procs") && msg.contains("\"x\""),
        "{msg}"
    );
}

#[test]
fn freeze_v2_writes_and_waits_for_events() {
    let (t, cg) = hybrid();
    v2_group(t.path(), "sys/fs/cgroup/unified/f", "5\n", true);
    let g = cg.resolve("/f").unwrap();
    let frozen = cg.freeze(&g).unwrap();
    assert_eq!(frozen, g);
    assert_eq!(get(t.path(), "sys/fs/cgroup/unified/f/cgroup.freeze"), "1");
    assert!(cg.is_frozen(&g).unwrap());
    // Thaw: the fake kernel flips events when we write 0.
    put(
        t.path(),
        "sys/fs/cgroup/unified/f/cgroup.events",
        "populated 1\nfrozen 0\n",
    );
    cg.thaw(&g).unwrap();
    assert_eq!(get(t.path(), "sys/fs/cgroup/unified/f/cgroup.freeze"), "0");
    cg.thaw(&g).unwrap();
}

#[test]
fn freeze_timeout_thaws_again_and_names_the_group() {
    let (t, cg) = hybrid();
    let cg = cg.with_freeze_timeout(Duration::from_millis(30));
    v2_group(t.path(), "sys/fs/cgroup/unified/slow", "5\n", false);
    let g = cg.resolve("/slow").unwrap();
    let e = cg.freeze(&g).unwrap_err();
    assert!(matches!(e, CgroupError::Timeout { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("unified/slow") && msg.contains("frozen 1"),
        "{msg}"
    );
    assert_eq!(
        get(t.path(), "sys/fs/cgroup/unified/slow/cgroup.freeze"),
        "0"
    );
}

#[test]
fn freeze_v1_freezer() {
    let (t, cg) = hybrid();
    v1_freezer_group(t.path(), "sys/fs/cgroup/freezer/v", "7\n");
    let g = cg.resolve("/v").unwrap();
    assert_eq!(cg.freeze(&g).unwrap(), g);
    assert_eq!(
        get(t.path(), "sys/fs/cgroup/freezer/v/freezer.state"),
        "FROZEN"
    );
    assert!(cg.is_frozen(&g).unwrap());
    cg.thaw(&g).unwrap();
    assert_eq!(
        get(t.path(), "sys/fs/cgroup/freezer/v/freezer.state"),
        "THAWED"
    );
    assert!(!cg.is_frozen(&g).unwrap());
}

#[test]
fn freeze_maps_a_non_freezer_group_to_one_that_can() {
    let (t, cg) = hybrid();
    put(t.path(), "sys/fs/cgroup/memory/w/cgroup.procs", "");
    v1_freezer_group(t.path(), "sys/fs/cgroup/freezer/w", "");
    let g = cg.resolve("/sys/fs/cgroup/memory/w").unwrap();
    let frozen = cg.freeze(&g).unwrap();
    assert_eq!(frozen.hierarchy, Hierarchy::V1("freezer".into()));
    assert_eq!(frozen.path, "/w");
    // Thawing by the original ref finds the same group.
    cg.thaw(&g).unwrap();
    assert_eq!(
        get(t.path(), "sys/fs/cgroup/freezer/w/freezer.state"),
        "THAWED"
    );
    // v2 is preferred when the same path has cgroup.freeze there.
    v2_group(t.path(), "sys/fs/cgroup/unified/w", "", true);
    assert_eq!(cg.freeze(&g).unwrap().hierarchy, Hierarchy::V2);
}

#[test]
fn freeze_without_freezer_or_of_a_root_is_refused() {
    let (t, cg) = hybrid();
    put(t.path(), "sys/fs/cgroup/memory/only/cgroup.procs", "");
    let g = cg.resolve("/sys/fs/cgroup/memory/only").unwrap();
    let e = cg.freeze(&g).unwrap_err();
    assert!(matches!(e, CgroupError::NoFreezer { .. }), "{e}");
    assert!(e.to_string().contains("memory/only"), "{e}");
    let root = cg.resolve("/sys/fs/cgroup/unified").unwrap();
    assert!(matches!(
        cg.freeze(&root).unwrap_err(),
        CgroupError::InvalidPath { .. }
    ));
}

#[test]
fn thaw_of_a_vanished_group_is_ok() {
    let (t, cg) = hybrid();
    v1_freezer_group(t.path(), "sys/fs/cgroup/freezer/gone", "");
    let g = cg.resolve("/gone").unwrap();
    std::fs::remove_dir_all(&g.dir).unwrap();
    cg.thaw(&g).unwrap();
}

#[test]
fn write_errors_name_file_and_data() {
    let (t, _cg) = hybrid();
    let p = t.path().join("sys/fs/cgroup/freezer/none/freezer.state");
    let e = fs::write(&p, "FROZEN").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot open for writing ") && msg.contains("none/freezer.state"),
        "{msg}"
    );
    assert!(msg.contains("(writing \"FROZEN\")"), "{msg}");
}

#[test]
fn pid_cgroups_of_self() {
    let v = Cgroups::pid_cgroups(std::process::id() as i32).unwrap();
    assert!(!v.is_empty());
    assert!(v.iter().all(|(_, p)| p.starts_with('/')));
    let e = Cgroups::pid_cgroups(i32::MAX).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("/proc/{}/cgroup", i32::MAX))
    );
}

#[test]
fn pid_group_matches_by_controller() {
    let (t, cg) = hybrid();
    // Our own process: map its real groups into the fake tree.
    let mine = Cgroups::pid_cgroups(std::process::id() as i32).unwrap();
    for (h, path) in &mine {
        if let Some(dir) = cg.dir_of(h, path) {
            std::fs::create_dir_all(dir).unwrap();
        }
    }
    let _ = t;
    if let Some((_, p)) = mine.iter().find(|(h, _)| *h == Hierarchy::V2) {
        let g = cg
            .pid_group(std::process::id() as i32, &Hierarchy::V2)
            .unwrap();
        assert_eq!(&g.path, p);
    }
}
