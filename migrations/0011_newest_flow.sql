-- The newest flow a cluster's aggregates hold, raised by every batch that writes them (in the
-- batch's transaction, as its last statement before the commit), so that a relative window ("the
-- last 3 hours", which every page asks first) reads one row. Reading it from the aggregates took
-- every connection of the newest day: 8-10 ms on the query benchmark's store of 20k connections
-- (BENCHMARKS.md, "Store"). Aggregates are never deleted, only rolled from hours into days, so
-- the newest flow never goes back.
alter table clusters add column newest_flow timestamptz;
update clusters c set newest_flow = (select max(last_seen) from conn_daily d where d.cluster_id = c.id);
