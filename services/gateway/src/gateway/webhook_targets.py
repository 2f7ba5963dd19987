"""Where a caller's webhook may point, checked when the job is submitted and again at every
delivery attempt (server-side request forgery: a webhook must not reach our own network).

A webhook is an https URL whose host is, or resolves only to, public addresses: not loopback,
private, shared (CGNAT), link-local, multicast, reserved, unspecified or documentation ranges,
IPv6 included, and IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by
that address. GATEWAY_WEBHOOK_ALLOW_PRIVATE lifts the address rule and allows plain http, for
development. Credentials in the URL are refused: the signature is how a receiver knows us.

The names in a URL are resolved by us, every time: at delivery the request goes to an address
that was just checked (see gateway.webhook_sender), so a name that resolved to a public address
at submit time and to 127.0.0.1 later (DNS rebinding) gets nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses it resolves to; raises socket.gaierror.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")
HOST_MAX = 253
# getaddrinfo errors that mean "try again later", not "no such host".
_TEMPORARY = {socket.EAI_AGAIN}


class WebhookUrlRejected(ValueError):
    """The URL breaks a rule: a 422 at submit time, a failed attempt at delivery time."""


class ResolutionUnavailable(Exception):
    """DNS did not answer in time, or failed temporarily: the host may well be fine."""


def is_public_address(address: IPAddress) -> bool:
    """True for an address anyone on the internet can reach, and only for such."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one reaches (mapped ::ffff:a.b.c.d, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A webhook URL that passed the URL rules (not yet the address rules)."""

    url: httpx.URL

    @property
    def host(self) -> str:
        """The host as it goes on the wire (IDNA-encoded; an IPv6 literal without brackets)."""
        return self.url.raw_host.decode("ascii")

    @property
    def port(self) -> int:
        if self.url.port is not None:
            return self.url.port
        return 443 if self.url.scheme == "https" else 80

    @property
    def host_header(self) -> str:
        """What the Host header says: host, and port unless it is the scheme's default."""
        return self.url.netloc.decode("ascii")

    @property
    def literal_address(self) -> IPAddress | None:
        if "%" in self.host:  # an IPv6 zone id: a link on this machine, never a webhook
            return None
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def at(self, address: IPAddress) -> httpx.URL:
        """The same URL with `address` in place of the host (the Host header and TLS server
        name are the sender's to set)."""
        return self.url.copy_with(host=str(address))


def parse(url: str, *, allow_private: bool) -> WebhookTarget:
    """Check the URL's form; raises WebhookUrlRejected."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise WebhookUrlRejected("not a valid URL") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in allowed:
        raise WebhookUrlRejected("must be an https:// URL")
    if not parsed.raw_host:
        raise WebhookUrlRejected("the URL has no host")
    if parsed.userinfo:
        raise WebhookUrlRejected("credentials in the URL are not allowed")
    target = WebhookTarget(parsed)
    if target.literal_address is None and not _is_host_name(target.host):
        raise WebhookUrlRejected("not a valid host name")
    if not 1 <= target.port <= 65535:
        raise WebhookUrlRejected("the port must be 1 to 65535")
    return target


def _is_host_name(host: str) -> bool:
    """DNS's form: labels of 1-63 letters, digits, hyphens (underscores are seen in the wild),
    253 characters at most, an optional final dot. Anything else (a percent sign, a zone id, a
    label the resolver's IDNA codec would choke on) never reaches the resolver."""
    name = host.removesuffix(".")
    return 0 < len(name) <= HOST_MAX and all(_LABEL.fullmatch(x) for x in name.split("."))


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's resolver, off the event loop (asyncio runs getaddrinfo in a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def addresses(
    target: WebhookTarget, *, allow_private: bool, resolver: Resolver
) -> list[IPAddress]:
    """The addresses to send to, in the resolver's order, all allowed. Raises
    WebhookUrlRejected (no such host, or one of its addresses is not public: none is used
    then) or ResolutionUnavailable. The caller bounds the time it may take."""
    literal = target.literal_address
    if literal is not None:
        found = [literal]
    else:
        try:
            answers = await resolver(target.host, target.port)
        except socket.gaierror as exc:
            if exc.errno in _TEMPORARY:
                raise ResolutionUnavailable(str(exc)) from None
            raise WebhookUrlRejected(f"the host {target.host} cannot be resolved") from None
        found = list(dict.fromkeys(ipaddress.ip_address(a) for a in answers))
        if not found:
            raise WebhookUrlRejected(f"the host {target.host} has no address")
    if not allow_private:
        for address in found:
            if is_public_address(address):
                continue
            if literal is not None:
                raise WebhookUrlRejected(f"{address} is not a public address")
            raise WebhookUrlRejected(
                f"{target.host} resolves to {address}, which is not a public address"
            )
    return found


async def check(
    url: str, *, allow_private: bool, timeout_seconds: float, resolver: Resolver | None = None
) -> None:
    """POST /generate's check of a webhook; raises WebhookUrlRejected or ResolutionUnavailable.

    With private addresses allowed there is nothing to resolve for: the form is enough."""
    target = parse(url, allow_private=allow_private)
    if allow_private:
        return
    try:
        async with asyncio.timeout(timeout_seconds):
            await addresses(target, allow_private=False, resolver=resolver or system_resolver)
    except TimeoutError:
        raise ResolutionUnavailable(f"no DNS answer within {timeout_seconds:g} s") from None
