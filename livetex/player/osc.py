"""OSC control (python-osc, UDP): every action of the table (actions.py) at ``/livetex/<name>``.

Addresses (``--osc PORT``), as listed by ``livetex play --help``::

    /livetex/temperature  f      sampling temperature (clamped to 0.001..10)
    /livetex/threshold    f      0..1
    /livetex/alpha        f      0..1 (visual weight in the audio mix)
    /livetex/bpm          f      tempo of the beat grid
    /livetex/freeze       [i]    1 freeze / 0 unfreeze / no argument: toggle   (same for paused, hud,
                                 fullscreen, learn)
    /livetex/tap /double /half /nudge_later /nudge_earlier /resync      the tempo clock
    /livetex/clip         i      crossfade to clip i of a bank (1: the first)
    /livetex/clip_next /clip_prev      the next / previous clip (also /livetex/clip/next, /clip/prev)
    /livetex/autopilot    [i]    the bank moves on every N bars (--autopilot N)
    /livetex/screenshot   [s]    save a PNG (default name: livetex-<time>.png)
    /livetex/quit

``/livetex/pause`` is accepted for ``/livetex/paused``. In MIDI learn mode a message arms its action
for the next MIDI control instead of performing it, as a key press does. A bad message (unknown
address, a string where a number belongs) is reported once on stderr and ignored: a controller
cannot stop the show.
"""

from __future__ import annotations

import threading

from ..errors import LivetexError
from .actions import ALIASES, BY_NAME, TABLE, Actions

PREFIX = "/livetex"


class OscServer:
    """``target``: an :class:`Actions` (or a bare Controls, given its own tempo clock)."""

    def __init__(self, target, host: str, port: int, stats=None):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        if not isinstance(target, Actions):
            from .tempo import TempoClock
            target = Actions(target, TempoClock(), stats)
        self.actions, self.stats = target, stats
        self.controls = target.controls
        self.received = 0
        self._complained: set[str] = set()
        d = Dispatcher()
        for a in TABLE:
            d.map(f"{PREFIX}/{a.name}", self._handler(a.name, a.kind))
        for alias, name in ALIASES.items():
            d.map(f"{PREFIX}/{alias}", self._handler(name, BY_NAME[name].kind))
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

    def _complain(self, key: str, msg: str) -> None:
        if key not in self._complained:
            self._complained.add(key)
            if self.stats is not None:
                self.stats.event(f"OSC: {msg} (ignored; further ones are not reported)")

    def _handler(self, name: str, kind: str):
        def handler(addr, *args):
            self.received += 1
            if kind == "param":
                how, value, need = "set", (args[0] if args else None), "one number"
            elif kind == "switch":
                how, value, need = ("set", args[0], "0/1 or nothing") if args else ("press", None, "")
            else:
                how, value, need = "press", (args[0] if args else None), ""
            learner = self.actions.learner
            if learner is not None and learner.learning and name != "learn":
                learner.arm(name, "step" if kind == "param" else "press", 1.0 if kind == "param" else None)
                self.controls.bump()
                return
            try:
                if value is None and kind == "param":
                    raise TypeError
                v = self.actions.perform(name, how, value)
            except (TypeError, ValueError):
                self._complain(addr, f"{addr} needs {need}, got {list(args)!r}")
                return
            if self.stats is not None:
                self.stats.event(f"OSC {addr} -> {v:.4g}" if isinstance(v, float) else f"OSC {addr} -> {v}",
                                 echo=False)
        return handler

    def _unknown(self, addr, *args):
        self.received += 1
        self._complain(addr, f"unknown address {addr}")
