//! Resolution over fixture `/proc` trees, one per runtime, cgroup driver and cgroup
//! version. Each `testdata/*.txt` holds `pid PID ppid PPID comm COMM netns INODE` headers,
//! each followed by that process's `/proc/PID/cgroup` lines, and optionally
//! `self INODE` (the agent's own network namespace; pid 1's if absent). The loader lays
//! them out as `PID/cgroup`, `PID/stat`, `PID/ns/net -> net:[INODE]` under a temporary
//! directory, plus files that are not processes.

use super::*;

const WEB: &str = "f31f384749f9115acf01fcf82f5a966b59dcc0a4cbd7c9740888c0bf32aa2bbb";
const DB: &str = "f31f384749f9115ad8e610e862b1e5ecdeae9c59aaab8913729ae5647465b7bc";
const HOSTNET: &str = "7af9ab73461484c6fe1df9636529a07b25d551debac5f81a4d8bba07484909fd";
const CRI_APP: &str = "2373c664e91d41a19a1afe3d0166596efe4f2683dc8a8312b59df513ef817fa7";
const CRI_PAUSE: &str = "85d5f22c50d72095ed908630bfc653bb0c95ebd7d2008624bb7c3653a8577559";
const CRIO_APP: &str = "610713dca419d7deb83a1246d0c1ee0ac2e23b81cbb29bba37147e88e1848cda";
const PODMAN_APP: &str = "d1d8c4a878cabc72a5247c78936fa9b4c558e980c126289eaf09d5a5fa21f63f";
const PODMAN_INFRA: &str = "97d1cc736720a047c240ef98ebdbfbf81130a95c09ad4421e9fef50fc7c29a41";
const PODMAN_REC: &str = "ec1671989ad6454d3a648dd80f87567298e05d7496385512a1fcc9781787f09a";
const NERDCTL: &str = "9f7f472f19f829c1364b63e45fa316a94c88c2dfddd5193d4fbaf620e11be9bb";
const CTR: &str = "a1d3da899deb9862131ca6b22244975826bdf08612aa7ce5997f57e8ce4f35d1";
const KIND: &str = "7232fa5b7fe3f027d56d3feba41858ad7e5841fa3432d4b5b9f98c0186b6abbb";
const POD_UID: &str = "0d3c5b2e-9a7f-4c1e-8b1a-2f6e0c9d4a11";

fn fixture(name: &str) -> tempfile::TempDir {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sys/container/testdata")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let mut cur: Option<(PathBuf, String)> = None;
    let mut self_ns: Option<String> = None;
    let mut first_ns: Option<String> = None;
    let flush = |cur: &mut Option<(PathBuf, String)>| {
        if let Some((dir, cg)) = cur.take() {
            std::fs::write(dir.join("cgroup"), cg).unwrap();
        }
    };
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(ns) = line.strip_prefix("self ") {
            self_ns = Some(ns.trim().to_string());
            continue;
        }
        if let Some(h) = line.strip_prefix("pid ") {
            flush(&mut cur);
            let f: Vec<&str> = h.split(' ').collect();
            let (pid, ppid, comm) = (f[0], f[2], f[4]);
            let ns = f.get(6).copied().unwrap_or("");
            let dir = root.join(pid);
            std::fs::create_dir_all(dir.join("ns")).unwrap();
            std::fs::write(
                dir.join("stat"),
                format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 1234 0 0\n"),
            )
            .unwrap();
            if !ns.is_empty() {
                std::os::unix::fs::symlink(format!("net:[{ns}]"), dir.join("ns/net")).unwrap();
                first_ns.get_or_insert(ns.to_string());
            }
            cur = Some((dir, String::new()));
            continue;
        }
        let (_, cg) = cur.as_mut().expect("cgroup line before a pid header");
        cg.push_str(line);
        cg.push('\n');
    }
    flush(&mut cur);
    if let Some(ns) = self_ns.or(first_ns) {
        std::fs::create_dir_all(root.join("self/ns")).unwrap();
        std::os::unix::fs::symlink(format!("net:[{ns}]"), root.join("self/ns/net")).unwrap();
    }
    // Entries that are not processes, and a process without a cgroup file.
    std::fs::write(root.join("meminfo"), "MemTotal: 1 kB\n").unwrap();
    std::fs::create_dir_all(root.join("sys/kernel")).unwrap();
    std::fs::create_dir_all(root.join("99999")).unwrap();
    t
}

