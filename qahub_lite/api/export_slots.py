"""Exports streaming at once, per key and in all: what one key may take of the server.

An export reads and encodes as fast as its client takes the bytes, on the event loop and the
reader pool every other request shares. 30 concurrent CSV exports of 200,000 results with one
read key (far inside the per-client request cap) held /readyz for 20 s on two cores: every
tenant's requests, and the probes that decide whether the server is alive, waited behind them.
A slot is held for the whole stream, and given back when it ends, fails or the client leaves;
without one the answer is 429 at once, with Retry-After (docs/robustness.md).

The slots are this node's (api/slots.py says why): with several nodes a key may stream
PER_KEY exports from each, and TOTAL is sized by this node's cores, which is what it protects.
"""

from __future__ import annotations

import os

from .slots import KeyedSlots

PER_KEY = 2
# An export keeps about one core busy while its client reads fast: twice the cores at once
# keeps /readyz answering (docs/robustness.md), and one key cannot take them all.
TOTAL = 2 * max(2, os.cpu_count() or 2)
RETRY_AFTER_S = 10


def new_export_slots(per_key: int = PER_KEY, total: int = TOTAL) -> KeyedSlots:
    """The process' export slots (built once, in the app's lifespan; per node, see above)."""
    return KeyedSlots(
        per_key, total, retry_after_s=RETRY_AFTER_S,
        refusal="Too many exports at once: {which}; ask again in {retry_after} s",
        key_full="this key already has {per_key} exports streaming",
        server_full="the server already streams {total} exports",
    )
