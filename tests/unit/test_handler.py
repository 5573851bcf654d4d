"""The entry class end to end with TorchServe's own Context and a random-weights archive dir."""

import base64
import json

import pytest
import torch

from handler.resnet50_handler import ResNet50Handler
from handler.selftest import SelfTestFailed
from handler.settings_table import BY_NAME
from tests.support import jpeg_bytes, png_bytes
from tests.unit.ts_context import failed_statuses, worker_context

MULTIPART = {"Content-Type": "multipart/form-data; boundary=x"}
DEFAULT_TOP_K = BY_NAME["DEFAULT_TOP_K"].parse()


@pytest.fixture(scope="module")
def handler(model_dir):
    h = ResNet50Handler()
    h.initialize(worker_context(model_dir))
    return h


def run(handler, model_dir, requests, headers):
    context = worker_context(model_dir, headers)
    return context, [json.loads(r) for r in handler.handle(requests, context)]


def test_initialize_proves_the_model(handler):
    assert handler.initialized
    assert handler.selftest["passed"] is True
    assert handler.selftest["relative_error"] < 1e-4


def test_mixed_batch_keeps_per_request_outcomes(handler, model_dir):
    good = jpeg_bytes(120, 90)
    json_body = json.dumps({"image": base64.b64encode(png_bytes()).decode(), "top_k": 2}).encode()
    requests = [
        {"file": good, "top_k": b"3"},
        {"body": b"not an image"},
        {"body": json_body},
        {"body": b"{broken"},
        {"file": good, "top_k": b"0"},
    ]
    headers = [MULTIPART | {"X-Request-ID": "r0"}, {"Content-Type": "text/plain"},
               {"Content-Type": "application/json"}, {"Content-Type": "application/json"}, MULTIPART]
    context, bodies = run(handler, model_dir, requests, headers)

    assert len(bodies[0]["predictions"]) == 3 and bodies[0]["request_id"] == "r0"
    assert len(bodies[2]["predictions"]) == 2 and bodies[2]["image"]["format"] == "PNG"
    assert [bodies[i]["error"]["code"] for i in (1, 3, 4)] == ["unsupported_media_type", "invalid_json",
                                                               "invalid_top_k"]
    assert failed_statuses(context) == {1: (415, "unsupported_media_type"), 3: (400, "invalid_json"),
                                        4: (400, "invalid_top_k")}
    assert all(context.get_response_content_type(i) == "application/json" for i in range(len(requests)))
    assert bodies[4]["error"]["request_id"] == "ts-4"  # no proxy header: TorchServe's own id


def test_prediction_body_shape(handler, model_dir):
    _, (body,) = run(handler, model_dir, [{"body": jpeg_bytes(64, 48)}], [{}])
    predictions = body["predictions"]
    assert [p["rank"] for p in predictions] == list(range(1, DEFAULT_TOP_K + 1))
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0 < p <= 1 for p in probabilities)
    assert predictions[0]["label"] == handler.pipeline.meta.categories[predictions[0]["class_id"]]
    assert body["model"] == {"name": "resnet50", "version": "1.0", "pretrained": False}
    assert body["image"] == {"width": 64, "height": 48, "format": "JPEG"}
    assert set(body["timing_ms"]) == {"preprocess", "inference", "postprocess"}
    assert body["created_at"].endswith("Z")


def test_batched_equals_single(handler, model_dir):
    images = [jpeg_bytes(100 + 10 * i, 80, seed=i) for i in range(4)]
    _, batched = run(handler, model_dir, [{"body": b} for b in images], [{"X-Top-K": "10"}] * 4)
    for image, together in zip(images, batched):
        _, (alone,) = run(handler, model_dir, [{"body": image}], [{"X-Top-K": "10"}])
        assert [p["class_id"] for p in alone["predictions"]] == [p["class_id"] for p in together["predictions"]]
        for a, b in zip(alone["predictions"], together["predictions"]):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_health_probe_and_describe(handler, model_dir):
    context, (health,) = run(handler, model_dir, [{}], [{"X-Health-Probe": "1", "X-Request-ID": "h1"}])
    assert health["status"] == "healthy" and health["request_id"] == "h1" and health["pretrained"] is False
    _, (described,) = run(handler, model_dir, [{}], [{"describe": "True"}])
    assert described["pretrained"] is False
    assert described["weights"]["source"].startswith("random-init")
    assert described["num_classes"] == 1000
    assert described["preprocessing"]["crop_size"] == 224
    assert described["limits"]["top_k"] == {"min": 1, "max": 1000, "default": DEFAULT_TOP_K}
    assert described["runtime"]["torch"] == torch.__version__


