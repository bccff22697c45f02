//! Real containers (podman with runc, see `support/container.rs`): faultd finds them from
//! `/proc/*/cgroup` alone, by id or by a 12-digit prefix.

use std::path::Path;

use faultline_agent::sys::container::{ContainerQuery, Runtime, resolve};
use faultline_tests::container::{Container, sweep};
use faultline_tests::require;

const TAG: &str = "ctrtest";

fn start(cmd: &[&str]) -> Container {
    sweep(TAG);
    Container::start(TAG, cmd).unwrap_or_else(|e| panic!("cannot start a container: {e}"))
}

#[test]
fn a_real_container_resolves_by_prefix_with_its_pids_cgroup_and_netns() {
    require!("root", "podman");
    let c = start(&["/bin/sh", "-c", "sleep 300 & exec sleep 301"]);
    // The shell's child is started asynchronously: wait until both run.
    let q = ContainerQuery::parse(&c.id[..12]).unwrap();
    let mut found = resolve(&q, Path::new("/proc")).unwrap();
    for _ in 0..50 {
        if found.procs.len() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        found = resolve(&q, Path::new("/proc")).unwrap();
    }
    assert_eq!(found.id, c.id);
    assert_eq!(found.runtime, Runtime::Podman);
    assert_eq!(found.init, c.pid);
    assert_eq!(found.procs.len(), 2, "{found}");
    assert!(
        found.procs.iter().all(|(_, comm)| comm == "sleep"),
        "{found}"
    );
    // Its cgroup is the one the kernel shows for the container's process.
    assert_eq!(found.cgroup(), c.cgroup().unwrap());
    // Every pid listed is in that cgroup, and conmon (its parent) is not listed.
    let conmon: i32 = c.inspect("{{.State.ConmonPid}}").unwrap().parse().unwrap();
    assert!(!found.pids().contains(&conmon));
    for pid in found.pids() {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(text.contains(&c.id), "pid {pid}: {text}");
    }
    // Its network namespace is its own (--network none), not the agent's.
    let ns = found.netns.expect("the namespace link is readable as root");
    let link = std::fs::read_link(format!("/proc/{}/ns/net", c.pid)).unwrap();
    assert_eq!(link.to_str().unwrap(), format!("net:[{}]", ns.inode));
    assert!(!ns.host);
    println!("{found}");
}

#[test]
fn host_network_containers_are_seen_as_such_and_gone_ones_are_not_found() {
    require!("root", "podman");
    sweep(TAG);
    let mut c = Container::start_with(TAG, &["--network", "host"], &["/bin/sleep", "300"])
        .unwrap_or_else(|e| panic!("cannot start a container: {e}"));
    let q = ContainerQuery::parse(&c.id).unwrap();
    let found = resolve(&q, Path::new("/proc")).unwrap();
    assert!(found.netns.unwrap().host, "{found}");
    c.remove().unwrap();
    let e = resolve(&q, Path::new("/proc")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "no running container on this node has an id starting with {}",
            c.id
        )),
        "{e}"
    );
}
