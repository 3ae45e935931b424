//! The storage contract of documents: where each version of a subject's document lies in the
//! object store and its sealed description. The files themselves are never here; the objects
//! of deleted documents are listed until the vault has deleted them from the object store.

use amanah_core::audit::{AuditDraft, AuditRecord};
use async_trait::async_trait;

use crate::ops::Op;
use crate::{limit, rows, sql, Backend, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    pub id: String,
    pub subject_id: String,
    pub category: String,
    /// 1, 2, ... within the subject's category; the highest is the current document. Set by
    /// the store on insert (the value given is ignored).
    pub version: i64,
    /// The object's random name in the object store.
    pub object: String,
    /// Media type, size and SHA-256 of the plaintext, sealed under the subject's data key.
    pub sealed: Vec<u8>,
    /// The object's length (the ciphertext's: the object store shows it anyway).
    pub stored_size: i64,
    pub uploaded_at_micros: i64,
}

#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Records an upload under way before its object is written, so that an upload that never
    /// commits leaves no object behind for good (see [`DocumentStore::objects_to_delete`]).
    async fn reserve_object(&self, object: &str, at_micros: i64) -> StoreResult<()>;
    /// Adds the document as the category's next version; `NotFound` if the subject is gone.
    async fn insert_document(
        &self,
        document: DocumentRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord>;
    /// One subject's documents, every version, by category then version.
    async fn documents(&self, subject: &str) -> StoreResult<Vec<DocumentRecord>>;
    async fn document(&self, subject: &str, id: &str) -> StoreResult<Option<DocumentRecord>>;
    /// Objects to delete from the object store: those of deleted documents (erasure, retention,
    /// a purge), and those of uploads reserved before `stale_before_micros` that never
    /// committed. At most `n`.
    async fn objects_to_delete(
        &self,
        stale_before_micros: i64,
        n: usize,
    ) -> StoreResult<Vec<String>>;
    /// The objects are gone from the object store.
    async fn forget_objects(&self, objects: Vec<String>) -> StoreResult<()>;
    /// Whether the store knows the object (a document's, or one to delete).
    async fn object_known(&self, object: &str) -> StoreResult<bool>;
}

#[async_trait]
impl<B: Backend> DocumentStore for B {
    async fn reserve_object(&self, object: &str, at_micros: i64) -> StoreResult<()> {
        self.write(Op::ReserveObject {
            object: object.to_owned(),
            at: at_micros,
        })
        .await
        .map(drop)
    }

    async fn insert_document(
        &self,
        document: DocumentRecord,
        audit: AuditDraft,
    ) -> StoreResult<AuditRecord> {
        self.write_one(Op::InsertDocument(document, audit)).await
    }

    async fn documents(&self, subject: &str) -> StoreResult<Vec<DocumentRecord>> {
        self.all(sql::DOCUMENTS_OF, args![subject], rows::document)
            .await
    }

    async fn document(&self, subject: &str, id: &str) -> StoreResult<Option<DocumentRecord>> {
        self.first(sql::DOCUMENT, args![subject, id], rows::document)
            .await
    }

    async fn objects_to_delete(
        &self,
        stale_before_micros: i64,
        n: usize,
    ) -> StoreResult<Vec<String>> {
        self.all(
            sql::OBJECTS_TO_DELETE,
            args![stale_before_micros, limit(n)],
            rows::string,
        )
        .await
    }

    async fn forget_objects(&self, objects: Vec<String>) -> StoreResult<()> {
        if objects.is_empty() {
            return Ok(());
        }
        self.write(Op::ForgetObjects(objects)).await.map(drop)
    }

    async fn object_known(&self, object: &str) -> StoreResult<bool> {
        let rows = self
            .all(sql::OBJECT_KNOWN, args![object], rows::unit)
            .await?;
        Ok(!rows.is_empty())
    }
}
