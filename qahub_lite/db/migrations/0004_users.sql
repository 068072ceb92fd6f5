-- Dashboard users, their roles per tenant, and sign-in sessions.
-- A user signs in once and may belong to several tenants with a role in each; a session is
-- bound to one tenant at a time. Passwords are stored only as scrypt hashes (core/passwords.py)
-- and session tokens only as SHA-256 hashes: a copy of the database signs nobody in.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL COLLATE NOCASE UNIQUE,
    password_hash  TEXT NOT NULL,         -- scrypt$<n>$<r>$<p>$<salt>$<hash>, never the password
    disabled_at    INTEGER,               -- set: the user cannot sign in, sessions are gone
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    last_login_at  INTEGER
) STRICT;

CREATE TABLE memberships (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
) STRICT;
-- Settings > Users lists a tenant's members.
CREATE INDEX memberships_tenant ON memberships (tenant_id, created_at);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,       -- hex SHA-256 of the cookie's token
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,          -- per session; every form posts it back
    created_at   INTEGER NOT NULL,
    renewed_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
-- Signing a user out everywhere (password change, disable) and purging expired sessions.
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
