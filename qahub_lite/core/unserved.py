"""Jobs no agent can take: a triggered run whose framework no online agent of the tenant has a
command for would stay PENDING until `jobs.queue_timeout_s` times it out. This says so while
the run waits (Qualigate's status `message`, `qahub wait`), as soon as it is known: from the
trigger on, and again whenever an agent with that framework comes or goes.

"Online" is the agent list's own measure (GET /api/v1/agents): seen within one long-poll
plus one lease.
"""

from __future__ import annotations

import msgspec

from ..db import triggers as triggers_db
from .clock import now_ms

_frameworks = msgspec.json.Decoder(list[str])


def unserved_frameworks(conn, tenant_id: str, run_id: str, online_within_ms: int) -> list[str]:
    """Frameworks of the run's queued jobs that no online agent of the tenant serves, sorted."""
    queued = triggers_db.queued_job_frameworks(conn, tenant_id, run_id)
    if not queued:
        return []
    served: set[str] = set()
    for frameworks in triggers_db.agent_frameworks_seen_since(conn, tenant_id, now_ms() - online_within_ms):
        served.update(_frameworks.decode(frameworks))
    return sorted(queued - served)


def no_agent_reason(conn, tenant_id: str, run_id: str, online_within_ms: int) -> str | None:
    """"no agent serves framework X" while the run has queued jobs no online agent can take."""
    return no_agent_message(unserved_frameworks(conn, tenant_id, run_id, online_within_ms))


def no_agent_message(frameworks: list[str]) -> str | None:
    if not frameworks:
        return None
    return "; ".join(f"no agent serves framework {f}" for f in frameworks) + (
        ": its tests wait until an agent with a command for it asks for work, or until jobs.queue_timeout_s"
    )
