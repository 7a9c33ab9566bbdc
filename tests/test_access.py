"""Who may change a collection, and fair use: apps on loopback, called through gradio_client as a script would."""

import json
import logging
import random
import shutil

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, AuthenticationError
from PIL import Image

from tests.conftest import draw_shape, running_app

TOKEN = "adm-7f3c9e21-never-shown-4b8d"


def app(indexed, tiny_model, tmp_path, auth=None, **settings):
    """The app on its own copy of the shapes collection, with these Settings; a context of (url, service)."""
    qdrant, name = indexed
    own = tmp_path / "qdrant"
    shutil.copytree(qdrant / name, own / name, ignore=shutil.ignore_patterns(".lock"))
    return running_app(tiny_model, own, name, tmp_path / "data", auth=auth, **settings)


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "new.png"
    draw_shape("triangle", random.Random(4711)).save(path)
    return path


def _stored_files(service) -> list:
    return [p for p in service.settings.image_dir.rglob("*") if p.is_file()]


def test_with_an_admin_token_only_the_right_token_writes(indexed, tiny_model, tmp_path, picture, caplog):
    caplog.set_level(logging.DEBUG)
    with app(indexed, tiny_model, tmp_path, admin_token=TOKEN) as (url, service):
        anonymous = Client(url, verbose=False)
        before = anonymous.predict(api_name="/overview")["images"]
        _, results, *_ = anonymous.predict(handle_file(str(picture)), "cosine", 3, api_name="/search")  # open
        victim = results[0]["id"]
        with pytest.raises(AppError, match="add refused: .*no credential was sent.*Authorization: Bearer"):
            anonymous.predict([handle_file(str(picture))], "triangle", api_name="/add")
        with pytest.raises(AppError, match="delete refused: .*no credential was sent"):
            anonymous.predict(victim, api_name="/delete")
        wrong = Client(url, verbose=False, headers={"Authorization": "Bearer not-the-token"})
        with pytest.raises(AppError, match="add refused: .*not the right one"):
            wrong.predict([handle_file(str(picture))], "triangle", api_name="/add")
        with pytest.raises(AppError, match="refused"):
            anonymous.predict([handle_file(str(picture))], "triangle", "also-wrong", api_name="/add")
        assert anonymous.predict(api_name="/overview")["images"] == before and not _stored_files(service)
        assert anonymous.predict(victim, "cosine", 1, api_name="/search_by_id")  # still there

        admin = Client(url, verbose=False, headers={"Authorization": f"Bearer {TOKEN}"})
        added, _ = admin.predict([handle_file(str(picture))], "triangle", api_name="/add")
        new_id = added["added"][0]["id"]
        assert admin.predict(new_id, api_name="/delete")[0] == {"deleted": 1}
        typed, _ = anonymous.predict([handle_file(str(picture))], "triangle", TOKEN, api_name="/add")  # the box
        assert typed["added"][0]["id"] == new_id
        page = httpx.get(url).text + httpx.get(url + "config").text + httpx.get(url + "gradio_api/info").text
    audits = [json.loads(r.getMessage()) for r in caplog.records if r.name == "app.audit"]
    assert [(a["action"], a["who"], a["count"]) for a in audits] == [
        ("add", "refused", 0), ("delete", "refused", 0), ("add", "refused", 0), ("add", "refused", 0),
        ("add", "admin-token", 1), ("delete", "admin-token", 1), ("add", "admin-token", 1)]
    assert all(a["client"] == "127.0.0.1" and a["time"].endswith("Z") for a in audits)
    assert audits[4]["ids"] == [new_id] and "no credential" in audits[0]["note"]
    assert TOKEN not in caplog.text and TOKEN not in page  # never logged, never in the page or its config


def test_served_beyond_loopback_without_a_token_is_read_only_and_search_stays_open(indexed, tiny_model, tmp_path,
                                                                                  picture):
    with app(indexed, tiny_model, tmp_path, public=True) as (url, service):
        client = Client(url, verbose=False)
        with pytest.raises(AppError, match="read-only here.*operator can set ADMIN_TOKEN.*Nothing was stored"):
            client.predict([handle_file(str(picture))], "triangle", api_name="/add")
        with pytest.raises(AppError, match="delete refused"):
            client.predict("00000000-0000-5000-8000-000000000000", api_name="/delete")
        assert len(client.predict(handle_file(str(picture)), "hamming", 4, api_name="/search")[1]) == 4
        assert len(client.predict([handle_file(str(picture))], "cosine", 2, api_name="/search_batch")) == 1
        dups = client.predict(handle_file(str(picture)), 0.5, api_name="/check_duplicates")
        assert dups and all(d["score"] >= 0.5 and d["identical"] is False for d in dups)  # a new picture, not stored
        shown, groups = client.predict(0.5, 200, api_name="/duplicates")  # shapes of a class: near-duplicates at 0.5
        assert groups and all(len(g) >= 2 for g in groups) and len(shown) == sum(min(len(g), 4) for g in groups[:12])
        assert "read-only" in service.access.describe() and not _stored_files(service)


