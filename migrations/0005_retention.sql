-- Retention is applied per cluster, counted back from now. `flows_removed_before` is where the
-- last retention run removed a cluster's raw flows up to (the start of a day, UTC; null: never).
-- An ingest takes no flow older than it, even under a longer --retention than the run that removed
-- them: that flow's raw row is gone, so it would not be recognised as stored, and the aggregates,
-- which are kept, would count it a second time.
alter table clusters add column flows_removed_before timestamptz;
