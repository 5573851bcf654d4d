"""The gRPC front (scripts/service/grpc_front/server.py) driven by tritonclient.grpc and raw stubs, against a
stand-in of nginx's loopback server for it that answers with the real v2 wire format
(tests/unit/grpc_fakes.py) and a scripted readiness snapshot: no TorchServe, no nginx."""

from __future__ import annotations

import json
import socket
import threading

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from scripts.service.grpc_front.server import GrpcFront, GrpcStartError
from scripts.service.readiness import Responder
from tests.support import jpeg_bytes, png_bytes, wait_until
from tests.unit.grpc_fakes import CATEGORIES, KEY, FakeNginx, front_settings, probabilities_of, ready_snapshot, \
    scripted_poller

IMAGES = [jpeg_bytes(40, 30, seed=4), png_bytes(20, 10)]


class Running:
    def __init__(self, tmp_path, keys=(), **settings):
        self.nginx = FakeNginx(keys)
        self.poller = scripted_poller(tmp_path)
        self.logs: list[dict] = []
        self.front = GrpcFront(front_settings(self.nginx.port, **settings), Responder(self.poller), self.poller,
                               self.logs.append).start()
        self.target = f"127.0.0.1:{self.front.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.client = triton.InferenceServerClient(self.target)

    def close(self):
        self.client.close()
        self.channel.close()
        self.front.stop(1)
        self.nginx.stop()

    def lines(self, method: str, count: int = 1) -> list[dict]:
        """The log lines of ``method``, waiting for ``count`` of them (a failed call's client may hear
        its status a moment before the front writes the line)."""
        def matching() -> list[dict]:
            return [line for line in list(self.logs) if line["method"].endswith("/" + method)]

        wait_until(lambda: len(matching()) >= count, timeout=10)
        return matching()


@pytest.fixture
def running(tmp_path):
    front = Running(tmp_path)
    yield front
    front.close()


def image_input(images=IMAGES) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    return tensor


def infer_request(images=IMAGES, **fields) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="resnet50", **fields)
    request.inputs.add(name="image", datatype="BYTES", shape=[len(images)]).contents.bytes_contents.extend(images)
    return request


# ----------------------------------------------------------------------------------- infer
def test_tritonclient_infer_several_images_in_one_request(running):
    result = running.client.infer("resnet50", [image_input()], request_id="id-1")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, len(CATEGORIES))
    for row, image in zip(probabilities, IMAGES):
        np.testing.assert_array_equal(row, probabilities_of(image).numpy())
    assert result.get_response().id == "id-1" and result.get_response().model_version == "1.0"
    # One HTTP v2 binary request per call, the images in raw form, through the front's upstream.
    [sent] = [r for r in running.nginx.requests if r["method"] == "POST"]
    assert sent["path"] == "/v2/models/resnet50/infer" and "Inference-Header-Content-Length" in sent["headers"]


def test_classification_extension(running):
    output = triton.InferRequestedOutput("probabilities", class_count=2)
    strings = running.client.infer("resnet50", [image_input()], outputs=[output]).as_numpy("probabilities")
    assert strings.shape == (2, 2)
    for row, image in zip(strings, IMAGES):
        top = probabilities_of(image).topk(2)
        assert [s.decode() for s in row] == [f"{v:f}:{i}:{CATEGORIES[i]}" for v, i in
                                             zip(top.values.tolist(), top.indices.tolist())]


def test_bytes_contents_answer_as_raw_contents_and_the_request_id_goes_both_ways(running):
    response, call = running.stub.ModelInfer.with_call(infer_request(), metadata=(("x-request-id", "my-id-7"),))
    values = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, len(CATEGORIES))
    np.testing.assert_array_equal(values[1], probabilities_of(IMAGES[1]).numpy())
    assert ("x-request-id", "my-id-7") in call.initial_metadata()
    assert ("x-request-id", "my-id-7") in call.trailing_metadata()
    assert running.nginx.requests[-1]["headers"]["X-Request-ID"] == "my-id-7"
    [line] = running.lines("ModelInfer")
    assert line["request_id"] == "my-id-7" and line["grpc_status"] == "OK" and line["upstream_status"] == 200
    assert line["level"] == "INFO" and line["logger"] == "grpc.access" and line["latency_s"] > 0
    assert 0 < line["upstream_latency_s"] <= line["latency_s"]


