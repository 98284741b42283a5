"""How good is a texture? Numbers computed from a timeline and its bundle's thumbnails.

- ``jumps``, ``jumps_per_min``: how often the walk cuts.
- ``diversity``: the paper's diversity score, new transitions per 30 s of output. A transition is the
  pair (source frame before, source frame after) of a jump; it is new if it has not occurred earlier in
  the same 30 s window. Averaged over full windows (a shorter output is scaled to 30 s).
- ``mean_jump_s``: mean distance in source time between where a jump leaves and where it lands.
- ``coverage``: fraction of the source's frames shown at least once.
- ``longest_run_s``: longest stretch of output without a jump.
- ``visible_jumps``: fraction of jumps that show, judged against the motion around each jump (not the
  clip's fastest moments: a pose that teleports inside a slow passage shows even when fast passages
  elsewhere change more). A jump's *ratio* is its largest frame-to-frame change (mean absolute
  difference of 64 px grey frames) over the median change of the ``CONTEXT`` frames before and after
  it; it shows when that ratio exceeds the 99.5th percentile of the same ratio over the source itself,
  measured with the same window (:func:`local_ratios`). Of the raw cuts here; of the rendered,
  smoothed output with :func:`rendered_seams` (a smoothed seam's window is the frames it replaced).
- ``ghosted_seams`` (rendered output): fraction of seams with a double-exposure frame — one that is a
  cross-fade of the two streams where they differ (:func:`ghost_score`): a cross-fade hides a pop by
  showing two bodies at once, which is not a hidden jump.
- ``revisits``: fraction of jumps landing on a frame shown in the previous 5 s (stutter / tiny loops).
- ``reshown``: fraction of output frames showing a source frame already shown in the previous 20 s, or
  within half the clip if that is shorter (a texture that replays a stretch of the source, even
  through long loops and fresh cuts).
- ``landing_tenths``: in how many of the 10 tenths of the source the walk's jumps land (spread).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from .timeline import Timeline

VISIBLE_PERCENTILE = 99.5
DS_WINDOW_S = 30.0
REVISIT_S = 5.0
RESHOWN_S = 20.0
CONTEXT = 6             # frames each side whose median change is "the motion around" a jump
GHOST = 0.6             # ghost_score above which a frame counts as a double exposure, measured at
GHOST_SIDE = 256        # this many pixels on the frame's longer side: a cross-fade of two poses scores
                        # 0.95-1 there, RIFE's one body in between 0.2-0.5. At 64 px a moving hand's
                        # motion blur and a doubled hand look alike (0.5-0.65), at 256 px they do not
PARTS = 10


def reshown_window(n_source: int, fps: float) -> float:
    """Seconds within which showing a frame again counts as a replay: 20 s, or half the clip if shorter."""
    return min(RESHOWN_S, 0.5 * n_source / fps)


def landing_parts(frames: np.ndarray, jumps, n_source: int, parts: int = PARTS) -> int:
    """In how many of ``parts`` equal parts of the source the jumps land."""
    f = np.asarray(frames)
    js = [j for j in jumps if 0 < j < len(f)]
    return int(len(np.unique(f[js] * parts // max(n_source, 1)))) if js else 0


def changes(grey: np.ndarray) -> np.ndarray:
    """(n - 1,) mean absolute difference of consecutive grey frames (levels)."""
    g = np.asarray(grey, np.float32)
    return np.abs(g[1:] - g[:-1]).mean(axis=(1, 2)) if len(g) > 1 else np.zeros(0, np.float32)


def _window_ratio(ch: np.ndarray, lo: int, hi: int, context: int = CONTEXT) -> float:
    """max(ch[lo:hi]) over the median of ch[lo - context:lo] and ch[hi:hi + context]."""
    peak = float(ch[lo:hi].max()) if hi > lo else 0.0
    ctx = np.concatenate([ch[max(0, lo - context):lo], ch[hi:hi + context]])
    return peak / max(float(np.median(ctx)), 1e-3) if len(ctx) else 1.0


def local_ratios(ch: np.ndarray, width: int, context: int = CONTEXT) -> np.ndarray:
    """The source's own version of a jump's ratio: for every run of ``width`` consecutive changes with a
    full context on at least one side, its largest change over the median of the ``context`` changes
    before and after it."""
    n = len(ch)
    if n < width + context:
        return np.zeros(0)
    peak = np.lib.stride_tricks.sliding_window_view(ch, width).max(axis=1)
    out = np.empty(len(peak))
    for i in range(len(peak)):
        ctx = np.concatenate([ch[max(0, i - context):i], ch[i + width:i + width + context]])
        out[i] = peak[i] / max(float(np.median(ctx)), 1e-3)
    return out


def visible_ratio(source_ch: np.ndarray, width: int, cache: dict | None = None) -> float:
    """The 99.5th percentile of :func:`local_ratios` of the source for this window width (inf when the
    source is too short to tell)."""
    key = ("ratio", width)
    if cache is not None and key in cache:
        return cache[key]
    r = local_ratios(source_ch, width)
    v = float(np.percentile(r, VISIBLE_PERCENTILE)) if len(r) else float("inf")
    if cache is not None:
        cache[key] = v
    return v


def jump_ratios(out_ch: np.ndarray, spans) -> np.ndarray:
    """Each jump's ratio; ``spans`` are (lo, hi) ranges of change indices (change i is between output
    frames i and i + 1) covering the jump: (j - 1, j) for a raw cut landing at output frame j."""
    return np.array([_window_ratio(out_ch, lo, hi) for lo, hi in spans], np.float64)


def ghost_score(o: np.ndarray, a: np.ndarray, b: np.ndarray, min_diff: float = 8.0, faint: float = 4.0) -> float:
    """How much output frame ``o`` looks like a double exposure of ``a`` and ``b`` (grey, same size):
    0 = not at all, 1 = exactly a cross-fade. Only where a and b differ by more than ``min_diff`` levels
    (elsewhere there is nothing to ghost); there the best blend ``a + w (b - a)`` is fitted, and the
    score is how much better it explains ``o`` than either end does. A warp that puts one body in an
    in-between place is explained by the blend no better than by the ends and scores low; so does a
    frame whose fainter component would be too faint to see (``min(w, 1 - w)`` times the difference
    under ``faint`` levels)."""
    o, a, b = (np.asarray(x, np.float32) for x in (o, a, b))
    d = b - a
    region = np.abs(d) > min_diff
    if region.mean() < 0.01:
        return 0.0
    dr, oa = d[region], (o - a)[region]
    w = float((oa * dr).sum() / max((dr * dr).sum(), 1e-6))
    if min(w, 1.0 - w) * float(np.abs(dr).mean()) < faint:
        return 0.0
    blend = np.abs(oa - w * dr).mean()
    ends = min(np.abs(oa).mean(), np.abs((o - b)[region]).mean())
    return float(np.clip(1.0 - blend / max(ends, 1e-6), 0.0, 1.0))


def reshown(frames: np.ndarray, fps: float, seconds: float = RESHOWN_S) -> float:
    """Fraction of output frames whose source frame was already shown within the previous ``seconds``."""
    f = np.asarray(frames, np.int64)
    if len(f) < 2:
        return 0.0
    i = np.arange(len(f))
    order = np.lexsort((i, f))                 # by source frame, then output time
    fs, js = f[order], i[order]
    again = (fs[1:] == fs[:-1]) & (js[1:] - js[:-1] <= int(round(seconds * fps)))
    return float(again.sum() / len(f))


def grey_thumbs(bundle) -> np.ndarray:
    """(n, h, w) float32 grey levels 0..255 of the bundle's thumbnails."""
    th = bundle.array("thumbs")
    return grey_frames(th, np.arange(len(th)))


