//! The policy parser against small sources: each rule, each diagnostic and its position.

use super::countries::COUNTRY_CODES;
use super::walk::{did_you_mean, edit_distance, is_valid_name};
use super::*;
use crate::documents::MediaType;

/// 14 lines; text appended with [`with`] starts on line 15.
const MINIMAL: &str = r#"version = "2026-01"

[controller]
name = "Universitas Contoh"
contact = "dpo@contoh.ac.id"

[categories.email]
type = "email"
class = "general"

[purposes.service]
basis = "contract"
categories = ["email"]
retention = "1y"
"#;

/// The example from the format documentation: every key of every table.
const FULL: &str = r#"version = "2026-01"                    # stored with every audit entry

[controller]
name = "Universitas Contoh"
contact = "dpo@contoh.ac.id"

[settings]
request_deadline_hours = 48
minimum_age = 15
adult_age = 17
withdrawal_grace_days = 3
birth_date_category = "dob"

[categories.email]
type = "email"
class = "general"
index = true
unique = true

[categories.full_name]
type = "name"
class = "general"

[categories.nik]
type = "nik"
class = "specific"
index = true

[categories.dob]
type = "date"
class = "general"

[purposes.admission]
basis = "contract"
categories = ["full_name", "email", "nik", "dob"]
retention = "5y"
description = "Process an application"
retention_from = "relationship_end"
on_expiry = "deidentify"
channels = ["email", "whatsapp"]
restricted_use = true

[roles.officer]
purposes = ["admission"]
specific = true
mask = ["nik"]
approve_disclosures = true
end_relationships = true

[recipients.partner_bank]
country = "sg"
purposes = ["admission"]
kind = "processor"
categories = ["email"]
transfer_basis = "safeguards"
pseudonymize = true
"#;

fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// `src` with `from` replaced by `to` (which must occur).
fn edit(src: &str, from: &str, to: &str) -> String {
    assert!(src.contains(from), "{from:?} not in source");
    src.replacen(from, to, 1)
}

fn parse(src: &str) -> Policy {
    match Policy::parse(src) {
        Ok(p) => p,
        Err(e) => panic!("unexpected errors:\n{}\nin:\n{src}", e.render("p.toml")),
    }
}

fn errors(src: &str) -> Vec<PolicyError> {
    match Policy::parse(src) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(e) => {
            assert!(!e.0.is_empty());
            e.0
        }
    }
}

/// Line and column (1-based, characters) of the last occurrence of `needle`.
fn position_of(src: &str, needle: &str) -> (usize, usize) {
    let Some(offset) = src.rfind(needle) else {
        panic!("{needle:?} not in source");
    };
    line_column(src, offset)
}

#[track_caller]
fn assert_error(src: &str, line: usize, column: usize, contains: &str) {
    let errs = errors(src);
    assert!(
        errs.iter()
            .any(|e| e.line == line && e.column == column && e.message.contains(contains)),
        "expected {line}:{column}: ...{contains}... among:\n{}",
        PolicyErrors(errs).render("p.toml")
    );
}

/// An error containing `contains` at the last occurrence of `needle`.
#[track_caller]
fn assert_error_at(src: &str, needle: &str, contains: &str) {
    let (line, column) = position_of(src, needle);
    assert_error(src, line, column, contains);
}

#[test]
fn minimal_policy_parses_with_defaults() {
    let p = parse(MINIMAL);
    assert_eq!(p.version, "2026-01");
    assert_eq!(p.controller.name, "Universitas Contoh");
    assert_eq!(p.controller.contact, "dpo@contoh.ac.id");
    assert_eq!(
        p.settings,
        Settings {
            request_deadline_hours: 72,
            minimum_age: 13,
            adult_age: 18,
            withdrawal_grace_days: 0,
            birth_date_category: None,
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
        }
    );
    assert_eq!(
        p.category("email"),
        Some(&Category {
            name: "email".into(),
            field_type: FieldType::Email,
            class: DataClass::General,
            index: false,
            unique: false,
            sign_in: false,
            document: None,
        })
    );
    assert_eq!(
        p.purpose("service"),
        Some(&Purpose {
            name: "service".into(),
            basis: LegalBasis::Contract,
            categories: vec!["email".into()],
            retention: Retention {
                amount: 1,
                unit: RetentionUnit::Years,
            },
            retention_from: RetentionFrom::Collection,
            on_expiry: OnExpiry::Erase,
            description: None,
            channels: vec![],
            restricted_use: false,
            compatible_with: Vec::new(),
        })
    );
    assert!(p.roles.is_empty());
    assert!(p.recipients.is_empty());
    assert!(p.category("phone").is_none());
    assert!(p.purpose("marketing").is_none());
    assert!(p.role("admin").is_none());
    assert!(p.recipient("bank").is_none());
    assert!(p.birth_date_category().is_none());
}

#[test]
fn full_example_parses_every_key() {
    let p = parse(FULL);
    assert_eq!(p.settings.request_deadline_hours, 48);
    assert_eq!(p.settings.minimum_age, 15);
    assert_eq!(p.settings.adult_age, 17);
    assert_eq!(p.settings.withdrawal_grace_days, 3);
    assert_eq!(
        p.birth_date_category().map(|c| c.name.as_str()),
        Some("dob")
    );

    let email = &p.categories["email"];
    assert!(email.index && email.unique);
    assert_eq!(p.categories["nik"].class, DataClass::Specific);

    let a = &p.purposes["admission"];
    assert_eq!(a.retention.to_string(), "5y");
    assert_eq!(a.retention_from, RetentionFrom::RelationshipEnd);
    assert_eq!(a.on_expiry, OnExpiry::Deidentify);
    assert_eq!(a.description.as_deref(), Some("Process an application"));
    assert_eq!(a.channels, ["email", "whatsapp"]);
    assert!(a.restricted_use);
    assert!(a.covers("nik") && !a.covers("phone"));

    let officer = &p.roles["officer"];
    assert!(officer.specific && officer.approve_disclosures && !officer.authorize_disclosures);
    assert!(officer.end_relationships);
    assert_eq!(officer.mask, ["nik"]);
    assert!(officer.has_purpose("admission"));

    let bank = &p.recipients["partner_bank"];
    assert_eq!(bank.country, "SG", "country codes are upper-cased");
    assert!(bank.is_foreign());
    assert_eq!(bank.kind, RecipientKind::Processor);
    assert_eq!(bank.categories, ["email"]);
    assert_eq!(bank.transfer_basis, Some(TransferBasis::Safeguards));
    assert!(bank.pseudonymize);
}

