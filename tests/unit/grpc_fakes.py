"""Stand-ins for the gRPC front's unit tests: nginx's loopback server for the front (answering with
the real v2 wire format of handler/wire_v2.py) and the readiness snapshot."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from handler import wire_v2
from handler.errors import ServiceError, UnsupportedMediaType
from scripts.service.readiness import ManagementPoller, Snapshot
from tests.support import free_ports

CATEGORIES = ["cat", "dog", "fish", "bird"]
KEY = "a-valid-api-key-0123456789"


def probabilities_of(image: bytes) -> torch.Tensor:
    """What the fake model answers for an image: deterministic, different per image."""
    logits = torch.tensor([len(image) % 7, image[-1] % 5, 1.0, image[len(image) // 2] % 3], dtype=torch.float32)
    return torch.softmax(logits, dim=0)


def describe(version: str = "1.0", status: str = "READY") -> dict:
    return {"modelName": "resnet50", "modelVersion": version, "modelUrl": "resnet50.mar",
            "workers": [{"id": "9000", "status": status, "pid": 4242}],
            "jobQueueStatus": {"pendingRequests": 0}}


def ready_snapshot(ready: bool = True) -> Snapshot:
    description = describe(status="READY" if ready else "UNLOADING")
    return Snapshot(taken=time.monotonic(), frontend_up=True, registered=True, default=description,
                    versions=(description,))


def scripted_poller(tmp: Path) -> ManagementPoller:
    """A poller that never polls: tests set ``.snapshot`` themselves."""
    poller = ManagementPoller("resnet50", tmp, lambda: 0, lambda: None, stale_after=1e9)
    poller.snapshot = ready_snapshot()
    return poller


class FakeNginx:
    """The routes of config/nginx-grpc-server.part, answered as nginx + the handler would.

    Behaviour by the request id's prefix: ``overload-`` 503 overloaded with Retry-After, ``hold-``
    waits until ``release`` is set (then answers), anything else is served. ``keys``: X-API-Key is
    required to be one of them."""

    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self.keys = keys
        self.requests: list[dict] = []
        self.release = threading.Event()
        self.disconnected = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", "X-Request-ID": self.headers.get("X-Request-ID", "fake-id"),
                                   **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str, code: str, headers: dict | None = None) -> None:
                body = json.dumps({"error": message, "code": code, "request_id": self.headers.get("X-Request-ID", "fake-id")})
                self._answer(status, body.encode(), headers)

            def do_GET(self):  # noqa: N802
                fake.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                if fake.keys and self.headers.get("X-API-Key") not in fake.keys:
                    return self._error(401, "A valid API key is required.", "unauthorized")
                if self.path == "/v2":
                    return self._answer(200, json.dumps({"name": "resnet50-serve", "version": "9.9",
                                                         "extensions": ["classification"]}).encode())
                if self.path in ("/v2/models/resnet50", "/v2/models/resnet50/versions/1.0"):
                    return self._answer(200, json.dumps({
                        "name": "resnet50", "versions": ["1.0"], "platform": "torchserve",
                        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
                        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 4]}]}).encode())
                return self._error(404, "Unknown model.", "not_found")

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request_id = self.headers.get("X-Request-ID", "fake-id")
                fake.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                if fake.keys and self.headers.get("X-API-Key") not in fake.keys:
                    return self._error(401, "A valid API key is required.", "unauthorized")
                if self.path not in ("/v2/models/resnet50/infer", "/v2/models/resnet50/versions/1.0/infer"):
                    return self._error(404, "Unknown model: this server serves the model \"resnet50\".", "not_found")
                if request_id.startswith("overload-"):
                    return self._error(503, "The service is at capacity; retry after the delay in Retry-After.",
                                       "overloaded", {"Retry-After": "1"})
                if request_id.startswith("hold-") and not fake.hold_until_released(self.connection):
                    return  # the front gave up on this request and closed its connection
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    request = wire_v2.parse_infer_request({"body": body}, headers, len(CATEGORIES), 16)
                    for image in request.parsed.images:
                        if isinstance(image, ServiceError):
                            raise image
                        if not image.startswith((b"\x89PNG", b"\xff\xd8")):
                            raise UnsupportedMediaType()
                    probabilities = [probabilities_of(image) for image in request.parsed.images]
                    answer, content_type, header_length = wire_v2.format_response(
                        request, probabilities, CATEGORIES, "resnet50", "1.0")
                except ServiceError as error:
                    return self._error(error.status, error.message, error.code)
                extra = {"Content-Type": content_type}
                if header_length is not None:
                    extra["Inference-Header-Content-Length"] = str(header_length)
                self._answer(200, answer, extra)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def hold_until_released(self, connection: socket.socket) -> bool:
        """Wait for ``release``; False (and ``disconnected`` set) if the client closes meanwhile."""
        while not self.release.wait(0.02):
            readable, _, _ = select.select([connection], [], [], 0)
            if readable and connection.recv(1, socket.MSG_PEEK) == b"":
                self.disconnected.set()
                return False
        return True

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def front_settings(proxy_port: int, **overrides: str) -> dict[str, str]:
    settings = {"MODEL_NAME": "resnet50", "REQUEST_TIMEOUT": "30", "SLOW_REQUEST_MS": "1000", "LOG_LEVEL": "INFO",
                "BIND_ADDRESS": "127.0.0.1", "GRPC_PORT": str(free_ports(1)[0]), "GRPC_PROXY_PORT": str(proxy_port),
                "MAX_FILE_SIZE": str(1 << 20)}
    settings.update(overrides)
    return settings
