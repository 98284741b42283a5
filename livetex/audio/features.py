"""The default audio embedding: log-mel statistics with loudness and onset cues (numpy only, no weights).

One implementation serves the fit (source audio), offline conditioning (a song) and the live player
(a microphone): :func:`window_features` maps a batch of equal-length windows of mono float32 samples at
``SR`` Hz to raw feature vectors, and nothing else computes features. Offline and live therefore agree
to float tolerance on the same samples (tested).

A window of n samples is cut into STFT frames of ``WIN_LENGTH`` samples every ``HOP_LENGTH`` samples,
counted from the window's own first sample (no centring, no padding), so a window's features never
depend on audio outside it. Per window, in this order (``FEATURE_DIM`` values):

====================  =====  ===================================================================
group                 dims   what
====================  =====  ===================================================================
``band_mean``         40     mean log-mel energy per band (dB): timbre, pitch region, level
``band_std``          40     std over time per band (dB): notes starting/stopping inside the window
``loudness``          5      frame energy (dB), averaged over 5 equal sub-blocks: the level contour
``onset``             7      spectral flux (dB): mean, max, and 5 sub-block means: attacks, beats
``centroid``          1      spectral centroid (mel band index / N_MELS): brightness
``tail``              20     mean log-mel energy (dB, pairs of bands) over the last 40 % of the
                             window: what sounds under the frames a walk step appends
====================  =====  ===================================================================

Raw features are then standardised with statistics of the *source* audio (:class:`FeatureNorm`,
stored in the bundle) and weighted per group so each group counts about equally, whatever its size:
the result is the ``features`` embedding, compared with ``-0.5 * ||a - b||^2`` like every embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

SR = 16000            # Hz: the bundle's audio rate; everything here assumes it
N_FFT = 512           # FFT size (32 ms)
WIN_LENGTH = 400      # analysis window (25 ms)
HOP_LENGTH = 160      # hop (10 ms)
N_MELS = 40
FMIN, FMAX = 40.0, 7800.0
DB_FLOOR = -100.0     # dB: digital silence sits here, not at -inf
N_SUB = 5             # sub-blocks for the loudness / onset contours

TAIL = 0.4            # the tail group looks at the last 40 % of a window: the stride a walk step shows
GROUPS = (("band_mean", N_MELS), ("band_std", N_MELS), ("loudness", N_SUB), ("onset", 2 + N_SUB), ("centroid", 1),
          ("tail", N_MELS // 2))
FEATURE_DIM = sum(n for _, n in GROUPS)
# Relative weight of each group in the embedding (before per-group size normalisation).
GROUP_WEIGHTS = {"band_mean": 1.0, "band_std": 0.7, "loudness": 1.0, "onset": 1.0, "centroid": 0.3, "tail": 1.0}


def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def mel_matrix(sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN,
               fmax: float = FMAX) -> np.ndarray:
    """Triangular HTK-mel filterbank, shape (n_fft // 2 + 1, n_mels), float32, to post-multiply a power spectrum."""
    bins = _hz_to_mel(np.linspace(0.0, sr / 2.0, n_fft // 2 + 1))
    edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    w = np.maximum(0.0, np.minimum((bins[:, None] - lo) / (mid - lo), (hi - bins[:, None]) / (hi - mid)))
    w[0] = 0.0  # no DC
    return w.astype(np.float32)


_MEL = mel_matrix()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)).astype(np.float32)  # periodic Hann


def n_frames(n_samples: int) -> int:
    """STFT frames in a window of ``n_samples`` samples."""
    return 0 if n_samples < WIN_LENGTH else 1 + (n_samples - WIN_LENGTH) // HOP_LENGTH


def log_mel(windows: np.ndarray) -> np.ndarray:
    """Log-mel energies in dB of a batch of windows.

    Parameters
    ----------
    windows : (B, n) float32 mono samples at ``SR`` Hz.

    Returns
    -------
    (B, T, N_MELS) float32, T = n_frames(n), floored at ``DB_FLOOR``.
    """
    w = np.ascontiguousarray(windows, np.float32)
    B, n = w.shape
    T = n_frames(n)
    if T < 2:
        raise ValueError(f"a window needs at least {WIN_LENGTH + HOP_LENGTH} samples, got {n}")
    s0, s1 = w.strides
    frames = np.lib.stride_tricks.as_strided(w, (B, T, WIN_LENGTH), (s0, HOP_LENGTH * s1, s1), writeable=False)
    spec = scipy.fft.rfft(frames * _WINDOW, N_FFT, axis=-1)
    power = (spec.real ** 2 + spec.imag ** 2).astype(np.float32)
    mel = power @ _MEL
    return np.maximum(10.0 * np.log10(np.maximum(mel, 1e-30)), DB_FLOOR).astype(np.float32)


def _sub_block_matrix(T: int, k: int) -> np.ndarray:
    """(T, k) matrix whose product with a (B, T) contour gives the means over k equal sub-blocks."""
    idx = np.minimum((np.arange(T) * k) // T, k - 1)
    A = np.zeros((T, k), np.float32)
    A[np.arange(T), idx] = 1.0
    return A / A.sum(axis=0)


def window_features(windows: np.ndarray) -> np.ndarray:
    """Raw features of a batch of windows: (B, n) samples at ``SR`` Hz -> (B, FEATURE_DIM) float32.

    The only feature code in livetex: fit, offline conditioning and the live embedder all call it.
    """
    windows = np.asarray(windows, np.float32)
    if windows.ndim == 1:
        windows = windows[None]
    lm = log_mel(windows)                                                 # (B, T, M) dB
    band_mean = lm.mean(axis=1)
    band_std = lm.std(axis=1)
    power = np.power(10.0, lm / 10.0)
    energy = np.maximum(10.0 * np.log10(np.maximum(power.mean(axis=2), 1e-30)), DB_FLOOR)   # (B, T)
    flux = np.maximum(lm[:, 1:] - lm[:, :-1], 0.0).mean(axis=2)          # (B, T-1) dB
    flux = np.concatenate([flux[:, :1], flux], axis=1)                   # align with frames
    total = power.sum(axis=(1, 2))
    centroid = (power.sum(axis=1) @ np.arange(N_MELS, dtype=np.float32)) / np.maximum(total, 1e-30) / N_MELS
    A = _sub_block_matrix(lm.shape[1], N_SUB)
    T = lm.shape[1]
    tail = lm[:, T - max(1, int(round(TAIL * T))):].mean(axis=1)
    tail = tail.reshape(len(tail), N_MELS // 2, 2).mean(axis=2)
    out = np.concatenate([band_mean, band_std, energy @ A, flux.mean(axis=1, keepdims=True),
                          flux.max(axis=1, keepdims=True), flux @ A, centroid[:, None], tail], axis=1)
    return out.astype(np.float32)


def frame_windows(y: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Stack windows ``y[s:s+length]`` (zero-padded past either end) into a (len(starts), length) array."""
    y = np.asarray(y, np.float32)
    starts = np.asarray(starts, np.int64)
    out = np.zeros((len(starts), length), np.float32)
    for r, s in enumerate(starts):
        a, b = max(0, s), min(len(y), s + length)
        if b > a:
            out[r, a - s:b - s] = y[a:b]
    return out


def features_at(y: np.ndarray, starts, length: int, gain: float = 1.0, batch: int = 16) -> np.ndarray:
    """Raw features of windows of ``length`` samples starting at ``starts`` in ``y`` (mono, ``SR`` Hz).

    Works through ``batch`` windows at a time (small batches stay in cache: fastest) so an hour of audio
    never sits in memory as windows.
    ``gain`` (linear) multiplies the samples first.
    """
    starts = np.asarray(starts, np.int64)
    out = np.empty((len(starts), FEATURE_DIM), np.float32)
    for i in range(0, len(starts), batch):
        w = frame_windows(y, starts[i:i + batch], length)
        if gain != 1.0:
            w *= np.float32(gain)
        out[i:i + batch] = window_features(w)
    return out


Z_CLIP = 3.0
_STD_FLOOR = np.array([0.01 if name == "centroid" else 1.0 for name, n in GROUPS for _ in range(n)], np.float32)


def _group_weights() -> np.ndarray:
    w = []
    for name, n in GROUPS:
        w += [GROUP_WEIGHTS[name] / np.sqrt(n)] * n
    w = np.asarray(w, np.float32)
    return w / np.linalg.norm(w)


@dataclass
class FeatureNorm:
    """Standardisation of raw features by the source's statistics, then group weighting.

    ``embed(x) = weight * clip((x - mean) / std, -Z_CLIP, Z_CLIP)``; a source window has
    ``E||embed(x)||^2 <~ 1``.
    """

    mean: np.ndarray     # (FEATURE_DIM,)
    std: np.ndarray      # (FEATURE_DIM,)

    @classmethod
    def fit(cls, feats: np.ndarray) -> "FeatureNorm":
        f = np.asarray(feats, np.float32)
        std = f.std(axis=0)
        # A constant feature (a band the source never uses) must not blow up: floor the spread at
        # 1 dB for the dB-valued features and 0.01 for the centroid (a fraction of the mel range).
        std = np.maximum(std, _STD_FLOOR)
        return cls(f.mean(axis=0).astype(np.float32), std.astype(np.float32))

    def embed(self, feats: np.ndarray) -> np.ndarray:
        z = (np.asarray(feats, np.float32) - self.mean) / self.std
        # Clipped, so that a sound the source never made (a drum in a piano video, the harmonics of a
        # distorted note) counts as "very different" in a few dimensions, not as everything.
        return (np.clip(z, -Z_CLIP, Z_CLIP) * _group_weights()).astype(np.float32)

    def to_array(self) -> np.ndarray:
        return np.stack([self.mean, self.std]).astype(np.float32)

    @classmethod
    def from_array(cls, a: np.ndarray) -> "FeatureNorm":
        a = np.asarray(a, np.float32)
        return cls(a[0].copy(), a[1].copy())