def test_inference_failure_answers_500_for_the_batch_only(handler, model_dir, monkeypatch):
    def broken(_tensors):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(handler.pipeline, "probabilities", broken)
    context, bodies = run(handler, model_dir, [{"body": jpeg_bytes()}, {"body": b"text"}], [{}, {}])
    assert bodies[0]["error"]["code"] == "internal_error"
    assert "secret" not in bodies[0]["error"]["message"]
    assert context.get_response_status(0)[0] == 500
    assert context.get_response_headers(0)["X-Error-Code"] == "internal_error"
    assert bodies[1]["error"]["code"] == "unsupported_media_type"


def test_tampered_weights_never_serve(tampered_model_dir):
    handler = ResNet50Handler()
    with pytest.raises(SelfTestFailed):
        handler.initialize(worker_context(tampered_model_dir))
    assert not handler.initialized


def test_tampered_weights_log_critical(tampered_model_dir, capsys):
    with pytest.raises(SelfTestFailed):
        ResNet50Handler().initialize(worker_context(tampered_model_dir))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line["level"] == "CRITICAL" and line["event"] == "model_load_failed" for line in lines)


def copy_with_weights(source, target, change, rerecord_hash):
    import shutil

    from handler.model_meta import sha256_of

    for item in source.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, target / item.name)
    state = torch.load(target / "weights.pt", weights_only=True)
    change(state)
    torch.save(state, target / "weights.pt")
    if rerecord_hash:
        meta = json.loads((target / "model_meta.json").read_text())
        meta["weights"]["sha256"] = sha256_of(target / "weights.pt")
        (target / "model_meta.json").write_text(json.dumps(meta))
    return target


def test_changed_weights_never_serve_at_any_precision(model_dir, tmp_path, monkeypatch):
    """A final layer scaled by 10 % moves the self-test logits by 0.10 relative error: inside the
    tolerance a reduced precision may need, so the weights file's recorded sha256 must catch it first,
    whatever the precision asked for."""
    changed = copy_with_weights(model_dir, tmp_path, lambda s: s.__setitem__("fc.weight", s["fc.weight"] * 1.1),
                                rerecord_hash=False)
    monkeypatch.setenv("PRECISION", "int8")
    handler = ResNet50Handler()
    with pytest.raises(SelfTestFailed, match="sha256"):
        handler.initialize(worker_context(changed))
    assert not handler.initialized


def test_selftest_still_catches_wrong_logits_when_the_hash_matches(model_dir, tmp_path):
    """Weights whose hash was recorded but which do not give the recorded logits (a broken
    backend would look the same) are refused by the self-test itself."""
    changed = copy_with_weights(
        model_dir, tmp_path,
        lambda s: s.__setitem__("layer4.2.conv3.weight", s["layer4.2.conv3.weight"] * 1.5), rerecord_hash=True)
    with pytest.raises(SelfTestFailed, match="relative error"):
        ResNet50Handler().initialize(worker_context(changed))


def test_result_cache_is_off_by_default(handler, model_dir):
    _, (first,) = run(handler, model_dir, [{"body": jpeg_bytes(50, 40)}], [{}])
    _, (second,) = run(handler, model_dir, [{"body": jpeg_bytes(50, 40)}], [{}])
    assert "cached" not in first and "cached" not in second
    assert handler.describe_handle()["result_cache"]["capacity"] == 0


