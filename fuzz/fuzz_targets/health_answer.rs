//! The health-check reader (`podlb-upstream` `health.rs`): it decodes the
//! `grpc.health.v1` answers a backend streams back (gRPC framing around a
//! protobuf message). Asserts, for any bytes cut into any DATA frames: it
//! never panics, and it reads the same answers and stops at the same error
//! wherever the cuts fall as when the bytes come in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_upstream::fuzzing::health_answers;

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    let whole = health_answers([bytes]);
    let cut = health_answers(podlb_fuzz::pieces(bytes, seed));
    assert_eq!(cut, whole);
});
