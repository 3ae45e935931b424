-- Schema 4: disclosures and their subjects, the breach register.
CREATE TABLE IF NOT EXISTS disclosures (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    categories TEXT NOT NULL,
    reason TEXT NOT NULL,
    reference TEXT,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    approved_by TEXT,
    approved_at INTEGER,
    authorized_by TEXT,
    authorized_at INTEGER,
    rejected_by TEXT,
    rejected_at INTEGER,
    rejection_reason TEXT,
    releases INTEGER NOT NULL DEFAULT 0,
    max_releases INTEGER NOT NULL,
    first_released_at INTEGER,
    last_released_at INTEGER,
    deferred_until TEXT,
    deferral_reason TEXT,
    excluded TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disclosures_by_time ON disclosures(requested_at, id);
CREATE TABLE IF NOT EXISTS disclosure_subjects (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (disclosure_id, subject_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS disclosure_subjects_by_subject ON disclosure_subjects(subject_id);
CREATE TABLE IF NOT EXISTS breaches (
    id TEXT PRIMARY KEY,
    detected_at INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    description TEXT NOT NULL,
    categories TEXT NOT NULL,
    all_subjects INTEGER NOT NULL,
    cause TEXT NOT NULL,
    measures TEXT NOT NULL,
    notify_by INTEGER NOT NULL,
    notified_at INTEGER,
    notified_by TEXT
);
CREATE INDEX IF NOT EXISTS breaches_by_time ON breaches(detected_at, id);
CREATE TABLE IF NOT EXISTS breach_subjects (
    breach_id TEXT NOT NULL REFERENCES breaches(id) ON DELETE CASCADE,
    subject_id TEXT NOT NULL,
    PRIMARY KEY (breach_id, subject_id)
) WITHOUT ROWID;
