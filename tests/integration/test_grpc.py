"""The Open Inference Protocol v2 over gRPC on GRPC_PORT (scripts/service/grpc_front/server.py), driven by the
official client, tritonclient.grpc (and raw stubs where the status's metadata matters), against the
real service: answers equal POST /predict's, errors carry HTTP's message and code, the limits of the
HTTP routes hold (API keys, MAX_INFLIGHT), and grpc.health.v1 follows the worker.

One instance for the module, with API_KEYS and a small MAX_INFLIGHT; the worker is killed last."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as triton
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from handler.settings_table import BY_NAME
from scripts import REPO_ROOT
from scripts.client.kserve_venv import KServeClientUnavailable, kserve_client_python
from tests.integration.service import SUITE_ARCHIVE_ENV, SUITE_STORE, start_service
from tests.support import free_ports, jpeg_bytes, png_bytes, wait_until

pytestmark = pytest.mark.integration

MODEL = "resnet50"
KEY = "grpc-test-key-0123456789"
MAX_INFLIGHT = 2
IMAGES = [jpeg_bytes(320, 240, seed=3), png_bytes(80, 60)]
TEXT = b"just some text, not an image at all"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
AUTH = {"authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def grpc_service(tmp_path_factory):
    SUITE_STORE.mkdir(parents=True, exist_ok=True)
    grpc_port = free_ports(1)[0]
    running = start_service(tmp_path_factory.mktemp("grpc-run"), SUITE_STORE,
                            {**SUITE_ARCHIVE_ENV, "GRPC_PORT": str(grpc_port), "API_KEYS": KEY,
                             "MAX_INFLIGHT": str(MAX_INFLIGHT)})
    running.grpc_target = f"127.0.0.1:{grpc_port}"
    yield running
    result = running.stop()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def client(grpc_service):
    with triton.InferenceServerClient(grpc_service.grpc_target) as client:
        yield client


@pytest.fixture(scope="module")
def channel(grpc_service):
    with grpc.insecure_channel(grpc_service.grpc_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel):
    return service_pb2_grpc.GRPCInferenceServiceStub(channel)


@pytest.fixture(scope="module")
def num_classes(grpc_service):
    info = requests.get(grpc_service.url("/info"), headers={"X-API-Key": KEY}, timeout=10).json()
    return info["default"][0]["customizedMetadata"]["num_classes"]


@pytest.fixture(scope="module")
def predicted(grpc_service, num_classes):
    """POST /predict's answer for each image, every class."""
    return [requests.post(grpc_service.url(f"/predict?top_k={num_classes}"), data=image,
                          headers={"X-API-Key": KEY}, timeout=60).json()["predictions"] for image in IMAGES]


def image_input(images=IMAGES) -> triton.InferInput:
    tensor = triton.InferInput("image", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    return tensor


def infer_request(images=IMAGES, **fields) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=MODEL, **fields)
    request.inputs.add(name="image", datatype="BYTES", shape=[len(images)]).contents.bytes_contents.extend(images)
    return request


def as_predict_order(probabilities: np.ndarray) -> list[tuple[int, float]]:
    ranked = sorted(((i, round(float(v), 6)) for i, v in enumerate(probabilities)), key=lambda p: -p[1])
    return ranked


def health_check(channel, service: str = "") -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


# ------------------------------------------------------------------------ readiness, metadata
def test_health_serving_and_the_same_facts_as_http(grpc_service, client, channel):
    assert health_check(channel) == health_check(channel, MODEL) == SERVING
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1.0")
    assert not client.is_model_ready("no-such-model") and not client.is_model_ready(MODEL, "9.9")
    http = requests.get(grpc_service.url(f"/v2/models/{MODEL}"), headers={"X-API-Key": KEY}, timeout=10).json()
    meta = client.get_model_metadata(MODEL, headers=AUTH)
    assert (meta.name, list(meta.versions), meta.platform) == (http["name"], http["versions"], http["platform"])
    assert [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in meta.outputs] == http["outputs"]
    server = client.get_server_metadata(headers=AUTH)
    assert {"binary_tensor_data", "classification"} <= set(server.extensions)


