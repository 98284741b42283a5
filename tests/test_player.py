"""The real-time player (livetex play): pieces in isolation, then whole headless runs (EGL, no display).

The end-to-end run with a window under Xvfb and a real virtual microphone is in test_player_e2e.py.

Bundles here are fitted with --no-model, then given a *synthetic* phi/psi (tests only: see
``add_fake_model``), so these tests do not wait for a contrastive training run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_clean_error


# ------------------------------------------------------------------------------------------ helpers
def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def add_fake_model(bundle: Path, dim: int = 16, seed: int = 0) -> Path:
    """Give a --no-model bundle phi/psi arrays (TEST ONLY), listed and checksummed in its manifest.

    phi_i and psi_j are random Fourier features of i and j - 1, so cos(phi_t, psi_j) peaks at the
    natural successor j = t + 1 and falls off with distance: a walk that mostly plays on and sometimes
    jumps, like a fitted model's. The product never does this; it refuses bundles without a model.
    """
    m = json.loads((bundle / "manifest.json").read_text())
    N = m["segments"]["count"]
    w = np.random.default_rng(seed).uniform(0.05, 0.6, dim // 2)

    def emb(t):
        t = np.asarray(t, np.float64)[:, None]
        return np.concatenate([np.cos(w * t), np.sin(w * t)], 1).astype(np.float32)
    for name, arr in (("phi", emb(np.arange(N))), ("psi", emb(np.arange(N) - 1.0))):
        f = bundle / f"{name}.npy"
        np.save(f, arr)
        m["arrays"][name] = {"file": f.name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
        m["files"][f.name] = {"bytes": f.stat().st_size, "sha256": _sha(f)}
    (bundle / "manifest.json").write_text(json.dumps(m, indent=1))
    return bundle


def copy_with_fake_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return add_fake_model(dst)


class ManualClock:
    """A master clock the test moves by hand."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def now(self) -> float:
        return self.t

    def set_paused(self, p):
        pass


@pytest.fixture(scope="session")
def play_bundle(small_bundle, tmp_path_factory) -> Path:
    """The shared small bundle (2.6 s, 25 fps, 64x48, with audio) plus a synthetic model."""
    return copy_with_fake_model(small_bundle, tmp_path_factory.mktemp("player") / "small")


