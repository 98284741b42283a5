"""OSC control (python-osc, UDP): the keyboard's knobs for a controller, TouchDesigner or Resolume.

Addresses (``--osc PORT``)::

    /livetex/temperature  f      sampling temperature (clamped to 0.001..10)
    /livetex/threshold    f      0..1
    /livetex/alpha        f      0..1 (visual weight in the audio mix)
    /livetex/freeze       [i]    1 freeze / 0 unfreeze / no argument: toggle   (same for the next three)
    /livetex/paused       [i]
    /livetex/hud          [i]
    /livetex/fullscreen   [i]
    /livetex/screenshot   [s]    save a PNG (default name: livetex-<time>.png)
    /livetex/quit

``/livetex/pause`` is accepted for ``/livetex/paused``. A bad message (unknown address, a string where
a number belongs) is reported once on stderr and ignored: a controller cannot stop the show.
"""

from __future__ import annotations

import threading
import time

from ..errors import LivetexError
from .controls import PARAMS, SWITCHES

PREFIX = "/livetex"


class OscServer:
    def __init__(self, controls, host: str, port: int, stats=None):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.controls, self.stats = controls, stats
        self.received = 0
        self._complained: set[str] = set()
        d = Dispatcher()
        for name in PARAMS:
            d.map(f"{PREFIX}/{name}", self._param(name))
        for name in SWITCHES:
            d.map(f"{PREFIX}/{name}", self._switch(name))
        d.map(f"{PREFIX}/pause", self._switch("paused"))
        d.map(f"{PREFIX}/screenshot", self._screenshot)
        d.map(f"{PREFIX}/quit", lambda addr, *a: self._count() or controls.request("quit"))
        d.set_default_handler(self._unknown)
        try:
            self.server = BlockingOSCUDPServer((host, port), d)
        except OSError as e:
            raise LivetexError(f"cannot listen for OSC on {host}:{port}: {e.strerror or e}") from None
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="livetex-osc", daemon=True)

    def start(self) -> "OscServer":
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _count(self) -> None:
        self.received += 1

    def _complain(self, key: str, msg: str) -> None:
        if key not in self._complained:
            self._complained.add(key)
            if self.stats is not None:
                self.stats.event(f"OSC: {msg} (ignored; further ones are not reported)")

    def _param(self, name):
        def handler(addr, *args):
            self._count()
            try:
                v = self.controls.set(name, args[0])
            except (IndexError, TypeError, ValueError):
                self._complain(addr, f"{addr} needs one number, got {list(args)!r}")
                return
            if self.stats is not None:
                self.stats.event(f"OSC {addr} -> {v:.4g}", echo=False)
        return handler

    def _switch(self, name):
        def handler(addr, *args):
            self._count()
            try:
                v = self.controls.toggle(name) if not args else self.controls.set(name, float(args[0]) != 0.0)
            except (TypeError, ValueError):
                self._complain(addr, f"{addr} takes 0/1 or nothing, got {list(args)!r}")
                return
            if name == "fullscreen":
                self.controls.request("fullscreen")
            if self.stats is not None:
                self.stats.event(f"OSC {addr} -> {v}", echo=False)
        return handler

    def _screenshot(self, addr, *args):
        self._count()
        path = str(args[0]) if args else time.strftime("livetex-%Y%m%d-%H%M%S.png")
        self.controls.request("screenshot", path)

    def _unknown(self, addr, *args):
        self._count()
        self._complain(addr, f"unknown address {addr}")
