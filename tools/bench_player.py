"""Benchmark the real-time player at 360p, 720p and 1080p display size.

    python tools/bench_player.py                         # 60 s per size, live virtual mic if PulseAudio is there
    python tools/bench_player.py --seconds 20 --sizes 720
    python tools/bench_player.py --bundle my.bundle --audio none
    python tools/bench_player.py --x11                   # a real X window under Xvfb instead of headless EGL
    python tools/bench_player.py --vj                    # the VJ rig: 720p, NDI out (received), recording,
                                                         #   MIDI CC driving tau every 100 ms, RSS over time
    python tools/bench_player.py --vj --seconds 1800     # the 30-minute memory run
    python tools/bench_player.py --bank A B C --sizes 720  # a clip bank: 3 clips, the autopilot switches every
                                                         #   4 s (1 bar at 60 bpm); --bank alone: 3 links to --bundle

Each size is one ``livetex play`` process (headless EGL window by default, or an X window under a private
Xvfb with ``--x11``), so the CPU time it reports is the player's alone. With ``--audio mic`` (the default
when PulseAudio is installed) tools/virtual_mic.sh starts a private PulseAudio with a null sink, a song
is played into it in a loop, and the player follows the sink's monitor like a microphone: latency is
measured from each audio block's arrival to the decision that used it.

Without ``--bundle`` the real piano clip (640x480; with ``--vj`` the 1280x720 tai chi clip) is fitted once (``--steps 20``: a real but quickly trained
model; the player's cost does not depend on the model's quality) into ``--cache`` and reused.

With ``--ndi`` the player sends over NDI (restricted to the loopback interface unless NDI_CONFIG_DIR is
set) and a receiver process takes every frame; ``--record`` records the set to a temporary mp4;
``--midi-tau`` starts a JACK server (dummy driver; or uses ALSA's sequencer) and a virtual controller
whose CC moves the temperature every 100 ms. The player's RSS and CPU are sampled from /proc every
5 s: "steady cores" leave out the first 10 s (start-up), "RSS" is first sample / last / max and its
slope after the first minute.

Columns: fps (source / shown), dropped frames (late + not ready), audio-to-decision latency p50/p99,
look-ahead (decision to display), draw time per frame p50/p99, seam time p50, CPU (cores = CPU s / wall s,
startup included), and the machine's 1-minute load average when the run ended (other processes
compete for the same cores: numbers on a busy machine are pessimistic).
"""

from __future__ import annotations

import argparse
import json
import threading
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MEDIA = os.environ.get("LIVETEX_MEDIA", os.path.join(HERE, "..", "..", "shared", "media"))
VIRTUAL_MIC = os.path.join(HERE, "virtual_mic.sh")
SIZES = {"360": (640, 360), "720": (1280, 720), "1080": (1920, 1080)}