fn q(s: &str) -> ContainerQuery {
    ContainerQuery::parse(s).unwrap()
}

fn resolve_in(name: &str, id: &str) -> Container {
    let t = fixture(name);
    resolve(&q(&id[..12]), t.path()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

const V1_NAMES: [&str; 11] = [
    "hugetlb",
    "pids",
    "net_cls,net_prio",
    "cpuset",
    "perf_event",
    "freezer",
    "memory",
    "blkio",
    "devices",
    "cpu,cpuacct",
    "name=systemd",
];

/// A container seen in cgroup v1 has the same group in every v1 hierarchy but rdma.
fn assert_v1_everywhere(c: &Container, group: &str) {
    for n in V1_NAMES {
        assert_eq!(
            c.cgroup_in(&Hierarchy::V1(n.into())),
            Some(group),
            "{n} in {c}"
        );
    }
    assert_eq!(c.cgroup_in(&Hierarchy::V1("rdma".into())), None);
    assert_eq!(c.cgroup_in(&Hierarchy::V1("cpu".into())), Some(group));
}

#[test]
fn docker_cgroupfs_v1() {
    let t = fixture("docker-cgroupfs-v1");
    let c = resolve(&q("f31f384749f9115ac"), t.path()).unwrap();
    assert_eq!(c.id, WEB);
    assert_eq!((c.runtime, c.driver), (Runtime::Docker, Driver::Cgroupfs));
    let g = format!("/docker/{WEB}");
    assert_eq!(c.cgroup(), g);
    assert_v1_everywhere(&c, &g);
    assert_eq!(c.cgroup_in(&Hierarchy::V2), None);
    assert_eq!(c.pids(), vec![2320, 2377]);
    assert_eq!(c.init, 2320);
    assert_eq!(
        c.netns,
        Some(NetnsInfo {
            pid: 2320,
            inode: 4026532301,
            host: false
        })
    );
    assert_eq!(c.pod_uid, None);
    assert_eq!(
        c.to_string(),
        format!(
            "container {WEB} (docker, cgroupfs driver): cgroup /docker/{WEB}; processes 2320 (nginx), 2377 (nginx); network namespace net:[4026532301] of pid 2320"
        )
    );
    // The full id, and the Kubernetes form, resolve the same.
    assert_eq!(resolve(&q(WEB), t.path()).unwrap(), c);
    assert_eq!(
        resolve(&q(&format!("docker://{WEB}")), t.path()).unwrap(),
        c
    );
    let db = resolve(&q(&DB[..17]), t.path()).unwrap();
    assert_eq!((db.id.as_str(), db.pids()), (DB, vec![2410]));
}

#[test]
fn docker_systemd_v2_and_host_network() {
    let c = resolve_in("docker-systemd-v2", WEB);
    assert_eq!((c.runtime, c.driver), (Runtime::Docker, Driver::Systemd));
    assert_eq!(
        c.cgroups,
        vec![(Hierarchy::V2, format!("/system.slice/docker-{WEB}.scope"))]
    );
    assert_eq!(c.pids(), vec![3100, 3150]);
    assert!(!c.netns.unwrap().host);
    let h = resolve_in("docker-systemd-v2", HOSTNET);
    let ns = h.netns.unwrap();
    assert!(ns.host, "{h}");
    assert!(h.to_string().ends_with(
        "network namespace net:[4026531840] of pid 3201, the agent's own (host network)"
    ));
}

#[test]
fn docker_cgroupfs_on_a_hybrid_host_falls_back_to_v1() {
    // The unified line names containerd's service, not a container.
    let c = resolve_in("docker-cgroupfs-hybrid", WEB);
    assert_eq!(c.cgroup(), format!("/docker/{WEB}"));
    assert_eq!(c.cgroup_in(&Hierarchy::V2), None);
    assert_eq!(c.pids(), vec![4000]);
}

#[test]
fn containerd_cri_systemd_v2() {
    let c = resolve_in("containerd-cri-systemd-v2", CRI_APP);
    assert_eq!(
        (c.runtime, c.driver),
        (Runtime::ContainerdCri, Driver::Systemd)
    );
    assert_eq!(c.pod_uid.as_deref(), Some(POD_UID));
    assert_eq!(
        c.cgroup(),
        format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3c5b2e_9a7f_4c1e_8b1a_2f6e0c9d4a11.slice/cri-containerd-{CRI_APP}.scope"
        )
    );
    assert_eq!(c.pids(), vec![5050, 5090]);
    assert_eq!(c.init, 5050);
    assert_eq!(
        c.kind(),
        format!("containerd (cri), systemd driver, pod {POD_UID}")
    );
    // The sandbox (pause) container is a container of its own.
    let p = resolve_in("containerd-cri-systemd-v2", CRI_PAUSE);
    assert_eq!(p.pids(), vec![5001]);
    assert_eq!(p.netns.unwrap().inode, c.netns.unwrap().inode);
}

#[test]
fn containerd_cri_cgroupfs_v1() {
    let c = resolve_in("containerd-cri-cgroupfs-v1", CRI_APP);
    assert_eq!(
        (c.runtime, c.driver),
        (Runtime::KubeletCgroupfs, Driver::Cgroupfs)
    );
    assert_eq!(c.pod_uid.as_deref(), Some(POD_UID));
    let g = format!("/kubepods/besteffort/pod{POD_UID}/{CRI_APP}");
    assert_v1_everywhere(&c, &g);
    assert_eq!(c.pids(), vec![5050]);
}

#[test]
fn containerd_cri_seen_from_a_private_cgroup_namespace() {
    let c = resolve_in("containerd-cri-namespaced-v2", CRI_APP);
    assert_eq!(c.runtime, Runtime::ContainerdCri);
    assert!(
        c.cgroup().starts_with("/../../kubepods-burstable.slice/"),
        "{c}"
    );
}

#[test]
fn containerd_without_cri() {
    let c = resolve_in("containerd-nerdctl-systemd-v2", NERDCTL);
    assert_eq!(
        (c.runtime, c.driver),
        (Runtime::Containerd, Driver::Systemd)
    );
    assert_eq!(c.cgroup(), format!("/system.slice/nerdctl-{NERDCTL}.scope"));
    let c = resolve_in("containerd-ctr-cgroupfs-v1", CTR);
    assert_eq!(
        (c.runtime, c.driver),
        (Runtime::Containerd, Driver::Cgroupfs)
    );
    assert_v1_everywhere(&c, &format!("/default/{CTR}"));
}

#[test]
fn crio_systemd_v2_leaves_conmon_out() {
    let c = resolve_in("crio-systemd-v2", CRIO_APP);
    assert_eq!((c.runtime, c.driver), (Runtime::CriO, Driver::Systemd));
    // The group is the scope; crun runs the process one level below it.
    assert!(
        c.cgroup().ends_with(&format!("/crio-{CRIO_APP}.scope")),
        "{c}"
    );
    assert_eq!(c.procs, vec![(7010, "app".to_string())]);
    assert_eq!(c.pod_uid.as_deref(), Some(POD_UID));
}

#[test]
fn crio_cgroupfs_v1_leaves_conmon_out() {
    let c = resolve_in("crio-cgroupfs-v1", CRIO_APP);
    assert_eq!((c.runtime, c.driver), (Runtime::CriO, Driver::Cgroupfs));
    assert_v1_everywhere(
        &c,
        &format!("/kubepods/burstable/pod{POD_UID}/crio-{CRIO_APP}"),
    );
    assert_eq!(c.pids(), vec![7010]);
}

#[test]
fn podman_systemd_v2_in_a_pod() {
    let c = resolve_in("podman-systemd-v2", PODMAN_APP);
    assert_eq!((c.runtime, c.driver), (Runtime::Podman, Driver::Systemd));
    assert_eq!(c.procs, vec![(8020, "python3".to_string())]);
    assert!(c.cgroup().ends_with(&format!("/libpod-{PODMAN_APP}.scope")));
    // The pod's infra container is another container; the pod's slice id is not one.
    let infra = resolve_in("podman-systemd-v2", PODMAN_INFRA);
    assert_eq!(infra.pids(), vec![8010]);
}

#[test]
fn podman_cgroupfs_hybrid_recorded_here() {
    let c = resolve_in("podman-cgroupfs-hybrid", PODMAN_REC);
    assert_eq!((c.runtime, c.driver), (Runtime::Podman, Driver::Cgroupfs));
    let g = format!("/libpod_parent/libpod-{PODMAN_REC}");
    assert_eq!(c.cgroup_in(&Hierarchy::V2), Some(g.as_str()));
    assert_eq!(
        c.cgroup_in(&Hierarchy::V1("freezer".into())),
        Some(g.as_str())
    );
    assert_eq!(c.cgroup_in(&Hierarchy::V1("cpu".into())), Some(g.as_str()));
    assert_eq!(c.cgroups.len(), 10);
    // conmon (pid 12308) is in /libpod_parent/conmon, outside the container.
    assert_eq!(c.pids(), vec![12320, 12331]);
    assert_eq!(c.init, 12320);
    assert_eq!(
        c.netns,
        Some(NetnsInfo {
            pid: 12320,
            inode: 4026532181,
            host: false
        })
    );
}

#[test]
fn nested_containers_are_told_apart() {
    let node = resolve_in("kind-nested-v1", KIND);
    assert_eq!(node.pids(), vec![9000]);
    assert_eq!(node.cgroup(), format!("/docker/{KIND}"));
    let app = resolve_in("kind-nested-v1", CRI_APP);
    assert_eq!(app.pids(), vec![9300]);
    assert_eq!(app.runtime, Runtime::KubeletCgroupfs);
}

#[test]
fn ambiguous_prefixes_name_what_matched() {
    let t = fixture("docker-cgroupfs-v1");
    let e = resolve(&q("f31f384749f9"), t.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "container id f31f384749f9 is ambiguous: it starts 2 containers' ids: {WEB} (docker), {DB} (docker); give more digits"
        )
    );
    // Sixteen digits still match both, seventeen tell them apart.
    assert!(resolve(&q("f31f384749f9115a"), t.path()).is_err());
    assert_eq!(resolve(&q("f31f384749f9115ad"), t.path()).unwrap().id, DB);
}

