"""``livetex play``: the real-time player.

One bundle plays forever in a window, on its own or following music (a file or a live microphone).
Threads, each with one job::

    audio callback (PortAudio) -> AudioRing          audio_in.py    mic samples + arrival times (or a song out)
    scheduler thread            -> decided steps     scheduler.py   the walk, one step per stride, ahead of time
                                                     conditioner.py audio window -> T_a row (livetex.audio)
    seam thread                 -> seam frames       scheduler.py   livetex.seams around each jump, if in time
    prefetch thread             -> decoded frames    prefetch.py    JPEG decoding off the drawing thread
    main thread (pyglet)        -> the screen        window.py      draws frame n when the clock says so
    OSC thread (optional)       -> Controls          osc.py         the same knobs as the keyboard

Output frame ``n`` is due at ``n / fps`` seconds of the master clock (the audio file's playback position,
or a wall clock), so the picture never drifts from the sound and never depends on the display's refresh.

This module only adds the subcommand: pyglet, sounddevice and onnxruntime are imported when playing.
"""

from __future__ import annotations

import argparse


def _size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1280x720, got {s!r}") from None
    if w < 16 or h < 16 or w > 16384 or h > 16384:
        raise argparse.ArgumentTypeError(f"size out of range: {s}")
    return w, h


def _float_in(lo: float, hi: float, open_lo: bool = False):
    def conv(s):
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
        if not (lo < v if open_lo else lo <= v) or not v <= hi:
            raise argparse.ArgumentTypeError(f"must be in {'(' if open_lo else '['}{lo:g}, {hi:g}], got {s}")
        return v
    return conv


