//! The object store's contract, on both backends: a local directory and an S3 bucket (a
//! SeaweedFS server started by the tests, with credentials enforced).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use amanah_objects::{ObjectError, ObjectName, Objects, S3Options, PART_SIZE};
use bytes::Bytes;
use futures_util::TryStreamExt;

/// A store under test and a view of its raw storage.
struct Backend {
    objects: Objects,
    raw: Raw,
}

enum Raw {
    /// The directory (and the temporary directory holding it).
    Dir(PathBuf, #[allow(dead_code)] tempfile::TempDir),
    /// The bucket (the store lives under the prefix `deploy`).
    Bucket(String),
}

fn s3_options() -> S3Options {
    let s = amanah_tests3::server();
    S3Options {
        endpoint: Some(s.endpoint()),
        region: Some(s.region().to_owned()),
        access_key_id: Some(s.access_key().to_owned()),
        secret_access_key: Some(s.secret_key().to_owned()),
        session_token: None,
        allow_http: true,
    }
}

impl Backend {
    fn local() -> Backend {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("documents");
        Backend {
            objects: Objects::local(&dir).unwrap(),
            raw: Raw::Dir(dir, tmp),
        }
    }

    fn s3(label: &str) -> Backend {
        let bucket = amanah_tests3::server().bucket(label);
        let objects = Objects::s3_with(&format!("s3://{bucket}/deploy"), &s3_options()).unwrap();
        Backend {
            objects,
            raw: Raw::Bucket(bucket),
        }
    }

    /// Every file of the directory, or every key and in-progress upload of the whole bucket.
    async fn leftovers(&self) -> Vec<String> {
        match &self.raw {
            Raw::Dir(dir, _) => files(dir)
                .into_iter()
                .map(|p| p.display().to_string())
                .collect(),
            Raw::Bucket(bucket) => {
                let whole = Objects::s3_with(&format!("s3://{bucket}"), &s3_options()).unwrap();
                // `list` shows one level; the bucket's keys are under `deploy/` and its scopes.
                let mut out: Vec<String> = Vec::new();
                for scope in [None, Some("deploy")] {
                    let view = match scope {
                        None => whole.clone(),
                        Some(s) => whole.scoped(s).unwrap(),
                    };
                    out.extend(
                        view.list()
                            .await
                            .unwrap()
                            .into_iter()
                            .map(|o| format!("{}/{}", scope.unwrap_or(""), o.name)),
                    );
                }
                let uploads = amanah_tests3::server().multipart_uploads(bucket);
                out.extend((0..uploads).map(|i| format!("incomplete upload {i}")));
                out
            }
        }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `len` bytes of a deterministic pseudo-random sequence (xorshift), different per `seed`.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_all(
    objects: &Objects,
    name: &ObjectName,
    range: Option<std::ops::Range<u64>>,
) -> Vec<u8> {
    let stream = objects.read(name, range).await.unwrap();
    stream
        .try_fold(Vec::new(), |mut acc, chunk| async move {
            acc.extend_from_slice(&chunk);
            Ok(acc)
        })
        .await
        .unwrap()
}

/// Writes `data` in pieces of the sizes given (cycled); returns the object's name.
async fn put(objects: &Objects, data: &[u8], pieces: &[usize]) -> ObjectName {
    let name = ObjectName::random();
    let mut w = objects.writer(&name).await.unwrap();
    let mut at = 0;
    for len in pieces.iter().cycle() {
        if at == data.len() {
            break;
        }
        let end = (at + len).min(data.len());
        w.write(Bytes::copy_from_slice(&data[at..end]))
            .await
            .unwrap();
        at = end;
    }
    assert_eq!(w.finish().await.unwrap(), data.len() as u64);
    name
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::local()).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::s3(stringify!($case))).await
                }
            )*
        }
    };
}

on_both_backends!(
    round_trip_in_odd_pieces_across_parts,
    small_and_empty_objects,
    delete_is_idempotent,
    abort_leaves_nothing,
    dropped_writer_leaves_no_object,
    scopes_are_disjoint,
    delete_all_empties_a_scope,
);

