"""The pretrained path, as on every machine that can download torchvision's weights or did once.

With MODEL_WEIGHTS empty, the archive takes torchvision's IMAGENET1K_V2 weights from torch's hub cache
(downloading them there first when it can). Here that cache is seeded, in a TORCH_HOME of the test's
own, with a ResNet-50 state dict under the file name torchvision uses, so the test needs no network and
knows the weights: the archive must hold exactly them, and every answer must say `pretrained: true`,
with no random-weights banner anywhere and the page's warning hidden.
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import torch

from handler.backends import build_architecture
from scripts.archive.build_mar import REFERENCE_WEIGHTS
from tests.integration.service import DEFAULT_TOP_K, start_service
from tests.support import jpeg_bytes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 1234  # not the offline fallback's seed: these weights can be told apart from it
IMAGE = jpeg_bytes(320, 240, seed=11)
RANDOM_BANNER = "NO PRETRAINED WEIGHTS"


def seeded_hub_cache(torch_home: Path) -> dict:
    """A ResNet-50 state dict where torchvision looks for IMAGENET1K_V2 (TORCH_HOME/hub/checkpoints)."""
    torch.manual_seed(SEED)
    state = build_architecture("resnet50", 1000).state_dict()
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / Path(urlsplit(REFERENCE_WEIGHTS.url).path).name)
    return state


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    base = tmp_path_factory.mktemp("pretrained")
    state = seeded_hub_cache(base / "torch home")
    store = base / "store"
    store.mkdir()
    running = start_service(base / "run", store, {"MODEL_WEIGHTS": "", "TORCH_HOME": str(base / "torch home")})
    yield running, state
    result = running.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.rmtree(base, ignore_errors=True)


def test_archive_holds_the_cached_weights(pretrained):
    running, state = pretrained
    meta = running.archive_meta["weights"]
    assert meta["pretrained"] is True and meta["source"] == f"torchvision:{REFERENCE_WEIGHTS}"
    archived = torch.load(io.BytesIO(running.read_archive(meta["file"])), weights_only=True)
    assert torch.equal(archived["fc.weight"], state["fc.weight"])
    assert torch.equal(archived["conv1.weight"], state["conv1.weight"])


def test_every_answer_says_pretrained(pretrained):
    running, _ = pretrained
    health = requests.get(running.url("/health"), timeout=10).json()
    assert health["status"] == "healthy" and health["pretrained"] is True
    info = requests.get(running.url("/info"), timeout=10).json()["default"][0]["customizedMetadata"]
    assert info["pretrained"] is True and info["weights"]["pretrained"] is True
    single = requests.post(running.url("/predict"), data=IMAGE, timeout=60)
    assert single.status_code == 200, single.text
    assert single.json()["model"]["pretrained"] is True and len(single.json()["predictions"]) == DEFAULT_TOP_K
    encoded = base64.b64encode(IMAGE).decode()
    several = requests.post(running.url("/predict"), json={"images": [encoded, encoded]}, timeout=60)
    assert several.status_code == 200 and several.json()["model"]["pretrained"] is True


def test_no_random_weights_banner_anywhere(pretrained):
    running, _ = pretrained
    assert "RANDOM" not in running.startup_output, running.startup_output
    log = (running.run_dir / "service.log").read_text(errors="replace")
    assert RANDOM_BANNER not in log
    assert "using torchvision" in log or "IMAGENET1K_V2" in log  # the build said where its weights came from
    assert not [line for line in running.log_lines() if line.get("event") == "random_weights"]


def test_page_hides_the_random_weights_warning(pretrained):
    from tests.integration.test_browser_page import CHROMIUM, assert_weights_warning

    running, _ = pretrained
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/test.sh installs it as root: apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(running.base_url + "/")
            assert_weights_warning(page, pretrained=True)
        finally:
            browser.close()