#[test]
fn inline_tables_dotted_keys_and_crlf_are_fine() {
    let src = "version = \"v\"\r\ncontroller = { name = \"C\", contact = \"c@x.id\" }\r\n\
                   categories.email = { type = \"email\", class = \"general\" }\r\n\
                   purposes.service.basis = \"contract\"\r\n\
                   purposes.service.categories = [\"email\"]\r\n\
                   purposes.service.retention = \"30d\"\r\n";
    let p = parse(src);
    assert_eq!(p.purposes["service"].retention.to_string(), "30d");
}

#[test]
fn birth_date_category_lookup() {
    let dob = "\n[categories.birth_date]\ntype = \"date\"\nclass = \"general\"\n";
    let p = parse(&with(dob));
    assert_eq!(
        p.birth_date_category().map(|c| c.name.as_str()),
        Some("birth_date")
    );

    let not_a_date = edit(dob, "\"date\"", "\"text\"");
    assert!(parse(&with(&not_a_date)).birth_date_category().is_none());

    let src = edit(
            MINIMAL,
            "\n[categories.email]",
            "\n[settings]\nbirth_date_category = \"born\"\n\n[categories.born]\ntype = \"date\"\nclass = \"general\"\n\n[categories.email]",
        );
    let p = parse(&format!("{src}{dob}"));
    assert_eq!(
        p.birth_date_category().map(|c| c.name.as_str()),
        Some("born")
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = errors("version = \"2026-01\nname = 1\n");
    assert_eq!((errs[0].line, errs[0].column), (1, 19));
    assert!(
        errs[0].message.starts_with("TOML syntax error: "),
        "{errs:?}"
    );

    assert_error(
        "version = \"v\"\n[controller\nname = \"x\"\n",
        2,
        12,
        "TOML syntax error: unclosed table",
    );
}

#[test]
fn duplicate_keys_and_tables() {
    assert_error(
        &with("retention = \"2y\"\n"),
        15,
        1,
        "duplicate key \"retention\"",
    );
    let src = with("\n[categories.email]\ntype = \"text\"\nclass = \"general\"\n");
    assert_error(&src, 16, 13, "duplicate key \"email\"");
    // Both duplicates are found.
    let errs = errors("a = 1\na = 2\nb = 3\nb = 4\n");
    assert_eq!(errs.len(), 2, "{errs:?}");
}

#[test]
fn unknown_keys_anywhere() {
    assert_error(
        &with("channel = [\"email\"]\n"),
        15,
        1,
        "unknown key \"channel\" in purpose \"service\" (did you mean \"channels\"?); \
             expected one of: basis, categories, retention, description, retention_from, \
             on_expiry, channels, restricted_use",
    );
    let src = edit(MINIMAL, "version", "verison");
    assert_error(
        &src,
        1,
        1,
        "unknown key \"verison\" in the top level of the policy",
    );
    assert_error(&src, 1, 1, "missing required key \"version\"");
    let src = edit(MINIMAL, "contact =", "phone = \"1\"\ncontact =");
    assert_error(&src, 5, 1, "unknown key \"phone\" in [controller]");
    let src = with("\n[settings]\ndeadline = 3\n");
    assert_error(&src, 17, 1, "unknown key \"deadline\" in [settings]");
    let src = edit(
        MINIMAL,
        "class = \"general\"",
        "class = \"general\"\nindexed = true",
    );
    assert_error(
        &src,
        10,
        1,
        "unknown key \"indexed\" in category \"email\" (did you mean \"index\"?)",
    );
    let roles = with("\n[roles.x]\npurposes = [\"service\"]\nmasks = []\n");
    assert_error(&roles, 18, 1, "unknown key \"masks\" in role \"x\"");
    let rec = with(
        "\n[recipients.x]\ncountry = \"ID\"\npurposes = [\"service\"]\nbasis = \"adequate\"\n",
    );
    assert_error(&rec, 19, 1, "unknown key \"basis\" in recipient \"x\"");
}

#[test]
fn missing_required_keys() {
    let src = edit(MINIMAL, "basis = \"contract\"\n", "");
    assert_error(
        &src,
        11,
        1,
        "missing required key \"basis\" in purpose \"service\" (legal basis: one of consent, \
             contract, legal_obligation, vital_interest, public_task, legitimate_interest)",
    );
    let src = edit(MINIMAL, "retention = \"1y\"\n", "");
    assert_error(
        &src,
        11,
        1,
        "missing required key \"retention\" in purpose \"service\"",
    );
    let src = edit(MINIMAL, "categories = [\"email\"]\n", "");
    assert_error(
        &src,
        11,
        1,
        "missing required key \"categories\" in purpose \"service\"",
    );
    let src = edit(MINIMAL, "type = \"email\"\n", "");
    assert_error(
        &src,
        7,
        1,
        "missing required key \"type\" in category \"email\"",
    );
    let src = edit(MINIMAL, "class = \"general\"\n", "");
    assert_error(
        &src,
        7,
        1,
        "missing required key \"class\" in category \"email\"",
    );
    let src = edit(MINIMAL, "name = \"Universitas Contoh\"\n", "");
    assert_error(&src, 3, 1, "missing required key \"name\" in [controller]");
    let src = edit(
        MINIMAL,
        "[controller]\nname = \"Universitas Contoh\"\ncontact = \"dpo@contoh.ac.id\"\n",
        "",
    );
    assert_error(&src, 1, 1, "missing required key \"controller\"");
    let src = edit(MINIMAL, "version = \"2026-01\"\n", "");
    assert_error(&src, 1, 1, "missing required key \"version\"");
    let src = with("\n[recipients.x]\npurposes = [\"service\"]\n");
    assert_error(
        &src,
        16,
        1,
        "missing required key \"country\" in recipient \"x\"",
    );
    let src = with("\n[roles.x]\nspecific = true\n");
    assert_error(
        &src,
        16,
        1,
        "missing required key \"purposes\" in role \"x\"",
    );
    assert_error(
        "version = \"v\"\n[controller]\nname = \"n\"\ncontact = \"c\"\n",
        1,
        1,
        "missing [categories]",
    );
    assert_error(
        "version = \"v\"\n[controller]\nname = \"n\"\ncontact = \"c\"\n",
        1,
        1,
        "missing [purposes]",
    );
}

#[test]
fn wrong_value_types() {
    let src = edit(
        MINIMAL,
        "class = \"general\"",
        "class = \"general\"\nindex = \"yes\"",
    );
    assert_error(
        &src,
        10,
        9,
        "\"index\" in category \"email\" must be true or false, not a string",
    );
    let src = edit(
        MINIMAL,
        "categories = [\"email\"]",
        "categories = \"email\"",
    );
    assert_error(&src, 13, 14, "must be a list of strings, not a string");
    let src = edit(
        MINIMAL,
        "categories = [\"email\"]",
        "categories = [\"email\", 3]",
    );
    assert_error(&src, 13, 24, "must be a string, not an integer");
    let src = edit(MINIMAL, "\"2026-01\"", "2026-01-01");
    assert_error(
        &src,
        1,
        11,
        "\"version\" in the top level of the policy must be a string, not a datetime",
    );
    let src = with("\n[settings]\nminimum_age = -1\nadult_age = \"18\"\n");
    assert_error(&src, 17, 15, "must be a whole number from 0 to");
    assert_error(&src, 18, 13, "must be a whole number, not a string");
    let src = with("\n[categories.phone]\n");
    assert_error(
        &src,
        16,
        1,
        "missing required key \"type\" in category \"phone\"",
    );
    let src = edit(MINIMAL, "\n\n[controller]", "\nroles = 3\n\n[controller]");
    assert_error(
        &src,
        2,
        9,
        "\"roles\" in the top level of the policy must be a table, not an integer",
    );
    let src = with("\n[roles]\nx = \"service\"\n");
    assert_error(
        &src,
        17,
        5,
        "role \"x\" must be a table ([roles.x] followed by its keys), not a string",
    );
}

#[test]
fn unknown_spellings() {
    let src = edit(MINIMAL, "\"contract\"", "\"contrct\"");
    let errs = errors(&src);
    assert_eq!(
        PolicyErrors(errs).render("p.toml"),
        "p.toml:12:9: unknown legal basis \"contrct\" for purpose \"service\"; expected one \
             of: consent, contract, legal_obligation, vital_interest, public_task, \
             legitimate_interest"
    );
    let src = edit(MINIMAL, "type = \"email\"", "type = \"mail\"");
    assert_error(&src, 8, 8, "unknown type \"mail\" for category \"email\"; expected one of: name, email, phone, nik, npwp, date, text, number, bool, document");
    let src = edit(MINIMAL, "class = \"general\"", "class = \"sensitive\"");
    assert_error(
        &src,
        9,
        9,
        "unknown class \"sensitive\" for category \"email\"; expected one of: general, specific",
    );
    let src = with("retention_from = \"end\"\non_expiry = \"delete\"\nchannels = [\"email\", \"fax\", \"email\"]\n");
    assert_error(&src, 15, 18, "unknown retention start \"end\" for purpose \"service\"; expected one of: collection, relationship_end");
    assert_error(&src, 16, 13, "unknown expiry action \"delete\" for purpose \"service\"; expected one of: erase, deidentify");
    assert_error(&src, 17, 22, "unknown channel \"fax\" for purpose \"service\"; expected one of: email, sms, whatsapp, phone, push, in_app, social, post");
    assert_error(
        &src,
        17,
        29,
        "channel \"email\" is listed twice in purpose \"service\"",
    );
    let src = with("\n[recipients.x]\ncountry = \"SG\"\npurposes = [\"service\"]\nkind = \"vendor\"\ntransfer_basis = \"bcr\"\n");
    assert_error_at(&src, "\"vendor\"", "unknown recipient kind \"vendor\" for recipient \"x\"; expected one of: processor, third_party, authority");
    assert_error_at(&src, "\"bcr\"", "unknown transfer basis \"bcr\" for recipient \"x\"; expected one of: adequate, safeguards, consent");
    // An invalid transfer_basis is not also reported as missing.
    assert_eq!(errors(&src).len(), 2);
}

#[test]
fn retention_syntax() {
    for bad in [
        "5x",
        "0d",
        "y",
        "-1y",
        "5Y",
        "",
        "1.5y",
        "5 y",
        " 5y",
        "99999999999d",
        "5yy",
    ] {
        let src = edit(MINIMAL, "\"1y\"", &format!("{bad:?}"));
        assert_error(
            &src,
            14,
            13,
            &format!("invalid retention {bad:?} for purpose \"service\""),
        );
    }
    for (text, amount, unit) in [
        ("30d", 30, RetentionUnit::Days),
        ("6m", 6, RetentionUnit::Months),
        ("5y", 5, RetentionUnit::Years),
        ("1d", 1, RetentionUnit::Days),
    ] {
        let r = Retention::parse(text);
        assert_eq!(r, Some(Retention { amount, unit }));
        assert_eq!(r.map(|r| r.to_string()).as_deref(), Some(text));
    }
}

#[test]
fn references_to_unknown_names() {
    let src = edit(MINIMAL, "[\"email\"]", "[\"email\", \"emial\", \"email\"]");
    assert_error(
        &src,
        13,
        24,
        "unknown category \"emial\" in purpose \"service\" (did you mean \"email\"?)",
    );
    assert_error(
        &src,
        13,
        33,
        "category \"email\" is listed twice in purpose \"service\"",
    );

    let src = with("\n[roles.officer]\npurposes = [\"servce\"]\nmask = [\"nik\"]\n");
    assert_error(
        &src,
        17,
        13,
        "unknown purpose \"servce\" in role \"officer\" (did you mean \"service\"?)",
    );
    assert_error(
        &src,
        18,
        9,
        "unknown category \"nik\" in the mask of role \"officer\"",
    );

    let src = with("\n[recipients.bank]\ncountry = \"ID\"\npurposes = [\"billing\"]\n");
    assert_error(
        &src,
        18,
        13,
        "unknown purpose \"billing\" in recipient \"bank\"",
    );
    let src = with("\n[recipients.bank]\ncountry = \"ID\"\npurposes = [\"service\"]\ncategories = [\"iban\"]\n");
    assert_error(
        &src,
        19,
        15,
        "unknown category \"iban\" in recipient \"bank\"",
    );
}

#[test]
fn roles_rules() {
    let src = with("\n[roles.admin]\npurposes = [\"service\"]\n");
    assert_error(&src, 16, 8, "role \"admin\" is built in");
    let src = with("\n[roles.officer]\npurposes = []\n");
    assert_error(&src, 17, 12, "role \"officer\" lists no purposes");
    let extra = "\n[categories.nik]\ntype = \"nik\"\nclass = \"specific\"\n\
                     \n[roles.support]\npurposes = [\"service\"]\nmask = [\"email\", \"nik\"]\n";
    let src = with(extra);
    assert_error(
        &src,
        22,
        18,
        "role \"support\" masks category \"nik\", but none of its purposes (service) covers it",
    );
    assert_eq!(errors(&src).len(), 1, "\"email\" is covered");
    // A mask over a covered category is fine.
    let src = edit(
        &src,
        "categories = [\"email\"]",
        "categories = [\"email\", \"nik\"]",
    );
    assert_eq!(parse(&src).roles["support"].mask, ["email", "nik"]);
    // Answering requests shows whole records: it needs the clearance for specific data.
    let src = with("\n[roles.helpdesk]\npurposes = [\"service\"]\nhandle_requests = true\n");
    assert_error_at(
        &src,
        "[roles.helpdesk]",
        "role \"helpdesk\" handles requests but is not cleared for specific data",
    );
    let src = with(
        "\n[roles.helpdesk]\npurposes = [\"service\"]\nhandle_requests = true\nspecific = true\n",
    );
    assert!(parse(&src).roles["helpdesk"].handle_requests);
}

#[test]
fn names_must_be_lowercase_identifiers() {
    let src = edit(MINIMAL, "[purposes.service]", "[purposes.Service]");
    assert_error(
        &src,
        11,
        11,
        "invalid purpose name \"Service\": names must start with a lower-case letter",
    );
    let src = with("\n[categories.\"e-mail\"]\ntype = \"email\"\nclass = \"general\"\n");
    assert_error(&src, 16, 13, "invalid category name \"e-mail\"");
    let src = with("\n[roles.1st]\npurposes = [\"service\"]\n");
    assert_error(&src, 16, 8, "invalid role name \"1st\"");
    let src = with("\n[recipients._x]\ncountry = \"ID\"\npurposes = [\"service\"]\n");
    assert_error(&src, 16, 13, "invalid recipient name \"_x\"");

    let longest = format!("a{}", "b".repeat(63));
    let src = with(&format!("\n[roles.{longest}]\npurposes = [\"service\"]\n"));
    assert!(parse(&src).role(&longest).is_some());
    let too_long = format!("{longest}c");
    let src = with(&format!("\n[roles.{too_long}]\npurposes = [\"service\"]\n"));
    assert_error(&src, 16, 8, "invalid role name");
    assert!(
        is_valid_name("a") && is_valid_name("ab_9") && !is_valid_name("") && !is_valid_name("aé")
    );
}

#[test]
fn category_rules() {
    let src = edit(
        MINIMAL,
        "class = \"general\"",
        "class = \"general\"\nunique = true",
    );
    assert_error(
        &src,
        10,
        10,
        "category \"email\" has unique = true without index = true",
    );
    let src = edit(&src, "unique = true", "unique = true\nindex = false");
    assert_error(&src, 10, 10, "without index = true");
    let src = with("\n[categories.opt_in]\ntype = \"bool\"\nclass = \"general\"\nindex = true\n");
    assert_error(
        &src,
        19,
        9,
        "category \"opt_in\" has type \"bool\" and cannot be indexed",
    );
    // Sign-in codes go only to an indexed address of the person.
    let src = edit(
        MINIMAL,
        "class = \"general\"",
        "class = \"general\"\nsign_in = true",
    );
    assert_error(
        &src,
        10,
        11,
        "category \"email\" has sign_in = true: only an indexed e-mail or phone category",
    );
    let src = edit(&src, "sign_in = true", "sign_in = true\nindex = true");
    assert!(parse(&src).category("email").unwrap().sign_in);
    let src = with(
        "\n[categories.name]\ntype = \"text\"\nclass = \"general\"\nindex = true\nsign_in = true\n",
    );
    assert_error(&src, 20, 11, "category \"name\" has sign_in = true");
}

/// MINIMAL with a document category `cert` (lines 16-20) covered by `service`, and `extra`
/// appended (from line 21).
fn with_document(cert: &str, extra: &str) -> String {
    let src = edit(
        MINIMAL,
        "categories = [\"email\"]",
        "categories = [\"email\", \"cert\"]",
    );
    format!("{src}\n[categories.cert]\n{cert}{extra}")
}

const CERT: &str = "type = \"document\"\nclass = \"specific\"\n\
                    media_types = [\"application/pdf\", \"image/jpeg\"]\nmax_size = \"10MB\"\n";

#[test]
fn document_categories_parse() {
    let p = parse(&with_document(CERT, ""));
    let cert = &p.categories["cert"];
    assert!(cert.is_document());
    assert!(!p.categories["email"].is_document());
    assert_eq!(p.categories["email"].document, None);
    assert_eq!(cert.class, DataClass::Specific);
    assert!(!cert.index && !cert.unique);
    assert_eq!(
        cert.document,
        Some(crate::documents::DocumentRules {
            media_types: vec![MediaType::Pdf, MediaType::Jpeg],
            max_size: 10_000_000,
        })
    );
    // index = false is harmless; every media type and the size bounds.
    let every = "type = \"document\"\nclass = \"general\"\nindex = false\nunique = false\n\
                 media_types = [\"image/webp\", \"image/png\", \"image/jpeg\", \"application/pdf\"]\n\
                 max_size = \"5GiB\"\n";
    let rules = parse(&with_document(every, "")).categories["cert"]
        .document
        .clone()
        .unwrap();
    assert_eq!(rules.media_types.len(), 4);
    assert_eq!(rules.max_size, 5 << 30);
    let one_byte = edit(CERT, "\"10MB\"", "\"1\"");
    assert_eq!(
        parse(&with_document(&one_byte, "")).categories["cert"]
            .document
            .as_ref()
            .map(|d| d.max_size),
        Some(1)
    );
    // Roles may mask a document (listed with its metadata, not downloadable).
    let masked = "\n[roles.clerk]\npurposes = [\"service\"]\nspecific = true\nmask = [\"cert\"]\n";
    assert_eq!(
        parse(&with_document(CERT, masked)).roles["clerk"].mask,
        ["cert"]
    );
    // A recipient without its own list receives what its purposes cover, documents aside
    // (see `disclosure::receivable`): declaring it is fine.
    let rec = "\n[recipients.bank]\ncountry = \"ID\"\npurposes = [\"service\"]\n";
    assert!(parse(&with_document(CERT, rec)).recipients["bank"]
        .categories
        .is_empty());
}

#[test]
fn document_rules_are_checked() {
    // Both keys required.
    let src = with_document(&edit(CERT, "max_size = \"10MB\"\n", ""), "");
    assert_error(
        &src,
        16,
        1,
        "missing required key \"max_size\" in category \"cert\" (the largest file it accepts",
    );
    let src = with_document(
        &edit(
            CERT,
            "media_types = [\"application/pdf\", \"image/jpeg\"]\n",
            "",
        ),
        "",
    );
    assert_error(&src, 16, 1, "missing required key \"media_types\" in category \"cert\" (the file types it accepts, from: application/pdf, image/jpeg, image/png, image/webp)");

    // Media types: known, listed once, at least one.
    let src = with_document(&edit(CERT, "\"image/jpeg\"]", "\"image/gif\"]"), "");
    assert_error(&src, 19, 35, "unknown media type \"image/gif\" for category \"cert\"; expected one of: application/pdf, image/jpeg, image/png, image/webp");
    let src = with_document(&edit(CERT, "\"image/jpeg\"]", "\"image/jpg\"]"), "");
    assert_error(&src, 19, 35, "unknown media type \"image/jpg\" for category \"cert\" (write it \"image/jpeg\"); expected one of:");
    let src = with_document(&edit(CERT, "\"image/jpeg\"]", "\"application/pdf\"]"), "");
    assert_error(
        &src,
        19,
        35,
        "media type \"application/pdf\" is listed twice in category \"cert\"",
    );
    let src = with_document(
        &edit(CERT, "[\"application/pdf\", \"image/jpeg\"]", "[]"),
        "",
    );
    assert_error(&src, 19, 15, "category \"cert\" accepts no media types; list at least one of: application/pdf, image/jpeg, image/png, image/webp");
    let src = with_document(
        &edit(
            CERT,
            "[\"application/pdf\", \"image/jpeg\"]",
            "\"application/pdf\"",
        ),
        "",
    );
    assert_error(
        &src,
        19,
        15,
        "\"media_types\" in category \"cert\" must be a list of strings, not a string",
    );

    // The size parses and is within bounds.
    for (size, message) in [
        ("10 megabytes", "unknown size unit"),
        ("0MB", "size must be at least 1 byte"),
        ("6GB", "size is larger than the limit of 5GiB"),
        ("", "expected a whole number of bytes with an optional unit"),
    ] {
        let src = with_document(&edit(CERT, "\"10MB\"", &format!("{size:?}")), "");
        assert_error(
            &src,
            20,
            12,
            &format!("invalid max_size {size:?} for category \"cert\": {message}"),
        );
    }
    let src = with_document(&edit(CERT, "\"10MB\"", "10485760"), "");
    assert_error(
        &src,
        20,
        12,
        "\"max_size\" in category \"cert\" must be a string, not an integer",
    );

    // No blind index of a file.
    let src = with_document(&format!("{CERT}index = true\n"), "");
    assert_error(&src, 21, 9, "category \"cert\" has type \"document\" and cannot be indexed: a blind index of a file makes no sense");
    let src = with_document(&format!("{CERT}index = true\nunique = true\n"), "");
    assert_error(
        &src,
        22,
        10,
        "category \"cert\" has type \"document\" and cannot be unique",
    );
    let src = with_document(&format!("{CERT}unique = true\n"), "");
    assert_error(&src, 21, 10, "cannot be unique");
    assert!(
        !errors(&src)
            .iter()
            .any(|e| e.message.contains("without index = true")),
        "one message for one mistake"
    );
}

#[test]
fn document_keys_are_refused_on_other_types() {
    let src = with_document(&edit(CERT, "\"document\"", "\"text\""), "");
    assert_error(&src, 19, 15, "media_types applies only to categories of type \"document\"; category \"cert\" has type \"text\": remove media_types or set type = \"document\"");
    assert_error(&src, 20, 12, "max_size applies only to categories of type \"document\"; category \"cert\" has type \"text\"");
    let src = edit(
        MINIMAL,
        "class = \"general\"",
        "class = \"general\"\nmax_size = \"1MB\"",
    );
    assert_error(&src, 10, 12, "max_size applies only to categories of type \"document\"; category \"email\" has type \"email\"");
    // An unknown type is reported once, not also as a misplaced key.
    let src = with_document(&edit(CERT, "\"document\"", "\"file\""), "");
    assert_error(&src, 17, 8, "unknown type \"file\"");
    assert!(
        !errors(&src)
            .iter()
            .any(|e| e.message.contains("applies only")),
        "{:?}",
        errors(&src)
    );
}

#[test]
fn documents_are_not_birth_dates_nor_disclosed() {
    let src = with_document(CERT, "").replacen(
        "\n[categories.email]",
        "\n[settings]\nbirth_date_category = \"cert\"\n\n[categories.email]",
        1,
    );
    assert_error(&src, 8, 23, "birth_date_category \"cert\" has type \"document\", but birth dates must be a category of type \"date\"");

    let rec = "\n[recipients.bank]\ncountry = \"ID\"\npurposes = [\"service\"]\n\
               categories = [\"email\", \"cert\"]\n";
    let src = with_document(CERT, rec);
    assert_error(&src, 25, 24, "recipient \"bank\" lists document category \"cert\", but disclosures release field values only, never documents; remove it here");
    assert_eq!(errors(&src).len(), 1);
}

#[test]
fn settings_rules() {
    let src = with("\n[settings]\nwithdrawal_grace_days = 4\n");
    assert_error(
        &src,
        17,
        25,
        "withdrawal_grace_days is 4, but processing must stop at most 3 x 24 hours",
    );
    assert_eq!(
        parse(&edit(&src, "= 4", "= 3"))
            .settings
            .withdrawal_grace_days,
        3
    );

    let src = with("\n[settings]\nminimum_age = 21\n");
    assert_error(
        &src,
        17,
        15,
        "minimum_age (21) is greater than adult_age (18)",
    );
    let src = with("\n[settings]\nadult_age = 12\n");
    assert_error(
        &src,
        17,
        13,
        "minimum_age (13) is greater than adult_age (12)",
    );
    let src = with("\n[settings]\nminimum_age = 18\nadult_age = 18\n");
    assert_eq!(parse(&src).settings.minimum_age, 18);

    let src = with("\n[settings]\nrequest_deadline_hours = 0\n");
    assert_error(&src, 17, 26, "request_deadline_hours must be at least 1");

    let src = with("\n[settings]\nbirth_date_category = \"dob\"\n");
    assert_error(
        &src,
        17,
        23,
        "birth_date_category names unknown category \"dob\"",
    );
    let src = with("\n[settings]\nbirth_date_category = \"email\"\n");
    assert_error(&src, 17, 23, "birth_date_category \"email\" has type \"email\", but birth dates must be a category of type \"date\"");
}

#[test]
fn recipient_rules() {
    let rec = |country: &str, rest: &str| {
        with(&format!(
            "\n[recipients.cloud]\ncountry = {country:?}\npurposes = [\"service\"]\n{rest}"
        ))
    };
    assert_error(
            &rec("US", ""),
            16,
            1,
            "recipient \"cloud\" is outside Indonesia (country \"US\"), so it needs transfer_basis (UU PDP Art. 56); expected one of: adequate, safeguards, consent",
        );
    let p = parse(&rec("us", "transfer_basis = \"adequate\"\n"));
    assert_eq!(p.recipients["cloud"].country, "US");
    assert_eq!(p.recipients["cloud"].kind, RecipientKind::ThirdParty);
    let p = parse(&rec("id", ""));
    assert_eq!(p.recipients["cloud"].country, "ID");
    assert!(!p.recipients["cloud"].is_foreign());
    assert_eq!(p.recipients["cloud"].transfer_basis, None);

    for bad in ["Indonesia", "U", "U1", "", "IDN", "ÜS"] {
        assert_error(&rec(bad, ""), 17, 11, &format!("invalid country {bad:?} for recipient \"cloud\"; expected a two-letter ISO 3166-1 alpha-2 code"));
    }
    assert_error(
        &rec("XX", ""),
        17,
        11,
        "country \"XX\" for recipient \"cloud\" is not an assigned ISO 3166-1 alpha-2 code",
    );
    assert_error(
        &rec("uk", ""),
        17,
        11,
        "is not an assigned ISO 3166-1 alpha-2 code (the United Kingdom is \"GB\")",
    );
    // An invalid country is not also reported as needing a transfer basis.
    assert_eq!(errors(&rec("XX", "")).len(), 1);

    let src = rec("ID", "categories = [\"email\", \"phone\"]\n")
        + "\n[categories.phone]\ntype = \"phone\"\nclass = \"general\"\n";
    assert_error(&src, 19, 24, "recipient \"cloud\" lists category \"phone\", but none of its purposes (service) covers it");
    assert_eq!(errors(&src).len(), 1);
}

#[test]
fn country_codes() {
    assert!(
        COUNTRY_CODES.windows(2).all(|w| w[0] < w[1]),
        "sorted for binary search"
    );
    for code in ["ID", "SG", "US", "GB", "AX", "ZW", "SS", "XK"] {
        assert_eq!(is_country_code(code), code != "XK", "{code}");
    }
    assert!(!is_country_code("UK") && !is_country_code("EU") && !is_country_code("id"));
}

#[test]
fn empty_version_and_controller_fields() {
    let src = edit(MINIMAL, "\"2026-01\"", "\"  \"");
    assert_error(
        &src,
        1,
        11,
        "\"version\" in the top level of the policy must not be empty",
    );
    let src = edit(MINIMAL, "\"dpo@contoh.ac.id\"", "\"\"");
    assert_error(&src, 5, 11, "\"contact\" in [controller] must not be empty");
}

#[test]
fn empty_sections() {
    let src = edit(MINIMAL, "[purposes.service]", "[roles.x]");
    let src = edit(&src, "\n\n[controller]", "\npurposes = {}\n\n[controller]");
    assert_error(&src, 2, 12, "[purposes] declares no purposes");
    let src = edit(MINIMAL, "[\"email\"]", "[]");
    assert_error(&src, 13, 14, "purpose \"service\" covers no categories");
}

#[test]
fn every_error_is_reported_in_source_order() {
    let src = r#"version = ""
colour = "green"

[controller]
name = "X"

[categories.email]
type = "emial"
class = "general"
unique = true

[purposes.admission]
basis = "contrct"
categories = ["email", "phone"]
retention = "5x"

[roles.admin]
purposes = ["admission"]

[recipients.google]
country = "US"
purposes = ["admission"]
"#;
    let errs = errors(src);
    let got: Vec<(usize, usize)> = errs.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        [
            (1, 11),  // empty version
            (2, 1),   // unknown key colour
            (4, 1),   // missing contact
            (8, 8),   // unknown type
            (10, 10), // unique without index
            (13, 9),  // unknown basis
            (14, 24), // unknown category phone
            (15, 13), // bad retention
            (17, 8),  // role admin
            (20, 1),  // foreign recipient without transfer basis
        ],
        "{}",
        PolicyErrors(errs.clone()).render("p.toml")
    );
}

