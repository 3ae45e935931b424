//! Documents: a subject's files (certificates, passports, photos), streamed and never held
//! whole. An upload is decided like a write of its category, sniffed from its first bytes,
//! encrypted as a stream (`amanah_crypto::stream`) into an object under a random name, then
//! recorded with its sealed description and its audit entry in one store write. A download is
//! decided like a read of its category, recorded before its first byte leaves, and opened chunk
//! by chunk; a chunk that does not open ends the transfer and is recorded too.

use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use amanah_core::access::{Denial, Visibility};
use amanah_core::audit::{AuditDraft, Outcome};
use amanah_core::documents::{self as rules, DocumentRules, MediaType};
use amanah_core::{Error, Result, Timestamp};
use amanah_crypto::digest::Sha256Stream;
use amanah_crypto::stream::{DocumentContext, DocumentKey, Encryptor, Layout, HEADER_LEN};
use amanah_crypto::DataKey;
use amanah_objects::{ObjectName, ObjectStream, ObjectWriter, Objects};
use amanah_store::{DocumentRecord, Store, StoreError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::authz::{act, Act, Admitted, Circumstances, Permit};
use crate::vault::{audit_reason, store_error};
use crate::Vault;

/// An upload reserved but never committed leaves its object this long (a slow upload of a
/// large file must not lose its object while it streams).
const PENDING_UPLOAD_MICROS: i64 = 24 * 3600 * 1_000_000;
/// Ciphertext handed to the object store at a time (the object store batches it into parts).
const WRITE_BATCH: usize = 1 << 20;

/// Where a vault keeps its documents' objects: set once when a server starts (the command line
/// never uploads or downloads).
#[derive(Default)]
pub(crate) struct DocumentObjects(OnceLock<Objects>);

impl DocumentObjects {
    fn get(&self) -> Result<&Objects> {
        self.0.get().ok_or_else(|| {
            Error::Internal("this vault was opened without a place for documents".into())
        })
    }
}

/// What a caller may know of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    pub document_id: String,
    pub category: String,
    /// 1, 2, ... within the category; the highest is the current document.
    pub version: i64,
    pub current: bool,
    pub media_type: MediaType,
    /// Bytes of the file.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file; `None` where the role may not download it (a
    /// fingerprint would confirm a guessed file).
    pub sha256: Option<String>,
    pub uploaded_at: Timestamp,
    /// False where the role sees the category only masked: listed, not downloadable.
    pub downloadable: bool,
}

/// A byte range as a `Range` header asks for it; resolved against the document's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive) or `bytes=a-`.
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The plaintext bytes it selects of a document of `size` bytes; `None` when it selects
    /// none (416).
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            ByteRange::From { start, end } => {
                let end = end.map_or(size, |e| e.saturating_add(1).min(size));
                (start < size && start < end).then_some(start..end)
            }
            ByteRange::Suffix(n) => (n > 0 && size > 0).then(|| size - n.min(size)..size),
        }
    }
}

/// The description sealed in a document's row.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sealed {
    media_type: String,
    size: u64,
    sha256: String,
}

/// The associated data of a document's sealed description: the category and document id, so
/// a row's description cannot be moved to another document.
fn sealed_field(category: &str, document: &str) -> String {
    format!("document/{category}/{document}")
}

impl Vault {
    /// Gives the vault the object store of its documents (once; later calls are ignored).
    pub fn attach_documents(&self, objects: Objects) {
        let _ = self.documents.0.set(objects);
    }

    /// The object store of this vault's documents, when one is attached.
    pub fn document_objects(&self) -> Option<&Objects> {
        self.documents.0.get()
    }

