//! What a request carries besides its key: query parameters, deserialized into one struct per
//! route ([`ApiQuery`]: each name once, only the names the route takes, every value typed — the
//! one `limit` rule, closed sets as enums), and JSON bodies (errors that never quote a value).
//! The same structs derive [`IntoParams`], so the OpenAPI document's parameters are read from
//! them.

use std::collections::BTreeSet;
use std::fmt;

use amanah_core::disclosure::DisclosureStatus;
use amanah_core::policy::CHANNELS;
use amanah_core::rights::RequestStatus;
use amanah_core::Error;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::handlers::ApiResult;
use crate::problem::Problem;

/// A route's query parameters, deserialized into `T`: a struct deriving `Deserialize` (with
/// `deny_unknown_fields` unless the route takes open-ended names) and `IntoParams` (its
/// parameters in the document). Every refusal is problem+json, and none repeats the caller's
/// text: 400 `bad-request` for a name given twice, a name the route does not take, a missing or
/// malformed value; 422 `invalid`, naming the parameter in `field`, for a value out of its range.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + IntoParams + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        parse(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Decodes `raw` (a query string, without `?`) into `T`, refusing a name given twice.
pub(crate) fn parse<T: DeserializeOwned + IntoParams>(raw: &str) -> ApiResult<T> {
    let mut seen = BTreeSet::new();
    if form_urlencoded::parse(raw.as_bytes()).any(|(name, _)| !seen.insert(name)) {
        // Names are the caller's text, not repeated back.
        return Err(
            Error::BadRequest("a query parameter is given more than once".to_owned()).into(),
        );
    }
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|e| refused::<T>(&e))
}

/// The names a route's query takes, as its document lists them.
fn names<T: IntoParams>() -> Vec<String> {
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// The problem for a query `T` could not be read from. A value type's refusal says what was
/// wrong with the parameter, named as the route names it; anything serde refused by itself (a
/// name the route does not take) is told by a fixed message, as serde's own quote the caller.
fn refused<T: IntoParams>(e: &serde_path_to_error::Error<serde_urlencoded::de::Error>) -> Problem {
    let names = names::<T>();
    let name = match e.path().iter().next_back() {
        Some(serde_path_to_error::Segment::Map { key }) => names.iter().find(|n| *n == key),
        _ => None,
    };
    let message = e.inner().to_string();
    match (Refusal::read(&message), name) {
        (Some((Refusal::Missing, detail)), _) => Error::BadRequest(detail.to_owned()),
        (Some((Refusal::Malformed, detail)), Some(name)) => {
            Error::BadRequest(format!("`{name}` {detail}"))
        }
        (Some((Refusal::OutOfRange, detail)), Some(name)) => {
            Error::invalid(name.clone(), format!("`{name}` {detail}"))
        }
        _ => Error::BadRequest(format!(
            "unknown query parameter; this route takes: {}",
            names.join(", ")
        )),
    }
    .into()
}

/// How a query value's type refuses a value, carried through serde's error as a marked message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Not of the parameter's form: 400, the detail after the parameter's name.
    Malformed,
    /// Of its form but outside its range: 422 naming the parameter in `field`.
    OutOfRange,
    /// A required parameter not given: 400, the detail is the whole message.
    Missing,
}

impl Refusal {
    /// Starts a refusal's message; serde's own messages start with a word.
    const MARK: char = '\u{0}';

    fn tag(self) -> char {
        match self {
            Refusal::Malformed => 'm',
            Refusal::OutOfRange => 'r',
            Refusal::Missing => 'n',
        }
    }

    fn error<E: de::Error>(self, detail: impl fmt::Display) -> E {
        E::custom(format_args!("{}{}{detail}", Refusal::MARK, self.tag()))
    }

    fn read(message: &str) -> Option<(Refusal, &str)> {
        let mut rest = message.strip_prefix(Refusal::MARK)?.chars();
        let tag = rest.next()?;
        let kind = [Refusal::Malformed, Refusal::OutOfRange, Refusal::Missing]
            .into_iter()
            .find(|k| k.tag() == tag)?;
        Some((kind, rest.as_str()))
    }
}

/// A required value: given and not empty, else refused with `missing` as the whole message.
fn required<'de, D: Deserializer<'de>>(d: D, missing: &str) -> Result<String, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Refusal::Missing.error(missing)),
    }
}

