"""Classic video textures (livetex/classic.py): classic, classic+, classic++, classic-deep.

Synthetic videos with known structure, fitted with the real CLI (``livetex fit --no-model``):
- ``periodic``: a dot circling with period P = 20 frames (0.8 s at 25 fps): every good jump lands a
  whole number of periods back;
- ``dead_end``: the same, but its last 40 frames are a sweeping, brightening bar unlike anything earlier.
"""

from __future__ import annotations


import numpy as np
import pytest

from livetex import classic as C
from livetex.bundle import load_bundle
from livetex.cli import main as livetex_main
from livetex.errors import LivetexError
from livetex.media import VideoWriter
from livetex.timeline import jumps_from_frames
from livetex.walks import WalkRequest, run

FPS, P, N = 25, 20, 300
TAIL = 40


def periodic_video(path, n=N, period=P, fps=FPS, dead_end=0, size=64):
    """A dot circling with ``period`` frames; with ``dead_end`` > 0 the last frames are a sweeping bar instead."""
    yy, xx = np.mgrid[0:size, 0:size]
    with VideoWriter(str(path), fps, (size, size)) as w:
        for k in range(n):
            if dead_end and k >= n - dead_end:
                e = k - (n - dead_end)
                img = np.zeros((size, size, 3), np.float32)
                img[:, :, 2] = 60 + 190 * e / dead_end
                x0 = int(e * size / dead_end)
                img[:, max(0, x0 - 4):x0 + 4, 0] = 255
            else:
                a = 2 * np.pi * k / period
                cx, cy = size / 2 + 20 * np.cos(a), size / 2 + 20 * np.sin(a)
                img = np.full((size, size, 3), 30, np.float32)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < 36] = (255, 200, 40)
            w.write(img.astype(np.uint8))
    return path


def fit_bundle(video, out, *extra, model=False):
    assert livetex_main(["fit", str(video), "-o", str(out), *(["--model"] if model else []), *extra]) == 0
    return load_bundle(str(out))


@pytest.fixture(scope="module")
def periodic(tmp_path_factory):
    d = tmp_path_factory.mktemp("classic")
    return fit_bundle(periodic_video(d / "periodic.mp4"), d / "periodic.b")


@pytest.fixture(scope="module")
def dead_end(tmp_path_factory):
    d = tmp_path_factory.mktemp("classic_dead")
    return fit_bundle(periodic_video(d / "dead.mp4", dead_end=TAIL), d / "dead.b")


def check_timeline(tl, bundle, n_frames):
    f = np.asarray(tl.frames)
    assert len(f) == n_frames
    assert f.dtype.kind == "i" and f.min() >= 0 and f.max() < bundle.n_frames
    assert list(tl.jumps) == jumps_from_frames(f)
    return f


def jump_pairs(f, jumps):
    return [(int(f[k - 1]), int(f[k])) for k in jumps]


# ------------------------------------------------------------------------------------------ the period
@pytest.mark.parametrize("method", ["classic", "classic+", "classic++"])
def test_finds_the_period(periodic, method):
    n = 60 * FPS
    tl = run(method, WalkRequest(bundle=periodic, n_frames=n, seed=3))
    f = check_timeline(tl, periodic, n)
    pairs = jump_pairs(f, tl.jumps)
    assert len(pairs) >= 5, pairs
    # Jumping from i to j shows j where i+1 would have been: j - (i+1) must be a whole number of periods.
    off = [((j - (i + 1)) % P) for i, j in pairs]
    assert all(o in (0, 1, P - 1) for o in off), list(zip(pairs, off))
    assert all(abs(j - (i + 1)) >= P - 1 for i, j in pairs), pairs    # real jumps, not stutters


def test_period_with_uint8_matrix(periodic):
    tl = run("classic", WalkRequest(bundle=periodic, n_frames=40 * FPS, seed=1, extra={"matrix_dtype": "uint8"}))
    assert tl.params["matrix_dtype"] == "uint8"
    pairs = jump_pairs(tl.frames, tl.jumps)
    assert pairs and all(((j - (i + 1)) % P) in (0, 1, P - 1) for i, j in pairs), pairs