#[test]
fn unknown_ids_list_what_runs() {
    let t = fixture("containerd-cri-systemd-v2");
    let e = resolve(&q("deadbeefdeadbeef"), t.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "no running container on this node has an id starting with deadbeefdeadbeef; 2 containers are running: 2373c664e91d (containerd (cri)), 85d5f22c50d7 (containerd (cri))"
    );
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("1")).unwrap();
    std::fs::write(empty.path().join("1/cgroup"), "0::/init.scope\n").unwrap();
    let e = resolve(&q("deadbeefdeadbeef"), empty.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "no running container on this node has an id starting with deadbeefdeadbeef; no process on this node is in a container's cgroup (read /proc/*/cgroup)"
    );
    let e = resolve(&q("deadbeefdeadbeef"), Path::new("/nonexistent-proc"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot list processes in /nonexistent-proc: "),
        "{e}"
    );
}

#[test]
fn long_lists_are_cut() {
    let t = tempfile::tempdir().unwrap();
    for i in 0..11 {
        let dir = t.path().join((100 + i).to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let id = format!("{i:02}{}", "a".repeat(62));
        std::fs::write(
            dir.join("cgroup"),
            format!("0::/system.slice/docker-{id}.scope\n"),
        )
        .unwrap();
        std::fs::write(dir.join("stat"), format!("{} (x) S 1 0\n", 100 + i)).unwrap();
    }
    let e = resolve(&q("ffffffffffff"), t.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("11 containers are running: 00aaaaaaaaaa (docker), "),
        "{e}"
    );
    assert!(e.ends_with(", 07aaaaaaaaaa (docker), and 3 more"), "{e}");
}

#[test]
fn the_real_proc_of_this_host_scans() {
    // Whatever runs here, the scan of the real /proc must succeed, and this test process
    // is in no container's group unless the host runs the tests in one.
    let members = scan(Path::new("/proc")).unwrap();
    let me = std::process::id() as i32;
    if let Some(m) = members.iter().find(|m| m.pid == me) {
        assert!(is_full_id(&m.naming.id));
    }
}

#[test]
fn stat_parses_comm_with_spaces_and_parens() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("5")).unwrap();
    std::fs::write(t.path().join("5/stat"), "5 (a (b) c) S 42 5 5 0\n").unwrap();
    assert_eq!(stat(t.path(), 5), Some((42, "a (b) c".into())));
    assert_eq!(stat(t.path(), 6), None);
}
