//! The remote API lets no one in: mutual TLS with certificates made at test time, roles,
//! the audit log (one line per RPC, on disk before the reply), metrics moving with the
//! faults, and a bad-input battery from a raw tonic client. TCP only on 127.0.0.1.

#[path = "net_common/mod.rs"]
mod net_common;

use std::path::Path;
use std::time::Duration;

use faultline_proto::v1 as pb;
use faultline_proto::v1::agent_client::AgentClient;
use faultline_tests::agent::{Agent, AgentOptions, Victim, eventually};
use faultline_tests::pki::{Ca, free_port, tls_config};
use faultline_tests::require;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

struct TlsAgent {
    agent: Agent,
    port: u16,
    ca: Ca,
    pki: tempfile::TempDir,
}

/// An agent serving mutual TLS on 127.0.0.1: `alice` is operator, `grafana` viewer.
fn tls_agent() -> TlsAgent {
    let pki = tempfile::tempdir().unwrap();
    let ca = Ca::new(pki.path(), "fleet-ca");
    let (cert, key) = ca.leaf(pki.path(), "node1", false);
    let port = free_port();
    let agent = Agent::start_with(AgentOptions {
        config: Some(tls_config(
            port,
            &cert,
            &key,
            &ca.pem,
            "operator = [\"alice\"]\nviewer = [\"grafana\"]\n",
        )),
        ..Default::default()
    });
    TlsAgent {
        agent,
        port,
        ca,
        pki,
    }
}

async fn tls_client(
    port: u16,
    ca: &Path,
    id: Option<(&Path, &Path)>,
) -> Result<AgentClient<Channel>, String> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some((c, k)) = id {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(c).unwrap(),
            std::fs::read(k).unwrap(),
        ));
    }
    let ch = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(AgentClient::new(ch))
}