def test_result_cache_serves_identical_bytes(model_dir, monkeypatch):
    monkeypatch.setenv("RESULT_CACHE_SIZE", "2")
    cached_handler = ResNet50Handler()
    cached_handler.initialize(worker_context(model_dir))
    image = jpeg_bytes(70, 50, seed=4)
    _, (first,) = run(cached_handler, model_dir, [{"body": image}], [{"X-Top-K": "3"}])
    _, (second,) = run(cached_handler, model_dir, [{"body": image}], [{"X-Top-K": "5"}])
    assert "cached" not in first and second["cached"] is True
    assert second["timing_ms"]["inference"] == 0.0 and second["image"] == first["image"]
    assert second["predictions"][:3] == first["predictions"]
    for seed in (5, 6):  # two other images evict the first (capacity 2)
        run(cached_handler, model_dir, [{"body": jpeg_bytes(70, 50, seed=seed)}], [{}])
    _, (third,) = run(cached_handler, model_dir, [{"body": image}], [{}])
    assert "cached" not in third
    stats = cached_handler.describe_handle()["result_cache"]
    assert stats["capacity"] == 2 and stats["entries"] == 2 and stats["hits"] == 1


def test_several_images_one_request_one_batch(handler, model_dir, monkeypatch):
    images = [jpeg_bytes(100 + 10 * i, 80, seed=i) for i in range(3)]
    body = json.dumps({"images": [base64.b64encode(images[0]).decode(), "@@@",
                                  base64.b64encode(images[1]).decode()], "top_k": 3}).encode()
    multipart = {"file": images[2], "file_1": b"plain text, not an image", "file_2": images[0]}
    forward_sizes = []
    original = handler.pipeline.probabilities
    monkeypatch.setattr(handler.pipeline, "probabilities",
                        lambda tensors: forward_sizes.append(len(tensors)) or original(tensors))
    context, (from_json, from_multipart) = run(
        handler, model_dir, [{"body": body}, multipart],
        [{"Content-Type": "application/json", "X-Request-ID": "multi"}, MULTIPART])

    assert forward_sizes == [4]  # the good images of both requests: one forward pass
    assert failed_statuses(context) == {}  # partial failures are inline: the requests themselves succeed
    assert from_json["request_id"] == "multi"
    assert [r["index"] for r in from_json["results"]] == [0, 1, 2]
    assert [r["status"] for r in from_json["results"]] == [200, 400, 200]
    assert from_json["results"][1]["error"]["code"] == "invalid_image"
    assert from_json["summary"] == {"images": 3, "succeeded": 2, "failed": 1}
    assert all(len(r["predictions"]) == 3 for r in from_json["results"] if r["status"] == 200)
    assert [r["status"] for r in from_multipart["results"]] == [200, 415, 200]
    assert from_multipart["results"][1]["error"]["code"] == "unsupported_media_type"
    assert from_multipart["results"][0]["image"] == {"width": 120, "height": 80, "format": "JPEG"}
    # The same bytes give the same answer alone, in a multi request, at any position.
    _, (alone,) = run(handler, model_dir, [{"body": images[0]}], [{"X-Top-K": "3"}])
    for together in (from_json["results"][0], from_multipart["results"][2]):
        top3 = together["predictions"][:3]  # the multipart request asked for the default top_k
        assert [p["class_id"] for p in top3] == [p["class_id"] for p in alone["predictions"]]
        for a, b in zip(alone["predictions"], top3):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


def test_too_many_images_fails_the_request(handler, model_dir, monkeypatch):
    monkeypatch.setattr(handler, "settings", handler.settings.__class__(max_images_per_request=2))
    body = json.dumps({"images": [base64.b64encode(png_bytes()).decode()] * 3}).encode()
    context, (reply,) = run(handler, model_dir, [{"body": body}], [{"Content-Type": "application/json"}])
    assert failed_statuses(context) == {0: (400, "too_many_images")}
    assert reply["error"]["code"] == "too_many_images" and "At most 2" in reply["error"]["message"]


def test_all_images_bad_is_still_one_answer_per_image(handler, model_dir):
    body = json.dumps({"images": ["", "%%%"]}).encode()
    context, (reply,) = run(handler, model_dir, [{"body": body}], [{"Content-Type": "application/json"}])
    assert failed_statuses(context) == {}
    assert [r["error"]["code"] for r in reply["results"]] == ["missing_image", "invalid_image"]
    assert reply["summary"] == {"images": 2, "succeeded": 0, "failed": 2}


