#!/usr/bin/env python3
"""Build MODEL_STORE/<MODEL_NAME>.mar: a ResNet-50's weights, labels, preprocessing, handler.

Weights, in order: --weights / MODEL_WEIGHTS (a state dict, a Lightning or torchvision-reference
checkpoint, ``model.``/``module.`` prefixes, or a TorchScript module; any class count, read from
fc.weight); torchvision's ResNet50_Weights.IMAGENET1K_V2 (torch hub cache or download);
offline, a seeded random initialisation, with a loud warning and ``pretrained: false``.

Labels: --labels / MODEL_LABELS (index_to_name.json or one per line); without it, ImageNet's
names for 1,000 classes, class_0..class_{n-1} otherwise. --preprocessing overrides the
reference transform; --golden DIR archives a labelled golden set checked at worker start.

Every mismatch is refused before anything is written, with one line on stderr and exit 1. The
archive is built in a scratch folder inside the output directory and moved into place in one
rename, so the model store never holds a half-written archive.

Usage: scripts/archive/build_mar.py [--force] [--weights FILE|random] [--labels FILE]
       [--preprocessing KEY=VALUE ...] [--golden DIR] [--name N] [--version V] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torchvision.models import ResNet50_Weights

from handler.backends import build_architecture
from handler.decoding import DecodeLimits, decode_image
from handler.golden import DEFAULT_TOLERANCE, GoldenSet, count_correct
from handler.model_meta import META_FILENAME, sha256_of
from handler.selftest import selftest_input
from handler.transforms import PreprocessSpec, to_model_input
from scripts.archive.archive_info import archive_is_stale, handler_fingerprint
from scripts.archive.checkpoint import CheckpointError, load_resnet50_weights
from scripts.archive.golden_set import GoldenSetError, collect_golden_set, stage_golden_set
from scripts.archive.openvino_int8 import CalibrationError, calibration_inputs, int8_runner, quantize_to_archive
from scripts.archive.labels import Labels, LabelsError, default_labels, resolve_labels
from scripts.archive.preprocessing_options import PreprocessingError, preprocessing_from_overrides
from scripts.service.settings import REPO_ROOT, SettingsError, load_settings

log = logging.getLogger("build_mar")
REFERENCE_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
IMAGENET_CLASSES = 1000
RANDOM_INIT_SEED = 0
SELFTEST_SEED = 20261128
WEIGHTS_FILENAME = "weights.pt"
HANDLER_ENTRY = "resnet50_handler.py"
# What a user can get wrong; each carries a one-line message for stderr.
INPUT_ERRORS = (CheckpointError, LabelsError, PreprocessingError, GoldenSetError, SettingsError, CalibrationError)


class BuildError(RuntimeError):
    """The archiver itself failed; the message is one line."""


@dataclass
class ResolvedWeights:
    state: dict
    source: str
    pretrained: bool
    num_classes: int
    provenance: dict = field(default_factory=dict)


def resolve(weights: str) -> ResolvedWeights:
    """The weights to archive, following the order in the module doc."""
    if weights and weights != "random":
        path = Path(weights)
        loaded = load_resnet50_weights(path)
        provenance = {"form": loaded.form, "stripped_prefix": loaded.stripped_prefix,
                      "file_sha256": sha256_of(path)}
        return ResolvedWeights(loaded.state, f"file:{path.name}", True, loaded.num_classes, provenance)
    if weights != "random":
        try:
            socket.setdefaulttimeout(30)
            state = REFERENCE_WEIGHTS.get_state_dict(progress=False, check_hash=True)
            log.info("using torchvision %s", REFERENCE_WEIGHTS)
            return ResolvedWeights(state, f"torchvision:{REFERENCE_WEIGHTS}", True, IMAGENET_CLASSES,
                                   {"reference": str(REFERENCE_WEIGHTS)})
        except Exception as exc:  # noqa: BLE001 - offline, proxy, corrupt cache: all fall back
            log.warning("could not get %s (%s: %s)", REFERENCE_WEIGHTS, type(exc).__name__, exc)
    torch.manual_seed(RANDOM_INIT_SEED)
    model = build_architecture("resnet50", IMAGENET_CLASSES)
    banner = "!" * 78
    log.warning(
        "\n%s\n!! NO PRETRAINED WEIGHTS: archiving a RANDOM initialisation (seed %d).\n"
        "!! The service will run, but its predictions are meaningless; /info and every\n"
        "!! response say pretrained: false. Build online or set MODEL_WEIGHTS=<file>.\n%s",
        banner, RANDOM_INIT_SEED, banner,
    )
    return ResolvedWeights(model.state_dict(), f"random-init:seed={RANDOM_INIT_SEED}", False, IMAGENET_CLASSES)


def resolve_weights(weights: str) -> tuple[dict, str, bool]:
    """(state_dict, source description, pretrained?): ``resolve`` in the older, shorter form."""
    resolved = resolve(weights)
    return resolved.state, resolved.source, resolved.pretrained


def eager_model(state: dict) -> torch.nn.Module:
    model = build_architecture("resnet50", int(state["fc.weight"].shape[0]))
    model.load_state_dict(state)
    return model.eval()


def selftest_logits(model: torch.nn.Module, shape: tuple[int, ...]) -> list[float]:
    """The eager fp32 model's logits on the fixed self-test input."""
    with torch.inference_mode():
        return model(selftest_input(SELFTEST_SEED, shape)).flatten().tolist()


