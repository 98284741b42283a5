"""Audio for conditioning: embeddings of sound, and how a sound is matched to the source's segments.

An *audio model* is a name (like a timm backbone) for one way of scoring "conditioning window k looks
like it belongs with source segment j":

- ``features`` (default): the log-mel/onset/loudness embedding of :mod:`.features`, conditioning audio
  compared with the *source audio* of every segment (the paper's T_a, without downloaded weights).
- ``av``: the per-video audio-visual model of :mod:`.avmodel`, trained at fit time on the source's own
  (audio, picture) pairs; conditioning audio compared with the *picture* of every segment.
- ``vggish``: the paper's VGGish encoder, from a weights file the user supplies (:mod:`.vggish`).

Every model gives query embeddings ``q`` for conditioning windows and key embeddings ``K`` for the N
source segments; scores are ``-0.5 * ||q - K_j||^2`` (``cos - 1`` for unit vectors) and
``T_a(k, .) = softmax(score / tau_a)`` with the model's own temperature tau_a, calibrated at fit time
(see :func:`calibrate_tau`). Modules here are numpy in, numpy out; torch only inside the fit and VGGish.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import LivetexError
from . import features as F

AUDIO_MODELS = ("features", "av", "vggish")
# Measured on the real clips (tools/bench_audio.py --eval, planned walks kept as smooth as the texture):
# "features" follows music at least as well as "av" on every clip, much better over 140 s (piano +0.43
# against +0.26), even where av's matches predict the picture better (its picture score: piano 0.60
# against 0.35). av's rows single out a few segments, and reaching them takes cuts that show, so the
# smoothness rule lets the song pull less; on silence its plan shows the silent picture less surely.
DEFAULT_AUDIO_MODEL = "features"
TARGET_PERPLEXITY = 4.0             # T_a rows spread over about this many segments (see calibrate_tau) ...
MIN_PERPLEXITY = 3.0                # ... each row over at least this many ...
MAX_PERPLEXITY = 6.0                # ... and at most this many (see audio_probs)
AHEAD = 2                           # strides of source a landing segment should keep matching (run_ahead)
GAIN_LIMIT_DB = 24.0                # conditioning level matching never moves more than this
SILENCE_DB = -60.0                  # a window quieter than this (dBFS, mean square) is silence


def scores(q: np.ndarray, keys: np.ndarray, key_sq: np.ndarray | None = None) -> np.ndarray:
    """Similarity ``-0.5 * ||q_k - keys_j||^2`` of queries (K, d) to keys (N, d) -> (K, N).

    ``key_sq``: the keys' squared norms, if the caller keeps them (saves an O(N d) pass per call).
    """
    q = np.atleast_2d(np.asarray(q, np.float32))
    keys = np.asarray(keys, np.float32)
    if key_sq is None:
        key_sq = np.einsum("nd,nd->n", keys, keys)
    # A live step is one query: einsum runs single-threaded and never stalls behind busy BLAS threads.
    dot = np.einsum("nd,kd->kn", keys, q) if len(q) <= 4 else q @ keys.T
    return (dot - 0.5 * np.einsum("kd,kd->k", q, q)[:, None] - 0.5 * key_sq).astype(np.float32)


def run_ahead(s: np.ndarray, depth: int = AHEAD) -> np.ndarray:
    """``out[k, j] = mean over d = 0..depth of s[k, j + d]`` (terms past the last segment left out):
    how well the source stretch that *starts* at segment j keeps matching the current window.

    Why: a walk that lands on a matching segment continues along the source from there; landing where
    the source is about to change (a note about to end) shows the wrong picture a stride later.
    Music is locally steady, so the current window stands in for the next few. Live-compatible: it
    only needs the current window's scores.
    """
    s = np.asarray(s, np.float32)
    if depth <= 0:
        return s
    N = s.shape[1]
    c = np.concatenate([np.zeros((len(s), 1)), np.cumsum(s, axis=1, dtype=np.float64)], axis=1)
    j = np.arange(N)
    e = np.minimum(j + depth + 1, N)
    return ((c[:, e] - c[:, j]) / (e - j)).astype(np.float32)


def softmax_rows(s: np.ndarray, tau) -> np.ndarray:
    """Row-wise softmax of ``s / tau`` (tau a scalar or a column of per-row temperatures)."""
    z = np.asarray(s, np.float64) / tau
    z -= z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=-1, keepdims=True)).astype(np.float32)


def audio_probs(s: np.ndarray, tau: float, min_perplexity: float = MIN_PERPLEXITY,
                max_perplexity: float = MAX_PERPLEXITY, iters: int = 30, top: int = 256) -> np.ndarray:
    """T_a rows from scores (K, N): ``softmax(s / tau)``, with each row's temperature adjusted (its own
    tau, by bisection) so that it spreads over between ``min_perplexity`` and ``max_perplexity`` segments.

    Why both bounds: the walk draws from ``alpha * T_v + (1 - alpha) * T_a`` after dropping every
    entry below ``threshold * max``. The visual term puts most of its mass on the natural successor,
    so an audio entry survives only if T_a concentrates on a handful of segments; a row spread over
    many equally good segments (a silent room, a still picture) would be dropped whole and the picture
    could never follow the music there. A row sharper than a few segments (a note that starts at
    exactly one source moment) is softened instead: if the walk's guards forbid that one segment right
    now, the next-best matches still carry the audio's opinion.

    The bisection looks at each row's ``top`` best scores only (at a perplexity of a few segments the
    rest carry no mass), so a row costs O(N) however large the source: ~1 ms at N = 20,000.
    """
    s = np.atleast_2d(np.asarray(s, np.float32))
    K, N = s.shape
    if N < 2:
        return np.ones((K, N), np.float32)
    lo_t, hi_t = min(min_perplexity, 0.5 * N), min(max_perplexity, 0.5 * N)
    m = min(top, N)
    best = s if m == N else np.take_along_axis(s, np.argpartition(-s, m - 1, axis=1)[:, :m], axis=1)
    best = best.astype(np.float64)
    log_tau = np.full(K, math.log(tau))
    ppl = perplexity(softmax_rows(best, tau))
    for rows, target, sign in ((np.flatnonzero(ppl < lo_t), lo_t, 1.0), (np.flatnonzero(ppl > hi_t), hi_t, -1.0)):
        if not len(rows):
            continue
        # bisection on log tau between tau and tau * 1e6 (softening) or tau / 1e6 (sharpening);
        # perplexity grows with tau, and `a` always stays on the side of tau, `b` on the far side
        a = log_tau[rows].copy()
        b = a + sign * math.log(1e6)
        for _ in range(iters):
            mid = 0.5 * (a + b)
            short = perplexity(softmax_rows(best[rows], np.exp(mid)[:, None])) < target
            move_a = short if sign > 0 else ~short
            a, b = np.where(move_a, mid, a), np.where(move_a, b, mid)
        log_tau[rows] = b
    return softmax_rows(s, np.exp(log_tau)[:, None])


def perplexity(p: np.ndarray) -> np.ndarray:
    """exp(entropy) of each row: the number of segments a distribution effectively spreads over."""
    p = np.asarray(p, np.float64)
    return np.exp(-(p * np.log(np.maximum(p, 1e-300))).sum(axis=-1))


def picture_score(queries: np.ndarray, keys: np.ndarray, tau: float, pictures: np.ndarray, exclude: int = 3,
                  ahead: int = AHEAD, sample: int = 512, seed: int = 0) -> float:
    """How well an audio model's matches predict the *picture*, measured on the source itself.

    For up to ``sample`` source windows i: T_a(i, .) from the source's own audio (``queries``) against
    ``keys``, with i's neighbourhood (|i - j| <= ``exclude``) left out, as conditioning audio is new
    audio; and d(i, j), the mean absolute difference of the ``pictures`` (N, p) that segments i and j
    show. Score = mean over i of (E_random[d] - E_{T_a}[d]) / (E_random[d] - min_j d): 0 when the
    audio's matches look no more like the picture that goes with the sound than a random segment,
    1 when they look as alike as the picture's own nearest match. Models of one bundle are compared
    with it (see :func:`livetex.audio.models.resolve_name`). Cost O(sample N (d + p)).
    """
    N = len(keys)
    if N - (2 * exclude + 1) < 2:
        return 0.0
    rows = np.arange(N) if N <= sample else np.sort(np.random.default_rng(seed).choice(N, sample, replace=False))
    s = run_ahead(scores(np.asarray(queries)[rows], keys), ahead).astype(np.float64)
    far = np.abs(rows[:, None] - np.arange(N)[None]) > exclude
    s[~far] = -np.inf
    T = audio_probs(s, tau)
    pics = np.asarray(pictures, np.float32)
    d = np.stack([np.abs(pics - pics[i]).mean(axis=1) for i in rows])
    rand = np.where(far, d, 0.0).sum(axis=1) / far.sum(axis=1)
    best = np.where(far, d, np.inf).min(axis=1)
    got = (T * np.where(far, d, 0.0)).sum(axis=1)
    return float(np.mean((rand - got) / np.maximum(rand - best, 1e-9)))


def calibrate_tau(queries: np.ndarray, keys: np.ndarray, target: float = TARGET_PERPLEXITY,
                  exclude: int = 2, ahead: int = 0, sample: int = 1024, seed: int = 0) -> float:
    """The audio temperature tau_a at which source queries spread over ``target`` segments on average.

    Conditioning audio is new audio, so the calibration scores every source window against the keys
    with its own neighbourhood (|i - j| <= ``exclude``: near-copies of itself) left out. ``ahead`` is
    the :func:`run_ahead` depth the rows will be used with. Long sources use ``sample`` of their windows.
    Calibrating per model in these units makes one default work for every embedding and every video.
    """
    N = len(keys)
    if N - (2 * exclude + 1) < 2:
        return 1.0
    r0 = 0 if N <= sample else int(np.random.default_rng(seed).integers(0, N - sample + 1))
    rows = np.arange(r0, min(N, r0 + sample))
    s = run_ahead(scores(queries[rows], keys), ahead).astype(np.float64)
    s[np.abs(rows[:, None] - np.arange(N)[None]) <= exclude] = -np.inf
    target = min(target, 0.5 * (N - 2 * exclude - 1))
    f = lambda tau: float(np.mean(perplexity(softmax_rows(s, tau))))  # noqa: E731
    lo, hi = 1e-5, 1e2
    if f(lo) >= target:
        return lo
    if f(hi) <= target:
        return hi
    a, b = math.log(lo), math.log(hi)
    for _ in range(40):
        m = 0.5 * (a + b)
        if f(math.exp(m)) < target:
            a = m
        else:
            b = m
    return float(math.exp(0.5 * (a + b)))


def level_db(windows: np.ndarray) -> np.ndarray:
    """Level of each window, dBFS of the mean square (a full-scale sine is -3 dB), floored at -100."""
    w = np.atleast_2d(np.asarray(windows, np.float32))
    return np.maximum(10.0 * np.log10(np.maximum((w.astype(np.float64) ** 2).mean(axis=1), 1e-10)), -100.0)


def window_levels(y: np.ndarray, starts, length: int) -> np.ndarray:
    """:func:`level_db` of the windows ``y[s:s+length]`` (zero outside ``y``), via a running sum of squares."""
    y = np.asarray(y, np.float32)
    c = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    s = np.clip(np.asarray(starts, np.int64), 0, len(y))
    e = np.clip(np.asarray(starts, np.int64) + length, 0, len(y))
    return np.maximum(10.0 * np.log10(np.maximum((c[e] - c[s]) / length, 1e-10)), -100.0)


def reference_db(levels: np.ndarray) -> float | None:
    """A recording's reference level: the 95th percentile of its window levels (None if it is silent)."""
    lv = np.asarray(levels, np.float64)
    lv = lv[lv > SILENCE_DB]
    return None if len(lv) == 0 else float(np.percentile(lv, 95))


