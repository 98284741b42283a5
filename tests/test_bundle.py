"""Bundle: contents of a fit, atomic writing (nothing half-written, ever), validation of damaged bundles."""

import json
import os
import shutil

import numpy as np
import pytest

import synth
from livetex import bundle as bundle_mod
from livetex.bundle import BundleWriter, load_bundle, sha256_file
from livetex.errors import LivetexError
from livetex.fit import AUDIO_SR, FitConfig, fit


def fit_quiet(video, out, force=False, **cfg):
    return fit(str(video), str(out), FitConfig(model=False, **cfg), force=force, progress=False)


# ---------------------------------------------------------------------------------------------- contents
def test_bundle_contents(small_bundle, media):
    b = load_bundle(str(small_bundle), verify=True)
    m = b.manifest
    assert m["format"] == "livetex-bundle" and m["schema"] == 1
    assert b.fps == 25.0 and b.fps_fraction == 25 and b.n_frames == 65
    assert (b.segments.window_frames, b.segments.stride_frames, b.segments.count) == (13, 5, 11)
    assert m["segments"]["count"] == 11
    assert b.store.size == media.SIZE and b.store.n == 65
    src = m["source"]
    assert src["name"] == "av_short.mp4" and src["sha256"] == sha256_file(str(media.av_short))
    assert (src["width"], src["height"], src["has_audio"]) == (64, 48, True)
    # Thumbnails: one per frame, the frame's content.
    th = b.array("thumbs")
    assert th.shape == (65, 64, 64, 3) and th.dtype == np.uint8
    assert synth.frame_index(np.asarray(th[40])) == 40
    # Audio: mono 16 kHz, exactly the clip's length, sample 0 at frame 0 (the bursts land on time).
    y = np.asarray(b.array("audio"))
    assert b.has_audio and b.audio_sr == AUDIO_SR and y.dtype == np.float32
    assert len(y) == round(65 / 25 * AUDIO_SR)
    assert synth.onset(y, AUDIO_SR) == pytest.approx(media.CLICKS[0], abs=0.002)
    assert synth.onset(y[int(1.5 * AUDIO_SR):], AUDIO_SR) == pytest.approx(media.CLICKS[1] - 1.5, abs=0.002)
    # Every file is listed with its size and checksum, and nothing else is in the directory.
    assert set(m["files"]) == set(os.listdir(small_bundle)) - {"manifest.json"}
    for rel, meta in m["files"].items():
        assert os.path.getsize(small_bundle / rel) == meta["bytes"]


def test_bundle_without_audio(media, tmp_path):
    b = load_bundle(fit_quiet(media.silent, tmp_path / "b", end=2.0))
    assert not b.has_audio and b.audio_sr is None and not b.has("audio")
    assert b.n_frames == 50


def test_fit_range_and_store_height(media, tmp_path):
    b = load_bundle(fit_quiet(media.odd, tmp_path / "b", start=0.2, store_height=60))
    assert b.store.size == (80, 60)                               # aspect kept, even sides
    assert b.n_frames == 25
    assert synth.frame_index(b.store.frame(0)) == 5              # starts at 0.2 s = frame 5
    assert b.manifest["source"]["start"] == 0.2


def test_fit_bad_range(media, tmp_path):
    with pytest.raises(LivetexError, match="range"):
        fit_quiet(media.av_short, tmp_path / "b", start=2.0, end=1.0)
    with pytest.raises(LivetexError, match="past the end"):
        fit_quiet(media.av_short, tmp_path / "b", start=60)
    with pytest.raises(LivetexError, match="too short"):
        fit_quiet(media.av_short, tmp_path / "b", start=1.0, end=1.3)
    assert os.listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------- atomicity
def test_failing_fit_leaves_nothing(media, tmp_path):
    with pytest.raises(LivetexError, match="truncated|damaged"):
        fit_quiet(media.truncated, tmp_path / "b")                # fails half-way through decoding
    assert os.listdir(tmp_path) == []


