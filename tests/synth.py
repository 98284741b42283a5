"""Tiny synthetic media for tests, written with PyAV (no ffmpeg CLI).

Every video frame k carries its own index as a block bit-code in the top half (robust to lossy
coding: blocks are large and black or white), so a test can decode any frame and tell which source
frame it is; the bottom half has a per-frame grey level and a moving bar, so neighbouring frames
always differ in pixels too.

Audio is a sine tone by default, or silence with short noise bursts (``clicks``) at given times,
which lets a test measure A/V alignment.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

BITS = 12                       # frame indices 0..4095
_ROWS, _COLS = 2, 6


# ---------------------------------------------------------------------------------------- pictures
def pattern(k: int, size: tuple[int, int]) -> np.ndarray:
    """RGB frame (H, W, 3) uint8 that encodes frame index ``k``; ``size`` is (width, height)."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    top = h // 2
    for b in range(BITS):
        r, c = divmod(b, _COLS)
        y0, y1 = r * top // _ROWS, (r + 1) * top // _ROWS
        x0, x1 = c * w // _COLS, (c + 1) * w // _COLS
        if (k >> b) & 1:
            img[y0:y1, x0:x1] = 255
    img[top:] = 40 + (k * 37) % 176                      # grey level changes every frame
    x = (k * 3) % max(1, w - 4)
    img[top:, x:x + 4] = (255, 32, 32)                   # a moving red bar
    return img


