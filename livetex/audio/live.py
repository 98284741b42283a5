"""The live audio embedder the player runs: blocks of samples in, one T_a row per stride out.

Feed it whatever the sound card delivers (any rate, mono or interleaved multi-channel, any block size);
it resamples to the bundle rate with FFmpeg's swresample (the same resampler, with the same settings,
that decodes files offline, so a song streamed through it gives the offline samples), keeps the last
window of samples, and every time a stride completes it embeds the window with the *same* audio model
and feature code as offline conditioning (:mod:`livetex.audio.models`) and returns the T_a row.

Window k of the stream covers samples [round(k S sr / fps), that + window_samples) of the resampled
stream, S = stride in frames: exactly the windows :func:`livetex.conditioning.output_windows` cuts
offline, so with the same gain the k-th live row equals the k-th offline row (tested).

No torch, no librosa: numpy, PyAV's resampler and (for ``av``) onnxruntime. Cost per step is printed
by ``tools/bench_audio.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import LivetexError
from . import level_db, match_gain, window_start
from . import features as F
from .models import AudioModel, load_audio_model

LEVEL_MEMORY_S = 30.0      # "auto" gain: the input's reference level is taken over this much recent audio


@dataclass
class LiveStep:
    """One stride of live audio, ready for ``Sampler.step(extra=step.probs, alpha=...)``.

    index : k, the window's number since the stream (re)started.
    end_s : stream time (s, at the input) where the window ends; compare with your audio clock.
    level_db : the window's level before gain (dBFS), e.g. for a HUD meter or silence detection.
    gain : the linear gain applied before embedding.
    embedding : (d,) query embedding.
    probs : (N,) T_a row over the bundle's segments.
    """

    index: int
    end_s: float
    level_db: float
    gain: float
    embedding: np.ndarray
    probs: np.ndarray


class _Resampler:
    """Streaming any-rate/any-layout -> mono ``F.SR`` float32 through swresample (exactly as load_audio)."""

    _LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}

    def __init__(self, rate: int, channels: int):
        self.rate, self.channels = int(rate), int(channels)
        self.passthrough = self.rate == F.SR and self.channels == 1
        if not self.passthrough:
            import av
            if self.channels not in self._LAYOUTS:
                raise LivetexError(f"unsupported channel count {channels} (use 1, 2 or 6)")
            self._av = av
            self._r = av.AudioResampler(format="fltp", layout="mono", rate=F.SR)
            self._pts = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.passthrough:
            return block[:, 0]
        f = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T), format="fltp",
                                             layout=self._LAYOUTS[self.channels])
        f.sample_rate = self.rate
        f.pts = self._pts
        self._pts += len(block)
        out = [o.to_ndarray()[0] for o in self._r.resample(f)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class LiveEmbedder:
    """Streaming audio -> T_a rows for a bundle.

    Parameters
    ----------
    bundle : a loaded Bundle (with source audio; LivetexError otherwise).
    audio_model : "features" or "av" (default features; "vggish" is offline only).
    rate, channels : the input stream's sample rate (Hz) and channel count.
    gain : "auto" (level-match by a running estimate of the input's level over the last 30 s, like a
        microphone needs), a float (fixed linear gain: ``livetex.audio.song_gain(y, model.ref_db, ...)``
        for a known song, which is what offline conditioning applies), or None (no level matching).

    ``push(block)`` returns the :class:`LiveStep` of every stride completed by the block (usually 0 or
    1; a player that fell behind should use only the last). ``reset()`` restarts the stream.
    """

    def __init__(self, bundle, audio_model: str | None = None, rate: int = 48000, channels: int = 1,
                 gain: str | float | None = "auto", model: AudioModel | None = None):
        self.model = model or load_audio_model(bundle, audio_model)
        if not self.model.live:
            raise LivetexError(f"audio model {self.model.name!r} runs offline only (it needs torch); "
                               "use --audio-model features or av for live input")
        if not (isinstance(rate, (int, np.integer)) and 1000 <= rate <= 384000):
            raise LivetexError(f"unsupported input sample rate {rate!r} Hz")
        self.rate, self.channels = int(rate), int(channels)
        seg = bundle.segments
        self.fps, self.stride_frames = seg.fps, seg.stride_frames
        self.window = self.model.window
        self.stride_s = seg.stride_frames / seg.fps
        if gain is not None and gain != "auto":
            try:
                gain = float(gain)
            except (TypeError, ValueError):
                gain = float("nan")
            if not (np.isfinite(gain) and gain > 0):
                raise LivetexError(f"gain must be 'auto', None or a positive number, got {gain}")
        self.gain_mode = gain
        self._level_len = max(1, int(round(LEVEL_MEMORY_S / self.stride_s)))
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next sample pushed is sample 0 of window 0."""
        self._rs = _Resampler(self.rate, self.channels)
        self._buf = np.zeros(0, np.float32)
        self._buf0 = 0          # stream index (at F.SR) of _buf[0]
        self._n = 0             # samples received so far (at F.SR)
        self.k = 0              # next window index
        self._levels: deque = deque(maxlen=self._level_len)
        self.gain = 1.0 if self.gain_mode in (None, "auto") else float(self.gain_mode)

    def push(self, block: np.ndarray) -> list[LiveStep]:
        """Add samples: (n,) mono or (n, channels), float32 in [-1, 1] (int16 is scaled). NaN/inf -> 0."""
        x = np.asarray(block)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = np.asarray(x, np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"expected a block of shape (n, {self.channels}), got {x.shape}")
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        y = self._rs(x) if len(x) else np.zeros(0, np.float32)
        self._buf = np.concatenate([self._buf, y])
        self._n += len(y)
        steps = []
        while True:
            end = self._end(self.k)
            if end > self._n:
                break
            steps.append(self._emit(end))
            self.k += 1
        # Keep only what the next window still needs.
        keep_from = self._end(self.k) - self.window
        drop = max(0, min(keep_from - self._buf0, len(self._buf)))
        if drop:
            self._buf = self._buf[drop:]
            self._buf0 += drop
        return steps

    def _end(self, k: int) -> int:
        """Stream sample (at ``features.SR``) where window k ends (exclusive)."""
        return window_start(k, self.stride_frames, self.fps) + self.window

    def _emit(self, end: int) -> LiveStep:
        a = end - self.window - self._buf0
        w = np.zeros(self.window, np.float32)
        lo = max(0, a)
        w[lo - a:] = self._buf[lo:end - self._buf0]
        lv = float(level_db(w)[0])
        if self.gain_mode == "auto" and self.model.ref_db is not None:
            self._levels.append(lv)
            self.gain = match_gain(np.asarray(self._levels), self.model.ref_db)
        q = self.model.query(w[None], self.gain)
        return LiveStep(self.k, end / F.SR, lv, self.gain, q[0], self.model.probs(q)[0])
