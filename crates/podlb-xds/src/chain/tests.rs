use super::*;
use crate::resources::tests::{
    cla, dns_cluster, eds_cluster, listener_inline, listener_rds, route_config,
    route_config_weighted,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;

const TIMEOUT: Duration = Duration::from_secs(15);
const SERVER: &str = "127.0.0.1:18000";

use ResourceType::{Cluster as CDS, Endpoints as EDS, Listener as LDS, Route as RDS};

fn chain() -> Chain {
    Chain::new("greeter", SERVER, false, TIMEOUT)
}

fn response(
    kind: ResourceType,
    version: &str,
    nonce: &str,
    resources: Vec<Any>,
) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        resources,
        type_url: kind.type_url().into(),
        nonce: nonce.into(),
        ..Default::default()
    }
}

/// A request as (type, names, version, nonce, is a NACK).
fn shown(r: &DiscoveryRequest) -> (ResourceType, Vec<String>, String, String, bool) {
    (
        ResourceType::from_type_url(&r.type_url).unwrap(),
        r.resource_names.clone(),
        r.version_info.clone(),
        r.response_nonce.clone(),
        r.error_detail.is_some(),
    )
}

fn req(
    kind: ResourceType,
    names: &[&str],
    version: &str,
    nonce: &str,
) -> (ResourceType, Vec<String>, String, String, bool) {
    let names = names.iter().map(|n| n.to_string()).collect();
    (kind, names, version.into(), nonce.into(), false)
}

fn requests(step: &Step) -> Vec<(ResourceType, Vec<String>, String, String, bool)> {
    step.requests.iter().map(shown).collect()
}

/// The addresses of a Reset, or panics.
fn reset_addrs(item: &Result<Update, Error>) -> Vec<String> {
    match item {
        Ok(Update::Reset(set)) => set.iter().map(|e| e.addr.to_string()).collect(),
        other => panic!("not a reset: {other:?}"),
    }
}

/// A chain that has resolved greeter → r1 → c1 → s1 at 10.0.0.1:80, every
/// type at version "1" with nonce "n1".
fn resolved(now: Instant) -> Chain {
    let mut c = chain();
    c.start_stream(now);
    c.on_response(
        response(LDS, "1", "n1", vec![listener_rds("greeter", "r1")]),
        now,
    );
    c.on_response(
        response(RDS, "1", "n1", vec![route_config("r1", &[(&["*"], "c1")])]),
        now,
    );
    c.on_response(response(CDS, "1", "n1", vec![eds_cluster("c1", "s1")]), now);
    let step = c.on_response(
        response(EDS, "1", "n1", vec![cla("s1", &["10.0.0.1:80"])]),
        now,
    );
    assert_eq!(step.items.len(), 1);
    c
}

#[test]
fn subscribes_down_the_chain_and_acks_every_response() {
    let now = Instant::now();
    let mut c = chain();
    let first = c.start_stream(now);
    assert_eq!(
        first.iter().map(shown).collect::<Vec<_>>(),
        [req(LDS, &["greeter"], "", "")]
    );

    let step = c.on_response(
        response(LDS, "l1", "a", vec![listener_rds("greeter", "r1")]),
        now,
    );
    assert_eq!(
        requests(&step),
        [req(LDS, &["greeter"], "l1", "a"), req(RDS, &["r1"], "", "")]
    );
    assert!(
        step.items.is_empty(),
        "nothing before the chain is complete"
    );

    let step = c.on_response(
        response(
            RDS,
            "r1v",
            "b",
            vec![route_config("r1", &[(&["greeter"], "c1")])],
        ),
        now,
    );
    assert_eq!(
        requests(&step),
        [req(RDS, &["r1"], "r1v", "b"), req(CDS, &["c1"], "", "")]
    );

    let step = c.on_response(
        response(CDS, "c1v", "c", vec![eds_cluster("c1", "s1")]),
        now,
    );
    assert_eq!(
        requests(&step),
        [req(CDS, &["c1"], "c1v", "c"), req(EDS, &["s1"], "", "")]
    );

    let step = c.on_response(
        response(
            EDS,
            "e1",
            "d",
            vec![cla("s1", &["10.0.0.2:80", "10.0.0.1:80"])],
        ),
        now,
    );
    assert_eq!(requests(&step), [req(EDS, &["s1"], "e1", "d")]);
    assert_eq!(step.items.len(), 1);
    assert_eq!(reset_addrs(&step.items[0]), ["10.0.0.1:80", "10.0.0.2:80"]);
    assert!(
        matches!(&step.items[0], Ok(Update::Reset(set)) if set[0].source.as_deref() == Some("s1"))
    );
    assert_eq!(c.next_deadline(), None, "every timer stopped");

    // The same endpoints again: ACKed, nothing emitted.
    let step = c.on_response(
        response(
            EDS,
            "e2",
            "e",
            vec![cla("s1", &["10.0.0.1:80", "10.0.0.2:80"])],
        ),
        now,
    );
    assert_eq!(requests(&step), [req(EDS, &["s1"], "e2", "e")]);
    assert!(step.items.is_empty());
}

