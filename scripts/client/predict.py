#!/usr/bin/env python3
"""Classify image files with the running service: the command-line client of ``POST /predict``.

    .venv/bin/python -m scripts.client.predict photos/cat.jpg
    .venv/bin/python -m scripts.client.predict photos/ 'more/**/*.png' --format jsonl > results.jsonl

Inputs are files (sent whatever their name), directories (searched recursively for
jpg/jpeg/png/webp/bmp/gif/tif/tiff, any case) and glob patterns (expanded here too, ``**``
included, so a quoted pattern works like an unquoted one). Each image is one multipart request
(field ``file``) to ``<url>/predict``; up to ``--concurrency`` run at once.

Answers ``503`` and ``429`` and dropped connections are retried (``--retries`` attempts in all),
waiting what ``Retry-After`` asks, else a capped exponential backoff with jitter; other errors
are reported per file, not retried. Results go to stdout (``table``, ``jsonl`` or ``csv``);
progress and messages go to stderr.

Exit status: 0 every image classified; 1 at least one image failed; 2 usage error (bad option,
missing file, pattern matching nothing); 3 the service could not be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import email.utils
import glob
import io
import json
import mimetypes
import os
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

try:
    import requests
    import urllib3.exceptions
except ImportError as missing:  # only without the project's virtual environment
    sys.stderr.write("predict.py needs the 'requests' package: run it with .venv/bin/python "
                     "(scripts/serve.sh creates .venv) or pip install -r requirements/runtime.txt\n")
    raise SystemExit(2) from missing

__version__ = "1.0"

DEFAULT_URL = "http://127.0.0.1:5000"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RETRY_STATUSES = frozenset({429, 503})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_CONCURRENCY = 64
CONNECT_TIMEOUT_CAP_S = 10.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

CSV_HEADER = ("file", "status", "rank", "class_id", "label", "probability", "latency_ms",
              "request_id", "error_code", "error_message")

_GLOB_MAGIC = re.compile(r"[*?[]")


# ------------------------------------------------------------------------------ inputs
class InputError(Exception):
    """Inputs that name nothing to send; one human-readable problem per entry of ``problems``."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the image extensions searched in directories (any case)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def images_under(directory: str) -> list[str]:
    """Image files below ``directory``, recursively, sorted by path (as ``find | sort`` and a
    ``**`` pattern list them)."""
    found: list[str] = []
    for root, _subdirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            if is_image_name(name) and os.path.isfile(path):
                found.append(path)
    return sorted(found)


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """The files to send, in order and without duplicates, from files, directories and globs.

    An existing path is taken literally (even if its name contains ``*`` or ``[``); a named file
    is sent whatever its extension (the service decides what it is); a directory, given or
    matched by a pattern, contributes the image files below it. Raises ``InputError`` listing
    every input that names nothing: a missing path, a pattern matching nothing, a directory
    without images.
    """
    files: list[str] = []
    seen: set[str] = set()
    problems: list[str] = []

    def add(path: str) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for raw in inputs:
        item = os.path.expanduser(raw)
        if os.path.isfile(item):
            add(item)
        elif os.path.isdir(item):
            images = images_under(item)
            if not images:
                problems.append(f"{raw}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this directory")
            for path in images:
                add(path)
        elif os.path.exists(item):
            problems.append(f"{raw}: not a regular file or directory")
        elif _GLOB_MAGIC.search(item):
            matched: list[str] = []
            for match in sorted(glob_paths(item)):
                matched.extend(images_under(match) if os.path.isdir(match) else
                               [match] if os.path.isfile(match) else [])
            if not matched:
                problems.append(f"{raw}: no file matches this pattern")
            for path in matched:
                add(path)
        else:
            problems.append(f"{raw}: no such file or directory")
    if problems:
        raise InputError(problems)
    if not files:
        raise InputError(["no input files given"])
    return files


def glob_paths(pattern: str) -> list[str]:
    """``glob`` with ``**`` spanning directories, as bash's globstar does."""
    return glob.glob(pattern, recursive=True)


