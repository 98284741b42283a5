"""The texture walk: an endless path through a clip's transition graph, decided one output frame at a time.

At every frame the walk either plays on (``p -> p + 1``) or takes one of the frame's exits (see
:mod:`livetex.graph`). The chance of cutting and where to go are separate questions:

- *Where.* Exit i weighs ``exp(-cost_i / tau) * exp(-FRESH_WEIGHT * recent_i)``: cheap seams first, and
  material the viewer has not seen lately (``recent`` is how recently the frames the landing is about
  to replay, ``LOOKAHEAD_S`` of them, were shown, fading over ``FRESH_S`` — capped at half a short
  clip). Nothing shown in the last ``NO_RETURN_S`` is landed on, and exits below ``threshold`` times the
  best one are dropped (the paper's thresholding). Higher tau: worse seams allowed, more jumps.
- *When.* After a landing the walk shows at least ``DWELL_S``; then each frame cuts with probability
  ``rate * sum_i w_i`` (capped): frames with good fresh exits cut more, so cuts land where the seams
  are. ``rate`` is calibrated (:func:`calibrate_rate`) so that the walk makes a given number of jumps
  per minute. Close to a dead end (the end of the clip, or the edge of the live part of the graph) the
  chance rises so that the walk leaves on a good exit before it is forced to take any.

One step costs a few small array operations over the frame's k exits (independent of the clip's
length). Numpy only: runs in the renderer and in the player.
"""

from __future__ import annotations

import math

import numpy as np

from .walks import register

DEFAULT_JUMPS_PER_MIN = 15.0
DEFAULT_THRESHOLD = 0.05
DEFAULT_TEMPERATURE = 2.0      # cost units: an exit one "frame of motion" worse weighs e^-0.5 as much
DWELL_S = 0.8
FRESH_S = 20.0
LOOKAHEAD_S = 2.0
FRESH_WEIGHT = 12.0
NOVELTY_WEIGHT = 3.0           # nats against material shown at any time before (long clips: coverage)
NO_RETURN_S = 3.0
URGENCY_S = 1.0
MAX_HAZARD = 0.9
RATE_FLOOR = 0.5               # calibrate_rate never goes below this share of its first estimate
AHEAD_BOOST = 6.0              # nats: the most a "better than anything ahead" exit is favoured


