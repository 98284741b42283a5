#!/usr/bin/env python
"""Texture quality of the walks on real clips: the issue-3 comparison table.

    python tools/bench_quality.py [--media ../shared/media] [--cache /tmp/livetex-quality] [--seconds 120]

For every video in the media folder: fit it (cached), then walk with the ``contrastive`` (default),
``learned`` (phi/psi alone, the paper's formulation) and ``pixel`` (L2 of 16 px grey segments) scores on
the same segment graph and sampler, at the default settings and at 20 jumps per minute, 3 seeds each,
and print jumps/min, the diversity score (new transitions per 30 s), coverage and the visible-jump fraction.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from livetex.bundle import load_bundle  # noqa: E402
from livetex.errors import LivetexError  # noqa: E402
from livetex.metrics import grey_thumbs, timeline_metrics  # noqa: E402
from livetex.walks import WalkRequest, run  # noqa: E402

VIDEOS = (".avi", ".mp4", ".mkv", ".mov", ".webm")
METHODS = ("contrastive", "learned", "pixel")


def fitted(video: str, cache: str) -> str:
    out = os.path.join(cache, os.path.splitext(os.path.basename(video))[0])
    try:
        b = load_bundle(out)
        if b.has("phi") and b.has("pixel_codes"):
            return out
    except LivetexError:
        pass
    t = time.time()
    r = subprocess.run([sys.executable, "-m", "livetex", "fit", video, "-o", out, "--force", "--store-height", "240"],
                       capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(r.stderr)
    print(f"  fitted {os.path.basename(video)} in {time.time() - t:.0f} s", flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--media", default=os.path.join(ROOT, "..", "shared", "media"))
    p.add_argument("--cache", default="/tmp/livetex-quality")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--only", default=None, help="comma-separated video names")
    a = p.parse_args()
    os.makedirs(a.cache, exist_ok=True)
    videos = sorted(f for f in os.listdir(a.media) if f.endswith(VIDEOS))
    if a.only:
        videos = [v for v in videos if any(o in v for o in a.only.split(","))]
    rows = []
    for v in videos:
        b = load_bundle(fitted(os.path.join(a.media, v), a.cache))
        grey = grey_thumbs(b)
        for rate in (None, 20.0):
            for m in METHODS:
                ms = []
                for seed in range(a.seeds):
                    req = WalkRequest(bundle=b, n_frames=int(a.seconds * b.fps), seed=seed, jumps_per_min=rate)
                    ms.append(timeline_metrics(b, run(m, req), grey))
                avg = {k: float(np.mean([x[k] for x in ms])) for k in ms[0]}
                rows.append((v, "default" if rate is None else f"{rate:g}/min", m, avg))
                print(f"{v:28s} {rows[-1][1]:8s} {m:12s} jumps/min {avg['jumps_per_min']:6.1f}  DS {avg['diversity']:6.2f}  "
                      f"coverage {avg['coverage']:5.1%}  visible {avg['visible_jumps']:6.1%}", flush=True)
    print("\n| clip | rate | method | jumps/min | DS | coverage | visible jumps |\n|---|---|---|---|---|---|---|")
    for v, rate, m, avg in rows:
        print(f"| {v} | {rate} | {m} | {avg['jumps_per_min']:.1f} | {avg['diversity']:.2f} | {avg['coverage']:.0%} | "
              f"{avg['visible_jumps']:.0%} |")


if __name__ == "__main__":
    main()
