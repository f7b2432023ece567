-- Outbound SMS and WhatsApp messages. Postgres is the queue as well as the record: a message row is the job,
-- its status says where it is, and a worker that dies loses nothing because its lease runs out.

CREATE TABLE customers (
    id                 BIGSERIAL PRIMARY KEY,
    -- E.164, checked by the origin; one customer per number so an import can be re-run.
    phone              TEXT NOT NULL UNIQUE,
    -- The bank's own id for the customer (the ids segments are made of), so a segment can be messaged.
    external_id        TEXT UNIQUE,
    first_name         TEXT,
    last_name          TEXT,
    email              TEXT,
    location           TEXT,
    preferred_product  TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE message_campaigns (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL,
    channel            TEXT NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
    status             TEXT NOT NULL DEFAULT 'draft'
                       CHECK (status IN ('draft', 'scheduled', 'sending', 'sent', 'failed')),
    base_template      TEXT NOT NULL,
    scheduled_at       TIMESTAMPTZ,
    -- Set once by the send endpoint: a scheduled campaign keeps its status until its time, and this is what
    -- tells a second send apart from the first.
    send_requested_at  TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX message_campaigns_status ON message_campaigns (status, id DESC);
CREATE INDEX message_campaigns_channel ON message_campaigns (channel, id DESC);
CREATE INDEX message_campaigns_due ON message_campaigns (scheduled_at) WHERE status = 'scheduled';

CREATE TABLE messages (
    id                   BIGSERIAL PRIMARY KEY,
    campaign_id          BIGINT NOT NULL REFERENCES message_campaigns (id) ON DELETE CASCADE,
    customer_id          BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    -- Copied from the campaign and the customer at send time: the message goes out as it was rendered.
    channel              TEXT NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
    phone                TEXT NOT NULL,
    body                 TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    -- Attempts started.
    attempts             INT NOT NULL DEFAULT 0,
    -- Attempts over the message's whole life: unlike attempts, never reset by a re-queue, so no key is
    -- ever used for two different sends.
    key_seq              INT NOT NULL DEFAULT 0,
    -- The key the provider deduplicates on, msg-<id>-<key_seq>. An attempt whose outcome is unknown (a
    -- timeout, a lost response) passes its key on to the next one (see outcome_unknown).
    idempotency_key      TEXT,
    -- The last attempt may have been delivered: the next attempt reuses its idempotency key.
    outcome_unknown      BOOLEAN NOT NULL DEFAULT false,
    next_attempt_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Times the current attempt's lease ran out and another worker took it over: a message that keeps
    -- outliving its workers is failed after a few (see the worker's module docs).
    takeovers            INT NOT NULL DEFAULT 0,
    -- While 'sending': the worker holding the message and until when. An expired lease is taken over.
    lease_owner          TEXT,
    lease_until          TIMESTAMPTZ,
    last_error           TEXT,
    provider_message_id  TEXT,
    sent_at              TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, customer_id)
);
-- The claim query: due pending messages of one channel, oldest due first.
CREATE INDEX messages_due ON messages (channel, next_attempt_at) WHERE status = 'pending';
-- Leases to take over from dead workers.
CREATE INDEX messages_leased ON messages (lease_until) WHERE status = 'sending';
-- Stats and the "is the campaign done" check.
CREATE INDEX messages_campaign_status ON messages (campaign_id, status);
-- The dead-letter view.
CREATE INDEX messages_dead ON messages (id DESC) WHERE status = 'failed';
