"""The agent inside `qahub serve` when `[agent] enabled`: started and stopped by the app's
lifespan. It lives beside app.py, not in api/, because it joins both sides: the server's
services and the HTTP-only agent (agent/), which api/ must not import."""

from __future__ import annotations

import asyncio
from pathlib import Path

from .core import agents, jobs
from .http.services import Services


class EmbeddedAgentHandle:
    """The agent inside `qahub serve`, as the app's lifespan holds it."""

    def __init__(self, svc: Services, agent, tenant_id: str) -> None:
        self.svc = svc
        self.agent = agent
        self.tenant_id = tenant_id
        # From the first moment of a graceful stop the server takes no new connections: the
        # agent stops asking for work and kills a command it is running right then.
        self._watch = asyncio.ensure_future(svc.shutdown.requested.wait())
        self._watch.add_done_callback(lambda _: agent.stop_event.set())

    async def close(self) -> None:
        self._watch.cancel()
        abandoned = await asyncio.to_thread(self.agent.close)
        if abandoned is not None:
            # It cannot tell the server over HTTP any more; we are the server.
            await self.svc.db.write(lambda conn: jobs.complete(
                conn, self.tenant_id, abandoned.id, abandoned.lease_token, outcome="ERROR",
                message="the server stopped while its embedded agent ran these tests",
            ))


async def start_embedded_agent(svc: Services) -> EmbeddedAgentHandle | None:
    """The agent inside `qahub serve` when `[agent] enabled`: its agent.toml is read now (a
    mistake in it stops the start), it gets a fresh write key, and it speaks HTTP to this very
    server, so its jobs take exactly the path a remote agent's do."""
    cfg = svc.config
    if not cfg.agent.enabled:
        return None
    # Imported here: the agent pulls in every report parser and an HTTP client, which a server
    # without an embedded agent never needs.
    from .agent.config import load_agent_config
    from .agent.loop import EmbeddedAgent

    settings = load_agent_config(Path(cfg.base_dir) / cfg.agent.config)
    key = await svc.db.write(agents.issue_embedded_key, cfg.agent.tenant)
    host = cfg.server.host if cfg.server.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    agent = EmbeddedAgent(f"http://{host}:{cfg.server.port}", key.key, settings)
    agent.start()
    return EmbeddedAgentHandle(svc, agent, key.info.tenant_id)
