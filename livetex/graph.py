"""The transition graph: where a texture may cut, from any frame, and what each cut costs to show.

Nodes are source frames. A cut ``p -> g`` shows frame ``p`` and then ``g`` instead of ``p + 1``. Every
frame keeps its own ``k`` best exits (``exits[p]``, ``cost[p]``, best first), so a walk can leave from
wherever it is — a dancer who never stands still included — instead of only from the few moments whose
pixels happen to match.

Built once, at fit time (:func:`build_graph`), and stored in the bundle (:meth:`Graph.save`); the texture
walk, the song planner, the player and the baselines read it (:meth:`Graph.from_bundle`).

How (motion graphs, Kovar et al. 2002, on video):

1. *Shortlist.* Each frame becomes a small descriptor: its 16 px grey picture and its two neighbours'
   (so a match also matches the motion), PCA-reduced to ``dims``. For every ``p``, the ``shortlist``
   nearest ``g`` to ``p + 1`` are found with blocked matrix products (never an N x N matrix in memory).
2. *Local minima, spread out.* Candidates within ``nms_s`` of a better one are dropped (one exit per
   local minimum of the cost along ``g``), and at most ``per_part`` per tenth of the clip are kept, so
   exits land all over the source instead of in the one stretch that looks most like everything.
3. *Seam cost*, measured on the kept candidates only (cost grows with N x k, not N^2): how far the cut
   moves the picture, in units of the motion around it — the mean absolute grey difference between
   the frames the cut joins (3-frame windows, 64 px: a pose *and* its motion), over the geometric mean
   of the source's own frame-to-frame change around both ends. 1 means "like one more frame of
   normal motion"; an interpolated seam of L frames spreads a cost of c over L + 1 steps, so it reads
   as motion about ``1 + c / (L + 1)`` times as fast as the picture around it.
4. *No dead ends, no traps.* The graph (exits plus the natural successor p -> p + 1) is pruned to its
   largest strongly connected part (``alive``): from any live frame every other live frame can be
   reached, and exits into anything else are dropped. A seam needs real frames on both sides, so no
   exit leaves from the last ``edge`` frames and none lands in the first ``edge``.

Units: frames and seconds as named; costs are dimensionless (see 3).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

GRAPH_SCHEMA = 1


@dataclass
class GraphConfig:
    """How the graph is built (plain data; stored in the bundle's manifest)."""

    exits: int = 12             # kept per frame: the best in each part, then the best others
    shortlist: int = 60         # nearest candidates per frame (an equal share from each part) before suppression
    measured: int = 24          # candidates per frame whose seam cost is measured exactly
    nms_s: float = 0.25         # one exit per this much source time around a local minimum
    parts: int = 10             # the clip is cut into this many parts ...
    per_part: int = 2           # ... and at most this many exits of a frame land in each
    min_jump_s: float = 1.0     # no cut lands closer than this to the natural successor (stutters, skips)
    edge: int = 3               # frames a seam needs on each side of a cut (a stream running off the clip holds its last frame)
    small: int = 16             # side of the grey pictures used for the shortlist
    dims: int = 48              # PCA dimensions of the shortlist descriptors
    motion_radius: int = 4      # frames each side over which the local motion is taken (median)
    seam_frames: int = 10       # frames a seam is spread over (for the predicted ratio in stats)


@dataclass
class Graph:
    """Exits of every frame. ``exits[p, i]`` is a frame (-1: none), ``cost[p, i]`` its seam cost
    (inf for none), sorted best first; ``alive[f]``: frame f is in the strongly connected part;
    ``motion[f]``: the source's frame-to-frame change around f (grey levels, 64 px)."""

    exits: np.ndarray
    cost: np.ndarray
    alive: np.ndarray
    motion: np.ndarray
    fps: float
    config: dict
    info: dict

    @property
    def n(self) -> int:
        return len(self.exits)

    def continues(self, p: int) -> bool:
        """Whether the walk may go on from p to p + 1 (the next frame exists and is live)."""
        return p + 1 < self.n and bool(self.alive[p + 1])

    def run_end(self) -> np.ndarray:
        """(n,) for every frame the last frame reached by playing on from it (where it must cut)."""
        n = self.n
        out = np.empty(n, np.int64)
        end = n - 1
        for f in range(n - 1, -1, -1):
            if not self.continues(f):
                end = f
            out[f] = end
        return out

    def landing_counts(self) -> np.ndarray:
        """(n,) how many exits land on each frame."""
        e = self.exits[self.exits >= 0]
        return np.bincount(e, minlength=self.n)

    # ---- bundle I/O
    def save(self, bw) -> None:
        bw.add_array("graph_exits", self.exits.astype(np.int32))
        bw.add_array("graph_cost", self.cost.astype(np.float32))
        bw.add_array("graph_alive", self.alive.astype(np.uint8))
        bw.add_array("graph_motion", self.motion.astype(np.float32))
        bw.manifest["graph"] = {"schema": GRAPH_SCHEMA, "config": self.config, **self.info}

    @classmethod
    def from_bundle(cls, bundle) -> "Graph":
        """The bundle's stored graph; built now (and not stored) for bundles fitted before it existed."""
        meta = bundle.manifest.get("graph")
        if meta and bundle.has("graph_exits"):
            return cls(np.asarray(bundle.array("graph_exits"), np.int64), np.asarray(bundle.array("graph_cost")),
                       np.asarray(bundle.array("graph_alive")).astype(bool), np.asarray(bundle.array("graph_motion")),
                       bundle.fps, meta.get("config", {}), {k: v for k, v in meta.items() if k != "config"})
        return build_graph(bundle.array("thumbs"), bundle.fps, progress=False)


# ------------------------------------------------------------------------------------------- pieces
def grey64(thumbs, block: int = 2048) -> np.ndarray:
    """(n, h, w) uint8 grey of every thumbnail (Rec. 601 luma, as the metrics), read in blocks."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    out = np.empty(tuple(thumbs.shape[:3]), np.uint8)
    for a in range(0, len(thumbs), block):
        out[a:a + block] = np.clip(np.rint(np.asarray(thumbs[a:a + block], np.float32) @ w), 0, 255)
    return out


def frame_motion(grey: np.ndarray, radius: int = 4, block: int = 4096) -> np.ndarray:
    """(n,) the source's own change around each frame: the median, over ``radius`` frames each side,
    of the mean absolute grey difference between consecutive frames, floored at the clip's 10th
    percentile (and 0.25 levels) so a still shot's sensor noise does not make every cut look huge."""
    n = len(grey)
    c = np.empty(max(n - 1, 0), np.float32)
    for a in range(0, n - 1, block):
        b = min(n - 1, a + block)
        c[a:b] = np.abs(grey[a + 1:b + 1].astype(np.int16) - grey[a:b]).mean(axis=(1, 2))
    if n < 2:
        return np.ones(n, np.float32)
    into = np.concatenate([c[:1], c])                       # change into frame f (frame 0: out of it)
    pad = np.pad(into, radius, mode="edge")
    m = np.median(np.lib.stride_tricks.sliding_window_view(pad, 2 * radius + 1), axis=1)
    floor = max(float(np.percentile(c, 10)), 0.25)
    return np.maximum(m, floor).astype(np.float32)


def descriptors(grey: np.ndarray, small: int = 16, dims: int = 48, seed: int = 0, block: int = 4096) -> np.ndarray:
    """(n, dims) float32: each frame's ``small`` px grey picture with its two neighbours', PCA-reduced.
    Squared distances approximate those of the 3-frame pictures (a pose and its motion)."""
    import cv2
    n = len(grey)
    s = np.empty((n, small * small), np.float32)
    for i in range(n):
        s[i] = cv2.resize(grey[i], (small, small), interpolation=cv2.INTER_AREA).ravel()
    s /= 255.0
    mean = s.mean(axis=0)
    idx = lambda f: np.clip(f, 0, n - 1)  # noqa: E731
    # PCA of the stacked (n, 3 * small^2) pictures without stacking them all: randomised range finder
    # on X = [s[f-1], s[f], s[f+1]] - mean, products taken in blocks.
    d3 = 3 * small * small
    rng = np.random.default_rng(seed)
    k = min(dims + 16, d3, n)

    def stacked(a, b):
        f = np.arange(a, b)
        return np.hstack([s[idx(f - 1)] - mean, s[f] - mean, s[idx(f + 1)] - mean])

    if n <= 4096:                                          # small clip: the exact decomposition is cheap
        _, _, vt = np.linalg.svd(stacked(0, n), full_matrices=False)
    else:
        omega = rng.standard_normal((d3, k)).astype(np.float32)
        y = np.vstack([stacked(a, min(n, a + block)) @ omega for a in range(0, n, block)])
        for _ in range(2):                                 # power iterations sharpen the spectrum
            y, _ = np.linalg.qr(y)
            z = sum(stacked(a, min(n, a + block)).T @ y[a:a + block] for a in range(0, n, block))
            y = np.vstack([stacked(a, min(n, a + block)) @ z for a in range(0, n, block)])
        y, _ = np.linalg.qr(y)
        bt = sum(y[a:a + block].T @ stacked(a, min(n, a + block)) for a in range(0, n, block))   # (k, d3)
        _, _, vt = np.linalg.svd(bt, full_matrices=False)
    basis = vt[:dims].T.astype(np.float32)
    out = np.zeros((n, dims), np.float32)
    for a in range(0, n, block):
        out[a:a + block, :basis.shape[1]] = stacked(a, min(n, a + block)) @ basis
    return out


def window_change(grey: np.ndarray, p: np.ndarray, g: np.ndarray, span=(-1, 0, 1)) -> np.ndarray:
    """Mean absolute grey difference (levels) between the frames a cut p -> g joins, over a window:
    frame ``p + 1 + k`` (what would have been shown) against ``g + k`` (what is shown), k in ``span``.
    ``p`` (B,), ``g`` (B, M) -> (B, M)."""
    n = len(grey)
    out = np.zeros(g.shape, np.float32)
    for k in span:
        a = grey[np.clip(p + 1 + k, 0, n - 1)].astype(np.int16)              # (B, h, w)
        b = grey[np.clip(g + k, 0, n - 1)]                                   # (B, M, h, w)
        out += np.abs(b - a[:, None]).mean(axis=(2, 3), dtype=np.float32)
    return out / len(span)


def seam_cost(grey: np.ndarray, motion: np.ndarray, p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """(B, M) cost of the cuts p[i] -> g[i, j] (see the module docstring, 3)."""
    n = len(grey)
    d = window_change(grey, p, g)
    ma = motion[np.minimum(p + 1, n - 1)][:, None]
    mb = motion[g]
    return d / np.sqrt(ma * mb)


def _per_part_nearest(d: np.ndarray, parts: int, q: int) -> np.ndarray:
    """(B, <= parts * q) column indices: the ``q`` smallest entries of each row of ``d`` within each of
    ``parts`` equal column ranges, so every part of the clip offers candidates (the nearest frames
    overall tend to crowd into the one stretch that looks most like everything)."""
    n = d.shape[1]
    edges = np.linspace(0, n, min(parts, n) + 1).astype(np.int64)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        k = min(q, b - a)
        if k <= 0:
            continue
        sub = d[:, a:b]
        top = np.argpartition(sub, k - 1, axis=1)[:, :k] if k < b - a else np.tile(np.arange(b - a), (len(d), 1))
        out.append(top + a)
    return np.concatenate(out, axis=1)


def _suppress(cand: np.ndarray, radius: int) -> np.ndarray:
    """(B, M) bool: keep a candidate (columns sorted best first) unless a better kept one lies within
    ``radius`` frames (one candidate per local minimum)."""
    keep = np.ones(cand.shape, bool)
    for j in range(1, cand.shape[1]):
        close = np.abs(cand[:, :j] - cand[:, j:j + 1]) <= radius
        keep[:, j] = ~(close & keep[:, :j]).any(axis=1)
    return keep


def _spread(cand: np.ndarray, ok: np.ndarray, n: int, parts: int, per_part: int, m: int) -> np.ndarray:
    """(B, m) the first ``m`` candidates of each row (in order) with at most ``per_part`` in each of
    ``parts`` equal parts of the clip; -1 where a row has fewer."""
    out = np.full((len(cand), m), -1, np.int64)
    part = cand * parts // max(n, 1)
    for i in range(len(cand)):
        cnt = np.zeros(parts, np.int64)
        c = 0
        for x, pt, good in zip(cand[i], part[i], ok[i]):
            if good and cnt[pt] < per_part:
                cnt[pt] += 1
                out[i, c] = x
                c += 1
                if c == m:
                    break
    return out


def _select(cand: np.ndarray, c: np.ndarray, n: int, parts: int, per_part: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's kept exits (B, k) and costs: first the cheapest candidate in every part of the clip
    that has one (so every stretch of the source stays reachable from everywhere, however different
    it looks; the walk weighs the cost), then the cheapest others, at most ``per_part`` per part."""
    B = len(cand)
    out, oc = np.full((B, k), -1, np.int64), np.full((B, k), np.inf, np.float32)
    order = np.argsort(c, axis=1, kind="stable")
    for i in range(B):
        cnt = np.zeros(parts, np.int64)
        chosen: list[int] = []
        for second in (False, True):
            for j in order[i]:
                x = cand[i, j]
                if x < 0 or not np.isfinite(c[i, j]) or len(chosen) == k or j in chosen:
                    continue
                pt = x * parts // max(n, 1)
                if (cnt[pt] == 0) if not second else (cnt[pt] < per_part):
                    cnt[pt] += 1
                    chosen.append(j)
        chosen.sort(key=lambda j: c[i, j])
        out[i, :len(chosen)] = cand[i, chosen]
        oc[i, :len(chosen)] = c[i, chosen]
    return out, oc


def largest_core(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n,) bool: the largest strongly connected part of the directed graph with edges src[i] -> dst[i]:
    from every state in it every other one can be reached, and a walk kept inside never dead-ends."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components
    a = csr_matrix((np.ones(len(src), np.int8), (np.asarray(src), np.asarray(dst))), shape=(n, n))
    _, lab = connected_components(a, directed=True, connection="strong")
    return lab == np.bincount(lab).argmax()


def strongly_connected(exits: np.ndarray) -> np.ndarray:
    """(n,) bool: the largest strongly connected part of the graph with edges p -> p + 1 and p -> exits."""
    n = len(exits)
    ok = exits >= 0
    return largest_core(n, np.concatenate([np.arange(n - 1), np.nonzero(ok)[0]]),
                        np.concatenate([np.arange(1, n), exits[ok]]))


# -------------------------------------------------------------------------------------------- build
def build_graph(thumbs, fps: float, config: GraphConfig | None = None, progress: bool = True,
                block: int = 256) -> Graph:
    """The transition graph of a clip from its thumbnails ((n, 64, 64, 3) uint8, may be memory-mapped)."""
    from tqdm import tqdm
    cfg = config or GraphConfig()
    t0 = time.perf_counter()
    grey = grey64(thumbs)
    n = len(grey)
    K = cfg.exits
    motion = frame_motion(grey, cfg.motion_radius)
    exits = np.full((n, K), -1, np.int64)
    cost = np.full((n, K), np.inf, np.float32)
    if n < 2:
        return Graph(exits, cost, np.ones(n, bool), motion, float(fps), asdict(cfg), {"seconds": 0.0})
    x = descriptors(grey, cfg.small, cfg.dims)
    sq = np.einsum("nd,nd->n", x, x)
    mj = max(1, int(round(cfg.min_jump_s * fps)))
    radius = max(1, int(round(cfg.nms_s * fps)))
    edge = min(cfg.edge, max(0, n // 4))
    frames = np.arange(n)
    M = max(1, min(cfg.shortlist, n - 1))
    for a in tqdm(range(0, n, block), desc="graph", unit="block", disable=None if progress else True, leave=False):
        rows = frames[a:a + block]
        # p -> g should look like p -> p + 1: compare g with p + 1 (the last frame, which has no
        # successor, with g - 1: g then follows it).
        src = np.minimum(rows + 1, n - 1)
        d = sq[src][:, None] + sq[None] - 2.0 * (x[src] @ x.T)
        last = rows == n - 1
        if last.any():
            d[last] = np.concatenate([[np.inf], d[last][0, :-1]])[None]
        d[np.abs(frames[None] - (rows[:, None] + 1)) < mj] = np.inf
        d[:, :edge] = np.inf
        cand = _per_part_nearest(d, cfg.parts, max(1, M // cfg.parts))
        dc = np.take_along_axis(d, cand, axis=1)
        order = np.argsort(dc, axis=1)
        cand, dc = np.take_along_axis(cand, order, axis=1), np.take_along_axis(dc, order, axis=1)
        keep = _suppress(cand, radius) & np.isfinite(dc)
        sel = _spread(cand, keep, n, cfg.parts, cfg.per_part, cfg.measured)
        valid = sel >= 0
        c = seam_cost(grey, motion, rows, np.where(valid, sel, 0))
        c[~valid] = np.inf
        exits[rows], cost[rows] = _select(sel, c, n, cfg.parts, cfg.per_part, K)
    if edge:
        exits[n - edge:] = -1
        cost[n - edge:] = np.inf
    alive = strongly_connected(exits)
    dead = (exits >= 0) & ~alive[np.maximum(exits, 0)]
    exits[dead], cost[dead] = -1, np.inf
    exits[~alive], cost[~alive] = -1, np.inf
    order = np.argsort(cost, axis=1, kind="stable")
    exits, cost = np.take_along_axis(exits, order, axis=1), np.take_along_axis(cost, order, axis=1)
    best = cost[:, 0][np.isfinite(cost[:, 0])]
    info = {"seconds": round(time.perf_counter() - t0, 3), "alive": float(alive.mean()),
            "exits_per_frame": float((exits >= 0).sum(axis=1)[alive].mean()) if alive.any() else 0.0,
            "best_cost_p50": float(np.median(best)) if len(best) else None,
            "best_cost_p90": float(np.percentile(best, 90)) if len(best) else None}
    return Graph(exits, cost, alive, motion, float(fps), asdict(cfg), info)
