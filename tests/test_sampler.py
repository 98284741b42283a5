"""The contrastive walk (livetex/sampler.py): temperature, guards, determinism, calibration, speed-critical API."""

from __future__ import annotations

import numpy as np
import pytest

from livetex.sampler import (Sampler, calibrate_temperature, expected_jump_rate, normalize,
                             simulated_jump_rate)


def chain_embeddings(n: int = 300, d: int = 32, noise: float = 0.6, seed: int = 0):
    """phi_t close to psi_{t+1}: a synthetic bi-gram model with some lookalike segments."""
    rng = np.random.default_rng(seed)
    psi = normalize(rng.standard_normal((n, d)))
    phi = normalize(np.roll(psi, -1, axis=0) + noise / np.sqrt(d) * rng.standard_normal((n, d)).astype(np.float32))
    return phi, psi


def jumps(steps) -> int:
    s = np.asarray(steps)
    return int(np.sum(s[1:] != s[:-1] + 1))


def test_temperature_monotonically_increases_jumps():
    phi, psi = chain_embeddings()
    counts = [jumps(Sampler(phi, psi, 0.2, tau, 0.1, seed=1).walk(3000)) for tau in (0.02, 0.05, 0.1, 0.2, 0.5)]
    assert counts == sorted(counts), counts
    assert counts[0] < counts[-1] / 3, counts


def test_threshold_prunes_weak_transitions():
    phi, psi = chain_embeddings()
    loose = jumps(Sampler(phi, psi, 0.2, 0.2, 0.001, seed=1).walk(3000))
    strict = jumps(Sampler(phi, psi, 0.2, 0.2, 0.5, seed=1).walk(3000))
    assert strict < loose


def test_distribution_is_a_distribution_with_guards():
    phi, psi = chain_embeddings(100)
    s = Sampler(phi, psi, 0.2, 0.1, 0.1)
    s.walk(20, start=10)
    p = s.distribution()
    assert p.shape == (100,) and np.isclose(p.sum(), 1.0) and (p >= 0).all()
    t = s.t
    assert p[t] == 0.0                                   # never stay in place
    for j in s.history:                                  # nothing visited within min_return steps
        if list(s.history).index(j) >= len(s.history) - s.min_return:
            assert p[j] == 0.0
    near = [j for j in range(t - s.min_jump + 1, t + s.min_jump) if 0 <= j < 100 and j != t + 1]
    assert all(p[j] == 0.0 for j in near)                # no stutters / tiny skips


def test_seed_determinism():
    phi, psi = chain_embeddings()
    a = Sampler(phi, psi, 0.2, 0.2, seed=7).walk(500, start=3)
    b = Sampler(phi, psi, 0.2, 0.2, seed=7).walk(500, start=3)
    c = Sampler(phi, psi, 0.2, 0.2, seed=8).walk(500, start=3)
    assert a == b
    assert a != c


@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
def test_walk_never_stalls_or_bounces(tau):
    phi, psi = chain_embeddings(200)
    s = Sampler(phi, psi, 0.2, tau, 0.1, seed=3)
    steps = np.asarray(s.walk(5000, start=190))          # start near the end: the classic trap
    assert not np.any(steps[2:] == steps[:-2])           # no a -> b -> a
    # no tiny loop: any 15 consecutive steps (3 s) visit 15 different segments
    win = np.lib.stride_tricks.sliding_window_view(steps, 15)
    assert all(len(set(w)) == 15 for w in win[::7])
    # the end is never a trap: the last segment is left right away, and the walk keeps covering
    assert len(np.unique(steps)) > 0.9 * 200


def test_dead_end_last_segment_jumps_somewhere_good():
    phi, psi = chain_embeddings(200, noise=0.3)
    s = Sampler(phi, psi, 0.2, 0.05, 0.1)
    s.reset(199)
    p = s.distribution()
    assert np.isclose(p.sum(), 1.0)
    assert p[195:].sum() == 0.0                           # no landing inside the last second (runway)


def test_tiny_clip_still_moves():
    phi, psi = chain_embeddings(5)
    steps = Sampler(phi, psi, 0.2, 0.1, seed=0).walk(200)
    assert len(set(steps)) >= 3


