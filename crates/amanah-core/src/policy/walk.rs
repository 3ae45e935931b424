//! Walking the spanned TOML document (`toml::de::DeTable`, whose keys and values are
//! `toml::Spanned`), collecting every problem with its position.

use super::*;
use toml::de::DeValue;
use toml::Spanned;

type Span = Range<usize>;

pub(super) const TOP_KEYS: &[&str] = &[
    "version",
    "controller",
    "settings",
    "categories",
    "purposes",
    "roles",
    "recipients",
];
pub(super) const CONTROLLER_KEYS: &[&str] = &["name", "contact"];
pub(super) const SETTINGS_KEYS: &[&str] = &[
    "request_deadline_hours",
    "minimum_age",
    "adult_age",
    "withdrawal_grace_days",
    "birth_date_category",
    "time_zone",
];
pub(super) const CATEGORY_KEYS: &[&str] = &[
    "type",
    "class",
    "index",
    "unique",
    "sign_in",
    "media_types",
    "max_size",
];
pub(super) const PURPOSE_KEYS: &[&str] = &[
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
pub(super) const ROLE_KEYS: &[&str] = &[
    "purposes",
    "specific",
    "mask",
    "approve_disclosures",
    "authorize_disclosures",
    "handle_requests",
    "end_relationships",
];
pub(super) const RECIPIENT_KEYS: &[&str] = &[
    "country",
    "purposes",
    "kind",
    "categories",
    "transfer_basis",
    "pseudonymize",
];

/// Most days of processing allowed after consent is withdrawn (UU PDP: 3 x 24 hours).
pub(super) const MAX_WITHDRAWAL_GRACE_DAYS: u32 = 3;
const MAX_NAME_LEN: usize = 64;

/// Collected errors.
pub(super) struct Diag<'s> {
    pub(super) source: &'s str,
    pub(super) errors: Vec<PolicyError>,
}

impl Diag<'_> {
    pub(super) fn error(&mut self, span: &Span, message: impl Into<String>) {
        let (line, column) = line_column(self.source, span.start);
        self.errors.push(PolicyError {
            line,
            column,
            message: message.into(),
        });
    }

    pub(super) fn finish(mut self) -> PolicyErrors {
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
pub(super) fn line_column(source: &str, offset: usize) -> (usize, usize) {
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

pub(super) fn syntax_message(source: &str, message: &str, span: &Span) -> String {
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
pub(super) fn is_valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= MAX_NAME_LEN
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// ` (did you mean "email"?)` when some candidate is close to `word`, else empty.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
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
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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
pub(super) struct Table<'a, 'i> {
    pub(super) label: String,
    pub(super) span: Span,
    pub(super) entries: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries.get(key)
    }

    /// Reports every key not in `allowed`.
    pub(super) fn check_keys(&self, allowed: &[&str], d: &mut Diag<'_>) {
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
    pub(super) fn require(&self, key: &str, hint: &str, d: &mut Diag<'_>) -> bool {
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
    pub(super) fn string(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<String>> {
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
    pub(super) fn required_text(&self, key: &str, what: &str, d: &mut Diag<'_>) -> Option<String> {
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

    pub(super) fn boolean(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<bool>> {
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
    pub(super) fn flag(&self, key: &str, d: &mut Diag<'_>) -> bool {
        self.boolean(key, d).is_some_and(|b| *b.get_ref())
    }

    pub(super) fn number(&self, key: &str, d: &mut Diag<'_>) -> Option<Spanned<u32>> {
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
    pub(super) fn strings(
        &self,
        key: &str,
        d: &mut Diag<'_>,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
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
    pub(super) fn spelled<T: Spelled>(&self, key: &str, what: &str, d: &mut Diag<'_>) -> Option<T> {
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

    pub(super) fn required_spelled<T: Spelled>(
        &self,
        key: &str,
        what: &str,
        d: &mut Diag<'_>,
    ) -> Option<T> {
        if !self.require(key, &format!(" ({what}: one of {})", T::expected()), d) {
            return None;
        }
        self.spelled(key, what, d)
    }

    /// A sub-table, labelled `label` in messages.
    pub(super) fn table(&self, key: &str, label: &str, d: &mut Diag<'_>) -> Option<Table<'a, 'i>> {
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
pub(super) struct Entry<'a, 'i> {
    pub(super) name: String,
    pub(super) name_span: Span,
    /// `None` when the entry is not a table (reported).
    pub(super) table: Option<Table<'a, 'i>>,
}

/// What a section is called in messages.
pub(super) struct SectionKind {
    /// `categories`
    pub(super) key: &'static str,
    /// `category`
    singular: &'static str,
    /// Shown when the section is missing or empty.
    example: &'static str,
}

pub(super) const CATEGORIES: SectionKind = SectionKind {
    key: "categories",
    singular: "category",
    example: "[categories.email] with type = \"email\" and class = \"general\"",
};
pub(super) const PURPOSES: SectionKind = SectionKind {
    key: "purposes",
    singular: "purpose",
    example: "[purposes.service] with basis, categories and retention",
};
pub(super) const ROLES: SectionKind = SectionKind {
    key: "roles",
    singular: "role",
    example: "[roles.support] with purposes = [...]",
};
pub(super) const RECIPIENTS: SectionKind = SectionKind {
    key: "recipients",
    singular: "recipient",
    example: "[recipients.payment_gateway] with country and purposes",
};

/// The entries of section `kind`, with invalid names and non-table entries reported.
pub(super) fn section<'a, 'i>(
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
pub(super) fn check_references(
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

pub(super) fn names(entries: &[Entry<'_, '_>]) -> BTreeSet<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

pub(super) fn plain(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|s| s.get_ref().clone()).collect()
}

/// The built purposes named in `list`, or `None` if one of them is unknown or invalid (so
/// checks that depend on them are skipped instead of reporting follow-on errors).
pub(super) fn resolve<'p>(
    list: &[Spanned<String>],
    purposes: &'p BTreeMap<String, Purpose>,
) -> Option<Vec<&'p Purpose>> {
    list.iter().map(|p| purposes.get(p.get_ref())).collect()
}
