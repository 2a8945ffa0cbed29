-- DNS names seen resolving to addresses: Hubble's DNS answers and the names its flows carry for
-- their ends (`destination_names`). One row per (address, name) with when it was first and last
-- seen; an address keeps at most 8 names (the smallest, as the offline fold keeps them: the cap
-- is bound from `dns::MAX_NAMES_PER_ADDRESS`). Retention removes a name not seen within the
-- cluster's retention.
create table dns_names (
    cluster_id integer not null,
    ip inet not null,
    name text not null,
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    primary key (cluster_id, ip, name)
);
create index dns_names_last_seen on dns_names (cluster_id, last_seen);

-- Names trusted like ranges: an external address a trusted name was seen for may be reached.
alter table decisions add column trust_names text[] not null default '{}';
alter table decision_history add column trust_names text[] not null default '{}';

-- A revision is of one dialect's YAML: switching dialects does not make a new revision of the
-- other each time.
alter table policy_revisions add column dialect text not null default 'kubernetes';
