"""The player's audio side: what the audio says about the next step, as a T_a row over the N segments.

The scheduler mixes a row into the walk as ``alpha * T_v + (1 - alpha) * T_a``
(``Sampler.step(extra=row, alpha=alpha)``); None means "no opinion": the step is unconditional.
Both classes use :mod:`livetex.audio` (the same audio model, features, gain rule and window grid as
offline conditioning), so the player scores audio exactly as ``livetex render --audio`` does:

- :class:`SongCondition` (``--audio FILE``): the song is known in advance, so step k gets the row of
  the window *heard while its frames are on screen*, window k of
  :func:`livetex.conditioning.output_windows`, with the song's fixed level-matching gain. Identical
  to the offline rows (tested).
- :class:`MicCondition` (``--audio mic``): microphone samples are pushed into
  :class:`livetex.audio.live.LiveEmbedder` as they arrive; it emits one row per completed stride of
  audio (running level matching, any device rate). The scheduler takes the newest row for each step.
"""

from __future__ import annotations

import numpy as np

from ..errors import LivetexError


def _load_model(bundle, audio_model: str | None):
    try:
        from ..audio.models import load_audio_model
    except ImportError as e:
        raise LivetexError(f"audio conditioning is not available in this installation ({e})") from None
    from ..audio import features as F
    if bundle.has("audio_feat") and bundle.manifest["arrays"]["audio_feat"]["shape"][-1] != F.FEATURE_DIM:
        # The audio models were fitted on another feature layout: every live query would fail.
        raise LivetexError(f"{bundle.path} was fitted with an older audio feature set "
                           f"({bundle.manifest['arrays']['audio_feat']['shape'][-1]} values, this livetex computes "
                           f"{F.FEATURE_DIM}); re-fit the video to follow audio with it")
    model = load_audio_model(bundle, audio_model)
    if not model.live:
        raise LivetexError(f"audio model {model.name!r} runs offline only (it needs torch); "
                           "use --audio-model av or features in the player")
    return model


class SongCondition:
    """T_a rows for a known recording ``y`` (mono float32 at ``livetex.audio.features.SR``)."""

    def __init__(self, bundle, y: np.ndarray, audio_model: str | None = None):
        from ..audio import features as F
        from ..audio import song_gain
        self.model = _load_model(bundle, audio_model)
        self.name = self.model.name
        self.sr = F.SR
        seg = bundle.segments
        self.fps, self.stride_frames = seg.fps, seg.stride_frames
        self.window_samples = int(self.model.window)
        if len(y) < self.window_samples:
            raise LivetexError(f"the audio is {len(y) / self.sr:.2f} s long: the player needs at least one "
                               f"{self.window_samples / self.sr:.2f} s window to follow")
        self.y = np.asarray(y, np.float32)
        self.gain = song_gain(self.y, self.model.ref_db, self.window_samples, self.fps, self.stride_frames)
        self.offset_s = 0.0      # song time of step 0's first frame (a clip of a bank starts mid-song)

    def window(self, k: int) -> tuple[int, int]:
        """Samples ``[a, b)`` of step k's window: output frames [k S, k S + W), ending with step k's frames."""
        from ..audio import window_start
        a = window_start(k, self.stride_frames, self.fps, self.sr) + int(round(self.offset_s * self.sr))
        return a, a + self.window_samples

    def __call__(self, k: int) -> np.ndarray | None:
        """Step k's row, or None once the song is over."""
        from ..audio import features as F
        a, b = self.window(k)
        if a >= len(self.y):
            return None
        w = F.frame_windows(self.y, np.array([a]), self.window_samples)
        return self.model.probs(self.model.query(w, self.gain))[0]

    def rows(self, batch: int = 256) -> np.ndarray:
        """Every step's row until the song is over, (K, N): what a planned walk needs up front. The same
        rows as ``self(k)``, computed in batches."""
        from ..audio import features as F
        K = 0
        while self.window(K)[0] < len(self.y):
            K += 1
        out = []
        for a in range(0, K, batch):
            starts = np.array([self.window(k)[0] for k in range(a, min(K, a + batch))])
            out.append(self.model.probs(self.model.query(F.frame_windows(self.y, starts, self.window_samples),
                                                          self.gain)))
        return np.concatenate(out).astype(np.float32)


class MicCondition:
    """Streaming microphone audio -> T_a rows, one per completed stride (a LiveEmbedder)."""

    def __init__(self, bundle, rate: int, audio_model: str | None = None):
        from ..audio.live import LiveEmbedder
        self.model = _load_model(bundle, audio_model)
        self.name = self.model.name
        self.rate = int(rate)
        self.embedder = LiveEmbedder(bundle, rate=self.rate, channels=1, gain="auto", model=self.model)
        from ..audio import features as F
        self.window_s = self.model.window / F.SR

    def push(self, samples: np.ndarray) -> list:
        """Samples at ``rate`` in; the LiveSteps (``.probs``, ``.end_s``, ``.level_db``) they complete out."""
        if len(samples) == 0:
            return []
        return self.embedder.push(np.asarray(samples, np.float32))

    def reset(self) -> None:
        """The stream broke (microphone lost): start a new window grid with the next sample."""
        self.embedder.reset()
