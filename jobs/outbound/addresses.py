"""The address policy: which IP addresses an outbound request may reach.

The URLs come from users (a job's ``file_url``, a webhook target) while the requests leave
from inside our network, so every address is judged before anything connects to it. The
rules live here alone, apart from the HTTP client, so they can be read and tested on their
own and every outbound caller shares the same ones.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from jobs.outbound.errors import FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Checked in order, so the specific reason (metadata) wins over the general one (link-local).
_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("169.254.169.254/32", "a cloud metadata address"),
        ("100.100.100.200/32", "a cloud metadata address"),
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a reserved address"),  # "this network"
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("169.254.0.0/16", "a link-local address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("192.0.0.0/24", "a reserved address"),  # IETF protocol assignments
        ("192.88.99.0/24", "a reserved address"),  # deprecated 6to4 relay anycast
        ("198.18.0.0/15", "a reserved address"),  # benchmarking
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
    )
)
_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("fd00:ec2::254/128", "a cloud metadata address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("2001:db8::/32", "a documentation address"),
        ("100::/64", "a reserved address"),  # discard-only
        ("64:ff9b:1::/48", "a reserved address"),  # local-use NAT64: translates to anywhere
        ("2001::/23", "a reserved address"),  # IETF protocol assignments, Teredo among them
        ("::/8", "a reserved address"),  # includes the deprecated IPv4-compatible ::a.b.c.d
    )
)
# Forms that carry an IPv4 address inside: judged by the address they carry.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# One part of an inet_aton-style IPv4 literal: hex, octal or decimal.
_V4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address an IP literal stands for, or None for a host name.

    Beyond the standard forms this reads what ``inet_aton`` (and so most resolvers and
    browsers) accepts, such as ``2130706433``, ``0177.0.0.1``, ``0x7f.1``: a literal must
    be judged by the address it will reach, not by how it is spelled.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(part) for part in parts):
        return None
    values = [
        int(part[2:] or "0", 16)
        if part[:2].lower() == "0x"
        else int(part, 8)
        if part.startswith("0")
        else int(part)
        for part in parts
    ]
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched from ("a private address"), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and (ip in _NAT64 or ip in _V4_TRANSLATED):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            problem = _address_problem(embedded)
            return f"{problem} ({embedded} embedded)" if problem else None
        rules: tuple[tuple[Any, str], ...] = _V6_RULES
    else:
        rules = _V4_RULES
    for network, reason in rules:
        if ip in network:
            return reason
    # Whatever else the standard library knows is not globally reachable.
    return None if ip.is_global else "a non-public address"


def check_address(ip: IPAddress | str) -> None:
    """Raise ``FetchError("url_refused")`` unless ``ip`` is a public unicast address.

    The one place the address policy lives: private, loopback, link-local, cloud metadata,
    carrier-grade NAT, unique-local, multicast, reserved and unspecified addresses are
    refused, and IPv6 forms that embed an IPv4 address (mapped, 6to4, NAT64) are judged by
    the IPv4 address inside. Strings go through ``parse_ip_literal`` first.
    """
    address = parse_ip_literal(ip) if isinstance(ip, str) else ip
    if address is None:
        raise FetchError(f"{ip!r} is not an IP address", code="url_refused")
    problem = _address_problem(address)
    if problem:
        raise FetchError(f"{address} is {problem}", code="url_refused")


def ascii_host(url: httpx.URL) -> str:
    """The host as it goes on the wire (IDNA), which is what DNS and the allow list see."""
    return url.raw_host.decode("ascii")


@dataclass(frozen=True)
class AllowedHosts:
    """Host names and addresses let through despite the policy (dev and tests only)."""

    names: frozenset[str]
    addresses: frozenset[IPAddress]

    @classmethod
    def parse(cls, entries: Collection[str]) -> AllowedHosts:
        names: set[str] = set()
        addresses: set[IPAddress] = set()
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            address = parse_ip_literal(text)
            if address is not None:
                addresses.add(address)
            elif text:
                names.add(text)
        return cls(frozenset(names), frozenset(addresses))

    def host(self, url: httpx.URL) -> bool:
        return bool({url.host.rstrip("."), ascii_host(url).rstrip(".")} & self.names)


def allowed_hosts_from_settings() -> tuple[str, ...]:
    """``JOBSITE_FETCH_ALLOW_HOSTS`` ("a,b" or a list) as the ``allow_hosts`` for ``fetch``."""
    raw = getattr(settings, "JOBSITE_FETCH_ALLOW_HOSTS", "") or ""
    items = raw.split(",") if isinstance(raw, str) else raw
    return tuple(item.strip() for item in items if item and item.strip())
