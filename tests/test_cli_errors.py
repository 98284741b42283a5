"""Bad input through the real command line: one clear line, non-zero exit, no traceback, no partial output."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, assert_clean_error, dir_listing, run_livetex
from livetex.bundle import load_bundle
from livetex.media import probe


@pytest.fixture
def outdir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def fit_fails(video, outdir, match, *extra):
    p = run_livetex("fit", video, "-o", outdir / "bundle", "--no-model", *extra)
    return assert_clean_error(p, outdir, match=match)


# ------------------------------------------------------------------------------------------ fit: refused
@pytest.mark.parametrize("name,match", [
    ("text", "not a media file"),
    ("garbage", "not a media file"),
    ("truncated", "truncated"),
    ("truncated_nofaststart", "cannot read"),
    ("audio_only", "no video stream"),
    ("short", "too short"),
])
def test_fit_refuses_bad_video(media, outdir, name, match):
    fit_fails(getattr(media, name), outdir, match)


def test_fit_refuses_missing_empty_dir_audio(media, outdir, tmp_path):
    fit_fails(tmp_path / "nope.mp4", outdir, "no such file")
    fit_fails(tmp_path, outdir, "directory")
    (tmp_path / "empty.mp4").write_bytes(b"")
    fit_fails(tmp_path / "empty.mp4", outdir, "empty")
    fit_fails(media.audio(44100, 2), outdir, "no video stream")


def test_fit_output_in_missing_or_readonly_dir(media, outdir, readonly_dir):
    before = dir_listing(readonly_dir)
    p = run_livetex("fit", media.av_short, "-o", outdir / "missing" / "b", "--no-model")
    assert_clean_error(p, outdir, match="does not exist")
    p = run_livetex("fit", media.av_short, "-o", readonly_dir / "b", "--no-model")
    assert_clean_error(p, readonly_dir, before, match="cannot write")


def test_fit_refuses_to_overwrite(media, outdir):
    (outdir / "bundle").mkdir()
    (outdir / "bundle" / "mine.txt").write_text("keep")
    p = run_livetex("fit", media.av_short, "-o", outdir / "bundle", "--no-model")
    assert_clean_error(p, outdir, {"bundle"}, match="already exists")
    p = run_livetex("fit", media.av_short, "-o", outdir / "bundle", "--no-model", "--force")
    assert_clean_error(p, outdir, {"bundle"}, match="not a livetex bundle")
    assert os.listdir(outdir / "bundle") == ["mine.txt"]


def test_export_tool_is_the_same_path(media, outdir):
    p = subprocess.run([sys.executable, str(REPO / "tools" / "export.py"), str(media.garbage), str(outdir / "b"),
                        "--no-model"], capture_output=True, text=True)
    assert_clean_error(p, outdir, match="not a media file")
    p = subprocess.run([sys.executable, str(REPO / "tools" / "export.py"), str(media.odd), str(outdir / "b"),
                        "--no-model"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert load_bundle(str(outdir / "b")).n_frames == 30


# ----------------------------------------------------------------------------------------- fit: accepted
@pytest.mark.parametrize("name,size", [("silent", (64, 48)), ("vfr", (64, 48)), ("odd", (160, 120)),
                                       ("odd_mkv", (160, 120)), ("avi", (64, 48))])
def test_fit_accepts_unusual_but_valid_video(media, outdir, name, size):
    video = getattr(media, name)
    p = run_livetex("fit", video, "-o", outdir / "b", "--no-model")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    b = load_bundle(str(outdir / "b"), verify=True)
    assert b.store.size == size
    assert b.n_frames == probe(str(video)).n_frames
    assert b.has_audio == (name == "avi")
    assert sorted(os.listdir(outdir)) == ["b"]


# ------------------------------------------------------------------------------------------------ render
def render_fails(bundle, outdir, match, *extra, before=None):
    p = run_livetex("render", bundle, "-o", outdir / "t.mp4", "--seconds", "2", *extra)
    return assert_clean_error(p, outdir, before, match=match)


def test_render_audio_from_a_file_without_sound(small_bundle, media, outdir):
    render_fails(small_bundle, outdir, "no audio stream", "--audio", media.silent)


@pytest.mark.parametrize("name,match", [("garbage", "not a media file"), ("text", "not a media file")])
def test_render_audio_not_media(small_bundle, media, outdir, name, match):
    render_fails(small_bundle, outdir, match, "--audio", getattr(media, name))


def test_render_audio_missing(small_bundle, outdir, tmp_path):
    render_fails(small_bundle, outdir, "no such file", "--audio", tmp_path / "song.wav")


def test_render_output_in_missing_or_readonly_dir(small_bundle, outdir, readonly_dir):
    p = run_livetex("render", small_bundle, "-o", outdir / "nope" / "t.mp4", "--seconds", "1")
    assert_clean_error(p, outdir, match="does not exist")
    before = dir_listing(readonly_dir)
    p = run_livetex("render", small_bundle, "-o", readonly_dir / "t.mp4", "--seconds", "1")
    assert_clean_error(p, readonly_dir, before, match="cannot write")
    # The mp4 could be written but the timeline could not: refused before any work.
    p = run_livetex("render", small_bundle, "-o", outdir / "t.mp4", "--timeline", readonly_dir / "t.json",
                    "--seconds", "1")
    assert_clean_error(p, outdir, match="cannot write")


def test_render_unknown_method(small_bundle, outdir):
    render_fails(small_bundle, outdir, "unknown method", "--method", "nope")


@pytest.mark.parametrize("rate,channels", [(8000, 1), (96000, 6)])
def test_render_with_unusual_audio(small_bundle, media, outdir, rate, channels):
    p = run_livetex("render", small_bundle, "-o", outdir / "t.mp4", "--seconds", "1.5", "--method", "random",
                    "--audio", media.audio(rate, channels, seconds=1.0))
    assert p.returncode == 0, p.stderr
    info = probe(str(outdir / "t.mp4"))
    assert info.has_audio and info.audio_rate == 48000 and info.audio_channels == 2
    assert info.n_frames == round(1.5 * 25)
    assert sorted(os.listdir(outdir)) == ["t.json", "t.mp4"]


# ------------------------------------------------------------------------------------ damaged bundles
def damaged_copies(small_bundle, root):
    """name -> a broken bundle directory."""
    out = {}

    def copy(name):
        d = root / name
        shutil.copytree(small_bundle, d)
        out[name] = d
        return d

    os.remove(copy("missing-file") / "thumbs.npy")
    p = copy("truncated-array") / "audio.npy"
    p.write_bytes(p.read_bytes()[:200])
    p = copy("flipped-byte") / "frames.jpg.bin"
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF
    p.write_bytes(bytes(data))
    (copy("foreign-json") / "manifest.json").write_text(json.dumps({"name": "some-app", "files": {}}))
    m = json.loads((small_bundle / "manifest.json").read_text())
    m["schema"] = 7
    (copy("future-schema") / "manifest.json").write_text(json.dumps(m))
    m = json.loads((small_bundle / "manifest.json").read_text())
    m["files"] = ["thumbs.npy"]
    (copy("malformed") / "manifest.json").write_text(json.dumps(m))
    (copy("not-json") / "manifest.json").write_bytes(b"\x00\x01garbage")
    (root / "plain-dir").mkdir()
    (root / "plain-dir" / "holiday.jpg").write_bytes(b"x")
    out["plain-dir"] = root / "plain-dir"
    out["missing"] = root / "does-not-exist"
    return out


@pytest.fixture(scope="module")
def broken(small_bundle, tmp_path_factory):
    return damaged_copies(small_bundle, tmp_path_factory.mktemp("broken"))


BROKEN = {"missing-file": "missing", "truncated-array": "bytes", "flipped-byte": "checksum",
          "foreign-json": "not a livetex bundle", "future-schema": "schema 7", "malformed": "damaged bundle",
          "not-json": "not valid JSON", "plain-dir": "not a livetex bundle", "missing": "no such bundle"}


@pytest.mark.parametrize("name", list(BROKEN))
def test_info_refuses_damaged_bundle(broken, name):
    p = run_livetex("info", broken[name])
    assert_clean_error(p, match=BROKEN[name])
    assert p.stdout == ""


@pytest.mark.parametrize("name", ["missing-file", "truncated-array", "foreign-json", "future-schema", "plain-dir"])
def test_render_refuses_damaged_bundle(broken, outdir, name):
    render_fails(broken[name], outdir, BROKEN[name])


def test_info_verify(small_bundle):
    p = run_livetex("info", small_bundle, "--verify")
    assert p.returncode == 0, p.stderr
    assert "all checksums verified" in p.stdout and "av_short.mp4" in p.stdout
    p = run_livetex("info", small_bundle, "--json")
    assert json.loads(p.stdout)["format"] == "livetex-bundle"


def test_usage_errors_exit_2():
    p = run_livetex("render")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    p = run_livetex("fit", "x.mp4", "-o", "b", "--fps", "-3")
    assert p.returncode == 2 and "must be > 0" in p.stderr


def test_ctrl_c_during_fit_leaves_nothing(media_dir, outdir):
    """A real SIGINT while the bundle is being written: exit 130, one line, no temp dir, no bundle."""
    import signal
    import time
    p = subprocess.Popen([sys.executable, "-m", "livetex", "fit", str(media_dir / "piano_solo_01.avi"),
                          "-o", str(outdir / "b"), "--no-model"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not any(n.startswith(".b.tmp") for n in os.listdir(outdir)):
            time.sleep(0.02)
        assert any(n.startswith(".b.tmp") for n in os.listdir(outdir)), "the fit never started writing"
        time.sleep(0.5)                                   # well inside the decode (97 s of video)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "livetex: interrupted"
    assert os.listdir(outdir) == []