def ensure_bundle(cache: str, clip: str = "piano_solo_01.avi") -> str:
    out = os.path.join(cache, f"{clip.split('_')[0]}-steps20.bundle")
    if os.path.isdir(out):
        return out
    video = os.path.join(MEDIA, clip)
    if not os.path.isfile(video):
        sys.exit(f"bench_player: {video} not found; pass --bundle")
    os.makedirs(cache, exist_ok=True)
    print(f"fitting {video} -> {out} (once; --steps 20) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "livetex", "fit", video, "-o", out, "--steps", "20"], check=True)
    return out


def start_pulse(d: str) -> dict | None:
    if not shutil.which("pulseaudio"):
        return None
    r = subprocess.run(["sh", VIRTUAL_MIC, "start", d], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"bench_player: no virtual mic ({r.stderr.strip()})", file=sys.stderr)
        return None
    env = dict(os.environ)
    for line in r.stdout.splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        env[k] = v.strip("'")
    return env


def start_xvfb():
    r, w = os.pipe()
    p = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                         pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    num = b""
    while not num.endswith(b"\n"):
        ready, _, _ = select.select([r], [], [], 15)
        if not ready:
            sys.exit("bench_player: Xvfb did not start")
        num += os.read(r, 64)
    return p, r, f":{num.decode().strip()}"


def _proc_sample(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, RSS MB) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, rss / 1024


def start_jack(env: dict) -> subprocess.Popen | None:
    """A private JACK server with the dummy driver (a real MIDI system where ALSA has no sequencer)."""
    if os.path.exists("/dev/snd/seq"):
        return None
    if not shutil.which("jackd"):
        sys.exit("bench_player: --midi-tau needs ALSA's sequencer or JACK (apt-get install jackd2)")
    name = f"livetex-bench-{os.getpid()}"
    env.update(JACK_DEFAULT_SERVER=name, JACK_NO_AUDIO_RESERVATION="1", JACK_NO_START_SERVER="1")
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    p = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    return p


class Controller(threading.Thread):
    """A virtual MIDI controller whose CC 1 sweeps the temperature fader every 100 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        import rtmidi
        api = rtmidi.API_LINUX_ALSA if os.path.exists("/dev/snd/seq") else rtmidi.API_UNIX_JACK
        self.out = rtmidi.MidiOut(api, name="bench")
        self.out.open_virtual_port("bench-knobs")
        self.stop = threading.Event()
        self.sent = 0

    def run(self):
        t0 = time.perf_counter()
        while not self.stop.is_set():
            self.out.send_message([0xB0, 1, 40 + (self.sent * 7) % 60])     # tau between ~0.09 and 0.8
            self.sent += 1
            left = t0 + self.sent * 0.1 - time.perf_counter()
            if left > 0:
                time.sleep(left)


def ndi_receive(name: str, seconds: float) -> None:
    """Receiver mode (a process of its own): take every frame of NDI source NAME, print how many."""
    from cyndilib.finder import Finder
    from cyndilib.receiver import Receiver
    from cyndilib.video_frame import VideoFrameSync
    from cyndilib.wrapper.ndi_recv import RecvBandwidth, RecvColorFormat
    f = Finder()
    f.open()
    src, t0 = None, time.time()
    while src is None and time.time() - t0 < 30:
        f.wait_for_sources(0.5)
        src = next((n for n in f.get_source_names() if f"({name})" in n), None)
    if src is None:
        print("0 not-found", flush=True)
        return
    r = Receiver(color_format=RecvColorFormat.RGBX_RGBA, bandwidth=RecvBandwidth.highest)
    vf = VideoFrameSync()
    r.frame_sync.set_video_frame(vf)
    r.set_source(f.get_source(src))
    n, last, t_end = 0, None, time.time() + seconds
    while time.time() < t_end:
        r.frame_sync.capture_video()
        ts = vf.get_timestamp_posix()
        if vf.xres > 0 and ts != last:
            last, n = ts, n + 1
        time.sleep(0.005)
    print(n, vf.xres, vf.yres, flush=True)


def make_bank(bundles: list[str], tmp: str) -> str:
    """A bank directory of links to ``bundles`` (the same bundle three times if only one is given)."""
    d = os.path.join(tmp, "bank")
    os.makedirs(d)
    for i, b in enumerate(bundles if len(bundles) > 1 else bundles * 3):
        os.symlink(os.path.abspath(b), os.path.join(d, f"clip-{i:02d}"))
    return d


def run_size(bundle, size, seconds, env, audio, tmp, a) -> dict:
    stats = os.path.join(tmp, f"stats-{size[0]}x{size[1]}.json")
    cmd = [sys.executable, "-m", "livetex", "play", bundle, "--size", f"{size[0]}x{size[1]}",
           "--duration", str(seconds), "--stats", stats, "--seed", "0"]
    if a.bank is not None:
        cmd += ["--bpm", "60", "--autopilot", "1"]        # a switch every 4 s
    if "DISPLAY" not in env or env.get("_BENCH_HEADLESS"):
        cmd.append("--headless")
    if audio == "mic":
        cmd += ["--audio", "mic"]
    ndi_name = f"livetex-bench-{os.getpid()}"
    if a.ndi:
        cmd += ["--ndi", ndi_name]
    if a.record:
        cmd += ["--record", os.path.join(tmp, "set.mp4")]
    ctl = None
    if a.midi_tau:
        mapfile = os.path.join(tmp, "map.json")
        with open(mapfile, "w") as f:
            json.dump({"bindings": [{"type": "cc", "channel": 0, "number": 1, "action": "temperature",
                                     "how": "fader"}]}, f)
        ctl = Controller()
        cmd += ["--midi", "bench-knobs", "--midi-map", mapfile]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(p.stderr), daemon=True).start()
    rx = None
    if a.ndi:
        rx = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_ndi-receive", ndi_name,
                               str(seconds)], env=env, stdout=subprocess.PIPE, text=True)
    if ctl is not None:
        ctl.start()
    t0 = time.perf_counter()
    samples = []                  # (t, cpu s, rss MB)
    while p.poll() is None:
        x = _proc_sample(p.pid)
        if x is not None:
            samples.append((time.perf_counter() - t0, *x))
        try:
            p.wait(5.0)
        except subprocess.TimeoutExpired:
            pass
    if ctl is not None:
        ctl.stop.set()
        ctl.join(1.0)
        ctl.out.close_port()
        ctl.out.delete()
    if p.returncode != 0:
        sys.exit(f"bench_player: livetex play failed:\n{''.join(err)}\n(a cached bundle from an older livetex? "
                 f"delete it and run again: {bundle})")
    with open(stats) as f:
        s = json.load(f)
    if rx is not None:
        out, _ = rx.communicate(timeout=60)
        s["ndi_received"] = int(out.split()[0]) if out.strip() else 0
    if ctl is not None:
        s["midi_sent"] = ctl.sent
    steady = [x for x in samples if x[0] >= 10.0]
    if len(steady) >= 2:
        s["steady_cores"] = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0])
    if samples:
        rss = [x[2] for x in samples]
        late = [x for x in samples if x[0] >= 60.0]
        slope = (np.polyfit([x[0] for x in late], [x[2] for x in late], 1)[0] * 60) if len(late) >= 3 else None
        s["rss_mb"] = {"first": rss[0], "last": rss[-1], "max": max(rss), "slope_mb_per_min": slope,
                       "samples": [(round(t, 1), round(r, 1)) for t, _, r in samples]}
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle to play (default: the piano clip, fitted once)")
    ap.add_argument("--seconds", type=float, default=60.0, help="play this long at each size (default 60)")
    ap.add_argument("--sizes", default="360,720,1080", help="display heights to measure (default 360,720,1080)")
    ap.add_argument("--audio", choices=["auto", "mic", "none"], default="auto",
                    help="follow a virtual microphone (default: if PulseAudio is installed)")
    ap.add_argument("--x11", action="store_true", help="draw in an X window under Xvfb instead of headless EGL")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "livetex-bench"),
                    help="where the default bundle is kept between runs")
    ap.add_argument("--json", default=None, help="also write all results to this JSON file")
    ap.add_argument("--ndi", action="store_true", help="send over NDI, with a receiver taking every frame")
    ap.add_argument("--record", action="store_true", help="record the set (to a temporary mp4)")
    ap.add_argument("--midi-tau", action="store_true", help="a MIDI controller moves tau every 100 ms")
    ap.add_argument("--vj", action="store_true", help="720p with --ndi --record --midi-tau")
    ap.add_argument("--bank", nargs="*", default=None, metavar="BUNDLE",
                    help="play a clip bank of these bundles (none: 3 links to --bundle / the default one), "
                         "the autopilot switching every 4 s")
    ap.add_argument("--_ndi-receive", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._ndi_receive:
        ndi_receive(a._ndi_receive[0], float(a._ndi_receive[1]))
        return
    if a.vj:
        a.ndi = a.record = a.midi_tau = True
        if a.sizes == ap.get_default("sizes"):
            a.sizes = "720"

    # The rig's bench sends and records real 720p frames: the tai chi clip (1280x720, 17 s).
    bundle = a.bundle or (a.bank[0] if a.bank else None) or ensure_bundle(
        a.cache, "taichi_solo_01.mp4" if a.vj else "piano_solo_01.avi")
    env = dict(os.environ, _BENCH_HEADLESS="1")
    procs = []
    tmp = tempfile.mkdtemp(prefix="livetex-bench-")
    if a.bank is not None:
        bundle = make_bank(a.bank or [bundle], tmp)
    pulse_dir = os.path.join(tmp, "pulse")
    audio = a.audio
    try:
        if audio in ("auto", "mic"):
            penv = start_pulse(pulse_dir)
            if penv is None and audio == "mic":
                sys.exit("bench_player: --audio mic needs PulseAudio (apt-get install pulseaudio pulseaudio-utils)")
            audio = "mic" if penv is not None else "none"
            if penv is not None:
                env.update({k: v for k, v in penv.items() if k.startswith("PULSE")})
                song = os.path.join(MEDIA, "rock_backing_01.ogg")
                loop = (f'while true; do sh "{VIRTUAL_MIC}" play "{song}" "{pulse_dir}"; done')
                procs.append(subprocess.Popen(["sh", "-c", loop], env=env, start_new_session=True,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(0.5)
        if a.x11:
            xp, xfd, disp = start_xvfb()
            procs.append(xp)
            env["DISPLAY"] = disp
            env.pop("_BENCH_HEADLESS")
        if a.ndi and "NDI_CONFIG_DIR" not in env:
            # This machine has no multicast: discovery by unicast to the loopback interface.
            cfg = os.path.join(tmp, "ndi")
            os.makedirs(cfg)
            with open(os.path.join(cfg, "ndi-config.v1.json"), "w") as f:
                json.dump({"ndi": {"networks": {"ips": "127.0.0.1", "discovery": ""},
                                   "adapters": {"allowed": ["127.0.0.1"]},
                                   "multicast": {"send": {"enable": False}, "recv": {"enable": False}}}}, f)
            env["NDI_CONFIG_DIR"] = cfg
        if a.midi_tau:
            jack = start_jack(env)
            if jack is not None:
                procs.append(jack)
        rows = []
        extras = " ".join(x for x, on in (("NDI", a.ndi), ("recording", a.record), ("MIDI tau", a.midi_tau)) if on)
        print(f"{extras or 'no outputs'}", flush=True)
        print(f"bundle {bundle}  audio {audio}  {'Xvfb window' if a.x11 else 'headless EGL'}  "
              f"{a.seconds:g} s per size  ({os.cpu_count()} cores)", flush=True)
        head = (f"{'display':>9s} {'fps src/shown':>14s} {'dropped':>8s} {'lat p50/p99 ms':>15s} {'lead ms':>8s} "
                f"{'draw p50/p99 ms':>16s} {'seam ms':>8s} {'CPU cores':>9s} {'load':>5s}")
        print(head, flush=True)
        for h in a.sizes.split(","):
            size = SIZES.get(h.strip().rstrip("p"))
            if size is None:
                sys.exit(f"bench_player: unknown size {h!r}; use {', '.join(SIZES)}")
            s = run_size(bundle, size, a.seconds, env, audio, tmp, a)
            load = os.getloadavg()[0]
            lat = s["latency_ms"]
            fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
            row = (f"{size[1]:>8d}p {s['fps_source']:>6.3g}/{(s['fps_shown'] or 0):<7.3g} {s['dropped']:>8d} "
                   f"{fmt(lat['p50']):>7s}/{fmt(lat['p99']):<7s} {fmt(s['lead_ms']['p50']):>8s} "
                   f"{fmt(s['draw_ms']['p50']):>7s}/{fmt(s['draw_ms']['p99']):<8s} {fmt(s['seam_ms']['p50']):>8s} "
                   f"{s['cpu']['cores']:>9.2f} {load:>5.1f}")
            print(row, flush=True)
            extra = []
            if "steady_cores" in s:
                extra.append(f"steady cores {s['steady_cores']:.2f}")
            if "rss_mb" in s:
                r = s["rss_mb"]
                slope = "-" if r["slope_mb_per_min"] is None else f"{r['slope_mb_per_min']:+.2f} MB/min after 60 s"
                extra.append(f"RSS {r['first']:.0f} -> {r['last']:.0f} MB (max {r['max']:.0f}; {slope})")
            if "ndi" in s:
                extra.append(f"NDI sent {s['ndi']['sent']}, skipped {s['ndi']['skipped']}, received "
                             f"{s.get('ndi_received', '-')}")
            if "record" in s:
                extra.append(f"recorded {s['record']['frames']} frames ({s['record']['dropped']} dropped"
                             f"{', FAILED: ' + s['record']['failed'] if s['record']['failed'] else ''})")
            if "bank" in s:
                bk, late = s["bank"], sum(w["late"] for w in s["bank"]["switches"])
                extra.append(f"bank of {len(bk['clips'])}: {len(bk['switches'])} switches ({late} late, prepared "
                             f"in {max([w['prep_s'] for w in bk['switches']] or [0]):.2f} s at most), "
                             f"{bk['opened']} bundles opened")
            if "midi_sent" in s:
                taus = {r["temperature"] for r in s["decisions_log"]}
                extra.append(f"MIDI CCs sent {s['midi_sent']}, received {s['midi']['received']}, "
                             f"{len(taus)} distinct tau in the decisions")
            if extra:
                print("          " + "; ".join(extra), flush=True)
            rows.append({"size": list(size), "load": load, **{k: v for k, v in s.items()
                                                             if k not in ("decisions_log", "shown_source_frames")}})
        if a.json:
            with open(a.json, "w") as f:
                json.dump(rows, f, indent=1)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 15) if p.args[0] == "sh" else p.terminate()
            except ProcessLookupError:
                pass
        if os.path.isdir(pulse_dir):
            subprocess.run(["sh", VIRTUAL_MIC, "stop", pulse_dir], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
