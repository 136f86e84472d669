//! Unit tests of the configuration: defaults, unknown keys, durations, URLs, overrides.

use std::time::Duration;

use super::*;

#[test]
fn defaults_are_valid_and_use_the_durable_store_under_the_data_dir() {
    let config = Config::default();
    config.validate().unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:7070");
    assert_eq!(
        config.coordinator_url().unwrap(),
        CoordinatorUrl::File(PathBuf::from("campanile-data/campanile.redb"))
    );
}

#[test]
fn a_file_reads_humane_durations_and_nested_tables() {
    let config: Config = toml::from_str(
        r#"
        node_id = "a"
        shutdown_timeout = "5s"
        [engine]
        session_ttl = "2s"
        [[notify.webhooks]]
        name = "ops"
        url = "http://127.0.0.1:9/hook"
        "#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
    assert_eq!(config.engine.session_ttl, Duration::from_secs(2));
    assert_eq!(config.notify.webhooks[0].max_attempts, 5);
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    let err = toml::from_str::<Config>("nod_id = \"a\"").unwrap_err();
    assert!(err.to_string().contains("nod_id"), "{err}");
    let err = toml::from_str::<Config>("[engine]\nttl = \"1s\"").unwrap_err();
    assert!(err.to_string().contains("ttl"), "{err}");
}

#[test]
fn bad_values_name_the_key_and_the_value() {
    let err = toml::from_str::<Config>("shutdown_timeout = \"5 parsecs\"").unwrap_err();
    assert!(err.to_string().contains("shutdown_timeout"), "{err}");
    let mut config = Config {
        node_id: "bad id".into(),
        ..Config::default()
    };
    let err = config.validate().unwrap_err();
    assert_eq!(
        (err.field.as_str(), err.value.as_str()),
        ("node_id", "bad id")
    );
    config.node_id = "a".into();
    config.engine.session_ttl = Duration::from_millis(10);
    assert_eq!(config.validate().unwrap_err().field, "engine.session_ttl");
    config.engine.session_ttl = Duration::from_secs(10);
    config.coordinator = Some("redis://x".into());
    assert_eq!(config.validate().unwrap_err().field, "coordinator");
}

#[test]
fn coordinator_urls_parse_and_print_back() {
    for url in [
        "memory:",
        "file:///var/lib/campanile/campanile.redb",
        "etcd://127.0.0.1:2379,127.0.0.2:2379/campanile",
        "zk://127.0.0.1:2181/campanile",
    ] {
        let parsed: CoordinatorUrl = url.parse().unwrap();
        assert_eq!(parsed.to_string(), url);
    }
    assert!("etcd://127.0.0.1/x".parse::<CoordinatorUrl>().is_err());
    assert!("file://".parse::<CoordinatorUrl>().is_err());
}

#[test]
fn overrides_replace_only_what_they_set() {
    let mut config = Config {
        node_id: "from-file".into(),
        labels: vec!["a".into()],
        ..Config::default()
    };
    config.apply(&Overrides {
        listen: Some("127.0.0.1:9999".parse().unwrap()),
        labels: Some(vec!["x=1".into(), "y".into()]),
        ..Overrides::default()
    });
    assert_eq!(config.node_id, "from-file");
    assert_eq!(config.listen.port(), 9999);
    assert_eq!(config.labels, vec!["x=1", "y"]);
}

#[test]
fn the_example_round_trips_and_lists_nested_keys() {
    let example = Config::example();
    example.validate().unwrap();
    let text = toml::to_string(&example).unwrap();
    assert_eq!(toml::from_str::<Config>(&text).unwrap(), example);
    let keys = Config::keys();
    for key in [
        "node_id",
        "engine.session_ttl",
        "tls.cert",
        "notify.webhooks.url",
        "log.format",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
}

#[test]
fn an_open_api_on_a_non_loopback_address_needs_insecure_no_auth() {
    let mut config = Config {
        listen: "0.0.0.0:7070".parse().unwrap(),
        ..Config::default()
    };
    let err = config.validate().unwrap_err();
    assert_eq!(err.field, "listen");
    let message = err.to_string();
    for hint in [
        "0.0.0.0:7070",
        "token_file",
        "127.0.0.1",
        "insecure_no_auth",
        "--insecure-no-auth",
    ] {
        assert!(message.contains(hint), "{hint:?} in {message}");
    }
    config.apply(&Overrides {
        insecure_no_auth: true,
        ..Overrides::default()
    });
    config.validate().unwrap();
    let with_tokens = Config {
        listen: "[::]:7070".parse().unwrap(),
        token_file: Some(PathBuf::from("/etc/campanile/tokens")),
        ..Config::default()
    };
    with_tokens.validate().unwrap();
    let loopback = Config {
        listen: "[::1]:7070".parse().unwrap(),
        ..Config::default()
    };
    loopback.validate().unwrap();
}

#[test]
fn http_limits_and_inherit_env_are_checked_with_their_key() {
    let config: Config = toml::from_str(
        "inherit_env = [\"HTTPS_PROXY\"]\n[http]\nheader_read_timeout = \"2s\"\nmax_connections = 64\n",
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.http.header_read_timeout, Duration::from_secs(2));
    assert_eq!(config.http.max_connections, 64);
    for (toml, field) in [
        ("[http]\nmax_connections = 0", "http.max_connections"),
        ("[http]\nmax_uri_bytes = 10", "http.max_uri_bytes"),
        (
            "[http]\nmax_header_bytes = 1000000",
            "http.max_header_bytes",
        ),
        (
            "[http]\nheader_read_timeout = \"1ms\"",
            "http.header_read_timeout",
        ),
        (
            "[http]\nbody_read_timeout = \"2h\"",
            "http.body_read_timeout",
        ),
        ("inherit_env = [\"CAMPANILE_TOKEN\"]", "inherit_env"),
        (
            "[egress]\nallow = [\"ok.test\", \"10.0.0.0/40\"]",
            "egress.allow[1]",
        ),
        ("[egress]\ndeny = [\"http://x\"]", "egress.deny[0]"),
        ("inherit_env = [\"A=B\"]", "inherit_env"),
    ] {
        let config: Config = toml::from_str(toml).unwrap();
        let err = config.validate().unwrap_err();
        assert_eq!(err.field, field, "{toml}: {err}");
    }
}

#[test]
fn cluster_tls_needs_both_files_and_names_the_missing_one() {
    let config: Config =
        toml::from_str("[cluster]\nlisten = \"127.0.0.1:7946\"\ntls_cert = \"/etc/c.pem\"\n")
            .unwrap();
    let err = config.validate().unwrap_err();
    assert_eq!(err.field, "cluster.tls_key");
    assert!(err.to_string().contains("/etc/c.pem"), "{err}");
    let config: Config =
        toml::from_str("[cluster]\nlisten = \"127.0.0.1:7946\"\ntls_key = \"/etc/k.pem\"\n")
            .unwrap();
    assert_eq!(config.validate().unwrap_err().field, "cluster.tls_cert");
}

#[test]
fn cluster_tls_files_that_hold_no_pem_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let config = ClusterConfig {
        listen: Some("127.0.0.1:7946".parse().unwrap()),
        tls_cert: Some(empty.clone()),
        tls_key: Some(empty.clone()),
        ..ClusterConfig::default()
    };
    let err = config.engine().unwrap_err();
    assert!(format!("{err:#}").contains("cluster.tls_cert"), "{err:#}");
    let err = super::client_tls(&empty).unwrap_err();
    assert!(format!("{err:#}").contains("--cluster-tls-ca"), "{err:#}");
}

#[test]
fn the_history_store_defaults_to_the_backend_and_names_a_bad_value_without_its_password() {
    let mut config = Config::default();
    assert_eq!(config.history_store().unwrap(), HistoryStoreKind::Inproc);
    config.coordinator = Some("etcd://127.0.0.1:2379/campanile".to_owned());
    assert_eq!(
        config.history_store().unwrap(),
        HistoryStoreKind::Local(PathBuf::from("campanile-data/history.redb"))
    );
    config.history.store = Some("postgresql://app:s3cret@db/runs".to_owned());
    assert_eq!(
        config.history_store().unwrap(),
        HistoryStoreKind::Postgres("postgresql://app:s3cret@db/runs".to_owned())
    );
    assert!(!format!("{:?}", config.redacted()).contains("s3cret"));

    config.history.store = Some("mysql://app:s3cret@db/runs".to_owned());
    let error = config.validate().unwrap_err();
    assert_eq!(error.field, "history.store");
    let text = error.to_string();
    assert!(text.contains("mysql://app:(redacted)@db/runs"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    let config: Config = toml::from_str("[history]\nmax_age = \"1s\"").unwrap();
    assert_eq!(config.validate().unwrap_err().field, "history.max_age");
}
