-- Events ingested from the Redis stream (see popup_core::stream).
--
-- Partitioned by day of `served_at`, the time the popup was served: every copy of one event carries the same
-- `served_at`, so the primary key, which must include the partition key, still makes each event id unique.
-- Ingest creates each day's partition when its first event arrives, and retention drops whole partitions.
CREATE TABLE events (
    served_at   timestamptz NOT NULL,
    event_id    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('impression', 'click', 'dismiss', 'conversion', 'holdout')),
    user_id     text        NOT NULL,
    campaign_id bigint      NOT NULL,
    variant     text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (served_at, event_id)
) PARTITION BY RANGE (served_at);

-- For campaign stats: one campaign's events in time order, without reading the whole partition.
CREATE INDEX events_campaign_at ON events (campaign_id, at);

-- Lifetime impressions per campaign, kept by ingest in the statement that stores the events, so budgets are
-- read without counting rows.
CREATE TABLE campaign_totals (
    campaign_id bigint PRIMARY KEY,
    impressions bigint NOT NULL DEFAULT 0
);

-- A role for the bank's backend, which posts conversions and may do nothing else.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check CHECK (role IN ('conversions', 'viewer', 'editor', 'admin'));
