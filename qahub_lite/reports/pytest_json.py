"""pytest-json-report (proven on 1.5.0 with pytest 9.2 and pytest-rerunfailures 16.7).

Outcomes -> status (INDEX.md normalisation):
  passed, xpassed (non-strict) -> PASSED; failed (incl. strict XPASS) -> FAILED;
  skipped, xfailed -> SKIPPED; error (setup/teardown failed) -> BROKEN;
  rerun (pytest-rerunfailures: passed after re-runs) -> PASSED + flaky. The report does not say
  how many re-runs happened or why they failed, so one failed attempt without detail is recorded.
Collection errors are not tests: they appear under ``collectors`` with outcome "failed" and
become one BROKEN result per module. Markers are recorded as ``keywords`` and
``record_property`` values as ``user_properties``; both feed test-case codes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jsonsource import load
from .model import Attempt, ParsedResult
from .normalize import BROKEN, FAILED, PASSED, SKIPPED, attempt, build, ms

_OUTCOMES = {
    "passed": PASSED,
    "xpassed": PASSED,
    "failed": FAILED,
    "skipped": SKIPPED,
    "xfailed": SKIPPED,
    "error": BROKEN,
    "rerun": PASSED,
}


def parse(path: Path) -> list[ParsedResult]:
    doc = load(path)
    results = [_test(t) for t in doc.get("tests") or []]
    for collector in doc.get("collectors") or []:
        if collector.get("outcome") == "failed":
            nodeid = collector.get("nodeid") or "(collection)"
            longrepr = collector.get("longrepr")
            message = (longrepr or "").strip().splitlines()[-1] if longrepr else "collection failed"
            results.append(build(nodeid.rsplit("/", 1)[-1], [attempt(BROKEN, None, message, longrepr)],
                                 suite_path=nodeid.split("/")[:-1], file=nodeid.split("::")[0]))
    return results


def _test(test: dict[str, Any]) -> ParsedResult:
    nodeid: str = test.get("nodeid") or ""
    outcome = test.get("outcome") or ""
    status = _OUTCOMES.get(outcome, FAILED)
    parts = nodeid.split("::")
    # The stage that decided the outcome carries the message: setup for fixture errors,
    # teardown for teardown errors, otherwise the call.
    stages = [test.get(name) or {} for name in ("setup", "call", "teardown")]
    decisive = next((s for s in stages if s.get("outcome") == "failed"), None) or \
        next((s for s in stages if s.get("outcome") == "skipped"), None) or stages[1]
    crash = decisive.get("crash") or {}
    longrepr = decisive.get("longrepr")
    message = crash.get("message")
    if status == SKIPPED and isinstance(longrepr, str) and not message:
        message = longrepr  # "('file.py', 43, 'Skipped: reason')"
    duration = sum(ms((s.get("duration") or 0) * 1000) or 0 for s in stages) or None
    final = attempt(status, duration, message, longrepr if status in (FAILED, BROKEN) else None)
    attempts: list[Attempt] = [Attempt(status=FAILED), final] if outcome == "rerun" else [final]
    call = test.get("call") or {}
    properties = []
    for item in test.get("user_properties") or []:
        if isinstance(item, dict):
            properties.extend((str(k), str(v)) for k, v in item.items())
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            properties.append((str(item[0]), str(item[1])))
    metadata = test.get("metadata") or {}
    if isinstance(metadata, dict):
        properties.extend((str(k), str(v)) for k, v in metadata.items() if isinstance(v, (str, int)))
    return build(
        parts[-1],
        attempts,
        suite_path=parts[:-1],
        file=parts[0] or None,
        line=(test.get("lineno") + 1) if isinstance(test.get("lineno"), int) else None,
        stdout="".join(s.get("stdout") or "" for s in stages) or call.get("stdout"),
        stderr="".join(s.get("stderr") or "" for s in stages),
        properties=properties,
        keywords=[k for k in test.get("keywords") or [] if isinstance(k, str)],
        status=status,
        flaky=outcome == "rerun",
    )
