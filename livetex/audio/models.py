"""Load an audio model for a bundle: what a conditioning window is embedded as, and what it is compared with.

:func:`load_audio_model` is the one place that knows where each model keeps its pieces in the bundle;
conditioning (offline), the live embedder and the baselines all go through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import LivetexError
from . import (AHEAD, AUDIO_MODELS, DEFAULT_AUDIO_MODEL, SILENCE_DB, audio_probs, calibrate_tau, check_model_name,
               level_db, picture_score, reference_db, run_ahead, scores, window_levels)
from . import features as F


@dataclass
class AudioModel:
    """One audio model bound to one bundle.

    Attributes
    ----------
    name : "features", "av" or "vggish".
    keys : (N, d) what conditioning windows are compared with (source audio, or pictures for ``av``).
    source : (N, d) the source's own audio in the query space (the ``audio-nn`` baseline compares with it).
    tau : the audio temperature of T_a rows.
    ref_db : the source's reference level (dBFS) that conditioning audio is level-matched to.
    window : samples (at ``features.SR``) a query looks at, ending where the segment window ends.
    live : whether the player can run it (numpy + onnxruntime only).
    quiet : the query used for silent conditioning windows: the mean source query over the source's
        quietest tenth of windows (see :meth:`query`).
    """

    name: str
    keys: np.ndarray
    source: np.ndarray
    tau: float
    ref_db: float | None
    window: int
    embed_fn: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    live: bool = True
    quiet: np.ndarray | None = field(default=None, repr=False)   # (d,) query standing for silence

    def __post_init__(self):
        self._key_sq = np.einsum("nd,nd->n", self.keys, self.keys) if len(self.keys) else None

    @property
    def n_segments(self) -> int:
        return len(self.keys)

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """(B, window) float32 samples at ``features.SR`` (already level-matched) -> (B, d) queries."""
        return np.asarray(self.embed_fn(np.atleast_2d(np.asarray(windows, np.float32))), np.float32)

    def query(self, windows: np.ndarray, gain: float = 1.0) -> np.ndarray:
        """Query embeddings of raw conditioning windows (B, window): level-matched by ``gain``, and
        silence (below ``SILENCE_DB`` before the gain) stands for the source's quietest moments.

        Why the silence rule: digital silence in a song has no noise, no texture, nothing any source
        window resembles (a room is never that quiet), so its embedding lands anywhere; the only
        sensible reading of "the music stops" is "show the performer at their quietest".
        """
        w = np.atleast_2d(np.asarray(windows, np.float32))
        q = self.embed(w * np.float32(gain) if gain != 1.0 else w)
        silent = level_db(w) < SILENCE_DB
        if silent.any() and self.quiet is not None:
            q[silent] = self.quiet
        return q

    def embed_at(self, y: np.ndarray, ends, gain: float = 1.0, batch: int = 64) -> np.ndarray:
        """Queries (see :meth:`query`) for the windows of ``y`` that end (exclusive) at the samples ``ends``."""
        ends = np.asarray(ends, np.int64)
        out = [self.query(F.frame_windows(y, ends[i:i + batch] - self.window, self.window), gain)
               for i in range(0, len(ends), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.keys.shape[1]), np.float32)

    def probs(self, q: np.ndarray) -> np.ndarray:
        """T_a rows: (B, d) queries -> (B, N) distributions over the source's segments."""
        if self._key_sq is None or len(self._key_sq) != len(self.keys):
            self.__post_init__()
        return audio_probs(run_ahead(scores(q, self.keys, self._key_sq)), self.tau)


def require_audio(bundle) -> None:
    """LivetexError unless the bundle's source has usable sound."""
    if not bundle.has_audio:
        raise LivetexError(f"{bundle.path}: the source video has no sound, so there is nothing to match a "
                           "conditioning audio with (render without --audio, or fit a video that has sound)")
    if bundle.manifest.get("audio_fit", {}).get("status") == "silent":
        raise LivetexError(f"{bundle.path}: the source video's sound track is silent, so there is nothing to "
                           "match a conditioning audio with (render without --audio)")


def resolve_name(bundle, name: str | None) -> str:
    """The audio model to use: ``name``, or ``DEFAULT_AUDIO_MODEL`` (features; see there why). The
    ``default_model`` that bundles fitted before this rule recorded in their manifest is not used: it
    was picked by picture score, and the model with the better score followed music worse."""
    return DEFAULT_AUDIO_MODEL if name is None else check_model_name(name)


