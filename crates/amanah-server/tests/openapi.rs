//! The served OpenAPI document tells the truth: it is built from the route registry the router
//! serves, and it follows the policy in force (purposes, searchable categories, field formats),
//! changing when a new policy is applied. (Conformance of every answer to the document is
//! fuzzed by `scripts/fuzz-api`, which CI runs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use amanah_core::fields::{self, FieldType};
use amanah_server::{openapi, routes};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::Kind;

async fn document(h: &support::Harness) -> (Value, bytes::Bytes) {
    let resp = h
        .client
        .get(format!("{}/openapi.json", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = resp.bytes().await.unwrap();
    (serde_json::from_slice(&bytes).unwrap(), bytes)
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

fn search_parameters(doc: &Value) -> BTreeSet<String> {
    doc["paths"]["/v1/subjects"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_served_document_follows_the_policy_in_force() {
    let h = support::start(Kind::Sqlite, 0).await;
    let (doc, first) = document(&h).await;
    let policy = h.vault.policy().policy.clone();
    let version = doc["info"]["version"].as_str().unwrap().to_owned();
    assert!(
        version.ends_with(&format!("(policy {})", policy.version)),
        "{version}"
    );

    // Purposes: an enum of the policy's, wherever a purpose is named.
    let purposes: BTreeSet<String> = policy.purposes.keys().cloned().collect();
    let mut purpose_parameters = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == "purpose" {
                    assert_eq!(names(&p["schema"]["enum"]), purposes, "{p}");
                    purpose_parameters += 1;
                }
            }
        }
    }
    assert!(purpose_parameters >= 6, "{purpose_parameters}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        names(&schemas["EnrollBody"]["properties"]["purpose"]["enum"]),
        purposes
    );

    // The search takes the purpose and each indexed category, nothing else.
    let mut expected: BTreeSet<String> = policy
        .categories
        .values()
        .filter(|c| c.index)
        .map(|c| c.name.clone())
        .collect();
    expected.insert("purpose".into());
    assert_eq!(search_parameters(&doc), expected);

    // Each category's field schema, in the bodies and in what a read returns.
    let body = &schemas["SubjectBody"]["properties"]["fields"];
    assert_eq!(body["additionalProperties"], false);
    let body_fields: BTreeSet<String> = body["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let categories: BTreeSet<String> = policy.categories.keys().cloned().collect();
    assert_eq!(body_fields, categories);
    assert_eq!(body["properties"]["email"]["format"], "email");
    assert_eq!(body["properties"]["birth_date"]["format"], "date");
    assert!(body["properties"]["phone"]["pattern"].is_string());
    assert!(body["properties"]["nik"]["pattern"].is_string());
    let out = &schemas["SubjectOut"]["properties"]["fields"]["properties"];
    assert_eq!(out["email"]["format"], "email");
    assert_eq!(
        out["phone"]["anyOf"][0]["pattern"], r"^\+[1-9][0-9]{1,14}$",
        "{}",
        out["phone"]
    );

    // Served from memory: the same bytes until the policy changes.
    let (_, again) = document(&h).await;
    assert_eq!(first, again);

    // A new policy: a new indexed category and a new purpose show up at once.
    let source = support::test_policy("v2", 0).replace(
        "[purposes.admission]",
        "[categories.student_number]\ntype = \"text\"\nclass = \"general\"\nindex = true\n\
         [purposes.alumni]\nbasis = \"contract\"\ncategories = [\"student_number\"]\nretention = \"5y\"\n\
         [purposes.admission]",
    );
    h.apply_policy(&source).await;
    let (doc, _) = document(&h).await;
    assert!(doc["info"]["version"]
        .as_str()
        .unwrap()
        .ends_with("(policy v2)"));
    assert!(search_parameters(&doc).contains("student_number"));
    let p = &doc["paths"]["/v1/subjects"]["post"]["parameters"][0];
    assert_eq!(p["name"], "purpose");
    assert!(names(&p["schema"]["enum"]).contains("alumni"), "{p}");
    assert!(
        doc["components"]["schemas"]["SubjectBody"]["properties"]["fields"]["properties"]
            ["student_number"]
            .is_object()
    );
}

/// Every route of the registry is on the router: without a key, a protected route answers 401
/// (not the fallback's 404 or 405) and a public one 200.
#[tokio::test]
async fn every_route_of_the_registry_is_served() {
    let h = support::start(Kind::Sqlite, 0).await;
    for r in routes::all() {
        let path = r.path.replace("{id}", "x").replace("{hold_id}", "y");
        let (status, _, v) = support::send(
            &h.client,
            &h.base,
            Method::from_bytes(r.method.as_bytes()).unwrap(),
            &path,
            "",
            None,
        )
        .await;
        let want = if r.action.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(status, want, "{} {path}: {v}", r.method);
    }
}

/// The example each type's request schema gives is a value the core accepts, already in the
/// canonical form a read returns.
#[test]
fn field_schema_examples_are_accepted_and_canonical() {
    let mut checked = 0;
    for ty in FieldType::ALL {
        if let Some(example) = openapi::request_schema(ty).get("example") {
            let canonical = fields::normalize(ty, example)
                .unwrap_or_else(|e| panic!("{}: {example}: {e}", ty.as_str()));
            assert_eq!(fields::to_json(ty, &canonical), *example);
            checked += 1;
        }
    }
    assert_eq!(checked, 3);
}

#[test]
fn every_error_is_a_problem_and_every_operation_documents_the_shared_answers() {
    let doc = openapi::base();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["500", "503"] {
                assert!(responses.contains_key(status), "{method} {path} {status}");
            }
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{method} {path}"
            );
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path}");
            }
            if path.starts_with("/v1/subjects/{id}") {
                for status in ["404", "410"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
        }
    }
}
