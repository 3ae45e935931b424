//! `amanah import` as a user runs it: the real binary on a real store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use amanah_crypto::KeyRing;
use amanah_store::{SqliteStore, Store};
use amanah_vault::{SystemClock, Vault};

mod support;
use support::{amanah, preset, run_ok};

fn init(dir: &Path) -> String {
    let data = dir.join("v").to_str().unwrap().to_owned();
    run_ok(&[
        "init",
        "--data",
        &data,
        "--policy",
        &preset("university.toml"),
    ]);
    data
}

fn import(data: &str, file: &Path) -> Output {
    amanah()
        .args(["import", "--data", data, "--purpose", "admission"])
        .arg(file)
        .output()
        .unwrap()
}

async fn vault(data: &str) -> Vault {
    let keys = Arc::new(
        KeyRing::from_file_bytes(&std::fs::read(Path::new(data).join("master.key")).unwrap())
            .unwrap(),
    );
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&Path::new(data).join("amanah.db"), keys.audit_key()).unwrap());
    Vault::open(store, keys, Arc::new(SystemClock))
        .await
        .unwrap()
}

async fn search(v: &Vault, category: &str, value: &str) -> Vec<amanah_vault::SubjectView> {
    let permit = v
        .authorize::<amanah_vault::act::SubjectSearch>(
            &v.operator(),
            amanah_vault::Target::purpose("admission"),
        )
        .await
        .unwrap();
    v.search(&permit, category, value).await.unwrap()
}

