-- caddy-sso schema version 2: audit queries by event type alone
-- (caddy sso audit --type) read the type's events in sequence order instead
-- of every event. A plain CREATE INDEX (CONCURRENTLY cannot run in the
-- migration's transaction): it holds audit inserts, and so the commits of
-- auditing transactions, while it builds, about a second per million events.
CREATE INDEX sso_audit_type ON sso_audit (type, seq);
