"""Shared fixtures: a model directory laid out like an extracted archive (random weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from scripts.archive import build_mar


def make_model_dir(target: Path, state: dict, source: str = "random-init:seed=0", pretrained: bool = False) -> Path:
    """weights.pt + model_meta.json + handler/ exactly as build_mar stages them for the archiver."""
    target.mkdir(parents=True, exist_ok=True)
    weights_file, extra = build_mar.stage_archive_inputs(target, state, source, pretrained)
    for item in extra.iterdir():
        shutil.move(str(item), target / item.name)
    extra.rmdir()
    return target


@pytest.fixture(scope="session")
def random_state() -> dict:
    state, _, pretrained = build_mar.resolve_weights("random")
    assert pretrained is False
    return state


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, random_state) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model"), random_state)


@pytest.fixture(scope="session")
def tampered_model_dir(tmp_path_factory, model_dir) -> Path:
    """Same metadata (and self-test reference) but one layer's weights changed."""
    target = tmp_path_factory.mktemp("tampered")
    for item in model_dir.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, target / item.name)
    state = torch.load(target / "weights.pt", weights_only=True)
    state["layer4.2.conv3.weight"] = state["layer4.2.conv3.weight"] * 1.5
    torch.save(state, target / "weights.pt")
    meta = json.loads((target / "model_meta.json").read_text())
    assert meta["weights"]["pretrained"] is False
    return target


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """scripts/archive/demo_model.py's small ResNet-50 that really classifies (4 synthetic classes),
    as a Lightning-style checkpoint with index_to_name.json, golden and held-out images."""
    from scripts.archive.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("demo_model"))


@pytest.fixture(scope="session")
def demo_archive(demo_model, tmp_path_factory) -> Path:
    """The demo model archived by build_mar with its labels, preprocessing and golden set."""
    from scripts.archive.demo_model import PREPROCESSING_ARGS

    store = tmp_path_factory.mktemp("demo_store")
    return build_mar.build(str(demo_model.checkpoint), "demo", "1.0", store, labels_file=str(demo_model.labels),
                           preprocessing=list(PREPROCESSING_ARGS), golden_dir=str(demo_model.golden))
