"""Signing in to the dashboard: cookies, CSRF, rate limiting, roles, tenants and the error
shape of dashboard answers. The real app through Litestar's TestClient, on a real SQLite file."""

from __future__ import annotations

import re

import pytest

from conftest import make_api, write_config
from dashboard_data import seed
from qahub_lite.config import load_config
from qahub_lite.core import tenancy, users
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines

PASSWORDS = {"ann": "ann's password", "mo": "mo's password", "vi": "vi's password", "tess": "tess's password"}


@pytest.fixture(scope="module")
def site(tmp_path_factory, module_storage_url):
    folder = tmp_path_factory.mktemp("web-auth")
    config = load_config(write_config(folder, "[dashboard]\nlogin_attempts = 3\n", storage_url=module_storage_url), environ={})
    client, boot = make_api(config)
    with direct_connection(config) as conn:
        users.create_user(conn, "ann", tenant_id=boot.tenant_id, role="admin", password=PASSWORDS["ann"])
        users.create_user(conn, "mo", tenant_id=boot.tenant_id, role="member", password=PASSWORDS["mo"])
        users.create_user(conn, "vi", tenant_id=boot.tenant_id, role="viewer", password=PASSWORDS["vi"])
        other = tenancy.create_tenant(conn, "other org")
        users.create_user(conn, "tess", tenant_id=other.id, role="admin", password=PASSWORDS["tess"])
        other_key = tenancy.create_key(conn, other.id, scope="admin").key
    with client:
        data = seed(client, {"Authorization": f"Bearer {boot.admin_key}"}, runs_on_main=3)
        yield client, config, data, other_key


def login_csrf(client) -> str:
    page = client.get("/login")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def sign_in(client, username: str, password: str | None = None, next_path: str = "/"):
    client.cookies.clear()
    token = login_csrf(client)
    return client.post("/login", data={"csrf": token, "username": username,
                                       "password": password or PASSWORDS[username], "next": next_path},
                       follow_redirects=False)


def csrf_of(client, path: str = "/") -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(path).text).group(1)


