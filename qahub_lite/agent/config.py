"""agent.toml: what an agent runs for each framework. Read by `qahub agent --config` and by the
agent embedded in `qahub serve` (`[agent] config` in qahub.toml).

The command lives here, on the machine that runs it, and nowhere else: a job names a framework
and the tests to select, and an API key can never choose what is executed (DESIGN.md).
Decoded strictly, like qahub.toml: an unknown key or an unknown placeholder stops the agent
with a message naming it.
"""

from __future__ import annotations

import re
import shlex
import socket
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec

# Placeholders a command and its env values may use. Scalars are replaced inside an argument;
# lists stand alone as an argument and expand into one argument per value.
SCALARS = frozenset({"report", "grep", "framework", "run_id", "job_id", "browser", "viewport"})
LISTS = frozenset({"codes", "titles", "files"})
PLACEHOLDER = re.compile(r"\{(\w*)\}")


class FrameworkCommand(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Arguments, run without a shell: a list, or one string split the way a shell splits words.
    command: list[str] | str
    # Extra environment variables for the command; values may use the scalar placeholders.
    env: dict[str, str] = {}
    # Where the command writes its report. Empty: {report}, a fresh path per job. Else a fixed
    # path relative to the workdir (for tools that always write the same file), removed before
    # each job so that an old report is never read as the new one.
    report_path: str = ""
    # The report's format as `qahub upload --format` names it; auto detects it from content.
    report_format: str = "auto"
    # Joins the selected tests' patterns into {grep}: "|" for regex filters (Playwright, Jest,
    # go test -run), " or " for pytest -k.
    grep_join: str = "|"
    # Seconds before the command is killed; its tests without an outcome become TIMEOUT.
    timeout_s: Annotated[int, msgspec.Meta(ge=1)] = 3600

    def argv(self) -> list[str]:
        return shlex.split(self.command) if isinstance(self.command, str) else list(self.command)


class AgentSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Name shown in GET /api/v1/agents; agents of one tenant need different names. Empty: the
    # host name.
    name: str = ""
    # Folder the commands run in, relative to this file.
    workdir: str = "."
    # Seconds one request for work waits on the server while nothing is queued (long-poll; the
    # server caps it at its jobs.max_poll_s). At most 50: requests time out after 60 s.
    poll_wait_s: Annotated[int, msgspec.Meta(ge=0, le=50)] = 25
    # framework name (a test case's automation.framework) -> how to run it. The agent takes
    # only jobs of these frameworks.
    frameworks: dict[str, FrameworkCommand] = {}
    # Where the file was read from (set by load_agent_config, not written in the file).
    base_dir: str = "."

    @property
    def agent_name(self) -> str:
        return self.name or socket.gethostname()

    @property
    def workdir_path(self) -> Path:
        return (Path(self.base_dir) / self.workdir).resolve()


class AgentConfigError(Exception):
    """An agent.toml that cannot be used; the message names the file and the key."""


def _check_placeholders(where: str, text: str, allowed: frozenset[str]) -> None:
    for name in PLACEHOLDER.findall(text.replace("{{", "").replace("}}", "")):
        if name not in allowed:
            known = ", ".join("{" + n + "}" for n in sorted(allowed))
            raise AgentConfigError(f"{where}: unknown placeholder {{{name}}} (known: {known})")


def validate(settings: AgentSettings, where: str) -> None:
    if not settings.frameworks:
        raise AgentConfigError(f"{where}: no [frameworks.NAME] table: the agent would never take a job")
    for name, fw in settings.frameworks.items():
        key = f"{where}: frameworks.{name}"
        try:
            argv = fw.argv()
        except ValueError as exc:
            raise AgentConfigError(f"{key}.command: {exc}") from None
        if not argv or not argv[0].strip():
            raise AgentConfigError(f"{key}.command is empty")
        for arg in argv:
            _check_placeholders(f"{key}.command", arg, SCALARS | LISTS)
            for listed in LISTS:
                if "{" + listed + "}" in arg and arg != "{" + listed + "}":
                    raise AgentConfigError(
                        f"{key}.command: {{{listed}}} expands into several arguments, so it must be an "
                        f"argument on its own, not part of {arg!r}"
                    )
        for env_name, value in fw.env.items():
            _check_placeholders(f"{key}.env.{env_name}", value, SCALARS)
        _check_placeholders(f"{key}.report_path", fw.report_path, frozenset())
        mentions_report = "{report}" in " ".join([*argv, *fw.env.values()])
        if not fw.report_path and not mentions_report:
            raise AgentConfigError(
                f"{key}: the command never mentions {{report}} and report_path is empty, so the agent "
                "could not find the report it wrote"
            )


def load_agent_config(path: str | Path) -> AgentSettings:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentConfigError(f"{path}: agent config not found (docs/agent.example.toml is an example)") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"{path}: not valid TOML: {exc}") from None
    if "base_dir" in raw:
        raise AgentConfigError(f"{path}: unknown key `base_dir`")
    raw["base_dir"] = str(path.absolute().parent)
    try:
        settings = msgspec.convert(raw, AgentSettings)
    except msgspec.ValidationError as exc:
        raise AgentConfigError(f"{path}: {exc}") from None
    validate(settings, str(path))
    return settings
