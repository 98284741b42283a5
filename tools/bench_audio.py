"""Audio conditioning speed (and, with --eval, quality on real clips). Prints numbers; asserts nothing.

    python tools/bench_audio.py [BUNDLE]            # embedding cost per step (offline, live), render speed
    python tools/bench_audio.py --eval B1 B2 ...    # audio-motion / smoothness table on fitted bundles

Speed: without BUNDLE, a 20 s clip of ../shared/media/piano_solo_01.avi is fitted with --no-model into a
temporary directory (the audio step included) and a pixel phi/psi stands in for the contrastive model,
which does not change any audio cost.

Eval: every bundle x every song in ../shared/media x seeds; methods: the unconditional contrastive walk,
the audio-conditioned one (features and av, default alpha), random-clip and audio-nn; the table gives the
audio-motion agreement (mean over songs and seeds) next to the source's own agreement and its shifted
copy, jumps per minute, and the fraction of visible jumps (livetex.metrics).
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


def with_pixel_model(bundle):
    """phi/psi for a --no-model bundle: the pixel baseline's, so the walk has something to follow."""
    if bundle.has("phi"):
        return bundle
    from livetex.sampler import pixel_codes
    codes = pixel_codes(bundle.array("thumbs"), bundle.segments)
    phi, psi = codes[np.minimum(np.arange(len(codes)) + 1, len(codes) - 1)], codes
    orig = bundle.array
    has = bundle.has
    bundle.array = lambda name: phi if name == "phi" else psi if name == "psi" else orig(name)
    bundle.has = lambda name: name in ("phi", "psi") or has(name)
    return bundle


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

    print("\n-- planned walk (backward pass + guided sampler) vs. segments; 3 min of music = 900 steps")
    from livetex.conditioning import plan_walk
    from livetex.sampler import Sampler
    for N in (1000, 5000, 20000):
        emb = rng.standard_normal((N, 64)).astype(np.float32)
        s = Sampler(emb, np.roll(emb, -1, axis=0) + 0.3 * rng.standard_normal((N, 64)).astype(np.float32),
                    0.2, temperature=0.1)
        T = rng.dirichlet(np.full(N, 0.05), size=900).astype(np.float32)
        t, _ = timed(lambda: plan_walk(s, T, 0.5, np.random.default_rng(0)))
        print(f"N={N:6d}: {t:6.2f} s per 3 min of music = {180 / t:7.1f}x real time")

    print("\n-- follow=auto (render's and the player's default): seam costs, the texture's smoothness target and "
          "2-3 trial plans, 3 min of music")
    from livetex.conditioning import follow_plan
    for N in (1000, 5000, 20000):
        emb = rng.standard_normal((N, 64)).astype(np.float32)
        s = Sampler(emb, np.roll(emb, -1, axis=0) + 0.3 * rng.standard_normal((N, 64)).astype(np.float32),
                    0.2, temperature=0.1)
        T = rng.dirichlet(np.full(N, 0.05), size=900).astype(np.float32)
        energy = (rng.standard_normal(900).astype(np.float32), rng.standard_normal(N).astype(np.float32))
        t, (_, _, info) = timed(lambda: follow_plan(s, T, 0.5, 0, _FakeBundle(N), energy))
        print(f"N={N:6d}: {t:6.2f} s ({len(info['follow_tried'])} trials)")

    print("\n-- seam costs the planned walk measures once per bundle (SeamCost + least visible cuts), 64 px thumbnails")
    from livetex.conditioning import SEAM_CANDIDATES, CANDIDATES, SeamCost, transition_table
    for N in (1000, 5000, 20000):
        emb = rng.standard_normal((N, 64)).astype(np.float32)
        s = Sampler(emb, np.roll(emb, -1, axis=0), 0.2, temperature=0.1)
        fake = _FakeBundle(N)
        t0 = time.perf_counter()
        sc = SeamCost(fake)
        t1 = time.perf_counter()
        targets, _ = transition_table(s, CANDIDATES)
        sc.pairs(targets)
        t2 = time.perf_counter()
        sc.least_visible(s, SEAM_CANDIDATES, targets)
        t3 = time.perf_counter()
        mb = (sc.last.nbytes + sc.first.nbytes + sc.last_small.nbytes + sc.first_small.nbytes) / 2 ** 20
        print(f"N={N:6d}: read {t1 - t0:5.2f} s, model's cuts {t2 - t1:5.2f} s, least visible cuts {t3 - t2:6.2f} s "
              f"({mb:.0f} MB held)")

    print("\n-- conditioned render speed (30 s of output, --interpolate none)")
    from livetex.render import render
    from livetex.walks import WalkRequest, run
    with_pixel_model(b)
    if os.path.isfile(song):
        from livetex.sampler import sampler_for
        n = int(30 * b.fps)
        # the temperature calibration is the sampler's (a fitted bundle stores it): not timed here
        tau = sampler_for(WalkRequest(bundle=b, n_frames=n))[1]["temperature"]
        for name in names:
            req = WalkRequest(bundle=b, n_frames=n, seed=0, audio=song, audio_model=name, temperature=tau)
            t_walk, tl = timed(lambda: run("contrastive", req))
            with tempfile.TemporaryDirectory() as d:
                t_render, _ = timed(lambda: render(b, tl, os.path.join(d, "o.mp4"), audio=song, progress=False))
            print(f"{name:8s} walk {t_walk:6.2f} s = {30 / t_walk:6.1f}x real time;  walk + mp4 "
                  f"({b.store.size[0]}x{b.store.size[1]}) {t_walk + t_render:6.2f} s = "
                  f"{30 / (t_walk + t_render):5.1f}x real time")


