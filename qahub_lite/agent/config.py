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


# Programs that read one of their arguments as code, and the options that introduce it. A
# placeholder inside that code would splice a test's title (which any write key chooses) into
# a script: `sh -c "pytest -k '{grep}'"` with a title `x'; touch ~/pwned; echo '` runs a
# command on the agent's machine. Values reach such scripts safely through the environment
# ("$QAHUB_GREP") or as positional arguments after the script (`sh -c 'pytest -k "$1"' sh {grep}`).
_POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "fish", "csh", "tcsh"})
_CODE_OPTIONS = {  # interpreter -> options whose next argument is code
    "python": {"-c"}, "python3": {"-c"}, "py": {"-c"}, "node": {"-e", "--eval", "-p", "--print"},
    "perl": {"-e", "-E"}, "ruby": {"-e"}, "php": {"-r"}, "deno": {"eval"}, "bun": {"-e", "--eval"},
}


def _program(arg: str) -> str:
    name = arg.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.removesuffix(".exe")


def _code_arguments(argv: list[str]) -> tuple[str, list[int]]:
    """The shell or interpreter in `argv`, and the indexes of the arguments it runs as code."""
    for start, arg in enumerate(argv):
        prog = _program(arg)
        if prog in _POSIX_SHELLS:
            # Options come first; one of them holding "c" (-c, -ec, -xc) makes the first
            # operand the script.
            opts, i = [], start + 1
            while i < len(argv) and argv[i][:1] in "-+" and argv[i] not in ("-", "--"):
                opts.append(argv[i])
                # -o NAME / -O NAME (also ending a group: -euo pipefail) and bash's
                # --rcfile/--init-file take a value: it is not the script.
                takes_value = argv[i] in ("--rcfile", "--init-file") or (
                    not argv[i].startswith("--") and argv[i][-1:] in ("o", "O"))
                i += 2 if takes_value else 1
            if any("c" in o.lstrip("-+") for o in opts if not o.startswith("--")) and i < len(argv):
                return prog, [i]
        elif prog == "cmd":
            # cmd /c and /k join every argument after them into one command line.
            for i in range(start + 1, len(argv)):
                if argv[i].lower() in ("/c", "/k", "/r"):
                    return prog, list(range(i + 1, len(argv)))
        elif prog in ("powershell", "pwsh"):
            # -Command (any prefix of it, -c included) and -EncodedCommand take the rest as code.
            for i in range(start + 1, len(argv)):
                flag = argv[i].lower().lstrip("-/")
                if argv[i][:1] in "-/" and flag and ("command".startswith(flag) or flag == "ec"
                                                     or "encodedcommand".startswith(flag)):
                    return prog, list(range(i + 1, len(argv)))
        elif prog.rstrip("0123456789.") in _CODE_OPTIONS:
            options = _CODE_OPTIONS[prog.rstrip("0123456789.")]
            for i in range(start + 1, len(argv) - 1):
                if argv[i] in options:
                    return prog, [i + 1]
    return "", []


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
        shell, code = _code_arguments(argv)
        for index in code:
            # {report} is the one value the agent makes itself (a path in its own temp folder).
            found = [n for n in PLACEHOLDER.findall(argv[index].replace("{{", "").replace("}}", "")) if n != "report"]
            if found:
                raise AgentConfigError(
                    f"{key}.command: {{{found[0]}}} is inside {argv[index]!r}, which {shell!r} runs as "
                    f"code: a test title or grep pattern (chosen by any write key) would become part of the "
                    f"script. Read the value from the environment instead, quoted, e.g. \"$QAHUB_GREP\" "
                    f"(docs/triggers.md lists the QAHUB_* variables)"
                )
        for env_name, value in fw.env.items():
            _check_placeholders(f"{key}.env.{env_name}", value, SCALARS)
        _check_placeholders(f"{key}.report_path", fw.report_path, frozenset())
        joined = " ".join([*argv, *fw.env.values()])
        mentions_report = "{report}" in joined or "QAHUB_REPORT" in joined
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
