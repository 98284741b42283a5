#!/usr/bin/env python
"""Benchmark the exporter and the sampler.

    python tools/bench_fit.py [--video V] [--minutes 3] [--skip-fit]

1. Fit time per minute of source and peak memory at default settings: a video of ``--minutes`` is made
   from V (default: the shipped pianist clip, looped) and fitted in a subprocess (``livetex fit``), whose
   wall time and peak RSS are reported.
2. Sampler step time for N = 1,000 / 10,000 / 20,000 segments (d = the default embedding size).

Goals (issue 3): a 3-minute video fits in under 5 minutes on a 2-core CPU; a step takes < 1 ms at N = 20,000.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from livetex.media import VideoWriter, iter_frames, load_audio, probe  # noqa: E402
from livetex.sampler import Sampler  # noqa: E402
from livetex.train import TrainConfig  # noqa: E402


def make_long_video(src: str, minutes: float, out: str) -> None:
    """Loop ``src`` (forward, then forward again) until ``minutes`` long; audio looped alongside."""
    info = probe(src)
    n_target = int(minutes * 60 * info.fps)
    y = load_audio(src, 44100, channels=2) if info.has_audio else None
    reps = int(np.ceil(n_target / info.n_frames))
    audio = np.concatenate([y] * reps) if y is not None else None
    with VideoWriter(out, info.fps_fraction, (info.width, info.height), audio=audio, sr=44100, preset="ultrafast") as w:
        n = 0
        while n < n_target:
            for rgb in iter_frames(src, info=info):
                w.write(rgb)
                n += 1
                if n >= n_target:
                    break


def bench_fit(video: str, minutes: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        long = os.path.join(d, "long.mp4")
        t = time.time()
        make_long_video(video, minutes, long)
        print(f"made a {minutes:g} min test video from {os.path.basename(video)} in {time.time() - t:.0f} s")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.time()
        r = subprocess.run([sys.executable, "-m", "livetex", "fit", long, "-o", os.path.join(d, "b")],
                           cwd=ROOT, capture_output=True, text=True)
        wall = time.time() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode:
            print(r.stderr)
            sys.exit(1)
        import json
        with open(os.path.join(d, "b", "manifest.json")) as f:
            m = json.load(f)
        fitm = m["fit"]
        print(f"\nfit of {m['duration']:.0f} s of {m['source']['width']}x{m['source']['height']} video at default settings:")
        print(f"  wall time              {wall:7.1f} s   ({wall / (m['duration'] / 60):.1f} s per minute of source)")
        print(f"  of which training      {fitm['seconds']:7.1f} s   ({fitm['steps_run']} steps, loss {fitm['loss_first']:.2f} -> {fitm['loss_final']:.2f})")
        print(f"  CPU time (user+sys)    {after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:7.1f} s")
        print(f"  peak memory (RSS)      {after.ru_maxrss / 1024:7.0f} MB")
        print(f"  goal: 3 min in < 300 s -> {'met' if wall * 3 / (m['duration'] / 60) < 300 else 'NOT met'}")


def bench_sampler(dim: int) -> None:
    """The default walk's scores are pixel codes (PIXEL_DIMS + 2) next to phi/psi (dim): d = 130."""
    from livetex.sampler import PIXEL_DIMS
    dim = PIXEL_DIMS + 2 + dim
    print(f"\nsampler step (d = {dim}, the default contrastive scores; median of 2,000 steps after warm-up):")
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000, 20_000):
        phi = rng.standard_normal((n, dim)).astype(np.float32)
        psi = np.roll(phi, -1, axis=0) + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
        s = Sampler(phi, psi, stride_s=0.2, temperature=0.1)
        s.walk(100)
        ts = []
        for _ in range(2000):
            t = time.perf_counter()
            s.step()
            ts.append(time.perf_counter() - t)
        ts = np.array(ts) * 1e3
        print(f"  N = {n:6d}: median {np.median(ts):.3f} ms, p99 {np.percentile(ts, 99):.3f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", default=os.path.join(ROOT, "livetex", "data", "demo", "pianist.avi"))
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--skip-fit", action="store_true")
    a = p.parse_args()
    print(f"cores: {os.cpu_count()}")
    if not a.skip_fit:
        bench_fit(a.video, a.minutes)
    bench_sampler(TrainConfig().dim)


if __name__ == "__main__":
    main()
