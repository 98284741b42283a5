"""Live audio analysis for other tools: level, named bands, onset hits and a tempo estimate.

Samples go in as they are heard (any rate, mono float32); every ``hop`` (about 23 ms) one
:class:`Frame` comes out. Everything is numpy on short frames, so it costs a fraction of a percent of
a core. The values are for driving visuals elsewhere (a 0..1 level, 0..1 bands), not for measuring:

- ``level``: RMS in dB, and mapped to 0..1 over -60..0 dBFS;
- ``bands``: energy in ``low`` (20-250 Hz), ``mid`` (250-2000 Hz) and ``high`` (2-8 kHz), each divided
  by its own slowly decaying peak, so a quiet room and a loud club both span 0..1;
- ``hit``: an onset (spectral flux above its recent median by a margin, at most one per 100 ms),
  with its strength;
- ``bpm`` and ``confidence``: the autocorrelation of the onset strength over the last 8 s, best lag
  between 60 and 180 bpm; confidence is that peak relative to the zero-lag energy (0..1).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

BANDS = (("low", 20.0, 250.0), ("mid", 250.0, 2000.0), ("high", 2000.0, 8000.0))
FRAME_S = 0.046          # analysis window (rounded up to a power of two); the hop is a quarter of it
TEMPO_WINDOW_S = 8.0
BPM_LO, BPM_HI = 60.0, 180.0
TEMPO_PRIOR_BPM = 120.0
PEAK_DECAY_S = 10.0      # a band's normaliser falls to 1/e of a peak in this long
HIT_GAP_S = 0.1
HIT_MARGIN = 1.5         # flux above this many times the recent median (plus a floor) is a hit


@dataclass
class Frame:
    t: float                       # seconds of audio analysed so far (end of this frame)
    level_db: float
    level: float
    bands: dict
    hit: float                     # onset strength, 0 when there is none
    bpm: float | None
    confidence: float


class Analyzer:
    def __init__(self, sr: int):
        self.sr = int(sr)
        n = 1 << int(np.ceil(np.log2(FRAME_S * self.sr)))
        self.n, self.hop = n, n // 4
        self.win = np.hanning(n).astype(np.float32)
        freqs = np.fft.rfftfreq(n, 1.0 / self.sr)
        self.band_bins = [(name, (freqs >= lo) & (freqs < hi)) for name, lo, hi in BANDS]
        self.rate = self.sr / self.hop                      # frames a second
        self.decay = float(np.exp(-1.0 / (PEAK_DECAY_S * self.rate)))
        self.peaks = {name: 1e-6 for name, _, _ in BANDS}
        self.buf = np.zeros(0, np.float32)
        self.prev_mag = None
        self.flux: deque = deque(maxlen=int(TEMPO_WINDOW_S * self.rate))
        self.frames = 0
        self.last_hit = -1e9
        self.bpm: float | None = None
        self.confidence = 0.0

    def push(self, x: np.ndarray) -> list[Frame]:
        x = np.asarray(x, np.float32).reshape(-1)
        self.buf = np.concatenate([self.buf, x]) if len(self.buf) else x.copy()
        out = []
        while len(self.buf) >= self.n:
            out.append(self._frame(self.buf[:self.n]))
            self.buf = self.buf[self.hop:]
        return out

    def _frame(self, x: np.ndarray) -> Frame:
        self.frames += 1
        t = (self.frames * self.hop + self.n - self.hop) / self.sr
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        level_db = 20 * np.log10(max(rms, 1e-9))
        mag = np.abs(np.fft.rfft(x * self.win))
        bands = {}
        for name, sel in self.band_bins:
            e = float(np.sqrt(np.mean(mag[sel] ** 2))) if sel.any() else 0.0
            self.peaks[name] = max(e, self.peaks[name] * self.decay, 1e-6)
            bands[name] = round(e / self.peaks[name], 4)
        flux = 0.0 if self.prev_mag is None else float(np.sum(np.maximum(np.log1p(mag) - np.log1p(self.prev_mag), 0)))
        self.prev_mag = mag
        hist = np.asarray(self.flux) if self.flux else np.zeros(1)
        self.flux.append(flux)
        recent = hist[-int(self.rate):]                 # the last second
        floor = np.median(recent) * HIT_MARGIN + 0.05 * (np.max(recent) if len(recent) else 0) + 1e-3
        hit = 0.0
        if flux > floor and level_db > -60 and t - self.last_hit >= HIT_GAP_S:
            hit = round(min(1.0, flux / (floor * 4)), 4)
            self.last_hit = t
        if self.frames % max(1, int(self.rate / 2)) == 0 and len(self.flux) >= 2 * self.rate:
            self._tempo()
        return Frame(t=round(t, 4), level_db=round(level_db, 2), level=round(min(max((level_db + 60) / 60, 0), 1), 4),
                     bands=bands, hit=hit, bpm=self.bpm, confidence=round(self.confidence, 3))

    def _tempo(self) -> None:
        f = np.asarray(self.flux, np.float64)
        f = f - f.mean()
        e = float(np.dot(f, f))
        if e <= 1e-12:
            self.confidence = 0.0
            return
        lags = np.arange(int(self.rate * 60 / BPM_HI), int(self.rate * 60 / BPM_LO) + 2)
        lags = lags[lags < len(f) - 1]
        if len(lags) < 3:
            return
        ac = np.array([np.dot(f[:-lag], f[lag:]) for lag in lags]) / e
        # A beat also correlates at two beats: without a prior the slower octave wins ties. The
        # log-normal prior around 120 bpm (one octave wide) is the usual remedy (Ellis 2007).
        prior = np.exp(-0.5 * np.log2(60.0 * self.rate / lags / TEMPO_PRIOR_BPM) ** 2)
        i = int(np.argmax(ac * prior))
        # parabolic interpolation around the peak: the hop is 23 ms, a beat lag needs better
        d = 0.0
        if 0 < i < len(ac) - 1:
            den = ac[i - 1] - 2 * ac[i] + ac[i + 1]
            d = 0.5 * (ac[i - 1] - ac[i + 1]) / den if den != 0 else 0.0
        lag = lags[i] + float(np.clip(d, -0.5, 0.5))
        self.bpm = round(60.0 * self.rate / lag, 2)
        self.confidence = float(np.clip(ac[i], 0.0, 1.0))