# ------------------------------------------------------------------------------ retries
def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None
    when absent or unreadable. A date in the past means 0."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def retry_delay(attempt: int, retry_after: float | None, base: float = BACKOFF_BASE_S,
                cap: float = BACKOFF_CAP_S, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first).

    The server's ``Retry-After`` wins when it gave one, bounded by ``cap``. Otherwise
    ``base * 2**(attempt-1)``, capped, with "equal jitter": a uniform pick in its upper half, so
    clients that failed together do not all come back together.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap)
    exponential = min(cap, base * 2 ** max(attempt - 1, 0))
    return exponential / 2 + rand() * exponential / 2


class ServiceUnreachable(Exception):
    """No connection to the service could be made (refused, unknown host, connect timeout...)."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"{base_url}: {reason}")
        self.base_url = base_url
        self.reason = reason


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: requests wraps urllib3, which wraps the socket error."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None),
                  *getattr(current, "args", ())]
        pending.extend(item for item in linked if isinstance(item, BaseException))


def describe_connection_error(exc: BaseException) -> tuple[str, bool]:
    """(short reason, unreachable) for a failed connection.

    ``unreachable`` means no connection could be made at all (refused, unknown host, no route,
    connect timeout, TLS failure): retrying will not help and the whole run stops. Otherwise the
    connection was made and then dropped (reset, closed without an answer): worth a retry.
    """
    chain = list(_exception_chain(exc))
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return "connection refused", True
    if any(isinstance(item, (socket.gaierror, urllib3.exceptions.NameResolutionError)) for item in chain):
        return "host name not found", True
    if any(isinstance(item, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)) for item in chain):
        return "TLS handshake failed", True
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out", True
    if any(isinstance(item, urllib3.exceptions.NewConnectionError) for item in chain):
        os_error = next((item for item in chain if isinstance(item, OSError) and item.strerror), None)
        return (os_error.strerror.lower() if os_error else "connection failed"), True
    if any(isinstance(item, ConnectionResetError) for item in chain):
        return "connection reset by the server", False
    return "connection closed without an answer", False


def unreachable_message(prog: str, failure: ServiceUnreachable) -> str:
    """The one line printed when the service cannot be reached; hints at serve.sh for local URLs."""
    host = urlsplit(failure.base_url).hostname or ""
    local = host in ("localhost", "::1") or host.startswith("127.")
    hint = ("is it running? Start it with scripts/serve.sh" if local
            else "is it running, and is the URL right (--url or PREDICT_URL)?")
    return f"{prog}: cannot reach the service at {failure.base_url} ({failure.reason}) - {hint}"


# ------------------------------------------------------------------------------ requests
@dataclass(frozen=True)
class ClientOptions:
    """How every request is made."""

    base_url: str
    top_k: int | None = None
    timeout_s: float = 60.0
    attempts: int = 5
    api_key: str | None = None
    backoff_cap_s: float = BACKOFF_CAP_S

    @property
    def predict_url(self) -> str:
        return self.base_url + "/predict"


@dataclass
class PredictionResult:
    """The outcome for one file: predictions, or an error (from the service or the client)."""

    file: str
    status: int | None
    request_id: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    predictions: list[dict[str, Any]] | None = None
    error: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"file": self.file, "status": self.status, "request_id": self.request_id,
                                  "attempts": self.attempts, "latency_ms": self.latency_ms}
        if self.ok:
            record["predictions"] = self.predictions
            record.update(self.extra)
        else:
            record["error"] = self.error
        return record


def client_error(file: str, code: str, message: str, attempts: int = 0,
                 latency_ms: float | None = None) -> PredictionResult:
    """A failure that never got an HTTP answer (unreadable file, dropped connection, timeout)."""
    return PredictionResult(file=file, status=None, attempts=attempts, latency_ms=latency_ms,
                            error={"code": code, "message": message})


def parse_response(file: str, status: int, body: str, header_request_id: str | None,
                   attempts: int, latency_ms: float) -> PredictionResult:
    """A ``PredictionResult`` from one HTTP answer, whatever its body looks like."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    request_id = payload.get("request_id") or header_request_id
    common = {"file": file, "status": status, "attempts": attempts, "latency_ms": round(latency_ms, 1)}
    if status == 200 and isinstance(payload.get("predictions"), list):
        extra = {key: payload[key] for key in ("model", "image") if key in payload}
        return PredictionResult(request_id=request_id, predictions=payload["predictions"], extra=extra,
                                **common)
    error = payload.get("error")
    if isinstance(error, dict) and error.get("code"):
        return PredictionResult(request_id=error.get("request_id") or request_id,
                                error={"code": str(error["code"]), "message": str(error.get("message", ""))},
                                **common)
    # Not this service's JSON (another proxy in between, wrong URL): say what came back.
    snippet = " ".join(body.split())[:200] or "(empty body)"
    code = "invalid_response" if status == 200 else f"http_{status}"
    return PredictionResult(request_id=request_id, error={"code": code, "message": snippet}, **common)


