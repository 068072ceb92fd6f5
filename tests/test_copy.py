"""`qahub copy` (db/copy.py, cli/copy.py): a hub written through the real app (runs, results,
failure signatures, a suite tree, attachments, a webhook, users, keys) copied from SQLite into an
empty PostgreSQL database and back, row for row; a server on the copy answering as the original
did; identities continuing; refusals; all-or-nothing; one snapshot of a source that keeps
changing; and the command line end to end."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest
from conftest import make_api, qahub_command, write_config
from seeds.examples import seed000_ingest_body

from qahub_lite.bootstrap import ensure_initialized
from qahub_lite.cli.copy import TableProgress
from qahub_lite.config import load_config
from qahub_lite.core import tenancy
from qahub_lite.db.copy import NOT_COPIED, CopyError, CopyRefused, Table, copy_hub, plan
from qahub_lite.db.database import direct_connection
from qahub_lite.db.engine import PostgresqlEngine, SqliteEngine


def _sqlite_tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, read straight from the file."""
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name") if r[0] not in NOT_COPIED]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        conn.close()


def _pg_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE'") if r[0] not in NOT_COPIED]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


@pytest.fixture
def hub(tmp_path):
    """A SQLite hub filled through the app, stopped (so that its file is the whole truth)."""
    config = load_config(write_config(tmp_path / "source"), environ={})
    boot = ensure_initialized(config, first_user=True)  # with the dashboard user `admin`
    with direct_connection(config) as conn:  # a second key, of another scope
        tenancy.create_key(conn, boot.tenant_id, scope="write", name="ci")
    client, _ = make_api(config)
    h = {"Authorization": f"Bearer {boot.admin_key}"}
    with client:
        project = client.post("/api/v1/projects", json={"name": "Shop"}, headers=h).json()
        pid = project["id"]
        # A suite tree whose children may sort before their parents: keys into the same table.
        parent = None
        for depth in range(6):
            r = client.post(f"/api/v1/projects/{pid}/suites", headers=h,
                            json={"name": f"level {depth}", **({"parent_id": parent} if parent else {})})
            assert r.status_code == 201, r.text
            parent = r.json()["id"]
        for code in ("TC-001", "TC-002"):
            assert client.post(f"/api/v1/projects/{pid}/test-cases", headers=h,
                               json={"title": f"case {code}", "code": code}).status_code == 201
        hook = client.post(f"/api/v1/projects/{pid}/webhooks", headers=h,
                           json={"url": "http://127.0.0.1:9/hook", "events": ["run.completed"]})
        assert hook.status_code == 201, hook.text
        seed = seed000_ingest_body()
        seed["project_id"] = pid
        assert client.post("/api/v1/ingest", headers=h, json=seed).status_code in (200, 201, 202)
        runs = []
        for n in range(4):
            body = {"project_id": pid, "run_name": f"nightly {n}", "results": [
                {"title": f"test {i}", "status": "FAILED" if (i + n) % 4 == 0 else "PASSED",
                 "duration_ms": 10 * i, "error_message": f"AssertionError: expected {i % 3} got {n}"}
                for i in range(40)]}
            r = client.post("/api/v1/ingest", headers=h, json=body)
            assert r.status_code in (200, 201, 202), r.text
            runs.append(r.json()["run_id"])
        results = client.get(f"/api/v1/runs/{runs[-1]}/results", headers=h).json()["data"]
        uploads = []
        for i, content in enumerate((b"first log\n", b"second log\n", b"first log\n")):
            up = client.post(f"/api/v1/results/{results[i]['id']}/attachments", headers=h,
                             files={"file": (f"log{i}.txt", content, "text/plain")})
            assert up.status_code == 201, up.text
            uploads.append((up.json()["data"][0]["id"], content))
        answers = _answers(client, h, pid, runs[-1])
    return {"config": config, "key": boot.admin_key, "project": pid, "run": runs[-1], "answers": answers,
            "uploads": uploads}