    /// Starts an upload to the permit's subject, in document category `category`, of a file
    /// declared as `declared` (the request's `Content-Type`). Refused (and recorded) like a
    /// write the role may not make; a type the category does not accept is refused before any
    /// byte is read.
    pub async fn start_upload(
        &self,
        permit: &Permit<act::DocumentUpload>,
        category: &str,
        declared: Option<&str>,
    ) -> Result<DocumentUpload<'_>> {
        let policy = permit.policy();
        let grant = permit.grant()?;
        let id = permit.subject()?;
        let mut draft = permit.draft();
        // Only a category the policy declares is recorded: anything else is caller text.
        if policy.category(category).is_some() {
            draft.fields = vec![category.to_owned()];
        }
        let admitted = self
            .admit_subject(permit, Circumstances::default(), &draft)
            .await?;
        let rules = match document_rules(policy, category) {
            Ok(r) => r,
            Err(e) => return Err(self.deny(draft, e).await),
        };
        if !grant.writable.iter().any(|c| c == category) {
            let e = Error::invalid(
                "category",
                format!(
                    "category {category:?} is not collected under purpose {:?}",
                    grant.purpose
                ),
            );
            return Err(self.deny(draft, e).await);
        }
        if !grant.readable.contains_key(category) {
            let denial = Denial::CategoryNotVisible {
                category: category.to_owned(),
                purpose: grant.purpose.clone(),
            };
            return Err(self.refuse(draft, &denial).await);
        }
        match self
            .consent_basis(policy, grant, &admitted, draft.at_micros)
            .await
        {
            Ok(reason) => draft.reason = reason,
            Err(e) => return Err(self.deny(draft, e).await),
        }
        let declared = match declared_type(declared, &rules) {
            Ok(t) => t,
            Err(e) => return Err(self.deny(draft, e).await),
        };
        let objects = self.documents.get()?.clone();
        let document_id = uuid::Uuid::now_v7().to_string();
        let context = DocumentContext {
            subject: id,
            category,
            document: &document_id,
        };
        let encryptor = admitted
            .key
            .document_encryptor(&context)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(DocumentUpload {
            vault: self,
            objects,
            draft,
            subject: id.to_owned(),
            category: category.to_owned(),
            document_id,
            declared,
            rules,
            key: admitted.key,
            encryptor: Some(encryptor),
            head: Vec::with_capacity(rules::SNIFF_LEN),
            writer: None,
            size: 0,
            sha256: Sha256Stream::default(),
            out: Vec::with_capacity(WRITE_BATCH + HEADER_LEN + 2 * (64 * 1024 + 16)),
            refused: false,
        })
    }

    /// The permit's subject's documents the role may know of (every version), each listed with
    /// whether it may be downloaded. One audit entry names the categories listed.
    pub async fn list_documents(
        &self,
        permit: &Permit<act::DocumentList>,
    ) -> Result<Vec<DocumentInfo>> {
        let grant = permit.grant()?;
        let id = permit.subject()?;
        let (admitted, mut draft) = self.admitted_under_purpose(permit).await?;
        let records = self.store.documents(id).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(records.len());
        for (r, current) in with_current(&records) {
            let Some(visibility) = grant.readable.get(&r.category) else {
                continue;
            };
            let info = match describe(&admitted.key, r, current, *visibility) {
                Ok(info) => info,
                Err(e) => return Err(self.deny(draft, e).await),
            };
            out.push(info);
        }
        let mut listed: Vec<String> = out.iter().map(|d| d.category.clone()).collect();
        listed.dedup();
        draft.fields = listed;
        self.record(draft).await?;
        Ok(out)
    }

    /// Opens one of the permit's subject's documents for download, whole or the `range` asked.
    /// The read is recorded before this returns; the body verifies every chunk before handing
    /// it on, and a chunk that does not open (the object altered, cut or swapped) ends it with
    /// an error and a refusal on record.
    pub async fn open_document(
        &self,
        permit: &Permit<act::DocumentRead>,
        document_id: &str,
        range: Option<ByteRange>,
    ) -> Result<DocumentDownload> {
        let grant = permit.grant()?;
        let id = permit.subject()?;
        let (admitted, mut draft) = self.admitted_under_purpose(permit).await?;
        // Every version of the subject's documents in one read: the one asked for, and whether
        // it is its category's current one.
        let records = self.store.documents(id).await.map_err(store_error)?;
        let Some((record, current)) = with_current(&records).find(|(r, _)| r.id == document_id)
        else {
            let e = Error::NotFound("no such document of this subject".into());
            return Err(self.deny(draft, e).await);
        };
        draft.fields = vec![record.category.clone()];
        let visibility = match grant.readable.get(&record.category) {
            Some(v) => *v,
            None => {
                let denial = Denial::CategoryNotVisible {
                    category: record.category.clone(),
                    purpose: grant.purpose.clone(),
                };
                return Err(self.refuse(draft, &denial).await);
            }
        };
        if visibility == Visibility::Masked {
            let e = Error::Forbidden(format!(
                "role {:?} sees category {:?} only masked: its documents are listed, not \
                 downloaded",
                grant.role, record.category
            ));
            return Err(self.deny(draft, e).await);
        }
        let info = match describe(&admitted.key, record, current, visibility) {
            Ok(i) => i,
            Err(e) => return Err(self.deny(draft, e).await),
        };
        let wanted = match range {
            None => 0..info.size,
            Some(r) => match r.resolve(info.size) {
                Some(w) => w,
                None => {
                    let e = Error::RangeNotSatisfiable(info.size);
                    return Err(self.deny(draft, e).await);
                }
            },
        };
        let objects = self.documents.get()?.clone();
        let opened = self
            .open_object(&objects, &admitted.key, record, &info, wanted.clone())
            .await;
        let body = match opened {
            Ok(body) => body,
            Err(e) => return Err(self.deny(draft, e).await),
        };
        if range.is_some() {
            draft.reason = Some(match draft.reason.take() {
                Some(r) => format!("{r}; bytes {}-{}", wanted.start, wanted.end - 1),
                None => format!("bytes {}-{}", wanted.start, wanted.end - 1),
            });
        }
        // Recorded before the first byte leaves; a later failure adds a refusal.
        self.record(draft.clone()).await?;
        Ok(DocumentDownload {
            info,
            range: wanted,
            partial: range.is_some(),
            body: ChunkStream {
                inner: body,
                failed: Some((self.store.clone(), draft)),
            },
        })
    }

    /// The permit's subject, loaded and admitted, with the purpose's consent checked: the
    /// subject and the audit draft (holding the consent's reason), or the refusal, recorded.
    async fn admitted_under_purpose<A: Act>(
        &self,
        permit: &Permit<A>,
    ) -> Result<(Admitted, AuditDraft)> {
        let grant = permit.grant()?;
        let mut draft = permit.draft();
        let admitted = self
            .admit_subject(permit, Circumstances::default(), &draft)
            .await?;
        match self
            .consent_basis(permit.policy(), grant, &admitted, draft.at_micros)
            .await
        {
            Ok(reason) => draft.reason = reason,
            Err(e) => return Err(self.deny(draft, e).await),
        }
        Ok((admitted, draft))
    }

    /// Checks the object against the document's description and opens the first chunk of
    /// `wanted` before anything is sent: a document altered, cut or swapped fails here.
    async fn open_object(
        &self,
        objects: &Objects,
        key: &DataKey,
        record: &DocumentRecord,
        info: &DocumentInfo,
        wanted: Range<u64>,
    ) -> Result<BoxedBody> {
        let altered = || {
            tracing::error!(document = %record.id, "a document's object does not verify");
            Error::Internal(format!(
                "document {}: its stored object does not verify (altered, cut or swapped)",
                record.id
            ))
        };
        let name = ObjectName::parse(&record.object).ok_or_else(altered)?;
        let layout = Layout::for_plaintext(info.size).ok_or_else(altered)?;
        let object_size = objects.size(&name).await.map_err(|e| object_error(&e))?;
        if object_size != layout.ciphertext_len() {
            return Err(altered());
        }
        let mut header = Vec::with_capacity(HEADER_LEN);
        let mut head = objects
            .read(&name, Some(0..HEADER_LEN as u64))
            .await
            .map_err(|e| object_error(&e))?;
        while let Some(part) = head.next().await {
            header.extend_from_slice(&part.map_err(|e| object_error(&e))?);
        }
        let context = DocumentContext {
            subject: &record.subject_id,
            category: &record.category,
            document: &record.id,
        };
        let key = key.document_key(&context, &header).map_err(|_| altered())?;
        if wanted.is_empty() {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let first = layout
            .chunk_for_offset(wanted.start)
            .ok_or_else(altered)?
            .index;
        let last = layout
            .chunk_for_offset(wanted.end - 1)
            .ok_or_else(altered)?
            .index;
        let from = layout.chunk_ciphertext_range(first).ok_or_else(altered)?;
        let to = layout.chunk_ciphertext_range(last).ok_or_else(altered)?;
        let source = objects
            .read(&name, Some(from.start..to.end))
            .await
            .map_err(|e| object_error(&e))?;
        let mut opener = ChunkOpener {
            key: Some(key),
            layout,
            wanted,
            index: first,
            last,
            source: Some(source),
            pending: Vec::new(),
            document: record.id.clone(),
        };
        // The first chunk is opened now, so a failure is an error answer, not a cut body.
        let head = opener.next_chunk().await?;
        Ok(Box::pin(
            futures_util::stream::once(async move { Ok(head) }).chain(opener.into_stream()),
        ))
    }

    /// Deletes from the object store the objects of deleted documents and of uploads that never
    /// committed; how many it deleted. Run by the server's sweeps.
    pub async fn sweep_document_objects(&self) -> Result<u64> {
        let Some(objects) = self.documents.0.get() else {
            return Ok(0);
        };
        let stale = self.clock.now_micros() - PENDING_UPLOAD_MICROS;
        let mut deleted = 0;
        loop {
            let due = self
                .store
                .objects_to_delete(stale, 500)
                .await
                .map_err(store_error)?;
            if due.is_empty() {
                return Ok(deleted);
            }
            let mut gone = Vec::with_capacity(due.len());
            for object in due {
                if let Some(name) = ObjectName::parse(&object) {
                    objects.delete(&name).await.map_err(|e| object_error(&e))?;
                }
                gone.push(object);
            }
            deleted += gone.len() as u64;
            self.store.forget_objects(gone).await.map_err(store_error)?;
        }
    }

    /// After an erasure: its documents' objects go from the object store at once (already
    /// unreadable: their key is destroyed). A failure is logged; the next sweep retries.
    pub(crate) async fn delete_erased_objects(&self) {
        if let Err(e) = self.sweep_document_objects().await {
            tracing::error!(error = %e, "deleting erased documents' objects failed; the next sweep retries");
        }
    }

    /// The manifest of a subject's documents for its export: every version, described.
    pub(crate) async fn document_manifest(
        &self,
        key: &DataKey,
        subject: &str,
    ) -> Result<Vec<DocumentInfo>> {
        let records = self.store.documents(subject).await.map_err(store_error)?;
        with_current(&records)
            .map(|(r, current)| describe(key, r, current, Visibility::Clear))
            .collect()
    }

    /// One document's file, for the export of its subject (a zip): the export permit allows it,
    /// and the export's own audit entry records it.
    pub async fn export_document(
        &self,
        permit: &Permit<act::SubjectExport>,
        document_id: &str,
    ) -> Result<(DocumentInfo, ChunkStream)> {
        let objects = self.documents.get()?.clone();
        let id = permit.subject()?;
        let draft = permit.draft();
        let (stored, key) = self.subject_for(id, &draft).await?;
        let record = self
            .store
            .document(&stored.id, document_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| Error::NotFound("no such document of this subject".into()))?;
        let info = describe(&key, &record, true, Visibility::Clear)?;
        let body = self
            .open_object(&objects, &key, &record, &info, 0..info.size)
            .await?;
        Ok((
            info,
            ChunkStream {
                inner: body,
                failed: Some((self.store.clone(), {
                    let mut d = draft;
                    d.fields = vec![record.category.clone()];
                    d
                })),
            },
        ))
    }
}