def picture_scores(bundle) -> dict:
    """{model: :func:`livetex.audio.picture_score`} for the models the bundle has (features, av)."""
    from .fit import segment_pictures
    pics = segment_pictures(bundle.array("thumbs"), bundle.segments)
    out = {}
    for name, make in (("features", _features), ("av", _av)):
        if name == "av" and not bundle.has("audio_av"):
            continue
        m = make(bundle)
        out[name] = picture_score(m.source, m.keys, m.tau, pics)
    return out


_CACHE: dict = {}


def load_audio_model(bundle, name: str | None = None) -> AudioModel:
    """The audio model ``name`` (default: the best one the bundle has) for ``bundle``.

    LivetexError if the bundle has no usable sound, or lacks the model (``av`` on a clip too short to
    train it, or a bundle from before the audio step; ``vggish`` without a weights file).
    """
    require_audio(bundle)
    name = resolve_name(bundle, name)
    key = (bundle.path, bundle.manifest.get("created"), name)
    if key not in _CACHE:
        _CACHE.clear()  # one bundle at a time: keys can be large
        model = {"features": _features, "av": _av, "vggish": _vggish}[name](bundle)
        model.quiet = _quiet_query(bundle, model.source)
        _CACHE[key] = model
    return _CACHE[key]


def _quiet_query(bundle, source: np.ndarray) -> np.ndarray:
    """Mean source query over the quietest tenth of the source's windows."""
    from .fit import segment_windows
    starts, length = segment_windows(bundle.segments)
    lv = window_levels(bundle.array("audio"), starts, length)
    src = np.asarray(source, np.float32)
    q = src[lv <= np.percentile(lv, 10)].mean(axis=0)
    if np.allclose(np.linalg.norm(src, axis=1), 1.0, atol=1e-3):   # unit-norm spaces stay unit-norm
        q /= max(float(np.linalg.norm(q)), 1e-8)
    return q


def _source_features(bundle) -> tuple[np.ndarray, F.FeatureNorm, np.ndarray, float, float | None, int]:
    """(raw features, norm, embedding, tau, ref_db, window) from the bundle, or computed now for a bundle
    fitted before the audio step existed."""
    if bundle.has("audio_emb"):
        meta = bundle.manifest["arrays"]["audio_emb"]
        return (bundle.array("audio_feat"), F.FeatureNorm.from_array(bundle.array("audio_norm")),
                bundle.array("audio_emb"), float(meta["tau"]), meta.get("ref_db"), int(meta["window_samples"]))
    from .fit import segment_windows
    y = bundle.array("audio")
    starts, length = segment_windows(bundle.segments)
    ref = reference_db(window_levels(y, starts, length))
    if ref is None:
        raise LivetexError(f"{bundle.path}: the source video's sound track is silent, so there is nothing to "
                           "match a conditioning audio with (render without --audio)")
    feats = F.features_at(y, starts, length)
    norm = F.FeatureNorm.fit(feats)
    emb = norm.embed(feats)
    return feats, norm, emb, calibrate_tau(emb, emb, ahead=AHEAD), ref, length


def _features(bundle) -> AudioModel:
    feats, norm, emb, tau, ref, window = _source_features(bundle)
    return AudioModel("features", np.asarray(emb), np.asarray(emb), tau, ref, window,
                      lambda w: norm.embed(F.window_features(w)))


def _av(bundle) -> AudioModel:
    if not bundle.has("audio_av"):
        summary = bundle.manifest.get("audio_fit", {}).get("av", {})
        why = summary.get("skipped") or "the bundle was fitted before livetex had one"
        raise LivetexError(f"{bundle.path} has no audio-visual model ({why}); use --audio-model features")
    from .avmodel import OnnxAudioEncoder
    _, _, _, _, ref, window = _source_features(bundle)
    enc = OnnxAudioEncoder(bundle.model_path("audio_av"))
    tau = float(bundle.manifest["arrays"]["av_keys"]["tau"])
    return AudioModel("av", np.asarray(bundle.array("av_keys")), np.asarray(bundle.array("av_source")), tau, ref,
                      window, lambda w: enc(F.window_features(w)))


def _vggish(bundle) -> AudioModel:
    from . import vggish
    net = vggish.load()  # LivetexError with instructions when no weights file is configured
    from .fit import segment_windows
    _, _, _, _, ref, window = _source_features(bundle)
    starts, length = segment_windows(bundle.segments)
    y = bundle.array("audio")
    model = AudioModel("vggish", np.zeros((0, vggish.DIM), np.float32), np.zeros((0, vggish.DIM), np.float32),
                       1.0, ref, vggish.CONTEXT, net.embed, live=False)
    keys = model.embed_at(y, starts + length)
    model.keys = model.source = keys
    model.tau = calibrate_tau(keys, keys, ahead=AHEAD)
    return model


__all__ = ["AudioModel", "load_audio_model", "require_audio", "resolve_name", "AUDIO_MODELS"]
