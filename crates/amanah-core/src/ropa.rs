//! The record of processing activities (UU PDP Art. 31) generated from the policy and live
//! counts, and the data protection impact assessment triggers of UU PDP Art. 34 with a DPIA
//! skeleton for the DPO to complete.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::policy::{DataClass, Policy};

/// The security measures the running configuration provides, stated in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// Where the data lives (e.g. "SQLite, WAL, synchronous = FULL").
    pub storage: String,
}

impl Security {
    fn measures(&self) -> Vec<String> {
        vec![
            "encryption: every field sealed with AES-256-GCM under a per-subject data key, bound to (subject, field, key version)".into(),
            "key management: per-subject data keys wrapped by rotatable key-encryption keys held in a key file outside the database; erasure destroys the subject's key".into(),
            "search: keyed blind indexes (HMAC-SHA256), one key per category".into(),
            "access control: role x purpose x category decisions from the policy; specific data only for cleared roles".into(),
            "audit: every access and change recorded in an HMAC-chained, tamper-evident log".into(),
            "disclosures: four eyes (person in charge approves, account owner authorizes), bounded and audited releases".into(),
            format!("storage: {}", self.storage),
        ]
    }
}

/// Builds the record of processing activities as a JSON document (`amanah-ropa/1`).
/// `subjects_per_purpose` are live counts; `generated_at` is RFC 3339.
pub fn build(
    policy: &Policy,
    subjects_per_purpose: &BTreeMap<String, u64>,
    security: &Security,
    generated_at: &str,
) -> Value {
    // A document category also says what files it accepts.
    let category = |c: &String| {
        let cat = policy.category(c);
        let mut v = json!({"name": c, "class": cat.map_or("general", |c| c.class.as_str())});
        if let Some(rules) = cat.and_then(|c| c.document.as_ref()) {
            v["document"] = json!({
                "media_types": rules.media_types.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "max_size": rules.max_size,
            });
        }
        v
    };
    let activities: Vec<Value> = policy
        .purposes
        .values()
        .map(|p| {
            let recipients: Vec<Value> = policy
                .recipients
                .values()
                .filter(|r| r.purposes.contains(&p.name))
                .map(|r| {
                    json!({
                        "name": r.name, "kind": r.kind.as_str(), "country": r.country,
                        "transfer_basis": r.transfer_basis.map(|b| b.as_str()),
                        "pseudonymized": r.pseudonymize,
                    })
                })
                .collect();
            json!({
                "purpose": p.name,
                "description": p.description,
                "legal_basis": p.basis.as_str(),
                "categories": p.categories.iter().map(category).collect::<Vec<_>>(),
                "subjects": subjects_per_purpose.get(&p.name).copied().unwrap_or(0),
                "recipients": recipients,
                "retention": p.retention.to_string(),
                "retention_from": p.retention_from.as_str(),
                "on_expiry": p.on_expiry.as_str(),
            })
        })
        .collect();
    json!({
        "format": "amanah-ropa/1",
        "generated_at": generated_at,
        "policy_version": policy.version,
        "controller": {"name": policy.controller.name, "contact": policy.controller.contact},
        "activities": activities,
        "security_measures": security.measures(),
    })
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn recipients_text(a: &Value) -> String {
    a["recipients"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let basis = match r["transfer_basis"].as_str() {
                        Some(b) => format!(", transfer: {b}"),
                        None => String::new(),
                    };
                    format!(
                        "{} ({}, {}{basis})",
                        s(&r["name"]),
                        s(&r["kind"]),
                        s(&r["country"])
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn categories_text(a: &Value) -> String {
    a["categories"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    if c["class"] == "specific" {
                        format!("{} (specific)", s(&c["name"]))
                    } else {
                        s(&c["name"])
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The record as Markdown.
pub fn markdown(ropa: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Record of processing activities (UU PDP Art. 31)\n");
    let _ = writeln!(
        out,
        "- Controller: {} ({})",
        s(&ropa["controller"]["name"]),
        s(&ropa["controller"]["contact"])
    );
    let _ = writeln!(out, "- Policy version: {}", s(&ropa["policy_version"]));
    let _ = writeln!(out, "- Generated: {}\n", s(&ropa["generated_at"]));
    let _ = writeln!(out, "## Processing activities\n");
    let _ = writeln!(
        out,
        "| Purpose | Legal basis | Categories | Subjects | Recipients (country, transfer basis) | Retention |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for a in ropa["activities"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} from {}, then {} |",
            cell(&s(&a["purpose"])),
            s(&a["legal_basis"]),
            cell(&categories_text(a)),
            s(&a["subjects"]),
            cell(&recipients_text(a)),
            s(&a["retention"]),
            s(&a["retention_from"]),
            s(&a["on_expiry"]),
        );
    }
    let _ = writeln!(out, "\n## Security measures\n");
    for m in ropa["security_measures"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "- {}", s(m));
    }
    out
}

/// The record as CSV, one row per purpose.
pub fn csv(ropa: &Value) -> String {
    use crate::csv_cell::field;
    let mut out = String::from(
        "controller,contact,purpose,legal_basis,categories,subjects,recipients,retention,retention_from,on_expiry,security_measures\n",
    );
    let measures = ropa["security_measures"]
        .as_array()
        .map(|m| m.iter().map(s).collect::<Vec<_>>().join("; "))
        .unwrap_or_default();
    for a in ropa["activities"].as_array().into_iter().flatten() {
        let row = [
            s(&ropa["controller"]["name"]),
            s(&ropa["controller"]["contact"]),
            s(&a["purpose"]),
            s(&a["legal_basis"]),
            categories_text(a),
            s(&a["subjects"]),
            recipients_text(a),
            s(&a["retention"]),
            s(&a["retention_from"]),
            s(&a["on_expiry"]),
            measures.clone(),
        ];
        out.push_str(&row.iter().map(|v| field(v)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// A UU PDP Art. 34(2) circumstance that calls for an impact assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    SpecificData,
    Children,
    LargeScale,
    AutomatedDecisions,
    CrossBorder,
    Matching,
}

impl Trigger {
    pub const ALL: [Trigger; 6] = [
        Trigger::AutomatedDecisions,
        Trigger::SpecificData,
        Trigger::LargeScale,
        Trigger::Matching,
        Trigger::CrossBorder,
        Trigger::Children,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::SpecificData => "specific data",
            Trigger::Children => "children",
            Trigger::LargeScale => "large-scale processing",
            Trigger::AutomatedDecisions => "automated decisions / profiling",
            Trigger::CrossBorder => "cross-border transfer",
            Trigger::Matching => "matching of data sets",
        }
    }
}

/// Whether a trigger is present in the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Present; the evidence names the policy entries.
    Present(Vec<String>),
    Absent,
    /// The policy alone cannot tell: the DPO states it.
    Assess(String),
}

const PROFILING_WORDS: [&str; 7] = [
    "profil",
    "automated",
    "scoring",
    "analytics",
    "recommend",
    "segment",
    "personaliz",
];
const MATCHING_WORDS: [&str; 6] = ["match", "combin", "enrich", "link", "integrat", "verif"];

fn purposes_mentioning(policy: &Policy, words: &[&str]) -> Vec<String> {
    policy
        .purposes
        .values()
        .filter(|p| {
            let text = format!(
                "{} {}",
                p.name.to_lowercase(),
                p.description.as_deref().unwrap_or("").to_lowercase()
            );
            words.iter().any(|w| text.contains(w))
        })
        .map(|p| format!("purpose {}", p.name))
        .collect()
}

fn present(evidence: Vec<String>) -> Finding {
    if evidence.is_empty() {
        Finding::Absent
    } else {
        Finding::Present(evidence)
    }
}

/// The Art. 34 triggers present in a policy. Profiling and matching are recognized from the
/// purposes' names and descriptions; the scale cannot be read from a policy and is left to the
/// DPO.
pub fn dpia_triggers(policy: &Policy) -> Vec<(Trigger, Finding)> {
    Trigger::ALL
        .iter()
        .map(|t| {
            let finding = match t {
                Trigger::SpecificData => present(
                    policy
                        .categories
                        .values()
                        .filter(|c| c.class == DataClass::Specific)
                        .map(|c| format!("category {}", c.name))
                        .collect(),
                ),
                Trigger::Children => {
                    if policy.settings.minimum_age < policy.settings.adult_age {
                        Finding::Present(vec![format!(
                            "settings: subjects from age {} accepted, adults from {}",
                            policy.settings.minimum_age, policy.settings.adult_age
                        )])
                    } else {
                        Finding::Absent
                    }
                }
                Trigger::LargeScale => Finding::Assess(
                    "state the number of subjects per purpose (see `amanah ropa`) and whether processing is large-scale".into(),
                ),
                Trigger::AutomatedDecisions => {
                    present(purposes_mentioning(policy, &PROFILING_WORDS))
                }
                Trigger::CrossBorder => present(
                    policy
                        .recipients
                        .values()
                        .filter(|r| r.is_foreign())
                        .map(|r| {
                            format!(
                                "recipient {} ({}, {})",
                                r.name,
                                r.country,
                                r.transfer_basis.map_or("no transfer basis", |b| b.as_str())
                            )
                        })
                        .collect(),
                ),
                Trigger::Matching => present(purposes_mentioning(policy, &MATCHING_WORDS)),
            };
            (*t, finding)
        })
        .collect()
}

/// A DPIA skeleton in Markdown: the triggers found and the sections UU PDP Art. 34(3) asks for,
/// with the policy's facts filled in and the assessments left for the DPO.
pub fn dpia_skeleton(policy: &Policy, findings: &[(Trigger, Finding)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Data protection impact assessment (UU PDP Art. 34)\n"
    );
    let _ = writeln!(
        out,
        "- Controller: {} ({})\n- Policy version: {}\n- Assessor (DPO): ____\n- Date: ____\n",
        policy.controller.name, policy.controller.contact, policy.version
    );
    let _ = writeln!(out, "## 1. Why an assessment is needed (Art. 34(2))\n");
    for (t, f) in findings {
        match f {
            Finding::Present(ev) => {
                let _ = writeln!(out, "- [x] {}: {}", t.as_str(), ev.join("; "));
            }
            Finding::Absent => {
                let _ = writeln!(out, "- [ ] {}: not found in the policy", t.as_str());
            }
            Finding::Assess(what) => {
                let _ = writeln!(out, "- [?] {}: {what}", t.as_str());
            }
        }
    }
    let _ = writeln!(out, "\n## 2. Systematic description of the processing\n");
    for p in policy.purposes.values() {
        let _ = writeln!(
            out,
            "- **{}** ({}): {}; categories {}; retention {}",
            p.name,
            p.basis.as_str(),
            p.description.as_deref().unwrap_or("____"),
            p.categories.join(", "),
            p.retention
        );
    }
    let _ = writeln!(
        out,
        "\n## 3. Necessity and proportionality of each purpose\n\n____\n\n\
         ## 4. Risks to the rights of data subjects\n\n\
         | Risk | Likelihood | Severity | Subjects affected |\n|---|---|---|---|\n| ____ | ____ | ____ | ____ |\n\n\
         ## 5. Measures to address the risks\n\n\
         - Encryption per subject, keys outside the database, erasure by key destruction\n\
         - Role x purpose access control, tamper-evident audit log\n\
         - Disclosures only after approval (PIC) and authorization (account owner)\n\
         - ____\n\n\
         ## 6. Residual risk and decision\n\n____\n"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DPIA triggers are read from the policy's words (a purpose's name and description):
    /// this text is what `dpia_triggers_and_skeleton` is about.
    const DPIA_POLICY: &str = r#"
version = "r1"
[controller]
name = "Contoh"
contact = "dpo@contoh.id"
[settings]
minimum_age = 13
[categories.email]
type = "email"
class = "general"
[categories.health]
type = "text"
class = "specific"
[purposes.service]
basis = "contract"
categories = ["email", "health"]
retention = "1y"
description = "Service, with identity verification"
[purposes.analytics]
basis = "consent"
categories = ["email"]
retention = "6m"
[recipients.cloud]
country = "SG"
purposes = ["analytics"]
transfer_basis = "safeguards"
pseudonymize = true
"#;

    fn ropa_of(source: &str) -> Value {
        let counts = BTreeMap::from([("admission".to_owned(), 7u64)]);
        build(
            &Policy::parse(source).unwrap(),
            &counts,
            &Security {
                storage: "SQLite".into(),
            },
            "2026-11-23T03:00:00Z",
        )
    }

    fn ropa() -> Value {
        ropa_of(crate::test_policies::TEST)
    }

    #[test]
    fn record_names_bases_classes_recipients_and_counts() {
        let r = ropa();
        assert_eq!(r["controller"]["contact"], "dpo@contoh.ac.id");
        let acts = r["activities"].as_array().unwrap();
        let admission = acts.iter().find(|a| a["purpose"] == "admission").unwrap();
        assert_eq!(admission["subjects"], 7);
        assert_eq!(admission["legal_basis"], "contract");
        assert_eq!(admission["categories"][1]["class"], "general");
        assert_eq!(admission["recipients"][0]["country"], "AU");
        assert_eq!(admission["recipients"][0]["transfer_basis"], "safeguards");
        let marketing = acts.iter().find(|a| a["purpose"] == "marketing").unwrap();
        assert_eq!(marketing["subjects"], 0);
        assert_eq!(marketing["legal_basis"], "consent");
        assert_eq!(marketing["recipients"][0]["country"], "SG");
        assert_eq!(marketing["recipients"][0]["transfer_basis"], "consent");
        assert!(r["security_measures"].to_string().contains("AES-256-GCM"));
        let md = markdown(&r);
        assert!(
            md.contains("| admission | contract | full_name, email, phone, birth_date, nik | 7 |"),
            "{md}"
        );
        assert!(md.contains("partner_university (third_party, AU, transfer: safeguards)"));
        let csv = csv(&r);
        assert_eq!(
            csv.lines().count(),
            1 + 6,
            "a header and one row per purpose"
        );
        assert!(csv.starts_with("controller,contact,purpose,legal_basis"));

        // Specific data is named as such.
        let clinic = ropa_of(crate::test_policies::CLINIC);
        let admission = &clinic["activities"][0];
        assert_eq!(admission["purpose"], "admission");
        assert_eq!(admission["categories"][4]["class"], "specific");
        assert!(markdown(&clinic).contains("nik, health (specific), referral_letter | 7 |"));
    }

    #[test]
    fn document_categories_say_what_files_they_accept() {
        let source = crate::test_policies::TEST.replacen(
            "[purposes.",
            "[categories.certificate]\ntype = \"document\"\nclass = \"specific\"\n\
             media_types = [\"application/pdf\", \"image/png\"]\nmax_size = \"2MiB\"\n\n\
             [purposes.",
            1,
        );
        let source = source.replacen("categories = [\"", "categories = [\"certificate\", \"", 1);
        let r = ropa_of(&source);
        let cats: Vec<&Value> = r["activities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|a| a["categories"].as_array().unwrap())
            .collect();
        let cert = cats.iter().find(|c| c["name"] == "certificate").unwrap();
        assert_eq!(cert["class"], "specific");
        assert_eq!(
            cert["document"],
            json!({"media_types": ["application/pdf", "image/png"], "max_size": 2_097_152})
        );
        let field = cats.iter().find(|c| c["name"] == "email").unwrap();
        assert!(field.get("document").is_none(), "{field}");
    }

    #[test]
    fn csv_cells_cannot_be_formulas() {
        let mut r = ropa();
        r["controller"]["name"] = Value::from("=HYPERLINK(\"http://x.example\",\"a\")");
        r["controller"]["contact"] = Value::from("-1+2");
        let csv = csv(&r);
        let row = csv.lines().nth(1).unwrap();
        assert!(
            row.starts_with("\"'=HYPERLINK(\"\"http://x.example\"\",\"\"a\"\")\",'-1+2,"),
            "{row}"
        );
    }

    #[test]
    fn dpia_triggers_and_skeleton() {
        let p = Policy::parse(DPIA_POLICY).unwrap();
        let f = dpia_triggers(&p);
        let get = |t| f.iter().find(|(x, _)| *x == t).unwrap().1.clone();
        assert_eq!(
            get(Trigger::SpecificData),
            Finding::Present(vec!["category health".into()])
        );
        assert!(matches!(get(Trigger::Children), Finding::Present(_)));
        assert!(matches!(get(Trigger::LargeScale), Finding::Assess(_)));
        assert_eq!(
            get(Trigger::AutomatedDecisions),
            Finding::Present(vec!["purpose analytics".into()])
        );
        assert_eq!(
            get(Trigger::Matching),
            Finding::Present(vec!["purpose service".into()])
        );
        assert!(
            matches!(get(Trigger::CrossBorder), Finding::Present(ref e) if e[0].contains("SG"))
        );
        let md = dpia_skeleton(&p, &f);
        assert!(md.contains("- [x] specific data: category health"));
        assert!(md.contains("- [?] large-scale processing"));
        assert!(md.contains("## 4. Risks"));
    }
}