def test_pages_ask_to_sign_in_and_come_back(site):
    client, _, data, _ = site
    client.cookies.clear()
    r = client.get(f"/runs/{data.latest_short_id}?status=FAILED", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next=%2Fruns%2F{data.latest_short_id}%3Fstatus%3DFAILED"
    r = sign_in(client, "vi", next_path=f"/runs/{data.latest_short_id}")
    assert r.status_code == 303 and r.headers["location"] == f"/runs/{data.latest_short_id}"


def test_the_session_cookie_is_httponly_samesite_and_holds_no_password(site):
    client, _, _, _ = site
    r = sign_in(client, "vi")
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("qahub_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=604800" in cookie
    assert "Secure" not in cookie  # public_url is http here
    assert PASSWORDS["vi"] not in cookie


def test_cookies_are_secure_when_the_public_url_is_https(tmp_path, storage_url):
    config = load_config(write_config(tmp_path, storage_url=storage_url), environ={"QAHUB_SERVER_PUBLIC_URL": "https://qa.example.test"})
    client, _ = make_api(config)
    with client:
        r = client.get("/login")
        assert "Secure" in r.headers["set-cookie"]


def test_a_wrong_password_is_refused_the_same_way_as_an_unknown_user(site):
    client, _, _, _ = site
    wrong = sign_in(client, "mo", "not mo's password")
    unknown = sign_in(client, "nobody-here", "whatever password")
    for r in (wrong, unknown):
        assert r.status_code == 401
        assert "Wrong user name or password" in r.text
        assert "qahub_session=" not in r.headers.get("set-cookie", "")


def test_sign_in_attempts_are_rate_limited_per_user_and_address(site):
    client, _, _, _ = site
    for _ in range(3):
        assert sign_in(client, "ann", "guessing wrong").status_code == 401
    blocked = sign_in(client, "ann")  # even the right password waits now
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in blocked.text
    assert sign_in(client, "mo").status_code == 303  # another user is not locked out


def test_a_forged_or_missing_csrf_token_is_refused(site):
    client, _, data, _ = site
    client.cookies.clear()
    login_csrf(client)
    r = client.post("/login", data={"csrf": "forged", "username": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 403 and "security token" in r.text
    sign_in(client, "mo")
    target = f"/projects/{data.project_id}/tests/{data.checkout_test_id}/quarantine"
    for form in ({"action": "on"}, {"action": "on", "csrf": "forged"}):
        r = client.post(target, data=form)
        assert r.status_code == 403 and "security token" in r.text
    r = client.post(target, data={"action": "on"}, headers={"Accept": "application/json"})
    assert r.status_code == 403
    assert r.json() == {"error": "Forbidden", "message": r.json()["message"]}
    assert client.post(target, data={"action": "on", "csrf": csrf_of(client), "next": "/"}, follow_redirects=False
                       ).status_code == 303


def test_next_never_leaves_the_site(site):
    client, _, _, _ = site
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example/phish",
                 "/\n/evil.example", "/\r\n/evil.example", "/ /evil.example", "/\u3000/evil.example",
                 "/\x00x", "/\x7f/evil.example", "/a\\b"):
        r = sign_in(client, "vi", next_path=evil)
        assert r.status_code == 303 and r.headers["location"] == "/", repr(evil)
    assert sign_in(client, "vi", next_path="/runs?status=FAILED&q=a%20b").headers["location"] == "/runs?status=FAILED&q=a%20b"


def test_a_next_from_the_address_bar_is_never_a_500_nor_another_site(site):
    """The same values as a browser sends them: percent-encoded in the sign-in link."""
    client, _, _, _ = site
    for raw in ("/%09/evil.example/phish", "/%0A/evil.example", "/%0D%0ASet-Cookie:x=1", "/%E3%80%80/evil.example",
                "%2F%2Fevil.example", "/%5Cevil.example"):
        client.cookies.clear()
        page = client.get(f"/login?next={raw}")
        assert page.status_code == 200, (raw, page.status_code)
        assert 'name="next" value="/"' in page.text, raw
        sign_in(client, "vi")
        r = client.get(f"/login?next={raw}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (raw, r.status_code)


def test_roles_decide_what_a_user_may_do(site):
    client, _, data, _ = site
    sign_in(client, "vi")
    assert client.get("/settings/keys").status_code == 403
    r = client.post(f"/projects/{data.project_id}/tests/{data.checkout_test_id}/quarantine",
                    data={"action": "on", "csrf": csrf_of(client)})
    assert r.status_code == 403 and "member role" in r.text
    assert "Quarantine</button>" not in client.get(f"/projects/{data.project_id}/flaky").text
    sign_in(client, "mo")
    assert client.get("/settings/users").status_code == 403
    sign_in(client, "ann")
    assert client.get("/settings/users").status_code == 200


def test_another_tenant_sees_nothing_of_this_one(site):
    client, _, data, _ = site
    sign_in(client, "tess")
    for path in (f"/runs/{data.latest_short_id}", f"/projects/{data.project_id}",
                 f"/attachments/{data.image_attachment_id}",
                 f"/projects/{data.project_id}/tests/{data.checkout_test_id}"):
        assert client.get(path).status_code == 404, path
    assert "Web shop" not in client.get("/").text


def test_sign_out_ends_the_session(site):
    client, _, data, _ = site
    sign_in(client, "mo")
    token = client.cookies.get("qahub_session")
    assert client.post("/logout", data={"csrf": "forged"}).status_code == 403
    r = client.post("/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.set("qahub_session", token)  # a copy of the old cookie is worth nothing
    assert client.get(f"/runs/{data.latest_short_id}", follow_redirects=False).status_code == 303


def test_a_user_in_two_tenants_switches_between_them(site):
    client, config, data, _ = site
    with direct_connection(config) as conn:
        other = tenancy.find_tenant(conn, "other org")
        users.set_role(conn, other.id, "vi", "viewer")
    sign_in(client, "vi")
    assert "Web shop" in client.get("/").text
    r = client.post("/session/tenant", data={"tenant_id": other.id, "csrf": csrf_of(client)}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/")
    assert "Web shop" not in page.text and "other org" in page.text
    assert client.get(f"/runs/{data.latest_short_id}").status_code == 404
    r = client.post("/session/tenant", data={"tenant_id": "not-a-tenant", "csrf": csrf_of(client)})
    assert r.status_code == 404


def test_dashboard_errors_keep_the_one_error_shape(site):
    client, _, _, _ = site
    sign_in(client, "vi")
    html = client.get("/runs/no-such-run")
    assert html.status_code == 404 and "text/html" in html.headers["content-type"]
    assert "Run not found" in html.text
    as_json = client.get("/runs/no-such-run", headers={"Accept": "application/json"})
    assert as_json.status_code == 404 and as_json.json() == {"error": "Not Found", "message": "Run not found"}
    bad = client.get("/runs?status=DONE", headers={"Accept": "application/json"})
    assert bad.status_code == 400 and set(bad.json()) == {"error", "message"}
    unknown = client.get("/runs?colour=red", headers={"Accept": "application/json"})
    assert unknown.status_code == 400 and "colour" in unknown.json()["message"]


def test_every_page_carries_a_strict_content_security_policy(site):
    client, _, data, _ = site
    sign_in(client, "ann")
    for path in ("/", "/runs", f"/runs/{data.latest_short_id}", "/settings/keys", "/login"):
        r = client.get(path)
        assert r.status_code == 200, path
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert r.headers["cache-control"] == "no-store"
        assert 'style="' not in r.text and "<script>" not in r.text  # nothing inline for the policy to refuse


def test_the_sign_in_throttle_slides_and_stays_small():
    from qahub_lite.web.throttle import SignInThrottle

    now = [1000.0]
    limiter = SignInThrottle(3, 60, max_keys=100, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("Ann", "10.0.0.1") == 0
        limiter.failed("Ann", "10.0.0.1")
        now[0] += 10
    assert limiter.retry_after("ann", "10.0.0.1") == 30  # the first failure leaves the window at 1060
    assert limiter.retry_after("ann", "10.0.0.2") == 0  # another address is not blocked
    now[0] = 1060.5
    assert limiter.retry_after("ann", "10.0.0.1") == 0
    limiter.succeeded("ann", "10.0.0.1")
    assert len(limiter) == 0
    for i in range(500):  # a flood of made-up names
        limiter.failed(f"user{i}", "10.0.0.9")
    assert len(limiter) == 100
