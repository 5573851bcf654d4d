"""Every backend is faithful to eager PyTorch on the parity images: max |logit diff| <= 1e-3
and the same top-5, through the same decode and transform."""

import re

import pytest
import torch

from handler.backends import BACKENDS, create_backend
from handler.decoding import DecodeLimits
from handler.model_meta import load_model_meta
from handler.pipeline import ClassificationPipeline
from tests.integration.test_parity import PARITY_IMAGES


@pytest.fixture(scope="module")
def parity_batch(model_dir):
    meta = load_model_meta(model_dir)
    eager = create_backend("eager", model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                           torch.device("cpu"))
    pipeline = ClassificationPipeline(meta, eager, DecodeLimits())
    batch = torch.stack([pipeline.prepare(data).tensor for data in PARITY_IMAGES.values()])
    with torch.inference_mode():
        reference = eager(batch)
    return meta, batch, reference


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_matches_eager(model_dir, parity_batch, name):
    meta, batch, reference = parity_batch
    backend = create_backend(name, model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                             torch.device("cpu"))
    backend.warm_up([1, 4])
    for logits in (backend(batch), torch.cat([backend(batch[i:i + 1]) for i in range(len(batch))])):
        assert logits.shape == reference.shape
        assert float((logits - reference).abs().max()) <= 1e-3
        assert torch.equal(logits.topk(5).indices, reference.topk(5).indices)
    assert backend.describe()["name"] == name


def test_unknown_backend_fails_loudly(model_dir):
    meta = load_model_meta(model_dir)
    with pytest.raises(ValueError, match="unknown BACKEND"):
        create_backend("tensorrt", model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                       torch.device("cpu"))


def test_int8_is_only_the_archives_model_and_every_other_way_is_refused_in_one_line(model_dir):
    """PRECISION=int8 runs the archive's OpenVINO int8 model and nothing else: no archive model,
    another backend or a GPU are refused before any model is built, each in one line. (The int8
    model itself serving is tests/unit/test_openvino_int8.py.)"""
    meta = load_model_meta(model_dir)
    weights = model_dir / meta.weights.file
    present = model_dir / "int8" / "model.xml"  # never read: every case is refused before
    refusals = [
        ("auto", "cpu", None, "needs an archive with an int8 model, and this archive has none: rebuild it with "
                              "python -m scripts.archive.build_mar --force --int8-calibration DIR"),
        ("openvino", "cpu", None, "--int8-calibration DIR"),
        ("torchscript", "cpu", present, "BACKEND must be auto or openvino, not torchscript"),
        ("eager", "cpu", present, "BACKEND must be auto or openvino, not eager"),
        ("auto", "cuda", present, "on the CPU: DEVICE must be cpu, not cuda"),
    ]
    for name, device, int8_model, message in refusals:
        with pytest.raises(ValueError, match=re.escape(message)) as refused:
            create_backend(name, weights, meta.architecture, meta.num_classes, torch.device(device), "int8",
                           int8_model=int8_model)
        assert "\n" not in str(refused.value) and "PRECISION=int8" in str(refused.value)


def test_openvino_never_phones_home(tmp_path):
    """`import openvino` reports usage to Google Analytics unless the user opted out; the
    backend keeps OpenVINO's telemetry client from loading. Run in a fresh interpreter with
    an empty HOME: nothing may be written there and the client must stay unloaded."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, torch\n"
        "from handler.backends import OpenVINOBackend, build_architecture\n"
        "b = OpenVINOBackend(build_architecture('resnet50', 10), torch.device('cpu'))\n"
        "assert b(torch.zeros(2, 3, 224, 224)).shape == (2, 10)\n"
        "assert sys.modules['openvino_telemetry'] is None\n"
        "print(b.describe()['effective_precision'])\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "f32"
    assert list(tmp_path.iterdir()) == []


def test_openvino_refuses_cuda_fp16_and_int8_without_a_quantised_model():
    from handler.backends import OpenVINOBackend, build_architecture

    model = build_architecture("resnet50", 10)
    with pytest.raises(ValueError, match="runs on the CPU"):
        OpenVINOBackend(model, torch.device("cuda"))
    with pytest.raises(ValueError, match="fp32, bf16 or int8, not 'fp16'"):
        OpenVINOBackend(model, torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="--int8-calibration"):
        OpenVINOBackend(model, torch.device("cpu"), "int8")


def test_auto_picks_the_fastest_faithful_runtime_per_device(monkeypatch):
    import importlib.util

    from handler.backends import resolve_backend_name

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend_name("auto", cpu, "fp32") == "openvino"
    assert resolve_backend_name("auto", cpu, "bf16") == "openvino"
    assert resolve_backend_name("auto", cpu, "int8") == "openvino"  # the archive's int8 model
    assert resolve_backend_name("auto", cuda, "fp16") == "torchscript"
    assert resolve_backend_name("eager", cpu, "fp32") == "eager"  # a named backend is kept
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
    assert resolve_backend_name("auto", cpu, "fp32") == "torchscript"
    assert resolve_backend_name("auto", cpu, "int8") == "openvino"  # no fallback: it says openvino is missing
