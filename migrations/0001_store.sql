-- Flowgate's store. Every table leads its keys with cluster_id, so the schema can be distributed
-- by cluster (Citus: distribute each table by cluster_id, clusters as a reference table).

create table clusters (
    id integer generated always as identity primary key,
    name text not null unique,
    created_at timestamptz not null default now()
);

-- Kubernetes objects with their validity interval: an object seen and later gone is closed
-- (valid_to set), never deleted, so an address resolves to whoever held it at a flow's time.
create table k8s_objects (
    cluster_id integer not null references clusters (id),
    kind text not null,
    namespace text not null default '',
    name text not null,
    uid text not null default '',
    body jsonb not null,
    valid_from timestamptz not null,
    valid_to timestamptz,
    updated_at timestamptz not null default now(),
    primary key (cluster_id, kind, namespace, name, uid)
);
create index k8s_objects_open on k8s_objects (cluster_id, kind) where valid_to is null;

-- Which pod held which IP when: the history behind every enrichment, queryable on its own.
create table pod_ips (
    cluster_id integer not null,
    ip inet not null,
    namespace text not null,
    pod text not null,
    uid text not null default '',
    valid_from timestamptz not null,
    valid_to timestamptz,
    primary key (cluster_id, ip, namespace, pod, uid)
);

-- Enriched flows, partitioned by day (partitions are created on demand and dropped past the
-- retention). flow_key identifies a flow: Hubble's uuid, or a hash of the record's content.
create table flows (
    cluster_id integer not null,
    time timestamptz not null,
    flow_key uuid not null,
    src_ip inet not null,
    src_port integer,
    dst_ip inet not null,
    dst_port integer not null,
    protocol text not null,
    verdict text not null,
    src_endpoint text not null,
    dst_endpoint text not null,
    service text,
    process text,
    node text,
    bytes bigint,
    packets bigint
) partition by range (time);
create unique index flows_identity on flows (cluster_id, time, flow_key);

-- Connection aggregates per hour: every window query reads these, never raw flows.
-- Endpoints are encoded as text: `deployment/ns/name`, `node/name/ip`, `external/ip`, `unresolved/ip`.
create table conn_hourly (
    cluster_id integer not null,
    bucket timestamptz not null,
    src_endpoint text not null,
    dst_endpoint text not null,
    -- the endpoints' namespaces ('' for addresses), for namespace-wide queries
    src_namespace text not null,
    dst_namespace text not null,
    port integer not null,
    protocol text not null,
    flows bigint not null,
    dropped bigint not null,
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    processes text[] not null default '{}',
    services text[] not null default '{}',
    primary key (cluster_id, src_endpoint, bucket, dst_endpoint, port, protocol)
);
create index conn_hourly_dst on conn_hourly (cluster_id, dst_endpoint, bucket);
create index conn_hourly_src_ns on conn_hourly (cluster_id, src_namespace, bucket);
create index conn_hourly_dst_ns on conn_hourly (cluster_id, dst_namespace, bucket);

-- Concatenates arrays across rows (processes and Services seen in several hours).
create aggregate array_cat_agg(anycompatiblearray) (sfunc = array_cat, stype = anycompatiblearray);

-- Creates the day partition of `flows` holding `day`, if missing. Two ingests may race to create
-- the same day: the loser waits on the winner's lock on `flows`, then fails to create and goes on,
-- since the partition it wanted now exists.
create function flowgate_ensure_partition(day date) returns void language plpgsql as $$
declare
    part text := 'flows_' || to_char(day, 'YYYYMMDD');
begin
    if to_regclass(part) is not null then
        return;
    end if;
    begin
        execute format('create table %I partition of flows for values from (%L) to (%L)',
                       part, day::timestamptz, (day + 1)::timestamptz);
    exception when duplicate_table or unique_violation then
        null;
    end;
end;
$$;

-- Workloads learned from flow metadata (Hubble labels) that the inventory does not describe.
create table observed_workloads (
    cluster_id integer not null,
    workload text not null,
    labels jsonb not null,
    last_seen timestamptz not null,
    primary key (cluster_id, workload, labels)
);

-- Review decisions per workload; `version` increases with every change (optimistic locking).
create table decisions (
    cluster_id integer not null,
    workload text not null,
    version integer not null,
    exclude text[] not null default '{}',
    trust text[] not null default '{}',
    include_unresolved text[] not null default '{}',
    author text not null,
    updated_at timestamptz not null default now(),
    primary key (cluster_id, workload)
);
create table decision_history (
    cluster_id integer not null,
    workload text not null,
    version integer not null,
    exclude text[] not null,
    trust text[] not null,
    include_unresolved text[] not null,
    author text not null,
    updated_at timestamptz not null,
    primary key (cluster_id, workload, version)
);

-- Generated policy revisions: a new revision only when the YAML changes.
create table policy_revisions (
    cluster_id integer not null,
    workload text not null,
    revision integer not null,
    yaml text not null,
    decisions_version integer not null,
    created_at timestamptz not null default now(),
    primary key (cluster_id, workload, revision)
);
