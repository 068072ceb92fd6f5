"""Agents as the server sees them: one row per (tenant, name), refreshed by every request an
agent makes, listed with its last heartbeat. An agent is not a principal of its own: it acts
with an API key of write scope, and this registry only tells people who is out there."""

from __future__ import annotations

import msgspec

from ..db import jobs as jobs_db
from . import key_checks
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


def touch_agent(conn, tenant_id: str, hello: AgentHello) -> str:
    """Create or refresh the agent's row; returns its id. A name belongs to the key that uses
    it while that key is live: another key asking under the name is a Conflict, or any write
    key could take over an agent's name (its place in the list, its jobs' history). Once the
    owner key is revoked or deleted (the embedded agent gets a new key at every start), the
    next key to use the name takes it."""
    owner = jobs_db.agent_name_owner(conn, tenant_id, hello.name)
    if owner is not None and owner != hello.key_id:
        raise Conflict(
            f"the agent name {hello.name!r} belongs to another API key that is still valid: give this agent "
            "another name (`name` in its agent.toml), or revoke the other key first"
        )
    return jobs_db.upsert_agent(
        conn, agent_id=new_id(), tenant_id=tenant_id, name=hello.name, key_id=hello.key_id, hostname=hello.hostname,
        version=hello.version, frameworks_json=msgspec.json.encode(hello.frameworks).decode(), now=now_ms(),
    )


def seen(conn, agent_id: str | None, current_job_id: str | None) -> None:
    """A heartbeat or report: the agent is alive, and busy with `current_job_id` (or idle)."""
    if agent_id is not None:
        jobs_db.mark_agent_seen(conn, agent_id, current_job_id, now_ms())


def list_agents(conn, tenant_id: str, online_within_ms: int, project_id: str | None = None) -> AgentList:
    """Every agent of the tenant by name; `offline` when not seen within `online_within_ms`
    (a long-poll that ends without work counts as being seen). For a key limited to one
    project: only the agents that work for that project (their key is limited to it, or
    they are running one of its jobs), not the tenant's other machines."""
    now = now_ms()
    out = []
    for r in jobs_db.list_agents(conn, tenant_id, project_id):
        busy = r["job_status"] == "RUNNING"
        status = "busy" if busy else "idle" if now - r["last_seen_at"] <= online_within_ms else "offline"
        out.append(AgentInfo(
            id=r["id"], name=r["name"], status=status, hostname=r["hostname"], version=r["version"],
            frameworks=_frameworks.decode(r["frameworks"]), current_job_id=r["current_job_id"] if busy else None,
            last_heartbeat_at=to_iso(r["last_seen_at"]), created_at=to_iso(r["created_at"]),
        ))
    return AgentList(out)


def issue_embedded_key(conn, tenant_ref: str) -> NewKey:
    """Writer operation at start-up of `qahub serve` with the embedded agent on: a write key for
    it, replacing the one of the previous start (its secret was only ever in memory)."""
    tenant = find_tenant(conn, tenant_ref) if tenant_ref else list_tenants(conn)[0]
    jobs_db.delete_keys_named(conn, tenant.id, EMBEDDED_KEY_NAME)
    key_checks.keys_changed(conn)  # a deleted key is never served from memory
    return create_key(conn, tenant.id, scope="write", name=EMBEDDED_KEY_NAME)
