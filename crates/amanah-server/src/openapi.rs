//! The OpenAPI document. Its paths come from the route registry ([`crate::routes`]); what every
//! route shares (bearer authentication, errors as problem+json, the statuses any route can
//! answer) is added here once; and the served document is specialized for the policy in force:
//! purposes as enums, each indexed category as a search parameter, each category's field schema
//! in the subject bodies. It is built once per policy version and served from memory.

use std::sync::{Arc, LazyLock, RwLock};

use amanah_core::fields::FieldType;
use amanah_core::policy::{Policy, ADMIN_ROLE};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::problem::Problem;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Amanah", description = "Personal-data vault: per-person envelope encryption, policy-checked and audited access. \
        This document describes the policy in force: purposes, searchable categories and each category's field format \
        follow it, and change when a new policy is applied (`PUT /v1/policy`)."),
    components(schemas(Problem)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The document of the registry's routes with the answers every route shares, before any
/// policy is applied (built once per process).
pub fn base() -> &'static Value {
    static BASE: LazyLock<Value> = LazyLock::new(|| {
        let (_, doc) = crate::routes::build();
        let mut doc = serde_json::to_value(doc).unwrap_or_default();
        shared_responses(&mut doc);
        doc
    });
    &BASE
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn problem_content() -> Value {
    json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
}

/// Errors are RFC 9457 problems: every 4xx/5xx response is documented as
/// `application/problem+json` with the `Problem` schema, and every operation documents the
/// answers it can give whatever its handler does: 400 (a malformed query, path or body), 401
/// (no valid key), 403 (refused by the decision point), 404 and 410 (a subject that does not
/// exist or was erased) under `/v1/subjects/{id}`, 413 (a body over the limit) where there is a
/// body, 500 (the vault failed closed), and 503 with `Retry-After` from the serving limits.
fn shared_responses(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let protected = path.starts_with("/v1/");
        let subject = path.starts_with("/v1/subjects/{id}");
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let has_body = op.contains_key("requestBody");
            // Query parameters come from the routes' query types (`crate::query`); a type that
            // describes its values (a `limit`'s range and default) describes the parameter.
            // A route that takes a `limit` refuses one out of its range with a 422.
            let mut bounded = false;
            for p in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
            {
                bounded |= p["name"] == "limit";
                let Some(p) = p.as_object_mut() else { continue };
                if !p.contains_key("description") {
                    let moved = p
                        .get_mut("schema")
                        .and_then(Value::as_object_mut)
                        .and_then(|schema| schema.remove("description"));
                    if let Some(description) = moved {
                        p.insert("description".into(), description);
                    }
                }
            }
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut();
            let Some(responses) = responses else { continue };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| json!({"description": description}));
            };
            if protected {
                add("400", "malformed request (query, path or JSON body)");
                add("401", "no valid API key");
                add(
                    "403",
                    "refused by the decision point (recorded in the audit log)",
                );
            }
            if subject {
                add("404", "no such subject");
                add("410", "the subject was erased");
            }
            if bounded {
                add(
                    "422",
                    "a query parameter out of its range (`limit`, named in `field`)",
                );
            }
            if has_body {
                add("413", "the request body is larger than 1 MiB");
            }
            add(
                "500",
                "the vault could not complete the request (it fails closed; see the server log)",
            );
            add(
                "503",
                "the server is at its limit of requests in progress (`overloaded`) or did not \
                 answer in time (`timeout`)",
            );
            for (status, response) in responses.iter_mut() {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                response["content"] = problem_content();
                match status.as_str() {
                    "401" => {
                        response["headers"] = json!({"WWW-Authenticate": {
                            "description": "`Bearer`",
                            "schema": {"type": "string"}
                        }});
                    }
                    "503" => {
                        response["headers"] = json!({"Retry-After": {
                            "description": "seconds to wait before retrying",
                            "schema": {"type": "integer", "minimum": 0}
                        }});
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The JSON schema of a value of a category of type `ty`, as a request carries it: what the
/// core's normalizer accepts (the value is stored in its canonical form).
pub fn request_schema(ty: FieldType) -> Value {
    match ty {
        FieldType::Name => json!({"type": "string", "minLength": 1, "maxLength": 200,
            "description": "a name: at most 200 characters, no control characters; whitespace is collapsed"}),
        FieldType::Email => json!({"type": "string", "format": "email", "maxLength": 254,
            "description": "an e-mail address with a top-level domain; stored lowercased"}),
        FieldType::Phone => {
            json!({"type": "string", "pattern": r"^\s*\+?[0-9 ().-]*[0-9][0-9 ().-]*\s*$",
            "maxLength": 64, "example": "+6281244719035",
            "description": "a phone number valid for its country, E.164 (`+6281244719035`) or Indonesian national \
                            (`0812-4471-9035`); stored and returned as E.164"})
        }
        FieldType::Nik => {
            json!({"type": "string", "pattern": r"^[0-9 .-]+$", "example": "3174092512990007",
            "description": "an Indonesian NIK: 16 digits (spaces, dots and dashes are removed) with a valid \
                            province, regency, district, birth date and serial"})
        }
        FieldType::Npwp => {
            json!({"type": "string", "pattern": r"^[0-9 .-]+$", "example": "012345678901000",
            "description": "an Indonesian NPWP: 15 or 16 digits (spaces, dots and dashes are removed)"})
        }
        FieldType::Date => json!({"type": "string", "format": "date",
            "description": "a calendar date, `YYYY-MM-DD`, year 1000 to 9999"}),
        FieldType::Text => json!({"type": "string", "maxLength": 10000,
            "description": "text: at most 10000 characters, no control characters but newline and tab"}),
        FieldType::Number => json!({"anyOf": [
            {"type": "number"},
            {"type": "string", "pattern": r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"}
        ], "description": "a decimal number (at most 64 digits), as a JSON number or a numeric string"}),
        FieldType::Bool => json!({"anyOf": [
            {"type": "boolean"},
            {"type": "string", "enum": ["true", "false"]}
        ], "description": "true or false"}),
        // No value is valid: a document is uploaded as a file. The policy's documents are left
        // out of the field schemas altogether (see `for_policy`).
        FieldType::Document => json!({"not": {},
            "description": "a document: uploaded as a file (PUT /v1/subjects/{id}/documents/{category}), never written as a value"}),
    }
}

/// What a read returns for a category of type `ty`: the canonical value, or a masked rendering
/// (with `*`) for a role that sees the category masked.
pub fn response_schema(ty: FieldType) -> Value {
    let masked = json!({"type": "string", "pattern": r"\*",
        "description": "masked: the caller's role sees this category masked"});
    let canonical = match ty {
        FieldType::Name => json!({"type": "string"}),
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Phone => json!({"type": "string", "pattern": r"^\+[1-9][0-9]{1,14}$"}),
        FieldType::Nik => json!({"type": "string", "pattern": "^[0-9]{16}$"}),
        FieldType::Npwp => json!({"type": "string", "pattern": "^[0-9]{15,16}$"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Text => json!({"type": "string"}),
        // A number too long for a double comes back as a string of its digits.
        FieldType::Number => json!({"anyOf": [
            {"type": "number"},
            {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
        ]}),
        FieldType::Bool => json!({"type": "boolean"}),
        // Never in a read's fields: documents are listed and downloaded on their own.
        FieldType::Document => json!({"not": {}}),
    };
    match ty {
        // A masked name, e-mail address or text is still a string of that shape.
        FieldType::Name | FieldType::Email | FieldType::Text | FieldType::Document => canonical,
        _ => json!({"anyOf": [canonical, masked]}),
    }
}

/// The document for `policy`: [`base`] with the policy's purposes, roles, recipients and
/// categories written in.
pub fn for_policy(policy: &Policy) -> Value {
    let mut doc = base().clone();
    let purposes: Vec<&String> = policy.purposes.keys().collect();
    let purpose_enum = json!({"type": "string", "enum": purposes});
    // Documents are uploaded and downloaded as files: they are no field of a subject's body or
    // read, and no disclosure releases them.
    let field_categories = || policy.categories.values().filter(|c| !c.is_document());
    let categories: Vec<&String> = field_categories().map(|c| &c.name).collect();
    let mut roles: Vec<&str> = vec![ADMIN_ROLE];
    roles.extend(policy.roles.keys().map(String::as_str));
    let recipients: Vec<&String> = policy.recipients.keys().collect();

    if let Some(info) = doc.get_mut("info").and_then(Value::as_object_mut) {
        let version = format!("{} (policy {})", env!("CARGO_PKG_VERSION"), policy.version);
        info.insert("version".into(), json!(version));
    }

    // Every `purpose` query parameter names one of the policy's purposes.
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for method in METHODS {
                let Some(params) = item
                    .get_mut(method)
                    .and_then(|op| op.get_mut("parameters"))
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for p in params.iter_mut() {
                    if p["name"] == "purpose" && p["in"] == "query" {
                        p["schema"] = purpose_enum.clone();
                    }
                }
            }
        }
    }

    // The search: one optional parameter per indexed category.
    if let Some(params) = doc
        .pointer_mut("/paths/~1v1~1subjects/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for c in policy.categories.values().filter(|c| c.index) {
            params.push(json!({
                "name": c.name,
                "in": "query",
                "required": false,
                "description": format!(
                    "search by {} ({}): give exactly one indexed category; the value is \
                     normalized as on create, then matched exactly through the blind index",
                    c.name, c.field_type.as_str()
                ),
                "schema": request_schema(c.field_type),
            }));
        }
    }

    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let fields = |schema: fn(FieldType) -> Value, what: &str| {
            let properties: Map<String, Value> = field_categories()
                .map(|c| {
                    let mut s = schema(c.field_type);
                    if let Some(o) = s.as_object_mut() {
                        o.insert(
                            "title".into(),
                            json!(format!("{} ({})", c.name, c.field_type.as_str())),
                        );
                    }
                    (c.name.clone(), s)
                })
                .collect();
            json!({"type": "object", "properties": properties, "additionalProperties": false,
                   "description": what})
        };
        let body_fields = fields(
            request_schema,
            "category name -> value: categories of the policy, each in its type's format",
        );
        let out_fields = fields(
            response_schema,
            "the categories the caller's role may see under the purpose, each canonical or masked",
        );
        let mut set = |schema: &str, property: &str, value: Value| {
            if let Some(p) = schemas
                .get_mut(schema)
                .and_then(|s| s.get_mut("properties"))
                .and_then(|p| p.get_mut(property))
            {
                // The annotation's description stays; the policy gives the values.
                let description = p.get("description").cloned();
                *p = value;
                if let (Some(d), Some(o)) = (description, p.as_object_mut()) {
                    o.entry("description").or_insert(d);
                }
            }
        };
        set("SubjectBody", "fields", body_fields);
        set("SubjectOut", "fields", out_fields);
        set("EnrollBody", "purpose", purpose_enum.clone());
        set("DisclosureBody", "purpose", purpose_enum.clone());
        set(
            "DisclosureBody",
            "recipient",
            json!({"type": "string", "enum": recipients}),
        );
        set(
            "DisclosureBody",
            "categories",
            json!({"type": "array", "items": {"type": "string", "enum": categories}}),
        );
        set(
            "NewKeyBody",
            "role",
            json!({"type": "string", "enum": roles}),
        );
        // A consent's purpose may be left out (it defaults to the purpose of collection).
        set(
            "ConsentBody",
            "purpose",
            json!({"anyOf": [{"type": "null"}, purpose_enum]}),
        );
    }
    doc
}

/// The served document, rebuilt only when the policy in force changes (keyed by the sequence
/// number the policy was applied as).
#[derive(Default)]
pub struct DocCache(RwLock<Option<(i64, Bytes)>>);

impl DocCache {
    fn get(&self, state: &AppState) -> Bytes {
        let active = state.vault().policy();
        let seq = active.record.seq;
        let cached = match self.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some((s, bytes)) = cached {
            if s == seq {
                return bytes;
            }
        }
        let bytes =
            Bytes::from(serde_json::to_vec(&for_policy(&active.policy)).unwrap_or_default());
        let mut slot = match self.0.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Some((seq, bytes.clone()));
        bytes
    }
}

/// This document, for the policy in force.
#[utoipa::path(get, path = "/openapi.json", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of this API under the policy in force",
               content_type = "application/json", body = Object)))]
pub async fn openapi_json(
    State(s): State<AppState>,
    Extension(cache): Extension<Arc<DocCache>>,
) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], cache.get(&s)).into_response()
}
