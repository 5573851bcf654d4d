"""PRECISION=int8 has one path, the archive's int8 model: every other way is refused in one line
that names the fix, by the settings check, by the supervisor before anything starts, and by a
worker given int8 all the same (defence in depth). Nothing here starts TorchServe."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from handler.int8_policy import REBUILD_HINT
from scripts.archive.archive_info import int8_refusal
from scripts.service.settings import SettingsError, load_settings

INT8_RECORD = {"file": "int8/model.xml", "sha256": "ab" * 32, "selftest_logits": [0.0]}


def write_archive(path: Path, meta: dict) -> Path:
    with zipfile.ZipFile(path, "w") as mar:
        mar.writestr("model_meta.json", json.dumps(meta))
    return path


def settings_for(store: Path, **overrides: str) -> dict[str, str]:
    env = {"MODEL_STORE": str(store), "RUN_DIR": str(store.parent / "run"), "PRECISION": "int8", **overrides}
    return load_settings(env, store.parent / "none.env")


def assert_one_line_naming_the_fix(refusal: str | None) -> None:
    assert refusal is not None
    assert "\n" not in refusal and "PRECISION=int8" in refusal
    assert "python -m scripts.archive.build_mar --force --int8-calibration DIR" in refusal
    assert refusal.endswith(REBUILD_HINT)


@pytest.fixture
def store(tmp_path) -> Path:
    folder = tmp_path / "store"
    folder.mkdir()
    return folder


def test_an_archive_without_an_int8_model_is_refused_naming_it_and_the_fix(store):
    archive = write_archive(store / "resnet50.mar", {"weights": {"pretrained": False}})
    refusal = int8_refusal(settings_for(store))
    assert_one_line_naming_the_fix(refusal)
    assert f"{archive} has none" in refusal
    assert int8_refusal(settings_for(store, PRECISION="fp32")) is None  # only int8 asks for one


def test_an_archive_with_an_int8_model_starts(store):
    write_archive(store / "resnet50.mar", {"int8": INT8_RECORD})
    assert int8_refusal(settings_for(store)) is None
    assert int8_refusal(settings_for(store, BACKEND="openvino")) is None


def test_a_missing_archive_is_refused_unless_its_build_will_make_the_int8_model(store, tmp_path):
    refusal = int8_refusal(settings_for(store))
    assert_one_line_naming_the_fix(refusal)
    assert "resnet50.mar (not built yet)" in refusal
    images = tmp_path / "calibration"
    images.mkdir()
    # The start builds the missing archive with build_mar, whose --int8-calibration defaults to it.
    assert int8_refusal(settings_for(store, INT8_CALIBRATION_DIR=str(images))) is None
    assert not (store / "resnet50.mar").exists()  # the check reads, never builds


def test_an_unreadable_archive_is_left_to_the_build_and_the_worker_to_name(store):
    (store / "resnet50.mar").write_bytes(b"not a zip")
    assert int8_refusal(settings_for(store)) is None


def test_the_deployed_version_is_the_one_checked(store):
    write_archive(store / "resnet50.mar", {"int8": INT8_RECORD})
    deployed = write_archive(store / "resnet50-2.0.mar", {})
    (store / "resnet50.deployed.json").write_text(json.dumps({"default": {"version": "2.0",
                                                                          "archive": deployed.name}}))
    refusal = int8_refusal(settings_for(store))
    assert_one_line_naming_the_fix(refusal)
    assert "resnet50-2.0.mar has none" in refusal


@pytest.mark.parametrize("overrides, message", [
    ({"BACKEND": "torchscript"}, "PRECISION=int8 runs the archive's OpenVINO int8 model: BACKEND must be auto or "
                                 "openvino, not torchscript"),
    ({"BACKEND": "eager"}, "BACKEND must be auto or openvino, not eager"),
    ({"DEVICE": "cuda"}, "PRECISION=int8 runs the archive's OpenVINO int8 model on the CPU: DEVICE must be cpu, "
                         "not cuda"),
])
def test_int8_with_another_runtime_is_a_configuration_error(store, overrides, message):
    with pytest.raises(SettingsError) as refused:
        settings_for(store, **overrides)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_the_settings_check_leaves_the_archive_alone(store):
    """PRECISION=int8 in .env must not stop build_mar (which reads the same settings) from making
    the int8 model the refusal asks for: the archive is the supervisor's to check."""
    assert settings_for(store)["PRECISION"] == "int8"
    assert settings_for(store, BACKEND="openvino")["BACKEND"] == "openvino"


def test_the_supervisor_refuses_in_one_line_before_it_starts_anything(store):
    from scripts.service.supervisor import LogRelay, Supervisor

    write_archive(store / "resnet50.mar", {})
    settings = settings_for(store, LOG_FORMAT="json")
    out = io.StringIO()
    supervisor = Supervisor(settings, LogRelay("json", out))
    assert supervisor.run() == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["level"] == "CRITICAL" and entry["event"] == "int8_model_missing"
    assert_one_line_naming_the_fix(entry["message"])
    assert supervisor.torchserve is None and supervisor.nginx is None
    assert not hasattr(supervisor, "readiness")  # not even the readiness listener
    run_dir = Path(settings["RUN_DIR"])
    assert not (run_dir / "ports.json").exists() and not (run_dir / "config").exists()


def test_detach_refuses_in_one_line_and_spawns_nothing(store, capsys):
    from scripts.service.supervisor import DETACHED_LOG, SUPERVISOR_PID, detach
    from tests.support import free_ports

    write_archive(store / "resnet50.mar", {})
    settings = settings_for(store, PORT=str(free_ports(1)[0]), BIND_ADDRESS="127.0.0.1")
    assert detach(settings) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert_one_line_naming_the_fix(lines[0])
    run_dir = Path(settings["RUN_DIR"])
    assert not (run_dir / DETACHED_LOG).exists() and not (run_dir / SUPERVISOR_PID).exists()


def test_a_worker_given_int8_without_the_model_fails_to_load_with_the_same_line(model_dir, monkeypatch, capsys):
    """Defence in depth: should a worker start with PRECISION=int8 on an archive without an int8
    model (an archive swapped under a running service, a hand-made TorchServe config), it refuses
    with the supervisor's hint and logs model_load_failed, as every failed start does."""
    from handler.model_meta import load_model_meta
    from handler.resnet50_handler import ResNet50Handler
    from tests.unit.ts_context import worker_context

    assert load_model_meta(model_dir).int8 is None
    monkeypatch.setenv("PRECISION", "int8")
    handler = ResNet50Handler()
    with pytest.raises(ValueError) as refused:
        handler.initialize(worker_context(model_dir))
    assert_one_line_naming_the_fix(str(refused.value))
    assert not handler.initialized and handler.pipeline is None
    failures = [json.loads(line) for line in capsys.readouterr().out.splitlines()
                if '"model_load_failed"' in line]
    assert len(failures) == 1 and REBUILD_HINT in failures[0]["exception"], failures