# ---------------------------------------------------------------------------------- errors
def test_a_text_file_is_invalid_argument_with_the_handlers_message_and_code(running):
    with pytest.raises(grpc.RpcError) as raised:
        running.stub.ModelInfer(infer_request([b"just some text"]), metadata=(("x-request-id", "txt-1"),))
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("Unsupported media type")
    assert dict(error.trailing_metadata()) == {"x-error-code": "unsupported_media_type", "x-request-id": "txt-1"}
    [line] = running.lines("ModelInfer")
    assert (line["level"], line["grpc_status"], line["code"]) == ("ERROR", "INVALID_ARGUMENT", "unsupported_media_type")


def test_unknown_model_is_not_found(running):
    with pytest.raises(InferenceServerException) as raised:
        running.client.infer("no-such-model", [image_input()])
    assert raised.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as raised:
        running.client.infer("", [image_input()])
    assert raised.value.status() == "StatusCode.NOT_FOUND" and "resnet50" in raised.value.message()


def test_shed_load_is_unavailable_with_retry_information(running):
    with pytest.raises(grpc.RpcError) as raised:
        running.stub.ModelInfer(infer_request(), metadata=(("x-request-id", "overload-1"),))
    error = raised.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "capacity" in error.details()
    metadata = dict(error.trailing_metadata())
    assert metadata["x-error-code"] == "overloaded" and metadata["retry-after"] == "1"
    assert metadata["grpc-retry-pushback-ms"] == "1000"


