"""The bundle's frame store: every source frame at display size, readable at any index in a few ms.

Two codecs, same interface:

- ``jpeg`` (default): one JPEG per frame, concatenated in ``frames.jpg.bin`` with an offsets array.
  Each frame decodes on its own (no GOP to seek through), libjpeg-turbo decodes 720p in ~3.5 ms of CPU and
  releases the GIL, so a prefetch thread keeps up; about 1/20 of raw size at quality 90.
- ``raw``: a memory-mapped uint8 ``.npy`` of shape (n, H, W, 3). Lossless and fastest, but about
  1.2 GB per minute at 640x360/30 fps; for short clips or when exact pixels matter.

Numbers for this machine are printed by ``tools/bench_media.py``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

CODECS = ("jpeg", "raw")


class NpyAppender:
    """Write a .npy array one row-block at a time, without knowing the final length in advance.

    Rows go to a side file; ``close`` writes the .npy header and moves the data behind it.
    """

    def __init__(self, path: str, item_shape: tuple[int, ...], dtype=np.uint8):
        self.path = path
        self.item_shape = tuple(item_shape)
        self.dtype = np.dtype(dtype)
        self.n = 0
        self._raw = open(path + ".part", "wb")

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape == self.item_shape:
            rows = rows[None]
        assert rows.shape[1:] == self.item_shape, (rows.shape, self.item_shape)
        self._raw.write(rows.tobytes())
        self.n += len(rows)

    def close(self) -> tuple[int, ...]:
        self._raw.close()
        shape = (self.n,) + self.item_shape
        with open(self.path, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape})
            with open(self.path + ".part", "rb") as src:
                while chunk := src.read(1 << 24):
                    f.write(chunk)
        os.remove(self.path + ".part")
        return shape


class FrameStoreWriter:
    """Append RGB frames (H, W, 3) uint8 to a store in directory ``root``."""

    def __init__(self, root: str, size: tuple[int, int], codec: str = "jpeg", quality: int = 90):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}")
        self.root, self.size, self.codec, self.quality = root, tuple(size), codec, int(quality)
        w, h = self.size
        if codec == "jpeg":
            self._data = open(os.path.join(root, "frames.jpg.bin"), "wb")
            self._offsets = [0]
        else:
            self._npy = NpyAppender(os.path.join(root, "frames.npy"), (h, w, 3))
        self.n = 0

    def add(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.size[1], self.size[0], 3):
            raise ValueError(f"frame shape {rgb.shape} does not match store size {self.size}")
        if self.codec == "jpeg":
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            self._data.write(buf.tobytes())
            self._offsets.append(self._offsets[-1] + len(buf))
        else:
            self._npy.append(rgb)
        self.n += 1

    def close(self) -> dict:
        """Finish the files; returns the manifest entry describing the store."""
        if self.codec == "jpeg":
            self._data.close()
            np.save(os.path.join(self.root, "frames_index.npy"), np.asarray(self._offsets, np.int64))
            files = ["frames.jpg.bin", "frames_index.npy"]
        else:
            self._npy.close()
            files = ["frames.npy"]
        return {"codec": self.codec, "width": self.size[0], "height": self.size[1],
                "quality": self.quality if self.codec == "jpeg" else None, "frames": self.n, "files": files}


class FrameStore:
    """Read frames of a store by index. Thread-safe for concurrent reads."""

    def __init__(self, root: str, meta: dict):
        self.codec = meta["codec"]
        self.size = (int(meta["width"]), int(meta["height"]))
        self.n = int(meta["frames"])
        if self.codec == "jpeg":
            self._index = np.load(os.path.join(root, "frames_index.npy"))
            self._data = np.memmap(os.path.join(root, "frames.jpg.bin"), np.uint8, "r")
            if len(self._index) != self.n + 1 or self._index[-1] != len(self._data):
                raise ValueError("frame index does not match the frame data")
        elif self.codec == "raw":
            self._frames = np.load(os.path.join(root, "frames.npy"), mmap_mode="r")
            if self._frames.shape != (self.n, self.size[1], self.size[0], 3):
                raise ValueError("frame array has the wrong shape")
        else:
            raise ValueError(f"unknown frame store codec {self.codec!r}")

    def __len__(self) -> int:
        return self.n

    def frame(self, k: int) -> np.ndarray:
        """RGB frame k, (H, W, 3) uint8."""
        if not 0 <= k < self.n:
            raise IndexError(f"frame {k} out of range 0..{self.n - 1}")
        if self.codec == "raw":
            return np.array(self._frames[k])
        buf = self._data[self._index[k]:self._index[k + 1]]
        bgr = cv2.imdecode(np.asarray(buf), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"frame {k} of the store is damaged")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frames(self, a: int, b: int) -> np.ndarray:
        """Frames ``[a, b)`` as (b - a, H, W, 3) uint8."""
        if self.codec == "raw":
            return np.array(self._frames[a:b])
        return np.stack([self.frame(k) for k in range(a, b)])
