"""scripts/archive/build_mar.py and its input readers: every accepted weights form, every refusal (one
line, exit 1, no traceback, nothing left in the model store), labels and preprocessing options."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision

from scripts.archive import build_mar
from scripts.archive.checkpoint import CheckpointError, load_resnet50_weights
from scripts.archive.golden_set import GoldenSetError, collect_golden_set
from scripts.archive.labels import LabelsError, resolve_labels
from scripts.archive.preprocessing_options import PreprocessingError, preprocessing_from_overrides

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def r50_4() -> dict:
    torch.manual_seed(3)
    return torchvision.models.resnet50(weights=None, num_classes=4).state_dict()


def saved(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def refusal(error_type, call) -> str:
    with pytest.raises(error_type) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, message  # one line
    return message


# ------------------------------------------------------------------ accepted weights forms
def test_plain_state_dict(tmp_path, r50_4):
    loaded = load_resnet50_weights(saved(tmp_path, "plain.pth", r50_4))
    assert loaded.num_classes == 4 and loaded.form == "torch.save" and loaded.stripped_prefix == ""
    assert torch.equal(loaded.state["fc.weight"], r50_4["fc.weight"])


def test_lightning_checkpoint_with_model_prefix(tmp_path, r50_4):
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in r50_4.items()}, "epoch": 7, "global_step": 70,
                  "pytorch-lightning_version": "2.4.0"}
    loaded = load_resnet50_weights(saved(tmp_path, "last.ckpt", checkpoint))
    assert loaded.form == "torch.save['state_dict']" and loaded.stripped_prefix == "model."
    assert loaded.num_classes == 4 and set(loaded.state) == set(r50_4)


def test_torchvision_reference_checkpoint_with_ddp_prefix_and_args(tmp_path, r50_4):
    """torchvision's references/classification/train.py saves model, optimizer, args (a Namespace)."""
    checkpoint = {"model": {f"module.{k}": v for k, v in r50_4.items()}, "epoch": 89,
                  "args": argparse.Namespace(lr=0.5, model="resnet50"), "optimizer": {"state": {}, "param_groups": []}}
    loaded = load_resnet50_weights(saved(tmp_path, "model_89.pth", checkpoint))
    assert loaded.form == "torch.save['model']" and loaded.stripped_prefix == "module."
    assert loaded.num_classes == 4


def test_torchscript_module(tmp_path, r50_4):
    model = torchvision.models.resnet50(weights=None, num_classes=4).eval()
    model.load_state_dict(r50_4)
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 3, 64, 64), check_trace=False), str(path))
    loaded = load_resnet50_weights(path)
    assert loaded.form == "torchscript" and loaded.num_classes == 4
    assert torch.equal(loaded.state["layer4.2.conv3.weight"], r50_4["layer4.2.conv3.weight"])


def test_half_precision_and_old_batchnorm_counters(tmp_path, r50_4):
    old = {k: (v.half() if v.is_floating_point() else v) for k, v in r50_4.items()
           if not k.endswith("num_batches_tracked")}
    loaded = load_resnet50_weights(saved(tmp_path, "fp16.pth", old))
    assert loaded.state["fc.weight"].dtype == torch.float32
    torchvision.models.resnet50(weights=None, num_classes=4).load_state_dict(loaded.state)  # strict


# ------------------------------------------------------------------------ refused weights
def test_pickled_whole_module_is_refused_without_unpickling(tmp_path):
    path = saved(tmp_path, "whole.pt", torchvision.models.resnet18(weights=None))
    message = refusal(CheckpointError, lambda: load_resnet50_weights(path))
    assert "pickled Python object (torchvision.models.resnet.ResNet)" in message
    assert "torch.save(model.state_dict(), 'weights.pth')" in message


def test_resnet18_state_dict_is_not_a_resnet50(tmp_path):
    path = saved(tmp_path, "r18.pth", torchvision.models.resnet18(weights=None).state_dict())
    message = refusal(CheckpointError, lambda: load_resnet50_weights(path))
    assert message == ("r18.pth is a ResNet-18 state dict, not a ResNet-50 (expected bottleneck blocks 3-4-6-3 "
                       "and fc over 2048 features)")