def frame_change(grey: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute grey difference between frames a[i] and b[i] (0..255)."""
    return np.abs(grey[a] - grey[b]).mean(axis=(1, 2))


def source_changes(grey: np.ndarray) -> np.ndarray:
    """Consecutive-frame changes of the source, (n - 1,)."""
    idx = np.arange(len(grey) - 1)
    return frame_change(grey, idx, idx + 1)


def grey_frames(thumbs, index: np.ndarray, block: int = 4096) -> np.ndarray:
    """(len(index), h, w) float32 grey levels of some thumbnails (``thumbs`` may be memory-mapped: only
    these frames are read)."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    index = np.asarray(index, np.int64)
    out = np.empty((len(index),) + tuple(thumbs.shape[1:3]), np.float32)
    for a in range(0, len(index), block):
        out[a:a + block] = np.asarray(thumbs[index[a:a + block]], np.float32) @ w
    return out


def shrink_grey(grey: np.ndarray, size: int = 16) -> np.ndarray:
    """(B, h, w) grey frames -> (B, size * size) float32, area-averaged (cv2.INTER_AREA)."""
    import cv2
    out = np.empty((len(grey), size * size), np.float32)
    for i, g in enumerate(grey):
        out[i] = cv2.resize(np.asarray(g, np.float32), (size, size), interpolation=cv2.INTER_AREA).ravel()
    return out


def visible_level(thumbs, sample: int = 4000, seed: int = 0) -> float:
    """The visible-jump threshold: the 99.5th percentile of the source's consecutive-frame changes,
    estimated from up to ``sample`` random frame pairs (a long video is never read whole)."""
    n = len(thumbs)
    if n < 2:
        return 0.0
    f = np.arange(n - 1) if n - 1 <= sample else np.sort(np.random.default_rng(seed).choice(n - 1, sample, replace=False))
    a, b = grey_frames(thumbs, f), grey_frames(thumbs, f + 1)
    return float(np.percentile(np.abs(a - b).mean(axis=(1, 2)), VISIBLE_PERCENTILE))


def diversity_score(frames: np.ndarray, jumps: list[int], fps: float, window_s: float = DS_WINDOW_S) -> float:
    """New transitions per ``window_s`` seconds of output (the paper's DS)."""
    if not jumps:
        return 0.0
    win = int(round(window_s * fps))
    n = len(frames)
    counts = []
    for a in range(0, max(n - win + 1, 1), win):
        seen = {(int(frames[k - 1]), int(frames[k])) for k in jumps if a <= k < a + win}
        counts.append(len(seen))
    if n < win:
        return counts[0] * window_s * fps / n
    return float(np.mean(counts))


def timeline_metrics(bundle, tl: Timeline, grey: np.ndarray | None = None, cache: dict | None = None) -> dict:
    """All unconditional metrics of a timeline, as a flat dict of floats (jump visibility of the raw
    cuts; :func:`rendered_seams` measures the rendered output)."""
    f = np.asarray(tl.frames)
    fps = tl.fps
    grey = grey_thumbs(bundle) if grey is None else grey
    cache = {} if cache is None else cache
    jumps = np.asarray([k for k in tl.jumps if 0 < k < len(f)], np.int64)
    sc = cache.get("source_ch")
    if sc is None:
        sc = cache["source_ch"] = changes(grey)
    out_ch = frame_change(grey, f[:-1], f[1:]) if len(f) > 1 else np.zeros(0)
    ratios = jump_ratios(out_ch, [(j - 1, j) for j in jumps])
    thr = visible_ratio(sc, 1, cache)
    change = out_ch[jumps - 1] if len(jumps) else np.zeros(0)
    bounds = np.concatenate([[0], jumps, [len(f)]])
    recent = int(round(REVISIT_S * fps))
    revisits = 0
    for k in jumps:
        if f[k] in set(f[max(0, k - recent):k].tolist()):
            revisits += 1
    minutes = len(f) / fps / 60.0
    window = reshown_window(bundle.n_frames, bundle.fps)
    return {
        "seconds": len(f) / fps,
        "jumps": int(len(jumps)),
        "jumps_per_min": len(jumps) / minutes if minutes else 0.0,
        "diversity": diversity_score(f, jumps.tolist(), fps),
        "mean_jump_s": float(np.mean(np.abs(f[jumps] - f[jumps - 1] - 1)) / fps) if len(jumps) else 0.0,
        "coverage": float(len(np.unique(f)) / bundle.n_frames),
        "longest_run_s": float(np.diff(bounds).max() / fps),
        "visible_jumps": float(np.mean(ratios > thr)) if len(jumps) else 0.0,
        "jump_ratio_p50": float(np.median(ratios)) if len(jumps) else 0.0,
        "visible_ratio": thr,
        "jump_change": float(np.mean(change)) if len(jumps) else 0.0,
        "revisits": revisits / len(jumps) if len(jumps) else 0.0,
        "reshown": reshown(f, fps, window),
        "reshown_window_s": window,
        "landing_tenths": landing_parts(f, jumps, bundle.n_frames),
    }


def output_grey(video: str, size: int = 64, detail: set | None = None):
    """Yield the grey 64 px frames of a rendered video, made like the bundle's thumbnails (RGB area-
    resized to ``size`` x ``size``, then Rec. 601 luma); with ``detail`` (output frame indices), yield
    (grey, the frame's :func:`detail_grey` or None) pairs instead."""
    import cv2
    from .media.video import iter_frames
    w = np.array([0.299, 0.587, 0.114], np.float32)
    for i, rgb in enumerate(iter_frames(video)):
        g = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) @ w
        yield g if detail is None else (g, detail_grey(rgb) if i in detail else None)


