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
