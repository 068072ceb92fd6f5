"""The retention in force, said in one sentence for people: on the dashboard (project page,
settings, a test's page) and in `qahub init`'s first-start message, so that nobody learns from
an empty history that results were swept (docs/operations.md says the same at length)."""

from __future__ import annotations

from ..config import RetentionConfig


def describe(cfg: RetentionConfig) -> str:
    if not cfg.unlinked_days:
        return "Retention is off: every result is kept (retention.unlinked_days = 0)."
    sweep = (
        f"swept every {cfg.sweep_interval_minutes} minutes" if cfg.sweep_interval_minutes
        else "swept only when an admin asks (the automatic sweep is off)"
    )
    return (
        f"Results without a test case code (unlinked) are deleted after {cfg.unlinked_days} days, {sweep}; "
        "results linked to a test case are kept. Run totals, project trends and each test's daily figures "
        "are kept for ever (retention.unlinked_days in qahub.toml)."
    )