def test_a_passed_deadline_stops_the_wait_on_the_upstream(running):
    """The upstream holds the request until told; the client's deadline passes first. The client is
    told DEADLINE_EXCEEDED, and the front closes its connection to nginx (nginx then stops too)."""
    with pytest.raises(grpc.RpcError) as raised:
        running.stub.ModelInfer(infer_request(), metadata=(("x-request-id", "hold-1"),), timeout=0.5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert running.nginx.disconnected.wait(10), "the front kept waiting on the upstream"
    [line] = running.lines("ModelInfer")
    assert line["grpc_status"] == "DEADLINE_EXCEEDED" and line["request_id"] == "hold-1"
    # The front serves on.
    assert running.client.infer("resnet50", [image_input()]).as_numpy("probabilities").shape == (2, len(CATEGORIES))


def test_a_message_over_max_file_size_is_refused_by_grpc_itself(tmp_path):
    front = Running(tmp_path, MAX_FILE_SIZE="2048")
    try:
        with pytest.raises(grpc.RpcError) as raised:
            front.stub.ModelInfer(infer_request([b"\xff\xd8" + b"x" * 4096]))
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert front.nginx.requests == []  # never forwarded
        assert front.stub.ModelInfer(infer_request([IMAGES[1]])).raw_output_contents
    finally:
        front.close()


def test_api_keys_as_bearer_metadata(tmp_path):
    front = Running(tmp_path, keys=(KEY,))
    try:
        with pytest.raises(InferenceServerException) as raised:
            front.client.infer("resnet50", [image_input()])
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        with pytest.raises(InferenceServerException) as raised:
            front.client.get_model_metadata("resnet50", headers={"authorization": "Bearer wrong-key-0123456789"})
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
        good = {"authorization": f"Bearer {KEY}"}
        assert front.client.infer("resnet50", [image_input()], headers=good).as_numpy("probabilities").shape[0] == 2
        assert front.client.get_model_metadata("resnet50", headers=good).name == "resnet50"
        assert front.client.infer("resnet50", [image_input()], headers={"x-api-key": KEY}).as_numpy("probabilities") \
            is not None
        # Readiness needs no key, as GET /v2/health/* and /health.
        assert front.client.is_server_ready() and front.client.is_model_ready("resnet50")
    finally:
        front.close()


# --------------------------------------------------------------------- readiness, health
def test_readiness_rpcs_and_health_follow_the_snapshot(running):
    health = health_pb2_grpc.HealthStub(running.channel)

    def check(service=""):
        return health.Check(health_pb2.HealthCheckRequest(service=service)).status

    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    assert check() == check("resnet50") == check("inference.GRPCInferenceService") == \
        health_pb2.HealthCheckResponse.SERVING
    assert running.client.is_server_live() and running.client.is_server_ready()
    assert running.client.is_model_ready("resnet50") and running.client.is_model_ready("resnet50", "1.0")
    assert not running.client.is_model_ready("resnet50", "9.9") and not running.client.is_model_ready("other")

    running.poller.snapshot = ready_snapshot(ready=False)  # the worker is gone
    assert check() == check("resnet50") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert running.client.is_server_live() and not running.client.is_server_ready()
    assert not running.client.is_model_ready("resnet50")
    watch.cancel()
    with pytest.raises(grpc.RpcError) as raised:
        check("something.Else")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_is_not_serving_before_the_model_is_ready(tmp_path):
    from scripts.service.readiness import Snapshot

    front = Running(tmp_path)
    front.poller.snapshot = Snapshot(taken=0.0, frontend_up=False, error="starting")
    try:
        health = health_pb2_grpc.HealthStub(front.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not front.client.is_server_ready() and not front.client.is_server_live()
    finally:
        front.close()


def test_metadata_comes_through_nginx(running):
    assert running.client.get_server_metadata().extensions == ["classification"]
    meta = running.client.get_model_metadata("resnet50", "1.0")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("probabilities", "FP32", [-1, 4])]
    assert [r["path"] for r in running.nginx.requests] == ["/v2", "/v2/models/resnet50/versions/1.0"]
    with pytest.raises(InferenceServerException) as raised:
        running.client.get_model_metadata("other")
    assert raised.value.status() == "StatusCode.NOT_FOUND"


def test_metrics_count_every_call_by_method_and_code(running):
    running.client.is_server_ready()
    running.client.infer("resnet50", [image_input()])
    with pytest.raises(InferenceServerException):
        running.client.infer("resnet50", [triton.InferInput("image", [1], "BYTES")])
    running.lines("ModelInfer", count=2)  # (observed as the line is written)
    families = {f.name: f for f in text_string_to_metric_families(running.front.metrics.render())}
    counts = {(s.labels["method"], s.labels["code"]): s.value for s in families["resnet50_grpc_requests"].samples
              if s.name.endswith("_total")}
    assert counts == {("ServerReady", "OK"): 1, ("ModelInfer", "OK"): 1, ("ModelInfer", "INVALID_ARGUMENT"): 1}
    histogram = {(s.name, s.labels.get("le")): s.value for s in families["resnet50_grpc_request_duration_seconds"].samples
                 if s.labels["method"] == "ModelInfer"}
    assert histogram[("resnet50_grpc_request_duration_seconds_count", None)] == 2
    assert histogram[("resnet50_grpc_request_duration_seconds_bucket", "+Inf")] == 2


def test_log_lines_are_json_and_respect_log_level(tmp_path):
    front = Running(tmp_path, LOG_LEVEL="WARNING")
    try:
        front.client.is_server_ready()
        with pytest.raises(InferenceServerException):
            front.client.infer("other", [image_input()])
        assert wait_until(lambda: front.logs, 10)
        assert [line["grpc_status"] for line in front.logs] == ["NOT_FOUND"]  # the OK one is INFO: not logged
        json.dumps(front.logs)
    finally:
        front.close()


# --------------------------------------------------------------------------------- ports
def test_a_second_front_cannot_share_the_port(running, tmp_path):
    """grpc's SO_REUSEPORT default would let two instances split one port's calls: it is off."""
    settings = front_settings(running.nginx.port, GRPC_PORT=str(running.front.port))
    with pytest.raises(GrpcStartError):
        GrpcFront(settings, Responder(running.poller), running.poller, running.logs.append).start()
    assert running.client.is_server_live()


def test_stop_drains_calls_in_flight(running):
    """A call in flight when the service stops still gets its answer (within the grace)."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(
        running.stub.ModelInfer(infer_request(), metadata=(("x-request-id", "hold-2"),), timeout=30)))
    thread.start()
    assert wait_until(lambda: any(r["headers"].get("X-Request-ID") == "hold-2" for r in running.nginx.requests), 10)
    stopper = threading.Thread(target=running.front.stop, args=(20,))
    stopper.start()
    # Not serving any more: new connections are refused while the call in flight goes on.
    assert wait_until(lambda: not _accepts(running.front.port), 10)
    running.nginx.release.set()
    thread.join(30)
    stopper.join(30)
    assert result and len(result[0].raw_output_contents) == 1


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
