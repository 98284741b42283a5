"""The per-video audio-visual model (beyond the paper): which picture goes with which sound, in *this* video.

The paper's T_a compares the conditioning audio with the *source audio* of each segment. That finds
source moments that sound alike, but a song never sounds like the source: what we want is the picture
the performer shows while making such a sound. So at fit time we train, on the source video's own
(audio window, picture) pairs, two small encoders into one space:

- audio encoder f_a: raw window features (:mod:`.features`, the same numpy features offline and live)
  -> standardised -> MLP -> unit vector. Exported to ONNX (``audio_av.onnx``); the player runs it with
  onnxruntime, one window per stride.
- visual encoder f_v: a descriptor of the segment's frames from the bundle's thumbnails (a small grey
  picture of the segment, where and how much it moves) -> MLP -> unit vector. Only its outputs for the
  N source segments are kept (``av_keys``), so it never runs at play time.

Loss: symmetric InfoNCE over cosine / 0.1 between f_a(A_i) and f_v(V_i); segments within 2 strides of i
overlap i and are left out of its negatives. The audio is seen at random gains (+-6 dB) so a song that
is matched to the source's level only roughly still lands in the right place. A few hundred full-batch
steps of a ~30k-parameter model: seconds on one CPU core.
"""

from __future__ import annotations

import os
import time
import warnings

import cv2
import numpy as np

from . import features as F

DIM = 32
HIDDEN = 128
TRAIN_TAU = 0.1
STEPS = 250
LR = 3e-3
WEIGHT_DECAY = 1e-3
BATCH = 512
NEAR = 2                       # segments within this many strides overlap: not negatives
GAINS_DB = (-6.0, -3.0, 0.0, 3.0, 6.0)
MIN_SEGMENTS = 12              # below this a contrastive fit is meaningless
KEY_AUDIO_WEIGHT = 0.25        # share of the source's own sound in a segment's key (joint_keys)
GRID = 16                      # side of the grey picture in the visual descriptor
MOTION_GRID = 4


def visual_descriptors(thumbs: np.ndarray, seg, chunk: int = 2048) -> np.ndarray:
    """Per-segment picture descriptor from thumbnails (n, h, w, 3) uint8 -> (N, GRID^2 + MOTION_GRID^2 + 4).

    [mean grey picture GRID x GRID | mean |frame difference| on a MOTION_GRID^2 grid | log of the
    global motion over the whole segment and over its 3 thirds]. Thumbnails are read in chunks, so a
    long (memory-mapped) video never sits in memory.
    """
    n = len(thumbs)
    gs, ms = GRID, MOTION_GRID
    area = lambda img, k: cv2.resize(img, (k, k), interpolation=cv2.INTER_AREA)  # noqa: E731
    grey = np.empty((n, gs, gs), np.float32)
    motion = np.zeros((n, ms, ms), np.float32)           # motion[k]: change from frame k-1 to k
    prev = None
    for a in range(0, n, chunk):
        t = np.asarray(thumbs[a:a + chunk], np.float32).mean(axis=-1) / 255.0   # (c, h, w)
        for r, img in enumerate(t):
            grey[a + r] = area(img, gs)
            if prev is not None:
                motion[a + r] = area(np.abs(img - prev), ms)
            prev = img
    N = seg.count
    out = np.empty((N, gs * gs + ms * ms + 4), np.float32)
    for i in range(N):
        a, b = seg.frame_range(i)
        m = motion[a + 1:b]                                # changes inside the segment
        glob = m.mean(axis=(1, 2))
        thirds = [part.mean() for part in np.array_split(glob, 3) if len(part)] or [glob.mean()]
        thirds = (thirds * 3)[:3]
        out[i] = np.concatenate([grey[a:b].mean(axis=0).ravel(), m.mean(axis=0).ravel(),
                                 np.log(np.asarray([glob.mean()] + thirds, np.float32) + 1e-3)])
    return out


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = np.maximum(x.std(axis=0), 1e-3)
    return ((x - mu) / sd).astype(np.float32), mu.astype(np.float32), sd.astype(np.float32)


def train_av(audio_feats_by_gain: np.ndarray, norm: F.FeatureNorm, visual: np.ndarray, seed: int = 0,
             steps: int = STEPS, progress: bool = True) -> dict:
    """Fit the two encoders.

    Parameters
    ----------
    audio_feats_by_gain : (G, N, FEATURE_DIM) raw features of every segment's audio at each gain of GAINS_DB.
    norm : the source's feature standardisation (baked into the exported audio encoder).
    visual : (N, Dv) visual descriptors.

    Returns a dict with the torch audio encoder (``audio``), the keys ``f_v(V)`` (N, DIM), the source's
    own audio embeddings ``f_a(A)`` at 0 dB (N, DIM), the loss curve and the time taken.
    """
    import torch

    threads = torch.get_num_threads()
    # A ~30k-parameter model: thread start-up costs more than it saves, and the fit shares the machine.
    torch.set_num_threads(1)
    try:
        return _train(torch, audio_feats_by_gain, norm, visual, seed, steps, progress)
    finally:
        torch.set_num_threads(threads)


