"""The contrastive fit (livetex/train.py) end to end: real training, real ONNX, the learned walk."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from livetex.bundle import load_bundle
from livetex.media import VideoWriter
from livetex.walks import WalkRequest, run

PERIOD = 8          # strides: the loop repeats every 8 * 0.2 s = 1.6 s
FPS = 25


def loop_frame(k: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A clock hand and an orbiting dot with period PERIOD strides, plus per-frame noise and a slow
    drift of the background, so no two periods are pixel-identical."""
    phase = 2 * math.pi * k / (PERIOD * 5)          # 5 frames per stride at 25 fps
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    img = np.full((size, size), 40 + 20 * math.sin(k / 97.0), np.float32)
    for r in np.linspace(0, c * 0.9, 40):            # the hand
        x, y = c + r * math.cos(phase), c + r * math.sin(phase)
        img[(np.abs(xx - x) < 2) & (np.abs(yy - y) < 2)] = 230
    dx, dy = c + 0.6 * c * math.cos(-2 * phase), c + 0.6 * c * math.sin(-2 * phase)
    img[(xx - dx) ** 2 + (yy - dy) ** 2 < 16] = 150   # a dot going the other way, twice as fast
    img += rng.normal(0, 4, img.shape)
    g = np.clip(img, 0, 255).astype(np.uint8)
    return np.stack([g, g // 2 + 60, 255 - g], -1)


@pytest.fixture(scope="module")
def loop_bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    video = str(d / "loop.mp4")
    rng = np.random.default_rng(0)
    with VideoWriter(video, FPS, (64, 64)) as w:
        for k in range(24 * FPS):
            w.write(loop_frame(k, rng))
    out = d / "fitted"
    r = subprocess.run([sys.executable, "-m", "livetex", "fit", video, "-o", str(out), "--steps", "250"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def test_fit_writes_model_and_loss_falls(loop_bundle):
    b = load_bundle(loop_bundle, verify=True)
    fit = b.manifest["fit"]
    assert b.array("phi").shape == b.array("psi").shape == (b.segments.count, fit["dim"])
    assert np.allclose(np.linalg.norm(b.array("phi"), axis=1), 1, atol=1e-4)
    assert fit["loss_final"] < 0.6 * fit["loss_first"], (fit["loss_first"], fit["loss_final"])
    assert b.manifest["walk"]["texture"]["rate"] > 0
    assert b.has("video_encoder")


def test_learned_walk_is_phase_consistent(loop_bundle):
    """At low temperature, jumps land on the same phase of the loop (one or more periods away)."""
    b = load_bundle(loop_bundle)
    tl = run("learned", WalkRequest(bundle=b, n_frames=120 * FPS, seed=0, jumps_per_min=20))
    st = np.asarray(tl.steps)
    jumps = np.flatnonzero(st[1:] != st[:-1] + 1)
    assert len(jumps) >= 20
    # the landing segment j continues t seamlessly if j = t + 1 (mod PERIOD)
    off = (st[1:][jumps] - (st[:-1][jumps] + 1)) % PERIOD
    consistent = np.mean((off == 0) | (off == 1) | (off == PERIOD - 1))
    assert consistent > 0.8, (consistent, np.bincount(off, minlength=PERIOD))  # chance: 3/8


def test_onnx_encoder_matches_bundle_embeddings(loop_bundle):
    import onnxruntime as ort
    b = load_bundle(loop_bundle)
    meta = b.manifest["models"]["video_encoder"]
    sess = ort.InferenceSession(b.model_path("video_encoder"), providers=["CPUExecutionProvider"])
    thumbs = np.asarray(b.array("thumbs"), np.float32)
    ids = np.array([0, 5, 17, b.segments.count - 1])
    starts = b.segments.starts[ids]
    q = thumbs[starts[:, None] + np.asarray(meta["query_offsets"])[None, :]]
    k = thumbs[starts[:, None] + np.asarray(meta["key_offsets"])[None, :]]
    phi = sess.run(["phi"], {"clip": q})[0]
    psi = sess.run(["psi"], {"clip": k})[0]
    assert np.abs(phi - b.array("phi")[ids]).max() < 1e-4
    assert np.abs(psi - b.array("psi")[ids]).max() < 1e-4


def test_fit_is_reproducible_with_a_seed(loop_bundle, tmp_path):
    b = load_bundle(loop_bundle)
    video = tmp_path / "again"
    # Same video, same seed, fewer steps for speed: two fits give identical embeddings.
    src = str(loop_bundle.parent / "loop.mp4")
    outs = []
    for name in ("a", "b"):
        r = subprocess.run([sys.executable, "-m", "livetex", "fit", src, "-o", str(video) + name, "--steps", "20",
                            "--seed", "3"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(np.load(str(video) + name + "/phi.npy"))
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], b.array("phi"))


def test_temperature_sweep_on_fitted_model(loop_bundle):
    b = load_bundle(loop_bundle)
    counts = []
    for tau in (0.01, 0.05, 0.2, 1.0):
        tl = run("learned", WalkRequest(bundle=b, n_frames=60 * FPS, seed=1, temperature=tau))
        counts.append(len(tl.jumps))
    assert counts == sorted(counts) and counts[0] < counts[-1], counts


def test_fit_refuses_too_few_segments(tmp_path):
    video = str(tmp_path / "short.mp4")
    rng = np.random.default_rng(0)
    with VideoWriter(video, FPS, (64, 64)) as w:
        for k in range(16):                   # 0.64 s: one window fits, too few segments to learn from
            w.write(loop_frame(k, rng))
    r = subprocess.run([sys.executable, "-m", "livetex", "fit", video, "-o", str(tmp_path / "b"), "--model"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("livetex: error: video is too short")
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "b").exists()


def test_loss_falls_on_a_real_clip(media_dir, tmp_path):
    out = tmp_path / "piano"
    r = subprocess.run([sys.executable, "-m", "livetex", "fit", str(media_dir / "piano_solo_01.avi"), "-o", str(out),
                        "--start", "30", "--end", "45", "--steps", "80", "--store-height", "240"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fit = json.loads((out / "manifest.json").read_text())["fit"]
    assert fit["loss_final"] < 0.8 * fit["loss_first"], fit["curve"]
