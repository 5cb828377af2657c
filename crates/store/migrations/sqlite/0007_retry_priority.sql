-- Retries ahead of new originals: each attempt carries the priority it was queued with (0 for an
-- original generation; the policy's `retry_priority` for a retry or a re-run from review), and the
-- claim takes the highest priority first, then the oldest. Without it a failure waits behind the
-- whole backlog of originals before its retry runs.
ALTER TABLE retry_attempts ADD COLUMN priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 100);
DROP INDEX retry_attempts_queue;
CREATE INDEX retry_attempts_queue ON retry_attempts (overall_status, priority DESC, id);

-- The ledger is read per project, newest first (GET /api/projects/{id}/ledger).
CREATE INDEX gpu_ledger_project_id ON gpu_ledger (project_id, id);
