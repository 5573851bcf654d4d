"""The one table of settings: name, default, help, and what a valid value is.

Read by the supervisor (scripts/service/settings.py: defaults, .env, environment; validated at start)
and by the handler in each TorchServe worker (handler/settings.py), which gets this file in the
archive and imports nothing of the supervisor's. docs/configuration.md and .env.example are
generated from it (python -m scripts.docs.settings_reference; tests/unit/test_docs.py fails while
they are stale, tests/unit/test_settings.py on any variable the code reads that is not here).
"""

from __future__ import annotations

from dataclasses import dataclass


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names it and the value."""


@dataclass(frozen=True)
class Rule:
    """What a valid value is: ``kind`` int, float, choice or text; bounds or choices."""

    kind: str = "text"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    # Read by the handler in each worker (passed on by the supervisor), not only by the supervisor.
    worker: bool = False

    def parse(self, name: str, raw: str):
        """The typed value of ``raw``, or SettingsError with one line naming both."""
        if self.kind in ("int", "float"):
            try:
                value = int(raw) if self.kind == "int" else float(raw)
            except ValueError:
                raise SettingsError(f"{name} must be {'an integer' if self.kind == 'int' else 'a number'}, "
                                    f"got {raw!r}") from None
            if value != value or (self.low is not None and value < self.low) or \
                    (self.high is not None and value > self.high):
                raise SettingsError(f"{name} must be between {_show(self.low)} and {_show(self.high)}, got {raw}")
            return value
        if self.kind == "choice":
            if raw not in self.choices:
                raise SettingsError(f"{name} must be one of {', '.join(self.choices)}, got {raw!r}")
            return raw
        return raw


def _show(bound: float | None) -> str:
    return "-inf" if bound is None else (str(int(bound)) if float(bound).is_integer() else str(bound))


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str

    @property
    def rule(self) -> Rule:
        return RULES[self.name]

    def parse(self, raw: str | None = None):
        return self.rule.parse(self.name, self.default if raw is None else raw)


def _int(low: int, high: int, worker: bool = False) -> Rule:
    return Rule("int", low, high, worker=worker)


# Bounds and choices, by name: every setting has an entry (a test checks). "text" settings are
# checked by the supervisor's own rules (addresses, paths, keys) or are free text.
RULES: dict[str, Rule] = {
    "PORT": _int(1, 65535),
    "BIND_ADDRESS": Rule(),
    "MODEL_NAME": Rule(),
    "MODEL_VERSION": Rule(),
    "MODEL_WEIGHTS": Rule(),
    "MODEL_LABELS": Rule(),
    "MODEL_STORE": Rule(),
    "DEVICE": Rule(worker=True),  # cpu, cuda or cuda:N (checked by the supervisor)
    "BACKEND": Rule("choice", choices=("auto", "openvino", "torchscript", "eager"), worker=True),
    "PRECISION": Rule("choice", choices=("fp32", "bf16", "fp16", "int8"), worker=True),
    "INT8_CALIBRATION_DIR": Rule(),  # read by the archive build only, never by a worker
    "MODEL_CACHE_DIR": Rule(worker=True),
    "RESULT_CACHE_SIZE": _int(0, 1_000_000, worker=True),
    "FAST_JPEG_DECODE": Rule("choice", choices=("0", "1"), worker=True),
    "WORKERS": _int(1, 64, worker=True),
    "THREADS_PER_WORKER": _int(0, 256, worker=True),
    "BATCH_SIZE": _int(1, 256),
    "MAX_BATCH_DELAY_MS": _int(0, 10_000),
    "JOB_QUEUE_SIZE": _int(1, 100_000),
    "MAX_INFLIGHT": _int(1, 100_000),
    "SHED_HOLD_MS": _int(0, 10_000),
    "RATE_LIMIT_RPS": _int(0, 100_000),
    "RATE_LIMIT_BURST": _int(0, 100_000),
    "API_KEYS": Rule(),
    "API_KEYS_FILE": Rule(),
    "METRICS_ALLOW": Rule(),
    "METRICS_PORT": Rule(),  # empty or a port (scripts/service/settings.py)
    "GRPC_PORT": Rule(),  # empty or a port (scripts/service/settings.py, scripts/service/grpc_front/ports.py)
    "MAX_FILE_SIZE": _int(1024, 1 << 30, worker=True),
    "MAX_IMAGES_PER_REQUEST": _int(1, 256, worker=True),
    "MAX_IMAGE_PIXELS": _int(1, 1 << 31, worker=True),
    "MAX_ASPECT_RATIO": Rule("float", 1.0, 1_000_000.0, worker=True),
    "REQUEST_TIMEOUT": _int(1, 3600),
    "DEFAULT_TOP_K": _int(1, 1000, worker=True),
    "LOG_LEVEL": Rule("choice", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), worker=True),
    "LOG_FORMAT": Rule("choice", choices=("json", "text"), worker=True),
    "SELFTEST_TOLERANCE": Rule("float", 0.0, 1.0, worker=True),
    "SLOW_REQUEST_MS": _int(1, 3_600_000, worker=True),
    "TS_INFERENCE_PORT": Rule(),  # auto or a port (scripts/service/ports.py)
    "TS_MANAGEMENT_PORT": Rule(),
    "TS_METRICS_PORT": Rule(),
    "TS_GRPC_INFERENCE_PORT": Rule(),
    "TS_GRPC_MANAGEMENT_PORT": Rule(),
    "TS_JAVA_HEAP": Rule(),
    "RUN_DIR": Rule(),
    "STARTUP_TIMEOUT": _int(1, 3600),
}

SETTINGS: tuple[Setting, ...] = (
    Setting("PORT", "5000", "Public port of the nginx proxy."),
    Setting("BIND_ADDRESS", "0.0.0.0", "Address nginx listens on (127.0.0.1 to keep it local)."),
    Setting("MODEL_NAME", "resnet50", "Model name registered in TorchServe (and the .mar file name)."),
    Setting("MODEL_VERSION", "1.0", "Version written into the archive."),
    Setting("MODEL_WEIGHTS", "", "Local ResNet-50 weights file to archive (state dict, Lightning/torchvision "
            "checkpoint or TorchScript; any class count; docs/own-model.md); empty = torchvision download, "
            "offline fallback to seeded random weights; 'random' = skip the download."),
    Setting("MODEL_LABELS", "", "Labels file for MODEL_WEIGHTS (index_to_name.json or one label per line); "
            "empty = ImageNet names for 1000 classes, class_0..class_N-1 otherwise."),
    Setting("MODEL_STORE", "model_store", "Directory holding the built .mar archives."),
    Setting("DEVICE", "cpu", "cpu, cuda or cuda:N (cuda uses the GPU TorchServe assigns to each worker)."),
    Setting("BACKEND", "auto", "Runtime backend: auto = openvino on the CPU (the fastest faithful fp32 runtime "
            "measured, docs/performance.md, and the one that runs PRECISION=int8), torchscript on CUDA; or name one: "
            "openvino (CPU only), torchscript (traced, frozen, oneDNN-optimised; fp32, bf16, fp16), eager. "
            "PRECISION=int8 with torchscript or eager is refused at start."),
    Setting("PRECISION", "fp32", "fp32 (default); opt-in, not bit-faithful: int8 (CPU, BACKEND auto or openvino: "
            "the archive's OpenVINO int8 model, quantised once by python -m scripts.archive.build_mar "
            "--int8-calibration DIR and checked at start by its sha256, self-test and golden set; an archive without "
            "one is refused at start, in one line naming that command), bf16 (CPU/GPU), fp16 (GPU)."),
    Setting("INT8_CALIBRATION_DIR", "", "Archive build only (the default of build_mar's --int8-calibration, and "
            "so of the first run's build): a folder of representative images (searched recursively; 100-300 real "
            "ones) on which the model is quantised to int8 for OpenVINO and stored in the archive, for "
            "PRECISION=int8. Empty = no int8 model in the archive. Workers never read it."),
    Setting("MODEL_CACHE_DIR", "", "Where workers keep the model converted for the runtime (OpenVINO's form), keyed "
            "by the weights' sha256, the input size and the OpenVINO and torch versions, so a restarted worker reads "
            "it back instead of converting again; written atomically, proven by the self-test like any model. "
            "Empty = RUN_DIR/model-cache."),
    Setting("RESULT_CACHE_SIZE", "0", "LRU cache of results for byte-identical images, entries per worker "
            "(~4 KB each; keyed by the SHA-256 of the bytes, any top_k); 0 = off. A hit answers with "
            "\"cached\": true and timing_ms.inference 0."),
    Setting("FAST_JPEG_DECODE", "0", "1 = decode large JPEGs at a reduced DCT scale (shorter side >= 2x the resize "
            "target): faster, close to but not bit-equal with the reference transform (docs/performance.md). "
            "0 = exact."),
    Setting("WORKERS", "1", "TorchServe worker processes for the model, each with its own copy of the model; "
            "WORKERS x THREADS_PER_WORKER should not exceed the cores (docs/performance.md)."),
    Setting("THREADS_PER_WORKER", "0", "Intra-op threads per worker; 0 = cores // WORKERS. Never more threads than "
            "cores: oversubscribed threads slow every worker down (docs/performance.md)."),
    Setting("BATCH_SIZE", "4", "TorchServe dynamic batching: most requests per forward pass "
            "(docs/performance.md measures the choice)."),
    Setting("MAX_BATCH_DELAY_MS", "5", "How long TorchServe waits to fill a batch (ms); a longer wait adds latency "
            "for a lone client."),
    Setting("JOB_QUEUE_SIZE", "64", "TorchServe's queue of waiting requests; full = 503."),
    Setting("MAX_INFLIGHT", "32", "Predictions nginx lets in at once; more = 503 overloaded with Retry-After "
            "(keeps every wait well under REQUEST_TIMEOUT)."),
    Setting("SHED_HOLD_MS", "1000", "Longest time a prediction shed by MAX_INFLIGHT is held before its 503, scaled "
            "by how loaded the service is (TorchServe's queue, or the requests shed in the last second), so clients "
            "that retry at once are slowed to one try per hold and "
            "leave the cores to the model (scripts/service/shedding.py); 0 = answer at once."),
    Setting("RATE_LIMIT_RPS", "0", "Per-client (IP) request rate limit on /predict and /info; 0 = off. "
            "Over it: 429 rate_limited."),
    Setting("RATE_LIMIT_BURST", "20", "Requests a client may send above RATE_LIMIT_RPS before 429."),
    Setting("API_KEYS", "", "Comma-separated API keys (16-256 characters of letters, digits and ._~+/=-); when set "
            "(or API_KEYS_FILE), /predict and /info need an X-API-Key header (401 otherwise). /health stays open. "
            "Empty = off."),
    Setting("API_KEYS_FILE", "", "File with one API key per line (# comments allowed), added to API_KEYS."),
    Setting("METRICS_ALLOW", "127.0.0.1,::1", "Comma-separated addresses/CIDRs allowed to read GET /metrics "
            "through the proxy (others get 404); 'none' hides the route."),
    Setting("METRICS_PORT", "", "Serve GET /metrics on this port of BIND_ADDRESS (still METRICS_ALLOW only) and "
            "not on PORT, for a Prometheus that scrapes pods while a Service or Ingress routes PORT only; "
            "empty = on PORT. Must differ from PORT and the TorchServe ports."),
    Setting("GRPC_PORT", "8081", "Port of BIND_ADDRESS for the Open Inference Protocol v2 over gRPC "
            "(inference.GRPCInferenceService and grpc.health.v1; 8081 is KServe's); empty = no gRPC. Same limits, "
            "keys and errors as HTTP. This default taken (another instance beside this one) = one WARNING and no "
            "gRPC for this instance; a port you set that is taken is refused like a busy PORT."),
    Setting("MAX_FILE_SIZE", "10485760", "Largest request body in bytes (nginx answers 413 above it)."),
    Setting("MAX_IMAGES_PER_REQUEST", "16", "Most images in one multi-image request (JSON \"images\" or multipart "
            "file, file_1, ...); more = 400 too_many_images. All of them share the MAX_FILE_SIZE body limit."),
    Setting("MAX_IMAGE_PIXELS", "40000000", "Largest decoded image (width x height); above = 413."),
    Setting("MAX_ASPECT_RATIO", "100", "Longest/shortest side ratio accepted; above = 400 invalid_image."),
    Setting("REQUEST_TIMEOUT", "30", "Seconds nginx waits for a prediction before answering 504. TorchServe's own "
            "response timeout is set longer (max(2x, +30 s)), so nginx gives up first and the worker is never "
            "killed for slowness."),
    Setting("DEFAULT_TOP_K", "5", "top_k when the request does not give one (1..1000; a model with fewer "
            "classes answers with all of them)."),
    Setting("LOG_LEVEL", "INFO", "Lowest level logged: DEBUG, INFO, WARNING, ERROR or CRITICAL."),
    Setting("LOG_FORMAT", "json", "json (one object per line) or text."),
    Setting("SELFTEST_TOLERANCE", "0.001", "Relative error of the start-up self-test's logits against the archive's "
            "record that a worker tolerates at fp32 (reduced precisions use their own, wider bounds)."),
    Setting("SLOW_REQUEST_MS", "1000", "Requests slower than this are logged at WARNING."),
    Setting("TS_INFERENCE_PORT", "auto", "TorchServe inference API port (127.0.0.1 only); auto = a free port "
            "chosen at each start (written to RUN_DIR/ports.json), so instances side by side never collide; a "
            "number = that port (a clear error if it is taken)."),
    Setting("TS_MANAGEMENT_PORT", "auto", "TorchServe management API port (127.0.0.1 only); auto = a free port."),
    Setting("TS_METRICS_PORT", "auto", "TorchServe metrics API port (127.0.0.1 only); auto = a free port."),
    Setting("TS_GRPC_INFERENCE_PORT", "auto", "TorchServe gRPC inference port (127.0.0.1 only; it cannot be turned "
            "off); auto = a free port."),
    Setting("TS_GRPC_MANAGEMENT_PORT", "auto", "TorchServe gRPC management port (127.0.0.1 only); auto = a free port."),
    Setting("TS_JAVA_HEAP", "128m", "Java heap of the TorchServe frontend (-Xmx): a number with k, m or g "
            "(docs/performance.md has what the frontend used under load)."),
    Setting("RUN_DIR", "", "Rendered config, pid files, ports.json and the detached log; empty = .run/<PORT> in "
            "the checkout, one per instance (so PORT=5001 scripts/serve.sh runs beside the default one; stop it with "
            "PORT=5001 scripts/serve.sh --stop)."),
    Setting("STARTUP_TIMEOUT", "180", "Seconds `serve.sh --detach` waits for /health to be 200."),
)

BY_NAME = {s.name: s for s in SETTINGS}
WORKER_SETTINGS = tuple(s.name for s in SETTINGS if s.rule.worker)