# ----------------------------------------------------------------------------------- infer
def test_infer_equals_predict_for_several_images_in_one_request(client, predicted, num_classes):
    result = client.infer(MODEL, [image_input()], request_id="grpc-1", headers=AUTH)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(IMAGES), num_classes)
    assert result.get_response().id == "grpc-1" and result.get_response().model_version == "1.0"
    for row, expected in zip(probabilities, predicted):
        assert as_predict_order(row)[:5] == [(p["class_id"], p["probability"]) for p in expected[:5]]
    versioned = client.infer(MODEL, [image_input(IMAGES[:1])], model_version="1.0", headers=AUTH)
    np.testing.assert_allclose(versioned.as_numpy("probabilities")[0], probabilities[0], atol=1e-6)


def test_classification_extension_equals_predicts_top_k(client, predicted):
    output = triton.InferRequestedOutput("probabilities", class_count=3)
    strings = client.infer(MODEL, [image_input()], outputs=[output], headers=AUTH).as_numpy("probabilities")
    assert strings.shape == (len(IMAGES), 3)
    for row, expected in zip(strings, predicted):
        assert [s.decode() for s in row] == [f"{p['probability']:f}:{p['class_id']}:{p['label']}" for p in expected[:3]]


def test_bytes_contents_and_the_request_id_in_metadata_and_logs(grpc_service, stub, predicted):
    response, call = stub.ModelInfer.with_call(infer_request(IMAGES[:1]),
                                               metadata=(("x-request-id", "grpc-rid-42"), *AUTH.items()))
    row = np.frombuffer(response.raw_output_contents[0], dtype="<f4")
    assert as_predict_order(row)[0] == (predicted[0][0]["class_id"], predicted[0][0]["probability"])
    assert ("x-request-id", "grpc-rid-42") in call.initial_metadata()
    lines = grpc_service.wait_for_logs(lambda line: line.get("request_id") == "grpc-rid-42", count=2)
    loggers = {line.get("logger") for line in lines}
    assert "grpc.access" in loggers and len(loggers) >= 2, loggers  # the front's line and the handler's
    [access] = [line for line in lines if line.get("logger") == "grpc.access"]
    assert access["method"] == "/inference.GRPCInferenceService/ModelInfer" and access["grpc_status"] == "OK"
    assert access["upstream_status"] == 200 and access["latency_s"] > 0
    assert 0 < access["upstream_latency_s"] <= access["latency_s"]


# ---------------------------------------------------------------------------------- errors
def test_a_text_file_is_invalid_argument_with_https_message(grpc_service, stub):
    http = requests.post(grpc_service.url(f"/v2/models/{MODEL}/infer"), headers={"X-API-Key": KEY}, timeout=30,
                         json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                           "data": [base64.b64encode(TEXT).decode()]}]})
    assert http.status_code == 415
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(infer_request([TEXT]), metadata=(("x-request-id", "grpc-text-1"), *AUTH.items()))
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == http.json()["error"]
    assert dict(error.trailing_metadata()) == {"x-error-code": http.json()["code"], "x-request-id": "grpc-text-1"}


def test_unknown_model_and_version_are_not_found(client):
    for model, version in (("no-such-model", ""), (MODEL, "9.9"), (MODEL, "bad version!")):
        with pytest.raises(InferenceServerException) as raised:
            client.infer(model, [image_input(IMAGES[:1])], model_version=version, headers=AUTH)
        assert raised.value.status() == "StatusCode.NOT_FOUND" and raised.value.message(), (model, version)
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata("no-such-model", headers=AUTH)
    assert raised.value.status() == "StatusCode.NOT_FOUND"


def test_a_missing_or_wrong_key_is_unauthenticated_and_a_good_key_works(client, stub):
    for headers in (None, {"authorization": "Bearer not-the-key-0123456789"}):
        with pytest.raises(InferenceServerException) as raised:
            client.infer(MODEL, [image_input(IMAGES[:1])], headers=headers)
        assert raised.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=MODEL))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert dict(raised.value.trailing_metadata())["x-error-code"] == "unauthorized"
    assert client.infer(MODEL, [image_input(IMAGES[:1])], headers=AUTH).as_numpy("probabilities").shape[0] == 1
    assert client.is_server_ready()  # readiness needs no key, as GET /v2/health/ready


