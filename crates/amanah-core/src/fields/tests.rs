//! Normalizers, masks and NIK checks against known values and properties.

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
        11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 36, 51, 53, 61, 65, 71, 76, 81, 82, 91, 92, 93,
        94, 95, 96,
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
        "00", "10", "20", "22", "30", "37", "50", "54", "60", "66", "70", "77", "80", "83", "90",
        "97", "99",
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
        "000199", "320199", "400199", "720199", "251399", "250099", "300299", "290201", "710299",
        "310499",
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
fn documents_have_no_value_form() {
    let d = FieldType::Document;
    assert_eq!(d.as_str(), "document");
    assert_eq!(FieldType::ALL.last(), Some(&d));
    for v in [
        json!("JVBERi0xLjcK"),
        json!(""),
        json!(1),
        json!(true),
        json!(null),
        json!({"file": "cert.pdf"}),
    ] {
        assert_eq!(rule_of(normalize(d, &v)), rule::DOCUMENT, "{v}");
    }
    assert_eq!(bad(d, "%PDF-1.7 a certificate"), rule::DOCUMENT);
    assert!(rule::DOCUMENT.contains("PUT /v1/subjects/{id}/documents/{category}"));
    // Never reached for stored values, but total: no panic, the usual shapes.
    assert_eq!(mask(d, "anything"), "***");
    assert_eq!(mask(d, "***"), "****");
    assert_eq!(to_json(d, "x"), json!("x"));
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
        11u8, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62, 63,
        64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96,
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
