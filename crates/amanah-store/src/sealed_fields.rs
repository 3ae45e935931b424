//! A subject's sealed fields, kept together in the subject's own row (`subjects.fields`): one
//! row to write per new subject and one to read per subject found, instead of a row per field.
//!
//! Each value is still sealed on its own by the vault, under the subject's data key with the
//! subject, the category and the key version in its associated data: a value moved to another
//! subject, another category or another row fails to open. This module only frames them, and
//! the framing is checked on the way out as input from the database is: anything malformed is
//! refused whole, never half read.
//!
//! Format: empty for a subject with no fields; otherwise the byte [`FORMAT`], then per field in
//! strictly ascending order of category (so a category appears once): its length (`u16`, big
//! endian), the category's UTF-8 bytes, the sealed value's length (`u32`, big endian), the
//! sealed value.

use crate::{StoreError, StoreResult};

/// The first byte of a non-empty set.
pub const FORMAT: u8 = 1;

/// One field: its category and its sealed value.
pub type SealedField = (String, Vec<u8>);

/// The stored form of `fields` (any order; a category given twice keeps its last value).
/// Refused: a category over 65,535 bytes or a value over 4 GiB (the vault's limits keep both
/// far smaller).
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> StoreResult<Vec<u8>> {
    let mut sorted: Vec<(&str, &[u8])> = Vec::new();
    for (category, value) in fields {
        match sorted.binary_search_by(|(c, _)| (*c).cmp(category)) {
            Ok(i) => sorted[i].1 = value,
            Err(i) => sorted.insert(i, (category, value)),
        }
    }
    if sorted.is_empty() {
        return Ok(Vec::new());
    }
    let size = sorted
        .iter()
        .map(|(c, v)| 6 + c.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(1 + size);
    out.push(FORMAT);
    for (category, value) in sorted {
        let too_large = || StoreError::Backend("a field is too large to store".into());
        let category_len = u16::try_from(category.len()).map_err(|_| too_large())?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_large())?;
        out.extend_from_slice(&category_len.to_be_bytes());
        out.extend_from_slice(category.as_bytes());
        out.extend_from_slice(&value_len.to_be_bytes());
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// The fields of a stored set, in ascending order of category.
pub fn decode(stored: &[u8]) -> StoreResult<Vec<SealedField>> {
    let malformed = || StoreError::Backend("a subject's stored fields are malformed".into());
    let Some((&format, mut rest)) = stored.split_first() else {
        return Ok(Vec::new());
    };
    // A set with no fields is stored empty, never as the format byte alone.
    if format != FORMAT || rest.is_empty() {
        return Err(malformed());
    }
    let mut out: Vec<SealedField> = Vec::new();
    while !rest.is_empty() {
        let (category, after) = take(rest, 2).ok_or_else(malformed)?;
        let category = std::str::from_utf8(category).map_err(|_| malformed())?;
        let (value, after) = take(after, 4).ok_or_else(malformed)?;
        if out
            .last()
            .is_some_and(|(last, _)| last.as_str() >= category)
        {
            return Err(malformed());
        }
        out.push((category.to_owned(), value.to_vec()));
        rest = after;
    }
    Ok(out)
}

/// The categories of a stored set, without copying the values.
pub fn categories(stored: &[u8]) -> StoreResult<Vec<String>> {
    Ok(decode(stored)?.into_iter().map(|(c, _)| c).collect())
}

/// `stored` with the values of `set` put in (replacing any under the same category) and the
/// categories of `remove` taken out.
pub fn replace(stored: &[u8], set: &[(&str, &[u8])], remove: &[&str]) -> StoreResult<Vec<u8>> {
    let kept = decode(stored)?;
    let kept = kept
        .iter()
        .filter(|(c, _)| !remove.contains(&c.as_str()))
        .map(|(c, v)| (c.as_str(), v.as_slice()));
    encode(kept.chain(set.iter().copied()))
}

/// A length-prefixed piece (`width` bytes of big-endian length) and what follows it.
fn take(bytes: &[u8], width: usize) -> Option<(&[u8], &[u8])> {
    if bytes.len() < width {
        return None;
    }
    let (len, rest) = bytes.split_at(width);
    let len = len.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::{btree_map, vec};
    use proptest::prelude::*;

    fn as_refs(fields: &[SealedField]) -> Vec<(&str, &[u8])> {
        fields
            .iter()
            .map(|(c, v)| (c.as_str(), v.as_slice()))
            .collect()
    }

    #[test]
    fn the_format_is_framed_as_documented() {
        let stored = encode([("name", &b"NN"[..]), ("email", &b"E"[..])]).unwrap();
        assert_eq!(
            stored,
            [
                &[FORMAT][..],
                &[0, 5],
                b"email",
                &[0, 0, 0, 1],
                b"E",
                &[0, 4],
                b"name",
                &[0, 0, 0, 2],
                b"NN",
            ]
            .concat()
        );
        assert_eq!(encode([]).unwrap(), Vec::<u8>::new());
        assert!(decode(&[FORMAT]).is_err());
        assert_eq!(decode(&[]).unwrap(), Vec::<SealedField>::new());
    }

    #[test]
    fn malformed_sets_are_refused_whole() {
        let good = encode([("a", &b"x"[..]), ("b", &b"y"[..])]).unwrap();
        let mut wrong_format = good.clone();
        wrong_format[0] = 2;
        let mut unordered = encode([("a", &b"x"[..])]).unwrap();
        unordered.extend_from_slice(&good[1..]); // "a" again after "a"
        let mut not_utf8 = good.clone();
        not_utf8[3] = 0xff;
        for bad in [
            wrong_format,
            good[..good.len() - 1].to_vec(),
            [&good[..], &[0]].concat(),
            unordered,
            not_utf8,
        ] {
            assert!(decode(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replace_puts_in_and_takes_out() {
        let stored = encode([("email", &b"old"[..]), ("name", &b"n"[..])]).unwrap();
        let changed = replace(&stored, &[("email", b"new"), ("phone", b"p")], &["name"]).unwrap();
        assert_eq!(
            decode(&changed).unwrap(),
            [
                ("email".to_owned(), b"new".to_vec()),
                ("phone".to_owned(), b"p".to_vec())
            ]
        );
        assert_eq!(replace(&changed, &[], &["email", "phone"]).unwrap(), b"");
        assert!(replace(&[9], &[], &[]).is_err());
    }

    proptest! {
        #[test]
        fn sets_round_trip(
            fields in btree_map("[a-z_]{1,20}", vec(any::<u8>(), 0..200), 0..12)
        ) {
            let fields: Vec<SealedField> = fields.into_iter().collect();
            let stored = encode(as_refs(&fields)).unwrap();
            prop_assert_eq!(decode(&stored).unwrap(), fields.clone());
            prop_assert_eq!(
                categories(&stored).unwrap(),
                fields.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()
            );
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in vec(any::<u8>(), 0..300)) {
            if let Ok(fields) = decode(&bytes) {
                // What decodes is exactly what it encodes to.
                prop_assert_eq!(encode(as_refs(&fields)).unwrap(), bytes);
            }
        }

        #[test]
        fn a_set_cut_short_is_refused(
            fields in btree_map("[a-z]{1,8}", vec(any::<u8>(), 0..40), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let fields: Vec<SealedField> = fields.into_iter().collect();
            let stored = encode(as_refs(&fields)).unwrap();
            let at = 1 + cut.index(stored.len() - 1);
            // A cut at a field boundary leaves a shorter valid set, never the whole one.
            if let Ok(decoded) = decode(&stored[..at]) {
                prop_assert!(decoded.len() < fields.len());
            }
        }
    }
}