def test_a_passed_deadline_is_deadline_exceeded_and_the_front_stops_waiting(grpc_service, stub):
    """The largest request the service takes (MAX_IMAGES_PER_REQUEST photos) takes a measured time;
    a deadline of a quarter of it passes while the model works on it."""
    count = BY_NAME["MAX_IMAGES_PER_REQUEST"].parse()
    photos = [jpeg_bytes(640, 480, seed=i) for i in range(count)]
    metadata = tuple(AUTH.items())
    started = time.monotonic()
    stub.ModelInfer(infer_request(photos), metadata=metadata, timeout=120)
    baseline = time.monotonic() - started
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(infer_request(photos), metadata=(("x-request-id", "grpc-deadline-1"), *metadata),
                        timeout=baseline / 4)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    [line] = grpc_service.wait_for_logs(lambda line: line.get("request_id") == "grpc-deadline-1"
                                        and line.get("logger") == "grpc.access")
    # The front gave up when the client did (it does not sit out the model's answer).
    assert line["grpc_status"] in ("DEADLINE_EXCEEDED", "CANCELLED") and line["latency_s"] < baseline
    print(f"\n{count} photos: {baseline:.2f} s; deadline {baseline / 4:.2f} s; the front gave up after "
          f"{line['latency_s']:.2f} s")
    assert stub.ModelInfer(infer_request(IMAGES[:1]), metadata=metadata, timeout=60).raw_output_contents


