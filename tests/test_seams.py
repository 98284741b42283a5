"""Seam smoothing (livetex.seams): geometry, the three modes on a known jump, the player API, the metric,
and the real pipeline (CLI fit, CLI/library render, mp4 decoded back)."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from conftest import run_livetex
from livetex import seams
from livetex.bundle import load_bundle
from livetex.errors import LivetexError
from livetex.framestore import FrameStore, FrameStoreWriter
from livetex.media import VideoWriter, iter_frames, probe
from livetex.render import output_frames, render
from livetex.timeline import Timeline, load_timeline

FPS = 25
SIZE = (160, 96)
N = 65                      # 2.6 s: 11 segments, so a --no-model fit trains nothing
SPEED = 2.0                 # pixels per frame
BACK = 11                   # the known jump goes back 11 frames: frames 0..34 then 24..
JUMP = 35


# -------------------------------------------------------------------------------------- synthetic data
def texture(w: int, h: int, sigma: float = 8.0, seed: int = 0, grey: bool = False) -> np.ndarray:
    """Smooth random texture, full 0..255 range; ``grey`` makes R = G = B."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 1 if grey else 3)).astype(np.float32), (0, 0), sigma)
    t = cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8).reshape(h, w, -1)
    return np.repeat(t, 3, axis=2) if grey else t


def moving(n: int = N, size=SIZE, speed: float = SPEED, grey: bool = False) -> list[np.ndarray]:
    """A texture panning left at ``speed`` px/frame: frame k is a crop at x = speed * k."""
    w, h = size
    big = texture(w + int(speed * n) + 8, h + 8, grey=grey)
    return [big[4:4 + h, int(round(speed * k)):int(round(speed * k)) + w].copy() for k in range(n)]


class ListStore:
    """The FrameStore interface over a list of frames."""

    def __init__(self, frames):
        self.frames_ = frames
        self.size = (frames[0].shape[1], frames[0].shape[0])

    def __len__(self):
        return len(self.frames_)

    def frame(self, k):
        return self.frames_[k].copy()


def known_jump(n_out: int = 60) -> Timeline:
    frames = np.r_[np.arange(JUMP), np.arange(JUMP - BACK, JUMP - BACK + n_out - JUMP)]
    return Timeline(fps=FPS, frames=frames, jumps=[JUMP], method="test")


R = seams.RENDER.before     # metric window: the largest step within the whole (rendered) seam


def discontinuity(frames, jumps, src_changes, radius=R, measure="mad") -> float:
    return seams.seam_discontinuity(frames, jumps, src_changes, radius=radius, measure=measure)["ratio"]


# ------------------------------------------------------------------------------------------ geometry
def test_seam_sources_clamp_to_the_video():
    a, b = seams.seam_sources(prev_k=9, next_k=1, n_source=11, before=3, after=3)
    assert a.tolist() == [7, 8, 9, 10, 10, 10]          # the old stream runs off the end: holds
    assert b.tolist() == [0, 0, 0, 1, 2, 3]             # the new one starts before frame 0: holds
    assert seams.seam_weights(3, 3).tolist() == pytest.approx([1 / 7, 2 / 7, 3 / 7, 4 / 7, 5 / 7, 6 / 7])


def test_plan_seams_never_overlap_and_cover_every_jump():
    # Jumps 5 frames apart (a random walk at 25 fps) and one right at the start and end.
    frames = np.r_[np.arange(0, 10), np.arange(40, 45), np.arange(20, 25), np.arange(70, 71)]
    jumps = [10, 15, 20]
    plan = seams.plan_seams(frames, jumps, n_source=100, before=3, after=3)
    assert [s.jump for s in plan] == jumps
    for s in plan:
        assert s.start <= s.jump < s.end and len(s.a_idx) == len(s.b_idx) == len(s.t) == s.end - s.start
        assert s.a_idx[s.before - 1] == frames[s.jump - 1] and s.b_idx[s.before] == frames[s.jump]
    assert all(p.end <= q.start for p, q in zip(plan, plan[1:]))
    assert [(s.before, s.after) for s in plan] == [(3, 3), (2, 3), (2, 1)]
    assert seams.plan_seams(frames, [0, 21, 99], 100) == []           # out of range: ignored


