"""The maintenance tasks that follow a run's end (STYLE.md habit 8: named, logged, surviving
failures):

- `run-completion` (every second): the work of finished runs, queued in the transaction that
  finished them (core/run_completion.py): regression verdicts and webhook events.
- `trend-grades` (grade.refresh_interval_s): grades the trend's day rows that changed.
- `webhook-delivery` (webhooks.poll_interval_s): sends due deliveries of the outbox
  (core/outbox.py), signed (core/webhooks.py), records every attempt, and prunes old ones.
- `quarantine-expiry` (every minute): lifts quarantines whose expiry passed.

Sending lives here, not in core: core knows nothing of HTTP, in or out.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from . import __version__, outbound
from .core import egress, outbox, quarantine, run_completion, trends
from .core.clock import now_ms
from .core.webhooks import sign

log = logging.getLogger("qahub.jobs.run_completion")
RUN_COMPLETION_INTERVAL_S = 1  # finished runs should reach webhooks within seconds
_BATCH = 50
_PRUNE_EVERY_S = 3600


async def process_finished_runs(svc) -> str | None:
    """`run-completion`: each queued run in its own writer transaction; a failure is counted and
    retried next tick (core/run_completion.py drops a run that keeps failing)."""
    cfg = svc.config
    batch = await svc.db.read(run_completion.queued, _BATCH)
    events = failed = 0
    for queue_id, run_id in batch:
        try:
            events += await svc.db.write(run_completion.process_queued, queue_id, run_id, cfg.flaky, cfg.public_url)
        except Exception as exc:  # noqa: BLE001 - one bad run must not hold up the others
            failed += 1
            log.exception("completion work of run %s failed", run_id)
            await svc.db.write(run_completion.give_up_or_retry, queue_id, f"{type(exc).__name__}: {exc}")
    if not batch:
        return None
    return f"{len(batch) - failed} finished run(s) judged, {events} webhook event(s) queued" + (
        f", {failed} failed" if failed else ""
    )


QUARANTINE_EXPIRY_INTERVAL_S = 60  # an expiry is a date people set; a minute late is on time


async def lift_expired_quarantines(svc) -> str | None:
    """Quarantines whose expiry passed are lifted, with an audit entry and an event (docs/triage.md)."""
    lifted = await svc.db.write(quarantine.lift_expired)
    return f"lifted {lifted} expired quarantine(s)" if lifted else None


async def grade_trends(svc) -> str | None:
    cfg = svc.config
    done = await trends.grade_stale_days(svc.db, cfg.flaky, cfg.grade)
    return f"graded {done} trend day(s)" if done else None


class Sender:
    """`webhook-delivery`: a batch of due deliveries sent at once, each tick with a fresh HTTP
    client (nothing to close at shutdown; a tick with work is seconds apart anyway)."""

    def __init__(self, svc) -> None:
        self.svc = svc
        cfg = svc.config.webhooks
        self.retry = outbox.Retry(cfg.retry_base_s, cfg.retry_max_s, cfg.retry_for_hours)
        # An attempt's whole time, name resolution and request together: httpx's timeout bounds
        # each step (connect, each read), so a receiver trickling its answer could otherwise
        # hold an attempt for any time.
        self.attempt_s = 2 * cfg.timeout_s
        # A claim outlives the slowest attempt and the write recording it, so no node (this one
        # or another sharing the database) claims and sends a delivery whose attempt is running.
        self.lease_ms = (self.attempt_s + 30) * 1000
        self._last_prune = 0.0
        self.allowed = egress.parse_networks(cfg.allow_networks)

    async def tick(self) -> str | None:
        cfg, db = self.svc.config.webhooks, self.svc.db
        pruned = await self._prune()
        due = await db.write(outbox.claim_due, now_ms(), self.lease_ms, cfg.batch_size)
        if not due:
            return f"pruned {pruned} old deliveries" if pruned else None
        sends: list[asyncio.Future] = []
        try:
            # No kept-alive connections: requests go to IP addresses (outbound.py), and two hosts
            # on one address must never share a TLS connection made for the other's name.
            async with httpx.AsyncClient(
                timeout=cfg.timeout_s, follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0),
                headers={"User-Agent": f"qahub-lite/{__version__} webhooks"},
            ) as client:
                sends = [asyncio.ensure_future(self.send(client, d)) for d in due]
                outcomes = await asyncio.gather(*sends)
        except asyncio.CancelledError:
            # Stopping: the attempts that got their answer are recorded (a delivered one must not
            # go again from the next start or another node); the claims of the others go back so
            # that they are sent at once. An attempt cut short may have reached its receiver:
            # that one goes again (at least once; receivers deduplicate by X-Qahub-Delivery).
            answered = [t.result() for t in sends if t.done() and not t.cancelled()]
            unanswered = [d.id for d in due if d.id not in {o.delivery_id for o in answered}]
            await db.write(_record_and_release, answered, self.retry, unanswered, now_ms())
            raise
        await db.write(outbox.record, list(outcomes), self.retry)
        ok = sum(1 for o in outcomes if o.ok)
        return f"sent {len(outcomes)} webhook deliveries: {ok} delivered, {len(outcomes) - ok} to retry or given up"

    async def send(self, client: httpx.AsyncClient, due: outbox.Due) -> outbox.AttemptOutcome:
        body = due.body.encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Qahub-Event": due.event,
            "X-Qahub-Event-Id": due.event_id,
            "X-Qahub-Delivery": due.id,
            "X-Qahub-Timestamp": str(stamp),
            "X-Qahub-Signature": sign(due.secret, stamp, body),
        }
        started, clock = now_ms(), time.perf_counter()
        status = error = text = None
        try:
            async with asyncio.timeout(self.attempt_s):
                # Resolved once, judged, and connected to that very address (outbound.py).
                target = await outbound.pin(due.url, self.allowed, self.svc.config.webhooks.timeout_s)
                headers.update(target.headers)
                async with client.stream("POST", target.url, content=body, headers=headers,
                                         extensions=target.extensions) as response:
                    status = response.status_code
                    text = await _head(response)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except outbound.Refused as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__
        except TimeoutError:
            status, error = None, f"no complete answer within {self.attempt_s} s"
        except Exception as exc:  # noqa: BLE001 - one attempt's surprise must not lose the batch's outcomes
            # Were it raised, the tick would record none of the batch, and the deliveries already
            # answered would be sent again once their claims ran out.
            log.exception("webhook delivery %s: unexpected failure", due.id)
            status, error = None, f"{type(exc).__name__}: {exc}"
        return outbox.AttemptOutcome(
            due.id, due.attempt, started, int((time.perf_counter() - clock) * 1000), status, error, text
        )

    async def _prune(self) -> int:
        keep = self.svc.config.webhooks.keep_days
        if keep <= 0 or time.monotonic() - self._last_prune < _PRUNE_EVERY_S:
            return 0
        self._last_prune = time.monotonic()
        cutoff, pruned = now_ms() - keep * 86_400_000, 0
        while n := await self.svc.db.write(outbox.prune, cutoff):
            pruned += n
        return pruned


def _record_and_release(conn, answered: list[outbox.AttemptOutcome], retry: outbox.Retry, unanswered: list[str],
                        now: int) -> None:
    """Writer operation of a stopping sender: one transaction, so a stop cannot keep one half."""
    outbox.record(conn, answered, retry)
    outbox.release(conn, unanswered, now)


async def _head(response: httpx.Response) -> str:
    """The first bytes of an answer: enough to diagnose, never a receiver's whole page."""
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= outbox.RESPONSE_KEEP:
            break
    return kept[: outbox.RESPONSE_KEEP].decode("utf-8", errors="replace")


