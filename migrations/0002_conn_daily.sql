-- Connection aggregates per day (UTC), beside the hourly ones: a window reads its whole days here
-- and only the hours at its edges from conn_hourly, so a week costs about 7 rows a connection,
-- not 168 (the DNS server, everyone's peer, took 460 ms over 7 days on a 10M-flow store).
-- Same columns and keys as conn_hourly; `bucket` is the day's start.
--
-- Every batch updates the aggregate rows of the connections it saw. With full pages most of those
-- updates were not HOT, so each wrote a new entry into all four indexes; free room on the page
-- lets PostgreSQL update in place (ingest of a 420k-line Hubble file, server CPU: 2.7-2.9 s with
-- both tables full, 1.9-2.1 s with these settings). conn_daily is 24 times smaller, so it gets more
-- room; conn_hourly's older rows are never updated again, so it gets less.
create table conn_daily (like conn_hourly including defaults) with (fillfactor = 50);
alter table conn_daily add primary key (cluster_id, src_endpoint, bucket, dst_endpoint, port, protocol);
alter table conn_hourly set (fillfactor = 70);
create index conn_daily_dst on conn_daily (cluster_id, dst_endpoint, bucket);
create index conn_daily_src_ns on conn_daily (cluster_id, src_namespace, bucket);
create index conn_daily_dst_ns on conn_daily (cluster_id, dst_namespace, bucket);

-- What the hourly aggregates already hold.
insert into conn_daily (cluster_id, bucket, src_endpoint, dst_endpoint, src_namespace, dst_namespace, port, protocol,
                        flows, dropped, first_seen, last_seen, processes, services)
select cluster_id, date_trunc('day', bucket, 'UTC'), src_endpoint, dst_endpoint, src_namespace, dst_namespace, port,
       protocol, sum(flows), sum(dropped), min(first_seen), max(last_seen),
       (select coalesce((array_agg(distinct p))[1:8], '{}') from unnest(array_cat_agg(processes)) p),
       (select coalesce((array_agg(distinct s))[1:8], '{}') from unnest(array_cat_agg(services)) s)
from conn_hourly
group by cluster_id, date_trunc('day', bucket, 'UTC'), src_endpoint, dst_endpoint, src_namespace, dst_namespace, port,
         protocol;
