"""A test's daily figures over a date range, raw results and roll-ups merged
(core/test_daily.py): its long-run history, which retention does not erase."""

from __future__ import annotations

import msgspec
from litestar import Request
from litestar.params import FromPath

from ..core import quarantine, test_daily, trends
from ..core.clock import now_ms
from .context import services
from .health_schema import Day
from .native_library import visible_project
from .routing import endpoint, read_query


class TestDaysQuery(msgspec.Struct, forbid_unknown_fields=True):
    from_day: Day | None = msgspec.field(default=None, name="from")  # default: 89 days before `to`
    to_day: Day | None = msgspec.field(default=None, name="to")  # default: today (UTC)


@endpoint("GET", "/api/v1/projects/{project_id:str}/tests/{test_id:str}/daily",
          summary="One test's daily figures (kept past raw retention)", tags=["Test health"], scope="read",
          query=TestDaysQuery, responses={200: test_daily.TestDays},
          description="`test_id`: the test's integer id, or its test case's code (TC-042) or id. `from` and `to` are "
          "UTC dates (YYYY-MM-DD, inclusive; default: the last 90 days, at most 366). Per day: results, passed, "
          "failed (with broken and timed out), skipped, flaky and the median duration; newest first, days without "
          "results left out. Days older than the retention come from the roll-up the sweep made (`rolled_up`).")
async def test_days(request: Request, project_id: FromPath[str], test_id: FromPath[str]) -> test_daily.TestDays:
    _, project = await visible_project(request, "read", project_id)
    q = read_query(request, TestDaysQuery)
    to_day = trends.parse_day(q.to_day, "to") if q.to_day else trends.day_of(now_ms())
    from_day = trends.parse_day(q.from_day, "from") if q.from_day else to_day - 89 * trends.DAY_MS
    return await services(request).db.read(_days_of, project.id, test_id, from_day, to_day)


def _days_of(conn, project_id: str, test_ref: str, from_day: int, to_day: int) -> test_daily.TestDays:
    return test_daily.test_days(conn, project_id, quarantine.find_test(conn, project_id, test_ref).id, from_day, to_day)


HANDLERS = [test_days]