def test_missing_and_unexpected_keys_are_named(tmp_path, r50_4):
    state = {k: v for k, v in r50_4.items() if not k.startswith("fc.")}
    state["head.weight"] = torch.zeros(4, 2048)
    message = refusal(CheckpointError, lambda: load_resnet50_weights(saved(tmp_path, "keys.pth", state)))
    assert message == ("keys.pth does not match ResNet-50's 320 keys: 2 missing key(s) (fc.weight, fc.bias); "
                       "1 unexpected key(s) (head.weight)")


def test_extra_module_state_beside_the_prefixed_network_is_named(tmp_path, r50_4):
    checkpoint = {"state_dict": {**{f"model.{k}": v for k, v in r50_4.items()}, "criterion.weight": torch.ones(4)}}
    message = refusal(CheckpointError, lambda: load_resnet50_weights(saved(tmp_path, "extra.ckpt", checkpoint)))
    assert message == "extra.ckpt does not match ResNet-50's 320 keys: 1 unexpected key(s) (criterion.weight)"


def test_wrong_shapes_are_named(tmp_path, r50_4):
    state = dict(r50_4)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a greyscale stem
    message = refusal(CheckpointError, lambda: load_resnet50_weights(saved(tmp_path, "grey.pth", state)))
    assert "conv1.weight [64, 1, 7, 7] (expected [64, 3, 7, 7])" in message


def test_fc_over_other_features_is_refused(tmp_path, r50_4):
    state = dict(r50_4)
    state["fc.weight"] = torch.zeros(4, 512)
    message = refusal(CheckpointError, lambda: load_resnet50_weights(saved(tmp_path, "fc512.pth", state)))
    assert "fc.weight is [4, 512], expected [classes, 2048]" in message


@pytest.mark.parametrize("name, content, expected", [
    ("notes.pth", b"just some text\n", "notes.pth is not a PyTorch weights file (starts with b'just')"),
    ("empty.pth", b"", "weights file empty.pth is empty (0 bytes)"),
    ("photo.pth", (REPO / "tests" / "fixtures" / "sample.jpg").read_bytes(), "is not a PyTorch weights file"),
])
def test_wrong_file_types(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    assert expected in refusal(CheckpointError, lambda: load_resnet50_weights(path))


def test_truncated_and_missing_files(tmp_path, r50_4):
    whole = saved(tmp_path, "whole.pth", r50_4).read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 2])
    assert "cut.pth is a damaged zip archive (truncated or corrupt?)" in refusal(
        CheckpointError, lambda: load_resnet50_weights(tmp_path / "cut.pth"))
    assert "does not exist" in refusal(CheckpointError, lambda: load_resnet50_weights(tmp_path / "nope.pth"))


def test_other_zip_archives_are_named_for_what_they_are(tmp_path):
    """A .mar given as weights, or a zipped folder: one line saying what the file is, not
    torch's internal error."""
    import zipfile

    with zipfile.ZipFile(tmp_path / "resnet50.mar", "w") as archive:
        archive.writestr("MAR-INF/MANIFEST.json", "{}")
        archive.writestr("weights.pt", b"")
    assert refusal(CheckpointError, lambda: load_resnet50_weights(tmp_path / "resnet50.mar")) == (
        "resnet50.mar is a TorchServe model archive (.mar), not a weights file; expected the state dict it was "
        "built from (serve the .mar itself by putting it in MODEL_STORE)")
    with zipfile.ZipFile(tmp_path / "folder.zip", "w") as archive:
        archive.writestr("run/weights.pth", b"x")
        archive.writestr("run/notes.txt", b"y")
    message = refusal(CheckpointError, lambda: load_resnet50_weights(tmp_path / "folder.zip"))
    assert message.startswith("folder.zip is a zip archive but not one written by torch.save (it holds "
                              "run/weights.pth, run/notes.txt)"), message