async fn round_trip_in_odd_pieces_across_parts(b: Backend) {
    let o = &b.objects;
    // Three parts and a bit, written in pieces of 3 bytes, 70 KiB, 9 MiB and others.
    let total = 2 * PART_SIZE + 9 * 1024 * 1024 + 12_345;
    let data = content(total, 7);
    let name = put(
        o,
        &data,
        &[3, 70 * 1024, 9 * 1024 * 1024 + 1, 1, 5 * 1024 * 1024 - 7],
    )
    .await;

    assert_eq!(o.size(&name).await.unwrap(), total as u64);
    let whole = read_all(o, &name, None).await;
    assert!(
        whole == data,
        "the object read back differs from what was written"
    );

    let t = total as u64;
    let p = PART_SIZE as u64;
    for range in [
        0..1,
        0..t,
        5..70_000,
        p - 1..p + 1,
        2 * p - 3..2 * p + 70_000,
        t - 5..t,
    ] {
        let got = read_all(o, &name, Some(range.clone())).await;
        assert!(
            got == data[range.start as usize..range.end as usize],
            "range {range:?} differs"
        );
        let stream = o.read(&name, Some(range)).await.unwrap();
        assert_eq!(stream.size(), t, "a range's stream tells the whole size");
    }
    // Past the end: cut at the end; starting past it: refused; empty: nothing.
    assert_eq!(
        read_all(o, &name, Some(t - 2..t + 100)).await,
        data[total - 2..]
    );
    assert!(read_all(o, &name, Some(100..100)).await.is_empty());
    match o.read(&name, Some(t + 1..t + 5)).await {
        Err(ObjectError::Backend(m)) => assert!(m.contains(name.as_str()), "{m}"),
        other => panic!("a range past the end: {:?}", other.map(|s| s.size())),
    }

    let listed = o.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, name);
    assert_eq!(listed[0].size, t);
    let age = std::time::SystemTime::now()
        .duration_since(listed[0].modified)
        .unwrap_or_default();
    assert!(age.as_secs() < 3600, "modified is the write's time");

    // The raw storage holds the object under its random name and nothing else of it.
    if let Raw::Dir(dir, _) = &b.raw {
        let names: Vec<String> = files(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![name.to_string()]);
    }
}

async fn small_and_empty_objects(b: Backend) {
    let o = &b.objects;
    let tiny = put(o, b"abc", &[1]).await;
    assert_eq!(read_all(o, &tiny, None).await, b"abc");
    assert_eq!(read_all(o, &tiny, Some(1..2)).await, b"b");
    assert_eq!(o.size(&tiny).await.unwrap(), 3);

    let empty = put(o, b"", &[1]).await;
    assert_eq!(o.size(&empty).await.unwrap(), 0);
    let stream = o.read(&empty, None).await.unwrap();
    assert_eq!(stream.size(), 0);
    assert!(read_all(o, &empty, None).await.is_empty());

    // Exactly one part: still one request, and read back whole.
    let one_part = content(PART_SIZE, 3);
    let name = put(o, &one_part, &[PART_SIZE]).await;
    assert!(read_all(o, &name, None).await == one_part);

    let mut listed: Vec<(String, u64)> = o
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.name.to_string(), i.size))
        .collect();
    listed.sort();
    let mut expected = vec![
        (tiny.to_string(), 3),
        (empty.to_string(), 0),
        (name.to_string(), PART_SIZE as u64),
    ];
    expected.sort();
    assert_eq!(listed, expected);
}

async fn delete_is_idempotent(b: Backend) {
    let o = &b.objects;
    let name = put(o, &content(100_000, 1), &[65_536]).await;
    let other = put(o, b"kept", &[4]).await;
    o.delete(&name).await.unwrap();
    assert!(matches!(
        o.read(&name, None).await,
        Err(ObjectError::NotFound)
    ));
    assert!(matches!(o.size(&name).await, Err(ObjectError::NotFound)));
    o.delete(&name).await.unwrap();
    let never = ObjectName::random();
    o.delete(&never).await.unwrap();
    assert!(matches!(
        o.read(&never, Some(0..1)).await,
        Err(ObjectError::NotFound)
    ));
    let listed: Vec<ObjectName> = o
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, vec![other]);
}

