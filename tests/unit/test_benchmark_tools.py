"""The benchmark tools' pure parts, and a CPU dry run of the GPU pipeline script (the script a
lent GPU machine runs: it must keep working without TorchServe)."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import REPO_ROOT as REPO
from scripts.bench.benchmark import (PeerInstance, main, markdown, parse_concurrency, plot, pool_rounds,
                                     sample_image)


def level(concurrency, ok, seconds, latencies, errors=None):
    return {"concurrency": concurrency, "requests": ok + sum((errors or {}).values()), "ok": ok,
            "seconds": seconds, "req_per_s": round(ok / seconds, 2), "errors": errors or {},
            "_latencies": latencies}


def test_rounds_pool_into_one_level():
    pooled = pool_rounds([level(8, 10, 1.0, [0.1] * 10), level(8, 30, 2.0, [0.3] * 29 + [0.9], {"503": 2})])
    assert pooled["req_per_s"] == pytest.approx(40 / 3.0, abs=0.01)  # over all the time, not a mean of rates
    assert pooled["rounds_req_per_s"] == [10.0, 15.0]
    assert pooled["p50_ms"] == 300.0 and pooled["p99_ms"] == 900.0
    assert pooled["errors"] == {"503": 2} and pooled["requests"] == 42


def test_markdown_reports_ratio_per_round():
    ours = pool_rounds([level(8, 20, 1.0, [0.4] * 20), level(8, 16, 1.0, [0.5] * 16)])
    stock = pool_rounds([level(8, 10, 1.0, [0.8] * 10), level(8, 10, 1.0, [0.8] * 10)])
    report = {"label": "t", "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "torch": "t"}, "settings": {},
              "levels": [ours], "stock_levels": [stock], "rounds": 2, "rounds_ratio": [[2.0, 1.6]]}
    text = markdown(report)
    assert "| 8 | 10.0 | 800.0 | 18.0 | **1.80x** | 2.00, 1.60 |" in text


def test_gpu_pipeline_script_dry_run_on_cpu(tmp_path):
    """The GPU machine has neither TorchServe nor OpenVINO: run the script with both made
    unimportable (a None entry in sys.modules makes `import` raise ImportError)."""
    out = tmp_path / "gpu.json"
    arguments = ["--device", "cpu", "--batches", "1,2", "--seconds", "0.2", "--decode-threads", "2", "--out", str(out)]
    runner = ("import runpy, sys\n"
              "for name in ('ts', 'openvino'):\n"
              "    sys.modules[name] = None\n"
              f"sys.argv = ['gpu_pipeline_bench'] + {arguments!r}\n"
              "runpy.run_module('scripts.bench.gpu_pipeline_bench', run_name='__main__', alter_sys=True)\n")
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["model_only"]) == {"fp32", "bf16"}
    assert all(report["model_only"]["fp32"][b] > 0 for b in ("1", "2"))
    assert all(report["pipeline_cpu_decode"][b] > 0 and report["pipeline_device_decode"][b] > 0 for b in ("1", "2"))
    deviation = report["device_decode_deviation"]
    # the tensor resize is close to, not equal with, PIL's: measured 2.7e-3 here on the CPU
    assert deviation["images"] == 6 and 0 < deviation["max_abs_prob_diff"] < 0.02
    assert "| 2 |" in out.with_suffix(".md").read_text()


def test_markdown_compares_variants_with_stock():
    ours = pool_rounds([level(8, 16, 1.0, [0.5] * 16)])
    variant = pool_rounds([level(8, 24, 1.0, [0.3] * 24)])
    stock = pool_rounds([level(8, 8, 1.0, [1.0] * 8)])
    report = {"label": "t", "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "torch": "t"}, "settings": {},
              "levels": [ours], "stock_levels": [stock], "rounds": 1, "rounds_ratio": [[2.0]],
              "variants": [{"label": "PRECISION=int8", "env": {"PRECISION": "int8"}, "runtime": {},
                            "levels": [variant]}]}
    text = markdown(report)
    assert "| concurrency | this service (default) | `PRECISION=int8` |" in text
    assert "| 8 | 16.0 (p99 500, **2.00×**) | 24.0 (p99 300, **3.00×**) |" in text


def open_level(achieved, p99, fraction=0.8, dropped=0):
    return {"mode": "open", "arrivals": "poisson", "target_rps": 16.0, "scheduled": 80, "sent": 80 - dropped,
            "ok": 80 - dropped, "errors": {}, "dropped": dropped, "late": 3, "seconds": 5.0,
            "achieved_rps": achieved, "p50_ms": 100.0, "p90_ms": 200.0, "p95_ms": 250.0, "p99_ms": p99,
            "max_ms": p99, "loadgen_cpu_s": 0.6, "loadgen_cores": 0.12, "service_cpu_s": 9.5,
            "fraction": fraction, "capacity_rps": 20.0}


def test_markdown_reports_the_peer_open_loop_and_memory():
    ours = pool_rounds([level(8, 20, 1.0, [0.4] * 20)])
    peer = pool_rounds([level(8, 8, 1.0, [0.9] * 8)])
    memory = {"services": {
        "default": {"root_pid": 1, "process_count": 5, "total_rss_mb": 1400.0, "total_pss_mb": 1200.0,
                    "service_rss_mb": 1330.0, "service_pss_mb": 1150.0,
                    "parts": {"frontend_jvm": {"rss_mb": 280.0, "pss_mb": 270.0, "processes": [{"pid": 3}]},
                              "workers": {"rss_mb": 1030.0, "pss_mb": 870.0, "processes": [{"pid": 4}]},
                              "nginx": {"rss_mb": 20.0, "pss_mb": 10.0, "processes": [{"pid": 5}, {"pid": 6}]}}},
        "kserve": {"error": "process 9 is gone"}},
        "import_torch": [{"python": "/v/bin/python", "bare_interpreter_mb": 9.0, "after_import_mb": 509.0,
                          "import_cost_mb": 500.0, "torch": "2.14.1"}]}
    report = {"label": "t", "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "torch": "t"}, "settings": {},
              "levels": [ours], "peer_levels": [peer], "rounds": 1, "peer_rounds_ratio": [[2.5]], "memory": memory,
              "open_loop": {"arrivals": "poisson", "capacity_concurrency": 8,
                            "capacity_rps": {"default": 20.0, "kserve": 8.0},
                            "targets": {"default": [open_level(15.9, 640.0)],
                                        "kserve": [open_level(6.1, 5000.0, dropped=4)]}}}
    text = markdown(report)
    assert "| 8 | 8.0 | 900.0 | 20.0 | **2.50x** | 2.50 |" in text  # the KServe table
    assert "intended send time" in text and "default 20.0, kserve 8.0" in text
    assert "| 80 % | default | 16.00 | 15.90 | 100.0 | 200.0 | 250.0 | 640.0 | 0 | 3 | 0 | 0.60 (0.12) | 9.5 |" in text
    assert "| 80 % | kserve | 16.00 | 6.10 |" in text and "| 5000.0 | 0 | 3 | 4 |" in text
    assert "| default | 1,400 (1,200) | 1,330 (1,150) | 280 (270) | 1,030 (870) | 20 (10) ×2 | - | - | - |" in text
    assert "| kserve | process 9 is gone |" in text
    assert "**500 MB**" in text


def test_concurrency_levels_parse_and_none_skips_the_sweep():
    assert parse_concurrency("1,8, 16") == [1, 8, 16]
    assert parse_concurrency("none") == [] and parse_concurrency("") == []
    with pytest.raises(ValueError):
        parse_concurrency("0,8")


def test_open_loop_only_needs_no_closed_levels_for_the_report():
    report = {"label": "t", "machine": {"cpu": "x", "cores": 2, "memory_gb": 1, "torch": "t"}, "settings": {},
              "levels": [], "rounds": 1,
              "open_loop": {"arrivals": "fixed", "capacity_rps": {}, "targets": {"default": [
                  open_level(4.0, 120.0, fraction=None) | {"target_rps": 4.0}]}}}
    text = markdown(report)
    assert "The same absolute rates for every service." in text and "| 4.0 req/s | default | 4.00 | 4.00 |" in text
    assert plot(report, Path("/nonexistent/never-written.png")) is False


def test_peer_request_is_kserve_v1_with_the_image_in_base64():
    body = json.loads(PeerInstance.request_body(b"\xff\xd8jpeg"))
    assert list(body) == ["instances"] and len(body["instances"]) == 1
    assert base64.b64decode(body["instances"][0]["image"]["b64"]) == b"\xff\xd8jpeg"


def test_benchmark_refuses_non_loopback_and_empty_plans():
    for argv in (["--url", "http://10.0.0.5:5000"], ["--concurrency", "none"],
                 ["--open-loop", "0.5", "--rates", "4"], ["--open-loop", "7"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2


PEER_PYTHON = REPO / ".venv-bench-kserve" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not PEER_PYTHON.exists(), reason="the peer's venv is made by scripts/bench/benchmark.sh --prepare-peer")
def test_kserve_peer_predictor_matches_eager_torchvision(tmp_path):
    """The peer's predictor (run in its own venv) gives the probabilities of a plain eager
    torchvision ResNet-50 on the same weights and image: it serves the same model."""
    import torch
    import torchvision
    from PIL import Image

    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=7).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "labels.json").write_text(json.dumps([f"class {i}" for i in range(7)]))
    image = sample_image(320, 240)
    with torch.inference_mode():
        transform = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
        import io
        expected = torch.softmax(model(transform(Image.open(io.BytesIO(image)).convert("RGB"))[None]), 1)[0]
    payload = PeerInstance.request_body(image).decode()
    runner = ("import json, sys\n"
              f"sys.path.insert(0, {str(REPO / 'scripts' / 'bench')!r})\n"
              "from kserve_peer import ResNet50Classifier\n"
              f"model = ResNet50Classifier('resnet50', {str(tmp_path / 'weights.pt')!r}, "
              f"{str(tmp_path / 'labels.json')!r})\n"
              f"print(json.dumps(model.predict(json.loads({payload!r}))))\n")
    result = subprocess.run([str(PEER_PYTHON), "-c", runner], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]
    assert len(predictions) == 1 and len(predictions[0]) == 5
    top = predictions[0]
    assert [p["index"] for p in top] == expected.topk(5).indices.tolist()
    for p in top:
        assert p["label"] == f"class {p['index']}"
        assert p["probability"] == pytest.approx(expected[p["index"]].item(), abs=1e-5)
