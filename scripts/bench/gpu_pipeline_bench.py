#!/usr/bin/env python3
"""The handler's own batched pipeline and the model alone, in process, on one device.

Written for a lent GPU machine, whose image has torch and torchvision but no Java, no
TorchServe and no ``ts`` package: it imports only the handler's pipeline modules (decoding,
transforms, backends, pipeline), never the TorchServe entry class.

    python -m scripts.bench.gpu_pipeline_bench --device cuda --out "$OUT/gpu_pipeline.json"
    python -m scripts.bench.gpu_pipeline_bench --device cpu --batches 1,2 --seconds 0.3   # dry run

At each batch size (default 1, 8, 32, 64), on random-initialised ResNet-50 with the
reference preprocessing of torchvision's IMAGENET1K_V2 weights and a 640x480 JPEG:

- model only: the eager backend, channels_last, at fp32 / bf16 / fp16 (autocast; CUDA);
- pipeline, CPU decode: JPEG bytes -> ``ClassificationPipeline.prepare`` (PIL decode and the
  reference transform) on a pool of decode threads, as the handler's worker does -> one
  forward pass -> softmax -> top-5;
- pipeline, device decode: ``torchvision.io.decode_jpeg`` on the device (nvJPEG on CUDA) and
  the tensor transform (``scripts.bench.tensor_transforms``) -> the same forward pass, plus its
  deviation from the reference path (max |prob diff|, top-5 agreement) on varied JPEGs.

Prints a Markdown table and writes JSON. Every measurement is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


import numpy as np
import torch
import torchvision
from PIL import Image

from handler.backends import EagerBackend, build_architecture
from handler.decoding import DecodeLimits
from handler.model_meta import ModelMeta, SelfTest, WeightsInfo
from handler.pipeline import ClassificationPipeline
from scripts.bench.tensor_transforms import jpegs_to_batch
from handler.transforms import PreprocessSpec


def photo_like_jpeg(width: int, height: int, seed: int, quality: int = 90) -> bytes:
    """A deterministic JPEG with gradients, edges and grain (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 / max(width - 1, 1), y * 255 / max(height - 1, 1),
                       (x + y) * 127 / max(width + height - 2, 1)], axis=-1)
    pixels += rng.normal(0, 18, size=pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def in_memory_meta(num_classes: int = 1000) -> ModelMeta:
    """The metadata an archive would carry, from torchvision's own weights entry (no download)."""
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    return ModelMeta(
        architecture="resnet50",
        categories=tuple(weights.meta["categories"])[:num_classes],
        preprocessing=PreprocessSpec.from_torchvision(weights.transforms()),
        weights=WeightsInfo(file="-", source="random-init seed 0", sha256="-", pretrained=False),
        selftest=SelfTest(seed=0, shape=(1, 3, 224, 224), logits=()),
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step, batch_size: int, seconds: float, device: torch.device) -> float:
    """Images per second of ``step`` (one batch per call), after two warm-up calls."""
    step()
    step()
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += batch_size
    synchronize(device)
    return round(count / (time.perf_counter() - started), 1)


def measure(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    meta = in_memory_meta()
    model = build_architecture("resnet50", meta.num_classes).eval()
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    image = photo_like_jpeg(640, 480, seed=1)
    threads = args.decode_threads or (os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")
    report = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "cpus": os.cpu_count(), "decode_threads": threads, "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__,
        },
        "image": "640x480 JPEG, quality 90", "model_only": {}, "pipeline_cpu_decode": {},
        "pipeline_device_decode": {}, "device_decode_deviation": None,
    }
    backends = {p: EagerBackend(model, device, p) for p in precisions}
    pipeline_precision = "fp16" if device.type == "cuda" else "fp32"
    pipeline = ClassificationPipeline(meta, backends[pipeline_precision], DecodeLimits())

    for precision, backend in backends.items():
        report["model_only"][precision] = {}
        for batch_size in args.batches:
            batch = torch.randn(batch_size, 3, 224, 224, device=device)
            report["model_only"][precision][batch_size] = rate(lambda: backend(batch), batch_size, args.seconds, device)
            print(f"model only {precision:>4} batch {batch_size:>3}: {report['model_only'][precision][batch_size]} img/s",
                  flush=True)

    def cpu_decode_step(batch_size: int):
        def step():
            prepared = list(pool.map(pipeline.prepare, [image] * batch_size))
            probabilities = pipeline.probabilities([p.tensor for p in prepared])
            torch.topk(probabilities, 5)
        return step

    def device_decode_step(batch_size: int):
        def step():
            batch = jpegs_to_batch([image] * batch_size, meta.preprocessing, device)
            probabilities = torch.softmax(pipeline.backend(batch).float(), dim=1)
            torch.topk(probabilities, 5)
        return step

    for batch_size in args.batches:
        report["pipeline_cpu_decode"][batch_size] = rate(cpu_decode_step(batch_size), batch_size, args.seconds, device)
        report["pipeline_device_decode"][batch_size] = rate(device_decode_step(batch_size), batch_size,
                                                            args.seconds, device)
        print(f"pipeline {pipeline_precision} batch {batch_size:>3}: CPU decode "
              f"{report['pipeline_cpu_decode'][batch_size]} img/s, device decode "
              f"{report['pipeline_device_decode'][batch_size]} img/s", flush=True)
    report["pipeline_precision"] = pipeline_precision

    # Faithfulness of the device decode path against the reference (PIL) path, same backend.
    samples = [photo_like_jpeg(w, h, seed=s, quality=q) for s, (w, h, q) in enumerate(
        [(640, 480, 90), (480, 640, 85), (1024, 768, 95), (300, 200, 75), (1920, 1080, 90), (224, 224, 90)])]
    fp32 = backends["fp32"]
    reference = torch.softmax(fp32(torch.stack([pipeline.prepare(s).tensor for s in samples])), dim=1)
    candidate = torch.softmax(fp32(jpegs_to_batch(samples, meta.preprocessing, device)), dim=1)
    report["device_decode_deviation"] = {
        "images": len(samples),
        "max_abs_prob_diff": float((candidate - reference).abs().max()),
        "top1_same": int((candidate.argmax(1) == reference.argmax(1)).sum()),
        "top5_same": sum(bool(torch.equal(c.topk(5).indices, r.topk(5).indices)) for c, r in zip(candidate, reference)),
        "note": "random-init weights: probabilities are near uniform, so top-5 order is fragile",
    }
    pool.shutdown()
    return report


def markdown(report: dict, batches: list[int]) -> str:
    m = report["machine"]
    lines = [f"Device: {m['device']}; {m['cpus']} CPUs ({m['decode_threads']} decode threads); "
             f"torch {m['torch']}, torchvision {m['torchvision']}; {report['image']}.", "",
             "| batch | " + " | ".join(f"model {p} img/s" for p in report["model_only"])
             + f" | pipeline CPU decode ({report['pipeline_precision']}) | pipeline device decode |",
             "|---:|" + "---:|" * (len(report["model_only"]) + 2)]
    for b in batches:
        cells = [str(report["model_only"][p][b]) for p in report["model_only"]]
        cells += [str(report["pipeline_cpu_decode"][b]), str(report["pipeline_device_decode"][b])]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    d = report["device_decode_deviation"]
    lines += ["", f"Device decode vs reference on {d['images']} JPEGs (fp32): max |Δprob| "
              f"{d['max_abs_prob_diff']:.2e}, top-1 {d['top1_same']}/{d['images']}, top-5 {d['top5_same']}/{d['images']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--decode-threads", type=int, default=0, help="0 = all CPUs")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (Markdown goes next to it)")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",")]
    report = measure(args)
    text = markdown(report, args.batches)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
        args.out.with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
