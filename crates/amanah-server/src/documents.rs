//! Documents over HTTP: uploads stream the request body into the vault (raw bytes, or one file
//! of a `multipart/form-data` body), downloads stream the vault's verified plaintext, whole or
//! one byte range. Neither holds a file in memory.

use std::time::Duration;

use amanah_core::{Error, Timestamp};
use amanah_vault::{act, ByteRange, DocumentInfo, DocumentUpload, Target};
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::handlers::ApiResult;
use crate::problem::Problem;
use crate::query::{ApiQuery, Purpose};

/// An upload whose client sends nothing for this long is abandoned.
const STALLED_UPLOAD: Duration = Duration::from_secs(30);

/// The path of an upload (`PUT /v1/subjects/{id}/documents/{document}`): exempt from the
/// small body limit and from the whole-request deadline, which would cut large files; a
/// stalled upload is cut instead ([`STALLED_UPLOAD`]), and the category's `max_size` bounds it.
pub(crate) fn is_upload(method: &axum::http::Method, path: &str) -> bool {
    if method != axum::http::Method::PUT {
        return false;
    }
    let mut parts = path.trim_start_matches('/').split('/');
    matches!(
        (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next()
        ),
        (
            Some("v1"),
            Some("subjects"),
            Some(_),
            Some("documents"),
            Some(_),
            None
        )
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DocumentQuery {
    #[param(value_type = String)]
    purpose: Purpose,
}

/// A document's description (never its file name: only what the vault can vouch for).
#[derive(Serialize, ToSchema)]
pub struct DocumentOut {
    pub document_id: String,
    pub category: String,
    /// 1, 2, ... within the category; the highest is the current document.
    pub version: i64,
    pub current: bool,
    /// The type sniffed from the content (and declared).
    pub media_type: String,
    /// Bytes of the file.
    pub size: u64,
    /// Lower-case hex SHA-256 of the file (also its `ETag`); null where the role may not
    /// download the file (a fingerprint would confirm a guessed file).
    pub sha256: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: Timestamp,
    /// False where the role sees the category only masked: listed, not downloadable.
    pub downloadable: bool,
}

impl From<DocumentInfo> for DocumentOut {
    fn from(d: DocumentInfo) -> Self {
        DocumentOut {
            document_id: d.document_id,
            category: d.category,
            version: d.version,
            current: d.current,
            media_type: d.media_type.as_str().to_owned(),
            size: d.size,
            sha256: d.sha256,
            uploaded_at: d.uploaded_at,
            downloadable: d.downloadable,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DocumentsOut {
    pub documents: Vec<DocumentOut>,
}

/// Upload a document into a document category of the subject: the file as the raw body with
/// its `Content-Type`, or as the one file of a `multipart/form-data` body. The type is sniffed
/// from the content and must match the declared type and the category's `media_types` (415);
/// a file over the category's `max_size` is refused while it streams (413), with nothing kept.
/// A category keeps every version; the newest is current.
#[utoipa::path(put, path = "/v1/subjects/{id}/documents/{document}",
    params(("id" = String, Path),
           ("document" = String, Path, description = "The document category to upload into (a category of type `document`)"),
           DocumentQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The file's bytes, with `Content-Type` its media type (e.g. `application/pdf`), or `multipart/form-data` with one file part"),
    responses((status = 201, body = DocumentOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn upload_document(
    Authenticated(who, s): Authenticated,
    Path((id, category)): Path<(String, String)>,
    ApiQuery(DocumentQuery {
        purpose: Purpose(purpose),
    }): ApiQuery<DocumentQuery>,
    request: Request,
) -> Response {
    match upload(who, s, id, category, purpose, request).await {
        Ok(created) => created.into_response(),
        Err(problem) => {
            // The body may be unread (refused before or while it streamed): the connection is
            // not reused, so a client that is still sending never sees the next answer on it.
            let mut response = problem.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

async fn upload(
    who: amanah_vault::Principal,
    s: crate::auth::Scoped,
    id: String,
    category: String,
    purpose: String,
    request: Request,
) -> ApiResult<(StatusCode, Json<DocumentOut>)> {
    let permit = s
        .vault
        .authorize::<act::DocumentUpload>(&who, Target::subject_under(&id, &purpose))
        .await?;
    let content_type = header_text(request.headers(), header::CONTENT_TYPE);
    let multipart = content_type
        .as_deref()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/form-data"));
    if multipart {
        let Some(boundary) = content_type
            .as_deref()
            .and_then(|t| multer::parse_boundary(t).ok())
        else {
            let e = Error::BadRequest("a multipart body needs its boundary".into());
            return Err(s.vault.refused(&permit, e).await.into());
        };
        let mut form = multer::Multipart::new(request.into_body().into_data_stream(), boundary);
        let field = match next_file(&mut form).await {
            Ok(f) => f,
            Err(e) => return Err(s.vault.refused(&permit, e).await.into()),
        };
        let declared = field.content_type().map(|m| m.to_string());
        let mut upload = s
            .vault
            .start_upload(&permit, &category, declared.as_deref())
            .await?;
        stream_into(&mut upload, field.map(|r| r.map_err(|e| e.to_string()))).await?;
        if next_file(&mut form).await.is_ok() {
            let e = Error::BadRequest("send one file per upload".into());
            return Err(upload.fail(e).await.into());
        }
        return Ok((StatusCode::CREATED, Json(upload.finish().await?.into())));
    }
    let mut upload = s
        .vault
        .start_upload(&permit, &category, content_type.as_deref())
        .await?;
    let declared_len =
        header_text(request.headers(), header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n > upload.max_size()) {
        let e = Error::TooLarge(format!(
            "the file is larger than category {category:?} accepts ({} bytes at most)",
            upload.max_size()
        ));
        return Err(upload.fail(e).await.into());
    }
    let chunks = request
        .into_body()
        .into_data_stream()
        .map(|r| r.map_err(|e| e.to_string()));
    stream_into(&mut upload, chunks).await?;
    Ok((StatusCode::CREATED, Json(upload.finish().await?.into())))
}

/// The next part of a multipart body that is a file (parts without a file name or type, such
/// as form fields, are skipped).
async fn next_file(form: &mut multer::Multipart<'static>) -> Result<multer::Field<'static>, Error> {
    loop {
        match form.next_field().await {
            Ok(Some(f)) if f.file_name().is_some() || f.content_type().is_some() => return Ok(f),
            Ok(Some(_)) => continue,
            Ok(None) => return Err(Error::BadRequest("the multipart body holds no file".into())),
            Err(_) => return Err(Error::BadRequest("the multipart body is malformed".into())),
        }
    }
}

/// After a refusal mid-upload, at most this much more of the body is read and discarded, so
/// that a client still sending gets the answer instead of a broken connection.
const DRAIN_AFTER_REFUSAL: usize = 16 * 1024 * 1024;
/// While draining, a pause this long ends it (the client has stopped sending).
const DRAIN_IDLE: Duration = Duration::from_secs(2);

/// Why feeding a body stopped short.
enum Stopped {
    /// The upload refused what it got (recorded by the upload).
    Refused(Error),
    /// The client stopped sending, or its body broke off: nothing more to read.
    BodyEnded(Error),
}

/// Feeds the body to the upload as it arrives; any failure is recorded once, by the upload.
async fn stream_into(
    upload: &mut DocumentUpload<'_>,
    chunks: impl Stream<Item = Result<bytes::Bytes, String>>,
) -> Result<(), Problem> {
    let mut chunks = std::pin::pin!(chunks);
    match feed(upload, &mut chunks).await {
        Ok(()) => Ok(()),
        Err(Stopped::BodyEnded(e)) => Err(upload.fail(e).await.into()),
        Err(Stopped::Refused(e)) => {
            let mut drained = 0;
            while drained < DRAIN_AFTER_REFUSAL {
                match tokio::time::timeout(DRAIN_IDLE, chunks.next()).await {
                    Ok(Some(Ok(b))) => drained += b.len(),
                    _ => break,
                }
            }
            Err(e.into())
        }
    }
}

async fn feed(
    upload: &mut DocumentUpload<'_>,
    chunks: &mut std::pin::Pin<&mut impl Stream<Item = Result<bytes::Bytes, String>>>,
) -> Result<(), Stopped> {
    loop {
        let next = tokio::time::timeout(STALLED_UPLOAD, chunks.next())
            .await
            .map_err(|_| {
                Stopped::BodyEnded(Error::BadRequest(format!(
                    "the upload stalled: nothing arrived for {} s",
                    STALLED_UPLOAD.as_secs()
                )))
            })?;
        match next {
            Some(Ok(bytes)) => upload.write(&bytes).await.map_err(Stopped::Refused)?,
            Some(Err(_)) => {
                return Err(Stopped::BodyEnded(Error::BadRequest(
                    "the upload's body was cut off".into(),
                )))
            }
            None => return Ok(()),
        }
    }
}

/// List the subject's documents the role may know of under the purpose, every version; those
/// of categories it sees only masked are listed with `downloadable: false`.
#[utoipa::path(get, path = "/v1/subjects/{id}/documents", params(("id" = String, Path), DocumentQuery),
    responses((status = 200, body = DocumentsOut), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn list_documents(
    Authenticated(who, s): Authenticated,
    Path(id): Path<String>,
    ApiQuery(DocumentQuery {
        purpose: Purpose(purpose),
    }): ApiQuery<DocumentQuery>,
) -> ApiResult<Json<DocumentsOut>> {
    let permit = s
        .vault
        .authorize::<act::DocumentList>(&who, Target::subject_under(&id, &purpose))
        .await?;
    let documents = s.vault.list_documents(&permit).await?;
    Ok(Json(DocumentsOut {
        documents: documents.into_iter().map(DocumentOut::from).collect(),
    }))
}

/// Download a document: the file with its `Content-Type`, `Content-Length` and `ETag` (its
/// SHA-256); one byte range with `Range: bytes=a-b` (206). Every download is audited before its
/// first byte is sent; a stored object that does not verify fails (500, audited) or, past the
/// first 64 KiB, ends the transfer early.
#[utoipa::path(get, path = "/v1/subjects/{id}/documents/{document}",
    params(("id" = String, Path), ("document" = String, Path, description = "The document's id"), DocumentQuery),
    responses((status = 200, description = "The file, as its media type",
               content((Vec<u8> = "application/pdf"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
              (status = 206, description = "The byte range asked for",
               content((Vec<u8> = "application/pdf"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "image/png"), (Vec<u8> = "image/webp"))),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 410, body = Problem), (status = 416, body = Problem)))]
pub async fn download_document(
    Authenticated(who, s): Authenticated,
    Path((id, document_id)): Path<(String, String)>,
    ApiQuery(DocumentQuery {
        purpose: Purpose(purpose),
    }): ApiQuery<DocumentQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let permit = s
        .vault
        .authorize::<act::DocumentRead>(&who, Target::subject_under(&id, &purpose))
        .await?;
    let range = header_text(&headers, header::RANGE).and_then(|r| parse_range(&r));
    let download = s.vault.open_document(&permit, &document_id, range).await?;
    let info = &download.info;
    let length = download.range.end - download.range.start;
    let mut response = Response::new(Body::from_stream(download.body));
    *response.status_mut() = if download.partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(info.media_type.as_str()),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(Ok(v)) = info
        .sha256
        .as_ref()
        .map(|sha| HeaderValue::from_str(&format!("\"{sha}\"")))
    {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.{}\"",
        info.document_id,
        info.media_type.extension()
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if download.partial {
        let range = format!(
            "bytes {}-{}/{}",
            download.range.start,
            download.range.end - 1,
            info.size
        );
        if let Ok(v) = HeaderValue::from_str(&range) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response.into_response())
}

/// A subject's export as a zip, streamed: `export.json`, then each document's file under the
/// name the export's manifest gives it (`documents/<id>.<ext>`). Files are stored, not
/// compressed (PDFs and images are compressed already). A document that fails to open ends
/// the archive without its central directory, so a cut archive never passes for whole.
pub(crate) fn export_zip(
    vault: std::sync::Arc<amanah_vault::Vault>,
    permit: amanah_vault::Permit<act::SubjectExport>,
    export: &serde_json::Value,
) -> Result<Response, Problem> {
    let manifest =
        serde_json::to_vec_pretty(export).map_err(|e| Error::Internal(format!("export: {e}")))?;
    let files: Vec<(String, String)> = export["documents"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .filter_map(|d| {
                    Some((
                        d["document_id"].as_str()?.to_owned(),
                        d["file"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let subject = permit.subject().map_err(Problem::from)?.to_owned();
    let (reader, writer) = tokio::io::duplex(256 * 1024);
    tokio::spawn(async move {
        if let Err(e) = write_zip(writer, &vault, &permit, manifest, files).await {
            tracing::error!(error = %e, "a subject's zip export was cut short");
        }
    });
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(reader)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"subject-{subject}.zip\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

async fn write_zip(
    out: tokio::io::DuplexStream,
    vault: &amanah_vault::Vault,
    permit: &amanah_vault::Permit<act::SubjectExport>,
    manifest: Vec<u8>,
    files: Vec<(String, String)>,
) -> Result<(), String> {
    use async_zip::base::write::ZipFileWriter;
    use async_zip::{Compression, ZipEntryBuilder};
    use futures_util::AsyncWriteExt as _;

    let mut zip = ZipFileWriter::with_tokio(out);
    let entry = ZipEntryBuilder::new("export.json".to_owned().into(), Compression::Stored);
    zip.write_entry_whole(entry, &manifest)
        .await
        .map_err(|e| e.to_string())?;
    for (document_id, name) in files {
        let (_, mut body) = vault
            .export_document(permit, &document_id)
            .await
            .map_err(|e| e.to_string())?;
        let entry = ZipEntryBuilder::new(name.into(), Compression::Stored);
        let mut file = zip
            .write_entry_stream(entry)
            .await
            .map_err(|e| e.to_string())?;
        while let Some(part) = body.next().await {
            let part = part.map_err(|e| e.to_string())?;
            file.write_all(&part).await.map_err(|e| e.to_string())?;
        }
        file.close().await.map_err(|e| e.to_string())?;
    }
    zip.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// One range of a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`). Several ranges or a
/// header that is not one of these forms are ignored, as RFC 9110 allows: the whole document
/// is sent.
pub(crate) fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (start.trim().is_empty(), end.trim().is_empty()) {
        (true, false) => number(end).map(ByteRange::Suffix),
        (false, true) => number(start).map(|start| ByteRange::From { start, end: None }),
        (false, false) => {
            let (start, end) = (number(start)?, number(end)?);
            (start <= end).then_some(ByteRange::From {
                start,
                end: Some(end),
            })
        }
        (true, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges_parse_as_rfc_9110_spells_them() {
        assert_eq!(
            parse_range("bytes=0-99"),
            Some(ByteRange::From {
                start: 0,
                end: Some(99)
            })
        );
        assert_eq!(
            parse_range("bytes=100-"),
            Some(ByteRange::From {
                start: 100,
                end: None
            })
        );
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        for ignored in [
            "bytes=5-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn only_a_document_path_under_put_is_an_upload() {
        let put = axum::http::Method::PUT;
        assert!(is_upload(&put, "/v1/subjects/x/documents/passport"));
        assert!(!is_upload(&put, "/v1/subjects/x/documents"));
        assert!(!is_upload(&put, "/v1/subjects/x/documents/a/b"));
        assert!(!is_upload(&put, "/v1/policy"));
        assert!(!is_upload(
            &axum::http::Method::GET,
            "/v1/subjects/x/documents/passport"
        ));
    }

    proptest! {
        #[test]
        fn any_header_parses_or_is_ignored_and_resolves_inside_the_document(
            header in "\\PC{0,40}", size in 0u64..1_000_000
        ) {
            if let Some(r) = parse_range(&header) {
                if let Some(range) = r.resolve(size) {
                    prop_assert!(range.start < range.end && range.end <= size);
                }
            }
        }
    }
}