/// Status over a fresh TLS connection: Ok, or the error text.
async fn tls_status(port: u16, ca: &Path, id: Option<(&Path, &Path)>) -> Result<(), String> {
    let mut c = tls_client(port, ca, id).await?;
    c.status(pb::StatusRequest {})
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

fn audit_lines(state_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state_dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad audit line {l:?}: {e}")))
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tcp_without_tls_configuration_is_refused() {
    let out = std::process::Command::new(faultline_tests::bin("faultd"))
        .args(["--listen", "127.0.0.1:1", "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 127.0.0.1:1 without mutual TLS: set tls_cert, tls_key, tls_client_ca"),
        "{err}"
    );
}

#[test]
fn mtls_refuses_strangers_and_viewers_audits_all_and_lets_an_operator_pause() {
    require!("root");
    let t = tls_agent();
    let dir = t.pki.path();
    let odir = dir.join("other");
    std::fs::create_dir(&odir).unwrap();
    let other = Ca::new(&odir, "other-ca");
    let (o_cert, o_key) = other.leaf(&odir, "alice", false);
    let (x_cert, x_key) = t.ca.leaf(dir, "alice", true);
    let (v_cert, v_key) = t.ca.leaf(dir, "grafana", false);
    let (u_cert, u_key) = t.ca.leaf(dir, "mallory", false);
    let (a_cert, a_key) = t.ca.leaf(dir, "alice", false);
    let state = t.agent.state_dir();
    let rt = rt();
    rt.block_on(async {
        // No client certificate, another CA, an expired certificate: the handshake fails.
        for (what, id) in [
            ("no client certificate", None),
            ("another CA", Some((o_cert.as_path(), o_key.as_path()))),
            ("expired", Some((x_cert.as_path(), x_key.as_path()))),
        ] {
            let r = tls_status(t.port, &t.ca.pem, id).await;
            assert!(r.is_err(), "{what}: Status succeeded");
        }
        // A certificate of our CA whose identity has no role.
        let r = tls_status(t.port, &t.ca.pem, Some((&u_cert, &u_key))).await;
        assert!(
            r.as_ref()
                .is_err_and(|e| e.starts_with("PermissionDenied") && e.contains("mallory")),
            "{r:?}"
        );
        // A viewer reads, but may not inject.
        let mut v = tls_client(t.port, &t.ca.pem, Some((&v_cert, &v_key)))
            .await
            .unwrap();
        v.status(pb::StatusRequest {}).await.expect("viewer Status");
        let e = v
            .inject(pb::InjectRequest {
                spec: Some(pb::FaultSpec {
                    kind: Some(pb::fault_spec::Kind::Pause(pb::PauseSpec {
                        selector: Some(pb::ProcessSelector {
                            pid: Some(1),
                            ..Default::default()
                        }),
                        pick: None,
                    })),
                }),
                duration_ms: 1000,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("needs role operator"), "{e:?}");
    });
    // Each refusal is on record.
    let lines = audit_lines(&state);
    let handshakes: Vec<_> = lines
        .iter()
        .filter(|l| l["rpc"] == "TlsHandshake")
        .collect();
    assert!(
        handshakes.len() >= 3,
        "three refused handshakes audited: {lines:#?}"
    );
    for h in &handshakes {
        assert_eq!(h["decision"], "refused");
        assert_eq!(h["result"], "Unauthenticated");
        assert!(h["peer"].as_str().unwrap().starts_with("tcp:127.0.0.1:"));
    }
    let msgs: String = handshakes
        .iter()
        .map(|h| h["message"].as_str().unwrap_or("").to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        msgs.contains("expired"),
        "an expired certificate named: {msgs}"
    );
    assert!(
        lines.iter().any(|l| l["identity"] == "mallory"
            && l["rpc"] == "Status"
            && l["decision"] == "refused"
            && l["result"] == "PermissionDenied"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["identity"] == "grafana"
            && l["rpc"] == "Inject"
            && l["decision"] == "refused"
            && l["result"] == "PermissionDenied"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["identity"] == "grafana" && l["rpc"] == "Status" && l["result"] == "ok"),
        "{lines:#?}"
    );

    // The operator, through the real faultctl over https: pause a child sleep, revert it.
    let v = Victim::sleep("faultline-sec-tls");
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(faultline_tests::bin("faultctl"))
            .arg("--agent")
            .arg(format!("https://127.0.0.1:{}", t.port))
            .env("FAULTLINE_CA", &t.ca.pem)
            .env("FAULTLINE_CERT", &a_cert)
            .env("FAULTLINE_KEY", &a_key)
            .env("HOME", dir)
            .args(["-o", "json"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "faultctl {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            t.agent.log_text()
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let out = ctl(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "60s",
    ]);
    let id = out["fault"]["id"].as_str().expect("fault id").to_string();
    assert_eq!(v.state(), Some('T'), "paused over TLS");
    ctl(&["revert", &id]);
    assert!(
        eventually(Duration::from_secs(5), || v.state() == Some('S')),
        "resumed"
    );
    let lines = audit_lines(&state);
    for rpc in ["Inject", "Revert"] {
        assert!(
            lines.iter().any(|l| l["identity"] == "alice"
                && l["rpc"] == rpc
                && l["decision"] == "allowed"
                && l["result"] == "ok"
                && l["fault_id"] == id.as_str()),
            "{rpc} by alice audited: {lines:#?}"
        );
    }
}

fn pause_pid(pid: i32, duration_ms: u64) -> pb::InjectRequest {
    pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Pause(pb::PauseSpec {
                selector: Some(pb::ProcessSelector {
                    pid: Some(pid),
                    ..Default::default()
                }),
                pick: None,
            })),
        }),
        duration_ms,
        ..Default::default()
    }
}

