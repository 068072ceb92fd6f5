"""CI context from each provider's environment variables (qahub_lite/ci_env.py).

The environments below are the variables each provider documents and sets, with the values
they take on a branch build and on a pull/merge request build."""

from __future__ import annotations

import json

import pytest

from qahub_lite.ci_env import CiInfo, detect, repo_from_url

GITHUB_PUSH = {
    "GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/shop",
    "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_HEAD_REF": "",
    "GITHUB_SHA": "1111111111111111111111111111111111111111", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
}


def test_not_in_ci_gives_nothing():
    assert detect({}) is None
    assert detect({"CI": "true", "HOME": "/root"}) is None  # a generic CI=true says nothing useful


def test_github_actions_push():
    assert detect(GITHUB_PUSH) == CiInfo(
        branch="main", commit="1111111111111111111111111111111111111111", repository="acme/shop",
        provider="github-actions", build_url="https://github.com/acme/shop/actions/runs/4242",
    )


def test_github_actions_pull_request_uses_head_commit_and_source_branch(tmp_path):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {
        "number": 17, "html_url": "https://github.com/acme/shop/pull/17",
        "head": {"sha": "2222222222222222222222222222222222222222", "ref": "feature/login"},
    }}))
    env = {**GITHUB_PUSH, "GITHUB_REF": "refs/pull/17/merge", "GITHUB_REF_NAME": "17/merge",
           "GITHUB_HEAD_REF": "feature/login", "GITHUB_EVENT_PATH": str(event), "GITHUB_RUN_ATTEMPT": "2"}
    ci = detect(env)
    assert ci.branch == "feature/login"
    assert ci.commit == "2222222222222222222222222222222222222222"  # not GITHUB_SHA, the merge commit
    assert (ci.pr_number, ci.pr_url) == ("17", "https://github.com/acme/shop/pull/17")
    assert ci.build_url == "https://github.com/acme/shop/actions/runs/4242/attempts/2"


def test_github_actions_pull_request_without_event_file():
    env = {**GITHUB_PUSH, "GITHUB_REF": "refs/pull/9/merge", "GITHUB_REF_NAME": "9/merge",
           "GITHUB_HEAD_REF": "fix", "GITHUB_EVENT_PATH": "/nonexistent/event.json"}
    ci = detect(env)
    assert (ci.branch, ci.pr_number, ci.pr_url) == ("fix", "9", "https://github.com/acme/shop/pull/9")
    assert ci.commit == GITHUB_PUSH["GITHUB_SHA"]


def test_gitlab_merge_request():
    env = {
        "GITLAB_CI": "true", "CI_COMMIT_SHA": "abc123", "CI_COMMIT_REF_NAME": "feature-x",
        "CI_MERGE_REQUEST_IID": "5", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature-x",
        "CI_MERGE_REQUEST_PROJECT_URL": "https://gitlab.example.com/group/app", "CI_PROJECT_PATH": "group/app",
        "CI_PIPELINE_URL": "https://gitlab.example.com/group/app/-/pipelines/77",
        "CI_JOB_URL": "https://gitlab.example.com/group/app/-/jobs/901",
    }
    assert detect(env) == CiInfo(
        branch="feature-x", commit="abc123", pr_number="5",
        pr_url="https://gitlab.example.com/group/app/-/merge_requests/5", repository="group/app",
        provider="gitlab-ci", build_url="https://gitlab.example.com/group/app/-/jobs/901",
    )


def test_gitlab_branch_pipeline():
    env = {"GITLAB_CI": "true", "CI_COMMIT_SHA": "abc", "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main",
           "CI_PROJECT_PATH": "group/app", "CI_PIPELINE_URL": "https://gitlab.example.com/group/app/-/pipelines/1"}
    ci = detect(env)
    assert (ci.branch, ci.pr_number, ci.pr_url) == ("main", None, None)
    assert ci.build_url.endswith("/pipelines/1")


