"""Overlapping segments V_i of a video: the unit that every model, walk and player works on.

Window and stride are given in seconds and turned into whole frames for the video's fps, once, here.
Segment i covers frames ``[start_i, start_i + window_frames)`` with ``start_i = i * stride_frames``;
its audio covers samples ``[round(start_i * sr / fps), round((start_i + window_frames) * sr / fps))``.

A walk that moves from segment t to segment j appends the *last* ``stride_frames`` frames of V_j.
When j == t + 1 those are exactly the frames that follow V_t, so an unbroken walk replays the source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import LivetexError

WINDOW_S = 0.5
STRIDE_S = 0.2


def _round(x: float) -> int:
    # Half-up, not Python's banker's rounding: 0.5 s at 25 fps is 13 frames, never 12.
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class Segments:
    """Segment geometry of one video.

    Attributes
    ----------
    fps : float
        Frames per second of the (constant-rate) frame sequence.
    n_frames : int
        Frames in the video.
    window_frames, stride_frames : int
        Segment length and hop, in frames.
    window_s, stride_s : float
        The requested window and stride, in seconds.
    """

    fps: float
    n_frames: int
    window_frames: int
    stride_frames: int
    window_s: float = WINDOW_S
    stride_s: float = STRIDE_S

    @property
    def count(self) -> int:
        """Number of segments N."""
        if self.n_frames < self.window_frames:
            return 0
        return (self.n_frames - self.window_frames) // self.stride_frames + 1

    @property
    def starts(self) -> np.ndarray:
        """First frame of every segment, shape (N,)."""
        return np.arange(self.count, dtype=np.int64) * self.stride_frames

    def frame_range(self, i: int) -> tuple[int, int]:
        """Frames ``[a, b)`` of segment i."""
        self._check(i)
        a = i * self.stride_frames
        return a, a + self.window_frames

    def tail_range(self, i: int) -> tuple[int, int]:
        """Frames ``[a, b)`` appended to the output when the walk moves to segment i (its last stride)."""
        a, b = self.frame_range(i)
        return b - self.stride_frames, b

    def sample_range(self, i: int, sr: int) -> tuple[int, int]:
        """Audio samples ``[a, b)`` at rate ``sr`` (Hz) covering segment i, with sample 0 at frame 0."""
        a, b = self.frame_range(i)
        return _round(a * sr / self.fps), _round(b * sr / self.fps)

    def window_samples(self, sr: int) -> int:
        """Length in samples of every segment's audio window (constant, so windows stack into an array)."""
        return _round(self.window_frames * sr / self.fps)

    def segment_of_frame(self, frame: int) -> int:
        """Index of the segment whose tail contains ``frame`` (used to map a source frame back to a state)."""
        i = (frame - self.window_frames) // self.stride_frames + 1
        return int(min(max(i, 0), self.count - 1))

    def _check(self, i: int) -> None:
        if not 0 <= i < self.count:
            raise IndexError(f"segment {i} out of range 0..{self.count - 1}")

    def to_dict(self) -> dict:
        return {
            "window_s": self.window_s,
            "stride_s": self.stride_s,
            "window_frames": self.window_frames,
            "stride_frames": self.stride_frames,
            "count": self.count,
        }


def make_segments(n_frames: int, fps: float, window: float = WINDOW_S, stride: float = STRIDE_S) -> Segments:
    """Segment a video of ``n_frames`` frames at ``fps`` into windows of ``window`` s every ``stride`` s.

    Raises LivetexError if the video is shorter than one window.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise LivetexError(f"invalid frame rate {fps!r}")
    if not 0 < stride <= window:
        raise LivetexError(f"stride ({stride} s) must be > 0 and no longer than the window ({window} s)")
    stride_frames = max(1, _round(stride * fps))
    # A window must be longer than its stride, or consecutive segments would not overlap / touch.
    window_frames = max(stride_frames + 1, _round(window * fps))
    seg = Segments(float(fps), int(n_frames), window_frames, stride_frames, float(window), float(stride))
    if seg.count < 1:
        raise LivetexError(
            f"video is too short: {n_frames} frames ({n_frames / fps:.2f} s) at {fps:g} fps, "
            f"one {window:g} s window needs {window_frames} frames"
        )
    return seg


def segments_from_dict(d: dict, n_frames: int, fps: float) -> Segments:
    """Rebuild the geometry stored in a bundle manifest."""
    return Segments(float(fps), int(n_frames), int(d["window_frames"]), int(d["stride_frames"]),
                    float(d["window_s"]), float(d["stride_s"]))