const GOOD_CSV: &str = "full_name,email,whatsapp,nik,birth_date
Siti Rahma,Siti@Example.ID,0812-4471-9035,3174096512990007,1999-12-25
\"Santoso, Budi\",budi@example.id,+62 813 1111 2222,3174092512990008,
Dewi Lestari,dewi@example.id,,,
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_csv_and_jsonl_import_and_read_back_with_one_audit_entry_each() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let csv = dir.path().join("people.csv");
    std::fs::write(&csv, GOOD_CSV).unwrap();
    let out = import(&data, &csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("imported 3 subjects from "), "{stdout}");
    assert!(stdout.contains("rows/s"), "{stdout}");
    // The import's log was copied into the database files: the next process does not start
    // on it (a large import would otherwise leave a WAL of gigabytes behind).
    assert!(
        stdout.contains("copied the write-ahead log into the database"),
        "{stdout}"
    );
    for wal in ["amanah.db-wal", "amanah-keys.db-wal"] {
        let len = std::fs::metadata(Path::new(&data).join(wal)).map_or(0, |m| m.len());
        assert_eq!(len, 0, "{wal} holds {len} bytes after the import");
    }

    let jsonl = dir.path().join("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"full_name\": \"Agus Wijaya\", \"email\": \"agus@example.id\", \"nik\": \"3174090101000001\"}\n\n{\"email\": \"rina@example.id\"}\n",
    )
    .unwrap();
    let out = import(&data, &jsonl);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("imported 2 subjects"));

    let v = vault(&data).await;
    let found = search(&v, "email", "siti@example.id").await;
    assert_eq!(found.len(), 1);
    let f = &found[0].fields;
    assert_eq!(f["full_name"], "Siti Rahma");
    assert_eq!(f["whatsapp"], "+6281244719035");
    assert_eq!(f["nik"], "3174096512990007");
    assert_eq!(f["birth_date"], "1999-12-25");
    let budi = search(&v, "whatsapp", "+6281311112222").await;
    assert_eq!(budi[0].fields["full_name"], "Santoso, Budi");
    assert!(
        !budi[0].fields.contains_key("birth_date"),
        "empty cell = absent field"
    );
    let agus = search(&v, "nik", "3174090101000001").await;
    assert_eq!(agus[0].fields["email"], "agus@example.id");

    // One `subject.create` entry per imported subject, in an intact chain.
    let audit = v
        .authorize::<amanah_vault::act::AuditRead>(&v.operator(), amanah_vault::Target::none())
        .await
        .unwrap();
    let entries = v.audit_entries(&audit, None, 0, 1_000).await.unwrap();
    let creates: Vec<_> = entries
        .iter()
        .filter(|e| e.entry.action.as_str() == "subject.create")
        .collect();
    assert_eq!(creates.len(), 5);
    assert!(creates.iter().all(|e| e.entry.actor == "cli"
        && e.entry.purpose.as_deref() == Some("admission")
        && e.entry.subject.is_some()));
    assert!(v.verify_chain().await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_reported_by_line_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let before = vault(&data).await.verify_chain().await.unwrap().entries;

    // Line 3: bad email; line 4: a NIK with province 00; line 5: wrong cell count.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "full_name,email,nik\nSiti,siti@example.id,3174096512990007\nBudi,budi-at-example,\nDewi,dewi@example.id,0074096512990007\nAgus\n",
    )
    .unwrap();
    let out = import(&data, &bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = bad.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:3: email: field \"email\": must be a valid email address"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:4: nik: field \"nik\": NIK province code is not valid"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:5: the row has 1 cells, the header 3")),
        "{stderr}"
    );
    assert!(
        stderr.contains("3 bad rows") && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    for value in ["budi-at-example", "0074096512990007", "siti@example.id"] {
        assert!(
            !stderr.contains(value),
            "a value leaked into the report: {stderr}"
        );
    }

    // A unique email twice in one file: the second line is named; nothing is written.
    let dup = dir.path().join("dup.jsonl");
    std::fs::write(
        &dup,
        "{\"email\": \"a@example.id\"}\n{\"email\": \"b@example.id\"}\n{\"email\": \"A@Example.id\"}\nnot json\n",
    )
    .unwrap();
    let out = import(&data, &dup);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = dup.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:3: email: another subject already holds this email"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:4: invalid JSON at column 2")),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("{file}:1:")), "{stderr}");

    // An unknown column stops before any row.
    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "email,shoe_size\nx@example.id,42\n").unwrap();
    let out = import(&data, &unknown);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(":1: column 2 (\"shoe_size\") is not a category of the purpose"));

    let v = vault(&data).await;
    for email in [
        "siti@example.id",
        "dewi@example.id",
        "a@example.id",
        "b@example.id",
    ] {
        let found = search(&v, "email", email).await;
        assert!(found.is_empty(), "{email} was written");
    }
    // Only the four searches just made were audited: the failed imports left no entry.
    assert_eq!(v.verify_chain().await.unwrap().entries, before + 4);

    // A value already in the vault is a conflict too.
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, "{\"email\": \"a@example.id\"}\n").unwrap();
    assert!(import(&data, &good).status.success());
    let out = import(&data, &good);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains(":1: email: another subject already holds this email"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_keep_the_age_and_consent_rules() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let before = vault(&data).await.verify_chain().await.unwrap().entries;

    // The preset's minimum age is 13: a child born last year is refused by line, like over
    // the API; a 15-year-old (a minor, imported by an admin) is fine, but the file is all or
    // nothing.
    let year = time::OffsetDateTime::now_utc().year();
    let ages = dir.path().join("ages.csv");
    std::fs::write(
        &ages,
        format!(
            "email,birth_date\nteen@example.id,{}-01-15\nchild@example.id,{}-01-15\n",
            year - 15,
            year - 1
        ),
    )
    .unwrap();
    let out = import(&data, &ages);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = ages.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:3: birth_date: field \"birth_date\": the person is under 13"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(&format!("{file}:2:")), "{stderr}");

    // A purpose resting on consent is refused before any row is read.
    let leads = dir.path().join("leads.csv");
    std::fs::write(&leads, "email\nlead@example.id\n").unwrap();
    let out = amanah()
        .args([
            "import",
            "--data",
            &data,
            "--purpose",
            "prospect_information",
        ])
        .arg(&leads)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rests on consent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let v = vault(&data).await;
    for email in ["teen@example.id", "child@example.id"] {
        let found = search(&v, "email", email).await;
        assert!(found.is_empty(), "{email} was written");
    }
    assert_eq!(v.verify_chain().await.unwrap().entries, before + 2);
}
