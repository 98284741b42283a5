"""Video decoding with PyAV: probe, streaming iteration at a target size, exact random access.

Every video is seen as a *constant-rate* sequence of frames: frame k is the picture on screen at time
``t0 + k / fps``, where t0 is the first decoded frame's timestamp. Variable-frame-rate input is
resampled onto that grid the way ffmpeg's ``fps`` filter does (a frame is repeated or dropped), so
segment arithmetic stays in whole frames everywhere downstream.

Timestamps are trusted only where they are trustworthy: AVI stores decode-order labels, not
presentation times, and some streams carry none; there frames are counted instead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, asdict
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from ..errors import LivetexError

# Containers whose per-frame timestamps are decode-order counters rather than presentation times.
_COUNTING_FORMATS = {"avi", "h264", "hevc", "mpeg4", "m4v", "rawvideo", "yuv4mpegpipe"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. Times in seconds, sizes in pixels."""

    path: str
    format: str
    codec: str
    width: int
    height: int
    fps: float
    fps_num: int
    fps_den: int
    n_frames: int          # frames on the constant-rate grid (estimated from the duration)
    duration: float        # seconds of video
    t0: float              # container time of the first frame
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    vfr: bool              # timestamps disagree with the nominal rate

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps_num, self.fps_den)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = os.path.basename(self.path)
        return d


