"""Pictures: the transition matrix (as the paper's Fig. 5) and a walk's timeline.

``livetex plot BUNDLE -o matrix.png [--timeline T.json]`` draws, for the default texture walk, the
transition graph: for every source frame (row), the chance per frame of cutting to each other moment
(column) — the walk's rate times the exit's seam weight, no visit history — with log-scaled colour; the
natural successors form the bright line just above the diagonal, and a graph with exits everywhere is
a cloud over the whole square rather than a few islands. ``--method learned|pixel`` draws the segment
samplers' P(j | t) instead. With a timeline, the walk's
transitions are marked on the matrix and a second panel shows the source position over output time;
if the walk followed a song (and the song's file is still there), a third shows the song's loudness
against the picture's motion, the two curves the audio-motion agreement correlates.
"""

from __future__ import annotations

import os

import numpy as np

MAX_CELLS = 700  # larger matrices are block-max pooled so every strong transition stays visible


def transition_matrix(q, k, stride_s: float, temperature: float, threshold: float, cosine: bool = True) -> np.ndarray:
    """P(j | t) for all t, (N, N) float32, with the sampler's static guards and threshold."""
    from .sampler import Sampler
    s = Sampler(q, k, stride_s, temperature, threshold, cosine=cosine)
    s.history.clear()  # no visit history: only the static guards
    return np.stack([s.distribution(t) for t in range(s.N)]).astype(np.float32)


