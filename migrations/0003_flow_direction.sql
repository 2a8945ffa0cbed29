-- A flow's direction, when its source did not say it (no `is_reply`, no telling TCP flags):
-- `undecided` flows are settled at review time, over the window's connections, by where each end is
-- known to listen. The aggregates count them and keep their source ports (sorted, distinct, at most
-- 8, like `processes`), which is what tells a server's reply from a request.
alter table flows add column undecided boolean not null default false;
alter table conn_hourly add column undecided bigint not null default 0,
                        add column reply_ports integer[] not null default '{}';
alter table conn_daily add column undecided bigint not null default 0,
                       add column reply_ports integer[] not null default '{}';
