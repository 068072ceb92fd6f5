"""The agents' side of executing triggered tests: claim a job (long-poll), heartbeat, report
results, complete; and the list of agents. An agent acts with an API key of write scope; a
key limited to one project only gets that project's jobs.

A job completion is just another dialect: the reported results are the native result shape,
validated item by item exactly like `POST /api/v1/runs/{id}/results`, and stored by THE
ingest path. Nothing here ever carries a command (agent/config.py says why).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import msgspec
from litestar import Request
from litestar.params import FromPath

from ..core import agents, jobs
from ..core.errors import NotFound
from ..core.tenancy import key_is_active
from .auth import authenticate
from .context import Services, services
from .errors import ApiError
from .native_runs import validate_items
from .native_schema import ResultIn
from .routing import endpoint, raw_items, read_body
from .slots import KeyedSlots

TAGS = ["Agents"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Framework = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class ClaimIn(msgspec.Struct, forbid_unknown_fields=True):
    agent: Name
    frameworks: Annotated[list[Framework], msgspec.Meta(max_length=100)]
    # Seconds to hold the request open while nothing is queued (capped by jobs.max_poll_s).
    wait_s: Annotated[int, msgspec.Meta(ge=0, le=120)] = 25
    hostname: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    version: Annotated[str, msgspec.Meta(max_length=50)] | None = None


class ClaimAnswer(msgspec.Struct):
    job: jobs.ClaimedJob | None


class LeaseIn(msgspec.Struct, forbid_unknown_fields=True):
    lease_token: Token


class ReportIn(msgspec.Struct, forbid_unknown_fields=True):
    lease_token: Token
    results: list[msgspec.Raw]


raw_items(ReportIn, ResultIn)


class CompleteIn(msgspec.Struct, forbid_unknown_fields=True):
    lease_token: Token
    # DONE: the report was read (tests it never mentioned end BROKEN). ERROR: no usable report
    # (unfinished tests end BROKEN with `message`). TIMEOUT: the command was killed for taking
    # too long (unfinished tests end TIMEOUT).
    outcome: Literal["DONE", "ERROR", "TIMEOUT"]
    message: Annotated[str, msgspec.Meta(max_length=20000)] | None = None


async def _job_holder(request: Request, job_id: FromPath[str]):
    """The caller, once the job is known to be its tenant's (404 before the body is read)."""
    principal = await authenticate(request, "write")
    if not await services(request).db.read(jobs.job_exists, principal.tenant_id, job_id, principal.project_id):
        raise NotFound("Job not found")
    return principal


# How often a waiting claim looks for work queued through another node (PostgreSQL only): each
# look is one small write transaction per waiting agent.
MULTI_NODE_RECHECK_S = 1.0


