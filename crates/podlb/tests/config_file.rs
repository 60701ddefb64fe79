//! The full form, end to end: `podlb proxy --config FILE` reads listeners,
//! routes and upstreams from YAML, sends a routed method to its upstream and
//! answers a method no route matches with UNIMPLEMENTED.

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use podlb_testkit::{EchoRequest, TestBackend};
use support::process::{ProxyProcess, free_port};
use tonic::Code;

#[tokio::test]
async fn a_config_file_routes_by_method_and_refuses_unrouted_calls() {
    let backend = TestBackend::start("b1").await;
    for _ in 0..5 {
        let addr = free_port();
        let path = std::env::temp_dir().join(format!("podlb-test-{}.yaml", addr.port()));
        std::fs::write(
            &path,
            format!(
                "listeners:\n  - name: edge\n    address: {addr}\n    routes:\n      - match: {{ method: /podlb.test.v1.TestService/Unary }}\n        upstream: tests\nupstreams:\n  - name: tests\n    target: static:///{}\n    policy: round_robin\n",
                backend.addr()
            ),
        )
        .unwrap();
        let args = [
            "proxy".to_string(),
            "--config".to_string(),
            path.display().to_string(),
        ];
        let mut proxy = ProxyProcess::spawn_args(addr, &args);
        // `None` when another test took the port first: try another.
        let Some(mut client) = proxy.wait_serving().await else {
            continue;
        };
        let reply = client
            .unary(EchoRequest {
                payload: b"routed".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (reply.backend.as_str(), &reply.payload[..]),
            ("b1", &b"routed"[..])
        );

        let status = client
            .server_stream(EchoRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(
            status.message(),
            "podlb: no route for /podlb.test.v1.TestService/ServerStream on listener \"edge\""
        );
        let _ = std::fs::remove_file(&path);
        return;
    }
    panic!("podlb proxy --config never served, five times");
}