def test_jenkins_multibranch_pull_request():
    env = {
        "JENKINS_URL": "https://ci.example.com/", "BUILD_URL": "https://ci.example.com/job/shop/job/PR-12/3/",
        "BRANCH_NAME": "PR-12", "CHANGE_ID": "12", "CHANGE_BRANCH": "feature/cart",
        "CHANGE_URL": "https://github.com/acme/shop/pull/12", "GIT_COMMIT": "def456",
        "GIT_URL": "https://github.com/acme/shop.git",
    }
    assert detect(env) == CiInfo(
        branch="feature/cart", commit="def456", pr_number="12", pr_url="https://github.com/acme/shop/pull/12",
        repository="acme/shop", provider="jenkins", build_url="https://ci.example.com/job/shop/job/PR-12/3/",
    )


def test_jenkins_freestyle_strips_the_remote_name():
    env = {"JENKINS_HOME": "/var/lib/jenkins", "GIT_BRANCH": "origin/release/2.0", "GIT_COMMIT": "aa",
           "GIT_URL": "git@github.com:acme/shop.git", "BUILD_URL": "https://ci.example.com/job/shop/8/"}
    ci = detect(env)
    assert (ci.branch, ci.repository, ci.pr_number) == ("release/2.0", "acme/shop", None)


def test_circleci_pull_request():
    env = {
        "CIRCLECI": "true", "CIRCLE_BRANCH": "feat", "CIRCLE_SHA1": "c1",
        "CIRCLE_PULL_REQUEST": "https://github.com/acme/shop/pull/33", "CIRCLE_PROJECT_USERNAME": "acme",
        "CIRCLE_PROJECT_REPONAME": "shop", "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/shop/120",
    }
    assert detect(env) == CiInfo(
        branch="feat", commit="c1", pr_number="33", pr_url="https://github.com/acme/shop/pull/33",
        repository="acme/shop", provider="circleci", build_url="https://circleci.com/gh/acme/shop/120",
    )


def test_buildkite_placeholders_are_dropped():
    env = {
        "BUILDKITE": "true", "BUILDKITE_BRANCH": "main", "BUILDKITE_COMMIT": "HEAD",
        "BUILDKITE_PULL_REQUEST": "false", "BUILDKITE_REPO": "git@github.com:acme/shop.git",
        "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/shop/builds/5",
    }
    assert detect(env) == CiInfo(branch="main", repository="acme/shop", provider="buildkite",
                                 build_url="https://buildkite.com/acme/shop/builds/5")


def test_buildkite_pull_request_url_from_the_repository_host():
    env = {"BUILDKITE": "true", "BUILDKITE_BRANCH": "fix", "BUILDKITE_COMMIT": "b2",
           "BUILDKITE_PULL_REQUEST": "44", "BUILDKITE_REPO": "https://gitlab.com/acme/shop.git"}
    ci = detect(env)
    assert (ci.pr_number, ci.pr_url) == ("44", "https://gitlab.com/acme/shop/-/merge_requests/44")


def test_azure_pipelines_github_pull_request():
    env = {
        "TF_BUILD": "True", "BUILD_SOURCEBRANCH": "refs/pull/8/merge", "BUILD_SOURCEVERSION": "merge-sha",
        "SYSTEM_PULLREQUEST_SOURCEBRANCH": "refs/heads/feature/pay", "SYSTEM_PULLREQUEST_SOURCECOMMITID": "head-sha",
        "SYSTEM_PULLREQUEST_PULLREQUESTNUMBER": "8", "SYSTEM_PULLREQUEST_PULLREQUESTID": "123456",
        "BUILD_REPOSITORY_PROVIDER": "GitHub", "BUILD_REPOSITORY_NAME": "acme/shop",
        "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/", "SYSTEM_TEAMPROJECT": "Web Shop",
        "BUILD_BUILDID": "99",
    }
    assert detect(env) == CiInfo(
        branch="feature/pay", commit="head-sha", pr_number="8", pr_url="https://github.com/acme/shop/pull/8",
        repository="acme/shop", provider="azure-pipelines",
        build_url="https://dev.azure.com/acme/Web%20Shop/_build/results?buildId=99",
    )


