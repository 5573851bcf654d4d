#!/usr/bin/env python3
"""How far int8 moves the answers: fp32 and int8 side by side on labelled images, in process.

    .venv/bin/python -m scripts.bench.int8_agreement ARCHIVE.mar HELDOUT_DIR [--extra DIR ...] [--json FILE]

ARCHIVE must hold an int8 model (python -m scripts.archive.build_mar --int8-calibration DIR). HELDOUT_DIR has
one subfolder per class, named by the archive's labels (python -m scripts.archive.demo_model writes such a
folder); images under ``--extra`` folders (unlabelled, e.g. the parity images) count for
agreement only. Both precisions run through the handler's own pipeline (decode, the archive's
preprocessing, the backend the service would use: OpenVINO fp32 and the archive's int8 model),
so the figures are what the service would answer. Reports top-1 agreement, accuracy of each, and
the largest probability change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def labelled_images(folder: Path, labels: tuple[str, ...]) -> list[tuple[Path, int | None]]:
    items = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if class_dir.name not in labels:
            raise SystemExit(f"int8_agreement: {class_dir} names no class of the archive ({', '.join(labels[:5])}, ...)")
        index = labels.index(class_dir.name)
        items += [(p, index) for p in sorted(class_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    return items


def pipeline_for(model_dir: Path, precision: str):
    """The handler's pipeline as a worker would build it, without TorchServe."""
    os.environ.update({"PRECISION": precision, "BACKEND": "auto", "LOG_LEVEL": "WARNING"})
    from ts.context import Context

    from handler.resnet50_handler import ResNet50Handler

    context = Context("resnet50", str(model_dir), {"model": {"modelName": "resnet50"}}, 1, None, "0.12.0")
    context.system_properties.update({"model_dir": str(model_dir), "batch_size": 1})
    handler = ResNet50Handler()
    handler.initialize(context)
    return handler.pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("heldout", type=Path)
    parser.add_argument("--extra", type=Path, action="append", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="int8-agreement-") as tmp:
        model_dir = Path(tmp)
        with zipfile.ZipFile(args.archive) as archive:
            archive.extractall(model_dir)
        sys.path.insert(0, str(model_dir))
        from handler.model_meta import load_model_meta

        meta = load_model_meta(model_dir)
        if meta.int8 is None:
            print("int8_agreement: the archive holds no int8 model; build it with --int8-calibration DIR",
                  file=sys.stderr)
            return 2
        items = labelled_images(args.heldout, meta.categories)
        for folder in args.extra:
            items += [(p, None) for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        answers = {}
        for precision in ("fp32", "int8"):
            pipeline = pipeline_for(model_dir, precision)
            assert pipeline.backend.describe()["precision"] == precision
            answers[precision] = [pipeline.probabilities([pipeline.prepare(p.read_bytes()).tensor])[0]
                                  for p, _ in items]
    fp32, int8 = answers["fp32"], answers["int8"]
    labelled = [i for i, (_, label) in enumerate(items) if label is not None]
    result = {
        "images": len(items),
        "labelled": len(labelled),
        "top1_agreement": sum(int(a.argmax() == b.argmax()) for a, b in zip(fp32, int8)) / len(items),
        "accuracy_fp32": sum(int(fp32[i].argmax() == items[i][1]) for i in labelled) / max(1, len(labelled)),
        "accuracy_int8": sum(int(int8[i].argmax() == items[i][1]) for i in labelled) / max(1, len(labelled)),
        "max_abs_probability_change": max(float((a - b).abs().max()) for a, b in zip(fp32, int8)),
        "classes": meta.num_classes,
        "int8_model": {k: v for k, v in meta.int8.details.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
