//! Unit tests of the job model: JSON form, defaults, unknown fields, and every validation rule's error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn parse(json: &str) -> Result<JobSpec, String> {
    let spec: JobSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

/// A valid spec with every policy at its default.
fn valid() -> JobSpec {
    JobSpec::new(
        "nightly report",
        Schedule::parse("0 3 * * *").unwrap(),
        Target::Command(CommandTarget::new(["/usr/bin/report", "--daily"])),
    )
}

fn http() -> HttpTarget {
    HttpTarget {
        url: "https://example.test/hook".to_owned(),
        method: "POST".to_owned(),
        headers: BTreeMap::new(),
        body: None,
        expected_status: Vec::new(),
        timeout: Duration::from_secs(30),
        follow_redirects: false,
    }
}

/// The error of `valid()` changed by `change`, checked to name `field` and quote `value`.
#[track_caller]
fn rejects(field: &str, value: &str, change: impl FnOnce(&mut JobSpec)) -> ValidationError {
    let mut spec = valid();
    change(&mut spec);
    let err = spec.validate().expect_err("expected a rejection");
    assert_eq!(
        (err.field.as_str(), err.value.as_str()),
        (field, value),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{field}: {value:?}: ")),
        "{err}"
    );
    err
}

fn with_http(change: impl FnOnce(&mut HttpTarget)) -> impl FnOnce(&mut JobSpec) {
    move |spec| {
        let mut target = http();
        change(&mut target);
        spec.target = Target::Http(target);
    }
}

fn with_command(change: impl FnOnce(&mut CommandTarget)) -> impl FnOnce(&mut JobSpec) {
    move |spec| {
        let Target::Command(cmd) = &mut spec.target else {
            unreachable!("valid() has a command target")
        };
        change(cmd);
    }
}

