"""A rendered walk, as data: which source frame is shown at every output frame.

Written next to every render as JSON so results can be checked, compared and re-rendered::

    {"schema": 1, "fps": 30.0, "method": "contrastive", "seed": 0,
     "frames": [source frame index for every output frame],
     "jumps": [output frame index where each jump lands],
     "steps": [segment chosen at every step] (segment walks only),
     "params": {...}, "bundle": {...}, "audio": {...} or null}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import LivetexError
from .segments import Segments

SCHEMA = 1


@dataclass
class Timeline:
    fps: float
    frames: np.ndarray                 # (n_out,) int source frame per output frame
    jumps: list[int]                   # output frame indices where a jump lands
    method: str
    seed: int | None = None
    steps: list[int] | None = None     # segment per step, for segment walks
    params: dict = field(default_factory=dict)
    bundle: dict = field(default_factory=dict)
    audio: dict | None = None
    fps_num: int | None = None
    fps_den: int | None = None

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "fps": self.fps, "fps_num": self.fps_num, "fps_den": self.fps_den,
                "method": self.method, "seed": self.seed, "seconds": self.seconds,
                "frames": [int(x) for x in self.frames], "jumps": [int(x) for x in self.jumps],
                "steps": None if self.steps is None else [int(x) for x in self.steps],
                "params": self.params, "bundle": self.bundle, "audio": self.audio}

    def save(self, path: str) -> str:
        tmp = f"{path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(self.to_dict(), f, indent=None, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise LivetexError(f"cannot write {path}: {e.strerror or e}") from None
        return path


def load_timeline(path: str) -> Timeline:
    """Read a timeline JSON written by ``livetex render``."""
    if not os.path.isfile(path):
        raise LivetexError(f"no such timeline: {path}")
    try:
        with open(path) as f:
            d = json.load(f)
        if d.get("schema") != SCHEMA:
            raise LivetexError(f"{path} is not a livetex timeline (schema {d.get('schema')!r})")
        frames = np.asarray(d["frames"], np.int64)
        if frames.ndim != 1 or len(frames) == 0 or frames.min() < 0:
            raise ValueError("frames must be a non-empty list of non-negative indices")
        return Timeline(fps=float(d["fps"]), frames=frames, jumps=[int(x) for x in d["jumps"]],
                        method=str(d["method"]), seed=d.get("seed"), steps=d.get("steps"),
                        params=d.get("params") or {}, bundle=d.get("bundle") or {}, audio=d.get("audio"),
                        fps_num=d.get("fps_num"), fps_den=d.get("fps_den"))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise LivetexError(f"{path} is not a valid livetex timeline ({e})") from None


def steps_for(seg: Segments, n_out: int) -> int:
    """Walk steps after the first segment needed to cover ``n_out`` output frames."""
    return max(0, math.ceil((n_out - seg.window_frames) / seg.stride_frames))


def frames_from_steps(seg: Segments, steps: list[int], n_out: int) -> tuple[np.ndarray, list[int]]:
    """Turn a segment walk into output frames and jump positions.

    The first segment contributes its whole window; every later step appends the last stride of
    the chosen segment. A step is a jump unless it chooses the natural successor (previous + 1).
    """
    W, S = seg.window_frames, seg.stride_frames
    out = np.empty(W + S * max(0, len(steps) - 1), np.int64)
    a, b = seg.frame_range(steps[0])
    out[:W] = np.arange(a, b)
    jumps = []
    pos = W
    for prev, j in zip(steps[:-1], steps[1:]):
        a, b = seg.tail_range(j)
        out[pos:pos + S] = np.arange(a, b)
        if j != prev + 1 and pos < n_out:
            jumps.append(pos)
        pos += S
    return out[:n_out], jumps


def jumps_from_frames(frames: np.ndarray) -> list[int]:
    """Output frame indices where the source index does not advance by exactly one."""
    f = np.asarray(frames)
    return [int(i) + 1 for i in np.flatnonzero(np.diff(f) != 1)]