def _port(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {s!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {s}")
    return v


def add_parser(sub) -> None:
    p = sub.add_parser(
        "play", help="play a bundle in real time in a window (optionally following a microphone or a song)",
        description="Play a fitted bundle as an endless video texture, or a clip bank (several bundles, or a "
                    "directory of them: N/B next/previous clip, 1-0 clip n, A autopilot). Keys: Up/Down temperature, Left/Right "
                    "alpha, ]/[ threshold, Space freeze, P pause, F fullscreen, H HUD, S screenshot, Q/Esc quit; "
                    "T tap the tempo, =/- double/halve it, ,/. nudge it, R downbeat, L MIDI learn.")
    p.add_argument("bundle", nargs="*", metavar="BUNDLE",
                   help="bundle directory written by `livetex fit`; several, or a directory of bundles, make a "
                        "clip bank (opened one at a time, switched with a crossfade)")
    p.add_argument("--audio", default=None, metavar="mic|FILE",
                   help="follow the live microphone (`mic`) or play and follow an audio file")
    p.add_argument("--input-device", default=None, metavar="NAME",
                   help="microphone: a device name (or part of it) or index; default: the system default input")
    p.add_argument("--output-device", default=None, metavar="NAME",
                   help="where an audio FILE is played; default: the system default output")
    p.add_argument("--fullscreen", action="store_true", help="start fullscreen (F toggles)")
    p.add_argument("--screen", type=int, default=None, metavar="N",
                   help="put the window on monitor N (0, 1, ...; e.g. the projector); default: the main one")
    p.add_argument("--size", type=_size, default=None, metavar="WxH", help="window size (default: the frame store's)")
    p.add_argument("--temperature", type=_float_in(0.0, 100.0, open_lo=True), default=None,
                   help="sampling temperature (default: the bundle's calibrated one; higher: more jumps)")
    p.add_argument("--threshold", type=_float_in(0.0, 1.0), default=None,
                   help="drop transitions below this fraction of the best one (default 0.1)")
    p.add_argument("--alpha", type=_float_in(0.0, 1.0), default=None,
                   help="visual weight in the audio-conditioned mix T = a*T_v + (1-a)*T_a (default 0.5)")
    p.add_argument("--audio-model", default=None, choices=["features", "av", "vggish"],
                   help="audio embedding used for conditioning (default: features)")
    p.add_argument("--audio-walk", default="plan", choices=["plan", "greedy"],
                   help="with a song FILE: plan the walk over the whole song (default; far fewer cuts) or mix "
                        "each step greedily as with a microphone")
    from ..cli import FOLLOW_HELP, follow_strength
    p.add_argument("--follow", type=follow_strength, default="auto", metavar="auto|W", help=FOLLOW_HELP)
    p.add_argument("--interpolate", default=None, choices=["none", "fade", "flow", "rife"],
                   help="seam smoothing at jumps, computed ahead of time (default rife, the learned interpolation, "
                        "when the bundle carries its network and a seam fits the look-ahead; else flow)")
    p.add_argument("--duration", type=_float_in(0.0, 1e9, open_lo=True), default=None, metavar="S",
                   help="stop after S seconds (default: forever, or the end of the audio file)")
    p.add_argument("--stats", default=None, metavar="FILE.json", help="write what happened to this JSON file at exit")
    p.add_argument("--screenshot", default=None, metavar="FILE.png",
                   help="save the last frame drawn (HUD included if shown) to this PNG at exit")
    p.add_argument("--hud", action="store_true", help="start with the HUD shown (H toggles)")
    p.add_argument("--headless", action="store_true",
                   help="render off-screen (EGL, no display needed): for tests, benchmarks and servers")
    p.add_argument("--osc", type=_port, default=None, metavar="PORT",
                   help="listen for OSC on this UDP port (/livetex/temperature, /alpha, /threshold, ...)")
    p.add_argument("--osc-host", default="0.0.0.0", metavar="ADDR", help="OSC listen address (default all interfaces)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the walk (default: a new one each run)")
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and MIDI ports and exit")
    vj = p.add_argument_group("VJ rig: controllers, tempo, outputs")
    vj.add_argument("--midi", nargs="?", const="", default=None, metavar="PORT",
                    help="MIDI in: notes/CCs perform actions, MIDI clock drives the tempo; PORT is (part of) a port "
                         "name, default the first one (--list-devices lists them); L toggles MIDI learn")
    vj.add_argument("--midi-map", default=None, metavar="FILE.json",
                    help="the MIDI mappings, read at start and written by MIDI learn "
                         "(default ~/.config/livetex/midi-map.json)")
    vj.add_argument("--bpm", type=_float_in(20.0, 300.0), default=120.0,
                    help="starting tempo of the beat grid (T taps it, MIDI clock sets it; default 120)")
    vj.add_argument("--link", action="store_true",
                    help="share the tempo with an Ableton Link session (pip install 'livetex[link]': Link is "
                         "GPL-licensed, so it is an optional extra, off by default)")
    vj.add_argument("--autopilot", type=_float_in(0.0, 1e4, open_lo=True), default=None, metavar="BARS",
                    help="a clip bank: move to the next clip every BARS bars of the tempo clock (A toggles it)")
    vj.add_argument("--osc-out", default=None, metavar="HOST:PORT",
                    help="send level, bands, hits, bpm, the tempo and the texture's state over OSC "
                         "(/livetex/out/...) so other tools can follow")
    vj.add_argument("--ndi", default=None, metavar="NAME",
                    help="send the picture over NDI as source NAME (Resolume, OBS, TouchDesigner, vMix)")
    vj.add_argument("--record", default=None, metavar="FILE.mp4",
                    help="record what is shown, with what is heard (H.264/AAC fragmented mp4; FILE.mp4.part "
                         "until the player stops, playable even if it is killed)")
    p.set_defaults(func=cmd_play)


def cmd_play(a) -> None:
    if a.list_devices:
        from ..errors import LivetexError
        from .audio_in import device_table
        from .midi import port_table
        try:
            print(device_table())
        except LivetexError as e:
            print(f"audio: {e}")
        print(port_table())
        return
    if not a.bundle:
        from ..errors import LivetexError
        raise LivetexError("play needs a BUNDLE (a directory written by `livetex fit`)")
    from .app import PlayConfig, play
    cfg = PlayConfig(bundle=a.bundle[0] if len(a.bundle) == 1 else a.bundle, audio=a.audio, input_device=a.input_device, output_device=a.output_device,
                     fullscreen=a.fullscreen, screen=a.screen, size=a.size, temperature=a.temperature, threshold=a.threshold,
                     alpha=a.alpha, audio_model=a.audio_model, audio_walk=a.audio_walk, follow=a.follow,
                     interpolate=a.interpolate, duration=a.duration,
                     stats=a.stats, screenshot=a.screenshot, hud=a.hud, headless=a.headless, osc=a.osc,
                     osc_host=a.osc_host, seed=a.seed, midi=a.midi, midi_map=a.midi_map, osc_out=a.osc_out,
                     ndi=a.ndi, record=a.record, bpm=a.bpm, link=a.link, autopilot=a.autopilot)
    play(cfg)