def _answers(client, h, project_id, run_id) -> dict:
    """What a server says about the hub: the answers a copy must give alike."""
    out = {}
    for path in (f"/api/v1/runs?project_id={project_id}", f"/api/v1/runs/{run_id}",
                 f"/api/v1/runs/{run_id}/results", f"/api/v1/projects/{project_id}/suites"):
        r = client.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
        out[path] = r.json()
    return out


def _pg_config(tmp_path: Path, url: str, data_dir: Path):
    """A config on PostgreSQL whose data folder is the source's (where the attachments stay)."""
    folder = tmp_path / "pg-node"
    folder.mkdir(exist_ok=True)
    path = folder / "qahub.toml"
    path.write_text(f'[storage]\ndata_dir = "{data_dir}"\nurl = "{url}"\n[logging]\naccess_log = false\n')
    return load_config(path, environ={})


def test_sqlite_to_postgresql_and_back_row_for_row(hub, pg_cluster, tmp_path):
    config = hub["config"]
    url = pg_cluster.create_database("copy_there")
    seen: dict[str, list[tuple[int, int]]] = {}
    report = copy_hub(SqliteEngine(config.db_path), PostgresqlEngine(url), batch_rows=7,
                      progress=lambda t, done, total: seen.setdefault(t, []).append((done, total)))
    original = _sqlite_tables(config.db_path)
    counts = {c.table: (c.source, c.target) for c in report.tables}
    assert counts == {name: (len(rows), len(rows)) for name, rows in original.items()}
    assert _pg_counts(url) == {name: len(rows) for name, rows in original.items()}
    for table in ("runs", "results", "tests", "suites", "attachments", "webhooks", "users", "api_keys",
                  "failure_signatures"):
        assert counts[table][0] > 0, f"the fixture wrote no {table}: the test would prove nothing"
    # In batches: 7 rows at a time, progress after each, ending at the table's total.
    assert seen["results"][0] == (0, counts["results"][0]) and seen["results"][-1][0] == counts["results"][0]
    assert [d for d, _ in seen["results"][1:3]] == [7, 14]
    assert report.rows == sum(len(rows) for rows in original.values())
    assert "not copied" in report.attachments

    # And back: PostgreSQL to a new SQLite file gives the very same rows (types included).
    back = tmp_path / "back" / "qahub.db"
    copy_hub(PostgresqlEngine(url), SqliteEngine(back), batch_rows=5000)
    assert _sqlite_tables(back) == original


def test_a_server_on_the_copy_answers_alike_and_its_ids_continue(hub, pg_cluster, tmp_path):
    config = hub["config"]
    url = pg_cluster.create_database("copy_served")
    report = copy_hub(SqliteEngine(config.db_path), PostgresqlEngine(url))
    max_result = max(r[0] for r in _sqlite_tables(config.db_path)["results"])
    assert report.identities["results.id"] == max_result + 1
    pg_config = _pg_config(tmp_path, url, config.data_dir)
    client, boot = make_api(pg_config)
    assert boot.admin_key is None, "the copy's tenant and key were not seen: a new tenant was made"
    h = {"Authorization": f"Bearer {hub['key']}"}  # the source's key: its hash was copied
    with client:
        assert _answers(client, h, hub["project"], hub["run"]) == hub["answers"]
        for attachment_id, content in hub["uploads"]:
            r = client.get(f"/api/v1/attachments/{attachment_id}", headers=h)
            assert r.status_code == 200 and r.content == content
        # A new ingest on the copy: the identity sequences continue after the copied ids.
        r = client.post("/api/v1/ingest", headers=h, json={"project_id": hub["project"], "results": [
            {"title": "brand new test", "status": "FAILED", "error_message": "a new kind of failure"},
            {"title": "test 1", "status": "PASSED"}]})
        assert r.status_code in (200, 201, 202), r.text
        new = client.get(f"/api/v1/runs/{r.json()['run_id']}/results", headers=h).json()["data"]
        assert len(new) == 2 and all(int(x["id"]) > max_result for x in new)


