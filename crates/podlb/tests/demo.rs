//! `podlb demo`, run as the README runs it: the real binary, its printed
//! table read back. Via the L4 forwarder (the Kubernetes Service stand-in)
//! one backend answers every call; via podlb each answers about a third.

use std::process::Command;

const CALLS: u64 = 600;

/// One backend's row of the demo's table.
#[derive(Debug)]
struct Row {
    backend: String,
    via_l4: u64,
    via_podlb_percent: f64,
    via_podlb: u64,
}

/// The rows under the `backend` header, up to the first line that is not one.
fn rows(stdout: &str) -> Vec<Row> {
    stdout
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("backend"))
        .skip(1)
        .map_while(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let [backend, via_l4, _, via_podlb, via_podlb_percent] = cols[..] else {
                return None;
            };
            Some(Row {
                backend: backend.to_string(),
                via_l4: via_l4.parse().ok()?,
                via_podlb: via_podlb.parse().ok()?,
                via_podlb_percent: via_podlb_percent.strip_suffix('%')?.parse().ok()?,
            })
        })
        .collect()
}

#[test]
fn demo_shows_one_backend_via_l4_and_an_even_split_via_podlb() {
    let out = Command::new(env!("CARGO_BIN_EXE_podlb"))
        .args(["demo", "--calls", &CALLS.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run podlb demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "exit {}\n{context}", out.status);

    let rows = rows(&stdout);
    assert_eq!(rows.len(), 3, "three backend rows\n{context}");
    assert!(
        stdout.contains(&format!("{CALLS} calls over one HTTP/2 connection")),
        "{context}"
    );

    let l4: Vec<u64> = rows.iter().map(|r| r.via_l4).collect();
    assert_eq!(l4.iter().sum::<u64>(), CALLS, "{context}");
    assert!(
        l4.contains(&CALLS),
        "via L4, one backend gets every call: {l4:?}\n{context}"
    );

    assert_eq!(
        rows.iter().map(|r| r.via_podlb).sum::<u64>(),
        CALLS,
        "{context}"
    );
    for row in &rows {
        assert!(
            (25.0..=42.0).contains(&row.via_podlb_percent),
            "via podlb, {} got {}% of the calls, not 25% to 42%\n{context}",
            row.backend,
            row.via_podlb_percent
        );
    }
}
