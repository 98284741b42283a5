"""Visual Rhythm and Beat (livetex/vrb.py).

A synthetic "drummer": a white block falls, accelerating, and stops dead at the bottom every
P = 20 frames (0.8 s at 25 fps; the strikes are frames 10, 30, 50, ...), then eases back up.
The conditioning audio is a click track every 0.5 s: a different tempo, so matching it needs re-timing
(rate 1.6, within the 0.5x-2x limits).
"""

from __future__ import annotations

import wave

import numpy as np
import pytest

from livetex import vrb as V
from livetex.bundle import load_bundle
from livetex.cli import main as livetex_main
from livetex.errors import LivetexError
from livetex.media import VideoWriter
from livetex.walks import WalkRequest, run

FPS, P, N = 25, 20, 300
STRIKES = np.arange(P // 2, N, P)
CLICK_T0, CLICK_PERIOD = 0.25, 0.5


def strike_video(path, n=N, period=P, fps=FPS, size=64):
    yy, xx = np.mgrid[0:size, 0:size]
    with VideoWriter(str(path), fps, (size, size)) as w:
        for k in range(n):
            ph = (k % period) / period
            if ph < 0.5:
                y = 10 + 40 * (ph / 0.5) ** 2                                   # falling, faster and faster
            else:
                y = 50 - 40 * (0.5 - 0.5 * np.cos(np.pi * (ph - 0.5) / 0.5))     # easing back up
            img = np.full((size, size, 3), 20, np.uint8)
            img[(np.abs(yy - y) < 5) & (np.abs(xx - 32) < 10)] = 240
            w.write(img)
    return path


def click_track(path, seconds=14.0, period=CLICK_PERIOD, t0=CLICK_T0, sr=22050, silent=False):
    y = np.zeros(int(seconds * sr), np.float32)
    if not silent:
        L = int(0.03 * sr)
        for t in np.arange(t0, seconds, period):
            a = int(t * sr)
            y[a:a + L] += np.sin(2 * np.pi * 1000 * np.arange(L) / sr) * np.exp(-np.arange(L) / (0.005 * sr))
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes((np.clip(y, -1, 1) * 32000).astype(np.int16).tobytes())
    return path


@pytest.fixture(scope="module")
def drummer(tmp_path_factory):
    d = tmp_path_factory.mktemp("vrb")
    video = strike_video(d / "strike.mp4")
    assert livetex_main(["fit", str(video), "-o", str(d / "strike.b"), "--no-model"]) == 0
    return load_bundle(str(d / "strike.b")), click_track(d / "clicks.wav"), click_track(d / "silence.wav", silent=True)


def hits_on_beats(frames, beat_times, fps=FPS):
    """Fraction of music beats at which the output shows a strike (within one frame either way)."""
    ok = []
    for t in beat_times:
        o = int(round(t * fps))
        near = frames[max(o - 1, 0):o + 2]
        ok.append(any(abs(int(f) - s) <= 1 for f in near for s in STRIKES))
    return float(np.mean(ok))


def test_visual_beats_are_the_strikes(drummer):
    b, _, _ = drummer
    vb, u = V.visual_beats(b, progress=False)
    assert len(u) == b.n_frames
    # Every strike is found within a frame ...
    for s in STRIKES[1:-1]:
        assert np.min(np.abs(vb - s)) <= 1, (s, vb)
    # ... and is the strongest beat of its period (the easing stop at the top is weaker).
    for s in STRIKES[1:-1]:
        window = np.arange(s - P // 2, s + P // 2)
        assert abs(int(window[np.argmax(u[window])]) - s) <= 1


def test_music_beats_of_a_click_track(drummer):
    _, clicks, silence = drummer
    mb, tempo = V.music_beats(str(clicks), 10.0)
    assert 110 < tempo < 130
    clicks_t = np.arange(CLICK_T0, 10.0, CLICK_PERIOD)
    assert len(mb) >= 0.8 * len(clicks_t)
    assert all(np.min(np.abs(clicks_t - t)) < 0.06 for t in mb), mb
    assert len(V.music_beats(str(silence), 10.0)[0]) == 0


def test_vrb_puts_visual_beats_on_music_beats(drummer):
    b, clicks, _ = drummer
    n = 10 * FPS
    tl = run("vrb", WalkRequest(bundle=b, n_frames=n, seed=0, audio=str(clicks)))
    f = np.asarray(tl.frames)
    assert len(f) == n and f.min() >= 0 and f.max() < b.n_frames
    mb, _ = V.music_beats(str(clicks), n / FPS)
    aligned = hits_on_beats(f, mb)
    baseline = hits_on_beats(np.arange(n) % b.n_frames, mb)          # the source played straight
    assert aligned >= 0.85, (aligned, tl.params)
    assert baseline < 0.6 and aligned > baseline + 0.3, (aligned, baseline)
    # Re-timed within the speed limits: output advances 0.5..2 source frames per frame between cuts.
    steps = np.diff(f)
    cut = np.zeros(len(steps), bool)
    cut[np.asarray(tl.jumps, int) - 1] = True
    rate = np.convolve(steps[~cut], np.ones(10) / 10, mode="valid")
    assert rate.min() >= 0.45 and rate.max() <= 2.1, (rate.min(), rate.max())
    assert 1.3 < tl.params["mean_rate"] < 1.9                           # 0.8 s of motion per 0.5 s beat


def test_jumps_are_only_the_cuts(drummer):
    b, clicks, _ = drummer
    n = 25 * FPS                                                      # longer than the 12 s source: needs cuts
    tl = run("vrb", WalkRequest(bundle=b, n_frames=n, seed=0, audio=str(clicks)))
    f = np.asarray(tl.frames)
    assert len(tl.jumps) >= 1
    retimed = np.flatnonzero(np.diff(f) != 1) + 1                      # repeats and skips from re-timing, and cuts
    assert len(retimed) > 3 * len(tl.jumps)                            # most irregular steps are not cuts
    for j in tl.jumps:
        assert 0 < j < n
        step = int(f[j]) - int(f[j - 1])
        assert step < 0 or step > 3, (j, step)                          # a cut moves far; re-timing moves 0..2


def test_silent_music_plays_at_speed_one(drummer):
    b, _, silence = drummer
    n = 20 * FPS
    tl = run("vrb", WalkRequest(bundle=b, n_frames=n, seed=0, audio=str(silence)))
    f = np.asarray(tl.frames)
    assert "no beats in the audio" in tl.params["fallback"]
    assert len(f) == n and f.max() < b.n_frames
    ok = np.diff(f) == 1
    ok[np.asarray(tl.jumps, int) - 1] = True
    assert ok.all() and len(tl.jumps) >= 1                            # speed 1, looping where the source ends


def test_vrb_needs_audio(drummer):
    b, _, _ = drummer
    with pytest.raises(LivetexError, match="--audio"):
        run("vrb", WalkRequest(bundle=b, n_frames=50))


def test_vrb_from_the_cli(drummer, tmp_path, cli):
    b, clicks, _ = drummer
    out = tmp_path / "v.mp4"
    p = cli("render", b.path, "-o", out, "--method", "vrb", "--audio", clicks, "--seconds", "4")
    assert p.returncode == 0, p.stderr
    assert out.exists() and (tmp_path / "v.json").exists()
    p = cli("render", b.path, "-o", tmp_path / "w.mp4", "--method", "vrb", "--audio", tmp_path / "missing.wav")
    assert p.returncode == 1 and "livetex: error:" in p.stderr and "Traceback" not in p.stderr
