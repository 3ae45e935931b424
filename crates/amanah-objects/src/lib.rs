//! Object storage for encrypted documents: opaque ciphertext objects under random names.
//!
//! The caller (the vault) encrypts before writing and decrypts after reading: this crate sees
//! only ciphertext, and an object's name ([`ObjectName`], 128 random bits) says nothing about
//! whose it is or what it holds. Two backends, through the `object_store` crate:
//!
//! - a local directory ([`Objects::local`], the embedded default): created `0700`, one file per
//!   object, written to a staging file (`NAME#N`) and renamed into place when complete, with the
//!   file and its directory fsynced;
//! - an S3-compatible bucket ([`Objects::s3`], `s3://bucket[/prefix]`), credentials and endpoint
//!   from the usual `AWS_*` variables (or [`Objects::s3_with`]).
//!
//! A hosted organization's objects live under a prefix of their own ([`Objects::scoped`]).
//!
//! Memory stays bounded whatever the object's size: an [`ObjectWriter`] holds at most one part
//! being filled and [`MAX_PARTS_IN_FLIGHT`] parts being uploaded ([`PART_SIZE`] each), and an
//! [`ObjectStream`] yields the object in chunks as it arrives.
//!
//! Errors never carry credentials: messages are built from the operation and the object's
//! (random) name, and every secret this crate was given is scrubbed from what the backend says.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{
    GetOptions, GetRange, GetResultPayload, MultipartUpload, ObjectStore, ObjectStoreExt,
    PutPayload,
};
use tokio::task::JoinSet;

/// The size of one part of a multipart upload (S3's minimum is 5 MiB, except the last part).
/// An object no larger than this is written with a single request.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// How many parts of one upload may be in flight at once, besides the one being filled.
pub const MAX_PARTS_IN_FLIGHT: usize = 2;

/// The size of the chunks an [`ObjectStream`] yields from a local file.
const FILE_CHUNK: u64 = 256 * 1024;

/// The forms [`Objects::open`] accepts, for its error message.
const ACCEPTED: &str =
    "a directory path, file:///absolute/path, s3://bucket or s3://bucket/prefix (credentials \
     and endpoint in the AWS_* environment variables)";

/// Why an object operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The object does not exist.
    #[error("object not found")]
    NotFound,
    /// The storage location is malformed or unsupported.
    #[error("object storage configuration: {0}")]
    Config(String),
    /// The backend failed (I/O, network, refused credentials, ...). The message may name the
    /// object (a random name), never a credential.
    #[error("object storage: {0}")]
    Backend(String),
}

/// The name of an object: 32 lowercase hex digits, 128 random bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName(String);

impl ObjectName {
    /// A fresh random name (a version 4 UUID's 128 bits, from the operating system's random
    /// source).
    pub fn random() -> Self {
        ObjectName(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The name `s` if it is 32 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| ObjectName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self) -> StorePath {
        StorePath::from(self.0.as_str())
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: ObjectName,
    pub size: u64,
    pub modified: SystemTime,
}

/// Explicit settings of an S3-compatible store (what [`Objects::s3`] reads from `AWS_*`).
#[derive(Clone, Default)]
pub struct S3Options {
    /// The endpoint, e.g. `http://127.0.0.1:8333` (AWS itself when absent).
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when absent).
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Allow a plain `http://` endpoint.
    pub allow_http: bool,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &redacted(&self.access_key_id))
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Where the objects are, for [`Objects::describe`] and for cleaning a local scope.
#[derive(Clone, Debug)]
enum Location {
    /// A directory; `scope` when it is a scope's own (created by the first write, removed by
    /// `delete_all`).
    Dir { path: PathBuf, scope: bool },
    /// A bucket and a prefix (`""` or `a/b`, without slashes at either end).
    S3 { bucket: String, prefix: String },
}

/// A store of objects: a directory or a bucket, possibly narrowed to one organization's scope.
/// Cheap to clone.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    location: Location,
    /// Strings scrubbed from every error message (the credentials this store was given).
    secrets: Arc<[String]>,
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Objects").field(&self.describe()).finish()
    }
}

