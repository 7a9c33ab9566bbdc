"""The page in a real browser: Debian's Chromium driven by Playwright (never a browser download)."""

import contextlib
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import draw_shape, on_paper

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "browser"
# Debian's Chromium as root, offline: no sandbox, no GPU, no background calls to the (closed) network.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def page_at(url: str, width: int, height: int, shot: str, camera: bool = False):
    """A page of the app in Chromium; a failing test leaves its screenshot at test-output/browser/<shot>-failed.png
    (a passing one at <shot>.png) for inspection."""
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # camera: Chromium's own test camera (a moving pattern) stands in for a webcam, allowed without a prompt
        fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"] if camera else []
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + fake)
        try:
            context = browser.new_context(viewport={"width": width, "height": height},
                                          permissions=["camera"] if camera else [])
            page = context.new_page()
            # Not "networkidle": the page keeps a heartbeat stream open (Gradio's, for the per-session history).
            page.goto(url, wait_until="load")
            page.get_by_role("button", name="Search", exact=True).wait_for(timeout=30_000)
            (OUTPUT / f"{shot}-failed.png").unlink(missing_ok=True)  # an earlier run's
            try:
                yield page
            except BaseException:
                page.screenshot(path=str(OUTPUT / f"{shot}-failed.png"), full_page=True)
                raise
            page.screenshot(path=str(OUTPUT / f"{shot}.png"), full_page=True)
        finally:
            browser.close()


def _shape(tmp_path, kind: str, seed: int) -> Path:
    path = tmp_path / f"{kind}-{seed}.png"
    draw_shape(kind, random.Random(seed)).save(path)
    return path


def _search_with(page, path) -> None:
    page.locator("input[type=file]").first.set_input_files(str(path))
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#results button.thumbnail-item").first.wait_for(timeout=30_000)


def _captions(page) -> list[str]:
    return page.locator("#results .caption-label").all_inner_texts()


def _shown(page) -> list[str]:
    """The result images on the page (their file names carry the ids)."""
    return [src.rsplit("/", 1)[-1] for src in page.eval_on_selector_all(
        "#results button.thumbnail-item img", "els => els.map(e => e.getAttribute('src'))")]

def _wait_shown(page, n: int = 10, differs_from: list[str] | None = None, equals: list[str] | None = None) -> None:
    """Wait until the page shows `n` results (and, if given, not `differs_from` / exactly `equals`, as `_shown`
    names them): a condition on the page, never a guess at how long a search takes."""
    page.wait_for_function("""([n, differs, equals]) => {
        const shown = [...document.querySelectorAll('#results button.thumbnail-item img')]
            .map(e => (e.getAttribute('src') || '').split('/').pop());
        if (shown.length !== n) return false;
        if (differs && shown.join('|') === differs.join('|')) return false;
        return !equals || shown.join('|') === equals.join('|'); }""", arg=[n, differs_from, equals], timeout=30_000)


pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def test_upload_search_and_see_k_results(served, tmp_path):
    client, _, _ = served
    query = _shape(tmp_path, "circle", 3)
    with page_at(client.src, 1400, 1000, "search") as page:
        _search_with(page, query)
        _wait_shown(page, 10)  # k's default
        assert "circle" in page.locator("body").inner_text()
    assert (OUTPUT / "search.png").stat().st_size > 10_000


def test_a_photo_on_a_light_background_is_prepared_and_the_page_says_so(served, tmp_path):
    """A person's photo: the circle small and off-centre on a light background, in a wide frame. The page shows
    circles, and the note says the picture was moved in its own colours onto the collection's background."""
    client, _, _ = served
    query = tmp_path / "photo.jpg"
    on_paper(draw_shape("circle", random.Random(5)), (480, 320), (300, 40), scale=4).save(query, quality=85)
    with page_at(client.src, 1400, 1000, "photo") as page:
        _search_with(page, query)
        page.locator("#query-note").get_by_text("in its own colours").wait_for(timeout=30_000)
        captions = page.locator("#results").inner_text()
        assert captions.count("circle") >= 7, captions