def match_gain(levels: np.ndarray, source_ref_db: float) -> float:
    """Linear gain that brings a conditioning recording's reference level to the source's.

    A mastered song is often 20 dB louder than a room recording of a performer; without this, every
    window of the song would look like the loudest moment of the source. Silent audio gets gain 1.
    """
    ref = reference_db(levels)
    if ref is None:
        return 1.0
    return float(10.0 ** (np.clip(source_ref_db - ref, -GAIN_LIMIT_DB, GAIN_LIMIT_DB) / 20.0))


def window_start(k: int, stride_frames: int, fps: float, sr: int = F.SR) -> int:
    """First sample of conditioning window k: round(k * stride_frames * sr / fps), rounding half up
    (as :meth:`livetex.segments.Segments.sample_range`)."""
    return int(math.floor(k * stride_frames * sr / fps + 0.5))


def song_gain(y: np.ndarray, ref_db: float | None, window: int, fps: float, stride_frames: int) -> float:
    """The fixed level-matching gain for a whole recording ``y`` (mono, ``features.SR``), over all its
    stride-spaced windows. Offline conditioning uses it; give it to the live embedder to match a file."""
    if ref_db is None:
        return 1.0
    step = stride_frames * F.SR / fps
    n = max(1, int(math.ceil(max(0, len(y) - window) / step)) + 1)
    starts = np.array([window_start(k, stride_frames, fps) for k in range(n)], np.int64)
    return match_gain(window_levels(y, starts[starts < max(1, len(y))], window), ref_db)


def check_model_name(name: str | None) -> str:
    name = name or DEFAULT_AUDIO_MODEL
    if name not in AUDIO_MODELS:
        raise LivetexError(f"unknown audio model {name!r}; choose from: {', '.join(AUDIO_MODELS)}")
    return name
