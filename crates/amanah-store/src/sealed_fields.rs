//! A subject's sealed fields, kept together in the subject's own row (`subjects.fields`): one
//! row to write per new subject and one to read per subject found, instead of a row per field.
//!
//! Each value is still sealed on its own by the vault, under the subject's data key with the
//! subject, the category and the key version in its associated data: a value moved to another
//! subject, another category or another row fails to open. This module only frames them; a
//! frame read back is checked like any input from the database: a malformed set is refused
//! whole ([`Malformed`]), never half read.
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

/// A stored set that does not decode: it was altered behind the store's back. A subject whose
/// set is malformed still loads (so that it can be erased), and every use of its fields fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a subject's stored fields are malformed")]
pub struct Malformed;

impl From<Malformed> for StoreError {
    fn from(m: Malformed) -> StoreError {
        StoreError::Backend(m.to_string())
    }
}

/// The stored form of `fields`, in any order. Refused: a category given twice, a category over
/// 65,535 bytes or a value over 4 GiB (the vault's limits keep both far smaller).
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> StoreResult<Vec<u8>> {
    let mut sorted: Vec<(&str, &[u8])> = fields.into_iter().collect();
    sorted.sort_unstable_by_key(|(c, _)| *c);
    if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(StoreError::Backend("a category is given twice".into()));
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

/// The stored form of the fields a write carries (see [`encode`]).
pub(crate) fn encode_writes(fields: &[crate::FieldWrite]) -> StoreResult<Vec<u8>> {
    encode(writes(fields))
}

/// The (category, sealed value) pairs a write carries.
pub(crate) fn writes(fields: &[crate::FieldWrite]) -> impl Iterator<Item = (&str, &[u8])> {
    fields
        .iter()
        .map(|f| (f.category.as_str(), f.ciphertext.as_slice()))
}

/// The fields of a stored set, in ascending order of category.
pub fn decode(stored: &[u8]) -> Result<Vec<SealedField>, Malformed> {
    Ok(parse(stored)?
        .into_iter()
        .map(|(c, v)| (c.to_owned(), v.to_vec()))
        .collect())
}

/// The categories of a stored set, in ascending order (the values are not copied).
pub fn categories(stored: &[u8]) -> Result<Vec<String>, Malformed> {
    Ok(parse(stored)?
        .into_iter()
        .map(|(c, _)| c.to_owned())
        .collect())
}

/// `stored` with the values of `set` put in (replacing any under the same category) and the
/// categories of `remove` taken out.
pub fn replace(stored: &[u8], set: &[(&str, &[u8])], remove: &[&str]) -> StoreResult<Vec<u8>> {
    let kept = parse(stored)?
        .into_iter()
        .filter(|(c, _)| !remove.contains(c) && !set.iter().any(|(s, _)| s == c));
    encode(kept.chain(set.iter().copied()))
}

/// The fields of a stored set, borrowed from it.
fn parse(stored: &[u8]) -> Result<Vec<(&str, &[u8])>, Malformed> {
    let Some((&format, mut rest)) = stored.split_first() else {
        return Ok(Vec::new());
    };
    // A set with no fields is stored empty, never as the format byte alone.
    if format != FORMAT || rest.is_empty() {
        return Err(Malformed);
    }
    let mut out: Vec<(&str, &[u8])> = Vec::new();
    while !rest.is_empty() {
        let (category, after) = take(rest, 2).ok_or(Malformed)?;
        let category = std::str::from_utf8(category).map_err(|_| Malformed)?;
        let (value, after) = take(after, 4).ok_or(Malformed)?;
        if out.last().is_some_and(|(last, _)| *last >= category) {
            return Err(Malformed);
        }
        out.push((category, value));
        rest = after;
    }
    Ok(out)
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
        // A category given twice is refused, not silently collapsed to one value.
        assert!(encode([("a", &b"1"[..]), ("a", &b"2"[..])]).is_err());
        assert!(replace(&changed, &[("x", b"1"), ("x", b"2")], &[]).is_err());
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
        fn a_set_with_one_byte_changed_decodes_only_to_what_it_encodes(
            fields in btree_map("[a-z_]{1,8}", vec(any::<u8>(), 0..40), 1..6),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let fields: Vec<SealedField> = fields.into_iter().collect();
            let mut stored = encode(as_refs(&fields)).unwrap();
            let i = at.index(stored.len());
            stored[i] = byte;
            if let Ok(decoded) = decode(&stored) {
                prop_assert_eq!(encode(as_refs(&decoded)).unwrap(), stored);
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
