"""The handler on a custom archive (the 4-class demo model): its labels, top_k bounded by its
class count, /info's classes and provenance, the self-test and the golden set at start."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from handler.settings_table import BY_NAME

from handler.resnet50_handler import ResNet50Handler
from handler.selftest import SelfTestFailed
from scripts.archive.demo_model import CLASSES, classify, dataset, eager_from_checkpoint
from tests.unit.ts_context import failed_statuses, worker_context


@pytest.fixture(scope="module")
def demo_dir(demo_archive, tmp_path_factory):
    target = tmp_path_factory.mktemp("demo_extracted")
    with zipfile.ZipFile(demo_archive) as mar:
        mar.extractall(target)
    return target


@pytest.fixture(scope="module")
def handler(demo_dir):
    h = ResNet50Handler()
    h.initialize(worker_context(demo_dir))
    return h


def png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def predict(handler, demo_dir, body: bytes, headers: dict | None = None):
    context = worker_context(demo_dir, [headers or {}])
    (reply,) = handler.handle([{"body": body}], context)
    return context, json.loads(reply)


def test_start_up_proves_the_custom_weights(handler):
    assert handler.initialized and handler.selftest["passed"] and handler.selftest["relative_error"] < 1e-3
    assert handler.golden_set["passed"] and handler.golden_set["images"] == 12
    assert handler.golden_set["accuracy"] >= handler.golden_set["recorded_accuracy"] - 0.05


def test_answers_carry_the_archive_labels_and_never_more_than_the_class_count(handler, demo_dir):
    image, _ = dataset("heldout")[0]
    _, body = predict(handler, demo_dir, png(image))
    # DEFAULT_TOP_K, but never more classes than the model has (4 here).
    assert len(body["predictions"]) == min(BY_NAME["DEFAULT_TOP_K"].parse(), len(CLASSES))
    assert {p["label"] for p in body["predictions"]} <= set(CLASSES)
    if len(body["predictions"]) == len(CLASSES):
        assert sum(p["probability"] for p in body["predictions"]) == pytest.approx(1.0, abs=1e-4)


def test_top_k_is_bounded_by_the_class_count(handler, demo_dir):
    image, _ = dataset("heldout")[1]
    context, body = predict(handler, demo_dir, png(image), {"X-Top-K": "5"})
    assert failed_statuses(context) == {0: (400, "invalid_top_k")}
    assert body["error"]["message"] == "top_k must be between 1 and 4, got 5."
    _, body = predict(handler, demo_dir, png(image), {"X-Top-K": "4"})
    assert len(body["predictions"]) == 4


def test_info_shows_classes_label_source_preprocessing_and_provenance(handler):
    info = handler.describe_handle()
    assert info["num_classes"] == 4
    assert info["classes"] == {"count": 4, "label_source": "file:index_to_name.json", "labels": list(CLASSES),
                               "labels_truncated": False}
    assert info["preprocessing"]["resize_size"] == 128 and info["preprocessing"]["crop_size"] == 112
    assert info["preprocessing_source"].startswith("overridden (crop, resize)")
    assert info["weights"]["source"] == "file:demo.ckpt" and info["weights"]["stripped_prefix"] == "model."
    assert info["weights"]["form"] == "torch.save['state_dict']" and len(info["weights"]["file_sha256"]) == 64
    assert info["limits"]["top_k"] == {"min": 1, "max": 4, "default": min(BY_NAME["DEFAULT_TOP_K"].parse(), 4)}
    assert info["golden_set"]["passed"] is True


def test_handler_top1_equals_the_eager_checkpoint_on_held_out_images(handler, demo_dir, demo_model):
    heldout = dataset("heldout")
    eager = classify(eager_from_checkpoint(demo_model.checkpoint), [image for image, _ in heldout])
    served = [CLASSES.index(predict(handler, demo_dir, png(image))[1]["predictions"][0]["label"])
              for image, _ in heldout]
    assert served == eager
    accuracy = sum(p == label for p, (_, label) in zip(served, heldout)) / len(heldout)
    print(f"\ndemo model, handler in process: held-out top-1 accuracy {accuracy:.3f} (chance 0.25)")
    assert accuracy >= 0.6


def test_a_golden_set_below_its_recorded_accuracy_never_serves(demo_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(demo_dir, broken)
    meta = json.loads((broken / "model_meta.json").read_text())
    for image in meta["golden"]["images"]:  # every image now claims the next class: accuracy ~0
        image["class_id"] = (image["class_id"] + 1) % 4
    (broken / "model_meta.json").write_text(json.dumps(meta))
    handler = ResNet50Handler()
    with pytest.raises(SelfTestFailed, match=r"golden set accuracy 0\.\d+ \(\d+/12\) is below the build-time"):
        handler.initialize(worker_context(broken))
    assert not handler.initialized
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line["level"] == "CRITICAL" and line["event"] == "model_load_failed" for line in lines)
