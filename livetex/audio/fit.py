"""Fit-time audio step: embed the source audio of every segment and train the audio-visual model.

Called once by :func:`livetex.fit.fit`, after the bundle's ``audio`` array is written and before the
contrastive model is fitted. Writes into the bundle (nothing if the source has no or only silent sound):

=================  ===================  =================================================================
name               kind                 what
=================  ===================  =================================================================
``audio_feat``     array (N, 113) f32    raw window features of each segment's audio (features.py)
``audio_norm``     array (2, 113) f32   the source's feature mean and std (conditioning is standardised
                                        with the *source's* statistics)
``audio_emb``      array (N, 113) f32    the ``features`` embedding; meta: tau, ref_db, window_samples
``av_keys``        array (N, 32) f32    keys of the audio-visual model: f_v(V_j) (+ a little f_a(A_j),
                                        see avmodel.joint_keys); meta: tau
``av_source``      array (N, 32) f32    the source's own audio through f_a (for audio-nn with ``av``)
``audio_av``       ONNX model           f_a: raw features (B, 113) -> unit embedding (B, 32)
=================  ===================  =================================================================

and a summary under ``manifest["audio_fit"]``.
"""

from __future__ import annotations

import sys

import numpy as np

from . import AHEAD, SILENCE_DB, calibrate_tau, picture_score, reference_db, window_levels
from . import avmodel
from . import features as F


def _warn(msg: str) -> None:
    print(f"livetex: warning: {msg}", file=sys.stderr)


def segment_windows(seg, sr: int = F.SR) -> tuple[np.ndarray, int]:
    """Start sample of every segment's audio window, and the (constant) window length in samples."""
    starts = np.array([seg.sample_range(i, sr)[0] for i in range(seg.count)], np.int64)
    return starts, seg.window_samples(sr)


def segment_pictures(thumbs, seg, block: int = 2048) -> np.ndarray:
    """(N, 256) what each segment shows: the first frame of its tail as 16 x 16 grey levels (for
    :func:`livetex.audio.picture_score`). Reads N thumbnails, in blocks."""
    from ..metrics import grey_frames, shrink_grey
    index = np.asarray(seg.starts, np.int64) + seg.window_frames - seg.stride_frames
    return np.concatenate([shrink_grey(grey_frames(thumbs, index[a:a + block]))
                           for a in range(0, len(index), block)] or [np.zeros((0, 256), np.float32)])


def fit_audio(bw, seg, thumbs: np.ndarray, seed: int = 0, progress: bool = True, av: bool = True) -> dict:
    """Add the source-audio embeddings (and the audio-visual model) to the bundle being written by ``bw``.

    Returns the summary stored in ``bw.manifest["audio_fit"]``; its ``status`` is ``"ok"``,
    ``"no audio"`` or ``"silent"``.
    """
    meta = bw.manifest["arrays"].get("audio")
    if meta is None:
        summary = {"status": "no audio"}
        bw.manifest["audio_fit"] = summary
        return summary
    if int(meta.get("sr", F.SR)) != F.SR:
        raise ValueError(f"bundle audio must be at {F.SR} Hz, got {meta.get('sr')}")
    y = np.load(bw.file(meta["file"]), mmap_mode="r")
    starts, length = segment_windows(seg)
    ref = reference_db(window_levels(y, starts, length))
    if ref is None:
        _warn(f"the source's sound track is silent (below {SILENCE_DB:g} dBFS): audio conditioning will not "
              "be available for this bundle")
        summary = {"status": "silent"}
        bw.manifest["audio_fit"] = summary
        return summary

    feats = F.features_at(y, starts, length)
    norm = F.FeatureNorm.fit(feats)
    emb = norm.embed(feats)
    tau_f = calibrate_tau(emb, emb, ahead=AHEAD, seed=seed)
    bw.add_array("audio_feat", feats)
    bw.add_array("audio_norm", norm.to_array())
    bw.add_array("audio_emb", emb, model="features", tau=tau_f, ref_db=ref, window_samples=length)
    summary = {"status": "ok", "ref_db": ref, "window_samples": length, "features": {"tau": tau_f}}

    if av and seg.count >= avmodel.MIN_SEGMENTS:
        by_gain = np.stack([feats if g == 0.0 else F.features_at(y, starts, length, gain=10.0 ** (g / 20.0))
                            for g in avmodel.GAINS_DB])
        visual = avmodel.visual_descriptors(thumbs, seg)
        r = avmodel.train_av(by_gain, norm, visual, seed=seed, progress=progress)
        avmodel.export_audio_encoder(r["audio"], norm, bw.file("audio_av.onnx"))
        # The source's own audio through the exported graph: exactly what the player will compute.
        src = avmodel.OnnxAudioEncoder(bw.file("audio_av.onnx"))(feats)
        keys = avmodel.joint_keys(r["keys"], src)
        tau_av = calibrate_tau(src, keys, ahead=AHEAD, seed=seed)
        bw.add_model("audio_av", "audio_av.onnx", input="features", input_dim=F.FEATURE_DIM, dim=avmodel.DIM,
                     tau=tau_av)
        bw.add_array("av_keys", keys, tau=tau_av, audio_weight=avmodel.KEY_AUDIO_WEIGHT)
        bw.add_array("av_source", src)
        summary["av"] = {"tau": tau_av, "steps": len(r["losses"]), "loss_first": r["losses"][0],
                         "loss_final": float(np.mean(r["losses"][-20:])), "chance_loss": r["chance_loss"],
                         "seconds": r["seconds"]}
    elif av:
        summary["av"] = {"skipped": f"needs at least {avmodel.MIN_SEGMENTS} segments, the clip has {seg.count}"}
    # How well each model's matches go with the right picture, on the source itself (`livetex info`)
    pics = segment_pictures(thumbs, seg)
    summary["features"]["picture_score"] = picture_score(emb, emb, tau_f, pics, seed=seed)
    if "tau" in summary.get("av", {}):
        summary["av"]["picture_score"] = picture_score(src, keys, tau_av, pics, seed=seed)
    bw.manifest["audio_fit"] = summary
    return summary


_OURS_ARRAYS = ("audio_feat", "audio_norm", "audio_emb", "av_keys", "av_source")
_OURS_MODELS = ("audio_av",)


def refit_audio(path: str, av: bool = True, seed: int = 0, progress: bool = True) -> dict:
    """Redo the audio step of an existing bundle (e.g. one fitted with ``--no-model``, or before livetex
    had audio models) without touching its video model. The bundle is rebuilt next to itself (files
    hard-linked where possible) and swapped in only when complete, like every bundle write.
    """
    import copy
    import os
    import shutil

    from ..bundle import BundleWriter, load_bundle
    b = load_bundle(path)
    old = b.manifest
    skip = {old["arrays"][n]["file"] for n in _OURS_ARRAYS if n in old["arrays"]}
    skip |= {old["models"][n]["file"] for n in _OURS_MODELS if n in old["models"]}
    with BundleWriter(path, force=True) as bw:
        for rel in old["files"]:
            if rel in skip:
                continue
            dst = bw.file(rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            try:
                os.link(b.file(rel), dst)
            except OSError:
                shutil.copy2(b.file(rel), dst)
        m = copy.deepcopy(old)
        for n in _OURS_ARRAYS:
            m["arrays"].pop(n, None)
        for n in _OURS_MODELS:
            m["models"].pop(n, None)
        for k in ("files", "created", "audio_fit"):
            m.pop(k, None)
        bw.manifest = m
        summary = fit_audio(bw, b.segments, b.array("thumbs"), seed=seed, progress=progress, av=av)
        bw.commit()
    return summary
