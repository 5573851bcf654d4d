"""The handler's transform equals torchvision's own reference transform of the weights."""

import pytest
import torch
from torchvision.models import ResNet50_Weights

from handler.transforms import PreprocessSpec, to_model_input
from tests.support import noise_image

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


def _torchvision_functional(image, spec: PreprocessSpec) -> torch.Tensor:
    """The calls torchvision's ImageClassification preset makes, with any spec's numbers."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    resized = F.resize(image, [spec.resize_size], interpolation=InterpolationMode(spec.interpolation),
                       antialias=spec.antialias)
    tensor = F.convert_image_dtype(F.pil_to_tensor(F.center_crop(resized, [spec.crop_size])), torch.float)
    return F.normalize(tensor, mean=list(spec.mean), std=list(spec.std))


@pytest.mark.parametrize("interpolation", ["nearest", "nearest-exact", "bilinear", "bicubic", "box",
                                           "hamming", "lanczos"])
@pytest.mark.parametrize("size", [(333, 251), (251, 333), (128, 128), (97, 1201)])
def test_every_interpolation_and_odd_sizes_equal_torchvision(interpolation, size):
    spec = PreprocessSpec(resize_size=131, crop_size=117, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                          interpolation=interpolation)
    image = noise_image(*size, seed=size[1])
    assert torch.equal(to_model_input(image, spec), _torchvision_functional(image, spec))


def test_the_worker_path_does_not_import_torchvision():
    """torchvision costs a worker ~2 s and 170 MB per start; only building the eager model
    (no converted model cached) may import it."""
    import subprocess
    import sys

    code = ("import sys, handler.resnet50_handler, handler.transforms, handler.backends; "
            "print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_a_crop_larger_than_the_resize_is_refused_where_the_numbers_are_read():
    with pytest.raises(ValueError, match="crop 240 is larger than resize 232"):
        PreprocessSpec(resize_size=232, crop_size=240, mean=(0.5,) * 3, std=(0.2,) * 3)
