-- retake schema for PostgreSQL: the same tables and columns as the SQLite store
-- (migrations/sqlite/0001_init.sql), with native types: BIGSERIAL ids, JSONB, TEXT[],
-- TIMESTAMPTZ (microseconds, the precision `model::now()` truncates to), BOOLEAN, DOUBLE PRECISION.

-- `updated_at` is the optimistic-concurrency token. The application writes its own value (so a
-- value written and read back compares equal); the trigger keeps it when it is newer than the
-- stored one and otherwise stamps one that is strictly newer, so every update moves it forward
-- even when the application did not set it, or two writes fall in the same microsecond.
CREATE FUNCTION retake_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NULL OR NEW.updated_at <= OLD.updated_at THEN
        NEW.updated_at := GREATEST(clock_timestamp(), OLD.updated_at + interval '1 microsecond');
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    gpu_budget_seconds DOUBLE PRECISION CHECK (gpu_budget_seconds IS NULL OR gpu_budget_seconds >= 0),
    gpu_spent_seconds DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (gpu_spent_seconds >= 0),
    gpu_reserved_seconds DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (gpu_reserved_seconds >= -0.000001),
    default_gpu_estimate_seconds DOUBLE PRECISION NOT NULL DEFAULT 30 CHECK (default_gpu_estimate_seconds > 0),
    default_retry_policy JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Only the project's settings version it: the budget counters move on every claim and finish, and
-- bumping `updated_at` for them would make a person's edit conflict for as long as work runs (the
-- SQLite store does not bump it for them either).
CREATE TRIGGER projects_updated_at
    BEFORE UPDATE OF name, gpu_budget_seconds, default_gpu_estimate_seconds, default_retry_policy, updated_at
    ON projects FOR EACH ROW EXECUTE FUNCTION retake_touch_updated_at();

CREATE TABLE scene_types (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    backend TEXT NOT NULL DEFAULT 'simulated',
    backend_config JSONB NOT NULL DEFAULT '{}',
    workflow_template JSONB NOT NULL DEFAULT '{}',
    parameter_bindings JSONB NOT NULL DEFAULT '{}',
    default_parameters JSONB NOT NULL DEFAULT '{}',
    qa_checks JSONB NOT NULL DEFAULT '[]',
    qa_commands JSONB NOT NULL DEFAULT '[]',
    parameter_domains JSONB NOT NULL DEFAULT '{}',
    -- The seed document's policy columns. NULL means "inherit the project's default"; retake
    -- writes NULL for values a scene type does not override.
    auto_retry_enabled BOOLEAN DEFAULT false,
    auto_retry_max_attempts INTEGER DEFAULT 3 CHECK (auto_retry_max_attempts BETWEEN 1 AND 10),
    auto_retry_trigger_checks TEXT[] DEFAULT '{face_confidence}',
    auto_retry_seed_variation BOOLEAN DEFAULT true,
    auto_retry_cfg_jitter DOUBLE PRECISION DEFAULT 0.5 CHECK (auto_retry_cfg_jitter >= 0),
    -- The remaining overrides (denoise jitter, selection mode, strategies).
    auto_retry_extra JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);
CREATE TRIGGER scene_types_updated_at BEFORE UPDATE ON scene_types
    FOR EACH ROW EXECUTE FUNCTION retake_touch_updated_at();

