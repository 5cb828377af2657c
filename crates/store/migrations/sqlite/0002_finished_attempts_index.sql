-- GPU-time estimates and score statistics read a scene type's most recent *finished* attempts.
-- Without this index a backward scan first walks over every queued attempt of the scene type.
CREATE INDEX retry_attempts_scene_finished ON retry_attempts (scene_type_id, id)
    WHERE overall_status IN ('passed','failed','qa_error');
