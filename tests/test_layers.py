"""The layer rules (DESIGN.md, "Layer rules are a test"), read from every module's imports.

    cli -> server -> app -> api / web -> http -> core -> db -> config

A module may import its own layer and any layer below it, except that the HTTP layers (http,
api, web) reach the storage through core only. Beside that stack:

- The clients speak HTTP only: agent/, client.py, upload.py, payload.py, pytest_plugin.py,
  ci_env.py, splitting.py and the report parsers (reports/) import each other and the leaves,
  never core, db, http, api, web, app or server. What they share with the server is in wire.py.
- The parsers (reports/) produce records only: they import reports/ and the leaves, nothing else
  of the project (not even the HTTP client); any layer may use them.
- Leaves import nothing of the project, and every module may import them.

Imports inside functions count as much as those at the top: a lazy import is still a dependency.
Only imports under `if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qahub_lite"

# Where each top-level module sits (the packages are their own layer):
# - config.py is the bottom: everything is configured by it.
# - frozen.py (the frozen executable's start), logs.py (log set-up), maintenance.py (the
#   scheduler of maintenance tasks, knowing nothing of what they do), wire.py (shapes the server
#   and its clients exchange) and the package's __init__ (its version) import nothing of the
#   project: leaves.
# - bootstrap.py (first start: migrate, first tenant and user), run_completion_tasks.py (the run-completion
#   and test-health maintenance tasks), outbound.py (webhook sending, used by run_completion_tasks) and
#   embedded_agent.py (the agent inside `qahub serve`) wire core to the running app: app layer.
# - server.py is the server layer, __main__.py the cli layer.
LAYERS = ["config", "db", "core", "http", "api/web", "app", "server", "cli"]
LAYER_OF = {
    "config": "config",
    "db": "db",
    "core": "core",
    "http": "http",
    "api": "api/web",
    "web": "api/web",
    "app": "app",
    "bootstrap": "app",
    "run_completion_tasks": "app",
    "outbound": "app",
    "embedded_agent": "app",
    "server": "server",
    "cli": "cli",
    "__main__": "cli",
}
LEAVES = {"frozen", "logs", "maintenance", "wire", "__init__"}
CLIENTS = {"agent", "client", "upload", "payload", "pytest_plugin", "ci_env", "splitting", "reports"}
# The parsers import nothing but themselves and the leaves, so any layer may use them (the
# QualityPilot dialect reads @qa-hub tags with reports/tags.py).
PARSERS = {"reports"}
# The layers that may start a client (the CLI's commands; the app's embedded agent) sit above all.
MAY_USE_CLIENTS = {"app", "server", "cli"}

# Imports allowed against the rules, each with its reason: (importing module, imported module).
# None today; an entry must say why, and the test below fails once it is no longer needed.
KNOWN: set[tuple[str, str]] = set()
# Third-party modules only db/ may import: the database drivers.
DRIVERS = {"sqlite3", "aiosqlite", "psycopg", "psycopg_pool"}
# Modules outside db/ allowed a driver, each with its reason: none.
KNOWN_DRIVER_USERS: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _annotation_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under `if TYPE_CHECKING:`: they name types for readers and type
    checkers and never run, so they create no dependency (http/services.py names the types of
    parts that api/ and web/ own)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return skipped


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `path`, at any depth, except annotation-only ones."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _annotation_only(tree)
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "qahub_lite" or (node.level and not node.module):
                # `from . import x`: each name may be a module of that package.
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def unit(module: str) -> str:
    """The first name under qahub_lite: a package (core, api...) or a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(name: str) -> bool:
    """`qahub_lite.x` names a module or package (not a name imported from the package's __init__)."""
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def rule_broken(importer: str, imported: str) -> str | None:
    """The rule `importer` breaks by importing `imported`, or None."""
    source, target = unit(importer), unit(imported)
    if imported == "qahub_lite" or (target not in LAYER_OF and target not in LEAVES and target not in CLIENTS):
        if not _is_module(imported):
            target = "__init__"  # `from qahub_lite import __version__`
    if source in LEAVES and source != target:
        return "a leaf (frozen, logs, maintenance, wire, the package's __init__) imports nothing of the project"
    if target in LEAVES or source == target:
        return None
    if source in PARSERS:
        return "parsers (reports/) produce records only: they import reports/ and the leaves"
    if source in CLIENTS:
        if target in CLIENTS:
            return None
        return "the clients (agent/, client, upload, payload, pytest_plugin, ci_env, splitting, reports/) " \
               "speak HTTP only: no core, db, http, api, web, app or server"
    if target in CLIENTS:
        if target in PARSERS or LAYER_OF.get(source) in MAY_USE_CLIENTS:
            return None
        return f"the {LAYER_OF.get(source, source)} layer does not start clients: only app, server and cli do"
    if LAYER_OF[source] == LAYER_OF[target] == "api/web":
        return "api/ and web/ are siblings: what both need is in http/"
    if LAYER_OF[target] == "db" and LAYER_OF[source] in ("http", "api/web"):
        return "api, web and http reach storage through core (core/errors.py re-exports its errors), never db/"
    src, dst = LAYERS.index(LAYER_OF[source]), LAYERS.index(LAYER_OF[target])
    if dst > src:
        return f"a module imports its own layer or lower ones: {' -> '.join(reversed(LAYERS))}, " \
               f"and {LAYER_OF[source]} is below {LAYER_OF[target]}"
    return None


