-- Aggregation first: an ingest folds flows into the connection aggregates and writes those; a raw
-- row per flow (`flows`) is written only when asked (`--keep-flows`), for forensics. What is
-- counted once is decided without raw rows:
--
-- Files and request bodies: their flows are cut into chunks at content-defined boundaries (after
-- a flow whose key hashes to 0 modulo 4096, or at 16384 flows), so the same flows cut the same way
-- whatever file, body or position they arrive in. Each chunk written is recorded here with its
-- first flow's key, its length and a digest of its flows' keys in order; a chunk already recorded
-- is skipped, and a chunk that ended with its source (`open`, e.g. the end of a file that then
-- grew) is recognised as the start of a longer one. Every key leads with cluster_id.
create table ingest_ledger (
    cluster_id integer not null,
    first_key uuid not null,
    digest uuid not null,
    records integer not null,
    open boolean not null,
    -- The chunk's newest flow: retention removes entries whose flows it would expire anyway.
    newest timestamptz not null,
    -- Its flows rejected as dated in the future, not counted: a later ingest that accepts them
    -- (the clock caught up, a larger skew allowance) counts them then.
    held uuid[] not null default '{}',
    ingested_at timestamptz not null default now(),
    primary key (cluster_id, first_key, digest)
);
create index ingest_ledger_newest on ingest_ledger (cluster_id, newest);

-- Ordered streams (Hubble Relay): per cluster and source, the newest flow time written and the
-- keys of the flows written at exactly that time. A stream that resumes skips what lies before.
create table stream_marks (
    cluster_id integer not null,
    source text not null,
    mark timestamptz not null,
    keys uuid[] not null default '{}',
    updated_at timestamptz not null default now(),
    primary key (cluster_id, source)
);

-- A bounded store: hourly aggregates older than a horizon (default 30 days) are dropped, the daily
-- ones (written beside them all along) keep those days; windows reaching before it widen to whole
-- days. Where a cluster's hourly rows were removed up to (the start of a day, UTC; null: never).
alter table clusters add column hourly_removed_before timestamptz;

-- The newest and oldest flow of a cluster, read from the aggregates now that raw rows are
-- optional: one step down each end of this index.
create index conn_daily_bucket on conn_daily (cluster_id, bucket);