def test_browse_upload_then_click_a_result_for_more_like_it_then_back(served, tmp_path):
    """The whole browse: upload → results → click the third result → new results, the clicked image's neighbours
    (itself left out), and the note says whose → Back → the first results again."""
    client, service, _ = served
    query = _shape(tmp_path, "triangle", 11)
    with page_at(client.src, 1400, 1000, "browse") as page:
        _search_with(page, query)
        _wait_shown(page, 10)
        first, first_captions = _shown(page), _captions(page)
        assert len(first) == 10 and first_captions[0].startswith("#1 ")
        page.locator("#results button.thumbnail-item").nth(2).click()
        like = page.locator("#like-id textarea, #like-id input").first
        page.wait_for_function("() => { const e = document.querySelector('#like-id textarea, #like-id input');"
                               " return e && e.value.length > 0; }", timeout=30_000)
        page.locator("#query-note").get_by_text("More like the stored image").wait_for(timeout=30_000)
        _wait_shown(page, 10, differs_from=first)
        second = _shown(page)
        assert len(second) == 10 and second != first
        assert like.input_value() in page.locator("#query-note").inner_text()
        (clicked,) = service.require_store().retrieve([like.input_value()])
        assert first[2].startswith(clicked.payload["sha256"]) and first[2] not in second  # the clicked one, left out
        page.locator("#back").click()
        page.wait_for_function("() => { const e = document.querySelector('#like-id textarea, #like-id input');"
                               " return e && e.value === ''; }", timeout=30_000)
        page.locator("#query-note").get_by_text("Prepared").wait_for(timeout=30_000)
        _wait_shown(page, 10, equals=first)
        assert _captions(page) == first_captions


def _ids_in(page, box: str, n: int) -> list[str]:
    """Wait until the examples box `box` (#positive-ids, #negative-ids) holds n ids, and return them."""
    page.wait_for_function("([box, n]) => { const e = document.querySelector(box + ' textarea, ' + box + ' input');"
                           " return e && e.value.split(',').filter(s => s.trim()).length === n; }", arg=[box, n],
                           timeout=30_000)
    return page.locator(f"{box} textarea, {box} input").first.input_value().split(", ")


def test_mark_two_results_more_and_one_less_and_the_negatives_label_falls(served, tmp_path):
    """More like these, less like that, by clicks: a circle and a square marked 'more like this' (each from its own
    search), searched together; then a square marked 'less like this': squares fall in the results, the circles
    rise, and the note says what was asked."""
    client, _, _ = served
    with page_at(client.src, 1400, 1400, "examples") as page:
        page.get_by_text("More like these, less like those").click()
        page.get_by_label("marks it: more like this").check()
        _search_with(page, _shape(tmp_path, "circle", 21))
        _wait_shown(page, 10)
        page.locator("#results button.thumbnail-item").first.click()
        _ids_in(page, "#positive-ids", 1)
        before = _shown(page)
        _search_with(page, _shape(tmp_path, "square", 22))
        _wait_shown(page, 10, differs_from=before)
        page.locator("#results button.thumbnail-item").first.click()
        _ids_in(page, "#positive-ids", 2)
        shown = _shown(page)
        page.locator("#search-examples").click()
        page.locator("#query-note").get_by_text("More like 2 example(s)").wait_for(timeout=30_000)
        _wait_shown(page, 10, differs_from=shown)
        both = _captions(page)
        square = next(n for n, c in enumerate(both) if "square" in c)
        page.get_by_label("marks it: less like this").check()
        page.locator("#results button.thumbnail-item").nth(square).click()
        _ids_in(page, "#negative-ids", 1)
        page.locator("#search-examples").click()
        page.locator("#query-note").get_by_text("less like 1").wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('#results .caption-label').length === 10")
        less = _captions(page)
        assert sum("square" in c for c in less) < sum("square" in c for c in both), (both, less)
        assert sum("circle" in c for c in less) > sum("circle" in c for c in both), (both, less)
        first = _shown(page)
        page.get_by_role("button", name="Next k").click()  # the next page of the same examples
        _wait_shown(page, 10, differs_from=first)
        assert _captions(page)[0].startswith("#11 ") and "less like 1" in page.locator("#query-note").inner_text()
        page.locator("#back").click()  # the search before: the two positives alone
        page.locator("#query-note").get_by_text("less like 0").wait_for(timeout=30_000)
        page.wait_for_function("(c) => [...document.querySelectorAll('#results .caption-label')]"
                               ".map(e => e.innerText).join('|') === c", arg="|".join(both), timeout=30_000)


