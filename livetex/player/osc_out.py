"""``--osc-out HOST:PORT``: what livetex hears and shows, sent over OSC so other tools can follow it.

Addresses (UDP, one message each)::

    /livetex/out/level      f f      0..1 (-60..0 dBFS), dBFS           every analysis hop (~12 ms)
    /livetex/out/bands      f f f    low mid high, each 0..1            every hop
    /livetex/out/low, /mid, /high f  the same, one band each            every hop
    /livetex/out/hit        f        an onset, its strength 0..1        when one is heard
    /livetex/out/bpm        f f      tempo heard in the audio, confidence 0..1       twice a second
    /livetex/out/tempo      f i f    the tempo clock: bpm, beat in the bar (1..4), phase 0..1   every hop
    /livetex/out/beat       i        a beat of the tempo clock passed (1..4)
    /livetex/out/segment    i i      the walk's step: segment of its last frame, 1 if it cut    each step
    /livetex/out/jump       i i      a cut: from source frame, to source frame                  each cut
    /livetex/out/position   f i      source position shown: 0..1, source frame                   each frame

Without audio (no ``--audio``) only the tempo and texture messages are sent. The audio is read where
the player already has it (the microphone's ring, or the song at the clock's position: what was
heard), on this module's own thread. Sending never blocks the show: a refused or unreachable
destination is reported once and the messages keep going out.
"""

from __future__ import annotations

import math
import socket
import threading

from ..errors import LivetexError
from .analysis import Analyzer
from .priority import lower_priority

PREFIX = "/livetex/out"
POLL_S = 0.01


def parse_host_port(s: str) -> tuple[str, int]:
    host, sep, port = s.rpartition(":")
    if not sep or not host:
        raise ValueError(f"must look like HOST:PORT, got {s!r}")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"not a port number: {port!r}") from None
    if not 1 <= p <= 65535:
        raise ValueError(f"port must be 1..65535, got {p}")
    return host.strip("[]"), p


class OscOut:
    def __init__(self, host: str, port: int, tempo, n_source: int, audio=None, stats=None):
        from pythonosc.udp_client import SimpleUDPClient
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise LivetexError(f"--osc-out: cannot resolve {host!r}: {e.strerror}") from None
        fam = infos[0][0]
        self.client = SimpleUDPClient(infos[0][4][0], port, family=fam)
        self.host, self.port = host, port
        self.tempo, self.n_source, self.audio, self.stats = tempo, max(1, int(n_source)), audio, stats
        self.analyzer = Analyzer(audio.sr) if audio is not None else None
        self.sent = 0
        self.errors = 0
        self._shown = (-1, -1)              # (output frame, source frame) last drawn
        self._sent_shown = -1
        self._steps: list[dict] = []
        self._lock = threading.Lock()
        self._beat = None
        self._bpm_t = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="livetex-osc-out", daemon=True)

    def start(self) -> "OscOut":
        self.thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(2.0)

    # ---- fed by the scheduler (a decision) and the window (a frame shown); both only store
    def on_step(self, rec: dict) -> None:
        with self._lock:
            self._steps.append({"segment": rec["segment"], "jump": bool(rec["jump"]), "cuts": rec.get("cuts", [])})

    def frame(self, n: int, rgb) -> None:
        self._shown = (n, self._src())

    def set_source_of(self, fn) -> None:
        self._src = fn

    def _src(self) -> int:
        return -1

    # ---- the thread
    def _send(self, addr: str, *args) -> None:
        try:
            self.client.send_message(f"{PREFIX}/{addr}", list(args))
            self.sent += 1
        except OSError as e:
            self.errors += 1
            if self.errors == 1 and self.stats is not None:
                self.stats.event(f"--osc-out {self.host}:{self.port}: cannot send ({e.strerror or e}); "
                                 "playing on, still trying")

    def _run(self) -> None:
        lower_priority()
        ticks = 0
        while not self._stop.wait(POLL_S):
            with self._lock:
                steps, self._steps = self._steps, []
            for s in steps:
                self._send("segment", int(s["segment"]), int(s["jump"]))
                for a, b in s["cuts"]:
                    self._send("jump", int(a), int(b))
            n, src = self._shown
            if n != self._sent_shown and src >= 0:
                self._sent_shown = n
                self._send("position", round(src / max(1, self.n_source - 1), 5), int(src))
            tp = self.tempo.snapshot()
            beat = math.floor(tp["beat"])
            if self._beat is not None and beat != self._beat:
                self._send("beat", tp["bar_beat"])
            self._beat = beat
            if self.analyzer is None:
                ticks += 1
                if ticks % 4 == 0:            # 25 a second, as often as a picture changes
                    self._send("tempo", tp["bpm"], tp["bar_beat"], tp["phase"])
                continue
            try:
                frames = self.analyzer.push(self.audio.read())
            except Exception as e:       # a closing stream, a device gone: the show goes on
                frames = []
                self.errors += 1
                if self.errors == 1 and self.stats is not None:
                    self.stats.event(f"--osc-out: audio analysis failed ({e}); playing on")
            for f in frames:
                self._send("level", f.level, f.level_db)
                b = f.bands
                self._send("bands", b["low"], b["mid"], b["high"])
                for name in ("low", "mid", "high"):
                    self._send(name, b[name])
                if f.hit:
                    self._send("hit", f.hit)
                if f.bpm is not None and f.t - self._bpm_t >= 0.5:
                    self._bpm_t = f.t
                    self._send("bpm", f.bpm, f.confidence)
                    self.tempo.audio_estimate(f.bpm, f.confidence)
            if frames:
                self._send("tempo", tp["bpm"], tp["bar_beat"], tp["phase"])
