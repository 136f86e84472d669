//! The OpenAPI document against the router: the document lists exactly the API's routes, each documented
//! operation is served, and no undocumented method is served on a documented path.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;

use crate::harness::Server;

/// Every route of the job API, plus the operational ones.
const EXPECTED: &[(&str, &str)] = &[
    ("get", "/v1/jobs"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("put", "/v1/jobs/{id}"),
    ("patch", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/pause"),
    ("post", "/v1/jobs:batch"),
    ("post", "/v1/jobs/{id}/resume"),
    ("post", "/v1/jobs/{id}/trigger"),
    ("post", "/v1/jobs/{id}/clone"),
    ("post", "/v1/jobs/{id}/backfill"),
    ("get", "/v1/jobs/{id}/runs"),
    ("get", "/v1/jobs/{id}/next"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/stream"),
    ("post", "/v1/jobs:validate"),
    ("post", "/v1/schedules/preview"),
    ("get", "/v1/stats"),
    ("get", "/v1/me"),
    ("get", "/"),
    ("get", "/console/{asset}"),
    ("get", "/v1/cluster"),
    ("get", "/v1/workers"),
    ("post", "/v1/rebalance/plan"),
    ("get", "/v1/openapi.json"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// A concrete path for a documented template.
fn example(path: &str) -> String {
    path.replace("{id}", "no-such-job")
        .replace("{asset}", "app.js")
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_matches_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, doc) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );

    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented(&doc),
        expected,
        "documented routes differ from the expected API"
    );

    // Every documented operation is routed: never the router's 404 or 405.
    for (method, path) in documented(&doc) {
        let mut url = server.at(&example(&path));
        if path == "/v1/runs/stream" {
            // A stream stays open until `seconds` pass.
            url.push_str("?seconds=1");
        }
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = server
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            !matches!(
                body["error"]["code"].as_str(),
                Some("no_route" | "method_not_allowed")
            ),
            "{method} {path} is documented but not routed: {status} {body}"
        );
    }

    // No undocumented method on a documented path.
    let paths: BTreeSet<&str> = EXPECTED.iter().map(|(_, p)| *p).collect();
    for path in paths {
        for method in METHODS {
            if EXPECTED.contains(&(method, path)) {
                continue;
            }
            let url = server.at(&example(path));
            let response = server
                .http
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    &url,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                405,
                "{method} {path} is routed but not documented"
            );
        }
    }

    // The engine's types are in the document, and every operation documents its errors as ErrorBody.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Job",
        "JobSpec",
        "Target",
        "DstPolicy",
        "DstRepeat",
        "RunRecord",
        "ErrorBody",
        "Scenario",
        "Plan",
        "ClusterView",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let spec_fields: BTreeSet<&str> = schemas["JobSpec"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "name",
        "schedule",
        "timezone",
        "dst",
        "dst_repeat",
        "target",
        "misfire",
        "overlap",
        "retry",
        "delivery",
        "paused",
    ] {
        assert!(spec_fields.contains(field), "JobSpec.{field} missing");
    }
    let required: Vec<&str> = schemas["JobSpec"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["name", "schedule", "target"]);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// The schema a `$ref` names.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[tokio::test]
async fn the_document_describes_real_answers_and_every_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (_, doc) = server.get("/v1/openapi.json").await;

    // Flattened structs and tagged variants are single objects, not `allOf`s (a closed member would
    // forbid the other members' properties, so no real job could validate).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        assert!(schema.get("allOf").is_none(), "{name} is an allOf");
    }

    // A real job's members are all properties of the Job schema.
    let job = serde_json::json!({"id": "doc", "name": "doc", "schedule": "@hourly",
        "target": {"type": "command", "argv": ["true"], "env": {"K": {"from_env": "V"}}}});
    assert_eq!(
        server.send(Method::POST, "/v1/jobs", Some(job)).await.0,
        201
    );
    let (_, real) = server.get("/v1/jobs/doc").await;
    let known: BTreeSet<String> = resolve(&doc, &schemas["Job"])["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for key in real.as_object().unwrap().keys() {
        assert!(
            known.contains(key),
            "{key} of a real job is not in the Job schema"
        );
    }

    // Every /v1 operation documents 401; those that change state 403 too.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let responses = &operation["responses"];
            assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            let writes = method != "get"
                && !matches!(
                    path.as_str(),
                    "/v1/rebalance/plan" | "/v1/schedules/preview"
                );
            assert_eq!(
                responses.get("403").is_some(),
                writes,
                "{method} {path}: 403 documented iff it changes state"
            );
        }
    }

    // Every optional member is nullable in the document, and may be sent as null; no parameter is nullable.
    let labels = &schemas["JobSpec"]["properties"]["labels"]["type"];
    assert_eq!(labels, &serde_json::json!(["object", "null"]), "{labels}");
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let text = parameter["schema"]["type"].to_string();
                assert!(!text.contains("null"), "{method} {path}: {parameter}");
            }
        }
    }
    let with_nulls = serde_json::json!({"id": "nulls", "name": "nulls", "schedule": "@hourly",
        "delivery": null, "timezone": null, "paused": null, "labels": null, "node_labels": null,
        "target": {"type": "command", "argv": ["true"], "cwd": null, "env": null}});
    let (status, body) = server
        .send(Method::POST, "/v1/jobs", Some(with_nulls))
        .await;
    assert_eq!(status, 201, "{body}");
}
