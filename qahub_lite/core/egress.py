"""Which addresses the server may connect to on a tenant's behalf (webhook deliveries).

A webhook URL is chosen by whoever holds an admin key of a tenant, and the server sends to it
from inside the network it runs in. Without a fence, a hook aimed at `http://127.0.0.1:…`,
`http://169.254.169.254/` (cloud metadata) or `http://10.0.0.5/` reaches what only the server
can reach. So only globally routable addresses are allowed by default, and an operator lists
the internal networks that hooks may reach (`[webhooks] allow_networks` in qahub.toml).

The decision is made on the address a connection actually goes to, after DNS (the sender
resolves once and connects to that very address), never on the URL's spelling: `0x7f000001`,
`2130706433`, `127.1`, `[::1]` and `[::ffff:127.0.0.1]` are all 127.0.0.1 by then. IPv6
addresses that carry an IPv4 address (IPv4-mapped, 6to4, Teredo, NAT64) are judged by it too.
No HTTP here: the sender (qahub_lite/outbound.py) asks `refusal` before it connects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """`["127.0.0.1/32", "10.0.0.0/8", "fd00::/8", "192.168.1.20"]` as networks; a ValueError
    names an entry that is not an address or a network."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network (write e.g. 10.0.0.0/8, 127.0.0.1 or fd00::/8)"
            ) from None
    return networks


def _carried(ip: Address) -> list[Address]:
    """The addresses to judge `ip` by: any IPv4 address an IPv6 one carries (first: it says
    most), then the address itself. An IPv4-mapped address is only another spelling of its
    IPv4 address, so that one alone is judged."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    found: list[Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [*found, ip]


def kind(ip: Address) -> str | None:
    """Why `ip` is internal ("loopback", "private", ...), or None for a public address."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


def refusal(ip: Address, allowed: list[Network]) -> str | None:
    """None when the server may connect to `ip`; else a sentence saying why not."""
    addresses = _carried(ip)
    if any(ip.version == net.version and ip in net for net in allowed) or any(
        address.version == net.version and address in net for address in addresses[:1] for net in allowed
    ):
        return None
    for address in addresses:
        why = kind(address)
        if why:
            shown = f"{ip} ({address})" if address != ip else str(ip)
            return (
                f"refused to connect to {shown}: a {why} address. Webhooks reach only public addresses unless "
                f"[webhooks] allow_networks in qahub.toml lists the network"
            )
    return None
