"""MIDI in (mido + python-rtmidi): notes and CCs perform actions (actions.py), MIDI clock drives the
tempo clock, and a learn mode maps a controller without editing a file.

- Ports are found through ALSA's sequencer where the kernel has one (``/dev/snd/seq``), else through a
  running JACK server (python-rtmidi speaks both). ``--midi`` alone takes the first input port;
  ``--midi NAME`` the first whose name contains NAME (case-insensitive).
- Mappings live in a small JSON file (``--midi-map``; default ``~/.config/livetex/midi-map.json``)::

      {"bindings": [{"type": "cc", "channel": 0, "number": 7, "action": "temperature", "how": "fader"},
                    {"type": "note", "channel": 9, "number": 36, "action": "tap", "how": "press"}]}

  ``how``: ``fader`` (a CC's 0..127 spans the knob's range), ``step`` (each press moves one step;
  ``value`` -1 for down), ``press`` (toggle a switch, fire a trigger; a CC fires when it rises past 63).
- Learn (key L, ``/livetex/learn``, or a mapped control): press a key or send an OSC address (its
  action is armed instead of performed), then move a knob or hit a pad: bound, and the file saved.
- A port that vanishes mid-set is reported once (console and HUD); the rest of the show goes on and
  the port is reopened when it comes back.

mido is imported only when ``--midi`` is given (or the ports are listed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from ..errors import LivetexError
from .actions import BY_NAME, lookup

WATCH_S = 1.0        # how often the open port is looked for in the port list
DEFAULT_MAP = os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"),
                           "livetex", "midi-map.json")
HOWS = ("fader", "step", "press")


# ------------------------------------------------------------------------------------------- ports
@contextmanager
def _quiet_stderr():
    """ALSA and JACK print their own complaints on fd 2 when probed; the player says it in one line."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        sys.stderr.flush()
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def _apis() -> list[str]:
    """The rtmidi APIs that work on this machine, ALSA first (``mido`` backend names)."""
    try:
        import mido
        import rtmidi
    except ImportError as e:
        raise LivetexError(f"MIDI is not available in this installation ({e}); pip install mido python-rtmidi") \
            from None
    del mido
    out = []
    os.environ.setdefault("JACK_NO_START_SERVER", "1")     # probing must never start a JACK server
    for api, name in ((rtmidi.API_LINUX_ALSA, "LINUX_ALSA"), (rtmidi.API_UNIX_JACK, "UNIX_JACK")):
        if api not in rtmidi.get_compiled_api():
            continue
        with _quiet_stderr():
            try:
                rtmidi.MidiIn(api, name="livetex-probe").delete()
            except Exception:
                continue
        out.append(name)
    return out


def _backend(api: str):
    import mido
    return mido.Backend(f"mido.backends.rtmidi/{api}", load=True)


def input_ports() -> list[tuple[str, str]]:
    """Every MIDI input port: ``(api, name)``."""
    ports = []
    for api in _apis():
        with _quiet_stderr():
            try:
                names = _backend(api).get_input_names()
            except Exception:
                continue
        ports += [(api, n) for n in names if not n.startswith("livetex")]
    return ports


def port_table() -> str:
    """``livetex play --list-devices``: the MIDI part."""
    try:
        apis = _apis()
    except LivetexError as e:
        return f"MIDI: {e}"
    if not apis:
        return "MIDI: no MIDI system (no ALSA sequencer /dev/snd/seq, no JACK server running)"
    ports = input_ports()
    if not ports:
        return f"MIDI: no input ports ({', '.join(apis)})"
    return "\n".join(["MIDI input ports:"] + [f"  {n}  ({api})" for api, n in ports])


def find_port(name: str | None) -> tuple[str, str]:
    ports = input_ports()
    if not ports:
        apis = _apis()
        where = ", ".join(apis) if apis else "no ALSA sequencer (/dev/snd/seq) and no JACK server running"
        raise LivetexError(f"no MIDI input port found ({where})")
    if not name:
        return ports[0]
    low = name.lower()
    for match in (lambda n: n.lower() == low, lambda n: low in n.lower()):
        hits = [p for p in ports if match(p[1])]
        if hits:
            return hits[0]
    raise LivetexError(f"no MIDI input port matching {name!r}; ports: {', '.join(n for _, n in ports)}")


# ---------------------------------------------------------------------------------------- mappings
def _check_binding(b: dict, where: str) -> dict:
    try:
        kind, ch, num, action = b["type"], int(b["channel"]), int(b["number"]), b["action"]
        how = b.get("how", "press")
    except (KeyError, TypeError, ValueError):
        raise LivetexError(f"{where}: each binding needs type, channel, number and action: {b!r}") from None
    if kind not in ("cc", "note") or not 0 <= ch <= 15 or not 0 <= num <= 127 or how not in HOWS:
        raise LivetexError(f"{where}: bad binding {b!r} (type cc|note, channel 0-15, number 0-127, "
                           f"how {'|'.join(HOWS)})")
    try:
        lookup(action)
    except KeyError:
        raise LivetexError(f"{where}: unknown action {action!r}; actions: {', '.join(BY_NAME)}") from None
    out = {"type": kind, "channel": ch, "number": num, "action": action, "how": how}
    if b.get("value") is not None:
        out["value"] = float(b["value"])
    return out