def check_file(path: str) -> str:
    """Return ``path`` if it is a readable regular file, else raise a one-line LivetexError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise LivetexError(f"no such file: {path}")
    if os.path.isdir(path):
        raise LivetexError(f"{path} is a directory, expected a media file")
    if os.path.getsize(path) == 0:
        raise LivetexError(f"{path} is empty")
    return path


def open_media(path: str) -> av.container.InputContainer:
    """Open a media file for reading, turning FFmpeg's failures into one clear line."""
    check_file(path)
    try:
        return av.open(path, "r", metadata_errors="ignore")
    except av.FFmpegError as e:
        raise LivetexError(f"cannot read {path}: not a media file FFmpeg understands ({_reason(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LivetexError(f"cannot read {path}: {e}") from None


def _reason(e: Exception) -> str:
    msg = getattr(e, "strerror", None) or str(e)
    return msg.split(";")[0].strip().rstrip(":")


def video_stream(container) -> "av.video.stream.VideoStream":
    """The main picture stream: the first video stream that is not attached cover art."""
    for s in container.streams.video:
        if s.disposition & av.stream.Disposition.attached_pic:
            continue
        return s
    raise LivetexError(f"{container.name} has no video stream")


def audio_stream(container):
    """The first audio stream, or None."""
    return container.streams.audio[0] if container.streams.audio else None


def _nominal_rate(s) -> Fraction:
    for r in (s.average_rate, s.guessed_rate, s.base_rate):
        if r and float(r) > 0 and math.isfinite(float(r)) and float(r) < 1000:
            return Fraction(r).limit_denominator(1001)
    raise LivetexError(f"cannot tell the frame rate of {s.container.name}")


def _counting(container, s) -> bool:
    names = set(container.format.name.split(","))
    return bool(names & _COUNTING_FORMATS)


def _decode(container, s) -> Iterator["av.VideoFrame"]:
    """Decode frames, turning mid-stream corruption into a LivetexError (a truncated file is bad input)."""
    try:
        for frame in container.decode(s):
            yield frame
    except av.FFmpegError as e:
        raise LivetexError(f"cannot decode {container.name}: the file is damaged or truncated ({_reason(e)})") from None


class _Clock:
    """Assigns each decoded frame its time (seconds from the first frame)."""

    def __init__(self, s, counting: bool, rate: Fraction):
        self.tb = s.time_base
        self.counting = counting
        self.dt = 1.0 / float(rate)
        self.first = None
        self.prev = None
        self.n = 0

    def time(self, frame) -> float:
        if self.counting or frame.pts is None:
            t = self.n * self.dt if self.prev is None or self.counting else self.prev + self.dt
        else:
            if self.first is None:
                self.first = frame.pts
            t = float((frame.pts - self.first) * self.tb)
            if self.prev is not None and t <= self.prev:
                # Broken or repeated labels: keep decode order, which is presentation order.
                t = self.prev + self.dt
        self.prev = t
        self.n += 1
        return t


def probe(path: str) -> VideoInfo:
    """Read a video's metadata, decoding a few frames to prove the stream is real.

    Raises LivetexError for a missing file, a non-media file, a file without a video stream or one
    whose pictures cannot be decoded.
    """
    with open_media(path) as c:
        s = video_stream(c)
        rate = _nominal_rate(s)
        a = audio_stream(c)
        first = None
        times = []
        clock = _Clock(s, _counting(c, s), rate)
        for frame in _decode(c, s):
            if first is None:
                first = frame
            times.append(clock.time(frame))
            if len(times) >= 30:
                break
        if first is None:
            raise LivetexError(f"{path} has a video stream but no decodable frames")
        t0 = float(first.time) if first.time is not None and not clock.counting else (
            float(s.start_time * s.time_base) if s.start_time is not None else 0.0)
        duration = _duration(c, s)
        d = np.diff(times) if len(times) > 2 else np.array([1.0 / float(rate)])
        vfr = bool(np.any(np.abs(d - 1.0 / float(rate)) > 0.25 / float(rate)))
        n_frames = max(1, int(round(duration * float(rate)))) if duration else len(times)
        return VideoInfo(
            path=os.fspath(path), format=c.format.name, codec=s.codec_context.name,
            width=first.width, height=first.height, fps=float(rate), fps_num=rate.numerator,
            fps_den=rate.denominator, n_frames=n_frames, duration=n_frames / float(rate), t0=t0,
            has_audio=a is not None, audio_rate=a.rate if a is not None else None,
            audio_channels=a.channels if a is not None else None, vfr=vfr,
        )


def _duration(c, s) -> float | None:
    if s.duration is not None and s.time_base is not None:
        d = float(s.duration * s.time_base)
        if d > 0:
            return d
    if c.duration is not None and c.duration > 0:
        return c.duration / av.time_base
    return None


def iter_frames(path: str, size: tuple[int, int] | None = None, fps: float | Fraction | None = None,
                start: float = 0.0, end: float | None = None, info: VideoInfo | None = None,
                ) -> Iterator[np.ndarray]:
    """Stream RGB frames (H, W, 3) uint8 on a constant-rate grid, one at a time.

    Parameters
    ----------
    size : (width, height) in pixels, or None for the source size.
    fps : output frame rate in Hz; None keeps the source's nominal rate.
    start, end : seconds from the first frame; the first yielded frame is the one on screen at ``start``.

    Raises LivetexError if decoding fails or the stream stops well short of its stated duration.
    """
    info = info or probe(path)
    rate = float(Fraction(fps).limit_denominator(1001) if fps else info.fps_fraction)
    w, h = size if size else (info.width, info.height)
    stop = info.duration if end is None else min(end, info.duration + 1.0)
    last_slot = math.inf if end is None else max(0, math.ceil(round((end - start) * rate, 6))) - 1
    with open_media(path) as c:
        s = video_stream(c)
        s.thread_type = "AUTO"
        clock = _Clock(s, _counting(c, s), _nominal_rate(s))
        next_slot, pending, rgb, t_end = 0, None, None, None
        frames = _decode(c, s)
        if start > _SEEK_AFTER_S and not clock.counting:
            frames = _skip_to(c, s, clock, start, frames)
        # Slot n shows the last frame whose time rounds to n or earlier (ffmpeg's fps filter).
        for frame in frames:
            t = clock.time(frame) - start
            slot = _slot(t, rate)
            if slot > last_slot:
                t_end = t           # the pending frame is on screen until this one
                break
            while pending is not None and next_slot < slot:
                rgb = rgb if rgb is not None else _to_rgb(pending, w, h)
                yield rgb
                next_slot += 1
            pending, rgb = frame, None
            t_end = t + clock.dt    # at the end of the stream, the last frame lasts one frame period
        if pending is not None:
            stop_slot = min(last_slot + 1, _end_slot(t_end, rate))
            while next_slot < stop_slot:
                rgb = rgb if rgb is not None else _to_rgb(pending, w, h)
                yield rgb
                next_slot += 1
    shown = next_slot / rate
    wanted = stop - start
    if wanted - shown > max(1.0, 0.1 * wanted):
        raise LivetexError(f"{path} is truncated or damaged: it claims {wanted:.1f} s of video "
                           f"but only {shown:.1f} s could be decoded")


_SEEK_AFTER_S = 1.0     # a later start seeks instead of decoding everything before it


def _skip_to(c, s, clock: "_Clock", start: float, frames: Iterator["av.VideoFrame"]) -> Iterator["av.VideoFrame"]:
    """Decode frames from the keyframe before ``start`` s instead of from the beginning of the file.

    The first frame is still decoded, since its timestamp is the clock's origin (as in sequential
    reading); then the demuxer seeks half a second before ``start`` (to a keyframe at or before it).
    Without timestamps there is nothing to seek by, and decoding just goes on.
    """
    first = next(frames, None)
    if first is None:
        return
    if first.pts is None:
        yield first
        yield from frames
        return
    yield first                     # anchors the clock; its slot is long before start, so it is skipped
    frames.close()
    target = first.pts + int((start - 0.5) / s.time_base)
    c.seek(target, stream=s, backward=True, any_frame=False)
    for frame in _decode(c, s):
        if frame.pts is not None and frame.pts <= first.pts:
            continue                # the seek went back to the very beginning: already seen
        yield frame


def _slot(t: float, rate: float) -> int:
    """Grid slot of a frame at ``t`` seconds: the nearest, ties going up (ffmpeg's fps filter).

    The epsilon makes ties break the same way every time: a start time half-way between two frames
    would otherwise let float noise round some frames down and others up (a dropped frame next to a
    doubled one)."""
    return math.floor(t * rate + 0.5 + 1e-6)


def _end_slot(t_end: float, rate: float) -> int:
    """First slot that starts at or after ``t_end`` seconds (exclusive end of a frame shown until then)."""
    return math.ceil(t_end * rate - 1e-6)


def _to_rgb(frame, w: int, h: int) -> np.ndarray:
    if frame.width == w and frame.height == h:
        rgb = frame.to_ndarray(format="rgb24")
    else:
        rgb = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    # Odd widths come back as a view with padded rows; consumers (GL upload, from_ndarray) need packed rows.
    return np.ascontiguousarray(rgb)


class VideoReader:
    """Random access to frame k of the constant-rate grid (exact, by seek-and-decode).

    Containers with timestamps are sought to the nearest keyframe; counting containers (AVI) are
    decoded forward from the start, restarting only when asked for an earlier frame.
    """

    def __init__(self, path: str, size: tuple[int, int] | None = None):
        self.info = probe(path)
        self.path = path
        self.size = size or (self.info.width, self.info.height)
        self._it = None
        self._pos = -1
        self._cur = None
        with open_media(path) as c:
            self._seekable = not _counting(c, video_stream(c))

    def frame(self, k: int) -> np.ndarray:
        """RGB frame k (H, W, 3) uint8."""
        if k < 0:
            raise IndexError(k)
        if self._seekable:
            return self._seek_frame(k)
        if self._it is None or k < self._pos:
            self._it, self._pos, self._cur = iter_frames(self.path, self.size, info=self.info), -1, None
        while self._pos < k:
            try:
                self._cur = next(self._it)
            except StopIteration:
                raise IndexError(f"frame {k} is past the end of {self.path}") from None
            self._pos += 1
        return self._cur

    def _seek_frame(self, k: int) -> np.ndarray:
        rate = float(self.info.fps)
        target = k / rate
        with open_media(self.path) as c:
            s = video_stream(c)
            tb = s.time_base
            first = None
            # The stream's first pts anchors the clock, exactly as in sequential iteration.
            for frame in _decode(c, s):
                first = frame.pts
                break
            c.seek(int(first + (target - 0.5 / rate) / tb), stream=s, backward=True, any_frame=False)
            best, t_best, ended = None, 0.0, True
            for frame in _decode(c, s):
                if frame.pts is None:
                    continue
                t = float((frame.pts - first) * tb)
                if _slot(t, rate) > k:
                    ended = False
                    break
                best, t_best = frame, t
            # Past the last frame's period there is no frame k (as in iter_frames), not a repeat of the last.
            if best is None or (ended and k >= _end_slot(t_best + 1.0 / rate, rate)):
                raise IndexError(f"frame {k} is past the end of {self.path}")
            return _to_rgb(best, *self.size)