#[test]
fn an_inline_route_configuration_needs_no_rds() {
    let now = Instant::now();
    let mut c = chain();
    c.start_stream(now);
    let step = c.on_response(
        response(LDS, "1", "a", vec![listener_inline("greeter", "c1")]),
        now,
    );
    assert_eq!(
        requests(&step),
        [req(LDS, &["greeter"], "1", "a"), req(CDS, &["c1"], "", "")]
    );
}

#[test]
fn a_bad_update_is_nacked_with_the_last_good_version_and_the_endpoints_stay() {
    let now = Instant::now();
    let mut c = resolved(now);
    let step = c.on_response(response(CDS, "2", "n2", vec![dns_cluster("c1")]), now);
    assert_eq!(step.requests.len(), 1);
    let nack = &step.requests[0];
    assert_eq!(
        shown(nack),
        (CDS, vec!["c1".into()], "1".into(), "n2".into(), true)
    );
    let detail = nack.error_detail.as_ref().unwrap();
    assert_eq!(detail.code, Code::InvalidArgument as i32);
    assert!(
        detail.message.contains("\"c1\"") && detail.message.contains("EDS"),
        "{}",
        detail.message
    );
    assert_eq!(step.items.len(), 1, "{:?}", step.items);
    assert!(matches!(&step.items[0], Err(Error::Rejected { kind: CDS, name, .. }) if name == "c1"));

    // The last good cluster still routes: a new EDS update is applied.
    let step = c.on_response(
        response(EDS, "2", "n3", vec![cla("s1", &["10.0.0.9:80"])]),
        now,
    );
    assert_eq!(reset_addrs(&step.items[0]), ["10.0.0.9:80"]);
    // And the next good CDS response is ACKed with its version.
    let step = c.on_response(response(CDS, "3", "n4", vec![eds_cluster("c1", "s1")]), now);
    assert_eq!(requests(&step), [req(CDS, &["c1"], "3", "n4")]);
}

#[test]
fn a_first_listener_that_cannot_be_used_means_no_endpoints_and_says_why() {
    let now = Instant::now();
    let mut c = chain();
    c.start_stream(now);
    let socket_listener = pack_any(Listener {
        name: "greeter".into(),
        ..Default::default()
    });
    let step = c.on_response(response(LDS, "1", "a", vec![socket_listener]), now);
    assert_eq!(
        shown(&step.requests[0]),
        (LDS, vec!["greeter".into()], "".into(), "a".into(), true)
    );
    assert_eq!(step.requests.len(), 1, "nothing further is subscribed");
    assert_eq!(reset_addrs(&step.items[0]), Vec::<String>::new());
    let err = step.items[1].as_ref().unwrap_err();
    assert!(err.to_string().contains("no api_listener"), "{err}");
    assert_eq!(step.items.len(), 2);
}

#[test]
fn a_route_to_another_cluster_unsubscribes_the_old_one() {
    let now = Instant::now();
    let mut c = resolved(now);
    let step = c.on_response(
        response(RDS, "2", "n2", vec![route_config("r1", &[(&["*"], "c2")])]),
        now,
    );
    assert_eq!(
        requests(&step),
        [req(RDS, &["r1"], "2", "n2"), req(CDS, &["c2"], "1", "n1")]
    );
    assert!(
        step.items.is_empty(),
        "the old endpoints stand until c2 is known"
    );

    let step = c.on_response(response(CDS, "2", "n2", vec![eds_cluster("c2", "")]), now);
    assert_eq!(
        requests(&step),
        [req(CDS, &["c2"], "2", "n2"), req(EDS, &["c2"], "1", "n1")]
    );
    let step = c.on_response(
        response(EDS, "2", "n2", vec![cla("c2", &["10.0.0.2:80"])]),
        now,
    );
    assert_eq!(reset_addrs(&step.items[0]), ["10.0.0.2:80"]);
    // c1 and s1 are forgotten: a late s1 update is not ours.
    let step = c.on_response(
        response(EDS, "3", "n3", vec![cla("s1", &["10.0.0.7:80"])]),
        now,
    );
    assert!(step.items.is_empty());
}

