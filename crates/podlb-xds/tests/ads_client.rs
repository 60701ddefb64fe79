//! The ADS client over a real HTTP/2 stream, against a scripted ADS server
//! (see `support`): it follows Listener → RouteConfiguration → Cluster →
//! ClusterLoadAssignment, ACKs and NACKs with the right versions and
//! nonces, unsubscribes what the chain no longer names, and survives a
//! broken stream and a server that is not there yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::rpc::Code;
use futures_util::Stream;
use podlb_core::Update;
use podlb_xds::{Bootstrap, CLUSTER, ClientOptions, ENDPOINTS, Error, LISTENER, ROUTE};
use support::{Peer, ScriptedAds, cluster, endpoints, listener, next_item, reset_addrs, route};

const NAME: &str = "greeter.default:50051";

type Updates = Box<dyn Stream<Item = Result<Update, Error>> + Send + Unpin>;

fn bootstrap(server: SocketAddr) -> Bootstrap {
    let json = format!(
        r#"{{
          "xds_servers": [{{"server_uri": "{server}", "channel_creds": [{{"type": "insecure"}}]}}],
          "node": {{"id": "test-client", "locality": {{"zone": "a"}}}}
        }}"#
    );
    Bootstrap::from_json(&json, "test bootstrap").unwrap()
}

fn client(server: SocketAddr, options: ClientOptions) -> Updates {
    Box::new(podlb_xds::discover_with(NAME, bootstrap(server), options))
}

fn backend(last: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], 50051))
}

/// Asserts a request is a plain subscription or ACK.
fn assert_request(
    r: &DiscoveryRequest,
    type_url: &str,
    names: &[&str],
    version: &str,
    nonce: &str,
) {
    assert_eq!(r.type_url, type_url, "{r:?}");
    assert_eq!(r.resource_names, names, "{r:?}");
    assert_eq!(r.version_info, version, "{r:?}");
    assert_eq!(r.response_nonce, nonce, "{r:?}");
    assert!(r.error_detail.is_none(), "not an ACK: {r:?}");
}

/// Plays the server's side from the first request until the client has
/// endpoints 10.0.0.1 and 10.0.0.2, every type at version "1", nonce "n1".
async fn resolve(peer: &mut Peer, updates: &mut Updates) {
    let first = peer.request().await;
    assert_request(&first, LISTENER, &[NAME], "", "");
    peer.respond(LISTENER, "1", "n1", vec![listener(NAME, "r1")]);
    assert_request(&peer.request().await, LISTENER, &[NAME], "1", "n1");
    assert_request(&peer.request().await, ROUTE, &["r1"], "", "");

    peer.respond(ROUTE, "1", "n1", vec![route("r1", "greeter.*", "c1")]);
    assert_request(&peer.request().await, ROUTE, &["r1"], "1", "n1");
    assert_request(&peer.request().await, CLUSTER, &["c1"], "", "");

    peer.respond(
        CLUSTER,
        "1",
        "n1",
        vec![cluster("c1", DiscoveryType::Eds, "s1")],
    );
    assert_request(&peer.request().await, CLUSTER, &["c1"], "1", "n1");
    assert_request(&peer.request().await, ENDPOINTS, &["s1"], "", "");

    peer.respond(
        ENDPOINTS,
        "1",
        "n1",
        vec![endpoints("s1", &[backend(2), backend(1)])],
    );
    assert_request(&peer.request().await, ENDPOINTS, &["s1"], "1", "n1");
    let item = next_item(updates).await;
    assert_eq!(
        item.ok(),
        Some(Update::Policy(vec!["round_robin".into()])),
        "the Cluster's policy comes first, ahead of its endpoints"
    );
    let item = next_item(updates).await;
    assert_eq!(reset_addrs(&item), ["10.0.0.1:50051", "10.0.0.2:50051"]);
}

#[tokio::test]
async fn follows_the_chain_acking_each_response_and_yields_every_change() {
    let mut server = ScriptedAds::start().await;
    let mut updates = client(server.addr, ClientOptions::default());
    let mut peer = server.next_stream().await;
    resolve(&mut peer, &mut updates).await;

    // An endpoint leaves.
    peer.respond(ENDPOINTS, "2", "n2", vec![endpoints("s1", &[backend(2)])]);
    assert_request(&peer.request().await, ENDPOINTS, &["s1"], "2", "n2");
    assert_eq!(
        reset_addrs(&next_item(&mut updates).await),
        ["10.0.0.2:50051"]
    );
}

