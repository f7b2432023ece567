-- The origin's source of truth. Redis holds a projection of it that can be rebuilt at any time.

CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    -- SHA-256 of the key: keys are 256-bit random values, so a fast hash is enough and lookups stay cheap.
    key_hash    BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE segments (
    id            SERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    -- The upload currently served; 0 before the first upload.
    version       BIGINT NOT NULL DEFAULT 0,
    member_count  BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX segments_live_name ON segments (name) WHERE deleted_at IS NULL;

-- Members in chunks of sorted ids: ten million members are a thousand rows, written and read in seconds.
CREATE TABLE segment_members (
    segment_id  INT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    chunk       INT NOT NULL,
    user_ids    TEXT[] NOT NULL,
    PRIMARY KEY (segment_id, version, chunk)
);

CREATE TABLE campaigns (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'ended')),
    priority    INT NOT NULL DEFAULT 0,
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ,
    -- The campaign as the admin API accepts it (segments by name, times in RFC 3339).
    spec        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);
CREATE INDEX campaigns_live_status ON campaigns (status, id DESC) WHERE deleted_at IS NULL;

-- One row: rules that span campaigns.
CREATE TABLE settings (
    singleton           BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    max_popups_per_day  INT CHECK (max_popups_per_day > 0)
);
INSERT INTO settings DEFAULT VALUES;

-- Versions of the catalog published to Redis; resolvers compare them for equality, writers for order.
CREATE SEQUENCE catalog_version;

CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The API key that acted, or NULL for the system (reconcile, bootstrap).
    actor_key   BIGINT REFERENCES api_keys (id),
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    before      JSONB,
    after       JSONB
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, id);

-- Versions of segment uploads. A sequence never hands out a number twice, even to an upload that failed
-- half-way, so members written by a failed attempt can never count for a later one.
CREATE SEQUENCE segment_version;