/// Each of a subject's documents (as the store lists them: by category, then version) with
/// whether it is its category's current version (the last of its category).
fn with_current(records: &[DocumentRecord]) -> impl Iterator<Item = (&DocumentRecord, bool)> {
    records.iter().enumerate().map(|(i, r)| {
        let current = records
            .get(i + 1)
            .is_none_or(|next| next.category != r.category);
        (r, current)
    })
}

/// A document category's rules, or the error naming `category`.
fn document_rules(policy: &amanah_core::policy::Policy, category: &str) -> Result<DocumentRules> {
    match policy.category(category) {
        Some(c) => c.document.clone().ok_or_else(|| {
            Error::invalid(
                "category",
                format!("category {category:?} holds values, not documents: write it as a field"),
            )
        }),
        None => Err(Error::invalid(
            "category",
            "no such category in the policy".to_owned(),
        )),
    }
}

fn accepted_list(rules: &DocumentRules) -> String {
    rules
        .media_types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The declared type, when the category accepts it.
fn declared_type(declared: Option<&str>, rules: &DocumentRules) -> Result<MediaType> {
    match declared.and_then(MediaType::parse) {
        Some(t) if rules.accepts(t) => Ok(t),
        _ => Err(Error::UnsupportedMediaType(format!(
            "declare the file's type as one this category accepts: {}",
            accepted_list(rules)
        ))),
    }
}

fn object_error(e: &amanah_objects::ObjectError) -> Error {
    tracing::error!(error = %e, "object store failure");
    Error::Internal("object store failure".into())
}

/// Opens a document's sealed description.
fn describe(
    key: &DataKey,
    r: &DocumentRecord,
    current: bool,
    visibility: Visibility,
) -> Result<DocumentInfo> {
    let field = sealed_field(&r.category, &r.id);
    let plain = key
        .open_field(&r.subject_id, &field, &r.sealed)
        .map_err(|_| {
            tracing::error!(document = %r.id, "a document's description does not decrypt");
            Error::Internal(format!(
                "document {}: its description does not decrypt",
                r.id
            ))
        })?;
    let sealed: Sealed = serde_json::from_slice(&plain)
        .map_err(|_| Error::Internal(format!("document {}: unreadable description", r.id)))?;
    let media_type = MediaType::parse(&sealed.media_type)
        .ok_or_else(|| Error::Internal(format!("document {}: unknown media type", r.id)))?;
    Ok(DocumentInfo {
        document_id: r.id.clone(),
        category: r.category.clone(),
        version: r.version,
        current,
        media_type,
        size: sealed.size,
        sha256: (visibility == Visibility::Clear).then_some(sealed.sha256),
        uploaded_at: Timestamp::from_micros(r.uploaded_at_micros),
        downloadable: visibility == Visibility::Clear,
    })
}

/// An upload under way: feed it the body with [`DocumentUpload::write`], then
/// [`DocumentUpload::finish`]. Dropped unfinished, it leaves no document (its object, if
/// any was started, is deleted by a later sweep).
pub struct DocumentUpload<'v> {
    vault: &'v Vault,
    objects: Objects,
    draft: AuditDraft,
    subject: String,
    category: String,
    document_id: String,
    declared: MediaType,
    rules: DocumentRules,
    key: DataKey,
    encryptor: Option<Encryptor>,
    /// The first bytes, held until there are enough to tell the type.
    head: Vec<u8>,
    writer: Option<(ObjectName, ObjectWriter)>,
    size: u64,
    sha256: Sha256Stream,
    out: Vec<u8>,
    /// The upload's refusal is on record (at most one entry per upload).
    refused: bool,
}

