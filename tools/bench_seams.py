"""Seam smoothing: cost per seam, and how visible the seams of real renders are.

Cost (default)::

    python tools/bench_seams.py [--sizes 360,720,1080] [--threads 1] [--repeat 5]

times one seam (``before + after`` replaced frames, 3 + 3 by default) per mode at each display height,
on one core by default (``cv2.setNumThreads(1)``), frame reading excluded (the player prefetches). The
frames are a real jump from ``--clip`` (default ``../shared/media/piano_solo_01.avi``, two moments 2 s
apart: a static shot, only the performer warps) and a synthetic texture pan with a loop-back jump (the
whole frame warps: the worst case). ``flow`` is timed as it runs (it may decide a cross-fade is the
smoother seam) and forced to warp (``flow-warp``). CPU time is the cost on one core; wall time also
counts waiting for a core when the machine is shared.

Visibility::

    python tools/bench_seams.py --quality BUNDLE [BUNDLE ...] [--method random] [--seconds 20]
                                [--audio SONG [--audio-walk plan|greedy]]

renders each bundle with each mode through ``livetex.render.render`` (a real mp4), decodes it back
and prints the seam discontinuity ratio and the visible-jump fraction (see ``livetex.seams``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from livetex import seams  # noqa: E402

MEDIA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "media")


# ------------------------------------------------------------------------------------------- cost
def clip_frames(path: str, n: int = 12, gap_s: float = 2.0) -> tuple[list, list]:
    """Two runs of ``n`` consecutive frames ``gap_s`` apart: the two streams of a jump."""
    from livetex.media import iter_frames, probe
    info = probe(path)
    start = min(1.0, max(0.0, info.duration - gap_s - 2 * n / info.fps - 0.1))
    frames = list(iter_frames(path, start=start, end=start + gap_s + n / info.fps + 0.05))
    k = int(round(gap_s * info.fps))
    return frames[:n], frames[k:k + n]


def texture_frames(n: int = 12, back: int = 7) -> tuple[list, list]:
    """A smooth texture panning 3 px/frame (at 360p), and the same pan ``back`` frames earlier: a
    loop-back jump where the whole frame has to be warped."""
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.uniform(0, 255, (400, 720, 3)).astype(np.float32), (0, 0), 6)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    f = [big[20:380, 3 * k:3 * k + 640].copy() for k in range(n + back)]
    return f[back:back + n], f[:n]


def time_seam(seamer: seams.Seamer, a, b, prev, nxt, repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one seam. CPU time is what it costs on one core even when other
    processes share the machine (wall time then includes waiting for a core)."""
    seamer.blend(a, b, prev=prev, nxt=nxt)  # warm-up: DIS allocations, grids
    wall, cpu = [], []
    for _ in range(repeat):
        seamer._grid._cache.clear()   # as in a real walk, where every seam has new warp boxes
        t0, c0 = time.perf_counter(), time.process_time()
        seamer.blend(a, b, prev=prev, nxt=nxt)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def bench_cost(args) -> None:
    cv2.setNumThreads(args.threads)
    cfg = seams.LIVE
    L = cfg.before + cfg.after
    clip = args.clip
    if clip is None and os.path.isfile(os.path.join(MEDIA, "piano_solo_01.avi")):
        clip = os.path.join(MEDIA, "piano_solo_01.avi")
    sources = [("pan", texture_frames(L + 2))]   # the whole frame moves: flow's worst case
    if clip:
        sources.insert(0, (os.path.splitext(os.path.basename(clip))[0][:10], clip_frames(clip, L + 2)))
    print(f"live seams (seams.LIVE): {L} replaced frames ({cfg.before} before + {cfg.after} after the jump), flow at "
          f"{cfg.flow_height} px high, DIS {cfg.preset}, warp at most {cfg.max_warp_area:.0%} of the frame (flow-warp: "
          f"always warp, no cap); cv2 threads: {args.threads}; frames: " + ", ".join(n for n, _ in sources)
          + " (pan = a synthetic texture panning: the whole frame warps)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; frame reading not included")
    print(f"{'size':>10s} {'frames':>10s} {'mode':>10s} {'cpu ms/seam':>11s} {'wall ms/seam':>12s} "
          f"{'cpu ms/frame':>12s}  warped")
    for h in args.sizes:
        for src_name, (a0, b0) in sources:
            w = int(round(a0[0].shape[1] * h / a0[0].shape[0] / 2)) * 2
            rs = lambda f: cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA if h < f.shape[0] else cv2.INTER_CUBIC)  # noqa: E731
            a, b = [rs(f) for f in a0], [rs(f) for f in b0]
            prev, nxt, a, b = a[0], b[-1], a[1:L + 1], b[1:L + 1]
            rows = [("fade", seams.Seamer("fade")), ("flow", seams.Seamer("flow")),
                    ("flow-warp", seams.Seamer("flow", warp_candidates=(1.0,), max_warp_area=1.0))]
            for name, s in rows:
                wall, cpu = time_seam(s, a, b, prev, nxt, args.repeat)
                warped = f"{s.stats['warped']}/{s.stats['seams']}" if s.mode == "flow" else ""
                print(f"{w:>5d}x{h:<4d} {src_name:>10s} {name:>10s} {1e3 * cpu:11.1f} {1e3 * wall:12.1f} "
                      f"{1e3 * cpu / L:12.1f}  {warped}")
        # A seam also reads `before + after` frames the walk does not show (frame store: JPEG q90).
        jpg = cv2.imencode(".jpg", a[0], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        c0 = time.process_time()
        for _ in range(args.repeat * L):
            cv2.imdecode(jpg, cv2.IMREAD_COLOR)
        ms = 1e3 * (time.process_time() - c0) / args.repeat
        print(f"{w:>5d}x{h:<4d} {'(store)':>10s} {'reads':>10s} {ms:11.1f} {'':>12s} {ms / L:12.1f}  "
              f"{L} extra JPEG decodes")


# ------------------------------------------------------------------------------------- visibility
def bench_quality(args) -> None:
    from livetex.bundle import load_bundle
    from livetex.media import iter_frames
    from livetex.render import render
    from livetex.walks import WalkRequest, run
    R = seams.RENDER.before
    print(f"method {args.method}, {args.seconds:g} s per render, seed {args.seed}, seams of {seams.RENDER.before}+"
          f"{seams.RENDER.after} frames (capped by the gaps between jumps), read back from the mp4.")
    print(f"ratio = mean change at jumps / mean change between consecutive source frames (64x64 grey: mad = mean abs "
          f"difference, ssim = 1-SSIM); vis = jumps above the source's 99.5th percentile. r0: the jump's own frame "
          f"pair; r{R}: the largest step within {R} pairs of the jump, against the source's largest step in any "
          f"{2 * R + 1} consecutive pairs.")
    cols = [(m, r) for m in ("mad", "ssim") for r in (0, R)]
    print(f"{'clip':24s} {'mode':5s} {'jumps':>5s} " + " ".join(f"{m + ' r' + str(r):>9s} {'vis':>4s}" for m, r in cols)
          + f" {'render':>7s}")
    for path in args.quality:
        b = load_bundle(path)
        src = seams.source_changes(b.array("thumbs"))
        tl = run(args.method, WalkRequest(bundle=b, n_frames=max(1, int(round(args.seconds * b.fps))), seed=args.seed,
                                          audio=args.audio, extra={"audio_walk": args.audio_walk}))
        name = os.path.splitext(b.manifest["source"]["name"])[0]
        with tempfile.TemporaryDirectory() as tmp:
            for mode in args.modes:
                out = os.path.join(tmp, f"{mode}.mp4")
                t0 = time.perf_counter()
                render(b, tl, out, interpolate=mode, progress=False)
                dt = time.perf_counter() - t0
                ch = seams.frame_changes(iter_frames(out))
                n_out = len(ch["mad"]) + 1
                if n_out != len(tl.frames):
                    raise SystemExit(f"{name} {mode}: {n_out} frames decoded, {len(tl.frames)} expected")
                cells = []
                for m, r in cols:
                    d = seams.seam_discontinuity(ch[m], tl.jumps, src, radius=r, measure=m)
                    cells.append(f"{d['ratio']:9.2f} {100 * d['visible']:3.0f}%")
                print(f"{name[:24]:24s} {mode:5s} {len(tl.jumps):5d} " + " ".join(cells) + f" {dt:6.1f}s", flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="360,720,1080", help="display heights to time (px)")
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads (default 1: one core)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--clip", default=None, help="video to take the jump's frames from")
    p.add_argument("--quality", nargs="+", default=None, metavar="BUNDLE", help="measure seams of renders of these bundles")
    p.add_argument("--method", default="random")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--audio", default=None, help="conditioning audio for the walk (quality mode)")
    p.add_argument("--audio-walk", default="plan", choices=["plan", "greedy"], help="with --audio (quality mode)")
    p.add_argument("--modes", default="none,fade,flow")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.modes = args.modes.split(",")
    if args.quality:
        bench_quality(args)
    else:
        bench_cost(args)


if __name__ == "__main__":
    main()
