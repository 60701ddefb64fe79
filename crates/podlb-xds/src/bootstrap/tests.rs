use super::*;

const FULL: &str = r#"{
  "xds_servers": [{
    "server_uri": "xds.podlb-system:18000",
    "channel_creds": [{"type": "insecure"}],
    "server_features": ["xds_v3", "ignore_resource_deletion"]
  }, {
    "server_uri": "ignored:1",
    "channel_creds": [{"type": "tls"}]
  }],
  "node": {
    "id": "greeter-client",
    "cluster": "default",
    "locality": {"region": "r", "zone": "a"},
    "metadata": {"team": "podlb", "replicas": 3, "tags": ["x", true]}
  },
  "certificate_providers": {}
}"#;

fn field_error(json: &str) -> (String, String) {
    match Bootstrap::from_json(json, "/etc/podlb/bootstrap.json") {
        Err(Error::BootstrapField {
            source_name,
            field,
            problem,
        }) => {
            assert_eq!(source_name, "/etc/podlb/bootstrap.json");
            (field, problem)
        }
        other => panic!("not a field error: {other:?}"),
    }
}

fn with_server(server: &str) -> String {
    format!(r#"{{"xds_servers": [{server}]}}"#)
}

#[test]
fn reads_the_first_server_and_the_node() {
    let b = Bootstrap::from_json(FULL, "test").unwrap();
    assert_eq!(b.server.uri, "xds.podlb-system:18000");
    assert_eq!(b.server.endpoint, "http://xds.podlb-system:18000");
    assert_eq!(b.server.features, ["xds_v3", "ignore_resource_deletion"]);
    assert!(b.server.ignores_resource_deletion());
    assert_eq!(b.node.id, "greeter-client");
    assert_eq!(b.node.cluster, "default");
    let locality = b.node.locality.clone().unwrap();
    assert_eq!(
        (locality.region.as_str(), locality.zone.as_str()),
        ("r", "a")
    );
    assert_eq!(locality.sub_zone, "");
    assert_eq!(b.node.metadata["team"], "podlb");

    let node = b.node_proto();
    assert_eq!(node.id, "greeter-client");
    assert_eq!(node.user_agent_name, "podlb");
    assert!(matches!(
        node.user_agent_version_type,
        Some(UserAgentVersionType::UserAgentVersion(ref v)) if !v.is_empty()
    ));
    assert_eq!(node.locality.unwrap().zone, "a");
    let metadata = node.metadata.unwrap();
    assert_eq!(
        metadata.fields["replicas"].kind,
        Some(Kind::NumberValue(3.0))
    );
    assert!(matches!(
        &metadata.fields["tags"].kind,
        Some(Kind::ListValue(l)) if l.values.len() == 2
    ));
}

#[test]
fn a_minimal_bootstrap_has_an_empty_node() {
    let b = Bootstrap::from_json(
        &with_server(r#"{"server_uri": "127.0.0.1:1", "channel_creds": [{"type": "insecure"}]}"#),
        "test",
    )
    .unwrap();
    assert_eq!(b.node, NodeInfo::default());
    assert!(!b.server.ignores_resource_deletion());
    assert!(b.node_proto().metadata.is_none());
}

#[test]
fn server_uris_are_host_port_http_or_dns_targets() {
    for (uri, want) in [
        ("127.0.0.1:18000", "http://127.0.0.1:18000"),
        ("http://127.0.0.1:18000", "http://127.0.0.1:18000"),
        ("http://xds:18000/", "http://xds:18000"),
        (
            "dns:///xds.podlb-system:18000",
            "http://xds.podlb-system:18000",
        ),
        ("[::1]:18000", "http://[::1]:18000"),
    ] {
        assert_eq!(server_endpoint(uri).as_deref(), Ok(want), "{uri}");
    }
    for (uri, want) in [
        ("https://xds:443", "TLS"),
        ("unix:///run/xds.sock", "not supported"),
        ("xds", "not HOST:PORT"),
        ("xds:0", "not HOST:PORT"),
        ("http://xds:1/path", "not HOST:PORT"),
        // Not a URI's host: no connection could ever be made.
        ("http://xds.podlb-syst[m:18000/", "not HOST:PORT"),
        ("xds server:18000", "not HOST:PORT"),
    ] {
        let err = server_endpoint(uri).unwrap_err();
        assert!(err.contains(want), "{uri}: {err}");
    }
    let (field, problem) = field_error(&with_server(
        r#"{"server_uri": "xds", "channel_creds": [{"type": "insecure"}]}"#,
    ));
    assert_eq!(field, "xds_servers[0].server_uri");
    assert!(problem.contains("HOST:PORT"), "{problem}");
}

#[test]
fn only_insecure_credentials_are_supported_and_the_error_names_the_field() {
    for kind in ["tls", "google_default"] {
        let (field, problem) = field_error(&with_server(&format!(
            r#"{{"server_uri": "xds:1", "channel_creds": [{{"type": "{kind}"}}, {{"type": "insecure"}}]}}"#
        )));
        assert_eq!(field, "xds_servers[0].channel_creds[0].type");
        assert!(
            problem.contains(kind) && problem.contains("insecure"),
            "{problem}"
        );
    }
    for creds in ["", r#", "channel_creds": []"#] {
        let (field, problem) = field_error(&with_server(&format!(
            r#"{{"server_uri": "xds:1"{creds}}}"#
        )));
        assert_eq!(field, "xds_servers[0].channel_creds");
        assert!(problem.contains("insecure"), "{problem}");
    }
}

#[test]
fn missing_and_mistyped_fields_are_named() {
    let creds = r#""channel_creds": [{"type": "insecure"}]"#;
    for (json, want_field) in [
        ("{}".to_string(), "xds_servers"),
        (r#"{"xds_servers": []}"#.to_string(), "xds_servers"),
        (r#"{"xds_servers": {}}"#.to_string(), "xds_servers"),
        (r#"[]"#.to_string(), "the top level"),
        (
            with_server(&format!("{{{creds}}}")),
            "xds_servers[0].server_uri",
        ),
        (
            with_server(&format!(r#"{{"server_uri": 5, {creds}}}"#)),
            "xds_servers[0].server_uri",
        ),
        (
            with_server(&format!(
                r#"{{"server_uri": "x:1", {creds}, "server_features": "xds_v3"}}"#
            )),
            "xds_servers[0].server_features",
        ),
        (
            format!(
                r#"{{"xds_servers": [{{"server_uri": "x:1", {creds}}}], "node": {{"id": 7}}}}"#
            ),
            "node.id",
        ),
        (
            format!(
                r#"{{"xds_servers": [{{"server_uri": "x:1", {creds}}}], "node": {{"locality": "a"}}}}"#
            ),
            "node.locality",
        ),
        (
            format!(
                r#"{{"xds_servers": [{{"server_uri": "x:1", {creds}}}], "node": {{"metadata": [1]}}}}"#
            ),
            "node.metadata",
        ),
    ] {
        let (field, _) = field_error(&json);
        assert_eq!(field, want_field, "{json}");
    }
}

#[test]
fn bad_json_names_the_source_and_the_place() {
    let err = Bootstrap::from_json("{\n  \"xds_servers\": [", "/etc/b.json").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::BootstrapJson { .. }), "{err:?}");
    assert!(
        text.contains("/etc/b.json") && text.contains("line 2"),
        "{text}"
    );
}

#[test]
fn the_file_variable_wins_over_the_inline_one_and_neither_is_an_error_that_says_what_to_set() {
    let path =
        std::env::temp_dir().join(format!("podlb-xds-bootstrap-{}.json", std::process::id()));
    std::fs::write(&path, FULL).unwrap();
    let path_text = path.display().to_string();
    let inline =
        with_server(r#"{"server_uri": "inline:1", "channel_creds": [{"type": "insecure"}]}"#);
    let env = |path: Option<&str>, config: Option<&str>| {
        let (path, config) = (path.map(String::from), config.map(String::from));
        move |name: &str| match name {
            BOOTSTRAP_PATH_ENV => path.clone(),
            BOOTSTRAP_CONFIG_ENV => config.clone(),
            _ => None,
        }
    };

    let b = Bootstrap::from_lookup(env(Some(&path_text), Some(&inline))).unwrap();
    assert_eq!(b.server.uri, "xds.podlb-system:18000");
    assert_eq!(b.source_name, path_text);

    let b = Bootstrap::from_lookup(env(Some(" "), Some(&inline))).unwrap();
    assert_eq!(b.server.uri, "inline:1");
    assert_eq!(b.source_name, BOOTSTRAP_CONFIG_ENV);

    let err = Bootstrap::from_lookup(env(None, None)).unwrap_err();
    assert_eq!(err, Error::NoBootstrap);
    let text = err.to_string();
    assert!(text.contains(BOOTSTRAP_PATH_ENV) && text.contains(BOOTSTRAP_CONFIG_ENV));

    std::fs::remove_file(&path).unwrap();
    let err = Bootstrap::from_lookup(env(Some(&path_text), None)).unwrap_err();
    assert!(
        matches!(&err, Error::BootstrapRead { path, .. } if *path == path_text),
        "{err:?}"
    );
}

#[test]
fn an_insecure_bootstrap_takes_a_bare_address() {
    let b = Bootstrap::insecure("127.0.0.1:18000").unwrap();
    assert_eq!(b.server.endpoint, "http://127.0.0.1:18000");
    assert!(Bootstrap::insecure("nowhere").is_err());
}
