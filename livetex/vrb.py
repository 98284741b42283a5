"""Visual Rhythm and Beat (Davis & Agrawala, SIGGRAPH 2018): re-time the source so its visual beats land on
the music's beats. The paper's conditional baseline; ``livetex render BUNDLE --method vrb --audio SONG``.

1. Visual beats. Dense optical flow (Farneback) between consecutive 64x64 grey thumbs; per flow field a
   *directogram*: flow magnitude summed into 8 direction bins. The *visual impact envelope* is the
   half-wave-rectified drop of every bin from one frame to the next, summed over bins: it peaks where
   motion in some direction stops sharply (a strike, a bounce, a footfall), which is what the eye reads
   as a beat. Peaks (at least ``MIN_BEAT_GAP_S`` apart, prominent relative to the envelope's spread) are
   the visual beats, as source frame indices.
2. Music beats: ``librosa.beat.beat_track`` on the conditioning audio (mono, 22,050 Hz), in seconds
   of output time (the audio starts with output frame 0).
3. Alignment by dynamic programming over music beats. State (k, v): music beat k is hit by visual beat v.
   Between two hit music beats k < k' (at most ``MAX_SKIP`` beats apart; skipped beats cost
   ``SKIP_COST`` each) the source plays continuously from visual beat u to v' at a constant rate
   r = (s_v' - s_u) / (t_k' - t_k), which must stay within [``RATE_MIN``, ``RATE_MAX``] and costs
   (log2 r)^2; hitting a beat with a weak visual beat costs ``WEAK_COST`` x (1 - its strength relative
   to the strong beats). Normally u is the state's own v (continuous play); u != v is a *cut*, costing
   ``CUT_COST`` plus the seam's visual difference (frame v+1 against frame u, relative to a typical
   pair), offered only towards the ``CUT_CANDIDATES`` best-matching beats. Cuts are what let a short
   source fill a long song.
4. Before the first hit beat the source plays at speed 1 into it; after the last (or past the end of the
   song) at speed 1, cutting back to the frame that best continues the last one when the source ends.

Output: one source frame per output frame (re-timing repeats or skips frames: these are not jumps);
``Timeline.jumps`` lists only the cuts. Deterministic: the seed does not change the result.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import LivetexError
from .timeline import Timeline
from .walks import WalkRequest, register

RATE_MIN, RATE_MAX = 0.5, 2.0     # speed limits of the time warp
MIN_BEAT_GAP_S = 0.2              # visual beats closer than this are one beat
MAX_SKIP = 4                      # an interval may span up to this many music beats
SKIP_COST = 2.0                   # per music beat left without a visual beat
CUT_COST = 2.0                    # per cut, plus the seam term (about 1 for a typical pair of frames)
CUT_CANDIDATES = 24               # cut targets considered per visual beat
WEAK_COST = SKIP_COST             # hitting a music beat with a visual beat of strength 0 is as bad as missing it
FREEZE_COST = 2.0                 # per second of holding the first frame when the song's intro is longer than the source
AUDIO_SR = 22050
N_DIRECTIONS = 8


def _progress(iterable, **kw):
    from tqdm import tqdm
    return tqdm(iterable, disable=None, leave=False, **kw)


# ------------------------------------------------------------------------------------ visual beats
def directogram(thumbs: np.ndarray, bins: int = N_DIRECTIONS, progress: bool = True) -> np.ndarray:
    """Flow magnitude per direction bin between frames t and t+1, shape (n-1, bins), in pixels/frame
    at 64 px (mean over the image). Thumbs are read one frame at a time (they may be memory-mapped)."""
    import cv2
    n = len(thumbs)
    out = np.zeros((max(n - 1, 0), bins), np.float32)
    prev = None
    rng = range(n)
    for k in (_progress(rng, desc="vrb motion", unit="frame") if progress else rng):
        g = cv2.cvtColor(np.ascontiguousarray(thumbs[k]), cv2.COLOR_RGB2GRAY)
        if prev is not None:
            f = cv2.calcOpticalFlowFarneback(prev, g, None, 0.5, 2, 9, 2, 5, 1.1, 0)
            mag = np.hypot(f[..., 0], f[..., 1])
            ang = np.arctan2(f[..., 1], f[..., 0])
            b = ((ang + np.pi) / (2 * np.pi) * bins).astype(np.int64) % bins
            out[k - 1] = np.bincount(b.ravel(), weights=mag.ravel(), minlength=bins) / mag.size
        prev = g
    return out


def impact_envelope(dg: np.ndarray) -> np.ndarray:
    """Visual impact per frame, shape (n,): sum over directions of the drop in flow from the field
    (t-1 -> t) to (t -> t+1). High at frame t when motion stops sharply there.

    The directogram is first median-filtered over 3 frames: optical flow on small frames has one-frame
    outliers (untextured regions), and the drop right after such an outlier would read as a beat,
    while a real stop (motion, then stillness, for several frames) survives the filter."""
    from scipy.ndimage import median_filter
    n = len(dg) + 1
    u = np.zeros(n, np.float32)
    if len(dg) >= 2:
        d = median_filter(dg, size=(3, 1), mode="nearest") if len(dg) >= 3 else dg
        u[1:-1] = np.maximum(d[:-1] - d[1:], 0.0).sum(axis=1)
    return u


def pick_beats(u: np.ndarray, fps: float, min_gap_s: float = MIN_BEAT_GAP_S) -> np.ndarray:
    """Frames of the visual beats: peaks of the impact envelope, ``min_gap_s`` apart, standing out from
    its typical level (prominence above a quarter of the 99th percentile, height above the median)."""
    from scipy.signal import find_peaks
    if len(u) < 3 or not np.any(u > 0):
        return np.zeros(0, np.int64)
    hi = float(np.percentile(u, 99))
    if hi <= 1e-6:
        return np.zeros(0, np.int64)
    peaks, _ = find_peaks(u, height=max(float(np.median(u)), 0.05 * hi), prominence=0.25 * hi,
                          distance=max(1, int(round(min_gap_s * fps))))
    return peaks.astype(np.int64)


_ENVELOPES: dict = {}


def visual_beats(bundle, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(beat frames, impact envelope) of a bundle's source video. The envelope (optical flow over the
    whole video) is cached per bundle, so renders with several seeds compute it once."""
    key = (bundle.path, bundle.manifest.get("created"), bundle.manifest["source"].get("sha256"))
    if key not in _ENVELOPES:
        _ENVELOPES.clear()
        _ENVELOPES[key] = impact_envelope(directogram(bundle.array("thumbs"), progress=progress))
    u = _ENVELOPES[key]
    return pick_beats(u, bundle.fps), u