#[test]
fn documented_example_parses_with_defaults() {
    let spec = parse(
        r#"{"name":"report","schedule":"0 */5 * * * *","timezone":"Europe/London",
            "target":{"type":"command","argv":["/usr/bin/report","--daily"],"timeout":"30s"},
            "misfire":{"policy":"fire_once"},"overlap":"skip"}"#,
    )
    .unwrap();
    assert_eq!(spec.namespace, "default");
    assert_eq!(spec.weight, 1);
    assert_eq!(spec.delivery, Delivery::AtMostOnce);
    assert_eq!(spec.dst, DstPolicy::Cronie);
    assert_eq!(spec.dst_repeat, DstRepeat::First);
    let Target::Command(cmd) = &spec.target else {
        panic!("expected a command target")
    };
    assert_eq!(cmd.timeout, Some(Duration::from_secs(30)));
    let back: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn smallest_job_and_its_defaults() {
    let spec = parse(r#"{"name":"x","schedule":"@hourly","target":{"type":"handler","name":"h"}}"#)
        .unwrap();
    assert_eq!(spec.timezone, "UTC");
    assert_eq!(spec.misfire, MisfirePolicy::FireOnce);
    assert_eq!(spec.overlap, Overlap::Skip);
    assert_eq!(spec.retry, RetryPolicy::default());
    assert_eq!(spec.jitter, None);
    assert!(!spec.paused);
    // Defaults are left out of the JSON form.
    assert_eq!(
        serde_json::to_string(&spec).unwrap(),
        r#"{"name":"x","namespace":"default","schedule":"@hourly","timezone":"UTC","target":{"type":"handler","name":"h"},"misfire":{"policy":"fire_once"},"overlap":"skip","retry":{"max_retries":0,"backoff":{"initial":"1s","factor":2.0,"max":"1m"}},"delivery":"at_most_once","paused":false,"weight":1}"#
    );
}

#[test]
fn every_field_set_round_trips_through_json() {
    let json = r#"{
        "name": "sync ledgers",
        "namespace": "payments_eu-1",
        "labels": {"team": "payments", "tier": "1"},
        "schedule": "0 */5 9-17 * MON-FRI",
        "timezone": "America/New_York",
        "dst": "skip_gap",
        "dst_repeat": "last",
        "target": {"type": "command", "argv": ["/bin/sh", "-c", "sync"], "env": {"MODE": "full"},
                   "cwd": "/var/lib/sync", "timeout": "5m", "run_as": {"user": "backup", "group": "disk"}},
        "misfire": {"policy": "catch_up", "max_count": 3, "window": "2h"},
        "overlap": "buffer_one",
        "retry": {"max_retries": 4, "backoff": {"initial": "2s", "factor": 3.0, "max": "5m"}},
        "delivery": "at_least_once",
        "jitter": "30s",
        "start_at": "2026-01-01T00:00:00Z",
        "end_at": "2027-01-01T00:00:00Z",
        "paused": true,
        "weight": 7,
        "node_labels": ["region=eu", "ssd"],
        "executor": {"group": "billing"}
    }"#;
    let spec = parse(json).unwrap();
    let expected = JobSpec {
        name: "sync ledgers".to_owned(),
        namespace: "payments_eu-1".to_owned(),
        labels: BTreeMap::from([
            ("team".to_owned(), "payments".to_owned()),
            ("tier".to_owned(), "1".to_owned()),
        ]),
        schedule: Schedule::parse("0 */5 9-17 * MON-FRI").unwrap(),
        timezone: "America/New_York".to_owned(),
        dst: DstPolicy::SkipGap,
        dst_repeat: DstRepeat::Last,
        target: Target::Command(CommandTarget {
            argv: vec!["/bin/sh".to_owned(), "-c".to_owned(), "sync".to_owned()],
            env: BTreeMap::from([("MODE".to_owned(), "full".into())]),
            cwd: Some(PathBuf::from("/var/lib/sync")),
            timeout: Some(Duration::from_secs(300)),
            run_as: Some(crate::job::RunAs {
                user: "backup".to_owned(),
                group: Some("disk".to_owned()),
            }),
        }),
        misfire: MisfirePolicy::CatchUp {
            max_count: 3,
            window: Duration::from_secs(7200),
        },
        overlap: Overlap::BufferOne,
        retry: RetryPolicy {
            max_retries: 4,
            backoff: Backoff {
                initial: Duration::from_secs(2),
                factor: 3.0,
                max: Duration::from_secs(300),
            },
        },
        delivery: Delivery::AtLeastOnce,
        jitter: Some(Duration::from_secs(30)),
        start_at: Some("2026-01-01T00:00:00Z".parse().unwrap()),
        end_at: Some("2027-01-01T00:00:00Z".parse().unwrap()),
        paused: true,
        weight: 7,
        node_labels: BTreeSet::from(["region=eu".to_owned(), "ssd".to_owned()]),
        executor: Some(ExecutorGroup {
            group: "billing".to_owned(),
        }),
    };
    assert_eq!(spec, expected);
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<JobSpec>(&text).unwrap(), spec);
    // Every field is written out when it is not the default.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "name",
            "namespace",
            "labels",
            "schedule",
            "timezone",
            "dst",
            "dst_repeat",
            "target",
            "misfire",
            "overlap",
            "retry",
            "delivery",
            "jitter",
            "start_at",
            "end_at",
            "paused",
            "weight",
            "node_labels",
            "executor"
        ])
    );

    // The other targets, with every field set.
    for target in [
        Target::Http(HttpTarget {
            url: "https://example.test/hook?x=1".to_owned(),
            method: "PUT".to_owned(),
            headers: BTreeMap::from([("X-Token".to_owned(), "abc".into())]),
            body: Some("{\"a\":1}".to_owned()),
            expected_status: vec![200, 204],
            timeout: Duration::from_millis(2500),
            follow_redirects: false,
        }),
        Target::Handler(HandlerTarget {
            name: "compact".to_owned(),
            timeout: Some(Duration::from_secs(90)),
        }),
    ] {
        let spec = JobSpec {
            target,
            ..expected.clone()
        };
        spec.validate().unwrap();
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            serde_json::from_str::<JobSpec>(&text).unwrap(),
            spec,
            "{text}"
        );
    }
}