#[test]
fn every_rpc_writes_exactly_one_audit_line() {
    require!("root");
    let agent = Agent::start();
    let v = Victim::sleep("faultline-sec-audit");
    rt().block_on(async {
        let mut c = faultline_controller::connect(&agent.uri()).await.unwrap();
        let _ = c.status(pb::StatusRequest {}).await;
        let _ = c.get_limits(pb::GetLimitsRequest {}).await;
        let _ = c.list(pb::ListRequest::default()).await;
        let _ = c
            .get(pb::GetRequest {
                id: "f-nope".into(),
            })
            .await;
        let mut dry = pause_pid(v.pid(), 1000);
        dry.dry_run = true;
        let _ = c.inject(dry).await;
        let _ = c
            .revert(pb::RevertRequest {
                id: "f-nope".into(),
                ..Default::default()
            })
            .await;
        let _ = c.revert_all(pb::RevertAllRequest::default()).await;
        let lease = c
            .open_lease(pb::OpenLeaseRequest {
                ttl_ms: 30_000,
                holder: "audit-test".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let _ = c
            .renew_lease(pb::RenewLeaseRequest {
                id: lease.id.clone(),
            })
            .await;
        let ka = c
            .keep_alive(tokio_stream::iter(vec![pb::RenewLeaseRequest {
                id: lease.id.clone(),
            }]))
            .await
            .unwrap();
        drop(ka);
        let _ = c
            .close_lease(pb::CloseLeaseRequest {
                id: lease.id.clone(),
                revert_faults: true,
            })
            .await;
        let w = c.watch(pb::WatchRequest::default()).await.unwrap();
        drop(w);
    });
    // Agent::start's readiness probe (grpc.health.v1) is audited too: leave it out.
    let lines: Vec<_> = audit_lines(&agent.state_dir())
        .into_iter()
        .filter(|l| {
            !l["rpc"]
                .as_str()
                .unwrap_or("")
                .starts_with("grpc.health.v1.")
        })
        .collect();
    let rpcs: Vec<&str> = lines.iter().map(|l| l["rpc"].as_str().unwrap()).collect();
    assert_eq!(
        rpcs,
        [
            "Status",
            "GetLimits",
            "List",
            "Get",
            "Inject",
            "Revert",
            "RevertAll",
            "OpenLease",
            "RenewLease",
            "KeepAlive",
            "CloseLease",
            "Watch"
        ],
        "{lines:#?}"
    );
    for l in &lines {
        assert!(l["identity"].as_str().unwrap().starts_with("uid=0("), "{l}");
        assert!(l["peer"].as_str().unwrap().starts_with("unix:"), "{l}");
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    assert_eq!(lines[3]["result"], "NotFound");
    assert_eq!(lines[3]["fault_id"], "f-nope");
    assert_eq!(lines[3]["decision"], "allowed");
    assert_eq!(lines[7]["result"], "ok");
}

#[test]
fn refused_request_is_on_disk_when_faultd_is_killed() {
    require!("root");
    let mut agent = Agent::start();
    let v = Victim::sleep("faultline-sec-kill");
    let e = rt().block_on(async {
        let mut c = faultline_controller::connect(&agent.uri()).await.unwrap();
        // 100 hours: over the production max_duration.
        c.inject(pause_pid(v.pid(), 100 * 3600 * 1000))
            .await
            .unwrap_err()
    });
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    agent.crash(); // SIGKILL, right after the reply
    let lines = audit_lines(&agent.state_dir());
    let last = lines.last().expect("a line on disk");
    assert_eq!(last["rpc"], "Inject");
    assert_eq!(last["decision"], "refused");
    assert_eq!(last["limit"], "max_duration");
    assert_eq!(last["result"], "PermissionDenied");
    assert_eq!(v.state(), Some('S'), "nothing was paused");
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    out
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn metrics_move_as_faults_are_injected_and_reverted() {
    require!("root");
    let port = free_port();
    let agent = Agent::start_with(AgentOptions {
        config: Some(format!("metrics_listen = \"127.0.0.1:{port}\"\n")),
        ..Default::default()
    });
    let v = Victim::sleep("faultline-sec-metrics");
    let active = r#"faultline_active_faults{kind="pause"}"#;
    let injected = r#"faultline_faults_total{event="injected",kind="pause",reason=""}"#;
    let reverted = r#"faultline_faults_total{event="reverted",kind="pause",reason="request"}"#;
    let m0 = scrape(port);
    assert_eq!(metric(&m0, active), 0.0, "{m0}");
    let out = agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "60s",
    ]);
    let id = out["fault"]["id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(5), || {
            let m = scrape(port);
            metric(&m, active) == 1.0 && metric(&m, injected) == 1.0
        }),
        "{}",
        scrape(port)
    );
    agent.ctl_json(&["revert", &id]);
    assert!(
        eventually(Duration::from_secs(5), || {
            let m = scrape(port);
            metric(&m, active) == 0.0 && metric(&m, reverted) == 1.0
        }),
        "{}",
        scrape(port)
    );
    let m = scrape(port);
    assert!(
        metric(
            &m,
            r#"faultline_rpc_duration_seconds_count{method="Inject"}"#
        ) >= 1.0,
        "{m}"
    );
}

