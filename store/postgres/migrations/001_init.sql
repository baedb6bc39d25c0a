-- caddy-sso schema version 1: every record the store.Tx contract names, with
-- an index for every lookup it promises. Applied by Open (see schema.go) in
-- one transaction, under an advisory lock.
--
-- Conventions:
--   * Keys are text COLLATE "C": byte order and byte equality, as in the
--     bolt backend, whatever the database's default collation.
--   * Case-insensitive keys (email, userName, group name) hold
--     store.FoldName(value), computed by caddy-sso, in a column of their
--     own with a unique index; no collation or lower() is involved, so both
--     backends agree on what collides.
--   * Times the store compares (expiry, last seen, audit time, single-use
--     until) are bigint unix nanoseconds, exact like Go's time.Time; the
--     zero time is -9223372036854775808. Read one with
--     to_timestamp(x / 1e9).
--   * data holds the whole record as caddy-sso's JSON (json, not jsonb, so
--     it reads back byte for byte, SCIM attributes included).

CREATE TABLE sso_schema (
    version integer NOT NULL
);
INSERT INTO sso_schema (version) VALUES (0);

CREATE TABLE sso_users (
    id            text COLLATE "C" PRIMARY KEY,
    idp           text COLLATE "C" NOT NULL,
    email_key     text COLLATE "C" UNIQUE,   -- FoldName(email); NULL without one
    user_name_key text COLLATE "C" UNIQUE,   -- FoldName(userName); NULL without one
    external_id   text COLLATE "C",          -- exact; NULL without one
    data          json NOT NULL,             -- store.User
    UNIQUE (idp, external_id)
);
CREATE INDEX sso_users_idp ON sso_users (idp, id);  -- ListUsers: SCIM paging per IdP

CREATE TABLE sso_links (
    idp     text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL REFERENCES sso_users (id) ON DELETE CASCADE,
    PRIMARY KEY (idp, subject)               -- UserByLink: the JIT key
);
CREATE INDEX sso_links_user ON sso_links (user_id);

CREATE TABLE sso_groups (
    id           text COLLATE "C" PRIMARY KEY,
    idp          text COLLATE "C" NOT NULL,
    display_name text NOT NULL,
    name_key     text COLLATE "C" NOT NULL,  -- FoldName(display_name)
    external_id  text COLLATE "C",
    data         json NOT NULL,              -- store.Group without Members
    UNIQUE (idp, name_key),
    UNIQUE (idp, external_id)
);
CREATE INDEX sso_groups_idp ON sso_groups (idp, id);

CREATE TABLE sso_group_members (
    group_id text COLLATE "C" NOT NULL REFERENCES sso_groups (id) ON DELETE CASCADE,
    user_id  text COLLATE "C" NOT NULL REFERENCES sso_users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX sso_group_members_user ON sso_group_members (user_id, group_id);  -- GroupsOfUser

CREATE TABLE sso_tombstones (
    idp     text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    data    json NOT NULL,                   -- store.Tombstone
    PRIMARY KEY (idp, subject)
);

CREATE TABLE sso_sessions (
    hash           text COLLATE "C" PRIMARY KEY,
    user_id        text COLLATE "C" NOT NULL REFERENCES sso_users (id) ON DELETE CASCADE,
    idp            text COLLATE "C" NOT NULL,
    created_ns     bigint NOT NULL,
    expires_ns     bigint NOT NULL,
    last_seen_ns   bigint NOT NULL,
    subject        text COLLATE "C" NOT NULL DEFAULT '',
    subject_format text NOT NULL DEFAULT '',
    session_id     text COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX sso_sessions_user ON sso_sessions (user_id, hash);
CREATE INDEX sso_sessions_expires ON sso_sessions (expires_ns);
-- The idle deadline counts from the later of creation and last use.
CREATE INDEX sso_sessions_idle ON sso_sessions ((greatest(created_ns, last_seen_ns)));
CREATE INDEX sso_sessions_subject ON sso_sessions (idp, subject) WHERE subject <> '';
CREATE INDEX sso_sessions_session_id ON sso_sessions (idp, session_id) WHERE session_id <> '';

-- Sealed tokens live apart so that resolving, touching and sweeping
-- sessions never read or rewrite them.
CREATE TABLE sso_session_tokens (
    hash   text COLLATE "C" PRIMARY KEY REFERENCES sso_sessions (hash) ON DELETE CASCADE,
    sealed bytea NOT NULL
);

-- The replay guard: the primary key is what makes a single-use ID
-- single-use across every instance.
CREATE TABLE sso_consumed (
    kind     text COLLATE "C" NOT NULL,
    id       text COLLATE "C" NOT NULL,
    until_ns bigint NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX sso_consumed_until ON sso_consumed (until_ns);

CREATE TABLE sso_secrets (
    name  text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

CREATE SEQUENCE sso_audit_seq AS bigint;
CREATE TABLE sso_audit (
    seq     bigint PRIMARY KEY,
    time_ns bigint NOT NULL,
    type    text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL DEFAULT '',
    data    json NOT NULL                    -- store.Event
);
CREATE INDEX sso_audit_user ON sso_audit (user_id, seq) WHERE user_id <> '';
CREATE INDEX sso_audit_time ON sso_audit (time_ns);
