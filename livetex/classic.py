"""Classic video textures (Schödl, Szeliski, Salesin & Essa, SIGGRAPH 2000) and the paper's variants of it.

The algorithm, as implemented here (numpy only):

1. Features. ``classic`` / ``classic+`` use every frame's thumbnail, 2x2 area-averaged to 32x32 and
   turned to luma (Rec. 601): 1,024 numbers per frame. Why: the bundle's 64x64 thumbs would make the
   Gram products 4x slower for no visible gain, colour rarely separates frames that luma does not, and
   the metrics module judges seams on small grey frames too. ``classic++`` stacks the 16x16 luma of every
   frame of a segment (dynamics inside the window); ``classic-deep`` uses the fitted model's segment
   embeddings. Features are scaled so that a distance is a root-mean-square difference in [0, 1].
2. Distances ``D_ij = ||x_i - x_j||``, computed in row blocks from Gram products (never a full float32
   F x F matrix), then the diagonal binomial filter ``D'_ij = sum_k w_k D_{i+k, j+k}`` (taps 1,3,3,1 on
   k = -2..1, or 1,1 on k = -1..0) so that a transition must also match the neighbours' motion;
   weights are renormalised where the taps fall off the ends of the video.
3. Transition cost ``C_ij = D'_{i+1, j}^p`` (frame i+1 should look like j, so that jumping i -> j looks like
   playing on), stored as float16 or, for long videos, uint8 (255 = forbidden). The last frame has no
   frame i+1: its cost uses ``D'_{F-1, j-1}`` (frame F-1 looks like j-1, so j "follows" it).
   Jumps to within ``STUTTER_S`` of the natural successor (tiny skips, stutters, repeats) are forbidden.
4. Q-learning future cost (the paper's "anticipated future cost", section 3.3):
   ``F_ij = C_ij + alpha * m_{next(j)}``, ``m_i = min_j F_ij``, iterated to convergence. A stretch of the
   video that leads into a dead end (the end of the clip, unlike anything before) gets a high m, so
   the walk leaves it early instead of reaching the last frames and bouncing there forever.
   The iteration is block Gauss-Seidel in reverse frame order: one sweep carries a value down the whole
   natural chain i -> i+1, so a few tens of sweeps converge even with alpha = 0.997.
5. Pruning: only local minima of ``F_i.`` along j (within ``STUTTER_S``) survive, at most ``TOP_K`` per
   row, plus the natural successor. ``P_ij ∝ exp(-F_ij / sigma)``, entries below ``threshold * max``
   dropped. sigma = temperature x the mean non-zero transition cost; with ``jumps_per_min`` (or by
   default, at the contrastive sampler's default rate) the temperature is calibrated so that the walk's
   long-run jump rate, from its stationary distribution (:func:`stationary`), is that many per minute.
6. The walk appends ``hop`` frames per step: 1 for ``classic``, the segment stride for ``classic+``
   (the Q-learning then looks ``hop`` frames ahead too). ``classic++`` and ``classic-deep`` run the
   same algorithm on the segment graph and append the last stride of the chosen segment.

Memory: the cost matrix is F^2 bytes x (2 for float16 | 1 for uint8). A 10-minute 30 fps video
(18,000 frames) takes 648 MB in float16. The limit is ``MAX_MATRIX_GB`` (2 GiB by default, env
``LIVETEX_CLASSIC_MAX_GB``): float16 up to 32,768 frames (18 min at 30 fps), uint8 up to 46,340
frames (25.7 min at 30 fps); longer videos get a clear error pointing at ``classic++`` or ``--end``.
Numbers for this machine: ``tools/bench_classic.py``.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .errors import LivetexError
from .sampler import start_limit
from .timeline import Timeline, jumps_from_frames
from .walks import WalkRequest, n_steps, register, segment_timeline

DEFAULT_JUMPS_PER_MIN = 15.0     # the contrastive sampler's default, so methods compare at equal rates
DEFAULT_THRESHOLD = 0.1
EXPONENT_P = 0.7                 # C = D'^p: p < 1 favours a few bigger jumps over many small ones
DISCOUNT = 0.997                 # alpha of the Q-learning future cost
TAPS = {2: (1.0, 1.0), 4: (1.0, 3.0, 3.0, 1.0)}   # binomial filters on k = -m .. m-1
DEFAULT_TAPS = 4
STUTTER_S = 0.2                  # jumps landing this close to the natural successor are not jumps but stutters
TOP_K = 16                       # candidate jumps kept per state (after local-minimum suppression)
MAX_MATRIX_GB = float(os.environ.get("LIVETEX_CLASSIC_MAX_GB", "2"))
BLOCK_BYTES = 96 << 20           # float32 working set of a row block (all its temporaries together)
FORBIDDEN_U8 = 255


def _progress(iterable, **kw):
    from tqdm import tqdm
    return tqdm(iterable, disable=None, leave=False, **kw)


# ------------------------------------------------------------------------------------------ features
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def frame_features(thumbs: np.ndarray, size: int = 32, chunk: int = 512) -> np.ndarray:
    """Per-frame features for pixel distances: luma at ``size`` x ``size``, shape (n, size*size) float32.

    Scaled so that the L2 distance between two rows is the RMS luma difference in [0, 1] (1 = black vs white).
    Thumbs are read in chunks (they may be a memory map of a long video).
    """
    n, h, w, _ = thumbs.shape
    if h % size or w % size:
        raise ValueError(f"thumbs {h}x{w} do not pool to {size}x{size}")
    fy, fx = h // size, w // size
    out = np.empty((n, size * size), np.float32)
    scale = 1.0 / (255.0 * math.sqrt(size * size))
    for a in range(0, n, chunk):
        t = np.asarray(thumbs[a:a + chunk], np.float32) @ _LUMA                  # (c, h, w)
        t = t.reshape(len(t), size, fy, size, fx).mean(axis=(2, 4))
        out[a:a + len(t)] = t.reshape(len(t), -1) * scale
    return out


def segment_features(thumbs: np.ndarray, seg, size: int = 16) -> np.ndarray:
    """Per-segment pixel features: the ``size`` x ``size`` luma of every frame of the window, stacked.

    Shape (N, window_frames * size * size); L2 distance = RMS difference over the whole window, in [0, 1].
    """
    f = frame_features(thumbs, size) * math.sqrt(size * size)      # per-frame RMS scale undone
    W = seg.window_frames
    idx = seg.starts[:, None] + np.arange(W)[None, :]
    return (f[idx].reshape(seg.count, -1) / math.sqrt(W * size * size)).astype(np.float32)


def embedding_features(emb: np.ndarray) -> np.ndarray:
    """Learned embeddings as classic features: L2-normalised, halved so distances lie in [0, 1]."""
    e = np.asarray(emb, np.float32)
    return 0.5 * e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-8)


# --------------------------------------------------------------------------------------- cost matrix
def matrix_bytes(n: int, dtype) -> int:
    return int(n) * int(n) * np.dtype(dtype).itemsize


def choose_dtype(n: int, max_gb: float | None = None, what: str = "frames", fps: float | None = None,
                 dtype: str = "auto"):
    """float16 when the n x n matrix fits the budget, else uint8, else a LivetexError saying where the limit is."""
    max_b = (MAX_MATRIX_GB if max_gb is None else max_gb) * (1 << 30)
    if dtype != "auto":
        dt = np.dtype(dtype)
        if matrix_bytes(n, dt) <= max_b:
            return dt
    else:
        for dt in (np.dtype(np.float16), np.dtype(np.uint8)):
            if matrix_bytes(n, dt) <= max_b:
                return dt
    lim = int(math.isqrt(int(max_b)))
    when = f" ({lim / fps / 60:.1f} min at {fps:g} fps)" if fps else ""
    raise LivetexError(
        f"the classic method needs a {n} x {n} cost matrix ({matrix_bytes(n, np.uint8) / 1e9:.1f} GB even as uint8); "
        f"the limit is {lim} {what}{when} for {max_b / (1 << 30):g} GiB (set LIVETEX_CLASSIC_MAX_GB to raise it). "
        "Use --method classic++ (segment graph, 1/36 of the memory) or fit a shorter stretch with --start/--end")


def _dist_rows(X: np.ndarray, sq: np.ndarray, a: int, b: int) -> np.ndarray:
    """Euclidean distances of rows [a, b) to every row, float32 (b-a, n); exact zeros on the diagonal."""
    d2 = sq[a:b, None] + sq[None, :] - 2.0 * (X[a:b] @ X.T)
    np.maximum(d2, 0.0, out=d2)
    d = np.sqrt(d2, out=d2)
    r = np.arange(a, b)
    d[r - a, r] = 0.0
    return d


def _filtered_rows(X, sq, lo: int, hi: int, taps) -> np.ndarray:
    """Rows [lo, hi) of the diagonally filtered distances D'_ij = sum_k w_k D_{i+k, j+k} / sum of valid w."""
    n = len(X)
    m = len(taps) // 2
    r0, r1 = max(lo - m, 0), min(hi + m - 1, n)
    D = _dist_rows(X, sq, r0, r1)
    if len(taps) == 1:
        return D[lo - r0:hi - r0]
    acc = np.zeros((hi - lo, n), np.float32)
    wsum = np.zeros((hi - lo, n), np.float32)
    for k, w in zip(range(-m, m), taps):
        i0, i1 = max(lo, -k), min(hi, n - k)
        j0, j1 = max(0, -k), min(n, n - k)
        if i0 >= i1 or j0 >= j1:
            continue
        acc[i0 - lo:i1 - lo, j0:j1] += w * D[i0 + k - r0:i1 + k - r0, j0 + k:j1 + k]
        wsum[i0 - lo:i1 - lo, j0:j1] += w
    return acc / np.maximum(wsum, 1e-12)


