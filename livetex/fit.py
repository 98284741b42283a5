"""The exporter: one video in, one self-contained bundle out.

media -> frame store + thumbnails + source audio (one decoding pass) -> segments -> model fit -> bundle.
``livetex fit`` and ``python tools/export.py`` both call :func:`fit`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from .bundle import BundleWriter, sha256_file
from .errors import LivetexError
from .framestore import FrameStoreWriter, NpyAppender
from .media.audio import fit_length, load_audio
from .media.video import iter_frames, probe
from .sampler import LEARNED_WEIGHT, pixel_codes
from .segments import STRIDE_S, WINDOW_S, make_segments

def warn(msg: str) -> None:
    print(f"livetex: warning: {msg}", file=sys.stderr)


AUDIO_SR = 16000  # source audio kept in the bundle: enough for log-mel features and VGGish


@dataclass
class FitConfig:
    """Everything ``livetex fit`` can be told. Sizes in pixels, times in seconds."""

    store_height: int = 720        # frame-store height; never upscaled beyond the source
    store_codec: str = "jpeg"
    store_quality: int = 90
    thumb: int = 64                # side of the square thumbnails used for training and metrics
    window: float = WINDOW_S
    stride: float = STRIDE_S
    start: float = 0.0
    end: float | None = None
    fps: float | None = None       # resample to this rate; None keeps the source's
    model: bool = False            # also train the contrastive bi-gram and the audio-visual model (--model)
    train: dict = field(default_factory=dict)   # overrides of train.TrainConfig
    device: str = "auto"
    seed: int = 0


def store_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Display size for the frame store: aspect kept, never upscaled, even sides (H.264 needs them)."""
    h = min(height, max_height)
    w = width * h / height
    return max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)


def fit(video: str, out: str, cfg: FitConfig | None = None, force: bool = False, progress: bool = True) -> str:
    """Decode ``video``, fit the model and write the bundle directory ``out``. Returns its path."""
    cfg = cfg or FitConfig()
    info = probe(video)
    if cfg.start < 0 or (cfg.end is not None and cfg.end <= cfg.start):
        raise LivetexError(f"invalid range: start {cfg.start} s, end {cfg.end} s")
    if cfg.start >= info.duration:
        raise LivetexError(f"start {cfg.start} s is past the end of the video ({info.duration:.2f} s)")
    fps = float(cfg.fps) if cfg.fps else info.fps
    end = min(cfg.end, info.duration) if cfg.end is not None else info.duration
    # Refuse a too-short clip before decoding anything.
    make_segments(int(round((end - cfg.start) * fps)), fps, cfg.window, cfg.stride)
    size = store_size(info.width, info.height, cfg.store_height)

    with BundleWriter(out, force=force) as bw:
        store = FrameStoreWriter(bw.tmp, size, cfg.store_codec, cfg.store_quality)
        thumbs = NpyAppender(bw.file("thumbs.npy"), (cfg.thumb, cfg.thumb, 3))
        est = int(round((end - cfg.start) * fps))
        frames = iter_frames(video, size=size, fps=cfg.fps, start=cfg.start, end=cfg.end, info=info)
        for rgb in tqdm(frames, total=est, desc="decode", unit="frame", disable=None if progress else True):
            store.add(rgb)
            thumbs.append(cv2.resize(rgb, (cfg.thumb, cfg.thumb), interpolation=cv2.INTER_AREA))
        store_meta = store.close()
        n = store_meta["frames"]
        thumbs.close()
        seg = make_segments(n, fps, cfg.window, cfg.stride)
        bw.register_array("thumbs", (n, cfg.thumb, cfg.thumb, 3), np.uint8)

        fr = info.fps_fraction if not cfg.fps else None
        bw.manifest.update({
            "source": {**info.to_dict(), "name": os.path.basename(video), "sha256": sha256_file(video),
                       "bytes": os.path.getsize(video), "start": cfg.start, "end": end},
            "fps": fps, "fps_num": fr.numerator if fr else int(round(fps * 1000)),
            "fps_den": fr.denominator if fr else 1000, "n_frames": n, "duration": n / fps,
            "segments": seg.to_dict(), "store": store_meta, "fit_config": asdict(cfg),
        })
        if info.has_audio:
            try:
                # Only the fitted range: a short --end on a long video must not decode hours of sound.
                y = load_audio(video, AUDIO_SR, t0=info.t0, start=cfg.start, duration=n / fps)
            except LivetexError as e:
                # A broken soundtrack still leaves a usable (silent) texture.
                warn(f"ignoring the audio track: {e}")
            else:
                y = fit_length(y, int(round(n / fps * AUDIO_SR)))
                bw.add_array("audio", y.astype(np.float32), sr=AUDIO_SR)
        if cfg.model:
            # the segment samplers' pixel term (--method pixel, learned): computed on demand otherwise
            bw.add_array("pixel_codes", pixel_codes(np.load(bw.file("thumbs.npy"), mmap_mode="r"), seg))
        # HOOK(audio): source-audio embeddings are added here by livetex.audio (issue 4).
        from .audio.fit import fit_audio
        # Without --model no training at all: the audio-visual model is skipped too (features stay).
        fit_audio(bw, seg, np.load(bw.file("thumbs.npy"), mmap_mode="r"), seed=cfg.seed, progress=progress,
                  av=cfg.model)
        phi = psi = None
        if cfg.model:
            from .train import fit_model
            phi, psi = fit_model(bw, seg, np.load(bw.file("thumbs.npy"), mmap_mode="r"), cfg, progress=progress)
        from .interp import add_to_bundle
        add_to_bundle(bw)    # RIFE for seams where torch is absent; without its weights: a note, no network
        # The transition graph and the texture walk's calibrated rate: what render and play need,
        # computed once here instead of at every start.
        from .graph import build_graph
        from .texture import fit_walk
        graph = build_graph(np.load(bw.file("thumbs.npy"), mmap_mode="r"), fps, progress=progress)
        graph.save(bw)
        bw.manifest["walk"] = {"learned_weight": LEARNED_WEIGHT, "texture": fit_walk(graph)}
        return bw.commit()
