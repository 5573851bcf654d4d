"""scripts/client/predict.py without the real service: inputs, backoff, output formats, and the retry
loop against a scripted local HTTP server (503/429 with Retry-After, dropped connections)."""

from __future__ import annotations

import csv
import email.parser
import email.policy
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from scripts.client import predict
from scripts.client.predict import (
    ClientOptions,
    InputError,
    PredictionResult,
    ServiceUnreachable,
    describe_connection_error,
    expand_inputs,
    format_csv,
    format_jsonl,
    format_table,
    normalise_base_url,
    parse_response,
    parse_retry_after,
    predict_file,
    retry_delay,
    want_progress,
)
from scripts import REPO_ROOT
from tests.support import free_ports, jpeg_bytes, png_bytes

CLIENT = ["-m", "scripts.client.predict"]  # run from the repository root, as docs/api.md does

PREDICTIONS = [
    {"rank": 1, "class_id": 281, "label": "tabby", "probability": 0.8312},
    {"rank": 2, "class_id": 282, "label": "tiger cat", "probability": 0.1},
    {"rank": 3, "class_id": 285, "label": "Egyptian cat", "probability": 0.05},
]


def ok_body(request_id: str = "rid-ok", predictions: list | None = None) -> dict:
    return {"request_id": request_id, "model": {"name": "resnet50", "version": "1.0", "pretrained": False},
            "predictions": predictions or PREDICTIONS, "image": {"width": 64, "height": 48, "format": "JPEG"}}


def error_body(code: str, message: str, request_id: str) -> dict:
    return {"error": {"code": code, "message": message, "request_id": request_id}}


# ------------------------------------------------------------------------------ inputs
@pytest.fixture
def photo_tree(tmp_path: Path) -> Path:
    """photos/ with images at two depths, mixed-case extensions, and files that are not images."""
    root = tmp_path / "photos"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / "a.jpg").write_bytes(jpeg_bytes())
    (root / "C.PNG").write_bytes(png_bytes())
    (root / "notes.txt").write_text("not an image")
    (root / "b" / "x.JpEg").write_bytes(jpeg_bytes(seed=1))
    (root / "b" / "deeper" / "y.webp").write_bytes(b"webp-ish")
    (root / "b" / "deeper" / "z.tiff").write_bytes(b"tiff-ish")
    (root / "b" / "deeper" / "raw.cr2").write_bytes(b"raw")
    return root


def test_directory_is_searched_recursively_for_image_extensions_any_case(photo_tree: Path):
    files = expand_inputs([str(photo_tree)])
    relative = [os.path.relpath(path, photo_tree) for path in files]
    assert relative == ["C.PNG", "a.jpg", "b/deeper/y.webp", "b/deeper/z.tiff", "b/x.JpEg"]
    assert all(path.startswith(str(photo_tree)) for path in files)


def test_named_file_is_sent_whatever_its_extension(photo_tree: Path):
    assert expand_inputs([str(photo_tree / "notes.txt")]) == [str(photo_tree / "notes.txt")]


def test_quoted_glob_is_expanded_with_globstar(photo_tree: Path):
    files = expand_inputs([str(photo_tree / "**" / "*.jpg"), str(photo_tree / "b" / "**" / "*.t*")])
    assert [os.path.relpath(path, photo_tree) for path in files] == ["a.jpg", "b/deeper/z.tiff"]


def test_glob_matching_a_directory_contributes_its_images(photo_tree: Path):
    files = expand_inputs([str(photo_tree / "[b]")])
    assert [os.path.relpath(path, photo_tree) for path in files] == ["b/deeper/y.webp", "b/deeper/z.tiff",
                                                                      "b/x.JpEg"]


def test_duplicates_are_sent_once_in_first_seen_order(photo_tree: Path):
    files = expand_inputs([str(photo_tree / "b" / "x.JpEg"), str(photo_tree), str(photo_tree / "*.jpg")])
    relative = [os.path.relpath(path, photo_tree) for path in files]
    assert relative == ["b/x.JpEg", "C.PNG", "a.jpg", "b/deeper/y.webp", "b/deeper/z.tiff"]


def test_existing_path_with_glob_characters_is_taken_literally(tmp_path: Path):
    odd = tmp_path / "shot[1].jpg"
    odd.write_bytes(jpeg_bytes())
    assert expand_inputs([str(odd)]) == [str(odd)]