def smooth(k: int, size: tuple[int, int]) -> np.ndarray:
    """A photo-like RGB frame (gradients and a soft moving blob): what JPEG quality is judged on."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (0.5 + 0.3 * np.cos(k / 7)) * w, (0.5 + 0.3 * np.sin(k / 5)) * h
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.15 * max(w, h)) ** 2))
    r = 60 + 120 * x / w + 60 * blob
    g = 50 + 100 * y / h + 80 * blob
    b = 160 - 80 * x / w + 40 * np.sin(k / 3)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def frame_index(rgb: np.ndarray) -> int:
    """Decode the index written by :func:`pattern` (sampling each block's centre)."""
    h, w = rgb.shape[:2]
    top = h // 2
    k = 0
    for b in range(BITS):
        r, c = divmod(b, _COLS)
        y0, y1 = r * top // _ROWS, (r + 1) * top // _ROWS
        x0, x1 = c * w // _COLS, (c + 1) * w // _COLS
        dy, dx = max(1, (y1 - y0) // 4), max(1, (x1 - x0) // 4)
        block = rgb[y0 + dy:y1 - dy, x0 + dx:x1 - dx]
        if block.mean() > 128:
            k |= 1 << b
    return k


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# ------------------------------------------------------------------------------------------- audio
_LAYOUT = {1: "mono", 2: "stereo", 6: "5.1"}


def tone(seconds: float, sr: int, channels: int = 1, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    """(n, channels) float32 sine."""
    t = np.arange(int(round(seconds * sr))) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1)


def clicks(seconds: float, sr: int, times, channels: int = 1, length: float = 0.01, seed: int = 0) -> np.ndarray:
    """(n, channels) float32 silence with ``length``-second noise bursts starting at ``times`` (s)."""
    y = np.zeros((int(round(seconds * sr)), channels), np.float32)
    rng = np.random.default_rng(seed)
    n = max(1, int(round(length * sr)))
    for t in times:
        a = int(round(t * sr))
        b = min(len(y), a + n)
        y[a:b] = rng.uniform(-0.8, 0.8, (b - a, 1)).astype(np.float32)
    return y


def onset(y: np.ndarray, sr: int, level: float = 0.1) -> float:
    """Time (s) of the first sample whose magnitude exceeds ``level``."""
    y = np.abs(y if y.ndim == 1 else y.max(axis=1))
    idx = np.flatnonzero(y > level)
    return float(idx[0]) / sr if len(idx) else float("nan")


_AUDIO_CODEC = {".wav": ("pcm_s16le", "s16"), ".m4a": ("aac", "fltp"), ".mp4": ("aac", "fltp"),
                ".ogg": ("libopus", "flt"), ".opus": ("libopus", "flt"), ".flac": ("flac", "s16"),
                ".mkv": ("aac", "fltp"), ".mp3": ("libmp3lame", "fltp")}


def _add_audio_stream(c, ext: str, sr: int, channels: int, codec: str | None = None):
    name, fmt = (codec, None) if codec else _AUDIO_CODEC[ext]
    s = c.add_stream(name, rate=sr, layout=_LAYOUT[channels])
    s.format = fmt or s.codec_context.codec.audio_formats[0].name
    return s


def _encode_audio(c, s, y: np.ndarray, sr: int, t0: float = 0.0) -> None:
    fmt = s.format.name
    chunk = s.codec_context.frame_size or 1024
    pts0 = int(round(t0 * sr))
    for a in range(0, len(y), chunk):
        part = y[a:a + chunk]
        if fmt.startswith("s16"):
            data = np.clip(part * 32767, -32768, 32767).astype(np.int16)
        elif fmt.startswith("s32"):
            data = np.clip(part * 2147483647.0, -2147483648, 2147483647).astype(np.int32)
        elif fmt.startswith("dbl"):
            data = part.astype(np.float64)
        else:
            data = part.astype(np.float32)
        if fmt.endswith("p"):
            arr = np.ascontiguousarray(data.T)
        else:
            arr = np.ascontiguousarray(data.reshape(1, -1))
        f = av.AudioFrame.from_ndarray(arr, format=fmt, layout=s.layout.name)
        f.sample_rate = sr
        f.pts = pts0 + a
        f.time_base = Fraction(1, sr)
        c.mux(s.encode(f))
    c.mux(s.encode(None))


def write_audio(path: str, sr: int = 44100, channels: int = 1, seconds: float = 1.0,
                y: np.ndarray | None = None, codec: str | None = None) -> str:
    """Write an audio-only file; container and codec follow the extension (.wav, .m4a, .ogg, .flac...)."""
    ext = os.path.splitext(path)[1].lower()
    y = tone(seconds, sr, channels) if y is None else np.asarray(y, np.float32).reshape(-1, channels)
    with av.open(path, "w") as c:
        s = _add_audio_stream(c, ext, sr, channels, codec)
        _encode_audio(c, s, y, sr)
    return path


# ------------------------------------------------------------------------------------------- video
def write_video(path: str, n_frames: int = 50, fps: float | Fraction = 25, size: tuple[int, int] = (64, 48),
                audio: np.ndarray | None = None, sr: int = 16000, codec: str = "libx264",
                pix_fmt: str | None = None, times: list[float] | None = None, faststart: bool = True,
                gop: int = 12, audio_t0: float = 0.0, container: str | None = None) -> str:
    """Write a video whose frame k shows :func:`pattern` (k).

    Parameters
    ----------
    audio : optional (n,) or (n, channels) float32 at ``sr`` Hz, muxed as AAC (mp4/mkv) or PCM (avi: mp3).
    times : optional per-frame presentation times in seconds (variable frame rate; mkv/mp4 only).
    faststart : mp4 only: put the index (moov) before the data.
    gop : keyframe interval in frames (small, so seeking has work to do but stays cheap).
    audio_t0 : time (s) of the first audio sample (to test leading offsets).
    """
    ext = os.path.splitext(path)[1].lower()
    fps = Fraction(fps).limit_denominator(1001)
    opts = {"movflags": "+faststart"} if (faststart and ext in (".mp4", ".mov", ".m4v")) else {}
    with av.open(path, "w", format=container, options=opts) as c:
        vs = c.add_stream(codec, rate=fps)
        vs.width, vs.height = size
        vs.pix_fmt = pix_fmt or ("yuv420p" if codec in ("libx264", "mpeg4") else vs.codec_context.codec.video_formats[0].name)
        if codec == "libx264":
            vs.options = {"crf": "12", "preset": "ultrafast", "g": str(gop), "keyint_min": str(gop),
                          "bf": "0" if times is not None else "2"}
        else:
            vs.codec_context.gop_size = gop
        if times is not None:
            # Millisecond timestamps all the way to the muxer (else the encoder snaps them to 1/fps).
            vs.time_base = Fraction(1, 1000)
            vs.codec_context.time_base = Fraction(1, 1000)
        aus = None
        if audio is not None:
            y = np.asarray(audio, np.float32)
            y = y[:, None] if y.ndim == 1 else y
            acodec = "libmp3lame" if ext == ".avi" else ("aac" if ext in (".mp4", ".mov", ".mkv", ".m4v") else None)
            aus = _add_audio_stream(c, ext, sr, y.shape[1], acodec)
        for k in range(n_frames):
            f = av.VideoFrame.from_ndarray(pattern(k, size), format="rgb24")
            if times is not None:
                f.pts = int(round(times[k] * 1000))
                f.time_base = Fraction(1, 1000)
            else:
                f.pts = k
                f.time_base = 1 / fps
            c.mux(vs.encode(f))
        c.mux(vs.encode(None))
        if aus is not None:
            _encode_audio(c, aus, y, sr, audio_t0)
    return path


def write_vfr(path: str, n_frames: int = 60, size: tuple[int, int] = (64, 48), seed: int = 0) -> tuple[str, np.ndarray]:
    """A variable-frame-rate mkv: frame durations drawn from 17..83 ms. Returns (path, times in s)."""
    rng = np.random.default_rng(seed)
    ms = np.concatenate([[0], np.cumsum(rng.choice([17, 33, 41, 41, 41, 58, 83], size=n_frames - 1))])
    # No frame exactly half-way between two 25 fps slots: which side a tie lands on is float noise.
    ms = ms + (ms % 40 == 20)
    times = ms / 1000.0
    write_video(path, n_frames, fps=25, size=size, times=list(times))
    return path, times


def truncate(src: str, dst: str, fraction: float = 0.5) -> str:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (a download cut short)."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[:int(len(data) * fraction)])
    return dst


def random_bytes(path: str, n: int = 20000, seed: int = 0) -> str:
    with open(path, "wb") as f:
        f.write(np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes())
    return path


def expected_vfr_index(times: np.ndarray, rate: float, n_out: int) -> np.ndarray:
    """Which source frame ffmpeg's fps filter shows in each output slot: the last frame whose time
    rounds to that slot or earlier."""
    slots = np.floor(np.asarray(times) * rate + 0.5).astype(int)
    out = np.empty(n_out, int)
    j = 0
    for n in range(n_out):
        while j + 1 < len(slots) and slots[j + 1] <= n:
            j += 1
        out[n] = j
    return out
