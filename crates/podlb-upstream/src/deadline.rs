//! `grpc-timeout`: parsed from the client's call, and written again for the
//! backend with the time already spent taken off.
//!
//! The header is at most 8 ASCII digits and a unit: H, M, S, m, u or n.

use std::time::Duration;

use http::HeaderValue;

/// The timeout a `grpc-timeout` value asks for; `None` when malformed (a
/// malformed value is ignored, as gRPC servers do).
pub fn parse(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n.saturating_mul(3600)),
        b'M' => Duration::from_secs(n.saturating_mul(60)),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The `grpc-timeout` value for `remaining`, in the finest unit that fits
/// in 8 digits (rounded down, so the backend never waits longer than the
/// client).
pub fn encode(remaining: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = remaining.as_nanos();
    let (n, unit) = [
        (1u128, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ]
    .into_iter()
    .map(|(scale, unit)| (nanos / scale, unit))
    .find(|(n, _)| *n <= MAX)
    .unwrap_or((MAX, 'H'));
    let mut buf = itoa_buf(n as u64);
    buf.push(unit);
    // Digits and one ASCII letter are always a valid header value.
    HeaderValue::from_str(&buf).unwrap_or_else(|_| HeaderValue::from_static("0n"))
}

fn itoa_buf(n: u64) -> String {
    let mut s = String::with_capacity(10);
    use std::fmt::Write;
    let _ = write!(s, "{n}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_junk() {
        let p = |s: &'static str| parse(&HeaderValue::from_static(s));
        assert_eq!(p("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(p("2M"), Some(Duration::from_secs(120)));
        assert_eq!(p("3S"), Some(Duration::from_secs(3)));
        assert_eq!(p("250m"), Some(Duration::from_millis(250)));
        assert_eq!(p("7u"), Some(Duration::from_micros(7)));
        assert_eq!(p("99999999n"), Some(Duration::from_nanos(99_999_999)));
        for junk in ["", "m", "123", "123456789m", "12x", "-1S", "1.5S"] {
            assert_eq!(p(junk), None, "{junk}");
        }
    }

    #[test]
    fn encodes_in_the_finest_unit_that_fits() {
        assert_eq!(encode(Duration::from_nanos(500)), "500n");
        assert_eq!(encode(Duration::from_millis(250)), "250000u");
        assert_eq!(encode(Duration::from_secs(3)), "3000000u");
        assert_eq!(encode(Duration::from_secs(200)), "200000m");
        assert_eq!(encode(Duration::from_secs(86_400 * 365 * 10)), "5256000M");
        assert_eq!(encode(Duration::from_secs(3600 * 99_999_999)), "99999999H");
        assert_eq!(encode(Duration::ZERO), "0n");
    }
}
