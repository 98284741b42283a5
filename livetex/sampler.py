"""The random walk on the segment graph (numpy only: runs offline and in the player).

From segment t, every segment j gets a score s_j = dot(q_t, k_j) from precomputed vectors (see
:func:`transition_vectors`: the learned bi-gram cos(phi_t, psi_j), pixel continuity, or both), so a step
is one (N, d) product. Scores become a distribution ``P = softmax(s / tau)``; entries below
``threshold * max(P)`` are dropped; the next segment is drawn.

Why each guard exists:

- *Temperature really matters.* The threshold is applied to probabilities after the softmax, so a
  higher tau lets more (and weaker) transitions survive, and raises their mass: more jumps. (The
  reference code normalised the scores first, so tau cancelled out.)
- *No short cycles.* A segment visited in the last ``min_return`` seconds may not be entered again,
  the natural successor included: that is what makes a two-segment bounce or a tiny loop impossible.
  A *jump* may not land where the walk was in the last ``no_jump_back`` seconds either, and older
  visits get a soft, fading penalty, so the walk keeps covering the whole source instead of circling
  around one good loop point. A jump taken in the last ``jump_memory`` seconds is strongly discouraged
  (REPEAT_PENALTY nats): on a short clip the few best loop points would otherwise be taken again and
  again, a texture that is really a loop.
- *No dead ends.* The last segment has no successor; a jump may not land within ``runway`` seconds of
  the end, so the walk never gets trapped at the end of the video.
- *No rewinds or skips.* Jumps of less than ``min_jump`` seconds (a stutter back or a skip of a few
  frames) are not offered; at such distances the picture barely changes, so the jump only shows as
  motion going backwards or lurching forward.

``calibrate_temperature`` finds the tau that gives a target number of jumps per minute, so users
never tune tau per video.
"""

from __future__ import annotations

import copy
import math
from collections import deque

import numpy as np

from .walks import WalkRequest, n_steps, register, segment_timeline

DEFAULT_THRESHOLD = 0.1
DEFAULT_JUMPS_PER_MIN = 15.0     # about the paper's 7.8 new transitions per 30 s
MIN_RETURN_S = 3.0
NO_JUMP_BACK_S = 10.0
RUNWAY_S = 1.0
MIN_JUMP_S = 1.0
RECENCY_PENALTY = 2.0            # logit penalty for a segment visited just outside min_return ...
RECENCY_DECAY_S = 20.0           # ... fading with this time constant
REPEAT_PENALTY = 4.0             # nats against re-taking a jump taken in the last ...
JUMP_MEMORY_S = 30.0             # ... this many seconds (the diversity score's window)
AUDIO_SLACK = 1.0                # nats: how much worse than its favourite the music may find continuing


def draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn with probability proportional to the weights ``p`` (>= 0, not all 0)."""
    c = np.cumsum(p)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), len(p) - 1))


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


class Sampler:
    """A seeded walk over N segments.

    Parameters
    ----------
    phi, psi : (N, d) query and target embeddings (normalised here).
    stride_s : segment stride in seconds (turns the guards' seconds into steps).
    temperature : softmax temperature tau on cosine scores.
    threshold : drop transitions whose probability is below this fraction of the best one.
    seed : RNG seed; the same seed and inputs give the same walk.
    """

    def __init__(self, phi, psi, stride_s: float, temperature: float = 0.1, threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 0, min_return_s: float = MIN_RETURN_S, no_jump_back_s: float = NO_JUMP_BACK_S,
                 runway_s: float = RUNWAY_S,
                 min_jump_s: float = MIN_JUMP_S, recency_penalty: float = RECENCY_PENALTY,
                 recency_decay_s: float = RECENCY_DECAY_S, cosine: bool = True, audio_slack: float = AUDIO_SLACK,
                 jump_memory_s: float = JUMP_MEMORY_S, repeat_penalty: float = REPEAT_PENALTY):
        # Cosine scores by default; cosine=False keeps raw dot products (e.g. the pixel baseline's
        # negative squared distances, written as dot products of augmented vectors).
        self.phi, self.psi = (normalize(phi), normalize(psi)) if cosine else (np.asarray(phi, np.float32), np.asarray(psi, np.float32))
        self.N = len(self.phi)
        self.stride_s = float(stride_s)
        self.temperature = float(temperature)
        self.audio_slack = float(audio_slack)
        self.jump_memory = int(round(jump_memory_s / stride_s))
        self.repeat_penalty = float(repeat_penalty)
        self.threshold = float(threshold)
        self.rng = np.random.default_rng(seed)
        # Guards in steps, scaled down for short clips so some move is always possible.
        self.min_return = int(min(round(min_return_s / stride_s), max(1, self.N // 4)))
        self.no_jump_back = self._no_jump_back(no_jump_back_s)
        self.runway = int(min(round(runway_s / stride_s), max(0, self.N // 8)))
        self.min_jump = int(min(round(min_jump_s / stride_s), max(1, self.N // 8)))
        self.recency_penalty = recency_penalty
        self.recency_decay = recency_decay_s / stride_s
        self.idx = np.arange(self.N)
        self.reset(0)

    def _no_jump_back(self, seconds: float) -> int:
        return int(max(self.min_return, min(round(seconds / self.stride_s), self.N // 3)))

    def fork(self, seed: int, no_jump_back_s: float | None = None) -> "Sampler":
        """A sampler with the same scores and settings (the arrays are shared) but its own visit history
        and RNG, at the same segment: for trial walks that must not disturb this one. ``no_jump_back_s``
        overrides that guard (e.g. the unconditional texture's, for a song walk's sampler)."""
        f = copy.copy(self)
        f.rng = np.random.default_rng(seed)
        if no_jump_back_s is not None:
            f.no_jump_back = f._no_jump_back(no_jump_back_s)
        f.reset(self.t)
        return f

    def reset(self, t: int) -> None:
        self.t = int(t)
        self.k = 0
        # Recent visits, newest last; older ones carry a negligible penalty and are dropped.
        self.history: deque[int] = deque(
            [self.t], maxlen=max(self.no_jump_back, self.min_return + int(5 * self.recency_decay)) + 1)
        self.jumps: deque[tuple[int, int, int]] = deque()   # (step, from, to) of recent jumps

    # -- scores -------------------------------------------------------------------------------
    def scores(self, t: int) -> np.ndarray:
        """cos(phi_t, psi_j) for every j, shape (N,).

        einsum, not ``@``: a multi-threaded BLAS matrix-vector product stalls for tens of ms when the
        cores are busy (the player's other threads), while this single-threaded loop takes ~0.2 ms at
        N = 20,000, d = 64.
        """
        return np.einsum("nd,d->n", self.psi, self.phi[t])

    def logits(self, t: int) -> np.ndarray:
        """scores / tau with the guards applied: -inf where the walk may not go from t right now."""
        logits = self.scores(t)
        logits *= np.float32(1.0 / self.temperature)
        hist = np.fromiter(self.history, np.int64, len(self.history))
        age = np.arange(len(hist) - 1, -1, -1)              # steps since each visit
        older = age > self.min_return
        if older.any():
            # Softly discourage returning to places seen a while ago (spreads coverage).
            pen = self.recency_penalty * np.exp(-(age[older] - self.min_return) / self.recency_decay)
            np.subtract.at(logits, hist[older], pen.astype(np.float32))
        while self.jumps and self.k - self.jumps[0][0] > self.jump_memory:
            self.jumps.popleft()
        for _, a, b in self.jumps:
            if a == t:
                logits[b] -= self.repeat_penalty
        succ = t + 1 if t + 1 < self.N else None
        keep = logits[succ] if succ is not None else None
        logits[max(0, t - self.min_jump + 1):t + self.min_jump] = -np.inf     # stutters and skips
        if self.runway:
            logits[self.N - self.runway:] = -np.inf                           # landing at the very end
        logits[hist[age <= self.no_jump_back]] = -np.inf                      # no jumping back into the recent past
        if succ is not None:
            logits[succ] = keep
        logits[hist[age <= self.min_return]] = -np.inf                        # short cycles (and t itself)
        logits[t] = -np.inf
        if not np.isfinite(logits).any():  # tiny clips: fall back to "anything but here"
            logits = self.scores(t) / np.float32(self.temperature)
            if self.N > 1:
                logits[t] = -np.inf
        return logits

    def allowed(self, t: int) -> np.ndarray:
        """Boolean mask of the segments the walk may enter from t right now."""
        return np.isfinite(self.logits(t))

    def distribution(self, t: int | None = None, extra: np.ndarray | None = None, alpha: float = 1.0,
                     logits: np.ndarray | None = None) -> np.ndarray:
        """Next-segment probabilities from t (default: the current segment), shape (N,).

        ``extra`` is another distribution over segments (e.g. audio-driven), mixed in as
        ``alpha * P_visual + (1 - alpha) * extra`` before the threshold, under the same guards.
        ``logits``: :meth:`logits` of t, if the caller already has them (not modified).
        Cost: one (N, d) matrix-vector product plus a few O(N) passes.
        """
        t = self.t if t is None else t
        logits = self.logits(t) if logits is None else logits.copy()
        p = np.exp(logits - logits.max())
        p /= p.sum()
        if extra is not None and alpha < 1.0:
            # The guards' mask, not p > 0: at a low tau, exp() underflows to 0 for every visually weak
            # segment, which would silence the audio everywhere but at the visual favourite.
            e = np.where(np.isfinite(logits), np.asarray(extra, np.float32), np.float32(0))
            succ = t + 1 if t + 1 < self.N and np.isfinite(logits[t + 1]) else None
            # When the music is about as happy with simply continuing as with its favourite (within
            # ``audio_slack`` nats), it has nothing to ask for: the step stays visual, and a visual jump
            # may only go where the music is as happy. Without this, (1 - alpha) of every step goes to
            # the audio's few best matches and the texture cuts several times a second even while the
            # performer is already doing the right thing.
            tot = e.sum()
            if tot > 0:
                fine = e >= e.max() * np.exp(-self.audio_slack)
                if succ is not None and fine[succ]:
                    p = np.where(fine, p, np.float32(0))
                else:
                    p = alpha * p + (1.0 - alpha) * (e / tot)
        p[p < self.threshold * p.max()] = 0.0
        return p / p.sum()

    def step(self, extra: np.ndarray | None = None, alpha: float = 1.0) -> int:
        """Move to the next segment and return it."""
        return self.move(draw(self.distribution(self.t, extra, alpha), self.rng))

    def move(self, j: int) -> int:
        """Go to segment j (chosen by the caller, e.g. a planned walk), keeping the visit history."""
        j = int(j)
        self.k += 1
        if j != self.t + 1:
            self.jumps.append((self.k, self.t, j))
        self.t = j
        self.history.append(j)
        return j

    def walk(self, n: int, start: int = 0) -> list[int]:
        self.reset(start)
        return [start] + [self.step() for _ in range(n - 1)]


def expected_jump_rate(phi, psi, stride_s: float, temperature: float, threshold: float,
                       sample: int = 512, seed: int = 0, cosine: bool = True) -> float:
    """Approximate jumps per minute of a walk at ``temperature``: the mean probability of leaving the
    natural successor, over (up to ``sample``) segments, with the static guards applied."""
    s = Sampler(phi, psi, stride_s, temperature, threshold, seed, cosine=cosine)
    rng = np.random.default_rng(seed)
    ts = np.arange(s.N - 1)
    if len(ts) > sample:
        ts = rng.choice(ts, sample, replace=False)
    s.history.clear()  # no visit history: only the static guards
    p_jump = np.mean([1.0 - s.distribution(int(t))[t + 1] for t in ts])
    # The last segment always jumps; it is visited about once per pass through the source.
    return float(p_jump) * 60.0 / stride_s


def simulated_jump_rate(phi, psi, stride_s: float, temperature: float, threshold: float,
                        minutes: float = 5.0, seed: int = 0, cosine: bool = True) -> float:
    """Jumps per minute of an actual walk (guards and visit history included) of ``minutes``."""
    s = Sampler(phi, psi, stride_s, temperature, threshold, seed, cosine=cosine)
    n = max(50, int(minutes * 60 / stride_s))
    steps = np.asarray(s.walk(n, int(np.random.default_rng(seed).integers(s.N))))
    return float(np.sum(steps[1:] != steps[:-1] + 1)) / (n * stride_s / 60.0)


def calibrate_temperature(phi, psi, stride_s: float, jumps_per_min: float, threshold: float = DEFAULT_THRESHOLD,
                          lo: float = 1e-3, hi: float = 10.0, cosine: bool = True, quick: bool = False) -> float:
    """The temperature at which a walk makes ``jumps_per_min`` jumps per minute.

    Bisection on log tau, first on the cheap expected rate (mean jump probability over segments), then
    refined on simulated walks: the visit history and guards change the rate, most for short clips.
    """
    def bisect(f, a, b, iters):
        if f(math.exp(b)) < jumps_per_min:
            return math.exp(b)
        if f(math.exp(a)) > jumps_per_min:
            return math.exp(a)
        for _ in range(iters):
            m = 0.5 * (a + b)
            a, b = (m, b) if f(math.exp(m)) < jumps_per_min else (a, m)
        return math.exp(0.5 * (a + b))

    tau0 = bisect(lambda tau: expected_jump_rate(phi, psi, stride_s, tau, threshold, cosine=cosine),
                  math.log(lo), math.log(hi), 20)
    if quick:  # the expected rate only (milliseconds): for start-up paths that cannot wait
        return tau0
    a, b = max(math.log(lo), math.log(tau0) - math.log(8)), min(math.log(hi), math.log(tau0) + math.log(8))
    # Two 6-minute walks per probe: one short walk's rate depends on where it happened to wander.
    return bisect(lambda tau: np.mean([simulated_jump_rate(phi, psi, stride_s, tau, threshold, minutes=6.0, seed=s,
                                                           cosine=cosine) for s in (0, 1)]), a, b, 10)


def sampler_for(req: WalkRequest, kind: str = "contrastive", **sampler_kw) -> tuple[Sampler, dict]:
    """Build the sampler a render request asks for; returns it with the settings actually used.

    ``kind`` picks the transition scores (see :func:`walk_embeddings`). The default temperature is the
    one calibrated at fit time for the default jump rate; any other request is calibrated now.
    """
    b = req.bundle
    q, k, cosine = walk_embeddings(b, kind)
    stride_s = b.segments.stride_frames / b.fps
    threshold = DEFAULT_THRESHOLD if req.threshold is None else req.threshold
    fitted = (b.manifest.get("walk") or {}).get("temperatures", {}).get(kind)
    if req.temperature is not None and req.jumps_per_min is None:
        tau, target = req.temperature, None
    elif req.jumps_per_min is None and req.threshold is None and fitted:
        tau, target = fitted, DEFAULT_JUMPS_PER_MIN      # calibrated once, at fit time
    else:
        target = req.jumps_per_min or DEFAULT_JUMPS_PER_MIN
        tau = calibrate_temperature(q, k, stride_s, target, threshold, cosine=cosine)
    s = Sampler(q, k, stride_s, tau, threshold, req.seed, cosine=cosine, **sampler_kw)
    return s, {"temperature": tau, "threshold": threshold, "target_jumps_per_min": target, "scores": kind}


def start_limit(N: int) -> int:
    """Walks start before this segment: not in the last eighth of the clip, so they have room to run."""
    return max(1, N - max(1, N // 8))


def start_segment(req: WalkRequest, N: int) -> int:
    if req.start is not None:
        return int(req.start)
    return int(req.rng.integers(start_limit(N)))


@register("learned", "the learned bi-gram alone: P(j|t) from cos(phi_t, psi_j) (the paper's formulation)")
def learned(req: WalkRequest):
    return _walk(req, "learned")


@register("pixel", "pixel-distance walk on the segment graph (baseline: L2 of 16 px grey segments, same sampler)")
def pixel(req: WalkRequest):
    return _walk(req, "pixel")


def _walk(req: WalkRequest, kind: str):
    s, params = sampler_for(req, kind)
    steps = s.walk(n_steps(req), start_segment(req, s.N))
    return segment_timeline(req, steps, kind, **params)


# ----------------------------------------------------------------------------- transition scores
PIXEL_SIDE = 16        # px: grey frames this small still show a performer's pose
PIXEL_DIMS = 64        # PCA dimensions kept: a sampler step stays O(N * 64)
LEARNED_WEIGHT = 0.1   # weight of cos(phi_t, psi_j) next to the pixel continuity term
_PIXEL_SCALE = 9.0     # median squared distance between random segments after scaling
KINDS = ("contrastive", "learned", "pixel")


def pixel_codes(thumbs: np.ndarray, seg, side: int = PIXEL_SIDE, dims: int = PIXEL_DIMS,
                seed: int = 0) -> np.ndarray:
    """Each segment as its ``side`` px grey frames (all of them, in order), PCA-reduced to ``dims``.

    Returns (N, dims) float32 codes whose squared Euclidean distances approximate those of the full
    pixel vectors, scaled so the median distance between random segments is 9. A segment's vector
    holds every frame, so a distance compares poses *and* motion, frame by frame.
    """
    import cv2
    small = np.empty((len(thumbs), side * side), np.float32)
    for a in range(0, len(thumbs), 4096):                 # thumbs may be memory-mapped: read in blocks
        for i, rgb in enumerate(np.asarray(thumbs[a:a + 4096])):
            g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            small[a + i] = cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA).ravel()
    small /= 255.0
    W, N = seg.window_frames, seg.count
    x = np.stack([small[s0:s0 + W].ravel() for s0 in seg.starts])      # (N, W * side^2)
    x -= x.mean(axis=0, keepdims=True)
    x = _pca(x, dims, seed)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, N, 4000), rng.integers(0, N, 4000)
    d2 = np.median(((x[i] - x[j]) ** 2).sum(1))
    return (x * np.sqrt(_PIXEL_SCALE / max(d2, 1e-12))).astype(np.float32)


def _pca(x: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Centred rows projected on their top ``dims`` principal directions (randomised SVD); rows
    with fewer than ``dims`` dimensions or samples are kept exactly (zero-padded to ``dims``)."""
    n, d = x.shape
    if min(n, d) <= dims:
        if d > n:   # n points span at most n dimensions: an exact rotation into them
            q, _ = np.linalg.qr(x.T)
            x = x @ q
        out = np.zeros((n, dims), np.float32)
        out[:, :min(dims, x.shape[1])] = x[:, :dims]
        return out
    rng = np.random.default_rng(seed)
    y = x @ rng.standard_normal((d, dims + 16)).astype(np.float32)
    for _ in range(2):                                    # power iterations sharpen the spectrum
        y, _ = np.linalg.qr(x @ (x.T @ y))
    _, _, vt = np.linalg.svd(y.T @ x, full_matrices=False)
    return x @ vt[:dims].T


def distance_pair(q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Augment codes so that dot(q_aug_t, k_aug_j) = -|q_t - k_j|^2 / 2 (a distance as a dot product)."""
    q, k = np.asarray(q, np.float32), np.asarray(k, np.float32)
    one_q, one_k = np.ones((len(q), 1), np.float32), np.ones((len(k), 1), np.float32)
    return (np.hstack([q, -0.5 * (q * q).sum(1, keepdims=True), one_q]),
            np.hstack([k, one_k, -0.5 * (k * k).sum(1, keepdims=True)]))


def transition_vectors(codes: np.ndarray, phi: np.ndarray | None, psi: np.ndarray | None, kind: str,
                       learned_weight: float = LEARNED_WEIGHT) -> tuple[np.ndarray, np.ndarray, bool]:
    """(q, k, cosine): the vectors whose dot products score every transition t -> j of a walk.

    - ``pixel``: -|x_{t+1} - x_j|^2 / 2 on pixel codes: is j like what really follows t?
    - ``learned``: cos(phi_t, psi_j), the contrastive bi-gram alone.
    - ``contrastive``: pixel continuity + learned_weight * cos(phi_t, psi_j). Measured on the clips
      in ../shared/media, the learned term on its own picks far more visible jumps than the pixel term
      (a per-video net learns to tell a segment from its lookalikes, and lookalikes are exactly the
      good jumps), so it rides on the pixel continuity term instead of replacing it; see README.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown transition scores {kind!r}")
    if kind == "learned":
        return np.asarray(phi, np.float32), np.asarray(psi, np.float32), True
    succ = np.minimum(np.arange(len(codes)) + 1, len(codes) - 1)
    q, k = distance_pair(codes[succ], codes)
    if kind == "pixel":
        return q, k, False
    return np.hstack([q, learned_weight * normalize(phi)]), np.hstack([k, normalize(psi)]), False


def walk_embeddings(bundle, kind: str = "contrastive") -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`transition_vectors` of a bundle."""
    from .errors import LivetexError
    if kind in ("learned", "contrastive") and not bundle.has("phi"):
        raise LivetexError(f"{bundle.path} has no contrastive model (fitted without --model): "
                           "re-fit it with --model, or use --method contrastive, pixel, sequential or random")
    codes = (np.asarray(bundle.array("pixel_codes")) if bundle.has("pixel_codes")
             else pixel_codes(bundle.array("thumbs"), bundle.segments))
    phi = bundle.array("phi") if bundle.has("phi") else None
    psi = bundle.array("psi") if bundle.has("psi") else None
    w = float((bundle.manifest.get("walk") or {}).get("learned_weight", LEARNED_WEIGHT))
    return transition_vectors(codes, phi, psi, kind, w)


def fitted_temperatures(codes, phi, psi, stride_s: float, learned_weight: float = LEARNED_WEIGHT) -> dict:
    """The default-rate temperature of every kind of scores available, calibrated once at fit time."""
    kinds = KINDS if phi is not None else ("pixel",)
    out = {}
    for kind in kinds:
        q, k, cosine = transition_vectors(codes, phi, psi, kind, learned_weight)
        out[kind] = calibrate_temperature(q, k, stride_s, DEFAULT_JUMPS_PER_MIN, DEFAULT_THRESHOLD, cosine=cosine)
    return out
