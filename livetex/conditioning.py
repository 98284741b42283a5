"""Audio-conditioned walks: the texture follows a conditioning sound ("strumming to the beat").

**Timing convention.** A segment walk builds its output as: step 0 shows frames [0, W) of its segment,
every step k >= 1 appends S frames, output frames [W + (k-1) S, W + k S) (W = window, S = stride, in
frames). The conditioning audio, with its sample 0 at output frame 0 (as the renderer muxes it), is
cut into windows on the *output* timeline: window k covers output frames [k S, k S + W). It ends
exactly where step k's frames end and contains them (they are its last S frames), just as a source
segment's audio window contains the frames that segment contributes (its tail). So at step k the walk
compares what will be *heard* while step k's frames are on screen with what was heard while those
frames were filmed. In samples: window k is [round(k S sr / fps), that + window_samples(sr)).

At step k, T_a(k, .) = softmax(score(query_k, keys) / tau_a) over the N segments: the audio model
(:mod:`livetex.audio`, default ``features``) embeds window k after matching its level to the source's;
scores look a few strides ahead along the source (``run_ahead``); tau_a is the model's own temperature,
calibrated at fit time and adjusted per row so a row spreads over 3 to 6 segments (``audio_probs``).
A source frame takes the row of the segment whose tail shows it (:func:`segment_of`).

The walk itself is the texture walk on the clip's transition graph (:mod:`livetex.texture`,
:mod:`livetex.graph`): frame by frame, play on or take one of the frame's exits. Offline the whole song
is known, so ``render`` *plans* (:class:`Planner`, the default): a backward pass over a hidden Markov
model whose prior is the walk's own transitions and whose evidence is the music's (:class:`SongEvidence`:
T_a ** beta, and the song's loudness against the picture's motion, so the performer plays while the
music is loud and rests in its gaps) tells, for every output frame and source frame, how well the rest
of the song can be followed from there; the walk then runs forward weighted by it, with its own
freshness and dwell rules. Cuts land where the graph has good seams, ahead of the change in the music.
Each plan is made again against material its last walk showed more than needed (:func:`plan_song`).
With a microphone the future is unknown: every step plans a short horizon as if the music heard now
went on (:class:`LiveFollower`; ``--audio-walk greedy`` does the same offline). alpha = 1 ignores the audio; alpha
= 0 follows only the music's favourites.

Also here: the conditional baselines ``random-clip`` and ``audio-nn``.
"""

from __future__ import annotations

import sys

import numpy as np

from .audio import SILENCE_DB, reference_db, song_gain, window_levels
from .audio import features as F
from .audio.models import AudioModel, load_audio_model
from .errors import LivetexError
from .media.audio import load_audio
from .segments import Segments
from .walks import WalkRequest, n_steps, register, register_audio, segment_timeline

DEFAULT_ALPHA = 0.5     # measured on the real clips: 0.5 follows the music clearly better than 0.6-0.7 at
                        # the same visible-jump fraction (tools/bench_audio.py --eval)


def _warn(msg: str) -> None:
    print(f"livetex: warning: {msg}", file=sys.stderr)


def output_windows(seg: Segments, steps: int, sr: int = F.SR) -> tuple[np.ndarray, np.ndarray]:
    """Conditioning windows of a walk of ``steps`` steps: (start, end) sample of window k, k = 0..steps-1.

    Window k covers output frames [k S, k S + W): the frames step k appends are its last S frames.
    """
    out = Segments(seg.fps, seg.window_frames + seg.stride_frames * max(0, steps - 1), seg.window_frames,
                   seg.stride_frames, seg.window_s, seg.stride_s)
    r = np.array([out.sample_range(k, sr) for k in range(steps)], np.int64).reshape(-1, 2)
    starts = r[:, 0]
    return starts, starts + seg.window_samples(sr)


