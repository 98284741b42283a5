"""``--record out.mp4``: the set as the audience saw and heard it.

Video: one picture per output frame slot at the source fps, the picture that was on screen in that
slot (a dropped or frozen slot repeats the previous picture, as the screen did; the HUD is not
recorded), H.264. Audio: the song as heard (its samples up to the clock, which *is* the song's
playback position), or the microphone (its samples as they arrived, from the moment the clock
started; none while paused), AAC. Without audio, video only.

The file is a fragmented MP4 (a fragment a second) written to ``out.mp4.part`` and renamed to
``out.mp4`` when the player stops: if the player is killed, ``out.mp4.part`` plays up to the last
second. Encoding runs on this module's thread behind a queue of a few seconds; if it falls behind,
slots are dropped from the recording (counted, said once). A write error (a full disk) stops the
recording with one line on the console and the HUD, and the show goes on; the part file keeps what
was written.
"""

from __future__ import annotations

import os
import queue
import threading
from fractions import Fraction

import numpy as np

from ..errors import LivetexError
from .priority import lower_priority

QUEUE_S = 4.0           # seconds of frames the encoder may lag behind before slots are dropped
CRF = 18                # visually lossless for most material; the recording is compared to what was shown


class _File:
    """A file object for PyAV that remembers the first OS error (PyAV turns it into its own)."""

    def __init__(self, path: str):
        self.f = open(path, "wb")
        self.error: OSError | None = None
        self.written = 0

    def write(self, b) -> int:
        if self.error is not None:
            raise self.error
        try:
            n = self.f.write(b)
            self.f.flush()          # a fragment on disk is a fragment that survives a kill
        except OSError as e:
            self.error = e
            raise
        self.written += n
        return n

    def tell(self) -> int:
        return self.f.tell()

    def seek(self, *a):
        return self.f.seek(*a)

    def seekable(self) -> bool:
        return False            # fragmented output never needs to go back

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:
            self.error = self.error or e


class Recorder:
    """``audio``: a tap (audio_in.SongTap / MicTap: ``sr``, ``sync()``, ``read()`` -> new mono float32
    samples), or None."""

    def __init__(self, path: str, size: tuple[int, int], fps: float, audio=None, stats=None, controls=None):
        import av
        d = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(d):
            raise LivetexError(f"cannot write the recording {path}: directory {d} does not exist")
        if not os.access(d, os.W_OK):
            raise LivetexError(f"cannot write the recording {path}: directory {d} is not writable")
        self.path, self.part = path, f"{path}.part"
        self.w, self.h = size
        self.fps = Fraction(fps).limit_denominator(1001)
        self.audio, self.stats, self.controls = audio, stats, controls
        self.frames = 0
        self.dropped = 0
        self.audio_samples = 0
        self.failed: str | None = None
        self.q: queue.Queue = queue.Queue(maxsize=max(4, int(QUEUE_S * float(self.fps))))
        self.file = _File(self.part)
        try:
            self.out = av.open(self.file, "w", format="mp4",
                               options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
            v = self.out.add_stream("libx264", rate=self.fps)
            v.width, v.height, v.pix_fmt = self.w - self.w % 2, self.h - self.h % 2, "yuv420p"
            v.codec_context.time_base = 1 / self.fps
            v.codec_context.gop_size = max(1, round(float(self.fps)))      # a keyframe (a fragment) a second
            v.codec_context.options = {"preset": "ultrafast", "crf": str(CRF), "tune": "zerolatency"}
            v.codec_context.thread_count = 1
            self.v = v
            self.a = None
            if audio is not None:
                self.a = self.out.add_stream("aac", rate=int(audio.sr))
                self.a.layout = "mono"
                self.a_fmt = av.AudioFormat("fltp")
        except Exception as e:
            self.file.close()
            _unlink(self.part)
            raise LivetexError(f"cannot record to {path}: {e}") from None
        self._first_n = None
        self._audio_pts = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="livetex-record", daemon=True)

    def start(self) -> "Recorder":
        self.thread.start()
        return self

    def _say(self, msg: str) -> None:
        if self.stats is not None:
            self.stats.event(msg)
        if self.controls is not None:
            self.controls.bump()

    # ---- the window's thread: hand over only
    def frame(self, n: int, rgb: np.ndarray) -> None:
        if self.failed:
            return
        try:
            self.q.put_nowait((n, rgb))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                self._say("recording: the encoder is behind, frame slots are dropped from the recording "
                          "(the show is not affected)")

    # ---- the encoder's thread
    def _run(self) -> None:
        import av
        lower_priority()
        while True:
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                item = None
            if self.failed:
                return
            try:
                if item is not None:
                    n, rgb = item
                    if self._first_n is None:
                        self._first_n = n
                        if self.audio is not None:
                            self.audio.sync()
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:self.v.height, :self.v.width]),
                                                       format="rgb24")
                    frame.pts = n - self._first_n
                    for p in self.v.encode(frame):
                        self.out.mux(p)
                    self.frames += 1
                self._audio()
            except Exception as e:
                self._fail(e)
                return
            if item is None and self._stop.is_set() and self.q.empty():
                return

    def _audio(self) -> None:
        if self.a is None or self._first_n is None:
            return
        x = self.audio.read()
        if self.controls is not None and self.controls.paused:
            return                     # nothing was heard into the set while the clock stood still
        if len(x) == 0:
            return
        import av
        x = np.ascontiguousarray(x, np.float32).reshape(1, -1)
        f = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
        f.sample_rate = self.a.rate
        f.pts = self._audio_pts
        self._audio_pts += x.shape[1]
        self.audio_samples += x.shape[1]
        for p in self.a.encode(f):
            self.out.mux(p)

    def _fail(self, e: Exception) -> None:
        err = self.file.error or e
        why = (err.strerror or str(err)) if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
        self.failed = why
        self.file.close()
        self._say(f"recording stopped: {why}; what was recorded until then is in {self.part}; the show goes on")

    def status(self) -> str:
        if self.failed:
            return f"REC STOPPED: {self.failed}"
        return f"REC {self.frames / float(self.fps):.0f} s"

    def close(self) -> dict:
        """Flush, finish and rename to the final name (unless it failed: then the part file stays)."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(30.0)
        if not self.failed:
            try:
                if self.a is not None:
                    self._audio()
                    for p in self.a.encode(None):
                        self.out.mux(p)
                for p in self.v.encode(None):
                    self.out.mux(p)
                self.out.close()
                self.file.close()
                if self.file.error:
                    raise self.file.error
                os.replace(self.part, self.path)
            except Exception as e:
                self._fail(e)
        return self.info()

    def abort(self) -> dict:
        """The show never started: leave nothing behind."""
        self._stop.set()
        self.failed = self.failed or "not started"
        if self.thread.is_alive():
            self.thread.join(5.0)
        self.file.close()
        _unlink(self.part)
        return self.info()

    def info(self) -> dict:
        return {"path": self.path if not self.failed else self.part, "frames": self.frames,
                "dropped": self.dropped, "first_output_frame": self._first_n,
                "audio_seconds": round(self.audio_samples / self.audio.sr, 3) if self.audio else 0.0,
                "failed": self.failed}


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass
