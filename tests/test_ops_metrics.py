"""/metrics: a valid Prometheus text exposition (checked line by line against the format's
grammar, not by eye) whose figures move with what the server does."""

from __future__ import annotations

import math
import re

import pytest
from conftest import make_api, write_config

from qahub_lite.config import load_config

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"({_NAME})(?:\{{({_LABEL}(?:,{_LABEL})*)?\}})? (\S+)")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def parse_exposition(text: str) -> dict[str, dict]:
    """Families {name: {type, help, samples: {(sample name, labels): value}}}; raises
    AssertionError on anything the text format (0.0.4) does not allow."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families: dict[str, dict] = {}
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and help_text, where
            assert name not in families, f"family declared twice: {where}"
            families[name] = {"help": help_text, "type": None, "samples": {}}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None, f"TYPE must follow its HELP: {where}"
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), where
            families[name]["type"] = kind
        else:
            match = _SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {where}"
            sample, labels, value = match.groups()
            assert current is not None, f"sample before any family: {where}"
            kind = families[current]["type"]
            allowed = [current + s for s in _SUFFIXES.get(kind, ("",))]
            assert sample in allowed, f"{sample} does not belong to family {current} ({kind}): {where}"
            parsed = float(value)  # also accepts +Inf and NaN, as the format does
            assert not math.isnan(parsed), where
            key = (sample, tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels or ""))))
            assert key not in families[current]["samples"], f"duplicate series: {where}"
            families[current]["samples"][key] = parsed
    for name, family in families.items():
        assert family["type"], f"{name} has no TYPE"
        if family["type"] == "counter":
            assert all(v >= 0 for v in family["samples"].values()), name
        if family["type"] == "histogram":
            buckets = [(dict(labels)["le"], v) for (s, labels), v in family["samples"].items() if s.endswith("_bucket")]
            bounds = [float(le) for le, _ in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf, f"{name}: buckets out of order"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{name}: buckets must be cumulative"
            assert family["samples"][(name + "_count", ())] == counts[-1], f"{name}: _count != +Inf bucket"
    return families


def value(families, name: str, **labels) -> float:
    family = next(f for n, f in families.items() if name.startswith(n))
    return family["samples"][(name, tuple(sorted(labels.items())))]


@pytest.fixture
def limited_api(tmp_path):
    cfg = load_config(write_config(tmp_path, "[rate_limits]\ndefault = 5\n"), environ={})
    client, boot = make_api(cfg)
    from conftest import Api

    with client:
        yield Api(client, cfg, boot.admin_key, boot.tenant_id)


def test_metrics_are_valid_and_count_what_happens(limited_api):
    api = limited_api
    project = api.project("Metrics")
    ok = {"project_id": project["id"], "results": [{"title": f"t{i}", "status": "PASSED"} for i in range(4)]}
    assert api.post("/api/v1/ingest", ok).status_code == 201
    partial = {"project_id": project["id"], "results": [{"title": "x", "status": "PASSED"},
                                                        {"title": "y", "status": "pass"}]}
    assert api.post("/api/v1/ingest", partial).status_code == 207
    assert api.client.get("/no/such/page/4711").status_code == 404
    # Over the default group's limit of 5 per window (project + 2 ingests + 2 more allowed).
    statuses = [api.get("/api/v1/projects").status_code for _ in range(4)]
    assert statuses[-1] == 429, statuses

    text = api.client.get("/metrics")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = parse_exposition(text.text)

    assert value(families, "qahub_ingested_results_total") == 5  # 4 + the one accepted of the 207
    assert value(families, "qahub_http_requests_total", method="POST", route="/api/v1/ingest", status="201") == 1
    assert value(families, "qahub_http_requests_total", method="POST", route="/api/v1/ingest", status="207") == 1
    assert value(families, "qahub_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert not any("4711" in str(k) for k in families["qahub_http_requests_total"]["samples"])
    assert value(families, "qahub_rate_limited_total", group="default") >= 1
    assert value(families, "qahub_rate_limited_total", group="qualigate") == 0  # every group is present
    assert value(families, "qahub_write_queue_depth") == 0
    commits = value(families, "qahub_write_commit_seconds_count")
    assert commits >= 3 and value(families, "qahub_write_commit_seconds_bucket", le="+Inf") == commits
    assert value(families, "qahub_write_commit_seconds_sum") > 0
    assert value(families, "qahub_database_bytes") > 100_000
    assert value(families, "qahub_http_requests_in_flight") == 1  # this very request


def test_the_exposition_checker_rejects_bad_text():
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
    parse_exposition(good)
    for bad in (
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1",  # no final line feed
        "a_total 1\n",  # no family
        "# HELP a_total A.\n# TYPE a_total counter\nb_total 1\n",  # sample of another family
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1} 1\n",  # broken label
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1\na_total 2\n",  # duplicate series
        "# HELP h A.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ):
        with pytest.raises(AssertionError):
            parse_exposition(bad)
