//! The policy model: purposes, legal bases, data categories, retention, roles and recipients,
//! declared in one TOML file and validated with `file:line:column` diagnostics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use toml::de::DeTable;

use crate::documents::DocumentRules;
use crate::fields::FieldType;

use build::build;
use walk::{line_column, syntax_message, Diag};

mod build;
mod countries;
#[cfg(test)]
mod tests;
mod walk;

/// Name of the built-in role that may use every purpose, see specific data and call the
/// administrative endpoints. Policies may not redefine it.
pub const ADMIN_ROLE: &str = "admin";

/// The built-in role of the platform operator's keys (which only a platform holds); no policy
/// declares it.
pub const PLATFORM_ROLE: &str = "platform";

/// The built-in role of a data subject acting for themselves in the privacy portal (recorded
/// as the role of their audit entries); no key holds it and no policy declares it.
pub const SUBJECT_ROLE: &str = "subject";

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
    /// The organization's time zone (an IANA name), in which people are shown dates and
    /// deadlines. Default [`DEFAULT_TIME_ZONE`].
    pub time_zone: String,
}

/// The time zone of a policy that names none: Western Indonesia Time (WIB, UTC+7).
pub const DEFAULT_TIME_ZONE: &str = "Asia/Jakarta";

impl Settings {
    /// The organization's time zone (validated when the policy was parsed).
    pub fn zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
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
    /// The person's own address (an indexed e-mail or phone category): the privacy portal sends
    /// sign-in codes to it. Never set on an address of someone else the record holds (a
    /// parent's number, a shared office line): whoever reads it would sign in as the person.
    pub sign_in: bool,
    /// What a `document` category accepts (`media_types`, `max_size`): `Some` exactly when
    /// `field_type` is [`FieldType::Document`].
    pub document: Option<DocumentRules>,
}

impl Category {
    /// Is this a category of uploaded files (type `document`) rather than of field values?
    pub fn is_document(&self) -> bool {
        self.field_type == FieldType::Document
    }
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

pub use countries::is_country_code;

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

    /// What is wrong with a policy about to be applied that declares a role under the built-in
    /// name [`PLATFORM_ROLE`]. Checked when a policy is applied or checked, not when a stored
    /// one is loaded: a store whose policy predates the name keeps opening (keys of that role
    /// are refused from then on).
    pub fn reserved_role_error(&self) -> Option<String> {
        if self.roles.contains_key(SUBJECT_ROLE) {
            return Some(format!(
                "role {SUBJECT_ROLE:?} is built in (a data subject acting for themselves in the \
                 privacy portal) and cannot be declared; give this role another name"
            ));
        }
        self.roles.contains_key(PLATFORM_ROLE).then(|| {
            format!(
                "role {PLATFORM_ROLE:?} is built in (the operator of a deployment hosting \
                 several organizations) and cannot be declared; give this role another name"
            )
        })
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
    /// version can be recognised as given for something else after an edit. A document
    /// category's `media_types` and `max_size` are not part of it: a file format or a size limit
    /// is not something a person consents to, and changing one must not make consents stale.
    /// `None` for an unknown purpose.
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
