"""Media layer: probe, constant-rate iteration, exact random access, audio decode, mp4 writer round trip."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest

import synth
from livetex.errors import LivetexError
from livetex.media import VideoReader, VideoWriter, iter_frames, load_audio, probe, probe_audio
from livetex.media.audio import fit_length


def indices(frames):
    return [synth.frame_index(f) for f in frames]


# ------------------------------------------------------------------------------------------------ probe
def test_probe_mp4_with_audio(media):
    info = probe(str(media.av))
    assert (info.width, info.height) == media.SIZE
    assert info.fps == 25.0 and info.fps_fraction == Fraction(25)
    assert info.n_frames == media.N and info.duration == pytest.approx(4.0)
    assert info.has_audio and info.audio_rate == 16000 and info.audio_channels == 1
    assert not info.vfr and info.t0 == 0.0
    assert info.to_dict()["path"] == "av.mp4"


def test_probe_ntsc_rate_is_exact(media):
    info = probe(str(media.ntsc))
    assert info.fps_fraction == Fraction(30000, 1001)
    assert info.n_frames == 60


@pytest.mark.parametrize("name", ["silent", "avi", "odd", "odd_mkv"])
def test_probe_other_containers(media, name):
    info = probe(str(getattr(media, name)))
    expect = {"silent": (64, 48, 25, 100, False), "avi": (64, 48, 30, 60, True),
              "odd": (161, 121, 25, 30, False), "odd_mkv": (161, 121, 25, 30, False)}[name]
    assert (info.width, info.height, info.fps, info.n_frames, info.has_audio) == expect
    assert not info.vfr


def test_probe_vfr(media):
    info = probe(str(media.vfr))
    assert info.vfr
    assert info.duration == pytest.approx(media.vfr_times[-1], abs=0.1)


@pytest.mark.parametrize("name,msg", [("garbage", "not a media file"), ("text", "not a media file"),
                                      ("truncated_nofaststart", "cannot read"),
                                      ("audio_only", "no video stream")])
def test_probe_bad_input(media, name, msg):
    with pytest.raises(LivetexError, match=msg):
        probe(str(getattr(media, name)))


def test_probe_missing_empty_dir(tmp_path):
    with pytest.raises(LivetexError, match="no such file"):
        probe(str(tmp_path / "nope.mp4"))
    with pytest.raises(LivetexError, match="directory"):
        probe(str(tmp_path))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(LivetexError, match="empty"):
        probe(str(tmp_path / "empty.mp4"))


# -------------------------------------------------------------------------------------------- iteration
@pytest.mark.parametrize("name,n", [("av", 100), ("silent", 100), ("avi", 60), ("ntsc", 60),
                                    ("odd", 30), ("odd_mkv", 30)])
def test_iter_frames_is_every_frame_in_order(media, name, n):
    frames = list(iter_frames(str(getattr(media, name))))
    assert len(frames) == n
    assert indices(frames) == list(range(n))
    assert frames[0].dtype == np.uint8 and frames[0].flags.c_contiguous


def test_iter_frames_odd_size_is_kept_and_lossless(media):
    frames = list(iter_frames(str(media.odd_mkv)))
    assert frames[0].shape == (121, 161, 3)
    # FFV1 in RGB (bgr0) is lossless: the decoded frames are the written ones, bit for bit.
    for k in (0, 13, 29):
        assert np.array_equal(frames[k], synth.pattern(k, (161, 121)))


def test_iter_frames_resize(media):
    frames = list(iter_frames(str(media.odd), size=(80, 60)))
    assert len(frames) == 30 and frames[0].shape == (60, 80, 3)
    assert indices(frames) == list(range(30))


def test_iter_frames_range(media):
    frames = list(iter_frames(str(media.av), start=1.0, end=2.0))
    assert indices(frames) == list(range(25, 50))
    # 3.5 s is half-way between frames 87 and 88 at 25 fps: every frame sits on a tie, and ties
    # must all break the same way (no dropped frame next to a doubled one).
    frames = list(iter_frames(str(media.av), start=3.5))
    assert indices(frames) == list(range(87, 100))
    frames = list(iter_frames(str(media.av), start=0.5, end=1.5))
    assert indices(frames) == list(range(12, 37))


@pytest.mark.parametrize("name,start", [("av", 2.4), ("av", 3.5), ("vfr", 1.6), ("ntsc", 1.2), ("odd_mkv", 1.04)])
def test_iter_frames_seek_equals_decoding_from_the_start(media, monkeypatch, name, start):
    from livetex.media import video
    path = str(getattr(media, name))
    seeking = list(iter_frames(path, start=start))
    monkeypatch.setattr(video, "_SEEK_AFTER_S", 1e9)
    reading = list(iter_frames(path, start=start))
    assert len(seeking) == len(reading) > 0
    assert all(np.array_equal(a, b) for a, b in zip(seeking, reading))


def test_iter_frames_resample_rate(media):
    # 25 -> 10 fps: slot n shows the last source frame whose time rounds to slot n or earlier.
    frames = list(iter_frames(str(media.av), fps=10))
    times = np.arange(media.N) / 25
    assert len(frames) == 40
    assert indices(frames) == list(synth.expected_vfr_index(times, 10, 40))
    # 25 -> 50 fps repeats every frame twice, the last one included.
    frames = list(iter_frames(str(media.av), fps=50, end=1.0))
    assert indices(frames) == [k // 2 for k in range(50)]
    frames = list(iter_frames(str(media.av), fps=50, start=3.0))
    assert indices(frames) == [75 + k // 2 for k in range(50)]


def test_iter_frames_vfr_onto_constant_grid(media):
    path = str(media.vfr)
    info = probe(path)
    frames = list(iter_frames(path))
    assert len(frames) == info.n_frames
    expect = synth.expected_vfr_index(media.vfr_times, info.fps, len(frames))
    assert indices(frames) == list(expect)


def test_iter_frames_truncated_is_an_error(media):
    info = probe(str(media.truncated))          # the index is intact, so probing works...
    assert info.n_frames == media.N
    with pytest.raises(LivetexError, match="truncated|damaged"):
        for _ in iter_frames(str(media.truncated)):   # ...but half the pictures are missing
            pass


# ------------------------------------------------------------------------------------- random access
@pytest.mark.parametrize("name", ["av", "silent", "avi", "ntsc", "vfr", "odd", "odd_mkv"])
def test_reader_frame_equals_sequential(media, name):
    path = str(getattr(media, name))
    seq = list(iter_frames(path))
    r = VideoReader(path)
    n = len(seq)
    # Forward, backward, keyframe boundaries (GOP 12), first and last.
    order = [0, n - 1, 12, 11, 13, 5, n // 2, 1, n - 2, 24, 23, 3]
    for k in order:
        got = r.frame(k)
        assert got.shape == seq[k].shape
        assert np.array_equal(got, seq[k]), f"frame {k}: reader shows source frame {synth.frame_index(got)}"
    with pytest.raises(IndexError):
        r.frame(n + 5)
    with pytest.raises(IndexError):
        r.frame(-1)


def test_reader_at_size(media):
    r = VideoReader(str(media.av), size=(32, 24))
    seq = list(iter_frames(str(media.av), size=(32, 24)))
    for k in (7, 70, 0):
        assert np.array_equal(r.frame(k), seq[k])


# ----------------------------------------------------------------------------------------------- audio
@pytest.mark.parametrize("rate", [8000, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_load_audio_rates_and_layouts(media, rate, channels):
    path = str(media.audio(rate, channels))
    info = probe_audio(path)
    assert (info.rate, info.channels) == (rate, channels)
    for sr in (16000, 22050):
        y = load_audio(path, sr)
        assert y.dtype == np.float32 and y.ndim == 1
        assert abs(len(y) - sr) <= 1, f"{len(y)} samples for 1 s at {sr} Hz"
        # The 440 Hz tone survives down-mixing and resampling.
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        assert np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()] == pytest.approx(440, abs=2)
        # (5.1 -> mono sums six equal channels, so it may peak a little over 1.)
        assert 0.1 < np.abs(y).max() < (1.0 if channels < 6 else 1.5)
    y2 = load_audio(path, 16000, channels=2)
    assert y2.shape[1] == 2 and abs(len(y2) - 16000) <= 1


@pytest.mark.parametrize("ext,rate,channels", [(".m4a", 44100, 2), (".m4a", 96000, 6), (".ogg", 48000, 2),
                                               (".flac", 8000, 1), (".mp3", 44100, 2)])
def test_load_audio_compressed(media, ext, rate, channels):
    path = str(media.audio(rate, channels, ext))
    y = load_audio(path, 16000)
    # Lossy codecs pad a few ms (encoder delay / last frame); well under one video frame.
    assert abs(len(y) / 16000 - 1.0) < 0.04
    assert 0.1 < np.abs(y).max() < (1.0 if channels < 6 else 1.5)


def test_load_audio_start_duration(media):
    y = load_audio(str(media.av), 16000, start=0.5, duration=1.0)
    assert len(y) == 16000
    assert synth.onset(y, 16000) == pytest.approx(0.5, abs=0.005)      # the burst at 1.0 s


def test_load_audio_part_equals_slice_of_whole(media):
    # Decoding stops soon after the asked-for range; the samples are the same as a full decode's.
    whole = load_audio(str(media.av), 16000)
    part = load_audio(str(media.av), 16000, start=0.5, duration=1.0)
    np.testing.assert_array_equal(part, whole[8000:24000])


def test_load_audio_aligned_to_video(media, tmp_path):
    # Audio that starts 0.5 s after the first frame: with t0 it is padded so sample 0 is frame 0.
    p = synth.write_video(str(tmp_path / "late.mp4"), 75, 25, audio=synth.clicks(2.0, 16000, [0.5]), sr=16000,
                          audio_t0=0.5)
    info = probe(p)
    y = load_audio(p, 16000, t0=info.t0)
    assert synth.onset(y, 16000) == pytest.approx(1.0, abs=0.005)


def test_load_audio_errors(media):
    with pytest.raises(LivetexError, match="no audio stream"):
        load_audio(str(media.silent), 16000)
    with pytest.raises(LivetexError, match="no audio stream"):
        probe_audio(str(media.silent))
    with pytest.raises(LivetexError):
        load_audio(str(media.garbage), 16000)
    with pytest.raises(LivetexError, match="sample rate"):
        load_audio(str(media.av), 0)


def test_fit_length():
    y = np.ones((5, 2), np.float32)
    assert fit_length(y, 3).shape == (3, 2)
    z = fit_length(y, 8)
    assert z.shape == (8, 2) and z[5:].sum() == 0


# ---------------------------------------------------------------------------------------------- writer
def decode_all(path):
    """(frames, video stream rate, audio samples (n, ch) at their own rate, audio rate) of an mp4."""
    frames = list(iter_frames(path))
    with av.open(path) as c:
        rate = c.streams.video[0].average_rate
        sr = c.streams.audio[0].rate if c.streams.audio else None
    y = load_audio(path, sr, channels=2, t0=probe(path).t0) if sr else None
    return frames, rate, y, sr


@pytest.mark.parametrize("fps,sr,channels", [(25, 44100, 2), (Fraction(30000, 1001), 48000, 1), (60, 16000, 1)])
def test_writer_round_trip(tmp_path, fps, sr, channels):
    n = 90
    seconds = n / float(fps)
    clicks = [0.5, 1.0]
    audio = synth.clicks(seconds + 0.7, sr, clicks, channels=channels)   # longer: must be trimmed
    out = str(tmp_path / "out.mp4")
    with VideoWriter(out, fps, (64, 48), audio=audio[:, 0] if channels == 1 else audio, sr=sr) as w:
        for k in range(n):
            w.write(synth.pattern(k, (64, 48)))
    assert os.listdir(tmp_path) == ["out.mp4"]                # no temp file left
    frames, rate, y, got_sr = decode_all(out)
    assert len(frames) == n and indices(frames) == list(range(n))
    assert rate == Fraction(fps).limit_denominator(1001)
    assert got_sr == sr
    # Audio lasts as long as the video, to within one frame, and starts with it.
    assert abs(len(y) / sr - seconds) < 1 / float(fps)
    assert synth.onset(y, sr) == pytest.approx(clicks[0], abs=0.5 / float(fps))


def test_writer_pads_short_audio(tmp_path):
    out = str(tmp_path / "pad.mp4")
    with VideoWriter(out, 25, (64, 48), audio=synth.tone(0.5, 48000, 2), sr=48000) as w:
        for k in range(50):
            w.write(synth.pattern(k, (64, 48)))
    y = load_audio(out, 48000)
    assert abs(len(y) / 48000 - 2.0) < 0.04
    assert np.abs(y[:20000]).max() > 0.1 and np.abs(y[30000:]).max() < 0.01


def test_writer_odd_size(tmp_path):
    out = str(tmp_path / "odd.mp4")
    with VideoWriter(out, 25, (161, 121)) as w:
        for k in range(20):
            w.write(synth.pattern(k, (161, 121)))
    info = probe(out)
    assert (info.width, info.height) == (162, 122) and not info.has_audio
    frames = list(iter_frames(out))
    assert indices([f[:121, :161] for f in frames]) == list(range(20))


def test_writer_failure_leaves_nothing(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(str(out), 25, (64, 48), audio=synth.tone(1, 44100), sr=44100) as w:
            for k in range(10):
                w.write(synth.pattern(k, (64, 48)))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    w = VideoWriter(str(out), 25, (64, 48))
    with pytest.raises(ValueError):
        w.write(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(LivetexError, match="no frames"):
        w.close()
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError):
        VideoWriter(str(out), 25, (64, 48), audio=np.zeros(100, np.float32))   # audio without its rate
    assert os.listdir(tmp_path) == []


def test_writer_refuses_bad_output(tmp_path, readonly_dir):
    with pytest.raises(LivetexError, match="does not exist"):
        VideoWriter(str(tmp_path / "missing" / "x.mp4"), 25, (64, 48))
    with pytest.raises(LivetexError, match="cannot write"):
        VideoWriter(str(readonly_dir / "x.mp4"), 25, (64, 48))
    with pytest.raises(LivetexError, match="directory"):
        VideoWriter(str(tmp_path), 25, (64, 48))


def test_interrupted_render_leaves_nothing(small_bundle, tmp_path, monkeypatch):
    from livetex.bundle import load_bundle
    from livetex.framestore import FrameStore
    from livetex.render import render
    from livetex.walks import WalkRequest, run
    b = load_bundle(str(small_bundle))
    tl = run("random", WalkRequest(bundle=b, n_frames=60, seed=1))
    calls = []
    real = FrameStore.frame

    def frame(self, k):
        calls.append(k)
        if len(calls) == 30:
            raise KeyboardInterrupt
        return real(self, k)

    monkeypatch.setattr(FrameStore, "frame", frame)
    with pytest.raises(KeyboardInterrupt):
        render(b, tl, str(tmp_path / "out.mp4"), progress=False)
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    render(b, tl, str(tmp_path / "out.mp4"), progress=False)
    assert os.listdir(tmp_path) == ["out.mp4"] and probe(str(tmp_path / "out.mp4")).n_frames == 60
