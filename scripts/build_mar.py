#!/usr/bin/env python3
"""Build model_store/<MODEL_NAME>.mar: weights + labels + preprocessing + handler.

Weights, in order: the file named by MODEL_WEIGHTS; torchvision's ResNet50_Weights.IMAGENET1K_V2
(torch hub cache or download); offline, a seeded random initialisation, with a loud warning
and ``pretrained: false`` recorded so /info and every response say so.

Usage: scripts/build_mar.py [--force] [--weights FILE|random] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from torchvision.models import ResNet50_Weights

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from handler.backends import build_architecture  # noqa: E402
from handler.model_meta import META_FILENAME, sha256_of  # noqa: E402
from handler.selftest import selftest_input  # noqa: E402
from handler.transforms import PreprocessSpec  # noqa: E402
from scripts.archive_info import archive_is_stale, handler_fingerprint  # noqa: E402
from scripts.settings import REPO_ROOT, load_settings  # noqa: E402

log = logging.getLogger("build_mar")
REFERENCE_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
RANDOM_INIT_SEED = 0
SELFTEST_SEED = 20261128
SELFTEST_SHAPE = (1, 3, 224, 224)
WEIGHTS_FILENAME = "weights.pt"


def resolve_weights(weights: str) -> tuple[dict, str, bool]:
    """(state_dict, source description, pretrained?) following the order in the module doc."""
    if weights and weights != "random":
        path = Path(weights)
        if not path.is_file():
            raise SystemExit(f"MODEL_WEIGHTS={weights} does not exist")
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        log.info("using weights from %s", path)
        return state, f"file:{path.name}", True
    if weights != "random":
        try:
            socket.setdefaulttimeout(30)
            state = REFERENCE_WEIGHTS.get_state_dict(progress=False, check_hash=True)
            log.info("using torchvision %s", REFERENCE_WEIGHTS)
            return state, f"torchvision:{REFERENCE_WEIGHTS}", True
        except Exception as exc:  # noqa: BLE001 - offline, proxy, corrupt cache: all fall back
            log.warning("could not get %s (%s: %s)", REFERENCE_WEIGHTS, type(exc).__name__, exc)
    torch.manual_seed(RANDOM_INIT_SEED)
    model = build_architecture("resnet50", len(REFERENCE_WEIGHTS.meta["categories"]))
    banner = "!" * 78
    log.warning(
        "\n%s\n!! NO PRETRAINED WEIGHTS: archiving a RANDOM initialisation (seed %d).\n"
        "!! The service will run, but its predictions are meaningless; /info and every\n"
        "!! response say pretrained: false. Build online or set MODEL_WEIGHTS=<file>.\n%s",
        banner, RANDOM_INIT_SEED, banner,
    )
    return model.state_dict(), f"random-init:seed={RANDOM_INIT_SEED}", False


def selftest_logits(state: dict) -> list[float]:
    """The eager fp32 model's logits on the fixed self-test input."""
    model = build_architecture("resnet50", len(REFERENCE_WEIGHTS.meta["categories"]))
    model.load_state_dict(state)
    with torch.inference_mode():
        return model.eval()(selftest_input(SELFTEST_SEED, SELFTEST_SHAPE)).flatten().tolist()


def model_meta(weights_file: Path, source: str, pretrained: bool, logits: list[float]) -> dict:
    return {
        "handler_sha256": handler_fingerprint(),
        "architecture": "resnet50",
        "categories": list(REFERENCE_WEIGHTS.meta["categories"]),
        "preprocessing": PreprocessSpec.from_torchvision(REFERENCE_WEIGHTS.transforms()).to_dict(),
        "weights": {
            "file": weights_file.name,
            "source": source,
            "sha256": sha256_of(weights_file),
            "pretrained": pretrained,
            "reference": str(REFERENCE_WEIGHTS),
        },
        "selftest": {"seed": SELFTEST_SEED, "shape": list(SELFTEST_SHAPE), "logits": logits},
    }


def stage_archive_inputs(stage: Path, state: dict, source: str, pretrained: bool) -> tuple[Path, Path]:
    """Lay out the weights file and the extra files (handler package + metadata) to archive."""
    weights_file = stage / WEIGHTS_FILENAME
    torch.save(state, weights_file)
    extra = stage / "extra"
    shutil.copytree(REPO_ROOT / "handler", extra / "handler",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    meta = model_meta(weights_file, source, pretrained, selftest_logits(state))
    (extra / META_FILENAME).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return weights_file, extra


def run_archiver(name: str, version: str, weights_file: Path, extra: Path, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    archiver = Path(sys.executable).with_name("torch-model-archiver")
    command = [
        str(archiver) if archiver.exists() else "torch-model-archiver",
        "--model-name", name, "--version", version,
        "--serialized-file", str(weights_file),
        "--handler", str(REPO_ROOT / "handler" / "resnet50_handler.py"),
        "--extra-files", str(extra),
        "--export-path", str(output_dir), "--force",
    ]
    subprocess.run(command, check=True)
    return output_dir / f"{name}.mar"


def repack(archive: Path, name: str, version: str) -> Path:
    """Re-archive the same weights (and their recorded provenance) with the current handler code."""
    with tempfile.TemporaryDirectory(prefix="mar-repack-") as tmp, zipfile.ZipFile(archive) as mar:
        old_meta = json.loads(mar.read(META_FILENAME))
        state = torch.load(io.BytesIO(mar.read(old_meta["weights"]["file"])), map_location="cpu", weights_only=True)
        weights = old_meta["weights"]
        weights_file, extra = stage_archive_inputs(Path(tmp), state, weights["source"], bool(weights["pretrained"]))
        result = run_archiver(name, version, weights_file, extra, archive.parent)
    log.info("repacked %s with the current handler code (weights %s kept)", result, weights["source"])
    return result


def build(weights: str, name: str, version: str, output_dir: Path) -> Path:
    state, source, pretrained = resolve_weights(weights)
    with tempfile.TemporaryDirectory(prefix="mar-stage-") as tmp:
        weights_file, extra = stage_archive_inputs(Path(tmp), state, source, pretrained)
        archive = run_archiver(name, version, weights_file, extra, output_dir)
    log.info("built %s (%.1f MB, weights %s, pretrained=%s)", archive,
             archive.stat().st_size / 1e6, source, pretrained)
    return archive


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s build_mar: %(message)s")
    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even if the archive exists")
    parser.add_argument("--weights", default=settings["MODEL_WEIGHTS"], help="weights file, or 'random'")
    parser.add_argument("--output-dir", type=Path, default=Path(settings["MODEL_STORE"]))
    parser.add_argument("--name", default=settings["MODEL_NAME"])
    parser.add_argument("--version", default=settings["MODEL_VERSION"])
    parser.add_argument("--refresh-handler", action="store_true",
                        help="if the archive's handler code is stale, repack it with the same weights")
    args = parser.parse_args(argv)
    target = args.output_dir / f"{args.name}.mar"
    if target.exists() and args.refresh_handler:
        if archive_is_stale(target):
            repack(target, args.name, args.version)
        return 0
    if target.exists() and not args.force:
        log.info("%s exists; use --force to rebuild", target)
        return 0
    build(args.weights, args.name, args.version, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