impl Objects {
    /// Objects in directory `dir`, created (mode `0700` on unix) when missing.
    pub fn local(dir: &Path) -> Result<Objects, ObjectError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|e| {
            ObjectError::Config(format!(
                "cannot create the object directory {}: {e}",
                dir.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| {
                ObjectError::Config(format!(
                    "cannot use the object directory {}: {e}",
                    dir.display()
                ))
            })?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(Objects {
            store: Arc::new(store),
            location: Location::Dir {
                path: dir.to_path_buf(),
                scope: false,
            },
            secrets: Arc::from(Vec::new()),
        })
    }

    /// Objects in the bucket (and under the prefix) of `url`, `s3://bucket[/prefix]`, with the
    /// credentials, region and endpoint of the `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` or
    /// `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, and the others the AWS tools
    /// know, such as a web identity token file).
    pub fn s3(url: &str) -> Result<Objects, ObjectError> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let secrets: Vec<String> = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter(|v| !v.is_empty())
        .collect();
        let builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        Self::build_s3(builder, bucket, prefix, secrets)
    }

    /// Objects in the bucket (and under the prefix) of `url`, `s3://bucket[/prefix]`, with
    /// explicit settings: the environment is not read.
    pub fn s3_with(url: &str, options: &S3Options) -> Result<Objects, ObjectError> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_allow_http(options.allow_http);
        let settings = [
            (AmazonS3ConfigKey::Endpoint, &options.endpoint),
            (AmazonS3ConfigKey::Region, &options.region),
            (AmazonS3ConfigKey::AccessKeyId, &options.access_key_id),
            (
                AmazonS3ConfigKey::SecretAccessKey,
                &options.secret_access_key,
            ),
            (AmazonS3ConfigKey::Token, &options.session_token),
        ];
        for (key, value) in settings {
            if let Some(v) = value {
                builder = builder.with_config(key, v);
            }
        }
        let secrets = [
            &options.access_key_id,
            &options.secret_access_key,
            &options.session_token,
        ]
        .into_iter()
        .flatten()
        .filter(|v| !v.is_empty())
        .cloned()
        .collect();
        Self::build_s3(builder, bucket, prefix, secrets)
    }

    fn build_s3(
        builder: AmazonS3Builder,
        bucket: String,
        prefix: String,
        secrets: Vec<String>,
    ) -> Result<Objects, ObjectError> {
        let secrets: Arc<[String]> = Arc::from(secrets);
        let s3 = builder.build().map_err(|e| {
            ObjectError::Config(scrub(
                &secrets,
                format!("cannot use the bucket s3://{bucket}: {e}"),
            ))
        })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix.as_str()))
        };
        Ok(Objects {
            store,
            location: Location::S3 { bucket, prefix },
            secrets,
        })
    }

    /// The store `spec` names: none → the directory `default_dir`; `s3://bucket[/prefix]` →
    /// [`Objects::s3`]; `file:///absolute/path` or a path → that directory.
    pub fn open(spec: Option<&str>, default_dir: &Path) -> Result<Objects, ObjectError> {
        let Some(spec) = spec else {
            return Objects::local(default_dir);
        };
        if spec.starts_with("s3://") {
            return Objects::s3(spec);
        }
        if let Some(path) = spec.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(ObjectError::Config(format!(
                    "a file:// location needs an absolute path (file:///var/lib/amanah/documents); \
                     accepted: {ACCEPTED}"
                )));
            }
            return Objects::local(Path::new(path));
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            // Only the scheme is repeated: the rest may hold a password.
            let scheme: String = scheme.chars().take(16).collect();
            return Err(ObjectError::Config(format!(
                "unsupported object storage `{scheme}://`; accepted: {ACCEPTED}"
            )));
        }
        if spec.trim().is_empty() {
            return Err(ObjectError::Config(format!(
                "empty object storage location; accepted: {ACCEPTED}"
            )));
        }
        Objects::local(Path::new(spec))
    }

    /// The objects of one hosted organization: those under `prefix/` of this store, invisible
    /// to every other scope. `prefix` is 1 to 128 characters of `[a-z0-9_-]`.
    ///
    /// This returns a `Result` (a malformed prefix is refused rather than mapped, so that two
    /// organizations can never share a scope).
    pub fn scoped(&self, prefix: &str) -> Result<Objects, ObjectError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 128
            && prefix
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if !valid {
            return Err(ObjectError::Config(
                "an object scope is 1 to 128 characters of a-z, 0-9, '_' and '-'".to_owned(),
            ));
        }
        let location = match &self.location {
            Location::Dir { path, .. } => Location::Dir {
                path: path.join(prefix),
                scope: true,
            },
            Location::S3 { bucket, prefix: p } => Location::S3 {
                bucket: bucket.clone(),
                prefix: if p.is_empty() {
                    prefix.to_owned()
                } else {
                    format!("{p}/{prefix}")
                },
            },
        };
        Ok(Objects {
            store: Arc::new(PrefixStore::new(Arc::clone(&self.store), prefix)),
            location,
            secrets: Arc::clone(&self.secrets),
        })
    }

    /// Where the objects are, for messages: `directory /x/y` or `s3://bucket/prefix` (never a
    /// credential, nor the endpoint).
    pub fn describe(&self) -> String {
        match &self.location {
            Location::Dir { path, .. } => format!("directory {}", path.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Starts writing object `name` (replacing any object of that name when finished). Nothing
    /// is visible under `name` until [`ObjectWriter::finish`] succeeds.
    pub async fn writer(&self, name: &ObjectName) -> Result<ObjectWriter, ObjectError> {
        Ok(ObjectWriter {
            objects: self.clone(),
            name: name.clone(),
            pending: Vec::new(),
            pending_len: 0,
            written: 0,
            upload: None,
            in_flight: JoinSet::new(),
            failed: false,
        })
    }

    /// Reads object `name`, whole or the bytes of `range` (a range reaching past the end stops
    /// at the end; one starting past the end is an error). [`ObjectStream::size`] is the whole
    /// object's size either way.
    pub async fn read(
        &self,
        name: &ObjectName,
        range: Option<Range<u64>>,
    ) -> Result<ObjectStream, ObjectError> {
        if let Some(r) = &range {
            if r.start >= r.end {
                // object_store refuses an empty range: answer it here.
                let size = self.size(name).await?;
                if r.start > size {
                    return Err(self.range_error(name, r, size));
                }
                return Ok(ObjectStream {
                    size,
                    inner: futures_util::stream::empty().boxed(),
                });
            }
        }
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&name.path(), options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(ObjectError::NotFound),
            Err(e) => {
                if let Some(r) = &range {
                    // Say which range was refused, when that was the reason.
                    if let Ok(size) = self.size(name).await {
                        if r.start >= size {
                            return Err(self.range_error(name, r, size));
                        }
                    }
                }
                return Err(self.backend("read", name, e));
            }
        };
        let size = result.meta.size;
        let secrets = Arc::clone(&self.secrets);
        let label = name.clone();
        let inner = match result.payload {
            GetResultPayload::File(file, _) => file_stream(file, result.range, secrets, label),
            GetResultPayload::Stream(s) => s
                .map_err(move |e| backend_error(&secrets, "read", &label, e))
                .boxed(),
        };
        Ok(ObjectStream { size, inner })
    }

    /// The size of object `name`.
    pub async fn size(&self, name: &ObjectName) -> Result<u64, ObjectError> {
        match self.store.head(&name.path()).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(ObjectError::NotFound),
            Err(e) => Err(self.backend("size of", name, e)),
        }
    }

    /// Deletes object `name`; an absent object is not an error.
    pub async fn delete(&self, name: &ObjectName) -> Result<(), ObjectError> {
        match self.store.delete(&name.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend("delete", name, e)),
        }
    }

    /// The objects of this scope (not those of the scopes within it). Entries whose name is not
    /// an [`ObjectName`] are skipped.
    pub async fn list(&self) -> Result<Vec<ObjectInfo>, ObjectError> {
        let listing = self
            .store
            .list_with_delimiter(None)
            .await
            .map_err(|e| self.failure("list", e))?;
        let mut out: Vec<ObjectInfo> = listing
            .objects
            .into_iter()
            .filter_map(|meta| {
                let name = ObjectName::parse(meta.location.filename()?)?;
                Some(ObjectInfo {
                    name,
                    size: meta.size,
                    modified: SystemTime::from(meta.last_modified),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes everything under this scope, the scopes within it included (an organization's
    /// deletion; on an unscoped store, every object of the store). Returns how many objects
    /// were removed. In a directory, staging files left by an interrupted write go too, and a
    /// scope's directory itself; in a bucket, multipart uploads left incomplete by a crash are
    /// not visible here (a bucket lifecycle rule expiring them is the remedy).
    pub async fn delete_all(&self) -> Result<u64, ObjectError> {
        let locations = self.store.list(None).map_ok(|meta| meta.location).boxed();
        let mut deleted = self.store.delete_stream(locations);
        let mut count = 0u64;
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) => count += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failure("delete all objects", e)),
            }
        }
        drop(deleted);
        if let Location::Dir { path, scope } = &self.location {
            let (dir, scope) = (path.clone(), *scope);
            tokio::task::spawn_blocking(move || clean_dir(&dir, scope))
                .await
                .map_err(|e| ObjectError::Backend(format!("delete all objects: {e}")))?
                .map_err(|e| ObjectError::Backend(format!("delete all objects: {e}")))?;
        }
        Ok(count)
    }

    fn range_error(&self, name: &ObjectName, r: &Range<u64>, size: u64) -> ObjectError {
        ObjectError::Backend(format!(
            "read {name}: range {}..{} starts past the end of the object ({size} bytes)",
            r.start, r.end
        ))
    }

    fn backend(&self, op: &str, name: &ObjectName, e: object_store::Error) -> ObjectError {
        backend_error(&self.secrets, op, name, e)
    }

    fn failure(&self, op: &str, e: object_store::Error) -> ObjectError {
        ObjectError::Backend(scrub(
            &self.secrets,
            format!("{op} in {}: {e}", self.describe()),
        ))
    }
}

/// Removes what is left in `dir` (staging files, empty directories), and `dir` itself when it
/// is a scope's own.
fn clean_dir(dir: &Path, remove_itself: bool) -> std::io::Result<()> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    if remove_itself {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn scrub(secrets: &[String], mut message: String) -> String {
    for s in secrets {
        if message.contains(s.as_str()) {
            message = message.replace(s.as_str(), "<redacted>");
        }
    }
    message
}

fn backend_error(
    secrets: &[String],
    op: &str,
    name: &ObjectName,
    e: object_store::Error,
) -> ObjectError {
    ObjectError::Backend(scrub(secrets, format!("{op} {name}: {e}")))
}

/// A local file's bytes in `range`, read in chunks of [`FILE_CHUNK`] off the async threads.
fn file_stream(
    file: std::fs::File,
    range: Range<u64>,
    secrets: Arc<[String]>,
    name: ObjectName,
) -> BoxStream<'static, Result<Bytes, ObjectError>> {
    let state = Some((file, range.start, range.end));
    futures_util::stream::try_unfold(state, move |state| {
        let secrets = Arc::clone(&secrets);
        let name = name.clone();
        async move {
            let Some((file, pos, end)) = state else {
                return Ok(None);
            };
            if pos >= end {
                return Ok(None);
            }
            let want = (end - pos).min(FILE_CHUNK);
            let (file, read) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; want as usize];
                let mut filled = 0usize;
                while filled < buf.len() {
                    #[cfg(unix)]
                    let n = std::os::unix::fs::FileExt::read_at(
                        &file,
                        &mut buf[filled..],
                        pos + filled as u64,
                    );
                    #[cfg(not(unix))]
                    let n = std::os::windows::fs::FileExt::seek_read(
                        &file,
                        &mut buf[filled..],
                        pos + filled as u64,
                    );
                    match n {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return (file, Err(e)),
                    }
                }
                buf.truncate(filled);
                (file, Ok(buf))
            })
            .await
            .map_err(|e| ObjectError::Backend(format!("read {name}: {e}")))?;
            let buf = read
                .map_err(|e| ObjectError::Backend(scrub(&secrets, format!("read {name}: {e}"))))?;
            if buf.is_empty() {
                return Err(ObjectError::Backend(format!(
                    "read {name}: the object ended {} bytes early",
                    end - pos
                )));
            }
            let next = pos + buf.len() as u64;
            Ok(Some((Bytes::from(buf), Some((file, next, end)))))
        }
    })
    .boxed()
}

