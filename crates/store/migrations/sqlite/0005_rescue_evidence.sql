-- The stopping rule's evidence (retake_core::rescue): per scene type, check and bucket of
-- segment ids (id / 64), weighted counts of finished failed segments under keys such as
-- `rescued`, `unrescued:2`, `score_unrescued:6`, `arm_tries:cfg_down`. Written as aggregated
-- bumps at the end of a finish batch; a decision reads the newest buckets and decays them.
CREATE TABLE scene_rescue_evidence (
    scene_type_id INTEGER NOT NULL REFERENCES scene_types(id) ON DELETE CASCADE,
    "check" TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (scene_type_id, "check", bucket, key)
);
