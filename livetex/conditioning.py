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
The contrastive sampler's T_v(t, .) has its own (calibrated) temperature, and the step draws from
``alpha * T_v + (1 - alpha) * T_a`` after the sampler's guards and threshold
(:meth:`livetex.sampler.Sampler.step`). alpha = 1 ignores the audio; alpha = 0 ignores the picture.
The live player computes the same rows with :class:`livetex.audio.live.LiveEmbedder` and mixes them
step by step like that (it cannot hear the future). Offline the whole song is known, so ``render``
plans instead (:func:`plan_walk`, the default; ``--audio-walk greedy`` gives the step-by-step mix): a
backward pass over a hidden Markov model (prior: the unconditional walk; evidence: T_a, and the song's
loudness against the picture's motion) tells, for every step and segment, how well the rest of the
song can be followed from there, and the sampler walks forward weighted by it, with all its anti-stutter guards. Cuts then land where the picture allows them,
ahead of the change in the music, and a cut that would show costs so much (SEAM_COST) that the music
gets its way through cuts that do not. How hard the song's loudness pulls the picture (``follow``) is
chosen per song on trial walks (:func:`follow_plan`): the strongest whose walk shows no more of its
cuts than the bundle's unconditional texture does, and replays little more of what it just showed;
each trial re-plans against material its last walk showed again (tools/bench_audio.py --eval).

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
from .sampler import draw, start_limit
from .segments import Segments
from .walks import WalkRequest, n_steps, register, segment_timeline

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


def _start(req: WalkRequest, T0: np.ndarray, N: int) -> int:
    """Where a conditioned walk begins: drawn from the audio's first row (the picture starts in tune)."""
    if req.start is not None:
        return int(req.start)
    p = np.asarray(T0, np.float64)[:N].copy()
    p[start_limit(N):] = 0.0      # not at the very end: the walk needs room to run
    if p.sum() <= 0:
        p[:] = 1.0
    return int(req.rng.choice(N, p=p / p.sum()))


def conditioned_walk(req: WalkRequest):
    """The audio-conditioned contrastive walk (called by the ``contrastive`` method when audio is given).

    Offline the whole song is known, so by default the walk is *planned* (:func:`plan_walk`): cuts are
    placed where the picture allows them, ahead of the musical change that needs them. With
    ``req.extra["audio_walk"] == "greedy"`` it is the paper's step-by-step mix
    ``alpha * T_v + (1 - alpha) * T_a`` instead, which is what the live player does (it cannot hear the
    future).
    """
    from .sampler import sampler_for
    y = load_conditioning(req.audio, req.bundle.segments)
    T, _, model, info = audio_rows(req, y=y)
    alpha = DEFAULT_ALPHA if req.alpha is None else float(req.alpha)
    if not 0.0 <= alpha <= 1.0:
        raise LivetexError(f"alpha must be between 0 and 1, got {alpha}")
    mode = req.extra.get("audio_walk", "plan")
    if mode not in AUDIO_WALKS:
        raise LivetexError(f"unknown audio walk {mode!r}: use one of {', '.join(AUDIO_WALKS)}")
    # The unconditional walk's scores, temperature and threshold. The greedy mix drops its "no jumping
    # back into the last 10 s" guard (short cycles stay forbidden): music repeats itself, and when the
    # chorus comes back the performer should play what they played a moment ago. The plan keeps it (as
    # the player does): a plan steered by a steep seam cost otherwise circles through the few seconds
    # of source whose cuts do not show (piano, string orchestra: 9% of the source in 45 s).
    s, params = sampler_for(req, "contrastive", **song_guards(mode))
    if mode == "plan":
        _, steps, follow = follow_plan(s, T, alpha, req.seed, req.bundle, walk_energy(req.bundle, y, len(T)),
                                       follow=req.extra.get("follow", "auto"), start=req.start)
        info.update(follow)
    else:
        start = _start(req, T[0], s.N)
        s.reset(start)
        steps = [start] + [s.step(extra=T[k], alpha=alpha) for k in range(1, len(T))]
    return segment_timeline(req, steps, "contrastive", **params, alpha=alpha, audio_walk=mode, **info)


AUDIO_WALKS = ("plan", "greedy")
CUT_PROB = 1e-15       # prior probability of a cut the visual model does not rate (to any segment at all),
                       # before its seam cost
CANDIDATES = 32        # visual jump targets kept per segment in the planned walk
AUDIO_FLOOR = 30.0     # nats: the most the music can hold against a segment at one step (else T_a underflow
                       # to 0 outweighs any cut cost and every disagreement cuts at once)
SEAM_COST = 500.0      # nats per unit of seam excess (SeamCost): a cut that changes the picture 10% more than
                       # the source ever does from one frame to the next is e^50 times less likely (0: off)
SEAM_CANDIDATES = 32   # cuts the visual model does not rate, kept per segment: the least visible ones
MIN_DWELL_S = 0.6      # after a cut the planned walk shows at least this much before cutting again
MIN_LOOP_S = 5.0       # the planned walk never jumps back by less than this: shorter loops are stutters
PLAN_NO_RETURN_S = 5.0  # ... nor lands on anything it showed in the last this many seconds (see conditioned_walk)
AUDIO_WEIGHT = 0.5     # exponent on T_a at alpha = 0.5 (beta = AUDIO_WEIGHT * (1 - alpha) / alpha)
ENERGY_WEIGHT = 5.0    # planned walk, nats at alpha = 0.5: the song's loudness times the picture's motion, both
                       # z-scored (song_energy, segment_motion): plays when the music plays, rests in its gaps.
                       # The default for a Planner made directly; walks pick theirs with follow_plan.
REUSE_ROUNDS = 2       # re-plans against showing the same material again (follow_plan) ...
REUSE_COST = 2.0       # ... each extra showing of a segment in the last round's walk costs this many nats more
RESHOWN_SLACK = 0.1    # a song walk may show again within 20 s this much more than the texture (follow_plan)
TASTE = 3.0            # nats (s.d.): each seed's own liking for some segments (Planner.taste)
START_SLACK = 3.0      # nats: a planned walk may begin wherever the song is followed about as well as at best
FOLLOW_LADDER = (0.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)   # energy weights follow="auto" chooses among
SMOOTH_WALKS = 16      # unconditional walks measured for the smoothness target ...
SMOOTH_WALK_S = 60.0   # ... each this long (fixed seeds: the target is the bundle's, not the song's)


def transition_table(s, candidates: int = CANDIDATES, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The unconditional walk's static transition distribution, sparse: (targets, probs), both (N, 1 + M).

    Column 0 is the natural successor (prob 0 at the last segment); the others are the M best visual
    jumps under the sampler's static guards (no stutters, no landing at the very end) and no jump back
    by less than ``MIN_LOOP_S`` (capped at half the clip), weighted like
    :meth:`livetex.sampler.Sampler.distribution`: softmax at the walk's temperature, entries below
    ``threshold * max`` dropped. Cost O(N^2 d) in (block, N) matrix products: ~1 s at N = 5,000.
    """
    N = s.N
    # A walk drawn from a Markov model has no memory, so the sampler's visit-history guards cannot
    # apply; forbidding short backward jumps outright is what keeps it from looping on one gesture.
    back = loop_band(s)
    M = max(1, min(candidates, N - 1))
    targets = np.zeros((N, M + 1), np.int64)
    logit = np.full((N, M + 1), -np.inf, np.float64)
    idx = np.arange(N)
    for a in range(0, N, block):
        rows = idx[a:a + block]
        z = (s.phi[rows] @ s.psi.T).astype(np.float64) / s.temperature
        z[static_blocked(s, rows, back)] = -np.inf
        succ = rows + 1
        has = succ < N
        sl = np.full(len(rows), -np.inf)
        sl[has] = (np.einsum("nd,nd->n", s.phi[rows[has]], s.psi[succ[has]]) / s.temperature)
        if has.any():
            z[np.flatnonzero(has), succ[has]] = -np.inf                    # the successor is column 0
        top = np.argpartition(-z, M - 1, axis=1)[:, :M]
        targets[rows, 0] = np.minimum(succ, N - 1)
        targets[rows, 1:] = top
        logit[rows, 0] = sl
        logit[rows, 1:] = np.take_along_axis(z, top, axis=1)
    logit -= logit.max(axis=1, keepdims=True)
    p = np.exp(logit)
    p[p < s.threshold] = 0.0                       # the sampler's threshold, relative to the row's best
    p /= p.sum(axis=1, keepdims=True)
    return targets, p


def song_guards(mode: str) -> dict:
    """The sampler's history guard for a walk that follows a song (``mode``: "plan" or "greedy"), as
    keyword arguments for :class:`livetex.sampler.Sampler` (render and the player use the same)."""
    return {"no_jump_back_s": PLAN_NO_RETURN_S if mode == "plan" else 0.0}


def walk_energy(bundle, y: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The planner's ``energy``: (:func:`song_energy` of ``y`` over ``steps`` steps, :func:`segment_motion`)."""
    return song_energy(y, bundle.segments, steps), segment_motion(bundle)


def song_energy(y: np.ndarray, seg: Segments, steps: int, sr: int = F.SR) -> np.ndarray:
    """(steps,) the song's loudness at every step of a walk: the level (dB, floored at the silence
    level) of conditioning window k (:func:`output_windows`: what is heard while step k's frames are on
    screen), z-scored over the song. A song of constant level gives zeros."""
    starts, _ = output_windows(seg, steps, sr)
    lv = np.maximum(window_levels(y, starts, seg.window_samples(sr)), SILENCE_DB)
    return ((lv - lv.mean()) / lv.std()).astype(np.float32) if len(lv) and lv.std() > 1e-6 else np.zeros(len(lv), np.float32)


def segment_motion(bundle) -> np.ndarray:
    """(N,) how much the picture moves in each segment: log of the mean frame-to-frame change over the
    frames it appends (its tail), z-scored over the source. Reads every thumbnail once, in chunks."""
    from .audio.metrics import source_motion
    seg = bundle.segments
    c = np.concatenate([[0.0], np.cumsum(source_motion(bundle.array("thumbs")), dtype=np.float64)])
    tails = np.array([seg.tail_range(j) for j in range(seg.count)], np.int64).reshape(-1, 2)
    m = np.log((c[tails[:, 1]] - c[tails[:, 0]]) / np.maximum(tails[:, 1] - tails[:, 0], 1) + 1e-3)
    return ((m - m.mean()) / m.std()).astype(np.float32) if m.std() > 1e-6 else np.zeros(len(m), np.float32)


class SeamCost:
    """How much a cut would show: the *excess* of the cut i -> j is ``max(0, d / level - 1)``, d the mean
    absolute grey change between the last frame shown from i and the first frame appended from j, level
    the source's own 99.5th-percentile change between consecutive frames (:func:`livetex.metrics.
    visible_level`), both on the bundle's thumbnails: 0 means the cut is invisible by the visible-jump
    metric, 1 that it changes the picture twice as much as the source ever does by itself. Unlike a
    yes/no check this tells a cut that barely shows from one that flashes a different scene, and it
    reads the same on a video made of abrupt changes (where cuts of that size are the picture's own
    language) as on a smooth one.

    Holds the 2 N frames a cut joins as grey in 1/16 levels, int16 (2 x 8 KB per segment with 64 px
    thumbnails), plus 16 px copies for finding candidates; reads 2 N thumbnails, in blocks. Not whole
    levels (uint8): on a still, clean picture (the piano clip's level is 1.5 grey levels) rounding
    moved cuts across the threshold (half of one walk's visible cuts read as invisible).
    """

    SMALL = 16
    FIXED = 16             # grey levels are held as int16 multiples of 1/FIXED (exact differences, no floats)

    def __init__(self, bundle, block: int = 2048):
        from .metrics import visible_level
        seg = bundle.segments
        th = bundle.array("thumbs")
        starts = np.asarray(seg.starts, np.int64)
        self.last, self.last_small = self._grey(th, starts + seg.window_frames - 1, block)    # shown before a cut
        self.first, self.first_small = self._grey(th, starts + seg.window_frames - seg.stride_frames, block)  # after
        self.level = max(visible_level(th), 1e-3)
        self.N = len(starts)

    def _grey(self, th, index: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
        from .metrics import grey_frames, shrink_grey
        full = np.empty((len(index), th.shape[1] * th.shape[2]), np.int16)
        small = np.empty((len(index), self.SMALL * self.SMALL), np.float32)
        for a in range(0, len(index), block):
            g = grey_frames(th, index[a:a + block])
            full[a:a + len(g)] = np.rint(g.reshape(len(g), -1) * self.FIXED)     # off by < 0.04 levels
            small[a:a + len(g)] = shrink_grey(g, self.SMALL)
        return full, small

    def pairs(self, targets: np.ndarray, block: int = 128) -> np.ndarray:
        """(N, M) excess of the cuts i -> targets[i, c] (the successor's is 0 by definition)."""
        x = self._pairs_rows(np.arange(len(targets)), targets, block)
        x[targets == (np.arange(len(targets))[:, None] + 1)] = 0.0
        return x

    def least_visible(self, s, m: int, exclude: np.ndarray, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """For every segment the ``m`` least visible cuts allowed by the planned walk's static guards and
        not in ``exclude[i]``: (targets (N, m), excess (N, m); inf where fewer cuts are allowed).
        Candidates (2 m) come from squared distances of 16 px copies (matrix products), then are
        measured exactly. O(N^2) work (tools/bench_audio.py: ~3 s at N = 5,000)."""
        N = self.N
        m = max(1, min(m, N - 1))
        pre = min(N, 2 * m)
        a, b = self.last_small, self.first_small
        a2, b2 = np.einsum("nd,nd->n", a, a), np.einsum("nd,nd->n", b, b)
        back, idx = loop_band(s), np.arange(N)
        out = np.zeros((N, m), np.int64)
        x = np.empty((N, m), np.float64)
        for lo in range(0, N, block):
            rows = idx[lo:lo + block]
            d = a2[rows, None] + b2[None] - 2.0 * (a[rows] @ b.T)
            d[static_blocked(s, rows, back)] = np.inf
            np.put_along_axis(d, exclude[rows], np.inf, axis=1)
            cand = np.argpartition(d, pre - 1, axis=1)[:, :pre]
            ex = self._pairs_rows(rows, cand)
            ex[~np.isfinite(np.take_along_axis(d, cand, axis=1))] = np.inf     # fewer allowed cuts than asked
            order = np.argsort(ex, axis=1)[:, :m]
            out[rows] = np.take_along_axis(cand, order, axis=1)
            x[rows] = np.take_along_axis(ex, order, axis=1)
        return out, x

    def _pairs_rows(self, rows: np.ndarray, cand: np.ndarray, block: int = 32) -> np.ndarray:
        """(len(rows), M) excess of the cuts rows[i] -> cand[i, c]."""
        ex = np.empty(cand.shape, np.float64)
        for a in range(0, len(rows), block):
            d = np.abs(self.last[rows[a:a + block], None] - self.first[cand[a:a + block]]).sum(
                axis=2, dtype=np.int64) / (self.FIXED * self.last.shape[1])
            ex[a:a + block] = np.maximum(d / self.level - 1.0, 0.0)
        return ex


class Planner:
    """The sampler's own walk, steered by what the rest of the song will ask for.

    Model: a hidden Markov chain whose state at step k is the segment shown and whose evidence at step
    k is ``T_a(k, j) ** beta``, ``beta = AUDIO_WEIGHT * (1 - alpha) / alpha``, times
    ``exp(w * loud_k * motion_j)`` when ``energy`` = (:func:`song_energy`, :func:`segment_motion`) is
    given (``w = energy_weight * (1 - alpha) / alpha``, default ENERGY_WEIGHT; :func:`follow_plan`
    chooses it per song): the performer plays while the music is loud and rests in its gaps, whatever
    the audio model makes of the sound. Each seed also adds its own liking for some segments (TASTE), so
    seeds walk different routes through the same song. Its prior is the
    unconditional walk's transition distribution (:func:`transition_table`) plus ``cut_prob / N`` for
    every other cut (one the visual model does not rate, taken only when the music insists long
    enough), each cut then weighted by ``exp(-SEAM_COST * excess)`` (:class:`SeamCost`: how much more
    the cut changes the picture than the source ever does by itself). A backward pass gives
    ``b_k(j)``, how well the music from step k + 1 on can be followed from segment j at step k. The walk
    then runs forward with the sampler itself — its visit-history guards (no return within
    ``min_return``, penalties on recent places and repeated jumps) included, which a memoryless model
    cannot express — drawing each step from that prior (with the sampler's live distribution as
    P_v) times ``T_a(k, j) ** beta * b_k(j)``. Because the song is known in advance, a cut is taken
    where the picture allows one, ahead of the change in the music it prepares for, instead of at the
    change from wherever the walk happens to be; and the seam cost is steep, so the music gets its way
    through cuts that do not show. On a video made of abrupt changes (the synthetic tone video, whose
    shapes appear at once) cuts of that size are within the source's own level and cost nothing.
    alpha = 1: the unconditional walk; alpha = 0: the music alone.

    Cost: O(N^2) once to list the least visible cuts (:meth:`SeamCost.least_visible`), O(K N M) for
    the backward pass, then one sampler step per output step; O(K N) memory. ``planned_for`` records the
    (alpha, temperature, threshold) it was built with, so a live caller knows when a control change has
    made it stale; a re-plan given ``previous`` reuses its seam measurements.
    """

    def __init__(self, s, T: np.ndarray, alpha: float, rng: np.random.Generator, bundle=None,
                 cut_prob: float | None = None, candidates: int = CANDIDATES, previous: "Planner | None" = None,
                 energy: tuple[np.ndarray, np.ndarray] | None = None, energy_weight: float | None = None,
                 avoid: np.ndarray | None = None):
        self.s, self.T, self.rng, self.bundle = s, T, rng, bundle
        if energy is None and previous is not None:
            energy = previous.energy
        self.energy = energy       # (song_energy (K,), segment_motion (N,)) or None
        if energy_weight is None:
            energy_weight = previous.follow if previous is not None else ENERGY_WEIGHT
        self.follow = float(energy_weight)      # nats at alpha = 0.5 (follow_plan picks it)
        self.planned_for = (float(alpha), float(s.temperature), float(s.threshold))
        self.cut_prob = c = CUT_PROB if cut_prob is None else float(cut_prob)
        K, N = T.shape
        self.K, self.N = K, N
        key = (N, float(s.temperature), float(s.threshold), loop_band(s), s.min_jump, s.runway, int(candidates))
        if (previous is not None and previous.table_key == key and previous.s.phi is s.phi
                and previous.s.psi is s.psi):
            targets, probs = previous.table, previous.probs      # same scores and settings (a trial or a re-plan)
        else:
            targets, probs = transition_table(s, candidates)
        self.table_key, self.probs = key, probs
        if previous is not None and previous.bundle is bundle and np.array_equal(previous.table, targets):
            # a re-plan (new alpha or tau): the same cuts, already measured
            self.seams, self.table, self.targets, prior, self.floor = (previous.seams, previous.table,
                                                                       previous.targets, previous.prior, previous.floor)
            self.excess, self.worst = previous.excess, previous.worst
        else:
            self.table = targets
            self.seams = SeamCost(bundle) if bundle is not None and SEAM_COST > 0 else None
            if self.seams is None:
                self.targets, prior, self.floor = targets, (1.0 - c) * probs, np.full(N, c)
            else:
                # The prior of a cut is the visual model's, times exp(-SEAM_COST * excess); rows are not
                # renormalised, so a segment whose every way on shows (the clip's last one) really costs.
                # Cuts the visual model does not rate keep cut_prob / N each, times their seam cost: the
                # least visible of them are listed, every other one is taken to cost at least as much
                # as the worst listed (``floor``, spread over all segments).
                xt = self.seams.pairs(targets)
                more, x = self.seams.least_visible(s, SEAM_CANDIDATES, targets)
                self.targets = np.concatenate([targets, more], axis=1)
                self.excess = np.concatenate([xt, x], axis=1)
                prior = np.concatenate([(1.0 - c) * probs * np.exp(-SEAM_COST * xt), (c / N) * np.exp(-SEAM_COST * x)], axis=1)
                # Every other cut costs at least the worst listed one; when fewer than asked were
                # listed, there is no other (the guards forbid the rest).
                full = np.isfinite(x).all(axis=1)
                self.worst = np.where(full, np.where(np.isfinite(x), x, 0.0).max(axis=1), np.inf)
                self.floor = c * np.exp(-SEAM_COST * self.worst)
        self.prior = prior
        self.beta = np.inf if alpha <= 0 else AUDIO_WEIGHT * (1.0 - alpha) / alpha
        self.energy_weight = 0.0 if alpha <= 0 or energy is None else self.follow * (1.0 - alpha) / alpha
        # A per-seed liking for some segments (constant over the song): where the evidence is strong the
        # posterior is so peaked that every seed would otherwise walk the same route through a song.
        self.taste = (TASTE * rng.standard_normal(N)).astype(np.float64) if TASTE > 0 else None
        self.avoid = avoid         # (N,) nats against segments (follow_plan's re-planning rounds), or None
        if avoid is not None:
            self.taste = (0.0 if self.taste is None else self.taste) - np.asarray(avoid, np.float64)
        self.back = loop_band(s)
        self.dwell = 0 if alpha <= 0 else max(1, int(round(MIN_DWELL_S / s.stride_s)))   # alpha 0: music alone
        self.since = self.dwell
        # log b_k, each row shifted to max 0: in logs because a long run of disagreement would
        # underflow the plain messages, and a row of zeros would leave the walk nothing to follow
        logb = np.empty((K, N), np.float32)
        logb[K - 1] = 0.0
        for k in range(K - 2, -1, -1):
            lv = self.log_evidence(k + 1) + logb[k + 1]
            top = lv.max()
            v = np.exp(lv - top)
            m = (self.prior * v[self.targets]).sum(axis=1) + self.floor * v.mean()
            lm = np.log(np.maximum(m, 1e-300))
            logb[k] = lm - lm.max()
        self.logb = logb

    def log_evidence(self, k: int) -> np.ndarray:
        """log T_a(k, .) ** beta, shifted to max 0, each entry at least -beta * AUDIO_FLOOR (O(N) memory)."""
        logt = np.log(np.maximum(np.asarray(self.T[k], np.float64), 1e-300))
        if np.isinf(self.beta):
            return np.where(logt >= logt.max() - 1e-9, 0.0, -np.inf)    # the music's favourites only
        out = self.beta * np.maximum(logt - logt.max(), -AUDIO_FLOOR)
        if self.energy_weight:
            loud, motion = self.energy
            out += self.energy_weight * float(loud[min(k, len(loud) - 1)]) * motion
        if self.taste is not None:
            out += self.taste
        return out

    def start(self) -> int:
        """A first segment, drawn evenly among those from which the whole song is followed within
        START_SLACK nats of the best (not at the very end). Not in proportion to the posterior: that
        is so peaked that every seed would begin, and so go on, alike."""
        lw = (self.log_evidence(0) + self.logb[0]).astype(np.float64)
        lw[start_limit(self.N):] = -np.inf
        if not np.isfinite(lw).any():
            return 0
        ok = np.flatnonzero(lw >= lw.max() - START_SLACK)
        return int(ok[self.rng.integers(len(ok))])

    def step(self, k: int) -> int:
        """Move the sampler to step k's segment (k in 1..K-1) and return it."""
        s, N, t = self.s, self.N, self.s.t
        logits = s.logits(t)
        if self.since < self.dwell and t + 1 < N and np.isfinite(logits[t + 1]):
            self.since += 1
            return s.move(t + 1)                 # show each landing for at least MIN_DWELL_S
        allowed = np.isfinite(logits)
        p = s.distribution(t, logits=logits)
        with np.errstate(divide="ignore"):
            lq = np.log((1.0 - self.cut_prob) * p + (self.cut_prob / N) * allowed)
        if self.seams is not None:
            # measured cuts at their seam cost; any other as costly as the worst measured from here.
            # In logs: at the clip's last segment every way on may show, and the least bad must win.
            x = np.full(N, self.worst[t])
            listed = np.isfinite(self.excess[t])       # the others are placeholders (fewer cuts allowed)
            x[self.targets[t][listed]] = self.excess[t][listed]
            if t + 1 < N:
                x[t + 1] = 0.0
            lq -= SEAM_COST * x
        lw = lq + self.log_evidence(k) + self.logb[k]
        lw[max(0, t - self.back):t] = -np.inf          # as in the prior: no short loops
        if np.isfinite(lw).any():
            w = np.exp(lw - lw[np.isfinite(lw)].max())
        else:                 # everything the music wants is blocked by the guards right now
            w = np.asarray(self.T[k], np.float64) * allowed
            if w.sum() <= 0:
                w = p
        j = s.move(draw(w, self.rng))
        self.since = self.since + 1 if j == t + 1 else 1
        return j


    def attach(self, s, rng: np.random.Generator) -> "Planner":
        """Walk ``s`` with ``rng`` from now on (a planner chosen on a trial walk, handed to the real one)."""
        self.s, self.rng, self.since = s, rng, self.dwell
        return self

    def walk(self, start: int | None = None) -> list[int]:
        """The whole planned walk: K steps from ``start`` (default :meth:`start`)."""
        first = self.start() if start is None else int(start)
        self.s.reset(first)
        self.since = self.dwell
        return [first] + [self.step(k) for k in range(1, self.K)]


def visible_cuts(seams: "SeamCost", steps) -> tuple[int, int]:
    """(cuts that show (seam excess > 0: the visible-jump metric), all cuts) of a walk."""
    st = np.asarray(steps, np.int64)
    cut = np.flatnonzero(st[1:] != st[:-1] + 1)
    if not len(cut):
        return 0, 0
    return int((seams._pairs_rows(st[cut], st[cut + 1][:, None])[:, 0] > 0).sum()), len(cut)


def visible_fraction(seams: "SeamCost", steps) -> float:
    """The fraction of a walk's cuts that show; 0 without cuts."""
    shown, cuts = visible_cuts(seams, steps)
    return shown / cuts if cuts else 0.0


def texture_targets(s, seams: "SeamCost") -> tuple[float, float]:
    """What a song walk must not exceed, measured on the unconditional texture (SMOOTH_WALKS walks of
    SMOOTH_WALK_S, fixed seeds, the unconditional guards): the fraction of its cuts that show
    (:func:`visible_fraction`) and the fraction of its steps that show again a segment shown in the
    last RESHOWN_S seconds (:func:`livetex.metrics.reshown`; unavoidable on a short clip)."""
    from .metrics import RESHOWN_S, reshown
    from .sampler import NO_JUMP_BACK_S
    n = max(2, int(round(SMOOTH_WALK_S / s.stride_s)))
    cuts = shown = 0
    again = []
    for i in range(SMOOTH_WALKS):
        f = s.fork(seed=i, no_jump_back_s=NO_JUMP_BACK_S)
        st = f.walk(n, int(f.rng.integers(start_limit(f.N))))
        v, c = visible_cuts(seams, st)
        shown, cuts = shown + v, cuts + c
        again.append(reshown(np.asarray(st), 1.0 / s.stride_s, RESHOWN_S))
    return (shown / cuts if cuts else 0.0), float(np.mean(again))


def follow_plan(s, T: np.ndarray, alpha: float, seed: int, bundle, energy: tuple[np.ndarray, np.ndarray],
                follow: float | str = "auto", start: int | None = None) -> tuple["Planner", list[int], dict]:
    """A planned walk that follows the song as hard as it can while staying as smooth and as fresh as
    the texture.

    ``follow`` is the energy weight (nats at alpha = 0.5: how hard the performer is made to play while
    the music is loud and rest in its gaps). ``"auto"`` picks it from FOLLOW_LADDER by bisection on
    trial walks: the largest whose walk shows no larger a fraction of its cuts than the unconditional
    texture of this bundle, and shows again little more of what it showed in the last 20 s
    (:func:`texture_targets`, RESHOWN_SLACK). How hard a video can follow a song without showing its
    cuts is the video's own: the 97 s piano clip has many invisible cuts and a strong weight takes
    visible ones, while the 10 s violin duet's unconditional texture already shows 57% of its cuts
    and the music may have more. If no weight tried keeps both, smoothness alone decides. Each trial
    re-plans against reuse (REUSE_ROUNDS, see ``trial``). Trials are walked on forks of ``s``; ``s``
    is left as it was.

    Returns the chosen planner (attached to a fork of ``s``, at its walk's end), its walk (K steps from
    ``start``, default: where the song's beginning fits best) and what was measured.
    """
    from .metrics import RESHOWN_S, reshown
    targets = None
    fair = max(1, int(np.ceil(len(T) / len(s.phi))))

    def trial(w: float, previous):
        # Each round makes the segments the last walk showed more often than it had to dearer
        # (REUSE_COST nats per extra showing, summed over rounds; a song longer than the clip must show
        # each segment len(T) / N times), and plans again: the backward pass itself then looks for
        # other material, where a forward-only penalty could only push the walk off its plan (piano,
        # 45 s: 59% of frames shown again within 20 s without these rounds, 4% with them; the
        # texture: 1%). The last round whose cuts show no more often than the texture's is kept (else
        # the smoothest): over a long song fresh material can cost visible cuts.
        nonlocal targets
        avoid, kept = None, None
        for _ in range(REUSE_ROUNDS + 1):
            p = Planner(s.fork(seed), T, alpha, np.random.default_rng(seed), bundle, energy=energy,
                        energy_weight=w, previous=previous, avoid=avoid)
            steps = p.walk(start)
            previous = p
            if p.seams is None:
                return p, steps, 0.0, 0.0
            if targets is None:
                targets = texture_targets(s, p.seams)
            v = visible_fraction(p.seams, steps)
            if kept is None or v <= targets[0] + 1e-9 or (kept[2] > targets[0] + 1e-9 and v < kept[2]):
                kept = (p, steps, v, reshown(np.asarray(steps), 1.0 / s.stride_s, RESHOWN_S))
            extra = REUSE_COST * np.maximum(np.bincount(steps, minlength=p.N) - fair, 0)
            avoid = extra if avoid is None else avoid + extra
        return kept

    if follow != "auto":
        p, steps, _, _ = trial(float(follow), None)
        return p, steps, {"follow": float(follow)}
    if bundle is None or SEAM_COST <= 0 or not 0.0 < alpha < 1.0 or energy is None:    # nothing to weigh
        p, steps, _, _ = trial(ENERGY_WEIGHT, None)
        return p, steps, {"follow": ENERGY_WEIGHT}
    # Bisection: about three trials for seven rungs. Only the best trials are kept (each holds K x N
    # backward messages): passing both targets, passing smoothness, the smoothest.
    lo, hi, tried = 0, len(FOLLOW_LADDER) - 1, {}
    both = smooth = smoothest = prev = None
    while lo <= hi:
        mid = (lo + hi) // 2
        w = FOLLOW_LADDER[mid]
        p, steps, v, r = trial(w, prev)
        prev = p
        tried[w] = (round(v, 4), round(r, 4))
        smooth_ok, fresh_ok = v <= targets[0] + 1e-9, r <= targets[1] + RESHOWN_SLACK
        if smooth_ok and (smooth is None or w > smooth[2]):
            smooth = (p, steps, w)
        if smooth_ok and fresh_ok and (both is None or w > both[2]):
            both = (p, steps, w)
        if smooth_ok and fresh_ok:
            lo = mid + 1
        else:
            hi = mid - 1
        if smoothest is None or v < tried[smoothest[2]][0]:
            smoothest = (p, steps, w)
    p, steps, w = both or smooth or smoothest
    return p, steps, {"follow": w, "follow_target": round(targets[0], 4), "reshown_target": round(targets[1], 4),
                      "follow_tried": {str(k): v for k, v in tried.items()}}


def plan_walk(s, T: np.ndarray, alpha: float, rng: np.random.Generator, start: int | None = None,
              cut_prob: float | None = None, candidates: int = CANDIDATES, bundle=None,
              energy: tuple[np.ndarray, np.ndarray] | None = None) -> list[int]:
    """A whole planned walk of len(T) steps (see :class:`Planner`)."""
    return Planner(s, T, alpha, rng, bundle, cut_prob, candidates, energy=energy).walk(start)


def static_blocked(s, rows: np.ndarray, back: int) -> np.ndarray:
    """(len(rows), N) the cuts from ``rows`` the planned walk never takes, whatever its history:
    stutters and skips (closer than the sampler's min_jump), jumps back by fewer than ``back`` steps,
    landings in the sampler's runway at the very end."""
    ahead = np.arange(s.N)[None, :] - np.asarray(rows)[:, None]
    blocked = (np.abs(ahead) < s.min_jump) | ((ahead < 0) & (ahead > -back))
    if s.runway:
        blocked[:, s.N - s.runway:] = True
    return blocked


def loop_band(s) -> int:
    """Steps within which the planned walk may not jump back (MIN_LOOP_S, at most half the clip).

    Why half: the seam cost makes a short clip's few invisible cuts very attractive, and on the 10 s
    violin duet a cap of a third let the plan replay one 3.4 s stretch (61% of its cuts landed on
    something shown in the last 5 s; with half, 15%)."""
    return int(min(round(MIN_LOOP_S / s.stride_s), max(s.min_jump, s.N // 2)))


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