# ------------------------------------------------------------------------------------- music beats
def music_beats(path: str, seconds: float | None = None) -> tuple[np.ndarray, float]:
    """Beat times (s) of an audio file, and its tempo (BPM). ``seconds`` limits how much is analysed."""
    import librosa
    from .media.audio import load_audio
    y = load_audio(path, AUDIO_SR, duration=None if seconds is None else seconds + 2.0)
    if len(y) < AUDIO_SR // 4 or not np.any(np.abs(y) > 1e-4):
        return np.zeros(0), 0.0
    tempo, beats = librosa.beat.beat_track(y=y, sr=AUDIO_SR, units="time")
    beats = np.asarray(beats, np.float64)
    if seconds is not None:
        beats = beats[beats < seconds]
    return beats, float(np.atleast_1d(tempo)[0])


# ------------------------------------------------------------------------------------------ the plan
def _frame_features(thumbs: np.ndarray, frames: np.ndarray) -> np.ndarray:
    from .classic import frame_features
    return frame_features(np.asarray(thumbs[np.asarray(frames)]))


def beat_strength(u: np.ndarray, vb: np.ndarray) -> np.ndarray:
    """Strength of each visual beat in [0, 1]: its impact relative to the strong beats (90th percentile)."""
    if len(vb) == 0:
        return np.zeros(0)
    s = u[vb].astype(np.float64)
    ref = float(np.percentile(s, 90)) or 1.0
    return np.clip(s / ref, 0.0, 1.0)