impl std::fmt::Debug for DocumentUpload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentUpload")
            .field("document", &self.document_id)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl DocumentUpload<'_> {
    /// The most bytes the category accepts (a larger declared length is refused up front).
    pub fn max_size(&self) -> u64 {
        self.rules.max_size
    }

    /// Feeds the next bytes of the file. Fails once the file is larger than its category
    /// allows (413) or its first bytes show another type than declared (415); the upload is
    /// then abandoned and nothing of it is kept.
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        match self.feed(data).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.size = self.size.saturating_add(data.len() as u64);
        if self.size > self.rules.max_size {
            return Err(Error::TooLarge(format!(
                "the file is larger than category {:?} accepts ({} bytes at most)",
                self.category, self.rules.max_size
            )));
        }
        if self.writer.is_none() {
            self.head.extend_from_slice(data);
            if self.head.len() < rules::SNIFF_LEN {
                return Ok(());
            }
            self.start_object().await?;
            let head = std::mem::take(&mut self.head);
            return self.encrypt(&head).await;
        }
        self.encrypt(data).await
    }

    /// Abandons the upload for `error` (its own, or one the shell found in the request: a body
    /// cut off or stalled, a malformed form), records the refusal once, and returns the error.
    pub async fn fail(&mut self, error: Error) -> Error {
        self.abandon().await;
        if std::mem::replace(&mut self.refused, true) {
            return error;
        }
        self.vault.deny(self.draft.clone(), error).await
    }

    /// Ends the upload: the last chunk is written, the object completed and the document
    /// recorded (with its audit entry) as the category's next version.
    pub async fn finish(mut self) -> Result<DocumentInfo> {
        if self.writer.is_none() {
            let head = std::mem::take(&mut self.head);
            let started = match self.start_object().await {
                Ok(()) => self.encrypt(&head).await,
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                return Err(self.fail(e).await);
            }
        }
        let encryptor = self
            .encryptor
            .take()
            .ok_or_else(|| Error::Internal("upload already ended".into()))?;
        let mut out = std::mem::take(&mut self.out);
        encryptor
            .finish(&mut out)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let Some((name, mut writer)) = self.writer.take() else {
            return Err(Error::Internal("upload without an object".into()));
        };
        writer
            .write(Bytes::from(out))
            .await
            .map_err(|e| object_error(&e))?;
        let stored_size = writer.finish().await.map_err(|e| object_error(&e))?;
        let sha256 = std::mem::take(&mut self.sha256).finish_hex();
        let sealed = Sealed {
            media_type: self.declared.as_str().to_owned(),
            size: self.size,
            sha256: sha256.clone(),
        };
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&sealed).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let sealed = self
            .key
            .seal_field(
                &self.subject,
                &sealed_field(&self.category, &self.document_id),
                &plain,
            )
            .map_err(|e| Error::Internal(e.to_string()))?;
        let uploaded_at = self.draft.at_micros;
        let record = DocumentRecord {
            id: self.document_id.clone(),
            subject_id: self.subject.clone(),
            category: self.category.clone(),
            version: 0,
            object: name.as_str().to_owned(),
            sealed,
            stored_size: i64::try_from(stored_size).unwrap_or(i64::MAX),
            uploaded_at_micros: uploaded_at,
        };
        let mut draft = self.draft.clone();
        draft.reason = Some(match draft.reason.take() {
            Some(r) => format!("{r}; document {}", self.document_id),
            None => format!("document {}", self.document_id),
        });
        match self.vault.store.insert_document(record, draft).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                // Erased while it streamed: the object goes at once (the sweep would too).
                let _ = self.objects.delete(&name).await;
                let missing = self.vault.missing_subject(&self.subject).await?;
                return Err(self.vault.deny(self.draft.clone(), missing).await);
            }
            Err(e) => return Err(store_error(e)),
        }
        let version = self
            .vault
            .store
            .document(&self.subject, &self.document_id)
            .await
            .map_err(store_error)?
            .map_or(1, |d| d.version);
        Ok(DocumentInfo {
            document_id: self.document_id.clone(),
            category: self.category.clone(),
            version,
            current: true,
            media_type: self.declared,
            size: self.size,
            sha256: Some(sha256),
            uploaded_at: Timestamp::from_micros(uploaded_at),
            downloadable: true,
        })
    }

    /// Checks the first bytes' type, then reserves and opens the object.
    async fn start_object(&mut self) -> Result<()> {
        let sniffed = rules::sniff(&self.head);
        if sniffed != Some(self.declared) {
            let found = sniffed.map_or("an unrecognized type".to_owned(), |t| {
                format!("{} content", t.as_str())
            });
            return Err(Error::UnsupportedMediaType(format!(
                "the file holds {found}, not the {} declared (category {:?} accepts: {})",
                self.declared.as_str(),
                self.category,
                accepted_list(&self.rules)
            )));
        }
        let name = ObjectName::random();
        self.vault
            .store
            .reserve_object(name.as_str(), self.draft.at_micros)
            .await
            .map_err(store_error)?;
        let writer = self
            .objects
            .writer(&name)
            .await
            .map_err(|e| object_error(&e))?;
        self.writer = Some((name, writer));
        Ok(())
    }

    async fn encrypt(&mut self, data: &[u8]) -> Result<()> {
        self.sha256.update(data);
        let encryptor = self
            .encryptor
            .as_mut()
            .ok_or_else(|| Error::Internal("upload already ended".into()))?;
        encryptor
            .update(data, &mut self.out)
            .map_err(|e| Error::Internal(e.to_string()))?;
        if self.out.len() >= WRITE_BATCH {
            let batch = Bytes::from(std::mem::replace(
                &mut self.out,
                Vec::with_capacity(WRITE_BATCH + 2 * (64 * 1024 + 16)),
            ));
            if let Some((_, writer)) = self.writer.as_mut() {
                writer.write(batch).await.map_err(|e| object_error(&e))?;
            }
        }
        Ok(())
    }

    /// Gives up: the object (if started) is aborted; its reservation makes the sweep delete
    /// whatever the object store kept.
    async fn abandon(&mut self) {
        self.encryptor = None;
        self.out = Vec::new();
        if let Some((name, writer)) = self.writer.take() {
            if let Err(e) = writer.abort().await {
                tracing::warn!(object = %name, error = %e, "an abandoned upload was not aborted");
            }
        }
    }
}

