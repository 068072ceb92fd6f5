"""Projects: the unit results, the test library and settings belong to."""

from __future__ import annotations

import re
import sqlite3

import aiosqlite
import msgspec

from .clock import new_id, now_ms, to_iso
from .errors import Conflict, Invalid, NotFound
from .paging import clamp_limit, decode_cursor, split_page


class CiConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Qualigate's ci-config (seed 004), editable through the native API."""

    provider: str | None = None
    trigger_on: list[str] = []
    branches: list[str] = []
    test_suite_id: str | None = None


class Project(msgspec.Struct):
    id: str
    name: str
    slug: str
    description: str | None
    repo: str | None
    default_branch: str
    ci_config: CiConfig
    settings: dict
    created_at: str | None
    updated_at: str | None


class ProjectPage(msgspec.Struct):
    data: list[Project]
    next_cursor: str | None


_COLUMNS = "id, name, slug, description, repo, default_branch, ci_config, settings, created_at, updated_at"
_ci_decoder = msgspec.json.Decoder(CiConfig)


def _project(row) -> Project:
    return Project(
        id=row[0], name=row[1], slug=row[2], description=row[3], repo=row[4], default_branch=row[5],
        ci_config=_ci_decoder.decode(row[6]) if row[6] else CiConfig(),
        settings=msgspec.json.decode(row[7]) if row[7] else {},
        created_at=to_iso(row[8]), updated_at=to_iso(row[9]),
    )


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:60] or "project"


# A project's `settings` (quality-gate rules and whatever a team keeps beside them) come back in
# every project listing and read: 30 MB of it would make each listing 30 MB. 64 KiB holds
# hundreds of gate rules.
SETTINGS_MAX_BYTES = 64 * 1024


def _settings_json(settings: dict | None) -> str | None:
    if not settings:
        return None
    encoded = msgspec.json.encode(settings)
    if len(encoded) > SETTINGS_MAX_BYTES:
        raise Invalid(
            f"settings are {len(encoded):,} bytes of JSON; at most {SETTINGS_MAX_BYTES:,} are kept, since every "
            "project listing returns them"
        )
    return encoded.decode()


def create_project(
    conn: sqlite3.Connection,
    tenant_id: str,
    *,
    name: str,
    slug: str | None = None,
    description: str | None = None,
    repo: str | None = None,
    default_branch: str = "main",
    ci_config: CiConfig | None = None,
    settings: dict | None = None,
) -> Project:
    name = name.strip()
    if not name:
        raise Invalid("name must not be empty")
    base = slugify(slug or name)
    project_id, now = new_id(), now_ms()
    if repo is not None and conn.execute(
        "SELECT 1 FROM projects WHERE tenant_id = ? AND repo = ?", (tenant_id, repo)
    ).fetchone():
        raise Conflict(f"a project with repo {repo!r} exists already")
    candidate = base
    for n in range(2, 1000):
        if conn.execute("SELECT 1 FROM projects WHERE tenant_id = ? AND slug = ?", (tenant_id, candidate)).fetchone() is None:
            break
        if slug:  # an explicit slug that is taken is the caller's mistake
            raise Conflict(f"a project with slug {candidate!r} exists already")
        candidate = f"{base}-{n}"
    conn.execute(
        f"INSERT INTO projects ({_COLUMNS}, tenant_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            project_id, name, candidate, description, repo, default_branch or "main",
            msgspec.json.encode(ci_config).decode() if ci_config else None,
            _settings_json(settings), now, now, tenant_id,
        ),
    )
    return get_project_sync(conn, tenant_id, project_id)


def get_project_sync(conn: sqlite3.Connection, tenant_id: str, project_id: str) -> Project:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM projects WHERE id = ? AND tenant_id = ?", (project_id, tenant_id)
    ).fetchone()
    if row is None:
        raise NotFound("Project not found")
    return _project(row)


def find_project_by_repo(conn: sqlite3.Connection, tenant_id: str, repo: str) -> Project | None:
    """The project whose `repo` is `repo` (QualityPilot names projects this way), or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM projects WHERE tenant_id = ? AND repo = ?", (tenant_id, repo)
    ).fetchone()
    return _project(row) if row else None


async def get_project(conn: aiosqlite.Connection, tenant_id: str, project_id: str) -> Project:
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS} FROM projects WHERE (id = ? OR slug = ?) AND tenant_id = ?", (project_id, project_id, tenant_id)
    )
    if not rows:
        raise NotFound("Project not found")
    return _project(rows[0])


async def list_projects(
    conn: aiosqlite.Connection, tenant_id: str, *, limit: int | None = None, cursor: str | None = None,
    only: str | None = None,
) -> ProjectPage:
    limit = clamp_limit(limit)
    after = decode_cursor(cursor)
    sql = f"SELECT {_COLUMNS} FROM projects WHERE tenant_id = ?"
    params: list = [tenant_id]
    if only is not None:  # a key limited to one project sees only that one
        sql += " AND id = ?"
        params.append(only)
    if after:
        sql += " AND (created_at, id) > (?, ?)"
        params += [after[0], after[1]]
    sql += " ORDER BY created_at, id LIMIT ?"
    params.append(limit + 1)
    rows = list(await conn.execute_fetchall(sql, params))
    rows, next_cursor = split_page(rows, limit, created_col=8)
    return ProjectPage([_project(r) for r in rows], next_cursor)


_UPDATABLE = {"name", "description", "repo", "default_branch", "ci_config", "settings"}


def update_project(conn: sqlite3.Connection, tenant_id: str, project_id: str, changes: dict) -> Project:
    get_project_sync(conn, tenant_id, project_id)
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise Invalid(f"cannot update {', '.join(sorted(unknown))}")
    sets, params = [], []
    for key, value in changes.items():
        if key == "name" and not str(value).strip():
            raise Invalid("name must not be empty")
        if key == "settings":
            value = _settings_json(value) if value is not None else None
        elif key == "ci_config":
            value = msgspec.json.encode(value).decode() if value is not None else None
        sets.append(f"{key} = ?")
        params.append(value)
    if sets:
        sets.append("updated_at = ?")
        params.append(now_ms())
        try:
            conn.execute(f"UPDATE projects SET {', '.join(sets)} WHERE id = ?", (*params, project_id))
        except sqlite3.IntegrityError:
            raise Conflict("another project has this repo already") from None
    return get_project_sync(conn, tenant_id, project_id)


def delete_project(conn: sqlite3.Connection, tenant_id: str, project_id: str) -> list[str]:
    """Delete a project and everything in it; returns attachment hashes to check after commit."""
    get_project_sync(conn, tenant_id, project_id)
    hashes = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT a.sha256 FROM attachments a JOIN results r ON r.id = a.result_id "
            "JOIN runs u ON u.id = r.run_id WHERE u.project_id = ?",
            (project_id,),
        )
    ]
    conn.execute("DELETE FROM projects WHERE id = ?", (project_id,))
    return hashes