def _scatter_min(idx: np.ndarray, val: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For every target t < n: the smallest ``val`` among entries with ``idx == t`` and the position of
    one such entry (inf and -1 where none). O(len) with no sort."""
    best = np.full(n, np.inf)
    np.minimum.at(best, idx, val)
    arg = np.full(n, -1, np.int64)
    win = np.flatnonzero(np.isfinite(val) & (val == best[idx]))
    arg[idx[win]] = win
    return best, arg


def plan(vb: np.ndarray, fps: float, n_src: int, mb: np.ndarray, cuts: tuple[np.ndarray, np.ndarray],
         strength: np.ndarray | None = None, rate_min: float = RATE_MIN,
         rate_max: float = RATE_MAX) -> list[tuple[int, int, int]] | None:
    """Best assignment of visual beats to music beats.

    vb : visual beat frames (V,), increasing; mb : music beat times in output seconds (K,);
    cuts : (to, cost), both (V, C): the cuts offered from visual beat v (see :func:`seam_costs`);
    strength : (V,) in [0, 1]; hitting a music beat with beat v costs ``WEAK_COST * (1 - strength[v])``.
    Returns [(k, v, u)]: music beat k is hit by visual beat v, the interval leading to it started at
    visual beat u (for the first entry u = v: the pre-roll). None if no assignment is possible.
    Cost O(K * MAX_SKIP * V * w) with w the visual beats within the speed limits of one interval.
    """
    V, K = len(vb), len(mb)
    if V < 2 or K < 1:
        return None
    vs = vb / fps
    cut_to, cut_cost = cuts
    weak = WEAK_COST * (1.0 - (np.ones(V) if strength is None else np.asarray(strength, np.float64)))
    cost = np.full((K, V), np.inf)
    back = np.full((K, V, 3), -1, np.int32)           # previous k, previous v, interval start u
    for k0 in range(min(MAX_SKIP, K)):
        lead = vs - mb[k0]                              # where the speed-1 pre-roll starts in the source
        c = k0 * SKIP_COST + FREEZE_COST * np.maximum(-lead, 0.0) + weak
        better = c < cost[k0]
        cost[k0][better] = c[better]
        back[k0][better] = -1
    V_idx = np.arange(V)
    for k in range(K - 1):
        ck = cost[k]
        if not np.isfinite(ck).any():
            continue
        # Best way to *start* an interval at u: continue from u (src = u), or cut to u from some v.
        via, arg = _scatter_min(cut_to.ravel(), (ck[:, None] + cut_cost).ravel(), V)
        keep = ck <= via
        best_in = np.where(keep, ck, via)
        src = np.where(keep, V_idx, arg // cut_to.shape[1])
        for m in range(1, min(MAX_SKIP, K - 1 - k) + 1):
            k2 = k + m
            dt = mb[k2] - mb[k]
            if dt <= 0:
                continue
            # Interval u -> v' at a rate within the limits: v' in a window of the (sorted) beats after u.
            lo = np.searchsorted(vs, vs + rate_min * dt, "left")
            hi = np.searchsorted(vs, vs + rate_max * dt, "right")
            w = int((hi - lo).max())
            if w <= 0:
                continue
            to = lo[:, None] + np.arange(w)[None, :]                       # (u, w) candidate v'
            ok = (to < hi[:, None]) & np.isfinite(best_in)[:, None]
            to = np.minimum(to, V - 1)
            r = (vs[to] - vs[:, None]) / dt
            with np.errstate(divide="ignore", invalid="ignore"):
                tot = np.where(ok, best_in[:, None] + np.log2(np.where(ok, r, 1.0)) ** 2 + (m - 1) * SKIP_COST, np.inf)
            c, arg = _scatter_min(to.ravel(), tot.ravel(), V)
            c = c + weak
            better = c < cost[k2]
            if better.any():
                vv = np.flatnonzero(better)
                u = arg[vv] // w
                cost[k2][vv] = c[vv]
                back[k2][vv, 0] = k
                back[k2][vv, 1] = src[u]
                back[k2][vv, 2] = u
    tail = cost + SKIP_COST * (K - 1 - np.arange(K))[:, None]
    if not np.isfinite(tail).any():
        return None
    k, v = np.unravel_index(np.argmin(tail), tail.shape)
    path = []
    while k >= 0:
        pk, pv, u = back[k, v]
        path.append((int(k), int(v), int(u) if u >= 0 else int(v)))
        k, v = pk, pv
    return path[::-1]


def seam_costs(thumbs: np.ndarray, vb: np.ndarray, n_src: int, k: int = CUT_CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """The cuts offered from every visual beat v (showing frame vb[v]; next would be vb[v]+1) to a beat u:
    cost ``CUT_COST + d(frame vb[v]+1, frame vb[u]) / median pair distance``, the ``k`` cheapest u per v,
    never u == v. Returns (to, cost), both (V, k); unused slots have cost inf."""
    V = len(vb)
    a = _frame_features(thumbs, np.minimum(vb + 1, n_src - 1))
    b = _frame_features(thumbs, vb)
    d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0))
    typ = float(np.median(d)) or 1.0
    c = CUT_COST + d / typ
    np.fill_diagonal(c, np.inf)
    k = max(1, min(k, V - 1))
    to = np.argpartition(c, k - 1, axis=1)[:, :k]
    return to, np.take_along_axis(c, to, axis=1)


def restart_frame(thumbs: np.ndarray, n_src: int, fps: float) -> int:
    """Where to continue when the source runs out: the frame j whose predecessor looks most like the
    last frame, at least a second (or a quarter of the clip) before the end."""
    if n_src < 3:
        return 0
    from .classic import frame_features
    hi = max(1, min(n_src - 1 - int(round(fps)), n_src - max(2, n_src // 4)))
    f = frame_features(thumbs[:hi])                    # a slice: read in chunks, never all at once
    last = frame_features(np.asarray(thumbs[n_src - 1:n_src]))[0]
    d = np.linalg.norm(f - last, axis=1)
    return int(np.argmin(d)) + 1


def retime(path, vb: np.ndarray, mb: np.ndarray, fps: float, n_src: int, n_out: int, restart: int,
           start_frame: int = 0) -> tuple[np.ndarray, list[int]]:
    """Output frames of a plan (see :func:`plan`), and the output indices of its cuts."""
    vs = vb / fps
    t = np.arange(n_out) / fps
    s = np.full(n_out, np.nan)
    cuts: list[int] = []
    if path:
        k0, v0, _ = path[0]
        pre = t < mb[k0]
        s[pre] = np.maximum(vs[v0] - (mb[k0] - t[pre]), 0.0)
        for (ka, va, _), (kb, vb_, u) in zip(path[:-1], path[1:]):
            sel = (t >= mb[ka]) & (t < mb[kb])
            r = (vs[vb_] - vs[u]) / (mb[kb] - mb[ka])
            s[sel] = vs[u] + (t[sel] - mb[ka]) * r
            if u != va:
                o = int(math.ceil(mb[ka] * fps - 1e-9))
                if o < n_out:
                    cuts.append(o)
        kl, vl, _ = path[-1]
        tail0 = int(math.ceil(mb[kl] * fps - 1e-9))
        pos = int(vb[vl])
    else:
        tail0, pos = 0, int(start_frame)
    frames = np.empty(n_out, np.int64)
    done = np.isfinite(s)
    frames[done] = np.clip(np.floor(s[done] * fps + 0.5), 0, n_src - 1).astype(np.int64)
    # Speed-1 tail, looping back to the restart frame when the source runs out.
    for o in range(max(tail0, 0), n_out):
        if pos >= n_src:
            pos = restart
            cuts.append(o)
        frames[o] = pos
        pos += 1
    return frames, sorted(set(cuts))


@register("vrb", "Visual Rhythm and Beat (Davis & Agrawala 2018): re-time the video so visual beats hit music beats",
          needs_audio=True)
def vrb(req: WalkRequest) -> Timeline:
    b = req.bundle
    if not req.audio:
        raise LivetexError("vrb follows music: give a conditioning audio file with --audio")
    n_src, fps = b.n_frames, b.fps
    thumbs = b.array("thumbs")
    T = req.n_frames / fps
    vb, env = visual_beats(b)
    mb, tempo = music_beats(req.audio, T)
    params = {"visual_beats": int(len(vb)), "music_beats": int(len(mb)), "tempo_bpm": tempo,
              "rate_min": RATE_MIN, "rate_max": RATE_MAX}
    path = None
    if len(vb) >= 2 and len(mb) >= 1:
        path = plan(vb, fps, n_src, mb, seam_costs(thumbs, vb, n_src), beat_strength(env, vb))
    restart = restart_frame(thumbs, n_src, fps)
    if req.start is not None:
        start = b.segments.frame_range(int(req.start))[0]
    else:
        start = 0
    frames, cuts = retime(path, vb, mb, fps, n_src, req.n_frames, restart, start)
    if path:
        hit = {k: v for k, v, _ in path}
        rates = [(vb[v2] - vb[u]) / fps / (mb[k2] - mb[k1])
                 for (k1, _, _), (k2, v2, u) in zip(path[:-1], path[1:])]
        params.update(aligned_beats=len(hit), aligned_fraction=len(hit) / len(mb),
                      mean_rate=float(np.mean(rates)) if rates else 1.0, cuts=len(cuts))
    else:
        why = "no visual beats in the video" if len(vb) < 2 else (
            "no beats in the audio" if len(mb) == 0 else "no assignment within the speed limits")
        params.update(aligned_beats=0, aligned_fraction=0.0, fallback=f"played at speed 1: {why}", cuts=len(cuts))
    return Timeline(fps=fps, frames=frames, jumps=cuts, method="vrb", seed=req.seed, params=params)