def test_azure_repos_branch_build():
    env = {"TF_BUILD": "True", "BUILD_SOURCEBRANCH": "refs/heads/main", "BUILD_SOURCEVERSION": "s1",
           "BUILD_REPOSITORY_PROVIDER": "TfsGit", "BUILD_REPOSITORY_NAME": "shop",
           "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/", "SYSTEM_TEAMPROJECT": "Shop", "BUILD_BUILDID": "1"}
    ci = detect(env)
    assert (ci.branch, ci.commit, ci.pr_number) == ("main", "s1", None)


@pytest.mark.parametrize("url, expected", [
    ("https://github.com/acme/shop.git", ("github.com", "acme/shop")),
    ("https://github.com/acme/shop", ("github.com", "acme/shop")),
    ("git@github.com:acme/shop.git", ("github.com", "acme/shop")),
    ("ssh://git@gitlab.example.com:2222/group/sub/app.git", ("gitlab.example.com", "group/sub/app")),
    ("https://user:token@bitbucket.org/team/repo.git", ("bitbucket.org", "team/repo")),
    ("not a url", (None, None)),
    ("", (None, None)),
])
def test_repo_from_url(url, expected):
    assert repo_from_url(url) == expected


# --- run context: options, QAHUB_* variables, the provider, then the git checkout (issue 11) ----

from qahub_lite.ci_env import context, git_checkout  # noqa: E402


def _git_dir(folder, head: str, refs: dict[str, str] | None = None, packed: str | None = None):
    git = folder / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text(head + "\n")
    for name, sha in (refs or {}).items():
        (git / name).parent.mkdir(parents=True, exist_ok=True)
        (git / name).write_text(sha + "\n")
    if packed:
        (git / "packed-refs").write_text(packed)
    return folder


def test_the_most_explicit_source_wins(tmp_path):
    repo = _git_dir(tmp_path, "ref: refs/heads/trunk", {"refs/heads/trunk": "a" * 40})
    gitlab = {"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "ci-branch", "CI_COMMIT_SHA": "b" * 40}
    assert (context({}, cwd=str(repo)).branch, context({}, cwd=str(repo)).commit) == ("trunk", "a" * 40)
    assert context(gitlab, cwd=str(repo)).branch == "ci-branch"
    assert context({**gitlab, "QAHUB_BRANCH": "env-branch"}, cwd=str(repo)).branch == "env-branch"
    chosen = context({**gitlab, "QAHUB_BRANCH": "env-branch", "QAHUB_COMMIT": "c1"}, branch="flag", cwd=str(repo))
    assert (chosen.branch, chosen.commit, chosen.provider) == ("flag", "c1", "gitlab-ci")
    assert git_checkout("/") == (None, None)  # outside any checkout


def test_git_checkout_reads_packed_refs_detached_heads_and_worktrees(tmp_path):
    packed = _git_dir(tmp_path / "packed", "ref: refs/heads/main", packed=f"# pack-refs\n{'d' * 40} refs/heads/main\n")
    assert git_checkout(str(packed)) == ("main", "d" * 40)
    (packed / "sub" / "dir").mkdir(parents=True)
    assert git_checkout(str(packed / "sub" / "dir")) == ("main", "d" * 40)  # from a subfolder
    detached = _git_dir(tmp_path / "detached", "e" * 40)
    assert git_checkout(str(detached)) == (None, "e" * 40)
    # A worktree: `.git` is a file naming its folder, refs live in the main repository.
    main = _git_dir(tmp_path / "main", "ref: refs/heads/main", {"refs/heads/topic": "f" * 40})
    admin = main / ".git" / "worktrees" / "wt"
    admin.mkdir(parents=True)
    (admin / "HEAD").write_text("ref: refs/heads/topic\n")
    (admin / "commondir").write_text("../..\n")
    wt = tmp_path / "wt"
    wt.mkdir()
    (wt / ".git").write_text(f"gitdir: {admin}\n")
    assert git_checkout(str(wt)) == ("topic", "f" * 40)
    assert git_checkout(str(tmp_path / "unborn-none")) in ((None, None),)