#[tokio::test]
async fn the_first_request_carries_the_node() {
    let mut server = ScriptedAds::start().await;
    let _updates = client(server.addr, ClientOptions::default());
    let mut peer = server.next_stream().await;
    let first = peer.request().await;
    let node = first.node.expect("no node in the first request");
    assert_eq!(node.id, "test-client");
    assert_eq!(node.locality.unwrap().zone, "a");
    assert_eq!(node.user_agent_name, "podlb");
    assert!(matches!(
        node.user_agent_version_type,
        Some(UserAgentVersionType::UserAgentVersion(v)) if !v.is_empty()
    ));
    peer.respond(LISTENER, "1", "n1", vec![listener(NAME, "r1")]);
    assert!(
        peer.request().await.node.is_none(),
        "node in the first request only"
    );
}

#[tokio::test]
async fn nacks_a_cluster_it_cannot_use_and_keeps_the_last_good_one() {
    let mut server = ScriptedAds::start().await;
    let mut updates = client(server.addr, ClientOptions::default());
    let mut peer = server.next_stream().await;
    resolve(&mut peer, &mut updates).await;

    peer.respond(
        CLUSTER,
        "2",
        "n2",
        vec![cluster("c1", DiscoveryType::StrictDns, "")],
    );
    let nack = peer.request().await;
    assert_eq!(nack.type_url, CLUSTER);
    assert_eq!(nack.resource_names, ["c1"]);
    assert_eq!(
        nack.version_info, "1",
        "a NACK carries the last accepted version"
    );
    assert_eq!(
        nack.response_nonce, "n2",
        "and the nonce of the response it rejects"
    );
    let detail = nack.error_detail.expect("a NACK has error_detail");
    assert_eq!(detail.code, Code::InvalidArgument as i32);
    assert!(
        detail.message.contains("\"c1\"") && detail.message.contains("STRICT_DNS"),
        "{}",
        detail.message
    );
    let err = next_item(&mut updates).await.unwrap_err();
    assert!(
        matches!(err, Error::Rejected { ref name, .. } if name == "c1"),
        "{err:?}"
    );

    // The last good cluster still leads to its endpoints.
    peer.respond(ENDPOINTS, "2", "n3", vec![endpoints("s1", &[backend(3)])]);
    assert_request(&peer.request().await, ENDPOINTS, &["s1"], "2", "n3");
    assert_eq!(
        reset_addrs(&next_item(&mut updates).await),
        ["10.0.0.3:50051"]
    );
}

#[tokio::test]
async fn a_route_to_another_cluster_unsubscribes_the_old_one() {
    let mut server = ScriptedAds::start().await;
    let mut updates = client(server.addr, ClientOptions::default());
    let mut peer = server.next_stream().await;
    resolve(&mut peer, &mut updates).await;

    peer.respond(ROUTE, "2", "n2", vec![route("r1", "*", "c2")]);
    assert_request(&peer.request().await, ROUTE, &["r1"], "2", "n2");
    assert_request(&peer.request().await, CLUSTER, &["c2"], "1", "n1");
    peer.respond(
        CLUSTER,
        "2",
        "n2",
        vec![cluster("c2", DiscoveryType::Eds, "")],
    );
    assert_request(&peer.request().await, CLUSTER, &["c2"], "2", "n2");
    assert_request(&peer.request().await, ENDPOINTS, &["c2"], "1", "n1");
    peer.respond(ENDPOINTS, "2", "n2", vec![endpoints("c2", &[backend(7)])]);
    assert_request(&peer.request().await, ENDPOINTS, &["c2"], "2", "n2");
    assert_eq!(
        reset_addrs(&next_item(&mut updates).await),
        ["10.0.0.7:50051"]
    );
}

#[tokio::test]
async fn a_deleted_listener_leaves_no_endpoints_and_says_so() {
    let mut server = ScriptedAds::start().await;
    let mut updates = client(server.addr, ClientOptions::default());
    let mut peer = server.next_stream().await;
    resolve(&mut peer, &mut updates).await;

    peer.respond(LISTENER, "2", "n2", vec![]);
    assert_request(&peer.request().await, LISTENER, &[NAME], "2", "n2");
    let item = next_item(&mut updates).await;
    assert_eq!(
        item.ok(),
        Some(Update::Policy(Vec::new())),
        "no Cluster, no policy"
    );
    assert!(reset_addrs(&next_item(&mut updates).await).is_empty());
    let err = next_item(&mut updates).await.unwrap_err();
    assert!(err.to_string().contains("deleted Listener"), "{err}");
}

