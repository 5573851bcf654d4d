"""The tensor (GPU-capable) transform stays close to the PIL reference. Checked here on the CPU,
where decode_jpeg is libjpeg-turbo like PIL's, so this isolates the resize; on CUDA nvJPEG's
IDCT may add a level: scripts/bench/gpu_pipeline_bench.py measures that on the GPU."""

import torch

from handler.decoding import decode_image
from scripts.bench.tensor_transforms import jpegs_to_batch
from handler.transforms import PreprocessSpec, to_model_input
from tests.support import encode, exif_rotated_jpeg, noise_image

SPEC = PreprocessSpec(232, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_tensor_path_is_close_to_the_pil_reference():
    images = [encode(noise_image(w, h, seed=s), "JPEG", quality=90)
              for s, (w, h) in enumerate([(640, 480), (480, 640), (1024, 768), (300, 200), (224, 224)])]
    images.append(exif_rotated_jpeg(80, 40))
    batch = jpegs_to_batch(images, SPEC, torch.device("cpu"))
    reference = torch.stack([to_model_input(decode_image(data).image, SPEC) for data in images])
    assert batch.shape == reference.shape == (len(images), 3, 224, 224)
    difference = (batch - reference).abs()
    # normalised units: 1/255/0.225 = 0.0174 is one 8-bit level. Measured: mean 0.0026,
    # max 0.0175 (the resize rounds differently, by at most one level)
    assert float(difference.mean()) < 0.01
    assert float(difference.max()) < 0.05
    assert not torch.equal(batch, reference)  # it is not the reference: the docs must say so


def test_grey_jpeg_becomes_three_channels():
    grey = encode(noise_image(120, 90, mode="L"), "JPEG")
    assert jpegs_to_batch([grey], SPEC, torch.device("cpu")).shape == (1, 3, 224, 224)