def test_missing_inputs_are_all_reported(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as caught:
        expand_inputs([str(tmp_path / "missing.jpg"), str(tmp_path / "*.png"), str(tmp_path / "empty")])
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0] == f"{tmp_path / 'missing.jpg'}: no such file or directory"
    assert problems[1] == f"{tmp_path / '*.png'}: no file matches this pattern"
    assert problems[2].startswith(f"{tmp_path / 'empty'}: no images (.jpg, .jpeg, .png")


def test_missing_file_is_a_usage_error_with_a_clear_message(tmp_path: Path):
    stdout, stderr = io.StringIO(), io.StringIO()
    status = predict.main([str(tmp_path / "nope.jpg")], stdout=stdout, stderr=stderr)
    assert status == predict.EXIT_USAGE
    assert stderr.getvalue() == f"predict.py: {tmp_path / 'nope.jpg'}: no such file or directory\n"
    assert stdout.getvalue() == ""


# ------------------------------------------------------------------------------ backoff
def test_retry_after_is_honoured_and_capped():
    assert retry_delay(1, 1.0) == 1.0
    assert retry_delay(4, 2.5) == 2.5  # the server's word, not the exponential schedule
    assert retry_delay(1, 3600.0, cap=30.0) == 30.0
    assert retry_delay(1, -5.0) == 0.0


def test_exponential_backoff_without_retry_after_is_jittered_and_capped():
    # Equal jitter: between half and all of base * 2**(attempt-1).
    assert retry_delay(1, None, base=0.5, rand=lambda: 0.0) == 0.25
    assert retry_delay(1, None, base=0.5, rand=lambda: 1.0) == 0.5
    assert retry_delay(3, None, base=0.5, rand=lambda: 1.0) == 2.0
    assert retry_delay(3, None, base=0.5, rand=lambda: 0.0) == 1.0
    assert retry_delay(20, None, base=0.5, cap=30.0, rand=lambda: 1.0) == 30.0
    assert retry_delay(20, None, base=0.5, cap=30.0, rand=lambda: 0.0) == 15.0
    delays = {retry_delay(2, None) for _ in range(50)}
    assert len(delays) > 1 and all(0.5 <= delay <= 1.0 for delay in delays)


def test_parse_retry_after_seconds_and_http_dates():
    now = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None


# ------------------------------------------------------------------------------ responses and formats
def test_parse_response_success_error_and_foreign_bodies():
    ok = parse_response("a.jpg", 200, json.dumps(ok_body("rid-1")), "rid-1", 2, 12.345)
    assert ok.ok and ok.predictions == PREDICTIONS and ok.request_id == "rid-1"
    assert ok.attempts == 2 and ok.latency_ms == 12.3 and ok.extra["model"]["name"] == "resnet50"

    rejected = json.dumps(error_body("unsupported_media_type", "Not an image.", "rid-2"))
    bad = parse_response("b.jpg", 415, rejected, "rid-2", 1, 5.0)
    assert not bad.ok and bad.status == 415 and bad.request_id == "rid-2"
    assert bad.error == {"code": "unsupported_media_type", "message": "Not an image."}

    html = parse_response("c.jpg", 502, "<html>\n<body>Bad   Gateway</body></html>", "rid-3", 1, 5.0)
    assert html.error == {"code": "http_502", "message": "<html> <body>Bad Gateway</body></html>"}
    assert html.request_id == "rid-3"
    garbled = parse_response("d.jpg", 200, "not json", None, 1, 5.0)
    assert garbled.error["code"] == "invalid_response" and garbled.request_id is None


def sample_results() -> list[PredictionResult]:
    return [
        PredictionResult(file="photos/cat.jpg", status=200, request_id="rid-cat", attempts=1,
                         latency_ms=112.4, predictions=PREDICTIONS, extra={"image": {"width": 64}}),
        PredictionResult(file="photos/notes, v2.jpg", status=415, request_id="rid-bad", attempts=1,
                         latency_ms=9.6, error={"code": "unsupported_media_type",
                                                "message": "The file is not a supported image format."}),
        PredictionResult(file="photos/gone.jpg", status=None, attempts=0,
                         error={"code": "unreadable_file", "message": "Permission denied"}),
    ]


