-- Browser sessions, kept here so that a restart (or a second server on the same database) does not
-- log everyone out. Only the SHA-256 of a session id is stored: whoever reads this table (a backup,
-- a replica) cannot use it to log in. The times are the server's clock at login and at the last
-- use; the server decides expiry (idle and absolute) from them and deletes expired rows.
create table sessions (
    id_hash bytea primary key check (length(id_hash) = 32),
    -- Recorded as the author of the decisions made in this session.
    author text not null,
    created_at timestamptz not null,
    last_seen timestamptz not null
);
