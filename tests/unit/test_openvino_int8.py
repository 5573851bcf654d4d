"""int8 for OpenVINO, made at archive build: what the build refuses, what the archive records,
and a worker that serves exactly that model (or refuses to, when its bytes were changed).

The handler runs under TorchServe's own Context class, as in a worker."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PIL import Image

from handler.model_meta import load_model_meta
from handler.resnet50_handler import ResNet50Handler
from handler.selftest import SelfTestFailed
from handler.transforms import PreprocessSpec
from scripts.archive import build_mar
from scripts.archive.demo_model import PREPROCESSING_ARGS, classify, dataset, eager_from_checkpoint
from scripts.archive.openvino_int8 import CalibrationError, calibration_inputs
from tests.unit.ts_context import worker_context

SPEC = PreprocessSpec(128, 112, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def int8_dir(demo_model, tmp_path_factory) -> Path:
    """The demo model archived with an int8 model, calibrated on its training images."""
    store = tmp_path_factory.mktemp("int8_store")
    archive = build_mar.build(str(demo_model.checkpoint), "demo", "1.0", store, labels_file=str(demo_model.labels),
                              preprocessing=list(PREPROCESSING_ARGS), golden_dir=str(demo_model.golden),
                              int8_calibration=str(demo_model.checkpoint.parent / "calibration"))
    target = tmp_path_factory.mktemp("int8_extracted")
    with zipfile.ZipFile(archive) as mar:
        mar.extractall(target)
    return target


def test_calibration_folder_refusals_are_one_clear_line(tmp_path):
    with pytest.raises(CalibrationError, match="is not a directory"):
        calibration_inputs(tmp_path / "missing", SPEC)
    for i in range(3):
        Image.new("RGB", (40, 30), (i * 60, 10, 10)).save(tmp_path / f"{i}.png")
    with pytest.raises(CalibrationError, match="at least 8 images .* found 3"):
        calibration_inputs(tmp_path, SPEC)
    nested = tmp_path / "class_a"
    nested.mkdir()
    for i in range(5):
        Image.new("RGB", (40, 30), (10, i * 50, 10)).save(nested / f"{i}.jpg")
    assert len(calibration_inputs(tmp_path, SPEC)) == 8  # subfolders count: a golden set works
    (nested / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    with pytest.raises(CalibrationError, match="broken.jpg"):
        calibration_inputs(tmp_path, SPEC)


def test_archive_records_the_int8_model_its_hash_and_accuracy(int8_dir):
    meta = load_model_meta(int8_dir)
    assert meta.int8 is not None and (int8_dir / meta.int8.file).is_file()
    assert meta.int8.details["calibration_images"] == 96
    assert 0.0 <= meta.int8.details["golden_accuracy"] <= 1.0
    assert len(meta.int8.selftest_logits) == meta.num_classes
    xml = (int8_dir / meta.int8.file).read_text()
    assert "FakeQuantize" in xml  # really quantised


def test_int8_worker_serves_the_archived_model_and_agrees_with_fp32(int8_dir, demo_model, monkeypatch):
    monkeypatch.setenv("PRECISION", "int8")
    handler = ResNet50Handler()
    handler.initialize(worker_context(int8_dir))
    runtime = handler.describe_handle()["runtime"]
    assert runtime["precision"] == "int8" and runtime["converted_from"] == "archive"
    assert handler.selftest["passed"] and handler.selftest["relative_error"] < 0.02
    assert handler.golden_set["passed"]
    # Agreement with the fp32 checkpoint on held-out images: int8 moves answers, not most of them.
    images = [image for image, _ in dataset("heldout")]
    eager = classify(eager_from_checkpoint(demo_model.checkpoint), images)
    pipeline = handler.pipeline
    served = [int(pipeline.probabilities([pipeline.prepare(png(image)).tensor])[0].argmax()) for image in images]
    agreement = sum(a == b for a, b in zip(eager, served)) / len(images)
    print(f"\nint8 vs fp32 top-1 agreement on {len(images)} held-out images: {agreement:.3f}")
    assert agreement >= 0.8


def test_changed_int8_bytes_are_refused_at_start(int8_dir, tmp_path, monkeypatch):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(int8_dir, broken)
    meta = load_model_meta(broken)
    binary = (broken / meta.int8.file).with_suffix(".bin")
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF
    binary.write_bytes(bytes(data))
    monkeypatch.setenv("PRECISION", "int8")
    with pytest.raises(SelfTestFailed, match=r"int8/model.bin: not the bytes the archive recorded \(sha256 differs\)"):
        ResNet50Handler().initialize(worker_context(broken))


def png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
