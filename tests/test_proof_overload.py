"""One client cannot stop the server (issue 12, item 1).

The real `qahub serve` on 127.0.0.1 is attacked from another loopback address (127.0.0.2, so
that the attacker is one client address and the probes another) with 1,100 connections held
at once and refilled as the server drops them:

- 600 `POST /login` with `Content-Length: 60000` that send one byte every few seconds;
- 70 slow-header connections (waves: each is refilled as soon as header_timeout_s drops it);
- 430 `POST /api/v1/agent/claim` long-polls with one write key.

Meanwhile `/healthz`, `/readyz` and an ordinary API read from 127.0.0.1 must keep answering
within a second or two. Before the fix, granian's 1,024 connection slots filled and the probes
timed out. The test uses only settings that existed before the fix, so it can be run against
the old code to see it fail.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from proof_server import ServerProcess

ATTACKER = "127.0.0.2"
# 1,030 requests in progress (granian's default served 1,024) plus slow-header waves.
SLOW_BODIES, SLOW_HEADERS, CLAIMS = 600, 70, 430
ATTACK_S = 20
PROBE_TIMEOUT_S = 3.0


@pytest.fixture
def server(tmp_path):
    s = ServerProcess(tmp_path / "s", {"server": {"header_timeout_s": 2}, "jobs": {"max_poll_s": 30}})
    s.start()
    yield s
    s.stop()


class Attack:
    def __init__(self, port: int, write_key: str, counts=(SLOW_BODIES, SLOW_HEADERS, CLAIMS),
                 sources=(ATTACKER,)) -> None:
        self.port = port
        self.key = write_key
        self.counts = counts
        self.sources = sources
        self.opened = 0
        self.stop = asyncio.Event()
        self.open = 0  # connections held right now
        self.peak = 0
        self.answers: dict[str, list[int]] = {"body": [], "header": [], "claim": []}

    async def _connect(self):
        self.opened += 1
        source = self.sources[self.opened % len(self.sources)]
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
        self.open += 1
        self.peak = max(self.peak, self.open)
        return reader, writer

    def _close(self, writer) -> None:
        self.open -= 1
        writer.close()

    async def _hold(self, kind: str, head: bytes, drip: bytes, every_s: float) -> None:
        """Send `head`, then `drip` every `every_s` until the server answers or hangs up; again."""
        while not self.stop.is_set():
            try:
                reader, writer = await self._connect()
            except OSError:
                await asyncio.sleep(0.2)
                continue
            try:
                writer.write(head)
                await writer.drain()
                while not self.stop.is_set():
                    try:
                        line = await asyncio.wait_for(reader.readline(), timeout=every_s)
                    except TimeoutError:
                        writer.write(drip)
                        await writer.drain()
                        continue
                    if line.startswith(b"HTTP/1.1 "):
                        self.answers[kind].append(int(line.split()[1]))
                    break  # answered or closed: refill
            except (OSError, ConnectionError):
                pass
            finally:
                self._close(writer)
            await asyncio.sleep(0.5)  # an attacker that reconnects, not one that floods

    async def run(self) -> None:
        body_head = (b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 60000\r\n\r\nu")
        header_head = b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\n"
        claim = json.dumps({"agent": "a", "frameworks": ["pytest"], "wait_s": 120}).encode()
        claim_head = (b"POST /api/v1/agent/claim HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Authorization: Bearer {self.key}\r\nContent-Length: {len(claim)}\r\n\r\n".encode() + claim)
        bodies, headers, claims = self.counts
        tasks = [asyncio.create_task(self._hold("body", body_head, b"u", 3.0)) for _ in range(bodies)]
        tasks += [asyncio.create_task(self._hold("header", header_head, b"X-A: b\r\n", 1.0)) for _ in range(headers)]
        tasks += [asyncio.create_task(self._hold("claim", claim_head, b"", 60.0)) for _ in range(claims)]
        await self.stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _probe(client: httpx.Client, path: str) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status = client.get(path, timeout=PROBE_TIMEOUT_S).status_code
    except httpx.HTTPError:
        status = None
    return status, time.monotonic() - started


def _attack_and_probe(server, counts, sources, attack_s: float = ATTACK_S):
    write_key = json.loads(server.cli("keys", "create", "--scope", "write", "--json").stdout)["key"]
    probes: dict[str, list[tuple[int | None, float]]] = {"/healthz": [], "/readyz": [], "/api/v1/runs": []}

    async def main():
        attack = Attack(server.port, write_key, counts, sources)
        runner = asyncio.create_task(attack.run())
        loop = asyncio.get_running_loop()
        with server.client() as client:  # from 127.0.0.1: another client than the attacker
            await asyncio.sleep(4)  # let the attack build up
            deadline = time.monotonic() + attack_s
            while time.monotonic() < deadline:
                for path in probes:
                    # A fresh connection each time: a probe that needs a free slot, like a load balancer's.
                    client.headers["Connection"] = "close"
                    probes[path].append(await loop.run_in_executor(None, _probe, client, path))
                await asyncio.sleep(0.5)
        attack.stop.set()
        await runner
        return attack

    attack = asyncio.run(main())
    for path, results in probes.items():
        failed = [(s, round(t, 2)) for s, t in results if s != 200 or t > 2.0]
        assert not failed, f"{path} failed or was slow under attack ({len(failed)}/{len(results)}): {failed[:10]}"
    assert "unexpected error serving" not in server.log()
    return attack


@pytest.mark.e2e
@pytest.mark.slow
def test_1100_hostile_connections_from_one_client_do_not_stop_the_server(server):
    attack = _attack_and_probe(server, (SLOW_BODIES, SLOW_HEADERS, CLAIMS), (ATTACKER,))
    assert attack.peak >= 1000, f"the attack held only {attack.peak} connections at once"
    # The server refused the excess at once instead of holding it, and said why.
    refused = [s for kind in attack.answers.values() for s in kind]
    assert 429 in refused, f"answers to the attacker: {sorted(set(refused))}"


@pytest.mark.e2e
@pytest.mark.slow
def test_1030_long_polls_with_one_key_from_many_addresses_leave_room_for_others(server):
    """The per-address cap does not help when the polls come from many machines (a CI farm):
    the key's own budget of waiting polls does."""
    sources = tuple(f"127.0.0.{n}" for n in range(10, 15))  # 206 polls each, below the per-address cap
    attack = _attack_and_probe(server, (0, 0, 1030), sources, attack_s=8)
    assert attack.peak >= 1000, f"the attack held only {attack.peak} connections at once"
    assert 429 in attack.answers["claim"], f"answers to the polls: {sorted(set(attack.answers['claim']))}"