# ------------------------------------------------------------------------------------------ dead ends
def _tail_stats(f, n_src):
    tail = f >= n_src - TAIL
    run_, longest = 0, 0
    for x in tail:
        run_ = run_ + 1 if x else 0
        longest = max(longest, run_)
    return float(tail.mean()), longest


@pytest.mark.parametrize("method", ["classic", "classic+", "classic++"])
def test_q_learning_removes_dead_ends(dead_end, method):
    n_src = dead_end.n_frames
    n = 10 * n_src                                    # ten times the source: the walk must keep going
    tl = run(method, WalkRequest(bundle=dead_end, n_frames=n, seed=2))
    f = check_timeline(tl, dead_end, n)
    frac, longest = _tail_stats(f, n_src)
    assert frac == 0.0, (frac, longest)               # never plays into the end that leads nowhere
    # Plays forever: it keeps moving (no frame shown twice in a row), keeps jumping, and keeps coming
    # back to the start of the video rather than circling in one corner of it.
    assert np.all(np.diff(f) != 0)
    assert len(tl.jumps) >= 10
    assert (f[-n // 4:] < n_src // 3).any()
    # The same walk without the future cost (discount 0) does wander into the dead end: the guard matters.
    tl0 = run(method, WalkRequest(bundle=dead_end, n_frames=n, seed=2, extra={"discount": 0.0}))
    frac0, longest0 = _tail_stats(check_timeline(tl0, dead_end, n), n_src)
    assert frac0 > 0.05 and longest0 >= TAIL // 2, (frac0, longest0)


def test_future_cost_converges_and_is_larger_near_the_dead_end(dead_end):
    X = C.frame_features(dead_end.array("thumbs"))
    cost = C.CostMatrix(X, stutter=5, progress=False)
    m, sweeps = C.future_cost(cost, C.DISCOUNT, 1, progress=False)
    assert sweeps < 100
    n = cost.n
    # Fixed point: m_i = min_j C_ij + alpha m_j (check a few rows exactly).
    for i in (0, 17, n // 2, n - TAIL - 5, n - 1):
        row = cost.rows(i, i + 1)[0]
        assert m[i] == pytest.approx(np.min(row + C.DISCOUNT * m), rel=1e-3, abs=1e-4 * cost.sigma_base)
    assert m[n - 1] > 5 * np.median(m[: n - 2 * TAIL])


# ---------------------------------------------------------------------------------- blockwise = dense
def test_blockwise_costs_match_a_dense_reference(monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(37, 12)).astype(np.float32)
    monkeypatch.setattr(C, "BLOCK_BYTES", 4 * 37 * 6 * 8)     # 8-row blocks: halos and borders exercised
    taps = C.TAPS[4]
    cost = C.CostMatrix(X, taps, 0.7, stutter=2, dtype=np.float32, progress=False)
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    n, w = len(X), np.array(taps)
    Dp = np.zeros_like(D)
    for i in range(n):
        for j in range(n):
            ks = [k for k in range(-2, 2) if 0 <= i + k < n and 0 <= j + k < n]
            ws = np.array([w[k + 2] for k in ks])
            Dp[i, j] = sum(w[k + 2] * D[i + k, j + k] for k in ks) / ws.sum()
    want = np.empty_like(D)
    want[:-1] = Dp[1:]
    want[-1] = np.concatenate([Dp[-1, :1], Dp[-1, :-1]])
    want = want ** 0.7
    for i in range(n):
        for off in (-2, -1, 1, 2):
            if 0 <= i + 1 + off < n:
                want[i, i + 1 + off] = np.inf
    np.testing.assert_allclose(cost.rows(0, n), want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------- requests
@pytest.mark.parametrize("method", ["classic", "classic+", "classic++"])
def test_valid_deterministic_timelines(periodic, method):
    n = 257                                           # not a multiple of any hop
    a = run(method, WalkRequest(bundle=periodic, n_frames=n, seed=5))
    b = run(method, WalkRequest(bundle=periodic, n_frames=n, seed=5))
    c = run(method, WalkRequest(bundle=periodic, n_frames=n, seed=6))
    for tl in (a, b, c):
        check_timeline(tl, periodic, n)
        assert tl.method == method and tl.seed in (5, 6)
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    one = run(method, WalkRequest(bundle=periodic, n_frames=1, seed=0))
    assert len(one.frames) == 1


@pytest.mark.parametrize("method", ["classic", "classic++"])
def test_jump_rate_follows_the_request(periodic, method):
    n = 120 * FPS
    rates = []
    for target in (6.0, 30.0):
        tl = run(method, WalkRequest(bundle=periodic, n_frames=n, seed=0, jumps_per_min=target))
        assert tl.params["target_jumps_per_min"] == target
        rates.append(len(tl.jumps) / (n / FPS / 60))
    assert rates[0] < rates[1]
    assert 0.4 * 30 < rates[1] < 2.0 * 30, rates
    # Temperature (sigma in units of the mean cost) raises the jump rate monotonically.
    js = [len(run(method, WalkRequest(bundle=periodic, n_frames=n, seed=0, temperature=t)).jumps)
          for t in (0.003, 0.03, 0.3)]
    assert js[0] <= js[1] <= js[2] and js[0] < js[2], js


def test_threshold_prunes_weak_transitions(periodic):
    n = 60 * FPS
    loose = run("classic", WalkRequest(bundle=periodic, n_frames=n, seed=0, temperature=0.3, threshold=0.01))
    tight = run("classic", WalkRequest(bundle=periodic, n_frames=n, seed=0, temperature=0.3, threshold=0.9))
    assert len(tight.jumps) < len(loose.jumps)


def test_memory_limit_is_explicit():
    assert C.choose_dtype(1000) == np.float16
    assert C.choose_dtype(20000, max_gb=0.5) == np.uint8           # 400 MB as uint8, 800 MB as float16
    with pytest.raises(LivetexError, match=r"limit is 23170 frames \(15\.4 min at 25 fps\)"):
        C.choose_dtype(30000, max_gb=0.5, fps=25)
    # 10 minutes at 30 fps fits the default budget in float16.
    assert C.choose_dtype(18000, fps=30) == np.float16


def test_too_long_for_the_budget_is_a_clean_error(periodic):
    with pytest.raises(LivetexError, match="classic\\+\\+"):
        run("classic", WalkRequest(bundle=periodic, n_frames=50, extra={"max_gb": 1e-5}))


# -------------------------------------------------------------------------------------- classic-deep
def test_classic_deep_needs_a_model(periodic):
    with pytest.raises(LivetexError, match="classic-deep needs a fitted model"):
        run("classic-deep", WalkRequest(bundle=periodic, n_frames=100))


def test_classic_deep_on_a_fitted_model(tmp_path):
    video = periodic_video(tmp_path / "short.mp4", n=150)
    b = fit_bundle(video, tmp_path / "deep.b", "--steps", "5", model=True)   # validity, not quality: keep it fast
    assert b.has("psi")
    n = 30 * FPS
    tl = run("classic-deep", WalkRequest(bundle=b, n_frames=n, seed=0))
    f = check_timeline(tl, b, n)
    assert tl.steps is not None and len(tl.jumps) >= 1
    assert tl.params["features"].startswith("L2-normalised psi")
    assert f.max() < b.n_frames


# --------------------------------------------------------------------------------------------- CLI
def test_render_and_methods_from_the_cli(periodic, tmp_path, cli):
    p = cli("methods")
    assert p.returncode == 0
    for name in ("classic", "classic+", "classic++", "classic-deep"):
        assert any(line.split()[0] == name for line in p.stdout.splitlines()), p.stdout
    out = tmp_path / "c.mp4"
    p = cli("render", periodic.path, "-o", out, "--method", "classic", "--seconds", "4", "--jumps-per-min", "30")
    assert p.returncode == 0, p.stderr
    import json
    tl = json.loads((tmp_path / "c.json").read_text())
    assert tl["method"] == "classic" and len(tl["frames"]) == 4 * FPS
    p = cli("render", periodic.path, "-o", tmp_path / "d.mp4", "--method", "classic-deep")
    assert p.returncode == 1 and p.stderr.strip().startswith("livetex: error: classic-deep needs a fitted model")
    assert not (tmp_path / "d.mp4").exists()
