-- Tokens a team can manage: optional expiry, revocation (kept, so the list shows who had access
-- until when) and browser sessions signed in with a token. `last_used_at` exists since 0001.
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMPTZ;
ALTER TABLE api_tokens ADD COLUMN revoked_at TIMESTAMPTZ;

-- A browser session: the cookie holds a random value, the table its SHA-256. A session acts with
-- its token's role, and ends with the token (revoked or expired) or at its own expiry.
CREATE TABLE sessions (
    id BIGSERIAL PRIMARY KEY,
    token_id BIGINT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    session_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_id);
