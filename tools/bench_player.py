"""Benchmark the real-time player at 360p, 720p and 1080p display size.

    python tools/bench_player.py                         # 60 s per size, live virtual mic if PulseAudio is there
    python tools/bench_player.py --seconds 20 --sizes 720
    python tools/bench_player.py --bundle my.bundle --audio none
    python tools/bench_player.py --x11                   # a real X window under Xvfb instead of headless EGL

Each size is one ``livetex play`` process (headless EGL window by default, or an X window under a private
Xvfb with ``--x11``), so the CPU time it reports is the player's alone. With ``--audio mic`` (the default
when PulseAudio is installed) tools/virtual_mic.sh starts a private PulseAudio with a null sink, a song
is played into it in a loop, and the player follows the sink's monitor like a microphone: latency is
measured from each audio block's arrival to the decision that used it.

Without ``--bundle`` the real piano clip is fitted once (``--steps 20``: a real but quickly trained
model; the player's cost does not depend on the model's quality) into ``--cache`` and reused.

Columns: fps (source / shown), dropped frames (late + not ready), audio-to-decision latency p50/p99,
look-ahead (decision to display), draw time per frame p50/p99, seam time p50, CPU (cores = CPU s / wall s,
startup included), and the machine's 1-minute load average when the run ended (other processes
compete for the same cores: numbers on a busy machine are pessimistic).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MEDIA = os.environ.get("LIVETEX_MEDIA", os.path.join(HERE, "..", "..", "shared", "media"))
VIRTUAL_MIC = os.path.join(HERE, "virtual_mic.sh")
SIZES = {"360": (640, 360), "720": (1280, 720), "1080": (1920, 1080)}


def ensure_bundle(cache: str) -> str:
    out = os.path.join(cache, "piano-steps20.bundle")
    if os.path.isdir(out):
        return out
    video = os.path.join(MEDIA, "piano_solo_01.avi")
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


def run_size(bundle, size, seconds, env, audio, tmp) -> dict:
    stats = os.path.join(tmp, f"stats-{size[0]}x{size[1]}.json")
    cmd = [sys.executable, "-m", "livetex", "play", bundle, "--size", f"{size[0]}x{size[1]}",
           "--duration", str(seconds), "--stats", stats, "--seed", "0"]
    if "DISPLAY" not in env or env.get("_BENCH_HEADLESS"):
        cmd.append("--headless")
    if audio == "mic":
        cmd += ["--audio", "mic"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench_player: livetex play failed:\n{r.stderr}\n(a cached bundle from an older livetex? "
                 f"delete it and run again: {bundle})")
    with open(stats) as f:
        return json.load(f)


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
    a = ap.parse_args()

    bundle = a.bundle or ensure_bundle(a.cache)
    env = dict(os.environ, _BENCH_HEADLESS="1")
    procs = []
    tmp = tempfile.mkdtemp(prefix="livetex-bench-")
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
        rows = []
        print(f"bundle {bundle}  audio {audio}  {'Xvfb window' if a.x11 else 'headless EGL'}  "
              f"{a.seconds:g} s per size  ({os.cpu_count()} cores)", flush=True)
        head = (f"{'display':>9s} {'fps src/shown':>14s} {'dropped':>8s} {'lat p50/p99 ms':>15s} {'lead ms':>8s} "
                f"{'draw p50/p99 ms':>16s} {'seam ms':>8s} {'CPU cores':>9s} {'load':>5s}")
        print(head, flush=True)
        for h in a.sizes.split(","):
            size = SIZES.get(h.strip().rstrip("p"))
            if size is None:
                sys.exit(f"bench_player: unknown size {h!r}; use {', '.join(SIZES)}")
            s = run_size(bundle, size, a.seconds, env, audio, tmp)
            load = os.getloadavg()[0]
            lat = s["latency_ms"]
            fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
            row = (f"{size[1]:>8d}p {s['fps_source']:>6.3g}/{(s['fps_shown'] or 0):<7.3g} {s['dropped']:>8d} "
                   f"{fmt(lat['p50']):>7s}/{fmt(lat['p99']):<7s} {fmt(s['lead_ms']['p50']):>8s} "
                   f"{fmt(s['draw_ms']['p50']):>7s}/{fmt(s['draw_ms']['p99']):<8s} {fmt(s['seam_ms']['p50']):>8s} "
                   f"{s['cpu']['cores']:>9.2f} {load:>5.1f}")
            print(row, flush=True)
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
