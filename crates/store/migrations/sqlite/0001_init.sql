-- retake schema for the embedded SQLite store. Times are RFC 3339 text in UTC; JSON is text.

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    gpu_budget_seconds REAL CHECK (gpu_budget_seconds IS NULL OR gpu_budget_seconds >= 0),
    gpu_spent_seconds REAL NOT NULL DEFAULT 0 CHECK (gpu_spent_seconds >= 0),
    gpu_reserved_seconds REAL NOT NULL DEFAULT 0 CHECK (gpu_reserved_seconds >= -0.000001),
    default_gpu_estimate_seconds REAL NOT NULL DEFAULT 30 CHECK (default_gpu_estimate_seconds > 0),
    default_retry_policy TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE scene_types (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    backend TEXT NOT NULL DEFAULT 'simulated',
    backend_config TEXT NOT NULL DEFAULT '{}',
    workflow_template TEXT NOT NULL DEFAULT '{}',
    parameter_bindings TEXT NOT NULL DEFAULT '{}',
    default_parameters TEXT NOT NULL DEFAULT '{}',
    qa_checks TEXT NOT NULL DEFAULT '[]',
    qa_commands TEXT NOT NULL DEFAULT '[]',
    parameter_domains TEXT NOT NULL DEFAULT '{}',
    -- The seed document's policy columns. NULL means "inherit the project's default"; retake
    -- writes NULL for values a scene type does not override.
    auto_retry_enabled BOOLEAN DEFAULT false,
    auto_retry_max_attempts INTEGER DEFAULT 3 CHECK (auto_retry_max_attempts BETWEEN 1 AND 10),
    auto_retry_trigger_checks TEXT DEFAULT '["face_confidence"]',
    auto_retry_seed_variation BOOLEAN DEFAULT true,
    auto_retry_cfg_jitter REAL DEFAULT 0.5 CHECK (auto_retry_cfg_jitter >= 0),
    -- The remaining overrides (denoise jitter, selection mode, strategies), as JSON.
    auto_retry_extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    scene_type_id INTEGER NOT NULL REFERENCES scene_types(id) ON DELETE CASCADE,
    label TEXT,
    parameters TEXT NOT NULL,
    rng_seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued','generating','retrying','passed','needs_review','approved','rejected','cancelled')),
    review_reason TEXT CHECK (review_reason IS NULL OR review_reason IN ('all_attempts_failed','non_retriable_check','budget_exhausted','retry_disabled','systematic_failure','qa_error','infra_error','workflow_error')),
    decision_note TEXT,
    review_evidence TEXT NOT NULL DEFAULT 'null',
    selected_attempt_number INTEGER,
    output_video_path TEXT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX segments_project_status ON segments (project_id, status, id);
CREATE INDEX segments_scene_type ON segments (scene_type_id, id);

CREATE TABLE retry_attempts (
    id INTEGER PRIMARY KEY,
    segment_id INTEGER NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL,
    scene_type_id INTEGER NOT NULL,
    attempt_number INTEGER NOT NULL CHECK (attempt_number >= 1),
    seed INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    original_parameters TEXT NOT NULL,
    output_video_path TEXT,
    quality_scores TEXT,
    overall_status TEXT NOT NULL CHECK (overall_status IN ('queued','generating','scoring','passed','failed','infra_error','qa_error','cancelled')),
    is_selected BOOLEAN NOT NULL DEFAULT false,
    gpu_seconds REAL NOT NULL DEFAULT 0 CHECK (gpu_seconds >= 0),
    reserved_gpu_seconds REAL NOT NULL DEFAULT 0,
    failure_reason TEXT,
    jitter TEXT,
    arm TEXT,
    why TEXT,
    backend TEXT,
    worker TEXT,
    lease_expires_at TEXT,
    not_before TEXT,
    progress REAL,
    infra_errors TEXT NOT NULL DEFAULT '[]',
    provenance TEXT NOT NULL DEFAULT '{}',
    qa_source TEXT,
    selected_by TEXT,
    human_override BOOLEAN NOT NULL DEFAULT false,
    started_at TEXT,
    finished_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (segment_id, attempt_number)
);
CREATE UNIQUE INDEX retry_attempts_one_selected ON retry_attempts (segment_id) WHERE is_selected;
CREATE INDEX retry_attempts_queue ON retry_attempts (overall_status, id);
CREATE INDEX retry_attempts_scene_recent ON retry_attempts (scene_type_id, id);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    project_id INTEGER,
    segment_id INTEGER,
    attempt_id INTEGER,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT 'null',
    created_at TEXT NOT NULL
);
CREATE INDEX events_segment ON events (segment_id, id);

-- Append-only: one row per finished (or failed) attempt that used GPU time.
CREATE TABLE gpu_ledger (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    attempt_id INTEGER NOT NULL,
    reserved_seconds REAL NOT NULL,
    spent_seconds REAL NOT NULL,
    note TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TRIGGER gpu_ledger_append_only_update BEFORE UPDATE ON gpu_ledger
BEGIN SELECT RAISE(ABORT, 'gpu_ledger is append-only'); END;
CREATE TRIGGER gpu_ledger_append_only_delete BEFORE DELETE ON gpu_ledger
BEGIN SELECT RAISE(ABORT, 'gpu_ledger is append-only'); END;

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer','creator','admin')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);

CREATE TABLE comfy_servers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    max_concurrency INTEGER NOT NULL CHECK (max_concurrency BETWEEN 1 AND 64),
    drained BOOLEAN NOT NULL DEFAULT false,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE scene_check_stats (
    scene_type_id INTEGER NOT NULL,
    "check" TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    failed_segments INTEGER NOT NULL DEFAULT 0,
    rescues INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scene_type_id, "check")
);

CREATE TABLE scene_arm_stats (
    scene_type_id INTEGER NOT NULL,
    "check" TEXT NOT NULL,
    arm TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    rescues INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scene_type_id, "check", arm)
);
