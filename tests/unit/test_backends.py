"""Every backend is faithful to eager PyTorch on the parity images: max |logit diff| <= 1e-3
and the same top-5, through the same decode and transform."""

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


def test_int8_is_quantised_and_close_to_fp32(model_dir, parity_batch):
    """PRECISION=int8 really runs quantised kernels, stays near fp32 (measured on these images:
    relative error ~0.05, top-1 8/9) and is refused where it is not implemented."""
    from handler.calibration import calibration_batches

    meta, batch, reference = parity_batch
    calls = []

    def calibration():
        calls.append(1)
        return calibration_batches(meta.preprocessing)[:2]

    backend = create_backend("torchscript", model_dir / meta.weights.file, meta.architecture,
                             meta.num_classes, torch.device("cpu"), "int8", calibration=calibration)
    assert calls == [1]
    assert "quantized" in str(backend._model.graph)
    logits = backend(batch)
    relative = float(torch.linalg.vector_norm(logits - reference) / torch.linalg.vector_norm(reference))
    assert 1e-4 < relative < 0.15  # not fp32 in disguise, not garbage
    assert int((logits.argmax(1) == reference.argmax(1)).sum()) >= 6
    assert backend.describe()["precision"] == "int8"
    refusals = {"eager": "int8 needs BACKEND=openvino .* or BACKEND=torchscript",
                "openvino": "needs an archive built with scripts/archive/build_mar.py --int8-calibration"}
    for name, message in refusals.items():
        with pytest.raises(ValueError, match=message):
            create_backend(name, model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                           torch.device("cpu"), "int8", calibration=calibration)


def test_calibration_from_a_folder(tmp_path):
    from handler.calibration import calibration_batches
    from handler.transforms import PreprocessSpec
    from tests.support import jpeg_bytes, png_bytes

    spec = PreprocessSpec(232, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    for i in range(3):
        (tmp_path / f"photo{i}.jpg").write_bytes(jpeg_bytes(300, 200, seed=i))
    (tmp_path / "grey.png").write_bytes(png_bytes(64, 64, mode="L"))
    (tmp_path / "notes.txt").write_text("not an image")
    batches = calibration_batches(spec, tmp_path, batch_size=3)
    assert [tuple(b.shape) for b in batches] == [(3, 3, 224, 224), (1, 3, 224, 224)]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        calibration_batches(spec, empty)
    with pytest.raises(ValueError, match="is not a directory"):
        calibration_batches(spec, tmp_path / "missing")
    (tmp_path / "truncated.jpg").write_bytes(jpeg_bytes(300, 200)[:200])
    with pytest.raises(ValueError, match="truncated.jpg"):
        calibration_batches(spec, tmp_path)
    synthetic = calibration_batches(spec)
    assert sum(len(b) for b in synthetic) == 32
    assert torch.equal(synthetic[0], calibration_batches(spec)[0])  # deterministic


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
    assert resolve_backend_name("auto", cpu, "int8") == "torchscript"
    assert resolve_backend_name("auto", cuda, "fp16") == "torchscript"
    assert resolve_backend_name("eager", cpu, "fp32") == "eager"  # a named backend is kept
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real_find_spec(name, *a))
    assert resolve_backend_name("auto", cpu, "fp32") == "torchscript"
