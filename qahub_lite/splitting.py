"""Splitting test files (or test ids) across parallel CI nodes by their past durations.

A leaf module (no imports from the package): `qahub split` runs it on each CI node with the
figures of `GET /api/v1/projects/{id}/timings`, and every node must compute the same split,
so it depends only on its inputs: the same items (in any order, duplicates ignored), the
same figures and the same node count give the same shares on every machine.

Greedy longest-processing-time: items by decreasing weight (ties by name), each to the node
with the least load so far (ties by node index). Its worst case is 4/3 of the best split; on
many items with long-tailed times it lands within a few percent of total/N unless one item
alone is longer than that. An item without a figure gets the median of the known figures of
the items given (a new test file is assumed typical, not free); with no figure at all every
item weighs the same, which is an even split by count.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterable, Mapping


class Share:
    """One node's items and their expected time (ms; None when nothing was known)."""

    __slots__ = ("index", "items", "expected_ms")

    def __init__(self, index: int) -> None:
        self.index = index
        self.items: list[str] = []
        self.expected_ms = 0.0


def weights(items: Iterable[str], known: Mapping[str, float]) -> dict[str, float]:
    # `./tests/a.py` from `find .` is the `tests/a.py` a report names.
    figures_by_key = {_plain(k): float(v) for k, v in known.items()}
    unique = sorted(set(items))
    figures = [figures_by_key[_plain(i)] for i in unique if _plain(i) in figures_by_key]
    if not figures:
        return dict.fromkeys(unique, 1.0)
    default = statistics.median(figures)
    return {i: figures_by_key.get(_plain(i), default) for i in unique}


def _plain(item: str) -> str:
    return item[2:] if item.startswith("./") else item


def split(items: Iterable[str], known: Mapping[str, float], total: int) -> list[Share]:
    """All `total` shares; items within a share keep name order (stable logs, stable caches)."""
    if total < 1:
        raise ValueError("the number of nodes must be 1 or more")
    weighted = weights(items, known)
    shares = [Share(i) for i in range(total)]
    heap = [(0.0, i) for i in range(total)]
    for item in sorted(weighted, key=lambda i: (-weighted[i], i)):
        load, index = heapq.heappop(heap)
        shares[index].items.append(item)
        load += weighted[item]
        shares[index].expected_ms = load
        heapq.heappush(heap, (load, index))
    for share in shares:
        share.items.sort()
    return shares


def share_of(items: Iterable[str], known: Mapping[str, float], total: int, index: int) -> Share:
    """Node `index`'s share (0-based) of a split into `total`."""
    if not 0 <= index < total:
        raise ValueError(f"the node index must be from 0 to {total - 1}, not {index}")
    return split(items, known, total)[index]