#[test]
fn weighted_clusters_merge_and_a_missing_one_is_explained() {
    let now = Instant::now();
    let mut c = chain();
    c.start_stream(now);
    c.on_response(
        response(LDS, "1", "a", vec![listener_rds("greeter", "r1")]),
        now,
    );
    let step = c.on_response(
        response(
            RDS,
            "1",
            "a",
            vec![route_config_weighted("r1", &[("a", 3), ("b", 1)])],
        ),
        now,
    );
    assert_eq!(requests(&step)[1], req(CDS, &["a", "b"], "", ""));
    let step = c.on_response(response(CDS, "1", "a", vec![eds_cluster("a", "")]), now);
    assert!(requests(&step).len() == 1, "b pending: EDS waits");
    let step = c.on_deadline(now + TIMEOUT);
    assert_eq!(requests(&step), [req(EDS, &["a"], "", "")]);
    assert!(step.items.is_empty(), "a's endpoints are still pending");
    let step = c.on_response(
        response(EDS, "1", "a", vec![cla("a", &["10.0.0.1:80"])]),
        now + TIMEOUT,
    );
    assert_eq!(reset_addrs(&step.items[0]), ["10.0.0.1:80"]);
    let err = step.items[1].as_ref().unwrap_err().to_string();
    assert!(err.contains("has no Cluster \"b\""), "{err}");

    let step = c.on_response(
        response(
            CDS,
            "2",
            "b",
            vec![eds_cluster("a", ""), eds_cluster("b", "")],
        ),
        now,
    );
    assert_eq!(requests(&step)[1], req(EDS, &["a", "b"], "1", "a"));
    let step = c.on_response(
        response(EDS, "2", "b", vec![cla("b", &["10.0.0.2:80"])]),
        now,
    );
    assert_eq!(step.items.len(), 1);
    assert_eq!(reset_addrs(&step.items[0]), ["10.0.0.1:80", "10.0.0.2:80"]);
}

#[test]
fn a_listener_left_out_of_an_lds_response_is_deleted() {
    let now = Instant::now();
    let mut c = resolved(now);
    let step = c.on_response(response(LDS, "2", "n2", vec![]), now);
    assert_eq!(requests(&step), [req(LDS, &["greeter"], "2", "n2")]);
    assert_eq!(reset_addrs(&step.items[0]), Vec::<String>::new());
    let err = step.items[1].as_ref().unwrap_err();
    assert!(matches!(err, Error::Deleted { kind: LDS, .. }), "{err:?}");
    assert!(
        err.to_string().contains("deleted Listener \"greeter\""),
        "{err}"
    );

    // It comes back: so do the endpoints (RDS, CDS, EDS were kept).
    let step = c.on_response(
        response(LDS, "3", "n3", vec![listener_rds("greeter", "r1")]),
        now,
    );
    assert_eq!(reset_addrs(&step.items[0]), ["10.0.0.1:80"]);
}

#[test]
fn deletions_are_ignored_when_the_server_asks_so() {
    let now = Instant::now();
    let mut c = resolved(now);
    c.ignore_deletion = true;
    let step = c.on_response(response(LDS, "2", "n2", vec![]), now);
    assert_eq!(requests(&step), [req(LDS, &["greeter"], "2", "n2")]);
    assert!(step.items.is_empty());
    let step = c.on_response(response(CDS, "2", "n2", vec![]), now);
    assert!(step.items.is_empty());
}

#[test]
fn eds_and_rds_responses_may_leave_resources_out() {
    let now = Instant::now();
    let mut c = resolved(now);
    let step = c.on_response(
        response(EDS, "2", "n2", vec![cla("other", &["10.0.0.5:80"])]),
        now,
    );
    assert_eq!(requests(&step), [req(EDS, &["s1"], "2", "n2")]);
    assert!(step.items.is_empty());
    let step = c.on_response(response(RDS, "2", "n2", vec![]), now);
    assert!(step.items.is_empty());
}

