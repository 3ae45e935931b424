//! Documents over HTTP, on both stores and both object backends (a directory; SeaweedFS over
//! S3, started by the test): files round-trip byte for byte, whole and by range; the type is
//! sniffed and the size bounded while streaming, leaving nothing behind; the decision point
//! treats a document like its category (hidden specific data, masked = listed only); an object
//! altered, cut or swapped fails closed and is audited; erasure deletes the objects; the export
//! carries the files; no plaintext reaches the object store or the database files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use amanah_objects::Objects;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::preset::{self, Preset, UNIVERSITY};
use support::Kind;

/// Where a test's objects go.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Directory,
    S3,
}

struct Docs {
    p: Preset,
    objects: Objects,
    /// The directory of the local backend (its raw files are scanned).
    _objects_dir: tempfile::TempDir,
    backend: Backend,
}

/// The university preset, with the admissions officer seeing ID photos only masked.
fn policy() -> String {
    amanah_testkit::policies::set(
        UNIVERSITY,
        "roles.admissions_officer",
        "mask",
        r#"["nik", "passport_number", "parent_whatsapp", "id_photo"]"#,
    )
}

async fn start(kind: Kind, backend: Backend, label: &str) -> Docs {
    let p = preset::start(kind, &policy()).await;
    let dir = tempfile::tempdir().unwrap();
    let objects = match backend {
        Backend::Directory => Objects::local(dir.path()).unwrap(),
        Backend::S3 => {
            let s3 = amanah_tests3::server();
            let bucket = s3.bucket(label);
            let options = amanah_objects::S3Options {
                endpoint: Some(s3.endpoint()),
                region: Some(s3.region().to_owned()),
                access_key_id: Some(s3.access_key().to_owned()),
                secret_access_key: Some(s3.secret_key().to_owned()),
                session_token: None,
                allow_http: true,
            };
            Objects::s3_with(&format!("s3://{bucket}/docs"), &options).unwrap()
        }
    };
    p.vault.attach_documents(objects.clone());
    Docs {
        p,
        objects,
        _objects_dir: dir,
        backend,
    }
}

/// A PDF of about `len` bytes holding `marker` throughout.
fn pdf(marker: &str, len: usize) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("% {marker} line {i}\n").as_bytes());
        i += 1;
    }
    out.extend_from_slice(b"%%EOF\n");
    out
}

fn jpeg(marker: &str, len: usize) -> Vec<u8> {
    let mut out = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1,
    ];
    while out.len() < len {
        out.extend_from_slice(marker.as_bytes());
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

fn png(marker: &str) -> Vec<u8> {
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13];
    out.extend_from_slice(b"IHDR");
    out.extend_from_slice(marker.as_bytes());
    out
}

fn sha256_hex(data: &[u8]) -> String {
    amanah_crypto::digest::sha256_hex(data)
}

