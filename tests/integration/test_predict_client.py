"""scripts/client/predict.py against the live service: a directory, a glob and a fake .jpg in every
output format. (Retries, Retry-After and an unreachable service: tests/unit/test_predict_client.py.)"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import encode, jpeg_bytes, noise_image, png_bytes
from tests.integration.service import DEFAULT_TOP_K, REPO_ROOT

pytestmark = pytest.mark.integration

CLIENT = ["-m", "scripts.client.predict"]  # run from the repository root, as docs/api.md does
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def run_client(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *CLIENT, *args], capture_output=True, text=True, timeout=180,
                          cwd=REPO_ROOT, env={**os.environ, **(env or {})})


@pytest.fixture
def inputs(tmp_path: Path) -> dict:
    """album/ (three images, one nested, mixed-case extension) for a directory input, loose/*.png for
    a glob, and fake.jpg: text pretending to be a JPEG."""
    album = tmp_path / "album"
    (album / "nested").mkdir(parents=True)
    (album / "one.jpg").write_bytes(jpeg_bytes(96, 64, seed=1))
    (album / "two.PNG").write_bytes(png_bytes(64, 80, seed=2))
    (album / "nested" / "three.webp").write_bytes(encode(noise_image(72, 72, seed=3), "WEBP"))
    (album / "readme.txt").write_text("skipped: not an image extension")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "four.png").write_bytes(png_bytes(50, 40, mode="RGBA", seed=4))
    (loose / "five.png").write_bytes(png_bytes(40, 50, seed=5))
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is plain text, not a JPEG\n")
    # The order the client sends (and prints table/csv in): the directory's images sorted by
    # path, then the pattern's matches sorted, then the file.
    valid = [album / "nested" / "three.webp", album / "one.jpg", album / "two.PNG",
             loose / "five.png", loose / "four.png"]
    return {"args": [str(album), str(loose / "*.png"), str(fake)], "valid": [str(p) for p in valid],
            "fake": str(fake)}


def assert_fake_rejected(status: int | str, code: str) -> None:
    assert int(status) in (400, 415), status
    assert code in ("unsupported_media_type", "invalid_image"), code


def test_jsonl_over_directory_glob_and_fake_image(service, inputs):
    result = run_client(*inputs["args"], "--url", service.base_url, "--format", "jsonl")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == "predict.py: 1 of 6 images failed\n"
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_file = {record["file"]: record for record in records}
    assert len(records) == 6 and set(by_file) == {*inputs["valid"], inputs["fake"]}

    for name in inputs["valid"]:
        record = by_file[name]
        assert record["status"] == 200 and "error" not in record, record
        assert REQUEST_ID.match(record["request_id"]) and record["attempts"] == 1
        assert record["latency_ms"] > 0
        assert [p["rank"] for p in record["predictions"]] == list(range(1, DEFAULT_TOP_K + 1))
        probabilities = [p["probability"] for p in record["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
        assert all(isinstance(p["label"], str) and 0 <= p["class_id"] < 1000 for p in record["predictions"])
        assert record["model"]["name"] == "resnet50"

    fake = by_file[inputs["fake"]]
    assert "predictions" not in fake
    assert_fake_rejected(fake["status"], fake["error"]["code"])
    assert fake["error"]["message"]
    # The request id the client reports is the one the service logged for that request.
    logged = service.wait_for_logs(lambda line: line.get("request_id") == fake["request_id"]
                                   and line.get("status") == fake["status"])
    assert logged, fake["request_id"]


def test_top_k_and_csv_one_row_per_rank_in_input_order(service, inputs):
    result = run_client(*inputs["args"], "--format", "csv", "--top-k", "2", "--no-progress",
                        env={"PREDICT_URL": service.base_url})
    assert result.returncode == 1, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(dict.fromkeys(row["file"] for row in rows)) == [*inputs["valid"], inputs["fake"]]
    for name in inputs["valid"]:
        ranks = [row for row in rows if row["file"] == name]
        assert [row["rank"] for row in ranks] == ["1", "2"]
        assert all(row["status"] == "200" and row["error_code"] == "" and row["label"] for row in ranks)
        assert float(ranks[0]["probability"]) >= float(ranks[1]["probability"]) > 0
        assert ranks[0]["request_id"] == ranks[1]["request_id"] and REQUEST_ID.match(ranks[0]["request_id"])
    (fake,) = [row for row in rows if row["file"] == inputs["fake"]]
    assert fake["rank"] == "" and fake["label"] == ""
    assert_fake_rejected(fake["status"], fake["error_code"])


def test_table_shows_the_same_top1_as_jsonl(service, inputs):
    jsonl = run_client(*inputs["args"], "--url", service.base_url, "--format", "jsonl")
    assert jsonl.returncode == 1 and "Traceback" not in jsonl.stderr, jsonl.stderr  # 1: the fake image failed
    top1 = {record["file"]: record["predictions"][0] for record in map(json.loads, jsonl.stdout.splitlines())
            if record["status"] == 200}
    assert sorted(top1) == sorted(inputs["valid"]), top1  # every valid image is compared below
    table = run_client(*inputs["args"], "--url", service.base_url)
    assert table.returncode == 1 and "Traceback" not in table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["FILE", "STATUS", "TOP-1", "PROB", "LATENCY", "REQUEST_ID", "ERROR"]
    assert len(lines) == 7
    prob_column = lines[0].index("PROB")
    for name, prediction in top1.items():
        (line,) = [line for line in lines[1:] if line.startswith(name + " ")]
        assert f" {prediction['label']} " in line
        # Same image, same model: the same probability (4 decimals in the table).
        assert line[prob_column - 2:].split()[0] == f"{prediction['probability']:.4f}"
    (fake_line,) = [line for line in lines[1:] if line.startswith(inputs["fake"] + " ")]
    assert re.search(r"(unsupported_media_type|invalid_image): \S", fake_line), fake_line


def test_all_valid_images_exit_0(service, inputs):
    result = run_client(*inputs["args"][:2], "--url", service.base_url, "--format", "jsonl", "--top-k", "1",
                        "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 5 and all(len(record["predictions"]) == 1 for record in records)