#[test]
fn a_listener_never_sent_does_not_exist_after_the_timeout() {
    let start = Instant::now();
    let mut c = chain();
    c.start_stream(start);
    let step = c.on_response(response(LDS, "", "a", vec![]), start);
    assert_eq!(
        requests(&step),
        [req(LDS, &["greeter"], "", "a")],
        "an empty answer is ACKed"
    );
    assert!(step.items.is_empty(), "never seen is not deleted");
    assert_eq!(c.next_deadline(), Some(start + TIMEOUT));
    assert!(
        c.on_deadline(start + TIMEOUT - Duration::from_millis(1))
            .items
            .is_empty()
    );
    let step = c.on_deadline(start + TIMEOUT);
    assert_eq!(reset_addrs(&step.items[0]), Vec::<String>::new());
    let err = step.items[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("xDS server 127.0.0.1:18000 has no Listener \"greeter\""),
        "{err}"
    );
    assert_eq!(c.next_deadline(), None);

    // It appears later: the chain goes on.
    let step = c.on_response(
        response(LDS, "1", "b", vec![listener_rds("greeter", "r1")]),
        start + TIMEOUT,
    );
    assert_eq!(requests(&step)[1], req(RDS, &["r1"], "", ""));
}

#[test]
fn a_lost_stream_keeps_the_endpoints_and_a_new_one_resubscribes_everything() {
    let now = Instant::now();
    let mut c = resolved(now);
    let lost = Error::StreamBroken {
        server: SERVER.into(),
        reason: "unavailable".into(),
    };
    let items = c.stream_lost(lost.clone());
    assert_eq!(items, [Err(lost)], "no reset: the last endpoints stay");

    let again = c.start_stream(now);
    assert_eq!(
        again.iter().map(shown).collect::<Vec<_>>(),
        [
            req(LDS, &["greeter"], "1", ""),
            req(RDS, &["r1"], "1", ""),
            req(CDS, &["c1"], "1", ""),
            req(EDS, &["s1"], "1", ""),
        ]
    );
    assert_eq!(c.next_deadline(), None, "known resources need no timer");
    let items = c.stream_established();
    assert_eq!(
        items.len(),
        1,
        "the endpoints again, which clears the error"
    );
    assert_eq!(reset_addrs(&items[0]), ["10.0.0.1:80"]);
    assert!(c.stream_established().is_empty());
}

#[test]
fn a_stream_lost_before_anything_is_known_means_no_endpoints() {
    let mut c = chain();
    c.start_stream(Instant::now());
    let err = Error::Connect {
        server: SERVER.into(),
        reason: "refused".into(),
    };
    let items = c.stream_lost(err.clone());
    assert_eq!(items, [Ok(Update::Reset(Vec::new())), Err(err.clone())]);
    assert_eq!(
        c.next_deadline(),
        None,
        "no does-not-exist timer while disconnected"
    );
    assert_eq!(c.stream_lost(err.clone()), [Err(err)]);
}

#[test]
fn responses_of_types_not_asked_for_are_ignored() {
    let now = Instant::now();
    let mut c = chain();
    c.start_stream(now);
    let step = c.on_response(response(CDS, "1", "a", vec![eds_cluster("c1", "")]), now);
    assert!(step.requests.is_empty() && step.items.is_empty());
    let mut odd = response(CDS, "1", "a", vec![]);
    odd.type_url = "type.googleapis.com/envoy.config.listener.v3.ScopedRouteConfiguration".into();
    let step = c.on_response(odd, now);
    assert!(step.requests.is_empty() && step.items.is_empty());
}

#[test]
fn unsubscribed_resources_in_a_response_are_ignored_and_a_bad_one_is_nacked() {
    let now = Instant::now();
    let mut c = chain();
    c.start_stream(now);
    let step = c.on_response(
        response(
            LDS,
            "1",
            "a",
            vec![listener_rds("other", "r9"), listener_rds("greeter", "r1")],
        ),
        now,
    );
    assert_eq!(requests(&step)[1], req(RDS, &["r1"], "", ""));
    let garbage = Any {
        type_url: crate::LISTENER.into(),
        value: vec![0xff, 0xff],
    };
    let step = c.on_response(response(LDS, "2", "b", vec![garbage]), now);
    assert_eq!(
        shown(&step.requests[0]),
        (LDS, vec!["greeter".into()], "1".into(), "b".into(), true)
    );
    assert!(
        matches!(&step.items[..], [Err(Error::Rejected { .. })]),
        "{:?}",
        step.items
    );
}

