-- An id for this database, created once with it. ComfyUI prompt ids are derived from it (with
-- the attempt id and try), so two installations sharing a ComfyUI server never collide, and a
-- prompt found on a server is adopted only when it carries this id.
CREATE TABLE installation (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO installation (singleton, id) VALUES (1, gen_random_uuid()::text);

-- Set while an attempt waits for a healthy generation server (it never reached one); cleared
-- once a server accepts it. Such waits are not infrastructure failures.
ALTER TABLE retry_attempts ADD COLUMN waiting_since TIMESTAMPTZ;
CREATE INDEX retry_attempts_waiting ON retry_attempts (waiting_since) WHERE waiting_since IS NOT NULL;
