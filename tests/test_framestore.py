"""Frame store: random access returns exactly the stored frame (raw) or its exact JPEG decode (jpeg)."""

import os
import threading

import cv2
import numpy as np
import pytest

import synth
from livetex.bundle import load_bundle
from livetex.framestore import FrameStore, FrameStoreWriter, NpyAppender
from livetex.media import iter_frames

SIZE = (96, 72)


def write_store(root, frames, codec, quality=90):
    w = FrameStoreWriter(str(root), SIZE, codec, quality)
    for f in frames:
        w.add(f)
    return w.close()


@pytest.fixture(scope="module")
def source():
    return [synth.smooth(k, SIZE) for k in range(40)]


def test_raw_random_access_is_exact(tmp_path, source):
    meta = write_store(tmp_path, source, "raw")
    assert meta["frames"] == 40 and meta["files"] == ["frames.npy"]
    assert sorted(os.listdir(tmp_path)) == ["frames.npy"]          # the .part side file is gone
    store = FrameStore(str(tmp_path), meta)
    assert len(store) == 40 and store.size == SIZE
    rng = np.random.default_rng(0)
    for k in rng.permutation(40):
        assert np.array_equal(store.frame(int(k)), source[k])
    np.testing.assert_array_equal(store.frames(7, 20), np.stack(source[7:20]))
    # Frames are copies: writing to one must not touch the (read-only) map.
    f = store.frame(3)
    f[:] = 0
    assert np.array_equal(store.frame(3), source[3])


def test_jpeg_random_access(tmp_path, source):
    meta = write_store(tmp_path, source, "jpeg", quality=90)
    assert meta["quality"] == 90
    store = FrameStore(str(tmp_path), meta)
    index = np.load(tmp_path / "frames_index.npy")
    data = (tmp_path / "frames.jpg.bin").read_bytes()
    assert len(index) == 41 and index[-1] == len(data)
    rng = np.random.default_rng(1)
    for k in rng.permutation(40):
        got = store.frame(int(k))
        # Exactly the decode of the stored bytes of frame k (not a neighbour's, not re-encoded)...
        ref = cv2.cvtColor(cv2.imdecode(np.frombuffer(data[index[k]:index[k + 1]], np.uint8), cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
        assert np.array_equal(got, ref)
        # ...and close to the source frame.
        assert synth.psnr(got, source[k]) > 38
    np.testing.assert_array_equal(store.frames(3, 9), np.stack([store.frame(k) for k in range(3, 9)]))


def test_jpeg_quality_changes_size(tmp_path, source):
    sizes = {}
    for q in (50, 95):
        d = tmp_path / f"q{q}"
        d.mkdir()
        write_store(d, source, "jpeg", quality=q)
        sizes[q] = (d / "frames.jpg.bin").stat().st_size
    assert sizes[50] < sizes[95]


@pytest.mark.parametrize("codec", ["jpeg", "raw"])
def test_out_of_range_and_wrong_size(tmp_path, source, codec):
    store = FrameStore(str(tmp_path), write_store(tmp_path, source[:5], codec))
    for k in (-1, 5, 100):
        with pytest.raises(IndexError):
            store.frame(k)
    w = FrameStoreWriter(str(tmp_path), SIZE, codec)
    with pytest.raises(ValueError):
        w.add(np.zeros((10, 10, 3), np.uint8))


def test_concurrent_reads(tmp_path, source):
    store = FrameStore(str(tmp_path), write_store(tmp_path, source, "jpeg"))
    want = [store.frame(k) for k in range(40)]
    errors = []

    def reader(seed):
        rng = np.random.default_rng(seed)
        for k in rng.integers(0, 40, 60):
            if not np.array_equal(store.frame(int(k)), want[k]):
                errors.append(k)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_damaged_store_is_refused(tmp_path, source):
    meta = write_store(tmp_path, source[:5], "jpeg")
    np.save(tmp_path / "frames_index.npy", np.arange(4, dtype=np.int64))
    with pytest.raises(ValueError, match="index"):
        FrameStore(str(tmp_path), meta)
    with pytest.raises(ValueError, match="codec"):
        FrameStore(str(tmp_path), {**meta, "codec": "webp"})


def test_npy_appender(tmp_path):
    p = str(tmp_path / "a.npy")
    app = NpyAppender(p, (2, 3), np.float32)
    app.append(np.ones((2, 3)))
    app.append(np.arange(12).reshape(2, 2, 3))
    assert app.close() == (3, 2, 3)
    a = np.load(p)
    assert a.dtype == np.float32 and a.shape == (3, 2, 3)
    np.testing.assert_array_equal(a[1:], np.arange(12).reshape(2, 2, 3))
    assert os.listdir(tmp_path) == ["a.npy"]


# ------------------------------------------------------------------------- the store inside a bundle
def test_bundle_raw_store_is_the_decoded_video(raw_bundle, media):
    b = load_bundle(str(raw_bundle))
    decoded = list(iter_frames(str(media.av_short), size=b.store.size))
    assert len(decoded) == b.n_frames == b.store.n
    for k in np.random.default_rng(2).permutation(b.n_frames)[:30]:
        assert np.array_equal(b.store.frame(int(k)), decoded[k])


def test_bundle_jpeg_store_matches_source(small_bundle, media):
    b = load_bundle(str(small_bundle))
    for k in (0, 1, 50, 64, 37):
        f = b.store.frame(k)
        assert synth.frame_index(f) == k
        assert synth.psnr(f, synth.pattern(k, media.SIZE)) > 25     # hard edges and a red bar: JPEG's worst case
