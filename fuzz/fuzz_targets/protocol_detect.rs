//! Protocol detection (`podlb-proxy` `detect.rs`): a client connection's
//! first bytes say HTTP/2 (the preface) or HTTP/1.1. Detection looks at up
//! to a preface's length of bytes as they arrive. Asserts, for every start
//! of any input up to that length: HTTP/2 exactly for the whole preface,
//! undecided exactly while the bytes are a strict start of the preface,
//! HTTP/1.1 otherwise; and a verdict, once given, never changes as more
//! bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_proxy::fuzzing::{Detected, classify};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let seen = &data[..data.len().min(PREFACE.len())];
    let mut decided = None;
    for end in 1..=seen.len() {
        let prefix = &seen[..end];
        let verdict = classify(prefix);
        let expected = if prefix == PREFACE {
            Some(Detected::Http2)
        } else if PREFACE.starts_with(prefix) {
            None
        } else {
            Some(Detected::Http1)
        };
        assert_eq!(verdict, expected, "{prefix:?}");
        if decided.is_some() {
            assert_eq!(verdict, decided, "changed its mind at {prefix:?}");
        }
        decided = verdict;
    }
});
