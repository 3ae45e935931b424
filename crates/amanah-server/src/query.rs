//! What a request carries besides its key: query parameters (decoded, each name once, only
//! those a route takes, the one `limit` rule) and JSON bodies (errors that never quote a value).

use std::collections::BTreeMap;

use amanah_core::Error;
use axum::body::Bytes;

use crate::problem::Problem;

use crate::handlers::ApiResult;

/// Query parameters, decoded. Repeated names are rejected rather than silently resolved.
pub(crate) fn query(raw: Option<String>) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw else { return Ok(out) };
    for (k, v) in form_urlencoded::parse(raw.as_bytes()).into_owned() {
        if out.insert(k.clone(), v).is_some() {
            // Names are the caller's text, not repeated back.
            return Err(
                Error::BadRequest("a query parameter is given more than once".to_owned()).into(),
            );
        }
    }
    Ok(out)
}

/// Refuses query parameters a route does not take.
pub(crate) fn only(q: &BTreeMap<String, String>, allowed: &[&str]) -> ApiResult<()> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(_) => Err(Error::BadRequest(format!(
            "unknown query parameter; this route takes: {}",
            allowed.join(", ")
        ))
        .into()),
        None => Ok(()),
    }
}

/// The `limit` of a listing page: 1 to 1000, default 100.
/// Most items one page of a listing holds, and how many when `limit` is not given.
pub(crate) const MAX_LIMIT: usize = 1_000;
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Audit entries are small and read in bulk by auditors: pages may be longer.
pub(crate) const MAX_AUDIT_LIMIT: usize = 10_000;
pub(crate) const DEFAULT_AUDIT_LIMIT: usize = 1_000;

/// The one `limit` rule of every paged route: absent (the route's default) or an integer from 1
/// to the route's maximum; anything else is a 422 naming `limit`.
pub(crate) fn limit_within(
    q: &BTreeMap<String, String>,
    default: usize,
    max: usize,
) -> ApiResult<usize> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                Problem::from(Error::invalid(
                    "limit",
                    format!("`limit` must be an integer from 1 to {max}"),
                ))
            }),
    }
}

/// [`limit_within`] for listings: 1 to 1000, 100 by default.
pub(crate) fn limit(q: &BTreeMap<String, String>) -> ApiResult<usize> {
    limit_within(q, DEFAULT_LIMIT, MAX_LIMIT)
}

/// The `format` parameter, one of `allowed` (the first is the default).
pub(crate) fn format_of<'a>(
    q: &'a BTreeMap<String, String>,
    allowed: &[&'a str],
) -> ApiResult<&'a str> {
    let f = q
        .get("format")
        .map_or(allowed.first().copied().unwrap_or("json"), String::as_str);
    if allowed.contains(&f) {
        Ok(f)
    } else {
        Err(Error::BadRequest(format!("`format` must be one of: {}", allowed.join(", "))).into())
    }
}

/// The purpose a read or write names (required: every access to personal data names one).
pub(crate) fn purpose(q: &BTreeMap<String, String>) -> ApiResult<String> {
    match q.get("purpose") {
        Some(p) if !p.is_empty() => Ok(p.clone()),
        _ => Err(Error::BadRequest("the `purpose` query parameter is required: every access to personal data names its purpose".into()).into()),
    }
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        // serde_json's message names the position and the expected shape; it can quote an
        // unexpected key but never a string value.
        let detail = match e.classify() {
            serde_json::error::Category::Data => format!(
                "the JSON body does not have the expected shape (line {}, column {})",
                e.line(),
                e.column()
            ),
            _ => format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        };
        Error::BadRequest(detail).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client encodes (commas, `&`, `=`, `+`, `%`, any Unicode) decodes to what it
        /// meant, and a name given twice is refused rather than resolved.
        #[test]
        fn decoding_round_trips_and_refuses_repeats(
            pairs in proptest::collection::btree_map("[a-z,&=+% ]{1,8}", "\\PC{0,16}", 0..6),
        ) {
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let decoded = query(Some(encoded.clone())).map_err(|p| p.detail.clone());
            prop_assert_eq!(decoded, Ok(pairs.clone()));
            if let Some((k, v)) = pairs.iter().next() {
                let twice = form_urlencoded::Serializer::new(encoded)
                    .append_pair(k, v)
                    .finish();
                prop_assert!(query(Some(twice)).is_err());
            }
        }
    }
}
