-- The newest flow of a cluster, which every relative window ("the last 3 hours") counts back from,
-- is in its newest hourly bucket: this index finds that bucket without reading the whole table.
create index conn_hourly_bucket on conn_hourly (cluster_id, bucket);
