"""MP4 writing with PyAV: RGB frames (H.264) plus an optional audio track (AAC), muxed in sync.

The file appears only when it is complete: frames go to a hidden temporary file next to the target,
renamed on close. Audio is interleaved as frames arrive (not appended at the end), so the muxer never
buffers a whole video's packets.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np

from ..errors import LivetexError
from .audio import fit_length

AUDIO_CHUNK = 1024  # the AAC frame size


def check_output_path(path: str) -> str:
    """Refuse an output path in a missing or unwritable directory, before any work is done."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise LivetexError(f"output directory does not exist: {d}")
    if os.path.isdir(path):
        raise LivetexError(f"output path is a directory: {path}")
    probe = os.path.join(d, f".livetex-write-test-{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as e:
        raise LivetexError(f"cannot write to {d}: {e.strerror or e}") from None
    return path


class VideoWriter:
    """Write an mp4 from RGB frames.

    Parameters
    ----------
    path : output file (.mp4).
    fps : frame rate in Hz (a Fraction keeps 30000/1001 exact).
    size : (width, height) of the frames you will write; odd sizes are padded by one edge pixel
        because H.264 4:2:0 needs even dimensions.
    audio : optional float32 samples, shape (n,) or (n, 2), at ``sr`` Hz; trimmed or zero-padded to the
        video's length on close.
    crf, preset : libx264 quality and speed.
    """

    def __init__(self, path: str, fps: float | Fraction, size: tuple[int, int], audio: np.ndarray | None = None,
                 sr: int | None = None, crf: int = 18, preset: str = "veryfast"):
        self.path = check_output_path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.size = (int(size[0]), int(size[1]))
        self.out_size = (self.size[0] + self.size[0] % 2, self.size[1] + self.size[1] % 2)
        d, base = os.path.split(os.path.abspath(self.path))
        self.tmp = os.path.join(d, f".{base}.tmp-{os.getpid()}.mp4")
        self.n = 0
        self._closed = False
        try:
            self.c = av.open(self.tmp, "w", format="mp4", options={"movflags": "+faststart"})
            self.vs = self.c.add_stream("libx264", rate=self.fps)
            self.vs.width, self.vs.height = self.out_size
            self.vs.pix_fmt = "yuv420p"
            self.vs.options = {"crf": str(crf), "preset": preset}
            self.audio = None
            if audio is not None:
                if sr is None:
                    raise ValueError("audio needs its sample rate sr")
                a = np.asarray(audio, np.float32)
                self.audio = a[:, None] if a.ndim == 1 else a[:, :2]
                self.sr = int(sr)
                self.as_ = self.c.add_stream("aac", rate=self.sr)
                self.as_.layout = "mono" if self.audio.shape[1] == 1 else "stereo"
                self.as_.bit_rate = 192000
                self._a_done = 0
        except av.FFmpegError as e:
            self._cleanup()
            raise LivetexError(f"cannot create {self.path}: {e}") from None

    def write(self, rgb: np.ndarray) -> None:
        """Append one RGB frame (H, W, 3) uint8 of the size given at construction."""
        h, w = rgb.shape[:2]
        if (w, h) != self.size:
            raise ValueError(f"frame is {w}x{h}, writer expects {self.size[0]}x{self.size[1]}")
        if self.out_size != self.size:
            rgb = np.pad(rgb, ((0, self.out_size[1] - h), (0, self.out_size[0] - w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.n
        frame.time_base = 1 / self.fps
        self.c.mux(self.vs.encode(frame))
        self.n += 1
        if self.audio is not None:
            self._write_audio_until(int(round(self.n * self.sr / self.fps)))

    def _write_audio_until(self, end: int, final: bool = False) -> None:
        while self._a_done + (0 if final else AUDIO_CHUNK) <= end and self._a_done < end:
            a, b = self._a_done, min(self._a_done + AUDIO_CHUNK, end)
            chunk = fit_length(self.audio[a:b], b - a) if a < len(self.audio) else np.zeros((b - a, self.audio.shape[1]), np.float32)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T), format="fltp", layout=self.as_.layout.name)
            frame.sample_rate = self.sr
            frame.pts = a
            frame.time_base = Fraction(1, self.sr)
            self.c.mux(self.as_.encode(frame))
            self._a_done = b

    def close(self) -> str:
        """Flush, finish the file and move it into place. Returns the path."""
        if self._closed:
            return self.path
        if self.n == 0:
            self.abort()
            raise LivetexError("no frames were written")
        try:
            self.c.mux(self.vs.encode(None))
            if self.audio is not None:
                self._write_audio_until(int(round(self.n * self.sr / self.fps)), final=True)
                self.c.mux(self.as_.encode(None))
            self.c.close()
            os.replace(self.tmp, self.path)
        except Exception:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._closed = True
        try:
            self.c.close()
        except Exception:
            pass
        self._cleanup()

    def _cleanup(self) -> None:
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.close()
        else:
            self.abort()
        return False
