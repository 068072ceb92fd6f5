"""Agents as the server sees them: one row per (tenant, name), refreshed by every request an
agent makes, listed with its last heartbeat. An agent is not a principal of its own: it acts
with an API key of write scope, and this registry only tells people who is out there."""

from __future__ import annotations

import sqlite3

import aiosqlite
import msgspec

from .clock import new_id, now_ms, to_iso
from .errors import Conflict
from .tenancy import NewKey, create_key, find_tenant, list_tenants

# The embedded agent of `qahub serve` gets a fresh key of this name at every start; older keys
# of the name are deleted then, so restarts do not pile up keys nobody can use.
EMBEDDED_KEY_NAME = "qahub serve: embedded agent"
_frameworks = msgspec.json.Decoder(list[str])


class AgentHello(msgspec.Struct, kw_only=True):
    """What an agent says about itself on every claim."""

    name: str
    frameworks: list[str]
    key_id: str
    hostname: str | None = None
    version: str | None = None


class AgentInfo(msgspec.Struct):
    id: str
    name: str
    status: str  # busy, idle or offline
    hostname: str | None
    version: str | None
    frameworks: list[str]
    current_job_id: str | None
    last_heartbeat_at: str | None
    created_at: str | None


class AgentList(msgspec.Struct):
    data: list[AgentInfo]


def touch_agent(conn: sqlite3.Connection, tenant_id: str, hello: AgentHello) -> str:
    """Create or refresh the agent's row; returns its id. A name belongs to the key that uses
    it while that key is live: another key asking under the name is a Conflict, or any write
    key could take over an agent's name (its place in the list, its jobs' history). Once the
    owner key is revoked or deleted (the embedded agent gets a new key at every start), the
    next key to use the name takes it."""
    owner = conn.execute(
        "SELECT a.key_id FROM agents a JOIN api_keys k ON k.id = a.key_id "
        "WHERE a.tenant_id = ? AND a.name = ? AND k.revoked_at IS NULL",
        (tenant_id, hello.name),
    ).fetchone()
    if owner is not None and owner[0] != hello.key_id:
        raise Conflict(
            f"the agent name {hello.name!r} belongs to another API key that is still valid: give this agent "
            "another name (`name` in its agent.toml), or revoke the other key first"
        )
    now = now_ms()
    row = conn.execute(
        """INSERT INTO agents (id, tenant_id, name, key_id, hostname, version, frameworks, created_at, last_seen_at)
           VALUES (?,?,?,?,?,?,?,?,?)
           ON CONFLICT (tenant_id, name) DO UPDATE SET key_id = excluded.key_id, hostname = excluded.hostname,
               version = excluded.version, frameworks = excluded.frameworks, last_seen_at = excluded.last_seen_at
           RETURNING id""",
        (new_id(), tenant_id, hello.name, hello.key_id, hello.hostname, hello.version,
         msgspec.json.encode(hello.frameworks).decode(), now, now),
    ).fetchone()
    return row[0]


def seen(conn: sqlite3.Connection, agent_id: str | None, current_job_id: str | None) -> None:
    """A heartbeat or report: the agent is alive, and busy with `current_job_id` (or idle)."""
    if agent_id is not None:
        conn.execute(
            "UPDATE agents SET last_seen_at = ?, current_job_id = ? WHERE id = ?", (now_ms(), current_job_id, agent_id)
        )


async def list_agents(
    conn: aiosqlite.Connection, tenant_id: str, online_within_ms: int, project_id: str | None = None,
) -> AgentList:
    """Every agent of the tenant by name; `offline` when not seen within `online_within_ms`
    (a long-poll that ends without work counts as being seen). For a key limited to one
    project: only the agents that work for that project (their key is limited to it, or
    they are running one of its jobs), not the tenant's other machines."""
    rows = await conn.execute_fetchall(
        """SELECT a.id, a.name, a.hostname, a.version, a.frameworks, a.current_job_id, a.last_seen_at, a.created_at,
                  j.status
           FROM agents a LEFT JOIN jobs j ON j.id = a.current_job_id
           WHERE a.tenant_id = ?
             AND (? IS NULL OR j.project_id = ? OR a.key_id IN (SELECT id FROM api_keys WHERE project_id = ?))
           ORDER BY a.name""",
        (tenant_id, project_id, project_id, project_id),
    )
    now = now_ms()
    out = []
    for r in rows:
        busy = r[8] == "RUNNING"
        status = "busy" if busy else "idle" if now - r[6] <= online_within_ms else "offline"
        out.append(AgentInfo(
            id=r[0], name=r[1], status=status, hostname=r[2], version=r[3], frameworks=_frameworks.decode(r[4]),
            current_job_id=r[5] if busy else None, last_heartbeat_at=to_iso(r[6]), created_at=to_iso(r[7]),
        ))
    return AgentList(out)


def issue_embedded_key(conn: sqlite3.Connection, tenant_ref: str) -> NewKey:
    """Writer operation at start-up of `qahub serve` with the embedded agent on: a write key for
    it, replacing the one of the previous start (its secret was only ever in memory)."""
    tenant = find_tenant(conn, tenant_ref) if tenant_ref else list_tenants(conn)[0]
    conn.execute("DELETE FROM api_keys WHERE tenant_id = ? AND name = ?", (tenant.id, EMBEDDED_KEY_NAME))
    return create_key(conn, tenant.id, scope="write", name=EMBEDDED_KEY_NAME)
