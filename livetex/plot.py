"""Pictures: the transition probability matrix P(j | t) (as the paper's Fig. 5) and a walk's timeline.

``livetex plot BUNDLE -o matrix.png [--timeline T.json]`` draws the matrix the sampler uses (static
guards, no visit history) with log-scaled colour; the natural successors form the bright line just above
the diagonal, good loop points show up as off-diagonal streaks parallel to it. With a timeline, the walk's
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
    ext = len(P) * stride_s

    song = _song(bundle, timeline)
    ncols = 2 if timeline is not None else 1
    fig = plt.figure(figsize=(7.5 * ncols, 7))
    grid = fig.add_gridspec(2 if song is not None else 1, ncols)
    ax = fig.add_subplot(grid[:, 0])
    with np.errstate(divide="ignore"):
        img = np.log10(np.maximum(Pp, 1e-6))
    im = ax.imshow(img, cmap="magma", vmin=-6, vmax=0, extent=(0, ext, ext, 0), interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label="log10 P(j | t)")
    ax.set_xlabel("to segment j (source time, s)")
    ax.set_ylabel("from segment t (source time, s)")
    ax.set_title(f"{method} transitions  τ={tau:.3g}, threshold={thr:g}\n"
                 f"{bundle.manifest['source']['name']}, {len(P)} segments")
    if timeline is not None and timeline.steps:
        st = np.asarray(timeline.steps)
        jump = st[1:] != st[:-1] + 1
        ax.scatter((st[1:][jump] + 0.5) * stride_s, (st[:-1][jump] + 0.5) * stride_s, s=14,
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