def _train(torch, audio_feats_by_gain, norm, visual, seed, steps, progress):
    from torch import nn
    from tqdm import tqdm

    t0 = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    G, N, D = audio_feats_by_gain.shape
    xa = torch.from_numpy(np.clip((audio_feats_by_gain - norm.mean) / norm.std, -F.Z_CLIP, F.Z_CLIP).astype(np.float32))
    v_std, v_mu, v_sd = _standardize(visual)
    xv = torch.from_numpy(v_std)

    def mlp(d_in):
        return nn.Sequential(nn.Linear(d_in, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, DIM))

    fa, fv = mlp(D), mlp(xv.shape[1])
    params = list(fa.parameters()) + list(fv.parameters())
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    idx_all = np.arange(N)
    g0 = GAINS_DB.index(0.0)
    losses = []
    bar = tqdm(range(steps), desc="audio-visual fit", unit="step", disable=None if progress else True, leave=False)
    for _ in bar:
        idx = idx_all if N <= BATCH else np.sort(rng.choice(N, BATCH, replace=False))
        gi = rng.integers(0, G, len(idx))
        a = xa[torch.from_numpy(gi), torch.from_numpy(idx)]
        a = a + 0.1 * torch.randn_like(a)
        v = xv[torch.from_numpy(idx)] + 0.1 * torch.randn(len(idx), xv.shape[1])
        za = nn.functional.normalize(fa(a), dim=1)
        zv = nn.functional.normalize(fv(v), dim=1)
        logits = za @ zv.T / TRAIN_TAU
        ii = torch.from_numpy(idx)
        near = ((ii[:, None] - ii[None]).abs() <= NEAR) & ~torch.eye(len(idx), dtype=torch.bool)
        logits = logits.masked_fill(near, -1e4)
        target = torch.arange(len(idx))
        loss = 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
    fa.eval()
    fv.eval()
    with torch.no_grad():
        keys = nn.functional.normalize(fv(xv), dim=1).numpy()
        src = nn.functional.normalize(fa(xa[g0]), dim=1).numpy()
    return {"audio": fa, "keys": keys.astype(np.float32), "source": src.astype(np.float32), "losses": losses,
            "seconds": time.time() - t0, "chance_loss": float(np.log(min(N, BATCH)))}


def joint_keys(visual: np.ndarray, source_audio: np.ndarray, w: float = KEY_AUDIO_WEIGHT) -> np.ndarray:
    """Segment keys: the picture's embedding, plus a little of the segment's own sound, re-normalised.

    Segments whose pictures are alike (a still frame, an empty stage) get near-identical picture
    embeddings; a conditioning sound would then match all of them equally and could not single any
    out. Their sounds still differ, so a small audio share orders them without changing which picture
    a sound goes with.
    """
    k = np.asarray(visual, np.float32) + np.float32(w) * np.asarray(source_audio, np.float32)
    return (k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-8)).astype(np.float32)


class _Exported:
    """raw features -> standardise (and clip, as features.FeatureNorm) -> audio MLP -> unit vector, as one graph."""

    @staticmethod
    def build(fa, norm: F.FeatureNorm):
        import torch
        from torch import nn

        class AudioEncoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mean", torch.from_numpy(norm.mean.copy()))
                self.register_buffer("std", torch.from_numpy(norm.std.copy()))
                self.mlp = fa

            def forward(self, features):
                z = torch.clamp((features - self.mean) / self.std, -F.Z_CLIP, F.Z_CLIP)
                return nn.functional.normalize(self.mlp(z), dim=1)

        return AudioEncoder().eval()


def export_audio_encoder(fa, norm: F.FeatureNorm, path: str) -> None:
    """Write the audio encoder as ONNX: input ``features`` (B, FEATURE_DIM) raw -> ``embedding`` (B, DIM)."""
    import torch
    enc = _Exported.build(fa, norm)
    x = torch.zeros(1, F.FEATURE_DIM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # the TorchScript exporter takes 0.1 s here, the dynamo one several seconds
            torch.onnx.export(enc, (x,), path, input_names=["features"], output_names=["embedding"],
                              dynamic_axes={"features": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        except Exception:
            torch.onnx.export(enc, (x,), path, input_names=["features"], output_names=["embedding"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True)


class OnnxAudioEncoder:
    """Run an exported audio encoder with onnxruntime (one thread: the player shares 2 cores)."""

    def __init__(self, path: str):
        import onnxruntime as ort
        if not os.path.isfile(path):
            from ..errors import LivetexError
            raise LivetexError(f"missing audio model file {path}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.atleast_2d(feats), np.float32)
        return self.session.run(None, {"features": x})[0]
