"""Beats of a song (livetex.beat) and a planned walk that cuts on them and meets them with the
performer's accents (conditioning.Planner)."""

import numpy as np
import pytest

from livetex import beat
from livetex.audio.features import SR

FPS = 25.0


def click_track(bpm: float, seconds: float, offset: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(mono audio at SR, click times in s): 10 ms noise bursts on every beat, over a quiet hum."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.01 * np.sin(2 * np.pi * 110 * t)
    times = np.arange(offset, seconds - 0.1, 60.0 / bpm)
    for c in times:
        a = int(c * SR)
        y[a:a + SR // 100] += 0.5 * rng.standard_normal(len(y[a:a + SR // 100])) * np.exp(-np.arange(len(y[a:a + SR // 100])) / 40)
    return y.astype(np.float32), times


@pytest.mark.parametrize("bpm", [92.0, 128.0, 171.0])
def test_beats_of_a_click_track(bpm):
    """Tempo within 2 %, and nearly every click found within 30 ms (a video frame is 33-42 ms)."""
    y, clicks = click_track(bpm, 20.0)
    times, got_bpm, conf = beat.song_beats(y)
    assert got_bpm == pytest.approx(bpm, rel=0.02) and conf > 0.3
    d = np.abs(clicks[:, None] - times[None]).min(axis=1)
    assert np.mean(d <= 0.03) >= 0.9, np.round(d, 3)
    assert len(times) <= len(clicks) + 1


def test_no_pulse_no_beats_and_bad_audio_is_not_fatal():
    """Silence, white noise, audio shorter than a beat and NaN/clipped samples: no beats (or the clicks
    that are there), never an exception."""
    assert len(beat.song_beats(np.zeros(10 * SR, np.float32))[0]) == 0
    for sec in (10, 30):
        noise = 0.1 * np.random.default_rng(sec).standard_normal(sec * SR).astype(np.float32)
        assert len(beat.song_beats(noise)[0]) == 0
    assert len(beat.song_beats(np.ones(SR // 10, np.float32))[0]) == 0
    y, clicks = click_track(120.0, 12.0)
    y[SR:2 * SR] = np.nan
    y = np.clip(y * 20, -1, 1)
    times, bpm, _ = beat.song_beats(y)
    assert bpm == pytest.approx(120.0, rel=0.02) and len(times) >= 0.8 * len(clicks)


def test_beat_grid_and_accents():
    g = beat.beat_grid(np.array([0.0, 1.0, 1.02, 9.0]), FPS, 100)
    assert g[0] == 1 and g[1] == 0.5 and g[25] == 1 and g[24] == 0.5 and g[26] == 1 and g.max() == 1
    assert g[2:24].sum() == 0 and len(g) == 100
    # motion that runs, then stops at frame 50: the accent is the stop
    motion = np.where(np.arange(100) < 50, 1.0, 0.05)
    a = beat.motion_accents(motion, FPS)
    assert abs(int(np.argmax(a)) - 50) <= 2 and a[:40].max() == 0 and a[60:].max() == 0


def synthetic_planner(beats, accents, seed=0):
    """A 24 s source whose every frame has 12 equally good exits (any cut is seamless), with a motion
    accent every 40 frames; a planner over 25 s of uniform music (no preference for any frame)."""
    from livetex.conditioning import Planner
    from livetex.graph import Graph
    from livetex.segments import Segments
    from livetex.texture import Walk
    n = 600
    rng = np.random.default_rng(1)
    exits = rng.integers(0, n - 40, (n, 12))
    g = Graph(exits, np.ones((n, 12), np.float32), np.ones(n, bool), np.ones(n, np.float32), FPS, {}, {})
    w = Walk(g, rate=0.05, seed=seed)
    seg = Segments(FPS, n, 13, 5, 0.5, 0.2)
    n_out = int(25 * FPS)
    K = (n_out - 13) // 5 + 1
    T = np.full((K, seg.count), 1.0 / seg.count, np.float32)
    return Planner(w, T, 0.5, np.random.default_rng(seed), seg, n_out, beats=beats, accents=accents), n_out


def test_plan_cuts_on_the_beats_and_meets_them_with_accents():
    """Clicks at 100 bpm (a beat every 15 frames) against a performer whose accents come every 40 frames
    (another tempo): the plan lands most cuts on the beats (+-1 frame; chance: 20 % of frames; a cut off
    the beat costs OFFBEAT_COST nats, which an accent brought onto later beats may repay) and
    shows its accents on the beats (+-1 frame) far more often than a plan that does not know them."""
    n_out = int(25 * FPS)
    times = np.arange(0.2, 25.0, 0.6)
    grid = beat.beat_grid(times, FPS, n_out)
    accents = np.zeros(600, np.float32)
    accents[20::40] = 4.0
    on_beat, acc_on, acc_blind = [], [], []
    for seed in range(3):
        p, _ = synthetic_planner(grid, accents, seed)
        frames, jumps = p.run()
        on_beat.append(np.mean(grid[np.asarray(jumps)] > 0))
        acc_on.append(np.mean(grid[accents[frames] > 0] > 0))      # shown accents that fall on a beat
        blind, _ = synthetic_planner(None, accents, seed)[0].run()
        acc_blind.append(np.mean(grid[accents[blind] > 0] > 0))
    assert np.mean(on_beat) >= 0.6, on_beat
    assert np.mean(acc_on) >= 0.45 and np.mean(acc_on) >= 2 * np.mean(acc_blind), (acc_on, acc_blind)


def test_live_walk_hears_loudness_causally():
    """The live follower judges the level it hears against what it heard before (no song to z-score
    over): steady music is neutral, a louder stretch positive, silence at most -1 even in a quiet set;
    and with the loudness, what it shows ranks above indifferent in what it weighs."""
    from livetex.conditioning import LiveFollower
    p, _ = synthetic_planner(None, None)
    walk, seg = p.walk, p.seg
    lf = LiveFollower(walk, seg, 0.5)
    assert lf.loudness(None) is None
    z = [lf.loudness(-20.0 + 0.1 * (i % 2)) for i in range(20)]
    assert abs(z[-1]) <= 1.1
    assert lf.loudness(-6.0) > 2.0
    assert lf.loudness(-120.0) <= -1.0
    # a picture whose second half moves: a loud row should pull the walk there
    walk.g.motion[:] = np.where(np.arange(walk.n) >= walk.n // 2, 5.0, 0.5)
    lf = LiveFollower(walk, seg, 0.5)
    row = np.full(seg.count, 1.0 / seg.count, np.float32)
    for _ in range(10):
        lf.advance(row, 5, level_db=-30.0)
    frames = np.concatenate([lf.advance(row, 5, level_db=-8.0)[0] for _ in range(40)])
    assert np.mean(frames >= walk.n // 2) > 0.7
    assert lf.rank(int(frames[-1])) > 0.5
