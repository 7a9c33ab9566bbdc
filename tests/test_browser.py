"""The page in a real browser: Debian's Chromium driven by Playwright (never a browser download)."""

import random
import shutil
from pathlib import Path

import pytest

from tests.conftest import draw_shape

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def test_upload_search_and_see_k_results(served, tmp_path):
    from playwright.sync_api import sync_playwright

    client, _, _ = served
    query = tmp_path / "query.png"
    draw_shape("circle", random.Random(3)).save(query)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(client.src, wait_until="networkidle")
            page.locator("input[type=file]").first.set_input_files(str(query))
            page.get_by_role("button", name="Search", exact=True).click()
            items = page.locator("#results button.thumbnail-item")
            items.first.wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            assert items.count() == 10  # k's default
            assert "circle" in page.locator("body").inner_text()
            page.screenshot(path=str(OUTPUT / "search.png"), full_page=True)
        finally:
            browser.close()
    assert (OUTPUT / "search.png").stat().st_size > 10_000


def test_a_photo_on_a_light_background_is_prepared_and_the_page_says_so(served, tmp_path):
    """A person's photo: the circle small and off-centre on a light background, in a wide frame. The page shows
    circles, and the note says the picture was prepared with light and dark swapped."""
    from PIL import Image, ImageOps
    from playwright.sync_api import sync_playwright

    client, _, _ = served
    shape = ImageOps.invert(draw_shape("circle", random.Random(5))).resize((120, 120))
    photo = Image.new("RGB", (480, 320), shape.getpixel((0, 0)))
    photo.paste(shape, (300, 40))
    query = tmp_path / "photo.jpg"
    photo.save(query, quality=85)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(client.src, wait_until="networkidle")
            page.locator("input[type=file]").first.set_input_files(str(query))
            page.get_by_role("button", name="Search", exact=True).click()
            page.locator("#results button.thumbnail-item").first.wait_for(timeout=30_000)
            note = page.locator("#query-note")
            note.get_by_text("light and dark swapped").wait_for(timeout=10_000)
            page.screenshot(path=str(OUTPUT / "photo.png"), full_page=True)
            captions = page.locator("#results").inner_text()
            assert captions.count("circle") >= 7, captions
        finally:
            browser.close()
