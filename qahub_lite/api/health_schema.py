"""Query and body Structs of the test-health and webhook routes (validated at the edge)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ..core.gate import Letter

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]
Branch = Annotated[str, msgspec.Meta(max_length=200)]
Day = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000)]
Event = Literal["run.completed", "run.regressed", "test.flaky", "failure.new", "test.quarantined", "test.unquarantined"]
Events = Annotated[list[Event], msgspec.Meta(min_length=1, max_length=6)]
Format = Literal["json", "slack", "mattermost"]
Secret = Annotated[str, msgspec.Meta(min_length=16, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=1000)]
UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class FlakyQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Branch | None = None  # default: the project's default branch
    limit: Limit = 50
    include_quarantined: bool = True


class TestsQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Branch | None = None
    state: Literal["flaky", "broken", "healthy"] | None = None
    quarantined: bool | None = None
    tag: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    q: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None  # words in the name, suite or file
    limit: Limit = 50
    cursor: str | None = None


class HistoryQuery(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 30
    branch: Branch | None = None  # default: every branch


class QuarantineIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Description | None = None
    ticket: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    expires_at: Annotated[str, msgspec.Meta(max_length=40)] | None = None  # ISO date or date-time (docs/triage.md)


class GradeQuery(msgspec.Struct, forbid_unknown_fields=True):
    branch: Branch | None = None


class TrendsQuery(msgspec.Struct, forbid_unknown_fields=True):
    from_day: Day | None = msgspec.field(default=None, name="from")  # default: 29 days before `to`
    to_day: Day | None = msgspec.field(default=None, name="to")  # default: today (UTC)
    branch: Branch | None = None


class GateQuery(msgspec.Struct, forbid_unknown_fields=True):
    """Judge `run_id`, or the latest finished run of `branch` (default: the default branch).
    Rules given here win over the project's settings.gate."""

    run_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    branch: Branch | None = None
    min_grade: Letter | None = None
    max_failures: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    no_new_failures: bool | None = None
    ignore_quarantined: bool | None = None
    ignore_known_environment: bool | None = None


class WebhookIn(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    events: Events = msgspec.field(default_factory=lambda: ["run.completed", "run.regressed", "test.flaky"])
    format: Format = "json"
    description: Description | None = None
    active: bool = True
    secret: Secret | None = None  # default: generated, and shown once in the answer


class WebhookPatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    url: Url | Unset = UNSET
    events: Events | Unset = UNSET
    format: Format | Unset = UNSET
    description: Description | None | Unset = UNSET
    active: bool | Unset = UNSET
    secret: Secret | Unset = UNSET


class DeliveriesQuery(msgspec.Struct, forbid_unknown_fields=True):
    state: Literal["pending", "delivered", "failed"] | None = None
    limit: Limit | None = None
    cursor: str | None = None


class Redelivered(msgspec.Struct):
    id: str  # the new delivery
    redelivery_of: str
    state: str = "pending"