/// Most items one page of a listing holds, and how many when `limit` is not given (the vault's
/// page bounds).
pub(crate) const MAX_LIMIT: usize = amanah_vault::MAX_PAGE;
pub(crate) const DEFAULT_LIMIT: usize = amanah_vault::DEFAULT_PAGE;
/// Audit entries are small and read in bulk by auditors: pages may be longer.
pub(crate) const MAX_AUDIT_LIMIT: usize = 10_000;
pub(crate) const DEFAULT_AUDIT_LIMIT: usize = 1_000;

/// The `limit` of a page: an integer from 1 to `MAX`, `DEFAULT` when not given; anything else is
/// a 422 naming `limit`. The one limit rule of every paged route: the audit's longer pages are
/// other parameters of it ([`AuditLimit`]), not another rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit<const MAX: usize = MAX_LIMIT, const DEFAULT: usize = DEFAULT_LIMIT>(usize);

/// The `limit` of a page of audit entries: 1 to 10000, 1000 by default.
pub(crate) type AuditLimit = Limit<MAX_AUDIT_LIMIT, DEFAULT_AUDIT_LIMIT>;

impl<const MAX: usize, const DEFAULT: usize> Limit<MAX, DEFAULT> {
    pub(crate) fn get(self) -> usize {
        self.0
    }
}

impl<const MAX: usize, const DEFAULT: usize> Default for Limit<MAX, DEFAULT> {
    fn default() -> Self {
        Limit(DEFAULT)
    }
}

impl<'de, const MAX: usize, const DEFAULT: usize> Deserialize<'de> for Limit<MAX, DEFAULT> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX).contains(n))
            .map(Limit)
            .ok_or_else(|| {
                Refusal::OutOfRange.error(format_args!("must be an integer from 1 to {MAX}"))
            })
    }
}

impl<const MAX: usize, const DEFAULT: usize> PartialSchema for Limit<MAX, DEFAULT> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX))
            .default(Some(DEFAULT.into()))
            .description(Some(format!("1 to {MAX}, default {DEFAULT}")))
            .into()
    }
}

impl<const MAX: usize, const DEFAULT: usize> ToSchema for Limit<MAX, DEFAULT> {}

/// The purpose a read or write names: required, as every access to personal data names one.
/// (The document lists the policy's purposes.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Purpose(pub String);

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        required(
            d,
            "the `purpose` query parameter is required: every access to personal data names its purpose",
        )
        .map(Purpose)
    }
}

/// A yes-or-no parameter: `true` (or given without a value) or `false`; absent is `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "true" | "" => Ok(Flag(true)),
            "false" => Ok(Flag(false)),
            _ => Err(Refusal::Malformed.error("must be true or false")),
        }
    }
}

/// An audit sequence number (`after`: entries after it); 0, the start, when not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sequence(pub u64);

impl<'de> Deserialize<'de> for Sequence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse::<u64>()
            .map(Sequence)
            .map_err(|_| Refusal::OutOfRange.error("must be a sequence number"))
    }
}

/// The id of a data-subject request a change answers (`request`): a UUID, as the vault issues
/// them; other text names no request, and is refused without being repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(pub String);

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        amanah_vault::recordable_id(&id)
            .map(RequestId)
            .ok_or_else(|| Refusal::OutOfRange.error("must be the id of a request (a UUID)"))
    }
}

/// A query value from a closed set of spellings (a format, a status, a channel): the document
/// lists them as the parameter's `enum`, and a value outside them is refused with the list.
pub(crate) trait Spelled: Sized {
    /// Every spelling, in the order the document and the refusals list them.
    fn spellings() -> Vec<&'static str>;
    fn parse(s: &str) -> Option<Self>;
    /// A value outside the set is out of range (422 naming the parameter), not malformed (400).
    const OUT_OF_RANGE: bool;
    /// The value when the parameter is not given, if it has one.
    const DEFAULT: Option<&'static str> = None;

    fn from_spelling<E: de::Error>(s: &str) -> Result<Self, E> {
        Self::parse(s).ok_or_else(|| {
            let kind = if Self::OUT_OF_RANGE {
                Refusal::OutOfRange
            } else {
                Refusal::Malformed
            };
            kind.error(format_args!(
                "must be one of: {}",
                Self::spellings().join(", ")
            ))
        })
    }

    fn spelled_schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::spellings()))
            .default(Self::DEFAULT.map(Into::into))
            .into()
    }
}

/// `Deserialize` and the schema of [`Spelled`] types.
macro_rules! spelled_values {
    ($($ty:ty),+ $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$ty as Spelled>::from_spelling(&String::deserialize(d)?)
            }
        }
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                <$ty as Spelled>::spelled_schema()
            }
        }
        impl ToSchema for $ty {}
    )+};
}

