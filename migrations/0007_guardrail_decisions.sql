-- The cluster guardrails' decisions (`generate -A --dialect admin`, the cluster's guardrails
-- page): namespace pairs ('FROM/TO') seen talking whose traffic is denied, and pairs not seen that
-- may talk; versioned as the workloads' decisions are (optimistic locking).
create table guardrail_decisions (
    cluster_id integer not null primary key,
    version integer not null,
    exclude text[] not null default '{}',
    include text[] not null default '{}',
    author text not null,
    updated_at timestamptz not null default now()
);
