#!/usr/bin/env python
"""Does a training setting teach the learned bi-gram where cuts stay invisible? The issue-3 model sweep.

    python tools/bench_learned.py [--only piano,kitchen] [--configs '{"size64": {"size": 64}}'] [--seeds 8]

For every clip (fitted and cached as ``tools/bench_quality.py`` does) and every training setting (overrides
of ``models/default.json``; the default list walks the four axes the issue names: training size,
negatives, steps, features), fit phi/psi again from the bundle's thumbnails and print:

- ``fit s`` and ``top-1``: training time and how often phi_t finds its own successor among all psi;
- ``seam AUC``: among each segment's 10 best jumps by pixel continuity (the candidates a walk actually
  weighs), the probability that the learned score ranks a cut that stays invisible (``SeamCost`` excess 0)
  above one that shows, averaged over segments that have both (0.5: no information). The pixel score's
  own AUC on the same candidates is printed once per clip;
- the learned scores alone and the contrastive mix (pixel + 0.1 x learned), walked at a *measured* 20
  jumps per minute (see bench_quality): diversity, coverage, visible fraction, visible jumps per minute.

Controls, per clip: the pixel walk, and the same mix with *random* phi/psi (``--controls`` draws). Any
perturbation of the scores moves a walk's visible fraction by several points (on piano, two random
draws gave 19 % and 26 % with 16 seeds each), so a trained setting shows something only if it beats
the random draws' spread; and it can only help the mix if its seam AUC is clearly above 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench_quality import fitted, matched, media_videos, summary  # noqa: E402

from livetex.bundle import load_bundle  # noqa: E402
from livetex.conditioning import SeamCost  # noqa: E402
from livetex.metrics import grey_thumbs, timeline_metrics  # noqa: E402
from livetex.sampler import (DEFAULT_THRESHOLD, MIN_JUMP_S, Sampler, calibrate_temperature,  # noqa: E402
                             normalize, start_segment, transition_vectors, walk_embeddings)
from livetex.walks import WalkRequest, n_steps, segment_timeline  # noqa: E402

AXES = {
    "default": {},
    "size 64 px": {"size": 64},
    "150 steps": {"steps": 150},
    "2000 steps": {"steps": 2000, "patience": 400},
    "no frame differences": {"diff": False},
    "random negatives (24 runs of 4)": {"runs": 24, "run_len": 4},
    "hard negatives (2 runs of 48)": {"runs": 2, "run_len": 48},
    "seam view": {"view": "seam"},
    "soft pixel positives": {"soft": 1.0},
    "pixel noise 0.05": {"noise": 0.05},
}
CANDIDATES = 10


def candidates(P: np.ndarray, min_jump: int, m: int = CANDIDATES) -> np.ndarray:
    """(N - 1, m) the m best-scored jumps of every segment but the last (no successor, no stutter)."""
    N = len(P)
    out = np.empty((N - 1, m), np.int64)
    for t in range(N - 1):
        row = P[t].astype(np.float64).copy()
        row[max(0, t - min_jump + 1):t + min_jump] = -np.inf
        row[t + 1] = -np.inf
        out[t] = np.argsort(-row, kind="stable")[:m]
    return out


def row_auc(score: np.ndarray, good: np.ndarray) -> float:
    """Mean over rows (that have both kinds) of P(score of a good entry > score of a bad one), ties 1/2."""
    aucs = []
    for s, g in zip(score, good):
        if g.all() or not g.any():
            continue
        d = s[g][:, None] - s[~g][None, :]
        aucs.append(float(np.mean((d > 0) + 0.5 * (d == 0))))
    return float(np.mean(aucs)) if aucs else float("nan")


def walk_at_rate(b, q, k, cosine: bool, rate: float, seeds: int, seconds: float, grey) -> dict:
    """Summary metrics of walks with these transition vectors, at a measured ``rate`` jumps/min."""
    stride_s = b.segments.stride_frames / b.fps
    req = [WalkRequest(bundle=b, n_frames=int(seconds * b.fps), seed=s) for s in range(seeds)]

    def evaluate(tau):
        out = []
        for r in req:
            s = Sampler(q, k, stride_s, tau, DEFAULT_THRESHOLD, r.seed, cosine=cosine)
            steps = s.walk(n_steps(r), start_segment(r, s.N))
            out.append(timeline_metrics(b, segment_timeline(r, steps, "x"), grey))
        return out

    tau0 = calibrate_temperature(q, k, stride_s, rate, DEFAULT_THRESHOLD, cosine=cosine, quick=True)
    return summary(matched(evaluate, tau0, rate)[1])


def fmt(avg: dict) -> str:
    return (f"DS {avg['diversity']:5.2f}  cov {avg['coverage']:4.0%}  visible {avg['visible_jumps']:4.0%} "
            f"({avg['visible_per_min']:4.1f}/min)")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--media", default=os.path.join(ROOT, "..", "shared", "media"))
    p.add_argument("--cache", default="/tmp/livetex-quality")
    p.add_argument("--only", default="piano,kitchen", help="comma-separated video names ('' for all)")
    p.add_argument("--configs", default=None,
                   help='JSON {label: {TrainConfig overrides}}; "config" names a preset in models/ (default: the four '
                        'axes). A pretrained backbone: \'{"x3d": {"config": "x3d_xs", "weights": "/path/X3D_XS.pyth"}}\'')
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--controls", type=int, default=2, help="random phi/psi draws walked as controls")
    p.add_argument("--fit-seeds", type=int, default=1, help="fits per setting (different training seeds)")
    a = p.parse_args()

    import torch

    from livetex.train import SegmentClips, embed_all, load_config, successor_accuracy, train
    if a.threads:
        torch.set_num_threads(a.threads)
    configs = json.loads(a.configs) if a.configs else AXES
    os.makedirs(a.cache, exist_ok=True)
    rows = []
    for v in media_videos(a.media, a.only):
        b = load_bundle(fitted(os.path.join(a.media, v), a.cache))
        grey, seg = grey_thumbs(b), b.segments
        codes = np.asarray(b.array("pixel_codes"))
        qp, kp, _ = walk_embeddings(b, "pixel")
        P = qp @ kp.T
        cand = candidates(P, int(round(MIN_JUMP_S * b.fps / seg.stride_frames)))
        invisible = SeamCost(b).pairs(cand) == 0.0
        rows_t = np.arange(len(cand))[:, None]
        pix_auc = row_auc(P[rows_t, cand], invisible)
        pixel = walk_at_rate(b, qp, kp, False, a.rate, a.seeds, a.seconds, grey)
        print(f"{v}: {seg.count} segments, {invisible.mean():.0%} of the candidate cuts invisible, "
              f"pixel seam AUC {pix_auc:.2f}; pixel walk: {fmt(pixel)}", flush=True)
        rows.append((v, "pixel (baseline)", None, pix_auc, {"contrastive": pixel}))
        rng = np.random.default_rng(0)
        for c in range(a.controls):
            phi, psi = rng.standard_normal((seg.count, 64)), rng.standard_normal((seg.count, 64))
            res = walk_at_rate(b, *transition_vectors(codes, phi, psi, "contrastive"), a.rate, a.seeds, a.seconds, grey)
            rows.append((v, f"random phi/psi {c + 1} (control)", None, row_auc((phi @ psi.T)[rows_t, cand], invisible),
                         {"contrastive": res}))
            print(f"  {rows[-1][1]:34s} contrastive: {fmt(res)}", flush=True)
        thumbs = np.asarray(b.array("thumbs"))
        for label, over in configs.items():
            for fs in range(a.fit_seeds):
                over = dict(over)
                tc = load_config(over.pop("config", "default"), **over)
                t0 = time.time()
                clips = SegmentClips(thumbs, seg, tc.size, tc.frames, torch.device("cpu"), tc.view)
                model, log = train(clips, tc, torch.device("cpu"), fs, progress=False)
                phi, psi = embed_all(model, clips, tc.batch_embed)
                fit_s = time.time() - t0
                auc = row_auc((normalize(phi) @ normalize(psi).T)[rows_t, cand], invisible)
                res = {kind: walk_at_rate(b, *transition_vectors(codes, phi, psi, kind), a.rate, a.seeds, a.seconds, grey)
                       for kind in ("learned", "contrastive")}
                top1 = successor_accuracy(phi, psi)
                name = label if a.fit_seeds == 1 else f"{label}, seed {fs}"
                rows.append((v, name, (fit_s, log["steps_run"], top1), auc, res))
                print(f"  {name:34s} fit {fit_s:5.0f} s ({log['steps_run']} steps)  top-1 {top1:4.0%}  seam AUC {auc:.2f}  "
                      f"learned: {fmt(res['learned'])}  contrastive: {fmt(res['contrastive'])}", flush=True)
    print("\n| clip | training | fit s | top-1 | seam AUC | learned: visible (per min) | "
          "contrastive: DS / coverage / visible (per min) |\n|---|---|---|---|---|---|---|")
    for v, label, fit, auc, res in rows:
        if fit is None:
            r = res["contrastive"]
            print(f"| {v} | {label} | | | {auc:.2f} | | {r['diversity']:.1f} / {r['coverage']:.0%} / "
                  f"{r['visible_jumps']:.0%} ({r['visible_per_min']:.1f}) |")
            continue
        lr, cr = res["learned"], res["contrastive"]
        print(f"| {v} | {label} | {fit[0]:.0f} | {fit[2]:.0%} | {auc:.2f} | {lr['visible_jumps']:.0%} "
              f"({lr['visible_per_min']:.1f}) | {cr['diversity']:.1f} / {cr['coverage']:.0%} / "
              f"{cr['visible_jumps']:.0%} ({cr['visible_per_min']:.1f}) |")


if __name__ == "__main__":
    main()
