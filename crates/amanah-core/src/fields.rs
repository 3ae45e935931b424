//! Field types and their normalizers. Every value is normalized before it is encrypted and
//! before it is hashed for the blind index, so `0812-4471-9035` and `+62 812 4471 9035` are one
//! value.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use unicode_normalization::UnicodeNormalization;

/// The type of a data category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Name,
    Email,
    Phone,
    Nik,
    Npwp,
    Date,
    Text,
    Number,
    Bool,
    /// A file (PDF, image), uploaded and stored as a document, never as a field value: the
    /// category carries [`crate::documents::DocumentRules`].
    Document,
}

impl FieldType {
    /// All types, in the order the policy documentation lists them.
    pub const ALL: [FieldType; 10] = [
        FieldType::Name,
        FieldType::Email,
        FieldType::Phone,
        FieldType::Nik,
        FieldType::Npwp,
        FieldType::Date,
        FieldType::Text,
        FieldType::Number,
        FieldType::Bool,
        FieldType::Document,
    ];

    /// The policy-file spelling (`"email"`, `"nik"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Name => "name",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Nik => "nik",
            FieldType::Npwp => "npwp",
            FieldType::Date => "date",
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Document => "document",
        }
    }

    /// Parses the policy-file spelling.
    pub fn parse(s: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a value was rejected. The message NEVER contains the value itself (it is personal data and
/// may end up in an HTTP error) — only the rule, e.g. "must be a valid email address".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rule}")]
pub struct FieldError {
    pub rule: String,
}

/// Every rule message this module can produce. They are all static, so none can echo the value.
mod rule {
    pub const STRING: &str = "must be a string";
    pub const NUMBER_TYPE: &str = "must be a number";
    pub const NUMBER_FORMAT: &str = "must be a decimal number";
    pub const NUMBER_RANGE: &str = "number is out of range (at most 64 digits)";
    pub const BOOL: &str = "must be true or false";
    pub const EMAIL: &str = "must be a valid email address";
    pub const EMAIL_LENGTH: &str = "email address must be at most 254 characters";
    pub const PHONE: &str = "must be a valid phone number";
    pub const NIK_LENGTH: &str = "NIK must be 16 digits";
    pub const NIK_PROVINCE: &str = "NIK province code is not valid";
    pub const NIK_REGENCY: &str = "NIK regency code is not valid";
    pub const NIK_DISTRICT: &str = "NIK district code is not valid";
    pub const NIK_BIRTH_DATE: &str = "NIK birth date is not a real date";
    pub const NIK_SERIAL: &str = "NIK serial number is not valid";
    pub const NPWP: &str = "NPWP must be 15 or 16 digits";
    pub const DATE_FORMAT: &str = "date must be in YYYY-MM-DD format";
    pub const DATE_YEAR: &str = "date year must be between 1000 and 9999";
    pub const DATE_REAL: &str = "date is not a real date";
    pub const NAME_EMPTY: &str = "name must not be empty";
    pub const NAME_LENGTH: &str = "name must be at most 200 characters";
    pub const NAME_CONTROL: &str = "name must not contain control characters";
    pub const TEXT_LENGTH: &str = "text must be at most 10000 characters";
    pub const TEXT_CONTROL: &str =
        "text must not contain control characters other than newline and tab";
    pub const DOCUMENT: &str = "a document is uploaded as a file \
        (PUT /v1/subjects/{id}/documents/{category}), not written as a value";

    #[cfg(test)]
    pub const ALL: &[&str] = &[
        STRING,
        NUMBER_TYPE,
        NUMBER_FORMAT,
        NUMBER_RANGE,
        BOOL,
        EMAIL,
        EMAIL_LENGTH,
        PHONE,
        NIK_LENGTH,
        NIK_PROVINCE,
        NIK_REGENCY,
        NIK_DISTRICT,
        NIK_BIRTH_DATE,
        NIK_SERIAL,
        NPWP,
        DATE_FORMAT,
        DATE_YEAR,
        DATE_REAL,
        NAME_EMPTY,
        NAME_LENGTH,
        NAME_CONTROL,
        TEXT_LENGTH,
        TEXT_CONTROL,
        DOCUMENT,
    ];
}

fn fail<T>(rule: &'static str) -> Result<T, FieldError> {
    Err(FieldError {
        rule: rule.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Validates and normalizes a value from a JSON request body into its canonical string form
/// (what gets encrypted and what gets hashed for the blind index).
///
/// String types (`name`, `email`, `phone`, `nik`, `npwp`, `date`, `text`) accept only JSON
/// strings; `number` accepts a JSON number or a numeric string; `bool` accepts a JSON bool or the
/// string `"true"`/`"false"`. See [`normalize_str`] for the canonical forms.
pub fn normalize(ty: FieldType, value: &serde_json::Value) -> Result<String, FieldError> {
    use serde_json::Value;
    match (ty, value) {
        (FieldType::Document, _) => fail(rule::DOCUMENT),
        // `Number`'s Display is the shortest round-tripping form (e.g. `1.5`, `1e300`), which
        // the decimal canonicalizer understands.
        (FieldType::Number, Value::Number(n)) => normalize_number(&n.to_string()),
        (FieldType::Number, Value::String(s)) => normalize_number(s),
        (FieldType::Number, _) => fail(rule::NUMBER_TYPE),
        (FieldType::Bool, Value::Bool(b)) => Ok(bool_str(*b).to_owned()),
        (FieldType::Bool, Value::String(s)) => normalize_bool(s),
        (FieldType::Bool, _) => fail(rule::BOOL),
        (_, Value::String(s)) => normalize_str(ty, s),
        (_, _) => fail(rule::STRING),
    }
}

/// Same as [`normalize`], for a value given as a string (query parameters, CSV import).
///
/// Canonical forms:
/// - `name`: NFC, trimmed, internal whitespace runs collapsed to one ASCII space.
/// - `email`: trimmed and lowercased (local part too), e.g. `budi@example.co.id`.
/// - `phone`: E.164, e.g. `+6281244719035`.
/// - `nik`: the 16 digits, e.g. `3174092512990007`.
/// - `npwp`: the 15 or 16 digits, no punctuation.
/// - `date`: `YYYY-MM-DD`.
/// - `text`: NFC, trimmed, `\r\n` turned into `\n`.
/// - `number`: plain decimal, no exponent, no `+`, no leading zeros, no trailing fractional
///   zeros, no `-0`: `0`, `-12`, `1.5`, `0.001`, `100000000000000000000`. At most 64 digits.
/// - `bool`: `true` or `false`.
///
/// A `document` category has no value form: it always fails (documents are uploaded as files).
pub fn normalize_str(ty: FieldType, value: &str) -> Result<String, FieldError> {
    match ty {
        FieldType::Name => normalize_name(value),
        FieldType::Email => normalize_email(value),
        FieldType::Phone => normalize_phone(value),
        FieldType::Nik => normalize_nik(value),
        FieldType::Npwp => normalize_npwp(value),
        FieldType::Date => normalize_date(value),
        FieldType::Text => normalize_text(value),
        FieldType::Number => normalize_number(value),
        FieldType::Bool => normalize_bool(value),
        FieldType::Document => fail(rule::DOCUMENT),
    }
}

/// Turns a canonical value back into JSON for responses: number -> JSON number, bool -> JSON bool,
/// everything else -> JSON string (a `document` category has no stored values; were one
/// passed, it would come back as a string too).
///
/// A number too large or too precise to survive a trip through an IEEE double (e.g. a 30-digit
/// integer) is returned as a JSON string instead, so no digit is ever silently lost;
/// [`normalize`] accepts numeric strings, so the round trip still holds.
pub fn to_json(ty: FieldType, canonical: &str) -> serde_json::Value {
    use serde_json::Value;
    match ty {
        FieldType::Number => number_to_json(canonical),
        FieldType::Bool => match canonical {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_owned()),
        },
        _ => Value::String(canonical.to_owned()),
    }
}

/// A masked rendering of a canonical value for roles that see a category masked. Always contains
/// at least one '*', never equals the value.
///
/// - `nik`: first 4 and last 4 digits: `3174********0007`.
/// - `email`: first character of the local part, `***@`, domain: `b***@example.com`.
/// - `phone`: `+` country code, one `*` per hidden digit, last 4 digits: `+62*******9035`.
/// - `npwp`: first 2 and last 3 digits: `01**********000`.
/// - `name`: first character of each word + `***`: `B*** S***`.
/// - `date`: only the year: `1999-**-**`.
/// - `bool`, `number`, `text`, `document` (which has no stored values, see [`normalize`]), and
///   anything that is not canonical: `***`.
pub fn mask(ty: FieldType, canonical: &str) -> String {
    let masked = match ty {
        FieldType::Nik => mask_keep(canonical, 16..=16, 4, 4),
        FieldType::Npwp => mask_keep(canonical, 15..=16, 2, 3),
        FieldType::Email => mask_email(canonical),
        FieldType::Phone => mask_phone(canonical),
        FieldType::Name => mask_name(canonical),
        FieldType::Date => mask_date(canonical),
        FieldType::Text | FieldType::Number | FieldType::Bool | FieldType::Document => None,
    };
    match masked {
        Some(m) if m.contains('*') && m != canonical => m,
        _ if canonical == "***" => "****".to_owned(),
        _ => "***".to_owned(),
    }
}

/// Birth date embedded in a (canonical, valid) NIK, with the sex: returns (day, month, two-digit
/// year, is_female). Women's NIKs carry day + 40; the returned day is the real day (1..=31).
/// `None` if `canonical` is not a valid canonical NIK.
pub fn nik_birth_parts(canonical: &str) -> Option<(u8, u8, u8, bool)> {
    let digits: [u8; 16] = canonical.as_bytes().try_into().ok()?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let parts = check_nik(&digits).ok()?;
    Some((parts.day, parts.month, parts.year, parts.female))
}

// ---------------------------------------------------------------------------------------------
// name / text
// ---------------------------------------------------------------------------------------------

const MAX_NAME_CHARS: usize = 200;
const MAX_TEXT_CHARS: usize = 10_000;

fn normalize_name(input: &str) -> Result<String, FieldError> {
    let nfc: String = input.nfc().collect();
    let mut out = String::with_capacity(nfc.len());
    for word in nfc.split_whitespace() {
        if word.chars().any(char::is_control) {
            return fail(rule::NAME_CONTROL);
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    // Joining NFC words with ASCII spaces keeps NFC in practice; make sure anyway.
    if !unicode_normalization::is_nfc(&out) {
        out = out.nfc().collect();
    }
    if out.is_empty() {
        return fail(rule::NAME_EMPTY);
    }
    if out.chars().count() > MAX_NAME_CHARS {
        return fail(rule::NAME_LENGTH);
    }
    Ok(out)
}

fn normalize_text(input: &str) -> Result<String, FieldError> {
    let nfc: String = input.replace("\r\n", "\n").nfc().collect();
    let trimmed = nfc.trim();
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return fail(rule::TEXT_CONTROL);
    }
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return fail(rule::TEXT_LENGTH);
    }
    Ok(trimmed.to_owned())
}

// ---------------------------------------------------------------------------------------------
// email
// ---------------------------------------------------------------------------------------------

const MAX_EMAIL_CHARS: usize = 254;

fn normalize_email(input: &str) -> Result<String, FieldError> {
    let trimmed = input.trim();
    // Cheap bound before allocating: a char is at most 4 bytes.
    if trimmed.len() > MAX_EMAIL_CHARS * 4 {
        return fail(rule::EMAIL_LENGTH);
    }
    let lower = trimmed.to_lowercase();
    if lower.chars().count() > MAX_EMAIL_CHARS {
        return fail(rule::EMAIL_LENGTH);
    }
    let options = email_address::Options::default()
        .without_display_text()
        .without_domain_literal()
        .with_required_tld();
    match email_address::EmailAddress::parse_with_options(&lower, options) {
        Ok(_) => Ok(lower),
        Err(_) => fail(rule::EMAIL),
    }
}

fn mask_email(canonical: &str) -> Option<String> {
    let (local, domain) = canonical.rsplit_once('@')?;
    let first = local.chars().next()?;
    Some(format!("{first}***@{domain}"))
}

// ---------------------------------------------------------------------------------------------
// phone
// ---------------------------------------------------------------------------------------------

/// E.164 allows 15 digits; leave room for a national trunk prefix and an IDD prefix.
const MAX_PHONE_DIGITS: usize = 18;

fn normalize_phone(input: &str) -> Result<String, FieldError> {
    let trimmed = input.trim();
    let (plus, body) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    // Only digits and common separators reach the phonenumber parser, as a clean digit string:
    // its free-text parser has a history of panicking on odd input, and letters (vanity numbers,
    // "ext.") have no place in a canonical value.
    let mut digits = String::with_capacity(MAX_PHONE_DIGITS);
    for c in body.chars() {
        match c {
            '0'..='9' => {
                if digits.len() == MAX_PHONE_DIGITS {
                    return fail(rule::PHONE);
                }
                digits.push(c);
            }
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return fail(rule::PHONE),
        }
    }
    if digits.is_empty() {
        return fail(rule::PHONE);
    }
    let (region, text) = if plus || digits.starts_with("62") {
        // `6281244719035`: digits starting with Indonesia's country code are international.
        (None, format!("+{digits}"))
    } else {
        (Some(phonenumber::country::Id::ID), digits)
    };
    match parse_phone(region, &text) {
        Some((_, e164)) => Ok(e164),
        None => fail(rule::PHONE),
    }
}

/// Parses, validates and formats as E.164; returns (country calling code, E.164). Never panics:
/// the phonenumber crate is third-party parsing code, so a panic inside it is caught and treated
/// as "not a valid number".
fn parse_phone(region: Option<phonenumber::country::Id>, text: &str) -> Option<(u16, String)> {
    std::panic::catch_unwind(|| {
        let number = phonenumber::parse(region, text).ok()?;
        if !phonenumber::is_valid(&number) || !strictly_valid(&number) {
            return None;
        }
        // Not `to_string()`: the formatter returns `fmt::Error` for unknown country codes, and
        // `to_string()` would panic on that.
        let mut e164 = String::new();
        write!(e164, "{}", number.format().mode(phonenumber::Mode::E164)).ok()?;
        // E.164: a '+' and at most 15 digits.
        let well_formed = (2..=16).contains(&e164.len())
            && e164.starts_with('+')
            && e164.bytes().skip(1).all(|b| b.is_ascii_digit());
        well_formed.then(|| (number.code().value(), e164))
    })
    .ok()
    .flatten()
}

/// libphonenumber's validity rule: the national number must *fully* match the region's general
/// pattern and one specific type's pattern (with a possible length for that type). The
/// phonenumber crate only checks that a pattern matches at the start of the number, so on its
/// own it accepts e.g. a 17-digit Indonesian "177..." number (and formats it as a 19-digit
/// "E.164" string).
fn strictly_valid(number: &phonenumber::PhoneNumber) -> bool {
    let national = number.national().to_string();
    let Some(regions) = phonenumber::metadata::DATABASE.by_code(&number.code().value()) else {
        return false;
    };
    regions.into_iter().any(|meta| {
        let d = meta.descriptors();
        matches_fully(d.general(), &national)
            && [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .any(|desc| matches_fully(desc, &national))
    })
}

fn matches_fully(desc: &phonenumber::metadata::Descriptor, national: &str) -> bool {
    let lengths = desc.possible_length();
    let length_ok =
        lengths.is_empty() || u16::try_from(national.len()).is_ok_and(|len| lengths.contains(&len));
    length_ok && anchored(desc.national_number().as_str()).is_some_and(|re| re.is_match(national))
}

/// The metadata pattern anchored at both ends (compiled like the crate does, ignoring
/// whitespace), cached: the set of patterns is fixed, so the cache is bounded.
///
/// The cache hands out `Arc`s: cloning a `Regex` would give each clone a fresh, empty match
/// cache, rebuilt (lazy DFA states) on every phone number.
fn anchored(pattern: &str) -> Option<Arc<regex::Regex>> {
    type Cache = Mutex<HashMap<String, Option<Arc<regex::Regex>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Cache::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(re) = cache.get(pattern) {
        return re.clone();
    }
    let re = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .ignore_whitespace(true)
        .build()
        .ok()
        .map(Arc::new);
    cache.insert(pattern.to_owned(), re.clone());
    re
}

fn mask_phone(canonical: &str) -> Option<String> {
    let (code, e164) = parse_phone(None, canonical)?;
    if e164 != canonical {
        return None;
    }
    let national = canonical.strip_prefix(&format!("+{code}"))?;
    let len = national.len();
    // Keep the last 4 digits, but never more than half of the subscriber number.
    let keep = 4.min(len / 2);
    let shown = national.get(len - keep..)?;
    Some(format!("+{code}{}{shown}", "*".repeat(len - keep)))
}

// ---------------------------------------------------------------------------------------------
// NIK
// ---------------------------------------------------------------------------------------------

/// Removes spaces, dots and dashes; caps the length so absurd input costs nothing.
fn strip_separators(input: &str, max_len: usize) -> Option<String> {
    let mut out = String::new();
    for c in input.chars() {
        if c.is_whitespace() || c == '.' || c == '-' {
            continue;
        }
        if out.len() >= max_len {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

fn normalize_nik(input: &str) -> Result<String, FieldError> {
    let Some(stripped) = strip_separators(input, 16) else {
        return fail(rule::NIK_LENGTH);
    };
    let Ok(digits) = <[u8; 16]>::try_from(stripped.as_bytes()) else {
        return fail(rule::NIK_LENGTH);
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return fail(rule::NIK_LENGTH);
    }
    check_nik(&digits).map_err(|r| FieldError { rule: r.to_owned() })?;
    Ok(stripped)
}

struct NikBirth {
    day: u8,
    month: u8,
    year: u8,
    female: bool,
}

/// Province codes (first two digits), including the Papua provinces created in 2022.
fn is_province(code: u8) -> bool {
    matches!(
        code,
        11..=19 | 21 | 31..=36 | 51..=53 | 61..=65 | 71..=76 | 81 | 82 | 91..=96
    )
}

/// Checks a 16-ASCII-digit NIK; returns its birth parts or the broken rule.
fn check_nik(d: &[u8; 16]) -> Result<NikBirth, &'static str> {
    let two = |i: usize| -> u8 {
        let tens = d.get(i).map_or(0, |b| b.wrapping_sub(b'0'));
        let ones = d.get(i + 1).map_or(0, |b| b.wrapping_sub(b'0'));
        tens.wrapping_mul(10).wrapping_add(ones)
    };
    if !is_province(two(0)) {
        return Err(rule::NIK_PROVINCE);
    }
    if two(2) == 0 {
        return Err(rule::NIK_REGENCY);
    }
    if two(4) == 0 {
        return Err(rule::NIK_DISTRICT);
    }
    let (raw_day, month, year) = (two(6), two(8), two(10));
    let female = raw_day > 40;
    let day = if female { raw_day - 40 } else { raw_day };
    let real_in = |century: i32| {
        time::Month::try_from(month).is_ok_and(|m| {
            time::Date::from_calendar_date(century + i32::from(year), m, day).is_ok()
        })
    };
    // The century is not encoded; Feb 29 is fine if either 19YY or 20YY is a leap year.
    if !(real_in(1900) || real_in(2000)) {
        return Err(rule::NIK_BIRTH_DATE);
    }
    if d[12..].iter().all(|&b| b == b'0') {
        return Err(rule::NIK_SERIAL);
    }
    Ok(NikBirth {
        day,
        month,
        year,
        female,
    })
}

// ---------------------------------------------------------------------------------------------
// NPWP
// ---------------------------------------------------------------------------------------------

fn normalize_npwp(input: &str) -> Result<String, FieldError> {
    match strip_separators(input, 16) {
        Some(digits)
            if (digits.len() == 15 || digits.len() == 16)
                && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok(digits)
        }
        _ => fail(rule::NPWP),
    }
}

/// Keeps the first `head` and last `tail` characters of an all-ASCII-digit value whose length is
/// in `lengths`, replacing the rest with '*'.
fn mask_keep(
    canonical: &str,
    lengths: std::ops::RangeInclusive<usize>,
    head: usize,
    tail: usize,
) -> Option<String> {
    let len = canonical.len();
    if !lengths.contains(&len)
        || len <= head + tail
        || !canonical.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(format!(
        "{}{}{}",
        canonical.get(..head)?,
        "*".repeat(len - head - tail),
        canonical.get(len - tail..)?
    ))
}

// ---------------------------------------------------------------------------------------------
// date
// ---------------------------------------------------------------------------------------------

fn normalize_date(input: &str) -> Result<String, FieldError> {
    let s = input.trim();
    let Ok(b) = <[u8; 10]>::try_from(s.as_bytes()) else {
        return fail(rule::DATE_FORMAT);
    };
    let digit_at = |i: usize| b[i].is_ascii_digit();
    let shape_ok = b[4] == b'-' && b[7] == b'-' && (0..4).chain(5..7).chain(8..10).all(digit_at);
    if !shape_ok {
        return fail(rule::DATE_FORMAT);
    }
    let num = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'))
    };
    let year = num(0..4);
    if year < 1000 {
        return fail(rule::DATE_YEAR);
    }
    let month = u8::try_from(num(5..7)).ok();
    let day = u8::try_from(num(8..10)).ok();
    let real = match (month.and_then(|m| time::Month::try_from(m).ok()), day) {
        (Some(m), Some(d)) => time::Date::from_calendar_date(i32::from(year), m, d).is_ok(),
        _ => false,
    };
    if !real {
        return fail(rule::DATE_REAL);
    }
    Ok(s.to_owned())
}

fn mask_date(canonical: &str) -> Option<String> {
    let year = canonical.get(..4)?;
    (canonical.len() == 10 && year.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{year}-**-**"))
}

// ---------------------------------------------------------------------------------------------
// name mask
// ---------------------------------------------------------------------------------------------

fn mask_name(canonical: &str) -> Option<String> {
    let words: Vec<String> = canonical
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| format!("{c}***"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

// ---------------------------------------------------------------------------------------------
// number / bool
// ---------------------------------------------------------------------------------------------

/// Longest accepted numeric input, and most digits in a canonical number.
const MAX_NUMBER_INPUT: usize = 1024;
const MAX_NUMBER_DIGITS: usize = 64;

/// Canonicalizes a decimal number exactly (no floating point involved): accepts an optional sign,
/// digits with an optional `.` fraction (`5.`, `.5` allowed), and an optional `e`/`E` exponent.
fn normalize_number(input: &str) -> Result<String, FieldError> {
    let s = input.trim();
    if s.len() > MAX_NUMBER_INPUT {
        return fail(rule::NUMBER_RANGE);
    }
    let (negative, unsigned) = if let Some(rest) = s.strip_prefix('-') {
        (true, rest)
    } else {
        (false, s.strip_prefix('+').unwrap_or(s))
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part) {
        return fail(rule::NUMBER_FORMAT);
    }
    // Exponent: Some(value) when small enough to matter, None when it has more than 6 digits.
    let exponent: Option<i64> = match exponent {
        None => Some(0),
        Some(e) => {
            let (neg_exp, e_digits) = if let Some(rest) = e.strip_prefix('-') {
                (true, rest)
            } else {
                (false, e.strip_prefix('+').unwrap_or(e))
            };
            if e_digits.is_empty() || !all_digits(e_digits) {
                return fail(rule::NUMBER_FORMAT);
            }
            let significant = e_digits.trim_start_matches('0');
            if significant.len() > 6 {
                None
            } else {
                let v = significant
                    .bytes()
                    .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'));
                Some(if neg_exp { -v } else { v })
            }
        }
    };

    let digits: Vec<u8> = int_part.bytes().chain(frac_part.bytes()).collect();
    let leading_zeros = digits.iter().take_while(|&&b| b == b'0').count();
    let significant = digits.get(leading_zeros..).unwrap_or_default();
    let trailing_zeros = significant.iter().rev().take_while(|&&b| b == b'0').count();
    let significant = significant
        .get(..significant.len() - trailing_zeros)
        .unwrap_or_default();
    if significant.is_empty() {
        return Ok("0".to_owned());
    }
    let Some(exponent) = exponent else {
        return fail(rule::NUMBER_RANGE);
    };
    // value = 0.<significant> * 10^point
    let point = int_part.len() as i64 + exponent - leading_zeros as i64;
    let n = significant.len() as i64;
    let total_digits = if point >= n {
        point
    } else if point > 0 {
        n
    } else {
        1 - point + n
    };
    if total_digits > MAX_NUMBER_DIGITS as i64 {
        return fail(rule::NUMBER_RANGE);
    }
    let sig = String::from_utf8_lossy(significant);
    let mut out = String::with_capacity(total_digits as usize + 2);
    if negative {
        out.push('-');
    }
    if point >= n {
        out.push_str(&sig);
        out.extend(std::iter::repeat_n('0', (point - n) as usize));
    } else if point > 0 {
        let (whole, frac) = sig.split_at(point as usize);
        out.push_str(whole);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.push_str(&sig);
    }
    Ok(out)
}

fn number_to_json(canonical: &str) -> serde_json::Value {
    use serde_json::Value;
    if let Ok(i) = canonical.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(u) = canonical.parse::<u64>() {
        return Value::from(u);
    }
    let lossless_float = canonical
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .filter(|n| normalize_number(&n.to_string()).is_ok_and(|c| c == canonical));
    match lossless_float {
        Some(n) => Value::Number(n),
        None => Value::String(canonical.to_owned()),
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn normalize_bool(input: &str) -> Result<String, FieldError> {
    let s = input.trim();
    if s.eq_ignore_ascii_case("true") {
        Ok(bool_str(true).to_owned())
    } else if s.eq_ignore_ascii_case("false") {
        Ok(bool_str(false).to_owned())
    } else {
        fail(rule::BOOL)
    }
}

#[cfg(test)]
mod tests;