def bench_eval(paths: list[str], seeds: int, seconds: float, alpha: float) -> None:
    from livetex.audio.metrics import audio_metrics
    from livetex.audio import features as F
    from livetex.bundle import load_bundle
    from livetex.media.audio import load_audio
    from livetex.metrics import grey_thumbs, timeline_metrics
    from livetex.walks import WalkRequest, run

    songs = [os.path.join(MEDIA, s) for s in SONGS if os.path.isfile(os.path.join(MEDIA, s))]
    audio = {s: load_audio(s, F.SR) for s in songs}
    configs = [("contrastive (no audio)", "contrastive", None, None, None),
               (f"contrastive+audio a={alpha} features", "contrastive", alpha, "features", "plan"),
               (f"contrastive+audio a={alpha} av", "contrastive", alpha, "av", "plan"),
               ("  same, default model, follow fixed at 5", "contrastive", alpha, None, "plan", 5.0),
               ("  same, greedy (live) features", "contrastive", alpha, "features", "greedy"),
               ("  same, greedy (live) av", "contrastive", alpha, "av", "greedy"),
               ("random-clip", "random-clip", None, None, None),
               ("audio-nn (features)", "audio-nn", None, "features", None)]
    print(f"{len(songs)} songs x {seeds} seeds, {seconds:g} s outputs; agreement = mean +- standard error")
    for path in paths:
        b = load_bundle(path)
        if not b.has("phi"):
            print(f"\n{path}: no contrastive model (fitted with --no-model?), skipped")
            continue
        grey = grey_thumbs(b)
        ref = None
        print(f"\n{os.path.basename(path.rstrip('/'))}  ({b.n_frames / b.fps:.0f} s, {b.segments.count} segments)")
        from livetex.audio.models import picture_scores, resolve_name
        ps = picture_scores(b)
        print(f"  default audio model: {resolve_name(b, None)}  (picture scores: "
              + ", ".join(f"{k} {v:+.2f}" for k, v in ps.items()) + ")")
        for label, method, a, model, walk, *follow in configs:
            if model == "av" and not b.has("audio_av"):
                continue
            rows, picks = [], []
            for song in songs:
                for seed in range(seeds):
                    req = WalkRequest(bundle=b, n_frames=int(seconds * b.fps), seed=seed, alpha=a,
                                      audio=song if method != "contrastive" or a is not None else None,
                                      audio_model=model,
                                      extra={"audio_walk": walk, "follow": (follow or ["auto"])[0]} if walk else {})
                    tl = run(method, req)
                    if "follow_target" in tl.params:
                        picks.append((tl.params["follow"], tl.params["follow_target"]))
                    am = audio_metrics(b, tl, audio=audio[song])
                    tm = timeline_metrics(b, tl, grey)
                    ref = ref or am
                    rows.append((am["audio_motion"], am["beat_align"] - am["beat_align_chance"],
                                 tm["jumps_per_min"], tm["visible_jumps"], tm["reshown"]))
            r = np.asarray(rows)
            se = r[:, 0].std() / np.sqrt(len(r))
            print(f"  {label:38s} audio-motion {r[:, 0].mean():+.3f} +- {se:.3f}   beat-align above chance "
                  f"{r[:, 1].mean():+.2f}   jumps/min {r[:, 2].mean():6.1f}   visible jumps {r[:, 3].mean():5.1%}   shown again within 20 s {r[:, 4].mean():5.1%}"
                  + (f"   follow (auto) median {np.median([w for w, _ in picks]):g}, texture's visible "
                     f"{picks[0][1]:.1%}" if picks else ""))
        print(f"  {'source with its own audio':38s} audio-motion {ref['audio_motion_source']:+.3f}   "
              f"shifted audio {ref['audio_motion_shifted']:+.3f}")



class _FakeThumbs:
    """Random 64 x 85 thumbnails made on demand: a bundle-sized stand-in without GBs of frames."""

    def __init__(self, n: int):
        self.shape = (n, 64, 85, 3)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        index = np.atleast_1d(np.asarray(index))
        rng = np.random.default_rng(int(index[0]) if len(index) else 0)
        return rng.integers(0, 256, (len(index),) + self.shape[1:], dtype=np.uint8)


class _FakeBundle:
    """N segments of a 30 fps source (window 15 frames, stride 6), random thumbnails."""

    def __init__(self, N: int):
        from livetex.segments import Segments
        n_frames = 15 + 6 * (N - 1)
        self.segments = Segments(30.0, n_frames, 15, 6, 0.5, 0.2)
        self._thumbs = _FakeThumbs(n_frames)

    def array(self, name: str):
        return self._thumbs

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="*")
    ap.add_argument("--eval", action="store_true", help="quality table on the given (fully fitted) bundles")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--alpha", type=float, default=None, help="default: livetex.conditioning.DEFAULT_ALPHA")
    a = ap.parse_args()
    if a.alpha is None:
        from livetex.conditioning import DEFAULT_ALPHA
        a.alpha = DEFAULT_ALPHA
    if a.eval:
        paths = [p for g in a.bundles for p in sorted(glob.glob(g)) if os.path.isdir(p)]
        bench_eval(paths, a.seeds, a.seconds, a.alpha)
        return
    with tempfile.TemporaryDirectory() as tmp:
        bench_speed(a.bundles[0] if a.bundles else prepare_bundle(tmp))


if __name__ == "__main__":
    main()
