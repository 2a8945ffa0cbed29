-- Every batch updates the rows of the connection-hours it saw, each once, so a page needs room
-- for a new version of each of its rows for the update to stay on the page (HOT: no new entry in
-- the table's four indexes). At fillfactor 70 there was room for about a third of them: of the
-- 3,055 rows the second batch of the 420k-line benchmark file updated, 1,424 were HOT, and that
-- statement took 78-80 ms; at 50 all 3,055 were, and it took 53-57 ms (BENCHMARKS.md, "Store").
-- The cost is the free half of each page of hours, as `conn_daily` has had from the start.
-- Applies to pages written from now on; existing pages keep their fill until rewritten.
alter table conn_hourly set (fillfactor = 50);