async fn abort_leaves_nothing(b: Backend) {
    let o = &b.objects;
    // A multipart upload under way (more than one part written), then one that is still a
    // buffer in memory.
    let name = ObjectName::random();
    let mut w = o.writer(&name).await.unwrap();
    for _ in 0..3 {
        w.write(Bytes::from(content(4 * 1024 * 1024 + 1, 9)))
            .await
            .unwrap();
    }
    // The upload is under way: a staging file, or an incomplete multipart upload.
    assert_eq!(b.leftovers().await.len(), 1, "{:?}", b.leftovers().await);
    w.abort().await.unwrap();
    let small = ObjectName::random();
    let mut w = o.writer(&small).await.unwrap();
    w.write(Bytes::from_static(b"abandoned")).await.unwrap();
    w.abort().await.unwrap();

    assert!(matches!(
        o.read(&name, None).await,
        Err(ObjectError::NotFound)
    ));
    assert!(matches!(o.size(&small).await, Err(ObjectError::NotFound)));
    assert!(o.list().await.unwrap().is_empty());
    assert_eq!(b.leftovers().await, Vec::<String>::new());
}

async fn dropped_writer_leaves_no_object(b: Backend) {
    let o = &b.objects;
    let name = ObjectName::random();
    let mut w = o.writer(&name).await.unwrap();
    w.write(Bytes::from(content(PART_SIZE + 1, 5)))
        .await
        .unwrap();
    drop(w);
    assert!(matches!(
        o.read(&name, None).await,
        Err(ObjectError::NotFound)
    ));
    assert!(o.list().await.unwrap().is_empty());
}

async fn scopes_are_disjoint(b: Backend) {
    let root = &b.objects;
    let a = root.scoped("org-a").unwrap();
    let c = root.scoped("org_c").unwrap();
    let in_a = put(&a, b"of a", &[4]).await;
    let in_root = put(root, b"of the deployment", &[64]).await;

    let names = |v: Vec<amanah_objects::ObjectInfo>| -> Vec<ObjectName> {
        v.into_iter().map(|i| i.name).collect()
    };
    assert_eq!(names(a.list().await.unwrap()), vec![in_a.clone()]);
    assert!(c.list().await.unwrap().is_empty());
    assert_eq!(names(root.list().await.unwrap()), vec![in_root.clone()]);
    assert!(matches!(
        c.read(&in_a, None).await,
        Err(ObjectError::NotFound)
    ));
    assert!(matches!(root.size(&in_a).await, Err(ObjectError::NotFound)));
    assert!(matches!(a.size(&in_root).await, Err(ObjectError::NotFound)));
    // Deleting through another scope touches nothing.
    c.delete(&in_a).await.unwrap();
    assert_eq!(read_all(&a, &in_a, None).await, b"of a");

    assert!(a.describe().ends_with("/org-a"), "{}", a.describe());
    for bad in ["", "Org", "a/b", "..", "a.b", "é", &"x".repeat(129)] {
        assert!(
            matches!(root.scoped(bad), Err(ObjectError::Config(_))),
            "{bad:?}"
        );
    }
}

