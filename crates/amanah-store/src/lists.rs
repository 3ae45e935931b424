//! How lists of strings are stored (audit `fields`, disclosure and breach `categories`): a JSON array in a text column, so every element round-trips byte for
//! byte whatever it holds (commas, quotes, control characters). Schema 6 of both backends
//! converted the comma-joined lists of earlier schemas in place. (Consent contact channels stay
//! comma-joined: they are policy identifiers, checked before they are stored, and the
//! contactable query matches on that form.)

use amanah_core::audit::{canonical_bytes, AuditRecord};
use amanah_crypto::audit::AuditKey;

/// The stored form of `items`.
pub(crate) fn encode(items: &[String]) -> String {
    // Serializing strings to JSON cannot fail.
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// Reads a stored list. A value that is not a JSON array of strings can only come from
/// tampering: it is returned as one element, so an audit entry holding it fails its MAC and
/// `audit verify` names it.
pub(crate) fn decode(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_else(|_| vec![stored.to_owned()])
}

/// A stored list in the form [`encode`] gives when no element needs an escape (`[]`,
/// `["a","b"]`: no quote, backslash or control character in any element), read in place as
/// bytes: what the audit verifier encodes without building a list per entry. Any other text,
/// JSON or not, is not read here (`read` returns `None`) and goes through [`decode`]; on the
/// texts it accepts, the names are the bytes of those `decode` gives.
pub(crate) struct Plain<'a> {
    /// Between the first and the last quote (empty for `[]`).
    inner: &'a [u8],
    count: usize,
}

impl<'a> Plain<'a> {
    pub(crate) fn read(stored: &'a [u8]) -> Option<Plain<'a>> {
        let list = stored.strip_prefix(b"[")?.strip_suffix(b"]")?;
        if list.is_empty() {
            return Some(Plain {
                inner: list,
                count: 0,
            });
        }
        let inner = list.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        let mut count = 1;
        let mut i = 0;
        while let Some(&c) = inner.get(i) {
            if c == b'"' {
                // Only as the separator `","`.
                if inner.get(i + 1..i + 3) != Some(b",\"") {
                    return None;
                }
                count += 1;
                i += 3;
            } else if c == b'\\' || c < 0x20 {
                return None;
            } else {
                i += 1;
            }
        }
        Some(Plain { inner, count })
    }
}

impl amanah_core::audit::FieldList for Plain<'_> {
    fn count(&self) -> usize {
        self.count
    }
    fn each(&self, mut f: impl FnMut(&[u8])) {
        if self.count > 0 {
            // Every quote inside is a separator `","`: the names are every other piece.
            self.inner.split(|&c| c == b'"').step_by(2).for_each(&mut f);
        }
    }
}

/// How stores up to schema 5 read a comma-joined list back (and so what an old audit entry's MAC
/// covers whenever no element held a comma): split on every comma, the empty string being the
/// empty list.
pub(crate) fn legacy_split(stored: &str) -> Vec<String> {
    if stored.is_empty() {
        Vec::new()
    } else {
        stored.split(',').map(str::to_owned).collect()
    }
}