#[test]
fn stored_job_round_trips_through_json() {
    let job = Job {
        id: JobId::new("sync-1").unwrap(),
        revision: 42,
        created_ms: 1_790_000_000_000,
        updated_ms: 1_790_000_100_000,
        spec: std::sync::Arc::new(valid()),
        past_schedules: Vec::new(),
        requests: Vec::new(),
        last_trigger_ms: 0,
    };
    let text = serde_json::to_string(&job).unwrap();
    assert!(text.starts_with(r#"{"id":"sync-1","revision":42,"created_ms":1790000000000,"updated_ms":1790000100000,"name":"nightly report""#), "{text}");
    assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    assert_eq!(job.fire_id(5).to_string(), "sync-1@5");
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let handler = r#""target":{"type":"handler","name":"h"}"#;
    for (json, unknown) in [
        (format!(r#"{{"name":"x","schedule":"@hourly",{handler},"bogus":1}}"#), "bogus"),
        (format!(r#"{{"name":"x","schedule":"@hourly",{handler},"time_zone":"UTC"}}"#), "time_zone"),
        (
            r#"{"name":"x","schedule":"@hourly","target":{"type":"command","argv":["true"],"shell":true}}"#.to_owned(),
            "shell",
        ),
        (
            r#"{"name":"x","schedule":"@hourly","target":{"type":"http","url":"https://a.test","retries":2}}"#.to_owned(),
            "retries",
        ),
        (
            r#"{"name":"x","schedule":"@hourly","target":{"type":"handler","name":"h","args":[]}}"#.to_owned(),
            "args",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"misfire":{{"policy":"catch_up","max":3}}}}"#),
            "max",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"retry":{{"max_retries":1,"delay":"1s"}}}}"#),
            "delay",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"retry":{{"backoff":{{"jitter":"1s"}}}}}}"#),
            "jitter",
        ),
    ] {
        let err = parse(&json).unwrap_err();
        assert!(err.contains(&format!("unknown field `{unknown}`")), "{json}: {err}");
    }
    // Unknown variants are named too.
    for (json, unknown) in [
        (
            r#"{"name":"x","schedule":"@hourly","target":{"type":"shell","cmd":"ls"}}"#.to_owned(),
            "shell",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"overlap":"queue"}}"#),
            "queue",
        ),
        (
            format!(
                r#"{{"name":"x","schedule":"@hourly",{handler},"misfire":{{"policy":"replay"}}}}"#
            ),
            "replay",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"delivery":"exactly_once"}}"#),
            "exactly_once",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"dst":"ignore"}}"#),
            "ignore",
        ),
        (
            format!(r#"{{"name":"x","schedule":"@hourly",{handler},"dst_repeat":"twice"}}"#),
            "twice",
        ),
    ] {
        let err = parse(&json).unwrap_err();
        assert!(
            err.contains(&format!("unknown variant `{unknown}`")),
            "{json}: {err}"
        );
    }
}

#[test]
fn stored_job_ignores_unknown_fields() {
    // Deliberate (see `Job`): a stored job is read by every node of the cluster, and during a rolling upgrade
    // a node of the older version must still read a job written by a newer one with a field it does not
    // know. Typos are caught where users write jobs: `JobSpec` (the API's and the CLI's input) denies
    // unknown fields (`unknown_fields_are_rejected_with_their_name`).
    let json = r#"{"id":"a","created_ms":1,"updated_ms":1,"name":"x","schedule":"@hourly",
                   "target":{"type":"handler","name":"h"},"added_in_a_later_version":{"x":1}}"#;
    let job: Job = serde_json::from_str(json).unwrap();
    assert_eq!(job.spec.name, "x");
}

