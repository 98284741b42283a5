"""Beats of a song and accents of a picture: where cuts and the performer's impacts should fall.

Numpy in, numpy out; times in seconds, rates in frames per second. No librosa at run time: its beat
tracker compiles with numba on first use (6-11 s here), too slow for a player that has just been
handed a song. This is the same method (Ellis 2007, "Beat tracking by dynamic programming", as in
``librosa.beat.beat_track``) on the log-mel spectral flux livetex already computes:

1. onset envelope: the positive log-mel flux every 10 ms (:func:`onset_envelope`);
2. tempo: the envelope's autocorrelation, weighted by a log-normal prior around 120 bpm
   (:func:`tempo`), with a confidence (the peak's height over the envelope's energy);
3. beats: the path through the envelope's peaks that keeps the tempo best (:func:`track`).

A song with no pulse (silence, a drone, rubato) gives no beats, and the walk then cuts wherever its
seams are good, as without music.
"""

from __future__ import annotations

import numpy as np

from .audio import features as F

MIN_BPM, MAX_BPM = 60.0, 200.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0     # log-normal tempo prior: centre and spread (octaves, 1 s.d.)
TIGHTNESS = 100.0                          # how strictly beats keep the tempo (librosa's default)
MIN_CONFIDENCE = 0.1                       # below this the envelope has no steady pulse: no beats (and at
                                           # least 4 s.e. of a noise autocorrelation, 4 / sqrt(length))
ENV_RATE = F.SR / F.HOP_LENGTH             # onset envelope frames per second (100)


def onset_envelope(y: np.ndarray, sr: int = F.SR, block: int = 200) -> np.ndarray:
    """(m,) positive log-mel spectral flux of mono ``y`` (at ``features.SR``), one value per hop
    (10 ms; value i describes the sound around ``i * hop + WIN_LENGTH / 2`` samples). Computed in
    blocks, so an hour of audio never becomes one huge spectrogram."""
    hop = F.HOP_LENGTH
    n = len(y)
    if n < F.WIN_LENGTH + 2 * hop:
        return np.zeros(0, np.float32)
    out = []
    step = block * hop
    for a in range(0, n - F.WIN_LENGTH, step):
        seg = np.nan_to_num(np.asarray(y[a:a + step + F.WIN_LENGTH], np.float32))
        if len(seg) < F.WIN_LENGTH + hop:
            break
        out.append(F.log_mel(seg[None])[0][:block])
    lm = np.concatenate(out)
    return np.concatenate([[0.0], np.maximum(np.diff(lm, axis=0), 0.0).mean(axis=1)]).astype(np.float32)


def tempo(env: np.ndarray, rate: float = ENV_RATE) -> tuple[float, float]:
    """(bpm, confidence) of an onset envelope. Confidence in [0, 1]: the prior-weighted autocorrelation
    peak over the envelope's energy (about 0.3-0.6 for music with a clear beat, under 0.05 for noise)."""
    e = np.asarray(env, np.float64)
    if len(e) < 2 * rate * 60.0 / MIN_BPM or e.std() < 1e-9:      # two beats at the slowest tempo
        return 0.0, 0.0
    # a little blur, so a period that falls between two lags still shows as one peak
    e = np.convolve(e - e.mean(), [0.25, 0.5, 0.25], "same")
    nfft = 1 << int(np.ceil(np.log2(2 * len(e))))
    ac = np.fft.irfft(np.abs(np.fft.rfft(e, nfft)) ** 2)[: len(e)]
    ac /= max(ac[0], 1e-12)
    lo, hi = int(np.floor(rate * 60.0 / MAX_BPM)), int(np.ceil(rate * 60.0 / MIN_BPM))
    hi = min(hi, len(ac) - 2)
    if hi <= lo:
        return 0.0, 0.0
    lags = np.arange(lo, hi + 1)
    bpm = 60.0 * rate / lags
    prior = np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    score = np.maximum(ac[lags], 0.0) * prior
    i = int(np.argmax(score))
    # a pulse repeats at twice its period too, and between two lags of a quantised period the double
    # can win: take the fundamental (half the lag) when it is nearly as strong and still a tempo
    half = int(np.argmin(np.abs(lags - lags[i] / 2.0)))
    if lags[i] >= 2 * lo and ac[lags[half]] >= 0.7 * ac[lags[i]] and abs(lags[half] * 2 - lags[i]) <= 1:
        i = half
    lag = float(lags[i])
    if 0 < i < len(lags) - 1:       # parabolic refinement between lags
        a, b, c = score[i - 1], score[i], score[i + 1]
        d = a - 2 * b + c
        if d < 0:
            lag += 0.5 * (a - c) / d
    return float(60.0 * rate / lag), float(max(ac[lags[i]], 0.0))