class Cancelled(Exception):
    """The run is stopping (interrupted, or the service is unreachable): do not send more."""


def predict_file(path: str, options: ClientOptions, session: requests.Session,
                 stop: threading.Event | None = None) -> PredictionResult:
    """Send one file to ``POST /predict``, retrying 503/429 and dropped connections.

    Raises ``ServiceUnreachable`` when no connection can be made, ``Cancelled`` when ``stop`` is
    set while it waits to retry. Every other outcome is a ``PredictionResult``.
    """
    stop = stop or threading.Event()
    if stop.is_set():
        raise Cancelled
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        return client_error(path, "unreadable_file", exc.strerror or str(exc))
    mime_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    data = {"top_k": str(options.top_k)} if options.top_k is not None else {}
    timeout = (min(options.timeout_s, CONNECT_TIMEOUT_CAP_S), options.timeout_s)
    attempt = 0
    while True:
        attempt += 1
        started = time.monotonic()
        try:
            upload = {"file": (os.path.basename(path), content, mime_type)}
            response = session.post(options.predict_url, files=upload, data=data, timeout=timeout)
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            latency_ms = round((time.monotonic() - started) * 1000, 1)
            reason, unreachable = describe_connection_error(exc)
            if unreachable:
                raise ServiceUnreachable(options.base_url, reason) from exc
            if attempt >= options.attempts:
                return client_error(path, "connection_error", reason, attempt, latency_ms)
            delay = retry_delay(attempt, None, cap=options.backoff_cap_s)
        except requests.exceptions.Timeout:
            # Not retried: the service may still be working on it, and a retry would add load.
            latency_ms = round((time.monotonic() - started) * 1000, 1)
            message = f"no answer within {options.timeout_s:g} s (--timeout)"
            return client_error(path, "client_timeout", message, attempt, latency_ms)
        except requests.exceptions.RequestException as exc:
            return client_error(path, "request_failed", str(exc), attempt)
        else:
            latency_ms = (time.monotonic() - started) * 1000
            if response.status_code not in RETRY_STATUSES or attempt >= options.attempts:
                return parse_response(path, response.status_code, response.text,
                                      response.headers.get("X-Request-ID"), attempt, latency_ms)
            delay = retry_delay(attempt, parse_retry_after(response.headers.get("Retry-After")),
                                cap=options.backoff_cap_s)
        if stop.wait(delay):
            raise Cancelled


class SessionPool:
    """One ``requests.Session`` per worker thread (a session is not meant to be shared)."""

    def __init__(self, options: ClientOptions) -> None:
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        user_agent = f"resnet50-predict/{__version__} {requests.utils.default_user_agent()}"
        self._headers = {"User-Agent": user_agent}
        if options.api_key:
            self._headers["X-API-Key"] = options.api_key

    def get(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()


def run_predictions(files: Sequence[str], options: ClientOptions, concurrency: int,
                    on_result: Callable[[int, PredictionResult], None]) -> dict[int, PredictionResult]:
    """Classify ``files`` with at most ``concurrency`` requests in flight.

    ``on_result(index, result)`` is called in this thread as each file completes. Raises
    ``ServiceUnreachable`` (after the requests in flight end) when the service cannot be
    reached; the results obtained until then were already passed to ``on_result``.
    """
    stop = threading.Event()
    sessions = SessionPool(options)
    results: dict[int, PredictionResult] = {}
    unreachable: ServiceUnreachable | None = None
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="predict")
    interrupted = False
    try:
        futures: dict[Future[PredictionResult], int] = {
            executor.submit(lambda p=path: predict_file(p, options, sessions.get(), stop)): index
            for index, path in enumerate(files)
        }
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except Cancelled:
                    continue
                except ServiceUnreachable as exc:
                    unreachable = unreachable or exc
                    stop.set()
                    continue
                results[futures[future]] = result
                on_result(futures[future], result)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stop.set()
        # After Ctrl-C do not wait for the requests in flight (up to --timeout each).
        executor.shutdown(wait=not interrupted, cancel_futures=True)
        if not interrupted:
            sessions.close()
    if unreachable is not None:
        raise unreachable
    return results