/// The schema-5 reading of category lists, which also dropped empty elements.
pub(crate) fn legacy_split_categories(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The list columns schema 6 converts: `(table, key column, list column, categories rule)`.
pub(crate) const LIST_COLUMNS: &[(&str, &str, &str, bool)] = &[
    ("audit_log", "seq", "fields", false),
    ("disclosures", "id", "categories", true),
    ("breaches", "id", "categories", true),
];

/// Most comma-separated pieces whose groupings `recover_fields` tries (2^16 MACs at most).
const MAX_PIECES: usize = 17;

/// An entry written by schema 5 or earlier whose field list held a comma (or was `[""]`) was
/// read back as another list and no longer matched its MAC. Its MAC tells which list was
/// written: the groupings of the comma-separated pieces back into elements are tried in turn,
/// and the one the stored hash confirms is returned. `None` when the entry verifies as it is, or when no
/// grouping does (then it was altered, and `audit verify` reports it). A match cannot be
/// forged: it takes the audit key.
pub(crate) fn recover_fields(
    key: &AuditKey,
    record: &AuditRecord,
    previous: &[u8; 32],
) -> Option<Vec<String>> {
    let matches = |fields: &[String]| {
        let mut entry = record.entry.clone();
        entry.fields = fields.to_vec();
        key.chain(previous, &canonical_bytes(record.seq, &entry)) == record.hash
    };
    let pieces = &record.entry.fields;
    if matches(pieces) {
        return None;
    }
    if pieces.is_empty() {
        let one_empty = vec![String::new()];
        return matches(&one_empty).then_some(one_empty);
    }
    let n = pieces.len();
    if n > MAX_PIECES {
        return None;
    }
    // Bit i of `mask` joins piece i + 1 to the element before it.
    for mask in 1u32..(1 << (n - 1)) {
        let mut list = vec![pieces[0].clone()];
        for (i, piece) in pieces.iter().enumerate().skip(1) {
            match list.last_mut() {
                Some(last) if mask & (1 << (i - 1)) != 0 => {
                    last.push(',');
                    last.push_str(piece);
                }
                _ => list.push(piece.clone()),
            }
        }
        if matches(&list) {
            return Some(list);
        }
    }
    None
}

/// The schema-6 form of a list stored comma-joined (schema 5 and earlier).
pub(crate) fn convert_legacy(stored: &str, categories: bool) -> String {
    if categories {
        encode(&legacy_split_categories(stored))
    } else {
        encode(&legacy_split(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_list_round_trips() {
        for list in [
            vec![],
            vec![String::new()],
            vec!["a,b".to_owned(), "\"q\"".into(), "\0".into(), "[]".into()],
            vec![",".into(), String::new(), "é\\u0000".into()],
        ] {
            assert_eq!(decode(&encode(&list)), list);
        }
        assert_eq!(decode("not json"), vec!["not json".to_owned()]);
        assert_eq!(decode("[1]"), vec!["[1]".to_owned()]);
    }

    /// What the audit verifier reads in place: the lists `encode` writes without escapes give
    /// the names `decode` gives; every other text is left to `decode`.
    fn plain(stored: &str) -> Option<Vec<String>> {
        use amanah_core::audit::FieldList;
        let p = Plain::read(stored.as_bytes())?;
        let mut names = Vec::new();
        p.each(|n| names.push(String::from_utf8(n.to_vec()).unwrap()));
        assert_eq!(p.count(), names.len(), "{stored:?}");
        Some(names)
    }

    #[test]
    fn plain_lists_read_in_place_as_decode_reads_them() {
        for list in [
            vec![],
            vec![String::new()],
            vec![String::new(), String::new()],
            vec!["email".to_owned(), "full_name".into(), "nik".into()],
            vec![
                "a,b".into(),
                ",".into(),
                "]".into(),
                "[".into(),
                "é \u{7f}".into(),
            ],
            vec!["x".into(), String::new(), "y".into(), String::new()],
        ] {
            let stored = encode(&list);
            assert_eq!(plain(&stored), Some(list.clone()), "{stored}");
            assert_eq!(decode(&stored), list);
        }
        // Escaped elements, other JSON, and what is not JSON at all: not read here.
        for stored in [
            encode(&["\"q\"".into()]),
            encode(&["a\\b".into()]),
            encode(&["\n".into()]),
            encode(&["\0".into()]),
            "[ ]".into(),
            "[\"a\", \"b\"]".into(),
            "[\"a\",]".into(),
            "[\"a\"\"b\"]".into(),
            "[\"a\",,\"b\"]".into(),
            "[\"a\",\"]".into(),
            "[\"]".into(),
            "[\"a\"] ".into(),
            "[1]".into(),
            "[\"a\nb\"]".into(),
            "not json".into(),
            String::new(),
            "[".into(),
            "]".into(),
        ] {
            assert_eq!(plain(&stored), None, "{stored:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn plain_agrees_with_decode_on_any_list(
            list in proptest::collection::vec("[a-z,\"\\\\\\[\\] \\x00-\\x1f\\x7fé]{0,6}", 0..5),
        ) {
            let stored = encode(&list);
            if let Some(names) = plain(&stored) {
                proptest::prop_assert_eq!(names, decode(&stored));
            } else {
                proptest::prop_assert!(list.iter().any(|n| n.chars().any(|c| c == '"' || c == '\\' || c < ' ')));
            }
        }

        #[test]
        fn plain_agrees_with_decode_on_any_text(stored in "[\\[\\]\",a\\\\ ]{0,12}") {
            if let Some(names) = plain(&stored) {
                proptest::prop_assert_eq!(names, decode(&stored));
            }
        }
    }

    #[test]
    fn legacy_lists_convert_to_what_schema_5_read_back() {
        assert_eq!(convert_legacy("", false), "[]");
        assert_eq!(convert_legacy("email,phone", false), r#"["email","phone"]"#);
        assert_eq!(convert_legacy("a,,b", false), r#"["a","","b"]"#);
        assert_eq!(convert_legacy("a,,b", true), r#"["a","b"]"#);
        assert_eq!(convert_legacy(r#"x"y\"#, false), r#"["x\"y\\"]"#);
    }
}