def track(env: np.ndarray, bpm: float, rate: float = ENV_RATE, tightness: float = TIGHTNESS) -> np.ndarray:
    """Beat times (s) through an onset envelope at a tempo: each beat is an envelope peak, and beats
    keep the period, by dynamic programming over the envelope (O(m * period))."""
    e = np.asarray(env, np.float64)
    if bpm <= 0 or len(e) == 0 or e.std() < 1e-9:
        return np.zeros(0)
    period = 60.0 * rate / bpm
    e = e / e.std()
    # local score: the envelope smoothed by a Gaussian a tenth of a beat wide (a beat may sit a little off a peak)
    w = np.arange(-int(period), int(period) + 1)
    local = np.convolve(e, np.exp(-0.5 * (w * 32.0 / period) ** 2), "same")
    lo, hi = int(round(period / 2)), int(round(2 * period))
    offs = np.arange(lo, hi + 1)
    penalty = -tightness * np.log(offs / period) ** 2
    score = local.copy()
    back = np.full(len(e), -1, np.int64)
    for i in range(lo, len(e)):
        j = i - offs
        ok = j >= 0
        cand = score[j[ok]] + penalty[ok]
        k = int(np.argmax(cand))
        if cand[k] > 0:
            score[i] = local[i] + cand[k]
            back[i] = j[ok][k]
    # the last beat: the best-scoring local maximum in the final beat period
    tail = np.arange(max(0, len(e) - int(round(period))), len(e))
    end = int(tail[np.argmax(score[tail])])
    beats = [end]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    b = np.asarray(beats[::-1], np.float64)
    # drop weak beats at the ends (the path runs on through a song's silent start or end)
    strong = local[b.astype(np.int64)] > 0.5 * np.median(local[b.astype(np.int64)])
    if strong.any():
        first, last = np.flatnonzero(strong)[[0, -1]]
        b = b[first:last + 1]
    return b / rate + F.WIN_LENGTH / 2 / F.SR


def song_beats(y: np.ndarray, sr: int = F.SR) -> tuple[np.ndarray, float, float]:
    """(beat times in s, bpm, confidence) of a song (mono, ``features.SR``). No steady pulse
    (confidence under MIN_CONFIDENCE or within noise: silence, noise, free time): no beats."""
    env = onset_envelope(y, sr)
    env = env[: len(env) // 2 * 2].reshape(-1, 2).max(axis=1)    # 20 ms: finer than a video frame, 4x less work
    rate = ENV_RATE / 2
    bpm, conf = tempo(env, rate)
    if conf < max(MIN_CONFIDENCE, 4.0 / np.sqrt(max(len(env), 1))):
        return np.zeros(0), bpm, conf
    return track(env, bpm, rate), bpm, conf


def beat_grid(times: np.ndarray, fps: float, n: int) -> np.ndarray:
    """(n,) float32 per output frame: 1 at the frame nearest each beat, 0.5 on its neighbours (a cut or
    an accent one frame off still reads as on the beat at 24-30 fps), else 0."""
    g = np.zeros(n, np.float32)
    if n == 0:
        return g
    f = np.round(np.asarray(times, np.float64) * fps).astype(np.int64)
    f = f[(f >= 0) & (f < n)]
    for d, v in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        i = np.clip(f + d, 0, n - 1)
        g[i] = np.maximum(g[i], v)
    return g


def picture_motion(thumbs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Motion energy of every source frame: mean |grey(f) - grey(f-1)| in [0, 1] (frame 0 copies frame 1)."""
    n = len(thumbs)
    m = np.zeros(n, np.float32)
    prev = None
    for a in range(0, n, chunk):
        g = np.asarray(thumbs[a:a + chunk], np.float32).mean(axis=-1) / 255.0
        full = g if prev is None else np.concatenate([prev[None], g])
        d = np.abs(np.diff(full, axis=0)).mean(axis=(1, 2))
        m[a + (1 if prev is None else 0):a + len(g)] = d
        prev = g[-1]
    if n > 1:
        m[0] = m[1]
    return m


def smooth(x: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """Centred moving average over ``seconds`` (edges averaged over what exists)."""
    k = max(1, int(round(seconds * fps)))
    x = np.asarray(x, np.float64)
    c = np.concatenate([[0.0], np.cumsum(x)])
    i = np.arange(len(x))
    a, b = np.clip(i - k // 2, 0, len(x)), np.clip(i - k // 2 + k, 0, len(x))
    return (c[b] - c[a]) / (b - a)


def motion_accents(motion: np.ndarray, fps: float) -> np.ndarray:
    """(n,) float32 per source frame: how sharply the picture's motion stops there (an impact: a strum,
    a step landing, a turn's end), as the drop of the motion energy smoothed over 0.1 s, in units of
    its standard deviation, 0 where the motion does not drop. ``motion``: frame-to-frame change."""
    m = np.asarray(motion, np.float64)
    if len(m) < 3:
        return np.zeros(len(m), np.float32)
    s = smooth(m, fps, 0.1)
    drop = np.concatenate([[0.0], np.maximum(-np.diff(s), 0.0)])
    sd = drop.std()
    return (drop / sd).astype(np.float32) if sd > 1e-12 else np.zeros(len(m), np.float32)