async fn delete_all_empties_a_scope(b: Backend) {
    let root = &b.objects;
    let a = root.scoped("org-a").unwrap();
    let c = root.scoped("org-c").unwrap();
    for i in 0..3 {
        put(&a, &content(1000 + i, i as u64), &[300]).await;
    }
    let kept = put(&c, b"of c", &[4]).await;
    let own = put(root, b"of the deployment", &[64]).await;

    assert_eq!(a.delete_all().await.unwrap(), 3);
    assert!(a.list().await.unwrap().is_empty());
    assert_eq!(a.delete_all().await.unwrap(), 0);
    assert_eq!(read_all(&c, &kept, None).await, b"of c");
    assert_eq!(read_all(root, &own, None).await, b"of the deployment");
    if let Raw::Dir(dir, _) = &b.raw {
        assert!(
            !dir.join("org-a").exists(),
            "the scope's directory goes too"
        );
        assert!(dir.join("org-c").exists());
    }

    // The unscoped store's delete_all removes every object, those of its scopes too.
    assert_eq!(root.delete_all().await.unwrap(), 2);
    assert!(c.list().await.unwrap().is_empty());
    assert_eq!(b.leftovers().await, Vec::<String>::new());
    if let Raw::Dir(dir, _) = &b.raw {
        assert!(dir.exists(), "the store's own directory stays");
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_never_shown() {
    let s = amanah_tests3::server();
    let bucket = s.bucket("wrong-secret");
    let secret = "wrong-secret-0123456789abcdef";
    let options = S3Options {
        secret_access_key: Some(secret.to_owned()),
        ..s3_options()
    };
    let o = Objects::s3_with(&format!("s3://{bucket}"), &options).unwrap();
    assert_eq!(o.describe(), format!("s3://{bucket}"));
    let name = ObjectName::random();
    let mut w = o.writer(&name).await.unwrap();
    w.write(Bytes::from_static(b"refused")).await.unwrap();
    let messages = [
        w.finish().await.unwrap_err().to_string(),
        o.list().await.unwrap_err().to_string(),
        o.read(&name, None).await.unwrap_err().to_string(),
    ];
    for m in messages {
        assert!(m.starts_with("object storage: "), "{m}");
        assert!(!m.contains(secret), "{m}");
        assert!(!m.contains(s.access_key()), "{m}");
        assert!(!m.contains(s.secret_key()), "{m}");
    }
    // With the right secret the bucket is empty: nothing was written.
    let right = Objects::s3_with(&format!("s3://{bucket}"), &s3_options()).unwrap();
    assert!(right.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_bucket_is_an_error() {
    let o = Objects::s3_with("s3://never-created-bucket", &s3_options()).unwrap();
    let mut w = o.writer(&ObjectName::random()).await.unwrap();
    w.write(Bytes::from_static(b"x")).await.unwrap();
    assert!(matches!(w.finish().await, Err(ObjectError::Backend(_))));
}

#[test]
fn open_accepts_paths_file_urls_and_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let default = tmp.path().join("default");
    let o = Objects::open(None, &default).unwrap();
    assert_eq!(o.describe(), format!("directory {}", default.display()));
    assert!(default.is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&default).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    let path = tmp.path().join("by-path");
    let o = Objects::open(Some(path.to_str().unwrap()), &default).unwrap();
    assert_eq!(o.describe(), format!("directory {}", path.display()));
    let url = tmp.path().join("by-url");
    let o = Objects::open(Some(&format!("file://{}", url.display())), &default).unwrap();
    assert_eq!(o.describe(), format!("directory {}", url.display()));
    assert!(url.is_dir());

    let o = Objects::open(Some("s3://documents/deploy/"), &default).unwrap();
    assert_eq!(o.describe(), "s3://documents/deploy");
    assert_eq!(
        o.scoped("org-1").unwrap().describe(),
        "s3://documents/deploy/org-1"
    );
}

#[test]
fn open_refuses_other_forms_with_the_accepted_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let config_error = |spec: &str| match Objects::open(Some(spec), tmp.path()) {
        Err(ObjectError::Config(m)) => m,
        Err(e) => panic!("{spec}: {e}"),
        Ok(o) => panic!("{spec}: accepted as {}", o.describe()),
    };
    for spec in [
        "gs://bucket",
        "https://user:hunter2@example.com/x",
        "",
        "  ",
    ] {
        let m = config_error(spec);
        assert!(
            m.contains("s3://bucket") && m.contains("file://"),
            "{spec}: {m}"
        );
        assert!(!m.contains("hunter2"), "{m}");
    }
    assert!(config_error("gs://bucket").contains("gs://"));
    assert!(config_error("file://relative/dir").contains("absolute"));
    for spec in ["s3://", "s3://Upper", "s3://b", "s3://bucket/a/../b"] {
        assert!(config_error(spec).contains("s3://bucket"), "{spec}");
    }
    let m = config_error("s3://AKIDEXAMPLE:hunter2@bucket");
    assert!(!m.contains("hunter2") && !m.contains("AKIDEXAMPLE"), "{m}");
}
