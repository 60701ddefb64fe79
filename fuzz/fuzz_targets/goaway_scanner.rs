//! The GOAWAY scanner on a backend connection's read side
//! (`podlb-upstream` `goaway.rs`): it walks HTTP/2 frame headers of bytes a
//! backend sends. Asserts, for any bytes cut into any reads: the scanner
//! finds exactly the GOAWAYs a plain whole-buffer frame walk finds (ids,
//! codes, the first 64 bytes of debug data, "too_many_pings"), whatever the
//! cuts; and the sniffer's signal refuses exactly the streams above the
//! lowest last-stream-id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_upstream::fuzzing::{ScannedGoaway, scan_goaways, sniff};

/// The GOAWAYs whose payload is complete in `bytes`, by a plain walk.
fn reference(mut bytes: &[u8]) -> Vec<ScannedGoaway> {
    let mut found = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let kind = bytes[3];
        if bytes.len() - 9 < len {
            break;
        }
        let payload = &bytes[9..9 + len];
        if kind == 0x7 && len >= 8 {
            let word = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().unwrap());
            let debug = &payload[8..];
            found.push(ScannedGoaway {
                last_stream_id: word(0),
                error_code: word(4),
                debug_data: debug[..debug.len().min(64)].to_vec(),
                too_many_pings: word(4) == 0xb && debug == b"too_many_pings",
            });
        }
        bytes = &bytes[9 + len..];
    }
    found
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    let expected = reference(bytes);
    let reads = podlb_fuzz::pieces(bytes, seed);
    assert_eq!(scan_goaways([bytes]), expected, "in one read");
    assert_eq!(
        scan_goaways(reads.iter().copied()),
        expected,
        "in {} reads",
        reads.len()
    );

    let lowest = expected
        .iter()
        .map(|g| g.last_stream_id & 0x7fff_ffff)
        .min();
    let probe = lowest.unwrap_or(u32::from(seed));
    let at = sniff(reads.iter().copied(), probe);
    assert_eq!(at.received, lowest.is_some());
    assert_eq!(at.too_many_pings, expected.iter().any(|g| g.too_many_pings));
    assert!(
        !at.refused,
        "stream {probe} refused, lowest GOAWAY id {lowest:?}"
    );
    if let Some(lowest) = lowest {
        let above = sniff(reads.iter().copied(), lowest + 1);
        assert!(
            above.refused,
            "stream above the lowest GOAWAY id {lowest} not refused"
        );
    }
});