# ------------------------------------------------------------- KServe v1 (POST /v1/models/NAME:predict)
V1 = {"Content-Type": "application/json", "X-Wire-Format": "v1"}  # what nginx sends on the v1 route


def v1_body(instances) -> bytes:
    return json.dumps({"instances": instances}).encode()


def test_kserve_v1_requests_batched_together_each_get_their_own_answer(handler, model_dir, monkeypatch):
    """Dynamic batching intact: v1 requests beside each other (and beside /predict) in one TorchServe
    batch are one forward pass, and each gets its own {"predictions": [...]}, equal to /predict's."""
    images = [jpeg_bytes(100 + 9 * i, 80, seed=20 + i) for i in range(3)]
    encoded = [base64.b64encode(image).decode() for image in images]
    forward_sizes = []
    original = handler.pipeline.probabilities
    monkeypatch.setattr(handler.pipeline, "probabilities",
                        lambda tensors: forward_sizes.append(len(tensors)) or original(tensors))
    requests = [{"body": v1_body([{"data": encoded[0], "top_k": 2}])},
                {"body": images[2]},
                {"body": v1_body([{"b64": encoded[1]}, "%%%", {"data": {"b64": encoded[2]}}])},
                {"body": v1_body([encoded[2]])}]
    headers = [V1 | {"X-Request-ID": "v1-a"}, {"X-Top-K": "3"}, V1, V1]
    context, (first, predict, second, third) = run(handler, model_dir, requests, headers)

    assert forward_sizes == [5]  # every good image of the four requests
    assert failed_statuses(context) == {}
    assert all(context.get_response_content_type(i) == "application/json" for i in range(4))
    assert set(first) == set(second) == set(third) == {"predictions"}  # KServe v1's answer, nothing else
    assert [len(r["predictions"]) for r in first["predictions"]] == [2]
    assert [r["status"] for r in second["predictions"]] == [200, 400, 200]
    assert second["predictions"][1]["error"]["code"] == "invalid_image"
    assert [r["index"] for r in second["predictions"]] == [0, 1, 2]
    assert len(second["predictions"][0]["predictions"]) == DEFAULT_TOP_K
    # The same image answers the same through v1 (in any request, at any position) and /predict.
    assert_same_predictions(predict["predictions"], third["predictions"][0]["predictions"][:3])
    assert_same_predictions(second["predictions"][2]["predictions"], third["predictions"][0]["predictions"])
    for image, result in ((images[0], first["predictions"][0]), (images[1], second["predictions"][0])):
        _, (alone,) = run(handler, model_dir, [{"body": image}], [{"X-Top-K": str(len(result["predictions"]))}])
        assert_same_predictions(alone["predictions"], result["predictions"])
        assert alone["image"] == result["image"]


def assert_same_predictions(left: list[dict], right: list[dict]) -> None:
    """Same classes in the same order, probabilities equal up to a batch's float noise."""
    assert [p["class_id"] for p in left] == [p["class_id"] for p in right]
    assert [p["probability"] for p in left] == pytest.approx([p["probability"] for p in right], abs=1e-5)


def test_kserve_v1_request_errors_are_kserves_error_body(handler, model_dir):
    too_many = [{"data": "x"}] * (handler.settings.max_images_per_request + 1)
    requests = [{"body": json.dumps({"inputs": []}).encode()}, {"body": b"{broken"}, {"body": b"[1, 2]"},
                {"body": b""}, {"body": v1_body(too_many)}, {"body": v1_body([{"data": "x", "top_k": 0}])}]
    context, bodies = run(handler, model_dir, requests, [V1 | {"X-Request-ID": f"e{i}"} for i in range(6)])
    assert failed_statuses(context) == {0: (400, "missing_image"), 1: (400, "invalid_json"), 2: (400, "invalid_json"),
                                        3: (400, "missing_image"), 4: (400, "too_many_images"),
                                        5: (400, "invalid_top_k")}
    for index, body in enumerate(bodies):
        # KServe's model server answers errors as {"error": "<message>"}; the code and id are ours.
        assert set(body) == {"error", "code", "request_id"} and isinstance(body["error"], str)
        assert body["request_id"] == f"e{index}"
        assert context.get_response_headers(index)["X-Error-Code"] == body["code"]
        assert context.get_response_content_type(index) == "application/json"
    assert "instances" in bodies[0]["error"] and "instances" in bodies[3]["error"]


