"""Query pictures by URL (app/fetch.py): fetched from a real HTTP server on loopback, refused safely by default."""

import ipaddress
import time

import pytest
from gradio_client.exceptions import AppError

from app.fetch import Fetcher, FetchError, parse_networks
from tests.imageserver import LOOPBACK, ImageServer


def fetcher(**kwargs) -> Fetcher:
    return Fetcher(**{"max_bytes": 1024 * 1024, **kwargs})


@pytest.fixture(scope="module")
def images():
    server = ImageServer()
    yield server
    server.stop()


def test_an_allowed_network_is_fetched_with_the_hosts_name_and_redirects_followed(images):
    f = fetcher(allow=LOOPBACK)
    assert f.fetch(images.url + "/square.png") == images.png
    assert f.fetch(images.url + "/redirect") == images.png
    assert images.hosts[-1] == images.url.removeprefix("http://")  # connected to the checked address, named the host


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/a.png", "http://localhost:9/a.png", "http://[::1]:9/a.png", "http://10.1.2.3/a.png",
    "http://192.168.0.10/a.png", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/a.png",
    "http://0.0.0.0:9/a.png", "http://[::ffff:127.0.0.1]:9/a.png", "http://224.0.0.1/a.png",
])
def test_private_loopback_and_link_local_addresses_are_refused_by_default(url):
    with pytest.raises(FetchError, match="private, loopback or link-local.*URL_ALLOW_NETWORKS"):
        fetcher().fetch(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/", "javascript:1"])
def test_only_http_and_https_are_fetched(url):
    with pytest.raises(FetchError, match="only http:// and https://"):
        fetcher(allow=LOOPBACK).fetch(url)


def test_the_default_refuses_the_loopback_server_before_asking_it(images):
    before = len(images.hosts)
    with pytest.raises(FetchError, match="private"):
        fetcher().fetch(images.url + "/square.png")
    assert len(images.hosts) == before


def test_a_redirect_to_a_private_address_is_refused(images):
    before = len(images.hosts)
    with pytest.raises(FetchError, match=r"127\.0\.0\.2"):
        fetcher(allow=LOOPBACK).fetch(images.url + "/redirect-private")
    assert len(images.hosts) == before + 1  # the redirect was answered; its target was never asked


@pytest.fixture
def resolver(monkeypatch):
    """A stand-in DNS: the names given resolve to the addresses given, every other name as the system resolves it."""
    import socket

    real, names = socket.getaddrinfo, {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in names[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def test_a_name_that_resolves_to_a_public_and_a_private_address_is_refused(resolver):
    resolver["mixed.example"] = ["93.184.216.34", "10.0.0.5"]
    with pytest.raises(FetchError, match=r"mixed\.example is a private.*\(10\.0\.0\.5\)"):
        fetcher().fetch("http://mixed.example/a.png")
    resolver["public.example"] = ["93.184.216.34"]  # the same check passes a public-only name on to the download
    assert fetcher()._address("http://public.example/a.png") == ("http", "public.example", 80, "93.184.216.34")


def test_a_redirect_to_a_name_that_resolves_privately_is_refused(images, resolver):
    resolver["internal.example"] = ["10.0.0.7"]
    before = len(images.hosts)
    with pytest.raises(FetchError, match=r"internal\.example is a private.*\(10\.0\.0\.7\)"):
        fetcher(allow=LOOPBACK).fetch(images.url + "/redirect-name")
    assert len(images.hosts) == before + 1  # the redirect was answered; its target was never asked


def test_too_many_redirects_are_refused(images):
    with pytest.raises(FetchError, match="redirected more than 3 times"):
        fetcher(allow=LOOPBACK).fetch(images.url + "/loop")


@pytest.mark.parametrize("path", ["/big", "/endless"])
def test_a_body_over_the_size_limit_is_cut_off(images, path):
    started = time.monotonic()
    with pytest.raises(FetchError, match="larger than 1 MB"):
        fetcher(allow=LOOPBACK).fetch(images.url + path)
    assert time.monotonic() - started < 5


def test_a_server_that_stalls_is_given_up_on_time(images):
    started = time.monotonic()
    with pytest.raises(FetchError, match="longer than 1 s"):
        fetcher(allow=LOOPBACK, timeout_s=1).fetch(images.url + "/slow")
    assert time.monotonic() - started < 3


def test_an_unknown_host_and_an_http_error_say_what_to_check(images):
    with pytest.raises(FetchError, match="could not be found"):
        fetcher().fetch("http://no-such-host.invalid/a.png")
    with pytest.raises(FetchError, match="404"):
        fetcher(allow=LOOPBACK).fetch(images.url + "/missing")


def test_allow_networks_setting_is_parsed_and_a_bad_entry_named():
    assert parse_networks("10.0.0.0/8, 127.0.0.1;::1") == [ipaddress.ip_network(n) for n in
                                                            ("10.0.0.0/8", "127.0.0.1/32", "::1/128")]
    with pytest.raises(ValueError, match="'intranet'"):
        parse_networks("10.0.0.0/8,intranet")


# --- through the served app -------------------------------------------------------------------------------------
def test_search_url_refuses_loopback_by_default_and_the_server_keeps_serving(served, images):
    client, _, _ = served
    with pytest.raises(AppError, match="private, loopback or link-local"):
        client.predict(images.url + "/square.png", api_name="/search_url")
    with pytest.raises(AppError, match="only http:// and https://"):
        client.predict("file:///etc/passwd", api_name="/search_url")
    assert client.predict(api_name="/overview")["images"] > 0


@pytest.fixture
def loopback_allowed(served):
    _, service, _ = served
    before = service.fetcher.allow
    service.fetcher.allow = LOOPBACK
    yield
    service.fetcher.allow = before


def test_search_url_with_the_network_allowed_finds_squares_and_shows_the_picture(served, images, loopback_allowed):
    client, _, _ = served
    fetched, gallery, results, prediction, offset, query, note = client.predict(
        images.url + "/redirect", "cosine", 5, api_name="/search_url")
    with open(fetched, "rb") as f:
        assert f.read() == images.png
    assert len(results) == 5 and sum(r["label"] == "square" for r in results) >= 4
    assert prediction["label"] == "square" and offset == 0


def test_search_url_decodes_like_an_upload_so_a_non_image_gets_the_uploads_message(served, images, loopback_allowed):
    client, _, _ = served
    with pytest.raises(AppError, match="(?i)not an image|cannot be read|unrecognised|unsupported"):
        client.predict(images.url + "/text.png", api_name="/search_url")


def test_the_url_setting_reaches_the_fetcher(tiny_model, tmp_path):
    from app.__main__ import parse_settings
    from app.service import SearchService

    settings, _ = parse_settings(["--model", str(tiny_model), "--data-dir", str(tmp_path), "--qdrant", ":memory:",
                                  "--url-allow-networks", "192.168.1.0/24", "--url-timeout-s", "3"])
    service = SearchService(settings)
    try:
        assert service.fetcher.allow == [ipaddress.ip_network("192.168.1.0/24")]
        assert service.fetcher.timeout_s == 3
    finally:
        service.close()
