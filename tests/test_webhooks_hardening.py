"""Webhooks as an attacker with an admin key would aim them: at the server's own network
(refused by default, whatever the spelling, judged after DNS; an allow-list opens a network),
at read keys (no chat-webhook URLs, no receivers' answers), and at chat channels (titles cannot
add links or mentions)."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from conftest import Api, make_api, write_config
from health_helpers import FAST, Receiver, fast_api, ingest, outcomes, wait_for

from qahub_lite import outbound
from qahub_lite.config import load_config
from qahub_lite.core import egress
from qahub_lite.core.tenancy import create_key
from qahub_lite.core.webhooks import chat_text
from qahub_lite.db.database import direct_connection

pytestmark = pytest.mark.engines

ALLOW_LOOPBACK = 'allow_networks = ["127.0.0.1/32"]'


@pytest.mark.parametrize("address,why", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"), ("0.0.0.0", "unspecified"),
    ("::", "unspecified"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("2002:7f00:1::", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("100.64.0.1", "reserved"), ("224.0.0.1", "multicast"),
])
def test_internal_addresses_are_refused_by_default(address, why):
    refused = egress.refusal(ipaddress.ip_address(address), [])
    assert refused and f"a {why} address" in refused and "allow_networks" in refused


def test_public_addresses_pass_and_the_allow_list_opens_a_network():
    for public in ("8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert egress.refusal(ipaddress.ip_address(public), []) is None
    allowed = egress.parse_networks(["10.0.0.0/8", "127.0.0.1"])
    assert egress.refusal(ipaddress.ip_address("10.9.8.7"), allowed) is None
    assert egress.refusal(ipaddress.ip_address("::ffff:10.9.8.7"), allowed) is None
    assert egress.refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert egress.refusal(ipaddress.ip_address("127.0.0.2"), allowed) is not None
    with pytest.raises(ValueError, match="'intranet' is not an IP address"):
        egress.parse_networks(["intranet"])


@pytest.mark.parametrize("url", ["http://0x7f000001:8080/x", "http://2130706433:8080/x", "http://127.1:8080/x",
                                 "http://0177.0.0.1:8080/x", "http://[::1]:8080/x", "http://[::ffff:7f00:1]:8080/x",
                                 "http://localhost:8080/x", "http://169.254.169.254/latest/meta-data/"])
def test_odd_spellings_are_judged_by_the_address_they_resolve_to(url):
    with pytest.raises(outbound.Refused, match="refused to connect"):
        asyncio.run(outbound.pin(url, [], 5))


def test_the_request_goes_to_the_checked_address_with_the_url_s_host_kept():
    allowed = egress.parse_networks(["127.0.0.0/8"])
    pinned = asyncio.run(outbound.pin("https://user:pw@localhost:8443/hook?x=1#frag", allowed, 5))
    assert pinned.url == "https://user:pw@127.0.0.1:8443/hook?x=1" and pinned.address == "127.0.0.1"
    assert pinned.headers == {"Host": "localhost:8443"} and pinned.extensions == {"sni_hostname": "localhost"}
    plain = asyncio.run(outbound.pin("http://LocalHost/hook", allowed, 5))
    assert plain.url == "http://127.0.0.1:80/hook" and plain.headers == {"Host": "localhost"}
    assert plain.extensions == {}


def test_by_default_a_hook_aimed_at_the_server_s_own_network_is_never_connected_to(tmp_path, storage_url):
    receiver = Receiver().start()
    try:
        assert ALLOW_LOOPBACK in FAST  # the other webhook tests reach their receiver through it
        config = load_config(write_config(tmp_path, FAST.replace(ALLOW_LOOPBACK, ""), storage_url=storage_url), environ={})
        client, boot = make_api(config)
        with client:
            api = Api(client, config, boot.admin_key, boot.tenant_id)
            project = api.project("Shop")
            port = receiver.port
            urls = [receiver.url, f"http://0x7f000001:{port}/hook", f"http://2130706433:{port}/hook",
                    f"http://localhost:{port}/hook", f"http://[::ffff:127.0.0.1]:{port}/hook",
                    f"http://[::1]:{port}/hook"]
            hooks = [api.post(f"/api/v1/projects/{project['id']}/webhooks",
                              {"url": u, "events": ["run.completed"]}).json()["webhook"]["id"] for u in urls]
            ingest(api, project["id"], outcomes(a="PASSED"))
            for hook in hooks:
                tried = wait_for(lambda h=hook: [d for d in api.get(f"/api/v1/webhooks/{h}/deliveries").json()["data"]
                                                 if d["attempts"]])
                assert tried[0]["state"] == "pending" and tried[0]["last_status"] is None
                assert "loopback address" in tried[0]["last_error"] and "allow_networks" in tried[0]["last_error"]
        assert receiver.received == []  # not one connection reached it
    finally:
        receiver.stop()


def test_read_keys_see_no_chat_webhook_url_and_no_receiver_answer(tmp_path, storage_url):
    receiver = Receiver(statuses=[500]).start()
    try:
        with fast_api(tmp_path, storage_url=storage_url) as api:
            project = api.project("Shop")
            slack_url = "https://hooks.slack.com/services/T000/B000/secretpart"
            slack = api.post(f"/api/v1/projects/{project['id']}/webhooks",
                             {"url": slack_url, "events": ["test.flaky"], "format": "slack"}).json()["webhook"]
            hook = api.post(f"/api/v1/projects/{project['id']}/webhooks",
                            {"url": receiver.url, "events": ["run.completed"]}).json()["webhook"]
            ingest(api, project["id"], outcomes(a="PASSED"))
            delivered = wait_for(lambda: api.get(f"/api/v1/webhooks/{hook['id']}/deliveries?state=delivered")
                                 .json()["data"])
            with direct_connection(api.config) as conn:
                read = create_key(conn, api.tenant_id, scope="read").key
                write = create_key(conn, api.tenant_id, scope="write").key
            for key in (read, write):
                listed = api.get(f"/api/v1/projects/{project['id']}/webhooks", key=key).json()["data"]
                assert {h["url"] for h in listed} == {"https://hooks.slack.com/…", "http://127.0.0.1/…"}
                assert api.get(f"/api/v1/webhooks/{slack['id']}", key=key).json()["url"] == "https://hooks.slack.com/…"
                log = api.get(f"/api/v1/deliveries/{delivered[0]['id']}", key=key).json()["attempt_log"]
                assert log[0]["status_code"] == 500 and log[0]["response_body"] is None
            assert api.get(f"/api/v1/webhooks/{slack['id']}").json()["url"] == slack_url  # admins see it
            log = api.get(f"/api/v1/deliveries/{delivered[0]['id']}").json()["attempt_log"]
            assert log[0]["response_body"] == "receiver says no"
    finally:
        receiver.stop()


def _regressed(title: str, run_name: str, branch: str) -> dict:
    return {"run": {"url": "https://qa.example/runs/1", "name": run_name, "branch": branch, "status": "COMPLETED",
                    "counts": {"passed": 0, "failed": 1, "broken": 0, "skipped": 0, "flaky": 0}},
            "new_failures_total": 1, "new_failures": [{"title": title, "status": "FAILED"}]}


def test_chat_messages_carry_titles_as_text_not_as_links_or_mentions():
    hostile = "[Reset your password](https://evil.example/phish) @channel @all **now** www.evil.example"
    project = {"name": "Shop @here"}
    text = chat_text("mattermost", "run.regressed", project, _regressed(hostile, "nightly @all", "main`@all`"))
    assert "](https://evil.example" not in text and "[Reset" not in text.replace("\\[Reset", "")
    for mention in ("@channel", "@all", "@here"):
        assert mention not in text
    assert "**now**" not in text and "www.evil" not in text
    assert "](https://qa.example/runs/1)" in text  # the hub's own link stays a link
    assert "`main'@\u200ball'`" in text  # a backtick cannot end the branch's code span
    slack = chat_text("slack", "run.regressed", project, _regressed("<!channel> <https://evil.example|click>",
                                                                    "<!here>", "<!everyone>"))
    assert "<!channel>" not in slack and "<!here>" not in slack and "<!everyone>" not in slack
    assert "<https://evil.example" not in slack and "<https://qa.example/runs/1|" in slack