/// An object's bytes (whole or a range), in chunks as they arrive.
pub struct ObjectStream {
    size: u64,
    inner: BoxStream<'static, Result<Bytes, ObjectError>>,
}

impl ObjectStream {
    /// The whole object's size (not the range's).
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStream")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Stream for ObjectStream {
    type Item = Result<Bytes, ObjectError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// An object being written, streamed in parts: what is written is buffered until a part of
/// [`PART_SIZE`] is full, then uploaded while the next part fills (at most
/// [`MAX_PARTS_IN_FLIGHT`] at once; `write` waits when that many are in flight). An object no
/// larger than one part is sent in one request by [`finish`](ObjectWriter::finish).
///
/// Nothing is visible under the object's name before `finish` succeeds. [`abort`](Self::abort)
/// leaves nothing behind: no staging file, no incomplete multipart upload. Dropping a writer
/// without `finish` never leaves an object either; it removes its staging file (directory) or
/// starts aborting its multipart upload in the background (bucket) when dropped inside a Tokio
/// runtime. Only a crash can leave an incomplete upload in a bucket, invisible to readers and
/// to [`Objects::list`] (expire them with a lifecycle rule), or a `NAME#N` staging file in a
/// directory (skipped by `list`, removed by [`Objects::delete_all`]).
///
/// After an error from `write`, the writer can only be aborted (or dropped): `finish` refuses.
pub struct ObjectWriter {
    objects: Objects,
    name: ObjectName,
    /// Written bytes not yet sent, less than a part (plus at most one write) in total.
    pending: Vec<Bytes>,
    pending_len: usize,
    written: u64,
    /// The multipart upload, started once more than a part has been written.
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: JoinSet<Result<(), object_store::Error>>,
    failed: bool,
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("name", &self.name)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    /// Appends `data` to the object.
    pub async fn write(&mut self, data: Bytes) -> Result<(), ObjectError> {
        if self.failed {
            return Err(self.refused());
        }
        if data.is_empty() {
            return Ok(());
        }
        self.written += data.len() as u64;
        self.pending_len += data.len();
        self.pending.push(data);
        while self.pending_len > PART_SIZE {
            if let Err(e) = self.send_part().await {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Completes the object; returns its size. Only now does it become visible.
    pub async fn finish(mut self) -> Result<u64, ObjectError> {
        if self.failed {
            let e = self.refused();
            self.abort_upload().await;
            return Err(e);
        }
        let result = self.complete().await;
        if result.is_err() {
            self.abort_upload().await;
        }
        result
    }

    /// Abandons the object: nothing of it is left in the store.
    pub async fn abort(mut self) -> Result<(), ObjectError> {
        self.in_flight.shutdown().await;
        self.pending.clear();
        match self.upload.take() {
            Some(mut upload) => upload
                .abort()
                .await
                .map_err(|e| self.objects.backend("abort", &self.name, e)),
            None => Ok(()),
        }
    }

    async fn complete(&mut self) -> Result<u64, ObjectError> {
        let payload = PutPayload::from_iter(std::mem::take(&mut self.pending));
        self.pending_len = 0;
        let Some(upload) = self.upload.as_mut() else {
            self.objects
                .store
                .put(&self.name.path(), payload)
                .await
                .map_err(|e| self.objects.backend("write", &self.name, e))?;
            return Ok(self.written);
        };
        if payload.content_length() > 0 {
            self.in_flight.spawn(upload.put_part(payload));
        }
        while let Some(done) = self.in_flight.join_next().await {
            self.check(done)?;
        }
        let upload = self.upload.as_mut().ok_or_else(|| refused(&self.name))?;
        upload
            .complete()
            .await
            .map_err(|e| self.objects.backend("write", &self.name, e))?;
        self.upload = None;
        Ok(self.written)
    }

    /// Cuts one part of [`PART_SIZE`] from the pending bytes and starts uploading it, once
    /// fewer than [`MAX_PARTS_IN_FLIGHT`] parts are in flight.
    async fn send_part(&mut self) -> Result<(), ObjectError> {
        if self.upload.is_none() {
            let upload = self
                .objects
                .store
                .put_multipart(&self.name.path())
                .await
                .map_err(|e| self.objects.backend("write", &self.name, e))?;
            self.upload = Some(upload);
        }
        while self.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            if let Some(done) = self.in_flight.join_next().await {
                self.check(done)?;
            }
        }
        let mut part = Vec::new();
        let mut need = PART_SIZE;
        let mut rest = std::mem::take(&mut self.pending).into_iter();
        for mut b in rest.by_ref() {
            if b.len() <= need {
                need -= b.len();
                part.push(b);
            } else {
                part.push(b.split_to(need));
                self.pending.push(b);
                need = 0;
            }
            if need == 0 {
                break;
            }
        }
        self.pending.extend(rest);
        self.pending_len -= PART_SIZE;
        let upload = self.upload.as_mut().ok_or_else(|| refused(&self.name))?;
        self.in_flight
            .spawn(upload.put_part(PutPayload::from_iter(part)));
        Ok(())
    }

    fn check(
        &self,
        done: Result<Result<(), object_store::Error>, tokio::task::JoinError>,
    ) -> Result<(), ObjectError> {
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.objects.backend("write", &self.name, e)),
            Err(e) => Err(ObjectError::Backend(format!("write {}: {e}", self.name))),
        }
    }

