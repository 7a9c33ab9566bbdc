"""A query picture from an image URL, fetched the safe way.

A server that fetches what a stranger names can be pointed at itself, at its cloud's metadata service or at the
private network behind it (server-side request forgery). So, by default:
- http and https only;
- every address a host name resolves to must be public: loopback, private, link-local, shared, reserved and
  multicast ranges are refused, unless `Fetcher.allow` names the network (URL_ALLOW_NETWORKS);
- the connection goes to the address that was checked (the name is not resolved a second time), with the host
  name kept for the Host header and TLS;
- redirects are followed by hand, at most `max_redirects`, each one checked like the first;
- the body is read in chunks and cut off above `max_bytes` or after `timeout_s` in all;
- what arrives is then decoded by the same decoder as uploads (training.images.open_image), by the caller.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from training.images import BadImage

USER_AGENT = "search-by-image (+query by URL)"
TIMEOUT_S = 10.0  # the whole download, redirects included
MAX_REDIRECTS = 3


class FetchError(BadImage):
    """The URL cannot be used as a query picture; the message says why and what to do."""


def parse_networks(text: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """`10.0.0.0/8, 127.0.0.1` → networks; a bad entry is an error that names it."""
    out = []
    for item in (text or "").replace(";", ",").split(","):
        if item.strip():
            try:
                out.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"URL_ALLOW_NETWORKS: {item.strip()!r} is not an address or network "
                                 "(write e.g. 10.0.0.0/8, 127.0.0.1)") from None
    return out


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass
class Fetcher:
    max_bytes: int
    timeout_s: float = TIMEOUT_S
    max_redirects: int = MAX_REDIRECTS
    allow: list = field(default_factory=list)  # networks allowed although not public

    def _address(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, checked address) of `url`, or FetchError saying why it is refused."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchError(f"only http:// and https:// image URLs are fetched, not {scheme or 'this'}: "
                             "give the address of an image on the web, or upload the file")
        host = parts.hostname
        if not host:
            raise FetchError(f"{url!r} has no host name: give a full address such as https://example.com/a.jpg")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"{url!r} has a port that is not a number") from None
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise FetchError(f"the host {host!r} could not be found: check the address") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        for ip in addresses:  # every address: a name that resolves to a public and a private one is refused
            if not is_public(ip) and not any(ip in net for net in self.allow if net.version == ip.version):
                raise FetchError(
                    f"{host} is a private, loopback or link-local address ({ip}); this server does not fetch "
                    "from those: upload the picture instead (an operator can allow a network with URL_ALLOW_NETWORKS)"
                )
        return scheme, host, port, str(addresses[0])

    def fetch(self, url: str) -> bytes:
        """The bytes at `url` (following up to `max_redirects` checked redirects), or FetchError."""
        url = str(url or "").strip()
        if not url:
            raise FetchError("give an image URL (http:// or https://)")
        deadline = time.monotonic() + self.timeout_s
        for _ in range(self.max_redirects + 1):
            scheme, host, port, ip = self._address(url)
            response_url, body, location = self._get(url, scheme, host, port, ip, deadline)
            if location is None:
                return body
            url = urljoin(response_url, location)
        raise FetchError(f"the URL redirected more than {self.max_redirects} times: give the image's own address")

    def _get(self, url, scheme, host, port, ip, deadline) -> tuple[str, bytes, str | None]:
        parts = urlsplit(url)
        target = f"[{ip}]" if ":" in ip else ip
        direct = parts._replace(netloc=f"{target}:{port}").geturl()
        headers = {"Host": host if port in (80, 443) else f"{host}:{port}", "User-Agent": USER_AGENT,
                   "Accept": "image/*"}
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        remaining = max(0.1, deadline - time.monotonic())
        timeout = httpx.Timeout(min(remaining, 5.0), connect=min(remaining, 5.0))
        try:
            with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client:
                with client.stream("GET", direct, headers=headers, extensions=extensions) as r:
                    if r.is_redirect:
                        return url, b"", r.headers.get("location", "")
                    if r.status_code != 200:
                        raise FetchError(f"the server answered {r.status_code} {r.reason_phrase} for {url}: "
                                         "check the address")
                    declared = r.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > self.max_bytes:
                        raise self._too_large()
                    chunks, size = [], 0
                    for chunk in r.iter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise self._too_large()
                        if time.monotonic() > deadline:
                            raise self._too_slow()
                        chunks.append(chunk)
                    return url, b"".join(chunks), None
        except httpx.TimeoutException:
            raise self._too_slow() from None
        except httpx.HTTPError as e:
            raise FetchError(f"could not fetch {url}: {type(e).__name__}; check the address, or upload the "
                             "picture instead") from None

    def _too_large(self) -> FetchError:
        return FetchError(f"the image at that URL is larger than {self.max_bytes / 2**20:g} MB: "
                          "give a smaller one, or upload it")

    def _too_slow(self) -> FetchError:
        return FetchError(f"the image took longer than {self.timeout_s:g} s to download: try again, or upload it")
