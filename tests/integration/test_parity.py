"""Served probabilities equal an in-process reference built from the same archive.

Reference = the archive's weights in torchvision's eager ResNet-50 (fp32) fed by
torchvision's own ``weights.transforms()`` on ``Image.open(...).convert("RGB")``.
"""

from __future__ import annotations

import io

import pytest
import requests
import torch
import torchvision
from PIL import Image
from torchvision.models import ResNet50_Weights

from tests.support import encode, noise_image

pytestmark = pytest.mark.integration

PARITY_IMAGES = {
    "jpeg_640x480": encode(noise_image(640, 480, seed=1), "JPEG", quality=92),
    "jpeg_portrait_480x640": encode(noise_image(480, 640, seed=2), "JPEG", quality=85),
    "png_1024x768": encode(noise_image(1024, 768, seed=3), "PNG"),
    "png_grey_300x200": encode(noise_image(300, 200, mode="L", seed=4), "PNG"),
    "webp_lossless_256x256": encode(noise_image(256, 256, seed=5), "WEBP", lossless=True),
    "bmp_224x224": encode(noise_image(224, 224, seed=6), "BMP"),
    "tiff_500x300": encode(noise_image(500, 300, seed=7), "TIFF"),
    "gif_palette_150x100": encode(noise_image(150, 100, mode="P", seed=8), "GIF"),
    "jpeg_tiny_17x9": encode(noise_image(17, 9, seed=9), "JPEG"),
}


@pytest.fixture(scope="module")
def reference_model(service):
    state = torch.load(io.BytesIO(service.read_archive("weights.pt")), weights_only=True)
    model = torchvision.models.resnet50(weights=None)
    model.load_state_dict(state)
    return model.eval()


def reference_probabilities(model, data: bytes) -> torch.Tensor:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    batch = ResNet50_Weights.IMAGENET1K_V2.transforms()(image).unsqueeze(0)
    with torch.inference_mode():
        return torch.softmax(model(batch), dim=1)[0]


@pytest.mark.parametrize("name", sorted(PARITY_IMAGES))
def test_served_probabilities_match_reference(service, reference_model, name):
    data = PARITY_IMAGES[name]
    response = requests.post(service.url("/predict?top_k=1000"), data=data, timeout=60)
    assert response.status_code == 200, response.text
    served = response.json()["predictions"]
    expected = reference_probabilities(reference_model, data)
    served_probs = torch.zeros(1000, dtype=torch.float64)
    for p in served:
        served_probs[p["class_id"]] = p["probability"]
    assert float((served_probs - expected.double()).abs().max()) <= 1e-4
    assert [p["class_id"] for p in served[:5]] == expected.topk(5).indices.tolist()
