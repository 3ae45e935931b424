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

    #[test]
    fn legacy_lists_convert_to_what_schema_5_read_back() {
        assert_eq!(convert_legacy("", false), "[]");
        assert_eq!(convert_legacy("email,phone", false), r#"["email","phone"]"#);
        assert_eq!(convert_legacy("a,,b", false), r#"["a","","b"]"#);
        assert_eq!(convert_legacy("a,,b", true), r#"["a","b"]"#);
        assert_eq!(convert_legacy(r#"x"y\"#, false), r#"["x\"y\\"]"#);
    }
}
