"""A run's summary: what it says (new failures first, groups, flaky, slowest, gate, link), that
it stays within 60 lines whatever the run's size, and that test names cannot inject markup."""

from __future__ import annotations

import pytest

from qahub_lite.core.summary import MAX_LINES, Failure, group_failures

pytestmark = pytest.mark.engines


def _run(api, project, results, branch="main"):
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "ci": {"branch": branch}, "results": results})
    assert r.status_code == 201, r.text
    return r.json()


def _summary(api, run, fmt="markdown"):
    r = api.get(f"/api/v1/runs/{run['run_id']}/summary", params={"format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def test_failures_without_a_signature_group_by_first_error_line_largest_first():
    failures = [Failure(1, "s", "a", "FAILED", "AssertionError: 1 != 2\n  at x"),
                Failure(2, "s", "b", "FAILED", "TimeoutError: 30s"), Failure(3, "s", "c", "BROKEN", None),
                Failure(4, "s", "d", "FAILED", "  TimeoutError: 30s  \nother")]
    groups = group_failures(failures)
    assert [(g.key, [f.title for f in g.failures]) for g in groups] == [
        ("TimeoutError: 30s", ["b", "d"]), ("(broken, no message)", ["c"]), ("AssertionError: 1 != 2", ["a"])]


def test_failures_group_by_signature_so_numbers_do_not_split_a_group(api):
    # "waited 5003ms" and "waited 4999ms" are one thing that broke (docs/triage.md); a first-line
    # grouping would show two groups of one. A known issue's ticket shows on its group.
    project = api.project("Signatures")
    results = [
        {"title": "a", "status": "FAILED", "error_message": "TimeoutError: waited 5003ms for #submit"},
        {"title": "b", "status": "FAILED", "error_message": "TimeoutError: waited 4999ms for #submit"},
        {"title": "c", "status": "FAILED", "error_message": "KeyError: 'price'"},
    ]
    run = _run(api, project, results)
    groups = api.get(f"/api/v1/runs/{run['run_id']}/failures").json()
    timeout = next(g for g in groups["data"] if g["count"] == 2)
    r = api.put(f"/api/v1/projects/{project['id']}/failures/{timeout['signature']}",
                {"bug_ticket_key": "LIN-42", "category": "environment"})
    assert r.status_code == 200, r.text
    lines = _summary(api, run).splitlines()
    heading = lines.index("### Failures (3, by what broke)")
    assert lines[heading + 1].startswith("- 2× `TimeoutError: waited") and lines[heading + 1].endswith(
        "— known: `LIN-42`")
    assert lines[heading + 2] == "- 1× `KeyError: 'price'` — e.g. `c`"


def test_new_failures_come_first_then_the_other_failures_grouped(api):
    project = api.project("Summary")
    base = [{"title": f"t{i}", "suite": "s", "status": "PASSED", "duration_ms": i} for i in range(6)]
    _run(api, project, base)
    now = [dict(r) for r in base]
    now[0].update(status="FAILED", error_message="AssertionError: price\nmore")  # new failure
    now.append({"title": "fresh", "suite": "s", "status": "FAILED", "error_message": "KeyError: 'x'"})  # not in base
    now.append({"title": "also fresh", "suite": "s", "status": "FAILED", "error_message": "KeyError: 'x'"})
    now[1].update(flaky=True, previous_attempts=[{"status": "FAILED"}])
    run = _run(api, project, now)
    text = _summary(api, run)
    lines = text.splitlines()
    assert lines[0] == f"## ❌ qahub: run {run['short_id']} FAILED"
    # t0 passed in the baseline; "fresh" and "also fresh" are new tests that fail: all new
    assert "**Quality gate: failed**" in text and "3 new failure(s)" in text
    new_at = lines.index("### New failures (3)")
    assert lines[new_at + 1] == "- `s › t0` — `AssertionError: price`"
    assert lines[new_at + 2] == "- `s › fresh` — `KeyError: 'x'`"
    assert not any(line.startswith("### Other failures") for line in lines)
    assert "### Flaky (1: passed after a failed attempt)" in lines and "- `s › t1` (2 attempts)" in lines
    assert lines[lines.index("### Slowest tests") + 1] == "- 5 ms `s › t5`"
    assert lines[-1].startswith(f"[Open run {run['short_id']} in qahub](") and run["run_id"] in lines[-1]
    plain = _summary(api, run, "text")
    assert "`" not in plain and "New failures (3):" in plain and plain.startswith(f"qahub: run {run['short_id']}")


def test_at_most_60_lines_whatever_the_runs_size(api):
    project = api.project("Huge")
    # The baseline: every t{i} passed; the "fresh" tests broke already (not new, so they are
    # the other failures, a thousand kinds of them).
    _run(api, project, [{"title": f"t{i}", "status": "PASSED"} for i in range(3000)]
         + [{"title": f"fresh {i}", "status": "BROKEN"} for i in range(2, 3000, 3)])
    results = []
    for i in range(3000):
        if i % 3 == 0:
            results.append({"title": f"t{i}", "status": "FAILED", "error_message": f"Error kind {i % 97}",
                            "duration_ms": i})
        elif i % 3 == 1:
            results.append({"title": f"t{i}", "status": "PASSED", "flaky": True, "duration_ms": i,
                            "previous_attempts": [{"status": "FAILED"}]})
        else:
            # a thousand kinds that differ in words (numbers alone would make one signature)
            word = "".join(chr(97 + int(d)) for d in str(i))
            results.append({"title": f"fresh {i}", "status": "BROKEN", "error_message": f"Broken {word}"})
    run = _run(api, project, results)
    for fmt in ("markdown", "text"):
        text = _summary(api, run, fmt)
        assert len(text.splitlines()) <= MAX_LINES, fmt
        assert "… and 990 more new failures" in text  # 1,000 new failures, 10 shown
        assert "… and 995 more flaky tests" in text
        assert "more kinds of failure" in text


def test_names_cannot_inject_markup(api):
    project = api.project("Markup")
    run = _run(api, project, [{"title": "<img src=x onerror=alert(1)> `tick`", "suite": "**bold**",
                               "status": "FAILED", "error_message": "<script>"}])
    text = _summary(api, run)
    for line in text.splitlines():
        outside_code = line.split("`")[::2]  # even parts lie outside code spans
        assert not any("<" in part or "**bold" in part for part in outside_code), line
    assert "`**bold** › <img src=x onerror=alert(1)> ˋtickˋ`" in text


def test_an_unfinished_run_is_summarised_without_a_gate(api):
    project = api.project("Running")
    r = api.post("/api/v1/ingest", {"project_id": project["id"], "status": "RUNNING",
                                    "results": [{"title": "a", "status": "PASSED"}]})
    text = api.get(f"/api/v1/runs/{r.json()['run_id']}/summary").text
    assert text.startswith("## ⏳ qahub: run ") and "RUNNING" in text.splitlines()[0]
    assert "Quality gate: not judged (" in text


def test_names_cannot_add_links_or_mentions(api):
    """GitHub links bare URLs, www. and e-mail addresses and notifies @user/@org/team in a PR
    comment without any markup: a run's name must do neither."""
    import re

    project = api.project("Autolinks")
    r = api.post("/api/v1/ingest", {
        "project_id": project["id"], "results": [{"title": "t", "status": "PASSED"}],
        "run_name": "see https://evil.example/phish or WWW.evil.example, ask @octo-org/admins or me@evil.example"})
    text = _summary(api, r.json())
    head = text.splitlines()[1]
    assert "evil.example/phish" in head and "octo-org/admins" in head  # still said, just not linked
    outside_code = "".join(head.split("`")[::2])
    assert not re.search(r"://|(?i:www\.)|@\w", outside_code), head


def test_a_run_of_huge_messages_is_summarised_without_reading_them_whole(api, monkeypatch):
    """12 new failures with 1 MB messages: the summary reads only the start of each."""
    from qahub_lite.db import results as results_db
    from qahub_lite.db import tests as tests_db

    project = api.project("Huge")
    names = [{"title": f"t{i}", "status": "PASSED"} for i in range(12)]
    _run(api, project, names)
    run = _run(api, project, [{**n, "status": "FAILED", "error_message": f"E{i} " + "x" * 999_000}
                              for i, n in enumerate(names)])
    longest = [0]

    def measured_sync(fetch):
        def wrapper(*args, **kwargs):
            rows = fetch(*args, **kwargs)
            longest[0] = max([longest[0], *(len(v) for row in rows for v in row if isinstance(v, str))])
            return rows
        return wrapper

    monkeypatch.setattr(results_db, "fetch_tuples", measured_sync(results_db.fetch_tuples))
    monkeypatch.setattr(tests_db, "_tuples", measured_sync(tests_db._tuples))
    text = _summary(api, run)
    assert "New failures (12)" in text and "`E0 xxx" in text
    assert longest[0] <= 2000, longest[0]


def test_names_cannot_send_escapes_or_workflow_commands_to_a_ci_log(api):
    """The text summary goes to CI logs: no terminal escape reaches them, and no line starts
    with "::" (a GitHub Actions workflow command) whatever the run or a test is named."""
    project = api.project("Log")
    r = api.post("/api/v1/ingest", {
        "project_id": project["id"], "run_name": "::error title=pwned::All good\x1b[2K",
        "ci": {"branch": "main\x1b[8m", "commit": "\x1b[2Kabc"},
        "results": [{"title": "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "status": "FAILED",
                     "error_message": "::add-mask::secret\x9b31m"}]})
    for fmt in ("text", "markdown"):
        text = _summary(api, r.json(), fmt)
        assert not any(ord(ch) < 32 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F for ch in text), fmt
        assert not any(line.strip().startswith("::") for line in text.splitlines()), fmt
        assert "error title=pwned" in text and "evil.example" in text  # still said
