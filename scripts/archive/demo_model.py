#!/usr/bin/env python3
"""A small ResNet-50 that really classifies, built offline in seconds: the suite's custom model.

1. Draw a few synthetic image classes with PIL (a shape per class in its colour family, at a
   random place and size, on a random background, with noise).
2. Take the pooled features of a frozen ResNet-50 backbone (``resnet50(weights=None)`` after
   ``torch.manual_seed``: no download) on the images, preprocessed exactly as the service will
   (``handler.transforms.to_model_input`` with the archive's PREPROCESSING).
3. Train a new ``fc`` on them (logistic regression), fold the feature standardisation into it.
4. Save it as a PyTorch Lightning checkpoint would (``{"state_dict": {"model.conv1.weight": ...}}``)
   with TorchServe's ``index_to_name.json``, a golden set and held-out images (one folder per class).

Usage: python -m scripts.archive.demo_model OUT_DIR   (then python -m scripts.archive.build_mar --weights OUT_DIR/demo.ckpt
       --labels OUT_DIR/index_to_name.json --preprocessing resize=128 crop=112 --golden OUT_DIR/golden)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw

from handler.transforms import PreprocessSpec, to_model_input

CLASSES = ("red_circle", "green_square", "blue_triangle", "yellow_star")
# The overrides this model is trained with, and so must be archived with: small inputs keep
# the suite's feature extraction to seconds on 2 cores, and exercise --preprocessing.
PREPROCESSING_ARGS = ("resize=128", "crop=112")
PREPROCESSING = PreprocessSpec(resize_size=128, crop_size=112, mean=(0.485, 0.456, 0.406),
                               std=(0.229, 0.224, 0.225))
IMAGE_SIZE = 128
BACKBONE_SEED = 0
SPLITS = {"train": (24, 1), "golden": (3, 2), "heldout": (8, 3)}  # images per class, seed offset


@dataclass(frozen=True)
class DemoModel:
    checkpoint: Path
    labels: Path
    golden: Path
    heldout: Path
    train_accuracy: float


def draw(class_index: int, rng: np.random.Generator) -> Image.Image:
    """One image of a class: its shape, a colour near the class's hue, random place and size."""
    background = tuple(int(v) for v in rng.integers(60, 200, size=3))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)
    pen = ImageDraw.Draw(image)
    base = [(220, 40, 40), (40, 200, 60), (40, 70, 230), (235, 215, 40)][class_index]
    colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in base)
    radius = int(rng.integers(22, 44))
    cx, cy = (int(v) for v in rng.integers(radius, IMAGE_SIZE - radius, size=2))
    if class_index == 0:
        pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    elif class_index == 1:
        pen.rectangle([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    elif class_index == 2:
        pen.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=colour)
    else:
        points = [(cx + (radius if k % 2 == 0 else radius * 0.45) * math.cos(math.pi * k / 5 - math.pi / 2),
                   cy + (radius if k % 2 == 0 else radius * 0.45) * math.sin(math.pi * k / 5 - math.pi / 2))
                  for k in range(10)]
        pen.polygon(points, fill=colour)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 12, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def dataset(split: str) -> list[tuple[Image.Image, int]]:
    """A deterministic split: the same images on every machine."""
    per_class, offset = SPLITS[split]
    samples = []
    for class_index in range(len(CLASSES)):
        rng = np.random.default_rng(1000 * offset + class_index)
        samples += [(draw(class_index, rng), class_index) for _ in range(per_class)]
    return samples


def backbone() -> torch.nn.Module:
    """The frozen, seeded ResNet-50 whose fc is replaced (its other weights are archived as they are)."""
    torch.manual_seed(BACKBONE_SEED)
    return torchvision.models.resnet50(weights=None, num_classes=len(CLASSES)).eval()


def features(model: torch.nn.Module, images: list[Image.Image]) -> torch.Tensor:
    """The pooled 2048-d features (the fc layer's input) of the images, as the service preprocesses."""
    head, model.fc = model.fc, torch.nn.Identity()
    try:
        with torch.inference_mode():
            batch = torch.stack([to_model_input(image, PREPROCESSING) for image in images])
            return torch.cat([model(chunk) for chunk in batch.split(16)])
    finally:
        model.fc = head


def train_fc(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on standardised features, folded back into raw-feature
    weights so the archived model is a plain ResNet-50: W' = W / s, b' = b - W' @ m."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    z = (x - mean) / std
    torch.manual_seed(0)
    weight = torch.zeros(classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimiser = torch.optim.Adam([weight, bias], lr=0.01)
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weight.T + bias, y) + 1e-3 * weight.square().sum()
        loss.backward()
        optimiser.step()
    folded = (weight / std).detach()
    return folded, (bias - folded @ mean).detach()


def save_images(samples: list[tuple[Image.Image, int]], root: Path) -> None:
    """One folder per class, PNG (lossless: the service decodes exactly these pixels)."""
    for number, (image, class_index) in enumerate(samples):
        folder = root / CLASSES[class_index]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{number:03d}.png")


def build_demo_model(out_dir: str | Path) -> DemoModel:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = backbone()
    train = dataset("train")
    x = features(model, [image for image, _ in train])
    y = torch.tensor([label for _, label in train])
    weight, bias = train_fc(x, y, len(CLASSES))
    with torch.no_grad():
        model.fc.weight.copy_(weight)
        model.fc.bias.copy_(bias)
    train_accuracy = float(((x @ weight.T + bias).argmax(1) == y).float().mean())
    # As Lightning saves a LightningModule whose network is its attribute ``model``.
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    checkpoint = out / "demo.ckpt"
    torch.save({"state_dict": state, "epoch": 1, "global_step": len(train), "pytorch-lightning_version": "2.4.0"},
               checkpoint)
    labels = out / "index_to_name.json"
    labels.write_text(json.dumps({str(i): name for i, name in enumerate(CLASSES)}, indent=1))
    save_images(dataset("golden"), out / "golden")
    save_images(dataset("heldout"), out / "heldout")
    # The training images again, for int8 calibration (build_mar.py --int8-calibration): ranges
    # come from data the model was fitted on, never from the held-out images it is judged on.
    save_images(train, out / "calibration")
    return DemoModel(checkpoint, labels, out / "golden", out / "heldout", train_accuracy)


def eager_from_checkpoint(checkpoint: Path) -> torch.nn.Module:
    """The model as a user would rebuild it in process: the reference for the served answers."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    model = torchvision.models.resnet50(weights=None, num_classes=len(CLASSES))
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    return model.eval()


def classify(model: torch.nn.Module, images: list[Image.Image]) -> list[int]:
    with torch.inference_mode():
        return model(torch.stack([to_model_input(image, PREPROCESSING) for image in images])).argmax(1).tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    demo = build_demo_model(args.out_dir)
    heldout = dataset("heldout")
    predicted = classify(eager_from_checkpoint(demo.checkpoint), [image for image, _ in heldout])
    accuracy = sum(p == label for p, (_, label) in zip(predicted, heldout)) / len(heldout)
    print(json.dumps({"checkpoint": str(demo.checkpoint), "labels": str(demo.labels), "golden": str(demo.golden),
                      "heldout": str(demo.heldout), "train_accuracy": demo.train_accuracy,
                      "heldout_accuracy": accuracy, "chance": 1 / len(CLASSES),
                      "preprocessing": list(PREPROCESSING_ARGS)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
