"""Outbound requests to addresses a tenant chose (webhook deliveries): resolve the host once,
judge the address (core/egress.py), and connect to exactly that address.

Checking a name and then letting the HTTP client resolve it again would leave a gap a DNS
server can use (answer a public address to the check, 127.0.0.1 to the connection). So the
request goes to the checked IP itself, with the URL's host name kept where the receiver needs
it: the `Host` header, and for https the TLS server name (SNI) and certificate check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

import msgspec

from .core import egress


class Refused(Exception):
    """The URL cannot be sent to; the message says why (it is recorded as the attempt's error)."""


class Pinned(msgspec.Struct):
    url: str  # the URL with its host replaced by the address to connect to
    headers: dict[str, str]  # Host: the URL's own host
    extensions: dict[str, str]  # sni_hostname for https to a name
    address: str


async def _resolve(host: str, port: int, timeout_s: float) -> list[egress.Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host!r}: {exc}") from None
    except asyncio.TimeoutError:
        raise Refused(f"cannot resolve {host!r}: no answer within {timeout_s:g}s") from None
    found: list[egress.Address] = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])  # no IPv6 zone ids
        if ip not in found:
            found.append(ip)
    return found


async def pin(url: str, allowed: list[egress.Network], timeout_s: float) -> Pinned:
    """The request to make for `url`: to the first address its host resolves to that the
    policy allows. Raises Refused when there is none."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused("the URL is not an absolute http:// or https:// URL")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        ascii_host = host.encode("idna").decode("ascii") if not _is_ip(host) else host
    except (ValueError, UnicodeError) as exc:
        raise Refused(f"the URL's host or port is not valid: {exc}") from None
    addresses = await _resolve(ascii_host, port, timeout_s)
    reasons = []
    for ip in addresses:
        why = egress.refusal(ip, allowed)
        if why is None:
            shown = f"[{ip}]" if ip.version == 6 else str(ip)
            userinfo = parts.netloc.rpartition("@")[0]
            netloc = (userinfo + "@" if userinfo else "") + f"{shown}:{port}"
            host_header = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
            if parts.port is not None:
                host_header += f":{parts.port}"
            extensions = {"sni_hostname": ascii_host} if parts.scheme == "https" and not _is_ip(host) else {}
            return Pinned(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), {"Host": host_header},
                          extensions, str(ip))
        reasons.append(why)
    if not reasons:
        raise Refused(f"{host!r} resolves to no address")
    raise Refused(reasons[0] if len(reasons) == 1 else f"{host!r}: every address is refused; {reasons[0]}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
