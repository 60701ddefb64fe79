//! `grpc-timeout` (`podlb-upstream` `deadline.rs`): parsed from a client's
//! header, written again for the backend. Asserts: a value parses exactly
//! when it is 1 to 8 ASCII digits and a unit of HMSmun, to the duration
//! those say; and for any duration, the encoded value is at most 8 digits
//! and a unit, parses again, never to more than the duration, and loses
//! less than one of its unit (the finest that fits); a duration read from
//! an encoded value round-trips exactly.
#![no_main]

use std::time::Duration;

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use podlb_upstream::deadline::{encode, parse};

/// Nanoseconds per unit.
fn scale(unit: u8) -> Option<u128> {
    Some(match unit {
        b'n' => 1,
        b'u' => 1_000,
        b'm' => 1_000_000,
        b'S' => 1_000_000_000,
        b'M' => 60_000_000_000,
        b'H' => 3_600_000_000_000,
        _ => return None,
    })
}

/// What the header means, by the gRPC spec: `None` when malformed.
fn reference(value: &[u8]) -> Option<u128> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u128 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(n * scale(unit)?)
}

fn check_encode(d: Duration) {
    let value = encode(d);
    let bytes = value.as_bytes();
    assert!((2..=9).contains(&bytes.len()), "{value:?}");
    let back = parse(&value).unwrap_or_else(|| panic!("{value:?} for {d:?} does not parse"));
    assert!(back <= d, "{value:?} for {d:?} reads as {back:?}, longer");
    let unit = scale(*bytes.last().unwrap()).unwrap();
    let max = Duration::from_secs(3600 * 99_999_999);
    if d < max {
        assert!(
            (d - back).as_nanos() < unit,
            "{value:?} for {d:?} loses a unit or more"
        );
    }
    // `back` is a whole number of the unit: it is written again exactly.
    assert_eq!(
        parse(&encode(back)),
        Some(back),
        "{back:?} from {value:?} does not round-trip"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let parsed = parse(&value).map(|d| d.as_nanos());
        assert_eq!(parsed, reference(data), "{value:?}");
        if let Some(d) = parse(&value) {
            check_encode(d);
        }
    }
    if data.len() >= 12 {
        let secs = u64::from_le_bytes(data[..8].try_into().unwrap());
        let nanos = u32::from_le_bytes(data[8..12].try_into().unwrap()) % 1_000_000_000;
        // Every range of durations: shift the seconds down by data's next byte.
        let shift = data.get(12).map_or(0, |s| u32::from(*s % 64));
        check_encode(Duration::new(secs >> shift, nanos));
    }
});