def test_kserve_v1_body_decoded_by_torchserve_is_read_too(handler, model_dir):
    """With TS_DECODE_INPUT_REQUEST unset TorchServe hands JSON bodies over as a dict."""
    instances = [{"data": base64.b64encode(png_bytes()).decode()}]
    _, (reply,) = run(handler, model_dir, [{"body": {"instances": instances}}], [V1])
    assert reply["predictions"][0]["status"] == 200 and reply["predictions"][0]["image"]["format"] == "PNG"


def test_only_nginx_header_value_v1_selects_kserve_v1(handler, model_dir):
    body = v1_body([base64.b64encode(png_bytes()).decode()])
    context, (reply,) = run(handler, model_dir, [{"body": body}], [{"Content-Type": "application/json",
                                                                    "X-Wire-Format": "kserve"}])
    assert failed_statuses(context) == {0: (400, "missing_image")}  # read as /predict's JSON: no "image"
    assert reply["error"]["code"] == "missing_image"


def test_kserve_v1_runs_the_same_stages_as_the_multi_image_form(handler, model_dir, monkeypatch):
    """KServe v1 is a parser and a formatter around the stages, not a pipeline of its own: its
    instances go through preprocess, inference and postprocess and answer what /predict's
    {"images": [...]} answers for the same images."""
    images = [base64.b64encode(jpeg_bytes(80, 60, seed=s)).decode() for s in (7, 8)] + ["%%%"]
    body = json.dumps({"images": images, "top_k": 2}).encode()
    _, (multi,) = run(handler, model_dir, [{"body": body}], [{"Content-Type": "application/json"}])
    stages = []
    for stage in ("preprocess", "inference", "postprocess"):
        original = getattr(handler, stage)
        monkeypatch.setattr(handler, stage, lambda states, _stage=stage, _original=original:
                            stages.append(_stage) or _original(states))
    _, (reply,) = run(handler, model_dir, [{"body": v1_body([{"data": image, "top_k": 2} for image in images])}], [V1])
    assert stages == ["preprocess", "inference", "postprocess"]
    assert reply["predictions"][:2] == multi["results"][:2]
    assert reply["predictions"][2]["error"]["code"] == multi["results"][2]["error"]["code"] == "invalid_image"


def test_parallel_decode_matches_one_thread(handler, model_dir, monkeypatch):
    """Several images are decoded on the worker's threads; outcomes and order are the same as
    decoding them one after another, and a bad image still fails only its own request."""
    images = [jpeg_bytes(90 + 7 * i, 70, seed=10 + i) for i in range(5)]
    requests = [{"body": b} for b in images[:2]] + [{"body": b"GIF89a broken"}] + [{"body": b} for b in images[2:]]
    headers = [{"X-Top-K": "5"}] * len(requests)
    monkeypatch.setattr(handler, "threads", 2)
    decoded_on = set()
    prepare = handler.pipeline.prepare

    def recording_prepare(data):
        import threading
        decoded_on.add(threading.current_thread().name)
        return prepare(data)

    monkeypatch.setattr(handler.pipeline, "prepare", recording_prepare)
    _, parallel = run(handler, model_dir, requests, headers)
    assert decoded_on and all(name.startswith("decode") for name in decoded_on)
    monkeypatch.setattr(handler, "threads", 1)
    decoded_on.clear()
    _, serial = run(handler, model_dir, requests, headers)
    assert decoded_on == {"MainThread"}
    assert parallel[2]["error"]["code"] == serial[2]["error"]["code"] == "invalid_image"
    for a, b in zip(parallel, serial):
        if "predictions" in a:
            assert a["predictions"] == b["predictions"]
            assert a["image"] == b["image"]
