"""Audio-conditioned walks on a video whose picture is tied to its sound.

The source (20 s, 25 fps) is a sequence of 2-4 s states: silence (a dark, still frame), tone A (440 Hz:
a bright disc, and a dot circling) and tone B (1568 Hz: a yellow square, and the dot circling). A
conditioning file is a *new* sequence of such states. The output is right at step k when the state
of the source frames step k appends is the state the conditioning plays under them.

The bundle is fitted for real (decode, frame store, source-audio features; then the audio-visual model
trained and exported to ONNX by ``refit_audio``); its visual transition model is a pixel bi-gram (phi = the last frames of a segment,
psi = the frames just before a segment's tail), added as the bundle's phi/psi, so that these tests
check conditioning without paying for (or depending on) the contrastive training.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

from livetex.bundle import load_bundle, sha256_file
from livetex.errors import LivetexError

FPS, SR, SIZE = 25, 16000, (64, 64)
FREQS = {1: 440.0, 2: 1568.0}
SRC_SECONDS, COND_SECONDS = 24, 20


# ------------------------------------------------------------------------------------ synthetic media
def states(seconds: float, seed: int, lo: float = 2.0, hi: float = 3.5, order=None) -> np.ndarray:
    """State per frame (0 silent, 1 tone A, 2 tone B) in blocks of lo..hi seconds, in ``order`` (cycled)
    or in a random order that never repeats a state."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    st = np.zeros(n, np.int64)
    i, prev, b = 0, -1, 0
    while i < n:
        s = order[b % len(order)] if order else int(rng.choice([x for x in (0, 1, 2) if x != prev]))
        L = int(rng.uniform(lo, hi) * FPS)
        st[i:i + L] = s
        i, prev, b = i + L, s, b + 1
    return st


# every state several times in the source, so a walk can stay in one for long without repeating itself
SOURCE_ORDER = (0, 1, 0, 2, 1, 0, 2, 0, 1, 2)