class CostMatrix:
    """The transition costs ``C_ij = D'_{i+1,j}^p`` of n states, stored (n, n) in float16 or uint8.

    ``rows(a, b)`` gives float32 rows with ``inf`` for forbidden transitions (stutters).
    ``sigma_base`` is the mean non-zero finite cost: the unit of sigma.
    """

    def __init__(self, X: np.ndarray, taps=TAPS[DEFAULT_TAPS], p: float = EXPONENT_P, stutter: int = 1,
                 dtype=np.float16, progress: bool = True, desc: str = "classic costs"):
        X = np.ascontiguousarray(X, np.float32)
        X = X - X.mean(axis=0, keepdims=True)        # smaller norms: less cancellation in the Gram trick
        n = len(X)
        self.n, self.p, self.stutter, self.taps = n, float(p), int(stutter), tuple(taps)
        self.dtype = np.dtype(dtype)
        self.data = np.empty((n, n), self.dtype)
        sq = np.einsum("ij,ij->i", X, X)
        bs = max(8, min(n, BLOCK_BYTES // (4 * 6 * max(n, 1))))     # ~6 live (bs, n) float32 arrays
        total, count = 0.0, 0
        blocks = range(0, n, bs)
        for a in (_progress(blocks, desc=desc, unit="block") if progress else blocks):
            b = min(a + bs, n)
            hi = min(b + 1, n)
            rows = _filtered_rows(X, sq, a + 1, hi, taps) if a + 1 < hi else np.empty((0, n), np.float32)
            if b == n:       # the last state: frame F-1 looks like j-1, so j would follow it
                last = _filtered_rows(X, sq, n - 1, n, taps)[0]
                rows = np.vstack([rows, np.concatenate([last[:1], last[:-1]])[None]])
            c = np.power(rows, self.p, out=rows)
            self._forbid(c, a)
            fin = np.isfinite(c)
            nz = fin & (c > 0)
            total += float(c[nz].sum(dtype=np.float64))
            count += int(nz.sum())
            self._store(a, b, c)
        self.sigma_base = total / count if count else 1.0

    def _forbid(self, c: np.ndarray, a: int) -> None:
        """Forbid jumps landing within ``stutter`` of the natural successor (i+1), the successor itself excluded."""
        r = self.stutter
        if r <= 0:
            return
        n = self.n
        for off in range(-r, r + 1):
            if off == 0:
                continue
            i = np.arange(a, a + len(c))
            j = i + 1 + off
            ok = (j >= 0) & (j < n)
            c[i[ok] - a, j[ok]] = np.inf

    def _store(self, a: int, b: int, c: np.ndarray) -> None:
        if self.dtype == np.uint8:
            q = np.where(np.isfinite(c), np.rint(np.clip(c, 0.0, 1.0) * (FORBIDDEN_U8 - 1)), FORBIDDEN_U8)
            self.data[a:b] = q.astype(np.uint8)
        else:
            self.data[a:b] = c

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def rows(self, a: int, b: int) -> np.ndarray:
        if self.dtype == np.uint8:
            lut = np.arange(256, dtype=np.float32) / (FORBIDDEN_U8 - 1)
            lut[FORBIDDEN_U8] = np.inf
            return lut[self.data[a:b]]
        return self.data[a:b].astype(np.float32)

    def natural(self) -> np.ndarray:
        """Cost of i -> i+1 for every i (inf for the last state), float64."""
        n = self.n
        out = np.full(n, np.inf)
        if n > 1:
            i = np.arange(n - 1)
            out[:-1] = self.rows_at(i, i + 1)
        return out

    def rows_at(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        v = self.data[i, j]
        if self.dtype == np.uint8:
            return np.where(v == FORBIDDEN_U8, np.inf, v / (FORBIDDEN_U8 - 1)).astype(np.float64)
        return v.astype(np.float64)

    def blocks(self):
        bs = max(8, min(self.n, BLOCK_BYTES // (4 * 5 * max(self.n, 1))))   # ~5 live (bs, n) float32 arrays
        return [(a, min(a + bs, self.n)) for a in range(0, self.n, bs)]


# ------------------------------------------------------------------------------- future cost (Q-learning)
def _next_values(m: np.ndarray, hop: int, discount: float = 1.0) -> np.ndarray:
    """Discounted value of landing on j, ``discount * m[j + hop - 1]``, float32; inf where the hop would
    run past the end (such a jump is impossible, whatever the discount)."""
    n = len(m)
    v = np.full(n, np.inf, np.float32)
    if hop <= n:
        v[:n - hop + 1] = discount * m[hop - 1:]
    return v


def future_cost(cost: CostMatrix, discount: float = DISCOUNT, hop: int = 1, tol: float = 1e-4,
                max_sweeps: int = 300, progress: bool = True) -> tuple[np.ndarray, int]:
    """Solve ``m_i = min_j (C_ij + discount * m_{j+hop-1})`` by block Gauss-Seidel value iteration.

    Returns (m, sweeps). ``tol`` is relative to ``cost.sigma_base``. With discount 0 this is just the
    cheapest immediate cost (no look-ahead: the classic algorithm without Q-learning).
    """
    n = cost.n
    m = np.zeros(n)
    nat = cost.natural()
    blocks = cost.blocks()
    if discount <= 0:
        nxt = _next_values(m, hop, 0.0)
        for a, b in blocks:
            m[a:b] = (cost.rows(a, b) + nxt[None, :]).min(axis=1)
        return m, 1
    bar = _progress(range(max_sweeps), desc="classic Q-learning", unit="sweep") if progress else range(max_sweeps)
    sweeps = 0
    for sweeps in bar:
        old = m.copy()
        for a, b in reversed(blocks):
            nxt = _next_values(m, hop, discount)
            rows = cost.rows(a, b)
            i = np.arange(a, min(b, n - 1))
            rows[i - a, i + 1] = np.inf      # the natural successor is taken by the chain below, with fresh values
            rows += nxt[None, :]
            r = rows.min(axis=1)
            r = r.astype(np.float64)
            # Sweep the natural chain inside the block from its end, so a value travels down the whole
            # video in one sweep (the i -> i+1 edges dominate every good policy).
            for i in range(b - 1, a - 1, -1):
                k = i + hop
                if k < n:
                    c = nat[i] + discount * m[k]
                    if c < r[i - a]:
                        r[i - a] = c
                m[i] = r[i - a]
        with np.errstate(invalid="ignore"):
            change = np.abs(m - old)
        change = change[np.isfinite(change)]       # states with no way out at all stay at inf
        if not len(change) or change.max() <= tol * cost.sigma_base:
            break
    if hasattr(bar, "close"):
        bar.close()
    return m, sweeps + 1


# ------------------------------------------------------------------------------------ candidate jumps
@dataclass
class Candidates:
    """Per state i: column 0 is the natural successor i+1, the rest the best jumps. inf cost = unused."""

    to: np.ndarray       # (n, K+1) int64 target state
    cost: np.ndarray     # (n, K+1) float64 future cost F_ij
    hop: int

    @property
    def n(self) -> int:
        return len(self.to)


def candidates(cost: CostMatrix, m: np.ndarray, discount: float, hop: int = 1, top_k: int = TOP_K,
               radius: int = 1) -> Candidates:
    """Keep, for every state, the natural successor and up to ``top_k`` jumps that are local minima of F_i."""
    from scipy.ndimage import minimum_filter1d
    n = cost.n
    K = min(top_k, max(n - 1, 1))
    to = np.zeros((n, K + 1), np.int64)
    fc = np.full((n, K + 1), np.inf)
    nxt = _next_values(m, hop, discount)
    for a, b in cost.blocks():
        Fb = cost.rows(a, b)
        Fb += nxt[None, :]
        i = np.arange(a, b)
        has_nat = i + 1 < n
        fc[a:b, 0] = np.where(has_nat, Fb[i - a, np.minimum(i + 1, n - 1)], np.inf)
        to[a:b, 0] = np.minimum(i + 1, n - 1)
        Fb[i[has_nat] - a, i[has_nat] + 1] = np.inf
        if radius > 0:
            fin = np.where(np.isfinite(Fb), Fb, np.float32(3e38))
            is_min = fin <= minimum_filter1d(fin, size=2 * radius + 1, axis=1, mode="nearest")
            Fb = np.where(is_min, Fb, np.inf)
        part = np.argpartition(Fb, K - 1, axis=1)[:, :K] if K < n else np.argsort(Fb, axis=1)[:, :K]
        to[a:b, 1:] = part
        fc[a:b, 1:] = np.take_along_axis(Fb, part, axis=1)
    return Candidates(to, fc, hop)


def probabilities(cand: Candidates, sigma: float, threshold: float) -> np.ndarray:
    """``P ∝ exp(-F/sigma)`` per row over the candidates, entries below ``threshold * max`` set to 0."""
    c = cand.cost
    best = np.min(c, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(-(c - best) / max(sigma, 1e-12))
    p = np.where(np.isfinite(c), p, 0.0)
    p = np.where(p >= threshold * p.max(axis=1, keepdims=True), p, 0.0)
    s = p.sum(axis=1, keepdims=True)
    dead = s[:, 0] <= 0
    if dead.any():   # no finite transition at all (a 1-state graph): stay
        p[dead] = 0.0
        p[dead, 0] = 1.0
        s[dead] = 1.0
    return p / s


def stationary(cand: Candidates, prob: np.ndarray, iters: int = 300, tol: float = 1e-5,
               q0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Long-run share of decision steps spent in each state, shape (n,), summing to 1.

    A walk is runs along the natural chain (i -> i + hop) separated by jumps. Given where jumps land
    (q), the expected visits of a run are a one-pass recurrence ``occ_i = q_i + p_nat(i - hop) occ_{i-hop}``,
    and the next landing distribution is where those visits jump to. Iterating q (damped, so periodic
    jump patterns converge) mixes in tens of iterations because jumps are long-range, where the full
    chain, which mostly steps forward one frame at a time, would need a whole pass per iteration.
    Returns (pi, q): q (where jumps land) warm-starts the next call with a nearby sigma.
    """
    n, hop = cand.n, cand.hop
    pn = prob[:, 0].tolist()
    land = np.minimum(cand.to[:, 1:] + hop - 1, n - 1).ravel()
    pj = prob[:, 1:]

    def occupation(q):
        occ = [0.0] * n
        ql = q.tolist()
        for i in range(n):
            occ[i] = ql[i] + (occ[i - hop] * pn[i - hop] if i >= hop else 0.0)
        return np.asarray(occ)

    q = np.full(n, 1.0 / n) if q0 is None else q0
    for _ in range(iters):
        occ = occupation(q)
        new = np.bincount(land, weights=(occ[:, None] * pj).ravel(), minlength=n)
        s = new.sum()
        if s <= 0:          # no jumps at all
            break
        new = 0.5 * q + 0.5 * new / s
        done = np.abs(new - q).sum() < tol
        q = new
        if done:
            break
    occ = occupation(q)
    return occ / occ.sum(), q


def jump_rate(cand: Candidates, prob: np.ndarray, steps_per_min: float, state: dict | None = None) -> float:
    """Long-run jumps per minute of the walk: the stationary probability of leaving the natural successor.

    Not the plain mean over states: a short clip's last frames jump almost surely but are rarely
    visited, and a walk that is good at avoiding bad stretches visits them even less."""
    state = {} if state is None else state
    pi, state["q"] = stationary(cand, prob, q0=state.get("q"))
    return float(np.dot(pi, 1.0 - prob[:, 0])) * steps_per_min


def calibrate_sigma(cand: Candidates, base: float, jumps_per_min: float, threshold: float,
                    steps_per_min: float, lo: float = 1e-3, hi: float = 1e3, iters: int = 12) -> float:
    """The temperature t (sigma = t * base) whose jump rate is ``jumps_per_min`` (bisection on log t)."""
    state: dict = {}
    f = lambda t: jump_rate(cand, probabilities(cand, t * base, threshold), steps_per_min, state)  # noqa: E731
    if f(hi) < jumps_per_min:
        return hi
    if f(lo) > jumps_per_min:
        return lo
    a, b = math.log(lo), math.log(hi)
    for _ in range(iters):
        mid = 0.5 * (a + b)
        if f(math.exp(mid)) < jumps_per_min:
            a = mid
        else:
            b = mid
    return math.exp(0.5 * (a + b))


# ----------------------------------------------------------------------------------------- the model
@dataclass
class ClassicModel:
    """A fitted classic texture on n states: the chain's candidates and probabilities at the chosen sigma."""

    cand: Candidates
    prob: np.ndarray
    params: dict
    core: np.ndarray | None = None     # (n,) bool: states the walk may stay in (keep_to_core)

    def walk(self, start: int, n_steps: int, rng: np.random.Generator) -> list[int]:
        """Targets chosen at each step (the first is ``start``). After choosing j the walk shows
        j .. j+hop-1 and decides again from state j+hop-1."""
        cum = np.cumsum(self.prob, axis=1)
        cum[:, -1] = np.inf
        u = rng.random(max(n_steps - 1, 0))
        to, hop, n = self.cand.to, self.cand.hop, self.cand.n
        out = [int(start)]
        i = int(start)
        for x in u:
            k = int(np.searchsorted(cum[i], x, side="right"))
            j = int(to[i, k])
            out.append(j)
            i = min(j + hop - 1, n - 1)
        return out


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 2


def _cached_costs(key, build):
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    c = build()
    _CACHE[key] = c
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return c


def _bundle_key(b) -> tuple:
    return (b.path, b.manifest.get("created"), b.manifest["source"].get("sha256"))


_MODELS: OrderedDict = OrderedDict()


def fit_classic(cost: CostMatrix, req: WalkRequest, hop: int, steps_per_min: float, radius: int) -> ClassicModel:
    """Q-learning, pruning and sigma for a request; returns the model with the settings used.

    Models are cached per (cost matrix, settings), so renders with several seeds fit once."""
    ex = req.extra or {}
    discount = float(ex.get("discount", DISCOUNT))
    threshold = DEFAULT_THRESHOLD if req.threshold is None else float(req.threshold)
    key = (id(cost), hop, radius, discount, threshold, req.temperature, req.jumps_per_min, ex.get("top_k"))
    hit = _MODELS.get(key)
    if hit is not None and hit[0] is cost:
        _MODELS.move_to_end(key)
        return hit[1]
    model = _fit_classic(cost, hop, steps_per_min, radius, discount, threshold, req.temperature,
                         req.jumps_per_min, int(ex.get("top_k", TOP_K)))
    _MODELS[key] = (cost, model)
    while len(_MODELS) > 8:
        _MODELS.popitem(last=False)
    return model


def _fit_classic(cost, hop, steps_per_min, radius, discount, threshold, temperature, jumps_per_min, top_k):
    m, sweeps = future_cost(cost, discount, hop)
    cand = candidates(cost, m, discount, hop, top_k, radius)
    if temperature is not None and jumps_per_min is None:
        temp, target = float(temperature), None
    else:
        target = float(jumps_per_min or DEFAULT_JUMPS_PER_MIN)
        temp = calibrate_sigma(cand, cost.sigma_base, target, threshold, steps_per_min)
    sigma = temp * cost.sigma_base
    prob, core = keep_to_core(cand, probabilities(cand, sigma, threshold))
    params = {"temperature": temp, "sigma": sigma, "sigma_base": cost.sigma_base, "threshold": threshold,
              "target_jumps_per_min": target, "p": cost.p, "discount": discount, "taps": list(cost.taps),
              "q_sweeps": sweeps, "hop": hop, "matrix_dtype": str(cost.dtype), "states": cost.n,
              "expected_jumps_per_min": jump_rate(cand, prob, steps_per_min)}
    return ClassicModel(cand, prob, params, core)


def keep_to_core(cand: Candidates, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Restrict the walk to the largest strongly connected part of its transitions (as the texture
    walk's graph is, livetex.graph.largest_core): transitions into states from which the walk could
    never come back (a stretch that only leads to the clip's end) are dropped and the rows
    renormalised, so no walk gets trapped. Returns (probabilities, (n,) bool core)."""
    from .graph import largest_core
    n, hop = cand.n, cand.hop
    land = np.minimum(cand.to + hop - 1, n - 1)          # the state a transition leaves the walk in
    live = prob > 0
    core = largest_core(n, np.nonzero(live)[0], land[live])
    p = np.where(core[land], prob, 0.0)
    s = p.sum(axis=1, keepdims=True)
    p = np.where(s > 0, p / np.where(s > 0, s, 1.0), prob)   # outside the core rows stay as they were
    return p, core


def _taps(req: WalkRequest):
    t = int((req.extra or {}).get("taps", DEFAULT_TAPS))
    if t not in TAPS:
        raise LivetexError(f"classic filter taps must be one of {sorted(TAPS)}, got {t}")
    return TAPS[t]


# ----------------------------------------------------------------------------- frame-level methods
def frame_costs(req: WalkRequest, progress: bool = True) -> CostMatrix:
    b = req.bundle
    ex = req.extra or {}
    n = b.n_frames
    dtype = choose_dtype(n, ex.get("max_gb"), "frames", b.fps, ex.get("matrix_dtype", "auto"))
    stutter = max(1, int(round(STUTTER_S * b.fps)))
    taps = _taps(req)
    key = (_bundle_key(b), "frames", dtype.str, taps, stutter)

    def build():
        X = frame_features(b.array("thumbs"))
        return CostMatrix(X, taps, EXPONENT_P, stutter, dtype, progress)
    return _cached_costs(key, build)


def _start_frame(req: WalkRequest, n: int, hop: int, rng: np.random.Generator, core: np.ndarray | None = None) -> int:
    """``req.start`` is a segment (as for every method): start on its first frame; else a random frame
    away from the end, inside the walk's core (if it has one)."""
    if req.start is not None:
        return int(min(req.bundle.segments.frame_range(int(req.start))[0], n - 1))
    ok = np.arange(max(1, n - max(hop, n // 8)))
    if core is not None and core[ok].any():
        ok = ok[core[ok]]
    return int(ok[rng.integers(len(ok))])


def _frame_walk(req: WalkRequest, method: str, hop: int) -> Timeline:
    b = req.bundle
    cost = frame_costs(req)
    radius = max(1, int(round(STUTTER_S * b.fps)))
    model = fit_classic(cost, req, hop, 60.0 * b.fps / hop, radius)
    rng = req.rng
    start = _start_frame(req, cost.n, hop, rng, model.core)
    steps = model.walk(start, 1 + math.ceil(max(req.n_frames - 1, 0) / hop), rng)
    # Step 0 shows the start frame; each later step j shows j, j+1, ..., j+hop-1.
    frames = [steps[0]]
    for j in steps[1:]:
        frames.extend(range(j, j + hop))
    frames = np.asarray(frames[:req.n_frames], np.int64)
    frames = np.clip(frames, 0, b.n_frames - 1)
    return Timeline(fps=b.fps, frames=frames, jumps=jumps_from_frames(frames), method=method, seed=req.seed,
                    params={**model.params, "features": "luma 32x32 of thumbs"})


@register("classic", "Schödl 2000 video textures: pixel L2, diagonal filter, Q-learning, one frame per step")
def classic(req: WalkRequest) -> Timeline:
    return _frame_walk(req, "classic", 1)


@register("classic+", "classic video textures appending one segment stride (s seconds) per transition")
def classic_plus(req: WalkRequest) -> Timeline:
    return _frame_walk(req, "classic+", req.bundle.segments.stride_frames)


# --------------------------------------------------------------------------- segment-level methods
def _segment_walk(req: WalkRequest, method: str, X: np.ndarray, key, feature_desc: str) -> Timeline:
    b = req.bundle
    seg = b.segments
    N = seg.count
    taps = _taps(req)
    stutter = max(1, int(round(STUTTER_S / seg.stride_s)))
    dtype = choose_dtype(N, (req.extra or {}).get("max_gb"), "segments")
    cost = _cached_costs((_bundle_key(b), key, dtype.str, taps, stutter),
                         lambda: CostMatrix(X, taps, EXPONENT_P, stutter, dtype, desc=f"{method} costs"))
    model = fit_classic(cost, req, 1, 60.0 / (seg.stride_frames / b.fps), stutter)
    rng = req.rng
    if req.start is not None:
        start = int(req.start)
    else:
        ok = np.arange(start_limit(N))
        ok = ok[model.core[ok]] if model.core is not None and model.core[ok].any() else ok
        start = int(ok[rng.integers(len(ok))])
    steps = model.walk(start, n_steps(req), rng)
    return segment_timeline(req, steps, method, **model.params, features=feature_desc)


@register("classic++", "classic video textures on the segment graph: pixel L2 between segments, segment-stride filter")
def classic_pp(req: WalkRequest) -> Timeline:
    b = req.bundle
    X = segment_features(b.array("thumbs"), b.segments)
    return _segment_walk(req, "classic++", X, "segments-luma16", "luma 16x16 of every frame of a segment")


DEEP_FEATURES = ("features", "psi")    # the backbone's own features if the fit stored them, else the target head


@register("classic-deep", "classic video textures on the fitted model's segment embeddings instead of pixels")
def classic_deep(req: WalkRequest) -> Timeline:
    b = req.bundle
    name = (req.extra or {}).get("deep_features")
    names = [name] if name else [n for n in DEEP_FEATURES if b.has(n)]
    if not names or not b.has(names[0]):
        raise LivetexError(f"classic-deep needs a fitted model: bundle {b.path} has no learned segment features "
                           f"({' or '.join(DEEP_FEATURES) if not name else name}); fit it with --model")
    emb = b.array(names[0])
    if len(emb) != b.segments.count:
        raise LivetexError(f"bundle {b.path}: {names[0]!r} has {len(emb)} rows, expected one per segment "
                           f"({b.segments.count})")
    return _segment_walk(req, "classic-deep", embedding_features(emb), f"deep-{names[0]}",
                         f"L2-normalised {names[0]} embeddings")