def golden_accuracy(model: Callable[[torch.Tensor], torch.Tensor], samples: list[tuple[bytes, int]],
                    spec: PreprocessSpec) -> float:
    """A model's top-1 accuracy on the golden set (eager fp32, or the int8 one), decoded as requests are."""
    limits = DecodeLimits(max_bytes=1 << 30)

    def prepare(data: bytes) -> torch.Tensor:
        return to_model_input(decode_image(data, limits).image, spec)

    with torch.inference_mode():
        return count_correct(samples, prepare, model) / len(samples)


def stage_archive_inputs(stage: Path, state: dict, source: str, pretrained: bool, *,
                         labels: Labels | None = None, preprocessing: PreprocessSpec | None = None,
                         preprocessing_source: str = "reference (IMAGENET1K_V2)", provenance: dict | None = None,
                         golden: list[tuple[Path, int]] | None = None,
                         golden_tolerance: float = DEFAULT_TOLERANCE,
                         int8_inputs: list | None = None) -> tuple[Path, Path]:
    """Lay out the weights file and the extra files (handler package, metadata, golden set)."""
    num_classes = int(state["fc.weight"].shape[0])
    labels = labels or default_labels(num_classes)
    preprocessing = preprocessing or preprocessing_from_overrides(None)[0]
    weights_file = stage / WEIGHTS_FILENAME
    torch.save(state, weights_file)
    extra = stage / "extra"
    shutil.copytree(REPO_ROOT / "handler", extra / "handler",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    model = eager_model(state)
    shape = (1, 3, preprocessing.crop_size, preprocessing.crop_size)
    meta = {
        "handler_sha256": handler_fingerprint(),
        "architecture": "resnet50",
        "categories": list(labels.names),
        "labels_source": labels.source,
        "preprocessing": preprocessing.to_dict(),
        "preprocessing_source": preprocessing_source,
        "weights": {"file": weights_file.name, "source": source, "sha256": sha256_of(weights_file),
                    "pretrained": pretrained, "num_classes": num_classes, **(provenance or {})},
        "selftest": {"seed": SELFTEST_SEED, "shape": list(shape), "logits": selftest_logits(model, shape)},
    }
    if golden:
        staged = stage_golden_set(golden, extra)
        accuracy = golden_accuracy(model, [(p.read_bytes(), c) for p, c in golden], preprocessing)
        meta["golden"] = GoldenSet(tuple(staged), accuracy, golden_tolerance).to_dict()
        log.info("golden set: %d images, eager fp32 top-1 accuracy %.3f (workers refuse to serve below %.3f)",
                 len(staged), accuracy, accuracy - golden_tolerance)
    if int8_inputs:
        meta["int8"] = quantize_to_archive(model, int8_inputs, preprocessing, extra,
                                           selftest_input(SELFTEST_SEED, shape))
        log.info("int8: OpenVINO model quantised on %d calibration images (%s)",
                 len(int8_inputs), meta["int8"]["file"])
        if golden:
            # int8 workers are held to the int8 model's own golden accuracy; both are printed, so
            # what int8 costs on the user's images is seen before anything is served.
            samples = [(p.read_bytes(), c) for p, c in golden]
            accuracy = golden_accuracy(int8_runner(extra), samples, preprocessing)
            meta["int8"]["golden_accuracy"] = accuracy
            log.info("int8: golden set top-1 accuracy %.3f (fp32: %.3f)", accuracy, meta["golden"]["accuracy"])
    (extra / META_FILENAME).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return weights_file, extra


def run_archiver(name: str, version: str, weights_file: Path, extra: Path, export_dir: Path) -> Path:
    # The archiver as a module of this interpreter: its console script names the interpreter's
    # path in its first line, which breaks in a moved environment or one shared read-only.
    command = [
        sys.executable, "-m", "model_archiver.model_packaging",
        "--model-name", name, "--version", version,
        "--serialized-file", str(weights_file),
        "--handler", str(REPO_ROOT / "handler" / HANDLER_ENTRY),
        "--extra-files", str(extra),
        "--export-path", str(export_dir), "--force",
    ]
    # The archiver copies everything into $TMPDIR/<model name>, removing whatever is there first:
    # two builds at once (two instances, or root's and a user's) would clobber each other's, or
    # fail on the other's folder. A private TMPDIR per build keeps them apart.
    with tempfile.TemporaryDirectory(prefix="archiver-") as private_tmp:
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TMPDIR": private_tmp})
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise BuildError(f"torch-model-archiver failed (exit {result.returncode}): {lines[-1][:300]}")
    return export_dir / f"{name}.mar"


def write_archive(name: str, version: str, weights_file: Path, extra: Path, output_dir: Path) -> Path:
    """Archive into a scratch folder beside the target, then one atomic rename: a failed or
    interrupted build leaves the previous archive (or none), never a truncated one."""
    output_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=output_dir))
    try:
        built = run_archiver(name, version, weights_file, extra, scratch)
        target = output_dir / f"{name}.mar"
        os.replace(built, target)
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def repack(archive: Path, name: str, version: str) -> Path:
    """Re-archive with the current handler code, keeping everything else (weights, labels,
    preprocessing, golden set) byte for byte; the self-test logits are recomputed."""
    with tempfile.TemporaryDirectory(prefix="mar-repack-") as tmp, zipfile.ZipFile(archive) as mar:
        stage = Path(tmp)
        meta = json.loads(mar.read(META_FILENAME))
        weights_name = meta["weights"]["file"]
        extra = stage / "extra"
        for member in mar.infolist():
            top = member.filename.split("/", 1)[0]
            if member.is_dir() or top in ("MAR-INF", "handler", HANDLER_ENTRY, META_FILENAME, weights_name):
                continue
            mar.extract(member, extra)
        weights_file = stage / weights_name
        weights_file.write_bytes(mar.read(weights_name))
        shutil.copytree(REPO_ROOT / "handler", extra / "handler",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        state = torch.load(io.BytesIO(weights_file.read_bytes()), map_location="cpu", weights_only=True)
        shape = tuple(meta["selftest"]["shape"])
        meta["handler_sha256"] = handler_fingerprint()
        meta["selftest"]["logits"] = selftest_logits(eager_model(state), shape)
        (extra / META_FILENAME).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        result = write_archive(name, version, weights_file, extra, archive.parent)
    log.info("repacked %s with the current handler code (weights %s kept)", result, meta["weights"]["source"])
    return result


def build(weights: str, name: str, version: str, output_dir: Path, labels_file: str = "",
          preprocessing: list[str] | None = None, golden_dir: str = "",
          golden_tolerance: float = DEFAULT_TOLERANCE, int8_calibration: str = "") -> Path:
    """Resolve and check every input first; only then stage and archive."""
    spec, spec_source = preprocessing_from_overrides(preprocessing)
    resolved = resolve(weights)
    labels = resolve_labels(labels_file or None, resolved.num_classes)
    golden = collect_golden_set(golden_dir, labels.names) if golden_dir else None
    int8_inputs = calibration_inputs(Path(int8_calibration), spec) if int8_calibration else None
    log.info("archiving weights %s (%d classes; %s), labels %s, preprocessing %s", resolved.source,
             resolved.num_classes, ", ".join(f"{k} {v!r}" for k, v in resolved.provenance.items() if v) or "-",
             labels.source, spec_source)
    with tempfile.TemporaryDirectory(prefix="mar-stage-") as tmp:
        weights_file, extra = stage_archive_inputs(
            Path(tmp), resolved.state, resolved.source, resolved.pretrained, labels=labels, preprocessing=spec,
            preprocessing_source=spec_source, provenance=resolved.provenance, golden=golden,
            golden_tolerance=golden_tolerance, int8_inputs=int8_inputs)
        archive = write_archive(name, version, weights_file, extra, output_dir)
    log.info("built %s (%.1f MB, weights %s, %d classes, labels %s, pretrained=%s)", archive,
             archive.stat().st_size / 1e6, resolved.source, resolved.num_classes, labels.source, resolved.pretrained)
    return archive


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected an accuracy drop from 0 to 1, got {text!r}")
    return value


def parse_args(argv: list[str] | None, settings: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even if the archive exists")
    parser.add_argument("--weights", default=settings["MODEL_WEIGHTS"],
                        help="weights file (state dict, checkpoint, TorchScript), or 'random' (default: MODEL_WEIGHTS)")
    parser.add_argument("--labels", default=settings["MODEL_LABELS"],
                        help="index_to_name.json or one label per line (default: MODEL_LABELS)")
    parser.add_argument("--preprocessing", nargs="+", metavar="KEY=VALUE",
                        help="override the reference transform: resize=232 crop=224 interpolation=bilinear "
                             "mean=0.485,0.456,0.406 std=0.229,0.224,0.225")
    parser.add_argument("--golden", default="", metavar="DIR",
                        help="labelled golden set, one subfolder per class, classified by each worker at start")
    parser.add_argument("--golden-tolerance", type=_fraction, default=DEFAULT_TOLERANCE, metavar="ACC",
                        help=f"accuracy drop below the build-time value a worker tolerates (default {DEFAULT_TOLERANCE})")
    parser.add_argument("--int8-calibration", default=settings["INT8_CALIBRATION_DIR"], metavar="DIR",
                        help="also quantise the model to int8 for OpenVINO (NNCF), calibrated on the images "
                             "under DIR (the golden set's folder works), for PRECISION=int8 "
                             "(default: INT8_CALIBRATION_DIR)")
    parser.add_argument("--output-dir", type=Path, default=Path(settings["MODEL_STORE"]))
    parser.add_argument("--name", default=settings["MODEL_NAME"])
    parser.add_argument("--version", default=settings["MODEL_VERSION"])
    parser.add_argument("--refresh-handler", action="store_true",
                        help="if the archive's handler code is stale, repack it with the same weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s build_mar: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"build_mar: error: {error}", file=sys.stderr)
        return 1
    args = parse_args(argv, settings)
    target = args.output_dir / f"{args.name}.mar"
    try:
        if target.exists() and args.refresh_handler:
            if archive_is_stale(target):
                repack(target, args.name, args.version)
            return 0
        if target.exists() and not args.force:
            log.info("%s exists; use --force to rebuild", target)
            return 0
        build(args.weights, args.name, args.version, args.output_dir, args.labels, args.preprocessing,
              args.golden, args.golden_tolerance, args.int8_calibration)
    except (*INPUT_ERRORS, BuildError) as error:
        print(f"build_mar: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_mar: interrupted; nothing was written to the model store", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
