use proptest::prelude::*;

use super::*;

// The first 16 bytes of real files of each kind (a PDF 1.5 specification, a JFIF photo, a PNG
// screenshot, an extended WebP image, a Windows PE launcher).
const PDF: &[u8] = b"%PDF-1.5\n%\xd0\xd4\xc5\xd8\n1";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00\x01";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR";
const WEBP: &[u8] = b"RIFF\xa8\x01\x00\x00WEBPVP8X";
const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00";

#[test]
fn sniff_recognises_real_headers() {
    assert_eq!(sniff(PDF), Some(MediaType::Pdf));
    assert_eq!(sniff(JPEG), Some(MediaType::Jpeg));
    assert_eq!(sniff(PNG), Some(MediaType::Png));
    assert_eq!(sniff(WEBP), Some(MediaType::Webp));
    // A camera's EXIF JPEG starts with another marker after the start of image.
    assert_eq!(
        sniff(b"\xff\xd8\xff\xe1\x2f\xfeExif\x00\x00"),
        Some(MediaType::Jpeg)
    );
}

#[test]
fn sniff_len_bytes_are_enough() {
    for head in [PDF, JPEG, PNG, WEBP] {
        let expected = sniff(head);
        assert!(expected.is_some());
        assert_eq!(sniff(&head[..SNIFF_LEN]), expected, "{head:?}");
    }
}

#[test]
fn sniff_refuses_everything_else() {
    // A Windows executable, whatever it is declared as.
    assert_eq!(sniff(EXE), None);
    // HTML and text, even when they mention a signature (infer would call the first a PDF).
    assert_eq!(sniff(b"<!DOCTYPE html><!-- %PDF-1.4 --><script>"), None);
    assert_eq!(sniff(b"<html><body>RIFF....WEBP</body></html>"), None);
    assert_eq!(sniff(b"hello, this is plain text\n"), None);
    assert_eq!(
        sniff(b" %PDF-1.5"),
        None,
        "the signature starts at offset 0"
    );
    // WEBP at bytes 8..12 without the RIFF container.
    assert_eq!(sniff(b"\x00\x00\x00\x00\x00\x00\x00\x00WEBPVP8 "), None);
    // Other image formats.
    assert_eq!(sniff(b"GIF89a\x01\x00\x01\x00\x80\x00"), None);
    assert_eq!(sniff(b"RIFF\x24\x00\x00\x00WAVEfmt "), None);
    // Empty and truncated heads.
    assert_eq!(sniff(b""), None);
    for head in [PDF, JPEG, PNG, WEBP] {
        let signature_len = match sniff(head) {
            Some(MediaType::Pdf) => 5,
            Some(MediaType::Jpeg) => 3,
            Some(MediaType::Png) => 8,
            Some(MediaType::Webp) => 12,
            None => unreachable!("checked above"),
        };
        for len in 0..signature_len {
            assert_eq!(sniff(&head[..len]), None, "{:?}", &head[..len]);
        }
    }
}

#[test]
fn media_type_spellings() {
    for t in MediaType::ALL {
        assert_eq!(MediaType::parse(t.as_str()), Some(t));
        assert_eq!(t.to_string(), t.as_str());
    }
    assert_eq!(MediaType::parse("image/PNG; q=1"), Some(MediaType::Png));
    assert_eq!(
        MediaType::parse("  Application/PDF  "),
        Some(MediaType::Pdf)
    );
    assert_eq!(
        MediaType::parse("application/pdf;name=\"cv.pdf\""),
        Some(MediaType::Pdf)
    );
    assert_eq!(MediaType::parse("image/jpg"), Some(MediaType::Jpeg));
    assert_eq!(MediaType::parse("IMAGE/JPEG"), Some(MediaType::Jpeg));
    for refused in [
        "",
        ";",
        "image/gif",
        "text/html",
        "application/octet-stream",
        "application/x-msdownload",
        "image/png2",
        "image/ png",
        "pdf",
    ] {
        assert_eq!(MediaType::parse(refused), None, "{refused:?}");
    }
    let exts: Vec<&str> = MediaType::ALL.iter().map(|t| t.extension()).collect();
    assert_eq!(exts, ["pdf", "jpg", "png", "webp"]);
    assert_eq!(
        MediaType::expected(),
        "application/pdf, image/jpeg, image/png, image/webp"
    );
    assert!(MediaType::Pdf < MediaType::Webp);
}

