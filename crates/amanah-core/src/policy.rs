//! The policy model: purposes, legal bases, data categories, retention, roles and recipients,
//! declared in one TOML file and validated with `file:line:column` diagnostics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::fields::FieldType;

/// Name of the built-in role that may use every purpose, see specific data and call the
/// administrative endpoints. Policies may not redefine it.
pub const ADMIN_ROLE: &str = "admin";

/// A validated policy. Construct it only through [`Policy::parse`], so every invariant checked
/// there (every name a purpose or role uses exists, ...) holds for the whole program.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Free-form version string, stored with every audit entry.
    pub version: String,
    pub controller: Controller,
    pub settings: Settings,
    pub categories: BTreeMap<String, Category>,
    pub purposes: BTreeMap<String, Purpose>,
    pub roles: BTreeMap<String, Role>,
    pub recipients: BTreeMap<String, Recipient>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Controller {
    pub name: String,
    pub contact: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Deadline for data-subject requests (UU PDP: 3 x 24 hours). Default 72.
    pub request_deadline_hours: u32,
    /// Under this age a subject may not be created. Default 13.
    pub minimum_age: u32,
    /// From this age a subject acts alone. Default 18.
    pub adult_age: u32,
    /// 0..=3 days during which processing may continue after consent is withdrawn. Default 0.
    pub withdrawal_grace_days: u32,
    /// The date category holding birth dates (when unset, the category `birth_date` if any).
    pub birth_date_category: Option<String>,
}

/// One data category = one field of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub name: String,
    pub field_type: FieldType,
    pub class: DataClass,
    /// Equality search through a blind index.
    pub index: bool,
    /// At most one subject may hold a given value (requires `index`).
    pub unique: bool,
}

/// UU PDP Art. 4: general vs. specific (health, biometric, genetic, criminal record, child data,
/// personal financial data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    General,
    Specific,
}

/// UU PDP Art. 20 legal bases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegalBasis {
    Consent,
    Contract,
    LegalObligation,
    VitalInterest,
    PublicTask,
    LegitimateInterest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionUnit {
    Days,
    Months,
    Years,
}

/// `Nd`, `Nm` or `Ny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Retention {
    pub amount: u32,
    pub unit: RetentionUnit,
}

/// When a purpose's retention period starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetentionFrom {
    #[default]
    Collection,
    RelationshipEnd,
}

/// What happens when no purpose needs a subject any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnExpiry {
    #[default]
    Erase,
    Deidentify,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Purpose {
    pub name: String,
    pub basis: LegalBasis,
    pub categories: Vec<String>,
    pub retention: Retention,
    pub retention_from: RetentionFrom,
    pub on_expiry: OnExpiry,
    pub description: Option<String>,
    /// Marketing channels people may accept for this purpose (empty = the standard set).
    pub channels: Vec<String>,
    /// May still be used by admin while a subject's processing is restricted (e.g. legal claims).
    pub restricted_use: bool,
    /// Purposes compatible with this one (UU PDP Art. 16(2)(b)): a subject enrolled in one of
    /// them may be enrolled in this one without a new legal ground.
    pub compatible_with: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub name: String,
    pub purposes: Vec<String>,
    /// May see `class = "specific"` categories.
    pub specific: bool,
    /// Categories this role sees masked.
    pub mask: Vec<String>,
    /// The person in charge (PIC) who approves disclosures.
    pub approve_disclosures: bool,
    /// The account owner who authorizes approved disclosures.
    pub authorize_disclosures: bool,
    /// The data protection officer's role: handles data-subject requests, exports,
    /// restrictions, legal holds and erasure.
    pub handle_requests: bool,
    /// May record the end of a subject's relationship (starts retention counted from it).
    pub end_relationships: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecipientKind {
    Processor,
    #[default]
    ThirdParty,
    Authority,
}

/// UU PDP Art. 56 bases for a transfer abroad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferBasis {
    Adequate,
    Safeguards,
    Consent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub name: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    pub kind: RecipientKind,
    pub purposes: Vec<String>,
    /// What it may ever receive (empty = whatever its purposes cover).
    pub categories: Vec<String>,
    /// Required when `country` is not "ID".
    pub transfer_basis: Option<TransferBasis>,
    pub pseudonymize: bool,
}

/// A policy error at a position in the source, printed as `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// All errors found in one policy source (validation reports every problem it can, not only the
/// first). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// One line per error: `{file}:{line}:{column}: {message}`.
    pub fn render(&self, file: &str) -> String {
        self.0
            .iter()
            .map(|e| format!("{file}:{}:{}: {}", e.line, e.column, e.message))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for PolicyError {}

impl fmt::Display for PolicyErrors {
    /// One line per error: `{line}:{column}: {message}` (see [`PolicyErrors::render`] to prefix
    /// the file name).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// The marketing channels a purpose may list in `channels`.
pub const CHANNELS: [&str; 8] = [
    "email", "sms", "whatsapp", "phone", "push", "in_app", "social", "post",
];

/// ISO 3166-1 alpha-2 code of Indonesia: a recipient anywhere else is a transfer abroad and needs
/// a transfer basis (UU PDP Art. 56).
pub const HOME_COUNTRY: &str = "ID";

/// The officially assigned ISO 3166-1 alpha-2 codes (249), sorted for binary search.
const COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Is `code` an officially assigned ISO 3166-1 alpha-2 code (upper case)?
pub fn is_country_code(code: &str) -> bool {
    COUNTRY_CODES.binary_search(&code).is_ok()
}

/// The policy-file spellings of a small enum, for parsing and for listing the allowed values in
/// error messages.
trait Spelled: Copy + 'static {
    const ALL: &'static [Self];
    fn spelling(self) -> &'static str;

    fn from_spelling(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.spelling() == s)
    }

    /// `a, b, c`
    fn expected() -> String {
        Self::ALL
            .iter()
            .map(|v| v.spelling())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Spelled for FieldType {
    const ALL: &'static [Self] = &FieldType::ALL;
    fn spelling(self) -> &'static str {
        self.as_str()
    }
}

macro_rules! spellings {
    ($ty:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the order the policy documentation lists them.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The policy-file spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $s),+
                }
            }

            /// Parses the policy-file spelling.
            pub fn parse(s: &str) -> Option<Self> {
                <Self as Spelled>::from_spelling(s)
            }
        }

        impl Spelled for $ty {
            const ALL: &'static [Self] = $ty::ALL;
            fn spelling(self) -> &'static str {
                self.as_str()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spellings!(DataClass {
    General => "general",
    Specific => "specific",
});

spellings!(LegalBasis {
    Consent => "consent",
    Contract => "contract",
    LegalObligation => "legal_obligation",
    VitalInterest => "vital_interest",
    PublicTask => "public_task",
    LegitimateInterest => "legitimate_interest",
});

spellings!(RetentionUnit {
    Days => "d",
    Months => "m",
    Years => "y",
});

spellings!(RetentionFrom {
    Collection => "collection",
    RelationshipEnd => "relationship_end",
});

spellings!(OnExpiry {
    Erase => "erase",
    Deidentify => "deidentify",
});

spellings!(RecipientKind {
    Processor => "processor",
    ThirdParty => "third_party",
    Authority => "authority",
});

spellings!(TransferBasis {
    Adequate => "adequate",
    Safeguards => "safeguards",
    Consent => "consent",
});

impl Retention {
    /// Parses `Nd`, `Nm` or `Ny` with a decimal `N >= 1` (`"30d"`, `"6m"`, `"5y"`).
    pub fn parse(s: &str) -> Option<Retention> {
        let unit = match s.as_bytes().last()? {
            b'd' => RetentionUnit::Days,
            b'm' => RetentionUnit::Months,
            b'y' => RetentionUnit::Years,
            _ => return None,
        };
        let digits = s.get(..s.len() - 1)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let amount: u32 = digits.parse().ok()?;
        (amount >= 1).then_some(Retention { amount, unit })
    }
}

impl fmt::Display for Retention {
    /// The policy-file spelling, e.g. `5y`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.as_str())
    }
}

impl Purpose {
    /// Does this purpose cover `category`?
    pub fn covers(&self, category: &str) -> bool {
        self.categories.iter().any(|c| c == category)
    }
}

impl Role {
    /// May this role use `purpose`?
    pub fn has_purpose(&self, purpose: &str) -> bool {
        self.purposes.iter().any(|p| p == purpose)
    }
}

impl Recipient {
    /// Is this recipient outside Indonesia (a transfer abroad)?
    pub fn is_foreign(&self) -> bool {
        self.country != HOME_COUNTRY
    }
}

impl Policy {
    /// Parses and validates a policy source. On failure returns every error found (syntax errors
    /// stop the parse; all other problems are reported together), each with a 1-based
    /// line and column, sorted by position.
    pub fn parse(source: &str) -> Result<Policy, PolicyErrors> {
        let mut diag = Diag {
            source,
            errors: Vec::new(),
        };
        let (root, syntax_errors) = DeTable::parse_recoverable(source);
        if !syntax_errors.is_empty() {
            let mut seen_lines = BTreeSet::new();
            for e in &syntax_errors {
                let span = e.span().unwrap_or(0..0);
                let (line, _) = line_column(source, span.start);
                // Error recovery can cascade; one error per line is what a reader can act on.
                if seen_lines.insert(line) {
                    diag.error(&span, syntax_message(source, e.message(), &span));
                }
            }
            return Err(diag.finish());
        }
        let policy = build(&root, &mut diag);
        match policy {
            Some(policy) if diag.errors.is_empty() => Ok(policy),
            _ => Err(diag.finish()),
        }
    }

