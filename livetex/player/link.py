"""``--link``: the tempo clock in an Ableton Link session, so livetex keeps time with Ableton Live,
Resolume, TouchDesigner, Traktor or a phone app on the same network.

Link's library is GPL-licensed, so it is an optional extra (``pip install 'livetex[link]'``: the
LinkPython-extern wheel), off unless ``--link`` is given; livetex itself stays MIT.

Every 20 ms this thread compares the two clocks:

- a change made here (tap, MIDI clock, ``/livetex/bpm``, x2 / /2) is pushed to the session;
- otherwise, while other peers are in the session, the tempo clock follows the session's tempo and
  beat (a bar is 4 beats: the Link quantum), so beats fall together on every peer.
"""

from __future__ import annotations

import threading
import time

from ..errors import LivetexError

QUANTUM = 4.0
POLL_S = 0.02


class LinkSync:
    def __init__(self, tempo, stats=None):
        try:
            import link
        except ImportError:
            raise LivetexError("--link needs Ableton Link: pip install 'livetex[link]' (LinkPython-extern; "
                               "Link is GPL-licensed, which is why it is not installed by default)") from None
        self.tempo, self.stats = tempo, stats
        self.link = link.Link(tempo.bpm)
        self.link.enabled = True
        self.peers = 0
        self._seen = tempo.version
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="livetex-link", daemon=True)

    def start(self) -> "LinkSync":
        self.thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(1.0)
        self.link.enabled = False

    def _say(self, msg: str) -> None:
        if self.stats is not None:
            self.stats.event(msg)

    def _run(self) -> None:
        tc = self.tempo
        while not self._stop.wait(POLL_S):
            us = self.link.clock().micros()
            t = time.perf_counter()
            state = self.link.captureAppSessionState()
            peers = self.link.numPeers()
            if peers != self.peers:
                self._say(f"Link: {peers} other peer{'s' if peers != 1 else ''} in the session, at "
                          f"{state.tempo():.1f} bpm")
                self.peers = peers
            if tc.version != self._seen and tc.source != "link":
                # Changed here since the last look: the session takes it.
                state.setTempo(tc.bpm, us)
                self.link.commitAppSessionState(state)
            elif peers > 0:
                tc.follow(state.tempo(), state.beatAtTime(us, QUANTUM), t, "link")
            self._seen = tc.version

    def status(self) -> str:
        return f"LINK {self.peers} peer{'s' if self.peers != 1 else ''}"
