"""livetex.audio: features, the live embedder (offline == live), the audio-visual model's ONNX export,
VGGish loading, the fit-time step and the audio metrics."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from livetex.audio import (audio_probs, calibrate_tau, match_gain, perplexity, reference_db, run_ahead, scores,
                           song_gain, window_levels)
from livetex.audio import features as F
from livetex.bundle import load_bundle
from livetex.errors import LivetexError

SONG = "drum_bass_01.ogg"


def noise(n, seed=0, amp=0.1):
    return (amp * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


# -------------------------------------------------------------------------------------------- features
def test_features_shape_and_groups():
    x = F.window_features(noise((3, 8000)))
    assert x.shape == (3, F.FEATURE_DIM) and x.dtype == np.float32 and np.isfinite(x).all()
    assert F.FEATURE_DIM == sum(n for _, n in F.GROUPS)


def test_features_are_per_window_and_batch_independent():
    y = noise(40000)
    starts = np.array([0, 3200, 6400, 32000])
    batch = F.features_at(y, starts, 8000, batch=3)
    one = np.stack([F.window_features(y[s:s + 8000])[0] for s in starts])
    np.testing.assert_allclose(batch, one, rtol=1e-5, atol=1e-4)


def test_features_see_level_pitch_and_onsets():
    t = np.arange(8000) / F.SR
    low = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    high = (0.3 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    fl = F.window_features(np.stack([low, high, 0.1 * low]))[:, :F.N_MELS]
    assert np.argmax(fl[0]) < np.argmax(fl[1])                       # pitch moves the spectral peak
    assert abs((fl[0] - fl[2]).max() - 20.0) < 0.5                    # -20 dB gain = -20 dB in every band
    burst = np.zeros(8000, np.float32)
    burst[6000:6400] = noise(400, amp=0.5)
    f = F.window_features(np.stack([burst, np.zeros(8000, np.float32)]))
    onset = slice(2 * F.N_MELS + F.N_SUB, 2 * F.N_MELS + F.N_SUB + 2)
    assert f[0, onset].max() > 10 and np.all(f[1, onset] == 0)      # an attack is an onset, silence is not
    assert np.all(f[1, :F.N_MELS] == F.DB_FLOOR)                       # digital silence sits at the floor


def test_feature_norm_round_trip_and_clipping():
    feats = F.window_features(noise((20, 8000)) * np.linspace(0.1, 1, 20)[:, None].astype(np.float32))
    norm = F.FeatureNorm.fit(feats)
    again = F.FeatureNorm.from_array(norm.to_array())
    np.testing.assert_array_equal(norm.embed(feats), again.embed(feats))
    far = norm.embed(feats[:1] + 1000.0)
    assert np.all(np.abs(far / F._group_weights()) <= F.Z_CLIP + 1e-5)


# ------------------------------------------------------------------------------------- T_a machinery
def test_scores_and_probs():
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((50, 8)).astype(np.float32)
    q = keys[[3, 7]] + 0.01
    s = scores(q, keys)
    assert s.shape == (2, 50) and s[0].argmax() == 3 and s[1].argmax() == 7
    p = audio_probs(s, 1e-4)                   # far too sharp: softened to MIN_PERPLEXITY
    assert np.allclose(p.sum(1), 1) and np.all(perplexity(p) >= 3 - 1e-3)
    p = audio_probs(np.zeros((1, 50)) + rng.standard_normal((1, 50)) * 1e-3, 1.0)   # flat: sharpened
    assert perplexity(p)[0] <= 6 + 1e-3
    r = run_ahead(np.arange(10, dtype=np.float32)[None], 2)
    np.testing.assert_allclose(r[0], [1, 2, 3, 4, 5, 6, 7, 8, 8.5, 9])
    tau = calibrate_tau(keys, keys, target=4.0)
    assert tau > 0


def test_level_matching():
    sr = F.SR
    quiet, loud = noise(5 * sr, amp=0.05), noise(5 * sr, amp=0.3)
    starts = np.arange(0, 5 * sr - 8000, 3200)
    ref = reference_db(window_levels(quiet, starts, 8000))
    g = match_gain(window_levels(loud, starts, 8000), ref)
    assert abs(20 * np.log10(g) - 20 * np.log10(0.05 / 0.3)) < 1.0
    assert match_gain(window_levels(np.zeros(5 * sr, np.float32), starts, 8000), ref) == 1.0   # silence: leave it
    assert 20 * np.log10(match_gain(window_levels(0.01 * loud, starts, 8000), 0.0)) == pytest.approx(24.0)   # capped


# ----------------------------------------------------------------------------------------- fit step
def test_fit_with_and_without_sound(small_bundle, media, tmp_path):
    b = load_bundle(small_bundle)
    fitm = b.manifest["audio_fit"]
    assert fitm["status"] == "ok" and b.has("audio_emb") and b.array("audio_emb").shape == (b.segments.count, F.FEATURE_DIM)
    assert not b.has("audio_av")             # 11 segments: too few for the audio-visual model
    from livetex.fit import FitConfig, fit
    fit(str(media.silent), str(tmp_path / "ns"), FitConfig(model=False), progress=False)
    ns = load_bundle(tmp_path / "ns")
    assert ns.manifest["audio_fit"] == {"status": "no audio"} and not ns.has("audio_emb")


def test_refit_audio_keeps_the_rest_of_the_bundle(small_bundle, tmp_path):
    from livetex.audio.fit import refit_audio
    p = tmp_path / "b"
    shutil.copytree(small_bundle, p)
    before = json.load(open(p / "manifest.json"))
    s = refit_audio(str(p), progress=False)
    after = load_bundle(p, verify=True)
    assert s["status"] == "ok" and "skipped" in s["av"]
    for name in ("thumbs", "audio"):
        assert after.manifest["files"][before["arrays"][name]["file"]]["sha256"] == \
            before["files"][before["arrays"][name]["file"]]["sha256"]
    assert not [d for d in os.listdir(tmp_path) if d.startswith(".")]     # no temporary left behind


def test_default_model_and_missing_av(small_bundle):
    from livetex.audio.models import load_audio_model
    b = load_bundle(small_bundle)
    assert load_audio_model(b).name == "features"
    with pytest.raises(LivetexError, match="no audio-visual model"):
        load_audio_model(b, "av")
    with pytest.raises(LivetexError, match="unknown audio model"):
        load_audio_model(b, "wav2vec")


# ------------------------------------------------------------------------------------ live embedder
def _offline(model, b, y, K):
    from livetex.conditioning import output_windows
    starts, ends = output_windows(b.segments, K)
    g = song_gain(y, model.ref_db, model.window, b.fps, b.segments.stride_frames)
    return model.embed_at(y, ends, g), g


def test_live_equals_offline_on_the_same_samples(small_bundle):
    from livetex.audio.live import LiveEmbedder
    from livetex.audio.models import load_audio_model
    b = load_bundle(small_bundle)
    model = load_audio_model(b)
    y = np.concatenate([noise(F.SR, 1, 0.2), np.zeros(F.SR // 2, np.float32), noise(2 * F.SR, 2, 0.05)])
    K = 12
    q, g = _offline(model, b, y, K)
    live = LiveEmbedder(b, rate=F.SR, channels=1, gain=g)
    rng = np.random.default_rng(0)
    steps, pos = [], 0
    while pos < len(y):
        n = int(rng.integers(1, 3000))      # any block size, including tiny ones
        steps += live.push(y[pos:pos + n])
        pos += n
    assert [s.index for s in steps[:K]] == list(range(K))
    got = np.stack([s.embedding for s in steps[:K]])
    np.testing.assert_allclose(got, q, atol=1e-5)
    np.testing.assert_allclose(steps[3].probs, model.probs(q[3:4])[0], atol=1e-6)
    # window k ends at the same sample as offline, so step times line up with the output timeline
    from livetex.conditioning import output_windows
    assert steps[5].end_s == pytest.approx(output_windows(b.segments, K)[1][5] / F.SR)
    # silence in the stream is the source's quietest moment
    assert np.allclose(steps[-1].embedding, live.model.query(np.zeros((1, live.window), np.float32))[0]) or \
        steps[-1].level_db > -60


def test_live_resamples_device_audio_like_the_file_decoder(small_bundle, media_dir):
    """A song streamed at 44.1 kHz stereo in device-sized blocks embeds like the same file decoded offline."""
    from livetex.audio.live import LiveEmbedder
    from livetex.audio.models import load_audio_model
    from livetex.media.audio import load_audio
    b = load_bundle(small_bundle)
    model = load_audio_model(b)
    song = str(media_dir / SONG)
    y16 = load_audio(song, F.SR, channels=1, duration=4.0)
    q, g = _offline(model, b, y16, 15)
    stereo = load_audio(song, 44100, channels=2, duration=4.0)
    live = LiveEmbedder(b, rate=44100, channels=2, gain=g)
    steps = []
    for i in range(0, len(stereo), 512):
        steps += live.push(stereo[i:i + 512])
    got = np.stack([s.embedding for s in steps[:15]])
    # the resampler's block boundaries move its output by float rounding only
    assert np.abs(got - q).max() < 1e-3
    assert all(np.argmax(s.probs) == np.argmax(model.probs(q[i:i + 1])) for i, s in enumerate(steps[:15]))


def test_live_auto_gain_bad_blocks_and_errors(small_bundle):
    from livetex.audio.live import LiveEmbedder
    b = load_bundle(small_bundle)
    live = LiveEmbedder(b, rate=48000, channels=2)
    block = np.stack([noise(4800, 3, 0.5), noise(4800, 4, 0.5)], axis=1)
    block[10:20] = np.nan
    steps = []
    for _ in range(20):
        steps += live.push(block)
        steps += live.push(np.zeros((0, 2), np.int16))                     # empty block
    steps += live.push((np.nan_to_num(block) * 32767).astype(np.int16))     # int16 is scaled
    assert len(steps) >= 8 and all(np.isfinite(s.probs).all() for s in steps)
    assert steps[-1].gain < 1.0                                              # loud input turned down
    assert [s.index for s in steps] == list(range(len(steps)))
    with pytest.raises(ValueError, match="shape"):
        live.push(np.zeros((10, 3), np.float32))
    with pytest.raises(LivetexError, match="sample rate"):
        LiveEmbedder(b, rate=10)
    live.reset()
    assert live.k == 0


# --------------------------------------------------------------------------------------- av + ONNX
def test_av_encoder_onnx_matches_torch(tmp_path):
    import torch
    from livetex.audio import avmodel
    rng = np.random.default_rng(0)
    N = 40
    feats = F.window_features(noise((N, 8000)) * rng.uniform(0.05, 1, (N, 1)).astype(np.float32))
    norm = F.FeatureNorm.fit(feats)
    visual = rng.standard_normal((N, 20)).astype(np.float32) + feats[:, :1] / 10
    r = avmodel.train_av(np.stack([feats] * len(avmodel.GAINS_DB)), norm, visual, steps=30, progress=False)
    assert r["losses"][-1] < r["losses"][0]
    path = str(tmp_path / "a.onnx")
    avmodel.export_audio_encoder(r["audio"], norm, path)
    enc = avmodel.OnnxAudioEncoder(path)
    got = enc(feats)
    with torch.no_grad():
        ref = avmodel._Exported.build(r["audio"], norm)(torch.from_numpy(feats)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(r["source"], got, atol=1e-4)


# ------------------------------------------------------------------------------------------- VGGish
def test_vggish_framing_and_missing_weights(tmp_path, monkeypatch):
    from livetex.audio import vggish
    ex = vggish.examples(noise((2, vggish.CONTEXT)))
    assert ex.shape == (2, 1, 96, 64) and np.isfinite(ex).all()
    monkeypatch.delenv(vggish.ENV, raising=False)
    monkeypatch.setattr(vggish, "DEFAULT_PATH", str(tmp_path / "nothing.pth"))
    with pytest.raises(LivetexError, match="never downloads"):
        vggish.load()
    monkeypatch.setenv(vggish.ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(LivetexError, match="not found"):
        vggish.load()
    import torch
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(LivetexError, match="not a VGGish state dict"):
        vggish.load(str(tmp_path / "bad.pth"))


@pytest.mark.slow
def test_vggish_conditioning_with_a_weights_file(small_bundle, tmp_path, monkeypatch):
    """The whole VGGish path with a (randomly initialised) checkpoint in torchvggish's layout."""
    import torch
    from livetex.audio import vggish
    from livetex.audio.models import load_audio_model
    torch.manual_seed(0)
    sd = vggish.build().state_dict()
    sd["pproc.pca_means"] = torch.zeros(128, 1)     # extra keys of the real file are ignored
    torch.save(sd, tmp_path / "vggish.pth")
    monkeypatch.setenv(vggish.ENV, str(tmp_path / "vggish.pth"))
    m = load_audio_model(load_bundle(small_bundle), "vggish")
    assert m.keys.shape == (load_bundle(small_bundle).segments.count, 128) and not m.live
    q = m.embed_at(noise(3 * F.SR), np.array([8000, 16000]))
    assert np.allclose(m.probs(q).sum(1), 1)


