"""The benchmark tools' pure parts, and a CPU dry run of the GPU pipeline script (the script a
lent GPU machine runs: it must keep working without TorchServe)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scripts.benchmark import markdown, pool_rounds  # noqa: E402


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
    script = REPO / "scripts" / "gpu_pipeline_bench.py"
    arguments = ["--device", "cpu", "--batches", "1,2", "--seconds", "0.2", "--decode-threads", "2", "--out", str(out)]
    runner = ("import runpy, sys\n"
              "for name in ('ts', 'openvino'):\n"
              "    sys.modules[name] = None\n"
              f"sys.argv = [{str(script)!r}] + {arguments!r}\n"
              f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600, cwd=tmp_path)
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
