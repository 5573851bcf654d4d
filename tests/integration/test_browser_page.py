"""The browser page at GET /, driven in headless Chromium (Debian's package) by Playwright:
a valid image shows labelled bars, latency and request id; a text file shows the error; the
random-weights warning is shown exactly when the archive's weights are random; the top-k field starts
at the server's default (from /info). Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import jpeg_bytes
from tests.integration.service import DEFAULT_TOP_K, REPO_ROOT

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def page(service):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/test.sh installs it as root: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 900})
        page.goto(service.base_url + "/")
        yield page
        browser.close()


def assert_weights_warning(page, pretrained: bool) -> None:
    """Shown for random weights, hidden for real ones (the page asks /health once loaded)."""
    page.wait_for_selector("#model-info:not(:empty)")  # /info answered, so /health has been asked too
    if pretrained:
        page.wait_for_load_state("networkidle")
        assert page.locator("#weights-warning").is_hidden()
    else:
        page.wait_for_selector("#weights-warning:not([hidden])")
        assert "random weights" in page.inner_text("#weights-warning")


def test_page_classifies_an_image(service, page, tmp_path):
    image = tmp_path / "photo.jpg"
    image.write_bytes(jpeg_bytes(320, 240, seed=77))
    assert_weights_warning(page, service.pretrained)
    assert page.input_value("#top-k") == str(DEFAULT_TOP_K)  # the server's default, read from /info
    page.set_input_files("#file", str(image))
    page.fill("#top-k", "3")
    page.click("#submit")
    page.wait_for_selector("#predictions li:nth-child(3)")  # (the page's CSP forbids eval-based waits)
    labels = page.locator("#predictions .label").all_inner_texts()
    probabilities = page.locator("#predictions .probability").all_inner_texts()
    assert len(labels) == 3 and all(labels) and all(p.endswith("%") for p in probabilities)
    meta = page.inner_text("#meta")
    assert "320×240 JPEG" in meta and "ms" in meta and "request " in meta
    assert page.locator("#preview").is_visible()
    assert page.locator("#error").is_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-page.png"), full_page=True)


def test_page_shows_the_error_for_a_text_file(page, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not an image")
    page.set_input_files("#file", str(text))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "unsupported_media_type" in page.inner_text("#error")
    assert page.locator("#predictions li").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser-page-error.png"), full_page=True)
