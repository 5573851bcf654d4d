"""The converted-model cache: whole entries only, keyed so any change of input converts again,
and an OpenVINO backend built from the cache computes what a freshly converted one does."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from handler.backends import OpenVINOBackend
from handler.model_cache import ConvertedModelCache, cache_key


def write_entry(path: Path) -> None:
    path.write_text("<xml/>")
    path.with_suffix(".bin").write_bytes(b"weights")


def test_key_changes_with_every_input_it_depends_on():
    base = dict(weights_sha256="ab" * 32, input_size=224, runtime="openvino", runtime_version="2026.4.1",
                torch_version="2.14.1+cu130")
    keys = {cache_key(**base)}
    for change in ({"weights_sha256": "cd" * 32}, {"input_size": 256}, {"runtime_version": "2026.5.0"},
                   {"torch_version": "2.15.0"}):
        keys.add(cache_key(**{**base, **change}))
    assert len(keys) == 5
    assert all("/" not in key and "+" not in key for key in keys)


def test_store_then_find_and_nothing_half_written(tmp_path):
    cache = ConvertedModelCache(key="k1", read_from=(tmp_path,), write_to=tmp_path)
    assert cache.find() is None
    stored = cache.store(write_entry)
    assert stored == tmp_path / "k1" / "model.xml" and cache.find() == stored
    # A second worker that converted at the same time keeps the first entry and leaves no litter.
    assert cache.store(write_entry) == stored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1"]


def test_a_failed_write_leaves_no_entry(tmp_path):
    def crash(path: Path) -> None:
        path.write_text("<xml/>")  # the .bin never comes: killed mid-write
        raise OSError("disk full")

    cache = ConvertedModelCache(key="k2", read_from=(tmp_path,), write_to=tmp_path)
    assert cache.store(crash) is None
    assert cache.find() is None and list(tmp_path.iterdir()) == []


def test_an_entry_without_its_weights_is_not_read(tmp_path):
    (tmp_path / "k3").mkdir()
    (tmp_path / "k3" / "model.xml").write_text("<xml/>")
    assert ConvertedModelCache(key="k3", read_from=(tmp_path,), write_to=None).find() is None


def test_nowhere_to_write_means_convert_every_time(tmp_path):
    assert ConvertedModelCache(key="k4", read_from=(), write_to=None).store(write_entry) is None


def test_openvino_backend_from_the_cache_equals_a_fresh_conversion(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    cache = ConvertedModelCache(key="resnet50", read_from=(tmp_path,), write_to=tmp_path)
    fresh = OpenVINOBackend(model, torch.device("cpu"), converted_cache=cache)
    assert fresh.describe()["converted_from"] == "conversion" and cache.find() is not None
    cached = OpenVINOBackend(model, torch.device("cpu"), converted_cache=cache)
    assert cached.describe()["converted_from"] == "cache"
    batch = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(cached(batch), fresh(batch), rtol=0, atol=1e-5)