def _map_ready(client) -> dict:
    """The served collection's map, once the app has computed it (it does so in the background at start)."""
    import time

    deadline = time.monotonic() + 120
    while not (m := client.predict(api_name="/collection_map")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert m, "the map was not computed within 2 minutes"
    return m


def test_click_a_point_on_the_map_and_get_its_neighbours(served, tmp_path):
    """The Collection tab's map: a search's results are marked on it; a click on a point (one of the triangles)
    shows that point's neighbours below the map — triangles — and says whose they are."""
    from app.collection_map import to_pixels

    client, _, _ = served
    m = _map_ready(client)
    # A triangle with no other point within 3 px of it on the drawn map: a click lands on it, not on a neighbour
    # (the page reports a click in whole pixels).
    drawn = to_pixels(m["xy"])
    gap = np.sqrt(((drawn[:, None] - drawn[None]) ** 2).sum(-1)) + np.eye(len(drawn)) * 1e9
    n = next(i for i, label in enumerate(m["labels"]) if label == "triangle" and gap[i].min() >= 3)
    with page_at(client.src, 1000, 1400, "map") as page:
        _search_with(page, _shape(tmp_path, "circle", 31))
        _wait_shown(page, 10)
        page.get_by_role("tab", name="Collection").click()
        page.locator("#map-note").get_by_text("the current query").wait_for(timeout=30_000)
        img = page.locator("#collection-map img").first
        img.wait_for(timeout=30_000)
        box = img.bounding_box()
        natural = img.evaluate("e => [e.naturalWidth, e.naturalHeight]")
        px, py = drawn[n]
        img.click(position={"x": px * box["width"] / natural[0], "y": py * box["height"] / natural[1]})
        page.locator("#map-note").get_by_text(m["ids"][n]).wait_for(timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('#map-neighbours .caption-label').length === 10",
                               timeout=30_000)
        captions = page.locator("#map-neighbours .caption-label").all_inner_texts()
        assert sum("triangle" in c for c in captions) >= 8, captions


def test_the_page_at_phone_width_shows_full_captions_and_a_label_chart(served, tmp_path):
    """390 px wide: nothing wider than the screen, results two to a row with their captions whole, and the
    Collection tab's per-label bar chart and map drawn across the screen's width."""
    client, _, _ = served
    query = _shape(tmp_path, "circle", 12)
    with page_at(client.src, 390, 844, "phone") as page:
        _search_with(page, query)
        _wait_shown(page, 10)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        cut = page.evaluate("""() => [...document.querySelectorAll('#results .caption-label')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).length""")
        assert cut == 0
        assert all(" · similarity " in c for c in _captions(page))
        boxes = [page.locator("#results button.thumbnail-item").nth(i).bounding_box() for i in range(3)]
        assert boxes[0]["y"] == boxes[1]["y"] < boxes[2]["y"]  # two a row
        page.get_by_role("button", name="More tabs").click()  # at this width the last tabs fold into a menu
        page.locator(".overflow-dropdown button", has_text="Collection").click()
        page.locator("#collection-summary").get_by_text("images").first.wait_for(timeout=30_000)
        chart = page.locator("#label-counts canvas, #label-counts svg").first
        chart.wait_for(timeout=30_000)
        assert chart.bounding_box()["width"] > 200
        picture = page.locator("#collection-map img").first  # the map, with the search's results marked
        page.locator("#map-note").get_by_text("the current query").wait_for(timeout=60_000)
        page.wait_for_function("() => { const i = document.querySelector('#collection-map img');"
                               " return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)  # drawn, laid out
        box = picture.bounding_box()
        assert 300 <= box["width"] and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_a_webcam_picture_is_searched(served):
    """The webcam source, with Chromium's test camera standing in for a real one: capture, search, results."""
    client, _, _ = served
    with page_at(client.src, 1200, 900, "webcam", camera=True) as page:
        page.get_by_role("button", name="Capture from camera").click()
        page.get_by_text("Click to Access Webcam").click()
        page.wait_for_function("() => { const v = document.querySelector('[data-testid=image] video');"
                               " return v && v.readyState >= 2 && v.videoWidth > 0; }", timeout=30_000)  # streaming
        page.get_by_role("button", name="capture photo").click()
        page.locator("[data-testid=image] .image-frame img").wait_for(timeout=30_000)  # the captured frame, uploaded
        page.get_by_role("button", name="Search", exact=True).click()
        _wait_shown(page, 10)
        assert page.locator("#query-note").inner_text().strip()


def test_an_image_url_is_fetched_shown_and_searched(served):
    """The URL box, with an image server on loopback (its network allowed, as an operator would for their own)."""
    from tests.imageserver import LOOPBACK, ImageServer

    client, service, _ = served
    images, before = ImageServer(), service.fetcher.allow
    service.fetcher.allow = LOOPBACK
    try:
        with page_at(client.src, 1200, 900, "url") as page:
            page.locator("#query-url textarea, #query-url input").first.fill(images.url + "/square.png")
            page.get_by_role("button", name="Fetch & search").click()
            page.locator("#results button.thumbnail-item").first.wait_for(timeout=30_000)
            page.locator("[data-testid=image] .image-frame img").wait_for(timeout=30_000)  # the fetched picture
            _wait_shown(page, 10)
            assert sum("square" in c for c in _captions(page)) >= 8
    finally:
        service.fetcher.allow = before
        images.stop()


def test_a_locked_collection_says_so_and_the_token_box_lets_the_admin_add(indexed, tiny_model, tmp_path):
    """With an admin token set: the write tab says the collection is read-only; an add without the token is
    refused in the page; with the token typed in the box, it is added."""
    import shutil

    from tests.conftest import running_app

    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    picture = _shape(tmp_path, "square", 77)
    token = "adm-browser-7d1e"
    with running_app(tiny_model, tmp_path / "q", name, tmp_path / "data", admin_token=token) as (url, service):
        before = service.require_store().count()
        with page_at(url, 1200, 900, "locked") as page:
            page.get_by_role("tab", name="Add & delete").click()
            page.locator("#access-note").get_by_text("read-only").wait_for(timeout=30_000)
            page.locator("#add-files input[type=file]").set_input_files(str(picture))
            page.locator("#add-files").get_by_text(picture.name).wait_for(timeout=30_000)  # uploaded
            page.get_by_role("button", name="Add to collection").click()
            page.get_by_text("no credential was sent").first.wait_for(timeout=30_000)
            assert service.require_store().count() == before
            page.locator("#admin-token input, #admin-token textarea").first.fill(token)
            page.get_by_role("button", name="Add to collection").click()
            page.wait_for_function(f"() => document.body.innerText.includes('{before + 1:,} images')", timeout=30_000)
            assert token not in page.content()
        assert service.require_store().count() == before + 1


def test_signing_in_with_hugging_face_shows_who_may_write(indexed, tiny_model, tmp_path, signed_in_as_alice):
    """Gradio's mocked sign-in (as @alice, from the Hub stand-in): before, the tab says read-only; after, it
    names her and says she may write."""
    import shutil

    from tests.conftest import running_app

    qdrant, name = indexed
    shutil.copytree(qdrant / name, tmp_path / "q" / name, ignore=shutil.ignore_patterns(".lock"))
    with running_app(tiny_model, tmp_path / "q", name, tmp_path / "data", oauth=True, write_users="alice") as (url, _):
        with page_at(url, 1200, 900, "signed-in") as page:
            page.get_by_role("tab", name="Add & delete").click()
            page.locator("#access-note").get_by_text("read-only").wait_for(timeout=30_000)
            page.get_by_role("button", name="Sign in with Hugging Face").click()
            page.wait_for_load_state("load")  # back from the login routes, with the session cookie
            page.get_by_role("button", name="Search", exact=True).wait_for(timeout=30_000)
            page.get_by_role("tab", name="Add & delete").click()
            page.locator("#access-note").get_by_text("Signed in as @alice: you may add and delete").wait_for(
                timeout=30_000)
