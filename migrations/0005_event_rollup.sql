-- Campaign stats kept by ingest as events arrive, so reading a year of a busy campaign sums a few hundred
-- rows instead of deduplicating millions of events (see popup_core::reach for the distinct counts).
--
-- Days are the deployment's days (its day offset, like daily caps), of when an event happened (`at`).

-- The counts of one campaign's variant on one day, added to by the statement that stores the events.
CREATE TABLE event_days (
    campaign_id    bigint NOT NULL,
    day            bigint NOT NULL,
    variant        text   NOT NULL,
    impressions    bigint NOT NULL DEFAULT 0,
    clicks         bigint NOT NULL DEFAULT 0,
    dismissals     bigint NOT NULL DEFAULT 0,
    conversions    bigint NOT NULL DEFAULT 0,
    holdout_events bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, day, variant)
);

-- The distinct customers of one campaign's variant on one day, per kind of exposure: the exact set of
-- their hashes while it has at most 512 (NULL beyond), and always the OR-mergeable HyperLogLog sketch.
CREATE TABLE event_reach (
    campaign_id bigint      NOT NULL,
    day         bigint      NOT NULL,
    variant     text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('impression', 'conversion', 'holdout')),
    exact       bigint[],
    sketch      bit varying NOT NULL CHECK (length(sketch) = 65536),
    PRIMARY KEY (campaign_id, day, variant, kind)
);

-- The day offset the two tables were built with; the origin rebuilds them from the events when it starts
-- with another (or on the first start after this migration, for the events stored before it).
CREATE TABLE event_rollup (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    day_offset_seconds integer     NOT NULL,
    built_at           timestamptz NOT NULL DEFAULT now()
);

-- popup_core::reach::hash: the first 8 bytes of SHA-256('popup-reach/v1:' || customer id).
CREATE FUNCTION reach_hash(user_id text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('x' || encode(substr(sha256(convert_to('popup-reach/v1:' || user_id, 'UTF8')), 1, 8), 'hex'))::bit(64)::bigint $$;

-- popup_core::reach::sketch_bit: register (top 12 bits) × 16 + rank (leading zeros of the rest + 1, at
-- most 16) − 1.
CREATE FUNCTION reach_bit(hash bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ((hash >> 52) & 4095)::integer * 16
             + coalesce(nullif(least(position(B'1' IN substring(hash::bit(64) FROM 13)), 16), 0), 16) - 1 $$;

-- The union of two exact sets, or NULL when either is NULL (already too large) or the union is.
CREATE FUNCTION reach_union(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT CASE WHEN count(*) <= 512 THEN array_agg(hash ORDER BY hash) END
      FROM (SELECT DISTINCT unnest(a || b) AS hash) AS members $$;

-- Recomputes both tables from the stored events, with days starting `day_offset_seconds` after UTC
-- midnight. Ingest's writes wait meanwhile (readers do not), so no event is counted twice or missed.
CREATE FUNCTION rebuild_event_rollup(day_offset_seconds integer) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    LOCK TABLE event_days, event_reach IN EXCLUSIVE MODE;
    DELETE FROM event_days;
    DELETE FROM event_reach;
    INSERT INTO event_days (campaign_id, day, variant, impressions, clicks, dismissals, conversions, holdout_events)
    SELECT campaign_id, floor((extract(epoch FROM at) + day_offset_seconds) / 86400)::bigint AS day, variant,
           count(*) FILTER (WHERE kind = 'impression'),
           count(*) FILTER (WHERE kind = 'click'),
           count(*) FILTER (WHERE kind = 'dismiss'),
           count(*) FILTER (WHERE kind = 'conversion'),
           count(*) FILTER (WHERE kind = 'holdout')
    FROM events
    GROUP BY 1, 2, 3;
    INSERT INTO event_reach (campaign_id, day, variant, kind, exact, sketch)
    SELECT campaign_id, day, variant, kind,
           CASE WHEN count(*) <= 512 THEN array_agg(hash ORDER BY hash) END,
           bit_or(B'1'::bit(65536) >> reach_bit(hash))::bit varying
    FROM (
        SELECT DISTINCT campaign_id, floor((extract(epoch FROM at) + day_offset_seconds) / 86400)::bigint AS day,
               variant, kind, reach_hash(user_id) AS hash
        FROM events
        WHERE kind IN ('impression', 'conversion', 'holdout')
    ) AS customers
    GROUP BY 1, 2, 3, 4;
    INSERT INTO event_rollup (day_offset_seconds) VALUES (day_offset_seconds)
    ON CONFLICT (singleton) DO UPDATE SET day_offset_seconds = excluded.day_offset_seconds, built_at = now();
END
$$;