impl Docs {
    async fn upload(
        &self,
        subject: &str,
        category: &str,
        key: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let resp = self
            .p
            .client
            .put(format!(
                "{}/v1/subjects/{subject}/documents/{category}?purpose=admission",
                self.p.base
            ))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", media_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if !status.is_success() {
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{status}"
            );
        }
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Uploads as the admin, which must succeed; the document's id.
    async fn uploaded(
        &self,
        subject: &str,
        category: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> String {
        let (s, v) = self
            .upload(subject, category, &self.p.admin, media_type, body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["document_id"].as_str().unwrap().to_owned()
    }

    async fn download(
        &self,
        subject: &str,
        document: &str,
        key: &str,
        range: Option<&str>,
    ) -> reqwest::Response {
        self.try_download(subject, document, key, range)
            .await
            .unwrap()
    }

    /// A download that may be cut before its headers arrive (a transfer broken on purpose).
    async fn try_download(
        &self,
        subject: &str,
        document: &str,
        key: &str,
        range: Option<&str>,
    ) -> reqwest::Result<reqwest::Response> {
        // A connection of its own: a transfer cut on purpose must not leave a pooled
        // connection the next request would find closed.
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut req = client
            .get(format!(
                "{}/v1/subjects/{subject}/documents/{document}?purpose=admission",
                self.p.base
            ))
            .header("authorization", format!("Bearer {key}"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req.send().await
    }

    async fn list(&self, subject: &str, key: &str) -> Vec<Value> {
        let (s, v) = self
            .p
            .get(
                &format!("/v1/subjects/{subject}/documents?purpose=admission"),
                key,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["documents"].as_array().unwrap().clone()
    }

    async fn object_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .objects
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.name.as_str().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Every raw byte at rest: the object store's files and the database's.
    fn raw_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut paths = Vec::new();
        match self.backend {
            Backend::Directory => walk(self._objects_dir.path(), &mut paths),
            Backend::S3 => paths.extend(amanah_tests3::server().files()),
        }
        walk(self.p.kit.dir.path(), &mut paths);
        if let Some(url) = &self.p.kit.pg_url {
            paths.extend(amanah_testkit::cluster().database_files(url));
        }
        paths
            .into_iter()
            .filter_map(|p| Some((p.display().to_string(), std::fs::read(&p).ok()?)))
            .collect()
    }
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_directory() {
                super::$name(Kind::Sqlite, Backend::Directory, concat!(stringify!($name), "-sd")).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_s3() {
                super::$name(Kind::Sqlite, Backend::S3, concat!(stringify!($name), "-ss")).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_directory() {
                super::$name(Kind::Postgres, Backend::Directory, concat!(stringify!($name), "-pd")).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_s3() {
                super::$name(Kind::Postgres, Backend::S3, concat!(stringify!($name), "-ps")).await
            }
        }
    )*};
}

on_every_backend!(
    files_round_trip_by_range_and_the_role_decides,
    an_altered_cut_or_swapped_object_fails_closed_and_is_audited,
    erasure_deletes_the_objects_and_the_export_carries_the_files,
);

async fn applicant(d: &Docs, email: &str) -> String {
    d.p.create(
        "admission",
        json!({"fields": {"full_name": "Siti Rahma", "email": email}}),
    )
    .await
}

async fn files_round_trip_by_range_and_the_role_decides(kind: Kind, backend: Backend, label: &str) {
    let d = start(kind, backend, label).await;
    let admin = d.p.admin.clone();
    let officer = d.p.role("admissions_officer").await;
    let reviewer = d.p.role("admissions_health_reviewer").await;
    let id = applicant(&d, "siti@example.id").await;
    let marker = format!(
        "DOCMARKER{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );

    // Three types, several chunks, byte for byte.
    let diploma = pdf(&marker, 300_000);
    let (s, v) = d
        .upload(
            &id,
            "academic_documents",
            &admin,
            "application/pdf",
            diploma.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["sha256"], sha256_hex(&diploma));
    assert_eq!(v["size"], diploma.len());
    assert_eq!(v["media_type"], "application/pdf");
    assert_eq!(v["category"], "academic_documents");
    let diploma_id = v["document_id"].as_str().unwrap().to_owned();
    let photo = jpeg(&marker, 70_000);
    let photo_v1 = d
        .uploaded(&id, "id_photo", "image/jpeg", photo.clone())
        .await;
    let newer = png(&marker);
    let photo_v2 = d
        .uploaded(&id, "id_photo", "image/png", newer.clone())
        .await;
    let health = pdf(&marker, 5_000);
    let health_id = d
        .uploaded(&id, "health_certificate", "application/pdf", health.clone())
        .await;

    for (doc, bytes, mime) in [
        (&diploma_id, &diploma, "application/pdf"),
        (&photo_v1, &photo, "image/jpeg"),
        (&photo_v2, &newer, "image/png"),
    ] {
        let resp = d.download(&id, doc, &admin, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], mime);
        assert_eq!(
            resp.headers()["content-length"],
            bytes.len().to_string().as_str()
        );
        assert_eq!(
            resp.headers()["etag"],
            format!("\"{}\"", sha256_hex(bytes)).as_str()
        );
        assert_eq!(resp.headers()["accept-ranges"], "bytes");
        let body = resp.bytes().await.unwrap();
        assert_eq!(sha256_hex(&body), sha256_hex(bytes));
    }

    // Ranges across chunk boundaries, a suffix, and one past the end.
    for (range, slice) in [
        ("bytes=65530-140000", 65_530..140_001),
        ("bytes=0-0", 0..1),
        ("bytes=131072-", 131_072..diploma.len()),
    ] {
        let resp = d.download(&id, &diploma_id, &admin, Some(range)).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {}-{}/{}", slice.start, slice.end - 1, diploma.len()).as_str()
        );
        assert_eq!(&resp.bytes().await.unwrap()[..], &diploma[slice]);
    }
    let resp = d
        .download(&id, &diploma_id, &admin, Some("bytes=-10"))
        .await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        &resp.bytes().await.unwrap()[..],
        &diploma[diploma.len() - 10..]
    );
    let resp = d
        .download(&id, &diploma_id, &admin, Some("bytes=9999999-"))
        .await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes */{}", diploma.len()).as_str()
    );

    // Versions: the newer photo is current.
    let listed = d.list(&id, &admin).await;
    assert_eq!(listed.len(), 4, "{listed:?}");
    let photos: Vec<&Value> = listed
        .iter()
        .filter(|x| x["category"] == "id_photo")
        .collect();
    assert_eq!(photos.len(), 2);
    assert_eq!(photos[0]["version"], 1);
    assert_eq!(photos[0]["current"], false);
    assert_eq!(photos[1]["version"], 2);
    assert_eq!(photos[1]["current"], true);

    // Multipart: one file part, its type declared in the part.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(diploma.clone())
            .file_name("ijazah.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let resp =
        d.p.client
            .put(format!(
                "{}/v1/subjects/{id}/documents/academic_documents?purpose=admission",
                d.p.base
            ))
            .header("authorization", format!("Bearer {admin}"))
            .multipart(form)
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["sha256"], sha256_hex(&diploma));

    // Sniffing: an executable declared as a PDF, a PNG declared as a PDF, a PDF where only
    // photos go, no type at all: 415, nothing kept.
    let before = d.object_names().await;
    let seq = d.p.chain_len().await;
    let exe = [b"MZ\x90\x00\x03\x00\x00\x00".as_slice(), &[0u8; 4096]].concat();
    for (category, mime, body) in [
        ("academic_documents", "application/pdf", exe.clone()),
        ("academic_documents", "application/pdf", newer.clone()),
        ("id_photo", "application/pdf", diploma.clone()),
        (
            "academic_documents",
            "application/x-msdownload",
            exe.clone(),
        ),
    ] {
        let (s, v) = d.upload(&id, category, &admin, mime, body).await;
        assert_eq!(
            s,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{category} {mime}: {v}"
        );
        assert_eq!(v["type"], "urn:amanah:problem:unsupported-media-type");
    }
    // Over the photo's 2 MB, refused while streaming (no length declared up front).
    let big = jpeg(&marker, 2_500_000);
    let stream = futures_util::stream::iter(
        big.chunks(100_000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp =
        d.p.client
            .put(format!(
                "{}/v1/subjects/{id}/documents/id_photo?purpose=admission",
                d.p.base
            ))
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "image/jpeg")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // And with its length declared: refused before a byte is read.
    let (s, _) = d.upload(&id, "id_photo", &admin, "image/jpeg", big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    d.p.vault.sweep_document_objects().await.unwrap();
    assert_eq!(
        d.object_names().await,
        before,
        "a refused upload left an object"
    );
    // Each refusal on record once, naming the category.
    let refused = d.p.refusals_since(seq).await;
    assert_eq!(refused.len(), 4 + 2, "{refused:?}");
    assert!(refused.iter().all(|e| e["action"] == "document.upload"));
    assert_eq!(refused[4]["fields"], json!(["id_photo"]));
    assert_eq!(d.list(&id, &admin).await.len(), 5);

    // The officer: no health certificate at all (specific data), the photo listed only.
    let seen = d.list(&id, &officer).await;
    assert!(
        seen.iter().all(|x| x["category"] != "health_certificate"),
        "{seen:?}"
    );
    let photo = seen
        .iter()
        .find(|x| x["document_id"] == photo_v2.as_str())
        .unwrap();
    assert_eq!(photo["downloadable"], false);
    assert!(
        photo["sha256"].is_null(),
        "a fingerprint of a file the role may not see"
    );
    let seq = d.p.chain_len().await;
    let resp = d.download(&id, &photo_v2, &officer, None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = d.download(&id, &health_id, &officer, None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (s, _) = d
        .upload(
            &id,
            "health_certificate",
            &officer,
            "application/pdf",
            health.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let refusals = d.p.refusals_since(seq).await;
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(refusals[..2].iter().all(|e| e["action"] == "document.read"));
    assert_eq!(refusals[2]["action"], "document.upload");
    // The reviewer holds specific data: the certificate opens.
    let resp = d.download(&id, &health_id, &reviewer, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&resp.bytes().await.unwrap()[..], &health[..]);
    // Every download is on record, with its category.
    let reads: Vec<Value> =
        d.p.audit_after(0)
            .await
            .into_iter()
            .filter(|e| e["action"] == "document.read" && e["outcome"] == "allowed")
            .collect();
    assert_eq!(reads.len(), 3 + 3 + 1 + 1, "{reads:?}");
    assert!(reads.iter().all(|e| e["subject"] == id.as_str()));
    assert!(reads
        .iter()
        .any(|e| e["fields"] == json!(["health_certificate"])
            && e["role"] == "admissions_health_reviewer"));

    // Nothing of the files at rest, anywhere.
    let files = d.raw_files();
    assert!(!files.is_empty());
    for (name, bytes) in &files {
        assert!(
            memchr::memmem::find(bytes, marker.as_bytes()).is_none(),
            "{name} holds the marker"
        );
    }
    assert_eq!(d.p.chain_len().await, d.p.audit_after(0).await.len() as u64);
}

/// Rewrites an object through the object store (as an attacker with write access would).
async fn rewrite(objects: &Objects, name: &str, bytes: Vec<u8>) {
    let name = amanah_objects::ObjectName::parse(name).unwrap();
    let mut w = objects.writer(&name).await.unwrap();
    w.write(bytes.into()).await.unwrap();
    w.finish().await.unwrap();
}

async fn read_object(objects: &Objects, name: &str) -> Vec<u8> {
    use futures_util::StreamExt;
    let name = amanah_objects::ObjectName::parse(name).unwrap();
    let mut s = objects.read(&name, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b.unwrap());
    }
    out
}

async fn an_altered_cut_or_swapped_object_fails_closed_and_is_audited(
    kind: Kind,
    backend: Backend,
    label: &str,
) {
    let d = start(kind, backend, label).await;
    let admin = d.p.admin.clone();
    let a = applicant(&d, "a@example.id").await;
    let b = applicant(&d, "b@example.id").await;
    let doc_a = pdf("A", 400_000);
    let doc_b = pdf("B", 400_000);
    let id_a = d
        .uploaded(&a, "academic_documents", "application/pdf", doc_a.clone())
        .await;
    let id_b = d
        .uploaded(&b, "academic_documents", "application/pdf", doc_b.clone())
        .await;
    let names = d.object_names().await;
    assert_eq!(names.len(), 2);
    // Which object is whose: the one that reads back as A's.
    let stored: Vec<Vec<u8>> =
        futures_util::future::join_all(names.iter().map(|n| read_object(&d.objects, n))).await;
    let original_a = d
        .download(&a, &id_a, &admin, None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&original_a[..], &doc_a[..]);

    let seq = d.p.chain_len().await;
    // 1. A byte flipped in the fourth chunk: the first chunks arrive, then the transfer breaks.
    for (i, name) in names.iter().enumerate() {
        let mut altered = stored[i].clone();
        altered[40 + 3 * 65_552 + 100] ^= 1;
        rewrite(&d.objects, name, altered).await;
    }
    for (subject, doc) in [(&a, &id_a), (&b, &id_b)] {
        // The transfer breaks: after some verified chunks, or before even the headers left.
        if let Ok(resp) = d.try_download(subject, doc, &admin, None).await {
            assert_eq!(resp.status(), StatusCode::OK);
            let body = resp.bytes().await;
            assert!(body.is_err(), "an altered chunk passed");
        }
    }
    // 2. The header altered: refused before any byte (500), on record.
    for (i, name) in names.iter().enumerate() {
        let mut altered = stored[i].clone();
        altered[5] ^= 1;
        rewrite(&d.objects, name, altered).await;
    }
    let resp = d.download(&a, &id_a, &admin, None).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // 3. Cut by one chunk, and cut inside the last chunk.
    for cut in [65_552, 7] {
        for (i, name) in names.iter().enumerate() {
            let s = &stored[i];
            rewrite(&d.objects, name, s[..s.len() - cut].to_vec()).await;
        }
        let resp = d.download(&a, &id_a, &admin, None).await;
        assert_eq!(
            resp.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "cut {cut}"
        );
    }
    // 4. The two people's objects swapped.
    rewrite(&d.objects, &names[0], stored[1].clone()).await;
    rewrite(&d.objects, &names[1], stored[0].clone()).await;
    for (subject, doc) in [(&a, &id_a), (&b, &id_b)] {
        let resp = d.download(subject, doc, &admin, None).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    // A range that starts in an untouched place of a swapped object fails too.
    let resp = d
        .download(&a, &id_a, &admin, Some("bytes=200000-200010"))
        .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // Restored, each opens again.
    rewrite(&d.objects, &names[0], stored[0].clone()).await;
    rewrite(&d.objects, &names[1], stored[1].clone()).await;
    let back = d
        .download(&a, &id_a, &admin, None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(&back[..], &doc_a[..]);

    // Every failure on record: the two cut transfers (recorded once they broke) and the six
    // refused before a byte.
    // (A cut transfer's refusal is appended as the stream breaks: wait for it to land.)
    // Two cut transfers, the altered header, two cuts, two swaps, the range of a swap.
    const REFUSED: usize = 2 + 1 + 2 + 2 + 1;
    let mut refused = Vec::new();
    for _ in 0..200 {
        refused =
            d.p.refusals_since(seq)
                .await
                .into_iter()
                .filter(|e| e["action"] == "document.read")
                .collect::<Vec<Value>>();
        if refused.len() >= REFUSED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(refused.len(), REFUSED, "{refused:?}");
    assert!(refused
        .iter()
        .all(|e| e["reason"].as_str().unwrap().contains("internal error")));
}

async fn erasure_deletes_the_objects_and_the_export_carries_the_files(
    kind: Kind,
    backend: Backend,
    label: &str,
) {
    let d = start(kind, backend, label).await;
    let admin = d.p.admin.clone();
    let dpo = d.p.role("dpo").await;
    let id = applicant(&d, "erase@example.id").await;
    let keep = applicant(&d, "keep@example.id").await;
    let diploma = pdf("EXPORTED", 150_000);
    let photo = jpeg("PHOTO", 10_000);
    let diploma_id = d
        .uploaded(
            &id,
            "academic_documents",
            "application/pdf",
            diploma.clone(),
        )
        .await;
    let photo_id = d
        .uploaded(&id, "id_photo", "image/jpeg", photo.clone())
        .await;
    let (s, _) = d
        .upload(&keep, "id_photo", &admin, "image/jpeg", photo.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED);

    // The export: the manifest in the JSON, the files in the zip.
    let (s, export) = d.p.get(&format!("/v1/subjects/{id}/export"), &dpo).await;
    assert_eq!(s, StatusCode::OK);
    let manifest = export["documents"].as_array().unwrap();
    assert_eq!(manifest.len(), 2, "{export}");
    let resp =
        d.p.client
            .get(format!("{}/v1/subjects/{id}/export?format=zip", d.p.base))
            .header("authorization", format!("Bearer {dpo}"))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip = resp.bytes().await.unwrap().to_vec();
    let files = unzip(zip).await;
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "export.json".to_owned(),
            format!("documents/{diploma_id}.pdf"),
            format!("documents/{photo_id}.jpg")
        ]
    );
    let inner: Value = serde_json::from_slice(&files[0].1).unwrap();
    assert_eq!(inner["subject_id"], id.as_str());
    assert_eq!(files[1].1, diploma);
    assert_eq!(files[2].1, photo);

    // Erasure: the objects go with the key.
    assert_eq!(d.object_names().await.len(), 3);
    let (s, v) =
        d.p.call(Method::DELETE, &format!("/v1/subjects/{id}"), &dpo, None)
            .await;
    assert!(s.is_success(), "{s} {v}");
    assert_eq!(
        d.object_names().await.len(),
        1,
        "the erased subject's objects remain"
    );
    let resp = d.download(&id, &diploma_id, &admin, None).await;
    assert_eq!(resp.status(), StatusCode::GONE);
    let (s, _) = d
        .upload(&id, "id_photo", &admin, "image/jpeg", photo.clone())
        .await;
    assert_eq!(s, StatusCode::GONE);
    // The other person's file is untouched.
    let listed = d.list(&keep, &admin).await;
    let resp = d
        .download(
            &keep,
            listed[0]["document_id"].as_str().unwrap(),
            &admin,
            None,
        )
        .await;
    assert_eq!(&resp.bytes().await.unwrap()[..], &photo[..]);
}

async fn unzip(bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    use std::io::Read as _;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        out.push((file.name().to_owned(), data));
    }
    out
}