def test_table_has_one_aligned_row_per_file_with_top1_or_error():
    lines = format_table(sample_results()).splitlines()
    assert len(lines) == 4
    header = lines[0].split()
    assert header == ["FILE", "STATUS", "TOP-1", "PROB", "LATENCY", "REQUEST_ID", "ERROR"]
    # Columns line up: every row's request id starts where the header's does.
    column = lines[0].index("REQUEST_ID")
    assert lines[1][column:].startswith("rid-cat") and lines[2][column:].startswith("rid-bad")
    assert lines[1].split() == ["photos/cat.jpg", "200", "tabby", "0.8312", "112", "ms", "rid-cat"]
    assert "photos/notes, v2.jpg" in lines[2] and "415" in lines[2]
    assert lines[2].endswith("unsupported_media_type: The file is not a supported image format.")
    assert lines[3].split()[:6] == ["photos/gone.jpg", "-", "-", "-", "-", "-"]
    assert lines[3].endswith("unreadable_file: Permission denied")
    # No error column when there is no error.
    assert format_table(sample_results()[:1]).splitlines()[0].split()[-1] == "REQUEST_ID"


def test_jsonl_is_one_object_per_line_with_predictions_or_error():
    records = [json.loads(format_jsonl(result)) for result in sample_results()]
    assert all("\n" not in format_jsonl(result) for result in sample_results())
    assert records[0] == {"file": "photos/cat.jpg", "status": 200, "request_id": "rid-cat", "attempts": 1,
                          "latency_ms": 112.4, "predictions": PREDICTIONS, "image": {"width": 64}}
    assert records[1]["error"] == {"code": "unsupported_media_type",
                                   "message": "The file is not a supported image format."}
    assert "predictions" not in records[1] and records[1]["status"] == 415
    assert records[2]["status"] is None and records[2]["error"]["code"] == "unreadable_file"


def test_csv_has_one_row_per_rank_and_one_per_error():
    rows = list(csv.reader(io.StringIO(format_csv(sample_results()))))
    assert rows[0] == list(predict.CSV_HEADER)
    assert rows[1:4] == [
        ["photos/cat.jpg", "200", "1", "281", "tabby", "0.831200", "112.4", "rid-cat", "", ""],
        ["photos/cat.jpg", "200", "2", "282", "tiger cat", "0.100000", "112.4", "rid-cat", "", ""],
        ["photos/cat.jpg", "200", "3", "285", "Egyptian cat", "0.050000", "112.4", "rid-cat", "", ""],
    ]
    assert rows[4] == ["photos/notes, v2.jpg", "415", "", "", "", "", "9.6", "rid-bad",
                       "unsupported_media_type", "The file is not a supported image format."]
    assert rows[5] == ["photos/gone.jpg", "", "", "", "", "", "", "", "unreadable_file", "Permission denied"]
    assert len(rows) == 6


def test_progress_only_when_asked_or_many_files_on_a_terminal():
    assert want_progress(None, 5, stderr_is_tty=True) is True
    assert want_progress(None, 1, stderr_is_tty=True) is False
    assert want_progress(None, 5, stderr_is_tty=False) is False
    assert want_progress(True, 1, stderr_is_tty=False) is True
    assert want_progress(False, 5, stderr_is_tty=True) is False