#[test]
fn json_errors_name_the_field_and_the_value() {
    let err =
        parse(r#"{"name":"x","schedule":"61 * * * *","target":{"type":"handler","name":"h"}}"#)
            .unwrap_err();
    assert!(
        err.starts_with(r#"schedule: "61 * * * *": minute 61 is out of range 0..=59"#),
        "{err}"
    );
    let err = parse(r#"{"name":"x","schedule":"@hourly","timezone":"Mars/Olympus","target":{"type":"handler","name":"h"}}"#)
        .unwrap_err();
    assert_eq!(
        err,
        r#"timezone: "Mars/Olympus": not an IANA time zone name"#
    );
    let err = parse(r#"{"name":"x","schedule":"@hourly","target":{"type":"command","argv":[]}}"#)
        .unwrap_err();
    assert_eq!(err, r#"target.argv: "[]": must name a program"#);
    let err = parse(
        r#"{"name":"x","schedule":"@hourly","target":{"type":"handler","name":"h"},"misfire":{"policy":"catch_up","max_count":0}}"#,
    )
    .unwrap_err();
    assert_eq!(err, r#"misfire.max_count: "0": must be 1 to 10000"#);
    let err = parse(
        r#"{"name":"x","schedule":"@hourly","target":{"type":"handler","name":"h"},"jitter":"soon"}"#,
    )
    .unwrap_err();
    assert!(err.contains("jitter") || err.contains("soon"), "{err}");
    let err = parse(r#"{"name":"x","target":{"type":"handler","name":"h"}}"#).unwrap_err();
    assert!(err.contains("missing field `schedule`"), "{err}");
}

#[test]
fn name_rules() {
    rejects("name", "", |s| s.name = String::new());
    rejects("name", "  \t", |s| s.name = "  \t".to_owned());
    let err = rejects("name", &format!("{}…", "n".repeat(200)), |s| {
        s.name = "n".repeat(257)
    });
    assert_eq!(err.reason, "must be 1 to 256 characters, not blank");
    // Characters, not bytes.
    let mut spec = valid();
    spec.name = "é".repeat(256);
    spec.validate().unwrap();
    let err = rejects("name", "a\\0b", |s| s.name = "a\0b".to_owned());
    assert_eq!(err.reason, "must not contain control characters like '\\0'");
    rejects("name", "line\\nbreak", |s| {
        s.name = "line\nbreak".to_owned()
    });
}

#[test]
fn namespace_rules() {
    for bad in ["", "has space", "a/b", "ünï", &"n".repeat(65)] {
        let err = rejects("namespace", bad, |s| s.namespace = bad.to_owned());
        assert_eq!(err.reason, "must be 1 to 64 characters of [A-Za-z0-9_-]");
    }
    let mut spec = valid();
    spec.namespace = "Team_a-1".to_owned();
    spec.validate().unwrap();
}

#[test]
fn timezone_rules() {
    for bad in ["Mars/Olympus", "", "europe/london", "+01:00"] {
        rejects("timezone", bad, |s| s.timezone = bad.to_owned());
    }
    let mut spec = valid();
    spec.timezone = "Asia/Kathmandu".to_owned();
    spec.validate().unwrap();
    assert_eq!(spec.tz().unwrap(), chrono_tz::Asia::Kathmandu);
}

#[test]
fn end_at_must_not_be_before_start_at() {
    let err = rejects("end_at", "2026-01-01T00:00:00+00:00", |s| {
        s.start_at = Some("2026-06-01T00:00:00Z".parse().unwrap());
        s.end_at = Some("2026-01-01T00:00:00Z".parse().unwrap());
    });
    assert_eq!(err.reason, "is before start_at 2026-06-01T00:00:00+00:00");
    let mut spec = valid();
    spec.start_at = Some("2026-06-01T00:00:00Z".parse().unwrap());
    spec.end_at = spec.start_at;
    spec.validate().unwrap();
}

#[test]
fn weight_rules() {
    rejects("weight", "0", |s| s.weight = 0);
    rejects("weight", "1000001", |s| s.weight = 1_000_001);
}

#[test]
fn jitter_rules() {
    let err = rejects("jitter", "1h 1s", |s| {
        s.jitter = Some(Duration::from_secs(3601))
    });
    assert_eq!(err.reason, "must be at most 1h");
    let mut spec = valid();
    spec.jitter = Some(Duration::from_secs(3600));
    spec.validate().unwrap();
}

#[test]
fn misfire_rules() {
    let catch_up = |max_count, window| {
        move |s: &mut JobSpec| s.misfire = MisfirePolicy::CatchUp { max_count, window }
    };
    rejects(
        "misfire.max_count",
        "0",
        catch_up(0, Duration::from_secs(60)),
    );
    rejects(
        "misfire.max_count",
        "10001",
        catch_up(10_001, Duration::from_secs(60)),
    );
    let err = rejects("misfire.window", "0s", catch_up(5, Duration::ZERO));
    assert_eq!(err.reason, "must be positive");
}

#[test]
fn retry_rules() {
    rejects("retry.max_retries", "101", |s| s.retry.max_retries = 101);
    for (factor, shown) in [
        (0.5, "0.5"),
        (10.5, "10.5"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
    ] {
        let err = rejects("retry.backoff.factor", shown, |s| {
            s.retry.backoff.factor = factor
        });
        assert_eq!(err.reason, "must be between 1 and 10");
    }
    let err = rejects("retry.backoff.max", "1s", |s| {
        s.retry.backoff.initial = Duration::from_secs(2);
        s.retry.backoff.max = Duration::from_secs(1);
    });
    assert_eq!(err.reason, "must not be below retry.backoff.initial");
}

#[test]
fn command_target_rules() {
    rejects("target.argv", "[]", with_command(|c| c.argv.clear()));
    rejects("target.argv[0]", "", with_command(|c| c.argv[0].clear()));
    let err = rejects(
        "target.argv[1]",
        "--da\\0ily",
        with_command(|c| c.argv[1] = "--da\0ily".to_owned()),
    );
    assert_eq!(err.reason, "contains a NUL byte");
    for key in ["", "A=B", "A\0"] {
        let shown = key.escape_debug().to_string();
        let err = rejects(
            "target.env",
            &shown,
            with_command(|c| {
                c.env.insert(key.to_owned(), "v".into());
            }),
        );
        assert_eq!(err.reason, "is not a valid variable name");
    }
    rejects(
        "target.env.MODE",
        "fu\\0ll",
        with_command(|c| {
            c.env.insert("MODE".to_owned(), "fu\0ll".into());
        }),
    );
    rejects(
        "target.cwd",
        "/tmp/\\0x",
        with_command(|c| c.cwd = Some(PathBuf::from("/tmp/\0x"))),
    );
    rejects(
        "target.timeout",
        "0s",
        with_command(|c| c.timeout = Some(Duration::ZERO)),
    );
}

#[test]
fn http_target_rules() {
    for url in [
        "ftp://example.test",
        "example.test",
        "https://",
        "http:///path",
        "https://?q",
        "",
        "https://exa mple.test",
        "https://example.test/\n",
    ] {
        let shown = url.escape_debug().to_string();
        let err = rejects("target.url", &shown, with_http(|h| h.url = url.to_owned()));
        assert_eq!(
            err.reason,
            "must be an http:// or https:// URL with a host and no whitespace"
        );
    }
    let mut spec = valid();
    for url in [
        "http://a",
        "HTTPS://Example.test:8443/x?y=1",
        "http://[::1]:80/",
    ] {
        with_http(|h| h.url = url.to_owned())(&mut spec);
        spec.validate().unwrap();
    }
    for method in ["", "get", "GE T", "PÖST"] {
        rejects(
            "target.method",
            method,
            with_http(|h| h.method = method.to_owned()),
        );
    }
    for status in [99, 600] {
        rejects(
            "target.expected_status",
            &status.to_string(),
            with_http(|h| h.expected_status = vec![200, status]),
        );
    }
    rejects(
        "target.timeout",
        "0s",
        with_http(|h| h.timeout = Duration::ZERO),
    );
    for name in ["", "Bad Header", "X:Y", "Ünï"] {
        rejects(
            "target.headers",
            name,
            with_http(|h| {
                h.headers.insert(name.to_owned(), "v".into());
            }),
        );
    }
    let err = rejects(
        "target.headers.X-Token",
        "abc\\r\\nX-Admin: 1",
        with_http(|h| {
            h.headers
                .insert("X-Token".to_owned(), "abc\r\nX-Admin: 1".into());
        }),
    );
    assert_eq!(err.reason, "must not contain CR, LF or NUL");
}

#[test]
fn handler_target_rules() {
    let err = rejects("target.name", "", |s| {
        s.target = Target::Handler(HandlerTarget::new(""))
    });
    assert_eq!(err.reason, "must name a registered handler");
    rejects("target.timeout", "0s", |s| {
        s.target = Target::Handler(HandlerTarget {
            name: "h".to_owned(),
            timeout: Some(Duration::ZERO),
        })
    });
}

#[test]
fn validation_error_helpers() {
    let err = ValidationError::new("schedule", "x", "bad").within("jobs[3]");
    assert_eq!(err.field, "jobs[3].schedule");
    assert_eq!(err.to_string(), r#"jobs[3].schedule: "x": bad"#);
    // Long values are cut at a character boundary.
    let err = ValidationError::new("name", "ü".repeat(150), "too long");
    assert_eq!(err.value, format!("{}…", "ü".repeat(100)));
}

#[test]
fn job_ids_are_checked() {
    assert!(JobId::new("nightly-report_2.v1").is_ok());
    let err = JobId::new("a/b").unwrap_err();
    assert_eq!(err.field, "id");
    assert_eq!(err.value, "a/b");
    assert!(JobId::new("").is_err());
    assert!(JobId::new("x".repeat(129)).is_err());
    // Path segments a URL cannot reach (clients and servers remove them), reserved in ZooKeeper too.
    for dots in [".", ".."] {
        let err = JobId::new(dots).unwrap_err();
        assert_eq!((err.field.as_str(), err.value.as_str()), ("id", dots));
    }
    assert!(JobId::new("...").is_ok());
    assert!(JobId::new(".hidden").is_ok());
}

#[test]
fn fire_id_round_trips() {
    let fire = FireId::new(JobId::new("job-1").unwrap(), 1_790_000_000_000);
    assert_eq!(fire.to_string(), "job-1@1790000000000");
    assert_eq!(fire.to_string().parse::<FireId>().unwrap(), fire);
    assert!("job-1".parse::<FireId>().is_err());
    assert!("job-1@soon".parse::<FireId>().is_err());
}

/// A job every 2 s from `T`, changed to every second at `T + 5.5 s`, then to every 10 s at `T + 8.2 s`.
fn job_with_eras() -> Job {
    const T: i64 = 1_790_000_000_000;
    let every = |s: &str| {
        let mut spec = valid();
        spec.schedule = Schedule::parse(s).unwrap();
        spec.timezone = "UTC".into();
        spec.start_at = None;
        spec.end_at = None;
        spec
    };
    let mut job = Job::new(JobId::new("eras").unwrap(), every("*/2 * * * * *"), T);
    job.update_spec(every("* * * * * *"), T + 5_500);
    let mut same_timing = (*job.spec).clone();
    same_timing.paused = true;
    job.update_spec(same_timing, T + 6_000);
    job.update_spec(every("*/10 * * * * *"), T + 8_200);
    job
}

#[test]
fn past_instants_follow_the_schedule_in_force_then() {
    const T: i64 = 1_790_000_000_000;
    let job = job_with_eras();
    // Only the two timing changes are kept, not the pause.
    assert_eq!(job.past_schedules.len(), 2);
    assert_eq!(job.past_schedules[0].until_ms, T + 5_500);
    assert_eq!(job.schedule_since_ms(), T + 8_200);
    let mut instants = Vec::new();
    let mut cursor = T;
    while let Some(t) = job.next_instant(chrono_tz::UTC, cursor) {
        if t > T + 30_000 {
            break;
        }
        instants.push((t - T) / 1_000);
        cursor = t;
    }
    // */2 up to 5.5 s, every second up to 8.2 s, then */10.
    assert_eq!(instants, [2, 4, 6, 7, 8, 10, 20, 30]);
    // From inside an era, the same sequence.
    assert_eq!(job.next_instant(chrono_tz::UTC, T + 4_000), Some(T + 6_000));
    assert_eq!(
        job.next_instant(chrono_tz::UTC, T + 8_000),
        Some(T + 10_000)
    );
}

#[test]
fn past_schedules_are_bounded_and_round_trip() {
    let mut job = job_with_eras();
    let spec = (*job.spec).clone();
    for i in 0..40 {
        let mut next = spec.clone();
        next.schedule =
            Schedule::parse(if i % 2 == 0 { "* * * * * *" } else { "@hourly" }).unwrap();
        job.update_spec(next, 1_790_000_100_000 + i);
    }
    assert_eq!(job.past_schedules.len(), MAX_PAST_SCHEDULES);
    assert_eq!(
        job.past_schedules.last().unwrap().until_ms,
        1_790_000_100_039
    );
    let text = serde_json::to_string(&job).unwrap();
    assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    // A job that never changed its schedule writes no history.
    let plain = Job::new(JobId::new("plain").unwrap(), valid(), 1);
    assert!(
        !serde_json::to_string(&plain)
            .unwrap()
            .contains("past_schedules")
    );
}

#[test]
fn secret_values_are_strings_or_one_reference() {
    let spec = parse(
        r#"{"name": "s", "schedule": "@hourly", "target": {"type": "command", "argv": ["env"],
            "env": {"PLAIN": "v", "TOKEN": {"from_env": "APP_TOKEN"}, "KEY": {"from_file": "/run/secrets/key"}}}}"#,
    )
    .unwrap();
    let Target::Command(cmd) = &spec.target else {
        panic!("{spec:?}")
    };
    assert_eq!(cmd.env["PLAIN"], SecretValue::Literal("v".into()));
    assert_eq!(cmd.env["TOKEN"], SecretValue::FromEnv("APP_TOKEN".into()));
    assert_eq!(
        cmd.env["KEY"],
        SecretValue::FromFile("/run/secrets/key".into())
    );
    // Stored and shown as given: the reference, never a value.
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        json["target"]["env"],
        serde_json::json!({"PLAIN": "v", "TOKEN": {"from_env": "APP_TOKEN"}, "KEY": {"from_file": "/run/secrets/key"}})
    );
    assert!(
        !format!("{cmd:?}").contains("\"v\""),
        "Debug hides literals"
    );

    for (value, wanted) in [
        (r#"{"from_env": "A", "from_file": "/b"}"#, "unexpected key"),
        (r#"{"from_vault": "x"}"#, "unknown key"),
        (r#"{}"#, "not {}"),
        ("3", "from_env"),
    ] {
        let json = format!(
            r#"{{"name": "s", "schedule": "@hourly", "target": {{"type": "http", "url": "https://h.test", "headers": {{"X": {value}}}}}}}"#
        );
        let err = parse(&json).unwrap_err();
        assert!(err.contains(wanted), "{value}: {err}");
    }
}

#[test]
fn secret_references_are_checked_with_their_field() {
    rejects(
        "target.env.TOKEN.from_env",
        "CAMPANILE_TOKEN",
        with_command(|c| {
            c.env.insert(
                "TOKEN".to_owned(),
                SecretValue::FromEnv("CAMPANILE_TOKEN".into()),
            );
        }),
    );
    rejects(
        "target.env.KEY.from_file",
        "relative/key",
        with_command(|c| {
            c.env.insert(
                "KEY".to_owned(),
                SecretValue::FromFile("relative/key".into()),
            );
        }),
    );
}
