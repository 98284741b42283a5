"""How good is a texture? Numbers computed from a timeline and its bundle's thumbnails.

- ``jumps``, ``jumps_per_min``: how often the walk cuts.
- ``diversity``: the paper's diversity score, new transitions per 30 s of output. A transition is the
  pair (source frame before, source frame after) of a jump; it is new if it has not occurred earlier in
  the same 30 s window. Averaged over full windows (a shorter output is scaled to 30 s).
- ``mean_jump_s``: mean distance in source time between where a jump leaves and where it lands.
- ``coverage``: fraction of the source's frames shown at least once.
- ``longest_run_s``: longest stretch of output without a jump.
- ``visible_jumps``: fraction of jumps whose frame-to-frame change (mean absolute difference of 64 px
  grey frames) exceeds the 99.5th percentile of the source's own consecutive-frame changes.
- ``revisits``: fraction of jumps landing on a frame shown in the previous 5 s (stutter / tiny loops).
- ``reshown``: fraction of output frames showing a source frame already shown in the previous 20 s
  (a texture that replays a stretch of the source, even through long loops and fresh cuts).
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


def timeline_metrics(bundle, tl: Timeline, grey: np.ndarray | None = None) -> dict:
    """All unconditional metrics of a timeline, as a flat dict of floats."""
    f = np.asarray(tl.frames)
    fps = tl.fps
    grey = grey_thumbs(bundle) if grey is None else grey
    jumps = np.asarray([k for k in tl.jumps if 0 < k < len(f)], np.int64)
    sc = source_changes(grey)
    thr = float(np.percentile(sc, VISIBLE_PERCENTILE)) if len(sc) else 0.0
    change = frame_change(grey, f[jumps - 1], f[jumps]) if len(jumps) else np.zeros(0)
    bounds = np.concatenate([[0], jumps, [len(f)]])
    recent = int(round(REVISIT_S * fps))
    revisits = 0
    for k in jumps:
        if f[k] in set(f[max(0, k - recent):k].tolist()):
            revisits += 1
    minutes = len(f) / fps / 60.0
    return {
        "seconds": len(f) / fps,
        "jumps": int(len(jumps)),
        "jumps_per_min": len(jumps) / minutes if minutes else 0.0,
        "diversity": diversity_score(f, jumps.tolist(), fps),
        "mean_jump_s": float(np.mean(np.abs(f[jumps] - f[jumps - 1] - 1)) / fps) if len(jumps) else 0.0,
        "coverage": float(len(np.unique(f)) / bundle.n_frames),
        "longest_run_s": float(np.diff(bounds).max() / fps),
        "visible_jumps": float(np.mean(change > thr)) if len(jumps) else 0.0,
        "jump_change": float(np.mean(change)) if len(jumps) else 0.0,
        "source_change_p50": float(np.median(sc)) if len(sc) else 0.0,
        "source_change_p995": thr,
        "revisits": revisits / len(jumps) if len(jumps) else 0.0,
        "reshown": reshown(f, fps),
    }


_LABELS = [
    ("seconds", "output length (s)", "{:.1f}"),
    ("jumps", "jumps", "{:d}"),
    ("jumps_per_min", "jumps per minute", "{:.1f}"),
    ("diversity", "diversity (new transitions / 30 s)", "{:.2f}"),
    ("mean_jump_s", "mean jump length (s)", "{:.2f}"),
    ("coverage", "source covered", "{:.1%}"),
    ("longest_run_s", "longest run without a jump (s)", "{:.1f}"),
    ("visible_jumps", "visible jumps (> source p99.5 change)", "{:.1%}"),
    ("jump_change", "mean change at jumps (grey levels)", "{:.2f}"),
    ("source_change_p50", "source consecutive change p50", "{:.2f}"),
    ("source_change_p995", "source consecutive change p99.5", "{:.2f}"),
    ("revisits", "jumps back into the last 5 s", "{:.1%}"),
    ("reshown", "frames shown again within 20 s", "{:.1%}"),
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