def detail_grey(rgb: np.ndarray, side: int = GHOST_SIDE) -> np.ndarray:
    """A frame as float32 grey with ``side`` pixels on its longer side (aspect kept): where double
    exposures are judged."""
    import cv2
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    small = cv2.resize(rgb, (max(1, int(round(w * s))), max(1, int(round(h * s)))), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def rendered_seams(bundle, tl: Timeline, video: str, grey: np.ndarray | None = None,
                   cache: dict | None = None) -> dict:
    """How the jumps of a rendered output look after smoothing, measured on the video itself.

    The seams are where the renderer put them (``tl.params["seam"]``: before/after frames; none for a
    hard cut). Returns ``visible_after`` (fraction of jumps whose window — the frames the seam
    replaced, plus the steps into and out of it — has a ratio above the source's own 99.5th
    percentile for that width), ``ghosted_seams`` (fraction of seams with a frame whose
    :func:`ghost_score` exceeds GHOST), ``seam_ratio_p50``, and ``seams``: per jump (output frame,
    source frames before/after, ratio, threshold, ghost), worst first.
    """
    from .seams import plan_seams
    grey = grey_thumbs(bundle) if grey is None else grey
    cache = {} if cache is None else cache
    f = np.asarray(tl.frames)
    seam = tl.params.get("seam") or {}
    before, after = int(seam.get("before", 0)), int(seam.get("after", 0))
    jumps = [int(j) for j in tl.jumps if 0 < int(j) < len(f)]
    if before + after and tl.params.get("interpolate", "none") != "none":
        plan = plan_seams(f, jumps, bundle.n_frames, before, after)
    else:
        plan = []
    want = {i for s in plan for i in range(s.start, s.end)}
    pairs = list(output_grey(video, detail=want))
    out = np.stack([g for g, _ in pairs])
    detail = {i: d for i, (_, d) in enumerate(pairs) if d is not None}
    del pairs
    if len(out) != len(f):
        from .errors import LivetexError
        raise LivetexError(f"{video} has {len(out)} frames, its timeline {len(f)}: they do not belong together")
    sc = cache.get("source_ch")
    if sc is None:
        sc = cache["source_ch"] = changes(grey)
    out_ch = changes(out)
    by_jump = {s.jump: s for s in plan}
    rows = []
    for j in jumps:
        s = by_jump.get(j)
        lo, hi = (s.start - 1, s.end) if s is not None else (j - 1, j)
        lo, hi = max(0, lo), min(len(out_ch), max(hi, lo + 1))
        ratio = float(_window_ratio(out_ch, lo, hi))
        thr = visible_ratio(sc, hi - lo, cache)
        ghost = 0.0
        if s is not None:
            src = lambda k: detail_grey(bundle.store.frame(int(k)))  # noqa: E731
            ghost = max(ghost_score(detail[s.start + i], src(a), src(b)) for i, (a, b) in enumerate(zip(s.a_idx, s.b_idx)))
        rows.append({"jump": j, "from": int(f[j - 1]), "to": int(f[j]), "ratio": round(ratio, 3),
                     "threshold": round(thr, 3), "ghost": round(ghost, 3),
                     "visible": bool(ratio > thr), "ghosted": bool(ghost > GHOST)})
    rows.sort(key=lambda r: (r["visible"] or r["ghosted"], max(r["ratio"] / r["threshold"], r["ghost"] / GHOST)),
              reverse=True)
    n = len(rows)
    return {"visible_after": float(np.mean([r["visible"] for r in rows])) if n else 0.0,
            "ghosted_seams": float(np.mean([r["ghosted"] for r in rows])) if n else 0.0,
            "shown_after": float(np.mean([r["visible"] or r["ghosted"] for r in rows])) if n else 0.0,
            "seam_ratio_p50": float(np.median([r["ratio"] for r in rows])) if n else 0.0,
            "seams": rows}


_LABELS = [
    ("seconds", "output length (s)", "{:.1f}"),
    ("jumps", "jumps", "{:d}"),
    ("jumps_per_min", "jumps per minute", "{:.1f}"),
    ("diversity", "diversity (new transitions / 30 s)", "{:.2f}"),
    ("mean_jump_s", "mean jump length (s)", "{:.2f}"),
    ("coverage", "source covered", "{:.1%}"),
    ("longest_run_s", "longest run without a jump (s)", "{:.1f}"),
    ("landing_tenths", "tenths of the source jumps land in", "{:d}"),
    ("visible_jumps", "visible raw cuts (vs the motion around)", "{:.1%}"),
    ("visible_after", "visible jumps after smoothing (rendered)", "{:.1%}"),
    ("ghosted_seams", "seams with a double exposure (rendered)", "{:.1%}"),
    ("jump_ratio_p50", "raw cut change / motion around, p50", "{:.2f}"),
    ("seam_ratio_p50", "smoothed seam change / motion around, p50", "{:.2f}"),
    ("visible_ratio", "source's own p99.5 of that ratio", "{:.2f}"),
    ("jump_change", "mean change at jumps (grey levels)", "{:.2f}"),
    ("revisits", "jumps back into the last 5 s", "{:.1%}"),
    ("reshown", "frames shown again within the window", "{:.1%}"),
    ("reshown_window_s", "... window (20 s, or half the clip) (s)", "{:.1f}"),
]


def format_metrics(m: dict) -> str:
    lines = []
    for key, label, fmt in _LABELS:
        if key in m:
            lines.append(f"{label:42s} {fmt.format(m[key])}")
    for key in sorted(set(m) - {k for k, _, _ in _LABELS}):
        v = m[key]
        lines.append(f"{key:42s} {v:.3f}" if isinstance(v, float) else f"{key:42s} {v}")
    return "\n".join(lines)


def add_parser(sub):
    p = sub.add_parser("eval-timeline", help="print the quality metrics of a rendered timeline")
    p.add_argument("timeline", help="timeline JSON written by `livetex render`")
    p.add_argument("--bundle", default=None, help="bundle the timeline was rendered from (default: recorded path)")
    p.add_argument("--audio", default=None, help="conditioning audio (default: recorded path) for audio metrics")
    p.add_argument("--video", default=None, help="the rendered mp4 (default: next to the timeline, if there), "
                                                  "for seam visibility after smoothing and double exposures")
    p.add_argument("--sheet", default=None, metavar="FILE.png",
                   help="with the rendered video: a contact sheet of the five worst seams")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eval_timeline)


