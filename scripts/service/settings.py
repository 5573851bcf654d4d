"""Service settings: defaults, a `.env` file, then the environment (which wins).

The table itself (name, default, help, bounds or choices) is handler/settings_table.py, shared
with the handler in each worker; this module merges the sources, checks every value against it
plus the rules that span settings or need the host (ports, paths, addresses, keys), and hands
the workers their part.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scripts import REPO_ROOT

from handler.int8_policy import int8_runtime_refusal
from handler.settings_table import SETTINGS, WORKER_SETTINGS, Setting, SettingsError  # noqa: F401



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
    merged["LOG_LEVEL"] = merged["LOG_LEVEL"].upper()
    validate(merged)
    return merged


def validate(s: dict[str, str]) -> None:
    for setting in SETTINGS:  # bounds and choices, from the shared table
        setting.parse(s[setting.name])

    def integer(name: str, low: int, high: int) -> int:
        try:
            value = int(s[name])
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {s[name]!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
        return value

    fixed = {"PORT": int(s["PORT"])}
    for name in ("TS_INFERENCE_PORT", "TS_MANAGEMENT_PORT", "TS_METRICS_PORT", "TS_GRPC_INFERENCE_PORT",
                 "TS_GRPC_MANAGEMENT_PORT"):
        if s[name] != "auto":  # auto: chosen free at start (scripts/service/ports.py)
            fixed[name] = integer(name, 1, 65535)
    ports = list(fixed.values())
    if len(set(ports)) != len(ports):
        raise SettingsError(f"PORT and the fixed TS_*_PORT settings must differ, got {ports}")
    if s["METRICS_PORT"]:  # empty: /metrics stays on PORT
        metrics_port = integer("METRICS_PORT", 1, 65535)
        for name, port in fixed.items():
            if port == metrics_port:
                raise SettingsError(f"METRICS_PORT must differ from {name}, both are {port}")
    if s["GRPC_PORT"]:  # empty: no gRPC (scripts/service/grpc_front/server.py)
        grpc_port = integer("GRPC_PORT", 1, 65535)
        for name, port in [*fixed.items(), ("METRICS_PORT", int(s["METRICS_PORT"] or 0))]:
            if port == grpc_port:
                raise SettingsError(f"GRPC_PORT must differ from {name}, both are {port}")
    for name in ("RUN_DIR", "MODEL_STORE"):
        check_path(name, s[name])
    check_path("the checkout's path", str(REPO_ROOT))
    if s["METRICS_ALLOW"].strip().lower() != "none":
        for entry in s["METRICS_ALLOW"].split(","):
            if not re.fullmatch(r"[0-9a-fA-F.:]+(/[0-9]{1,3})?", entry.strip()):
                raise SettingsError(f"METRICS_ALLOW entries must be IP addresses or CIDRs, got {entry!r}")
    for key in api_keys(s):
        if not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,256}", key):
            raise SettingsError("API keys must be 16-256 characters of letters, digits and ._~+/=-")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", s["DEVICE"]):
        raise SettingsError(f"DEVICE must be cpu or cuda, got {s['DEVICE']!r}")
    int8_refusal = int8_runtime_refusal(s["BACKEND"], s["DEVICE"]) if s["PRECISION"] == "int8" else None
    if int8_refusal:  # (an archive without an int8 model is refused by the supervisor: archive_info.int8_refusal)
        raise SettingsError(int8_refusal)
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
    env = {k: s[k] for k in WORKER_SETTINGS}
    env["MODEL_CACHE_DIR"] = str(Path(s["MODEL_CACHE_DIR"] or Path(s["RUN_DIR"]) / "model-cache").resolve())
    return env