class QueueSignal:
    """Wakes agents' long-polls when work is queued through this process (an asyncio event; on
    several nodes claims also look again on their own, see `claim`); the generation counter closes the gap between a failed claim and the
    wait (a job queued in between is not missed)."""

    def __init__(self) -> None:
        self.generation = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, generation: int, timeout: float, interrupt: asyncio.Event | None = None) -> None:
        """Until something is queued after `generation`, `interrupt` is set, or `timeout`."""
        if self.generation != generation or timeout <= 0:
            return
        waiters = [asyncio.ensure_future(self._event.wait())]
        if interrupt is not None:
            waiters.append(asyncio.ensure_future(interrupt.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def new_poll_budget(per_key: int, total: int) -> KeyedSlots:
    """Long-polls waiting at once, per key and in all (jobs.max_polls_per_key, jobs.max_polls).
    Without it, 1,030 waiting claims with one write key (well inside its rate limit) took every
    connection the server had, and /readyz timed out for every tenant. Per node (api/slots.py):
    a waiting claim holds a connection of the node it reached, and the job it gets is claimed
    exactly once whichever node it waits on (the claim is a write transaction)."""
    return KeyedSlots(
        per_key, total, retry_after_s=5,
        refusal="Nothing is queued and {which}: ask again in {retry_after} s",
        key_full="this key already has {per_key} agents waiting for work (jobs.max_polls_per_key)",
        server_full="{total} agents are waiting for work already (jobs.max_polls)",
    )


def job_signal(svc: Services) -> QueueSignal:
    """The process' one queue signal: triggers notify it, claims wait on it."""
    return svc.job_signal


@endpoint("POST", "/api/v1/agent/claim", summary="Claim the oldest queued job of the agent's frameworks",
          tags=TAGS, scope="write", body=ClaimIn, responses={200: ClaimAnswer},
          description="Long-poll: held open up to `wait_s` (at most jobs.max_poll_s) while nothing is queued; "
          "answers `{\"job\": null}` then. A job's tests and its run become RUNNING when it is claimed. 429 "
          "(with `retry_after`) when nothing is queued and the key, or the server, has as many agents waiting as "
          "jobs.max_polls_per_key (jobs.max_polls) allow. 401 when the key was revoked while it waited.")
async def claim(request: Request) -> ClaimAnswer:
    principal = await authenticate(request, "write")
    data = await read_body(request, ClaimIn)
    svc = services(request)
    signal = job_signal(svc)
    hello = agents.AgentHello(
        name=data.agent, frameworks=sorted(set(data.frameworks)), key_id=principal.key_id, hostname=data.hostname,
        version=data.version,
    )
    lease_s = svc.config.jobs.lease_s
    # A graceful stop answers a waiting agent at once instead of being held up by it.
    stopping = svc.shutdown.requested
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(data.wait_s, svc.config.jobs.max_poll_s)

    def claim_if_key_active(conn):
        # Checked in the claim's own transaction: a key revoked while its request waited (or a
        # tenant suspended) gets no job, and a revocation cannot slip in between.
        if not key_is_active(conn, principal.key_id):
            return False
        return jobs.claim(conn, principal.tenant_id, hello, lease_s=lease_s, project_id=principal.project_id)

    async def attempt():
        job = await svc.db.write(claim_if_key_active)
        if job is False:
            raise ApiError(401, "This API key was revoked (or its organization suspended) while it waited for work")
        return job

    generation = signal.generation
    job = await attempt()
    if job is not None or deadline <= loop.time():
        return ClaimAnswer(job)
    # The signal wakes the claims waiting in this process. On PostgreSQL another node may queue
    # the job, and its signal does not reach here: a waiting claim looks again every
    # MULTI_NODE_RECHECK_S as well (docs/scaling.md).
    recheck = MULTI_NODE_RECHECK_S if svc.db.engine.name == "postgresql" else None
    with svc.poll_budget.slot(principal.key_id):  # only a claim that waits holds a slot
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or (stopping is not None and stopping.is_set()):
                return ClaimAnswer(None)
            await signal.wait(generation, remaining if recheck is None else min(remaining, recheck), stopping)
            generation = signal.generation
            job = await attempt()
            if job is not None:
                return ClaimAnswer(job)


@endpoint("POST", "/api/v1/agent/jobs/{job_id:str}/heartbeat", summary="Renew a job's lease; learn whether to stop",
          tags=TAGS, scope="write", body=LeaseIn, responses={200: jobs.JobState},
          description="`cancel: true` means stop the command now: the run was canceled, or the lease ran out and "
          "the job's tests were marked TIMEOUT. 409 when the lease token is not this job's.")
async def heartbeat(request: Request, job_id: FromPath[str]) -> jobs.JobState:
    principal = await _job_holder(request, job_id)
    data = await read_body(request, LeaseIn)
    svc = services(request)
    lease_s = svc.config.jobs.lease_s
    return await svc.db.write(
        lambda conn: jobs.heartbeat(conn, principal.tenant_id, job_id, data.lease_token, lease_s=lease_s)
    )


@endpoint("POST", "/api/v1/agent/jobs/{job_id:str}/results", summary="Report outcomes parsed from the command's report",
          tags=TAGS, scope="write", body=ReportIn, responses={200: jobs.ReportOutcome},
          description="`results` are native result objects (as in POST /api/v1/runs/{id}/results), matched to the "
          "job's tests by test case code, else by title, else by the grep pattern that selected them; entries "
          "that are none of the job's tests are listed in `ignored`. Answers each stored entry's result id, for "
          "attachments. Renews the lease.")
async def report(request: Request, job_id: FromPath[str]) -> jobs.ReportOutcome:
    principal = await _job_holder(request, job_id)
    data = await read_body(request, ReportIn)
    accepted, rejected = validate_items(data.results, None)
    svc = services(request)
    lease_s = svc.config.jobs.lease_s
    return await svc.db.write(
        lambda conn: jobs.report(
            conn, principal.tenant_id, job_id, data.lease_token, accepted, rejected=rejected, lease_s=lease_s
        )
    )


@endpoint("POST", "/api/v1/agent/jobs/{job_id:str}/complete", summary="Finish a job", tags=TAGS, scope="write",
          body=CompleteIn, responses={200: jobs.JobState},
          description="Tests without an outcome end BROKEN (DONE: the report never mentioned them; ERROR: with "
          "`message`) or TIMEOUT. The run finishes with its last job: ERROR if a job broke or timed out.")
async def complete(request: Request, job_id: FromPath[str]) -> jobs.JobState:
    principal = await _job_holder(request, job_id)
    data = await read_body(request, CompleteIn)
    return await services(request).db.write(
        lambda conn: jobs.complete(
            conn, principal.tenant_id, job_id, data.lease_token, outcome=data.outcome, message=data.message
        )
    )


@endpoint("GET", "/api/v1/agents", summary="List agents with their last heartbeat", tags=TAGS, scope="read",
          responses={200: agents.AgentList},
          description="`status`: busy (running a job), idle (asked for work lately) or offline.")
async def list_agents(request: Request) -> agents.AgentList:
    principal = await authenticate(request, "read")
    svc = services(request)
    # An idle agent asks again at least every max_poll_s; allow for a slow network on top.
    window_ms = (svc.config.jobs.max_poll_s + svc.config.jobs.lease_s) * 1000
    return await svc.db.read(agents.list_agents, principal.tenant_id, window_ms, principal.project_id)


def schedule(svc: Services, scheduler) -> None:
    """The maintenance task that ends expired leases and agent jobs nobody claimed in time."""
    cfg = svc.config.jobs

    async def expire_leases():
        ended = await svc.db.write(lambda conn: jobs.expire(conn, queue_timeout_s=cfg.queue_timeout_s))
        return "; ".join(ended) if ended else None

    # Not coordinated: one write transaction that ends only what is still running past its lease
    # or queued past its timeout; writes are serialized across nodes, so a second node's run in
    # the same round finds nothing left and costs one cheap write.
    scheduler.add("job-expiry", cfg.check_interval_s, expire_leases, coordinated=False)


HANDLERS = [claim, heartbeat, report, complete, list_agents]