# --------------------------------------------------------------------------------- the known jump
@pytest.mark.parametrize("size,grey", [(SIZE, False), ((161, 97), False), ((161, 97), True)],
                         ids=["even", "odd", "odd-grey"])
def test_flow_beats_fade_beats_none_on_a_known_jump(size, grey):
    src = moving(size=size, grey=grey)
    store = ListStore(src)
    tl = known_jump()
    ref = seams.frame_changes(src)
    ratio, outs = {}, {}
    for mode in seams.MODES:
        out = outs[mode] = list(seams.smooth_frames(store, tl, mode))
        assert len(out) == len(tl.frames)
        assert all(f.shape == (size[1], size[0], 3) and f.dtype == np.uint8 for f in out)
        # Only the seam's frames change.
        K = seams.render_config(mode).before
        assert seams.render_config(mode).after == K
        untouched = [p for p in range(len(out)) if not JUMP - K <= p < JUMP + K]
        assert all(np.array_equal(out[p], src[tl.frames[p]]) for p in untouched)
        ratio[mode] = {r: discontinuity(out, tl.jumps, ref, radius=r) for r in (0, R)}
    # The hard cut is several times an ordinary frame step; both smoothings bring it down, and
    # following the flow (the back jump cancels the pan) does better than ghosting two pans.
    assert ratio["none"][R] > 3.0
    assert ratio["fade"][R] < 0.5 * ratio["none"][R]
    assert ratio["flow"][R] < 0.5 * ratio["fade"][R]
    assert ratio["fade"][0] < ratio["none"][0] and ratio["flow"][0] < ratio["none"][0]
    # No ghost: the flow seam's frames look like real frames of the pan (a cross-fade of two
    # shifted textures looks like none of them).
    def nearest(f):
        return min(float(np.abs(f.astype(np.float32) - s).mean()) for s in src)
    K = seams.RENDER.before
    seam = range(JUMP - K, JUMP + K)
    ghost = {m: np.array([nearest(outs[m][p]) for p in seam]) for m in ("fade", "flow")}
    assert (ghost["flow"] < ghost["fade"]).all()
    assert ghost["flow"][K - 2:K + 2].max() < 0.3 * ghost["fade"][K - 2:K + 2].min()   # the middle of the seam


def test_grey_two_dimensional_frames():
    src = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in moving(size=(161, 97))]
    a, b = src[JUMP - 3:JUMP + 3], src[JUMP - BACK - 3:JUMP - BACK + 3]
    s = seams.Seamer("flow", max_warp_area=1.0)
    out = s.blend(a, b, prev=src[JUMP - 4], nxt=src[JUMP - BACK + 3])
    assert out.shape == (6, 97, 161) and out.dtype == np.uint8
    assert s.stats == {"seams": 1, "warped": 1}


def test_flow_solved_at_each_frame_agrees_with_one_solve():
    src = moving()
    a, b = src[JUMP - 3:JUMP + 3], src[JUMP - BACK - 3:JUMP - BACK + 3]
    ends = dict(prev=src[JUMP - 4], nxt=src[JUMP - BACK + 3])
    one = seams.Seamer("flow", max_warp_area=1.0).blend(a, b, **ends)
    each = seams.Seamer("flow", max_warp_area=1.0, flow_pairs="each").blend(a, b, **ends)
    fade = seams.Seamer("fade").blend(a, b)
    err = lambda x: np.abs(x.astype(np.float32) - each).mean()  # noqa: E731
    assert err(one) < 0.25 * err(fade)


def test_live_cost_cap_cross_fades_whole_frame_warps():
    # The live default warps at most half the frame; this pan moves all of it.
    src = moving()
    a, b = src[JUMP - 3:JUMP + 3], src[JUMP - BACK - 3:JUMP - BACK + 3]
    ends = dict(prev=src[JUMP - 4], nxt=src[JUMP - BACK + 3])
    live = seams.Seamer("flow")
    assert live.config.max_warp_area == seams.LIVE.max_warp_area < 1.0
    np.testing.assert_array_equal(live.blend(a, b, **ends), seams.Seamer("fade").blend(a, b))
    assert live.stats == {"seams": 1, "warped": 0}
    full = seams.Seamer("flow", max_warp_area=1.0)
    full.blend(a, b, **ends)
    assert full.stats == {"seams": 1, "warped": 1}