#[test]
fn bad_input_battery_from_a_raw_client_changes_nothing() {
    require!("root");
    let agent = Agent::start();
    let v = Victim::sleep("faultline-sec-bad");
    let pid = v.pid();
    let pause = |sel: pb::ProcessSelector, pick: Option<pb::Pick>, ms: u64| pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Pause(pb::PauseSpec {
                selector: Some(sel),
                pick,
            })),
        }),
        duration_ms: ms,
        ..Default::default()
    };
    let by_pid = || pb::ProcessSelector {
        pid: Some(pid),
        ..Default::default()
    };
    let kill = |signal: &str, every_ms: u64, ms: u64| pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Kill(pb::KillSpec {
                selector: Some(by_pid()),
                pick: None,
                signal: signal.into(),
                every_ms,
            })),
        }),
        duration_ms: ms,
        ..Default::default()
    };
    // Network faults aim at `lo` of a namespace of the test's own, never the root
    // namespace's: should one be accepted by mistake, it lands there.
    let ns = net_common::Netns::new();
    let net = |n: pb::NetemSpec, iface: &str| pb::InjectRequest {
        spec: Some(pb::FaultSpec {
            kind: Some(pb::fault_spec::Kind::Network(pb::NetworkSpec {
                iface: iface.into(),
                netns: ns.name.clone(),
                pid: 0,
                direction: String::new(),
                netem: Some(n),
                selection: None,
                container: String::new(),
                ..Default::default()
            })),
        }),
        duration_ms: 10_000,
        ..Default::default()
    };
    let huge = "x".repeat(64 << 10);
    let mut many_labels = pause(by_pid(), None, 1000);
    for i in 0..1000 {
        many_labels.labels.insert(format!("k{i}"), "v".into());
    }
    let mut huge_label = pause(by_pid(), None, 1000);
    huge_label.labels.insert(huge.clone(), "v".into());
    let mut bad_lease = pause(by_pid(), None, 1000);
    bad_lease.lease_id = "no-such-lease".into();
    use tonic::Code::*;
    let cases: Vec<(&str, pb::InjectRequest, tonic::Code, &str)> = vec![
        (
            "missing spec",
            pb::InjectRequest::default(),
            InvalidArgument,
            "spec",
        ),
        (
            "empty kind",
            pb::InjectRequest {
                spec: Some(pb::FaultSpec { kind: None }),
                ..Default::default()
            },
            InvalidArgument,
            "spec",
        ),
        (
            "missing selector",
            pause(pb::ProcessSelector::default(), None, 1000),
            InvalidArgument,
            "selector",
        ),
        (
            "pause without duration",
            pause(by_pid(), None, 0),
            InvalidArgument,
            "duration_ms",
        ),
        (
            "duration u64::MAX",
            pause(by_pid(), None, u64::MAX),
            PermissionDenied,
            "max_duration",
        ),
        (
            "negative pid",
            pause(
                pb::ProcessSelector {
                    pid: Some(-5),
                    ..Default::default()
                },
                None,
                1000,
            ),
            InvalidArgument,
            "pid",
        ),
        (
            "percent 150",
            pause(
                by_pid(),
                Some(pb::Pick {
                    mode: Some(pb::pick::Mode::Percent(150.0)),
                }),
                1000,
            ),
            InvalidArgument,
            "pick",
        ),
        (
            "percent NaN",
            pause(
                by_pid(),
                Some(pb::Pick {
                    mode: Some(pb::pick::Mode::Percent(f64::NAN)),
                }),
                1000,
            ),
            InvalidArgument,
            "pick",
        ),
        (
            "count 0",
            pause(
                by_pid(),
                Some(pb::Pick {
                    mode: Some(pb::pick::Mode::Count(0)),
                }),
                1000,
            ),
            InvalidArgument,
            "pick",
        ),
        (
            "huge name",
            pause(
                pb::ProcessSelector {
                    name: Some(huge.clone()),
                    ..Default::default()
                },
                None,
                1000,
            ),
            InvalidArgument,
            "name",
        ),
        (
            "bad signal",
            kill("SIGFOO", 0, 0),
            InvalidArgument,
            "spec.kill.signal",
        ),
        (
            "repeating kill without duration",
            kill("SIGKILL", 1000, 0),
            InvalidArgument,
            "duration_ms",
        ),
        ("1000 labels", many_labels, InvalidArgument, "labels"),
        ("64 KiB label key", huge_label, InvalidArgument, "labels"),
        ("unknown lease", bad_lease, NotFound, "lease"),
        (
            "loss 150%",
            net(
                pb::NetemSpec {
                    loss_percent: 150.0,
                    ..Default::default()
                },
                "lo",
            ),
            InvalidArgument,
            "loss",
        ),
        (
            "delay 1 day",
            net(
                pb::NetemSpec {
                    delay_us: 86_400_000_000,
                    ..Default::default()
                },
                "lo",
            ),
            InvalidArgument,
            "delay",
        ),
        (
            "jitter without delay",
            net(
                pb::NetemSpec {
                    jitter_us: 1000,
                    ..Default::default()
                },
                "lo",
            ),
            InvalidArgument,
            "jitter",
        ),
        (
            "huge iface",
            net(
                pb::NetemSpec {
                    delay_us: 1000,
                    ..Default::default()
                },
                &huge,
            ),
            InvalidArgument,
            "iface",
        ),
        (
            "empty netem",
            net(pb::NetemSpec::default(), "lo"),
            InvalidArgument,
            "netem",
        ),
    ];
    let mut failures = Vec::new();
    rt().block_on(async {
        let mut c = faultline_controller::connect(&agent.uri()).await.unwrap();
        for (name, req, code, field) in cases {
            match c.inject(req).await {
                Result::Ok(r) => {
                    failures.push(format!("{name}: accepted: {:?}", r.into_inner().fault))
                }
                Result::Err(s) => {
                    if s.code() != code || !s.message().contains(field) {
                        failures.push(format!(
                            "{name}: want {code:?} naming {field:?}, got {:?}: {}",
                            s.code(),
                            s.message()
                        ));
                    }
                }
            }
        }
        // Other RPCs.
        let e = c
            .get(pb::GetRequest { id: String::new() })
            .await
            .unwrap_err();
        if e.code() != InvalidArgument || !e.message().contains("id") {
            failures.push(format!("Get empty id: {e:?}"));
        }
        let e = c
            .revert(pb::RevertRequest {
                id: huge.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        if e.code() != NotFound {
            failures.push(format!("Revert 64 KiB id: {:?}", e.code()));
        }
        let e = c
            .open_lease(pb::OpenLeaseRequest {
                ttl_ms: 0,
                holder: String::new(),
            })
            .await
            .unwrap_err();
        if e.code() != InvalidArgument || !e.message().contains("ttl_ms") {
            failures.push(format!("OpenLease ttl 0: {e:?}"));
        }
        let e = c
            .open_lease(pb::OpenLeaseRequest {
                ttl_ms: u64::MAX,
                holder: String::new(),
            })
            .await
            .unwrap_err();
        if !matches!(e.code(), InvalidArgument | PermissionDenied) {
            failures.push(format!("OpenLease ttl u64::MAX: {e:?}"));
        }
        // Nothing happened to the node.
        let all = c
            .list(pb::ListRequest {
                include_ended: true,
            })
            .await
            .unwrap()
            .into_inner();
        if !all.faults.is_empty() {
            failures.push(format!("faults were recorded: {:?}", all.faults));
        }
    });
    assert_eq!(v.state(), Some('S'), "the victim was never touched");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// docs/security.md: "faultd reopens the file on SIGHUP" (logrotate's `postrotate`). An
/// RPC after the move but before the signal still lands in the moved file (the open
/// descriptor); after SIGHUP the next one starts a new `audit.log`.
#[test]
fn sighup_reopens_the_audit_log_after_rotation() {
    require!("root");
    let agent = Agent::start();
    agent.ctl_json(&["status"]);
    let log = agent.state_dir().join("audit.log");
    let rotated = agent.state_dir().join("audit.log.1");
    let before = audit_lines(&agent.state_dir()).len();
    assert!(before >= 1, "the status call is audited");
    std::fs::rename(&log, &rotated).unwrap();
    agent.ctl_json(&["list"]);
    assert!(
        !log.exists(),
        "without SIGHUP the agent keeps writing the moved file"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || agent
            .log_text()
            .contains("audit log reopened")),
        "no reopen logged:\n{}",
        agent.log_text()
    );
    agent.ctl_json(&["limits"]);
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = audit_lines(&agent.state_dir());
    assert_eq!(
        old.lines().count(),
        before + 1,
        "the moved file has the lines up to the signal: {old}"
    );
    assert!(old.contains("List"), "{old}");
    assert_eq!(new.len(), 1, "the new file has the one call after: {new:?}");
    assert!(new[0].to_string().contains("Limits"), "{new:?}");
    assert!(agent.ctl(&["status"]).status.success(), "faultd carries on");
}

/// docs/security.md lists `faultline_lease_lapses_total` and
/// `faultline_health_aborts_total`: a lease that lapses and a health probe that fails
/// move them on /metrics.
#[test]
fn metrics_count_lease_lapses_and_health_aborts() {
    require!("root");
    let port = free_port();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let agent = Agent::start_with(AgentOptions {
        config: Some(format!("metrics_listen = \"127.0.0.1:{port}\"\n")),
        limits: Some(format!(
            "profile = \"staging\"\n[health]\ninterval = \"200ms\"\n[[health.probe]]\ntcp = \"{addr}\"\ntimeout = \"500ms\"\nfailures = 2\n"
        )),
        ..Default::default()
    });
    let lapses = "faultline_lease_lapses_total";
    let aborts = "faultline_health_aborts_total";
    let m0 = scrape(port);
    assert_eq!(
        (metric(&m0, lapses), metric(&m0, aborts)),
        (0.0, 0.0),
        "{m0}"
    );
    assert!(m0.contains(lapses) && m0.contains(aborts), "{m0}");

    let v = Victim::sleep("faultline-sec-lapse");
    // 4 s: the inject below must bind before it lapses, and two faultctl starts in a
    // loaded emulated guest have taken over a second.
    let out = agent.ctl(&["lease", "open", "--ttl", "4s"]);
    assert!(
        out.status.success(),
        "{}",
        faultline_tests::agent::stderr(&out)
    );
    let lease = String::from_utf8_lossy(&out.stdout).trim().to_string();
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v.pid().to_string(),
        "--for",
        "5m",
        "--lease",
        &lease,
    ]);
    assert!(
        eventually(Duration::from_secs(10), || metric(&scrape(port), lapses)
            == 1.0),
        "{}",
        scrape(port)
    );
    // The counter moves when the lapse is seen, before its reverts run: give the
    // revert a moment.
    assert!(
        eventually(Duration::from_secs(5), || v.state() == Some('S')),
        "the lapse reverted the pause: {:?}",
        v.state()
    );
    assert_eq!(metric(&scrape(port), aborts), 0.0, "healthy so far");

    drop(listener);
    let v2 = Victim::sleep("faultline-sec-health");
    agent.ctl_json(&[
        "inject",
        "pause",
        "--pid",
        &v2.pid().to_string(),
        "--for",
        "5m",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || metric(&scrape(port), aborts)
            >= 1.0),
        "{}",
        scrape(port)
    );
    assert!(
        eventually(Duration::from_secs(5), || v2.state() == Some('S')),
        "the health guard reverted the pause"
    );
    assert_eq!(metric(&scrape(port), lapses), 1.0);
}