#[test]
fn the_clusters_policies_are_handed_on_when_they_change() {
    use crate::resources::tests::eds_cluster_message;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::LbPolicy;
    let now = Instant::now();
    let mut c = resolved(now);
    assert_eq!(
        c.take_cluster_changes(),
        [Update::Policy(vec!["round_robin".to_string()])]
    );
    assert_eq!(c.take_cluster_changes(), [], "taken once");

    // The same Cluster again: nothing new.
    c.on_response(response(CDS, "2", "n2", vec![eds_cluster("c1", "s1")]), now);
    assert_eq!(c.take_cluster_changes(), []);

    let mut least = eds_cluster_message("c1", "s1");
    least.lb_policy = LbPolicy::LeastRequest as i32;
    let step = c.on_response(response(CDS, "3", "n3", vec![pack_any(least)]), now);
    assert_eq!(
        c.take_cluster_changes(),
        [Update::Policy(vec!["least_request".to_string()])]
    );
    assert_eq!(
        reset_addrs(&step.items[0]),
        ["10.0.0.1:80"],
        "same endpoints"
    );
}

#[test]
fn the_clusters_outlier_detection_is_handed_on_and_a_bad_one_nacked() {
    use crate::resources::tests::eds_cluster_message;
    use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
    use envoy_types::pb::google::protobuf::UInt32Value;
    use podlb_core::OutlierSettings;
    let now = Instant::now();
    let mut c = resolved(now);
    c.take_cluster_changes();

    let tuned = OutlierSettings {
        consecutive_failures: Some(2),
        ..OutlierSettings::default()
    };
    let mut with = eds_cluster_message("c1", "s1");
    with.outlier_detection = Some(crate::outlier_detection(&tuned));
    c.on_response(response(CDS, "2", "n2", vec![pack_any(with.clone())]), now);
    assert_eq!(c.take_cluster_changes(), [Update::Outlier(Some(tuned))]);

    // A percentage above 100: NACKed, the last good settings stay.
    with.outlier_detection = Some(OutlierDetection {
        max_ejection_percent: Some(UInt32Value { value: 120 }),
        ..Default::default()
    });
    let step = c.on_response(response(CDS, "3", "n3", vec![pack_any(with)]), now);
    let nack = step.requests[0].error_detail.as_ref().expect("a NACK");
    assert!(
        nack.message
            .contains("outlier_detection.max_ejection_percent is 120"),
        "{}",
        nack.message
    );
    assert_eq!(c.take_cluster_changes(), []);

    // Gone from the Cluster: podlb's own settings again.
    c.on_response(response(CDS, "4", "n4", vec![eds_cluster("c1", "s1")]), now);
    assert_eq!(c.take_cluster_changes(), [Update::Outlier(None)]);
}

#[test]
fn the_routes_retry_policy_is_handed_on_and_a_bad_one_nacked() {
    use crate::resources::tests::route_config_message;
    use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    use envoy_types::pb::google::protobuf::UInt32Value;
    use podlb_core::RouteRetry;
    let now = Instant::now();
    let mut c = resolved(now);
    c.take_cluster_changes();

    let with_retry = |policy: RetryPolicy| {
        let mut config = route_config_message("r1", &[(&["*"], "c1")]);
        if let Some(Action::Route(action)) = &mut config.virtual_hosts[0].routes[0].action {
            action.retry_policy = Some(policy);
        }
        pack_any(config)
    };
    let policy = RetryPolicy {
        retry_on: "unavailable".into(),
        num_retries: Some(UInt32Value { value: 2 }),
        ..Default::default()
    };
    c.on_response(
        response(RDS, "2", "n2", vec![with_retry(policy.clone())]),
        now,
    );
    assert_eq!(
        c.take_cluster_changes(),
        [Update::Retry(Some(RouteRetry {
            codes: vec![14],
            max_attempts: 3,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(250),
        }))]
    );

    // num_retries 0: NACKed, the last good policy stays.
    let zero = RetryPolicy {
        num_retries: Some(UInt32Value { value: 0 }),
        ..policy
    };
    let step = c.on_response(response(RDS, "3", "n3", vec![with_retry(zero)]), now);
    let nack = step.requests[0].error_detail.as_ref().expect("a NACK");
    assert!(
        nack.message.contains("retry_policy.num_retries is 0"),
        "{}",
        nack.message
    );
    assert_eq!(c.take_cluster_changes(), []);

    // Gone from the route: none from xDS.
    c.on_response(
        response(RDS, "4", "n4", vec![route_config("r1", &[(&["*"], "c1")])]),
        now,
    );
    assert_eq!(c.take_cluster_changes(), [Update::Retry(None)]);
}