class MidiMap:
    """Bindings from (type, channel, number) to an action; loaded from and saved to a JSON file."""

    def __init__(self, path: str | None, bindings: list[dict] | None = None):
        self.path = path
        self.bindings: dict[tuple, dict] = {}
        for b in bindings or []:
            self.bindings[(b["type"], b["channel"], b["number"])] = b

    @classmethod
    def load(cls, path: str) -> "MidiMap":
        if not os.path.exists(path):
            return cls(path)
        try:
            with open(path) as f:
                data = json.load(f)
            items = data["bindings"]
            if not isinstance(items, list):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LivetexError(f"cannot read the MIDI map {path}: {e if isinstance(e, OSError) else 'not a JSON '}"
                               f"{'' if isinstance(e, OSError) else 'object with a list of bindings'}") from None
        return cls(path, [_check_binding(b, path) for b in items])

    def get(self, kind: str, channel: int, number: int) -> dict | None:
        return self.bindings.get((kind, channel, number))

    def bind(self, b: dict) -> None:
        b = _check_binding(b, "binding")
        self.bindings[(b["type"], b["channel"], b["number"])] = b
        self.save()

    def save(self) -> None:
        """Atomically (temp file, rename): a crash mid-learn never leaves half a file."""
        if not self.path:
            return
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"bindings": sorted(self.bindings.values(),
                                          key=lambda b: (b["type"], b["channel"], b["number"]))}, f, indent=1)
        os.replace(tmp, self.path)


