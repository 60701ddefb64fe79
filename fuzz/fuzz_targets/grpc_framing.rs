//! The message-size guard (`podlb-upstream` `framing.rs`): it reads gRPC's
//! 5-byte message prefixes as a call's DATA streams by. Asserts, for any
//! limit and any bytes cut into any DATA frames: the guard rejects exactly
//! the first message whose declared length is over the limit, with that
//! length, and never lets one through; messages within the limit pass,
//! wherever the cuts fall.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_upstream::framing::MessageSizeGuard;

/// The declared length of the first message over `limit`, by a plain walk.
fn first_over(mut bytes: &[u8], limit: u64) -> Option<u64> {
    while bytes.len() >= 5 {
        let size = u64::from(u32::from_be_bytes(bytes[1..5].try_into().unwrap()));
        if size > limit {
            return Some(size);
        }
        let body = usize::try_from(size).unwrap().min(bytes.len() - 5);
        bytes = &bytes[5 + body..];
    }
    None
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Small limits, so that messages within them come up often.
    let limit = u64::from(u16::from_be_bytes([data[0], data[1]]));
    let (seed, bytes) = (data[2], &data[3..]);
    let mut guard = MessageSizeGuard::new(limit);
    let mut verdict = Ok(());
    for frame in podlb_fuzz::pieces(bytes, seed) {
        verdict = guard.check(frame);
        if verdict.is_err() {
            break;
        }
    }
    assert_eq!(verdict.err(), first_over(bytes, limit), "limit {limit}");
    if let Err(size) = verdict {
        assert!(size > limit);
    }
});