/// A `format` a route answers in, the first its default: the enum, its spellings, and what
/// [`Spelled`] needs.
macro_rules! formats {
    ($(#[$doc:meta])* $ty:ident { $first:ident => $fs:literal $(, $v:ident => $s:literal)* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub(crate) enum $ty {
            #[default]
            $first,
            $($v),*
        }

        impl $ty {
            const ALL: &'static [$ty] = &[$ty::$first, $($ty::$v),*];

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $ty::$first => $fs,
                    $($ty::$v => $s),*
                }
            }
        }

        impl Spelled for $ty {
            const OUT_OF_RANGE: bool = false;
            const DEFAULT: Option<&'static str> = Some($fs);

            fn spellings() -> Vec<&'static str> {
                $ty::ALL.iter().map(|f| f.as_str()).collect()
            }

            fn parse(s: &str) -> Option<Self> {
                $ty::ALL.iter().copied().find(|f| f.as_str() == s)
            }
        }

        spelled_values!($ty);
    };
}

formats!(
    /// The `format` of a file a route gives: JSON (the default) or CSV.
    FileFormat { Json => "json", Csv => "csv" }
);

formats!(
    /// The `format` of a subject's export: JSON (the default), CSV, or a zip of the JSON and
    /// the subject's documents.
    ExportFormat { Json => "json", Csv => "csv", Zip => "zip" }
);

formats!(
    /// The `format` of the record of processing: JSON (the default), Markdown or CSV.
    RopaFormat { Json => "json", Md => "md", Csv => "csv" }
);

/// The `status` the requests listing keeps: `open` (received or in progress), `all` (the
/// default), or one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestStatusFilter {
    Open,
    All,
    Is(RequestStatus),
}

impl RequestStatusFilter {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestStatusFilter::Open => "open",
            RequestStatusFilter::All => "all",
            RequestStatusFilter::Is(s) => s.as_str(),
        }
    }
}

impl Spelled for RequestStatusFilter {
    const OUT_OF_RANGE: bool = true;

    fn spellings() -> Vec<&'static str> {
        let mut all = vec!["open", "all"];
        all.extend(RequestStatus::ALL.iter().map(|s| s.as_str()));
        all
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(RequestStatusFilter::Open),
            "all" => Some(RequestStatusFilter::All),
            other => RequestStatus::parse(other).map(RequestStatusFilter::Is),
        }
    }
}

/// The `status` the disclosures listing keeps: one state of a disclosure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DisclosureStatusFilter(pub DisclosureStatus);

impl Spelled for DisclosureStatusFilter {
    const OUT_OF_RANGE: bool = false;

    fn spellings() -> Vec<&'static str> {
        DisclosureStatus::ALL.iter().map(|s| s.as_str()).collect()
    }

    fn parse(s: &str) -> Option<Self> {
        DisclosureStatus::parse(s).map(DisclosureStatusFilter)
    }
}

/// A contact channel (required where a route takes one): one of the channels a policy may
/// declare; whether the purpose uses it is the vault's to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Channel(pub &'static str);

impl Spelled for Channel {
    const OUT_OF_RANGE: bool = true;

    fn spellings() -> Vec<&'static str> {
        CHANNELS.to_vec()
    }

    fn parse(s: &str) -> Option<Self> {
        CHANNELS.into_iter().find(|c| *c == s).map(Channel)
    }
}

impl<'de> Deserialize<'de> for Channel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Channel::from_spelling(&required(d, "the `channel` query parameter is required")?)
    }
}

impl PartialSchema for Channel {
    fn schema() -> RefOr<Schema> {
        Channel::spelled_schema()
    }
}

impl ToSchema for Channel {}

