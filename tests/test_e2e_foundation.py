"""End to end on a real clip: fit (--no-model) -> render (random walk, with music) -> check the mp4 and timeline.

Uses ../shared/media (skips with a message when it is absent). The fitted range is 2.5 s (11 segments):
long enough for a real walk, short enough that the fit's audio step trains no audio-visual model
(that needs 12 segments), so the whole file runs in seconds.
"""

import json

import av
import numpy as np
import pytest

import synth
from conftest import run_livetex
from livetex.bundle import load_bundle
from livetex.media import VideoReader, iter_frames, load_audio, probe
from livetex.timeline import frames_from_steps, jumps_from_frames, load_timeline

START, END = 10.0, 12.5     # seconds of piano_solo_01.avi (640x480, 30 fps, mp3 sound), stored at 320x240
SECONDS = 4.0


@pytest.fixture(scope="module")
def piano(media_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    video = media_dir / "piano_solo_01.avi"
    p = run_livetex("fit", video, "-o", d / "piano", "--no-model", "--start", START, "--end", END,
                    "--store-height", 240)
    assert p.returncode == 0, p.stderr
    assert "bundle written" in p.stdout
    return video, d / "piano", d


def test_fit_real_clip(piano):
    video, bundle, _ = piano
    b = load_bundle(str(bundle), verify=True)
    assert b.fps == 30.0 and b.n_frames == 75
    assert b.store.size == (320, 240)
    assert b.segments.count == 11
    assert b.has_audio and len(b.array("audio")) == 2.5 * 16000
    assert np.abs(b.array("audio")).max() > 0.01                # the piano is audible
    # Frame 0 of the bundle is the source frame at 10.0 s.
    reader = VideoReader(str(video), size=b.store.size)     # AVI: decoded forward, so ask in order
    before, src = reader.frame(290), reader.frame(300)
    assert synth.psnr(b.store.frame(0), src) > 35
    assert synth.psnr(b.store.frame(0), before) < synth.psnr(b.store.frame(0), src)
    p = run_livetex("info", bundle)
    assert p.returncode == 0 and "piano_solo_01.avi" in p.stdout and "11 x 15 frames" in p.stdout


def test_render_random_with_music(piano, media_dir):
    _, bundle, d = piano
    song = media_dir / "drum_bass_01.ogg"
    out, tl_path = d / "random.mp4", d / "random.json"
    p = run_livetex("render", bundle, "-o", out, "--seconds", SECONDS, "--method", "random", "--seed", 7,
                    "--audio", song, "--timeline", tl_path)
    assert p.returncode == 0, p.stderr
    assert "video written" in p.stdout

    # The mp4: H.264 + AAC, 120 frames at 30 fps, audio as long as the video.
    info = probe(str(out))
    assert info.codec == "h264" and info.fps_fraction == 30 and (info.width, info.height) == (320, 240)
    assert info.n_frames == 120 and info.duration == pytest.approx(SECONDS)
    assert info.has_audio and info.audio_rate == 44100 and info.audio_channels == 2
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
    frames = list(iter_frames(str(out)))
    assert len(frames) == 120
    y = load_audio(str(out), 44100, t0=info.t0)
    assert abs(len(y) / 44100 - SECONDS) < 1 / 30
    # It is the song, from its start, in sync: correlates with the source at lag 0.
    ref = load_audio(str(song), 44100, duration=SECONDS)
    n = min(len(y), len(ref))
    assert np.corrcoef(y[:n], ref[:n])[0, 1] > 0.9

    # The timeline JSON.
    d_json = json.loads(tl_path.read_text())
    assert d_json["fps"] == 30.0 and d_json["method"] == "random" and d_json["seed"] == 7
    assert len(d_json["frames"]) == 120 and d_json["audio"]["path"].endswith("drum_bass_01.ogg")
    tl = load_timeline(str(tl_path))
    b = load_bundle(str(bundle))
    assert tl.frames.min() >= 0 and tl.frames.max() < b.n_frames
    frames_again, jumps = frames_from_steps(b.segments, tl.steps, 120)
    np.testing.assert_array_equal(frames_again, tl.frames)
    # Random jumps at every step (never to the natural successor): a jump every stride after the first window.
    assert tl.jumps == jumps == jumps_from_frames(tl.frames) == list(range(15, 120, 6))


def test_render_is_the_timeline(piano):
    """Without seam smoothing every output frame is the stored frame the timeline names."""
    _, bundle, d = piano
    out = d / "seq.mp4"
    p = run_livetex("render", bundle, "-o", out, "--seconds", 3, "--method", "sequential", "--interpolate", "none")
    assert p.returncode == 0, p.stderr
    tl = load_timeline(str(d / "seq.json"))
    # The source in order, then back to segment 0, whose last stride (frames 9..14) continues the loop.
    assert list(tl.frames) == list(range(75)) + list(range(9, 24)) and tl.jumps == [75]
    b = load_bundle(str(bundle))
    info = probe(str(out))
    assert not info.has_audio and info.n_frames == 90
    for k, rgb in enumerate(iter_frames(str(out))):
        if k % 9 == 0:
            assert synth.psnr(rgb, b.store.frame(int(tl.frames[k]))) > 35, k
