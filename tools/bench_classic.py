"""Benchmark the classic video textures' O(F^2) stages: distances + filter (cost matrix), Q-learning, pruning.

    python tools/bench_classic.py                  # 1, 5, 10 min synthetic at 30 fps + the real piano clip
    python tools/bench_classic.py --minutes 1 5    # a subset
    python tools/bench_classic.py --no-real

Each size runs in its own subprocess so the peak RSS it reports is that size's alone. Synthetic thumbs are
64x64 frames of a few moving, slowly drifting blobs plus sensor noise (real-looking distance statistics,
no periodic shortcut). The real clip is fitted with ``livetex fit --no-model`` into a temporary directory.
Times are wall-clock seconds on this machine; ``matrix`` is the stored cost matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REAL = os.path.join(HERE, "..", "..", "shared", "media", "piano_solo_01.avi")


def synthetic_thumbs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    out = np.empty((n, 64, 64, 3), np.uint8)
    t = np.arange(n, dtype=np.float32) / 30.0
    freqs = rng.uniform(0.2, 1.5, size=(4, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(4, 2))
    cols = rng.uniform(60, 255, size=(4, 3)).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.02, size=(n, 4, 2)), axis=0)
    for k in range(n):
        img = np.full((64, 64, 3), 40, np.float32)
        for b in range(4):
            cx = 32 + 22 * np.sin(freqs[b, 0] * t[k] + phase[b, 0] + drift[k, b, 0])
            cy = 32 + 22 * np.sin(freqs[b, 1] * t[k] + phase[b, 1] + drift[k, b, 1])
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < 40] = cols[b]
        img += rng.normal(0, 3, size=img.shape)
        out[k] = np.clip(img, 0, 255)
    return out


def run_one(kind: str, arg: str) -> dict:
    """Measure one size (in this process)."""
    from livetex import classic as C
    if kind == "synthetic":
        minutes = float(arg)
        n = int(round(minutes * 60 * 30))
        thumbs = synthetic_thumbs(n)
        fps, label = 30.0, f"synthetic {minutes:g} min"
    else:
        from livetex.bundle import load_bundle
        b = load_bundle(arg)
        thumbs, fps, n = b.array("thumbs"), b.fps, b.n_frames
        label = f"piano_solo_01 ({n / fps / 60:.2f} min)"
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    X = C.frame_features(thumbs)
    t1 = time.perf_counter()
    dtype = C.choose_dtype(n, fps=fps)
    cost = C.CostMatrix(X, C.TAPS[C.DEFAULT_TAPS], C.EXPONENT_P, max(1, round(C.STUTTER_S * fps)), dtype, progress=False)
    t2 = time.perf_counter()
    m, sweeps = C.future_cost(cost, C.DISCOUNT, 1, progress=False)
    t3 = time.perf_counter()
    cand = C.candidates(cost, m, C.DISCOUNT, 1, C.TOP_K, max(1, round(C.STUTTER_S * fps)))
    t4 = time.perf_counter()
    C.calibrate_sigma(cand, cost.sigma_base, C.DEFAULT_JUMPS_PER_MIN, C.DEFAULT_THRESHOLD, 60 * fps)
    t5 = time.perf_counter()
    cpu = time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"label": label, "frames": n, "dtype": str(cost.dtype), "matrix_mb": cost.nbytes / 1e6,
            "features_s": t1 - t0, "matrix_s": t2 - t1, "q_s": t3 - t2, "sweeps": sweeps, "prune_s": t4 - t3,
            "calib_s": t5 - t4, "total_s": t5 - t0, "cpu_s": cpu, "peak_rss_mb": peak / 1e6, "rss_before_mb": rss0 * 1024 / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="*", default=[1, 5, 10])
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--one", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(*a.one)))
        return
    jobs = [("synthetic", str(mn)) for mn in a.minutes]
    tmp = None
    if not a.no_real:
        if os.path.exists(REAL):
            tmp = tempfile.TemporaryDirectory()
            bundle = os.path.join(tmp.name, "piano.b")
            subprocess.run([sys.executable, "-m", "livetex", "fit", REAL, "-o", bundle, "--no-model",
                            "--store-height", "120"], check=True, stdout=subprocess.DEVNULL)
            jobs.insert(0, ("real", bundle))
        else:
            print(f"(real clip skipped: {REAL} not found)")
    rows = []
    load = os.getloadavg()
    for kind, arg in jobs:
        out = subprocess.run([sys.executable, __file__, "--one", kind, arg], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"done: {r['label']}", file=sys.stderr)
    hdr = ("video", "frames", "matrix", "features s", "distances+filter s", "Q-learning s (sweeps)",
           "prune s", "calibrate s", "total s (CPU s)", "peak RSS MB")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in rows:
        print(f"| {r['label']} | {r['frames']} | {r['matrix_mb']:.0f} MB {r['dtype']} | {r['features_s']:.1f} | "
              f"{r['matrix_s']:.1f} | {r['q_s']:.1f} ({r['sweeps']}) | {r['prune_s']:.1f} | {r['calib_s']:.1f} | "
              f"{r['total_s']:.1f} ({r['cpu_s']:.1f}) | {r['peak_rss_mb']:.0f} |")
    print(f"\nwall-clock seconds on {os.cpu_count()} cores; load average at start {load[0]:.1f} "
          "(other jobs share the machine: CPU s is this process's own time, all threads)")
    from livetex import classic as C
    lim16 = int((C.MAX_MATRIX_GB * (1 << 30)) ** 0.5 / 2 ** 0.5)
    lim8 = int((C.MAX_MATRIX_GB * (1 << 30)) ** 0.5)
    print(f"limit at {C.MAX_MATRIX_GB:g} GiB (LIVETEX_CLASSIC_MAX_GB): float16 up to {lim16} frames "
          f"({lim16 / 1800:.1f} min at 30 fps), uint8 up to {lim8} frames ({lim8 / 1800:.1f} min at 30 fps)")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
