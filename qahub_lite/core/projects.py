"""Projects: the unit results, the test library and settings belong to."""

from __future__ import annotations

import re

import msgspec

from ..db import library as library_db
from . import key_checks
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


_ci_decoder = msgspec.json.Decoder(CiConfig)


def _project(row) -> Project:
    return Project(
        id=row["id"], name=row["name"], slug=row["slug"], description=row["description"], repo=row["repo"],
        default_branch=row["default_branch"],
        ci_config=_ci_decoder.decode(row["ci_config"]) if row["ci_config"] else CiConfig(),
        settings=msgspec.json.decode(row["settings"]) if row["settings"] else {},
        created_at=to_iso(row["created_at"]), updated_at=to_iso(row["updated_at"]),
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
    conn,
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
    if repo is not None and library_db.repo_taken(conn, tenant_id, repo):
        raise Conflict(f"a project with repo {repo!r} exists already")
    candidate = base
    for n in range(2, 1000):
        if not library_db.slug_taken(conn, tenant_id, candidate):
            break
        if slug:  # an explicit slug that is taken is the caller's mistake
            raise Conflict(f"a project with slug {candidate!r} exists already")
        candidate = f"{base}-{n}"
    library_db.insert_project(conn, tenant_id, {
        "id": project_id, "name": name, "slug": candidate, "description": description, "repo": repo,
        "default_branch": default_branch or "main",
        "ci_config": msgspec.json.encode(ci_config).decode() if ci_config else None,
        "settings": _settings_json(settings), "created_at": now, "updated_at": now,
    })
    return get_project(conn, tenant_id, project_id)


def get_project(conn, tenant_id: str, ref: str) -> Project:
    """A tenant's project by id or slug (as everywhere a person types a project)."""
    row = library_db.project_row(conn, tenant_id, ref)
    if row is None:
        raise NotFound("Project not found")
    return _project(row)


def find_project_by_repo(conn, tenant_id: str, repo: str) -> Project | None:
    """The project whose `repo` is `repo` (QualityPilot names projects this way), or None."""
    row = library_db.project_row_by_repo(conn, tenant_id, repo)
    return _project(row) if row else None


def list_projects(
    conn, tenant_id: str, *, limit: int | None = None, cursor: str | None = None, only: str | None = None,
) -> ProjectPage:
    """`only`: a key limited to one project sees only that one."""
    limit = clamp_limit(limit)
    rows = library_db.project_page(conn, tenant_id, after=decode_cursor(cursor), limit=limit, only=only)
    rows, next_cursor = split_page(rows, limit, created_col="created_at", id_col="id")
    return ProjectPage([_project(r) for r in rows], next_cursor)


_UPDATABLE = {"name", "description", "repo", "default_branch", "ci_config", "settings"}


def update_project(conn, tenant_id: str, project_id: str, changes: dict) -> Project:
    project = get_project(conn, tenant_id, project_id)
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise Invalid(f"cannot update {', '.join(sorted(unknown))}")
    columns = {}
    for key, value in changes.items():
        if key == "name" and not str(value).strip():
            raise Invalid("name must not be empty")
        if key == "settings":
            value = _settings_json(value) if value is not None else None
        elif key == "ci_config":
            value = msgspec.json.encode(value).decode() if value is not None else None
        columns[key] = value
    if columns:
        columns["updated_at"] = now_ms()
        if not library_db.update_project(conn, project.id, columns):
            raise Conflict("another project has this repo already")
    return get_project(conn, tenant_id, project.id)


def delete_project(conn, tenant_id: str, project_id: str) -> list[str]:
    """Delete a project and everything in it; returns attachment hashes to check after commit."""
    project = get_project(conn, tenant_id, project_id)
    hashes = library_db.project_attachment_hashes(conn, project.id)
    key_checks.keys_changed(conn)  # keys limited to the project go with it
    library_db.delete_project(conn, project.id)
    return hashes
