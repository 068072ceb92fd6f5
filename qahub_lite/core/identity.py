"""The server-side key of "the same test" (DESIGN.md "What the same test means", docs/identity.md).

A test is identified within a project by what the client normalized into `suite` (its
location, the file path relative to the repository root, followed by its describe/class
scope) and `title` (its name), or by the library test case it is linked to; plus a *variant*
for executions meant to be distinct (parameters, a Playwright project, a matrix label).

The key is a string interned once per project in `tests.identity`, so history, flakiness and
the gate group by an integer. A result without a variant keeps the key every release before
0005 wrote, which is why existing histories continue unchanged after the migration.
"""

from __future__ import annotations

# Separators that no title, suite or variant sent through the API contains in practice; the
# key is only ever compared, never parsed back.
_UNIT = "\x1f"
# The longest variant the API takes (api/native_schema.py) and the client sends (payload.py).
VARIANT_MAX = 200
_VARIANT = "\x1e"
# Results of one run that share a library test case report the worst of them (FAILED beats
# PASSED); the same order decides which of a triggered job's duplicate entries is kept (jobs.py).
SEVERITY = {
    "TIMEOUT": 7, "BROKEN": 6, "FAILED": 5, "CANCELED": 4, "UNKNOWN": 3, "RUNNING": 2, "PENDING": 2,
    "PASSED": 1, "SKIPPED": 0,
}


def case_key(test_case_id: str, variant: str = "") -> str:
    base = f"c:{test_case_id}"
    return f"{base}{_VARIANT}{variant}" if variant else base


def unlinked_key(suite_path: str, title: str, variant: str = "") -> str:
    base = f"u:{suite_path}{_UNIT}{title}"
    return f"{base}{_VARIANT}{variant}" if variant else base


def describe(suite_path: str, title: str, variant: str, code: str | None = None) -> str:
    """A key as a person reads it, for messages about duplicates."""
    name = code or " › ".join(p for p in (suite_path, title) if p)
    return f"{name} [{variant}]" if variant else name


def worst(statuses: list[str]) -> str:
    """The status a test case shows for a run in which several of its variants ran."""
    return max(statuses, key=lambda s: SEVERITY.get(s, 3))
