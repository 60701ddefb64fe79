//! Protocol detection (`podlb-proxy` `detect.rs`): a client connection's
//! first bytes say HTTP/2 (the preface) or HTTP/1.1. Detection looks at up
//! to the preface and the client's first frame as the bytes arrive.
//! Asserts, for every start of any input: HTTP/1.1 exactly when the bytes
//! are not a start of the preface, undecided while they are a strict start
//! of it, never HTTP/1.1 after the whole preface; and a verdict, once
//! given, never changes as more bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_proxy::fuzzing::{Detected, classify};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let mut decided = None;
    for end in 1..=data.len().min(4096) {
        let prefix = &data[..end];
        let verdict = classify(prefix);
        let preface_part = &prefix[..end.min(PREFACE.len())];
        if !PREFACE.starts_with(preface_part) {
            assert_eq!(verdict, Some(Detected::Http1), "{prefix:?}");
        } else if end < PREFACE.len() {
            assert_eq!(verdict, None, "{prefix:?}");
        } else {
            // The whole preface: HTTP/2 once the first frame is in.
            assert_ne!(verdict, Some(Detected::Http1), "{prefix:?}");
        }
        if decided.is_some() {
            assert_eq!(verdict, decided, "changed its mind at {prefix:?}");
        }
        decided = verdict;
    }
});