def test_flow_falls_back_to_fade_on_unrelated_frames():
    # Two unrelated textures: no flow explains one by the other, so the seam is the cross-fade.
    a = [texture(96, 64, seed=1)] * 4
    b = [texture(96, 64, seed=2)] * 4
    flow, fade = seams.Seamer("flow"), seams.Seamer("fade")
    assert np.array_equal(flow.blend(a, b), fade.blend(a, b))
    assert flow.stats == {"seams": 1, "warped": 0}


def test_flat_and_tiny_frames():
    flat = [np.full((9, 7, 3), 128, np.uint8)] * 2
    dark = [np.zeros((9, 7, 3), np.uint8)] * 2
    for mode in seams.MODES:
        out = seams.Seamer(mode).blend(flat, dark)
        assert out.shape == (2, 9, 7, 3)
    assert seams.Seamer("flow").blend(flat, dark)[:, 0, 0, 0].tolist() == [85, 43]   # t = 1/3, 2/3


def test_bad_arguments():
    with pytest.raises(LivetexError, match="unknown interpolation"):
        seams.Seamer("morph")
    with pytest.raises(LivetexError, match="preset"):
        seams.Seamer("flow", preset="slowest")
    with pytest.raises(LivetexError, match="flow_pairs"):
        seams.Seamer("flow", flow_pairs="some")
    with pytest.raises(ValueError, match="shape"):
        seams.Seamer("fade").blend([np.zeros((4, 4, 3), np.uint8)], [np.zeros((4, 5, 3), np.uint8)])


# ------------------------------------------------------------------------------------ player API
def test_seamer_seam_reads_the_store_and_matches_the_timeline(tmp_path):
    """The player's call gives exactly the frames the renderer puts around the same jump, on an odd-sized
    real frame store."""
    src = moving(size=(161, 97))
    w = FrameStoreWriter(str(tmp_path), (161, 97), codec="raw")
    for f in src:
        w.add(f)
    store = FrameStore(str(tmp_path), w.close())
    tl = known_jump()
    live = replace(seams.LIVE, max_warp_area=1.0)
    rendered = list(seams.smooth_frames(store, tl, "flow", live))
    assert seams.Seamer("flow").config == seams.LIVE
    s = seams.Seamer("flow", live)
    assert (s.before, s.after) == (3, 3)
    a_idx, b_idx = s.sources(JUMP - 1, JUMP - BACK, len(store))
    assert a_idx.tolist() == list(range(JUMP - 3, JUMP + 3))
    assert b_idx.tolist() == list(range(JUMP - BACK - 3, JUMP - BACK + 3))
    new = s.seam(store, JUMP - 1, JUMP - BACK)
    assert new.shape == (6, 97, 161, 3)
    np.testing.assert_array_equal(new, np.stack(rendered[JUMP - 3:JUMP + 3]))


# -------------------------------------------------------------------------------------------- metric
def test_metric_of_the_source_itself_is_one():
    src = moving()
    ref = seams.source_changes(np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in src]))
    assert set(ref) == {"mad", "ssim"} and len(ref["mad"]) == N - 1
    d = seams.seam_discontinuity(src, [10, 20, 30], ref, radius=0)
    assert d["n_jumps"] == 3 and d["seam"].shape == (3,)
    assert 0.8 < d["ratio"] < 1.2 and d["visible"] == 0.0
    # Precomputed changes give the same answer as frames.
    ch = seams.frame_changes(src)
    for r in (0, 3):
        for m in ("mad", "ssim"):
            a = seams.seam_discontinuity(src, [10, 20, 30], ref, radius=r, measure=m)
            b = seams.seam_discontinuity(ch[m], [10, 20, 30], ref[m], radius=r, measure=m)
            assert a["ratio"] == pytest.approx(b["ratio"]) and a["visible"] == b["visible"]
    # A hard cut to another picture is visible.
    cut = src[:20] + [texture(*SIZE, seed=5)] * 10
    assert seams.seam_discontinuity(cut, [20], ref)["visible"] == 1.0


