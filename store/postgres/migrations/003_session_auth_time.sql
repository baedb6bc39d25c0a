-- caddy-sso schema version 3: when the person last authenticated at the
-- IdP (store.Session.AuthTime), in Unix nanoseconds, for the identity JWT's
-- auth_time. NULL when the IdP did not say, and for the sessions stored
-- before it was kept, and those an instance of the previous release signs
-- in during a rolling upgrade. A nullable column without a default changes
-- only the catalog: nothing is rewritten, and nothing waits.
ALTER TABLE sso_sessions ADD COLUMN auth_time_ns bigint;