def test_overload_is_shed_with_unavailable_and_retry_information(stub):
    """More concurrent calls than MAX_INFLIGHT: the excess is told UNAVAILABLE at once, as HTTP's 503."""
    calls = MAX_INFLIGHT + 8
    barrier = threading.Barrier(calls)
    outcomes: list = []
    request = infer_request([jpeg_bytes(640, 480, seed=9)])

    def send() -> None:
        barrier.wait()
        try:
            stub.ModelInfer(request, metadata=tuple(AUTH.items()), timeout=120)
            outcomes.append(("OK", {}, ""))
        except grpc.RpcError as error:
            outcomes.append((error.code().name, dict(error.trailing_metadata()), error.details()))

    threads = [threading.Thread(target=send) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    shed = [o for o in outcomes if o[0] == "UNAVAILABLE"]
    assert len(outcomes) == calls and {o[0] for o in outcomes} <= {"OK", "UNAVAILABLE"}, outcomes
    assert shed and any(o[0] == "OK" for o in outcomes), outcomes
    _, metadata, message = shed[0]
    assert metadata["x-error-code"] == "overloaded" and message
    assert metadata["retry-after"] == "1" and metadata["grpc-retry-pushback-ms"] == "1000"


def test_metrics_count_grpc_requests(grpc_service, client):
    def samples() -> dict:
        text = requests.get(grpc_service.url("/metrics"), timeout=10).text
        assert "resnet50_requests_total" in text  # the handler's own, beside
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    ok = ("resnet50_grpc_requests_total", (("code", "OK"), ("method", "ModelInfer")))
    refused = ("resnet50_grpc_requests_total", (("code", "UNAUTHENTICATED"), ("method", "ModelInfer")))
    count = ("resnet50_grpc_request_duration_seconds_count", (("method", "ModelInfer"),))
    client.infer(MODEL, [image_input(IMAGES[:1])], headers=AUTH)
    before = samples()
    client.infer(MODEL, [image_input(IMAGES[:1])], headers=AUTH)
    with pytest.raises(InferenceServerException):
        client.infer(MODEL, [image_input(IMAGES[:1])])
    after = wait_until(lambda: (lambda now: now if now.get(refused, 0) > before.get(refused, 0) else None)(samples()),
                       timeout=10)
    assert after, "the refused call was not counted"
    assert after[ok] == before[ok] + 1 and after[refused] == before.get(refused, 0) + 1
    assert after[count] == before[count] + 2


# ------------------------------------------------------------------------------ KServe's client
def test_kserves_grpc_client_unchanged(grpc_service, predicted, tmp_path):
    """KServe's InferenceGRPCClient, in the venv of its own (made here when missing: kserve cannot be
    imported beside tritonclient.grpc, kserve#3099)."""
    try:
        python = kserve_client_python()
    except KServeClientUnavailable as error:  # CI reaches pip's index: failing here is a real failure
        pytest.fail(f"KServe's client venv could not be made: {error}")
    paths = []
    for index, image in enumerate(IMAGES):
        paths += ["--image", str(tmp_path / f"{index}.img")]
        (tmp_path / f"{index}.img").write_bytes(image)
    result = subprocess.run([str(python), str(REPO_ROOT / "scripts" / "client" / "kserve_grpc_check.py"),
                             "--url", grpc_service.grpc_target, "--api-key", KEY, "--top", "3", *paths],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"], result.stdout + result.stderr[-2000:]
    assert report["live"] and report["ready"] and report["model_ready"]
    for form in ("infer_raw", "infer_bytes_contents"):
        for top, expected in zip(report[form]["top"], predicted):
            assert [tuple(pair) for pair in top] == [(p["class_id"], p["probability"]) for p in expected[:3]], form
    for row, expected in zip(report["classification"], predicted):
        assert row == [f"{p['probability']:f}:{p['class_id']}:{p['label']}" for p in expected[:3]]
    assert report["text_file"]["status"] == "INVALID_ARGUMENT"


# ------------------------------------------------------------------------------ the worker down
def test_health_is_not_serving_while_the_worker_is_down(grpc_service, channel):
    """Runs last in this module: it kills the worker."""
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=MODEL), timeout=120)
    assert next(watch).status == SERVING
    pid = requests.get(grpc_service.url("/health"), timeout=5).json()["worker_pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: health_check(channel) == NOT_SERVING, timeout=10, interval=0.05)
    assert next(watch).status == NOT_SERVING  # watchers are told too (Kubernetes' probes use Check)
    assert wait_until(lambda: health_check(channel) == SERVING, timeout=60, interval=0.2), "no worker back in 60 s"
    assert next(watch).status == SERVING
    watch.cancel()
    assert requests.get(grpc_service.url("/health"), timeout=5).status_code == 200


# ------------------------------------------------------------------------- two instances, one port
def test_a_busy_grpc_port_you_chose_is_refused_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = free_ports(1)[0]
        env = {**os.environ, "PORT": str(port), "BIND_ADDRESS": "127.0.0.1", "GRPC_PORT": str(busy),
               "RUN_DIR": str(tmp_path / "run"), "ENV_FILE": str(tmp_path / "no.env")}
        result = subprocess.run([str(REPO_ROOT / "scripts" / "serve.sh"), "--detach"], env=env,
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "GRPC_PORT" in line]
    assert len(lines) == 1 and lines[0].startswith(f"GRPC_PORT {busy} on 127.0.0.1 is already in use")
    assert not (tmp_path / "run" / "service.pid").exists()


def test_beside_another_instance_the_default_grpc_port_taken_is_one_warning(tmp_path, monkeypatch):
    """A second instance started with only PORT changed still starts: gRPC's default port is the
    first one's (held here by a socket, or already by another instance), so this one runs without."""
    default = int(BY_NAME["GRPC_PORT"].default)
    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", default))
            holder.listen()
        except OSError:  # already taken (another instance): just as good
            pass
        monkeypatch.delenv("GRPC_PORT", raising=False)  # start_service builds its env from os.environ
        running = start_service(tmp_path / "run", SUITE_STORE, {**SUITE_ARCHIVE_ENV, "GRPC_PORT": None},
                                watch_health=False)
    finally:
        holder.close()
    try:
        assert "GRPC_PORT" not in running.env
        assert requests.get(running.url("/health"), timeout=5).status_code == 200
        [warning] = running.wait_for_logs(lambda line: line.get("event") == "grpc_port_in_use")
        assert warning["level"] == "WARNING" and warning["message"].startswith(f"GRPC_PORT {default} is in use")
        assert "GRPC_PORT" not in json.loads((running.run_dir / "ports.json").read_text())
    finally:
        assert running.stop().returncode == 0