# ------------------------------------------------------------------------------ output
def _top1(result: PredictionResult) -> dict[str, Any] | None:
    return result.predictions[0] if result.predictions else None


def format_table(results: Iterable[PredictionResult]) -> str:
    """An aligned text table, one row per file: top-1 label and probability, or the error."""
    results = list(results)
    with_errors = any(not result.ok for result in results)
    header = ["FILE", "STATUS", "TOP-1", "PROB", "LATENCY", "REQUEST_ID"] + (["ERROR"] if with_errors else [])
    rows = [header]
    for result in results:
        top1 = _top1(result)
        row = [
            result.file,
            "-" if result.status is None else str(result.status),
            str(top1["label"]) if top1 else "-",
            f"{top1['probability']:.4f}" if top1 else "-",
            "-" if result.latency_ms is None else f"{result.latency_ms:.0f} ms",
            result.request_id or "-",
        ]
        if with_errors:
            row.append("" if result.ok else f"{result.error['code']}: {result.error['message']}")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    right_aligned = {1, 3, 4}
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if column in right_aligned and row is not header else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def format_jsonl(result: PredictionResult) -> str:
    """One JSON object (one line, no trailing newline) for one file."""
    return json.dumps(result.to_json(), ensure_ascii=False)


def csv_rows(result: PredictionResult) -> list[list[str]]:
    """CSV rows (columns of ``CSV_HEADER``) for one file: one per rank, or one for an error."""
    common = [result.file, "" if result.status is None else str(result.status)]
    latency = "" if result.latency_ms is None else f"{result.latency_ms:.1f}"
    request_id = result.request_id or ""
    if not result.ok:
        return [common + ["", "", "", "", latency, request_id, result.error["code"], result.error["message"]]]
    return [common + [str(item.get("rank", "")), str(item.get("class_id", "")), str(item.get("label", "")),
                      f"{item['probability']:.6f}" if "probability" in item else "",
                      latency, request_id, "", ""]
            for item in result.predictions or []]


def format_csv(results: Iterable[PredictionResult], header: bool = True) -> str:
    """The CSV text for ``results`` (RFC 4180 quoting, ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(CSV_HEADER)
    for result in results:
        writer.writerows(csv_rows(result))
    return buffer.getvalue()


def exit_status(results: Iterable[PredictionResult]) -> int:
    """0 when every file was classified, 1 otherwise."""
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED


def want_progress(flag: bool | None, file_count: int, stderr_is_tty: bool) -> bool:
    """Show the bar when asked (``--progress``), never with ``--no-progress``, and otherwise
    for more than one file on an interactive stderr."""
    if flag is not None:
        return flag
    return file_count > 1 and stderr_is_tty


# ------------------------------------------------------------------------------ command line
def normalise_base_url(url: str) -> str:
    """``scheme://host[:port][/prefix]`` without a trailing slash (or ``/predict``); ValueError
    when it is not an http(s) URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--url must be an http:// or https:// URL, got {url!r}")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/predict")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _bounded_int(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            limit = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {limit}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Classify images with the ResNet-50 service (POST /predict), one request per image.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
inputs:
  files are sent whatever their name; directories are searched recursively for
  .jpg .jpeg .png .webp .bmp .gif .tif .tiff (any case); patterns are expanded here too
  ('photos/**/*.jpg' works quoted).

output (stdout; progress and messages go to stderr):
  table  one row per image: top-1 label, probability, latency, request id (or the error);
         in input order, once all are done
  jsonl  one JSON object per image as it completes (completion order; "file" says which):
         file, status, request_id, attempts, latency_ms, and predictions (+ model, image)
         or error {code, message}
  csv    a header, then one row per image per rank (an error: one row with error_code,
         error_message); in input order, once all are done

