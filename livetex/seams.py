"""Seams: hide the jumps of a walk by re-making the few frames around each jump.

A jump at output frame ``j`` shows source frame ``a = frames[j-1]`` and then ``b = frames[j]`` with
``b != a + 1``. Two *streams* overlap around it: the old one (``a`` and its natural successors
``a+1, a+2, ...``) and the new one (``b``'s natural predecessors ``..., b-2, b-1`` and ``b, b+1, ...``).
The ``before`` frames ahead of the jump and the ``after`` frames from it are replaced by a transition
from the old stream to the new one, with weight ``t`` rising linearly from ``1/(L+1)`` to ``L/(L+1)``
(``L = before + after``). Frames are *replaced*, never inserted: the output keeps its frame count,
fps and duration, so the audio stays in sync. Jumps closer than ``before + after`` share the frames
between them.

Modes:

- ``none``: the hard cut.
- ``fade``: cross-fade the two moving streams, ``(1-t) A + t B``.
- ``flow`` (:class:`Seamer`'s default; ``rife``'s fallback): dense optical flow (OpenCV DIS) between
  the two streams, both directions, at ``flow_height`` pixels; flows damped where the forward-backward
  check fails. Each replaced frame warps both ends to time ``t`` (intermediate flows as in Super
  SloMo, Jiang et al. 2018) and blends them with occlusion-aware weights. Per seam it then picks how
  much of the flow to follow (all, half, or none, i.e. the cross-fade) by predicting, on small frames,
  which gives the smallest largest frame-to-frame step: the quantity :func:`seam_discontinuity`
  measures. Only the parts of the frame where the warp differs from a cross-fade are warped at full
  size (on a static shot, the performer).
- ``rife`` (``livetex render``'s and ``livetex play``'s default when the network is there): learned
  interpolation (RIFE 4.0, livetex.interp). Each replaced frame ``i`` is the network's frame at
  ``t[i]`` between the two streams' frames ``i``; flows and mask are estimated on small frames
  (``rife_height``) and applied at full size. Between two poses it draws one body in between where the
  cross-fade draws two. Without the RIFE network it is ``flow`` (a one-line note says so).

Why ``flow`` often ties with ``fade``: for any difference measure that is a norm (mean absolute
difference included), the straight cross-fade is the shortest path between two fixed frames, so no
interpolation can have smaller steps between them. Following the flow wins when the streams' own
motion cancels part of the jump (a loop back in a moving shot: the picture barely moves instead of
two pans dissolving) and it removes ghosting; on unrelated poses it loses, and the seam cross-fades.
For the same reason ``rife``'s largest step measures larger than the cross-fade's on a big pose change
(the body moves most in the middle of the seam): it moves one picture where the fade dissolves two.

Settings: :data:`LIVE` (the player: 3 + 3 frames, warped area capped so a seam fits the look-ahead),
:data:`RENDER` (offline: 5 + 5 frames) and :data:`RENDER_RIFE` (offline rife: 8 + 8). Three callers:
:func:`smooth_frames` streams a whole :class:`~livetex.timeline.Timeline` for the renderer;
:class:`Seamer` makes one seam at a time; :class:`LiveSeams` is the player's: RIFE when it fits the
look-ahead, else the flow morph. Cost per seam: ``tools/bench_seams.py``, ``tools/bench_interp.py``.

The seam metric (:func:`seam_discontinuity`, with :func:`frame_changes` and :func:`source_changes`)
compares the change between consecutive output frames at jumps with the change between consecutive
source frames, on 64x64 grey frames made like the bundle's thumbnails.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

import cv2
import numpy as np

from .errors import LivetexError

MODES = ("none", "fade", "flow", "rife")
DEFAULT_MODE = "flow"

_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


@dataclass(frozen=True)
class SeamConfig:
    """How seams are made. Sizes in pixels, counts in frames."""

    before: int = 3                # frames replaced before the jump
    after: int = 3                 # frames replaced from the jump on
    flow_height: int = 180         # the flow is computed at this height (never upscaled), then upsampled
    preset: str = "medium"         # DIS preset: ultrafast | fast | medium
    consistency: float = 1.0       # forward-backward flow disagreement (px at flow size) that halves a weight
    min_gain: float = 0.1          # use the flow only if warping removes at least this share of the difference
    warp_candidates: tuple = (0.0, 0.5, 1.0)   # fractions of the flow a seam may follow (0 = cross-fade)
    flow_pairs: str = "one"        # where DIS runs: at "each" replaced frame, or at "one" (the middle)
    judge_height: int = 128        # the candidates are compared on grey frames this high
    max_warp_area: float = 1.0     # cost cap: a seam that would warp more of the frame than this cross-fades
    rife_height: int = 240         # "rife": the network sees the frames at this height (never upscaled)
    rife_passes: int = 0           # "rife": network passes per seam (0: one per replaced frame; fewer are
                                   # spread over the seam, each frame re-timing the nearest one)


# Live (the player): a seam starts `before` frames ahead of its jump, so it has to be decided and made
# that much earlier: keep it short, and cap the warped area so that one seam stays well inside the
# look-ahead at 720p on one core (a seam whose whole frame moves, e.g. a handheld shot, cross-fades).
# RIFE runs at 120 px, one network pass per seam re-timed to each frame; LiveSeams uses the flow morph
# when that does not fit (tools/bench_interp.py).
# Offline (the renderer): no such constraints, and a longer seam spreads the jump over more frames.
# How long depends on the mode. A cross-fade shows two bodies for as long as it lasts, so fade and flow
# keep 5 + 5. RIFE draws one body moving from one pose to the other, and a big pose change looks like
# a natural movement when it is spread over more frames: 8 + 8 (0.53 s at 30 fps); 12 + 12 measured
# no better. One network pass per seam (at its middle, re-timed to every frame, as Super SloMo does):
# a pass per frame lets the network change its mind from one frame to the next, so the pose jumps
# midway (on the dancer and the pianist, 28% and 3% of seams visible against 3% and 0%, and more
# double exposures: 53% against 40% on the pianist's hands), and it costs 16 passes instead of one.
LIVE = SeamConfig(before=3, after=3, max_warp_area=0.5, rife_height=120, rife_passes=1)
RENDER = SeamConfig(before=5, after=5)
RENDER_RIFE = replace(RENDER, before=8, after=8, rife_height=180, rife_passes=1)


def render_config(mode: str) -> SeamConfig:
    """The renderer's settings for ``mode``: :data:`RENDER_RIFE` for ``rife``, else :data:`RENDER`."""
    return RENDER_RIFE if mode == "rife" else RENDER


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise LivetexError(f"unknown interpolation {mode!r}; choose from: {', '.join(MODES)}")
    return mode