    /// Category by name.
    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.get(name)
    }

    /// Purpose by name.
    pub fn purpose(&self, name: &str) -> Option<&Purpose> {
        self.purposes.get(name)
    }

    /// Role by name (never the built-in [`ADMIN_ROLE`], which no policy declares).
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Recipient by name.
    pub fn recipient(&self, name: &str) -> Option<&Recipient> {
        self.recipients.get(name)
    }

    /// The category holding birth dates: `settings.birth_date_category`, else a category named
    /// `birth_date` of type date, else `None`.
    pub fn birth_date_category(&self) -> Option<&Category> {
        match &self.settings.birth_date_category {
            Some(name) => self.categories.get(name),
            None => self
                .categories
                .get("birth_date")
                .filter(|c| c.field_type == FieldType::Date),
        }
    }

    /// Version of one purpose: lower-case hex SHA-256 of a canonical encoding of what it covers
    /// (its name; its categories, sorted, each with type and class; basis; retention;
    /// retention_from; on_expiry; description; channels, sorted; and the names of the recipients
    /// that list it, sorted). It changes iff one of those changes, so a consent given for one
    /// version can be recognised as given for something else after an edit. `None` for an
    /// unknown purpose.
    pub fn purpose_version(&self, purpose: &str) -> Option<String> {
        use serde_json::Value;
        let p = self.purposes.get(purpose)?;
        let text = |s: &str| Value::String(s.to_owned());

        let mut categories: Vec<&str> = p.categories.iter().map(String::as_str).collect();
        categories.sort_unstable();
        categories.dedup();
        let categories = categories
            .into_iter()
            .map(|name| {
                let c = self.categories.get(name);
                Value::Array(vec![
                    text(name),
                    c.map_or(Value::Null, |c| text(c.field_type.as_str())),
                    c.map_or(Value::Null, |c| text(c.class.as_str())),
                ])
            })
            .collect();

        let mut channels: Vec<&str> = p.channels.iter().map(String::as_str).collect();
        channels.sort_unstable();
        channels.dedup();

        // `recipients` is a BTreeMap: already sorted by name.
        let recipients = self
            .recipients
            .values()
            .filter(|r| r.purposes.iter().any(|x| x == purpose))
            .map(|r| text(&r.name))
            .collect();

        // Arrays only, in a fixed order: the encoding does not depend on map ordering.
        let canonical = Value::Array(vec![
            text("amanah.purpose.v1"),
            text(&p.name),
            text(p.basis.as_str()),
            text(&p.retention.to_string()),
            text(p.retention_from.as_str()),
            text(p.on_expiry.as_str()),
            p.description.as_deref().map_or(Value::Null, text),
            Value::Array(categories),
            Value::Array(channels.into_iter().map(text).collect()),
            Value::Array(recipients),
        ]);
        Some(amanah_crypto::digest::sha256_hex(
            canonical.to_string().as_bytes(),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing internals: walk the spanned TOML document (`toml::de::DeTable`, whose keys and values
// are `toml::Spanned`), collecting every problem with its position, then build the model.
// ---------------------------------------------------------------------------------------------

type Span = Range<usize>;

const TOP_KEYS: &[&str] = &[
    "version",
    "controller",
    "settings",
    "categories",
    "purposes",
    "roles",
    "recipients",
];
const CONTROLLER_KEYS: &[&str] = &["name", "contact"];
const SETTINGS_KEYS: &[&str] = &[
    "request_deadline_hours",
    "minimum_age",
    "adult_age",
    "withdrawal_grace_days",
    "birth_date_category",
];
const CATEGORY_KEYS: &[&str] = &["type", "class", "index", "unique"];
const PURPOSE_KEYS: &[&str] = &[
    "basis",
    "categories",
    "retention",
    "description",
    "retention_from",
    "on_expiry",
    "channels",
    "restricted_use",
    "compatible_with",
];
const ROLE_KEYS: &[&str] = &[
    "purposes",
    "specific",
    "mask",
    "approve_disclosures",
    "authorize_disclosures",
    "handle_requests",
    "end_relationships",
];
const RECIPIENT_KEYS: &[&str] = &[
    "country",
    "purposes",
    "kind",
    "categories",
    "transfer_basis",
    "pseudonymize",
];

/// Most days of processing allowed after consent is withdrawn (UU PDP: 3 x 24 hours).
const MAX_WITHDRAWAL_GRACE_DAYS: u32 = 3;
const MAX_NAME_LEN: usize = 64;

/// Collected errors.
struct Diag<'s> {
    source: &'s str,
    errors: Vec<PolicyError>,
}

impl Diag<'_> {
    fn error(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = line_column(self.source, span.start);
        self.errors.push(PolicyError {
            line,
            column,
            message: message.into(),
        });
    }

    fn finish(mut self) -> PolicyErrors {
        // Stable: errors at one position keep the order they were found in.
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors.dedup();
        if self.errors.is_empty() {
            // Not reachable: `build` only fails after reporting. Keep `PolicyErrors` non-empty.
            self.errors.push(PolicyError {
                line: 1,
                column: 1,
                message: "invalid policy".to_owned(),
            });
        }
        PolicyErrors(self.errors)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = source.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

fn syntax_message(source: &str, message: &str, span: &Span) -> String {
    let message = message.trim();
    if message == "duplicate key" {
        let key = source.get(span.clone()).unwrap_or_default();
        format!(
            "duplicate key {key:?}: each key, and each [table], may appear only once in its table"
        )
    } else {
        format!("TOML syntax error: {message}")
    }
}

/// `a string`, `an integer`, ...
fn a_type(value: &DeValue<'_>) -> String {
    let t = value.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// `^[a-z][a-z0-9_]{0,63}$`
fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= MAX_NAME_LEN
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// ` (did you mean "email"?)` when some candidate is close to `word`, else empty.
fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    if word.chars().count() < 3 {
        return String::new();
    }
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= 2)
        .min()
        .map(|(_, c)| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A TOML table being read, with how messages name it (`purpose "admission"`, `[settings]`).
struct Table<'a, 'i> {
    label: String,
    span: Span,
    entries: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries.get(key)
    }

    /// Reports every key not in `allowed`.
    fn check_keys(&self, allowed: &[&str], d: &mut Diag<'_>) {
        for key in self.entries.keys() {
            let k: &str = key.get_ref();
            if !allowed.contains(&k) {
                let hint = did_you_mean(k, allowed.iter().copied());
                d.error(
                    &key.span(),
                    format!(
                        "unknown key {k:?} in {}{hint}; expected one of: {}",
                        self.label,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// Reports `key` missing (at the table's header) when it is; returns whether it is present.
    fn require(&self, key: &str, hint: &str, d: &mut Diag<'_>) -> bool {
        let present = self.get(key).is_some();
        if !present {
            d.error(
                &self.span,
                format!("missing required key {key:?} in {}{hint}", self.label),
            );
        }
        present
    }

    fn wrong_type(
        &self,
        key: &str,
        expected: &str,
        value: &Spanned<DeValue<'_>>,
        d: &mut Diag<'_>,
    ) {
        d.error(
            &value.span(),
            format!(
                "{key:?} in {} must be {expected}, not {}",
                self.label,
                a_type(value.get_ref())
            ),
        );
    }

    /// An optional string (`None` when absent or not a string; the latter is reported).
    fn string(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<String>> {
        let value = self.get(key)?;
        match value.get_ref().as_str() {
            Some(s) => Some(Spanned::new(value.span(), s.to_owned())),
            None => {
                self.wrong_type(key, "a string", value, d);
                None
            }
        }
    }

    /// A string that must not be empty.
    fn required_text(&self, key: &str, what: &str, d: &mut Diag<'_>) -> Option<String> {
        if !self.require(key, &format!(" ({what})"), d) {
            return None;
        }
        let s = self.string(key, d)?;
        if s.get_ref().trim().is_empty() {
            d.error(
                &s.span(),
                format!("{key:?} in {} must not be empty ({what})", self.label),
            );
            return None;
        }
        Some(s.into_inner())
    }

    fn boolean(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<bool>> {
        let value = self.get(key)?;
        match value.get_ref().as_bool() {
            Some(b) => Some(Spanned::new(value.span(), b)),
            None => {
                self.wrong_type(key, "true or false", value, d);
                None
            }
        }
    }

    /// An optional boolean, `false` when absent (or invalid, which is reported).
    fn flag(&self, key: &str, d: &mut Diag<'_>) -> bool {
        self.boolean(key, d).is_some_and(|b| *b.get_ref())
    }

    fn number(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<u32>> {
        let value = self.get(key)?;
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(key, "a whole number", value, d);
                return None;
            }
        };
        match parsed.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(Spanned::new(value.span(), n)),
            None => {
                d.error(
                    &value.span(),
                    format!(
                        "{key:?} in {} must be a whole number from 0 to {}",
                        self.label,
                        u32::MAX
                    ),
                );
                None
            }
        }
    }

    /// A list of strings; each element that is not a string is reported.
    fn strings(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<Vec<Spanned<String>>>> {
        let value = self.get(key)?;
        let Some(array) = value.get_ref().as_array() else {
            self.wrong_type(key, "a list of strings", value, d);
            return None;
        };
        let mut items = Vec::new();
        for item in array.iter() {
            match item.get_ref().as_str() {
                Some(s) => items.push(Spanned::new(item.span(), s.to_owned())),
                None => self.wrong_type(&format!("each entry of {key:?}"), "a string", item, d),
            }
        }
        Some(Spanned::new(value.span(), items))
    }

    /// One of the spellings of `T`. `what` names it in messages (`legal basis`).
    fn spelled<T: Spelled>(&self, key: &str, what: &str, d: &mut Diag<'_>) -> Option<T> {
        let s = self.string(key, d)?;
        let parsed = T::from_spelling(s.get_ref());
        if parsed.is_none() {
            d.error(
                &s.span(),
                format!(
                    "unknown {what} {:?} for {}; expected one of: {}",
                    s.get_ref(),
                    self.label,
                    T::expected()
                ),
            );
        }
        parsed
    }

    fn required_spelled<T: Spelled>(&self, key: &str, what: &str, d: &mut Diag<'_>) -> Option<T> {
        if !self.require(key, &format!(" ({what}: one of {})", T::expected()), d) {
            return None;
        }
        self.spelled(key, what, d)
    }

    /// A sub-table, labelled `label` in messages.
    fn table(&self, key: &str, label: &str, d: &mut Diag<'_>) -> Option<Table<'a, 'i>> {
        let value = self.get(key)?;
        match value.get_ref().as_table() {
            Some(entries) => Some(Table {
                label: label.to_owned(),
                span: value.span(),
                entries,
            }),
            None => {
                self.wrong_type(key, "a table", value, d);
                None
            }
        }
    }
}

/// One named entry of a section such as `[categories]`.
struct Entry<'a, 'i> {
    name: String,
    name_span: Span,
    /// `None` when the entry is not a table (reported).
    table: Option<Table<'a, 'i>>,
}

/// What a section is called in messages.
struct SectionKind {
    /// `categories`
    key: &'static str,
    /// `category`
    singular: &'static str,
    /// Shown when the section is missing or empty.
    example: &'static str,
}

const CATEGORIES: SectionKind = SectionKind {
    key: "categories",
    singular: "category",
    example: "[categories.email] with type = \"email\" and class = \"general\"",
};
const PURPOSES: SectionKind = SectionKind {
    key: "purposes",
    singular: "purpose",
    example: "[purposes.service] with basis, categories and retention",
};
const ROLES: SectionKind = SectionKind {
    key: "roles",
    singular: "role",
    example: "[roles.support] with purposes = [...]",
};
const RECIPIENTS: SectionKind = SectionKind {
    key: "recipients",
    singular: "recipient",
    example: "[recipients.payment_gateway] with country and purposes",
};

/// The entries of section `kind`, with invalid names and non-table entries reported.
fn section<'a, 'i>(
    top: &Table<'a, 'i>,
    kind: &SectionKind,
    required: bool,
    d: &mut Diag<'_>,
) -> Vec<Entry<'a, 'i>> {
    let Some(value) = top.get(kind.key) else {
        if required {
            d.error(
                &top.span,
                format!(
                    "missing [{}]: declare at least one {}, e.g. {}",
                    kind.key, kind.singular, kind.example
                ),
            );
        }
        return Vec::new();
    };
    let Some(table) = value.get_ref().as_table() else {
        top.wrong_type(kind.key, "a table", value, d);
        return Vec::new();
    };
    if table.is_empty() && required {
        d.error(
            &value.span(),
            format!(
                "[{}] declares no {}; add at least one, e.g. {}",
                kind.key, kind.key, kind.example
            ),
        );
    }
    let mut entries = Vec::new();
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        if !is_valid_name(name) {
            d.error(
                &key.span(),
                format!(
                    "invalid {} name {name:?}: names must start with a lower-case letter and \
                     contain only a-z, 0-9 and _ (at most {MAX_NAME_LEN} characters)",
                    kind.singular
                ),
            );
        }
        let label = format!("{} {name:?}", kind.singular);
        let table = match value.get_ref().as_table() {
            Some(entries) => Some(Table {
                label,
                span: value.span(),
                entries,
            }),
            None => {
                d.error(
                    &value.span(),
                    format!(
                        "{label} must be a table ([{}.{name}] followed by its keys), not {}",
                        kind.key,
                        a_type(value.get_ref())
                    ),
                );
                None
            }
        };
        entries.push(Entry {
            name: name.to_owned(),
            name_span: key.span(),
            table,
        });
    }
    entries
}

/// Reports names in `list` that are not in `known`, and names listed twice. `kind` is what the
/// names are (`category`), `section` where they are declared (`categories`), `owner` where they
/// are listed (`purpose "admission"`).
fn check_references(
    list: &[Spanned<String>],
    known: &BTreeSet<String>,
    kind: &SectionKind,
    owner: &str,
    d: &mut Diag<'_>,
) {
    let mut seen = BTreeSet::new();
    for item in list {
        let name = item.get_ref();
        if !known.contains(name) {
            let hint = did_you_mean(name, known.iter().map(String::as_str));
            d.error(
                &item.span(),
                format!(
                    "unknown {} {name:?} in {owner}{hint}; every {} must be declared as [{}.<name>]",
                    kind.singular, kind.singular, kind.key
                ),
            );
        }
        if !seen.insert(name.as_str()) {
            d.error(
                &item.span(),
                format!("{} {name:?} is listed twice in {owner}", kind.singular),
            );
        }
    }
}

fn names(entries: &[Entry<'_, '_>]) -> BTreeSet<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

fn plain(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|s| s.get_ref().clone()).collect()
}

/// The built purposes named in `list`, or `None` if one of them is unknown or invalid (so
/// checks that depend on them are skipped instead of reporting follow-on errors).
fn resolve<'p>(
    list: &[Spanned<String>],
    purposes: &'p BTreeMap<String, Purpose>,
) -> Option<Vec<&'p Purpose>> {
    list.iter().map(|p| purposes.get(p.get_ref())).collect()
}

fn build(root: &Spanned<DeTable<'_>>, d: &mut Diag<'_>) -> Option<Policy> {
    let top = Table {
        label: "the top level of the policy".to_owned(),
        span: root.span(),
        entries: root.get_ref(),
    };
    top.check_keys(TOP_KEYS, d);

    let version = top.required_text(
        "version",
        "a version string such as \"2026-01\", stored with every audit entry",
        d,
    );

    let controller = if top.require(
        "controller",
        " (the [controller] table with name and contact)",
        d,
    ) {
        top.table("controller", "[controller]", d)
            .and_then(|t| parse_controller(&t, d))
    } else {
        None
    };

    let settings = match top.table("settings", "[settings]", d) {
        Some(t) => parse_settings(&t, d),
        None => Some(RawSettings::default()),
    };

    let category_entries = section(&top, &CATEGORIES, true, d);
    let purpose_entries = section(&top, &PURPOSES, true, d);
    let role_entries = section(&top, &ROLES, false, d);
    let recipient_entries = section(&top, &RECIPIENTS, false, d);
    let declared_categories = names(&category_entries);
    let declared_purposes = names(&purpose_entries);

    let mut categories = BTreeMap::new();
    for e in &category_entries {
        if let Some(c) = e.table.as_ref().and_then(|t| parse_category(&e.name, t, d)) {
            categories.insert(e.name.clone(), c);
        }
    }

    let mut purposes = BTreeMap::new();
    for e in &purpose_entries {
        let built = e
            .table
            .as_ref()
            .and_then(|t| parse_purpose(&e.name, t, &declared_categories, &declared_purposes, d));
        if let Some(p) = built {
            purposes.insert(e.name.clone(), p);
        }
    }

    let mut roles = BTreeMap::new();
    for e in &role_entries {
        if e.name == ADMIN_ROLE {
            d.error(
                &e.name_span,
                format!(
                    "role {ADMIN_ROLE:?} is built in (it may use every purpose and see specific \
                     data) and cannot be redefined; give this role another name"
                ),
            );
        }
        let refs = References {
            categories: &declared_categories,
            purposes: &declared_purposes,
            built: &purposes,
        };
        if let Some(r) = e
            .table
            .as_ref()
            .and_then(|t| parse_role(&e.name, t, &refs, d))
        {
            roles.insert(e.name.clone(), r);
        }
    }

    let mut recipients = BTreeMap::new();
    for e in &recipient_entries {
        let refs = References {
            categories: &declared_categories,
            purposes: &declared_purposes,
            built: &purposes,
        };
        if let Some(r) = e
            .table
            .as_ref()
            .and_then(|t| parse_recipient(&e.name, t, &refs, d))
        {
            recipients.insert(e.name.clone(), r);
        }
    }

    let settings = settings.and_then(|s| finish_settings(s, &declared_categories, &categories, d));

    Some(Policy {
        version: version?,
        controller: controller?,
        settings: settings?,
        categories,
        purposes,
        roles,
        recipients,
    })
}

fn parse_controller(t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<Controller> {
    t.check_keys(CONTROLLER_KEYS, d);
    let name = t.required_text("name", "the organisation responsible for the data", d);
    let contact = t.required_text(
        "contact",
        "where data subjects reach the controller or its DPO, e.g. an email address",
        d,
    );
    Some(Controller {
        name: name?,
        contact: contact?,
    })
}

/// Settings as read, with positions for the checks that need the categories.
struct RawSettings {
    request_deadline_hours: u32,
    minimum_age: Spanned<u32>,
    adult_age: Spanned<u32>,
    withdrawal_grace_days: u32,
    birth_date_category: Option<Spanned<String>>,
}

impl Default for RawSettings {
    fn default() -> Self {
        RawSettings {
            request_deadline_hours: 72,
            minimum_age: Spanned::new(0..0, 13),
            adult_age: Spanned::new(0..0, 18),
            withdrawal_grace_days: 0,
            birth_date_category: None,
        }
    }
}

fn parse_settings(t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<RawSettings> {
    t.check_keys(SETTINGS_KEYS, d);
    let mut s = RawSettings::default();
    let mut ok = true;
    let mut number = |key: &str, d: &mut Diag<'_>| -> Option<Spanned<u32>> {
        let present = t.get(key).is_some();
        let n = t.number(key, d);
        ok &= !present || n.is_some();
        n
    };
    let deadline = number("request_deadline_hours", d);
    let minimum_age = number("minimum_age", d);
    let adult_age = number("adult_age", d);
    let grace = number("withdrawal_grace_days", d);

    if let Some(h) = deadline {
        if *h.get_ref() == 0 {
            d.error(
                &h.span(),
                "request_deadline_hours must be at least 1 (UU PDP gives data subjects an answer \
                 within 3 x 24 hours: 72)",
            );
        }
        s.request_deadline_hours = h.into_inner();
    }
    if let Some(g) = grace {
        if *g.get_ref() > MAX_WITHDRAWAL_GRACE_DAYS {
            d.error(
                &g.span(),
                format!(
                    "withdrawal_grace_days is {}, but processing must stop at most 3 x 24 hours \
                     after consent is withdrawn (UU PDP); use 0 to {MAX_WITHDRAWAL_GRACE_DAYS}",
                    g.get_ref()
                ),
            );
        }
        s.withdrawal_grace_days = g.into_inner();
    }
    let explicit_minimum = minimum_age.is_some();
    if let Some(a) = minimum_age {
        s.minimum_age = a;
    }
    if let Some(a) = adult_age {
        s.adult_age = a;
    }
    if s.minimum_age.get_ref() > s.adult_age.get_ref() {
        let span = if explicit_minimum {
            s.minimum_age.span()
        } else {
            s.adult_age.span()
        };
        d.error(
            &span,
            format!(
                "minimum_age ({}) is greater than adult_age ({}); a subject must be allowed to \
                 exist before acting alone",
                s.minimum_age.get_ref(),
                s.adult_age.get_ref()
            ),
        );
    }
    s.birth_date_category = t.string("birth_date_category", d);
    ok &= t.get("birth_date_category").is_none() || s.birth_date_category.is_some();
    ok.then_some(s)
}

fn finish_settings(
    s: RawSettings,
    declared: &BTreeSet<String>,
    categories: &BTreeMap<String, Category>,
    d: &mut Diag<'_>,
) -> Option<Settings> {
    if let Some(name) = &s.birth_date_category {
        let n = name.get_ref();
        if !declared.contains(n) {
            let hint = did_you_mean(n, declared.iter().map(String::as_str));
            d.error(
                &name.span(),
                format!(
                    "birth_date_category names unknown category {n:?}{hint}; declare it as \
                     [categories.{n}] with type = \"date\""
                ),
            );
        } else if let Some(c) = categories.get(n) {
            if c.field_type != FieldType::Date {
                d.error(
                    &name.span(),
                    format!(
                        "birth_date_category {n:?} has type {:?}, but birth dates must be a \
                         category of type \"date\"",
                        c.field_type.as_str()
                    ),
                );
            }
        }
    }
    Some(Settings {
        request_deadline_hours: s.request_deadline_hours,
        minimum_age: s.minimum_age.into_inner(),
        adult_age: s.adult_age.into_inner(),
        withdrawal_grace_days: s.withdrawal_grace_days,
        birth_date_category: s.birth_date_category.map(Spanned::into_inner),
    })
}

fn parse_category(name: &str, t: &Table<'_, '_>, d: &mut Diag<'_>) -> Option<Category> {
    t.check_keys(CATEGORY_KEYS, d);
    let field_type = t.required_spelled::<FieldType>("type", "type", d);
    let class = t.required_spelled::<DataClass>("class", "class", d);
    let index = t.boolean("index", d);
    let unique = t.boolean("unique", d);
    let indexed = index.as_ref().is_some_and(|b| *b.get_ref());
    if let Some(u) = &unique {
        if *u.get_ref() && !indexed {
            d.error(
                &u.span(),
                format!(
                    "category {name:?} has unique = true without index = true; uniqueness is \
                     checked through the blind index, so add index = true"
                ),
            );
        }
    }
    if let (Some(i), Some(FieldType::Bool)) = (&index, field_type) {
        if *i.get_ref() {
            d.error(
                &i.span(),
                format!(
                    "category {name:?} has type \"bool\" and cannot be indexed: a blind index of \
                     a yes/no value would reveal it; remove index = true"
                ),
            );
        }
    }
    Some(Category {
        name: name.to_owned(),
        field_type: field_type?,
        class: class?,
        index: indexed,
        unique: unique.is_some_and(|u| *u.get_ref()),
    })
}

fn parse_purpose(
    name: &str,
    t: &Table<'_, '_>,
    declared_categories: &BTreeSet<String>,
    declared_purposes: &BTreeSet<String>,
    d: &mut Diag<'_>,
) -> Option<Purpose> {
    t.check_keys(PURPOSE_KEYS, d);
    let basis = t.required_spelled::<LegalBasis>("basis", "legal basis", d);

    let categories = if t.require(
        "categories",
        " (the data categories this purpose needs, e.g. categories = [\"email\"])",
        d,
    ) {
        t.strings("categories", d)
    } else {
        None
    };
    if let Some(list) = &categories {
        if list.get_ref().is_empty() {
            d.error(
                &list.span(),
                format!("purpose {name:?} covers no categories; list the data it needs"),
            );
        }
        check_references(
            list.get_ref(),
            declared_categories,
            &CATEGORIES,
            &t.label,
            d,
        );
    }

    let retention = if t.require(
        "retention",
        " (how long the data is kept, e.g. \"30d\", \"6m\" or \"5y\")",
        d,
    ) {
        t.string("retention", d).and_then(|r| {
            let parsed = Retention::parse(r.get_ref());
            if parsed.is_none() {
                d.error(
                    &r.span(),
                    format!(
                        "invalid retention {:?} for purpose {name:?}; expected a whole number \
                         of at least 1 followed by d (days), m (months) or y (years), e.g. \
                         \"30d\", \"6m\" or \"5y\"",
                        r.get_ref()
                    ),
                );
            }
            parsed
        })
    } else {
        None
    };

    let description = t
        .string("description", d)
        .map(Spanned::into_inner)
        .filter(|s| !s.trim().is_empty());
    let retention_from = t.spelled::<RetentionFrom>("retention_from", "retention start", d);
    let on_expiry = t.spelled::<OnExpiry>("on_expiry", "expiry action", d);

    let channels = t.strings("channels", d);
    if let Some(list) = &channels {
        let mut seen = BTreeSet::new();
        for c in list.get_ref() {
            let ch = c.get_ref().as_str();
            if !CHANNELS.contains(&ch) {
                d.error(
                    &c.span(),
                    format!(
                        "unknown channel {ch:?} for purpose {name:?}; expected one of: {}",
                        CHANNELS.join(", ")
                    ),
                );
            }
            if !seen.insert(ch) {
                d.error(
                    &c.span(),
                    format!("channel {ch:?} is listed twice in purpose {name:?}"),
                );
            }
        }
    }
    let restricted_use = t.flag("restricted_use", d);
    let compatible_with = t.strings("compatible_with", d);
    if let Some(list) = &compatible_with {
        check_references(list.get_ref(), declared_purposes, &PURPOSES, &t.label, d);
        for p in list.get_ref() {
            if p.get_ref() == name {
                d.error(
                    &p.span(),
                    format!("purpose {name:?} lists itself in compatible_with"),
                );
            }
        }
    }

    Some(Purpose {
        name: name.to_owned(),
        basis: basis?,
        categories: plain(categories?.get_ref()),
        retention: retention?,
        retention_from: retention_from.unwrap_or_default(),
        on_expiry: on_expiry.unwrap_or_default(),
        description,
        channels: channels.map(|c| plain(c.get_ref())).unwrap_or_default(),
        restricted_use,
        compatible_with: compatible_with
            .map(|c| plain(c.get_ref()))
            .unwrap_or_default(),
    })
}

/// What roles and recipients may refer to.
struct References<'r> {
    categories: &'r BTreeSet<String>,
    purposes: &'r BTreeSet<String>,
    /// The purposes that were built (valid).
    built: &'r BTreeMap<String, Purpose>,
}

/// Reads a non-empty, checked `purposes` list of a role or recipient.
fn purpose_list(
    t: &Table<'_, '_>,
    refs: &References<'_>,
    d: &mut Diag<'_>,
) -> Option<Vec<Spanned<String>>> {
    if !t.require(
        "purposes",
        " (the purposes it serves, e.g. purposes = [\"service\"])",
        d,
    ) {
        return None;
    }
    let list = t.strings("purposes", d)?;
    if list.get_ref().is_empty() {
        d.error(
            &list.span(),
            format!(
                "{} lists no purposes; name at least one purpose it serves",
                t.label
            ),
        );
    }
    check_references(list.get_ref(), refs.purposes, &PURPOSES, &t.label, d);
    Some(list.into_inner())
}

/// Reports each category of `list` (declared, but) covered by none of `purposes`.
fn check_covered(
    list: &[Spanned<String>],
    purposes: &[Spanned<String>],
    refs: &References<'_>,
    owner: &str,
    what: &str,
    d: &mut Diag<'_>,
) {
    let Some(resolved) = resolve(purposes, refs.built) else {
        return;
    };
    if resolved.is_empty() {
        return; // "lists no purposes" is reported already.
    }
    let names = purposes
        .iter()
        .map(|p| p.get_ref().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    for c in list {
        let c_name = c.get_ref();
        if refs.categories.contains(c_name) && !resolved.iter().any(|p| p.covers(c_name)) {
            d.error(
                &c.span(),
                format!(
                    "{owner} {what} category {c_name:?}, but none of its purposes ({names}) \
                     covers it; add it to one of them or remove it here"
                ),
            );
        }
    }
}

fn parse_role(
    name: &str,
    t: &Table<'_, '_>,
    refs: &References<'_>,
    d: &mut Diag<'_>,
) -> Option<Role> {
    t.check_keys(ROLE_KEYS, d);
    let purposes = purpose_list(t, refs, d);
    let specific = t.flag("specific", d);
    let mask = t.strings("mask", d);
    if let Some(mask) = &mask {
        let owner = format!("the mask of role {name:?}");
        check_references(mask.get_ref(), refs.categories, &CATEGORIES, &owner, d);
        if let Some(purposes) = &purposes {
            check_covered(mask.get_ref(), purposes, refs, &t.label, "masks", d);
        }
    }
    let approve_disclosures = t.flag("approve_disclosures", d);
    let authorize_disclosures = t.flag("authorize_disclosures", d);
    let handle_requests = t.flag("handle_requests", d);
    let end_relationships = t.flag("end_relationships", d);
    if approve_disclosures && authorize_disclosures {
        // Four eyes: the person in charge and the account owner must be two people, so no
        // one role may hold both steps.
        d.error(
            &t.span,
            format!(
                "role {name:?} both approves and authorizes disclosures; four eyes need two \
                 people: give approve_disclosures and authorize_disclosures to different roles"
            ),
        );
    }
    Some(Role {
        name: name.to_owned(),
        purposes: plain(&purposes?),
        specific,
        mask: mask.map(|m| plain(m.get_ref())).unwrap_or_default(),
        approve_disclosures,
        authorize_disclosures,
        handle_requests,
        end_relationships,
    })
}

/// Validates a country code; returns it upper-cased, or reports it.
fn parse_country(recipient: &str, raw: &Spanned<String>, d: &mut Diag<'_>) -> Option<String> {
    let s = raw.get_ref();
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic()) {
        d.error(
            &raw.span(),
            format!(
                "invalid country {s:?} for recipient {recipient:?}; expected a two-letter \
                 ISO 3166-1 alpha-2 code such as \"ID\", \"SG\" or \"US\""
            ),
        );
        return None;
    }
    let code = s.to_ascii_uppercase();
    if is_country_code(&code) {
        return Some(code);
    }
    let hint = match code.as_str() {
        "UK" => " (the United Kingdom is \"GB\")",
        "EL" => " (Greece is \"GR\")",
        "EU" => " (the EU is not a country: name the member state where the data goes)",
        _ => "",
    };
    d.error(
        &raw.span(),
        format!(
            "country {s:?} for recipient {recipient:?} is not an assigned ISO 3166-1 alpha-2 \
             code{hint}"
        ),
    );
    None
}

fn parse_recipient(
    name: &str,
    t: &Table<'_, '_>,
    refs: &References<'_>,
    d: &mut Diag<'_>,
) -> Option<Recipient> {
    t.check_keys(RECIPIENT_KEYS, d);
    let country = if t.require(
        "country",
        " (where the recipient processes the data: an ISO 3166-1 alpha-2 code such as \"ID\")",
        d,
    ) {
        t.string("country", d)
            .and_then(|c| parse_country(name, &c, d))
    } else {
        None
    };
    let purposes = purpose_list(t, refs, d);
    let kind = t.spelled::<RecipientKind>("kind", "recipient kind", d);
    let categories = t.strings("categories", d);
    if let Some(list) = &categories {
        check_references(list.get_ref(), refs.categories, &CATEGORIES, &t.label, d);
        if let Some(purposes) = &purposes {
            check_covered(list.get_ref(), purposes, refs, &t.label, "lists", d);
        }
    }
    let transfer_basis_given = t.get("transfer_basis").is_some();
    let transfer_basis = t.spelled::<TransferBasis>("transfer_basis", "transfer basis", d);
    if let Some(code) = &country {
        if code != HOME_COUNTRY && !transfer_basis_given {
            d.error(
                &t.span,
                format!(
                    "recipient {name:?} is outside Indonesia (country {code:?}), so it needs \
                     transfer_basis (UU PDP Art. 56); expected one of: {}",
                    TransferBasis::expected()
                ),
            );
        }
    }
    let pseudonymize = t.flag("pseudonymize", d);
    Some(Recipient {
        name: name.to_owned(),
        country: country?,
        kind: kind.unwrap_or_default(),
        purposes: plain(&purposes?),
        categories: categories.map(|c| plain(c.get_ref())).unwrap_or_default(),
        transfer_basis,
        pseudonymize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 14 lines; text appended with [`with`] starts on line 15.
    const MINIMAL: &str = r#"version = "2026-01"

[controller]
name = "Universitas Contoh"
contact = "dpo@contoh.ac.id"

[categories.email]
type = "email"
class = "general"

[purposes.service]
basis = "contract"
categories = ["email"]
retention = "1y"
"#;

    /// The example from the format documentation: every key of every table.
    const FULL: &str = r#"version = "2026-01"                    # stored with every audit entry

[controller]
name = "Universitas Contoh"
contact = "dpo@contoh.ac.id"

[settings]
request_deadline_hours = 48
minimum_age = 15
adult_age = 17
withdrawal_grace_days = 3
birth_date_category = "dob"

[categories.email]
type = "email"
class = "general"
index = true
unique = true

[categories.full_name]
type = "name"
class = "general"

[categories.nik]
type = "nik"
class = "specific"
index = true

[categories.dob]
type = "date"
class = "general"

[purposes.admission]
basis = "contract"
categories = ["full_name", "email", "nik", "dob"]
retention = "5y"
description = "Process an application"
retention_from = "relationship_end"
on_expiry = "deidentify"
channels = ["email", "whatsapp"]
restricted_use = true

[roles.officer]
purposes = ["admission"]
specific = true
mask = ["nik"]
approve_disclosures = true
end_relationships = true

[recipients.partner_bank]
country = "sg"
purposes = ["admission"]
kind = "processor"
categories = ["email"]
transfer_basis = "safeguards"
pseudonymize = true
"#;

    fn with(extra: &str) -> String {
        format!("{MINIMAL}{extra}")
    }

    /// `src` with `from` replaced by `to` (which must occur).
    fn edit(src: &str, from: &str, to: &str) -> String {
        assert!(src.contains(from), "{from:?} not in source");
        src.replacen(from, to, 1)
    }

    fn parse(src: &str) -> Policy {
        match Policy::parse(src) {
            Ok(p) => p,
            Err(e) => panic!("unexpected errors:\n{}\nin:\n{src}", e.render("p.toml")),
        }
    }

    fn errors(src: &str) -> Vec<PolicyError> {
        match Policy::parse(src) {
            Ok(_) => panic!("expected errors for:\n{src}"),
            Err(e) => {
                assert!(!e.0.is_empty());
                e.0
            }
        }
    }

    /// Line and column (1-based, characters) of the last occurrence of `needle`.
    fn position_of(src: &str, needle: &str) -> (usize, usize) {
        let Some(offset) = src.rfind(needle) else {
            panic!("{needle:?} not in source");
        };
        line_column(src, offset)
    }

    #[track_caller]
    fn assert_error(src: &str, line: usize, column: usize, contains: &str) {
        let errs = errors(src);
        assert!(
            errs.iter()
                .any(|e| e.line == line && e.column == column && e.message.contains(contains)),
            "expected {line}:{column}: ...{contains}... among:\n{}",
            PolicyErrors(errs).render("p.toml")
        );
    }

    /// An error containing `contains` at the last occurrence of `needle`.
    #[track_caller]
    fn assert_error_at(src: &str, needle: &str, contains: &str) {
        let (line, column) = position_of(src, needle);
        assert_error(src, line, column, contains);
    }

    #[test]
    fn minimal_policy_parses_with_defaults() {
        let p = parse(MINIMAL);
        assert_eq!(p.version, "2026-01");
        assert_eq!(p.controller.name, "Universitas Contoh");
        assert_eq!(p.controller.contact, "dpo@contoh.ac.id");
        assert_eq!(
            p.settings,
            Settings {
                request_deadline_hours: 72,
                minimum_age: 13,
                adult_age: 18,
                withdrawal_grace_days: 0,
                birth_date_category: None,
            }
        );
        assert_eq!(
            p.category("email"),
            Some(&Category {
                name: "email".into(),
                field_type: FieldType::Email,
                class: DataClass::General,
                index: false,
                unique: false,
            })
        );
        assert_eq!(
            p.purpose("service"),
            Some(&Purpose {
                name: "service".into(),
                basis: LegalBasis::Contract,
                categories: vec!["email".into()],
                retention: Retention {
                    amount: 1,
                    unit: RetentionUnit::Years,
                },
                retention_from: RetentionFrom::Collection,
                on_expiry: OnExpiry::Erase,
                description: None,
                channels: vec![],
                restricted_use: false,
                compatible_with: Vec::new(),
            })
        );
        assert!(p.roles.is_empty());
        assert!(p.recipients.is_empty());
        assert!(p.category("phone").is_none());
        assert!(p.purpose("marketing").is_none());
        assert!(p.role("admin").is_none());
        assert!(p.recipient("bank").is_none());
        assert!(p.birth_date_category().is_none());
    }

    #[test]
    fn full_example_parses_every_key() {
        let p = parse(FULL);
        assert_eq!(p.settings.request_deadline_hours, 48);
        assert_eq!(p.settings.minimum_age, 15);
        assert_eq!(p.settings.adult_age, 17);
        assert_eq!(p.settings.withdrawal_grace_days, 3);
        assert_eq!(
            p.birth_date_category().map(|c| c.name.as_str()),
            Some("dob")
        );

        let email = &p.categories["email"];
        assert!(email.index && email.unique);
        assert_eq!(p.categories["nik"].class, DataClass::Specific);

        let a = &p.purposes["admission"];
        assert_eq!(a.retention.to_string(), "5y");
        assert_eq!(a.retention_from, RetentionFrom::RelationshipEnd);
        assert_eq!(a.on_expiry, OnExpiry::Deidentify);
        assert_eq!(a.description.as_deref(), Some("Process an application"));
        assert_eq!(a.channels, ["email", "whatsapp"]);
        assert!(a.restricted_use);
        assert!(a.covers("nik") && !a.covers("phone"));

        let officer = &p.roles["officer"];
        assert!(officer.specific && officer.approve_disclosures && !officer.authorize_disclosures);
        assert!(officer.end_relationships);
        assert_eq!(officer.mask, ["nik"]);
        assert!(officer.has_purpose("admission"));

        let bank = &p.recipients["partner_bank"];
        assert_eq!(bank.country, "SG", "country codes are upper-cased");
        assert!(bank.is_foreign());
        assert_eq!(bank.kind, RecipientKind::Processor);
        assert_eq!(bank.categories, ["email"]);
        assert_eq!(bank.transfer_basis, Some(TransferBasis::Safeguards));
        assert!(bank.pseudonymize);
    }

    #[test]
    fn inline_tables_dotted_keys_and_crlf_are_fine() {
        let src = "version = \"v\"\r\ncontroller = { name = \"C\", contact = \"c@x.id\" }\r\n\
                   categories.email = { type = \"email\", class = \"general\" }\r\n\
                   purposes.service.basis = \"contract\"\r\n\
                   purposes.service.categories = [\"email\"]\r\n\
                   purposes.service.retention = \"30d\"\r\n";
        let p = parse(src);
        assert_eq!(p.purposes["service"].retention.to_string(), "30d");
    }

    #[test]
    fn birth_date_category_lookup() {
        let dob = "\n[categories.birth_date]\ntype = \"date\"\nclass = \"general\"\n";
        let p = parse(&with(dob));
        assert_eq!(
            p.birth_date_category().map(|c| c.name.as_str()),
            Some("birth_date")
        );

        let not_a_date = edit(dob, "\"date\"", "\"text\"");
        assert!(parse(&with(&not_a_date)).birth_date_category().is_none());

        let src = edit(
            MINIMAL,
            "\n[categories.email]",
            "\n[settings]\nbirth_date_category = \"born\"\n\n[categories.born]\ntype = \"date\"\nclass = \"general\"\n\n[categories.email]",
        );
        let p = parse(&format!("{src}{dob}"));
        assert_eq!(
            p.birth_date_category().map(|c| c.name.as_str()),
            Some("born")
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = errors("version = \"2026-01\nname = 1\n");
        assert_eq!((errs[0].line, errs[0].column), (1, 19));
        assert!(
            errs[0].message.starts_with("TOML syntax error: "),
            "{errs:?}"
        );

        assert_error(
            "version = \"v\"\n[controller\nname = \"x\"\n",
            2,
            12,
            "TOML syntax error: unclosed table",
        );
    }

    #[test]
    fn duplicate_keys_and_tables() {
        assert_error(
            &with("retention = \"2y\"\n"),
            15,
            1,
            "duplicate key \"retention\"",
        );
        let src = with("\n[categories.email]\ntype = \"text\"\nclass = \"general\"\n");
        assert_error(&src, 16, 13, "duplicate key \"email\"");
        // Both duplicates are found.
        let errs = errors("a = 1\na = 2\nb = 3\nb = 4\n");
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    #[test]
    fn unknown_keys_anywhere() {
        assert_error(
            &with("channel = [\"email\"]\n"),
            15,
            1,
            "unknown key \"channel\" in purpose \"service\" (did you mean \"channels\"?); \
             expected one of: basis, categories, retention, description, retention_from, \
             on_expiry, channels, restricted_use",
        );
        let src = edit(MINIMAL, "version", "verison");
        assert_error(
            &src,
            1,
            1,
            "unknown key \"verison\" in the top level of the policy",
        );
        assert_error(&src, 1, 1, "missing required key \"version\"");
        let src = edit(MINIMAL, "contact =", "phone = \"1\"\ncontact =");
        assert_error(&src, 5, 1, "unknown key \"phone\" in [controller]");
        let src = with("\n[settings]\ndeadline = 3\n");
        assert_error(&src, 17, 1, "unknown key \"deadline\" in [settings]");
        let src = edit(
            MINIMAL,
            "class = \"general\"",
            "class = \"general\"\nindexed = true",
        );
        assert_error(
            &src,
            10,
            1,
            "unknown key \"indexed\" in category \"email\" (did you mean \"index\"?)",
        );
        let roles = with("\n[roles.x]\npurposes = [\"service\"]\nmasks = []\n");
        assert_error(&roles, 18, 1, "unknown key \"masks\" in role \"x\"");
        let rec = with(
            "\n[recipients.x]\ncountry = \"ID\"\npurposes = [\"service\"]\nbasis = \"adequate\"\n",
        );
        assert_error(&rec, 19, 1, "unknown key \"basis\" in recipient \"x\"");
    }

    #[test]
    fn missing_required_keys() {
        let src = edit(MINIMAL, "basis = \"contract\"\n", "");
        assert_error(
            &src,
            11,
            1,
            "missing required key \"basis\" in purpose \"service\" (legal basis: one of consent, \
             contract, legal_obligation, vital_interest, public_task, legitimate_interest)",
        );
        let src = edit(MINIMAL, "retention = \"1y\"\n", "");
        assert_error(
            &src,
            11,
            1,
            "missing required key \"retention\" in purpose \"service\"",
        );
        let src = edit(MINIMAL, "categories = [\"email\"]\n", "");
        assert_error(
            &src,
            11,
            1,
            "missing required key \"categories\" in purpose \"service\"",
        );
        let src = edit(MINIMAL, "type = \"email\"\n", "");
        assert_error(
            &src,
            7,
            1,
            "missing required key \"type\" in category \"email\"",
        );
        let src = edit(MINIMAL, "class = \"general\"\n", "");
        assert_error(
            &src,
            7,
            1,
            "missing required key \"class\" in category \"email\"",
        );
        let src = edit(MINIMAL, "name = \"Universitas Contoh\"\n", "");
        assert_error(&src, 3, 1, "missing required key \"name\" in [controller]");
        let src = edit(
            MINIMAL,
            "[controller]\nname = \"Universitas Contoh\"\ncontact = \"dpo@contoh.ac.id\"\n",
            "",
        );
        assert_error(&src, 1, 1, "missing required key \"controller\"");
        let src = edit(MINIMAL, "version = \"2026-01\"\n", "");
        assert_error(&src, 1, 1, "missing required key \"version\"");
        let src = with("\n[recipients.x]\npurposes = [\"service\"]\n");
        assert_error(
            &src,
            16,
            1,
            "missing required key \"country\" in recipient \"x\"",
        );
        let src = with("\n[roles.x]\nspecific = true\n");
        assert_error(
            &src,
            16,
            1,
            "missing required key \"purposes\" in role \"x\"",
        );
        assert_error(
            "version = \"v\"\n[controller]\nname = \"n\"\ncontact = \"c\"\n",
            1,
            1,
            "missing [categories]",
        );
        assert_error(
            "version = \"v\"\n[controller]\nname = \"n\"\ncontact = \"c\"\n",
            1,
            1,
            "missing [purposes]",
        );
    }

    #[test]
    fn wrong_value_types() {
        let src = edit(
            MINIMAL,
            "class = \"general\"",
            "class = \"general\"\nindex = \"yes\"",
        );
        assert_error(
            &src,
            10,
            9,
            "\"index\" in category \"email\" must be true or false, not a string",
        );
        let src = edit(
            MINIMAL,
            "categories = [\"email\"]",
            "categories = \"email\"",
        );
        assert_error(&src, 13, 14, "must be a list of strings, not a string");
        let src = edit(
            MINIMAL,
            "categories = [\"email\"]",
            "categories = [\"email\", 3]",
        );
        assert_error(&src, 13, 24, "must be a string, not an integer");
        let src = edit(MINIMAL, "\"2026-01\"", "2026-01-01");
        assert_error(
            &src,
            1,
            11,
            "\"version\" in the top level of the policy must be a string, not a datetime",
        );
        let src = with("\n[settings]\nminimum_age = -1\nadult_age = \"18\"\n");
        assert_error(&src, 17, 15, "must be a whole number from 0 to");
        assert_error(&src, 18, 13, "must be a whole number, not a string");
        let src = with("\n[categories.phone]\n");
        assert_error(
            &src,
            16,
            1,
            "missing required key \"type\" in category \"phone\"",
        );
        let src = edit(MINIMAL, "\n\n[controller]", "\nroles = 3\n\n[controller]");
        assert_error(
            &src,
            2,
            9,
            "\"roles\" in the top level of the policy must be a table, not an integer",
        );
        let src = with("\n[roles]\nx = \"service\"\n");
        assert_error(
            &src,
            17,
            5,
            "role \"x\" must be a table ([roles.x] followed by its keys), not a string",
        );
    }

    #[test]
    fn unknown_spellings() {
        let src = edit(MINIMAL, "\"contract\"", "\"contrct\"");
        let errs = errors(&src);
        assert_eq!(
            PolicyErrors(errs).render("p.toml"),
            "p.toml:12:9: unknown legal basis \"contrct\" for purpose \"service\"; expected one \
             of: consent, contract, legal_obligation, vital_interest, public_task, \
             legitimate_interest"
        );
        let src = edit(MINIMAL, "type = \"email\"", "type = \"mail\"");
        assert_error(&src, 8, 8, "unknown type \"mail\" for category \"email\"; expected one of: name, email, phone, nik, npwp, date, text, number, bool");
        let src = edit(MINIMAL, "class = \"general\"", "class = \"sensitive\"");
        assert_error(&src, 9, 9, "unknown class \"sensitive\" for category \"email\"; expected one of: general, specific");
        let src = with("retention_from = \"end\"\non_expiry = \"delete\"\nchannels = [\"email\", \"fax\", \"email\"]\n");
        assert_error(&src, 15, 18, "unknown retention start \"end\" for purpose \"service\"; expected one of: collection, relationship_end");
        assert_error(&src, 16, 13, "unknown expiry action \"delete\" for purpose \"service\"; expected one of: erase, deidentify");
        assert_error(&src, 17, 22, "unknown channel \"fax\" for purpose \"service\"; expected one of: email, sms, whatsapp, phone, push, in_app, social, post");
        assert_error(
            &src,
            17,
            29,
            "channel \"email\" is listed twice in purpose \"service\"",
        );
        let src = with("\n[recipients.x]\ncountry = \"SG\"\npurposes = [\"service\"]\nkind = \"vendor\"\ntransfer_basis = \"bcr\"\n");
        assert_error_at(&src, "\"vendor\"", "unknown recipient kind \"vendor\" for recipient \"x\"; expected one of: processor, third_party, authority");
        assert_error_at(&src, "\"bcr\"", "unknown transfer basis \"bcr\" for recipient \"x\"; expected one of: adequate, safeguards, consent");
        // An invalid transfer_basis is not also reported as missing.
        assert_eq!(errors(&src).len(), 2);
    }

    #[test]
    fn retention_syntax() {
        for bad in [
            "5x",
            "0d",
            "y",
            "-1y",
            "5Y",
            "",
            "1.5y",
            "5 y",
            " 5y",
            "99999999999d",
            "5yy",
        ] {
            let src = edit(MINIMAL, "\"1y\"", &format!("{bad:?}"));
            assert_error(
                &src,
                14,
                13,
                &format!("invalid retention {bad:?} for purpose \"service\""),
            );
        }
        for (text, amount, unit) in [
            ("30d", 30, RetentionUnit::Days),
            ("6m", 6, RetentionUnit::Months),
            ("5y", 5, RetentionUnit::Years),
            ("1d", 1, RetentionUnit::Days),
        ] {
            let r = Retention::parse(text);
            assert_eq!(r, Some(Retention { amount, unit }));
            assert_eq!(r.map(|r| r.to_string()).as_deref(), Some(text));
        }
    }

    #[test]
    fn references_to_unknown_names() {
        let src = edit(MINIMAL, "[\"email\"]", "[\"email\", \"emial\", \"email\"]");
        assert_error(
            &src,
            13,
            24,
            "unknown category \"emial\" in purpose \"service\" (did you mean \"email\"?)",
        );
        assert_error(
            &src,
            13,
            33,
            "category \"email\" is listed twice in purpose \"service\"",
        );

        let src = with("\n[roles.officer]\npurposes = [\"servce\"]\nmask = [\"nik\"]\n");
        assert_error(
            &src,
            17,
            13,
            "unknown purpose \"servce\" in role \"officer\" (did you mean \"service\"?)",
        );
        assert_error(
            &src,
            18,
            9,
            "unknown category \"nik\" in the mask of role \"officer\"",
        );

        let src = with("\n[recipients.bank]\ncountry = \"ID\"\npurposes = [\"billing\"]\n");
        assert_error(
            &src,
            18,
            13,
            "unknown purpose \"billing\" in recipient \"bank\"",
        );
        let src = with("\n[recipients.bank]\ncountry = \"ID\"\npurposes = [\"service\"]\ncategories = [\"iban\"]\n");
        assert_error(
            &src,
            19,
            15,
            "unknown category \"iban\" in recipient \"bank\"",
        );
    }

    #[test]
    fn roles_rules() {
        let src = with("\n[roles.admin]\npurposes = [\"service\"]\n");
        assert_error(&src, 16, 8, "role \"admin\" is built in");
        let src = with("\n[roles.officer]\npurposes = []\n");
        assert_error(&src, 17, 12, "role \"officer\" lists no purposes");
        let extra = "\n[categories.nik]\ntype = \"nik\"\nclass = \"specific\"\n\
                     \n[roles.support]\npurposes = [\"service\"]\nmask = [\"email\", \"nik\"]\n";
        let src = with(extra);
        assert_error(
            &src,
            22,
            18,
            "role \"support\" masks category \"nik\", but none of its purposes (service) covers it",
        );
        assert_eq!(errors(&src).len(), 1, "\"email\" is covered");
        // A mask over a covered category is fine.
        let src = edit(
            &src,
            "categories = [\"email\"]",
            "categories = [\"email\", \"nik\"]",
        );
        assert_eq!(parse(&src).roles["support"].mask, ["email", "nik"]);
    }

    #[test]
    fn names_must_be_lowercase_identifiers() {
        let src = edit(MINIMAL, "[purposes.service]", "[purposes.Service]");
        assert_error(
            &src,
            11,
            11,
            "invalid purpose name \"Service\": names must start with a lower-case letter",
        );
        let src = with("\n[categories.\"e-mail\"]\ntype = \"email\"\nclass = \"general\"\n");
        assert_error(&src, 16, 13, "invalid category name \"e-mail\"");
        let src = with("\n[roles.1st]\npurposes = [\"service\"]\n");
        assert_error(&src, 16, 8, "invalid role name \"1st\"");
        let src = with("\n[recipients._x]\ncountry = \"ID\"\npurposes = [\"service\"]\n");
        assert_error(&src, 16, 13, "invalid recipient name \"_x\"");

        let longest = format!("a{}", "b".repeat(63));
        let src = with(&format!("\n[roles.{longest}]\npurposes = [\"service\"]\n"));
        assert!(parse(&src).role(&longest).is_some());
        let too_long = format!("{longest}c");
        let src = with(&format!("\n[roles.{too_long}]\npurposes = [\"service\"]\n"));
        assert_error(&src, 16, 8, "invalid role name");
        assert!(
            is_valid_name("a")
                && is_valid_name("ab_9")
                && !is_valid_name("")
                && !is_valid_name("aé")
        );
    }

    #[test]
    fn category_rules() {
        let src = edit(
            MINIMAL,
            "class = \"general\"",
            "class = \"general\"\nunique = true",
        );
        assert_error(
            &src,
            10,
            10,
            "category \"email\" has unique = true without index = true",
        );
        let src = edit(&src, "unique = true", "unique = true\nindex = false");
        assert_error(&src, 10, 10, "without index = true");
        let src =
            with("\n[categories.opt_in]\ntype = \"bool\"\nclass = \"general\"\nindex = true\n");
        assert_error(
            &src,
            19,
            9,
            "category \"opt_in\" has type \"bool\" and cannot be indexed",
        );
    }

    #[test]
    fn settings_rules() {
        let src = with("\n[settings]\nwithdrawal_grace_days = 4\n");
        assert_error(
            &src,
            17,
            25,
            "withdrawal_grace_days is 4, but processing must stop at most 3 x 24 hours",
        );
        assert_eq!(
            parse(&edit(&src, "= 4", "= 3"))
                .settings
                .withdrawal_grace_days,
            3
        );

        let src = with("\n[settings]\nminimum_age = 21\n");
        assert_error(
            &src,
            17,
            15,
            "minimum_age (21) is greater than adult_age (18)",
        );
        let src = with("\n[settings]\nadult_age = 12\n");
        assert_error(
            &src,
            17,
            13,
            "minimum_age (13) is greater than adult_age (12)",
        );
        let src = with("\n[settings]\nminimum_age = 18\nadult_age = 18\n");
        assert_eq!(parse(&src).settings.minimum_age, 18);

        let src = with("\n[settings]\nrequest_deadline_hours = 0\n");
        assert_error(&src, 17, 26, "request_deadline_hours must be at least 1");

        let src = with("\n[settings]\nbirth_date_category = \"dob\"\n");
        assert_error(
            &src,
            17,
            23,
            "birth_date_category names unknown category \"dob\"",
        );
        let src = with("\n[settings]\nbirth_date_category = \"email\"\n");
        assert_error(&src, 17, 23, "birth_date_category \"email\" has type \"email\", but birth dates must be a category of type \"date\"");
    }

    #[test]
    fn recipient_rules() {
        let rec = |country: &str, rest: &str| {
            with(&format!(
                "\n[recipients.cloud]\ncountry = {country:?}\npurposes = [\"service\"]\n{rest}"
            ))
        };
        assert_error(
            &rec("US", ""),
            16,
            1,
            "recipient \"cloud\" is outside Indonesia (country \"US\"), so it needs transfer_basis (UU PDP Art. 56); expected one of: adequate, safeguards, consent",
        );
        let p = parse(&rec("us", "transfer_basis = \"adequate\"\n"));
        assert_eq!(p.recipients["cloud"].country, "US");
        assert_eq!(p.recipients["cloud"].kind, RecipientKind::ThirdParty);
        let p = parse(&rec("id", ""));
        assert_eq!(p.recipients["cloud"].country, "ID");
        assert!(!p.recipients["cloud"].is_foreign());
        assert_eq!(p.recipients["cloud"].transfer_basis, None);

        for bad in ["Indonesia", "U", "U1", "", "IDN", "ÜS"] {
            assert_error(&rec(bad, ""), 17, 11, &format!("invalid country {bad:?} for recipient \"cloud\"; expected a two-letter ISO 3166-1 alpha-2 code"));
        }
        assert_error(
            &rec("XX", ""),
            17,
            11,
            "country \"XX\" for recipient \"cloud\" is not an assigned ISO 3166-1 alpha-2 code",
        );
        assert_error(
            &rec("uk", ""),
            17,
            11,
            "is not an assigned ISO 3166-1 alpha-2 code (the United Kingdom is \"GB\")",
        );
        // An invalid country is not also reported as needing a transfer basis.
        assert_eq!(errors(&rec("XX", "")).len(), 1);

        let src = rec("ID", "categories = [\"email\", \"phone\"]\n")
            + "\n[categories.phone]\ntype = \"phone\"\nclass = \"general\"\n";
        assert_error(&src, 19, 24, "recipient \"cloud\" lists category \"phone\", but none of its purposes (service) covers it");
        assert_eq!(errors(&src).len(), 1);
    }

    #[test]
    fn country_codes() {
        assert!(
            COUNTRY_CODES.windows(2).all(|w| w[0] < w[1]),
            "sorted for binary search"
        );
        for code in ["ID", "SG", "US", "GB", "AX", "ZW", "SS", "XK"] {
            assert_eq!(is_country_code(code), code != "XK", "{code}");
        }
        assert!(!is_country_code("UK") && !is_country_code("EU") && !is_country_code("id"));
    }

    #[test]
    fn empty_version_and_controller_fields() {
        let src = edit(MINIMAL, "\"2026-01\"", "\"  \"");
        assert_error(
            &src,
            1,
            11,
            "\"version\" in the top level of the policy must not be empty",
        );
        let src = edit(MINIMAL, "\"dpo@contoh.ac.id\"", "\"\"");
        assert_error(&src, 5, 11, "\"contact\" in [controller] must not be empty");
    }

    #[test]
    fn empty_sections() {
        let src = edit(MINIMAL, "[purposes.service]", "[roles.x]");
        let src = edit(&src, "\n\n[controller]", "\npurposes = {}\n\n[controller]");
        assert_error(&src, 2, 12, "[purposes] declares no purposes");
        let src = edit(MINIMAL, "[\"email\"]", "[]");
        assert_error(&src, 13, 14, "purpose \"service\" covers no categories");
    }

    #[test]
    fn every_error_is_reported_in_source_order() {
        let src = r#"version = ""
colour = "green"

[controller]
name = "X"

[categories.email]
type = "emial"
class = "general"
unique = true

[purposes.admission]
basis = "contrct"
categories = ["email", "phone"]
retention = "5x"

[roles.admin]
purposes = ["admission"]

[recipients.google]
country = "US"
purposes = ["admission"]
"#;
        let errs = errors(src);
        let got: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
        assert_eq!(
            got,
            [
                (1, 11),  // empty version
                (2, 1),   // unknown key colour
                (4, 1),   // missing contact
                (8, 8),   // unknown type
                (10, 10), // unique without index
                (13, 9),  // unknown basis
                (14, 24), // unknown category phone
                (15, 13), // bad retention
                (17, 8),  // role admin
                (20, 1),  // foreign recipient without transfer basis
            ],
            "{}",
            PolicyErrors(errs.clone()).render("p.toml")
        );
    }

    #[test]
    fn render_and_display() {
        let src = edit(MINIMAL, "\"1y\"", "\"5x\"");
        let Err(e) = Policy::parse(&src) else {
            panic!("expected an error");
        };
        let rendered = e.render("p.toml");
        assert!(
            rendered.starts_with("p.toml:14:13: invalid retention \"5x\""),
            "{rendered}"
        );
        assert_eq!(rendered.lines().count(), 1);
        assert_eq!(format!("p.toml:{e}"), rendered);

        let two = PolicyErrors(vec![
            PolicyError {
                line: 1,
                column: 2,
                message: "a".into(),
            },
            PolicyError {
                line: 3,
                column: 4,
                message: "b".into(),
            },
        ]);
        assert_eq!(two.render("x.toml"), "x.toml:1:2: a\nx.toml:3:4: b");
        assert_eq!(two.to_string(), "1:2: a\n3:4: b");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let src = edit(
            MINIMAL,
            "name = \"Universitas Contoh\"",
            "name = \"Universitäs Çontoh — Jakarta\"; bogus = 1",
        );
        // The syntax error is right after the closing quote: 37 characters in (42 bytes).
        let errs = errors(&src);
        assert_eq!((errs[0].line, errs[0].column), (4, 38), "{errs:?}");
        let src = edit(
            MINIMAL,
            "[controller]\nname = \"Universitas Contoh\"\ncontact = \"dpo@contoh.ac.id\"",
            "controller = { name = \"Ünï\", nope = 1, contact = \"c\" }",
        );
        // 29 characters (32 bytes) precede "nope".
        assert_error(&src, 3, 30, "unknown key \"nope\" in [controller]");
    }

    #[test]
    fn spellings_round_trip() {
        for b in LegalBasis::ALL {
            assert_eq!(LegalBasis::parse(b.as_str()), Some(*b));
        }
        assert_eq!(LegalBasis::LegalObligation.as_str(), "legal_obligation");
        assert_eq!(
            LegalBasis::LegitimateInterest.to_string(),
            "legitimate_interest"
        );
        assert_eq!(DataClass::Specific.as_str(), "specific");
        assert_eq!(DataClass::parse("general"), Some(DataClass::General));
        assert_eq!(RetentionFrom::RelationshipEnd.as_str(), "relationship_end");
        assert_eq!(OnExpiry::Deidentify.as_str(), "deidentify");
        assert_eq!(RecipientKind::ThirdParty.as_str(), "third_party");
        assert_eq!(TransferBasis::Safeguards.as_str(), "safeguards");
        assert_eq!(RetentionUnit::Months.as_str(), "m");
        assert_eq!(LegalBasis::parse("Consent"), None);
        assert_eq!(
            did_you_mean("contrct", ["consent", "contract"]),
            " (did you mean \"contract\"?)"
        );
        assert_eq!(did_you_mean("zz", ["zy"]), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    const VERSIONED: &str = r#"version = "v1"

[controller]
name = "C"
contact = "dpo@c.id"

[categories.email]
type = "email"
class = "general"

[categories.phone]
type = "phone"
class = "general"

[purposes.service]
basis = "contract"
categories = ["email", "phone"]
retention = "1y"

[purposes.marketing]
basis = "consent"
categories = ["email"]
retention = "2y"
channels = ["email", "whatsapp"]

[roles.support]
purposes = ["service"]

[recipients.mailer]
country = "ID"
purposes = ["marketing"]
"#;

    fn version_of(src: &str, purpose: &str) -> String {
        match parse(src).purpose_version(purpose) {
            Some(v) => v,
            None => panic!("no purpose {purpose}"),
        }
    }

    #[test]
    fn purpose_version_is_hex_sha256_and_stable() {
        let v = version_of(VERSIONED, "service");
        assert_eq!(v.len(), 64);
        assert!(v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(v, version_of(VERSIONED, "service"));
        assert_ne!(v, version_of(VERSIONED, "marketing"));
        assert_eq!(parse(VERSIONED).purpose_version("nope"), None);
    }

    #[test]
    fn purpose_version_changes_with_what_the_purpose_covers() {
        let service = version_of(VERSIONED, "service");
        let marketing = version_of(VERSIONED, "marketing");
        let changed = |from: &str, to: &str| {
            let src = edit(VERSIONED, from, to);
            (version_of(&src, "service"), version_of(&src, "marketing"))
        };

        // Changes of the service purpose itself: its version changes, marketing's does not.
        for (from, to) in [
            (
                "categories = [\"email\", \"phone\"]",
                "categories = [\"email\"]",
            ),
            ("basis = \"contract\"", "basis = \"legitimate_interest\""),
            ("retention = \"1y\"", "retention = \"12m\""),
            (
                "retention = \"1y\"",
                "retention = \"1y\"\ndescription = \"Run the service\"",
            ),
            (
                "retention = \"1y\"",
                "retention = \"1y\"\nretention_from = \"relationship_end\"",
            ),
            (
                "retention = \"1y\"",
                "retention = \"1y\"\non_expiry = \"deidentify\"",
            ),
            // A covered category's type or class.
            ("type = \"phone\"", "type = \"text\""),
            (
                "type = \"phone\"\nclass = \"general\"",
                "type = \"phone\"\nclass = \"specific\"",
            ),
            // A recipient starts listing it.
            (
                "purposes = [\"marketing\"]\n",
                "purposes = [\"marketing\", \"service\"]\n",
            ),
        ] {
            let (s, m) = changed(from, to);
            assert_ne!(
                s, service,
                "{from:?} -> {to:?} must change the service version"
            );
            assert_eq!(m, marketing, "{from:?} -> {to:?} must not change marketing");
        }

        // A description change after one exists.
        let described = edit(
            VERSIONED,
            "retention = \"1y\"",
            "retention = \"1y\"\ndescription = \"a\"",
        );
        let a = version_of(&described, "service");
        assert_ne!(
            a,
            version_of(&edit(&described, "\"a\"", "\"b\""), "service")
        );

        // Changes of marketing only.
        for (from, to) in [
            ("retention = \"2y\"", "retention = \"3y\""),
            (
                "channels = [\"email\", \"whatsapp\"]",
                "channels = [\"email\"]",
            ),
            ("\"consent\"", "\"legitimate_interest\""),
        ] {
            let (s, m) = changed(from, to);
            assert_eq!(s, service, "{from:?} -> {to:?} must not change service");
            assert_ne!(m, marketing, "{from:?} -> {to:?} must change marketing");
        }
    }

    #[test]
    fn purpose_version_ignores_what_it_does_not_cover() {
        let service = version_of(VERSIONED, "service");
        for (from, to) in [
            // Order of lists.
            ("[\"email\", \"phone\"]", "[\"phone\", \"email\"]"),
            // Roles, index flags, restricted use, the policy version, the controller.
            (
                "[roles.support]\npurposes = [\"service\"]",
                "[roles.support]\npurposes = [\"service\"]\nmask = [\"phone\"]",
            ),
            ("type = \"email\"", "type = \"email\"\nindex = true"),
            (
                "retention = \"1y\"",
                "retention = \"1y\"\nrestricted_use = true",
            ),
            ("version = \"v1\"", "version = \"v2\""),
            ("name = \"C\"", "name = \"D\""),
            // A category it does not cover.
            (
                "[categories.phone]",
                "[categories.fax]\ntype = \"text\"\nclass = \"general\"\n\n[categories.phone]",
            ),
            // A recipient of another purpose.
            (
                "country = \"ID\"",
                "country = \"SG\"\ntransfer_basis = \"adequate\"",
            ),
        ] {
            let src = edit(VERSIONED, from, to);
            assert_eq!(version_of(&src, "service"), service, "{from:?} -> {to:?}");
        }
        // Channel order.
        let src = edit(
            VERSIONED,
            "[\"email\", \"whatsapp\"]",
            "[\"whatsapp\", \"email\"]",
        );
        assert_eq!(
            version_of(&src, "marketing"),
            version_of(VERSIONED, "marketing")
        );
    }
}
