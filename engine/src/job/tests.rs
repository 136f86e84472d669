//! Unit tests of the job model: JSON form, defaults and validation errors.

use super::*;

fn parse(json: &str) -> Result<JobSpec, String> {
    let spec: JobSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
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
    let Target::Command(cmd) = &spec.target else {
        panic!("expected a command target")
    };
    assert_eq!(cmd.timeout, Some(std::time::Duration::from_secs(30)));
    let back: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn errors_name_the_field_and_the_value() {
    let err =
        parse(r#"{"name":"x","schedule":"61 * * * *","target":{"type":"handler","name":"h"}}"#)
            .unwrap_err();
    assert!(
        err.contains("schedule") && err.contains("61 * * * *"),
        "{err}"
    );
    let err = parse(r#"{"name":"x","schedule":"@hourly","timezone":"Mars/Olympus","target":{"type":"handler","name":"h"}}"#)
        .unwrap_err();
    assert!(
        err.contains("timezone") && err.contains("Mars/Olympus"),
        "{err}"
    );
    let err = parse(r#"{"name":"x","schedule":"@hourly","target":{"type":"command","argv":[]}}"#)
        .unwrap_err();
    assert!(err.contains("target.argv"), "{err}");
    let err = parse(
        r#"{"name":"x","schedule":"@hourly","target":{"type":"handler","name":"h"},"bogus":1}"#,
    )
    .unwrap_err();
    assert!(err.contains("bogus"), "{err}");
    let err = parse(
        r#"{"name":"x","schedule":"@hourly","target":{"type":"handler","name":"h"},"misfire":{"policy":"catch_up","max_count":0}}"#,
    )
    .unwrap_err();
    assert!(
        err.contains("misfire.max_count") && err.contains('0'),
        "{err}"
    );
}

#[test]
fn job_ids_are_checked() {
    assert!(JobId::new("nightly-report_2.v1").is_ok());
    let err = JobId::new("a/b").unwrap_err();
    assert_eq!(err.field, "id");
    assert_eq!(err.value, "a/b");
    assert!(JobId::new("").is_err());
    assert!(JobId::new("x".repeat(129)).is_err());
}

#[test]
fn fire_id_round_trips() {
    let fire = FireId::new(JobId::new("job-1").unwrap(), 1_790_000_000_000);
    assert_eq!(fire.to_string(), "job-1@1790000000000");
    assert_eq!(fire.to_string().parse::<FireId>().unwrap(), fire);
    assert!("job-1".parse::<FireId>().is_err());
    assert!("job-1@soon".parse::<FireId>().is_err());
}