def test_extra_distribution_mixes_in_when_the_music_asks():
    phi, psi = chain_embeddings(100, noise=0.2)
    s = Sampler(phi, psi, 0.2, 0.05, 0.0, seed=0)
    s.reset(10)
    target = np.full(100, 1e-4, np.float32)
    target[70] = 1.0                                              # the music wants segment 70
    assert s.distribution(extra=target, alpha=1.0)[70] < 0.05
    assert s.distribution(extra=target, alpha=0.2)[70] > 0.7
    content = target.copy()
    content[11] = 0.5                                             # ... but continuing (10 -> 11) suits it too
    p_visual, p = s.distribution(), s.distribution(extra=content, alpha=0.2)
    assert p[70] < 0.05 and p[11] >= p_visual[11]                 # no audio-forced cut
    assert np.all(p[content < 0.3] == 0)                          # visual jumps only where the music is happy


def test_calibration_hits_target_rate():
    phi, psi = chain_embeddings(400)
    for target in (6.0, 20.0):
        tau = calibrate_temperature(phi, psi, 0.2, target)
        rates = [simulated_jump_rate(phi, psi, 0.2, tau, 0.1, minutes=10, seed=s) for s in (11, 12)]
        assert target * 0.6 < np.mean(rates) < target * 1.5, (target, tau, rates)
    assert expected_jump_rate(phi, psi, 0.2, 0.01, 0.1) < expected_jump_rate(phi, psi, 0.2, 1.0, 0.1)


# ------------------------------------------------------------------------- transition scores
def test_distance_pair_is_negative_half_squared_distance():
    from livetex.sampler import distance_pair
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((7, 5)), rng.standard_normal((9, 5))
    qa, ka = distance_pair(q, k)
    d2 = ((q[:, None, :] - k[None, :, :]) ** 2).sum(-1)
    assert np.allclose(qa @ ka.T, -0.5 * d2, atol=1e-4)


def test_pixel_codes_keep_distances():
    from livetex.sampler import _pca
    rng = np.random.default_rng(0)
    # 300 points near a 10-dimensional subspace of a 2,000-dimensional space
    x = (rng.standard_normal((300, 10)) @ rng.standard_normal((10, 2000)) + 0.01 * rng.standard_normal((300, 2000)))
    x = (x - x.mean(0)).astype(np.float32)
    y = _pca(x, 64, 0)
    i, j = rng.integers(0, 300, 500), rng.integers(0, 300, 500)
    d_full = ((x[i] - x[j]) ** 2).sum(1)
    d_pca = ((y[i] - y[j]) ** 2).sum(1)
    assert y.shape == (300, 64)
    assert np.allclose(d_pca, d_full, rtol=0.02, atol=1e-3)
    small = _pca(x[:20], 64, 0)                       # fewer points than dimensions: exact
    assert small.shape == (20, 64)
    d = lambda a: ((a[:, None] - a[None]) ** 2).sum(-1)  # noqa: E731
    assert np.allclose(d(small), d(x[:20]), rtol=1e-3, atol=1e-3)


def test_pixel_walk_on_a_bundle_without_model(small_bundle):
    from livetex.bundle import load_bundle
    from livetex.errors import LivetexError
    from livetex.sampler import walk_embeddings
    from livetex.walks import WalkRequest, run
    b = load_bundle(small_bundle)
    q, k, cosine = walk_embeddings(b, "pixel")
    assert not cosine and q.shape == k.shape and len(q) == b.segments.count
    scores = q @ k.T
    succ = np.arange(len(q) - 1)
    assert np.allclose(scores[succ, succ + 1], 0, atol=1e-4)      # the true successor is at distance 0
    assert (scores <= 1e-4).all()
    tl = run("pixel", WalkRequest(bundle=b, n_frames=200, seed=0))
    assert len(tl.frames) == 200
    with pytest.raises(LivetexError, match="no contrastive model"):
        walk_embeddings(b, "contrastive")


def test_reshown_counts_frames_shown_again_within_the_window():
    """metrics.reshown: a loop replayed at once counts, one replayed after the window does not, and a
    straight run counts nothing; timeline_metrics reports it."""
    from livetex.metrics import reshown
    fps = 10.0
    run = np.arange(50)
    assert reshown(run, fps) == 0.0
    assert reshown(np.r_[run, run], fps) == pytest.approx(0.5)                        # 5 s loop, 20 s window
    assert reshown(np.r_[run, np.arange(1000, 1200), run], fps) == 0.0                 # back after 20 s
    assert reshown(np.r_[run, run[:10]], fps, seconds=4.0) == 0.0                       # back after 5 s
    assert reshown(np.r_[run, run[:10]], fps, seconds=5.0) == pytest.approx(10 / 60)
