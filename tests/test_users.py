"""Dashboard users: password hashing, users and roles in core/users.py, sessions in
core/sessions.py, and the `qahub users` and `qahub init` commands. Real SQLite files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import write_config
from qahub_lite.bootstrap import ensure_initialized
from qahub_lite.config import load_config
from qahub_lite.core import passwords, sessions, users
from qahub_lite.core.errors import Conflict, Forbidden, Invalid, NotFound
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines


def test_a_password_hash_is_scrypt_salted_and_checked_in_full():
    encoded = passwords.hash_password("correct horse battery")
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", passwords.N, passwords.R, passwords.P)
    assert "correct horse" not in encoded
    assert passwords.verify_password("correct horse battery", encoded)
    assert not passwords.verify_password("correct horse batterY", encoded)
    assert not passwords.verify_password("correct horse battery", "not$a$hash")
    assert passwords.hash_password("correct horse battery") != encoded  # a new salt every time
    assert not passwords.needs_rehash(encoded)


def test_old_parameters_are_verified_and_flagged_for_rehash():
    cheap = passwords.hash_password("an old password", n=2**10, r=8, p=1)
    assert passwords.verify_password("an old password", cheap)
    assert passwords.needs_rehash(cheap)


@pytest.mark.parametrize("bad, why", [("short", "at least"), ("x" * 1025, "at most"), (" padded password ", "spaces")])
def test_the_password_policy_says_what_is_wrong(bad, why):
    with pytest.raises(passwords.WeakPassword, match=why):
        passwords.hash_password(bad)


def test_generated_passwords_are_long_and_different():
    made = {passwords.generate_password() for _ in range(20)}
    assert len(made) == 20 and all(len(p) == 20 for p in made)


@pytest.fixture
def db(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, storage_url=storage_url), environ={})
    boot = ensure_initialized(config)
    return config, boot.tenant_id


def _check(config, username, password):
    with direct_connection(config) as conn:
        stored = users.find_credentials(conn, username)
    return users.check_credentials(stored, username, password)


def test_users_sign_in_with_their_password_only(db):
    config, tenant_id = db
    with direct_connection(config) as conn:
        new = users.create_user(conn, "Ann", tenant_id=tenant_id, role="member", password="ann's password")
        generated = users.create_user(conn, "bob", tenant_id=tenant_id, role="viewer")
        with pytest.raises(Conflict, match="taken"):
            users.create_user(conn, "ANN", tenant_id=tenant_id, role="viewer", password="another password")
        with pytest.raises(Invalid, match="role"):
            users.create_user(conn, "carl", tenant_id=tenant_id, role="owner", password="carl's password")
        with pytest.raises(Invalid, match="user name"):
            users.create_user(conn, "no spaces please", tenant_id=tenant_id, role="viewer", password="x" * 12)
    assert new.password is None and len(generated.password) == 20
    signed = _check(config, "ann", "ann's password")  # names are case-insensitive
    assert (signed.user_id, signed.tenant_id, signed.rehash) == (new.user.id, tenant_id, False)
    assert _check(config, "bob", generated.password).username == "bob"
    for name, password in (("ann", "wrong password"), ("nobody", "ann's password")):
        with pytest.raises(Forbidden, match="Wrong user name or password"):
            _check(config, name, password)


def test_the_last_admin_of_a_tenant_cannot_be_lost(db):
    config, tenant_id = db
    with direct_connection(config) as conn:
        users.create_user(conn, "root", tenant_id=tenant_id, role="admin", password="root password")
        for attempt in (
            lambda: users.set_role(conn, tenant_id, "root", "member"),
            lambda: users.set_disabled(conn, "root", True),
            lambda: users.remove_member(conn, tenant_id, "root"),
        ):
            with pytest.raises(Conflict, match="last admin"):
                attempt()
        users.create_user(conn, "second", tenant_id=tenant_id, role="admin", password="second password")
        assert users.set_role(conn, tenant_id, "root", "viewer").role == "viewer"
        assert users.set_disabled(conn, "root", True).disabled


def test_disabling_or_a_new_password_ends_every_session(db):
    config, tenant_id = db
    with direct_connection(config) as conn:
        user = users.create_user(conn, "dora", tenant_id=tenant_id, role="viewer", password="dora's password").user
        first = sessions.create_session(conn, user.id, tenant_id, 3_600_000)
        users.set_password(conn, "dora", "dora's new password")
        second = sessions.create_session(conn, user.id, tenant_id, 3_600_000)
        users.set_disabled(conn, "dora", True)

    def resolve(token):
        with direct_connection(config) as conn:
            return sessions.resolve(conn, token)

    assert resolve(first.token) is None
    assert resolve(second.token) is None
    with pytest.raises(Forbidden):
        _check(config, "dora", "dora's new password")


def test_sessions_store_only_a_hash_and_expire(db):
    config, tenant_id = db
    with direct_connection(config) as conn:
        user = users.create_user(conn, "eve", tenant_id=tenant_id, role="admin", password="eve's password").user
        live = sessions.create_session(conn, user.id, tenant_id, 3_600_000)
        dead = sessions.create_session(conn, user.id, tenant_id, -1)
        stored = [r[0] for r in conn.execute("SELECT id FROM sessions")]
    assert live.token not in stored and sessions.token_hash(live.token) in stored

    def resolve(token):
        with direct_connection(config) as conn:
            return sessions.resolve(conn, token)

    found = resolve(live.token)
    assert (found.username, found.role, found.csrf_token) == ("eve", "admin", live.csrf_token)
    assert resolve(dead.token) is None
    assert resolve("made-up") is None


def test_a_tenant_admin_manages_only_users_of_its_own_tenant_alone(db):
    config, tenant_id = db
    from qahub_lite.core import tenancy

    with direct_connection(config) as conn:
        other = tenancy.create_tenant(conn, "other")
        users.create_user(conn, "shared", tenant_id=tenant_id, role="viewer", password="shared password")
        users.set_role(conn, other.id, "shared", "admin")
        users.create_user(conn, "stranger", tenant_id=other.id, role="viewer", password="stranger password")
        with pytest.raises(Forbidden, match="other tenants"):
            users.check_managed_by(conn, tenant_id, "shared")
        with pytest.raises(NotFound):
            users.check_managed_by(conn, tenant_id, "stranger")


def qahub(*args, input_text=None):
    return subprocess.run([sys.executable, "-m", "qahub_lite", *args], input=input_text, capture_output=True,
                          text=True)


def test_init_creates_the_first_admin_and_shows_its_password_once(tmp_path):
    done = qahub("init", "--dir", str(tmp_path / "site"), "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["admin_user"] == "admin" and len(answer["admin_password"]) == 20
    config = load_config(tmp_path / "site" / "qahub.toml", environ={})
    assert _check(config, "admin", answer["admin_password"]).username == "admin"
    again = qahub("users", "list", "--json", "--config", str(tmp_path / "site" / "qahub.toml"))
    assert [u["username"] for u in json.loads(again.stdout)] == ["admin"]
    assert answer["admin_password"] not in again.stdout


def run_cli(capsys, monkeypatch, *args, stdin: str = "") -> tuple[int, str, str]:
    """`qahub ARGS` in this process (the interpreter start is most of a subprocess' cost)."""
    import io

    from qahub_lite.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_users_commands(tmp_path, capsys, monkeypatch, storage_url):
    cfg = str(write_config(tmp_path, storage_url=storage_url))

    def cli(*args, stdin=""):
        return run_cli(capsys, monkeypatch, *args, "--config", cfg, stdin=stdin)

    code, out, _ = cli("users", "create", "fred", "--role", "member", "--json")
    assert code == 0
    password = json.loads(out)["password"]
    assert cli("users", "create", "gina", "--password-stdin", stdin="gina's password\n")[0] == 0
    code, _, err = cli("users", "create", "FRED")
    assert code == 1 and "taken" in err
    code, _, err = cli("users", "passwd", "fred", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least" in err
    assert cli("users", "passwd", "fred")[0] == 2  # no terminal to prompt on
    code, out, _ = cli("users", "passwd", "fred", "--generate")
    assert code == 0 and "new password" in out
    assert cli("users", "role", "gina", "admin")[0] == 0
    assert cli("users", "disable", "fred")[0] == 0
    listed = {u["username"]: u for u in json.loads(cli("users", "list", "--json")[1])}
    assert (listed["fred"]["role"], listed["fred"]["disabled"]) == ("member", True)
    assert listed["gina"]["role"] == "admin"
    config = load_config(cfg, environ={})
    with pytest.raises(Forbidden):
        _check(config, "fred", password)
    assert cli("users", "enable", "fred")[0] == 0
    for args in (["users", "--help"], ["users", "create", "--help"], ["users", "passwd", "--help"]):
        code, out, _ = run_cli(capsys, monkeypatch, *args)
        assert code == 0 and "usage" in out


def test_keys_create_with_several_tenants_needs_tenant_as_a_usage_error(tmp_path, capsys, monkeypatch, storage_url):
    # The README promises exit 2 for usage errors; a missing --tenant is one.
    cfg = str(write_config(tmp_path, storage_url=storage_url))
    assert run_cli(capsys, monkeypatch, "keys", "create", "--scope", "read", "--config", cfg)[0] == 0
    assert run_cli(capsys, monkeypatch, "tenants", "create", "acme", "--config", cfg)[0] == 0
    code, _, err = run_cli(capsys, monkeypatch, "keys", "create", "--scope", "read", "--config", cfg)
    assert code == 2 and "--tenant" in err, err
    code, out, err = run_cli(capsys, monkeypatch, "keys", "create", "--scope", "read", "--tenant", "acme", "--config", cfg)
    assert code == 0 and out.startswith("qh_"), err
