"""Offline rendering: a Timeline plus a bundle's frame store to an mp4, with the conditioning audio muxed."""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from .bundle import Bundle
from .errors import LivetexError
from .media.audio import load_audio, probe_audio
from .media.writer import VideoWriter, check_output_path
from .timeline import Timeline


def output_frames(bundle: Bundle, timeline: Timeline, interpolate: str = "none"):
    """Yield the RGB frames of a timeline, seams smoothed with ``interpolate`` (see seams.py).

    ``rife`` uses the bundle's network, else the installed one (livetex.interp), else the flow morph.
    """
    store = bundle.store
    if interpolate != "none":
        from .seams import smooth_frames
        interpolator = None
        if interpolate == "rife":
            from .interp import load_interpolator
            # Offline: all the cores (the network is most of a seam's cost).
            interpolator = load_interpolator(bundle, threads=min(4, os.cpu_count() or 1))
        yield from smooth_frames(store, timeline, mode=interpolate, interpolator=interpolator)
        return
    last_k, last = None, None
    for k in timeline.frames:
        if k != last_k:  # re-timed methods repeat frames; decode once
            last_k, last = k, store.frame(int(k))
        yield last


def load_output_audio(path: str, seconds: float) -> tuple[np.ndarray, int]:
    """Conditioning audio for muxing: stereo at its own rate (44.1/48 kHz kept, others to 48 kHz)."""
    info = probe_audio(path)
    sr = info.rate if info.rate in (44100, 48000) else 48000
    y = load_audio(path, sr, channels=2, duration=seconds)
    return y, sr


def render(bundle: Bundle, timeline: Timeline, out: str, audio: str | None = None,
           interpolate: str = "none", progress: bool = True) -> str:
    """Write ``timeline`` as an mp4 at the bundle's fps and frame-store size.

    With ``audio`` (a file), the video carries that audio trimmed or zero-padded to its length,
    starting together with frame 0.
    """
    check_output_path(out)
    timeline.params["interpolate"] = interpolate
    if interpolate != "none":
        from .seams import render_config
        cfg = render_config(interpolate)
        timeline.params["seam"] = {"before": cfg.before, "after": cfg.after}
    if timeline.frames.max() >= bundle.n_frames:
        raise LivetexError(f"timeline refers to frame {int(timeline.frames.max())} but the bundle has "
                           f"{bundle.n_frames} frames: it belongs to another bundle")
    y = sr = None
    if audio:
        y, sr = load_output_audio(audio, timeline.seconds)
    w = VideoWriter(out, bundle.fps_fraction, bundle.store.size, audio=y, sr=sr)
    try:
        for rgb in tqdm(output_frames(bundle, timeline, interpolate), total=len(timeline.frames),
                        desc="render", unit="frame", disable=None if progress else True, leave=False):
            w.write(rgb)
    except BaseException:
        w.abort()
        raise
    return w.close()


def default_timeline_path(out: str) -> str:
    root, _ = os.path.splitext(out)
    return root + ".json"