def sound(st: np.ndarray, seed: int, sr: int = SR, noise_db: float = -60.0) -> np.ndarray:
    """Tones while the state says so, over a faint noise floor (a real room is never digitally silent)."""
    rng = np.random.default_rng(seed)
    n = len(st) * sr // FPS
    t = np.arange(n) / sr
    s = st[np.minimum((np.arange(n) * FPS) // sr, len(st) - 1)]
    y = sum((s == k) * 0.3 * np.sin(2 * np.pi * f * t) for k, f in FREQS.items())
    return (y + 10 ** (noise_db / 20) * rng.standard_normal(n)).astype(np.float32)


def pictures(st: np.ndarray):
    """The picture of every frame: still and dark in silence; a shape per tone, with a dot that moves."""
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    phase = 0
    for s in st:
        img = np.full((SIZE[1], SIZE[0], 3), 30, np.uint8)
        if s == 1:
            img[(yy - 32) ** 2 + (xx - 32) ** 2 < 18 ** 2] = 230
        elif s == 2:
            img[14:50, 14:50] = (230, 230, 60)
        if s:
            phase += 2  # the dot only moves while a tone sounds: motion follows loudness
        a = 2 * np.pi * phase / 40
        cx, cy = int(32 + 24 * np.cos(a)), int(32 + 24 * np.sin(a))
        img[max(0, cy - 6):cy + 6, max(0, cx - 6):cx + 6] = 120
        yield img


def write_wav(path: str, y: np.ndarray, sr: int, codec: str = "pcm_s16le") -> str:
    """y (n,) or (n, channels) float32 -> a WAV file (16-bit, or 32-bit float with codec pcm_f32le)."""
    y = y[:, None] if y.ndim == 1 else y
    layout = {1: "mono", 2: "stereo"}[y.shape[1]]
    fmt, dt = ("flt", np.float32) if codec == "pcm_f32le" else ("s16", np.int16)
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=sr)
        s.layout = layout
        data = y if dt == np.float32 else np.clip(y * 32767, -32768, 32767)
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.astype(dt)).reshape(1, -1), format=fmt, layout=layout)
        f.sample_rate = sr
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def pixel_bigram(b, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """phi_i = the last k frames of segment i; psi_j = the k frames just before segment j's tail."""
    th = b.array("thumbs")
    g = np.stack([cv2.resize(t.mean(-1).astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA).ravel() for t in th])
    g = (g - g.mean(0)) / (g.std(0) + 1e-3)
    seg = b.segments
    W, S = seg.window_frames, seg.stride_frames
    phi = np.stack([g[max(0, i * S + W - k):i * S + W].mean(0) for i in range(seg.count)])
    psi = np.stack([g[max(0, j * S + W - S - k):j * S + W - S].mean(0) for j in range(seg.count)])
    return phi.astype(np.float32), psi.astype(np.float32)


def add_arrays(bdir: str, **arrays) -> None:
    """Add arrays to a committed bundle, keeping its manifest's file list and checksums right."""
    mp = os.path.join(bdir, "manifest.json")
    m = json.load(open(mp))
    for name, a in arrays.items():
        p = os.path.join(bdir, name + ".npy")
        np.save(p, a)
        m["arrays"][name] = {"file": name + ".npy", "shape": list(a.shape), "dtype": str(a.dtype)}
        m["files"][name + ".npy"] = {"bytes": os.path.getsize(p), "sha256": sha256_file(p)}
    json.dump(m, open(mp, "w"), indent=1)


class Tone:
    """The synthetic world: source video, its bundle, and conditioning files."""

    def __init__(self, root):
        from livetex.fit import FitConfig, fit
        from livetex.media.writer import VideoWriter
        self.root = str(root)
        self.src = states(SRC_SECONDS, seed=0, order=SOURCE_ORDER)
        video = os.path.join(self.root, "tones.mp4")
        with VideoWriter(video, FPS, SIZE, audio=sound(self.src, 0), sr=SR) as w:
            for img in pictures(self.src):
                w.write(img)
        self.bundle_dir = os.path.join(self.root, "B")
        fit(video, self.bundle_dir, FitConfig(model=False, store_height=64), progress=False)
        b = load_bundle(self.bundle_dir)
        phi, psi = pixel_bigram(b)
        add_arrays(self.bundle_dir, phi=phi, psi=psi)
        # --no-model fits skip the audio-visual model: add it the way users upgrade such a bundle
        from livetex.audio.fit import refit_audio
        refit_audio(self.bundle_dir, progress=False)
        self.cond = states(COND_SECONDS, seed=1)
        self.cond_wav = write_wav(os.path.join(self.root, "cond.wav"), sound(self.cond, 2), SR)
        self.silent_wav = write_wav(os.path.join(self.root, "silent.wav"), np.zeros(10 * SR, np.float32), SR)

    def bundle(self):
        return load_bundle(self.bundle_dir)

    def seg_states(self, b) -> np.ndarray:
        """State of the frames each segment contributes (its tail)."""
        seg = b.segments
        return np.array([np.bincount(self.src[slice(*seg.tail_range(j))], minlength=3).argmax()
                         for j in range(seg.count)])


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Tone:
    return Tone(tmp_path_factory.mktemp("tone"))


def walk(tone, audio, alpha=0.5, seed=0, model=None, method="contrastive", seconds=COND_SECONDS):
    from livetex.walks import WalkRequest, run
    b = tone.bundle()
    return run(method, WalkRequest(bundle=b, n_frames=int(seconds * FPS), seed=seed, alpha=alpha, audio=audio,
                                   audio_model=model))


def match_rate(tone, tl, cond: np.ndarray) -> float:
    """Fraction of steps whose appended frames show the state the conditioning plays under them.

    Steps whose conditioning window (or the stride before it) straddles a change of state are left
    out: there the audio is a mix of two states and a one-stride reaction is the best possible.
    """
    seg = tone.bundle().segments
    W, S = seg.window_frames, seg.stride_frames
    ok = []
    for k in range(1, (len(tl.frames) - W) // S + 1):
        a, e = W + (k - 1) * S, W + k * S
        if e > len(cond) or len(set(cond[max(0, k * S - S):e])) > 1:
            continue
        shown = np.bincount(tone.src[tl.frames[a:e]], minlength=3).argmax()
        ok.append(shown == cond[a])
    assert len(ok) > 30
    return float(np.mean(ok))


# ------------------------------------------------------------------------------------------- the proof
def test_fit_stores_source_audio_embeddings(tone):
    b = tone.bundle()
    N = b.segments.count
    from livetex.audio.features import FEATURE_DIM
    assert b.array("audio_emb").shape == (N, FEATURE_DIM) and b.array("audio_feat").shape == (N, FEATURE_DIM)
    assert b.array("av_keys").shape == (N, 32) and os.path.isfile(b.model_path("audio_av"))
    fitm = b.manifest["audio_fit"]
    assert fitm["status"] == "ok" and fitm["av"]["loss_final"] < 0.5 * fitm["av"]["chance_loss"]


@pytest.mark.parametrize("model", ["features", "av"])
def test_picture_follows_the_tone_pattern(tone, model):
    rates = [match_rate(tone, walk(tone, tone.cond_wav, alpha=0.5, seed=s, model=model), tone.cond) for s in range(3)]
    assert np.mean(rates) >= 0.9, rates
    # Without the audio the same walk shows the pattern only by chance.
    free = [match_rate(tone, walk(tone, None, alpha=1.0, seed=s), tone.cond) for s in range(3)]
    assert np.mean(free) < 0.6, free


def test_silent_conditioning_shows_the_silent_picture(tone):
    b = tone.bundle()
    st = tone.seg_states(b)
    for seed in range(2):
        tl = walk(tone, tone.silent_wav, alpha=0.5, seed=seed, seconds=10)
        assert np.mean(tone.src[tl.frames] == 0) >= 0.9


def test_audio_motion_agreement_beats_random_clip(tone):
    from livetex.audio.metrics import audio_metrics
    b = tone.bundle()
    cond = [audio_metrics(b, walk(tone, tone.cond_wav, alpha=0.5, seed=s), tone.cond_wav) for s in range(3)]
    rand = [audio_metrics(b, walk(tone, tone.cond_wav, seed=s, method="random-clip"), tone.cond_wav) for s in range(3)]
    m = cond[0]
    assert m["audio_motion_source"] > 0.8 and abs(m["audio_motion_shifted"]) < 0.4
    c, r = np.mean([x["audio_motion"] for x in cond]), np.mean([x["audio_motion"] for x in rand])
    assert c > 0.6 and c > r + 0.3, (c, r)


def test_alpha_one_ignores_audio_and_zero_follows_it_only(tone):
    a1 = walk(tone, tone.cond_wav, alpha=1.0, seed=3)
    free = walk(tone, None, alpha=None, seed=3)
    assert np.array_equal(a1.frames[1:], free.frames[1:]) or match_rate(tone, a1, tone.cond) < 0.7
    a0 = walk(tone, tone.cond_wav, alpha=0.0, seed=3)
    assert match_rate(tone, a0, tone.cond) >= 0.9
    assert a0.params["alpha"] == 0.0 and a0.params["audio_model"] in ("features", "av")


def test_window_convention_covers_the_appended_frames(tone):
    """Window k ends where step k's frames end and contains them (stated in livetex.conditioning)."""
    from livetex.conditioning import output_windows
    from livetex.timeline import frames_from_steps
    seg = tone.bundle().segments
    W, S = seg.window_frames, seg.stride_frames
    K = 40
    starts, ends = output_windows(seg, K)
    assert np.all(ends - starts == seg.window_samples(SR))
    for k in range(1, K):
        a, e = W + (k - 1) * S, W + k * S                 # output frames appended at step k
        assert starts[k] <= round(a * SR / FPS) and round(e * SR / FPS) == ends[k]
    # the same arithmetic as the walk's frame layout: step k's frames are the tail of its segment
    steps = list(range(K))
    frames, _ = frames_from_steps(seg, steps, W + (K - 1) * S)
    assert frames[W + (K - 2) * S:W + (K - 1) * S].tolist() == list(range(*seg.tail_range(K - 1)))


def test_a_delayed_tone_moves_the_picture_by_the_same_delay(tone):
    """Shift the conditioning by 1 s: the shown states shift by 1 s too (audio and picture stay in sync)."""
    shift = FPS
    cond2 = np.concatenate([np.zeros(shift, np.int64), tone.cond])[:len(tone.cond)]
    wav = write_wav(os.path.join(tone.root, "delayed.wav"),
                    np.concatenate([np.zeros(SR, np.float32), sound(tone.cond, 2)])[:len(tone.cond) * SR // FPS], SR)
    rates = [match_rate(tone, walk(tone, wav, alpha=0.5, seed=s, model="features"), cond2) for s in range(2)]
    assert np.mean(rates) >= 0.9


# ------------------------------------------------------------------------------------------- baselines
def test_random_clip_is_a_contiguous_stretch(tone):
    b = tone.bundle()
    tl = walk(tone, tone.cond_wav, seconds=10, method="random-clip", seed=5)
    assert len(tl.jumps) == 0 and tl.method == "random-clip"
    tl2 = walk(tone, tone.cond_wav, seconds=10, method="random-clip", seed=6)
    assert tl.steps[0] != tl2.steps[0]
    long = walk(tone, tone.cond_wav, seconds=45, method="random-clip", seed=5)   # longer than the source
    assert len(long.frames) == 45 * FPS and 1 <= len(long.jumps) <= 3
    assert long.frames.max() < b.n_frames


def test_audio_nn_picks_the_best_matching_source_audio(tone):
    b = tone.bundle()
    st = tone.seg_states(b)
    tl = walk(tone, tone.cond_wav, method="audio-nn", model="features")
    assert tl.method == "audio-nn" and match_rate(tone, tl, tone.cond) >= 0.9
    # deterministic: no visual term, no sampling
    assert walk(tone, tone.cond_wav, method="audio-nn", model="features", seed=9).steps == tl.steps
    assert len(set(st[tl.steps])) == 3


# ------------------------------------------------------------------------------------------- bad input
def test_conditioning_at_other_rates_and_channels_gives_the_same_rows(tone):
    from livetex.conditioning import audio_rows
    from livetex.walks import WalkRequest
    b = tone.bundle()
    y16 = sound(tone.cond, 2)[:8 * SR]
    t = np.arange(8 * 44100) / 44100
    # the same tones rendered directly at 44.1 kHz stereo (left louder than right)
    s = tone.cond[np.minimum((np.arange(len(t)) * FPS) // 44100, len(tone.cond) - 1)]
    y44 = sum((s == k) * 0.3 * np.sin(2 * np.pi * f * t) for k, f in FREQS.items()).astype(np.float32)
    y44 += 1e-3 * np.random.default_rng(0).standard_normal(len(y44)).astype(np.float32)
    stereo = np.stack([y44, 0.5 * y44], axis=1)
    p16 = write_wav(os.path.join(tone.root, "c16.wav"), y16, SR)
    p44 = write_wav(os.path.join(tone.root, "c44.wav"), stereo, 44100)
    req = lambda p: WalkRequest(bundle=b, n_frames=8 * FPS, audio=p, audio_model="features")  # noqa: E731
    T16, _, _, _ = audio_rows(req(p16))
    T44, _, _, info = audio_rows(req(p44))
    # the same segment state wins nearly everywhere
    st = tone.seg_states(b)
    agree = np.mean([np.bincount(st, weights=T16[k], minlength=3).argmax() == np.bincount(st, weights=T44[k], minlength=3).argmax()
                     for k in range(len(T16))])
    assert agree >= 0.9
    assert abs(info["audio_gain_db"]) < 24


def test_nan_and_clipped_conditioning(tone):
    y = sound(tone.cond, 2)
    bad = y.copy()
    bad[1000:1200] = np.nan
    bad[5000] = np.inf
    nan_wav = write_wav(os.path.join(tone.root, "nan.wav"), bad, SR, codec="pcm_f32le")
    rates = [match_rate(tone, walk(tone, nan_wav, alpha=0.5, seed=s, model="features"), tone.cond) for s in range(3)]
    assert np.mean(rates) >= 0.85, rates
    # 3.5 dB into clipping (peaks at 0.75 cut to 0.5): harmonics, but still the same notes
    clipped = write_wav(os.path.join(tone.root, "clipped.wav"), np.clip(2.5 * y, -0.5, 0.5), SR)
    rates = [match_rate(tone, walk(tone, clipped, alpha=0.5, seed=s, model="features"), tone.cond) for s in range(3)]
    assert np.mean(rates) >= 0.85, rates


def test_too_short_conditioning_is_a_clear_error(tone):
    short = write_wav(os.path.join(tone.root, "short.wav"), sound(tone.cond[:5], 2), SR)   # 0.2 s
    with pytest.raises(LivetexError, match="at least one"):
        walk(tone, short)


def test_conditioning_that_has_no_audio_stream(tone):
    video_only = os.path.join(tone.root, "video_only.mp4")
    from livetex.media.writer import VideoWriter
    with VideoWriter(video_only, FPS, SIZE) as w:
        for img in pictures(tone.cond[:30]):
            w.write(img)
    with pytest.raises(LivetexError, match="no audio stream"):
        walk(tone, video_only)


def test_missing_models_are_clear_errors(tone, monkeypatch, tmp_path):
    monkeypatch.delenv("LIVETEX_VGGISH", raising=False)
    monkeypatch.setattr("livetex.audio.vggish.DEFAULT_PATH", str(tmp_path / "none.pth"))
    with pytest.raises(LivetexError, match="never downloads"):
        walk(tone, tone.cond_wav, model="vggish")


def test_bundle_without_sound_refuses_audio(media, tmp_path):
    from livetex.fit import FitConfig, fit
    bdir = tmp_path / "nosound"
    fit(str(media.silent), str(bdir), FitConfig(model=False), progress=False)
    b = load_bundle(bdir)
    assert b.manifest["audio_fit"]["status"] == "no audio" and not b.has("audio_emb")
    from livetex.walks import WalkRequest, run
    for method in ("contrastive", "audio-nn"):
        with pytest.raises(LivetexError, match="no sound"):
            run(method, WalkRequest(bundle=b, n_frames=50, audio=str(media.audio(44100, 2))))


def test_silent_source_track(tmp_path):
    """A sound track that is digitally silent is treated like none, with a warning at fit time."""
    from livetex.fit import FitConfig, fit
    from livetex.media.writer import VideoWriter
    st = states(4, seed=3)
    video = str(tmp_path / "mute.mp4")
    with VideoWriter(video, FPS, SIZE, audio=np.zeros(len(st) * SR // FPS, np.float32), sr=SR) as w:
        for img in pictures(st):
            w.write(img)
    fit(video, str(tmp_path / "B"), FitConfig(model=False), progress=False)
    b = load_bundle(tmp_path / "B")
    assert b.has_audio and b.manifest["audio_fit"]["status"] == "silent"
    from livetex.audio.models import load_audio_model
    with pytest.raises(LivetexError, match="silent"):
        load_audio_model(b)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_render_with_audio(tone, tmp_path):
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "livetex", "render", tone.bundle_dir, "-o", str(out), "--audio",
                        tone.cond_wav, "--alpha", "0.5", "--seconds", "6", "--interpolate", "none"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tl = json.load(open(tmp_path / "out.json"))
    assert tl["params"]["alpha"] == 0.5 and tl["audio"]["path"].endswith("cond.wav")
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1 and len(c.streams.video) == 1
    # the picture of the walk adds the song's loudness against the picture's motion, with the agreement
    from livetex.audio import features as F
    from livetex.audio.metrics import agreement_curves, audio_metrics
    from livetex.media.audio import load_audio
    from livetex.timeline import load_timeline
    b, tl = load_bundle(tone.bundle_dir), load_timeline(str(tmp_path / "out.json"))
    t, loud, motion, r = agreement_curves(b, tl, load_audio(tone.cond_wav, F.SR, channels=1))
    assert len(t) == len(loud) == len(motion) == len(tl.frames) and abs(loud.mean()) < 1e-6
    assert r == pytest.approx(audio_metrics(b, tl, tone.cond_wav)["audio_motion"], abs=1e-9)
    r = subprocess.run([sys.executable, "-m", "livetex", "plot", tone.bundle_dir, "-o", str(tmp_path / "m.png"),
                        "--timeline", str(tmp_path / "out.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "m.png")).shape[1] > 1000
    # audio conditioning on a bundle without sound: one line, exit 1
    nosound = tmp_path / "copy"
    shutil.copytree(tone.bundle_dir, nosound)
    m = json.load(open(nosound / "manifest.json"))
    del m["arrays"]["audio"]
    json.dump(m, open(nosound / "manifest.json", "w"))
    r = subprocess.run([sys.executable, "-m", "livetex", "render", str(nosound), "-o", str(tmp_path / "x.mp4"),
                        "--audio", tone.cond_wav, "--seconds", "2"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("livetex: error:") and "no sound" in r.stderr
    assert not (tmp_path / "x.mp4").exists()


# ------------------------------------------------------------------------------------------ real media
def test_real_clip_and_song_with_every_audio_method(media_dir, tmp_path):
    """A real performance (8 s of the pianist) and a real song: every method that follows music runs,
    the conditioned walk is level-matched and deterministic, and the metrics come out."""
    from livetex.audio.metrics import audio_metrics
    from livetex.fit import FitConfig, fit
    from livetex.render import render
    from livetex.walks import WalkRequest, methods, run
    bdir = str(tmp_path / "piano")
    fit(str(media_dir / "piano_solo_01.avi"), bdir, FitConfig(end=8.0, model=False, store_height=120), progress=False)
    phi, psi = pixel_bigram(load_bundle(bdir))         # a visual model without the training time
    add_arrays(bdir, phi=phi, psi=psi)
    b = load_bundle(bdir)
    song = str(media_dir / "jazz_vibes_01.ogg")
    audio_methods = ["contrastive"] + [n for n, m in methods().items() if m.needs_audio]
    for name in audio_methods:
        req = WalkRequest(bundle=b, n_frames=int(10 * b.fps), seed=1, audio=song)
        tl = run(name, req)
        assert len(tl.frames) == 10 * int(b.fps) and tl.frames.max() < b.n_frames
        m = audio_metrics(b, tl, song)
        assert all(np.isfinite(v) for v in m.values()), (name, m)
        if name == "contrastive":
            assert tl.params["audio_model"] == "features" and abs(tl.params["audio_gain_db"]) <= 24
            assert np.array_equal(run(name, req).frames, tl.frames)
            render(b, tl, str(tmp_path / "c.mp4"), audio=song, progress=False)
            with av.open(str(tmp_path / "c.mp4")) as c:
                assert len(c.streams.audio) == 1


# ------------------------------------------------------------------------------------- planned walk
def tone_walk(tone, seed=0):
    """The bundle's texture walk (its graph and calibrated rate), for planner tests."""
    from livetex.texture import walk_for
    from livetex.walks import WalkRequest
    return walk_for(WalkRequest(bundle=tone.bundle(), n_frames=100, seed=seed))[0]


def test_prior_table_is_the_walks_own_memoryless_step(tone):
    """The planner's prior is what the walk draws from when it has no history and its dwell is over:
    play on with 1 - hazard, each exit with hazard times its share of the seam weights."""
    w = tone_walk(tone)
    targets, probs = w.prior_table()
    assert np.allclose(probs[w.landable].sum(axis=1), 1.0)
    rng = np.random.default_rng(0)
    for p in rng.choice(np.flatnonzero(w.landable), 40, replace=False):
        w.reset(int(p))
        w.since = w.dwell                      # the dwell is over
        w.last[:] = -np.inf                    # no history
        cand, pr = w.options(planned=True)
        dense, want = np.zeros(w.n), np.zeros(w.n)
        np.add.at(dense, cand, pr)
        np.add.at(want, targets[p], probs[p])
        assert np.allclose(dense, want, atol=1e-9), p


def test_planned_walk_cuts_less_than_greedy_mixing(tone):
    """Both follow the tone pattern; knowing the song ahead, the planned walk needs fewer cuts."""
    plan = [walk(tone, tone.cond_wav, seed=s, model="features") for s in range(3)]
    greedy = [run_greedy(tone, seed=s) for s in range(3)]
    assert np.mean([match_rate(tone, tl, tone.cond) for tl in plan]) >= 0.9
    assert np.mean([match_rate(tone, tl, tone.cond) for tl in greedy]) >= 0.75
    jp, jg = np.mean([len(tl.jumps) for tl in plan]), np.mean([len(tl.jumps) for tl in greedy])
    assert jp < jg, (jp, jg)
    assert plan[0].params["audio_walk"] == "plan" and greedy[0].params["audio_walk"] == "greedy"


def run_greedy(tone, seed):
    from livetex.walks import WalkRequest, run
    return run("contrastive", WalkRequest(bundle=tone.bundle(), n_frames=int(COND_SECONDS * FPS), seed=seed,
                                          alpha=0.5, audio=tone.cond_wav, audio_model="features",
                                          extra={"audio_walk": "greedy"}))


def test_planned_walk_is_seeded_and_follows_a_given_start(tone):
    a = walk(tone, tone.cond_wav, seed=4)
    assert np.array_equal(a.frames, walk(tone, tone.cond_wav, seed=4).frames)
    assert not np.array_equal(a.frames, walk(tone, tone.cond_wav, seed=5).frames)
    from livetex.walks import WalkRequest, run
    tl = run("contrastive", WalkRequest(bundle=tone.bundle(), n_frames=200, seed=0, audio=tone.cond_wav, start=70))
    assert tl.frames[0] == 70


def test_unknown_audio_walk_is_a_clear_error(tone, tmp_path):
    from livetex.cli import main
    with pytest.raises(SystemExit) as e:
        main(["render", tone.bundle_dir, "-o", str(tmp_path / "x.mp4"), "--audio", tone.cond_wav,
              "--audio-walk", "psychic"])
    assert e.value.code != 0
    assert not os.path.exists(tmp_path / "x.mp4")


def test_planned_walk_keeps_the_walks_guards(tone):
    """The plan walks with the texture walk's own rules: every cut is an exit of the graph, each
    landing is shown at least the dwell, nothing shown in the last no-return window is landed on."""
    from livetex.graph import Graph
    g = Graph.from_bundle(tone.bundle())
    w = tone_walk(tone)
    for seed in range(3):
        tl = walk(tone, tone.cond_wav, seed=seed)
        f = tl.frames
        last = -w.dwell
        for j in tl.jumps:
            assert f[j] in g.exits[f[j - 1]] or not g.continues(f[j - 1]), j
            assert j - last >= w.dwell or not g.continues(f[j - 1]), (j, last)
            assert f[j] not in f[max(0, j - w.no_return + 1):j] or not g.continues(f[j - 1]), j
            last = j


def test_picture_scores_are_a_diagnostic_and_features_is_the_default(tone, capsys):
    """picture_score: on the tone video (picture tied to sound) both models' matches show the right
    picture; with the sound shuffled against the picture the score drops to chance. The fit stores
    each model's score and `info` shows them; the default model is features whatever they say (and
    whatever an older bundle's manifest recorded as its default)."""
    from livetex.audio import picture_score
    from livetex.audio.fit import segment_pictures
    from livetex.audio.models import _features, picture_scores, resolve_name
    b = tone.bundle()
    fitm = b.manifest["audio_fit"]
    scores = {k: fitm[k]["picture_score"] for k in ("features", "av")}
    assert min(scores.values()) > 0.5, scores
    from livetex.cli import main
    main(["info", tone.bundle_dir])
    out = capsys.readouterr().out
    assert "with the features audio model by default (av: --audio-model av); picture scores features" in out
    m = _features(b)
    pics = segment_pictures(b.array("thumbs"), b.segments)
    shuffled = np.random.default_rng(0).permutation(len(pics))
    assert abs(picture_score(m.source, m.keys, m.tau, pics[shuffled])) < 0.2
    assert picture_scores(b) == pytest.approx(scores, abs=1e-6)
    b.manifest["audio_fit"]["default_model"] = "av"        # as recorded by bundles fitted before
    assert resolve_name(b, None) == "features" and resolve_name(b, "av") == "av"


def test_plan_messages_stay_finite_over_a_long_insistent_song(tone):
    """Backward messages are kept in logs, each step's shifted to max 0 and floored at log(1e-37): 80 s
    of a song that wants only the silent picture put more nats between frames than float32 holds, yet
    there is no NaN and no -inf, each checkpoint's best is 0, and the walk still runs (and shows the
    silent picture)."""
    from livetex.conditioning import Planner
    b = tone.bundle()
    st = tone.seg_states(b)
    K = 400
    T = np.where(st == 0, 1.0, 1e-30)[None].repeat(K, 0) / (st == 0).sum()
    w = tone_walk(tone)
    n_out = b.segments.window_frames + (K - 1) * b.segments.stride_frames
    p = Planner(w, T.astype(np.float32), 0.5, np.random.default_rng(0), b.segments, n_out)
    assert np.isfinite(p.check).all() and (p.check.max(axis=(1, 2)) == 0).all()
    assert p.check.min() >= np.log(np.float32(1e-37)) - 1e-3 and p.check.min() < -80
    frames, _ = p.run()
    assert len(frames) == n_out and frames.max() < w.n
    assert np.mean(tone.src[frames] == 0) > 0.9


def test_energy_evidence_rests_in_the_gaps_even_without_an_audio_model(tone):
    """song_energy is the song's level per step on the output timeline (window k ends where step k's
    frames end); the picture's motion is high where the dot circles (tones) and low in silence. With
    T_a telling nothing (uniform rows), the energy term alone makes the planned walk move while the
    song sounds and rest while it is silent."""
    from livetex.conditioning import Planner, frame_motion_z, output_windows, song_energy, step_of
    from livetex.graph import Graph
    b = tone.bundle()
    seg = b.segments
    motion = frame_motion_z(Graph.from_bundle(b))
    assert motion.mean() == pytest.approx(0, abs=1e-5) and motion[tone.src > 0].mean() > motion[tone.src == 0].mean() + 1.0
    K = 100
    starts, ends = output_windows(seg, K, SR)
    loud_steps = (np.arange(K) // 25) % 2 == 1               # 5 s of silence, 5 s of tone, ...
    y = np.zeros(int(ends[-1]) + SR, np.float32)
    t = np.arange(len(y)) / SR
    for k in np.flatnonzero(loud_steps):
        y[starts[k]:ends[k]] = 0.3 * np.sin(2 * np.pi * 440 * t[starts[k]:ends[k]])
    e = song_energy(y, seg, K, SR)
    change = np.flatnonzero(np.diff(loud_steps.astype(int))) + 1
    near = np.zeros(K, bool)                                  # windows overlap: a few steps hear both
    for c in change:
        near[max(0, c - 3):c + 3] = True
    assert e.shape == (K,) and (e[loud_steps & ~near] > 0).all() and (e[~loud_steps & ~near] < 0).all()
    assert not song_energy(np.full(len(y), 0.1, np.float32), seg, K, SR).any()     # constant level: no opinion
    T = np.full((K, seg.count), 1.0 / seg.count, np.float32)
    n_out = seg.window_frames + (K - 1) * seg.stride_frames
    k_of = step_of(np.arange(n_out), seg)
    ok = ~near[k_of]
    frames, _ = Planner(tone_walk(tone), T, 0.5, np.random.default_rng(0), seg, n_out, loud=e).run()
    moving = tone.src[frames] > 0
    assert np.mean(moving[ok] == loud_steps[k_of][ok]) >= 0.8, np.mean(moving[ok] == loud_steps[k_of][ok])
    blind, _ = Planner(tone_walk(tone), T, 0.5, np.random.default_rng(0), seg, n_out).run()   # no energy term
    assert np.mean((tone.src[blind] > 0)[ok] == loud_steps[k_of][ok]) < 0.7


def test_follow_weight_is_recorded_and_a_bad_one_refused(tone, tmp_path):
    """--follow W sets the energy weight (auto: the default); the CLI takes auto or a number."""
    from livetex.conditioning import ENERGY_WEIGHT
    from livetex.walks import WalkRequest, run
    b = tone.bundle()
    auto = run("contrastive", WalkRequest(bundle=b, n_frames=200, seed=2, audio=tone.cond_wav))
    fixed = run("contrastive", WalkRequest(bundle=b, n_frames=200, seed=2, audio=tone.cond_wav, extra={"follow": 0.0}))
    assert auto.params["follow"] == ENERGY_WEIGHT and fixed.params["follow"] == 0.0
    r = subprocess.run([sys.executable, "-m", "livetex", "render", tone.bundle_dir, "-o", str(tmp_path / "x.mp4"),
                        "--audio", tone.cond_wav, "--follow", "loud"], capture_output=True, text=True)
    assert r.returncode == 2 and "--follow: must be auto or a number >= 0" in r.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_planner_steers_clear_of_what_it_is_told_to_avoid(tone):
    """``avoid`` (nats per frame, what plan_song's re-planning rounds add for material a walk showed
    again) enters the backward pass, so the plan itself routes around it rather than being pushed off it."""
    from livetex.conditioning import Planner
    b = tone.bundle()
    seg = b.segments
    K = 60
    n_out = seg.window_frames + (K - 1) * seg.stride_frames
    T = np.full((K, seg.count), 1.0 / seg.count, np.float32)
    w = tone_walk(tone)
    avoid = np.where(np.arange(w.n) < w.n // 2, 50.0, 0.0)
    seen = {}
    for name, a in (("free", None), ("avoid", avoid)):
        frames, _ = Planner(tone_walk(tone), T, 0.5, np.random.default_rng(3), seg, n_out, avoid=a).run()
        seen[name] = np.mean(frames < w.n // 2)
    assert seen["avoid"] < 0.1 < seen["free"], seen
