-- Schema 4: disclosures and their subjects, the breach register.
CREATE TABLE disclosures (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    categories TEXT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    approved_by TEXT,
    approved_at BIGINT,
    authorized_by TEXT,
    authorized_at BIGINT,
    rejected_by TEXT,
    rejected_at BIGINT,
    rejection_reason TEXT,
    releases BIGINT NOT NULL DEFAULT 0,
    max_releases BIGINT NOT NULL,
    first_released_at BIGINT,
    last_released_at BIGINT,
    deferred_until TEXT,
    deferral_reason TEXT,
    excluded TEXT NOT NULL
);
CREATE INDEX disclosures_by_time ON disclosures(requested_at, id);
CREATE TABLE disclosure_subjects (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (disclosure_id, subject_id)
);
CREATE INDEX disclosure_subjects_by_subject ON disclosure_subjects(subject_id);
CREATE TABLE breaches (
    id TEXT PRIMARY KEY,
    detected_at BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL,
    recorded_by TEXT NOT NULL,
    description TEXT NOT NULL,
    categories TEXT NOT NULL,
    all_subjects BOOLEAN NOT NULL,
    cause TEXT NOT NULL,
    measures TEXT NOT NULL,
    notify_by BIGINT NOT NULL,
    notified_at BIGINT,
    notified_by TEXT
);
CREATE INDEX breaches_by_time ON breaches(detected_at, id);
CREATE TABLE breach_subjects (
    breach_id TEXT NOT NULL REFERENCES breaches(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (breach_id, subject_id)
);