/// A download: what the document is, the plaintext bytes sent, and the body.
pub struct DocumentDownload {
    pub info: DocumentInfo,
    pub range: Range<u64>,
    /// The caller asked for a range (206), not the whole document.
    pub partial: bool,
    pub body: ChunkStream,
}

impl std::fmt::Debug for DocumentDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentDownload")
            .field("document", &self.info.document_id)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

type BoxedBody = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// The verified plaintext of a download, chunk by chunk. A chunk that does not open ends the
/// stream with an error, and the refusal is recorded in the audit log.
pub struct ChunkStream {
    inner: BoxedBody,
    /// Where to record a failure, and the entry to record (taken at the first failure).
    failed: Option<(Arc<dyn Store>, AuditDraft)>,
}

impl Stream for ChunkStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                if let Some((store, mut draft)) = self.failed.take() {
                    draft.outcome = Outcome::Denied;
                    draft.reason = Some(audit_reason(&e));
                    // The failure is recorded even though the caller's transfer is over.
                    tokio::spawn(async move {
                        if let Err(e) = store.append_audit(vec![draft]).await {
                            tracing::error!(error = %e, "a failed download was not recorded");
                        }
                    });
                }
                Poll::Ready(Some(Err(std::io::Error::other(
                    "the document's stored object does not verify",
                ))))
            }
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads a document's chunks from its object and opens them one at a time, keeping only the
/// part of each that the range asks for.
struct ChunkOpener {
    key: Option<DocumentKey>,
    layout: Layout,
    wanted: Range<u64>,
    index: u32,
    last: u32,
    source: Option<ObjectStream>,
    pending: Vec<u8>,
    document: String,
}

