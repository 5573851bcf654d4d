"""Service settings: defaults, a `.env` file, then the environment (which wins).

One table, ``SETTINGS``, names every knob with its default and meaning; the README's
configuration table and `.env.example` mirror it (a unit test keeps them in step).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("PORT", "5000", "Public port of the nginx proxy."),
    Setting("BIND_ADDRESS", "0.0.0.0", "Address nginx listens on (127.0.0.1 to keep it local)."),
    Setting("MODEL_NAME", "resnet50", "Model name registered in TorchServe (and the .mar file name)."),
    Setting("MODEL_VERSION", "1.0", "Version written into the archive."),
    Setting("MODEL_WEIGHTS", "", "Local ResNet-50 weights file to archive (state dict, Lightning/torchvision "
            "checkpoint or TorchScript; any class count); empty = torchvision download, "
            "offline fallback to seeded random weights; 'random' = skip the download."),
    Setting("MODEL_LABELS", "", "Labels file for MODEL_WEIGHTS (index_to_name.json or one label per line); "
            "empty = ImageNet names for 1000 classes, class_0..class_N-1 otherwise."),
    Setting("MODEL_STORE", "model_store", "Directory holding the built .mar archives."),
    Setting("DEVICE", "cpu", "cpu or cuda (cuda uses the GPU TorchServe assigns to each worker)."),
    Setting("BACKEND", "auto", "Runtime backend: auto = openvino on the CPU (fastest faithful fp32 runtime measured here; "
            "for int8 when the archive holds an int8 model), torchscript on CUDA and for int8 otherwise; or name one: "
            "openvino (CPU only), torchscript (traced, frozen, oneDNN-optimised), eager."),
    Setting("PRECISION", "fp32", "fp32 (default); opt-in: int8 (CPU: the archive's OpenVINO int8 model, made by "
            "build_mar.py --int8-calibration; else BACKEND=torchscript calibrating at worker start), bf16 (CPU/GPU), "
            "fp16 (GPU)."),
    Setting("INT8_CALIBRATION_DIR", "", "Folder of representative images (searched recursively; 100-300 real ones): "
            "the archive build quantises the model to int8 for OpenVINO on them and stores it in the archive; "
            "BACKEND=torchscript with PRECISION=int8 calibrates on them at worker start. Empty = no int8 model in "
            "the archive (torchscript int8 then uses a built-in synthetic set)."),
    Setting("MODEL_CACHE_DIR", "", "Where workers keep the model converted for the runtime (OpenVINO), keyed by the "
            "weights' sha256 and the library versions, so a restarted worker skips the conversion; empty = "
            "RUN_DIR/model-cache."),
    Setting("RESULT_CACHE_SIZE", "0", "LRU cache of results for byte-identical images, entries per worker "
            "(~4 KB each); 0 = off."),
    Setting("FAST_JPEG_DECODE", "0", "1 = decode large JPEGs at reduced scale (shorter side >= 2x the resize "
            "target); faster, close to but not bit-equal with the reference. 0 = exact."),
    Setting("WORKERS", "1", "TorchServe worker processes for the model. 1 (with 2 threads) measured best on 2"
            " cores: 2 x 1 gained 4 % at c=8 and lost 34 % at c=1."),
    Setting("THREADS_PER_WORKER", "0", "Intra-op threads per worker; 0 = cores // WORKERS, never more: oversubscribed "
            "threads collapsed the stock handler to 2.4 req/s."),
    Setting("BATCH_SIZE", "4", "TorchServe dynamic batching: most requests per forward pass. 4: +8-32 % at c=8 "
            "over 1, no measurable cost at c=1; 8 added latency only."),
    Setting("MAX_BATCH_DELAY_MS", "5", "How long TorchServe waits to fill a batch (ms). 5: 20 ms cost 17 % at c=1 "
            "without filling batches better."),
    Setting("JOB_QUEUE_SIZE", "64", "TorchServe's queue of waiting requests; full = 503."),
    Setting("MAX_INFLIGHT", "32", "Predictions nginx lets in at once; more = 503 overloaded with Retry-After "
            "(keeps every wait well under REQUEST_TIMEOUT)."),
    Setting("RATE_LIMIT_RPS", "0", "Per-client (IP) request rate limit on /predict and /info; 0 = off. "
            "Over it: 429 rate_limited."),
    Setting("RATE_LIMIT_BURST", "20", "Requests a client may send above RATE_LIMIT_RPS before 429."),
    Setting("API_KEYS", "", "Comma-separated API keys; when set (or API_KEYS_FILE), /predict and /info need "
            "an X-API-Key header (401 otherwise). /health stays open. Empty = off."),
    Setting("API_KEYS_FILE", "", "File with one API key per line (# comments allowed), added to API_KEYS."),
    Setting("METRICS_ALLOW", "127.0.0.1,::1", "Comma-separated addresses/CIDRs allowed to read GET /metrics "
            "through the proxy (others get 404); 'none' hides the route."),
    Setting("MAX_FILE_SIZE", "10485760", "Largest request body in bytes (nginx answers 413 above it)."),
    Setting("MAX_IMAGES_PER_REQUEST", "16", "Most images in one multi-image request (JSON \"images\" or multipart "
            "file, file_1, ...); more = 400 too_many_images. All of them share the MAX_FILE_SIZE body limit."),
    Setting("MAX_IMAGE_PIXELS", "40000000", "Largest decoded image (width x height); above = 413."),
    Setting("MAX_ASPECT_RATIO", "100", "Longest/shortest side ratio accepted; above = 400 invalid_image."),
    Setting("REQUEST_TIMEOUT", "30", "Seconds nginx waits for a prediction before answering 504."),
    Setting("DEFAULT_TOP_K", "5", "top_k when the request does not give one (1..1000; a model with fewer "
            "classes answers with all of them)."),
    Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR."),
    Setting("LOG_FORMAT", "json", "json (one object per line) or text."),
    Setting("SLOW_REQUEST_MS", "1000", "Requests slower than this are logged at WARNING."),
    Setting("TS_INFERENCE_PORT", "auto", "TorchServe inference API port (127.0.0.1 only); auto = a free port "
            "chosen at each start (written to RUN_DIR/ports.json), so instances side by side never collide."),
    Setting("TS_MANAGEMENT_PORT", "auto", "TorchServe management API port (127.0.0.1 only); auto = a free port."),
    Setting("TS_METRICS_PORT", "auto", "TorchServe metrics API port (127.0.0.1 only); auto = a free port."),
    Setting("TS_GRPC_INFERENCE_PORT", "auto", "TorchServe gRPC inference port (127.0.0.1 only; it cannot be turned "
            "off); auto = a free port."),
    Setting("TS_GRPC_MANAGEMENT_PORT", "auto", "TorchServe gRPC management port (127.0.0.1 only); auto = a free port."),
    Setting("TS_JAVA_HEAP", "128m", "Java heap of the TorchServe frontend. 128m: under 60 concurrent requests it "
            "used under 40 MB (JVM RSS 164 MB, against 203 MB with 512m)."),
    Setting("RUN_DIR", "", "Rendered config, pid files, ports.json and the detached log; empty = .run/<PORT> in "
            "the checkout, one per instance."),
    Setting("STARTUP_TIMEOUT", "180", "Seconds `serve.sh --detach` waits for /health to be 200."),
)

DEFAULTS = {s.name: s.default for s in SETTINGS}
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional quotes and 'export ' are understood."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if not match:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = value
    return values


def load_settings(env: dict[str, str] | None = None, dotenv: Path | None = None) -> dict[str, str]:
    """Defaults < .env (ENV_FILE or ./.env) < environment; validated, paths made absolute."""
    env = dict(os.environ if env is None else env)
    dotenv = dotenv or Path(env.get("ENV_FILE", REPO_ROOT / ".env"))
    merged = dict(DEFAULTS)
    merged.update({k: v for k, v in read_dotenv(dotenv).items() if k in DEFAULTS})
    merged.update({k: v for k, v in env.items() if k in DEFAULTS})
    if not merged["RUN_DIR"]:  # one per instance: two PORTs from one checkout do not share pid files
        merged["RUN_DIR"] = f".run/{merged['PORT']}"
    for key in ("MODEL_STORE", "RUN_DIR"):
        merged[key] = str((REPO_ROOT / Path(merged[key]).expanduser()).resolve())
    if merged["MODEL_WEIGHTS"] and merged["MODEL_WEIGHTS"] != "random":
        merged["MODEL_WEIGHTS"] = str(Path(merged["MODEL_WEIGHTS"]).expanduser().resolve())
    if merged["MODEL_LABELS"]:
        merged["MODEL_LABELS"] = str(Path(merged["MODEL_LABELS"]).expanduser().resolve())
    validate(merged)
    return merged


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


def validate(s: dict[str, str]) -> None:
    def integer(name: str, low: int, high: int) -> int:
        try:
            value = int(s[name])
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {s[name]!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    ports = [integer("PORT", 1, 65535)]
    for name in ("TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT", "TS_METRICS_PORT", "TS_GRPC_INFERENCE_PORT",
                 "TS_GRPC_MANAGEMENT_PORT"):
        if s[name] != "auto":  # auto: chosen free at start (scripts/ports.py)
            ports.append(integer(name, 1, 65535))
    if len(set(ports)) != len(ports):
        raise SettingsError(f"PORT and the fixed TS_*_PORT settings must differ, got {ports}")
    for name in ("RUN_DIR", "MODEL_STORE"):
        check_path(name, s[name])
    check_path("the checkout's path", str(REPO_ROOT))
    integer("WORKERS", 1, 64)
    integer("THREADS_PER_WORKER", 0, 256)
    integer("BATCH_SIZE", 1, 256)
    integer("MAX_BATCH_DELAY_MS", 0, 10_000)
    integer("JOB_QUEUE_SIZE", 1, 100_000)
    integer("MAX_FILE_SIZE", 1024, 1 << 30)
    integer("MAX_INFLIGHT", 1, 100_000)
    integer("RESULT_CACHE_SIZE", 0, 1_000_000)
    integer("RATE_LIMIT_RPS", 0, 100_000)
    integer("RATE_LIMIT_BURST", 0, 100_000)
    if s["METRICS_ALLOW"].strip().lower() != "none":
        for entry in s["METRICS_ALLOW"].split(","):
            if not re.fullmatch(r"[0-9a-fA-F.:]+(/[0-9]{1,3})?", entry.strip()):
                raise SettingsError(f"METRICS_ALLOW entries must be IP addresses or CIDRs, got {entry!r}")
    for key in api_keys(s):
        if not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,256}", key):
            raise SettingsError("API keys must be 16-256 characters of letters, digits and ._~+/=-")
    integer("MAX_IMAGE_PIXELS", 1, 1 << 31)
    integer("MAX_IMAGES_PER_REQUEST", 1, 256)
    integer("REQUEST_TIMEOUT", 1, 3600)
    integer("DEFAULT_TOP_K", 1, 1000)
    integer("SLOW_REQUEST_MS", 1, 3_600_000)
    integer("STARTUP_TIMEOUT", 1, 3600)
    if s["FAST_JPEG_DECODE"] not in ("0", "1"):
        raise SettingsError(f"FAST_JPEG_DECODE must be 0 or 1, got {s['FAST_JPEG_DECODE']!r}")
    if s["LOG_FORMAT"] not in ("json", "text"):
        raise SettingsError(f"LOG_FORMAT must be json or text, got {s['LOG_FORMAT']!r}")
    if s["LOG_LEVEL"].upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {s['LOG_LEVEL']!r}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", s["DEVICE"]):
        raise SettingsError(f"DEVICE must be cpu or cuda, got {s['DEVICE']!r}")
    if s["BACKEND"] not in ("auto", "openvino", "torchscript", "eager"):
        raise SettingsError(f"BACKEND must be auto, openvino, torchscript or eager, got {s['BACKEND']!r}")
    if s["PRECISION"] not in ("fp32", "bf16", "fp16", "int8"):
        raise SettingsError(f"PRECISION must be fp32, bf16, fp16 or int8, got {s['PRECISION']!r}")
    if s["PRECISION"] == "int8" and s["BACKEND"] not in ("auto", "openvino", "torchscript"):
        raise SettingsError("PRECISION=int8 needs BACKEND=openvino (an archive built with --int8-calibration), "
                            "torchscript or auto")
    if s["BACKEND"] == "openvino" and not s["DEVICE"].startswith("cpu"):
        raise SettingsError("BACKEND=openvino runs on the CPU; use torchscript or eager with DEVICE=cuda")
    if s["INT8_CALIBRATION_DIR"] and not Path(s["INT8_CALIBRATION_DIR"]).is_dir():
        raise SettingsError(f"INT8_CALIBRATION_DIR={s['INT8_CALIBRATION_DIR']} is not a directory")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", s["MODEL_NAME"]):
        raise SettingsError(f"MODEL_NAME may use letters, digits, '_' and '-', got {s['MODEL_NAME']!r}")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", s["MODEL_VERSION"]):
        raise SettingsError(f"MODEL_VERSION must look like 1.0, got {s['MODEL_VERSION']!r}")
    if not re.fullmatch(r"[0-9.:a-fA-F]+", s["BIND_ADDRESS"]):
        raise SettingsError(f"BIND_ADDRESS must be an IP address, got {s['BIND_ADDRESS']!r}")
    if not re.fullmatch(r"[0-9]+[kmgKMG]?", s["TS_JAVA_HEAP"]):
        raise SettingsError(f"TS_JAVA_HEAP must look like 512m, got {s['TS_JAVA_HEAP']!r}")


def check_path(name: str, path: str) -> None:
    """Paths end up quoted in nginx's config and in TorchServe's properties: spaces are fine,
    but these characters would be read as syntax there (a variable, a quote, a list separator)."""
    bad = sorted({c for c in path if c in '"\\$,\n\r\t' or ord(c) < 32})
    if bad:
        raise SettingsError(f"{name} {path!r} contains {' '.join(repr(c) for c in bad)}, which nginx or TorchServe "
                            "would misread: use a directory without them")


def api_keys(s: dict[str, str]) -> list[str]:
    """API_KEYS plus the non-comment lines of API_KEYS_FILE."""
    keys = [k.strip() for k in s.get("API_KEYS", "").split(",") if k.strip()]
    if s.get("API_KEYS_FILE"):
        path = Path(s["API_KEYS_FILE"]).expanduser()
        if not path.is_file():
            raise SettingsError(f"API_KEYS_FILE={path} does not exist")
        keys += [line.strip() for line in path.read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
    return keys


def handler_environment(s: dict[str, str]) -> dict[str, str]:
    """The subset the handler reads in each TorchServe worker (see handler/settings.py)."""
    keys = ("DEVICE", "BACKEND", "PRECISION", "WORKERS", "THREADS_PER_WORKER", "MAX_FILE_SIZE",
            "MAX_IMAGE_PIXELS", "MAX_ASPECT_RATIO", "DEFAULT_TOP_K", "LOG_LEVEL", "LOG_FORMAT",
            "SLOW_REQUEST_MS", "RESULT_CACHE_SIZE", "FAST_JPEG_DECODE", "MAX_IMAGES_PER_REQUEST",
            "INT8_CALIBRATION_DIR", "MODEL_CACHE_DIR")
    env = {k: s[k] for k in keys}
    env["MODEL_CACHE_DIR"] = str(Path(s["MODEL_CACHE_DIR"] or Path(s["RUN_DIR"]) / "model-cache").resolve())
    if env["INT8_CALIBRATION_DIR"]:  # workers run in TorchServe's temp dir: pass it absolute
        env["INT8_CALIBRATION_DIR"] = str(Path(env["INT8_CALIBRATION_DIR"]).resolve())
    return env