def seam_weights(before: int, after: int) -> np.ndarray:
    """Weight ``t`` of the new stream at each of the ``before + after`` replaced frames (linear ramp)."""
    L = before + after
    return np.arange(1, L + 1, dtype=np.float64) / (L + 1)


def seam_sources(prev_k: int, next_k: int, n_source: int, before: int, after: int) -> tuple[np.ndarray, np.ndarray]:
    """Source frame indices of the old and new streams over a seam.

    ``prev_k`` is the last source frame shown before the jump, ``next_k`` the first one after it.
    Returns ``(a_idx, b_idx)``, each of length ``before + after``: the old stream continues past
    ``prev_k``, the new stream starts before ``next_k``; indices are clamped to the video (a stream
    that runs off either end holds its last frame).
    """
    a = np.arange(prev_k - before + 1, prev_k + after + 1)
    b = np.arange(next_k - before, next_k + after)
    return np.clip(a, 0, n_source - 1), np.clip(b, 0, n_source - 1)


# ------------------------------------------------------------------------------------- blending
def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class _Grid:
    """Sampling grids, cached (a seam reuses them for each of its frames).

    ``grid(w, h)`` is the identity grid of a w x h image, (h, w, 2) float32 pixel coordinates.
    ``grid.box(box, w, h, W, H)`` maps the pixels of box (x0, y0, x1, y1) of a W x H image to the
    coordinates of the same points in a w x h image (pixel centres aligned, as cv2.resize does), so
    that remapping a small array through it upsamples just that box.
    """

    MAX_BYTES = 64 << 20   # a few full-size grids; boxes change from seam to seam, so old ones go first

    def __init__(self):
        self._cache: dict[tuple, np.ndarray] = {}

    def _keep(self, key, make):
        g = self._cache.get(key)
        if g is None:
            g = self._cache[key] = make()
            while sum(x.nbytes for x in self._cache.values()) > self.MAX_BYTES and len(self._cache) > 1:
                self._cache.pop(next(iter(self._cache)))
        return g

    def __call__(self, w: int, h: int, x0: int = 0, y0: int = 0) -> np.ndarray:
        def make():
            xs, ys = np.meshgrid(np.arange(x0, x0 + w, dtype=np.float32), np.arange(y0, y0 + h, dtype=np.float32))
            return np.dstack([xs, ys])
        return self._keep(("id", w, h, x0, y0), make)

    def box(self, box, w: int, h: int, W: int, H: int) -> np.ndarray:
        x0, y0, x1, y1 = box

        def make():
            xs = (np.arange(x0, x1, dtype=np.float32) + 0.5) * (w / W) - 0.5
            ys = (np.arange(y0, y1, dtype=np.float32) + 0.5) * (h / H) - 0.5
            return np.dstack(np.meshgrid(xs, ys)).astype(np.float32)
        return self._keep(("box", box, w, h, W, H), make)


@dataclass
class _Flows:
    """Flows of one frame pair at flow size, damped by their confidence, and the confidences."""

    f01: np.ndarray        # a(x) ~ b(x + f01(x)), pixels at flow size
    f10: np.ndarray
    c0: np.ndarray         # forward-backward consistency of a's pixels, 0..1
    c1: np.ndarray
    detail: np.ndarray     # how much a warp of one flow pixel changes the picture (grey levels)
    diff: np.ndarray       # |a - b| (grey levels)

    def resized(self, w: int, h: int) -> "_Flows":
        """The same flows on a w x h grid (vectors rescaled to its pixels)."""
        H, W = self.c0.shape
        scale = np.array([w / W, h / H], np.float32)
        rs = lambda x: cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)  # noqa: E731
        return _Flows(rs(self.f01) * scale, rs(self.f10) * scale, rs(self.c0), rs(self.c1),
                      rs(self.detail), rs(self.diff))



