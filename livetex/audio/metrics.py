"""Does the picture follow the music? Audio-motion agreement and beat alignment of a rendered timeline.

- *Audio-motion agreement*: Pearson correlation between the audio's loudness envelope (dB per output
  frame) and the picture's motion energy (mean absolute difference of consecutive grey thumbnails),
  both smoothed over ``SMOOTH_S`` (~1 s). Motion is the *source's* motion at each shown frame (thumb f vs
  thumb f-1), so it measures whether the performer is playing, not the cut at a jump (jumps are judged
  by the visible-jump fraction elsewhere).
  For scale it comes with the same number for the source video with its own audio (what "in sync" looks
  like for this performer) and against circularly shifted copies of that audio (what "no sync" looks like).
- *Beat alignment*: the fraction of visual beats (sudden stops of motion, Davis & Agrawala's "visual
  impacts") that fall within ``BEAT_TOL_S`` of a musical onset, next to the fraction expected by chance.

:func:`audio_metrics` is the entry point the evaluation report calls.
"""

from __future__ import annotations

import numpy as np

from . import features as F
from ..beat import motion_accents, smooth
from ..beat import picture_motion as source_motion

SMOOTH_S = 1.0
BEAT_TOL_S = 0.1
MIN_BEAT_GAP_S = 0.25
SHIFTS = (0.25, 0.5, 0.75)      # circular shifts of the source audio, as fractions of its length


def loudness_envelope(y: np.ndarray, sr: int, fps: float, n: int) -> np.ndarray:
    """Level in dB (mean square, floored at -80) of the audio under each of ``n`` video frames."""
    y = np.asarray(y, np.float64)
    edges = np.round(np.arange(n + 1) * sr / fps).astype(np.int64)
    c = np.concatenate([[0.0], np.cumsum(y ** 2)])
    a, b = np.clip(edges[:-1], 0, len(y)), np.clip(edges[1:], 0, len(y))
    ms = (c[b] - c[a]) / np.maximum(edges[1:] - edges[:-1], 1)
    return np.maximum(10.0 * np.log10(np.maximum(ms, 1e-8)), -80.0)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (no signal, no agreement)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def agreement(y: np.ndarray, sr: int, motion: np.ndarray, fps: float) -> float:
    """Audio-motion agreement of audio ``y`` (sample 0 = frame 0) with per-frame ``motion``."""
    env = loudness_envelope(y, sr, fps, len(motion))
    return correlation(smooth(env, fps, SMOOTH_S), smooth(motion, fps, SMOOTH_S))


def agreement_curves(bundle, timeline, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """What :func:`agreement` correlates, for a picture: (output time s, the audio's smoothed loudness,
    the output's smoothed motion, both z-scored per frame, and their correlation). ``audio``: mono
    float32 at ``features.SR``, sample 0 = output frame 0."""
    from ..media.audio import fit_length
    fps = float(timeline.fps)
    frames = np.asarray(timeline.frames, np.int64)
    motion = _source_reference(bundle)["motion"][frames]
    y = fit_length(np.asarray(audio, np.float32), int(round(len(frames) / fps * F.SR)))
    env = smooth(loudness_envelope(y, F.SR, fps, len(frames)), fps, SMOOTH_S)
    mot = smooth(motion, fps, SMOOTH_S)
    z = [(v - v.mean()) / v.std() if v.std() > 1e-12 else v * 0.0 for v in (env, mot)]
    return np.arange(len(frames)) / fps, z[0], z[1], correlation(env, mot)


# ------------------------------------------------------------------------------------------- beats
def _peaks(x: np.ndarray, rate: float, min_gap_s: float, k_std: float) -> np.ndarray:
    """Indices of local maxima of x above mean + k_std * std, at least ``min_gap_s`` apart (greedy by height)."""
    x = np.asarray(x, np.float64)
    if len(x) < 3:
        return np.zeros(0, np.int64)
    thr = x.mean() + k_std * x.std()
    cand = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]) & (x[1:-1] > thr)) + 1
    gap = max(1, int(round(min_gap_s * rate)))
    keep: list[int] = []
    taken = np.zeros(len(x), bool)
    for i in cand[np.argsort(-x[cand])]:
        if not taken[max(0, i - gap + 1):i + gap].any():
            keep.append(int(i))
            taken[i] = True
    return np.sort(np.asarray(keep, np.int64))


def music_beats(y: np.ndarray, sr: int = F.SR) -> np.ndarray:
    """Onset times (s) of the music: peaks of the log-mel spectral flux (livetex.beat.onset_envelope)."""
    from ..beat import onset_envelope
    flux = onset_envelope(y, sr)
    if len(flux) == 0:
        return np.zeros(0)
    return (_peaks(flux, sr / F.HOP_LENGTH, MIN_BEAT_GAP_S, 1.0) * F.HOP_LENGTH + F.WIN_LENGTH / 2) / sr