#[tokio::test]
async fn a_listener_the_server_does_not_have_is_an_error_after_the_timer() {
    let mut server = ScriptedAds::start().await;
    let mut options = ClientOptions::default();
    options.resource_timeout = Duration::from_millis(500);
    let mut updates = client(server.addr, options);
    let mut peer = server.next_stream().await;
    peer.request().await;
    peer.respond(LISTENER, "1", "n1", vec![]);
    assert_request(&peer.request().await, LISTENER, &[NAME], "1", "n1");

    assert!(reset_addrs(&next_item(&mut updates).await).is_empty());
    let err = next_item(&mut updates).await.unwrap_err().to_string();
    let want = format!("xDS server {} has no Listener \"{NAME}\"", server.addr);
    assert!(err.contains(&want), "{err}");
}

#[tokio::test]
async fn a_broken_stream_is_reported_and_everything_is_subscribed_again() {
    let mut server = ScriptedAds::start().await;
    let mut options = ClientOptions::default();
    options.backoff_first = Duration::from_millis(10);
    let mut updates = client(server.addr, options);
    let mut peer = server.next_stream().await;
    resolve(&mut peer, &mut updates).await;

    peer.fail(tonic::Status::unavailable("restarting"));
    let err = next_item(&mut updates).await.unwrap_err();
    assert!(
        matches!(&err, Error::StreamBroken { server: s, reason } if *s == server.addr.to_string() && reason.contains("restarting")),
        "{err:?}"
    );

    let mut peer = server.next_stream().await;
    let first = peer.request().await;
    assert!(first.node.is_some(), "a new stream starts with the node");
    assert_request(&first, LISTENER, &[NAME], "1", "");
    assert_request(&peer.request().await, ROUTE, &["r1"], "1", "");
    assert_request(&peer.request().await, CLUSTER, &["c1"], "1", "");
    assert_request(&peer.request().await, ENDPOINTS, &["s1"], "1", "");
    // The known endpoints again, which clears the error downstream.
    assert_eq!(
        reset_addrs(&next_item(&mut updates).await),
        ["10.0.0.1:50051", "10.0.0.2:50051"]
    );

    // The server re-sends its state, changed meanwhile.
    peer.respond(ENDPOINTS, "3", "m1", vec![endpoints("s1", &[backend(5)])]);
    assert_request(&peer.request().await, ENDPOINTS, &["s1"], "3", "m1");
    assert_eq!(
        reset_addrs(&next_item(&mut updates).await),
        ["10.0.0.5:50051"]
    );
}

#[tokio::test]
async fn a_server_not_up_yet_fails_calls_fast_then_is_reached() {
    // A free port with nothing on it, for now.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut options = ClientOptions::default();
    options.backoff_first = Duration::from_millis(50);
    options.backoff_max = Duration::from_millis(200);
    let mut updates = client(addr, options);
    assert!(
        reset_addrs(&next_item(&mut updates).await).is_empty(),
        "no endpoints yet, so calls fail fast"
    );
    let err = next_item(&mut updates).await.unwrap_err();
    assert!(
        matches!(&err, Error::Connect { server, .. } if *server == addr.to_string()),
        "{err:?}"
    );
    assert!(err.to_string().contains("reconnecting"), "{err}");

    let mut server = ScriptedAds::start_on(addr).await;
    let mut peer = server.next_stream().await;
    // Errors of the attempts made before the server came up.
    let resolving = async {
        loop {
            match next_item(&mut updates).await {
                Err(Error::Connect { .. }) => continue,
                other => return other,
            }
        }
    };
    let play = async {
        peer.request().await;
        peer.respond(LISTENER, "1", "n1", vec![listener(NAME, "r1")]);
        peer.request().await;
        peer.request().await;
        peer.respond(ROUTE, "1", "n1", vec![route("r1", "*", "c1")]);
        peer.request().await;
        peer.request().await;
        peer.respond(
            CLUSTER,
            "1",
            "n1",
            vec![cluster("c1", DiscoveryType::Eds, "")],
        );
        peer.request().await;
        peer.request().await;
        peer.respond(ENDPOINTS, "1", "n1", vec![endpoints("c1", &[backend(1)])]);
        peer.request().await;
    };
    let (item, ()) = tokio::join!(resolving, play);
    // The re-emitted empty set of a stream established before any
    // resource arrived does not count.
    let item = match item {
        Ok(Update::Reset(set)) if set.is_empty() => next_item(&mut updates).await,
        other => other,
    };
    assert_eq!(item.ok(), Some(Update::Policy(vec!["round_robin".into()])));
    assert_eq!(
        reset_addrs(&next_item(&mut updates).await),
        ["10.0.0.1:50051"]
    );
}
