//! `grpc-retry-pushback-ms`: a server's say in whether and when a call is
//! retried (gRFC A6). A value that is not a non-negative integer means do
//! not retry; a valid one replaces the backoff.

use std::time::Duration;

use http::HeaderMap;

static PUSHBACK: http::HeaderName = http::HeaderName::from_static("grpc-retry-pushback-ms");

/// What a server's answer says about retrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// No pushback: the policy's backoff decides.
    Absent,
    /// Do not retry (a negative or malformed value).
    Stop,
    /// Retry after this long, instead of the backoff.
    After(Duration),
}

impl Pushback {
    /// The pushback in a trailers-only answer's `headers`.
    pub fn of(headers: &HeaderMap) -> Pushback {
        let Some(value) = headers.get(&PUSHBACK) else {
            return Pushback::Absent;
        };
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(Pushback::Stop, |ms| {
                Pushback::After(Duration::from_millis(ms))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(value: &'static str) -> Pushback {
        let mut headers = HeaderMap::new();
        headers.insert(&PUSHBACK, http::HeaderValue::from_static(value));
        Pushback::of(&headers)
    }

    #[test]
    fn negative_or_malformed_stops_and_a_number_replaces_the_backoff() {
        assert_eq!(Pushback::of(&HeaderMap::new()), Pushback::Absent);
        assert_eq!(of("250"), Pushback::After(Duration::from_millis(250)));
        assert_eq!(of("0"), Pushback::After(Duration::ZERO));
        assert_eq!(of("-1"), Pushback::Stop);
        assert_eq!(of("soon"), Pushback::Stop);
        assert_eq!(of("1.5"), Pushback::Stop);
    }
}
