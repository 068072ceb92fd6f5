"""The CI context of a run (branch, commit, pull request, repository, provider, build URL),
read from the environment variables each CI system sets.

Supported: GitHub Actions, GitLab CI, Jenkins, CircleCI, Buildkite, Azure Pipelines. Each
reader takes the environment as a mapping (never `os.environ` directly), so tests and the
pytest plugin can pass their own. Values a provider leaves empty, or fills with a
placeholder ("false" for "not a pull request"), are left out rather than sent as noise.

Choices made where the providers differ:
- On a pull request the *source* branch and the *head* commit are reported, not the
  synthetic merge ref/commit that GitHub and Azure check out: that is the commit a developer
  recognises and the branch a quality gate is asked about.
- `build_url` points at the job that produced the report where the provider has one
  (GitLab's job, Jenkins' build, CircleCI's job), else at the pipeline run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote

import msgspec


class CiInfo(msgspec.Struct, omit_defaults=True):
    """The native ingest's `ci` object (IngestIn.ci)."""

    branch: str | None = None
    commit: str | None = None
    pr_number: str | None = None
    pr_url: str | None = None
    repository: str | None = None
    provider: str | None = None
    build_url: str | None = None


Env = Mapping[str, str]

# "owner/name" out of https://host/owner/name(.git), ssh://git@host/owner/name.git, git@host:owner/name.git
_REPO_URL = re.compile(r"^(?:[a-z+]+://)?(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?[:/](?P<path>.+?)(?:\.git)?/?$")


def _get(env: Env, *names: str) -> str | None:
    """The first of `names` that is set to something other than blank."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _strip_ref(ref: str | None) -> str | None:
    if ref is None:
        return None
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def repo_from_url(url: str | None) -> tuple[str | None, str | None]:
    """(host, "owner/name") of a git remote URL, or (None, None) when it is not one."""
    if not url:
        return None, None
    match = _REPO_URL.match(url.strip())
    if not match or "/" not in match.group("path"):
        return None, None
    return match.group("host").lower(), match.group("path").strip("/")


def _pr_url_for(host: str | None, repository: str | None, number: str | None) -> str | None:
    """A pull request's web address on the three hosts whose URL scheme is public and stable."""
    if not (host and repository and number):
        return None
    if host == "github.com":
        return f"https://{host}/{repository}/pull/{number}"
    if host == "gitlab.com":
        return f"https://{host}/{repository}/-/merge_requests/{number}"
    if host == "bitbucket.org":
        return f"https://{host}/{repository}/pull-requests/{number}"
    return None


def _github(env: Env) -> CiInfo:
    server = _get(env, "GITHUB_SERVER_URL") or "https://github.com"
    repository = _get(env, "GITHUB_REPOSITORY")
    event = _github_event(env)
    pull = event.get("pull_request") if isinstance(event.get("pull_request"), dict) else {}
    number = str(pull["number"]) if pull.get("number") is not None else None
    if number is None:
        match = re.match(r"^refs/pull/(\d+)/", env.get("GITHUB_REF", ""))
        number = match.group(1) if match else None
    head = pull.get("head") if isinstance(pull.get("head"), dict) else {}
    run_id = _get(env, "GITHUB_RUN_ID")
    build_url = None
    if repository and run_id:
        build_url = f"{server}/{repository}/actions/runs/{run_id}"
        attempt = _get(env, "GITHUB_RUN_ATTEMPT")
        if attempt and attempt != "1":
            build_url += f"/attempts/{attempt}"
    return CiInfo(
        # GITHUB_HEAD_REF is set only on pull_request events; GITHUB_REF_NAME is then "12/merge".
        branch=_get(env, "GITHUB_HEAD_REF") or (None if number else _get(env, "GITHUB_REF_NAME")),
        commit=head.get("sha") or _get(env, "GITHUB_SHA"),
        pr_number=number,
        pr_url=pull.get("html_url") or (f"{server}/{repository}/pull/{number}" if number and repository else None),
        repository=repository,
        provider="github-actions",
        build_url=build_url,
    )