    fn refused(&self) -> ObjectError {
        refused(&self.name)
    }

    async fn abort_upload(&mut self) {
        self.in_flight.shutdown().await;
        if let Some(mut upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
    }
}

fn refused(name: &ObjectName) -> ObjectError {
    ObjectError::Backend(format!(
        "write {name}: an earlier write failed; the object can only be aborted"
    ))
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // The JoinSet aborts the parts in flight as it drops. A local upload removes its
        // staging file as it drops; a bucket's must be aborted by a request.
        self.in_flight.abort_all();
        if let Some(mut upload) = self.upload.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = upload.abort().await;
                });
            }
        }
    }
}

/// `s3://bucket[/prefix]` → (bucket, prefix without slashes at either end).
fn parse_s3_url(url: &str) -> Result<(String, String), ObjectError> {
    let bad = |why: &str| {
        ObjectError::Config(format!(
            "{why}; an S3 location is s3://bucket or s3://bucket/prefix"
        ))
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("not an s3:// URL"))?;
    if rest.contains(['@', '?', '#']) {
        return Err(bad(
            "an S3 location holds no credentials, query or fragment (credentials go in AWS_* \
             variables)",
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-'));
    if !bucket_ok {
        return Err(bad(
            "a bucket name is 3 to 63 characters of a-z, 0-9, '.' and '-'",
        ));
    }
    let prefix = prefix.trim_matches('/');
    let prefix_ok = prefix.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    });
    if !prefix.is_empty() && !prefix_ok {
        return Err(bad(
            "a prefix is segments of letters, digits, '.', '-' and '_' separated by '/'",
        ));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_random_lowercase_hex() {
        let a = ObjectName::random();
        let b = ObjectName::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(ObjectName::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.to_string(), a.as_str());
        assert_eq!(ObjectName::parse(&a.as_str().to_uppercase()), None);
        assert_eq!(ObjectName::parse(&a.as_str()[1..]), None);
        assert_eq!(ObjectName::parse(&format!("{}#1", a.as_str())), None);
        assert_eq!(ObjectName::parse("0123456789abcdef0123456789abcdeg"), None);
    }

    #[test]
    fn s3_urls() {
        let ok = |u: &str| parse_s3_url(u).ok();
        assert_eq!(ok("s3://docs"), Some(("docs".into(), "".into())));
        assert_eq!(ok("s3://docs/"), Some(("docs".into(), "".into())));
        assert_eq!(ok("s3://docs/a/b/"), Some(("docs".into(), "a/b".into())));
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Docs",
            "s3://docs/a//b",
            "s3://docs/../x",
            "s3://key:secret@docs",
            "s3://docs?x=1",
            "http://docs",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_scrubbed() {
        let secrets = ["AKID".to_owned(), "s3cr3t".to_owned()];
        assert_eq!(
            scrub(&secrets, "key AKID sig s3cr3t".to_owned()),
            "key <redacted> sig <redacted>"
        );
        let o = S3Options {
            secret_access_key: Some("s3cr3t".into()),
            ..S3Options::default()
        };
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }
}
