"""The benchmark's peer baseline: ResNet-50 on KServe's Python model server, written the way a
user choosing KServe would write it (a ``kserve.Model`` with an eager PyTorch predictor), on
the same weights as the service.

Not part of the service. ``python -m scripts.bench.benchmark --peer kserve`` starts it with the Python of
its own venv (``.venv-bench-kserve``, made by ``scripts/bench/benchmark.sh``; kserve pins packages
differently from the service) on a free loopback port, and sends KServe's v1 protocol:

    POST /v1/models/<name>:predict   {"instances": [{"image": {"b64": "<JPEG, base64>"}}, ...]}
    ->  {"predictions": [[{"label": ..., "index": ..., "probability": ...} x5], ...]}

Run by hand: ``.venv-bench-kserve/bin/python -m scripts.bench.kserve_peer --weights weights.pt
--labels labels.json --http_port 8080 --enable_grpc false``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json

import kserve
import torch
import torchvision
from kserve.protocol.rest import server as rest_server
from PIL import Image
from torchvision.models import ResNet50_Weights


class ResNet50Classifier(kserve.Model):
    def __init__(self, name: str, weights: str, labels: str, top_k: int = 5):
        super().__init__(name)
        self.weights_path = weights
        self.labels_path = labels
        self.top_k = top_k
        self.load()

    def load(self) -> bool:
        with open(self.labels_path) as handle:
            self.labels = json.load(handle)
        model = torchvision.models.resnet50(num_classes=len(self.labels))
        # a state dict only: weights_only refuses anything that would run code while loading
        model.load_state_dict(torch.load(self.weights_path, map_location="cpu", weights_only=True))
        self.model = model.eval()
        # the preprocessing published with torchvision's ResNet-50 V2 weights (resize 232, crop 224)
        self.transform = ResNet50_Weights.IMAGENET1K_V2.transforms()
        self.ready = True
        return self.ready

    def predict(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        images = [Image.open(io.BytesIO(base64.b64decode(instance["image"]["b64"]))).convert("RGB")
                  for instance in payload["instances"]]
        batch = torch.stack([self.transform(image) for image in images])
        with torch.inference_mode():
            probabilities = torch.softmax(self.model(batch), dim=1)
        top = probabilities.topk(min(self.top_k, probabilities.shape[1]), dim=1)
        return {"predictions": [
            [{"label": self.labels[i], "index": i, "probability": p} for p, i in zip(values.tolist(), indices.tolist())]
            for values, indices in zip(top.values, top.indices)]}


def listen_on(host: str) -> None:
    """KServe's REST server listens on every interface (0.0.0.0, fixed in its code); the
    benchmark runs on loopback only, so point the server's uvicorn config at ``host`` before
    it binds. This changes where it listens, nothing of how it serves."""
    original = rest_server.RESTServer.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.config.host = host

    rest_server.RESTServer.__init__ = init


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--weights", required=True, help="a ResNet-50 state dict (.pt)")
    parser.add_argument("--labels", required=True, help="JSON list of the class names, in index order")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: loopback)")
    args, _ = parser.parse_known_args()
    listen_on(args.bind)
    model = ResNet50Classifier(args.model_name, args.weights, args.labels)
    kserve.ModelServer().start([model])