def test_base_url_normalisation():
    assert normalise_base_url("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    assert normalise_base_url("https://host/api/predict") == "https://host/api"
    assert normalise_base_url(" http://h:1 ") == "http://h:1"
    for bad in ("127.0.0.1:5000", "ftp://host", "http://"):
        with pytest.raises(ValueError):
            normalise_base_url(bad)


# ------------------------------------------------------------------------------ a scripted server
class ScriptedServer:
    """A local HTTP server answering POST /predict from a script of replies, recording requests.

    Each reply is ``(status, headers, body)`` or ``"drop"`` (read the request, then close the
    connection without answering). After the script runs out, the last reply repeats.
    """

    def __init__(self, replies: list, delay_s: float = 0.0) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self.in_flight = self.peak_in_flight = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                time.sleep(delay_s)
                with lock:
                    server.in_flight -= 1
                    server.requests.append({"time": time.monotonic(), "path": self.path,
                                            "headers": dict(self.headers), "body": body})
                    reply = server.replies.pop(0) if len(server.replies) > 1 else server.replies[0]
                if reply == "drop":
                    self.close_connection = True
                    # RST instead of FIN: the client sees a reset connection.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                status, headers, payload = reply
                data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def gaps(self) -> list[float]:
        """Seconds between consecutive requests."""
        times = [request["time"] for request in self.requests]
        return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


OVERLOADED = (503, {"Retry-After": "1"},
              error_body("overloaded", "Too many predictions in progress.", "rid-503"))


def run_main(args: list[str]) -> tuple[int, str, str, float]:
    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.monotonic()
    status = predict.main(args, stdout=stdout, stderr=stderr)
    return status, stdout.getvalue(), stderr.getvalue(), time.monotonic() - started


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "cat.jpg"
    path.write_bytes(jpeg_bytes())
    return path


def test_503_with_retry_after_is_retried_after_the_time_the_server_asks(image_file: Path):
    with ScriptedServer([OVERLOADED, OVERLOADED, (200, {}, ok_body("rid-third"))]) as server:
        status, out, err, elapsed = run_main([str(image_file), "--url", server.url, "--format", "jsonl"])
    assert status == 0, err
    record = json.loads(out)
    assert record["status"] == 200 and record["attempts"] == 3 and record["request_id"] == "rid-third"
    assert record["predictions"] == PREDICTIONS
    assert len(server.requests) == 3
    gaps = server.gaps()
    assert all(gap >= 0.95 for gap in gaps), gaps  # Retry-After: 1, not the 0.5 s backoff
    assert 1.95 <= elapsed < 8, elapsed
    assert err == ""


def test_429_without_retry_after_backs_off_exponentially(image_file: Path):
    limited = (429, {}, error_body("rate_limited", "Slow down.", "rid-429"))
    with ScriptedServer([limited, limited, (200, {}, ok_body())]) as server:
        status, out, _, _ = run_main([str(image_file), "--url", server.url, "--format", "jsonl"])
    assert status == 0 and json.loads(out)["attempts"] == 3
    # 0.25-0.5 s, then 0.5-1 s.
    gaps = server.gaps()
    assert 0.24 <= gaps[0] <= 0.9 and 0.49 <= gaps[1] <= 1.5, gaps


def test_retries_stop_at_the_limit_and_report_the_last_answer(image_file: Path):
    with ScriptedServer([OVERLOADED]) as server:
        status, out, err, _ = run_main([str(image_file), "--url", server.url, "--format", "jsonl",
                                        "--retries", "2"])
    assert status == 1 and len(server.requests) == 2
    record = json.loads(out)
    assert record["status"] == 503 and record["attempts"] == 2 and record["request_id"] == "rid-503"
    assert record["error"] == {"code": "overloaded", "message": "Too many predictions in progress."}
    assert err == "predict.py: 1 of 1 images failed\n"


def test_retry_after_longer_than_the_cap_waits_only_the_cap(image_file: Path):
    long_wait = (503, {"Retry-After": "3600"}, error_body("model_unavailable", "No worker.", "rid"))
    with ScriptedServer([long_wait, (200, {}, ok_body())]) as server:
        options = ClientOptions(base_url=server.url, backoff_cap_s=0.2, attempts=2)
        started = time.monotonic()
        result = predict_file(str(image_file), options, requests.Session())
    assert result.ok and result.attempts == 2
    assert 0.19 <= time.monotonic() - started < 3


def test_other_4xx_are_not_retried_and_carry_the_error_body(image_file: Path):
    bad = (400, {}, error_body("invalid_top_k", "top_k must be between 1 and 1000, got 7.", "rid-400"))
    with ScriptedServer([bad]) as server:
        status, out, _, _ = run_main([str(image_file), "--url", server.url, "--format", "jsonl"])
    assert status == 1 and len(server.requests) == 1
    record = json.loads(out)
    assert record == {"file": str(image_file), "status": 400, "request_id": "rid-400", "attempts": 1,
                      "latency_ms": record["latency_ms"],
                      "error": {"code": "invalid_top_k",
                                "message": "top_k must be between 1 and 1000, got 7."}}


def test_dropped_connection_is_retried(image_file: Path):
    with ScriptedServer(["drop", (200, {}, ok_body("rid-after-drop"))]) as server:
        status, out, err, _ = run_main([str(image_file), "--url", server.url, "--format", "jsonl"])
    assert status == 0, err
    assert json.loads(out)["attempts"] == 2 and len(server.requests) == 2


def test_request_is_multipart_file_field_with_top_k_and_api_key(image_file: Path, monkeypatch):
    monkeypatch.setenv("API_KEY", "k" * 20)
    with ScriptedServer([(200, {}, ok_body())]) as server:
        status, _, _, _ = run_main([str(image_file), "--url", server.url + "/", "--top-k", "3"])
    assert status == 0
    (request,) = server.requests
    assert request["path"] == "/predict"
    assert request["headers"]["X-API-Key"] == "k" * 20
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {request['headers']['Content-Type']}\r\n\r\n".encode() + request["body"])
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    assert set(parts) == {"file", "top_k"}
    assert parts["file"].get_filename() == "cat.jpg"
    assert parts["file"].get_content_type() == "image/jpeg"
    assert parts["file"].get_payload(decode=True) == image_file.read_bytes()
    assert parts["top_k"].get_payload(decode=True) == b"3"


def test_without_top_k_the_service_default_applies(image_file: Path):
    with ScriptedServer([(200, {}, ok_body())]) as server:
        run_main([str(image_file), "--url", server.url])
    assert b'name="top_k"' not in server.requests[0]["body"]


def test_unreadable_file_is_reported_not_sent(tmp_path: Path):
    # A directory cannot be read as a file, even by root (unlike a chmod 0 file).
    with ScriptedServer([(200, {}, ok_body())]) as server:
        result = predict_file(str(tmp_path), ClientOptions(base_url=server.url), requests.Session())
    assert server.requests == []
    assert result.status is None and result.attempts == 0
    assert result.error["code"] == "unreadable_file" and result.error["message"] == "Is a directory"


# ------------------------------------------------------------------------------ unreachable
def test_refused_connection_is_unreachable_and_reset_is_retryable():
    (port,) = free_ports(1)
    with pytest.raises(requests.ConnectionError) as refused:
        requests.post(f"http://127.0.0.1:{port}/predict", timeout=5)
    assert describe_connection_error(refused.value) == ("connection refused", True)
    with ScriptedServer(["drop"]) as server, pytest.raises(requests.ConnectionError) as dropped:
        requests.post(server.url + "/predict", data=b"x", timeout=5)
    reason, unreachable = describe_connection_error(dropped.value)
    assert unreachable is False and reason.startswith("connection")


def test_predict_file_raises_service_unreachable_without_retrying(image_file: Path):
    (port,) = free_ports(1)
    options = ClientOptions(base_url=f"http://127.0.0.1:{port}", attempts=5)
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable) as caught:
        predict_file(str(image_file), options, requests.Session())
    assert caught.value.reason == "connection refused"
    assert time.monotonic() - started < 1  # no backoff for a service that is not there


