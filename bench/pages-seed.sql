-- The data scripts/bench-pages measures the dashboard against: what the origin would hold after a year of
-- use by a bank's marketing team. Written with set operations (no per-row round trip); run with psql on a
-- migrated, otherwise empty database, after the admin person exists (its password hash is copied to the
-- rest of the team, so every row is one the product could have written).
--
-- Variables (psql -v): campaigns, days, impressions_per_day, customers.
--
-- Shape of the year:
-- - 40 segments of 1-15 % of the customers each, members stored in chunks of 10,000 sorted ids as an
--   upload stores them, each uploaded about monthly (audited);
-- - :campaigns campaigns created evenly over the year, each running 1-8 weeks (one in 50 always on); the
--   ones whose end has passed are ended, one in 50 was deleted as a draft, the rest a mix of drafts,
--   active (some scheduled ahead) and paused; placements, time windows, A/B variants with a control,
--   caps, include and exclude segments, device, version, country and locale rules, budgets;
-- - every day :impressions_per_day impressions shared by the campaigns running that day (always-on ones
--   take four shares), each popup served a few seconds before its impression, a control's share recorded
--   as holdouts; 55 % dismissed, 6 % clicked, 1.5 % converted within the token's lifetime; events stored
--   in day partitions named and bounded as ingest makes them (day offset +00:00), with campaign_totals;
-- - the audit trail of all that (creates, edits, lifecycle actions, the system's ends, uploads);
-- - outbound messaging: :customers customers, 100 message campaigns (two a week), each sent to 1,000 to
--   20,000 customers.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
SET maintenance_work_mem = '256MB';
SET work_mem = '64MB';
SELECT setseed(0.42);

CREATE TEMP TABLE clock AS
SELECT date_trunc('day', now()) AS today, now() AS at, date_trunc('day', now()) - make_interval(days => :days) AS first_day;

-- People: the admin made by the script, and the rest of the marketing team.
INSERT INTO people (email, display_name, role, password_hash, language, created_at)
SELECT format('%s@bank.example', n), initcap(n), role, (SELECT password_hash FROM people ORDER BY id LIMIT 1), lang,
       (SELECT first_day FROM clock) + make_interval(days => i * 20)
FROM (VALUES (1, 'sari', 'editor', 'id'), (2, 'budi', 'editor', 'id'), (3, 'dewi', 'editor', 'en'),
             (4, 'agus', 'viewer', 'id'), (5, 'rina', 'viewer', 'id'), (6, 'yusuf', 'admin', 'en'))
     AS team (i, n, role, lang);
CREATE TEMP TABLE team AS SELECT id, display_name FROM people WHERE role IN ('editor', 'admin') ORDER BY id;

INSERT INTO api_keys (name, role, key_hash, created_at)
SELECT name, role, sha256(convert_to(name, 'UTF8')), (SELECT first_day FROM clock)
FROM (VALUES ('mobile-backend-conversions', 'conversions'), ('bi-export', 'viewer'), ('crm-sync', 'editor'))
     AS k (name, role);

-- Segments and their members.
INSERT INTO segments (name, version, member_count, created_at, updated_at)
SELECT format('%s-%s', (ARRAY['payroll', 'credit-card', 'mortgage', 'savings', 'wealth', 'young-adults',
                              'jakarta', 'surabaya', 'dormant', 'new-app'])[1 + (i - 1) % 10], (i - 1) / 10 + 1),
       nextval('segment_version'), 0,
       first_day + make_interval(days => i * 2), at - make_interval(days => i % 30)
FROM generate_series(1, 40) AS i, clock;

INSERT INTO segment_members (segment_id, version, chunk, user_ids)
SELECT segment_id, version, (rank / 10000)::int, array_agg(user_id ORDER BY user_id COLLATE "C")
FROM (
    SELECT s.id AS segment_id, s.version, m.user_id,
           row_number() OVER (PARTITION BY s.id ORDER BY m.user_id COLLATE "C") - 1 AS rank
    FROM segments s
    CROSS JOIN LATERAL (
        SELECT format('cust-%s', lpad(n::text, 8, '0')) AS user_id
        FROM generate_series(0, :customers - 1) AS n
        WHERE abs(hashint8(n * 64 + s.id)) % 100 < 1 + (s.id * 7) % 15
    ) AS m
) AS ranked
GROUP BY segment_id, version, rank / 10000;
UPDATE segments s SET member_count = counted.n
FROM (SELECT segment_id, sum(cardinality(user_ids)) AS n FROM segment_members GROUP BY segment_id) AS counted
WHERE counted.segment_id = s.id;

-- Campaigns: their dates and status first, then the spec they were written with.
CREATE TEMP TABLE plan AS
SELECT i,
       created,
       always_on,
       CASE WHEN always_on THEN created ELSE created + interval '2 days' END AS starts,
       CASE WHEN always_on THEN NULL ELSE created + interval '2 days' + make_interval(days => 7 + (i * 37) % 50) END AS ends,
       i % 50 = 13 AS deleted
FROM (
    SELECT i, date_trunc('second', first_day + (at - first_day) * (i - 1) / :campaigns) AS created, i % 50 = 7 AS always_on
    FROM generate_series(1, :campaigns) AS i, clock
) AS c;
ALTER TABLE plan ADD COLUMN status text;
UPDATE plan SET status = CASE
    WHEN deleted THEN 'draft'
    WHEN i % 25 = 3 THEN 'draft'
    WHEN ends IS NOT NULL AND ends <= (SELECT at FROM clock) THEN 'ended'
    WHEN i % 6 = 0 THEN 'draft'
    WHEN i % 6 = 1 THEN 'paused'
    ELSE 'active' END;

CREATE TEMP TABLE segment_names AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, name FROM segments;
CREATE FUNCTION pg_temp.rfc3339(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') $$;
CREATE FUNCTION pg_temp.segment(k bigint) RETURNS text LANGUAGE sql STABLE
    AS $$ SELECT name FROM segment_names WHERE segment_names.k = $1 % 40 $$;

CREATE TEMP TABLE specs AS
SELECT p.i, p.status, p.starts, p.ends, p.created, p.deleted, p.always_on,
       jsonb_strip_nulls(jsonb_build_object(
    'name', format('%s %s #%s', theme, (ARRAY['Q1', 'Q2', 'Q3', 'Q4', 'weekend', 'payday', 'new users', 'loyal'])[1 + p.i % 8], p.i),
    'priority', (p.i * 13) % 200,
    'placements', (ARRAY['["home"]', '["home", "login"]', '["transfer"]', '[]'])[1 + p.i % 4]::jsonb,
    'schedule', jsonb_build_object(
        'start', pg_temp.rfc3339(p.starts),
        'end', pg_temp.rfc3339(p.ends),
        'time_zone', CASE WHEN p.i % 3 = 0 THEN 'Asia/Jakarta' END,
        'windows', CASE WHEN p.i % 3 = 0 THEN
            '[{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "21:00"},
              {"days": ["sat", "sun"], "start": "10:00", "end": "18:00"}]'::jsonb END),
    'creative', jsonb_build_object(
        'title', theme,
        'body', format('%s: penawaran khusus untuk nasabah kami hingga akhir periode. Syarat dan ketentuan berlaku.', theme),
        'image_url', format('https://cdn.bank.example/popups/%s.png', p.i),
        'action_url', format('bankapp://promo/%s', p.i),
        'extra', jsonb_build_object('button', 'Lihat promo', 'theme', (ARRAY['light', 'dark'])[1 + p.i % 2])),
    'variants', CASE p.i % 3
        WHEN 0 THEN jsonb_build_array(
            jsonb_build_object('key', 'a', 'weight', 45),
            jsonb_build_object('key', 'b', 'weight', 45, 'creative', jsonb_build_object(
                'title', theme || ' (B)', 'body', 'Versi B: hadiah langsung untuk transaksi pertama.',
                'action_url', format('bankapp://promo/%s/b', p.i))),
            jsonb_build_object('key', 'control', 'weight', 10, 'control', true))
        WHEN 2 THEN jsonb_build_array(
            jsonb_build_object('key', 'a', 'weight', 50),
            jsonb_build_object('key', 'b', 'weight', 50, 'creative', jsonb_build_object(
                'title', theme || ' (B)', 'body', 'Versi B: cashback lebih besar.')))
        ELSE '[]'::jsonb END,
    'caps', CASE WHEN p.i % 2 = 0 THEN jsonb_build_object('lifetime', 3 + p.i % 5, 'per_day', 1)
                 ELSE jsonb_build_object('per_day', 1, 'min_interval_seconds', 3600) END,
    'audience', CASE WHEN p.i % 5 = 0 THEN jsonb_build_object('include', 'everyone', 'exclude', jsonb_build_array(pg_temp.segment(p.i + 8)))
                     WHEN p.i % 5 = 1 THEN jsonb_build_object('include', jsonb_build_object('any_of', jsonb_build_array(pg_temp.segment(p.i), pg_temp.segment(p.i + 1))))
                     ELSE jsonb_build_object('include', jsonb_build_object('any_of', jsonb_build_array(pg_temp.segment(p.i))),
                                             'exclude', jsonb_build_array(pg_temp.segment(p.i + 20))) END,
    'rules', jsonb_build_object(
        'platforms', (ARRAY['[]', '["ios", "android"]', '["android"]', '["ios"]'])[1 + p.i % 4]::jsonb,
        'app_version', CASE WHEN p.i % 4 = 2 THEN '{"min": "5.2.0"}'::jsonb END,
        'countries', CASE WHEN p.i % 7 = 0 THEN '["ID"]'::jsonb END,
        'locales', CASE WHEN p.i % 9 = 0 THEN '["id"]'::jsonb END),
    'budget', CASE WHEN p.i % 10 = 0 THEN 500000 END
)) AS spec
FROM plan p
CROSS JOIN LATERAL (SELECT (ARRAY['Payday cashback', 'Credit card miles', 'KPR mortgage rates', 'Time deposit 6%',
                                  'Family insurance', 'Travel fee-free', 'Personal loan', 'Wealth webinar',
                                  'QRIS merchant promo', 'Ramadan savings', 'Year-end bonus', 'E-wallet top-up'])[1 + p.i % 12] AS theme) AS t;
-- jsonb_strip_nulls keeps empty lists; the API leaves them out of what it stores.
UPDATE specs SET spec = spec - 'placements' WHERE spec -> 'placements' = '[]';
UPDATE specs SET spec = spec - 'variants' WHERE spec -> 'variants' = '[]';
UPDATE specs SET spec = jsonb_set(spec, '{rules}', (spec -> 'rules') - 'platforms') WHERE spec #> '{rules,platforms}' = '[]';

INSERT INTO campaigns (id, name, status, priority, starts_at, ends_at, spec, created_at, updated_at, deleted_at)
SELECT i, spec ->> 'name', status, (spec ->> 'priority')::int, starts, ends, spec, created,
       CASE WHEN status = 'ended' THEN ends ELSE created + interval '1 day' END,
       CASE WHEN deleted THEN created + interval '1 day' END
FROM specs;
SELECT setval('campaigns_id_seq', (SELECT max(id) FROM campaigns));

-- Day partitions, as ingest creates them (see db::events::ensure_partition), one day either side.
DO $$
DECLARE day bigint;
BEGIN
    FOR day IN SELECT generate_series(extract(epoch FROM first_day)::bigint / 86400 - 1,
                                      extract(epoch FROM today)::bigint / 86400 + 1) FROM clock LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS events_d%s PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       day, to_timestamp(day * 86400), to_timestamp((day + 1) * 86400));
    END LOOP;
END $$;

-- Impressions per campaign and day: the day's volume shared by the campaigns running on it.
CREATE TEMP TABLE daily AS
WITH running AS (
    SELECT s.i AS campaign, d.day, CASE WHEN s.always_on THEN 4 ELSE 1 END AS shares,
           s.spec -> 'variants' AS variants
    FROM specs s
    JOIN generate_series((SELECT first_day FROM clock), (SELECT today FROM clock), interval '1 day') AS d (day)
      ON d.day >= date_trunc('day', s.starts) AND (s.ends IS NULL OR d.day < s.ends) AND d.day < (SELECT today FROM clock)
    WHERE s.status IN ('active', 'paused', 'ended') AND NOT s.deleted
)
SELECT campaign, day, variants,
       greatest(1, round(:impressions_per_day * shares / sum(shares) OVER (PARTITION BY day) * (0.7 + 0.6 * random())))::int AS impressions,
       3000 + (campaign * 7919) % 30 * 2000 AS reach
FROM running;

-- Every popup served: its token, customer, variant and times. A control's customers are held out.
CREATE TEMP TABLE served AS
SELECT d.campaign, d.day,
       left(md5(d.campaign || ':' || extract(epoch FROM d.day) || ':' || g), 22) AS token,
       format('cust-%s', lpad(((d.campaign * 104729 + floor(random() * d.reach)::bigint) % :customers)::text, 8, '0')) AS user_id,
       CASE WHEN d.variants IS NULL THEN 'default'
            WHEN jsonb_array_length(d.variants) = 3 THEN (ARRAY['a', 'b', 'control'])[CASE WHEN r < 0.45 THEN 1 WHEN r < 0.9 THEN 2 ELSE 3 END]
            ELSE (ARRAY['a', 'b'])[CASE WHEN r < 0.5 THEN 1 ELSE 2 END] END AS variant,
       d.day + (random() * 86399) * interval '1 second' AS served_at,
       random() AS fate
FROM daily d, generate_series(1, d.impressions) AS g,
     LATERAL (SELECT (abs(hashint8(g * 7919 + d.campaign)) % 1000) / 1000.0 AS r) AS pick;

-- Loaded without the indexes, which are then built whole (much faster than row by row); the schema is
-- the migrations' again afterwards, names included.
ALTER TABLE events DROP CONSTRAINT events_pkey;
DROP INDEX events_campaign_at;
INSERT INTO events (served_at, event_id, kind, user_id, campaign_id, variant, at)
SELECT served_at, event_id, kind, user_id, campaign, variant, at FROM (
    SELECT served_at, token || ':impression' AS event_id, 'impression' AS kind, user_id, campaign, variant,
           served_at + interval '2 seconds' AS at
    FROM served WHERE variant <> 'control'
    UNION ALL
    SELECT served_at, format('holdout:%s:%s:%s:%s', extract(epoch FROM day)::bigint / 86400, campaign, user_id, token),
           'holdout', user_id, campaign, variant, served_at
    FROM served WHERE variant = 'control'
    UNION ALL
    SELECT served_at, token || ':dismiss', 'dismiss', user_id, campaign, variant, served_at + interval '9 seconds'
    FROM served WHERE variant <> 'control' AND fate >= 0.45
    UNION ALL
    SELECT served_at, token || ':click', 'click', user_id, campaign, variant, served_at + interval '6 seconds'
    FROM served WHERE variant <> 'control' AND fate < 0.06
    UNION ALL
    SELECT served_at, token || ':conversion', 'conversion', user_id, campaign, variant,
           served_at + (600 + fate * 1000000) * interval '1 second'
    FROM served WHERE variant <> 'control' AND fate < 0.015
) AS all_events;

ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (served_at, event_id);
CREATE INDEX events_campaign_at ON events (campaign_id, at);

INSERT INTO campaign_totals (campaign_id, impressions)
SELECT campaign, count(*) FROM served WHERE variant <> 'control' GROUP BY campaign;

-- The daily counts and reach ingest would have kept, in the deployment's day offset (+00:00).
SELECT rebuild_event_rollup(0);

-- The audit trail: each campaign's creation, edits and lifecycle, by the team; the system's ends.
INSERT INTO audit_log (at, actor_person, actor_name, action, entity, entity_id, before, after)
SELECT at, person, name, action, 'campaign', s.i::text, before, after
FROM specs s
CROSS JOIN LATERAL (SELECT id AS person, display_name AS name FROM team ORDER BY id OFFSET s.i % (SELECT count(*) FROM team) LIMIT 1) AS who
CROSS JOIN LATERAL (VALUES
    (s.created, 'create', NULL::jsonb, jsonb_build_object('status', 'draft', 'spec', s.spec - 'name' || jsonb_build_object('name', 'draft ' || (s.spec ->> 'name')))),
    (s.created + interval '3 hours', 'update',
     jsonb_build_object('status', 'draft', 'spec', s.spec - 'name' || jsonb_build_object('name', 'draft ' || (s.spec ->> 'name'))),
     jsonb_build_object('status', 'draft', 'spec', s.spec)),
    (s.created + interval '1 day', CASE WHEN s.status = 'draft' AND NOT s.deleted THEN NULL WHEN s.deleted THEN 'delete' ELSE 'activate' END,
     jsonb_build_object('status', 'draft', 'spec', s.spec),
     CASE WHEN s.deleted THEN NULL ELSE jsonb_build_object('status', 'active', 'spec', s.spec) END),
    (s.created + interval '5 days', CASE WHEN s.status = 'paused' THEN 'pause' END,
     jsonb_build_object('status', 'active', 'spec', s.spec), jsonb_build_object('status', 'paused', 'spec', s.spec))
) AS steps (at, action, before, after)
WHERE action IS NOT NULL AND at < (SELECT at FROM clock);
INSERT INTO audit_log (at, actor_name, action, entity, entity_id, before, after)
SELECT ends, 'system', 'end', 'campaign', i::text, '{"status": "active"}', '{"status": "ended"}'
FROM specs WHERE status = 'ended';
-- Segment uploads, about monthly each.
INSERT INTO audit_log (at, actor_person, actor_name, action, entity, entity_id, before, after)
SELECT s.created_at + make_interval(days => 30 * u), t.id, t.display_name, CASE WHEN u = 0 THEN 'create' ELSE 'upload' END,
       'segment', s.id::text,
       jsonb_build_object('name', s.name, 'version', CASE WHEN u = 0 THEN 0 ELSE s.version - 1 END, 'member_count', CASE WHEN u = 0 THEN 0 ELSE s.member_count - 40 END),
       jsonb_build_object('name', s.name, 'version', s.version, 'member_count', s.member_count)
FROM segments s, generate_series(0, 11) AS u, LATERAL (SELECT id, display_name FROM team ORDER BY id OFFSET (s.id + u) % 4 LIMIT 1) AS t
WHERE s.created_at + make_interval(days => 30 * u) < (SELECT at FROM clock);

-- Outbound messaging: customers, message campaigns and the messages of their sends.
INSERT INTO customers (phone, external_id, first_name, last_name, email, location, preferred_product, created_at)
SELECT format('+62812%s', lpad(n::text, 8, '0')), format('cust-%s', lpad(n::text, 8, '0')),
       (ARRAY['Andi', 'Sari', 'Budi', 'Dewi', 'Eko', 'Fitri', 'Gilang', 'Hana'])[1 + n % 8],
       (ARRAY['Saputra', 'Wijaya', 'Lestari', 'Pratama', 'Hidayat', 'Kusuma'])[1 + n % 6],
       format('cust%s@mail.example', n), (ARRAY['Jakarta', 'Surabaya', 'Bandung', 'Medan', 'Makassar'])[1 + n % 5],
       (ARRAY['savings', 'credit card', 'mortgage', 'deposit'])[1 + n % 4], (SELECT first_day FROM clock)
FROM generate_series(0, :customers - 1) AS n;

INSERT INTO message_campaigns (name, channel, status, base_template, scheduled_at, send_requested_at, created_at, updated_at)
SELECT format('%s %s', (ARRAY['Tagihan kartu kredit', 'Promo akhir pekan', 'Info keamanan', 'Undangan webinar', 'Cashback QRIS'])[1 + i % 5], i),
       (ARRAY['sms', 'whatsapp'])[1 + i % 2],
       CASE WHEN i > 97 THEN 'draft' WHEN i > 95 THEN 'sending' ELSE 'sent' END,
       'Halo {{first_name}}, ada penawaran {{preferred_product}} untuk Anda di {{location}}. Balas STOP untuk berhenti.',
       NULL, CASE WHEN i <= 97 THEN created + interval '1 hour' END, created, created + interval '1 day'
FROM (SELECT i, first_day + make_interval(days => i * 365 / 100) AS created FROM generate_series(1, 100) AS i, clock) AS m;

INSERT INTO messages (campaign_id, customer_id, channel, phone, body, status, attempts, key_seq, idempotency_key,
                      next_attempt_at, sent_at, provider_message_id, last_error, created_at, updated_at)
SELECT m.id, c.id, m.channel, c.phone,
       format('Halo %s, ada penawaran %s untuk Anda di %s. Balas STOP untuk berhenti.', c.first_name, c.preferred_product, c.location),
       outcome.status, 1, 1, format('msg-%s-1', c.id), m.created_at, CASE WHEN outcome.status = 'sent' THEN m.created_at + interval '2 hours' END,
       CASE WHEN outcome.status = 'sent' THEN md5(m.id || ':' || c.id) END,
       CASE WHEN outcome.status = 'failed' THEN 'provider answered 400: invalid number' END,
       m.created_at + interval '1 hour', m.created_at + interval '2 hours'
FROM message_campaigns m
JOIN customers c ON c.id >= 1 + (m.id * 1543) % (:customers - 20000)
                 AND c.id < 1 + (m.id * 1543) % (:customers - 20000) + 1000 + (m.id * 7919) % 20 * 1000
CROSS JOIN LATERAL (SELECT CASE WHEN m.status = 'sending' AND random() < 0.4 THEN 'pending'
                                WHEN random() < 0.03 THEN 'failed' ELSE 'sent' END AS status) AS outcome
WHERE m.status <> 'draft';
INSERT INTO audit_log (at, actor_person, actor_name, action, entity, entity_id, after)
SELECT m.created_at, t.id, t.display_name, 'create', 'message_campaign', m.id::text, to_jsonb(m)
FROM message_campaigns m, LATERAL (SELECT id, display_name FROM team ORDER BY id OFFSET m.id % 4 LIMIT 1) AS t;

-- The audit log in time order, as it was written.
CREATE TEMP TABLE ordered AS SELECT * FROM audit_log ORDER BY at, id;
TRUNCATE audit_log;
INSERT INTO audit_log (at, actor_key, actor_person, actor_name, action, entity, entity_id, before, after)
SELECT at, actor_key, actor_person, actor_name, action, entity, entity_id, before, after FROM ordered ORDER BY at, id;

VACUUM ANALYZE;
