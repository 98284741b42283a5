"""The transition graph (livetex.graph) and the texture walk on it (livetex.texture), on synthetic clips
whose picture never stands still: the case where raw pixel continuity finds almost no seamless cut."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from livetex.graph import Graph, GraphConfig, build_graph, strongly_connected
from livetex.metrics import landing_parts, reshown
from livetex.texture import Walk, calibrate_rate, measured_rate

FPS = 25.0


def dancer(n: int = 500, size: int = 64, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a bright body (a disc and two limbs) that never stops moving — its
    centre on a Lissajous path with a varying speed, its limbs swinging — over a textured backdrop."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    backdrop = (40 + 20 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 2, (size, size))).astype(np.float32)
    out = np.empty((n, size, size, 3), np.uint8)
    phase = np.cumsum(0.6 + 0.4 * np.sin(np.arange(n) / 37.0)) / 9.0        # speed varies, never zero
    for k in range(n):
        cx = size / 2 + size * 0.28 * np.sin(phase[k])
        cy = size / 2 + size * 0.22 * np.sin(1.7 * phase[k] + 0.5)
        img = backdrop.copy()
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < 36] = 220
        for arm in (0.0, np.pi):
            ang = arm + 1.3 * np.sin(2.3 * phase[k])
            for r in np.linspace(6, 16, 11):
                x, y = int(round(cx + r * np.cos(ang))), int(round(cy + r * np.sin(ang)))
                img[max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 200
        out[k] = np.clip(img, 0, 255).astype(np.uint8)[..., None]
    return out


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(dancer(), FPS, progress=False)


def test_graph_is_strongly_connected_with_exits_everywhere(graph):
    n, cfg = graph.n, GraphConfig()
    assert graph.alive.mean() > 0.95
    # every live frame reaches every other live frame (edges: play on, or an exit)
    alive = np.flatnonzero(graph.alive)
    ok = graph.exits >= 0
    rows = np.concatenate([np.arange(n - 1), np.nonzero(ok)[0]])
    cols = np.concatenate([np.arange(1, n), graph.exits[ok]])
    a = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))[alive][:, alive]
    assert connected_components(a, directed=True, connection="strong")[0] == 1
    # exits only between live frames; every live frame but the last few (a seam needs room) has them
    assert graph.alive[graph.exits[ok]].all() and graph.alive[np.nonzero(ok)[0]].all()
    has = ok.any(axis=1)
    assert has[alive[alive < n - cfg.edge]].all()
    # no dead end: a live frame that cannot play on has an exit
    for p in alive:
        assert graph.continues(p) or has[p]


def test_exits_are_sorted_spread_and_never_stutter(graph):
    n, cfg = graph.n, GraphConfig()
    c = np.where(graph.exits >= 0, graph.cost, np.inf)
    for row in c:
        f = row[np.isfinite(row)]
        assert (np.diff(f) >= 0).all() and np.isfinite(row[:len(f)]).all()
    assert np.isfinite(graph.cost[graph.exits >= 0]).all() and (graph.cost[graph.exits >= 0] >= 0).all()
    p, i = np.nonzero(graph.exits >= 0)
    assert (np.abs(graph.exits[p, i] - (p + 1)) >= int(round(cfg.min_jump_s * FPS))).all()
    # exits land all over the clip, not in one stretch: every tenth receives some
    tenths = np.bincount(graph.exits[graph.exits >= 0] * 10 // n, minlength=10)
    assert (tenths > 0).all(), tenths
    # and each frame's own exits reach several parts of the clip
    parts = [len(np.unique(e[e >= 0] * 10 // n)) for e in graph.exits[graph.alive]]
    assert np.median(parts) >= 8


def test_seam_cost_prefers_the_matching_moment():
    # A clip that repeats itself exactly after 200 frames: from every frame, the best exit is the same
    # moment in the other repetition, at (near) zero cost.
    base = dancer(200, seed=1)
    clip = np.concatenate([base, base, base[:100]])
    g = build_graph(clip, FPS, progress=False)
    p = np.arange(20, 250)
    best = g.exits[p, 0]
    assert (np.abs(((best - (p + 1)) % 200 + 100) % 200 - 100) <= 1).mean() > 0.9
    assert np.median(g.cost[p, 0]) < 0.2 * np.median(g.cost[p, 3])


def test_strongly_connected_drops_dead_ends_and_unreachable_starts():
    # 0..9 a chain; 9 jumps back to 3: frames 0-2 cannot be reached again
    exits = np.full((10, 1), -1)
    exits[9, 0] = 3
    alive = strongly_connected(exits)
    assert alive.tolist() == [False] * 3 + [True] * 7


def test_walk_covers_a_clip_that_never_stands_still(graph):
    rate = calibrate_rate(graph, 15.0)
    n_out = int(4 * graph.n)                         # a texture four times as long as the clip
    for seed in range(3):
        w = Walk(graph, rate=rate, seed=seed)
        frames, jumps = w.walk(n_out)
        assert len(frames) == n_out
        assert len(np.unique(frames)) / graph.n > 0.85
        # never the same stretch three times in a row: what is shown again within half the clip is rare
        assert reshown(frames, FPS, 0.5 * graph.n / FPS) < 0.25
        assert landing_parts(frames, jumps, graph.n) >= 7
        # every cut is an exit of the graph, or playing on
        for j in jumps:
            assert frames[j] in graph.exits[frames[j - 1]]
        gaps = np.diff([0] + jumps)
        assert (gaps[1:] >= w.dwell).all()


def test_walk_is_seeded_and_its_rate_calibrated(graph):
    rate = calibrate_rate(graph, 20.0)
    a = Walk(graph, rate=rate, seed=4).walk(1000)
    b = Walk(graph, rate=rate, seed=4).walk(1000)
    c = Walk(graph, rate=rate, seed=5).walk(1000)
    assert np.array_equal(a[0], b[0]) and not np.array_equal(a[0], c[0])
    assert measured_rate(Walk(graph, rate=rate), 4.0, seeds=(7, 8)) == pytest.approx(20.0, rel=0.25)
    # a higher temperature lets worse seams count: more jumps at the same rate
    lo = measured_rate(Walk(graph, temperature=1.0, rate=rate), 2.0)
    hi = measured_rate(Walk(graph, temperature=4.0, rate=rate), 2.0)
    assert hi > lo


def test_walk_step_cost_does_not_grow_with_the_clip():
    """A step touches one frame's k exits and a few seconds of history: the same cost at 500 and at
    20,000 frames (timed roughly here; tools/bench_texture.py prints the numbers)."""
    import time
    small = build_graph(dancer(300), FPS, progress=False)
    big = Graph(np.tile(small.exits, (60, 1)) % 18000, np.tile(small.cost, (60, 1)), np.ones(18000, bool),
                np.ones(18000, np.float32), FPS, {}, {})
    big.exits[big.exits < 0] = -1
    times = []
    for g in (small, big):
        w = Walk(g, rate=0.05, seed=0, dwell_s=0.0)
        t0 = time.perf_counter()
        w.advance(2000)
        times.append((time.perf_counter() - t0) / 2000)
    assert times[1] < 5 * times[0] + 2e-4