class Seamer:
    """Make seams: blend an old stream into a new one over the frames around a jump.

    The player, once its sampler has decided a jump that lands at output frame ``j`` (source frame
    ``prev_k`` shown at ``j - 1``, ``next_k`` at ``j``), at least ``before`` frames plus the seam's cost
    ahead of showing frame ``j - before``::

        seamer = Seamer()                                   # "flow" with the LIVE settings (3 + 3)
        new = seamer.seam(store, prev_k, next_k)            # (before + after, H, W, 3) uint8
        # new[i] replaces output frame j - before + i

    ``seam`` reads ``before + after`` source frames besides those the walk shows anyway (the old
    stream's continuation and the new stream's predecessors); to read them
    from a prefetch cache instead, take the indices from :meth:`sources` and call :meth:`blend`
    (``prev``/``nxt``: ``store.frame(a_idx[0] - 1)`` and ``store.frame(b_idx[-1] + 1)``). Cost on one core:
    ``tools/bench_seams.py`` (tens of ms at 720p); ``Seamer("fade")`` costs about 1 ms per frame and
    is the fallback if a flow seam is not ready in time. Frames are RGB ``(H, W, 3)`` or grey
    ``(H, W)`` uint8 of any size (odd sizes included). One object per thread (the DIS solver keeps
    state); OpenCV releases the GIL while it works.
    """

    def __init__(self, mode: str = DEFAULT_MODE, config: SeamConfig | None = None, interpolator=None, **overrides):
        self.mode = check_mode(mode)
        self.config = replace(config or LIVE, **overrides)
        self.interpolator = interpolator
        if self.mode == "rife" and interpolator is None:
            from .interp import load_interpolator
            self.interpolator = load_interpolator()
            if self.interpolator is None:     # no RIFE network here (a note said so): the flow morph
                self.mode = "flow"
        if self.config.flow_pairs not in ("each", "one"):
            raise LivetexError(f"flow_pairs must be 'each' or 'one', not {self.config.flow_pairs!r}")
        if self.config.preset not in _PRESETS:
            raise LivetexError(f"unknown DIS preset {self.config.preset!r}; choose from: {', '.join(_PRESETS)}")
        self._dis = None
        self._grid = _Grid()
        self.stats = {"seams": 0, "warped": 0}   # flow seams made, and how many followed the flow

    @property
    def before(self) -> int:
        return self.config.before

    @property
    def after(self) -> int:
        return self.config.after

    def sources(self, prev_k: int, next_k: int, n_source: int,
                before: int | None = None, after: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Source frames to read for a seam; see :func:`seam_sources`."""
        return seam_sources(prev_k, next_k, n_source, self.before if before is None else before,
                            self.after if after is None else after)

    def seam(self, store, prev_k: int, next_k: int) -> np.ndarray:
        """The ``before + after`` frames that replace the jump ``prev_k -> next_k``, read from ``store``."""
        n = len(store)
        a_idx, b_idx = self.sources(prev_k, next_k, n)
        cache: dict[int, np.ndarray] = {}

        def get(k):
            k = int(min(max(k, 0), n - 1))
            if k not in cache:
                cache[k] = store.frame(k)
            return cache[k]
        prev = nxt = None
        if self.mode == "flow":
            prev, nxt = get(a_idx[0] - 1), get(b_idx[-1] + 1)
        return self.blend([get(k) for k in a_idx], [get(k) for k in b_idx], prev=prev, nxt=nxt)

    def blend(self, a_frames, b_frames, t: np.ndarray | None = None,
              prev: np.ndarray | None = None, nxt: np.ndarray | None = None) -> np.ndarray:
        """Blend old-stream frames ``a_frames`` into new-stream frames ``b_frames``.

        Parameters
        ----------
        a_frames, b_frames : sequences of L frames, uint8, (H, W, 3) or (H, W), all the same shape.
        t : (L,) weights of the new stream; default a linear ramp ``(i + 1) / (L + 1)``.
        prev, nxt : the frames shown just before and just after the seam, if known. ``flow`` uses
            them to judge the seam's first and last steps; by default it uses ``a_frames[0]`` and
            ``b_frames[-1]``.

        Returns
        -------
        (L, H, W[, 3]) uint8.
        """
        L = len(a_frames)
        if len(b_frames) != L:
            raise ValueError(f"the two streams differ in length ({L} and {len(b_frames)})")
        shape = np.shape(a_frames[0])
        for f in list(a_frames) + list(b_frames):
            if np.shape(f) != shape:
                raise ValueError(f"frames differ in shape: {shape} and {np.shape(f)}")
        t = np.arange(1, L + 1) / (L + 1) if t is None else np.asarray(t, np.float64)
        out = np.empty((L,) + shape, np.uint8)
        if self.mode == "none":
            for i in range(L):
                out[i] = a_frames[i] if t[i] < 0.5 else b_frames[i]
            return out
        if self.mode == "rife":
            return self._rife(a_frames, b_frames, t, out)
        lam, flows, boxes = 0.0, None, []
        if self.mode == "flow" and L:
            flows = self._seam_flows(a_frames, b_frames)
            if flows is not None:
                boxes = self._active_boxes(flows, shape[1], shape[0])
                area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) / (shape[0] * shape[1])
                if boxes and area <= self.config.max_warp_area:
                    lam = self._choose_warp(a_frames, b_frames, flows, t, a_frames[0] if prev is None else prev,
                                            b_frames[-1] if nxt is None else nxt)
        if lam == 0:
            boxes = []
        cache: dict = {}
        for i in range(L):
            out[i] = cv2.addWeighted(a_frames[i], 1.0 - t[i], b_frames[i], t[i], 0.0)
            if boxes:
                parts = self._morph(a_frames[i], b_frames[i], flows[i], float(t[i]), lam, boxes, cache)
                for (x0, y0, x1, y1), part in zip(boxes, parts):
                    out[i, y0:y1, x0:x1] = part
        if self.mode == "flow":
            self.stats["seams"] += 1
            self.stats["warped"] += lam > 0
        return out

    # ---- rife
    def _rife(self, a_frames, b_frames, t, out) -> np.ndarray:
        """Each replaced frame ``i`` is RIFE's frame at ``t[i]`` between ``a_frames[i]`` and
        ``b_frames[i]`` (livetex.interp), the network run at ``rife_height``.

        With ``rife_passes`` fewer than the frames, the passes are spread over the seam and each frame
        re-times the nearest one to its own ``t`` and applies it to its own pair (cheaper, and close:
        neighbouring pairs differ by the streams' own motion over a frame or two).
        """
        L = len(a_frames)
        H = np.shape(a_frames[0])[0]
        scale = min(1.0, self.config.rife_height / H)
        n = L if self.config.rife_passes <= 0 else min(L, self.config.rife_passes)
        at = np.round((np.arange(n) + 0.5) * L / n - 0.5).astype(int)
        it = self.interpolator
        motions = {int(j): it.estimate(a_frames[j], b_frames[j], float(t[j]), scale) for j in at}
        for i in range(L):
            j = int(at[np.abs(at - i).argmin()])
            out[i] = it.apply(motions[j], a_frames[i], b_frames[i], float(t[i]))
        return out

    # ---- flow
    def _solver(self):
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(_PRESETS[self.config.preset])
        return self._dis

    @staticmethod
    def _size(shape, height: int) -> tuple[int, int]:
        H, W = shape[:2]
        h = min(H, height)
        return max(1, int(round(W * h / H))), h

    def _seam_flows(self, a_frames, b_frames) -> list[_Flows] | None:
        """Flows between the two streams for every replaced frame, or None if no pair has a usable flow.

        ``flow_pairs`` says where DIS runs: ``each`` pair (2 L solves), or ``one`` pair in the middle,
        reused for all (2 solves: over a few frames the streams' own motion is small next to the jump,
        and on real clips the seams measure the same).
        """
        L = len(a_frames)
        w, h = self._size(a_frames[0].shape, self.config.flow_height)
        small = lambda f: cv2.resize(_grey(f), (w, h), interpolation=cv2.INTER_AREA)  # noqa: E731
        if self.config.flow_pairs == "one":
            i = (L - 1) // 2
            f = self._flows(small(a_frames[i]), small(b_frames[i]))
            return None if f is None else [f] * L
        fl = [self._flows(small(a), small(b)) for a, b in zip(a_frames, b_frames)]
        if all(f is None for f in fl):
            return None
        # A pair without a usable flow of its own borrows one (same seam, same geometry).
        fill = next(f for f in fl if f is not None)
        return [f if f is not None else fill for f in fl]

    def _flows(self, g0: np.ndarray, g1: np.ndarray) -> _Flows | None:
        """Flows between grey frames ``g0`` and ``g1`` (both directions), damped where unreliable;
        None when they explain nothing."""
        h, w = g0.shape
        e_id = float(cv2.absdiff(g0, g1).mean())
        # (Near) identical frames need no flow; tiny ones are too small for DIS's pyramid.
        if e_id < 0.5 or min(w, h) < 16:
            return None
        dis = self._solver()
        f01 = dis.calc(g0, g1, None)
        f10 = dis.calc(g1, g0, None)
        grid = self._grid(w, h)
        # Forward-backward consistency: a point of a that is visible in b comes back to itself.
        # Where it does not (occlusion, or a flow that is simply wrong) the flow is damped to zero,
        # so that part of the frame cross-fades instead of smearing.
        s2 = self.config.consistency ** 2
        conf = []
        for f, g in ((f01, f10), (f10, f01)):
            back = cv2.remap(g, grid + f, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            c = 1.0 / (1.0 + np.square(f + back).sum(-1) / s2)
            conf.append(cv2.GaussianBlur(c.astype(np.float32), (0, 0), 1.5))
        f01 = f01 * conf[0][..., None]
        f10 = f10 * conf[1][..., None]
        g1w = cv2.remap(g1, grid + f01, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if float(cv2.absdiff(g0, g1w).mean()) > (1.0 - self.config.min_gain) * e_id:
            return None
        # Where the picture is flat a warp changes nothing: the seam only needs warping where there is
        # detail (gradient magnitude, spread over the few pixels a warp moves it).
        detail = np.zeros((h, w), np.float32)
        for g in (g0, g1):
            gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
            gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
            detail = np.maximum(detail, cv2.magnitude(gx, gy))
        detail = cv2.dilate(detail, np.ones((5, 5), np.uint8))
        diff = cv2.absdiff(g0, g1).astype(np.float32)
        return _Flows(f01, f10, conf[0], conf[1], detail, diff)

    def _morph(self, a: np.ndarray, b: np.ndarray, fl: _Flows, t: float, lam: float, boxes=None,
               cache: dict | None = None) -> list[np.ndarray]:
        """The frame at time ``t`` between ``a`` and ``b``, both warped along ``lam`` times the flow.

        ``a`` and ``b`` may have any size (the flows are resampled and rescaled to it). Returns the
        parts of the frame in ``boxes`` (x0, y0, x1, y1), default the whole frame. ``cache`` (a dict
        kept over one seam) holds the resampled flows, which every frame of a seam shares.
        """
        h, w = fl.c0.shape
        H, W = a.shape[:2]
        grid = self._grid(w, h)
        # Flow from the frame at time t back to each end, assuming linear motion (Super SloMo, eq. 4):
        # ft0 = p0 f01 + q0 f10, ft1 = p1 f01 + q1 f10.
        p0, q0 = -lam * (1 - t) * t, lam * t * t
        p1, q1 = lam * (1 - t) ** 2, -lam * t * (1 - t)
        # Occlusion-aware blend: each end counts where its pixel is visible in the other.
        vis0 = cv2.remap(fl.c0, grid + p0 * fl.f01 + q0 * fl.f10, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        vis1 = cv2.remap(fl.c1, grid + p1 * fl.f01 + q1 * fl.f10, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        w0 = (1 - t) * (vis0 + 0.05)
        w1 = t * (vis1 + 0.05)
        alpha = w0 / (w0 + w1)
        cache = {} if cache is None else cache
        out = []
        for box in boxes or [(0, 0, W, H)]:
            key = (id(fl), box, W, H)
            if key not in cache:
                up = self._grid.box(box, w, h, W, H)
                scale = np.array([W / w, H / h], np.float32)   # flow pixels -> output pixels
                cache[key] = (up, *(cv2.remap(f * scale, up, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                                    for f in (fl.f01, fl.f10)))
            up, F01, F10 = cache[key]
            here = self._grid(box[2] - box[0], box[3] - box[1], box[0], box[1])
            m0 = cv2.add(cv2.addWeighted(F01, p0, F10, q0, 0.0), here)
            m1 = cv2.add(cv2.addWeighted(F01, p1, F10, q1, 0.0), here)
            # Fixed-point maps: converting and remapping is faster than remapping with float maps.
            wa = cv2.remap(a, *cv2.convertMaps(m0, None, cv2.CV_16SC2), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            wb = cv2.remap(b, *cv2.convertMaps(m1, None, cv2.CV_16SC2), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            al = cv2.remap(alpha, up, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            out.append(cv2.blendLinear(wa, wb, al, 1.0 - al))
        return out

    def _active_boxes(self, flows, W: int, H: int) -> list[tuple[int, int, int, int]]:
        """The parts of a W x H frame where following the flows differs from a cross-fade, as boxes
        (x0, y0, x1, y1). Elsewhere the flows are (near) zero or the picture flat, and both ends
        equally visible: there the warped blend looks like the cross-fade, so a seam warps only these
        boxes (on a static shot, the performer)."""
        h, w = flows[0].c0.shape
        sx, sy = W / w, H / h
        mask = np.zeros((h, w), np.uint8)
        for fl in {id(f): f for f in flows}.values():
            for f in (fl.f01, fl.f10):
                # A warp that moves the picture by under a pixel or ~2 grey levels looks like the cross-fade.
                mag = np.hypot(f[..., 0], f[..., 1])
                mask |= (mag * fl.detail > 2.0) & (np.hypot(f[..., 0] * sx, f[..., 1] * sy) > 1.0)
            # Unequal visibility changes the blend weights, which matters where the two ends differ.
            mask |= (np.abs(fl.c0 - fl.c1) > 0.1) & (fl.diff > 4)
        if not mask.any():
            return []
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))   # soft edges stay inside
        _, _, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        boxes = [(x, y, x + bw, y + bh) for x, y, bw, bh, _ in st[1:]]
        # Merge boxes while that costs no more pixels than keeping them apart (few, large boxes).
        area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
        merged = True
        while merged and len(boxes) > 1:
            merged = False
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    p, q = boxes[i], boxes[j]
                    u = (min(p[0], q[0]), min(p[1], q[1]), max(p[2], q[2]), max(p[3], q[3]))
                    if area(u) <= 1.2 * (area(p) + area(q)) or len(boxes) > 8:
                        boxes[i] = u
                        del boxes[j]
                        merged = True
                        break
                if merged:
                    break
        return [(int(np.floor(x0 * sx)), int(np.floor(y0 * sy)), min(W, int(np.ceil(x1 * sx))), min(H, int(np.ceil(y1 * sy))))
                for x0, y0, x1, y1 in boxes]

    def _choose_warp(self, a_frames, b_frames, flows, t, prev, nxt) -> float:
        """How much of the flow to follow over this seam: the candidate whose largest step between
        consecutive frames (mean absolute difference of 64x64 grey frames, as the seam metric
        measures it) is smallest, predicted on small grey frames.

        Following the flow removes ghosting and is smoother when the two sides are close, but a long
        slide across unrelated content changes more pixels per frame than a cross-fade does.
        """
        w, h = self._size(prev.shape, self.config.judge_height)
        small = lambda f: cv2.resize(_grey(f), (w, h), interpolation=cv2.INTER_AREA)  # noqa: E731
        ga, gb = [small(f) for f in a_frames], [small(f) for f in b_frames]
        small_flows = {}
        for f in flows:
            if id(f) not in small_flows:
                small_flows[id(f)] = f.resized(w, h)
        flows = [small_flows[id(f)] for f in flows]
        best, best_cost = 0.0, np.inf
        cache: dict = {}
        for lam in self.config.warp_candidates:
            seq = [small(prev)]
            for i, ti in enumerate(t):
                if lam == 0:
                    seq.append(cv2.addWeighted(ga[i], 1.0 - ti, gb[i], ti, 0.0))
                else:
                    seq.append(self._morph(ga[i], gb[i], flows[i], float(ti), lam, cache=cache)[0])
            seq.append(small(nxt))
            th = [cv2.resize(s, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32) for s in seq]
            cost = max(float(np.abs(x - y).mean()) for x, y in zip(th[:-1], th[1:]))
            # Near-ties go to the larger warp: at equal change, moving pictures beat ghosted ones.
            if cost < best_cost * (1 - 0.02) or (lam > best and cost <= best_cost * 1.02):
                best, best_cost = lam, cost
        return best


# ------------------------------------------------------------------------------------------- live
RIFE_BUDGET_S = 0.4   # live: RIFE makes a seam only if it is expected to take no longer than this (s)


class LiveSeams:
    """The player's seams: RIFE (at the :data:`LIVE` settings, a small network input) when its measured
    time fits the budget, else the flow morph; counts which ran.

    ``LiveSeams(mode, interpolator=None, config=LIVE, budget_s=RIFE_BUDGET_S)``: ``mode`` is the
    ``--interpolate`` choice; ``"rife"`` without an ``interpolator`` (livetex.interp) is ``"flow"``. It
    is called like a :class:`Seamer` (``before``, ``after``, ``mode``, :meth:`sources`, :meth:`blend`),
    so the player's scheduler needs nothing else; ``counts`` says how many seams each method made
    (``reset_counts`` after a warm-up) and ``last`` which made the latest.

    The expected RIFE time is the median of its last 5 seams (one slow seam on a busy machine does
    not switch it off). The first RIFE seam runs the network once beforehand, untimed: a session's
    first run at a new size allocates, and would make RIFE look slower than it is. Once RIFE's
    expected time exceeds the budget, every 25th seam measures it again (a busy spell ends).
    One object per thread, as :class:`Seamer`.
    """

    RETRY_EVERY = 25

    def __init__(self, mode: str = "rife", interpolator=None, config: SeamConfig | None = None,
                 budget_s: float = RIFE_BUDGET_S):
        mode = check_mode(mode)
        if mode == "rife" and interpolator is None:
            mode = "flow"
        self.mode = mode
        self.config = config or LIVE
        self.budget_s = float(budget_s)
        self.fallback = Seamer("flow" if mode == "rife" else mode, self.config)
        self.rife = Seamer("rife", self.config, interpolator=interpolator) if mode == "rife" else None
        self.times: dict[str, deque] = {}
        self.counts: dict[str, int] = {}
        self.last: str | None = None
        self._warm = False
        self._skipped = 0     # seams in a row RIFE sat out for time

    @property
    def before(self) -> int:
        return self.config.before

    @property
    def after(self) -> int:
        return self.config.after

    def sources(self, *args, **kw):
        return self.fallback.sources(*args, **kw)

    def expected_s(self, method: str) -> float | None:
        """Median time of the last 5 seams ``method`` made (s), None before the first."""
        t = self.times.get(method)
        return float(np.median(t)) if t else None

    def reset_counts(self) -> None:
        self.counts = {}

    def blend(self, a_frames, b_frames, t: np.ndarray | None = None, prev: np.ndarray | None = None,
              nxt: np.ndarray | None = None, budget_s: float | None = None) -> np.ndarray:
        """As :meth:`Seamer.blend`; ``budget_s`` overrides the budget for this seam."""
        use = self.fallback
        if self.rife is not None:
            exp = self.expected_s("rife")
            budget = self.budget_s if budget_s is None else budget_s
            if exp is None or exp <= budget or self._skipped >= self.RETRY_EVERY:
                use = self.rife
        if use is self.rife:
            self._skipped = 0
            if not self._warm:
                self.rife.blend(a_frames[:1], b_frames[:1], None if t is None else np.asarray(t)[:1])
                self._warm = True
        elif self.rife is not None:
            self._skipped += 1
        t0 = time.perf_counter()
        out = use.blend(a_frames, b_frames, t, prev=prev, nxt=nxt)
        method = use.mode
        self.times.setdefault(method, deque(maxlen=5)).append(time.perf_counter() - t0)
        self.counts[method] = self.counts.get(method, 0) + 1
        self.last = method
        return out

    def seam(self, store, prev_k: int, next_k: int) -> np.ndarray:
        """As :meth:`Seamer.seam`."""
        n = len(store)
        a_idx, b_idx = self.sources(prev_k, next_k, n)
        get = lambda k: store.frame(int(min(max(k, 0), n - 1)))  # noqa: E731
        return self.blend([get(k) for k in a_idx], [get(k) for k in b_idx], prev=get(a_idx[0] - 1),
                          nxt=get(b_idx[-1] + 1))


# ------------------------------------------------------------------------------------ timelines
@dataclass(frozen=True)
class Seam:
    """One seam of a timeline: output frames ``[start, end)`` are replaced; the jump lands at ``jump``."""

    start: int
    jump: int
    end: int
    a_idx: np.ndarray      # old-stream source frames, one per replaced output frame
    b_idx: np.ndarray      # new-stream source frames
    t: np.ndarray          # weight of the new stream

    @property
    def before(self) -> int:
        return self.jump - self.start

    @property
    def after(self) -> int:
        return self.end - self.jump


def plan_seams(frames: np.ndarray, jumps: Iterable[int], n_source: int,
               before: int = 3, after: int = 3) -> list[Seam]:
    """The seams of a timeline, never overlapping: close jumps share the frames between them.

    ``frames`` is the source index of every output frame, ``jumps`` the output indices where jumps
    land. Between two jumps ``g`` frames apart, the first takes up to ``ceil(g/2)`` after it and the
    second the rest before it.
    """
    frames = np.asarray(frames)
    n = len(frames)
    js = sorted({int(j) for j in jumps if 0 < int(j) < n})
    seams = []
    lo = 0  # first output frame not yet claimed by an earlier seam
    for i, j in enumerate(js):
        nxt = js[i + 1] if i + 1 < len(js) else n
        kb = min(before, j - lo)
        ka = min(after, (nxt - j + 1) // 2 if nxt < n else n - j)
        if kb + ka == 0:
            continue
        a_idx, b_idx = seam_sources(int(frames[j - 1]), int(frames[j]), n_source, kb, ka)
        seams.append(Seam(j - kb, j, j + ka, a_idx, b_idx, seam_weights(kb, ka)))
        lo = j + ka
    return seams


def smooth_frames(store, timeline, mode: str = DEFAULT_MODE, config: SeamConfig | None = None,
                  interpolator=None) -> Iterator[np.ndarray]:
    """Yield the RGB frames of ``timeline`` with every jump smoothed by ``mode``.

    ``store`` is a FrameStore (``store.frame(k)`` -> RGB uint8, ``len(store)``); ``timeline`` gives
    ``frames`` (source frame per output frame) and ``jumps``. ``config`` defaults to
    :func:`render_config`. ``interpolator`` (livetex.interp) serves ``rife``; by default the installed
    one, else the seams are ``flow``.
    Streams: holds only the frames of the seam being made. The number of frames yielded is exactly
    ``len(timeline.frames)``; only frames around jumps differ from the plain cut.
    """
    if mode == "rife" and interpolator is None:
        from .interp import load_interpolator
        interpolator = load_interpolator()
        mode = "rife" if interpolator is not None else "flow"    # (a note said why)
    seamer = Seamer(mode, config or render_config(mode), interpolator=interpolator)
    frames = np.asarray(timeline.frames)
    plan = [] if mode == "none" else plan_seams(frames, timeline.jumps, len(store), seamer.before, seamer.after)
    cache: dict[int, np.ndarray] = {}

    def get(k: int) -> np.ndarray:
        # Seams read a few frames twice and re-timed walks repeat frames: keep a handful decoded.
        k = int(k)
        if k not in cache:
            if len(cache) >= 16:
                cache.pop(next(iter(cache)))
            cache[k] = store.frame(k)
        return cache[k]

    p, last = 0, None
    for s in plan:
        while p < s.start:
            last = get(frames[p])
            yield last
            p += 1
        nxt = get(frames[s.end]) if s.end < len(frames) else None
        out = seamer.blend([get(k) for k in s.a_idx], [get(k) for k in s.b_idx], s.t, prev=last, nxt=nxt)
        yield from out
        last = out[-1]
        p = s.end
    while p < len(frames):
        yield get(frames[p])
        p += 1


# --------------------------------------------------------------------------------------- metric
THUMB = 64


def small_grey(rgb: np.ndarray, size: int = THUMB) -> np.ndarray:
    """(size, size) float32 grey of a frame, made like the bundle's thumbnails (area resize of uint8 RGB)."""
    if rgb.shape[:2] != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    if rgb.ndim == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY if rgb.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    return rgb.astype(np.float32)


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two grey float images in 0..255 (Gaussian window, sigma 1.5; Wang et al. 2004)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda z: cv2.GaussianBlur(z, (7, 7), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


MEASURES = ("mad", "ssim")


def frame_changes(frames: Iterable[np.ndarray], measures=MEASURES, size: int = THUMB) -> dict[str, np.ndarray]:
    """Change between consecutive frames, streaming.

    Parameters
    ----------
    frames : iterable (or array) of uint8 RGB frames of any size, or of thumbnails.
    measures : ``"mad"`` (mean absolute difference of the small grey frames, grey levels 0..255)
        and/or ``"ssim"`` (1 - SSIM of the small grey frames, 0..2).

    Returns
    -------
    {measure: (n - 1,) float64}; element ``i`` compares frames ``i`` and ``i + 1``.
    """
    for m in measures:
        if m not in MEASURES:
            raise ValueError(f"unknown measure {m!r}; choose from {MEASURES}")
    out = {m: [] for m in measures}
    prev = None
    for f in frames:
        g = small_grey(np.asarray(f), size)
        if prev is not None:
            if "mad" in out:
                out["mad"].append(float(np.abs(g - prev).mean()))
            if "ssim" in out:
                out["ssim"].append(1.0 - _ssim(prev, g))
        prev = g
    return {m: np.asarray(v, np.float64) for m, v in out.items()}


def source_changes(thumbs: np.ndarray, measures=MEASURES) -> dict[str, np.ndarray]:
    """Consecutive-frame change of the source, from a bundle's thumbnails ``bundle.array("thumbs")``.

    ``thumbs`` is (n, 64, 64, 3) uint8; returns ``{measure: (n - 1,)}`` like :func:`frame_changes`.
    Read in blocks, so a memory-mapped array is never loaded whole.
    """
    def it():
        for a in range(0, len(thumbs), 512):
            yield from np.asarray(thumbs[a:a + 512])
    return frame_changes(it(), measures, size=thumbs.shape[1])


def _window_max(d: np.ndarray, radius: int) -> np.ndarray:
    """Max of ``d`` over every run of ``2 * radius + 1`` consecutive elements."""
    if radius <= 0:
        return d
    if len(d) < 2 * radius + 1:
        return d.max(keepdims=True) if len(d) else d
    return np.lib.stride_tricks.sliding_window_view(d, 2 * radius + 1).max(axis=1)


def seam_discontinuity(frames, jumps: Iterable[int], source, radius: int = 0, measure: str = "mad",
                       percentile: float = 99.5) -> dict:
    """How visible the jumps of an output are, relative to the source's own frame-to-frame change.

    Parameters
    ----------
    frames : the output video: an iterable/array of RGB frames (any size; made 64x64 grey like the
        thumbnails), or the 1-D array of its consecutive changes from :func:`frame_changes`.
    jumps : output frame indices where jumps land (``timeline.jumps``); jump ``j`` is the change
        between output frames ``j - 1`` and ``j``.
    source : the source's consecutive changes, a 1-D array or the dict from :func:`source_changes`.
    radius : 0 measures the jump's own frame pair; ``r > 0`` takes the largest change among the
        ``2r + 1`` pairs centred on it, so a seam spread over several frames is judged by its worst
        step. The source is measured the same way (max over every ``2r + 1`` consecutive pairs), so a
        seam that looks like ordinary footage scores 1 either way.
    measure : "mad" or "ssim" (see :func:`frame_changes`).
    percentile : a jump is *visible* when its change exceeds this percentile of the source's.

    Returns
    -------
    dict: ``n_jumps``; ``seam`` (per-jump change, array); ``seam_mean``; ``normal_mean`` (the source's
    mean); ``ratio`` (seam_mean / normal_mean); ``ratio_median`` (the same with medians);
    ``threshold`` (the percentile); ``visible`` (fraction of jumps above it); ``measure``, ``radius``.
    """
    if isinstance(source, dict):
        source = source[measure]
    src = _window_max(np.asarray(source, np.float64), radius)
    if len(src) == 0:
        raise ValueError("the source needs at least two frames")
    if isinstance(frames, np.ndarray) and frames.ndim == 1:
        d = frames.astype(np.float64)
    else:
        d = frame_changes(frames, (measure,))[measure]
    n = len(d) + 1
    js = np.array(sorted({int(j) for j in jumps if 0 < int(j) < n}), np.int64)
    seam = np.array([d[max(0, j - 1 - radius):j + radius].max() for j in js], np.float64)
    thr = float(np.percentile(src, percentile))
    normal = float(src.mean())
    return {"measure": measure, "radius": radius, "n_jumps": len(js), "seam": seam,
            "seam_mean": float(seam.mean()) if len(seam) else float("nan"), "normal_mean": normal,
            "ratio": float(seam.mean() / normal) if len(seam) and normal > 0 else float("nan"),
            "ratio_median": float(np.median(seam) / np.median(src)) if len(seam) and np.median(src) > 0 else float("nan"),
            "threshold": thr, "visible": float((seam > thr).mean()) if len(seam) else float("nan")}