def visual_beats(motion: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of visual impacts: the sharpest drops of (lightly smoothed) motion energy."""
    return _peaks(motion_accents(motion, fps), fps, MIN_BEAT_GAP_S, 1.0) / fps


def beat_align(music: np.ndarray, visual: np.ndarray, duration: float, tol: float = BEAT_TOL_S) -> tuple[float, float]:
    """(hit rate, chance): the fraction of visual beats within ``tol`` s of a music beat, and that
    fraction for visual beats placed at random (the share of time within ``tol`` of a music beat)."""
    if len(visual) == 0 or len(music) == 0 or duration <= 0:
        return 0.0, 0.0
    d = np.abs(visual[:, None] - music[None]).min(axis=1)
    grid = np.linspace(0.0, duration, max(2, int(duration * 100)))
    chance = float((np.abs(grid[:, None] - music[None]).min(axis=1) <= tol).mean())
    return float((d <= tol).mean()), chance


# ------------------------------------------------------------------------------------------- entry
_REF: dict = {}


def _source_reference(bundle) -> dict:
    """Per-bundle numbers that do not depend on the timeline (cached: an evaluation asks many times)."""
    key = (bundle.path, bundle.manifest.get("created"))
    if key in _REF:
        return _REF[key]
    from ..media.audio import fit_length
    motion = source_motion(bundle.array("thumbs"))
    ref: dict = {"motion": motion, "audio_motion_source": None, "audio_motion_shifted": None,
                 "beat_align_source": None, "beat_align_source_chance": None}
    if bundle.has_audio:
        ys = fit_length(np.asarray(bundle.array("audio"), np.float32), int(round(bundle.n_frames / bundle.fps * F.SR)))
        ref["audio_motion_source"] = agreement(ys, F.SR, motion, bundle.fps)
        ref["audio_motion_shifted"] = float(np.mean([agreement(np.roll(ys, int(f * len(ys))), F.SR, motion, bundle.fps)
                                                     for f in SHIFTS]))
        hit, chance = beat_align(music_beats(ys), visual_beats(motion, bundle.fps), bundle.n_frames / bundle.fps)
        ref.update(beat_align_source=hit, beat_align_source_chance=chance)
    _REF.clear()
    _REF[key] = ref
    return ref


def audio_metrics(bundle, timeline, audio_path: str | None = None, audio: np.ndarray | None = None) -> dict:
    """Audio-motion agreement and beat alignment of ``timeline`` against its conditioning audio.

    Parameters
    ----------
    bundle : the Bundle the timeline was rendered from (thumbs, and its own audio for the references).
    timeline : a Timeline (``.frames`` source frame per output frame, ``.fps``).
    audio_path : the conditioning audio file (sample 0 = output frame 0, as the renderer muxes it);
        or ``audio``: the same as mono float32 samples at ``features.SR``.

    Returns
    -------
    dict of floats (None where the bundle has no sound):
      ``audio_motion``          agreement of the output with the conditioning audio
      ``audio_motion_source``   the source video with its own audio (what "in sync" looks like)
      ``audio_motion_shifted``  the source against its own audio circularly shifted by 1/4, 1/2, 3/4 of
                                its length, averaged (what "no sync" looks like)
      ``beat_align``, ``beat_align_chance``            output vs conditioning music (its onsets)
      ``beat_hits``, ``beat_hits_shifted``             the output's visual impacts within BEAT_TOL_S of
                                the song's tracked beats, and of those beats shifted by half a beat
                                (None: the song has no steady beat)
      ``beat_align_source``, ``beat_align_source_chance``  source vs its own audio
    """
    from ..media.audio import fit_length, load_audio
    if audio is None:
        if audio_path is None:
            raise ValueError("give audio_path or audio")
        audio = load_audio(audio_path, F.SR, channels=1)
    fps = float(timeline.fps)
    frames = np.asarray(timeline.frames, np.int64)
    n = len(frames)
    y = fit_length(np.asarray(audio, np.float32), int(round(n / fps * F.SR)))
    ref = _source_reference(bundle)
    motion_out = ref["motion"][frames]
    out: dict = {"audio_motion": agreement(y, F.SR, motion_out, fps)}
    vb = visual_beats(motion_out, fps)
    hit, chance = beat_align(music_beats(y), vb, n / fps)
    out.update(beat_align=hit, beat_align_chance=chance)
    # against the song's tracked beats, and the same beats shifted by half a beat (the control: a
    # picture that hits the beats scores well only unshifted)
    from ..beat import song_beats
    beats = song_beats(y)[0]
    if len(beats) > 1:
        half = 0.5 * float(np.median(np.diff(beats)))
        out["beat_hits"] = beat_align(beats, vb, n / fps)[0]
        out["beat_hits_shifted"] = beat_align(beats + half, vb, n / fps)[0]
    else:
        out["beat_hits"] = out["beat_hits_shifted"] = None
    out.update({k: v for k, v in ref.items() if k != "motion"})
    return out
