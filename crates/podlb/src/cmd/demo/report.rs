//! The demo's printout: the two splits side by side, then what they mean.
//!
//! Pure formatting: it gets the [`Split`]s from `load` and returns text;
//! `tests/demo.rs` parses this text, so change both together.

use std::fmt::Write as _;
use std::time::Duration;

use super::load::Split;

const L4_HEADER: &str = "via L4 (like a Kubernetes Service)";
/// Room for the L4 header and the gap after it.
const L4_WIDTH: usize = L4_HEADER.len() + 3;

/// The table of replies per backend via the L4 forwarder and via podlb,
/// with the time each side took, and the moral.
pub(super) fn render(
    calls: u64,
    backends: &[&str],
    policy: &str,
    via_l4: &Split,
    via_podlb: &Split,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_table(&mut out, calls, backends, policy, via_l4, via_podlb);
    out
}

fn write_table(
    out: &mut String,
    calls: u64,
    backends: &[&str],
    policy: &str,
    via_l4: &Split,
    via_podlb: &Split,
) -> std::fmt::Result {
    writeln!(
        out,
        "{calls} {} over one HTTP/2 connection, {} backends:",
        if calls == 1 { "call" } else { "calls" },
        backends.len()
    )?;
    writeln!(out)?;
    let podlb_header = format!("via podlb ({policy})");
    let podlb_width = podlb_header.len();
    writeln!(
        out,
        "  {:<10}{L4_HEADER:<L4_WIDTH$}{podlb_header}",
        "backend"
    )?;
    // Each cell is centred under its header (the L4 one in the header's width).
    let l4_width = L4_HEADER.len();
    let row = |out: &mut String, label: &str, l4: String, podlb: String| {
        let l4 = format!("{l4:^l4_width$}");
        let podlb = format!("{podlb:^podlb_width$}");
        let line = format!("  {label:<10}{l4:<L4_WIDTH$}{podlb}");
        writeln!(out, "{}", line.trim_end())
    };
    for backend in backends {
        let l4 = cell(via_l4.replies_from(backend), calls);
        let podlb = cell(via_podlb.replies_from(backend), calls);
        row(out, backend, l4, podlb)?;
    }
    let l4 = timing(calls, via_l4.elapsed);
    let podlb = timing(calls, via_podlb.elapsed);
    row(out, "time", l4, podlb)?;
    writeln!(out)?;
    writeln!(
        out,
        "A Service balances connections; gRPC sends every call over one connection, so one pod gets them all."
    )?;
    writeln!(out, "podlb balances each call.")
}

/// `  1001   33.4%`: the replies and their share of the calls.
fn cell(replies: u64, calls: u64) -> String {
    let percent = if calls == 0 {
        0.0
    } else {
        replies as f64 * 100.0 / calls as f64
    };
    format!("{replies:>6}  {percent:>5.1}%")
}

/// `310 ms, 9677 calls/s`, or `1.52 s, ...` from a second up.
fn timing(calls: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { calls as f64 / secs } else { 0.0 };
    if secs < 1.0 {
        format!("{:.0} ms, {rate:.0} calls/s", secs * 1000.0)
    } else {
        format!("{secs:.2} s, {rate:.0} calls/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(replies: &[(&str, u64)], millis: u64) -> Split {
        Split {
            replies: replies.iter().map(|(b, n)| (b.to_string(), *n)).collect(),
            elapsed: Duration::from_millis(millis),
        }
    }

    #[test]
    fn shows_each_backend_with_both_splits_in_columns() {
        let text = render(
            3000,
            &["b1", "b2", "b3"],
            "least_request",
            &split(&[("b1", 3000)], 1500),
            &split(&[("b1", 1001), ("b2", 999), ("b3", 1000)], 250),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "3000 calls over one HTTP/2 connection, 3 backends:"
        );
        assert_eq!(
            lines[2],
            "  backend   via L4 (like a Kubernetes Service)   via podlb (least_request)"
        );
        assert_eq!(
            lines[3].split_whitespace().collect::<Vec<_>>(),
            ["b1", "3000", "100.0%", "1001", "33.4%"]
        );
        assert_eq!(
            lines[4].split_whitespace().collect::<Vec<_>>(),
            ["b2", "0", "0.0%", "999", "33.3%"]
        );
        // The podlb column lines up under its header.
        let podlb_col = lines[2].find("via podlb").unwrap();
        assert_eq!(
            lines[3][podlb_col..].split_whitespace().collect::<Vec<_>>(),
            ["1001", "33.4%"]
        );
        assert!(lines[6].contains("1.50 s, 2000 calls/s"), "{}", lines[6]);
        assert!(lines[6].contains("250 ms, 12000 calls/s"), "{}", lines[6]);
    }
}