# ------------------------------------------------------------------------------------------- input
class MidiInput:
    """One MIDI input port feeding the action table and the tempo clock.

    The port is read by a child process (:func:`_child`: python-rtmidi, one line per message on its
    stdout, stamped with the system's monotonic clock so MIDI clock timing survives the hop). A crash
    in the native MIDI code (python-rtmidi's JACK input segfaulted once in a 30-minute soak here) then
    ends that process, not the show: it is said once and the reader is started again.
    """

    def __init__(self, port: str | None, actions, map_path: str | None = DEFAULT_MAP, stats=None):
        self.actions, self.tempo, self.stats = actions, actions.tempo, stats
        self.map = MidiMap.load(map_path) if map_path else MidiMap(None)
        self.api, self.name = find_port(port)
        self.wanted = port
        self.proc = None
        self.lost = False
        self.learning = False
        self.armed: tuple | None = None        # (action, how, value) waiting for a control
        self.received = 0
        self.clock_pulses = 0
        self.restarts = 0
        self._cc_high: dict[tuple, bool] = {}   # a CC bound to a button fires on the rising edge
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._spawn()
        actions.learner = self
        self._reader = threading.Thread(target=self._read, name="livetex-midi", daemon=True)

    def start(self) -> "MidiInput":
        self._reader.start()
        return self

    def _spawn(self) -> None:
        """Start the reading process; LivetexError if it cannot open the port."""
        self.proc = subprocess.Popen([sys.executable, "-m", "livetex.player.midi", "--child", self.api, self.name,
                                      str(os.getpid())], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, bufsize=1,
                                     env={**os.environ, "JACK_NO_START_SERVER": "1"})
        first = self.proc.stdout.readline().strip()
        if first != "open":
            self._kill()
            raise LivetexError(f"cannot open MIDI input {self.name!r}: "
                               f"{first.removeprefix('error ') or 'the MIDI reader ended'}")

    def _kill(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(2.0)

    def _say(self, msg: str) -> None:
        if self.stats is not None:
            self.stats.event(msg)
        self.actions.controls.bump()

    def _read(self) -> None:
        import mido
        while not self._stop.is_set():
            proc = self.proc
            for line in proc.stdout:
                kind, _, rest = line.strip().partition(" ")
                if kind == "m":
                    t, _, data = rest.partition(" ")
                    try:
                        msg = mido.Message.from_bytes(bytes.fromhex(data))
                    except ValueError:
                        continue
                    self._callback(msg, float(t))
                elif kind == "lost" and not self.lost:
                    self.lost = True
                    self._say(f"MIDI port {self.name!r} disappeared: playing on without it, reconnecting when it "
                              "comes back")
                elif kind == "back" and self.lost:
                    self.lost = False
                    self._say(f"MIDI port {self.name!r} is back")
            if self._stop.is_set():
                return
            rc = proc.wait()
            self.restarts += 1
            if self.restarts == 1:
                self._say(f"MIDI reader crashed (exit status {rc}): restarting it, playing on meanwhile")
            while not self._stop.wait(1.0):
                try:
                    self._spawn()
                    self.lost = False
                    break
                except LivetexError:
                    self.lost = True        # the port is gone too: keep trying

    def close(self) -> None:
        self._stop.set()
        self._kill()
        if self._reader.is_alive():
            self._reader.join(2.0)

    # ---- learn
    def set_learning(self, on: bool) -> None:
        with self._lock:
            self.learning, self.armed = bool(on), None
        if self.stats is not None:
            self.stats.event("MIDI learn: press a key (or send its OSC address), then move a control"
                             if on else "MIDI learn off", echo=True)

    def arm(self, action: str, how: str, value) -> None:
        with self._lock:
            self.armed = (action, how, value)
        self._say(f"MIDI learn: {action} - now move a control")

    def _learn(self, kind: str, channel: int, number: int) -> None:
        action, how, value = self.armed
        a = lookup(action)
        if a.kind == "param":
            b_how = "fader" if kind == "cc" else "step"
        else:
            b_how = "press"
        b = {"type": kind, "channel": channel, "number": number, "action": a.name, "how": b_how}
        if value is not None and b_how != "fader":   # a step's size and sign, or which clip a pad calls
            b["value"] = float(value)                  # (clip n); a fader sets the whole range itself
        try:
            self.map.bind(b)
        except OSError as e:
            self._say(f"MIDI learn: cannot save {self.map.path}: {e.strerror or e} (the mapping holds until exit)")
        with self._lock:
            self.armed = None
        self._say(f"MIDI learn: {kind} {number} on channel {channel + 1} -> {a.name} ({b_how})"
                  + (f", saved in {self.map.path}" if self.map.path else ""))

    # ---- messages (rtmidi's thread)
    def _callback(self, msg, t: float | None = None) -> None:
        t = time.perf_counter() if t is None else t
        typ = msg.type
        if typ == "clock":
            self.clock_pulses += 1
            self.tempo.midi_pulse(t)
            return
        if typ == "start":
            self.tempo.midi_start(t)
            return
        self.received += 1
        if typ == "note_on" and msg.velocity > 0:
            key, val = ("note", msg.channel, msg.note), msg.velocity / 127.0
        elif typ == "control_change":
            key, val = ("cc", msg.channel, msg.control), msg.value / 127.0
        else:
            return
        if self.learning and self.armed is not None:
            self._learn(*key)
            return
        b = self.map.get(*key)
        if b is None:
            return
        try:
            if b["how"] == "fader":
                self.actions.perform(b["action"], "fader", val)
            elif key[0] == "cc":
                high = val >= 0.5
                was = self._cc_high.get(key, False)
                self._cc_high[key] = high
                if high and not was:
                    self.actions.perform(b["action"], b["how"], b.get("value"))
            else:
                self.actions.perform(b["action"], b["how"], b.get("value"))
        except (ValueError, TypeError, KeyError) as e:
            self._say(f"MIDI: {b['action']} failed: {e}")

    def status(self) -> str:
        if self.lost:
            return f"MIDI LOST: {self.name}"
        if self.learning:
            if self.armed is None:
                return "MIDI LEARN: press a key"
            return f"MIDI LEARN: {self.armed[0]} <- move a control"
        return f"MIDI {self.name}"


# ------------------------------------------------------------------------------------------- child
def _child(api: str, name: str, parent: int) -> int:
    """The reading process: open ``name``, print one line per message (``m <monotonic time> <hex>``),
    ``lost``/``back`` when the port vanishes and returns; exit when the parent is gone."""
    import rtmidi
    api_id = getattr(rtmidi, f"API_{api}")
    lock = threading.Lock()

    def on_message(event, _data) -> None:
        t = time.perf_counter()        # CLOCK_MONOTONIC: the parent's perf_counter reads the same clock
        line = f"m {t:.6f} {bytes(event[0]).hex()}\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def open_port():
        m = rtmidi.MidiIn(api_id, name="livetex")
        m.ignore_types(sysex=True, timing=False, active_sense=True)
        m.open_port(m.get_ports().index(name), "in")
        m.set_callback(on_message)
        return m

    def say(word: str) -> None:
        with lock:
            sys.stdout.write(word + "\n")
            sys.stdout.flush()
    try:
        port = open_port()
        probe = rtmidi.MidiIn(api_id, name="livetex-watch")
    except Exception as e:
        say(f"error {e}")
        return 1
    say("open")
    lost = False
    while os.getppid() == parent:
        time.sleep(WATCH_S)
        try:
            present = name in probe.get_ports()
        except Exception:
            present = False
        if not present and not lost:
            lost = True
            port.close_port()
            port.delete()
            say("lost")
        elif present and lost:
            try:
                port = open_port()
            except Exception:
                continue
            lost = False
            say("back")
    return 0


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--child":
    try:
        sys.exit(_child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
