"""Synthesis methods: a registry of named ways to turn a bundle into a Timeline.

A method is a function ``(WalkRequest) -> Timeline``, registered by name like a timm backbone::

    @register("random", "uniformly random segment every step (the paper's Random baseline)")
    def random_walk(req): ...

``livetex render --method NAME`` and the evaluation report look methods up here; modules that define
more methods (sampler.py, classic.py, ...) are imported lazily by ``get``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .bundle import Bundle
from .errors import LivetexError
from .timeline import Timeline, frames_from_steps, steps_for


@dataclass
class WalkRequest:
    """What a method is asked for. Times in seconds, rates in jumps per minute."""

    bundle: Bundle
    n_frames: int                      # output frames to produce
    seed: int = 0
    temperature: float | None = None
    threshold: float | None = None
    jumps_per_min: float | None = None
    alpha: float | None = None
    audio: str | None = None           # conditioning audio file
    audio_model: str | None = None
    start: int | None = None           # first segment (None: the method decides)
    extra: dict = field(default_factory=dict)

    @property
    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[[WalkRequest], Timeline]
    description: str
    needs_audio: bool = False


_METHODS: dict[str, Method] = {}
_WITH_AUDIO: dict[str, Callable[[WalkRequest], Timeline]] = {}
# Modules that register more methods; imported on first lookup so `livetex info` stays fast.
_PROVIDERS = ["livetex.texture", "livetex.sampler", "livetex.conditioning", "livetex.classic", "livetex.vrb"]


def register(name: str, description: str, needs_audio: bool = False):
    def deco(fn):
        _METHODS[name] = Method(name, fn, description, needs_audio)
        return fn
    return deco


def register_audio(name: str):
    """Register how method ``name`` follows music when a request carries audio (a module that
    depends on the method's own module adds it, so the two never import each other)."""
    def deco(fn):
        _WITH_AUDIO[name] = fn
        return fn
    return deco


def _load_providers() -> None:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def methods() -> dict[str, Method]:
    _load_providers()
    return dict(_METHODS)


def get(name: str) -> Method:
    ms = methods()
    if name not in ms:
        raise LivetexError(f"unknown method {name!r}; choose from: {', '.join(sorted(ms))}")
    return ms[name]


def run(name: str, req: WalkRequest) -> Timeline:
    m = get(name)
    if m.needs_audio and not req.audio:
        raise LivetexError(f"method {name!r} follows music: give a conditioning audio file with --audio")
    tl = _WITH_AUDIO[name](req) if req.audio and name in _WITH_AUDIO else m.fn(req)
    b = req.bundle
    tl.bundle = {"path": b.path, "source": b.manifest["source"]["name"],
                 "source_sha256": b.manifest["source"]["sha256"], "n_frames": b.n_frames}
    tl.fps_num, tl.fps_den = int(b.manifest["fps_num"]), int(b.manifest["fps_den"])
    return tl


def segment_timeline(req: WalkRequest, steps: list[int], method: str, **params) -> Timeline:
    """Wrap a segment walk as a Timeline of exactly ``req.n_frames`` frames."""
    frames, jumps = frames_from_steps(req.bundle.segments, steps, req.n_frames)
    return Timeline(fps=req.bundle.fps, frames=frames, jumps=jumps, method=method, seed=req.seed,
                    steps=list(map(int, steps)), params=params)


def n_steps(req: WalkRequest) -> int:
    return steps_for(req.bundle.segments, req.n_frames) + 1


@register("sequential", "the source in order, looping back to the start (a plain loop)")
def sequential(req: WalkRequest) -> Timeline:
    N = req.bundle.segments.count
    t = req.start or 0
    steps = [t]
    for _ in range(n_steps(req) - 1):
        t = t + 1 if t + 1 < N else 0
        steps.append(t)
    return segment_timeline(req, steps, "sequential")


@register("random", "a uniformly random segment at every step (the paper's Random baseline)")
def random_walk(req: WalkRequest) -> Timeline:
    N = req.bundle.segments.count
    rng = req.rng
    t = int(rng.integers(N)) if req.start is None else req.start
    steps = [t]
    for _ in range(n_steps(req) - 1):
        # Every step is a jump: anything but the natural successor.
        j = int(rng.integers(N - 1)) if N > 1 else 0
        if N > 1 and j >= t + 1:
            j += 1
        t = j if N > 1 else 0
        steps.append(t)
    return segment_timeline(req, steps, "random")