def test_containers_without_a_state_dict(tmp_path):
    assert "holds a list, not a dict of tensors" in refusal(
        CheckpointError, lambda: load_resnet50_weights(saved(tmp_path, "list.pth", [1, 2])))
    message = refusal(CheckpointError, lambda: load_resnet50_weights(saved(tmp_path, "meta.pth", {"epoch": 3})))
    assert "without tensors and without a 'state_dict' or 'model' state dict inside" in message


# ---------------------------------------------------------------------------------- labels
def test_labels_from_index_to_name_both_forms_and_text(tmp_path):
    (tmp_path / "index_to_name.json").write_text(json.dumps({"1": ["n02123045", "tabby"], "0": "dog"}))
    labels = resolve_labels(tmp_path / "index_to_name.json", 2)
    assert labels.names == ("dog", "tabby") and labels.source == "file:index_to_name.json"
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n\n")
    assert resolve_labels(tmp_path / "labels.txt", 3).names == ("cat", "dog", "bird")


def test_default_labels():
    imagenet = resolve_labels(None, 1000)
    assert imagenet.names[281] == "tabby" and imagenet.source == "imagenet-1k (torchvision)"
    assert resolve_labels("", 3).names == ("class_0", "class_1", "class_2")


def test_labels_count_mismatch_names_both_numbers(tmp_path):
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    message = refusal(LabelsError, lambda: resolve_labels(tmp_path / "labels.txt", 4))
    assert message == ("labels.txt has 5 labels but the weights' fc layer has 4 classes (fc.weight is [4, 2048]); "
                       "give exactly one label per class")


@pytest.mark.parametrize("name, content, expected", [
    ("bad.json", b'{"0": "cat",', "bad.json is not valid JSON"),
    ("gap.json", b'{"0": "cat", "2": "dog"}', "keys must be the class indices 0..1 once each; missing [1]"),
    ("key.json", b'{"zero": "cat"}', "key 'zero' is not a class index"),
    ("blank.txt", b"cat\n\ndog\n", "blank.txt: line 2 is empty"),
    ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 text"),
    ("empty.txt", b"\n\n", "labels file empty.txt is empty"),
])
def test_bad_labels_files(tmp_path, name, content, expected):
    (tmp_path / name).write_bytes(content)
    assert expected in refusal(LabelsError, lambda: resolve_labels(tmp_path / name, 2))


# --------------------------------------------------------------------------- preprocessing
def test_preprocessing_overrides():
    spec, source = preprocessing_from_overrides(["resize=256", "crop=224", "interpolation=bicubic",
                                                 "mean=0.5,0.5,0.5", "std=0.25,0.25,0.25"])
    assert (spec.resize_size, spec.crop_size, spec.interpolation) == (256, 224, "bicubic")
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.25, 0.25, 0.25)
    assert source == "overridden (crop, interpolation, mean, resize, std) over reference (IMAGENET1K_V2)"
    reference, source = preprocessing_from_overrides(None)
    assert (reference.resize_size, reference.crop_size, source) == (232, 224, "reference (IMAGENET1K_V2)")


@pytest.mark.parametrize("pairs, expected", [
    (["crop=300"], "crop 300 is larger than resize 232"),
    (["size=3"], "expected KEY=VALUE with KEY one of resize, crop, interpolation, mean, std"),
    (["mean=0.5,0.5"], "expected three comma-separated numbers"),
    (["std=0.5,0,0.5"], "all above 0"),
    (["interpolation=lanczos"], "expected one of bilinear, bicubic, nearest, nearest-exact"),
])
def test_bad_preprocessing_overrides(pairs, expected):
    assert expected in refusal(PreprocessingError, lambda: preprocessing_from_overrides(pairs))


