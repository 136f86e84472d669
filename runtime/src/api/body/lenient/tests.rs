//! The lenient reader against the `Value` route it replaces: the same specs, the same errors.

use serde_json::json;

use crate::api::body::JsonObject;
use crate::api::jobs::parse_batch;

/// A job with `null` members at every depth and of every kind (a plain field with a default, an option, a
/// nested struct, a map, an internally tagged enum's member).
fn with_nulls() -> serde_json::Value {
    json!({"id": "a", "name": "x", "schedule": "*/5 * * * *", "delivery": null, "timezone": null,
        "labels": {"team": "data"}, "jitter": null,
        "retry": {"max_retries": null, "backoff": {"factor": null, "initial": "2s"}},
        "misfire": {"policy": "catch_up", "max_count": 3},
        "target": {"type": "command", "argv": ["true", "--x"], "cwd": null, "env": {"A": null, "B": "b"},
            "timeout": "5m"}})
}

#[test]
fn a_job_reads_as_through_a_value_with_null_members_absent() {
    let job = with_nulls();
    let body = serde_json::to_vec(&json!({"jobs": [job.clone()]})).unwrap();
    let batch = parse_batch(&body).unwrap();
    let mut object = JsonObject(job.as_object().unwrap().clone());
    object.take("id");
    let expected: campanile::JobSpec = object.into_typed().unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].0.as_ref().map(|id| id.as_str()), Some("a"));
    assert_eq!(batch[0].1, expected);
    assert_eq!(batch[0].1.timezone, "UTC");
}

#[test]
fn errors_name_the_index_and_the_field_without_a_position() {
    let mut bad = with_nulls();
    bad["target"]["timeout"] = json!("soon");
    let body = serde_json::to_vec(&json!({"jobs": [with_nulls(), bad]})).unwrap();
    let err = parse_batch(&body).unwrap_err();
    // As through a `Value`: a member of the internally tagged target is named by the target (serde buffers
    // a tagged enum's members before it reads them, and loses their path).
    assert_eq!(err.field.as_deref(), Some("jobs[1].target"), "{err:?}");
    assert_eq!(
        err.message,
        "jobs[1].target: invalid value: string \"soon\", expected a duration"
    );

    let mut bad = with_nulls();
    bad["retry"]["max_retries"] = json!("x");
    let body = serde_json::to_vec(&json!({"jobs": [bad]})).unwrap();
    let err = parse_batch(&body).unwrap_err();
    assert_eq!(
        err.field.as_deref(),
        Some("jobs[0].retry.max_retries"),
        "{err:?}"
    );
    assert!(!err.message.contains("line"), "{err:?}");

    let mut bad = with_nulls();
    bad["colour"] = json!(1);
    let body = serde_json::to_vec(&json!({"jobs": [bad]})).unwrap();
    let err = parse_batch(&body).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("jobs[0].colour"), "{err:?}");

    let mut bad = with_nulls();
    bad["id"] = json!(5);
    let body = serde_json::to_vec(&json!({"jobs": [bad]})).unwrap();
    let err = parse_batch(&body).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("jobs[0].id"), "{err:?}");
    assert_eq!(err.message, "jobs[0].id: 5 is not a string");

    let mut bad = with_nulls();
    bad.as_object_mut().unwrap().remove("name");
    let body = serde_json::to_vec(&json!({"jobs": [bad]})).unwrap();
    let err = parse_batch(&body).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("jobs[0].name"), "{err:?}");
}

#[test]
fn the_envelope_is_checked_as_before() {
    for (body, code, field) in [
        ("", "invalid", Some("jobs")),
        ("null", "invalid", Some("jobs")),
        ("{\"jobs\": null}", "invalid", Some("jobs")),
        ("[1]", "bad_json", None),
        ("{\"jobs\": [", "bad_json", None),
        ("{\"jobs\": 3}", "invalid", Some("jobs")),
        ("{\"jobs\": []}", "invalid", Some("jobs")),
        ("{\"jobs\": [{}], \"extra\": 1}", "invalid", Some("extra")),
        ("{\"jobs\": [7]}", "invalid", Some("jobs[0]")),
    ] {
        let err = parse_batch(body.as_bytes()).unwrap_err();
        assert_eq!(err.code, code, "{body}: {err:?}");
        assert_eq!(err.field.as_deref(), field, "{body}: {err:?}");
    }
}
