//! The policies tests run under. Each is a file (so `amanah policy check` reads it as a user's
//! file would); variants are derived by editing one `key = value` line of one section, so a
//! test states only what it changes.

use std::path::PathBuf;

/// The test policy: a university with every legal basis, a role for each duty and recipients
/// of each kind; version `v1`, no withdrawal grace, marketing over `full_name` and `email`.
pub const TEST: &str = include_str!("../policies/test.toml");

/// The binary's HTTP suite policy: `health` (specific data) for the nurse only, an indexed NIK
/// the officer sees masked, and a consent purpose for the marketer.
pub const CLINIC: &str = include_str!("../policies/clinic.toml");

/// The smallest policy: a name and a unique, indexed e-mail under one contract purpose (the
/// binary's crash and key-rotation tests, which drive many subjects through a real server).
pub const CONTACTS: &str = include_str!("../policies/contacts.toml");

/// The shipped presets (`policies/*.toml` at the workspace root).
pub const UNIVERSITY: &str = include_str!("../../../policies/university.toml");
pub const CRM: &str = include_str!("../../../policies/crm.toml");

/// The path of a file of the kit (`test.toml`, `clinic.toml`), for commands that read a file.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(name)
}

/// The path of a shipped preset (`university.toml`, `crm.toml`).
pub fn preset_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies")
        .join(name)
}

/// The test policy under another version and withdrawal grace (in days).
pub fn test_policy(version: &str, grace_days: u32) -> String {
    let p = set(TEST, "", "version", &format!("{version:?}"));
    set(
        &p,
        "settings",
        "withdrawal_grace_days",
        &grace_days.to_string(),
    )
}

/// `source` with the value of `key` in table `[section]` replaced (`""` is the top level, before
/// any table). Panics when the policy has no such line, so a test cannot silently change nothing.
pub fn set(source: &str, section: &str, key: &str, value: &str) -> String {
    let mut current = String::new();
    let mut done = false;
    let mut out = String::with_capacity(source.len() + value.len());
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(table) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            current = table.trim().to_owned();
        } else if !done && current == section && is_key_line(trimmed, key) {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
            continue;
        }
        out.push_str(line);
    }
    assert!(done, "the policy has no `{key}` in [{section}]");
    out
}

/// `source` without table `[section]` (its header and its lines). Panics when it has none.
pub fn remove(source: &str, section: &str) -> String {
    let mut current: Option<String> = None;
    let mut found = false;
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(table) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            current = Some(table.trim().to_owned());
        }
        if current.as_deref() == Some(section) {
            found = true;
            continue;
        }
        out.push_str(line);
    }
    assert!(found, "the policy has no [{section}]");
    out
}

fn is_key_line(line: &str, key: &str) -> bool {
    line.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_edits_one_line_of_one_section() {
        let p = set(
            TEST,
            "purposes.marketing",
            "categories",
            r#"["full_name", "email", "phone"]"#,
        );
        assert!(p.contains(
            "[purposes.marketing]\nbasis = \"consent\"\ncategories = [\"full_name\", \"email\", \"phone\"]\n"
        ));
        // The same line of another purpose is left alone.
        assert!(p.contains("[purposes.legal_claims]\nbasis = \"legitimate_interest\"\ncategories = [\"full_name\", \"email\"]\n"));
        assert_eq!(p.len(), TEST.len() + r#", "phone""#.len());
    }

    #[test]
    fn test_policy_sets_the_version_and_the_grace() {
        let p = test_policy("v2", 3);
        assert!(p.contains("\nversion = \"v2\"\n"));
        assert!(p.contains("\nwithdrawal_grace_days = 3\n"));
        assert!(!p.contains("\"v1\""));
    }

    #[test]
    fn remove_drops_a_whole_table() {
        let p = remove(TEST, "roles.officer");
        assert!(!p.contains("[roles.officer]"));
        assert!(p.contains(
            "[roles.clerk]\npurposes = [\"admission\", \"marketing\"]\nspecific = true\n"
        ));
        assert_eq!(
            p.len(),
            TEST.len() - "[roles.officer]\npurposes = [\"admission\", \"marketing\"]\n".len()
        );
    }

    #[test]
    #[should_panic(expected = "no `nope`")]
    fn set_refuses_a_missing_key() {
        set(TEST, "settings", "nope", "1");
    }
}
