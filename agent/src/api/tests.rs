//! The service over a real Unix socket and a real tonic client, without root: what a
//! local reader can send must never panic the request (bug: audit summaries cut caller
//! text with `String::truncate` inside multi-byte characters).

use std::sync::Arc;

use faultline_proto::v1 as pb;
use pb::agent_client::AgentClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{AgentService, Authorizer};
use crate::audit::AuditLog;
use crate::engine::Engine;
use crate::host::Host;

struct Served {
    client: AgentClient<Channel>,
    audit: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("faultd.sock");
    let engine = Engine::new(Host::for_tests(), None);
    let audit = Arc::new(AuditLog::open(dir.path(), false).unwrap());
    let svc = AgentService::new(
        engine,
        Authorizer::new(&[], format!("unix:{}", socket.display())),
    )
    .with_audit(audit.clone());
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc.into_server())
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .unwrap();
    Served {
        client: AgentClient::new(channel),
        audit: audit.path().to_path_buf(),
        _dir: dir,
    }
}

fn audit_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `ascii` bytes of `a`, then multi-byte characters: for some `ascii`, every byte limit
/// near the end lands inside a character.
fn text(ascii: usize, tail: &str) -> String {
    format!("{}{}", "a".repeat(ascii), tail.repeat(8))
}

/// Every request whose caller text is summarised in the audit log, with multi-byte
/// text placed so that each cut (ids at 128 bytes, reasons at 256, the lease holder at
/// 128, the spec at 512) lands inside a 2-, 3- and 4-byte character: each gets a
/// proper answer and an audit line, never CANCELLED or a panicked worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_byte_caller_text_at_every_cut_is_answered_and_audited() {
    let mut s = serve().await;
    let mut calls = 0;
    for tail in ["é", "€", "😀"] {
        for ascii in 120..=130 {
            let id = text(ascii, tail);
            let e = s
                .client
                .get(pb::GetRequest { id: id.clone() })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::NotFound, "Get {id:?}: {e:?}");
            let e = s
                .client
                .revert(pb::RevertRequest {
                    id: id.clone(),
                    reason: text(ascii + 128, tail),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::NotFound, "Revert {id:?}: {e:?}");
            let e = s
                .client
                .renew_lease(pb::RenewLeaseRequest { id: id.clone() })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::NotFound, "RenewLease: {e:?}");
            let r = s
                .client
                .revert_all(pb::RevertAllRequest {
                    reason: text(ascii + 128, tail),
                })
                .await
                .unwrap();
            assert!(r.get_ref().results.is_empty());
            let e = s
                .client
                .open_lease(pb::OpenLeaseRequest {
                    ttl_ms: 0,
                    holder: id.clone(),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "OpenLease: {e:?}");
            calls += 5;
        }
        for ascii in 0..4 {
            // The spec's Debug text is cut at 512 bytes: a cmdline regex of 4-byte
            // characters, shifted by 0..3 bytes, puts the cut inside one.
            let req = pb::InjectRequest {
                spec: Some(pb::FaultSpec {
                    kind: Some(pb::fault_spec::Kind::Kill(pb::KillSpec {
                        selector: Some(pb::ProcessSelector {
                            cmdline: Some(format!("{}{}", "a".repeat(ascii), tail.repeat(200))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })),
                }),
                dry_run: true,
                ..Default::default()
            };
            let e = s.client.inject(req).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::NotFound, "Inject: {e:?}");
            calls += 1;
        }
    }
    let lines = audit_lines(&s.audit);
    assert_eq!(lines.len(), calls, "one audit line per call");
    for l in &lines {
        let request = l["request"].as_str().unwrap();
        assert!(request.len() <= 600, "bounded: {} bytes", request.len());
    }
}
