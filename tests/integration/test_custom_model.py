"""A custom ResNet-50 end to end: the demo model (4 synthetic classes, a Lightning-style
checkpoint) archived through the CLI with its labels, preprocessing and golden set, then served
by the real TorchServe + nginx. One service for all the tests here (2 cores)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import requests

from scripts.archive.demo_model import CLASSES, PREPROCESSING_ARGS, classify, dataset, eager_from_checkpoint
from tests.integration.service import DEFAULT_TOP_K, REPO_ROOT, start_foreground, start_service, variant_archive

pytestmark = pytest.mark.integration


def png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def custom(demo_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("custom")
    store = base / "store"
    build = subprocess.run(
        [sys.executable, "-m", "scripts.archive.build_mar", "--weights", str(demo_model.checkpoint),
         "--labels", str(demo_model.labels), "--preprocessing", *PREPROCESSING_ARGS, "--golden", str(demo_model.golden),
         "--name", "resnet50", "--version", "1.0", "--output-dir", str(store)],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert build.returncode == 0, build.stderr
    assert [p.name for p in store.iterdir()] == ["resnet50.mar"]
    running = start_service(base / "run", store, watch_health=False)
    yield running
    running.stop()


def test_health_and_info_describe_the_custom_model(custom):
    assert requests.get(custom.url("/health"), timeout=10).status_code == 200
    meta = requests.get(custom.url("/info"), timeout=10).json()["default"][0]["customizedMetadata"]
    assert meta["classes"] == {"count": 4, "label_source": "file:index_to_name.json", "labels": list(CLASSES),
                               "labels_truncated": False}
    assert (meta["preprocessing"]["resize_size"], meta["preprocessing"]["crop_size"]) == (128, 112)
    assert meta["weights"]["source"] == "file:demo.ckpt" and meta["weights"]["stripped_prefix"] == "model."
    assert meta["limits"]["top_k"]["max"] == 4 and meta["selftest"]["passed"] is True
    golden = meta["golden_set"]
    print(f"\ngolden set at worker start: {golden}")
    assert golden["passed"] is True and golden["images"] == 12


def test_served_top1_equals_in_process_eager_top1_and_classifies(custom, demo_model):
    heldout = dataset("heldout")
    eager = classify(eager_from_checkpoint(demo_model.checkpoint), [image for image, _ in heldout])
    served = []
    for image, _ in heldout:
        response = requests.post(custom.url("/predict"), files={"file": ("x.png", png(image), "image/png")},
                                 data={"top_k": str(len(CLASSES))}, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["predictions"]) == 4 and {p["label"] for p in body["predictions"]} == set(CLASSES)
        top1 = body["predictions"][0]
        assert top1["label"] == CLASSES[top1["class_id"]]
        served.append(top1["class_id"])
    labels = [label for _, label in heldout]
    eager_accuracy = sum(p == y for p, y in zip(eager, labels)) / len(labels)
    served_accuracy = sum(p == y for p, y in zip(served, labels)) / len(labels)
    print(f"\ndemo model held-out top-1 accuracy: in-process eager {eager_accuracy:.3f}, served "
          f"{served_accuracy:.3f} ({len(labels)} images, chance {1 / len(CLASSES):.2f})")
    assert served == eager
    assert served_accuracy >= 0.6


def test_top_k_above_the_class_count_is_400(custom):
    image, _ = dataset("heldout")[0]
    response = requests.post(custom.url("/predict?top_k=5"), data=png(image), timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_top_k" and error["message"] == "top_k must be between 1 and 4, got 5."
    assert requests.post(custom.url("/predict?top_k=2"), data=png(image), timeout=60).json()["predictions"][1]["rank"] == 2


def test_browser_page_shows_the_custom_labels(custom, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.integration.test_browser_page import CHROMIUM

    image, label = dataset("heldout")[0]
    path = tmp_path / "shape.png"
    image.save(path)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 900})
            page.goto(custom.base_url + "/")
            page.wait_for_selector("#model-info:has-text('4 classes')")
            assert page.inner_text("#model-info") == ("Model: 4 classes: red_circle, green_square, blue_triangle, "
                                                      "yellow_star (labels: file:index_to_name.json)")
            # The field starts at the server's default, never above the class count; then every class is asked.
            assert page.get_attribute("#top-k", "max") == "4"
            assert page.input_value("#top-k") == str(min(DEFAULT_TOP_K, len(CLASSES)))
            page.fill("#top-k", "4")
            page.set_input_files("#file", str(path))
            page.click("#submit")
            page.wait_for_selector("#predictions li:nth-child(4)")
            labels = page.locator("#predictions .label").all_inner_texts()
            assert sorted(labels) == sorted(CLASSES) and page.locator("#error").is_hidden()
        finally:
            browser.close()


def test_a_golden_set_below_its_recorded_accuracy_keeps_the_worker_out(custom, tmp_path_factory):
    """The same archive with its golden labels shifted by one class (a stand-in for a backend or
    preprocessing that lost accuracy): CRITICAL at worker start, never ready, /health 503.
    (A second instance, as every failure mode in test_failure_modes.py has its own.)"""
    meta = json.loads(custom.read_archive("model_meta.json"))
    for image in meta["golden"]["images"]:
        image["class_id"] = (image["class_id"] + 1) % len(CLASSES)
    store = tmp_path_factory.mktemp("golden-store")
    variant_archive(custom.archive, store, {"model_meta.json": json.dumps(meta).encode()})
    running = start_foreground(tmp_path_factory.mktemp("golden-run"), store, {"REQUEST_TIMEOUT": "5"})
    try:
        critical = running.service.wait_for_logs(
            lambda line: line.get("level") == "CRITICAL" and line.get("event") == "model_load_failed", timeout=120)
        assert critical, "no CRITICAL log for the failed golden set"
        assert "golden set accuracy" in critical[0].get("exception", "")
        response = requests.get(running.service.url("/health"), timeout=10)
        assert response.status_code == 503 and response.json()["status"] == "unhealthy"
    finally:
        assert running.terminate() == 0
