"""Benchmark the media foundation on the real clips: decode, frame-store fetch, bundle size, render speed.

    python tools/bench_media.py                  # everything (1-3 minutes on 2 shared cores)
    python tools/bench_media.py --seconds 5      # decode/fit less of each clip
    python tools/bench_media.py --skip-1080      # no 1080p stores (they need ~0.5 GB of scratch disk for raw)

Prints one table per measurement:

- decode: ``iter_frames`` frames per second at the source size and scaled to 360p (RGB out, PyAV threads on).
- frame store: time to fetch one random segment step (the ``stride`` frames a walk appends: 0.2 s) and one
  whole window (0.5 s), median and p99 over random segments, jpeg (q90) and raw, stores at 360p/720p/1080p.
  The 1080p stores are the 720p clip upscaled (fit never upscales; this is for players on big screens).
  Raw numbers are with the store in the page cache (it was just written), i.e. the steady state of a player.
- bundle size: a real ``fit`` (no contrastive model) of the first ``--seconds`` of the piano clip, per minute of
  source, split into frame store / thumbnails / audio / rest.
- render: ``render`` of a random walk (a jump every 0.2 s) to H.264 + AAC, as a multiple of real time, with no
  seam smoothing (the foundation alone) and with the default smoothing.

Media: ``../shared/media`` (piano_solo_01.avi 640x480 30 fps; street_crowd_01.avi 1280x720 50 fps).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from livetex.bundle import load_bundle  # noqa: E402
from livetex.fit import FitConfig, fit, store_size  # noqa: E402
from livetex.framestore import FrameStore, FrameStoreWriter  # noqa: E402
from livetex.media import iter_frames, probe  # noqa: E402
from livetex.render import render  # noqa: E402
from livetex.segments import make_segments  # noqa: E402
from livetex.walks import WalkRequest, run  # noqa: E402

MEDIA = os.environ.get("LIVETEX_MEDIA", os.path.join(HERE, "..", "..", "shared", "media"))
PIANO = os.path.join(MEDIA, "piano_solo_01.avi")
STREET = os.path.join(MEDIA, "street_crowd_01.avi")
SONG = os.path.join(MEDIA, "drum_bass_01.ogg")


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header] + [[c if isinstance(c, str) else f"{c:,.1f}" if isinstance(c, float) else str(c) for c in r]
                        for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join("-" * w for w in widths)
    print(line)
    for i, r in enumerate(cells):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            print(line)
    print(line)


def bench_decode(seconds: float) -> None:
    rows = []
    for path in (PIANO, STREET):
        info = probe(path)
        end = min(seconds, info.duration)
        for label, size in (("source", None), ("360p", store_size(info.width, info.height, 360))):
            list(iter_frames(path, size=size, end=0.5, info=info))          # warm the file cache
            t, c = time.perf_counter(), time.process_time()
            n = sum(1 for _ in iter_frames(path, size=size, end=end, info=info))
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            w, h = size or (info.width, info.height)
            rows.append([os.path.basename(path), f"{info.codec} {info.width}x{info.height}", label,
                         f"{w}x{h}", n, n / dt, n / dt / info.fps, cpu / n * 1e3])
    table("decode (iter_frames, RGB out; cpu = all threads)",
          ["clip", "stream", "to", "size", "frames", "fps", "x realtime", "cpu ms/frame"], rows)


def bench_store(tmp: str, skip_1080: bool, n_fetch: int = 200) -> None:
    info = probe(STREET)
    src = list(iter_frames(STREET, end=1.6, info=info))                       # 80 frames of 720p
    seg = make_segments(len(src), info.fps)
    S, W = seg.stride_frames, seg.window_frames
    rng = np.random.default_rng(0)
    rows = []
    import cv2
    heights = [360, 720] + ([] if skip_1080 else [1080])
    for height in heights:
        size = (int(round(1280 * height / 720 / 2)) * 2, height)
        frames = [f if f.shape[0] == height else cv2.resize(f, size, interpolation=cv2.INTER_AREA if height < 720
                                                            else cv2.INTER_CUBIC) for f in src]
        for codec in ("jpeg", "raw"):
            root = os.path.join(tmp, f"store-{height}-{codec}")
            os.makedirs(root)
            w = FrameStoreWriter(root, size, codec, 90)
            t = time.perf_counter()
            for f in frames:
                w.add(f)
            meta = w.close()
            write_fps = len(frames) / (time.perf_counter() - t)
            disk = sum(os.path.getsize(os.path.join(root, f)) for f in meta["files"])
            store = FrameStore(root, meta)
            step, window, cpu = [], [], []
            # At most n_fetch samples or ~6 s per store (the 1080p jpeg store is slow on a busy machine).
            t_end = time.perf_counter() + 6.0
            while len(step) < n_fetch and (len(step) < 50 or time.perf_counter() < t_end):
                i = int(rng.integers(seg.count))
                a, b = seg.tail_range(i)
                t, c = time.perf_counter(), time.process_time()
                store.frames(a, b)
                step.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            t_end = time.perf_counter() + 4.0
            while len(window) < n_fetch // 3 and (len(window) < 20 or time.perf_counter() < t_end):
                a, b = seg.frame_range(int(rng.integers(seg.count)))
                t = time.perf_counter()
                store.frames(a, b)
                window.append(time.perf_counter() - t)
            step_ms, window_ms = np.array(step) * 1e3, np.array(window) * 1e3
            rows.append([f"{size[0]}x{size[1]}", codec, disk / len(frames) / 1e3, write_fps,
                         f"{np.median(step_ms):.1f} / {np.percentile(step_ms, 99):.1f}",
                         f"{np.median(window_ms):.1f} / {np.percentile(window_ms, 99):.1f}",
                         f"{np.median(step_ms) / S:.2f}", f"{np.median(cpu) * 1e3 / S:.2f}",
                         f"{len(step)}/{len(window)}"])
            shutil.rmtree(root)
    table(f"frame store: random segment fetch (street_crowd, {info.fps:g} fps: step = {S} frames, "
          f"window = {W} frames; ms median / p99)",
          ["store", "codec", "KB/frame", "write fps", "step ms", "window ms", "ms/frame", "cpu ms/frame", "samples"],
          rows)


def bench_bundle_and_render(tmp: str, seconds: float) -> None:
    # Skip the audio-visual model the fit's audio step trains (its arrays are a few hundred KB, and its
    # training time is not what this bench measures): the bundle is otherwise the real one.
    try:
        from livetex.audio import avmodel
        avmodel.MIN_SEGMENTS = 10 ** 9
    except ImportError:
        pass
    info = probe(PIANO)
    end = min(seconds, info.duration)
    size_rows, render_rows = [], []
    for height, codec in ((360, "jpeg"), (480, "jpeg"), (360, "raw")):
        out = os.path.join(tmp, f"piano-{height}-{codec}")
        t = time.perf_counter()
        fit(PIANO, out, FitConfig(model=False, end=end, store_height=height, store_codec=codec), progress=False)
        fit_s = time.perf_counter() - t
        b = load_bundle(out)
        files = b.manifest["files"]
        minutes = b.n_frames / b.fps / 60
        store_files = set(b.manifest["store"]["files"])
        part = {"store": sum(f["bytes"] for k, f in files.items() if k in store_files),
                "thumbs": files.get("thumbs.npy", {}).get("bytes", 0),
                "audio": files.get("audio.npy", {}).get("bytes", 0)}
        total = sum(f["bytes"] for f in files.values())
        part["rest"] = total - sum(part.values())
        size_rows.append([f"{b.store.size[0]}x{b.store.size[1]} {codec}", f"{b.n_frames / b.fps:.0f} s",
                          total / 1e6 / minutes, part["store"] / 1e6 / minutes, part["thumbs"] / 1e6 / minutes,
                          part["audio"] / 1e6 / minutes, part["rest"] / 1e6 / minutes,
                          b.n_frames / b.fps / fit_s])
        if codec == "raw":
            continue
        out_s = 10.0
        tl = run("random", WalkRequest(bundle=b, n_frames=int(out_s * b.fps), seed=0))
        for interp in ("none", "default"):
            mode = "none"
            if interp == "default":
                if height != 360:       # seam smoothing is slow; one size is enough to show its cost
                    continue
                try:
                    from livetex import seams
                    mode = seams.DEFAULT_MODE
                except ImportError:
                    continue
            mp4 = os.path.join(tmp, "render.mp4")
            t = time.perf_counter()
            render(b, tl, mp4, audio=SONG, interpolate=mode, progress=False)
            dt = time.perf_counter() - t
            render_rows.append([f"{b.store.size[0]}x{b.store.size[1]} {codec}", mode, f"{out_s:.0f} s",
                                len(tl.jumps), dt, out_s / dt])
            os.remove(mp4)
    table(f"bundle size per minute of source (piano_solo, first {end:.0f} s; MB/min)",
          ["store", "fitted", "total", "frames", "thumbs", "audio", "rest", "fit x realtime"], size_rows)
    table("render (random walk + music -> H.264/AAC mp4)",
          ["store", "seams", "output", "jumps", "seconds", "x realtime"], render_rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds of each clip to decode / fit (default 15)")
    ap.add_argument("--skip-1080", action="store_true", help="skip the 1080p frame stores")
    a = ap.parse_args()
    for p in (PIANO, STREET, SONG):
        if not os.path.isfile(p):
            print(f"bench_media: {p} not found (set LIVETEX_MEDIA)", file=sys.stderr)
            return 1
    import cv2
    print(f"livetex bench_media  ({os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}, "
          f"OpenCV {cv2.__version__}, {'libjpeg-turbo' if 'turbo' in cv2.getBuildInformation().lower() else 'libjpeg'})")
    print("wall-clock numbers include other processes' load; 'cpu' columns are this process's own CPU time")
    with tempfile.TemporaryDirectory(prefix="livetex-bench-") as tmp:
        bench_decode(a.seconds)
        bench_store(tmp, a.skip_1080)
        bench_bundle_and_render(tmp, a.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