#[test]
fn render_and_display() {
    let src = edit(MINIMAL, "\"1y\"", "\"5x\"");
    let Err(e) = Policy::parse(&src) else {
        panic!("expected an error");
    };
    let rendered = e.render("p.toml");
    assert!(
        rendered.starts_with("p.toml:14:13: invalid retention \"5x\""),
        "{rendered}"
    );
    assert_eq!(rendered.lines().count(), 1);
    assert_eq!(format!("p.toml:{e}"), rendered);

    let two = PolicyErrors(vec![
        PolicyError {
            line: 1,
            column: 2,
            message: "a".into(),
        },
        PolicyError {
            line: 3,
            column: 4,
            message: "b".into(),
        },
    ]);
    assert_eq!(two.render("x.toml"), "x.toml:1:2: a\nx.toml:3:4: b");
    assert_eq!(two.to_string(), "1:2: a\n3:4: b");
}

#[test]
fn columns_count_characters_not_bytes() {
    let src = edit(
        MINIMAL,
        "name = \"Universitas Contoh\"",
        "name = \"Universitäs Çontoh — Jakarta\"; bogus = 1",
    );
    // The syntax error is right after the closing quote: 37 characters in (42 bytes).
    let errs = errors(&src);
    assert_eq!((errs[0].line, errs[0].column), (4, 38), "{errs:?}");
    let src = edit(
        MINIMAL,
        "[controller]\nname = \"Universitas Contoh\"\ncontact = \"dpo@contoh.ac.id\"",
        "controller = { name = \"Ünï\", nope = 1, contact = \"c\" }",
    );
    // 29 characters (32 bytes) precede "nope".
    assert_error(&src, 3, 30, "unknown key \"nope\" in [controller]");
}

