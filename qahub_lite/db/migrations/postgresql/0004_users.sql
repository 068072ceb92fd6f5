-- PostgreSQL twin of ../0004_users.sql (engine: postgresql). Same tables, columns, keys and indexes;
-- types spelled for PostgreSQL: BIGINT for INTEGER, BIGINT identities for rowid keys, BYTEA
-- for BLOB, DOUBLE PRECISION for REAL. tests/test_schema_engines.py holds the two in step.

-- Dashboard users, their roles per tenant, and sign-in sessions.
-- A user signs in once and may belong to several tenants with a role in each; a session is
-- bound to one tenant at a time. Passwords are stored only as scrypt hashes (core/passwords.py)
-- and session tokens only as SHA-256 hashes: a copy of the database signs nobody in.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL,         -- unique without regard to case: users_username below
    password_hash  TEXT NOT NULL,         -- scrypt$<n>$<r>$<p>$<salt>$<hash>, never the password
    disabled_at    BIGINT,               -- set: the user cannot sign in, sessions are gone
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_login_at  BIGINT
);

-- SQLite's COLLATE NOCASE UNIQUE: one user per name whatever its case.
CREATE UNIQUE INDEX users_username ON users (lower(username));

CREATE TABLE memberships (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, tenant_id)
);
-- Settings > Users lists a tenant's members.
CREATE INDEX memberships_tenant ON memberships (tenant_id, created_at);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,       -- hex SHA-256 of the cookie's token
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,          -- per session; every form posts it back
    created_at   BIGINT NOT NULL,
    renewed_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
-- Signing a user out everywhere (password change, disable) and purging expired sessions.
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
