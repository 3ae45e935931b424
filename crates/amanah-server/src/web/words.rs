//! The vault's spelled values (legal bases, request kinds, states) in words, in both
//! languages: shared by the portal and the console.

use super::Lang;

/// A legal basis in words.
pub fn basis(lang: Lang, basis: &str) -> &str {
    match (lang, basis) {
        (Lang::Id, "consent") => "Persetujuan",
        (Lang::Id, "contract") => "Pelaksanaan perjanjian",
        (Lang::Id, "legal_obligation") => "Kewajiban hukum",
        (Lang::Id, "vital_interest") => "Kepentingan vital",
        (Lang::Id, "public_task") => "Tugas untuk kepentingan umum",
        (Lang::Id, "legitimate_interest") => "Kepentingan yang sah",
        (Lang::En, "consent") => "Consent",
        (Lang::En, "contract") => "Performance of a contract",
        (Lang::En, "legal_obligation") => "Legal obligation",
        (Lang::En, "vital_interest") => "Vital interest",
        (Lang::En, "public_task") => "Public task",
        (Lang::En, "legitimate_interest") => "Legitimate interest",
        (_, other) => other,
    }
}

/// A request kind in words.
pub fn request_kind(lang: Lang, kind: &str) -> &str {
    match (lang, kind) {
        (Lang::Id, "access") => "Akses (salinan data)",
        (Lang::Id, "rectification") => "Perbaikan data",
        (Lang::Id, "erasure") => "Penghapusan",
        (Lang::Id, "restriction") => "Pembatasan pemrosesan",
        (Lang::Id, "portability") => "Portabilitas",
        (Lang::Id, "objection") => "Keberatan",
        (Lang::En, "access") => "Access (a copy of my data)",
        (Lang::En, "rectification") => "Rectification",
        (Lang::En, "erasure") => "Erasure",
        (Lang::En, "restriction") => "Restriction of processing",
        (Lang::En, "portability") => "Portability",
        (Lang::En, "objection") => "Objection",
        (_, other) => other,
    }
}

/// A request's or a consent's state in words.
pub fn state(lang: Lang, state: &str) -> &str {
    match (lang, state) {
        (Lang::Id, "received") => "Diterima",
        (Lang::Id, "in_progress") => "Diproses",
        (Lang::Id, "completed") => "Selesai",
        (Lang::Id, "refused") => "Ditolak",
        (Lang::Id, "valid") => "Diberikan",
        (Lang::Id, "withdrawal_pending") => "Ditarik (masa tenggang)",
        (Lang::Id, "withdrawn") => "Ditarik",
        (Lang::Id, "stale") => "Perlu diperbarui (kebijakan berubah)",
        (Lang::Id, "guardian_required") => "Perlu persetujuan wali",
        (Lang::Id, "none") => "Belum diberikan",
        (Lang::En, "received") => "Received",
        (Lang::En, "in_progress") => "In progress",
        (Lang::En, "completed") => "Completed",
        (Lang::En, "refused") => "Refused",
        (Lang::En, "valid") => "Given",
        (Lang::En, "withdrawal_pending") => "Withdrawn (grace period)",
        (Lang::En, "withdrawn") => "Withdrawn",
        (Lang::En, "stale") => "To renew (the policy changed)",
        (Lang::En, "guardian_required") => "Needs a guardian's consent",
        (Lang::En, "none") => "Not given",
        (_, other) => other,
    }
}

/// A refusal reason the law allows, in words.
pub fn refusal_reason(lang: Lang, reason: &str) -> &str {
    match (lang, reason) {
        (Lang::Id, "legal_obligation") => "Kewajiban hukum untuk menyimpan data",
        (Lang::Id, "others_rights") => "Akan mengungkap data atau merugikan hak orang lain",
        (Lang::Id, "legal_hold") => "Data dalam penahanan hukum",
        (Lang::Id, "unverifiable_identity") => "Identitas pemohon tidak dapat diverifikasi",
        (Lang::Id, "legal_claims") => "Diperlukan untuk tuntutan hukum",
        (Lang::Id, "public_interest") => {
            "Pertahanan, keamanan, penegakan hukum atau kepentingan umum (UU PDP Pasal 15)"
        }
        (Lang::Id, "manifestly_unfounded") => "Nyata-nyata tidak berdasar atau berlebihan",
        (Lang::En, "legal_obligation") => "A legal obligation to keep the data",
        (Lang::En, "others_rights") => "Would disclose or harm other people's data or rights",
        (Lang::En, "legal_hold") => "The data is under a legal hold",
        (Lang::En, "unverifiable_identity") => "The requester's identity cannot be verified",
        (Lang::En, "legal_claims") => "Needed for legal claims",
        (Lang::En, "public_interest") => {
            "Defence, security, law enforcement or public interest (UU PDP Art. 15)"
        }
        (Lang::En, "manifestly_unfounded") => "Manifestly unfounded or excessive",
        (_, other) => other,
    }
}

/// Why a value is revealed, in words.
pub fn reveal_reason(lang: Lang, reason: &str) -> &str {
    match (lang, reason) {
        (Lang::Id, "verify_identity") => "Memverifikasi identitas pemohon",
        (Lang::Id, "answer_request") => "Menjawab permintaan",
        (Lang::Id, "check_rectification") => "Membandingkan dengan perbaikan yang diajukan",
        (Lang::Id, "handle_complaint") => "Menangani keluhan atau keberatan",
        (Lang::En, "verify_identity") => "Verify the requester's identity",
        (Lang::En, "answer_request") => "Answer the request",
        (Lang::En, "check_rectification") => "Compare with the proposed correction",
        (Lang::En, "handle_complaint") => "Handle a complaint or objection",
        (_, other) => other,
    }
}
