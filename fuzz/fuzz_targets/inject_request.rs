//! An `InjectRequest` as the wire delivers it (protobuf bytes) -> the validated domain
//! request (`api::convert::inject_request`) -> the policy check under both profiles.
//! Neither may panic; a conversion that succeeds must yield a spec the policy can judge.
#![no_main]

use faultline_agent::limits::Limits;
use faultline_proto::v1 as pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = pb::InjectRequest::decode(data) else {
        return;
    };
    let Ok(r) = faultline_agent::api::convert::inject_request(&req, "fuzz".into()) else {
        return;
    };
    for limits in [Limits::production(), Limits::staging()] {
        let _ = faultline_agent::policy::check(r.fault.spec(), r.fault.duration(), &limits);
    }
});
