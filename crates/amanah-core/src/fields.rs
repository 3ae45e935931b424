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
}

impl FieldType {
    /// All types, in the order the policy documentation lists them.
    pub const ALL: [FieldType; 9] = [
        FieldType::Name,
        FieldType::Email,
        FieldType::Phone,
        FieldType::Nik,
        FieldType::Npwp,
        FieldType::Date,
        FieldType::Text,
        FieldType::Number,
        FieldType::Bool,
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
    }
}

/// Turns a canonical value back into JSON for responses: number -> JSON number, bool -> JSON bool,
/// everything else -> JSON string.
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
/// - `bool`, `number`, `text` (and anything that is not canonical): `***`.
pub fn mask(ty: FieldType, canonical: &str) -> String {
    let masked = match ty {
        FieldType::Nik => mask_keep(canonical, 16..=16, 4, 4),
        FieldType::Npwp => mask_keep(canonical, 15..=16, 2, 3),
        FieldType::Email => mask_email(canonical),
        FieldType::Phone => mask_phone(canonical),
        FieldType::Name => mask_name(canonical),
        FieldType::Date => mask_date(canonical),
        FieldType::Text | FieldType::Number | FieldType::Bool => None,
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rule_of(r: Result<String, FieldError>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got a value of {} chars", v.len()),
            Err(e) => e.rule,
        }
    }

    fn ok(ty: FieldType, s: &str) -> String {
        match normalize_str(ty, s) {
            Ok(v) => v,
            Err(e) => panic!("{} {s:?} rejected: {e}", ty.as_str()),
        }
    }

    fn bad(ty: FieldType, s: &str) -> String {
        let r = rule_of(normalize_str(ty, s));
        assert!(rule::ALL.contains(&r.as_str()), "unknown rule {r}");
        let t = s.trim();
        if t.len() >= 4 {
            assert!(!r.contains(t), "rule {r:?} leaks the value {s:?}");
        }
        r
    }

    // ---- FieldType --------------------------------------------------------------------------

    #[test]
    fn field_type_round_trips() {
        for ty in FieldType::ALL {
            assert_eq!(FieldType::parse(ty.as_str()), Some(ty));
        }
        assert_eq!(FieldType::parse("Email"), None);
    }

    // ---- JSON type checks -------------------------------------------------------------------

    #[test]
    fn string_types_accept_only_json_strings() {
        let string_types = [
            FieldType::Name,
            FieldType::Email,
            FieldType::Phone,
            FieldType::Nik,
            FieldType::Npwp,
            FieldType::Date,
            FieldType::Text,
        ];
        for ty in string_types {
            for v in [
                json!(3174092512990007u64),
                json!(true),
                json!(null),
                json!(["a"]),
                json!({"a": 1}),
            ] {
                assert_eq!(rule_of(normalize(ty, &v)), rule::STRING, "{}", ty.as_str());
            }
        }
        assert_eq!(
            normalize(FieldType::Email, &json!(" Budi@Example.COM ")),
            Ok("budi@example.com".to_owned())
        );
    }

    #[test]
    fn number_and_bool_json_types() {
        assert_eq!(normalize(FieldType::Number, &json!(42)), Ok("42".into()));
        assert_eq!(normalize(FieldType::Number, &json!(-7)), Ok("-7".into()));
        assert_eq!(normalize(FieldType::Number, &json!(1.5)), Ok("1.5".into()));
        assert_eq!(normalize(FieldType::Number, &json!(2.0)), Ok("2".into()));
        assert_eq!(normalize(FieldType::Number, &json!(-0.0)), Ok("0".into()));
        assert_eq!(
            normalize(FieldType::Number, &json!(1e20)),
            Ok("100000000000000000000".into())
        );
        assert_eq!(
            normalize(FieldType::Number, &json!(1e-7)),
            Ok("0.0000001".into())
        );
        assert_eq!(
            normalize(FieldType::Number, &json!(u64::MAX)),
            Ok(u64::MAX.to_string())
        );
        assert_eq!(
            normalize(FieldType::Number, &json!(" 007 ")),
            Ok("7".into())
        );
        assert_eq!(
            rule_of(normalize(FieldType::Number, &json!(1e300))),
            rule::NUMBER_RANGE
        );
        for v in [json!(true), json!(null), json!([1]), json!({})] {
            assert_eq!(rule_of(normalize(FieldType::Number, &v)), rule::NUMBER_TYPE);
        }
        assert_eq!(normalize(FieldType::Bool, &json!(true)), Ok("true".into()));
        assert_eq!(
            normalize(FieldType::Bool, &json!(false)),
            Ok("false".into())
        );
        assert_eq!(
            normalize(FieldType::Bool, &json!("true")),
            Ok("true".into())
        );
        assert_eq!(
            normalize(FieldType::Bool, &json!(" FALSE ")),
            Ok("false".into())
        );
        for v in [json!(1), json!("yes"), json!("1"), json!(null), json!("")] {
            assert_eq!(rule_of(normalize(FieldType::Bool, &v)), rule::BOOL);
        }
    }

    // ---- number -----------------------------------------------------------------------------

    #[test]
    fn number_canonical_forms() {
        let n = FieldType::Number;
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("+0.000", "0"),
            ("00012", "12"),
            ("+12", "12"),
            ("-12", "-12"),
            ("1.50", "1.5"),
            ("1.", "1"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("0.001", "0.001"),
            ("1e3", "1000"),
            ("1.5E+2", "150"),
            ("15e-1", "1.5"),
            ("1e-3", "0.001"),
            ("0e99999999999", "0"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("  3.14  ", "3.14"),
        ] {
            assert_eq!(ok(n, input), want, "{input}");
        }
        for input in [
            "", " ", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,000", "--1", "0x10", "1_000",
        ] {
            assert_eq!(bad(n, input), rule::NUMBER_FORMAT, "{input:?}");
        }
        for input in ["NaN", "nan", "inf", "-inf", "Infinity", "-Infinity"] {
            assert_eq!(bad(n, input), rule::NUMBER_FORMAT, "{input:?}");
        }
        for input in ["1e64", "1e9999999", "1e-64", "1e-99999999999"] {
            assert_eq!(bad(n, input), rule::NUMBER_RANGE, "{input:?}");
        }
        assert_eq!(ok(n, &"9".repeat(64)), "9".repeat(64));
        assert_eq!(bad(n, &"9".repeat(65)), rule::NUMBER_RANGE);
        assert_eq!(bad(n, &"1".repeat(2000)), rule::NUMBER_RANGE);
    }

    #[test]
    fn number_to_json_is_lossless() {
        let n = FieldType::Number;
        assert_eq!(to_json(n, "42"), json!(42));
        assert_eq!(to_json(n, "-42"), json!(-42));
        assert_eq!(to_json(n, "1.5"), json!(1.5));
        assert_eq!(to_json(n, &u64::MAX.to_string()), json!(u64::MAX));
        // Too precise for an f64: stays a string rather than losing digits.
        let big = "123456789012345678901234567890";
        assert_eq!(to_json(n, big), json!(big));
        assert_eq!(normalize(n, &to_json(n, big)), Ok(big.to_owned()));
        let precise = "0.12345678901234567890123";
        assert_eq!(to_json(n, precise), json!(precise));
    }

    // ---- bool -------------------------------------------------------------------------------

    #[test]
    fn bool_rules() {
        assert_eq!(ok(FieldType::Bool, "true"), "true");
        assert_eq!(ok(FieldType::Bool, "True"), "true");
        assert_eq!(ok(FieldType::Bool, "false"), "false");
        assert_eq!(to_json(FieldType::Bool, "true"), json!(true));
        assert_eq!(to_json(FieldType::Bool, "false"), json!(false));
        for input in ["", "t", "yes", "1", "0", "truee"] {
            assert_eq!(bad(FieldType::Bool, input), rule::BOOL);
        }
    }

    // ---- email ------------------------------------------------------------------------------

    #[test]
    fn email_rules() {
        let e = FieldType::Email;
        assert_eq!(
            ok(e, "  Budi.Santoso@Example.CO.ID "),
            "budi.santoso@example.co.id"
        );
        assert_eq!(
            ok(e, "siti+vault@mail.example.com"),
            "siti+vault@mail.example.com"
        );
        for input in [
            "",
            "budi",
            "budi@",
            "@example.com",
            "budi@@example.com",
            "budi@localhost",
            "Budi <budi@example.com>",
            "<budi@example.com>",
            "budi@[127.0.0.1]",
            "budi @example.com",
            "budi@exa mple.com",
        ] {
            assert_eq!(bad(e, input), rule::EMAIL, "{input:?}");
        }
        // 254 characters is the limit.
        let local = "a".repeat(64);
        let label = "b".repeat(60);
        let domain = format!("{label}.{label}.{label}.{}.com", "c".repeat(2));
        let addr = format!("{local}@{domain}");
        assert!(addr.len() <= 254);
        assert_eq!(ok(e, &addr), addr);
        let too_long = format!("{local}@{label}.{label}.{label}.ccc.com");
        assert!(too_long.len() > 254);
        assert_eq!(bad(e, &too_long), rule::EMAIL_LENGTH);
        assert_eq!(bad(e, &"x".repeat(5000)), rule::EMAIL_LENGTH);
    }

    #[test]
    fn email_mask() {
        assert_eq!(
            mask(FieldType::Email, "budi@example.com"),
            "b***@example.com"
        );
        assert_eq!(mask(FieldType::Email, "not-an-email"), "***");
    }

    // ---- phone ------------------------------------------------------------------------------

    #[test]
    fn phone_indonesian_forms_agree() {
        let p = FieldType::Phone;
        for input in [
            "0812-4471-9035",
            "+62 812 4471 9035",
            "6281244719035",
            "081244719035",
            "+6281244719035",
            "(0812) 4471.9035",
            " 0812 4471 9035 ",
            "+62 (0)812 4471 9035",
        ] {
            assert_eq!(ok(p, input), "+6281244719035", "{input:?}");
        }
        // Jakarta landline.
        assert_eq!(ok(p, "(021) 2345-6789"), "+622123456789");
    }

    #[test]
    fn phone_foreign_numbers_with_plus() {
        let p = FieldType::Phone;
        assert_eq!(ok(p, "+1 650-253-0000"), "+16502530000");
        assert_eq!(ok(p, "+44 20 7946 0958"), "+442079460958");
        assert_eq!(ok(p, "+65 6123 4567"), "+6561234567");
    }

    #[test]
    fn phone_rejections() {
        let p = FieldType::Phone;
        for input in [
            "",
            "+",
            "abc",
            "0812-4471-9035 ext. 12",
            "0812",
            "12",
            "+999 1234 5678",
            "0812447190351234567890",
            "tel:+6281244719035",
            "+62 812 4471 9035#",
            "  2 22#:",
            "+0 812",
            "++6281244719035",
            // The phonenumber crate alone calls these valid (prefix-only pattern match).
            "17700000000000000",
            "+62 177 0000 0000 0000 00",
        ] {
            assert_eq!(bad(p, input), rule::PHONE, "{input:?}");
        }
    }

    #[test]
    fn phone_mask() {
        assert_eq!(mask(FieldType::Phone, "+6281244719035"), "+62*******9035");
        assert_eq!(mask(FieldType::Phone, "+16502530000"), "+1******0000");
        assert_eq!(mask(FieldType::Phone, "garbage"), "***");
    }

    // ---- NIK --------------------------------------------------------------------------------

    // Province 31 (DKI Jakarta), regency 74, district 09, 25 Dec 1999, serial 0007.
    const NIK_MALE: &str = "3174092512990007";
    // Same, female: day 25 + 40 = 65.
    const NIK_FEMALE: &str = "3174096512990007";

    #[test]
    fn nik_valid_examples() {
        let k = FieldType::Nik;
        assert_eq!(ok(k, NIK_MALE), NIK_MALE);
        assert_eq!(ok(k, NIK_FEMALE), NIK_FEMALE);
        assert_eq!(ok(k, "3174 0925 1299 0007"), NIK_MALE);
        assert_eq!(ok(k, "31.74.09.251299.0007"), NIK_MALE);
        assert_eq!(ok(k, "3174-09-251299-0007"), NIK_MALE);
        assert_eq!(nik_birth_parts(NIK_MALE), Some((25, 12, 99, false)));
        assert_eq!(nik_birth_parts(NIK_FEMALE), Some((25, 12, 99, true)));
        // Every province, including the new Papua ones.
        for prov in [
            11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 36, 51, 53, 61, 65, 71, 76, 81, 82, 91, 92,
            93, 94, 95, 96,
        ] {
            let nik = format!("{prov}74092512990007");
            assert_eq!(ok(k, &nik), nik);
        }
        // Leap days: 2000 and 2004/1904 are leap years.
        assert_eq!(ok(k, "3174092902000007"), "3174092902000007");
        assert_eq!(ok(k, "3174096902040007"), "3174096902040007");
        assert_eq!(nik_birth_parts("3174096902040007"), Some((29, 2, 4, true)));
        // Female day 31 = 71.
        assert_eq!(ok(k, "3174097101850001"), "3174097101850001");
    }

    #[test]
    fn nik_rejections() {
        let k = FieldType::Nik;
        for input in [
            "",
            "317409251299000",
            "31740925129900071",
            "317409251299000a",
            "317409251299000٧",
            "3174092512990007\u{0}",
        ] {
            assert_eq!(bad(k, input), rule::NIK_LENGTH, "{input:?}");
        }
        for prov in [
            "00", "10", "20", "22", "30", "37", "50", "54", "60", "66", "70", "77", "80", "83",
            "90", "97", "99",
        ] {
            assert_eq!(
                bad(k, &format!("{prov}74092512990007")),
                rule::NIK_PROVINCE,
                "{prov}"
            );
        }
        assert_eq!(bad(k, "3100092512990007"), rule::NIK_REGENCY);
        assert_eq!(bad(k, "3174002512990007"), rule::NIK_DISTRICT);
        for date in [
            "000199", "320199", "400199", "720199", "251399", "250099", "300299", "290201",
            "710299", "310499",
        ] {
            let nik = format!("317409{date}0007");
            assert_eq!(bad(k, &nik), rule::NIK_BIRTH_DATE, "{date}");
            assert_eq!(nik_birth_parts(&nik), None);
        }
        assert_eq!(bad(k, "3174092512990000"), rule::NIK_SERIAL);
        assert_eq!(nik_birth_parts("3174092512990000"), None);
        assert_eq!(nik_birth_parts("3174 0925 1299 0007"), None);
        assert_eq!(nik_birth_parts(""), None);
    }

    #[test]
    fn nik_mask() {
        assert_eq!(mask(FieldType::Nik, NIK_MALE), "3174********0007");
        assert_eq!(mask(FieldType::Nik, "short"), "***");
    }

    // ---- NPWP -------------------------------------------------------------------------------

    #[test]
    fn npwp_rules() {
        let w = FieldType::Npwp;
        assert_eq!(ok(w, "01.234.567.8-901.000"), "012345678901000");
        assert_eq!(ok(w, "012345678901000"), "012345678901000");
        assert_eq!(ok(w, "3174092512990007"), "3174092512990007");
        assert_eq!(ok(w, " 0123 4567 8901 2345 "), "0123456789012345");
        for input in [
            "",
            "01234567890100",
            "01234567890123456",
            "01.234.567.8-901.00x",
            "012345678901000/1",
        ] {
            assert_eq!(bad(w, input), rule::NPWP, "{input:?}");
        }
        assert_eq!(mask(w, "012345678901000"), "01**********000");
        assert_eq!(mask(w, "0123456789012345"), "01***********345");
    }

    // ---- date -------------------------------------------------------------------------------

    #[test]
    fn date_rules() {
        let d = FieldType::Date;
        assert_eq!(ok(d, "1999-12-25"), "1999-12-25");
        assert_eq!(ok(d, " 2000-02-29 "), "2000-02-29");
        assert_eq!(ok(d, "1000-01-01"), "1000-01-01");
        assert_eq!(ok(d, "9999-12-31"), "9999-12-31");
        for input in [
            "",
            "1999-2-5",
            "1999/12/25",
            "25-12-1999",
            "19991225",
            "1999-12-25T00:00:00",
            "+1999-12-25",
            "1999-12-2x",
            "١٩٩٩-12-25",
        ] {
            assert_eq!(bad(d, input), rule::DATE_FORMAT, "{input:?}");
        }
        assert_eq!(bad(d, "0999-12-25"), rule::DATE_YEAR);
        for input in [
            "1999-02-30",
            "1900-02-29",
            "2001-02-29",
            "1999-13-01",
            "1999-00-10",
            "1999-01-00",
            "1999-04-31",
        ] {
            assert_eq!(bad(d, input), rule::DATE_REAL, "{input:?}");
        }
        assert_eq!(mask(d, "1999-12-25"), "1999-**-**");
    }

    // ---- name -------------------------------------------------------------------------------

    #[test]
    fn name_rules() {
        let n = FieldType::Name;
        assert_eq!(ok(n, "  Budi \t  Santoso\n"), "Budi Santoso");
        // NFD "é" becomes NFC.
        assert_eq!(ok(n, "Andre\u{301}"), "Andr\u{e9}");
        assert_eq!(ok(n, "Siti\u{3000}Nurhaliza"), "Siti Nurhaliza");
        assert_eq!(bad(n, ""), rule::NAME_EMPTY);
        assert_eq!(bad(n, " \t\n "), rule::NAME_EMPTY);
        assert_eq!(bad(n, "Budi\u{0}Santoso"), rule::NAME_CONTROL);
        assert_eq!(bad(n, "Budi\u{1b}[31m"), rule::NAME_CONTROL);
        assert_eq!(ok(n, &"a".repeat(200)).chars().count(), 200);
        assert_eq!(bad(n, &"a".repeat(201)), rule::NAME_LENGTH);
        // The limit counts characters, not bytes.
        assert_eq!(ok(n, &"é".repeat(200)).chars().count(), 200);
        assert_eq!(mask(n, "Budi Santoso"), "B*** S***");
        assert_eq!(mask(n, "Ésa"), "É***");
    }

    // ---- text -------------------------------------------------------------------------------

    #[test]
    fn text_rules() {
        let t = FieldType::Text;
        assert_eq!(
            ok(t, "  line one\r\n\tline two  \n"),
            "line one\n\tline two"
        );
        assert_eq!(ok(t, "Cafe\u{301}"), "Caf\u{e9}");
        assert_eq!(ok(t, ""), "");
        assert_eq!(bad(t, "bell\u{7}here"), rule::TEXT_CONTROL);
        assert_eq!(bad(t, "carriage\rreturn"), rule::TEXT_CONTROL);
        assert_eq!(ok(t, &"x".repeat(10_000)).len(), 10_000);
        assert_eq!(bad(t, &"x".repeat(10_001)), rule::TEXT_LENGTH);
        assert_eq!(mask(t, "rahasia"), "***");
        assert_eq!(mask(t, "***"), "****");
    }

    #[test]
    fn masks_of_scalar_types() {
        assert_eq!(mask(FieldType::Bool, "true"), "***");
        assert_eq!(mask(FieldType::Number, "42"), "***");
    }

    #[test]
    fn errors_never_contain_the_value() {
        let cases = [
            (FieldType::Email, "Budi Santoso <budi.santoso@example.com>"),
            (FieldType::Email, "budi.santoso@localhost"),
            (FieldType::Phone, "0812-4471-9035 ext 99"),
            (FieldType::Nik, "3174092512990000"),
            (FieldType::Nik, "9974092512990007"),
            (FieldType::Npwp, "01.234.567.8-901"),
            (FieldType::Date, "1999-02-30"),
            (FieldType::Name, "Budi\u{0}Santoso"),
            (FieldType::Text, "secret\u{7}value"),
            (FieldType::Number, "12abc34"),
            (FieldType::Bool, "maybe-true"),
        ];
        for (ty, value) in cases {
            let e = match normalize_str(ty, value) {
                Ok(_) => panic!("{} accepted a bad value", ty.as_str()),
                Err(e) => e,
            };
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(value), "{shown}");
            assert!(rule::ALL.contains(&e.rule.as_str()));
        }
    }

    // ---- properties -------------------------------------------------------------------------

    /// Every property for one input: no panic, known rule on error; on success idempotent, a
    /// proper mask, a JSON round trip, and the same result through `normalize`.
    fn check_properties(ty: FieldType, input: &str) -> Result<(), TestCaseError> {
        let canonical = match normalize_str(ty, input) {
            Ok(c) => c,
            Err(e) => {
                prop_assert!(
                    rule::ALL.contains(&e.rule.as_str()),
                    "unknown rule {}",
                    e.rule
                );
                return Ok(());
            }
        };
        prop_assert_eq!(normalize_str(ty, &canonical), Ok(canonical.clone()));
        let masked = mask(ty, &canonical);
        prop_assert!(masked.contains('*'));
        prop_assert_ne!(&masked, &canonical);
        prop_assert_eq!(
            normalize(ty, &to_json(ty, &canonical)),
            Ok(canonical.clone())
        );
        prop_assert_eq!(
            normalize(ty, &serde_json::Value::String(input.to_owned())),
            Ok(canonical.clone())
        );
        if ty == FieldType::Nik {
            prop_assert!(nik_birth_parts(&canonical).is_some());
        }
        Ok(())
    }

    fn nik_strategy() -> impl Strategy<Value = String> {
        let provinces = prop::sample::select(vec![
            11u8, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62,
            63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
        ]);
        (
            provinces,
            0u8..100,
            0u8..100,
            0u8..75,
            0u8..14,
            0u8..100,
            0u16..10_000,
            prop::sample::select(vec!["", " ", ".", "-"]),
        )
            .prop_map(|(p, r, d, day, m, y, s, sep)| {
                format!("{p:02}{sep}{r:02}{sep}{d:02}{sep}{day:02}{m:02}{y:02}{sep}{s:04}")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn prop_name(s in prop_oneof![
            any::<String>(),
            "[ \t\n]{0,3}[A-Za-z\u{e0}-\u{ff}']{1,10}([ \t\u{3000}]{1,3}[A-Za-z]{1,10}){0,3}[ \n]{0,2}",
            "\\PC{0,40}",
            "[ a\u{301}\u{300}\u{1100}\u{1161}\u{11a8}\u{2000}\u{85}]{0,20}",
        ]) {
            check_properties(FieldType::Name, &s)?;
        }

        #[test]
        fn prop_text(s in prop_oneof![
            any::<String>(),
            "[ \t\r\na-z\u{301}\u{e9}\u{1100}\u{1161}]{0,40}",
            "\\PC{0,60}",
        ]) {
            check_properties(FieldType::Text, &s)?;
        }

        #[test]
        fn prop_email(s in prop_oneof![
            any::<String>(),
            " ?[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,15}\\.[A-Za-z]{2,6} ?",
            "[A-Za-z0-9\u{130}\u{e9}.\"<> ]{1,12}@[a-z\u{e9}.\\[\\]0-9]{1,15}",
        ]) {
            check_properties(FieldType::Email, &s)?;
        }

        #[test]
        fn prop_phone(s in prop_oneof![
            any::<String>(),
            "(\\+62|0|62)[ -]?8[1-9][0-9]{1,2}[ -]?[0-9]{3,4}[ -]?[0-9]{2,5}",
            "\\+[1-9][0-9 ]{5,16}",
            "[0-9]{1,20}",
            "[0-9 +()#*.:;a-z-]{0,24}",
        ]) {
            check_properties(FieldType::Phone, &s)?;
        }

        #[test]
        fn prop_nik(s in prop_oneof![any::<String>(), "[0-9]{16}", "[0-9 .-]{14,20}", nik_strategy()]) {
            check_properties(FieldType::Nik, &s)?;
        }

        #[test]
        fn prop_npwp(s in prop_oneof![any::<String>(), "[0-9]{14,17}", "[0-9]{2}\\.[0-9]{3}\\.[0-9]{3}\\.[0-9]-[0-9]{3}\\.[0-9]{3}"]) {
            check_properties(FieldType::Npwp, &s)?;
        }

        #[test]
        fn prop_date(s in prop_oneof![any::<String>(), " ?[0-9]{4}-[0-9]{2}-[0-9]{2} ?", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"]) {
            check_properties(FieldType::Date, &s)?;
        }

        #[test]
        fn prop_number_str(s in prop_oneof![
            any::<String>(),
            " ?[+-]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][+-]?[0-9]{1,3})? ?",
            "-?0*[0-9]{1,20}",
        ]) {
            check_properties(FieldType::Number, &s)?;
        }

        #[test]
        fn prop_number_json(f in any::<f64>(), i in any::<i64>(), u in any::<u64>()) {
            for v in [serde_json::Number::from_f64(f).map(serde_json::Value::Number), Some(json!(i)), Some(json!(u))].into_iter().flatten() {
                if let Ok(c) = normalize(FieldType::Number, &v) {
                    check_properties(FieldType::Number, &c)?;
                    // Same numeric value back (2.0 comes back as the integer 2).
                    let back = to_json(FieldType::Number, &c);
                    prop_assert_eq!(back.as_f64(), v.as_f64());
                    if v.is_i64() || v.is_u64() {
                        prop_assert_eq!(&back, &v);
                    }
                }
            }
        }

        #[test]
        fn prop_bool(s in prop_oneof![any::<String>(), " ?(?i:true|false) ?"], b in any::<bool>()) {
            check_properties(FieldType::Bool, &s)?;
            prop_assert_eq!(normalize(FieldType::Bool, &json!(b)), Ok(b.to_string()));
        }
    }
}