def load_conditioning(path: str, seg: Segments) -> np.ndarray:
    """The conditioning audio as mono float32 at ``features.SR`` Hz, sample 0 = output frame 0.

    Any rate, channel layout or codec FFmpeg reads; NaN/inf samples become 0 (load_audio), clipped or
    over-full-scale samples are kept as they are (the features are in dB). Shorter than one window is
    an error: there is nothing to follow.
    """
    y = load_audio(path, F.SR, channels=1)
    need = seg.window_samples(F.SR)
    if len(y) < need:
        raise LivetexError(f"conditioning audio {path} is {len(y) / F.SR:.2f} s long: it needs at least one "
                           f"{need / F.SR:.2f} s window")
    return y


def audio_rows(req: WalkRequest, model: AudioModel | None = None,
               y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, AudioModel, dict]:
    """Queries and T_a rows for every step of the walk ``req`` asks for (``y``: the conditioning audio,
    if the caller has already loaded it with :func:`load_conditioning`).

    Returns (T_a (K, N), queries (K, d), model, info). Windows past the end of the audio are silence.
    """
    b = req.bundle
    model = model or load_audio_model(b, req.audio_model)
    y = load_conditioning(req.audio, b.segments) if y is None else y
    K = n_steps(req)
    starts, ends = output_windows(b.segments, K)
    seg = b.segments
    window = seg.window_samples(F.SR)
    gain = song_gain(y, model.ref_db, window, seg.fps, seg.stride_frames)
    if reference_db(window_levels(y, np.arange(0, max(1, len(y) - window + 1), window // 2), window)) is None:
        _warn(f"the conditioning audio {req.audio} is silent (below {SILENCE_DB:g} dBFS): the texture will show "
              "the source's quietest moments")
    seconds = len(y) / F.SR
    if seconds < req.n_frames / b.fps - 0.5:
        _warn(f"the conditioning audio lasts {seconds:.1f} s, the output {req.n_frames / b.fps:.1f} s: "
              "after its end the texture follows silence")
    q = model.embed_at(y, ends, gain)
    info = {"audio_model": model.name, "audio_tau": model.tau, "audio_gain_db": float(20 * np.log10(gain))}
    return model.probs(q), q, model, info


def song_energy(y: np.ndarray, seg: Segments, steps: int, sr: int = F.SR) -> np.ndarray:
    """(steps,) the song's loudness at every step of a walk: the level (dB, floored at the silence
    level) of conditioning window k (:func:`output_windows`: what is heard while step k's frames are on
    screen), z-scored over the song; silent windows at most -1. A song of constant level gives zeros."""
    starts, _ = output_windows(seg, steps, sr)
    lv = np.maximum(window_levels(y, starts, seg.window_samples(sr)), SILENCE_DB)
    z = ((lv - lv.mean()) / lv.std()).astype(np.float32) if len(lv) and lv.std() > 1e-6 else np.zeros(len(lv), np.float32)
    # silence is quiet whatever the rest of the song does (a song that is all silence has no z-scores)
    return np.where(lv <= SILENCE_DB, np.minimum(z, -1.0), z).astype(np.float32)


def song_beats_for(y: np.ndarray, bundle, n_out: int) -> tuple[np.ndarray | None, np.ndarray | None, dict]:
    """The song's beats on the output frames (livetex.beat.beat_grid; None: no steady pulse) and the
    source frames' motion accents, for a :class:`Planner`; and a note for the log and the timeline."""
    from .beat import beat_grid, motion_accents, picture_motion, song_beats
    times, bpm, conf = song_beats(y)
    info = {"bpm": round(float(bpm), 2), "beat_confidence": round(float(conf), 3), "beats": int(len(times))}
    if not len(times):
        return None, None, info
    accents = motion_accents(picture_motion(bundle.array("thumbs")), bundle.fps)
    return beat_grid(times, bundle.fps, n_out), accents, info


def step_of(t: np.ndarray | int, seg: Segments) -> np.ndarray | int:
    """The walk step (conditioning window) output frame ``t`` belongs to: frames [0, W) are step 0,
    then each stride of S frames one step more (see the timing convention above)."""
    W, S = seg.window_frames, seg.stride_frames
    t = np.asarray(t)
    k = np.where(t < W, 0, (t - W) // S + 1)
    return int(k) if k.ndim == 0 else k


def segment_of(frames: np.ndarray, seg: Segments) -> np.ndarray:
    """The segment whose tail shows each source frame (the segment a frame's audio and model rows are)."""
    f = np.asarray(frames, np.int64)
    return np.clip((f - seg.window_frames) // seg.stride_frames + 1, 0, seg.count - 1)


def frame_motion_z(graph) -> np.ndarray:
    """(n,) how much the picture moves around each source frame: log of the graph's local motion,
    z-scored over the clip (0 everywhere on a clip that moves evenly)."""
    m = np.log(np.asarray(graph.motion, np.float64) + 1e-3)
    return ((m - m.mean()) / m.std()).astype(np.float32) if m.std() > 1e-6 else np.zeros(len(m), np.float32)


@register_audio("contrastive")
def conditioned_walk(req: WalkRequest):
    """The audio-conditioned texture walk (the ``contrastive`` method with audio).

    Offline the whole song is known, so by default the walk is *planned* (:class:`Planner`): cuts are
    placed where the graph allows them, ahead of the musical change that needs them. With
    ``req.extra["audio_walk"] == "greedy"`` each frame's choice is biased by the current window's T_a
    instead, which is what the live player does with a microphone (it cannot hear the future).
    """
    from .texture import walk_for, walk_timeline
    y = load_conditioning(req.audio, req.bundle.segments)
    T, _, model, info = audio_rows(req, y=y)
    alpha = DEFAULT_ALPHA if req.alpha is None else float(req.alpha)
    if not 0.0 <= alpha <= 1.0:
        raise LivetexError(f"alpha must be between 0 and 1, got {alpha}")
    mode = req.extra.get("audio_walk", "plan")
    if mode not in AUDIO_WALKS:
        raise LivetexError(f"unknown audio walk {mode!r}: use one of {', '.join(AUDIO_WALKS)}")
    walk, params = walk_for(req)
    if alpha <= 0:
        walk.dwell = 1          # the music alone decides: no minimum stay after a cut
    loud = song_energy(y, req.bundle.segments, len(T))
    follow = req.extra.get("follow", "auto")
    w = ENERGY_WEIGHT if follow == "auto" else float(follow)
    if mode == "plan":
        beats, accents, beat_info = song_beats_for(y, req.bundle, req.n_frames)
        p, frames, jumps, plan_info = plan_song(walk, T, alpha, req.seed, req.bundle, loud, w, req.n_frames,
                                                start=req.start, beats=beats, accents=accents)
        info.update(plan_info, **beat_info)
    else:
        seg = req.bundle.segments
        live = LiveFollower(walk, seg, alpha)
        walk.reset(walk.first_frame() if req.start is None else int(req.start))
        starts, _ = output_windows(seg, len(T))
        levels = window_levels(y, starts, seg.window_samples(F.SR))     # what a microphone would measure
        parts, jumps, t = [np.array([walk.p])], [], 1
        for k in range(len(T)):
            count = (seg.window_frames - 1) if k == 0 else seg.stride_frames
            count = min(count, req.n_frames - t)
            if count <= 0:
                break
            f, js = live.advance(T[k], count, level_db=float(levels[k]))
            parts.append(f)
            jumps += [t + j for j in js]
            t += count
        frames = np.concatenate(parts)
    return walk_timeline(req, "contrastive", np.asarray(frames), jumps, **params, alpha=alpha, audio_walk=mode,
                         follow=w, **info)


AUDIO_WALKS = ("plan", "greedy")
AUDIO_FLOOR = 30.0     # nats: the most the music can hold against a frame at one step (else T_a underflow
                       # to 0 outweighs every seam and every disagreement cuts at once)
AUDIO_WEIGHT = 0.5     # exponent on T_a at alpha = 0.5 (beta = AUDIO_WEIGHT * (1 - alpha) / alpha)
ENERGY_WEIGHT = 5.0    # nats at alpha = 0.5 per step: the song's loudness times the picture's motion, both
                       # z-scored (song_energy, frame_motion_z): plays when the music plays, rests in its gaps
REUSE_ROUNDS = 2       # re-plans against showing the same material again ...
REUSE_COST = 2.0       # ... each extra showing of a frame in the last round's walk costs this many nats more
TASTE = 3.0            # nats (s.d.): each seed's own liking for some segments (seeds walk different routes)
START_SLACK = 3.0      # nats: a planned walk may begin wherever the song is followed about as well as at best
CUT_COST = 12.0         # nats every cut of a plan must buy in music followed (over the walk's own seam costs)
OFFBEAT_COST = 6.0     # nats: a cut that does not land on a beat of the song (livetex.beat: +-1 frame) ...
ACCENT_WEIGHT = 2.0    # ... and nats at alpha = 0.5 per unit of motion accent shown on a beat (an impact of
                       # the performer's, livetex.beat.motion_accents, meeting the music's beat)


class SongEvidence:
    """What the song says about showing each source frame at each step, in nats.

    ``E_k(f) = beta * max(log T_a(k, seg f) - max_k, -AUDIO_FLOOR) + w * loud_k * motion_z(f)`` with
    ``beta = AUDIO_WEIGHT * (1 - alpha) / alpha`` and ``w = energy_weight * (1 - alpha) / alpha``: the
    audio model's match, and the performer moving while the music is loud and resting in its gaps.
    alpha = 1: nothing; alpha = 0: the music alone (beta 50: up to 1,500 nats a step).
    """

    def __init__(self, graph, seg: Segments, T: np.ndarray, alpha: float, loud: np.ndarray | None,
                 energy_weight: float = ENERGY_WEIGHT):
        self.T, self.seg = np.asarray(T), seg
        self.K = len(self.T)
        self.seg_of = segment_of(np.arange(graph.n), seg)
        # alpha 0: the music alone, as a very strong (finite) weight, so some path always exists
        self.beta = AUDIO_WEIGHT * (1.0 - alpha) / max(alpha, 0.01)
        self.energy = 0.0 if alpha <= 0 or loud is None else energy_weight * (1.0 - alpha) / alpha
        self.loud = loud
        self.motion = frame_motion_z(graph)
        self.extra: np.ndarray | None = None      # (n,) nats added at every step (taste, reuse costs)

    def segment_nats(self, k: int) -> np.ndarray:
        """(N,) the music's log-preference over segments at step k, max 0."""
        logt = np.log(np.maximum(np.asarray(self.T[min(k, self.K - 1)], np.float64), 1e-300))
        return self.beta * np.maximum(logt - logt.max(), -AUDIO_FLOOR)

    def __call__(self, k: int) -> np.ndarray:
        """(n,) nats for every source frame at step k."""
        out = self.segment_nats(k)[self.seg_of]
        if self.energy and self.loud is not None and len(self.loud):
            out = out + self.energy * float(self.loud[min(k, len(self.loud) - 1)]) * self.motion
        if self.extra is not None:
            out = out + self.extra
        return out



LOCK_STAGES = 3        # the planner's model of the dwell after a cut (Planner)
HORIZON_S = 2.0        # a live walk plans this far ahead, assuming the music it hears now goes on
LEVEL_MEMORY_S = 30.0  # ... and judges how loud the music is now against this much of what it heard


class LiveFollower:
    """Following music that cannot be heard ahead (a microphone; ``--audio-walk greedy`` offline).

    Every step, the current window's row (assumed to go on for HORIZON_S: music is locally steady) is
    turned into nats per source frame as a song's :class:`SongEvidence` would be, and each frame the
    walk weighs its exits by how much more the next HORIZON_S of source from there would earn than
    playing on (a prefix sum along the source: O(n) per step, whatever the horizon). So a cut waits
    for a seam the graph offers, and one that the seams make costly still happens when the music
    insists long enough, as in a planned walk, without its backward pass."""

    def __init__(self, walk, seg: Segments, alpha: float, horizon_s: float = HORIZON_S):
        from collections import deque
        self.walk, self.seg, self.alpha = walk, seg, float(alpha)
        self.horizon = max(1, int(round(horizon_s * seg.fps)))
        self.seg_of = segment_of(np.arange(walk.n), seg)
        self.end = walk.end
        self._levels: deque = deque(maxlen=max(10, int(round(LEVEL_MEMORY_S / seg.stride_s))))
        self.last_values: np.ndarray | None = None

    def loudness(self, level_db: float | None) -> float | None:
        """The level heard now as the planner's ``song_energy`` sees a song, but causally: z-scored
        against the last LEVEL_MEMORY_S of levels (silence at most -1). None: no level given."""
        if level_db is None or not np.isfinite(level_db):
            return None
        lv = max(float(level_db), SILENCE_DB)
        self._levels.append(lv)
        a = np.asarray(self._levels)
        z = (lv - a.mean()) / a.std() if len(a) >= 5 and a.std() > 1e-6 else 0.0
        if lv <= SILENCE_DB:
            z = min(z, -1.0)
        return float(np.clip(z, -3.0, 3.0))

    def values(self, row: np.ndarray, alpha: float, loud: float | None = None) -> np.ndarray:
        """(n,) nats the music gives the ``horizon`` frames played on from each source frame (to the
        end of its run if that comes first); ``loud``: the level now (:meth:`loudness`)."""
        ev = SongEvidence(self.walk.g, self.seg, np.asarray(row, np.float32)[None], alpha,
                          None if loud is None else np.array([loud], np.float32))
        per_frame = ev(0) / self.seg.stride_frames
        c = np.concatenate([[0.0], np.cumsum(per_frame)])
        f = np.arange(self.walk.n)
        stop = np.minimum(f + self.horizon, self.end + 1)
        return c[stop] - c[f]

    def advance(self, row: np.ndarray, count: int, alpha: float | None = None,
                level_db: float | None = None) -> tuple[np.ndarray, list[int]]:
        """The next ``count`` frames under a T_a ``row`` (over segments) and the level heard (dBFS, of
        the same window; None: T_a alone): (frames, jump indices)."""
        a = self.alpha if alpha is None else float(alpha)
        loud = self.loudness(level_db)
        self.last_values = self.values(row, a, loud) if a < 1.0 else None
        return self.walk.advance(count, self.last_values)

    def rank(self, f: int) -> float | None:
        """Where source frame f stands in what the music asked for at the last step: the share of frames
        it earns more than (0.5: indifferent; 1: the music's favourite)."""
        v = self.last_values
        return None if v is None else float((v < v[int(f)]).mean())


class Planner:
    """The texture walk, steered by what the rest of the song will ask for.

    A hidden Markov model over source frames, one state per output frame: the prior is the walk's own
    memoryless transitions (:meth:`livetex.texture.Walk.prior_table`: play on, or take an exit at the
    walk's hazard, exits weighted by their seam cost), the evidence :class:`SongEvidence`, each step's
    nats spread over the frames shown during it. Every frame has a *free* copy (the walk may cut) and
    LOCK_STAGES *locked* ones (it has just landed and must show its dwell first; it moves on a stage
    with chance LOCK_STAGES / dwell per frame), so a plan knows that a cut taken just before the music
    changes leaves it stuck through the change. A backward pass gives ``b_t``, how well the song from output frame t + 1 on can be
    followed from each copy of each frame; the walk then runs forward with its own history rules
    (dwell, no return), each frame drawn from its options times the evidence and ``b``. Because the
    song is known in advance, a cut is taken where the graph offers a good one, ahead of the change in
    the music it prepares for.

    Memory: ``b`` is kept at every step boundary ((1 + LOCK_STAGES) x K x n) and recomputed within a
    step when walked.
    Cost: O(T n k) for T output frames, n source frames, k exits.
    """

    def __init__(self, walk, T: np.ndarray, alpha: float, rng: np.random.Generator, seg: Segments, n_out: int,
                 loud: np.ndarray | None = None, energy_weight: float = ENERGY_WEIGHT,
                 avoid: np.ndarray | None = None, taste: bool = True, beats: np.ndarray | None = None,
                 accents: np.ndarray | None = None):
        self.walk, self.rng, self.seg = walk, rng, seg
        self.n_out = int(n_out)
        self.energy_weight = float(energy_weight)
        self.alpha = float(alpha)
        self.ev = SongEvidence(walk.g, seg, T, alpha, loud, energy_weight)
        n = walk.n
        taste = TASTE * rng.standard_normal(seg.count)[self.ev.seg_of] if TASTE > 0 and taste else np.zeros(n)
        self.avoid = avoid
        self.ev.extra = taste - (0.0 if avoid is None else np.asarray(avoid, np.float64))
        # On the song's beats (output frames, livetex.beat.beat_grid): cuts land there (a cut elsewhere
        # costs OFFBEAT_COST nats) and the performer's accents are shown there.
        self.beats = None
        self._accent = None
        self._land = np.full(self.n_out, np.exp(-CUT_COST), np.float32)
        if beats is not None and alpha < 1.0 and np.any(beats):
            self.beats = np.zeros(self.n_out, np.float32)
            b = np.asarray(beats, np.float32)[: self.n_out]
            self.beats[: len(b)] = b
            self._land = np.exp(-CUT_COST - OFFBEAT_COST * (1.0 - self.beats)).astype(np.float32)
            scale = ACCENT_WEIGHT * (1.0 - alpha) / max(alpha, 0.01)
            self._accent = None if accents is None else scale * np.asarray(accents, np.float64)
        self.targets, self.probs = walk.prior_table()
        self.cont = walk.continuing()
        self.succ = np.minimum(np.arange(n) + 1, n - 1)
        # the dwell after a landing, as LOCK_STAGES locked stages the walk leaves at rate LOCK_STAGES / dwell
        # each (an Erlang dwell: as long on average, and far less often short than one geometric stage)
        self.unlock = min(1.0, LOCK_STAGES / max(1, walk.dwell))
        # The backward pass's arrays, in float32 (half the memory traffic of a step; messages are kept
        # in logs, so the range is not a concern): exits, playing on from a free frame, playing on or
        # unlocking from a locked one, and a locked dead end's forced exits.
        q = self.probs[:, 1:]
        with np.errstate(invalid="ignore"):
            forced = np.where(q.sum(axis=1, keepdims=True) > 0, q / q.sum(axis=1, keepdims=True), 0.0)
        self._exits = np.ascontiguousarray(self.targets[:, 1:])
        self._p_exit = np.ascontiguousarray(q, np.float32)
        self._p_on = self.probs[:, 0].astype(np.float32)
        self._forced = np.where(self.cont[:, None], 0.0, forced).astype(np.float32)
        self._stay = ((1.0 - self.unlock) * self.cont).astype(np.float32)
        self._unlock = (self.unlock * self.cont).astype(np.float32)
        self.planned_for = (float(alpha), float(walk.temperature), float(walk.threshold))
        self._per_frame = {}
        W, S = seg.window_frames, seg.stride_frames
        # log b is kept at checkpoints (the last frame before every step, frame 0 and the last frame)
        self.stops = np.unique(np.concatenate([[0], np.arange(W, self.n_out, S) - 1, [self.n_out - 1]]))
        self.check = np.zeros((len(self.stops), 1 + LOCK_STAGES, n), np.float32)
        lb = np.zeros((1 + LOCK_STAGES, n))
        j = len(self.stops) - 1
        for t in range(self.n_out - 2, -1, -1):
            lb = self._back(t, lb)
            if j > 0 and t == self.stops[j - 1]:
                j -= 1
                self.check[j] = lb
        self._block: dict[int, np.ndarray] = {}

    def evidence(self, t: int) -> np.ndarray:
        """(n,) nats for showing each frame at output frame t (its step's evidence over the step's frames)."""
        k = step_of(t, self.seg)
        if k not in self._per_frame:
            if len(self._per_frame) > 4:
                self._per_frame.clear()
            frames = self.seg.window_frames if k == 0 else self.seg.stride_frames
            self._per_frame[k] = self.ev(k) / frames
        if self.beats is not None and self._accent is not None and t < self.n_out and self.beats[t] > 0:
            return self._per_frame[k] + self.beats[t] * self._accent
        return self._per_frame[k]

    def landing(self, t: int) -> float:
        """The factor on cutting into output frame t (CUT_COST, and OFFBEAT_COST off the song's beats)."""
        return float(self._land[min(t, self.n_out - 1)])

    def _back(self, t: int, lb_next: np.ndarray) -> np.ndarray:
        """log b_t (free, then each locked stage) from log b_{t+1}, all shifted by one constant to max 0."""
        lv = (self.evidence(t + 1)[None] + lb_next).astype(np.float32)
        v = np.exp(lv - lv.max())
        land = v[1][self._exits]                     # (n, k): every exit lands in the first locked stage
        on = v[:, self.succ]                          # playing on, each copy
        forced = np.einsum("ij,ij->i", self._forced, land)
        m = np.empty_like(v)
        m[0] = self._p_on * on[0] + np.float32(self.landing(t + 1)) * np.einsum("ij,ij->i", self._p_exit, land)
        for i in range(1, LOCK_STAGES + 1):
            nxt = on[i + 1] if i < LOCK_STAGES else on[0]   # the last stage unlocks into the free copy
            m[i] = self._stay * on[i] + self._unlock * nxt + forced
        lm = np.log(np.maximum(m, np.float32(1e-37)))
        return lm - lm.max()

    def logb(self, t: int) -> np.ndarray:
        """(2, n) log b_t, recomputed from the first checkpoint at or after t (the block down to t is
        kept: the forward walk asks for t, t + 1, ... in turn)."""
        if t not in self._block:
            j = int(np.searchsorted(self.stops, t))
            hi = int(self.stops[j])
            lb = self.check[j].astype(np.float64)
            self._block = {hi: lb}
            for u in range(hi - 1, t - 1, -1):
                lb = self._back(u, lb)
                self._block[u] = lb
        return self._block[t]

    def start(self) -> int:
        """A first frame, drawn evenly among the landable frames from which the whole song is followed
        within START_SLACK nats of the best (not in proportion to the posterior, which is so peaked
        that every seed would begin, and so go on, alike)."""
        lw = self.evidence(0) + self.logb(0)[1]           # a walk starts just landed
        ok = self.walk.landable[: max(1, self.walk.n - self.walk.n // 8)]
        lw = np.where(np.pad(ok, (0, self.walk.n - len(ok))), lw, -np.inf)
        if not np.isfinite(lw).any():
            return self.walk.first_frame()
        cand = np.flatnonzero(lw >= lw[np.isfinite(lw)].max() - START_SLACK)
        return int(cand[self.rng.integers(len(cand))])

    def choose(self, t: int) -> int:
        """The frame to show at output frame t + 1 (the walk stands at output frame t)."""
        cand, pr = self.walk.options(planned=True)
        if len(cand) == 1:
            return int(cand[0])
        lb = self.logb(t + 1)
        # playing on stays free (the walk is free: it has a choice); a landing is locked
        copy = np.where(cand == self.walk.p + 1, 0, 1)
        with np.errstate(divide="ignore"):
            lw = np.log(pr) + self.evidence(t + 1)[cand] + lb[copy, cand] + copy * np.log(self.landing(t + 1))
        if not np.isfinite(lw).any():
            return int(cand[int(np.argmax(pr))])
        w = np.exp(lw - lw[np.isfinite(lw)].max())
        return int(cand[_draw(w, self.rng)])

    def advance(self, count: int, t0: int = 0) -> tuple[np.ndarray, list[int]]:
        """Walk ``count`` frames on from where the walk stands (at planner time ``t0``): (frames, the
        indices into them where a jump lands)."""
        out = np.empty(count, np.int64)
        jumps = []
        for i in range(count):
            prev = self.walk.p
            out[i] = self.walk.move(self.choose(min(t0 + i, self.n_out - 2)))
            if out[i] != prev + 1:
                jumps.append(i)
        return out, jumps

    def run(self, start: int | None = None) -> tuple[np.ndarray, list[int]]:
        """The whole planned walk: (source frame per output frame, jump positions)."""
        self.walk.reset(self.start() if start is None else int(start))
        frames, jumps = [self.walk.p], []
        for t in range(self.n_out - 1):
            f = self.walk.move(self.choose(t))
            if f != frames[-1] + 1:
                jumps.append(t + 1)
            frames.append(f)
        return np.asarray(frames, np.int64), jumps


def _draw(w: np.ndarray, rng: np.random.Generator) -> int:
    c = np.cumsum(w)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), len(w) - 1))


def plan_song(walk, T: np.ndarray, alpha: float, seed: int, bundle, loud: np.ndarray | None,
              energy_weight: float, n_out: int, start: int | None = None, beats: np.ndarray | None = None,
              accents: np.ndarray | None = None):
    """A planned song walk, re-planned against reuse (REUSE_ROUNDS): each round makes the frames the
    last walk showed more often than a song this long needs dearer (REUSE_COST nats per extra
    showing), so the backward pass itself looks for other material instead of circling through the
    few best cuts. Returns (planner, frames, jumps, info)."""
    from .metrics import reshown, reshown_window
    fair = max(1, int(np.ceil(n_out / walk.n)))
    avoid = None
    rounds = []
    for _ in range(REUSE_ROUNDS + 1):
        p = Planner(walk.fork(seed), T, alpha, np.random.default_rng(seed), bundle.segments, n_out, loud,
                    energy_weight, avoid, beats=beats, accents=accents)
        frames, jumps = p.run(start)
        rounds.append(round(reshown(frames, bundle.fps, reshown_window(bundle.n_frames, bundle.fps)), 4))
        extra = REUSE_COST * np.maximum(np.bincount(frames, minlength=walk.n) - fair, 0)
        avoid = extra if avoid is None else avoid + extra
    return p, frames, jumps, {"reshown_rounds": rounds}


# ------------------------------------------------------------------------------------------ baselines
@register("random-clip", "a random contiguous stretch of the source, whatever the music (paper's Random Clip)",
          needs_audio=True)
def random_clip(req: WalkRequest):
    """A contiguous stretch from a random place; if the source runs out, another random stretch."""
    N = req.bundle.segments.count
    K = n_steps(req)
    rng = req.rng

    def start(left: int) -> int:
        # a start from which the rest fits, if the source is long enough; else anywhere
        return int(rng.integers(N - left + 1)) if left <= N else int(rng.integers(N))

    t = start(K) if req.start is None else int(req.start)
    steps = [t]
    while len(steps) < K:
        t = t + 1 if t + 1 < N else start(K - len(steps))
        steps.append(t)
    return segment_timeline(req, steps, "random-clip")


@register("audio-nn", "every step shows the segment whose source audio best matches the music (no visual term)",
          needs_audio=True)
def audio_nn(req: WalkRequest):
    """The paper's Audio Nearest Neighbour: argmax over j of sim(query_k, source audio_j)."""
    from .audio import scores
    _, q, model, info = audio_rows(req)
    steps = [int(j) for j in np.argmax(scores(q, model.source), axis=1)]
    info.pop("audio_tau")
    return segment_timeline(req, steps, "audio-nn", **info)
