-- The learning counters are striped by the connection that writes them: replicas finishing
-- segments of the same scene type each add to their own row instead of queueing on one row
-- until commit. Readers sum the stripes. Existing rows become stripe 0.
ALTER TABLE scene_check_stats ADD COLUMN stripe SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE scene_check_stats DROP CONSTRAINT scene_check_stats_pkey;
ALTER TABLE scene_check_stats ADD PRIMARY KEY (scene_type_id, "check", stripe);

ALTER TABLE scene_arm_stats ADD COLUMN stripe SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE scene_arm_stats DROP CONSTRAINT scene_arm_stats_pkey;
ALTER TABLE scene_arm_stats ADD PRIMARY KEY (scene_type_id, "check", arm, stripe);

ALTER TABLE scene_rescue_evidence ADD COLUMN stripe SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE scene_rescue_evidence DROP CONSTRAINT scene_rescue_evidence_pkey;
ALTER TABLE scene_rescue_evidence ADD PRIMARY KEY (scene_type_id, "check", bucket, key, stripe);

-- Every query by status is served by a partial index (the queue, the leases, the finished
-- attempts of a scene type) or scans the table anyway (metrics by status); the full index on
-- the status only cost an index entry on every write of an attempt.
DROP INDEX retry_attempts_status;

-- All of a scene type's attempts are reached through its segments; its finished attempts
-- (the GPU estimate, recent scores) through `retry_attempts_scene_finished`.
DROP INDEX retry_attempts_scene_recent;
