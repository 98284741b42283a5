"""Audio conditioning speed (and, with --eval, quality on real clips). Prints numbers; asserts nothing.

    python tools/bench_audio.py [BUNDLE]            # embedding cost per step (offline, live), render speed
    python tools/bench_audio.py --eval B1 B2 ...    # audio-motion / smoothness table on fitted bundles

Speed: without BUNDLE, a 20 s clip of ../shared/media/piano_solo_01.avi is fitted into a temporary
directory (the audio step included, then the audio-visual model).

Eval: every bundle x every song in ../shared/media x seeds: the planned walk (default), the live greedy
walk, random clips and the unconditional texture; audio-motion agreement (per song too) next to the
source's own, beat hits against a half-beat-shifted control, jumps per minute, visible raw cuts and
frames re-shown (livetex.metrics).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MEDIA = os.environ.get("LIVETEX_MEDIA", os.path.join(os.path.dirname(REPO), "shared", "media"))
SONGS = ["drum_bass_01.ogg", "jazz_vibes_01.ogg", "rock_backing_01.ogg", "strings_orchestra_01.ogg"]


def timed(fn, repeat: int = 1):
    t = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - t) / repeat, out


def prepare_bundle(tmp: str) -> str:
    from livetex.audio.fit import refit_audio
    from livetex.fit import FitConfig, fit
    src = os.path.join(MEDIA, "piano_solo_01.avi")
    if not os.path.isfile(src):
        sys.exit(f"no bundle given and {src} is missing")
    out = os.path.join(tmp, "piano20")
    print(f"fitting {src} (0-20 s, --no-model, then the audio-visual model) ...", flush=True)
    fit(src, out, FitConfig(end=20.0, model=False, store_height=240), progress=False)
    refit_audio(out, progress=False)
    return out


def bench_speed(path: str) -> None:
    from livetex.audio import audio_probs, run_ahead, scores
    from livetex.audio import features as F
    from livetex.audio.live import LiveEmbedder
    from livetex.audio.models import load_audio_model
    from livetex.bundle import load_bundle
    from livetex.media.audio import load_audio

    b = load_bundle(path)
    song = os.path.join(MEDIA, SONGS[0])
    y16 = load_audio(song, F.SR) if os.path.isfile(song) else \
        (0.1 * np.random.default_rng(0).standard_normal(25 * F.SR)).astype(np.float32)
    W = b.segments.window_samples(F.SR)
    starts = np.arange(0, len(y16) - W, int(round(b.segments.stride_frames * F.SR / b.fps)))
    print(f"\nbundle {b.path}: {b.segments.count} segments, window {W} samples, song {len(y16) / F.SR:.1f} s "
          f"= {len(starts)} steps")

    print("\n-- offline embedding, per step (batched over the whole song)")
    F.features_at(y16, starts[:32], W)   # warm-up
    t, _ = timed(lambda: F.features_at(y16, starts, W))
    print(f"features (numpy log-mel + cues)     {t / len(starts) * 1e3:7.3f} ms/step")
    names = ["features"] + (["av"] if b.has("audio_av") else [])
    for name in names:
        m = load_audio_model(b, name)
        ends = starts + W
        t, q = timed(lambda: m.embed_at(y16, ends))
        t2, _ = timed(lambda: m.probs(q))
        print(f"{name:8s} query embedding            {t / len(starts) * 1e3:7.3f} ms/step   "
              f"T_a rows {t2 / len(starts) * 1e3:.3f} ms/step")

    print("\n-- live embedder: 48 kHz stereo device blocks of 1024 samples (resample + window + embed + T_a row)")
    y48 = load_audio(song, 48000, channels=2) if os.path.isfile(song) else np.stack([np.repeat(y16, 3)] * 2, 1)
    for name in names:
        live = LiveEmbedder(b, name, rate=48000, channels=2)
        blocks = [y48[i:i + 1024] for i in range(0, min(len(y48), 20 * 48000), 1024)]
        per_block, per_step, n_steps = [], [], 0
        for blk in blocks:
            t0 = time.perf_counter()
            steps = live.push(blk)
            dt = time.perf_counter() - t0
            (per_step if steps else per_block).append(dt)
            n_steps += len(steps)
        ps = np.asarray(per_step) * 1e3
        print(f"{name:8s} block without a step: median {np.median(per_block) * 1e3:6.3f} ms | block that completes "
              f"a step: median {np.median(ps):6.3f} ms, p99 {np.percentile(ps, 99):6.3f} ms ({n_steps} steps)")

    print("\n-- T_a row cost vs. number of segments (d = 32 av / 113 features; run-ahead + perplexity bounds)")
    rng = np.random.default_rng(0)
    for d in (32, F.FEATURE_DIM):
        for N in (1000, 10000, 20000):
            keys = rng.standard_normal((N, d)).astype(np.float32)
            q = keys[:1] + 0.1 * rng.standard_normal((1, d)).astype(np.float32)
            ksq = np.einsum("nd,nd->n", keys, keys)     # kept by the model between steps
            ts = [timed(lambda: audio_probs(run_ahead(scores(q, keys, ksq)), 0.05))[0] for _ in range(30)]
            print(f"d={d:3d} N={N:6d}: median {np.median(ts) * 1e3:7.3f} ms per row "
                  f"(p90 {np.percentile(ts, 90) * 1e3:.3f})")

    print("\n-- planned walk (backward pass over the frame graph + the walk forward) vs. source frames; "
          "3 min of music at 30 fps")
    from livetex.conditioning import Planner
    from livetex.graph import Graph
    from livetex.segments import make_segments
    from livetex.texture import Walk
    for n in (3000, 20000):
        k = 12
        g = Graph(rng.integers(0, n, (n, k)), np.sort(rng.uniform(1, 10, (n, k)), axis=1).astype(np.float32),
                  np.ones(n, bool), np.ones(n, np.float32), 30.0, {}, {})
        seg = make_segments(n, 30.0)
        T = rng.dirichlet(np.full(seg.count, 0.05), size=900).astype(np.float32)
        n_out = seg.window_frames + 899 * seg.stride_frames
        w = Walk(g, rate=0.01)
        t_plan, p = timed(lambda: Planner(w, T, 0.5, np.random.default_rng(0), seg, n_out))
        t_walk, _ = timed(lambda: p.run())
        print(f"n={n:6d}: backward pass {t_plan:6.2f} s, walk {t_walk:6.2f} s = {180 / (t_plan + t_walk):6.1f}x real time "
              f"({p.check.nbytes / 2 ** 20:.0f} MB of checkpoints)")

    print("\n-- live following (a microphone): one step's choice, a horizon along the source")
    from livetex.conditioning import LiveFollower
    for n in (3000, 20000):
        g = Graph(rng.integers(0, n, (n, 12)), np.sort(rng.uniform(1, 10, (n, 12)), axis=1).astype(np.float32),
                  np.ones(n, bool), np.ones(n, np.float32), 30.0, {}, {})
        seg = make_segments(n, 30.0)
        lf = LiveFollower(Walk(g, rate=0.01), seg, 0.5)
        row = rng.dirichlet(np.full(seg.count, 0.05)).astype(np.float32)
        ts = [timed(lambda: lf.advance(row, seg.stride_frames))[0] for _ in range(30)]
        print(f"n={n:6d}: median {np.median(ts) * 1e3:6.2f} ms per step (p90 {np.percentile(ts, 90) * 1e3:.2f})")

    print("\n-- conditioned render speed (30 s of output, --interpolate none)")
    from livetex.render import render
    from livetex.walks import WalkRequest, run
    if os.path.isfile(song):
        n = int(30 * b.fps)
        for name in names:
            req = WalkRequest(bundle=b, n_frames=n, seed=0, audio=song, audio_model=name)
            t_walk, tl = timed(lambda: run("contrastive", req))
            with tempfile.TemporaryDirectory() as d:
                t_render, _ = timed(lambda: render(b, tl, os.path.join(d, "o.mp4"), audio=song, progress=False))
            print(f"{name:8s} walk {t_walk:6.2f} s = {30 / t_walk:6.1f}x real time;  walk + mp4 "
                  f"({b.store.size[0]}x{b.store.size[1]}) {t_walk + t_render:6.2f} s = "
                  f"{30 / (t_walk + t_render):5.1f}x real time")


def bench_eval(paths: list[str], seeds: int, seconds: float, alpha: float, walks: str | None = None) -> None:
    """Per clip and song (issue 15's table): how the picture follows the music, planned (render's and a
    song file's default) and live (the microphone's greedy walk), against random clips of the same
    video and the source with its own audio."""
    from livetex.audio.metrics import audio_metrics
    from livetex.audio import features as F
    from livetex.bundle import load_bundle
    from livetex.media.audio import load_audio
    from livetex.metrics import grey_thumbs, timeline_metrics
    from livetex.walks import WalkRequest, run

    songs = [os.path.join(MEDIA, s) for s in SONGS if os.path.isfile(os.path.join(MEDIA, s))]
    audio = {s: load_audio(s, F.SR) for s in songs}
    configs = [("planned (default)", "contrastive", alpha, "plan"),
               ("live (greedy, as a microphone)", "contrastive", alpha, "greedy"),
               ("random clip", "random-clip", None, None),
               ("unconditional texture", "contrastive", None, None)]
    if walks:
        configs = [c for c in configs if c[0].split()[0] in walks.split(",")]
    print(f"{len(songs)} songs x {seeds} seeds, {seconds:g} s outputs, alpha {alpha}; mean +- standard error over "
          "seeds and songs.\nagree: correlation of the song's loudness with the picture's motion; beats: the "
          "picture's impacts within 0.1 s of the song's beats, and of the beats shifted half a beat (control); "
          "visible: raw cuts above the source's own change (before smoothing); again: frames re-shown within 20 s "
          "(half the clip if shorter)")
    for path in paths:
        b = load_bundle(path)
        grey = grey_thumbs(b)
        name = os.path.basename(path.rstrip("/"))
        print(f"\n{name}  ({b.n_frames / b.fps:.0f} s)")
        ref = None
        for label, method, a, walk in configs:
            per_song = []
            for song in songs:
                rows = []
                for seed in range(seeds):
                    n = int(min(seconds, len(audio[song]) / F.SR) * b.fps)
                    req = WalkRequest(bundle=b, n_frames=n, seed=seed, alpha=a,
                                      audio=song if (method != "contrastive" or a is not None) else None,
                                      extra={"audio_walk": walk} if walk else {})
                    tl = run(method, req)
                    am = audio_metrics(b, tl, audio=audio[song])
                    tm = timeline_metrics(b, tl, grey)
                    ref = ref or am
                    rows.append((am["audio_motion"], am["beat_hits"] if am["beat_hits"] is not None else np.nan,
                                 am["beat_hits_shifted"] if am["beat_hits_shifted"] is not None else np.nan,
                                 tm["jumps_per_min"], tm["visible_jumps"], tm["reshown"]))
                per_song.append(np.asarray(rows, np.float64))
            r = np.concatenate(per_song)
            se = lambda x: np.nanstd(x) / np.sqrt(max(1, np.isfinite(x).sum()))  # noqa: E731
            songs_txt = " ".join(f"{x[:, 0].mean():+.2f}" for x in per_song)
            print(f"  {label:32s} agree {r[:, 0].mean():+.3f} +- {se(r[:, 0]):.3f} (songs {songs_txt})  "
                  f"beats {np.nanmean(r[:, 1]):.2f} vs shifted {np.nanmean(r[:, 2]):.2f} "
                  f"(diff {np.nanmean(r[:, 1] - r[:, 2]):+.2f} +- {se(r[:, 1] - r[:, 2]):.2f})  "
                  f"jumps/min {r[:, 3].mean():5.1f}  visible {np.nanmean(r[:, 4]):5.1%}  again {r[:, 5].mean():5.1%}")
        if ref and ref.get("audio_motion_source") is not None:
            print(f"  {'source with its own audio':32s} agree {ref['audio_motion_source']:+.3f}   "
                  f"shifted audio {ref['audio_motion_shifted']:+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="*")
    ap.add_argument("--eval", action="store_true", help="quality table on the given (fully fitted) bundles")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--alpha", type=float, default=None, help="default: livetex.conditioning.DEFAULT_ALPHA")
    ap.add_argument("--walks", default=None, help="with --eval: some of planned,live,random,unconditional")
    a = ap.parse_args()
    if a.alpha is None:
        from livetex.conditioning import DEFAULT_ALPHA
        a.alpha = DEFAULT_ALPHA
    if a.eval:
        paths = [p for g in a.bundles for p in sorted(glob.glob(g)) if os.path.isdir(p)]
        bench_eval(paths, a.seeds, a.seconds, a.alpha, a.walks)
        return
    with tempfile.TemporaryDirectory() as tmp:
        bench_speed(a.bundles[0] if a.bundles else prepare_bundle(tmp))


if __name__ == "__main__":
    main()