retries:
  503 and 429 answers and dropped connections are retried until --retries attempts were made,
  waiting Retry-After when the service sends it, else 0.5 s, 1 s, 2 s, ... (jittered),
  at most 30 s. Other errors (400, 401, 413, 415, ...) are reported per image.

exit status:
  0 all classified, 1 some image failed, 2 usage error, 3 service unreachable, 130 interrupted

examples:
  .venv/bin/python -m scripts.client.predict tests/fixtures/sample.jpg
  .venv/bin/python -m scripts.client.predict photos/ --top-k 3 --format jsonl > results.jsonl
  PREDICT_URL=http://gpu-box:5000 API_KEY=... .venv/bin/python -m scripts.client.predict 'photos/**/*.png'
""")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, directory or glob pattern")
    parser.add_argument("--url", default=os.environ.get("PREDICT_URL") or DEFAULT_URL,
                        help=f"service base URL (env PREDICT_URL; default {DEFAULT_URL})")
    parser.add_argument("--top-k", type=_bounded_int(1, 1000), default=None, metavar="K",
                        help="predictions per image, 1..1000 (default: the service's DEFAULT_TOP_K, 5)")
    parser.add_argument("--format", choices=("table", "jsonl", "csv"), default="table",
                        help="output format on stdout (default: table)")
    parser.add_argument("--concurrency", type=_bounded_int(1, MAX_CONCURRENCY), default=4, metavar="N",
                        help=f"requests in flight at once, 1..{MAX_CONCURRENCY} (default: 4)")
    parser.add_argument("--timeout", type=_positive_float, default=60.0, metavar="SECONDS",
                        help="seconds to wait for each answer (default: 60; timeouts are not retried)")
    parser.add_argument("--retries", type=_bounded_int(1, None), default=5, metavar="N",
                        help="attempts per image, in all, on 503/429 or a dropped connection; "
                             "1 = never retry (default: 5)")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY") or None, metavar="KEY",
                        help="sent as the X-API-Key header, for a service with API_KEYS set (env API_KEY)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show a progress bar on stderr")
    progress.add_argument("--no-progress", dest="progress", action="store_false",
                          help="never show it (default: shown for more than one image on a terminal)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr, or None (disabled, or tqdm not installed)."""
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="img", dynamic_ncols=True)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Parse arguments, send every image, write the results; returns the exit status."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        base_url = normalise_base_url(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        files = expand_inputs(args.inputs)
    except InputError as exc:
        for problem in exc.problems:
            print(f"{parser.prog}: {problem}", file=stderr)
        return EXIT_USAGE
    options = ClientOptions(base_url=base_url, top_k=args.top_k, timeout_s=args.timeout,
                            attempts=args.retries, api_key=args.api_key)
    bar = _progress_bar(len(files), want_progress(args.progress, len(files), stderr.isatty()))

    results: dict[int, PredictionResult] = {}

    def on_result(index: int, result: PredictionResult) -> None:
        results[index] = result
        if args.format == "jsonl":
            line = format_jsonl(result)
            if bar is not None:
                bar.write(line, file=stdout)  # clears and redraws the bar around the line
            else:
                stdout.write(line + "\n")
            stdout.flush()
        if bar is not None:
            bar.update(1)

    status = EXIT_OK
    try:
        try:
            run_predictions(files, options, args.concurrency, on_result)
        finally:
            if bar is not None:
                bar.close()
    except ServiceUnreachable as exc:
        print(unreachable_message(parser.prog, exc), file=stderr)
        status = EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=stderr)
        return EXIT_INTERRUPTED
    ordered = [results[index] for index in sorted(results)]
    if args.format == "table" and ordered:
        stdout.write(format_table(ordered))
    elif args.format == "csv" and ordered:
        stdout.write(format_csv(ordered))
    stdout.flush()
    if status == EXIT_OK:
        status = exit_status(ordered)
        failed = sum(not result.ok for result in ordered)
        if failed:
            print(f"{parser.prog}: {failed} of {len(ordered)} images failed", file=stderr)
    return status


def _run() -> int:
    try:
        status = main()
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    if status == EXIT_INTERRUPTED:
        # Leave at once: the worker threads may sit in a request for up to --timeout.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(_run())