#[test]
fn document_rules_accept_their_types_only() {
    let rules = DocumentRules {
        media_types: vec![MediaType::Jpeg, MediaType::Png],
        max_size: 2_000_000,
    };
    assert!(rules.accepts(MediaType::Jpeg));
    assert!(rules.accepts(MediaType::Png));
    assert!(!rules.accepts(MediaType::Pdf));
    assert!(!rules.accepts(MediaType::Webp));
}

#[test]
fn sizes() {
    let ok = [
        ("1", 1),
        ("2048", 2048),
        ("1B", 1),
        ("10MB", 10_000_000),
        ("10 MB", 10_000_000),
        (" 10mb ", 10_000_000),
        ("512KiB", 524_288),
        ("512kib", 524_288),
        ("1KB", 1000),
        ("1GB", 1_000_000_000),
        ("2MiB", 2 * 1024 * 1024),
        ("5GiB", MAX_DOCUMENT_SIZE),
        ("5368709120", MAX_DOCUMENT_SIZE),
        ("0010MB", 10_000_000),
    ];
    for (s, n) in ok {
        assert_eq!(parse_size(s), Ok(n), "{s:?}");
    }
    let err = |s: &str| match parse_size(s) {
        Ok(n) => panic!("{s:?} parsed as {n}"),
        Err(e) => e,
    };
    assert!(err("").contains("expected a whole number"));
    assert!(err("MB").contains("expected a whole number"));
    assert!(err("-1MB").contains("expected a whole number"));
    assert!(err("1.5MB").contains("unknown size unit"));
    assert!(err("10 megabytes").contains("unknown size unit"));
    assert!(err("10TB").contains("unknown size unit"));
    assert!(err("10M").contains("unknown size unit"));
    assert!(err("0").contains("at least 1 byte"));
    assert!(err("0MB").contains("at least 1 byte"));
    assert!(err("6GB").contains("5GiB"));
    assert!(err("5368709121").contains("5GiB"));
    assert!(err("99999999999999999999999GiB").contains("5GiB"));
    assert!(err("18446744073709551616").contains("5GiB"));
}

proptest! {
    #[test]
    fn parse_size_never_panics(s in "\\PC*") {
        let _ = parse_size(&s);
    }

    #[test]
    fn parse_size_never_panics_on_size_like_input(s in "[ 0-9]{0,30}[kKmMgGiIbB ]{0,4}") {
        if let Ok(n) = parse_size(&s) {
            prop_assert!((1..=MAX_DOCUMENT_SIZE).contains(&n));
        }
    }

    #[test]
    fn byte_counts_round_trip(n in 1..=MAX_DOCUMENT_SIZE) {
        prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        prop_assert_eq!(parse_size(&format!("{n}B")), Ok(n));
    }

    #[test]
    fn units_multiply(n in 1u64..=5_000) {
        for (unit, m) in [("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
                          ("KiB", 1024), ("MiB", 1 << 20), ("GiB", 1 << 30)] {
            let want = n * m;
            let got = parse_size(&format!("{n}{unit}"));
            if want <= MAX_DOCUMENT_SIZE {
                prop_assert_eq!(got, Ok(want));
            } else {
                prop_assert!(got.is_err());
            }
        }
    }

    #[test]
    fn sniff_never_panics_and_only_matches_at_the_start(head in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Some(t) = sniff(&head) {
            let prefix: &[u8] = match t {
                MediaType::Pdf => b"%PDF-",
                MediaType::Jpeg => b"\xff\xd8\xff",
                MediaType::Png => b"\x89PNG\r\n\x1a\n",
                MediaType::Webp => b"RIFF",
            };
            prop_assert!(head.starts_with(prefix));
        }
    }
}