spelled_values!(RequestStatusFilter, DisclosureStatusFilter);

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
    use std::collections::BTreeMap;

    use super::*;
    use proptest::prelude::*;

    /// Any names (what an open-ended route such as the subject search takes).
    #[derive(Debug, Deserialize, IntoParams)]
    #[into_params(parameter_in = Query)]
    struct Open {
        #[serde(flatten)]
        #[param(ignore)]
        all: BTreeMap<String, String>,
    }

    #[derive(Debug, Deserialize, IntoParams)]
    #[serde(deny_unknown_fields)]
    #[into_params(parameter_in = Query)]
    struct Listing {
        #[param(value_type = String)]
        purpose: Purpose,
        channel: Option<Channel>,
        #[param(value_type = Option<bool>)]
        #[serde(default)]
        overdue: Flag,
        #[param(inline)]
        #[serde(default)]
        limit: AuditLimit,
        #[param(inline)]
        #[serde(default)]
        format: FileFormat,
        #[param(value_type = Option<String>)]
        request: Option<RequestId>,
    }

    fn refusal(raw: &str) -> (u16, String, Option<String>) {
        let p = parse::<Listing>(raw).expect_err(raw);
        (p.status, p.detail, p.field)
    }

    #[test]
    fn values_are_typed_and_defaults_fill_in() {
        let q = parse::<Listing>("purpose=care&channel=email&overdue&limit=10000").unwrap();
        assert_eq!(q.purpose, Purpose("care".into()));
        assert_eq!(q.channel, Some(Channel("email")));
        assert_eq!(q.overdue, Flag(true));
        assert_eq!(q.limit.get(), 10_000);
        assert_eq!(q.format, FileFormat::Json);
        let q = parse::<Listing>("purpose=care&format=csv").unwrap();
        assert_eq!(q.limit.get(), DEFAULT_AUDIT_LIMIT);
        assert_eq!((q.overdue, q.format), (Flag(false), FileFormat::Csv));
    }

    #[test]
    fn each_refusal_has_its_status_and_never_the_callers_text() {
        let unknown = (
            400,
            "unknown query parameter; this route takes: purpose, channel, overdue, limit, format, \
             request"
                .to_owned(),
            None,
        );
        assert_eq!(refusal("purpose=care&Zq9=1"), unknown);
        assert_eq!(
            refusal("purpose=care&limit=0"),
            (
                422,
                "`limit` must be an integer from 1 to 10000".into(),
                Some("limit".into())
            )
        );
        assert_eq!(refusal("purpose=care&limit=10001").0, 422);
        assert_eq!(refusal("purpose=care&limit=Zq9").0, 422);
        let (status, detail, _) = refusal("purpose=care&channel=Zq9");
        assert_eq!(status, 422);
        assert!(detail.starts_with("`channel` must be one of: "), "{detail}");
        assert_eq!(
            refusal("purpose=care&overdue=Zq9"),
            (400, "`overdue` must be true or false".into(), None)
        );
        assert_eq!(
            refusal("purpose=care&format=Zq9"),
            (400, "`format` must be one of: json, csv".into(), None)
        );
        for missing in ["", "purpose=", "limit=5"] {
            let (status, detail, _) = refusal(missing);
            assert_eq!(status, 400);
            assert!(detail.starts_with("the `purpose` query parameter is required"));
        }
        assert_eq!(
            refusal("purpose=care&request=Zq9@example.id"),
            (
                422,
                "`request` must be the id of a request (a UUID)".into(),
                Some("request".into())
            )
        );
        let id = "0b0c6c9e-2f1e-4c8e-9d8e-6f3c1f1d2a3b";
        let q = parse::<Listing>(&format!("purpose=care&request={id}")).unwrap();
        assert_eq!(q.request, Some(RequestId(id.into())));
        assert_eq!(
            refusal("purpose=a&purpose=a"),
            (
                400,
                "a query parameter is given more than once".into(),
                None
            )
        );
    }

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
            let decoded = parse::<Open>(&encoded).map(|q| q.all).map_err(|p| p.detail.clone());
            prop_assert_eq!(decoded, Ok(pairs.clone()));
            if let Some((k, v)) = pairs.iter().next() {
                let twice = form_urlencoded::Serializer::new(encoded)
                    .append_pair(k, v)
                    .finish();
                prop_assert!(parse::<Open>(&twice).is_err());
            }
        }

        /// A refusal never repeats a name or a value the caller sent.
        #[test]
        fn refusals_never_quote_the_caller(
            name in "Zq9[a-z,&=+% ]{0,8}",
            value in "Zq9\\PC{0,16}",
            known in proptest::sample::select(vec!["channel", "overdue", "limit", "format", "purpose", "request"]),
        ) {
            for (n, v) in [(name.as_str(), "1"), (known, value.as_str()), (name.as_str(), value.as_str())] {
                let raw = form_urlencoded::Serializer::new(String::new())
                    .append_pair("purpose", "care")
                    .append_pair(n, v)
                    .finish();
                if let Err(p) = parse::<Listing>(&raw) {
                    prop_assert!(!p.detail.contains("Zq9"), "{}", p.detail);
                    prop_assert!(!p.field.unwrap_or_default().contains("Zq9"));
                }
            }
        }
    }
}
