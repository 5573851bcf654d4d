"""The handler's transform equals torchvision's own reference transform of the weights."""

import pytest
import torch
from torchvision.models import ResNet50_Weights

from handler.transforms import PreprocessSpec, to_model_input
from tests.images import noise_image

REFERENCE = ResNet50_Weights.IMAGENET1K_V2.transforms()
SPEC = PreprocessSpec.from_torchvision(REFERENCE)


def test_spec_is_read_from_the_weights_metadata():
    assert (SPEC.resize_size, SPEC.crop_size, SPEC.interpolation, SPEC.antialias) == (232, 224, "bilinear", True)
    assert SPEC.mean == pytest.approx((0.485, 0.456, 0.406))
    assert PreprocessSpec.from_dict(SPEC.to_dict()) == SPEC


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (224, 224), (1, 1), (300, 7), (1500, 1000)])
def test_bit_identical_to_torchvision_reference(size):
    image = noise_image(*size, seed=size[0])
    ours = to_model_input(image, SPEC)
    assert ours.shape == (3, 224, 224)
    assert torch.equal(ours, REFERENCE(image))