CREATE TABLE segments (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    scene_type_id BIGINT NOT NULL REFERENCES scene_types(id) ON DELETE CASCADE,
    label TEXT,
    parameters JSONB NOT NULL,
    rng_seed BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued','generating','retrying','passed','needs_review','approved','rejected','cancelled')),
    review_reason TEXT CHECK (review_reason IS NULL OR review_reason IN ('all_attempts_failed','non_retriable_check','budget_exhausted','retry_disabled','systematic_failure','qa_error','infra_error','workflow_error')),
    decision_note TEXT,
    review_evidence JSONB NOT NULL DEFAULT 'null',
    selected_attempt_number INTEGER,
    output_video_path TEXT,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX segments_project_status ON segments (project_id, status, id);
CREATE INDEX segments_scene_type ON segments (scene_type_id, id);
CREATE TRIGGER segments_updated_at BEFORE UPDATE ON segments
    FOR EACH ROW EXECUTE FUNCTION retake_touch_updated_at();

CREATE TABLE retry_attempts (
    id BIGSERIAL PRIMARY KEY,
    segment_id BIGINT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL,
    scene_type_id BIGINT NOT NULL,
    attempt_number INTEGER NOT NULL CHECK (attempt_number >= 1),
    seed BIGINT NOT NULL,
    parameters JSONB NOT NULL,
    original_parameters JSONB NOT NULL,
    output_video_path TEXT,
    quality_scores JSONB,
    overall_status TEXT NOT NULL CHECK (overall_status IN ('queued','generating','scoring','passed','failed','infra_error','qa_error','cancelled')),
    is_selected BOOLEAN NOT NULL DEFAULT false,
    gpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (gpu_seconds >= 0),
    reserved_gpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    failure_reason TEXT,
    jitter JSONB,
    arm TEXT,
    why TEXT,
    backend TEXT,
    worker TEXT,
    lease_expires_at TIMESTAMPTZ,
    not_before TIMESTAMPTZ,
    progress DOUBLE PRECISION,
    infra_errors JSONB NOT NULL DEFAULT '[]',
    provenance JSONB NOT NULL DEFAULT '{}',
    qa_source TEXT,
    selected_by TEXT,
    human_override BOOLEAN NOT NULL DEFAULT false,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (segment_id, attempt_number)
);
CREATE UNIQUE INDEX retry_attempts_one_selected ON retry_attempts (segment_id) WHERE is_selected;
-- The queue: claims scan this small index in id order, skipping rows other replicas hold.
CREATE INDEX retry_attempts_queue ON retry_attempts (id) WHERE overall_status = 'queued';
CREATE INDEX retry_attempts_leases ON retry_attempts (lease_expires_at) WHERE overall_status IN ('generating','scoring');
CREATE INDEX retry_attempts_status ON retry_attempts (overall_status);
CREATE INDEX retry_attempts_scene_recent ON retry_attempts (scene_type_id, id);
CREATE INDEX retry_attempts_project ON retry_attempts (project_id);
CREATE TRIGGER retry_attempts_updated_at BEFORE UPDATE ON retry_attempts
    FOR EACH ROW EXECUTE FUNCTION retake_touch_updated_at();

-- Events outlive what they describe (no foreign keys). The store inserts a transaction's events
-- at commit under a transaction-scoped advisory lock, so ids are assigned in commit order and a
-- reader following `id > cursor` never skips a row that commits later with a smaller id.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT,
    segment_id BIGINT,
    attempt_id BIGINT,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    data JSONB NOT NULL DEFAULT 'null',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX events_segment ON events (segment_id, id);

-- Append-only: one row per finished (or failed) attempt that used GPU time.
CREATE TABLE gpu_ledger (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    attempt_id BIGINT NOT NULL,
    reserved_seconds DOUBLE PRECISION NOT NULL,
    spent_seconds DOUBLE PRECISION NOT NULL,
    note TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX gpu_ledger_project ON gpu_ledger (project_id);
CREATE FUNCTION retake_gpu_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gpu_ledger is append-only' USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER gpu_ledger_append_only BEFORE UPDATE OR DELETE ON gpu_ledger
    FOR EACH ROW EXECUTE FUNCTION retake_gpu_ledger_append_only();
CREATE TRIGGER gpu_ledger_no_truncate BEFORE TRUNCATE ON gpu_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION retake_gpu_ledger_append_only();

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer','creator','admin')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ
);

CREATE TABLE comfy_servers (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    max_concurrency INTEGER NOT NULL CHECK (max_concurrency BETWEEN 1 AND 64),
    drained BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER comfy_servers_updated_at BEFORE UPDATE ON comfy_servers
    FOR EACH ROW EXECUTE FUNCTION retake_touch_updated_at();

CREATE TABLE scene_check_stats (
    scene_type_id BIGINT NOT NULL,
    "check" TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    failed_segments INTEGER NOT NULL DEFAULT 0,
    rescues INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scene_type_id, "check")
);

CREATE TABLE scene_arm_stats (
    scene_type_id BIGINT NOT NULL,
    "check" TEXT NOT NULL,
    arm TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    rescues INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scene_type_id, "check", arm)
);