def graph_matrix(graph, temperature: float, rate: float, cells: int = MAX_CELLS) -> tuple[np.ndarray, int]:
    """(m, m) block-max of the per-frame cut probability ``rate * exp(-cost / tau)`` from frame p (rows) to
    frame g (columns), pooled to at most ``cells`` blocks a side (and the natural successor at 1)."""
    n = graph.n
    f = max(1, int(np.ceil(n / cells)))
    m = (n + f - 1) // f
    P = np.zeros((m, m), np.float32)
    ok = graph.exits >= 0
    rows = np.repeat(np.arange(n), graph.exits.shape[1])[ok.ravel()]
    cols = graph.exits[ok]
    val = np.minimum(1.0, rate * np.exp(-graph.cost[ok] / max(temperature, 1e-3))).astype(np.float32)
    np.maximum.at(P, (rows // f, cols // f), val)
    nxt = np.arange(n - 1)
    live = np.array([graph.continues(p) for p in nxt], bool)
    np.maximum.at(P, (nxt[live] // f, (nxt[live] + 1) // f), 1.0)
    return P, f


def _pool(P: np.ndarray, cells: int) -> tuple[np.ndarray, int]:
    n = len(P)
    f = max(1, int(np.ceil(n / cells)))
    m = (n + f - 1) // f
    pad = np.zeros((m * f, m * f), P.dtype)
    pad[:n, :n] = P
    return pad.reshape(m, f, m, f).max(axis=(1, 3)), f


def plot(bundle, out: str, timeline=None, temperature: float | None = None, threshold: float | None = None,
         method: str = "contrastive") -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .sampler import DEFAULT_JUMPS_PER_MIN, DEFAULT_THRESHOLD, calibrate_temperature, walk_embeddings

    if method == "contrastive":
        from .graph import Graph
        from .texture import DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD as T_THR, calibrate_rate, fitted_walk
        graph = Graph.from_bundle(bundle)
        fw = fitted_walk(bundle)
        tau = temperature or fw.get("temperature", DEFAULT_TEMPERATURE)
        thr = T_THR if threshold is None else threshold
        rate = fw["rate"] if fw.get("rate") and tau == fw.get("temperature") else calibrate_rate(graph, temperature=tau, threshold=thr)
        Pp, f = graph_matrix(graph, tau, rate)
        ext, unit, n_rows = bundle.n_frames / bundle.fps, 1.0 / bundle.fps, graph.n
        label, what = "log10 P(cut p -> g) per frame", f"{graph.n} frames, {int((graph.exits >= 0).sum())} exits"
    else:
        q, k, cosine = walk_embeddings(bundle, method)
        stride_s = bundle.segments.stride_frames / bundle.fps
        thr = DEFAULT_THRESHOLD if threshold is None else threshold
        fitted = ((bundle.manifest.get("walk") or {}).get("temperatures") or {}).get(method)
        if temperature:
            tau = temperature
        elif fitted and threshold is None:
            tau = fitted
        else:
            tau = calibrate_temperature(q, k, stride_s, DEFAULT_JUMPS_PER_MIN, thr, cosine=cosine)
        P = transition_matrix(q, k, stride_s, tau, thr, cosine)
        Pp, f = _pool(P, MAX_CELLS)
        ext, unit, n_rows = len(P) * stride_s, stride_s, len(P)
        label, what = "log10 P(j | t)", f"{len(P)} segments"

    song = _song(bundle, timeline)
    ncols = 2 if timeline is not None else 1
    fig = plt.figure(figsize=(7.5 * ncols, 7))
    grid = fig.add_gridspec(2 if song is not None else 1, ncols)
    ax = fig.add_subplot(grid[:, 0])
    with np.errstate(divide="ignore"):
        img = np.log10(np.maximum(Pp, 1e-6))
    im = ax.imshow(img, cmap="magma", vmin=-6, vmax=0, extent=(0, ext, ext, 0), interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label=label)
    ax.set_xlabel("to (source time, s)")
    ax.set_ylabel("from (source time, s)")
    ax.set_title(f"{method} transitions  τ={tau:.3g}, threshold={thr:g}\n"
                 f"{bundle.manifest['source']['name']}, {what}")
    if timeline is not None and timeline.jumps:
        fr = np.asarray(timeline.frames)
        js = np.asarray([j for j in timeline.jumps if 0 < j < len(fr)], np.int64)
        ax.scatter(fr[js] / bundle.fps, fr[js - 1] / bundle.fps, s=14,
                   facecolors="none", edgecolors="#00e5ff", linewidths=1.0, label="jumps taken")
        ax.legend(loc="lower left", fontsize=8)
    if timeline is not None:
        ax2 = fig.add_subplot(grid[0, 1])
        t = np.arange(len(timeline.frames)) / timeline.fps
        ax2.plot(t, np.asarray(timeline.frames) / bundle.fps, color="#d62728", lw=1.2)
        for k in timeline.jumps:
            ax2.axvline(k / timeline.fps, color="0.85", lw=0.5, zorder=0)
        ax2.set_xlabel("output time (s)")
        ax2.set_ylabel("source position (s)")
        ax2.set_ylim(0, bundle.n_frames / bundle.fps)
        ax2.set_title(f"walk: {timeline.method}, {len(timeline.jumps)} jumps in {timeline.seconds:.0f} s")
        ax2.grid(alpha=0.3)
    if song is not None:
        # the music's loudness against the picture's motion: what "strumming to the beat" means here
        from .audio.metrics import agreement_curves
        t, loud, motion, r = agreement_curves(bundle, timeline, song)
        ax3 = fig.add_subplot(grid[1, 1], sharex=ax2)
        ax3.plot(t, loud, color="#1f77b4", lw=1.2, label="music loudness")
        ax3.plot(t, motion, color="#d62728", lw=1.2, label="picture motion")
        for k in timeline.jumps:
            ax3.axvline(k / timeline.fps, color="0.85", lw=0.5, zorder=0)
        ax3.set_xlabel("output time (s)")
        ax3.set_ylabel("z-score (1 s smoothing)")
        ax3.set_title(f"following {os.path.basename(timeline.audio['path'])}: agreement {r:+.2f}")
        ax3.legend(loc="upper right", fontsize=8)
        ax3.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def seam_sheet(video: str, seams: list[dict], timeline, out: str, worst: int = 5, per_row: int = 10,
               height: int = 160) -> str:
    """A contact sheet of the ``worst`` seams of a rendered output, one row each: the whole frame before
    the seam (the changing part boxed), then ``per_row`` frames from a little before the seam to a
    little after it, cropped to where the picture changes across it (a small performer's hands are
    where a double exposure shows), so a person can judge a pop or a ghost at a glance.
    ``seams``: :func:`livetex.metrics.rendered_seams`' rows (worst first)."""
    import cv2
    from .media.video import iter_frames
    rows = seams[:worst]
    seam = timeline.params.get("seam") or {}
    before, after = int(seam.get("before", 0)), int(seam.get("after", 0))
    want: dict[int, list[int]] = {}
    for r in rows:
        j = r["jump"]
        idx = np.unique(np.clip(np.round(np.linspace(j - before - 3, j + after + 2, per_row)).astype(int), 0,
                                len(timeline.frames) - 1))
        want[j] = list(idx)
    need = {i for v in want.values() for i in v}
    got: dict[int, np.ndarray] = {}
    for i, rgb in enumerate(iter_frames(video)):
        if i in need:
            got[i] = rgb
        if i >= max(need, default=-1):
            break
    lines = []
    for r in rows:
        idx = want[r["jump"]]
        first, last = got[idx[0]], got[idx[-1]]
        H, W = first.shape[:2]
        # the part of the frame that changes across the seam, with a margin
        # (where the seam's two ends differ most: a performer's moving hands, not the whole body's sway)
        diff = cv2.GaussianBlur(cv2.absdiff(first, last).max(axis=2).astype(np.float32), (0, 0), 2.0)
        d = diff > max(24.0, 0.4 * float(diff.max()))
        ys, xs = np.nonzero(cv2.dilate(d.astype(np.uint8), np.ones((9, 9), np.uint8)))
        if len(ys) and (ys.max() - ys.min()) * (xs.max() - xs.min()) < 0.6 * H * W:
            m = max(8, (ys.max() - ys.min()) // 8)
            y0, y1 = max(0, ys.min() - m), min(H, ys.max() + m)
            x0, x1 = max(0, xs.min() - m), min(W, xs.max() + m)
        else:
            y0, y1, x0, x1 = 0, H, 0, W
        fit = lambda f: cv2.resize(f, (max(1, int(round(f.shape[1] * height / f.shape[0]))), height),  # noqa: E731
                                   interpolation=cv2.INTER_AREA if f.shape[0] > height else cv2.INTER_CUBIC)
        ctx = fit(first.copy())
        sx = ctx.shape[1] / W
        cv2.rectangle(ctx, (int(x0 * sx), int(y0 * sx)), (int(x1 * sx) - 1, int(y1 * sx) - 1), (255, 60, 60), 2)
        tiles = [ctx]
        for i in idx:
            t = fit(got[i][y0:y1, x0:x1])
            inside = r["jump"] - before <= i < r["jump"] + after
            cv2.rectangle(t, (0, 0), (t.shape[1] - 1, t.shape[0] - 1), (255, 200, 0) if inside else (60, 60, 60), 2)
            tiles.append(t)
        strip = np.hstack(tiles)
        label = (f"{r['from']} -> {r['to']} at output frame {r['jump']}: change {r['ratio']:.2f}x the motion around "
                 f"(shows above {r['threshold']:.2f}x), double exposure {r['ghost']:.2f}"
                 + ("  VISIBLE" if r.get("visible") else "") + ("  GHOSTED" if r.get("ghosted") else ""))
        bar = np.full((22, strip.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        lines.append(np.vstack([bar, strip]))
    if not lines:
        lines = [np.full((40, 400, 3), 255, np.uint8)]
        cv2.putText(lines[0], "no jumps", (4, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    width = max(x.shape[1] for x in lines)
    img = np.vstack([np.pad(x, ((0, 4), (0, width - x.shape[1]), (0, 0)), constant_values=255) for x in lines])
    if not cv2.imwrite(out, cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        from .errors import LivetexError
        raise LivetexError(f"cannot write {out}")
    return out


def _song(bundle, timeline):
    """The conditioning audio of an audio-following timeline (mono, features.SR), or None."""
    path = (getattr(timeline, "audio", None) or {}).get("path") if timeline is not None else None
    if not path or not os.path.isfile(path):
        return None
    from .audio import features as F
    from .media.audio import load_audio
    return load_audio(path, F.SR, channels=1)


def add_parser(sub):
    p = sub.add_parser("plot", help="draw the transition matrix (and a walk's timeline) to a PNG")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, help="output .png")
    p.add_argument("--timeline", default=None, help="timeline JSON to overlay")
    p.add_argument("--temperature", type=float, default=None, help="default: calibrated like `render`")
    p.add_argument("--threshold", type=float, default=None)
    p.add_argument("--method", choices=["contrastive", "learned", "pixel"], default="contrastive",
                   help="which transition scores to draw (default contrastive)")
    p.set_defaults(func=cmd_plot)


def cmd_plot(a):
    from .bundle import load_bundle
    from .media.writer import check_output_path
    from .timeline import load_timeline
    b = load_bundle(a.bundle)
    check_output_path(a.output)
    tl = load_timeline(a.timeline) if a.timeline else None
    plot(b, a.output, tl, a.temperature, a.threshold, a.method)
    print(f"picture written: {a.output}")