# ------------------------------------------------------------------------------ the real pipeline
@pytest.fixture(scope="module")
def pan_bundle(tmp_path_factory):
    """The panning texture as a real silent mp4, fitted with the real CLI (--no-model)."""
    d = tmp_path_factory.mktemp("seams")
    video = d / "pan.mp4"
    with VideoWriter(str(video), FPS, SIZE) as w:
        for f in moving():
            w.write(f)
    p = run_livetex("fit", video, "-o", d / "B", "--no-model")
    assert p.returncode == 0, p.stderr
    return d / "B"


def decoded(path) -> list[np.ndarray]:
    return list(iter_frames(str(path)))


def test_render_known_jump_each_mode(pan_bundle, tmp_path):
    b = load_bundle(str(pan_bundle))
    ref = seams.source_changes(b.array("thumbs"))
    tl = known_jump()
    ratio = {}
    for mode in seams.MODES:
        out = tmp_path / f"{mode}.mp4"
        render(b, tl, str(out), interpolate=mode, progress=False)
        info = probe(str(out))
        frames = decoded(out)
        assert len(frames) == len(tl.frames) and info.fps == FPS
        assert info.duration == pytest.approx(len(tl.frames) / FPS, abs=0.5 / FPS)
        ratio[mode] = discontinuity(frames, tl.jumps, ref)
    assert ratio["flow"] < ratio["fade"] < ratio["none"]
    assert ratio["flow"] < 0.7 * ratio["fade"] and ratio["fade"] < 0.5 * ratio["none"]


def test_cli_random_render_keeps_frame_count_and_duration(pan_bundle, tmp_path):
    b = load_bundle(str(pan_bundle))
    ref = seams.source_changes(b.array("thumbs"))
    result = {}
    for mode in seams.MODES:
        out = tmp_path / f"{mode}.mp4"
        p = run_livetex("render", pan_bundle, "-o", out, "--method", "random", "--seconds", "3",
                        "--interpolate", mode, "--seed", "1")
        assert p.returncode == 0, p.stderr
        tl = load_timeline(str(tmp_path / f"{mode}.json"))
        ran = mode if mode != "rife" or b.has("rife") else "flow"     # rife without its network: flow
        assert tl.params["interpolate"] == ran and len(tl.frames) == 3 * FPS and len(tl.jumps) >= 10
        frames = decoded(out)
        assert len(frames) == len(tl.frames)
        assert probe(str(out)).duration == pytest.approx(3.0, abs=0.5 / FPS)
        result[mode] = (tl.frames.tolist(), seams.seam_discontinuity(frames, tl.jumps, ref, radius=R))
    assert result["none"][0] == result["fade"][0] == result["flow"][0]   # same walk, only seams differ
    assert result["fade"][1]["ratio"] < 0.6 * result["none"][1]["ratio"]
    assert result["flow"][1]["ratio"] <= 1.05 * result["fade"][1]["ratio"]


def test_cli_default_interpolation_is_rife_else_flow(pan_bundle, tmp_path):
    """rife when the bundle carries its network (livetex fit stores it when the weights are installed),
    else the flow morph."""
    from livetex.cli import default_interpolation
    b = load_bundle(str(pan_bundle))
    want = "rife" if b.has("rife") else "flow"
    assert seams.DEFAULT_MODE == "flow" and default_interpolation(b) == want
    out = tmp_path / "default.mp4"
    p = run_livetex("render", pan_bundle, "-o", out, "--method", "random", "--seconds", "1")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "default.json").read_text())["params"]["interpolate"] == want


def test_output_frames_none_is_the_plain_cut(pan_bundle):
    b = load_bundle(str(pan_bundle))
    tl = known_jump()
    plain = list(output_frames(b, tl, "none"))
    again = list(seams.smooth_frames(b.store, tl, "none"))
    assert all(np.array_equal(x, y) for x, y in zip(plain, again)) and len(plain) == len(again)