def test_interrupted_fit_leaves_nothing(media, tmp_path, monkeypatch):
    from livetex import framestore
    real_add = framestore.FrameStoreWriter.add

    def add(self, rgb):
        if self.n == 10:
            raise KeyboardInterrupt                               # Ctrl-C in the middle of writing
        real_add(self, rgb)

    monkeypatch.setattr(framestore.FrameStoreWriter, "add", add)
    with pytest.raises(KeyboardInterrupt):
        fit_quiet(media.av_short, tmp_path / "b")
    assert os.listdir(tmp_path) == []


def test_force_replaces_only_a_real_bundle(media, tmp_path):
    out = tmp_path / "b"
    fit_quiet(media.av_short, out)
    with pytest.raises(LivetexError, match="already exists"):
        fit_quiet(media.silent, out)
    fit_quiet(media.silent, out, force=True)
    assert load_bundle(str(out)).manifest["source"]["name"] == "silent.mp4"
    assert os.listdir(tmp_path) == ["b"]                          # no temp or .old directory left

    other = tmp_path / "photos"
    other.mkdir()
    (other / "keep.jpg").write_bytes(b"precious")
    with pytest.raises(LivetexError, match="not a livetex bundle"):
        fit_quiet(media.av_short, other, force=True)
    assert os.listdir(other) == ["keep.jpg"]
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    with pytest.raises(LivetexError):
        fit_quiet(media.av_short, afile, force=True)
    assert afile.read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["b", "notes.txt", "photos"]


def test_failed_force_keeps_the_old_bundle(media, tmp_path):
    out = tmp_path / "b"
    fit_quiet(media.av_short, out)
    before = (out / "manifest.json").read_text()
    with pytest.raises(LivetexError):
        fit_quiet(media.truncated, out, force=True)
    assert (out / "manifest.json").read_text() == before
    load_bundle(str(out), verify=True)
    assert os.listdir(tmp_path) == ["b"]


def test_commit_failure_restores_the_old_bundle(media, tmp_path, monkeypatch):
    out = tmp_path / "b"
    fit_quiet(media.av_short, out)
    before = (out / "manifest.json").read_text()
    real_rename = os.rename
    calls = []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:                                       # moving the new bundle into place
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(bundle_mod.os, "rename", rename)
    with pytest.raises(OSError):
        fit_quiet(media.silent, out, force=True)
    monkeypatch.undo()
    assert (out / "manifest.json").read_text() == before
    assert os.listdir(tmp_path) == ["b"]


def test_writer_context_cleans_up(tmp_path):
    with pytest.raises(RuntimeError):
        with BundleWriter(tmp_path / "b") as bw:
            bw.add_array("x", np.zeros(10))
            assert os.path.isdir(bw.tmp)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_writer_refuses_bad_places(tmp_path, readonly_dir):
    with pytest.raises(LivetexError, match="does not exist"):
        BundleWriter(tmp_path / "missing" / "b")
    with pytest.raises(LivetexError, match="cannot write"):
        BundleWriter(readonly_dir / "b")


