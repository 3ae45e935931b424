//! The preset policies shipped in `policies/` parse and have the properties their comments claim.

use amanah_core::documents::MediaType;
use amanah_core::fields::FieldType;
use amanah_core::policy::{DataClass, LegalBasis, Policy, RecipientKind, CHANNELS, HOME_COUNTRY};

const CRM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/crm.toml"
));
const UNIVERSITY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../policies/university.toml"
));

type Result<T = ()> = std::result::Result<T, String>;

fn parse(file: &str, source: &str) -> Result<Policy> {
    Policy::parse(source).map_err(|e| format!("{file} does not parse:\n{}", e.render(file)))
}

fn presets() -> Result<[(&'static str, Policy); 2]> {
    Ok([
        ("policies/crm.toml", parse("policies/crm.toml", CRM)?),
        (
            "policies/university.toml",
            parse("policies/university.toml", UNIVERSITY)?,
        ),
    ])
}

#[test]
fn policy_presets_parse() -> Result {
    let [(_, crm), (_, ubm)] = presets()?;
    assert_eq!(crm.version, "crm-2026-01");
    assert_eq!(ubm.version, "ubm-1.1-10-2024");
    assert_eq!(crm.settings.minimum_age, 13, "the CRM refuses under-13s");
    for (file, p) in presets()? {
        assert!(
            p.categories.len() >= 15,
            "{file}: {} categories",
            p.categories.len()
        );
        assert!(!p.roles.is_empty() && !p.recipients.is_empty(), "{file}");
        assert!(p.birth_date_category().is_some(), "{file}");
    }
    Ok(())
}

#[test]
fn policy_presets_have_consent_based_marketing_with_channels() -> Result {
    for (file, p) in presets()? {
        let marketing: Vec<_> = p
            .purposes
            .values()
            .filter(|purpose| purpose.basis == LegalBasis::Consent && !purpose.channels.is_empty())
            .collect();
        assert!(
            !marketing.is_empty(),
            "{file}: no consent-based purpose with channels"
        );
        for purpose in marketing {
            assert!(
                purpose
                    .channels
                    .iter()
                    .all(|c| CHANNELS.contains(&c.as_str())),
                "{file}: {}",
                purpose.name
            );
        }
    }
    let [(_, crm), (_, ubm)] = presets()?;
    assert_eq!(
        ubm.purposes["direct_marketing"].channels,
        ["push", "in_app", "whatsapp", "social", "email"]
    );
    assert_eq!(crm.purposes["marketing"].basis, LegalBasis::Consent);
    Ok(())
}

#[test]
fn policy_presets_have_specific_categories() -> Result {
    for (file, p) in presets()? {
        let specific: Vec<_> = p
            .categories
            .values()
            .filter(|c| c.class == DataClass::Specific)
            .map(|c| c.name.as_str())
            .collect();
        assert!(!specific.is_empty(), "{file}: no specific category");
        assert!(
            specific.contains(&"bank_account"),
            "{file}: personal financial data is specific"
        );
        // Someone must be able to work with specific data.
        assert!(p.roles.values().any(|r| r.specific), "{file}");
    }
    let [_, (_, ubm)] = presets()?;
    for c in [
        "health_certificate",
        "colour_blindness_certificate",
        "religion",
    ] {
        assert_eq!(ubm.categories[c].class, DataClass::Specific, "{c}");
    }
    Ok(())
}

#[test]
fn policy_foreign_recipients_have_a_transfer_basis() -> Result {
    for (file, p) in presets()? {
        assert!(
            p.recipients.values().any(|r| r.country != HOME_COUNTRY),
            "{file}: no transfer abroad"
        );
        for r in p.recipients.values() {
            if r.country != HOME_COUNTRY {
                assert!(r.transfer_basis.is_some(), "{file}: recipient {}", r.name);
            }
        }
        let authorities: Vec<_> = p
            .recipients
            .values()
            .filter(|r| r.kind == RecipientKind::Authority)
            .collect();
        assert!(!authorities.is_empty(), "{file}: no authority");
        for a in authorities {
            assert!(
                a.purposes
                    .iter()
                    .all(|x| p.purposes[x].basis == LegalBasis::LegalObligation),
                "{file}: authority {} serves a purpose without a legal obligation",
                a.name
            );
        }
    }
    Ok(())
}

#[test]
fn policy_presets_have_a_disclosure_workflow_and_lookup_keys() -> Result {
    for (file, p) in presets()? {
        assert!(
            p.roles.values().any(|r| r.approve_disclosures),
            "{file}: nobody approves disclosures"
        );
        assert!(
            p.roles.values().any(|r| r.authorize_disclosures),
            "{file}: nobody authorizes disclosures"
        );
        assert!(
            p.categories["email"].index && p.categories["email"].unique,
            "{file}"
        );
        assert!(p.role("dpo").is_some(), "{file}");
        // Every purpose has a version.
        for name in p.purposes.keys() {
            assert_eq!(
                p.purpose_version(name).map(|v| v.len()),
                Some(64),
                "{file}: {name}"
            );
        }
    }
    Ok(())
}

#[test]
fn policy_presets_keep_documents_as_documents() -> Result {
    let [(_, crm), (_, ubm)] = presets()?;
    let pdf_or_scan = [MediaType::Pdf, MediaType::Jpeg, MediaType::Png];
    for (c, class, types, max_size) in [
        (
            "health_certificate",
            DataClass::Specific,
            &pdf_or_scan[..],
            10_000_000,
        ),
        (
            "colour_blindness_certificate",
            DataClass::Specific,
            &pdf_or_scan[..],
            10_000_000,
        ),
        (
            "study_permit",
            DataClass::General,
            &pdf_or_scan[..],
            10_000_000,
        ),
        (
            "academic_documents",
            DataClass::General,
            &pdf_or_scan[..],
            20_000_000,
        ),
        (
            "id_photo",
            DataClass::General,
            &[MediaType::Jpeg, MediaType::Png][..],
            2_000_000,
        ),
    ] {
        let cat = &ubm.categories[c];
        assert_eq!(cat.field_type, FieldType::Document, "{c}");
        assert_eq!(cat.class, class, "{c}");
        let rules = cat.document.as_ref().ok_or(c)?;
        assert_eq!(rules.media_types, types, "{c}");
        assert_eq!(rules.max_size, max_size, "{c}");
        assert!(ubm.purposes["admission"].covers(c), "{c}");
    }
    // The health reviewer sees the certificates; the admissions officer, without `specific`,
    // does not.
    assert!(ubm.roles["admissions_health_reviewer"].specific);
    assert!(!ubm.roles["admissions_officer"].specific);

    let attachments = &crm.categories["support_attachments"];
    assert!(attachments.is_document());
    assert!(crm.purposes["support"].covers("support_attachments"));
    assert!(crm.purposes["legal_claims"].covers("support_attachments"));

    for (file, p) in [("crm", &crm), ("university", &ubm)] {
        for c in p.categories.values() {
            assert_eq!(c.document.is_some(), c.is_document(), "{file}: {}", c.name);
            assert!(!(c.is_document() && c.index), "{file}: {}", c.name);
        }
        // Disclosures release field values only: no recipient lists a document.
        for r in p.recipients.values() {
            for c in &r.categories {
                assert!(
                    !p.categories[c].is_document(),
                    "{file}: {} lists {c}",
                    r.name
                );
            }
        }
    }
    Ok(())
}

#[test]
fn policy_presets_declare_the_recipients_the_reference_policies_name() -> Result {
    let [(_, crm), (_, ubm)] = presets()?;
    let kind = |p: &Policy, name: &str| p.recipient(name).map(|r| r.kind);
    assert_eq!(
        kind(&crm, "payment_gateway"),
        Some(RecipientKind::Processor)
    );
    assert!(crm.recipient("google").is_some() && crm.recipient("google_analytics").is_some());
    assert!(crm.recipients["google_analytics"].pseudonymize);
    assert_eq!(
        kind(&crm, "government_authorities"),
        Some(RecipientKind::Authority)
    );
    assert_eq!(
        kind(&ubm, "government_authorities"),
        Some(RecipientKind::Authority)
    );
    let partners = &ubm.recipients["partner_universities"];
    assert!(partners.is_foreign() && partners.pseudonymize && partners.transfer_basis.is_some());
    assert!(ubm.recipients["overseas_affiliates"].is_foreign());
    Ok(())
}
