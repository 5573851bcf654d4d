"""Every backend is faithful to eager PyTorch on the parity images: max |logit diff| <= 1e-3
and the same top-5, through the same decode and transform."""

import pytest
import torch

from handler.backends import BACKENDS, create_backend
from handler.decoding import DecodeLimits
from handler.model_meta import load_model_meta
from handler.pipeline import ClassificationPipeline
from tests.integration.test_parity import PARITY_IMAGES


@pytest.fixture(scope="module")
def parity_batch(model_dir):
    meta = load_model_meta(model_dir)
    eager = create_backend("eager", model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                           torch.device("cpu"))
    pipeline = ClassificationPipeline(meta, eager, DecodeLimits())
    batch = torch.stack([pipeline.prepare(data).tensor for data in PARITY_IMAGES.values()])
    with torch.inference_mode():
        reference = eager(batch)
    return meta, batch, reference


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_backend_matches_eager(model_dir, parity_batch, name):
    meta, batch, reference = parity_batch
    backend = create_backend(name, model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                             torch.device("cpu"))
    backend.warm_up([1, 4])
    for logits in (backend(batch), torch.cat([backend(batch[i:i + 1]) for i in range(len(batch))])):
        assert logits.shape == reference.shape
        assert float((logits - reference).abs().max()) <= 1e-3
        assert torch.equal(logits.topk(5).indices, reference.topk(5).indices)
    assert backend.describe()["name"] == name


def test_unknown_backend_fails_loudly(model_dir):
    meta = load_model_meta(model_dir)
    with pytest.raises(ValueError, match="unknown BACKEND"):
        create_backend("tensorrt", model_dir / meta.weights.file, meta.architecture, meta.num_classes,
                       torch.device("cpu"))
