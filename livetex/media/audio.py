"""Audio decoding with PyAV: any codec, rate and channel layout in, float32 at the rate you ask out."""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from ..errors import LivetexError
from .video import _reason, audio_stream, open_media

_LAYOUTS = {1: "mono", 2: "stereo"}
_MAX_TAIL = 2304     # longest end padding (samples at the stream's rate) trimmed to the declared duration: two MP3 frames


@dataclass(frozen=True)
class AudioInfo:
    """An audio stream's format. Duration in seconds (None if the container does not say)."""

    rate: int
    channels: int
    codec: str
    duration: float | None


def probe_audio(path: str) -> AudioInfo:
    """Describe the first audio stream of a file; LivetexError if there is none."""
    with open_media(path) as c:
        a = audio_stream(c)
        if a is None:
            raise LivetexError(f"{path} has no audio stream")
        dur = float(a.duration * a.time_base) if a.duration else (c.duration / av.time_base if c.duration else None)
        return AudioInfo(a.rate, a.channels, a.codec_context.name, dur)


def load_audio(path: str, sr: int, channels: int = 1, start: float = 0.0, duration: float | None = None,
               t0: float | None = None) -> np.ndarray:
    """Decode the first audio stream to float32 samples at ``sr`` Hz.

    Parameters
    ----------
    sr : output sample rate in Hz (resampled with FFmpeg's swresample).
    channels : 1 (mono, shape (n,)) or 2 (stereo, shape (n, 2)); other layouts are down/up-mixed.
    start, duration : seconds to keep, measured from sample 0.
    t0 : container time (s) that sample 0 stands for. Pass a video's first-frame time to get audio
        aligned with its frame 0 (leading silence is padded, early audio is cut). Default: the audio's
        own first sample.

    NaN and infinite samples (broken float files) become 0.
    """
    if channels not in _LAYOUTS:
        raise ValueError("channels must be 1 or 2")
    if not (isinstance(sr, (int, np.integer)) and 1000 <= sr <= 384000):
        raise LivetexError(f"unsupported sample rate {sr!r} Hz")
    with open_media(path) as c:
        a = audio_stream(c)
        if a is None:
            raise LivetexError(f"{path} has no audio stream")
        resampler = av.AudioResampler(format="fltp", layout=_LAYOUTS[channels], rate=int(sr))
        chunks, first, stop = [], None, None
        try:
            for frame in c.decode(a):
                if first is None:
                    first = float(frame.time) if frame.time is not None else 0.0
                    if duration is not None:
                        # Decode only what is asked for (plus a margin), not an hour-long mix.
                        stop = (first if t0 is None else t0) + start + duration + 0.5
                elif stop is not None and frame.time is not None and frame.time > stop:
                    break
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as e:
            raise LivetexError(f"cannot decode the audio of {path}: the file is damaged ({_reason(e)})") from None
        except ValueError as e:  # the stream changed layout or rate mid-way
            raise LivetexError(f"cannot decode the audio of {path}: {e}") from None
        end, src_rate = _declared_end(a), a.rate
    if not chunks:
        raise LivetexError(f"{path} has an audio stream but no decodable samples")
    y = np.concatenate(chunks, axis=1).T.astype(np.float32, copy=False)   # (n, channels)
    if end is not None:
        # Codecs with fixed frames (AAC: 1024 samples) decode the silence that pads the last frame;
        # the container's stream duration says where the real audio ends. Trust it only for a short
        # tail, so a wrong header can never cut real sound.
        keep = int(round((end - first) * sr))
        if 0 < keep < len(y) and len(y) - keep <= _MAX_TAIL * sr / src_rate:
            y = y[:keep]
    if t0 is not None:
        shift = int(round((first - t0) * sr))
        if shift > 0:
            y = np.concatenate([np.zeros((shift, channels), np.float32), y])
        elif shift < 0:
            y = y[-shift:]
    a0 = int(round(start * sr))
    y = y[a0:] if duration is None else y[a0:a0 + int(round(duration * sr))]
    y = np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0)
    y = np.ascontiguousarray(y)
    return y[:, 0].copy() if channels == 1 else y


def _declared_end(a) -> float | None:
    """Container time (s) where the stream says its audio ends, or None if it does not say."""
    if not a.duration or a.time_base is None or a.duration <= 0:
        return None
    return float(((a.start_time or 0) + a.duration) * a.time_base)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad samples (first axis) to exactly ``n``."""
    if len(y) >= n:
        return y[:n]
    pad = np.zeros((n - len(y),) + y.shape[1:], y.dtype)
    return np.concatenate([y, pad])