class Walk:
    """A seeded walk over a :class:`livetex.graph.Graph`.

    Parameters
    ----------
    graph : the clip's transition graph.
    temperature : tau, in seam-cost units (higher: worse seams allowed, more jumps).
    rate : jump-rate multiplier (per frame); default from :func:`calibrate_rate` for 15 jumps/min.
    threshold : exits below this fraction of the best one (at this frame) are dropped.
    seed : the same seed, graph and settings give the same walk.
    """

    def __init__(self, graph, temperature: float = DEFAULT_TEMPERATURE, rate: float | None = None,
                 threshold: float = DEFAULT_THRESHOLD, seed: int = 0, dwell_s: float = DWELL_S,
                 fresh_s: float = FRESH_S, lookahead_s: float = LOOKAHEAD_S, fresh_weight: float = FRESH_WEIGHT,
                 no_return_s: float = NO_RETURN_S, urgency_s: float = URGENCY_S):
        self.g = graph
        self.n, self.fps = graph.n, graph.fps
        fps, n = self.fps, self.n
        self.rng = np.random.default_rng(seed)
        self.threshold = float(threshold)
        self.dwell = max(1, int(round(dwell_s * fps)))
        self.fresh = max(1.0, min(fresh_s, 0.5 * n / fps) * fps)              # frames
        self.lookahead = max(1, min(int(round(lookahead_s * fps)), n // 4 or 1))
        self.fresh_weight = float(fresh_weight)
        self.no_return = max(1, int(round(min(no_return_s * fps, 0.25 * n))))
        self.urgency = max(1.0, urgency_s * fps)
        self.end = graph.run_end()
        self.ahead = best_ahead(graph, self.end)
        # landing on g must leave room to show the dwell before the walk is forced to cut again
        self.landable = graph.alive & (self.end - np.arange(n) >= min(self.dwell, max(1, n // 8)))
        self._exits = np.where((graph.exits >= 0) & self.landable[np.maximum(graph.exits, 0)], graph.exits, -1)
        self._steps = np.arange(self.lookahead)
        # How much re-showing a frame shows: a still picture shown again looks like a rest, not a repeat
        # (0 below a tenth of the clip's typical motion, 1 from half of it up). A plan
        # that follows a song weighs freshness by it, so the song's gaps may rest on the same still frames.
        mv = np.asarray(graph.motion, np.float64)
        ref = float(np.median(mv[mv > 0])) if (mv > 0).any() else 1.0
        self.moving = np.clip((mv / ref - 0.1) / 0.4, 0.0, 1.0)
        self.temperature = float(temperature)
        self.rate = float(rate) if rate is not None else initial_rate(graph, self.temperature)
        self.reset(self.first_frame())

    # ---- controls
    @property
    def temperature(self) -> float:
        return self._tau

    @temperature.setter
    def temperature(self, tau: float) -> None:
        self._tau = max(float(tau), 1e-3)
        with np.errstate(over="ignore", invalid="ignore"):
            self._w = np.where(self._exits >= 0, np.exp(-self.g.cost / self._tau), 0.0)

    # ---- state
    def first_frame(self) -> int:
        """A random live frame with room to play (not in the last eighth of the clip)."""
        ok = np.flatnonzero(self.landable[: max(1, self.n - self.n // 8)])
        if not len(ok):
            ok = np.flatnonzero(self.g.alive)
        return int(ok[self.rng.integers(len(ok))]) if len(ok) else 0

    def reset(self, start: int) -> None:
        self.p = int(start)
        self.t = 0                                   # output frames emitted (the start frame is frame 0)
        self.since = 0                               # frames since the last landing
        self.last = np.full(self.n, -np.inf)         # output time each source frame was last shown
        self.last[self.p] = 0
        self.jumps = 0

    def fork(self, seed: int) -> "Walk":
        """An independent walk with the same graph and settings, from a fresh start."""
        w = Walk.__new__(Walk)
        w.__dict__.update(self.__dict__)
        w.rng = np.random.default_rng(seed)
        w.reset(w.first_frame())
        return w

    # ---- one frame
    def staleness(self, f: np.ndarray) -> np.ndarray:
        """(len(f),) nats against showing the ``lookahead`` frames from each f next: how recently they
        were shown (1 = just now, 0 = ``fresh`` frames ago or never), times FRESH_WEIGHT, plus
        NOVELTY_WEIGHT times the share of them ever shown."""
        idx = np.minimum(np.asarray(f)[:, None] + self._steps[None], self.n - 1)
        age = self.t + 1 - self.last[idx]
        recent = np.clip(1.0 - age / self.fresh, 0.0, 1.0).mean(axis=1)
        ever = np.isfinite(age).mean(axis=1)
        return self.fresh_weight * recent + NOVELTY_WEIGHT * ever

    def exit_weights(self, p: int | None = None, thresholded: bool = True, fresh: bool = True,
                     still_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(targets, weights) of the exits the walk may take from p now (weights before ``rate``).
        A planner weighs freshness and weak exits itself: ``thresholded=False`` keeps the exits below
        ``threshold`` times the best, ``fresh=False`` leaves out the staleness penalty (the hard
        no-return rule stays), ``still_ok`` weighs it by how much the landing moves (:attr:`moving`)."""
        p = self.p if p is None else int(p)
        e = self._exits[p]
        ok = e >= 0
        if not ok.any():
            return e[:0], np.zeros(0)
        e, c = e[ok], self.g.cost[p][ok]
        if fresh:
            st = self.staleness(e)
            w = self._w[p][ok] * np.exp(-(st * self.moving[e] if still_ok else st))
        else:
            w = self._w[p][ok]
        # Now or never: when the rest of this run to its dead end offers only worse seams (a clip
        # that ends on a pose nothing else matches), the good exits here count for more.
        w = w * np.exp(np.clip((self.ahead[p] - c) / self._tau, 0.0, AHEAD_BOOST))
        w[self.t + 1 - self.last[e] < self.no_return] = 0.0
        if thresholded and w.max(initial=0.0) > 0:
            w[w < self.threshold * w.max()] = 0.0
        return e, w

    def hazard(self, p: int, total: float, stay: float = 1.0) -> float:
        """The chance of cutting at p given its exits' total weight (``stay``: the weight of playing on)."""
        h = min(MAX_HAZARD, self.rate * total / max(stay, 1e-12))
        left = self.end[p] - p
        if left < self.urgency:
            h = max(h, 1.0 / (left + 1))
        return h

    def options(self, p: int | None = None, planned: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(frames, probabilities) the walk may show after p now, playing on first if it may (what
        :meth:`choose` draws from without a bias). ``planned``: for a planner that reweights them and
        weighs weak exits itself (no threshold) and lets the music rest on still frames (freshness
        weighed by :attr:`moving`): without freshness a plan re-showed 38-56 % of its frames within
        20 s on the piano and cartoon clips."""
        p = self.p if p is None else int(p)
        cont = self.g.continues(p)
        if cont and self.since < self.dwell:
            return np.array([p + 1]), np.ones(1)
        e, w = self.exit_weights(p, thresholded=not planned, still_ok=planned)
        total = float(w.sum())
        if not cont:
            if total > 0:
                return e, w / total
            return np.array([self._forced(p)]), np.ones(1)
        if total <= 0:
            return np.array([p + 1]), np.ones(1)
        stay = math.exp(-float(self.staleness(np.array([p + 1]))[0]) * (float(self.moving[p + 1]) if planned else 1.0))
        h = self.hazard(p, total, stay)
        return np.concatenate([[p + 1], e]), np.concatenate([[1.0 - h], h * w / total])

    def prior_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The walk's memoryless transitions, for a planner's backward pass: (targets, probs), both
        (n, 1 + k); column 0 plays on (prob 0 where it cannot). No history (freshness, dwell): a
        Markov model has no memory; the forward walk (:meth:`options`) applies it. Cached while the
        temperature and rate stay."""
        key = (self._tau, self.rate)
        if getattr(self, "_prior_key", None) == key:
            return self._prior
        self._prior_key, self._prior = key, self._prior_table()
        return self._prior

    def _prior_table(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        e = self._exits
        w = self._w * (e >= 0)
        total = w.sum(axis=1)
        cont = self.continuing()
        h = np.minimum(MAX_HAZARD, self.rate * total)
        left = self.end - np.arange(n)
        h = np.where(left < self.urgency, np.maximum(h, 1.0 / (left + 1)), h)
        h = np.where(cont, np.where(total > 0, h, 0.0), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where(total[:, None] > 0, w / total[:, None], 0.0)
        targets = np.concatenate([np.minimum(np.arange(n) + 1, n - 1)[:, None], np.maximum(e, 0)], axis=1)
        probs = np.concatenate([(1.0 - h)[:, None] * cont[:, None], h[:, None] * q], axis=1)
        return targets, probs

    def continuing(self) -> np.ndarray:
        """(n,) bool: frames from which the walk may play on."""
        return np.append(self.g.alive[1:], False)

    def choose(self, bias: np.ndarray | None = None) -> int:
        """The next source frame (does not move the walk). ``bias``: optional (n,) log-weights of
        frames (e.g. what the music asks for), applied to each exit relative to playing on."""
        p = self.p
        cont = self.g.continues(p)
        if cont and self.since < self.dwell:
            return p + 1
        e, w = self.exit_weights(p, thresholded=bias is None)
        if bias is not None and len(e):
            ref = bias[p + 1] if cont else bias[e].max()
            w = w * np.exp(np.clip(bias[e] - ref, -50.0, 50.0))
            if w.max(initial=0.0) > 0:
                w[w < self.threshold * w.max()] = 0.0
        total = float(w.sum())
        if cont:
            if total <= 0:
                return p + 1
            # Playing on into material just shown is stale too: the cut becomes likelier.
            stay = math.exp(-float(self.staleness(np.array([p + 1]))[0]))
            if self.rng.random() >= self.hazard(p, total, stay):
                return p + 1
            return int(e[_draw(w, self.rng)])
        if total > 0:
            return int(e[_draw(w, self.rng)])
        return self._forced(p)

    def _forced(self, p: int) -> int:
        """A dead end with no allowed exit: the least recently shown of its exits, else any live frame."""
        e = self.g.exits[p]
        e = e[(e >= 0)]
        if len(e):
            return int(e[np.argmin(self.last[e])])
        ok = np.flatnonzero(self.landable)
        return int(ok[np.argmin(self.last[ok])]) if len(ok) else 0

    def move(self, f: int) -> int:
        """Show source frame f next (chosen by :meth:`choose` or by a caller such as a planner)."""
        f = int(f)
        jump = f != self.p + 1
        self.t += 1
        self.p = f
        self.last[f] = self.t
        if jump:
            self.since = 0
            self.jumps += 1
        else:
            self.since += 1
        return f

    def step(self, bias: np.ndarray | None = None) -> int:
        return self.move(self.choose(bias))

    def advance(self, count: int, bias: np.ndarray | None = None) -> tuple[np.ndarray, list[int]]:
        """The next ``count`` source frames and the indices (into them) where a jump lands."""
        out = np.empty(count, np.int64)
        jumps = []
        for i in range(count):
            prev = self.p
            out[i] = self.step(bias)
            if out[i] != prev + 1:
                jumps.append(i)
        return out, jumps

    def walk(self, n_out: int, start: int | None = None) -> tuple[np.ndarray, list[int]]:
        """A whole walk of ``n_out`` output frames: (source frame per output frame, jump positions)."""
        self.reset(self.first_frame() if start is None else int(start))
        first = self.p
        rest, jumps = self.advance(max(0, n_out - 1))
        return np.concatenate([[first], rest])[:max(n_out, 0)], [j + 1 for j in jumps]


def best_ahead(graph, end: np.ndarray) -> np.ndarray:
    """(n,) for every frame p, the cheapest first exit among the frames after it up to the end of its
    run (``end``, where the walk must cut); inf at a run's last frame."""
    best = np.where(graph.exits[:, 0] >= 0, graph.cost[:, 0], np.inf).astype(np.float64)
    out = np.full(graph.n, np.inf)
    run = np.inf
    for p in range(graph.n - 1, -1, -1):
        out[p] = run if end[p] != p else np.inf
        run = best[p] if end[p] == p else min(run, best[p])
    return out


def _draw(w: np.ndarray, rng: np.random.Generator) -> int:
    c = np.cumsum(w)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), len(w) - 1))


def initial_rate(graph, temperature: float, jumps_per_min: float = DEFAULT_JUMPS_PER_MIN) -> float:
    """A first guess of ``rate``: the jump rate asked for over the mean total exit weight per frame."""
    with np.errstate(over="ignore", invalid="ignore"):
        w = np.where(graph.exits >= 0, np.exp(-graph.cost / max(temperature, 1e-3)), 0.0).sum(axis=1)
    mean = float(w[graph.alive].mean()) if graph.alive.any() else 0.0
    per_frame = jumps_per_min / 60.0 / graph.fps
    return per_frame / mean if mean > 0 else 1.0


def measured_rate(walk: Walk, minutes: float, seeds=(0, 1)) -> float:
    """Jumps per minute of walks of ``minutes`` from fresh random starts (mean over seeds)."""
    n = max(2, int(round(minutes * 60 * walk.fps)))
    out = []
    for s in seeds:
        w = walk.fork(1000 + s)
        w.advance(n)
        out.append(w.jumps / minutes)
    return float(np.mean(out))


def calibrate_rate(graph, jumps_per_min: float = DEFAULT_JUMPS_PER_MIN, temperature: float = DEFAULT_TEMPERATURE,
                   threshold: float = DEFAULT_THRESHOLD, minutes: float = 1.5, iters: int = 6, tol: float = 0.05) -> float:
    """The ``rate`` at which walks make ``jumps_per_min`` jumps per minute, by simulation (the dwell,
    the freshness rules and the cuts a dead end forces all change the rate). Multiplicative updates,
    then bisection, on 2 x ``minutes`` of walking per try.

    Never below RATE_FLOOR times the first estimate: on a short clip the cuts its end forces can
    alone exceed the rate asked for, and a walk that only ever cuts where it must runs every landing
    into the same end (the same few seconds again and again) instead of leaving for fresh material.
    """
    walk = Walk(graph, temperature, None, threshold)
    rate = first = walk.rate
    lo, hi = 0.0, math.inf
    for _ in range(iters):
        walk.rate = rate
        r = measured_rate(walk, minutes)
        if abs(r - jumps_per_min) <= tol * jumps_per_min:
            break
        if r < jumps_per_min:
            lo = rate
            rate = rate * min(4.0, (jumps_per_min / max(r, 0.25)) ** 1.2) if hi == math.inf else 0.5 * (rate + hi)
        else:
            hi = rate
            rate = rate * max(0.25, (jumps_per_min / r) ** 1.2) if lo == 0.0 else 0.5 * (rate + lo)
        if rate <= RATE_FLOOR * first and r > jumps_per_min:
            break
    return float(max(rate, RATE_FLOOR * first))


# ------------------------------------------------------------------------------------ the method
def fitted_walk(bundle) -> dict:
    """The walk settings stored at fit time (``manifest["walk"]["texture"]``), or {}."""
    return dict((bundle.manifest.get("walk") or {}).get("texture") or {})


def walk_for(req, **walk_kw) -> tuple[Walk, dict]:
    """The texture walk a request asks for, with the settings actually used.

    The default temperature, threshold and jump rate use the rate calibrated at fit time; any other
    request is calibrated now (a second or two of simulated walking).
    """
    from .graph import Graph
    b = req.bundle
    graph = Graph.from_bundle(b)
    fitted = fitted_walk(b)
    tau = DEFAULT_TEMPERATURE if req.temperature is None else float(req.temperature)
    threshold = DEFAULT_THRESHOLD if req.threshold is None else float(req.threshold)
    target = DEFAULT_JUMPS_PER_MIN if req.jumps_per_min is None else float(req.jumps_per_min)
    same = (fitted.get("rate") and abs(fitted.get("temperature", -1) - tau) < 1e-9
            and abs(fitted.get("threshold", -1) - threshold) < 1e-9 and abs(fitted.get("jumps_per_min", -1) - target) < 1e-9)
    rate = float(fitted["rate"]) if same else calibrate_rate(graph, target, tau, threshold)
    w = Walk(graph, tau, rate, threshold, seed=req.seed, **walk_kw)
    return w, {"temperature": tau, "threshold": threshold, "rate": rate, "target_jumps_per_min": target,
               "scores": "seam"}


def walk_timeline(req, method: str, frames: np.ndarray, jumps: list[int], **params):
    """A frame walk as a Timeline of ``req.n_frames`` frames."""
    from .timeline import Timeline
    return Timeline(fps=req.bundle.fps, frames=np.asarray(frames[:req.n_frames], np.int64),
                    jumps=[int(j) for j in jumps if 0 < j < req.n_frames], method=method, seed=req.seed,
                    params=params)


@register("contrastive", "the texture walk on the transition graph: cuts from any frame, at the least visible "
                         "seams, to material not shown lately (default)")
def texture(req):
    """The unconditional texture (the ``contrastive`` method without audio; with audio see conditioning)."""
    w, params = walk_for(req)
    frames, jumps = w.walk(req.n_frames, req.start)
    return walk_timeline(req, "contrastive", frames, jumps, **params)


def fit_walk(graph) -> dict:
    """The default walk settings, calibrated once at fit time (stored as ``manifest["walk"]["texture"]``)."""
    rate = calibrate_rate(graph, DEFAULT_JUMPS_PER_MIN, DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD)
    return {"temperature": DEFAULT_TEMPERATURE, "threshold": DEFAULT_THRESHOLD,
            "jumps_per_min": DEFAULT_JUMPS_PER_MIN, "rate": rate}