def _github_event(env: Env) -> dict:
    """The webhook payload GitHub saves for the job: the only place with a PR's head commit."""
    path = _get(env, "GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            event = json.load(handle)
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}


def _gitlab(env: Env) -> CiInfo:
    iid = _get(env, "CI_MERGE_REQUEST_IID")
    project_url = _get(env, "CI_MERGE_REQUEST_PROJECT_URL", "CI_PROJECT_URL")
    return CiInfo(
        branch=_get(env, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME"),
        commit=_get(env, "CI_COMMIT_SHA"),
        pr_number=iid,
        pr_url=f"{project_url}/-/merge_requests/{iid}" if iid and project_url else None,
        repository=_get(env, "CI_PROJECT_PATH"),
        provider="gitlab-ci",
        build_url=_get(env, "CI_JOB_URL", "CI_PIPELINE_URL"),
    )


def _jenkins(env: Env) -> CiInfo:
    host, repository = repo_from_url(_get(env, "GIT_URL", "GIT_URL_1"))
    branch = _get(env, "CHANGE_BRANCH", "BRANCH_NAME", "GIT_LOCAL_BRANCH", "GIT_BRANCH")
    if branch and branch.startswith("origin/"):
        branch = branch[len("origin/"):]  # the Git plugin's GIT_BRANCH names the remote ref
    number = _get(env, "CHANGE_ID")
    return CiInfo(
        branch=branch,
        commit=_get(env, "GIT_COMMIT"),
        pr_number=number,
        pr_url=_get(env, "CHANGE_URL") or _pr_url_for(host, repository, number),
        repository=repository,
        provider="jenkins",
        build_url=_get(env, "BUILD_URL"),
    )


def _circleci(env: Env) -> CiInfo:
    pr_url = _get(env, "CIRCLE_PULL_REQUEST")
    number = _get(env, "CIRCLE_PR_NUMBER")
    if number is None and pr_url:
        number = pr_url.rstrip("/").rsplit("/", 1)[-1] or None
    user, name = _get(env, "CIRCLE_PROJECT_USERNAME"), _get(env, "CIRCLE_PROJECT_REPONAME")
    repository = f"{user}/{name}" if user and name else repo_from_url(_get(env, "CIRCLE_REPOSITORY_URL"))[1]
    return CiInfo(
        branch=_get(env, "CIRCLE_BRANCH"),
        commit=_get(env, "CIRCLE_SHA1"),
        pr_number=number,
        pr_url=pr_url,
        repository=repository,
        provider="circleci",
        build_url=_get(env, "CIRCLE_BUILD_URL"),
    )


def _buildkite(env: Env) -> CiInfo:
    host, repository = repo_from_url(_get(env, "BUILDKITE_REPO"))
    number = _get(env, "BUILDKITE_PULL_REQUEST")
    if number == "false":  # Buildkite's value for "not a pull request"
        number = None
    commit = _get(env, "BUILDKITE_COMMIT")
    if commit == "HEAD":  # a build started by hand before checkout resolved it: not a commit
        commit = None
    return CiInfo(
        branch=_get(env, "BUILDKITE_BRANCH"),
        commit=commit,
        pr_number=number,
        pr_url=_pr_url_for(host, repository, number),
        repository=repository,
        provider="buildkite",
        build_url=_get(env, "BUILDKITE_BUILD_URL"),
    )


def _azure(env: Env) -> CiInfo:
    provider_kind = (_get(env, "BUILD_REPOSITORY_PROVIDER") or "").lower()
    # GitHub PRs have a number; Azure Repos PRs an id (which is what their URLs use).
    number = _get(env, "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER", "SYSTEM_PULLREQUEST_PULLREQUESTID")
    repository = _get(env, "BUILD_REPOSITORY_NAME")
    pr_url = None
    if number:
        if provider_kind == "github":
            pr_url = f"https://github.com/{repository}/pull/{number}" if repository else None
        else:
            repo_uri = _get(env, "SYSTEM_PULLREQUEST_SOURCEREPOSITORYURI", "BUILD_REPOSITORY_URI")
            pr_url = f"{repo_uri.rstrip('/')}/pullrequest/{number}" if repo_uri else None
    collection, project, build_id = (
        _get(env, "SYSTEM_COLLECTIONURI"), _get(env, "SYSTEM_TEAMPROJECT"), _get(env, "BUILD_BUILDID")
    )
    build_url = None
    if collection and project and build_id:
        build_url = f"{collection.rstrip('/')}/{quote(project)}/_build/results?buildId={build_id}"
    return CiInfo(
        branch=_strip_ref(_get(env, "SYSTEM_PULLREQUEST_SOURCEBRANCH", "BUILD_SOURCEBRANCH")),
        commit=_get(env, "SYSTEM_PULLREQUEST_SOURCECOMMITID", "BUILD_SOURCEVERSION"),
        pr_number=number,
        pr_url=pr_url,
        repository=repository,
        provider="azure-pipelines",
        build_url=build_url,
    )


# (how to recognise the provider, how to read it), in order of how specific the marker is.
_PROVIDERS: list[tuple[Callable[[Env], bool], Callable[[Env], CiInfo]]] = [
    (lambda env: env.get("GITHUB_ACTIONS") == "true", _github),
    (lambda env: env.get("GITLAB_CI") == "true", _gitlab),
    (lambda env: env.get("BUILDKITE") == "true", _buildkite),
    (lambda env: env.get("CIRCLECI") == "true", _circleci),
    (lambda env: env.get("TF_BUILD", "").lower() == "true", _azure),
    (lambda env: bool(env.get("JENKINS_URL") or env.get("JENKINS_HOME")), _jenkins),
]


def detect(env: Env) -> CiInfo | None:
    """The CI context of the first provider whose marker variable is set, else None."""
    for recognise, read in _PROVIDERS:
        if recognise(env):
            return read(env)
    return None


def context(env: Env, *, branch: str | None = None, commit: str | None = None, cwd: str | None = None) -> CiInfo | None:
    """A run's branch and commit, most explicit first: the `--branch`/`--commit` options, then
    `QAHUB_BRANCH`/`QAHUB_COMMIT`, then the CI provider's variables, then the git checkout
    `cwd` is in (a run without a branch is left out of flakiness, grade, trends and the gate).
    The other fields (PR, build URL, provider) come from the CI provider only."""
    found = detect(env) or CiInfo()
    git_branch, git_commit = git_checkout(cwd)
    found.branch = branch or _get(env, "QAHUB_BRANCH") or found.branch or git_branch
    found.commit = commit or _get(env, "QAHUB_COMMIT") or found.commit or git_commit
    return found if msgspec.to_builtins(found) else None


def git_checkout(cwd: str | None = None) -> tuple[str | None, str | None]:
    """(branch, commit) of the git checkout `cwd` is in, read from its files (no git needed).
    A detached HEAD has a commit and no branch; outside a checkout both are None."""
    from pathlib import Path

    here = Path(cwd or ".").resolve()
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None, None
            git_dir = (folder / text[len("gitdir:"):].strip()).resolve()
        elif dot_git.is_dir():
            git_dir = dot_git
        else:
            continue
        return _read_head(git_dir)
    return None, None


def _read_head(git_dir) -> tuple[str | None, str | None]:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None, None
    if not head.startswith("ref:"):
        return None, head if re.fullmatch(r"[0-9a-f]{40,64}", head) else None
    ref = head[len("ref:"):].strip()
    branch = ref.removeprefix("refs/heads/")
    # Worktrees keep refs in the main repository ("commondir" names it).
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        try:
            return branch, (base / ref).read_text(encoding="utf-8").strip() or None
        except OSError:
            pass
        try:
            for line in (base / "packed-refs").read_text(encoding="utf-8").splitlines():
                sha, _, name = line.partition(" ")
                if name.strip() == ref:
                    return branch, sha
        except OSError:
            pass
    return branch, None  # a branch with no commit yet
