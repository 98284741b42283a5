"""``--ndi NAME``: the picture sent over NDI (cyndilib, which ships the NDI runtime), so Resolume, OBS,
TouchDesigner or vMix on this or another machine receive it as a source called ``HOST (NAME)``.

What is sent is what the window shows in each frame slot, without the HUD, at the frame store's size
and the source fps. The window hands each slot to :meth:`NdiOut.frame`, which only keeps a reference;
this module's thread converts it to RGBX and sends it. If sending falls behind, the older picture is
replaced by the newer one (counted in ``ndi.skipped``): the window never waits for the network.

Faults never stop the show: a name already used by another sender on this machine gets a number
(``NAME 2``), said once in the console and on the HUD; a sender that fails mid-set stops sending with
one line. Discovery follows NDI's own configuration (``NDI_CONFIG_DIR``/``ndi-config.v1.json``: e.g.
a discovery server or extra IPs for networks without multicast).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from fractions import Fraction

import numpy as np

from ..errors import LivetexError
from .priority import lower_priority

MAX_SUFFIX = 9           # NAME, NAME 2, ... NAME 9


def available() -> str | None:
    """None if NDI can be used, else why not."""
    try:
        import cyndilib  # noqa: F401
    except Exception as e:
        return f"NDI is not available in this installation ({e}); pip install 'livetex[ndi]'"
    return None


class NdiOut:
    def __init__(self, name: str, size: tuple[int, int], fps: float, stats=None):
        why = available()
        if why:
            raise LivetexError(why)
        if not name or len(name) > 200 or any(c in name for c in "()\n"):
            raise LivetexError(f"--ndi: bad source name {name!r} (no parentheses, at most 200 characters)")
        self.requested = name
        self.w, self.h = size
        self.fps = Fraction(fps).limit_denominator(1001)
        self.stats = stats
        self.sent = 0
        self.skipped = 0
        self.failed: str | None = None
        self.note = ""                    # said on the HUD (e.g. the name was in use)
        self._slot = None                 # (n, rgb) waiting to be sent
        self._cv = threading.Condition()
        self._stop = False
        self._connections = 0
        self._rgbx = np.empty((self.h, self.w, 4), np.uint8)
        self._rgbx[..., 3] = 255
        self.sender, self.name = self._open()
        if self.name != name:
            self.note = f"name {name!r} in use, sending as {self.name!r}"
            self._say(f"NDI: the name {name!r} is in use on this machine: sending as {self.name!r}")
        self.thread = threading.Thread(target=self._run, name="livetex-ndi", daemon=True)

    def _say(self, msg: str) -> None:
        if self.stats is not None:
            self.stats.event(msg)

    def _open(self):
        from cyndilib.audio_frame import AudioSendFrame
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper import FourCC
        last = None
        for i in range(1, MAX_SUFFIX + 1):
            name = self.requested if i == 1 else f"{self.requested} {i}"
            s = Sender(name, clock_video=False)
            vf = VideoSendFrame()
            vf.set_resolution(self.w, self.h)
            vf.set_frame_rate(self.fps)
            vf.set_fourcc(FourCC.RGBX)
            s.set_video_frame(vf)
            # cyndilib's error path (a name in use) reads the audio frame: without one it crashes.
            af = AudioSendFrame()
            af.sample_rate, af.num_channels = 48000, 2
            af.set_max_num_samples(1600)
            s.set_audio_frame(af)
            try:
                with contextlib.redirect_stdout(io.StringIO()):     # cyndilib prints its own errors
                    s.open()
                return s, name
            except Exception as e:     # NDIlib_send_create refused: the name is taken on this machine
                last = e
        raise LivetexError(f"--ndi: cannot create an NDI sender named {self.requested!r} or {MAX_SUFFIX - 1} "
                           f"numbered variants ({type(last).__name__}: {last})")

    @property
    def source_name(self) -> str:
        src = self.sender.source
        return src.name if src is not None else self.name

    def start(self) -> "NdiOut":
        self.thread.start()
        return self

    def frame(self, n: int, rgb: np.ndarray) -> None:
        """The window's frame slot ``n`` (called on the drawing thread: only a hand-over)."""
        if self.failed:
            return
        with self._cv:
            if self._slot is not None:
                self.skipped += 1
            self._slot = (n, rgb)
            self._cv.notify()

    def _run(self) -> None:
        import cv2
        lower_priority()
        last_poll = 0.0
        while True:
            with self._cv:
                while self._slot is None and not self._stop:
                    self._cv.wait(0.5)
                if self._stop:
                    return
                n, rgb = self._slot
                self._slot = None
            try:
                if rgb.shape[:2] != (self.h, self.w):
                    rgb = cv2.resize(rgb, (self.w, self.h), interpolation=cv2.INTER_AREA)
                cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA, dst=self._rgbx)
                self.sender.write_video(self._rgbx.reshape(-1))
                self.sent += 1
                now = time.perf_counter()
                if now - last_poll > 1.0:
                    last_poll = now
                    self._connections = int(self.sender.get_num_connections(0))
            except Exception as e:
                self.failed = f"{type(e).__name__}: {e}"
                self._say(f"NDI: sending stopped ({self.failed}); the show goes on without it")
                return

    def status(self) -> str:
        if self.failed:
            return "NDI STOPPED"
        s = f"NDI {self.name!r} -> {self._connections}"
        return f"{s} ({self.note})" if self.note else s

    def info(self) -> dict:
        return {"name": self.name, "requested": self.requested, "source": self.source_name, "sent": self.sent,
                "skipped": self.skipped, "failed": self.failed, "size": [self.w, self.h]}

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self.thread.is_alive():
            self.thread.join(2.0)
        try:
            self.sender.close()
        except Exception:
            pass
