"""Sign-in under attack: how long a real user's sign-in takes while one address floods the
sign-in form, and how many of a burst of parallel guesses get their password checked.

    .venv/bin/python bench/bench_sign_in.py [--flood 150] [--burst 60]

Starts a real `qahub serve` on a fresh data folder with one user, then prints:
- `alone_s`: one real sign-in (the median of 3) with nothing else going on;
- `during_flood_s`: the same sign-in, from another client address (127.0.0.2), while
  `--flood` sign-ins with made-up user names from 127.0.0.1 are in flight;
- `burst_checked`: of `--burst` parallel wrong-password sign-ins for one real user from one
  address, how many were checked (answered 401) rather than refused by the throttle (429)
  or as busy (429); at most `login_attempts` (5) should be.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import qahub_command, start_server  # noqa: E402

PASSWORD = "correct horse battery"


async def _token(client: httpx.AsyncClient) -> str:
    page = await client.get("/login")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str, token: str) -> tuple[int, float]:
    started = time.perf_counter()
    r = await client.post("/login", data={"csrf": token, "username": username, "password": password, "next": "/"},
                          follow_redirects=False)
    return r.status_code, time.perf_counter() - started


def _client(url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=120,
                             limits=httpx.Limits(max_connections=500, max_keepalive_connections=500))


async def measure(url: str, flood: int, burst: int) -> dict:
    async with _client(url, "127.0.0.1") as attacker, _client(url, "127.0.0.2") as user:
        alone = []
        for _ in range(3):
            status, took = await sign_in(user, "alice", PASSWORD, await _token(user))
            assert status == 303, status
            alone.append(took)
            user.cookies.clear()
        user_token = await _token(user)
        token = await _token(attacker)
        guesses = [asyncio.create_task(sign_in(attacker, f"nobody-{secrets.token_hex(4)}", "guess guess guess", token))
                   for _ in range(flood)]
        await asyncio.sleep(0.5)  # the flood is queued in the server by now
        status, during = await sign_in(user, "alice", PASSWORD, user_token)
        flood_statuses = [s for s, _ in await asyncio.gather(*guesses)]
        await asyncio.sleep(1)
        burst_answers = await asyncio.gather(*[sign_in(attacker, "alice", "wrong wrong wrong", token)
                                               for _ in range(burst)])
    return {
        "alone_s": round(statistics.median(alone), 3), "during_flood_s": round(during, 3),
        "during_flood_status": status,
        "flood_statuses": {str(s): flood_statuses.count(s) for s in sorted(set(flood_statuses))},
        "burst_checked": sum(1 for s, _ in burst_answers if s == 401),
        "burst_statuses": {str(s): [a for a, _ in burst_answers].count(s) for s in sorted({a for a, _ in burst_answers})},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=150)
    parser.add_argument("--burst", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qahub-bench-") as tmp:
        server = start_server(Path(tmp) / "server")
        try:
            subprocess.run([*qahub_command(), "users", "create", "alice", "--password-stdin", "--config",
                            str(server.config_path)], input=PASSWORD + "\n", text=True, check=True,
                           capture_output=True)
            print(json.dumps(asyncio.run(measure(server.url, args.flood, args.burst))))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