# ------------------------------------------------------------------------------------------ metrics
def test_agreement_is_high_when_motion_follows_loudness():
    from livetex.audio import metrics as M
    fps, n = 25, 25 * 30
    loud = (np.sin(np.arange(n) / fps * 2 * np.pi / 6) > 0)                 # 3 s on, 3 s off
    y = np.repeat(np.where(loud, 0.3, 0.001), F.SR // fps).astype(np.float32) * noise(n * F.SR // fps, amp=1.0)
    motion = np.where(loud, 0.05, 0.001) + 0.002 * np.random.default_rng(1).random(n)
    assert M.agreement(y, F.SR, motion, fps) > 0.9
    assert abs(M.agreement(np.roll(y, len(y) // 4), F.SR, motion, fps)) < 0.3
    assert M.agreement(y, F.SR, np.zeros(n), fps) == 0.0                  # a still picture: no agreement
    env = M.loudness_envelope(y, F.SR, fps, n)
    assert env.shape == (n,) and env[loud].mean() > env[~loud].mean() + 40


def test_beats():
    from livetex.audio import metrics as M
    sr = F.SR
    y = noise(10 * sr, amp=0.001)
    times = np.arange(0.5, 9.6, 0.5)
    for t in times:
        i = int(t * sr)
        y[i:i + 400] += noise(400, int(t * 10), 0.5)
    got = M.music_beats(y)
    assert len(got) == len(times) and np.abs(got - times).max() < 0.03
    fps = 25
    motion = np.full(250, 0.01)
    for t in (2.0, 4.0, 6.0):
        k = int(t * fps)
        motion[k - 5:k] = 0.2                       # movement that stops at t: a visual impact
    vb = M.visual_beats(motion, fps)
    assert np.all(np.min(np.abs(vb[:, None] - np.array([2.0, 4.0, 6.0])), axis=1) < 0.1)
    hit, chance = M.beat_align(times, vb, 10.0)
    assert hit == 1.0 and 0 < chance < 0.5


def test_audio_metrics_on_a_bundle(small_bundle, tmp_path):
    from livetex.audio.metrics import audio_metrics
    from livetex.walks import WalkRequest, run
    b = load_bundle(small_bundle)
    tl = run("sequential", WalkRequest(bundle=b, n_frames=60))
    y = np.asarray(b.array("audio"))
    m = audio_metrics(b, tl, audio=y)
    for k in ("audio_motion", "audio_motion_source", "audio_motion_shifted", "beat_align", "beat_align_chance",
              "beat_align_source", "beat_align_source_chance"):
        assert k in m and np.isfinite(m[k])
    import av as pyav
    wav = str(tmp_path / "c.wav")
    with pyav.open(wav, "w") as c:
        s = c.add_stream("pcm_s16le", rate=F.SR)
        s.layout = "mono"
        f = pyav.AudioFrame.from_ndarray((y[None] * 32767).astype(np.int16), format="s16", layout="mono")
        f.sample_rate = F.SR
        for p in list(s.encode(f)) + list(s.encode(None)):
            c.mux(p)
    assert audio_metrics(b, tl, wav)["audio_motion"] == pytest.approx(m["audio_motion"], abs=0.05)