def test_read_only_can_be_forced_on_loopback_and_opened_by_the_operator(indexed, tiny_model, tmp_path, picture):
    with app(indexed, tiny_model, tmp_path, read_only=True) as (url, _):
        with pytest.raises(AppError, match="add refused"):
            Client(url, verbose=False).predict([handle_file(str(picture))], "", api_name="/add")
    with app(indexed, tiny_model, tmp_path / "open", public=True, read_only=False) as (url, _):
        added, _ = Client(url, verbose=False).predict([handle_file(str(picture))], "", api_name="/add")
        assert len(added["added"]) == 1


@pytest.mark.parametrize("argv, env, public", [
    ([], {}, False), (["--host", "0.0.0.0"], {}, True), (["--host", "192.0.2.10"], {}, True),
    (["--host", "::1"], {}, False), ([], {"SPACE_ID": "alice/search"}, True),
    (["--read-only", "0", "--host", "0.0.0.0"], {}, True),
])
def test_read_only_is_decided_by_where_the_app_is_served(argv, env, public, monkeypatch):
    """`python -m app`'s own settings: beyond loopback or on a Space, writes need a credential; an operator's
    --read-only 0 opens them anyway."""
    from app.__main__ import parse_settings
    from app.access import Access

    for name in ("SPACE_ID", "ADMIN_TOKEN", "READ_ONLY", "OAUTH", "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings, _ = parse_settings(argv)
    access = Access(settings.admin_token, settings.public, settings.read_only, settings.oauth)
    assert settings.public is public
    assert access.locked is (public and "0" not in argv)


def _login(url: str) -> dict[str, str]:
    """Follow the login button's route; the session cookie (marked Secure, so a script on plain http carries it
    by hand) becomes a header for gradio_client."""
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        r = http.get("login/huggingface")
        while r.is_redirect and "session=" not in r.headers.get("set-cookie", ""):
            r = http.get(r.headers["location"])
        cookie = r.headers["set-cookie"].split(";")[0]
    assert cookie.startswith("session=")
    return {"Cookie": cookie}


@pytest.mark.parametrize("writers, orgs, allowed", [("alice", "", True), ("bob", "", False),
                                                    ("bob", "image-team", True)])
def test_sign_in_with_hugging_face_lets_the_owner_or_org_write_and_no_one_else(
        indexed, tiny_model, tmp_path, picture, signed_in_as_alice, writers, orgs, allowed):
    with app(indexed, tiny_model, tmp_path, oauth=True, write_users=writers, write_orgs=orgs) as (url, service):
        anonymous = Client(url, verbose=False)
        with pytest.raises(AppError, match="add refused: .*no credential.*sign in with Hugging Face"):
            anonymous.predict([handle_file(str(picture))], "triangle", api_name="/add")
        alice = Client(url, verbose=False, headers=_login(url))
        if allowed:
            added, _ = alice.predict([handle_file(str(picture))], "triangle", api_name="/add")
            assert len(added["added"]) == 1
        else:
            with pytest.raises(AppError, match="@alice may not change this collection"):
                alice.predict([handle_file(str(picture))], "triangle", api_name="/add")
            assert not _stored_files(service)
        assert "Sign in with Hugging Face" in httpx.get(url + "config").text


def test_a_flooding_client_is_refused_while_another_is_answered(indexed, tiny_model, tmp_path, picture):
    """Per client, by address. Two clients on one machine are told apart as a reverse proxy in front of the app
    (one trusted hop) tells them: it appends the address it was reached from to X-Forwarded-For."""
    with app(indexed, tiny_model, tmp_path, requests_per_min=5, upload_mb_per_min=0.01, trusted_hops=1) as (url, _):
        flood = Client(url, verbose=False, headers={"X-Forwarded-For": "203.0.113.7"})
        other = Client(url, verbose=False, headers={"X-Forwarded-For": "203.0.113.8"})
        _, results, *_ = flood.predict(handle_file(str(picture)), "cosine", 3, api_name="/search")
        for _ in range(4):
            flood.predict(results[0]["id"], "cosine", 3, api_name="/search_by_id")
        with pytest.raises(AppError, match="too many requests from you: at most 5 a minute; try again in \\d+ s"):
            flood.predict(results[0]["id"], "cosine", 3, api_name="/search_by_id")
        assert len(other.predict(handle_file(str(picture)), "cosine", 3, api_name="/search")[1]) == 3
        big = tmp_path / "big.png"
        Image.frombytes("RGB", (64, 64), random.Random(1).randbytes(64 * 64 * 3)).save(big)  # noise: 12 kB as PNG
        with pytest.raises(AppError, match="too many pictures from you: at most 0.01 MB a minute"):
            other.predict([handle_file(str(big)), handle_file(str(big))], "cosine", 3, api_name="/search_batch")


def test_a_forged_x_forwarded_for_does_not_escape_the_limit_with_the_space_settings(
        indexed, tiny_model, tmp_path, picture, monkeypatch):
    """With a Space's settings (uvicorn believing every X-Forwarded-For, FORWARDED_ALLOW_IPS=*; one trusted hop):
    12 searches, each with another forged entry before the one the proxy appended, are one client: 5 answered, 7
    refused (before: 12 answered)."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # read by uvicorn when the app starts
    with app(indexed, tiny_model, tmp_path, requests_per_min=5, trusted_hops=1) as (url, service):
        answered = refused = 0
        for n in range(12):
            forged = f"198.51.100.{n}, 203.0.113.7"  # the client's lie, then what the proxy appended
            client = Client(url, verbose=False, headers={"X-Forwarded-For": forged})
            try:
                client.predict(handle_file(str(picture)), "cosine", 3, api_name="/search")
                answered += 1
            except AppError as e:
                assert "too many requests from you" in str(e)
                refused += 1
    assert (answered, refused) == (5, 7)


@pytest.mark.parametrize("peer, header, hops, client", [
    ("10.0.0.2", None, 1, "10.0.0.2"),  # no header: not through the proxy
    ("10.0.0.2", "1.2.3.4", 0, "10.0.0.2"),  # no proxy: a header is the client's own writing
    ("10.0.0.2", "6.6.6.6, 1.2.3.4", 1, "1.2.3.4"),  # the proxy appended 1.2.3.4
    ("10.0.0.2", ["6.6.6.6", "1.2.3.4, 10.0.0.9"], 2, "1.2.3.4"),  # two proxies, the header sent twice
    ("10.0.0.2", "1.2.3.4", 2, "10.0.0.2"),  # fewer entries than proxies: it did not come through them all
])
def test_the_client_is_the_entry_the_outermost_trusted_proxy_wrote(peer, header, hops, client):
    from app.access import client_address

    assert client_address(peer, header, hops) == client


def test_work_per_request_is_capped_with_a_message(indexed, tiny_model, tmp_path, picture):
    with app(indexed, tiny_model, tmp_path, max_k=20, max_batch=2, max_sample=50) as (url, service):
        client = Client(url, verbose=False)
        # the sliders' maxima are the caps, so Gradio itself answers first
        with pytest.raises(AppError, match="Value 21 is greater than maximum value 20"):
            client.predict(handle_file(str(picture)), "cosine", 21, api_name="/search")
        with pytest.raises(AppError, match="3 images in one batch; the most is 2"):
            client.predict([handle_file(str(picture))] * 3, "cosine", 3, api_name="/search_batch")
        with pytest.raises(AppError, match="Value 51 is greater than maximum value 50"):
            client.predict(0.99, 51, api_name="/duplicates")
        assert len(client.predict(handle_file(str(picture)), "cosine", 20, api_name="/search")[1]) == 20
        with pytest.raises(ValueError, match="k must be between 1 and 20, not 21; page on"):  # the service's own
            service.search(picture.read_bytes(), "cosine", 21)
        with pytest.raises(ValueError, match="between 1 and 50 images, not 51"):
            service.duplicates(0.99, 51)


def test_the_whole_app_can_sit_behind_a_login(indexed, tiny_model, tmp_path, picture):
    from app.main import read_auth_file

    users = tmp_path / "users.txt"
    users.write_text("# who may use this app\nana:correct-horse\n")
    with app(indexed, tiny_model, tmp_path, auth=read_auth_file(users)) as (url, _):
        with pytest.raises(AuthenticationError, match="credentials were not provided"):
            Client(url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, verbose=False, auth=("ana", "wrong-horse"))
        client = Client(url, verbose=False, auth=("ana", "correct-horse"))
        assert len(client.predict(handle_file(str(picture)), "cosine", 2, api_name="/search")[1]) == 2
    users.write_text("ana\n")
    with pytest.raises(ValueError, match="line 1: write `user:password`"):
        read_auth_file(users)