#[test]
fn spellings_round_trip() {
    for b in LegalBasis::ALL {
        assert_eq!(LegalBasis::parse(b.as_str()), Some(*b));
    }
    assert_eq!(LegalBasis::LegalObligation.as_str(), "legal_obligation");
    assert_eq!(
        LegalBasis::LegitimateInterest.to_string(),
        "legitimate_interest"
    );
    assert_eq!(DataClass::Specific.as_str(), "specific");
    assert_eq!(DataClass::parse("general"), Some(DataClass::General));
    assert_eq!(RetentionFrom::RelationshipEnd.as_str(), "relationship_end");
    assert_eq!(OnExpiry::Deidentify.as_str(), "deidentify");
    assert_eq!(RecipientKind::ThirdParty.as_str(), "third_party");
    assert_eq!(TransferBasis::Safeguards.as_str(), "safeguards");
    assert_eq!(RetentionUnit::Months.as_str(), "m");
    assert_eq!(LegalBasis::parse("Consent"), None);
    assert_eq!(
        did_you_mean("contrct", ["consent", "contract"]),
        " (did you mean \"contract\"?)"
    );
    assert_eq!(did_you_mean("zz", ["zy"]), "");
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

const VERSIONED: &str = r#"version = "v1"

[controller]
name = "C"
contact = "dpo@c.id"

[categories.email]
type = "email"
class = "general"

[categories.phone]
type = "phone"
class = "general"

[purposes.service]
basis = "contract"
categories = ["email", "phone"]
retention = "1y"

[purposes.marketing]
basis = "consent"
categories = ["email"]
retention = "2y"
channels = ["email", "whatsapp"]

[roles.support]
purposes = ["service"]

[recipients.mailer]
country = "ID"
purposes = ["marketing"]
"#;

fn version_of(src: &str, purpose: &str) -> String {
    match parse(src).purpose_version(purpose) {
        Some(v) => v,
        None => panic!("no purpose {purpose}"),
    }
}

#[test]
fn purpose_version_is_hex_sha256_and_stable() {
    let v = version_of(VERSIONED, "service");
    assert_eq!(v.len(), 64);
    assert!(v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(v, version_of(VERSIONED, "service"));
    assert_ne!(v, version_of(VERSIONED, "marketing"));
    assert_eq!(parse(VERSIONED).purpose_version("nope"), None);
}

#[test]
fn purpose_version_changes_with_what_the_purpose_covers() {
    let service = version_of(VERSIONED, "service");
    let marketing = version_of(VERSIONED, "marketing");
    let changed = |from: &str, to: &str| {
        let src = edit(VERSIONED, from, to);
        (version_of(&src, "service"), version_of(&src, "marketing"))
    };

    // Changes of the service purpose itself: its version changes, marketing's does not.
    for (from, to) in [
        (
            "categories = [\"email\", \"phone\"]",
            "categories = [\"email\"]",
        ),
        ("basis = \"contract\"", "basis = \"legitimate_interest\""),
        ("retention = \"1y\"", "retention = \"12m\""),
        (
            "retention = \"1y\"",
            "retention = \"1y\"\ndescription = \"Run the service\"",
        ),
        (
            "retention = \"1y\"",
            "retention = \"1y\"\nretention_from = \"relationship_end\"",
        ),
        (
            "retention = \"1y\"",
            "retention = \"1y\"\non_expiry = \"deidentify\"",
        ),
        // A covered category's type or class.
        ("type = \"phone\"", "type = \"text\""),
        (
            "type = \"phone\"\nclass = \"general\"",
            "type = \"phone\"\nclass = \"specific\"",
        ),
        // A recipient starts listing it.
        (
            "purposes = [\"marketing\"]\n",
            "purposes = [\"marketing\", \"service\"]\n",
        ),
    ] {
        let (s, m) = changed(from, to);
        assert_ne!(
            s, service,
            "{from:?} -> {to:?} must change the service version"
        );
        assert_eq!(m, marketing, "{from:?} -> {to:?} must not change marketing");
    }

    // A description change after one exists.
    let described = edit(
        VERSIONED,
        "retention = \"1y\"",
        "retention = \"1y\"\ndescription = \"a\"",
    );
    let a = version_of(&described, "service");
    assert_ne!(
        a,
        version_of(&edit(&described, "\"a\"", "\"b\""), "service")
    );

    // Changes of marketing only.
    for (from, to) in [
        ("retention = \"2y\"", "retention = \"3y\""),
        (
            "channels = [\"email\", \"whatsapp\"]",
            "channels = [\"email\"]",
        ),
        ("\"consent\"", "\"legitimate_interest\""),
    ] {
        let (s, m) = changed(from, to);
        assert_eq!(s, service, "{from:?} -> {to:?} must not change service");
        assert_ne!(m, marketing, "{from:?} -> {to:?} must change marketing");
    }
}

#[test]
fn purpose_version_ignores_what_it_does_not_cover() {
    let service = version_of(VERSIONED, "service");
    for (from, to) in [
        // Order of lists.
        ("[\"email\", \"phone\"]", "[\"phone\", \"email\"]"),
        // Roles, index flags, restricted use, the policy version, the controller.
        (
            "[roles.support]\npurposes = [\"service\"]",
            "[roles.support]\npurposes = [\"service\"]\nmask = [\"phone\"]",
        ),
        ("type = \"email\"", "type = \"email\"\nindex = true"),
        (
            "retention = \"1y\"",
            "retention = \"1y\"\nrestricted_use = true",
        ),
        ("version = \"v1\"", "version = \"v2\""),
        ("name = \"C\"", "name = \"D\""),
        // A category it does not cover.
        (
            "[categories.phone]",
            "[categories.fax]\ntype = \"text\"\nclass = \"general\"\n\n[categories.phone]",
        ),
        // A recipient of another purpose.
        (
            "country = \"ID\"",
            "country = \"SG\"\ntransfer_basis = \"adequate\"",
        ),
    ] {
        let src = edit(VERSIONED, from, to);
        assert_eq!(version_of(&src, "service"), service, "{from:?} -> {to:?}");
    }
    // Channel order.
    let src = edit(
        VERSIONED,
        "[\"email\", \"whatsapp\"]",
        "[\"whatsapp\", \"email\"]",
    );
    assert_eq!(
        version_of(&src, "marketing"),
        version_of(VERSIONED, "marketing")
    );
}

#[test]
fn the_time_zone_defaults_to_jakarta_and_must_be_an_iana_name() {
    let p = Policy::parse(crate::test_policies::TEST).unwrap();
    assert_eq!(p.settings.time_zone, "Asia/Jakarta");
    assert_eq!(
        jiff::Timestamp::UNIX_EPOCH
            .to_zoned(p.settings.zone())
            .strftime("%H:%M %Z")
            .to_string(),
        "07:00 WIB"
    );
    let source = crate::test_policies::TEST.replace(
        "[settings]\n",
        "[settings]\ntime_zone = \"Asia/Jayapura\"\n",
    );
    assert_ne!(source, crate::test_policies::TEST);
    let p = Policy::parse(&source).unwrap();
    assert_eq!(p.settings.time_zone, "Asia/Jayapura");
    let bad = crate::test_policies::TEST
        .replace("[settings]\n", "[settings]\ntime_zone = \"Mars/Olympus\"\n");
    let errors = Policy::parse(&bad).unwrap_err().render("p.toml");
    assert!(
        errors.contains("time_zone \"Mars/Olympus\" is not a time zone name"),
        "{errors}"
    );
}

#[test]
fn the_portal_role_is_built_in() {
    let source = format!(
        "{}\n[roles.subject]\npurposes = [\"admission\"]\n",
        crate::test_policies::TEST
    );
    let p = Policy::parse(&source).unwrap();
    assert!(p.reserved_role_error().unwrap().contains("privacy portal"));
}
