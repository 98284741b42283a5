"""``livetex eval``: every synthesis method on one video, same length and seeds, one report.

    livetex eval VIDEO [--audio SONG] [--seconds S] [--seeds K] -o REPORT_DIR

1. The bundle: VIDEO may be a bundle directory (used as is) or a video file. A video is fitted into
   ``REPORT_DIR/bundle``, unless that bundle already exists for the same source (sha256) and has the
   model when one is wanted: re-running a report does not re-train.
2. Every registered method (:mod:`livetex.walks`) is rendered with the same length and seeds 0..K-1.
   Methods that need music are skipped without ``--audio``; with it, every method gets the song (the
   contrastive walk is then the audio-conditioned one; purely visual methods ignore it, which is the
   point of comparing them). A method that cannot run on this bundle (e.g. no model) gets a row with
   its error instead of numbers.
3. Metrics per timeline from :func:`livetex.metrics.timeline_metrics` (coverage, re-shown material,
   where jumps land, raw-cut visibility) and, with music, :func:`livetex.audio.metrics.audio_metrics`;
   the table shows their mean over seeds. The seed-0 walk of each method is also rendered (seams
   smoothed as ``livetex render`` does, small size), decoded back and judged on its pixels
   (:func:`livetex.metrics.rendered_seams`: visible jumps after smoothing, double exposures), with a
   contact sheet of its five worst seams.
4. ``report.md`` and ``report.html`` (table, pictures, the videos side by side), ``results.json``
   (every number, per seed), ``figures/*.png`` (matplotlib, Agg) and ``videos/*.mp4``.

Files are written under temporary names and renamed when complete; a failed run leaves the previous
report in place.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import sys
import time

# Columns of the table: (metric key, header, format, which way is better: +1 higher, -1 lower, 0 neither).
# A column appears when at least one method has the metric, so new metrics only need a line here.
COLUMNS = [
    ("jumps_per_min", "jumps/min", "{:.1f}", 0),
    ("diversity", "DS (new/30 s)", "{:.2f}", +1),
    ("coverage", "coverage", "{:.0%}", +1),
    ("reshown", "re-shown (window)", "{:.0%}", -1),
    ("landing_tenths", "landing tenths", "{:.1f}", +1),
    ("visible_jumps", "visible raw cuts", "{:.0%}", -1),
    ("visible_after", "visible after smoothing", "{:.0%}", -1),
    ("ghosted_seams", "double exposures", "{:.0%}", -1),
    ("mean_jump_s", "mean jump (s)", "{:.1f}", 0),
    ("longest_run_s", "longest run (s)", "{:.1f}", 0),
    ("revisits", "jumps into last 5 s", "{:.0%}", -1),
    ("audio_motion", "audio-motion", "{:.2f}", +1),
    ("beat_align", "beat align", "{:.2f}", +1),
    ("walk_s", "walk time (s)", "{:.2f}", -1),
]
BAR_METRICS = ["coverage", "reshown", "visible_after", "ghosted_seams", "audio_motion", "beat_align"]
DEFAULT_SECONDS = 30.0
DEFAULT_SEEDS = 3
VIDEO_HEIGHT = 240


def add_parser(sub):
    from .cli import _positive
    p = sub.add_parser("eval", help="render every method on one video and write a comparison report")
    p.add_argument("video", help="video file (fitted into REPORT_DIR/bundle) or an existing bundle directory")
    p.add_argument("-o", "--output", required=True, help="report directory (created if missing)")
    p.add_argument("--audio", default=None, help="conditioning music: also runs the methods that follow music")
    p.add_argument("--seconds", type=_positive(float), default=DEFAULT_SECONDS, help="length of every render (default 30)")
    p.add_argument("--seeds", type=_positive(int), default=DEFAULT_SEEDS, help="seeds 0..K-1 per method (default 3)")
    p.add_argument("--methods", default=None, help="comma-separated subset of methods (default: all)")
    p.add_argument("--jumps-per-min", type=_positive(float), default=None,
                   help="ask every method for this jump rate (default: each method's own default)")
    p.add_argument("--steps", type=_positive(int), default=None, help="training steps when fitting (default: the model config)")
    p.add_argument("--no-model", action="store_true", help="fit without the learned model (learned methods then report an error)")
    p.add_argument("--refit", action="store_true", help="fit again even if REPORT_DIR/bundle matches the video")
    p.add_argument("--no-videos", action="store_true", help="do not render the videos (numbers and pictures only)")
    p.add_argument("--video-height", type=_positive(int), default=VIDEO_HEIGHT,
                   help=f"height of the report's videos in pixels (default {VIDEO_HEIGHT})")
    p.set_defaults(func=cmd_eval)


def cmd_eval(a):
    methods = [m.strip() for m in a.methods.split(",") if m.strip()] if a.methods else None
    res = evaluate(a.video, a.output, audio=a.audio, seconds=a.seconds, seeds=a.seeds, methods=methods,
                   jumps_per_min=a.jumps_per_min, steps=a.steps, model=not a.no_model, refit=a.refit,
                   videos=not a.no_videos, video_height=a.video_height)
    print(res["table"])
    print(f"report written: {res['markdown']}  and  {res['html']}")


# ---------------------------------------------------------------------------------------- the bundle
def _is_report_dir(path: str) -> bool:
    names = set(os.listdir(path))
    return not names or bool(names & {"report.md", "results.json", "bundle"})


def prepare_bundle(source: str, out_dir: str, steps: int | None = None, model: bool = True, refit: bool = False,
                   progress: bool = True):
    """The bundle to evaluate: ``source`` itself if it is a bundle directory, else ``out_dir/bundle``,
    fitted from ``source`` unless it is already there for the same video. Returns (Bundle, how)."""
    from .bundle import load_bundle, sha256_file
    from .errors import LivetexError
    from .fit import FitConfig, fit
    if os.path.isdir(source):
        return load_bundle(source), "given"
    from .media.video import check_file
    check_file(source)
    path = os.path.join(out_dir, "bundle")
    if os.path.exists(path) and not refit:
        try:
            b = load_bundle(path)
        except LivetexError:
            b = None
        if (b is not None and b.manifest["source"].get("sha256") == sha256_file(source)
                and (b.has("phi") or not model)):
            return b, "reused"
    cfg = FitConfig(model=model, train={"steps": steps} if steps else {})
    fit(source, path, cfg, force=True, progress=progress)
    return load_bundle(path), "fitted"


# ------------------------------------------------------------------------------------------- metrics
def timeline_numbers(bundle, tl, audio: str | None, cache: dict) -> dict:
    """Every metric available for one timeline (extension point: add providers here)."""
    out: dict = {}
    try:
        from .metrics import grey_thumbs, timeline_metrics
    except ImportError:
        timeline_metrics = None
    if timeline_metrics is not None:
        if "grey" not in cache:
            cache["grey"] = grey_thumbs(bundle)
        out.update(timeline_metrics(bundle, tl, grey=cache["grey"]))
    if audio:
        try:
            from .audio.metrics import audio_metrics
        except ImportError:
            audio_metrics = None
        if audio_metrics is not None:
            if "audio" not in cache:
                from .audio import features as F
                from .media.audio import load_audio
                cache["audio"] = load_audio(audio, F.SR, channels=1)
            out.update(audio_metrics(bundle, tl, audio=cache["audio"]))
    return out


def seam_numbers(video: str, tl, bundle, cache: dict, sheet: str | None = None) -> dict:
    """How the jumps of a rendered output look after smoothing (:func:`livetex.metrics.rendered_seams`),
    and a contact sheet of its worst seams (``sheet``)."""
    from .metrics import grey_thumbs, rendered_seams
    if "grey" not in cache:
        cache["grey"] = grey_thumbs(bundle)
    r = rendered_seams(bundle, tl, video, cache["grey"], cache)
    seams = r.pop("seams")
    if sheet and seams:
        from .plot import seam_sheet
        seam_sheet(video, seams, tl, sheet, height=120)
    return r


# ------------------------------------------------------------------------------------------ rendering
def render_small(bundle, tl, out: str, audio: str | None, height: int, interpolate: str) -> None:
    """Render ``tl`` at ``height`` px (aspect kept, even sides) with the music muxed, seams smoothed as
    ``livetex render`` does (and recorded in ``tl.params``)."""
    import cv2
    from .media.writer import VideoWriter
    from .render import load_output_audio, output_frames
    tl.params["interpolate"] = interpolate
    if interpolate != "none":
        from .seams import render_config
        cfg = render_config(interpolate)
        tl.params["seam"] = {"before": cfg.before, "after": cfg.after}
    w0, h0 = bundle.store.size
    h = min(height, h0)
    w = max(2, int(round(w0 * h / h0 / 2)) * 2)
    h = max(2, h // 2 * 2)
    y = sr = None
    if audio:
        y, sr = load_output_audio(audio, tl.seconds)
    from tqdm import tqdm
    with VideoWriter(out, bundle.fps_fraction, (w, h), audio=y, sr=sr) as vw:
        for rgb in tqdm(output_frames(bundle, tl, interpolate), total=len(tl.frames), desc=f"render {tl.method}",
                        unit="frame", disable=None, leave=False):
            vw.write(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (w0, h0) else rgb)


# -------------------------------------------------------------------------------------------- figures
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def figure_timelines(rows, bundle, path: str) -> None:
    """Source position over output time, one panel per method (seed 0), jumps marked."""
    import numpy as np
    plt = _plt()
    rs = [r for r in rows if r["timelines"]]
    fig, axes = plt.subplots(len(rs), 1, figsize=(10, 1.3 * len(rs) + 0.8), sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], rs):
        tl = r["timelines"][0]
        t = np.arange(len(tl.frames)) / tl.fps
        ax.plot(t, np.asarray(tl.frames) / bundle.fps, lw=0.9, color="tab:red")
        if tl.jumps:
            j = np.asarray(tl.jumps)
            ax.plot(t[j], np.asarray(tl.frames)[j] / bundle.fps, "k.", ms=3)
        ax.set_ylim(0, bundle.n_frames / bundle.fps)
        ax.set_ylabel(r["method"], rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("output time (s)")
    fig.suptitle("source position (s) over output time, seed 0 (dots: jumps)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_transitions(rows, bundle, path: str) -> None:
    """Where each method jumps from and to (all seeds), one panel per method: a point per jump at
    (destination, origin) in source seconds; the diagonal is "no jump". Plus the learned model's
    transition graph the default walk cuts on."""
    import numpy as np
    plt = _plt()
    dur = bundle.n_frames / bundle.fps
    panels = []
    for r in rows:
        if not r["timelines"]:
            continue
        src, dst = [], []
        for tl in r["timelines"]:
            f = np.asarray(tl.frames)
            j = np.asarray(tl.jumps, np.int64)
            src.extend(f[j - 1] / bundle.fps)
            dst.extend(f[j] / bundle.fps)
        panels.append(("jumps", f"{r['method']} ({len(src)} jumps)", (np.asarray(dst), np.asarray(src))))
    P = model_matrix(bundle)
    if P is not None:
        panels.append(("matrix", "transition graph (cut chance per frame)", P))
    if not panels:
        return
    cols = min(4, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.1 * cols, 3.1 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (kind, title, data) in zip(axes.ravel(), panels):
        ax.axis("on")
        if kind == "jumps":
            ax.plot([0, dur], [0, dur], color="0.85", lw=0.8)
            ax.scatter(data[0], data[1], s=7, alpha=0.5, color="tab:red", linewidths=0)
            ax.set_xlim(0, dur)
            ax.set_ylim(0, dur)
            ax.set_aspect("equal")
        else:
            ax.imshow(data ** 0.5, origin="lower", extent=[0, dur, 0, dur], cmap="magma", aspect="equal",
                      interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("to (s)", fontsize=7)
        ax.set_ylabel("from (s)", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle("transitions: origin (y) and destination (x) of every jump, in source seconds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def model_matrix(bundle, cells: int = 400):
    """The texture walk's transition graph: per-frame cut probabilities from frame to frame (rows to
    columns), block-max pooled to at most ``cells`` x ``cells`` (:func:`livetex.plot.graph_matrix`)."""
    from .graph import Graph
    from .plot import graph_matrix
    from .texture import DEFAULT_TEMPERATURE, fitted_walk, initial_rate
    graph = Graph.from_bundle(bundle)
    fw = fitted_walk(bundle)
    tau = fw.get("temperature", DEFAULT_TEMPERATURE)
    P, _ = graph_matrix(graph, tau, fw.get("rate") or initial_rate(graph, tau), cells)
    return P


def figure_bars(rows, path: str) -> None:
    """One bar chart per metric: mean over seeds, error bar = standard deviation."""
    import numpy as np
    plt = _plt()
    keys = [k for k in BAR_METRICS if any(k in r["mean"] for r in rows)]
    if not keys:
        return
    names = [r["method"] for r in rows if r["mean"]]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.6 * len(keys) + 0.6, 3.4), squeeze=False)
    label = {k: h for k, h, _, _ in COLUMNS}
    better = {k: b for k, _, _, b in COLUMNS}
    for ax, k in zip(axes[0], keys):
        means = [r["mean"].get(k, np.nan) for r in rows if r["mean"]]
        stds = [r["std"].get(k, 0.0) for r in rows if r["mean"]]
        ax.bar(range(len(names)), means, yerr=stds, color="tab:blue", capsize=2)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        arrow = {1: " (higher better)", -1: " (lower better)"}.get(better.get(k, 0), "")
        ax.set_title(label.get(k, k) + arrow, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- tables
def _fmt(v, fmt: str) -> str:
    if v is None:
        return "—"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def table_rows(rows):
    """(header, body): the visible columns and one list of cells per method."""
    cols = [c for c in COLUMNS if any(c[0] in r["mean"] for r in rows)]
    header = ["method"] + [h for _, h, _, _ in cols] + ["notes"]
    body = []
    for r in rows:
        cells = [r["method"]] + [_fmt(r["mean"].get(k), f) if r["mean"] else "—" for k, _, f, _ in cols]
        cells.append(r["note"])
        body.append(cells)
    return header, body


def markdown_table(rows) -> str:
    header, body = table_rows(rows)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in cells) + " |" for cells in body]
    return "\n".join(lines)


def html_table(rows) -> str:
    header, body = table_rows(rows)
    out = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for cells in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------- evaluation
def evaluate(source: str, out_dir: str, audio: str | None = None, seconds: float = DEFAULT_SECONDS,
             seeds: int = DEFAULT_SEEDS, methods: list[str] | None = None, jumps_per_min: float | None = None,
             steps: int | None = None, model: bool = True, refit: bool = False, videos: bool = True,
             video_height: int = VIDEO_HEIGHT, progress: bool = True) -> dict:
    """Run the comparison and write the report into ``out_dir``. Returns paths and the table."""
    import numpy as np
    from .errors import LivetexError
    from .walks import WalkRequest, get, run
    from . import walks

    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    if not os.path.isdir(parent):
        raise LivetexError(f"output directory does not exist: {parent}")
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or not _is_report_dir(out_dir)):
        raise LivetexError(f"{out_dir} exists and is not a livetex report directory; choose another -o")
    if audio:
        from .media.video import check_file
        check_file(audio)
    if seeds < 1 or seconds <= 0:
        raise LivetexError("--seconds and --seeds must be positive")
    names = sorted(walks.methods()) if methods is None else [get(m).name for m in methods]
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    try:
        bundle, how = prepare_bundle(source, out_dir, steps, model, refit, progress)
    except BaseException:
        if created and not os.listdir(out_dir):     # nothing worth keeping: leave no empty report behind
            os.rmdir(out_dir)
        raise

    tmp = os.path.join(out_dir, f".eval-tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "figures"))
    os.makedirs(os.path.join(tmp, "videos"))
    try:
        interp = _default_interpolation(bundle)
        n_frames = max(1, int(round(seconds * bundle.fps)))
        cache: dict = {}
        rows, skipped = [], []
        for name in names:
            m = get(name)
            if m.needs_audio and not audio:
                skipped.append((name, "follows music: needs --audio"))
                continue
            row = {"method": name, "description": m.description, "timelines": [], "per_seed": [], "note": "",
                   "video": None, "sheet": None, "mean": {}, "std": {}}
            for seed in range(seeds):
                req = WalkRequest(bundle=bundle, n_frames=n_frames, seed=seed, jumps_per_min=jumps_per_min, audio=audio)
                t0 = time.perf_counter()
                try:
                    tl = run(name, req)
                except LivetexError as e:
                    row["note"] = f"error: {e}"
                    break
                except Exception as e:  # a bug in one method must not cost the whole report; say so loudly
                    if os.environ.get("LIVETEX_DEBUG"):
                        raise
                    row["note"] = f"internal error: {type(e).__name__}: {e}"
                    print(f"livetex: warning: method {name} failed: {type(e).__name__}: {e} "
                          "(set LIVETEX_DEBUG=1 for the traceback)", file=sys.stderr)
                    break
                walk_s = time.perf_counter() - t0
                tl.audio = {"path": os.path.abspath(audio)} if audio else None
                nums = timeline_numbers(bundle, tl, audio, cache)
                nums["walk_s"] = walk_s
                if seed == 0 and videos:
                    vid = os.path.join("videos", f"{_safe(name)}.mp4")
                    render_small(bundle, tl, os.path.join(tmp, vid), audio, video_height, interp)
                    sheet = os.path.join("figures", f"seams_{_safe(name)}.png")
                    nums.update(seam_numbers(os.path.join(tmp, vid), tl, bundle, cache, os.path.join(tmp, sheet)))
                    row["video"] = vid
                    if os.path.exists(os.path.join(tmp, sheet)):
                        row["sheet"] = sheet
                    tl.save(os.path.join(tmp, "videos", f"{_safe(name)}.json"))
                row["timelines"].append(tl)
                row["per_seed"].append({"seed": seed, **{k: v for k, v in nums.items() if _is_num(v)}})
                if progress:
                    print(f"eval: {name} seed {seed}: {len(tl.jumps)} jumps, {walk_s:.1f} s", file=sys.stderr)
            keys = sorted({k for p in row["per_seed"] for k in p} - {"seed"})
            for k in keys:
                vals = [p[k] for p in row["per_seed"] if p.get(k) is not None]
                if vals:
                    row["mean"][k] = float(np.mean(vals))
                    row["std"][k] = float(np.std(vals))
            if not row["note"]:
                row["note"] = ", ".join(f"{k}={_short(v)}" for k, v in _key_params(row).items())
            rows.append(row)

        figs = {"timelines": "figures/timelines.png", "transitions": "figures/transitions.png",
                "bars": "figures/metrics.png"}
        if any(r["timelines"] for r in rows):
            figure_timelines(rows, bundle, os.path.join(tmp, figs["timelines"]))
            figure_transitions(rows, bundle, os.path.join(tmp, figs["transitions"]))
        figure_bars(rows, os.path.join(tmp, figs["bars"]))
        figs = {k: v for k, v in figs.items() if os.path.exists(os.path.join(tmp, v))}

        info = {"source": bundle.manifest["source"]["name"], "source_sha256": bundle.manifest["source"]["sha256"],
                "bundle": bundle.path, "bundle_from": how, "fps": bundle.fps,
                "source_seconds": bundle.n_frames / bundle.fps, "seconds": seconds, "seeds": seeds,
                "audio": os.path.abspath(audio) if audio else None, "jumps_per_min": jumps_per_min,
                "interpolate": interp, "model": bundle.has("phi")}
        refs = _references(rows)
        results = {"info": info, "skipped": skipped, "references": refs,
                   "methods": [{k: r[k] for k in ("method", "description", "note", "video", "sheet", "mean", "std", "per_seed")}
                               for r in rows]}
        with open(os.path.join(tmp, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=_json_default)
        table = markdown_table(rows)
        with open(os.path.join(tmp, "report.md"), "w") as f:
            f.write(_markdown(info, table, rows, skipped, refs, figs))
        with open(os.path.join(tmp, "report.html"), "w") as f:
            f.write(_html(info, rows, skipped, refs, figs))
        # Everything is ready: move it into place (a failure above leaves the previous report).
        for sub in ("figures", "videos"):
            dst = os.path.join(out_dir, sub)
            if os.path.exists(dst):
                shutil.rmtree(dst)
            os.replace(os.path.join(tmp, sub), dst)
        for name in ("results.json", "report.html", "report.md"):
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"markdown": os.path.join(out_dir, "report.md"), "html": os.path.join(out_dir, "report.html"),
            "results": os.path.join(out_dir, "results.json"), "table": table, "rows": len(rows),
            "skipped": skipped}


# --------------------------------------------------------------------------------------------- helpers
def _default_interpolation(bundle=None) -> str:
    from .cli import default_interpolation
    return default_interpolation(bundle)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else {"+": "p"}.get(c, "_") for c in name)


def _is_num(v) -> bool:
    import numbers
    return v is None or (isinstance(v, numbers.Number) and not isinstance(v, bool))


def _short(v):
    return f"{v:.3g}" if isinstance(v, float) else v


def _key_params(row) -> dict:
    """The settings a method chose for seed 0 that explain its numbers (temperature, sigma, alpha...)."""
    if not row["timelines"]:
        return {}
    p = row["timelines"][0].params
    keys = ("temperature", "alpha", "aligned_fraction", "mean_rate", "fallback")
    return {k: p[k] for k in keys if k in p and p[k] is not None}


def _references(rows) -> dict:
    """Per-video reference values that do not depend on the method (e.g. the source's own audio-motion)."""
    refs = {}
    for r in rows:
        for k in ("audio_motion_source", "audio_motion_shifted", "beat_align_chance", "beat_align_source"):
            if k in r["mean"] and k not in refs:
                refs[k] = r["mean"][k]
    return refs


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _settings_lines(info) -> list[str]:
    return [
        f"- source: `{info['source']}` ({info['source_seconds']:.1f} s at {info['fps']:.3g} fps, "
        f"sha256 {info['source_sha256'][:12]}…), bundle {info['bundle_from']}: `{info['bundle']}`"
        + ("" if info["model"] else " (no learned model)"),
        f"- every method: {info['seconds']:g} s of output, seeds 0..{info['seeds'] - 1}, "
        + (f"{info['jumps_per_min']:g} jumps/min requested" if info["jumps_per_min"] else "each method's default jump rate")
        + (f", music `{os.path.basename(info['audio'])}`" if info["audio"] else ", no music"),
        f"- numbers are means over seeds; the seam column is measured on the rendered seed-0 video "
        f"(seams smoothed with `{info['interpolate']}`), the others on the timelines; walk time includes "
        f"building a method's tables (distance matrices, beat analysis) on its first seed",
    ]


REF_LABELS = {"audio_motion_source": "audio-motion of the source with its own audio (in sync)",
              "audio_motion_shifted": "audio-motion of the source with its audio shifted (no sync)",
              "beat_align_chance": "beat align expected by chance",
              "beat_align_source": "beat align of the source with its own audio"}


def _markdown(info, table, rows, skipped, refs, figs) -> str:
    lines = [f"# livetex eval: {info['source']}", ""] + _settings_lines(info) + ["", table, ""]
    if refs:
        lines += ["References for the audio columns:", ""]
        lines += [f"- {REF_LABELS.get(k, k)}: {v:.2f}" for k, v in refs.items() if v is not None] + [""]
    if skipped:
        lines += ["Skipped: " + "; ".join(f"`{n}` ({why})" for n, why in skipped), ""]
    lines += ["## Methods", ""] + [f"- `{r['method']}`: {r['description']}" for r in rows] + [""]
    for key, title in (("timelines", "Timelines"), ("transitions", "Transition matrices"), ("bars", "Metrics")):
        if key in figs:
            lines += [f"## {title}", "", f"![{title}]({figs[key]})", ""]
    sheets = [r for r in rows if r.get("sheet")]
    if sheets:
        lines += ["## The five worst seams of each method (seed 0, as rendered)", ""]
        for r in sheets:
            lines += [f"### {r['method']}", "", f"![worst seams of {r['method']}]({r['sheet']})", ""]
    vids = [r for r in rows if r["video"]]
    if vids:
        lines += ["## Videos (seed 0)", ""] + [f"- [{r['method']}]({r['video']})" for r in vids] + [""]
    return "\n".join(lines)


def _inline_md(s: str) -> str:
    """Escape text and turn `code` spans into <code>."""
    parts = html.escape(s).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html(info, rows, skipped, refs, figs) -> str:
    h = ["<!doctype html>", "<html><head><meta charset='utf-8'>",
         f"<title>livetex eval: {html.escape(info['source'])}</title>",
         "<style>body{font-family:sans-serif;margin:1.5em;max-width:1400px}"
         "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
         "td:first-child,th:first-child,td:last-child{text-align:left}"
         ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}"
         ".grid figure{margin:0}.grid video{width:100%;background:#000}figcaption{font-size:13px}"
         "img{max-width:100%}</style></head><body>",
         f"<h1>livetex eval: {html.escape(info['source'])}</h1>", "<ul>"]
    h += [f"<li>{_inline_md(line[2:])}</li>" for line in _settings_lines(info)]
    h += ["</ul>", html_table(rows)]
    if refs:
        h += ["<p>References for the audio columns:</p><ul>"]
        h += [f"<li>{html.escape(REF_LABELS.get(k, k))}: {v:.2f}</li>" for k, v in refs.items() if v is not None]
        h += ["</ul>"]
    if skipped:
        h.append("<p>Skipped: " + "; ".join(f"<code>{html.escape(n)}</code> ({html.escape(w)})" for n, w in skipped) + "</p>")
    vids = [r for r in rows if r["video"]]
    if vids:
        h.append("<h2>Videos (seed 0)</h2><div class='grid'>")
        for r in vids:
            h.append(f"<figure><video src='{html.escape(r['video'])}' controls loop muted playsinline preload='metadata'></video>"
                     f"<figcaption><b>{html.escape(r['method'])}</b>: {html.escape(r['description'])}</figcaption></figure>")
        h.append("</div>")
    for key, title in (("timelines", "Timelines"), ("transitions", "Transition matrices"), ("bars", "Metrics")):
        if key in figs:
            h.append(f"<h2>{title}</h2><img src='{html.escape(figs[key])}' alt='{title}'>")
    sheets = [r for r in rows if r.get("sheet")]
    if sheets:
        h.append("<h2>The five worst seams of each method (seed 0, as rendered)</h2>")
        for r in sheets:
            h.append(f"<h3>{html.escape(r['method'])}</h3><img src='{html.escape(r['sheet'])}' "
                     f"alt='worst seams of {html.escape(r['method'])}'>")
    h.append("<h2>Methods</h2><ul>")
    h += [f"<li><code>{html.escape(r['method'])}</code>: {html.escape(r['description'])}</li>" for r in rows]
    h += ["</ul></body></html>", ""]
    return "\n".join(h)