def test_server_down_exits_3_with_one_clear_line_and_no_traceback(tmp_path: Path, image_file: Path):
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    for index in range(3):
        (tmp_path / f"more{index}.png").write_bytes(png_bytes(seed=index))
    result = subprocess.run([sys.executable, *CLIENT, str(tmp_path), "--url", url, "--format", "jsonl"],
                            capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == (f"predict.py: cannot reach the service at {url} (connection refused)"
                             " - is it running? Start it with scripts/serve.sh\n")


def test_forced_progress_bar_goes_to_stderr_and_stdout_stays_jsonl(tmp_path: Path):
    for index in range(3):
        (tmp_path / f"img{index}.jpg").write_bytes(jpeg_bytes(seed=index))
    with ScriptedServer([(200, {}, ok_body())]) as server:
        result = subprocess.run([sys.executable, *CLIENT, str(tmp_path), "--url", server.url,
                                 "--format", "jsonl", "--progress"],
                                capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = [str(tmp_path / f"img{i}.jpg") for i in range(3)]
    assert sorted(json.loads(line)["file"] for line in lines) == expected
    assert "3/3" in result.stderr and "img" in result.stderr
    # Without --progress and with a non-terminal stderr: no bar at all.
    with ScriptedServer([(200, {}, ok_body())]) as server:
        quiet = subprocess.run([sys.executable, *CLIENT, str(tmp_path), "--url", server.url],
                               capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert len(quiet.stdout.splitlines()) == 4  # header + 3 rows


def test_concurrency_is_bounded_and_table_csv_keep_input_order(tmp_path: Path):
    for index in range(8):
        (tmp_path / f"img{index}.jpg").write_bytes(jpeg_bytes(seed=index))
    with ScriptedServer([(200, {}, ok_body())], delay_s=0.2) as server:
        status, out, _, _ = run_main([str(tmp_path), "--url", server.url, "--concurrency", "3",
                                      "--format", "csv"])
    assert status == 0 and len(server.requests) == 8
    assert server.peak_in_flight == 3
    rows = list(csv.reader(io.StringIO(out)))
    assert [row[0] for row in rows[1::3]] == [str(tmp_path / f"img{i}.jpg") for i in range(8)]


def test_help_describes_formats_and_exit_status():
    result = subprocess.run([sys.executable, *CLIENT, "--help"], capture_output=True, text=True,
                            timeout=30, cwd=REPO_ROOT)
    assert result.returncode == 0
    for text in ("--top-k", "--concurrency", "--retries", "--api-key", "X-API-Key", "PREDICT_URL",
                 "jsonl", "csv", "Retry-After", "3 service unreachable"):
        assert text in result.stdout, text