impl ChunkOpener {
    fn into_stream(self) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        futures_util::stream::unfold(self, |mut opener| async move {
            if opener.index > opener.last || opener.key.is_none() {
                return None;
            }
            match opener.next_chunk().await {
                Ok(b) => Some((Ok(b), opener)),
                Err(e) => {
                    opener.key = None;
                    Some((Err(e), opener))
                }
            }
        })
    }

    fn altered(&self) -> Error {
        tracing::error!(document = %self.document, "a document's chunk does not open");
        Error::Internal(format!(
            "document {}: a chunk of its stored object does not open (altered, cut or swapped)",
            self.document
        ))
    }

    /// The next chunk's wanted plaintext.
    async fn next_chunk(&mut self) -> Result<Bytes> {
        let range = self
            .layout
            .chunk_ciphertext_range(self.index)
            .ok_or_else(|| self.altered())?;
        let need = usize::try_from(range.end - range.start).map_err(|_| self.altered())?;
        while self.pending.len() < need {
            let Some(source) = self.source.as_mut() else {
                return Err(self.altered());
            };
            match source.next().await {
                Some(Ok(b)) => self.pending.extend_from_slice(&b),
                Some(Err(e)) => return Err(object_error(&e)),
                None => return Err(self.altered()),
            }
        }
        let rest = self.pending.split_off(need);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let mut plain = Vec::with_capacity(need);
        let last = self.layout.is_last(self.index);
        let key = self.key.as_ref().ok_or_else(|| self.altered())?;
        key.open_chunk(self.index, last, &chunk, &mut plain)
            .map_err(|_| self.altered())?;
        let span = self
            .layout
            .chunk_plaintext_range(self.index)
            .ok_or_else(|| self.altered())?;
        let from = self.wanted.start.max(span.start) - span.start;
        let to = self.wanted.end.min(span.end) - span.start;
        self.index += 1;
        let (from, to) = (from as usize, to as usize);
        plain.truncate(to);
        Ok(Bytes::from(plain).slice(from..))
    }
}