# ------------------------------------------------------------------------------------------- validation
@pytest.fixture
def copy(small_bundle, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(small_bundle, d)
    return d


def edit_manifest(d, fn):
    p = d / "manifest.json"
    m = json.loads(p.read_text())
    fn(m)
    p.write_text(json.dumps(m))


def test_copy_is_valid(copy):
    load_bundle(str(copy), verify=True)


def test_missing_file(copy):
    os.remove(copy / "thumbs.npy")
    with pytest.raises(LivetexError, match="thumbs.npy is missing"):
        load_bundle(str(copy))


def test_truncated_array(copy):
    p = copy / "audio.npy"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(LivetexError, match="audio.npy is 1000 bytes"):
        load_bundle(str(copy))


def test_flipped_byte_in_small_file(copy):
    p = copy / "thumbs.npy"
    data = bytearray(p.read_bytes())
    data[-100] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(LivetexError, match="checksum"):
        load_bundle(str(copy))


def test_checksum_of_large_files_only_with_verify(copy, monkeypatch):
    monkeypatch.setattr(bundle_mod, "_ALWAYS_HASH", 0)          # treat every file as "large"
    p = copy / "frames.jpg.bin"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x55
    p.write_bytes(bytes(data))
    load_bundle(str(copy))                                        # fast path: sizes only
    with pytest.raises(LivetexError, match="frames.jpg.bin fails its checksum"):
        load_bundle(str(copy), verify=True)


def test_wrong_schema(copy):
    edit_manifest(copy, lambda m: m.update(schema=99))
    with pytest.raises(LivetexError, match="schema 99"):
        load_bundle(str(copy))


@pytest.mark.parametrize("content", ['{"name": "my-app", "version": "1.0"}', "[1, 2, 3]", '"livetex-bundle"', "null"])
def test_foreign_json(copy, content):
    (copy / "manifest.json").write_text(content)
    with pytest.raises(LivetexError, match="not a livetex bundle"):
        load_bundle(str(copy))


def test_invalid_json(copy):
    (copy / "manifest.json").write_bytes(b"{\"format\": \"livetex-bundle\", \xff\xfe")
    with pytest.raises(LivetexError, match="not valid JSON"):
        load_bundle(str(copy))


@pytest.mark.parametrize("damage", [
    lambda m: m.pop("store"),
    lambda m: m.update(files=[]),
    lambda m: m.update(files={"thumbs.npy": 5}),
    lambda m: m.update(arrays={"thumbs": {"file": "thumbs.npy"}}),
    lambda m: m.update(segments={"window_s": 0.5}),
    lambda m: m.update(store=[1]),
    lambda m: m.update(fps="fast"),
    lambda m: m.update(n_frames=64),
    lambda m: m["store"].update(codec="webp"),
    lambda m: m["arrays"]["audio"].update(shape=[5]),
    lambda m: m["arrays"]["thumbs"].update(dtype="float32"),
    lambda m: m["arrays"].update(extra={"file": "extra.npy", "shape": [1], "dtype": "float32"}),
], ids=["no-store", "files-list", "files-int", "array-meta", "segments", "store-list", "fps", "n_frames", "codec", "shape",
        "dtype", "unlisted-file"])
def test_inconsistent_manifest(copy, damage):
    edit_manifest(copy, damage)
    with pytest.raises(LivetexError, match="damaged bundle"):
        load_bundle(str(copy))


def test_not_a_bundle(tmp_path, media):
    with pytest.raises(LivetexError, match="no such bundle"):
        load_bundle(str(tmp_path / "nope"))
    with pytest.raises(LivetexError, match="not a bundle directory"):
        load_bundle(str(media.av_short))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LivetexError, match="no manifest.json"):
        load_bundle(str(tmp_path / "empty"))


def test_missing_array_is_a_clear_error(small_bundle):
    b = load_bundle(str(small_bundle))
    with pytest.raises(LivetexError, match="no 'phi' array"):
        b.array("phi")
    with pytest.raises(LivetexError, match="no 'nope' model"):
        b.model_path("nope")


def test_ntsc_rate_survives_fit_and_render(media, tmp_path):
    from fractions import Fraction

    from livetex.media import probe
    from livetex.render import render
    from livetex.walks import WalkRequest, run
    b = load_bundle(fit_quiet(media.ntsc, tmp_path / "b"))
    assert b.fps_fraction == Fraction(30000, 1001) and b.fps == pytest.approx(29.97, abs=1e-3)
    assert (b.segments.window_frames, b.segments.stride_frames) == (15, 6)
    tl = run("sequential", WalkRequest(bundle=b, n_frames=45))
    out = render(b, tl, str(tmp_path / "t.mp4"), progress=False)
    info = probe(out)
    assert info.fps_fraction == Fraction(30000, 1001) and info.n_frames == 45