def violations() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts and path.suffix != ".py":
            continue
        importer = module_name(path)
        for line, imported in imports(path):
            where = f"{path.relative_to(PACKAGE.parent)}:{line}"
            top = imported.split(".")[0]
            if top in DRIVERS and unit(importer) != "db" and importer not in KNOWN_DRIVER_USERS:
                found.append(f"{where}: {importer} imports {imported}: only db/ imports a database driver")
            if top != "qahub_lite" or (importer, imported) in KNOWN:
                continue
            rule = rule_broken(importer, imported)
            if rule:
                found.append(f"{where}: {importer} imports {imported}: {rule}")
    return found


def test_every_import_keeps_the_layer_rules():
    found = violations()
    assert not found, "layer rules broken:\n" + "\n".join(found)


def test_every_unit_has_a_place():
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py")}
    homeless = units - set(LAYER_OF) - LEAVES - CLIENTS
    assert not homeless, f"put these in LAYER_OF, LEAVES or CLIENTS of tests/test_layers.py: {sorted(homeless)}"


def test_the_known_exceptions_are_still_needed():
    """An entry of KNOWN or KNOWN_DRIVER_USERS that no longer occurs must go, so the list only shrinks."""
    seen = set()
    drivers = set()
    for path in PACKAGE.rglob("*.py"):
        importer = module_name(path)
        for _, imported in imports(path):
            seen.add((importer, imported))
            if imported.split(".")[0] in DRIVERS:
                drivers.add(importer)
    assert KNOWN <= seen, f"no longer needed in KNOWN: {sorted(KNOWN - seen)}"
    assert KNOWN_DRIVER_USERS <= drivers, f"no longer needed: {sorted(KNOWN_DRIVER_USERS - drivers)}"


def test_the_rules_catch_a_forbidden_import():
    """The checker itself: each rule names the module, the import and the rule."""
    assert "only app, server and cli" in rule_broken("qahub_lite.api.agent_api", "qahub_lite.agent.loop")
    assert "speak HTTP only" in rule_broken("qahub_lite.agent.loop", "qahub_lite.core.jobs")
    assert "produce records only" in rule_broken("qahub_lite.reports.junit", "qahub_lite.client")
    assert "db is below core" in rule_broken("qahub_lite.db.runs", "qahub_lite.core.errors")
    assert "api/web is below app" in rule_broken("qahub_lite.web.render", "qahub_lite.app")
    assert "through core" in rule_broken("qahub_lite.api.metrics", "qahub_lite.db.writer")
    assert rule_broken("qahub_lite.app", "qahub_lite.db.database") is None
    assert "siblings" in rule_broken("qahub_lite.web.render", "qahub_lite.api.errors")
    assert rule_broken("qahub_lite.web.render", "qahub_lite.http.errors") is None
    assert rule_broken("qahub_lite.core.jobs", "qahub_lite.wire") is None
    assert rule_broken("qahub_lite.cli.agent", "qahub_lite.agent.loop") is None
    assert "imports nothing" in rule_broken("qahub_lite.wire", "qahub_lite.core.status")
