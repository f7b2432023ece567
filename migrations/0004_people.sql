-- People who sign in to the dashboard (API keys stay for machines), their sessions, and sign-in attempts.

CREATE TABLE people (
    id             BIGSERIAL PRIMARY KEY,
    email          TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    display_name   TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    -- Argon2id in the PHC string format (algorithm, parameters, salt and hash together).
    password_hash  TEXT NOT NULL,
    language       TEXT NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'id')),
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One account per address, whatever its case.
CREATE UNIQUE INDEX people_email ON people (lower(email));

CREATE TABLE sessions (
    -- SHA-256 of the cookie's random token: a stolen table opens no session.
    token_hash    BYTEA PRIMARY KEY,
    person_id     BIGINT NOT NULL REFERENCES people (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The absolute end; the idle limit is counted from last_seen_at.
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_person ON sessions (person_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Failed and successful sign-ins, for throttling per account and per address.
CREATE TABLE sign_in_attempts (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Lower-cased, whether or not an account has it.
    email      TEXT NOT NULL,
    address    TEXT NOT NULL,
    succeeded  BOOLEAN NOT NULL
);
CREATE INDEX sign_in_attempts_email ON sign_in_attempts (email, at);
CREATE INDEX sign_in_attempts_address ON sign_in_attempts (address, at);

-- The person who acted, when a write came from the dashboard (actor_key is then NULL).
ALTER TABLE audit_log ADD COLUMN actor_person BIGINT REFERENCES people (id);