def cmd_eval_timeline(a):
    from .bundle import load_bundle
    from .errors import LivetexError
    from .timeline import load_timeline
    tl = load_timeline(a.timeline)
    path = a.bundle or tl.bundle.get("path")
    if not path:
        raise LivetexError("the timeline does not say which bundle it came from: pass --bundle")
    b = load_bundle(path)
    if tl.bundle.get("source_sha256") and tl.bundle["source_sha256"] != b.manifest["source"]["sha256"]:
        raise LivetexError(f"{a.timeline} was rendered from another video than {path}")
    if int(tl.frames.max()) >= b.n_frames:
        raise LivetexError(f"{a.timeline} refers to frames past the end of {path}")
    m = timeline_metrics(b, tl)
    import os
    video = a.video or os.path.splitext(a.timeline)[0] + ".mp4"
    if a.video or os.path.isfile(video):
        from .media.video import check_file
        check_file(video)
        r = rendered_seams(b, tl, video)
        seams = r.pop("seams")
        m.update(r)
        m["worst_seams"] = ", ".join(f"{w['from']}->{w['to']}@{w['jump']}" for w in seams[:5])
        if a.sheet:
            from .plot import seam_sheet
            m["sheet"] = seam_sheet(video, seams, tl, a.sheet)
    elif a.sheet:
        raise LivetexError(f"--sheet needs the rendered video ({video} is not there: pass --video)")
    audio = a.audio or (tl.audio or {}).get("path")
    if audio:
        try:
            from .audio.metrics import audio_metrics
        except ImportError:
            audio_metrics = None
        if audio_metrics is not None:
            m.update(audio_metrics(b, tl, audio))
    if a.json:
        json.dump(m, sys.stdout, indent=1)
        print()
    else:
        print(f"method {tl.method}  seed {tl.seed}  {tl.params}")
        print(format_metrics(m))
