"""Backbone registry, model presets, and the pytorchvideo X3D backbone (local weights, no torchvision)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch

from livetex.backbones import backbone_names, build_backbone
from livetex.errors import LivetexError
from livetex.media import VideoWriter
from livetex.train import TrainConfig, load_config


def test_registry_and_presets():
    assert {"tiny3d", "x3d_xs", "x3d_s"} <= set(backbone_names())
    with pytest.raises(LivetexError, match="unknown backbone"):
        build_backbone("resnet9000", {})
    assert asdict(load_config("default")) == asdict(TrainConfig())      # models/default.json == built-in
    assert load_config("x3d_xs").backbone == "x3d_xs"
    with pytest.raises(LivetexError, match="unknown training settings"):
        load_config(None, nonsense=1)


def test_tiny3d_shapes():
    net = build_backbone("tiny3d", asdict(TrainConfig()))
    assert net(torch.rand(3, 3, 8, 32, 32)).shape == (3, net.out_dim)


@pytest.fixture(scope="module")
def x3d_weights(tmp_path_factory):
    """A checkpoint in the PyTorchVideo model-zoo layout ({"model_state": ...}), randomly initialised:
    the real Kinetics file is not downloadable here, and the loading path is the same."""
    pytest.importorskip("pytorchvideo")
    from livetex._x3d import SPECS, _import_create_x3d
    spec = SPECS["x3d_xs"]
    net = _import_create_x3d()(input_clip_length=spec["input_clip_length"], input_crop_size=spec["input_crop_size"],
                               depth_factor=spec["depth_factor"], model_num_class=400, head_activation=None)
    path = tmp_path_factory.mktemp("w") / "X3D_XS.pyth"
    torch.save({"model_state": net.state_dict()}, path)
    return path


def test_x3d_loads_local_weights_without_torchvision(x3d_weights):
    from livetex._x3d import build_x3d
    net = build_x3d("x3d_xs", {"weights": str(x3d_weights)})
    out = net(torch.rand(2, 3, 4, 64, 64))
    assert out.shape == (2, 2048)
    assert "torchvision" not in sys.modules          # the stand-in was only lent for the import
    assert not any(p.requires_grad for p in net.parameters())


def test_x3d_missing_or_wrong_weights_say_what_is_missing(tmp_path, x3d_weights):
    from livetex._x3d import build_x3d
    with pytest.raises(LivetexError, match="never downloads.*X3D_XS.pyth"):
        build_x3d("x3d_xs", {})
    with pytest.raises(LivetexError, match="not found"):
        build_x3d("x3d_xs", {"weights": str(tmp_path / "nope.pyth")})
    bad = tmp_path / "bad.pyth"
    torch.save({"model_state": {"w": torch.zeros(1)}}, bad)
    with pytest.raises(LivetexError, match="is not a x3d_xs checkpoint"):
        build_x3d("x3d_xs", {"weights": str(bad)})


def _clip(path: str, n: int = 60) -> str:
    rng = np.random.default_rng(0)
    with VideoWriter(path, 25, (64, 64)) as w:
        for k in range(n):
            img = np.full((64, 64, 3), 30, np.uint8)
            x = int(32 + 20 * np.sin(k / 4))
            img[20:44, x - 4:x + 4] = 220
            w.write(np.clip(img + rng.integers(0, 8, img.shape), 0, 255).astype(np.uint8))
    return path


def test_fit_with_x3d_backbone_end_to_end(tmp_path, x3d_weights):
    video = _clip(str(tmp_path / "clip.mp4"))
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "livetex", "fit", video, "-o", str(out), "--backbone", "x3d_xs",
                        "--weights", str(x3d_weights), "--steps", "3"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    from livetex.bundle import load_bundle
    b = load_bundle(out)
    assert b.manifest["fit"]["backbone"] == "x3d_xs" and b.manifest["fit"]["frames"] == 4
    assert b.array("phi").shape[0] == b.segments.count


def test_fit_with_x3d_and_no_weights_is_one_clear_line(tmp_path):
    video = _clip(str(tmp_path / "clip.mp4"))
    r = subprocess.run([sys.executable, "-m", "livetex", "fit", video, "-o", str(tmp_path / "b"), "--backbone",
                        "x3d_xs"], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("livetex: error: the x3d_xs backbone needs")
    assert "Traceback" not in r.stderr and not (tmp_path / "b").exists()