# --------------------------------------------------------------------------------------- import cost
def test_cli_and_player_import_no_heavy_modules():
    """`livetex` must start instantly: adding the play subcommand imports no GUI/audio/ML library, and
    the player's own modules never import torch (the player runs without it)."""
    code = (
        "import sys, livetex.cli\n"
        "livetex.cli.build_parser()\n"
        "heavy = [m for m in ('pyglet', 'sounddevice', 'onnxruntime', 'torch', 'pythonosc') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import livetex.player.app, livetex.player.scheduler, livetex.player.prefetch, livetex.player.audio_in\n"
        "import livetex.player.conditioner, livetex.player.window, livetex.player.osc, livetex.player.stats\n"
        "import livetex.sampler, livetex.seams, livetex.audio, livetex.audio.avmodel\n"
        "assert 'torch' not in sys.modules, 'torch imported by the player path'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


# -------------------------------------------------------------------------------------------- pieces
def test_audio_ring_wraps_and_reports_arrivals():
    from livetex.player.audio_in import AudioRing
    r = AudioRing(10, sr=100)
    w, end = r.latest(4)
    assert end == 0 and np.all(w == 0)
    r.write(np.arange(6, dtype=np.float32), t=1.0)
    r.write(np.arange(6, 13, dtype=np.float32), t=2.0)       # wraps around the 10-sample buffer
    w, end = r.latest(5)
    assert end == 13 and w.tolist() == [8, 9, 10, 11, 12]
    w, _ = r.latest(10)
    assert w.tolist() == list(range(3, 13))
    assert r.take_arrivals(6) == [1.0]          # the first block ends at 6
    assert r.take_arrivals(12) == []            # the second ends at 13: not covered yet
    assert r.take_arrivals(13) == [2.0]
    r.write(np.arange(25, dtype=np.float32), t=3.0)           # bigger than the buffer
    w, end = r.latest(10)
    assert end == 38 and w.tolist() == list(range(15, 25))


def test_controls_clamp_and_nudge():
    from livetex.player.controls import Controls
    c = Controls(temperature=0.1, threshold=0.1, alpha=0.6)
    assert c.nudge("temperature", +1) == pytest.approx(0.125)
    assert c.nudge("alpha", +1) == pytest.approx(0.65)
    assert c.set("alpha", 7) == 1.0 and c.set("threshold", -3) == 0.0
    assert c.set("temperature", 1e9) == 10.0
    with pytest.raises(ValueError):
        c.set("temperature", float("nan"))
    assert c.toggle("freeze") is True and c.toggle("freeze") is False
    v = c.version
    c.request("quit")
    assert c.quit and c.version > v and c.actions.get_nowait() == ("quit",)


def test_prefetcher_never_blocks_and_honours_seam_frames(play_bundle):
    from livetex.bundle import load_bundle
    from livetex.player.prefetch import Prefetcher
    store = load_bundle(play_bundle).store

    class SlowStore:
        def __init__(self):
            self.release = threading.Event()

        def frame(self, k):
            self.release.wait(5)
            return store.frame(k)

    slow = SlowStore()
    p = Prefetcher(slow)
    try:
        for n in range(5):
            p.request(n, 10 + n)
        t = time.perf_counter()
        assert p.take(0) is None                                 # not decoded: the caller drops it
        assert time.perf_counter() - t < 0.05
        seam = np.full_like(store.frame(0), 7)
        p.put(3, seam)                                           # a seam frame replaces a planned one
        slow.release.set()
        assert p.wait_ready(4, 5)
        src, rgb = p.take(3)
        assert src == -1 and np.all(rgb == 7)
        src, rgb = p.take(4)
        assert src == 14 and np.array_equal(rgb, store.frame(14))
        assert p.take(2) is None                                 # the past is forgotten
    finally:
        slow.release.set()
        p.close()


def _scheduler(bundle_path, clock, song=None, live=None, mic=None, seamer=None, seed=0, plan=False):
    from livetex.bundle import load_bundle
    from livetex.player.controls import Controls
    from livetex.player.prefetch import Prefetcher
    from livetex.player.scheduler import Scheduler
    from livetex.player.stats import Stats
    from livetex.texture import walk_for
    from livetex.walks import WalkRequest
    b = load_bundle(bundle_path)
    seg = b.segments
    walk, _ = walk_for(WalkRequest(bundle=b, n_frames=100, seed=seed))
    start = walk.first_frame()
    stats = Stats()
    pf = Prefetcher(b.store, stats)
    planner = None
    if plan:
        from livetex.conditioning import plan_song
        rows = song.rows()
        planner, frames, _, _ = plan_song(walk, rows, 0.5, seed, b, None, 5.0,
                                          seg.window_frames + (len(rows) - 1) * seg.stride_frames)
        planner.walk, planner.rng, start = walk, walk.rng, int(frames[0])
    s = Scheduler(walk, seg, b.fps, clock, Controls(walk.temperature, walk.threshold, 0.5), pf, stats, start=start,
                  song=song, live=live, mic=mic, seamer=seamer, store=b.store, planner=planner)
    return b, s, pf, stats


def test_scheduler_plans_the_renderers_timeline(play_bundle):
    """Whatever the timing, the frames planned are exactly the offline walk's with the same seed and
    start: the whole first window, then a stride of frames per step."""
    from livetex.texture import walk_for
    from livetex.walks import WalkRequest
    clock = ManualClock(1000.0)                       # far ahead: every decision is due at once
    b, s, pf, stats = _scheduler(play_bundle, clock)
    try:
        for _ in range(30):
            s._decide_next()
        n_out = s.first_frame(31)
        w, _ = walk_for(WalkRequest(bundle=b, n_frames=100, seed=0))
        want, jumps = w.walk(n_out, w.first_frame())
        got = [pf.planned[n] for n in range(n_out)]
        assert got == want.tolist()
        assert sum(len(r["jumps"]) for r in stats.records) == len([j for j in jumps if j >= s.W]) > 0
        assert stats.decisions == 31 and stats.conditioned == 0
    finally:
        s.stop()
        pf.close()


def test_scheduler_decides_about_one_step_ahead(play_bundle):
    """A decision is never taken more than one stride before its deadline, nor after it."""
    clock = ManualClock(0.0)
    _, s, pf, stats = _scheduler(play_bundle, clock)
    s.start()
    try:
        for t in np.arange(0.0, 2.0, 0.01):
            clock.t = float(t)
            time.sleep(0.002)
        time.sleep(0.05)
    finally:
        s.stop()
        pf.close()
    recs = stats.records
    assert len(recs) >= 8
    for r in recs:
        t_k = s.first_frame(r["k"]) / s.fps
        lead = t_k - r["t"]
        assert s.margin - 0.02 <= lead <= s.margin + s.T + 0.02, (r, s.margin)


def test_song_rows_are_the_offline_rows(play_bundle, media):
    """With a song, step k is conditioned on output window k of livetex.conditioning (the audio heard
    while its frames are on screen), and its row is exactly the offline renderer's row."""
    from livetex.audio import features as F
    from livetex.bundle import load_bundle
    from livetex.conditioning import audio_rows, output_windows
    from livetex.media.audio import load_audio
    from livetex.player.conditioner import SongCondition
    from livetex.walks import WalkRequest
    b = load_bundle(play_bundle)
    song_path = str(media.av)                        # 4 s with noise bursts at 1 s and 2 s
    cond = SongCondition(b, load_audio(song_path, F.SR, channels=1), "features")
    K = 12
    starts, ends = output_windows(b.segments, K)
    T, _, _, _ = audio_rows(WalkRequest(bundle=b, n_frames=b.segments.window_frames + (K - 1) * b.segments.stride_frames,
                                        audio=song_path, audio_model="features"))
    for k in range(K):
        assert cond.window(k) == (starts[k], ends[k])
        np.testing.assert_allclose(cond(k), T[k], rtol=1e-5, atol=1e-7)
    clock = ManualClock(1000.0)
    _, s, pf, stats = _scheduler(play_bundle, clock, song=cond)
    try:
        for _ in range(8):
            s._decide_next()
    finally:
        s.stop()
        pf.close()
    assert stats.conditioned == 8
    for r in stats.records:   # the window of step k ends with the step's last frame
        assert r["audio_t"] == pytest.approx((s.first_frame(r["k"]) + s.S) / s.fps, abs=1e-3)


def test_song_walk_is_planned_and_replanned_when_the_controls_move(play_bundle, media):
    """With a song file the player follows a plan over the whole song (the rows are the per-step ones);
    when alpha moves, the steps mix greedily until a plan for the new alpha is ready, then follow it."""
    from livetex.audio import features as F
    from livetex.bundle import load_bundle
    from livetex.media.audio import load_audio
    from livetex.player.conditioner import SongCondition
    b = load_bundle(play_bundle)
    cond = SongCondition(b, load_audio(str(media.av), F.SR, channels=1), "features")
    rows = cond.rows()
    assert len(rows) > 10 and cond.window(len(rows))[0] >= len(cond.y) > cond.window(len(rows) - 1)[0]
    for k in (0, 5, len(rows) - 1):
        np.testing.assert_allclose(rows[k], cond(k), rtol=1e-5, atol=1e-7)
    clock = ManualClock(1000.0)
    _, s, pf, stats = _scheduler(play_bundle, clock, song=cond, plan=True)
    try:
        for _ in range(5):
            s._decide_next()
        assert all(r["planned"] for r in stats.records)
        s.controls.alpha = 0.8
        s._decide_next()
        assert stats.records[-1]["planned"] is False            # stale plan: this step followed live
        s._replanning.join(30)
        assert s.planner.planned_for[0] == pytest.approx(0.8)
        s._decide_next()
        assert stats.records[-1]["planned"] is True
    finally:
        s.stop()
        pf.close()


class FakeMic:
    """A microphone without a device: a thread writes noise blocks into a real AudioRing in real time."""

    def __init__(self, sr=1000, block=20):
        from livetex.player.audio_in import AudioRing
        self.ring = AudioRing(4 * sr, sr)
        self.wake = threading.Event()
        self.sr, self.block = sr, block
        self.on = threading.Event()
        self.on.set()
        self.stop = threading.Event()
        self.lost = False
        self.opened_pos = 0
        self.rng = np.random.default_rng(0)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop.is_set():
            time.sleep(self.block / self.sr)
            if self.on.is_set():
                self.ring.write(self.rng.normal(0, 0.1, self.block).astype(np.float32), time.perf_counter())
                self.wake.set()

    def check(self):
        lost = not self.on.is_set()
        if self.lost and not lost:
            self.opened_pos = self.ring.total      # a reopened device: a new stream
        self.lost = lost
        return not lost


@pytest.mark.parametrize("mic_sr", [16000, 44100])
def test_mic_decisions_use_fresh_audio_and_survive_loss(play_bundle, mic_sr):
    """Live: the microphone feeds the real live embedder; each decision uses a new window, every block
    is used within about one stride; when the microphone goes away the walk goes on, unconditional,
    and follows the audio again when it is back. (44.1 kHz: the embedder resamples.)"""
    from livetex.bundle import load_bundle
    from livetex.player.audio_in import WallClock
    from livetex.player.conditioner import MicCondition
    mic = FakeMic(sr=mic_sr, block=mic_sr // 50)
    live = MicCondition(load_bundle(play_bundle), mic_sr, "features")
    clock = WallClock()
    _, s, pf, stats = _scheduler(play_bundle, clock, live=live, mic=mic)
    mic.ring.write(np.zeros(mic_sr * 6 // 10, np.float32), time.perf_counter())   # 0.6 s already there
    s.warm_up()
    clock.start()
    s.start()
    try:
        time.sleep(1.6)
        mic.on.clear()
        time.sleep(0.6)
        mic.on.set()
        time.sleep(1.4)
    finally:
        s.stop()
        mic.stop.set()
        pf.close()
    recs = stats.records
    kinds = [r.get("audio") for r in recs]
    assert "lost" in kinds and kinds.count("mic") >= 8, kinds
    i_lost = kinds.index("lost")
    assert "mic" in kinds[i_lost:], f"never followed the audio again after the microphone came back: {kinds}"
    before = [r["window"] for r in recs[:i_lost] if r.get("audio") == "mic"]
    assert np.median(np.diff(before)) == 1                 # one new window per step
    lat = np.asarray(stats.latency_s)
    assert len(lat) > 40
    # blocks arrive evenly over a stride and wait for the end of it: median about T/2, nearly all
    # within T (p90, not p99: this machine's other tenants can stall any thread for a while)
    assert np.median(lat) <= s.T / 2 + 0.05, np.median(lat)
    assert np.percentile(lat, 90) <= s.T + 0.05, np.percentile(lat, 90)


def test_osc_sets_the_same_knobs(tmp_path):
    from pythonosc.udp_client import SimpleUDPClient

    from livetex.player.controls import Controls
    from livetex.player.osc import OscServer
    from livetex.player.stats import Stats
    c = Controls(0.1, 0.1, 0.6)
    stats = Stats()
    srv = OscServer(c, "127.0.0.1", 0, stats).start()
    try:
        cl = SimpleUDPClient("127.0.0.1", srv.port)
        cl.send_message("/livetex/temperature", 0.25)
        cl.send_message("/livetex/alpha", 2.0)          # clamped
        cl.send_message("/livetex/threshold", "x")      # ignored, reported once
        cl.send_message("/livetex/freeze", [])          # toggle
        cl.send_message("/livetex/hud", 1)
        cl.send_message("/livetex/nonsense", 1)
        cl.send_message("/livetex/screenshot", "a.png")
        cl.send_message("/livetex/quit", [])
        deadline = time.time() + 5
        while srv.received < 8 and time.time() < deadline:
            time.sleep(0.01)
    finally:
        srv.close()
    assert srv.received == 8
    assert c.temperature == pytest.approx(0.25) and c.alpha == 1.0 and c.threshold == pytest.approx(0.1)
    assert c.freeze and c.hud and c.quit
    acts = []
    while not c.actions.empty():
        acts.append(c.actions.get_nowait())
    assert ("screenshot", "a.png") in acts and ("quit",) in acts
    msgs = " ".join(e["message"] for e in stats.events)
    assert "unknown address /livetex/nonsense" in msgs and "/livetex/threshold needs one number" in msgs


# --------------------------------------------------------------------------------------- bad input
def test_play_needs_no_trained_model(cli, small_bundle, tmp_path):
    """The texture walk runs on the transition graph: a bundle fitted with --no-model plays."""
    r = cli("play", small_bundle, "--headless", "--duration", "1", "--stats", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames_shown"] > 10


def test_play_bad_arguments(cli, play_bundle, tmp_path):
    assert_clean_error(cli("play", tmp_path / "nope", "--headless"), match="no such bundle")
    r = cli("play", play_bundle, "--size", "huge")
    assert r.returncode == 2 and "WxH" in r.stderr or "1280x720" in r.stderr
    r = cli("play", play_bundle, "--headless", "--stats", tmp_path / "missing" / "s.json")
    assert_clean_error(r, match="does not exist")
    r = cli("play", play_bundle, "--headless", "--audio", tmp_path / "nope.wav")
    assert_clean_error(r)


def test_play_without_display_says_so(cli, play_bundle):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "LIVETEX_DEBUG")}
    r = subprocess.run([sys.executable, "-m", "livetex", "play", str(play_bundle), "--duration", "1"],
                       env=env, capture_output=True, text=True, timeout=60)
    last = assert_clean_error(r, match="no display")
    assert "--headless" in last


def test_missing_input_device_lists_the_devices(cli, play_bundle):
    r = cli("play", play_bundle, "--headless", "--audio", "mic", "--input-device", "no-such-mic-xyz")
    last = assert_clean_error(r)
    # Either there are input devices (then they are listed) or there are none (and it says so).
    assert "no audio input device" in last
    assert "devices:" in last


# ------------------------------------------------------------------------------------- headless runs
def _png(path):
    import cv2
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_headless_play_shows_store_frames_at_source_fps(cli, play_bundle, tmp_path):
    """A real pyglet (EGL) window, seams on: frames at the source rate, none dropped, the walk
    jumps, and what the window shows is pixel-exactly the bundle's frame (read back from GL)."""
    from livetex.bundle import load_bundle
    stats_p, shot = tmp_path / "s.json", tmp_path / "shot.png"
    r = cli("play", play_bundle, "--headless", "--duration", "4", "--stats", stats_p, "--screenshot", shot,
            "--seed", "3", "--temperature", "0.3", timeout=90)
    assert r.returncode == 0, r.stderr
    s = json.loads(stats_p.read_text())
    b = load_bundle(play_bundle)
    assert s["fps_shown"] == pytest.approx(b.fps, rel=0.02)
    assert s["frames_shown"] + s["dropped"] >= 0.97 * 4 * b.fps
    assert s["dropped"] <= 0.03 * 4 * b.fps, s["dropped"]
    assert s["decisions"] >= 4 / 0.2 - 3 and s["jumps"] >= 1
    assert s["torch_loaded"] is False
    info = s["screenshot"]
    img = _png(shot)
    assert img.shape == (b.store.size[1], b.store.size[0], 3)
    if info["source_frame"] >= 0:
        assert np.array_equal(img, b.store.frame(info["source_frame"]))
    else:   # the run ended on a seam frame: it lies between the two streams
        assert info["output_frame"] >= 0
    shown = [k for k in s["shown_source_frames"] if k >= 0]
    assert len(set(shown)) > 20


def test_slow_frames_are_dropped_never_frozen(play_bundle, tmp_path, monkeypatch):
    """A frame store that takes 250 ms for every third frame (slower than real time on average, so
    no look-ahead can hide it): the picture drops frames, counts them, and keeps real time."""
    from livetex.framestore import FrameStore
    from livetex.player.app import PlayConfig, play
    orig = FrameStore.frame

    def slow(self, k):
        if k % 3 == 0:
            time.sleep(0.25)
        return orig(self, k)
    monkeypatch.setattr(FrameStore, "frame", slow)
    t = time.perf_counter()
    s = play(PlayConfig(bundle=str(play_bundle), headless=True, duration=3.0, interpolate="none", seed=1))
    wall = time.perf_counter() - t
    assert s["dropped_not_ready"] >= 3
    assert s["frames_shown"] >= 10                       # the picture kept changing ...
    assert s["frames_shown"] + s["dropped"] >= 0.9 * 3 * 25   # ... and every frame slot is accounted for
    assert s["clock_end_s"] == pytest.approx(3.0, abs=0.2)
    assert wall < 3.0 + 8.0            # start-up included; a frozen loop would never end on time


def test_keys_hud_and_screenshot_in_a_headless_window(play_bundle, tmp_path):
    """The key bindings move the same knobs as OSC; the HUD draws over the picture; a screenshot
    without HUD is the frame itself, letterboxed pixel-exactly when the window is larger."""
    import pyglet  # noqa: F401
    from livetex.bundle import load_bundle
    from livetex.player.audio_in import WallClock
    from livetex.player.controls import Controls
    from livetex.player.prefetch import Prefetcher
    from livetex.player.stats import Stats
    from livetex.player.window import PlayerWindow, open_window
    b = load_bundle(play_bundle)
    w, h = b.store.size
    win = open_window((w + 20, h), fullscreen=False, headless=True)      # 10 px bars left and right
    c, st = Controls(0.1, 0.1, 0.6), Stats()
    pf = Prefetcher(b.store, st)
    try:
        pw = PlayerWindow(win, b.store.size, b.fps, b.n_frames, c, st, pf, WallClock(), status=lambda: "test")
        key = pyglet.window.key
        for sym in (key.UP, key.UP, key.LEFT, key.BRACKETRIGHT, key.SPACE, key.H):
            assert pw.on_key_press(sym, 0) is True
        assert c.temperature == pytest.approx(0.1 * 1.25 ** 2) and c.alpha == pytest.approx(0.55)
        assert c.threshold == pytest.approx(0.15) and c.freeze and c.hud
        assert pw.on_key_press(key.Z, 0) is None                # unbound keys are left to pyglet
        frame = b.store.frame(17)
        pw.upload(frame)
        pw.cur_src = 17
        with_hud = pw.screenshot(str(tmp_path / "hud.png"))
        c.set("hud", False)
        plain = pw.screenshot(str(tmp_path / "plain.png"))
        assert plain["source_frame"] == 17 and with_hud["hud"] and not plain["hud"]
        img_plain, img_hud = _png(tmp_path / "plain.png"), _png(tmp_path / "hud.png")
        assert np.array_equal(img_plain[:, 10:10 + w], frame)
        assert np.all(img_plain[:, :10] == 0) and np.all(img_plain[:, 10 + w:] == 0)
        assert not np.array_equal(img_hud, img_plain)
        pw.on_key_press(key.Q, 0)
        assert c.quit
    finally:
        pf.close()
        win.close()