def test_a_non_empty_target_and_the_source_itself_are_refused(hub, pg_cluster, tmp_path):
    config = hub["config"]
    source = SqliteEngine(config.db_path)
    url = pg_cluster.create_database("copy_full")
    copy_hub(source, PostgresqlEngine(url))
    before = _pg_counts(url)
    with pytest.raises(CopyRefused, match="not empty"):
        copy_hub(source, PostgresqlEngine(url))
    assert _pg_counts(url) == before
    with pytest.raises(CopyRefused, match="source hub itself"):
        copy_hub(source, SqliteEngine(config.db_path))
    with pytest.raises(CopyRefused, match="source hub itself"):
        copy_hub(PostgresqlEngine(url), PostgresqlEngine(url.replace("127.0.0.1", "localhost")))
    # A SQLite file that holds rows is refused too, and left as it was.
    full = tmp_path / "full.db"
    conn = sqlite3.connect(full)
    conn.execute("CREATE TABLE notes (a TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()
    with pytest.raises(CopyRefused, match="notes"):
        copy_hub(source, SqliteEngine(full))
    assert sqlite3.connect(full).execute("SELECT a FROM notes").fetchall() == [("keep me",)]
    # A source behind this version's schema is refused: its tables would not match the target's.
    behind = tmp_path / "behind.db"
    copy_hub(source, SqliteEngine(behind))
    conn = sqlite3.connect(behind)
    conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
    conn.commit()
    conn.close()
    with pytest.raises(CopyRefused, match="pending migrations"):
        copy_hub(SqliteEngine(behind), SqliteEngine(tmp_path / "never.db"))
    assert not (tmp_path / "never.db").exists()


def test_a_copy_that_fails_half_way_commits_nothing(hub, pg_cluster):
    config = hub["config"]
    url = pg_cluster.create_database("copy_broken")

    def fail_in_results(table, done, total):
        if table == "results" and done > 0:
            raise RuntimeError("the network went away")

    with pytest.raises(RuntimeError):
        copy_hub(SqliteEngine(config.db_path), PostgresqlEngine(url), batch_rows=10, progress=fail_in_results)
    assert set(_pg_counts(url).values()) == {0}, "a failed copy left rows behind"
    # Migrated and empty: running the command again simply works.
    report = copy_hub(SqliteEngine(config.db_path), PostgresqlEngine(url))
    assert all(c.source == c.target for c in report.tables) and report.rows > 0


def test_the_source_is_read_in_one_snapshot_while_it_changes(hub, pg_cluster, tmp_path):
    """A live server keeps committing while the copy reads: the copy holds the state at its start,
    on both engines as a source (SQLite's read transaction; PostgreSQL's REPEATABLE READ)."""
    config = hub["config"]
    before = {name: len(rows) for name, rows in _sqlite_tables(config.db_path).items()}

    def write_to_sqlite_source(table, done, total):
        if table == "runs" and done == 0:
            conn = sqlite3.connect(config.db_path)
            conn.execute("UPDATE projects SET name = name || ' (renamed)'")
            conn.execute("DELETE FROM results WHERE id IN (SELECT id FROM results LIMIT 5)")
            conn.commit()
            conn.close()

    url = pg_cluster.create_database("copy_snapshot")
    report = copy_hub(SqliteEngine(config.db_path), PostgresqlEngine(url), batch_rows=20,
                      progress=write_to_sqlite_source)
    assert {c.table: c.target for c in report.tables} == before
    with psycopg.connect(url) as conn:
        assert "renamed" not in conn.execute("SELECT name FROM projects").fetchone()[0]

    def write_to_pg_source(table, done, total):
        if table == "runs" and done == 0:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM results WHERE id IN (SELECT id FROM results LIMIT 5)")

    back = tmp_path / "snapshot.db"
    report = copy_hub(PostgresqlEngine(url), SqliteEngine(back), batch_rows=20, progress=write_to_pg_source)
    assert {c.table: c.target for c in report.tables} == before
    assert _pg_counts(url)["results"] == before["results"] - 5  # the deletion did commit meanwhile


def test_the_order_comes_from_the_foreign_keys():
    def table(name, parents=(), nullable=()):
        return Table(name=name, columns=["id", *(c for c, _ in parents)], nullable=set(nullable),
                     primary_key=["id"], parents=list(parents))

    schema = {t.name: t for t in (
        table("results", [("run_id", "runs"), ("signature_id", "signatures")], nullable=["signature_id"]),
        table("runs", [("project_id", "projects")]),
        table("signatures", [("merged_into", "signatures"), ("project_id", "projects")], nullable=["merged_into"]),
        table("projects"),
    )}
    order, deferred = plan(schema)
    assert order.index("projects") < order.index("runs") < order.index("results")
    assert order.index("signatures") < order.index("results")
    assert deferred == {"signatures": ["merged_into"]}
    # A cycle between tables is broken at its nullable key; through NOT NULL keys only, refused.
    schema["projects"] = table("projects", [("owner_run", "runs")], nullable=["owner_run"])
    order, deferred = plan(schema)
    assert deferred["projects"] == ["owner_run"] and order.index("projects") < order.index("runs")
    schema["projects"] = table("projects", [("owner_run", "runs")])
    with pytest.raises(CopyError, match="cycle"):
        plan(schema)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*qahub_command(), *args], check=False, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "QAHUB_STORAGE_URL"})