def schedule(svc, scheduler) -> Sender:
    """Register the four maintenance tasks (app.py schedule_tasks)."""
    cfg = svc.config
    sender = Sender(svc)
    # Not coordinated: each queued run is claimed by the transaction that does its work (the
    # queue row is deleted there first, core/run_completion.py), so a run is judged and announced
    # once whichever node gets to it; a lease every second would cost each idle node a write.
    scheduler.add("run-completion", RUN_COMPLETION_INTERVAL_S, lambda: process_finished_runs(svc), coordinated=False)
    # Coordinated: grading a day reads all of that day's results; two nodes would both grade the
    # same stale rows (the store keeps one answer, the reads are the cost).
    scheduler.add("trend-grades", cfg.grade.refresh_interval_s, lambda: grade_trends(svc), coordinated=True)
    # Not coordinated: deliveries are claimed row by row (outbox.claim_due moves each claimed one
    # out of reach for its lease), so the nodes share the sending and each delivery goes once.
    scheduler.add("webhook-delivery", cfg.webhooks.poll_interval_s, sender.tick, coordinated=False)
    # Not coordinated: one write that lifts only quarantines still in place whose expiry passed;
    # a second node's run in the same minute finds none.
    scheduler.add("quarantine-expiry", QUARANTINE_EXPIRY_INTERVAL_S, lambda: lift_expired_quarantines(svc),
                  coordinated=False)
    return sender
