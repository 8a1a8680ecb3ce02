"""Architecture descriptions: validation, YAML loading, scales, name resolution, round trips."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import yaml

from nas.model.arch import (
    ArchError,
    Architecture,
    Row,
    dump_arch,
    guess_scale,
    load_arch,
    models_dir,
    resolve_model_path,
    save_arch,
)
from nas.model.detector import build_model

MODEL_FILES = sorted(models_dir().glob("*.yaml"))
TINY = {
    "nc": 2,
    "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "Conv", [16, 3, 2]]],
    "head": [[[0, 1], 1, "Detect", ["nc"]]],
}


def test_models_folder_has_the_reference_files():
    names = {p.name for p in MODEL_FILES}
    expected = {"yolov8.yaml", "yolov8-ghost.yaml", "yolov8-ghostnet.yaml", "yolov8-adown.yaml",
                "yolov8-adown-head.yaml"}
    assert expected <= names


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_round_trip_every_model_file(path: Path):
    arch = load_arch(path)
    text = dump_arch(arch)
    assert load_arch(text) == arch
    # the dumped YAML holds the same rows as the original file (modulo 'None' -> null)
    original, dumped = yaml.safe_load(path.read_text()), yaml.safe_load(text)
    for key in ("nc", "backbone", "head"):
        assert _normalise(dumped[key]) == _normalise(original[key]), key
    assert {k: [float(x) for x in v] for k, v in original.get("scales", {}).items()} == {
        k: [float(x) for x in v] for k, v in dumped.get("scales", {}).items()
    }
    # YAML -> model -> YAML: the model keeps its description
    if arch.scales:
        arch = arch.with_overrides(scale=next(iter(arch.scales)))
    model = build_model(arch, nc=2)
    assert load_arch(dump_arch(model.arch)) == model.arch == arch.with_overrides(nc=2)


def _normalise(value):
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return None if value == "None" else value


def test_dump_format_is_ultralytics_flow_rows():
    text = dump_arch(load_arch("yolov8n.yaml"))
    assert "  - [-1, 1, Conv, [64, 3, 2]] # 0\n" in text
    assert "  - [[15, 18, 21], 1, Detect, [nc]] # 22\n" in text
    assert "scale: n\n" in text and "  n: [0.33, 0.25, 1024]\n" in text


def test_save_arch(tmp_path: Path):
    arch = load_arch(TINY)
    path = save_arch(arch, tmp_path / "sub" / "tiny.yaml")
    assert load_arch(path) == arch


def test_scale_from_name_key_and_argument(tmp_path: Path):
    assert guess_scale("yolov8n.yaml") == "n"
    assert guess_scale("models/yolov8s-ghost.yaml") == "s"
    assert guess_scale("yolov8-ghost.yaml") is None
    assert load_arch("yolov8m.yaml").scale == "m"
    assert load_arch("yolov8m.yaml", scale="x").scale == "x"  # the argument wins
    data = yaml.safe_load((models_dir() / "yolov8.yaml").read_text())
    path = tmp_path / "yolov8n-custom.yaml"
    path.write_text(yaml.safe_dump({**data, "scale": "l"}))
    assert load_arch(path).scale == "l"  # an explicit key wins over the file name
    assert load_arch(path, scale="s").scale == "s"
    arch = load_arch(models_dir() / "yolov8.yaml")
    assert arch.scale is None
    with pytest.warns(UserWarning, match="assuming scale 'n'"):
        assert arch.resolved_scale().width == 0.25


def test_no_scales_uses_multipliers_without_channel_cap():
    arch = load_arch({**TINY, "depth_multiple": 0.5, "width_multiple": 0.5})
    scale = arch.resolved_scale()
    assert (scale.depth, scale.width) == (0.5, 0.5)
    assert scale.channels(4096) == 2048  # no max_channels cap without scales
    plain = load_arch(TINY).resolved_scale()
    assert (plain.depth, plain.width, plain.channels(2000)) == (1.0, 1.0, 2000)


def test_nc_override_and_defaults():
    assert load_arch("yolov8n.yaml", nc=3).nc == 3
    assert load_arch({k: v for k, v in TINY.items() if k != "nc"}).nc == 80


def test_nc_override_reaches_a_head_written_with_the_number():
    """``Detect, [4]`` (the class count as a number) follows an ``nc`` override like
    ``Detect, [nc]`` does, so such a YAML trains on data with another class count."""
    text = dump_arch(load_arch("yolov8n.yaml", nc=4).with_literal_nc())
    assert "Detect, [4]]" in text
    assert build_model(text, nc=3).layers[-1].nc == 3
    arch = load_arch(text, nc=3)
    assert arch.head[-1].args == ("nc",) and arch.with_literal_nc().head[-1].args == (3,)
    assert build_model(load_arch(text), nc=7).layers[-1].nc == 7  # through with_overrides
    assert build_model(text).layers[-1].nc == 4  # no override: the file's own count


def test_resolve_model_path(tmp_path: Path):
    assert resolve_model_path("yolov8n.yaml") == models_dir() / "yolov8.yaml"
    assert resolve_model_path("yolov8s-ghost.yaml") == models_dir() / "yolov8-ghost.yaml"
    assert resolve_model_path("yolov8-adown") == models_dir() / "yolov8-adown.yaml"
    local = tmp_path / "yolov8.yaml"
    local.write_text(yaml.safe_dump(TINY))
    assert resolve_model_path(local) == local  # an existing path comes first
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml.*yolov8\.yaml"):
        resolve_model_path("nope.yaml")


def test_args_strings_are_read_like_ultralytics():
    arch = load_arch(models_dir() / "yolov8.yaml")
    upsample = arch.head[0]
    assert upsample.args == (None, 2, "nearest")
    assert arch.head[-1].args == ("nc",)
    assert isinstance(arch.head[-1].frm, tuple)
    assert hash(arch) == hash(load_arch(dump_arch(arch)))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[-1, 1, "Conv"]],
         r"head row 0 \(row 2\): a row must be \[from, repeats, module, args\]"),
        ([[-1, 0, "Conv", [8]]],
         r"head row 0 \(row 2\): key 'repeats' must be an int >= 1, got 0"),
        ([[-1, 1.5, "Conv", [8]]], r"key 'repeats' must be an int >= 1, got 1.5"),
        ([["a", 1, "Conv", [8]]], r"key 'from' must be an int or a non-empty list"),
        ([[[], 1, "Conv", [8]]], r"key 'from' must be an int or a non-empty list"),
        ([[-1, 1, 7, [8]]], r"key 'module' must be a block name string, got 7"),
        ([[-1, 1, "Conv", 8]], r"key 'args' must be a list, got 8"),
        ([[5, 1, "Conv", [8]]], r"row 2 \(head row 0\): key 'from' value 5 does not refer"),
        ([[-4, 1, "Conv", [8]]], r"key 'from' value -4 does not refer to an earlier row"),
        ([[[-1, 2], 1, "Concat", [1]]], r"key 'from' value 2 does not refer"),
        ([[-1, 1, "NoSuchBlock", [8]]],
         r"row 2 \(head row 0\): key 'module': unknown block 'NoSuchBlock'; "
         r"registered blocks: .*C2f"),
    ],
)
def test_bad_rows_name_source_row_key_and_value(rows, message):
    with pytest.raises(ArchError, match=r"^<dict>: (.*: )?" + message):
        load_arch({**TINY, "head": rows})


def test_bad_top_level_values(tmp_path: Path):
    with pytest.raises(ArchError, match="key 'nc' must be an int >= 1, got 0"):
        load_arch(TINY, nc=0)
    with pytest.raises(ArchError, match="missing key 'head'"):
        load_arch({"nc": 1, "backbone": TINY["backbone"]})
    with pytest.raises(ArchError, match="key 'scales' entry 'n' must be"):
        load_arch({**TINY, "scales": {"n": [0.33, 0.25]}})
    with pytest.raises(ArchError, match="unknown scale 'q'; valid scales: n, s"):
        load_arch({**TINY, "scales": {"n": [1, 1, 64], "s": [1, 1, 64]}}, scale="q")
    with pytest.raises(ArchError, match="valid scales: none"):
        load_arch(TINY, scale="n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nc: [1\n")
    with pytest.raises(ArchError, match=r"bad\.yaml: invalid YAML"):
        load_arch(bad)
    with pytest.raises(ArchError, match="must be a mapping"):
        load_arch("- 1\n- 2\n")
    row_file = tmp_path / "row.yaml"
    rows = [[-1, 1, "Conv", [8]], [9, 1, "C2f", []]]
    row_file.write_text(yaml.safe_dump({**TINY, "head": rows}))
    with pytest.raises(ArchError, match=r"row\.yaml: row 3 \(head row 1\): key 'from' value 9"):
        load_arch(row_file)


def test_rows_and_architecture_are_frozen_and_validated_directly():
    row = Row([0, -1], 1, "Concat", [1])  # type: ignore[arg-type]
    assert row.frm == (0, -1) and row.args == (1,)
    with pytest.raises(AttributeError):
        row.repeats = 2  # type: ignore[misc]
    with pytest.raises(ArchError, match="key 'backbone' must be a non-empty"):
        Architecture(nc=1, backbone=(), head=())
    with pytest.raises(ArchError, match="row 0 .*value -2"):
        Architecture(nc=1, backbone=(Row(-2, 1, "Conv", (8,)),), head=())


def test_row_zero_may_only_read_the_image():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arch = load_arch(TINY)
    assert arch.rows[0].frm == -1
    with pytest.raises(ArchError, match="value 0 does not refer"):
        load_arch({**TINY, "backbone": [[0, 1, "Conv", [8, 3, 2]]]})
