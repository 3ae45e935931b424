//! Documents: the media types a `document` category may hold, how an upload's type is sniffed
//! from its first bytes, and the size limits of the policy file (`max_size = "10MB"`).

use std::fmt;

/// The media types a document may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaType {
    Pdf,
    Jpeg,
    Png,
    Webp,
}

impl MediaType {
    /// Every media type, in the order the policy documentation lists them.
    pub const ALL: [MediaType; 4] = [
        MediaType::Pdf,
        MediaType::Jpeg,
        MediaType::Png,
        MediaType::Webp,
    ];

    /// The registered name (`"application/pdf"`), as the policy file and `Content-Type` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Webp => "image/webp",
        }
    }

    /// Parses a media type as a `Content-Type` header or the policy file gives it: surrounding
    /// whitespace and parameters (`; charset=...`) are ignored, case does not matter, and the
    /// common misspelling `image/jpg` is JPEG.
    pub fn parse(s: &str) -> Option<MediaType> {
        let essence = s.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("image/jpg") {
            return Some(MediaType::Jpeg);
        }
        MediaType::ALL
            .into_iter()
            .find(|t| essence.eq_ignore_ascii_case(t.as_str()))
    }

    /// The usual file extension, without the dot (for file names in exports).
    pub fn extension(self) -> &'static str {
        match self {
            MediaType::Pdf => "pdf",
            MediaType::Jpeg => "jpg",
            MediaType::Png => "png",
            MediaType::Webp => "webp",
        }
    }

    /// `application/pdf, image/jpeg, image/png, image/webp`
    pub fn expected() -> String {
        MediaType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most leading bytes [`sniff`] looks at: give it at least this many when the file has them.
pub const SNIFF_LEN: usize = 12;

/// The media type of a file from its first bytes (at least [`SNIFF_LEN`] of them when the file
/// is that long), or `None` when they are none of [`MediaType::ALL`].
///
/// Each signature must start at offset 0 and be complete:
/// - PDF: `%PDF-`
/// - JPEG: `FF D8 FF` (start of image, then a marker)
/// - PNG: the full 8-byte signature `89 'P' 'N' 'G' 0D 0A 1A 0A`
/// - WebP: `RIFF`, a 4-byte length, `WEBP`
///
/// This is stricter than the `infer` crate, which takes `%PDF` anywhere in the first 1024 bytes
/// (so an HTML page mentioning it in a comment passes as a PDF) and WebP from bytes 8..12
/// alone; a polyglot file must not get through as a document type it only resembles.
pub fn sniff(head: &[u8]) -> Option<MediaType> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if head.starts_with(b"%PDF-") {
        Some(MediaType::Pdf)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(MediaType::Jpeg)
    } else if head.starts_with(PNG) {
        Some(MediaType::Png)
    } else if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP".as_slice()) {
        Some(MediaType::Webp)
    } else {
        None
    }
}

/// What a `document` category accepts: its `media_types` and `max_size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRules {
    /// Non-empty, without duplicates, in the policy file's order.
    pub media_types: Vec<MediaType>,
    /// In bytes, from 1 to [`MAX_DOCUMENT_SIZE`].
    pub max_size: u64,
}

impl DocumentRules {
    /// Does the category accept documents of type `t`?
    pub fn accepts(&self, t: MediaType) -> bool {
        self.media_types.contains(&t)
    }
}

/// The largest `max_size` a policy may give: 5 GiB.
pub const MAX_DOCUMENT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Parses a size: a whole number of bytes, optionally followed by a unit, case-insensitive, with
/// optional spaces between: `B`; decimal `KB`, `MB`, `GB` (powers of 1000, as on a disk label);
/// binary `KiB`, `MiB`, `GiB` (powers of 1024). A bare number is bytes. So `"10MB"` is
/// 10 000 000 bytes and `"512KiB"` 524 288. The result is from 1 byte to [`MAX_DOCUMENT_SIZE`];
/// the error message says what was expected (it never echoes more than the input).
pub fn parse_size(s: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected a whole number of bytes with an optional unit: B, KB, MB, \
                            GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. \"10MB\"";
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(EXPECTED.to_owned());
    }
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1024,
        "mib" => 1024 * 1024,
        "gib" => 1024 * 1024 * 1024,
        _ => return Err(format!("unknown size unit; {EXPECTED}")),
    };
    let too_large = || {
        format!(
            "size is larger than the limit of 5GiB ({MAX_DOCUMENT_SIZE} bytes) a document may \
             have"
        )
    };
    // Leading zeros do not make a number larger: strip them before the length check.
    let significant = digits.trim_start_matches('0');
    if significant.len() > 20 {
        return Err(too_large());
    }
    let n: u64 = match significant {
        "" => 0,
        _ => significant.parse().map_err(|_| too_large())?,
    };
    let bytes = n.checked_mul(multiplier).ok_or_else(too_large)?;
    if bytes == 0 {
        return Err("size must be at least 1 byte".to_owned());
    }
    if bytes > MAX_DOCUMENT_SIZE {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