def test_the_command_line_end_to_end(hub, pg_cluster, tmp_path):
    cfg = str(hub["config"].base_dir) + "/qahub.toml"
    url = pg_cluster.create_database("copy_cli")
    done = _cli("copy", "--config", cfg, "--to", url, "--json", "--batch-rows", "50")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    original = _sqlite_tables(hub["config"].db_path)
    assert {t["table"]: t["target"] for t in report["tables"]} == {n: len(r) for n, r in original.items()}
    assert report["target_engine"] == "postgresql" and "not copied" in report["attachments"]
    # Not a terminal: plain progress lines on stderr, one per table at least.
    assert f"copy: results {len(original['results'])}/{len(original['results'])} rows" in done.stderr
    assert "\r" not in done.stderr

    again = _cli("copy", "--config", cfg, "--to", url)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr
    itself = _cli("copy", "--config", cfg, "--to", str(hub["config"].db_path))
    assert itself.returncode == 2 and "source hub itself" in itself.stderr
    bad = _cli("copy", "--config", cfg, "--to", "elsewhere/qahub.sqlite")
    assert bad.returncode == 2 and ".db" in bad.stderr

    # Back to SQLite from a PostgreSQL config, human-readable this time.
    pg_cfg = _pg_config(tmp_path, url, hub["config"].data_dir)
    back = tmp_path / "back" / "qahub.db"
    text = _cli("copy", "--config", str(Path(pg_cfg.base_dir) / "qahub.toml"), "--to", str(back))
    assert text.returncode == 0, text.stderr
    assert "every table's count matches" in text.stdout and "attachments: not copied" in text.stdout
    assert "(postgresql) to" in text.stdout and "(sqlite)" in text.stdout
    assert _sqlite_tables(back) == original
    helped = _cli("copy", "--help")
    assert helped.returncode == 0 and "--to TARGET" in helped.stdout and "--batch-rows" in helped.stdout


def test_the_progress_is_a_bar_on_a_terminal_and_plain_lines_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = TableProgress(screen, width=10)
    for done in (0, 5, 10):
        bar("results", done, 10)
    bar("empty", 0, 0)
    drawn = screen.getvalue()
    assert drawn.startswith("\r\033[Kcopy results") and "[##########] 10/10 rows\n" in drawn
    assert "empty" in drawn and drawn.endswith("0/0 rows\n")

    log = io.StringIO()
    plain = TableProgress(log)
    for done in (0, 5, 10):
        plain("results", done, 10)
    assert log.getvalue() == "copy: results 10/10 rows\n"  # no redraws, no escape codes
