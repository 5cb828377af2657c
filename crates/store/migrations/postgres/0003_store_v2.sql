-- Store v2: no hot row on the finish path, statistics that stay cheap as the tables grow, and an
-- event stream ordered without a global lock.

-- Budget and project statistics move by appending deltas. Finishing an attempt never updates the
-- project row: it appends `gpu_reserved` (the released reservation, negative) and `gpu_spent`
-- rows, and statistics rows when a segment changes state. Claims (which lock the project row to
-- reserve anyway) and a periodic settler fold the deltas into `projects` and `project_counters`.
-- Readers add the pending deltas, so every figure is exact at every instant. No foreign key: an
-- insert would lock the project row (FOR KEY SHARE) on every finish.
CREATE TABLE project_deltas (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL
);
CREATE INDEX project_deltas_project ON project_deltas (project_id, key);

CREATE TABLE project_counters (
    project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, key)
);

-- What the statistics need to know about a segment without reading its attempts.
ALTER TABLE segments ADD COLUMN had_failure BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE segments ADD COLUMN first_pass INTEGER;
UPDATE segments s SET
    had_failure = EXISTS (SELECT 1 FROM retry_attempts a WHERE a.segment_id = s.id AND a.overall_status = 'failed'),
    first_pass = (SELECT MIN(attempt_number) FROM retry_attempts a WHERE a.segment_id = s.id AND a.overall_status = 'passed');

INSERT INTO project_counters (project_id, key, value)
SELECT project_id, k, COUNT(*) FROM (
    SELECT project_id, 'segments' AS k FROM segments
    UNION ALL SELECT project_id, 'status:' || status FROM segments
    UNION ALL SELECT project_id, 'passed_first_time' FROM segments WHERE status = 'passed' AND NOT had_failure
    UNION ALL SELECT project_id, 'rescued' FROM segments WHERE status = 'passed' AND had_failure
    UNION ALL SELECT project_id, 'escalated_after_failure' FROM segments WHERE status IN ('needs_review','approved','rejected') AND had_failure
    UNION ALL SELECT project_id, 'best_beat_first' FROM segments WHERE status IN ('passed','approved') AND selected_attempt_number > first_pass
    UNION ALL SELECT project_id, 'reason:' || review_reason FROM segments WHERE review_reason IS NOT NULL
    UNION ALL SELECT project_id, 'attempts' FROM retry_attempts
) x GROUP BY project_id, k;

-- Events carry the id of the transaction that wrote them. A reader returns only events of
-- transactions older than every transaction still running (`pg_snapshot_xmin`), in (txid, id)
-- order: every event that becomes visible later has a larger txid, so a cursor never skips one,
-- and no lock orders the writers.
ALTER TABLE events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_txid ON events (txid, id);
DROP INDEX events_segment;
CREATE INDEX events_segment ON events (segment_id, txid, id);

-- The GPU estimate reads a scene type's recent finished GPU times from the index alone.
DROP INDEX retry_attempts_scene_finished;
CREATE INDEX retry_attempts_scene_finished ON retry_attempts (scene_type_id, id) INCLUDE (gpu_seconds)
    WHERE overall_status IN ('passed','failed','qa_error');
