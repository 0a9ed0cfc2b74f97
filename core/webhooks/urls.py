"""Which URLs a tenant may register as a webhook endpoint (pure functions).

``https://`` only, except ``http://`` on loopback hosts (local development, tests). No credentials in the URL, and
no IP literal in a private, link-local, shared or metadata range: a tenant must not be able to make Fealty's workers
call into the network they run in (SSRF). Host names are not resolved here; see docs/webhooks.md for what that leaves.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from core.errors import ValidationFailed

MAX_URL_LENGTH = 2048
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: inet_aton's shorthand forms ("2130706433", "0x7f.1", "10.1") name IPv4 addresses too.
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")

#: Never a webhook target, whatever the scheme (the brief's list, plus the other non-public IPv4/IPv6 ranges).
BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "169.254.0.0/16",  # link-local, including the cloud metadata service 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "64:ff9b::/96",  # NAT64 (would reach IPv4 private ranges)
        "fc00::/7",  # unique local, including the EC2 metadata address fd00:ec2::254
        "fe80::/10",
        "ff00::/8",
    )
)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host) or not any(c.isdigit() for c in host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback_host(host: str) -> bool:
    host = host.lower()
    if host in LOOPBACK_NAMES:
        return True
    address = _ip_literal(host)
    return address is not None and address.is_loopback


def check_endpoint_url(raw: str, *, allow_loopback: bool = True, field: str = "url") -> str:
    """The URL as given, or :class:`ValidationFailed` naming ``field`` and saying what is wrong."""

    def refuse(why: str) -> ValidationFailed:
        return ValidationFailed(f"url: {why}", field=field)

    if len(raw) > MAX_URL_LENGTH:
        raise refuse(f"at most {MAX_URL_LENGTH} characters.")
    if raw != raw.strip() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in raw):
        raise refuse("must not contain spaces or control characters.")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"not a valid URL ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.netloc:
        raise refuse("must be an absolute https:// URL.")
    if "@" in parts.netloc:
        raise refuse("must not contain a user name or password; authenticate with the signature instead.")
    if parts.fragment or raw.endswith("#"):
        raise refuse("must not contain a fragment (#...).")
    host = (parts.hostname or "").lower()
    if not host:
        raise refuse("has no host.")
    if port == 0:
        raise refuse("port 0 is not a port.")
    loopback = is_loopback_host(host)
    if loopback and not allow_loopback:
        raise refuse("loopback addresses are not allowed on this deployment.")
    if scheme == "http" and not loopback:
        raise refuse("must use https:// (http:// is accepted only for loopback hosts such as 127.0.0.1).")
    address = _ip_literal(host)
    if address is not None:
        if not loopback and any(address in network for network in BLOCKED_NETWORKS):
            raise refuse(f"{address} is a private, link-local or reserved address.")
    elif not all(_HOST_LABEL.match(label) for label in host.removesuffix(".").split(".")):
        raise refuse(f"'{host}' is not a valid host name (use the punycode form of international names).")
    return raw