# ------------------------------------------------------------------------------ golden set
def test_golden_set_folders_map_to_classes(tmp_path):
    from tests.support import png_bytes

    for folder in ("dog", "2", "class_1"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.png").write_bytes(png_bytes())
    (tmp_path / "dog" / "notes.txt").write_text("ignored: not an image suffix")
    samples = collect_golden_set(tmp_path, ("cat", "tabby", "dog"))
    assert sorted(class_id for _, class_id in samples) == [1, 2, 2]


@pytest.mark.parametrize("layout, expected", [
    ({"wolf/a.png": "png"}, "folder 'wolf' names no class of this model"),
    ({"cat/readme.txt": "text"}, "cat/ holds no images"),
    ({"cat/broken.png": "junk"}, "cat/broken.png: "),
    ({}, "no class subfolders"),
])
def test_bad_golden_sets(tmp_path, layout, expected):
    from tests.support import png_bytes

    root = tmp_path / "golden"
    root.mkdir()
    for relative, kind in layout.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes({"png": png_bytes(), "text": b"hello", "junk": b"\x89PNG\r\n\x1a\nbroken"}[kind])
    assert expected in refusal(GoldenSetError, lambda: collect_golden_set(root, ("cat", "dog")))


# ----------------------------------------------------------------------------------- CLI
def cli(argv: list[str], capsys) -> tuple[int, str]:
    code = build_mar.main(argv)
    return code, capsys.readouterr().err


def test_cli_refusals_are_one_line_and_leave_the_store_as_it_was(tmp_path, r50_4, capsys):
    store = tmp_path / "store"
    store.mkdir()
    (store / "m.mar").write_bytes(b"the archive served today")
    weights = saved(tmp_path, "w.pth", r50_4)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    cases = [
        (["--weights", str(weights), "--labels", str(tmp_path / "labels.txt")], "has 3 labels but"),
        (["--weights", str(tmp_path / "labels.txt")], "is not a PyTorch weights file"),
        (["--weights", str(weights), "--preprocessing", "crop=999"], "crop 999 is larger than resize"),
        (["--weights", str(weights), "--golden", str(tmp_path / "nowhere")], "not a directory"),
    ]
    for extra, expected in cases:
        code, err = cli(["--force", "--output-dir", str(store), "--name", "m", *extra], capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and lines[0].startswith("build_mar: error: "), err
        assert expected in lines[0] and "Traceback" not in err
    assert sorted(p.name for p in store.iterdir()) == ["m.mar"]
    assert (store / "m.mar").read_bytes() == b"the archive served today"


def test_the_archiver_stages_in_a_private_folder(tmp_path, monkeypatch, r50_4):
    """torch-model-archiver stages in $TMPDIR/<name> after removing it: another build's (or
    another user's) folder there must be neither touched nor in the way."""
    shared = tmp_path / "shared-tmp"
    (shared / "resnet50").mkdir(parents=True)
    (shared / "resnet50" / "another-build.txt").write_text("theirs")
    monkeypatch.setenv("TMPDIR", str(shared))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    archive = build_mar.build(str(saved(tmp_path, "w.pth", r50_4)), "resnet50", "1.0", tmp_path / "store")
    assert archive.is_file()
    assert (shared / "resnet50" / "another-build.txt").read_text() == "theirs"


def test_cli_refusal_as_a_process(tmp_path):
    path = saved(tmp_path, "r18.pth", torchvision.models.resnet18(weights=None).state_dict())
    result = subprocess.run([sys.executable, "-m", "scripts.archive.build_mar", "--force", "--weights", str(path),
                             "--output-dir", str(tmp_path / "store")], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env={**os.environ, "ENV_FILE": str(tmp_path / "no.env")})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("build_mar: error: r18.pth is a ResNet-18 state dict, not a ResNet-50 "
                                     "(expected bottleneck blocks 3-4-6-3 and fc over 2048 features)")
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_a_failing_archiver_leaves_the_old_archive_and_no_scratch(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    (store / "m.mar").write_bytes(b"old")

    def half_written(name, version, weights_file, extra, export_dir):
        (export_dir / f"{name}.mar").write_bytes(b"PK half")
        raise build_mar.BuildError("torch-model-archiver failed (exit 1): disk full")

    monkeypatch.setattr(build_mar, "run_archiver", half_written)
    with pytest.raises(build_mar.BuildError):
        build_mar.write_archive("m", "1.0", tmp_path / "w.pt", tmp_path, store)
    assert sorted(p.name for p in store.iterdir()) == ["m.mar"] and (store / "m.mar").read_bytes() == b"old"


# ------------------------------------------------------- a custom archive, built and repacked
def archive_meta(archive: Path) -> dict:
    with zipfile.ZipFile(archive) as mar:
        return json.loads(mar.read("model_meta.json"))


def test_custom_archive_records_labels_preprocessing_provenance_and_golden_set(demo_archive, demo_model):
    meta = archive_meta(demo_archive)
    assert meta["categories"] == ["red_circle", "green_square", "blue_triangle", "yellow_star"]
    assert meta["labels_source"] == "file:index_to_name.json"
    assert meta["preprocessing"]["resize_size"] == 128 and meta["preprocessing"]["crop_size"] == 112
    assert meta["preprocessing_source"].startswith("overridden (crop, resize)")
    weights = meta["weights"]
    assert weights["source"] == "file:demo.ckpt" and weights["form"] == "torch.save['state_dict']"
    assert weights["stripped_prefix"] == "model." and weights["num_classes"] == 4
    assert len(meta["selftest"]["logits"]) == 4 and meta["selftest"]["shape"] == [1, 3, 112, 112]
    assert len(meta["golden"]["images"]) == 12 and meta["golden"]["accuracy"] >= 0.75
    with zipfile.ZipFile(demo_archive) as mar:
        assert all(image["file"] in mar.namelist() for image in meta["golden"]["images"])
    assert [p.name for p in demo_archive.parent.iterdir()] == ["demo.mar"]  # no scratch left


def test_repack_keeps_everything_but_the_handler_code(demo_archive, tmp_path):
    copy = tmp_path / "demo.mar"
    copy.write_bytes(demo_archive.read_bytes())
    build_mar.repack(copy, "demo", "1.0")
    before, after = archive_meta(demo_archive), archive_meta(copy)
    for key in ("categories", "labels_source", "preprocessing", "preprocessing_source", "weights", "golden"):
        assert after[key] == before[key], key
    assert after["selftest"]["logits"] == pytest.approx(before["selftest"]["logits"], abs=1e-5)
    with zipfile.ZipFile(demo_archive) as old, zipfile.ZipFile(copy) as new:
        for image in before["golden"]["images"]:
            assert old.read(image["file"]) == new.read(image["file"])


def test_model_weights_and_model_labels_settings_are_the_defaults(tmp_path, r50_4, capsys, monkeypatch):
    weights = saved(tmp_path, "w.pth", r50_4)
    (tmp_path / "labels.txt").write_text("a\nb\n")
    monkeypatch.setenv("ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("MODEL_WEIGHTS", str(weights))
    monkeypatch.setenv("MODEL_LABELS", str(tmp_path / "labels.txt"))
    code, err = cli(["--force", "--output-dir", str(tmp_path / "store")], capsys)
    assert code == 1 and err.strip() == ("build_mar: error: labels.txt has 2 labels but the weights' fc layer has 4 "
                                         "classes (fc.weight is [4, 2048]); give exactly one label per class")


def test_archives_from_before_custom_models_still_parse():
    """model_meta.json as build_mar wrote it before labels, provenance and golden sets existed."""
    from handler.model_meta import parse_model_meta

    old = {"architecture": "resnet50", "categories": ["tench", "goldfish"],
           "preprocessing": {"resize_size": 232, "crop_size": 224, "mean": [0.485, 0.456, 0.406],
                             "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "antialias": True},
           "weights": {"file": "weights.pt", "source": "torchvision:ResNet50_Weights.IMAGENET1K_V2", "sha256": "ab",
                       "pretrained": True, "reference": "ResNet50_Weights.IMAGENET1K_V2"},
           "selftest": {"seed": 1, "shape": [1, 3, 224, 224], "logits": [0.5, 0.25]}}
    meta = parse_model_meta(old)
    assert meta.labels_source == "imagenet-1k (torchvision)" and meta.golden is None
    assert meta.preprocessing_source == "reference"
    assert meta.weights.to_dict()["reference"] == "ResNet50_Weights.IMAGENET1K_V2"
