-- Store v2: no hot row on the finish path and statistics that stay cheap as the tables grow
-- (see migrations/postgres/0003_store_v2.sql for the reasoning; SQLite has one writer, so its
-- events are already in commit order).
CREATE TABLE project_deltas (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX project_deltas_project ON project_deltas (project_id, key);

CREATE TABLE project_counters (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, key)
);

ALTER TABLE segments ADD COLUMN had_failure INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segments ADD COLUMN first_pass INTEGER;
UPDATE segments SET
    had_failure = EXISTS (SELECT 1 FROM retry_attempts a WHERE a.segment_id = segments.id AND a.overall_status = 'failed'),
    first_pass = (SELECT MIN(attempt_number) FROM retry_attempts a WHERE a.segment_id = segments.id AND a.overall_status = 'passed');

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
) GROUP BY project_id, k;

DROP INDEX retry_attempts_scene_finished;
CREATE INDEX retry_attempts_scene_finished ON retry_attempts (scene_type_id, id, gpu_seconds)
    WHERE overall_status IN ('passed','failed','qa_error');
