"""The auto-quarantine policy (docs/triage.md), off unless a project turns it on with
`settings.quarantine = {"auto": true}`.

After each finished run of the default branch (run_completion.py's task), a test that turned flaky with
it is quarantined by `policy`, with an audit entry giving the figures that made it flaky; a test
the policy quarantined is released once it is healthy again (the flaky window's clean-run rule,
docs/health.md). Quarantines set by a person are never lifted by the policy.
"""

from __future__ import annotations

import msgspec

from ..config import FlakyConfig
from ..db import run_completion as completion_db
from ..db import tests as tests_db
from .flaky import HEALTHY, analyse
from .quarantine import set_quarantine
from .window import default_branch


class QuarantinePolicy(msgspec.Struct, forbid_unknown_fields=True):
    auto: bool = False


def policy_of(settings: dict) -> QuarantinePolicy:
    try:
        return msgspec.convert(settings.get("quarantine") or {}, QuarantinePolicy)
    except msgspec.ValidationError:
        return QuarantinePolicy()  # a bad setting must not stop a run's completion work


def apply(conn, project_id: str, run_id: str, rules: FlakyConfig, turned: list) -> int:
    """Writer operation: quarantine the tests in `turned` (run_completion.newly_flaky's
    judgements) and release policy quarantines that are healthy again. Returns how many tests
    changed."""
    text = completion_db.project_settings(conn, project_id)
    settings = msgspec.json.decode(text) if text else {}
    if not policy_of(settings).auto:
        return 0
    changed = 0
    for j in turned:
        if tests_db.is_quarantined(conn, j.test_id) is not False:  # gone, or already quarantined
            continue
        reason = (f"turned flaky in run {run_id}: flakiness {j.flakiness:.0%} over {j.samples} runs (flip rate "
                  f"{j.flip_rate:.0%}, passed on retry {j.retry_rate:.0%}, conflicting commits {j.conflict_rate:.0%})")
        set_quarantine(conn, project_id, str(j.test_id), True, reason, actor="policy")
        changed += 1
    held = tests_db.quarantined_tests(conn, project_id, by="policy")
    if held:
        main = default_branch(conn, project_id)
        judged = analyse(conn, project_id, main, rules, test_ids=held).judgements
        for test_id in held:
            j = judged.get(test_id)
            if j is not None and j.state == HEALTHY:
                set_quarantine(conn, project_id, str(test_id), False, actor="policy",
                               reason=f"healthy again: {j.clean_streak} clean runs in a row")
                changed += 1
    return changed
