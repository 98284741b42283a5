"""Wires the player together: bundle -> sampler, audio, scheduler, prefetcher, window, OSC, stats.

Everything that can be refused (bundle, audio device, display, OSC port) is checked before the clock
starts, each with one clear line. At exit (duration reached, song over, Q, window closed, Ctrl-C) the
threads stop, the streams close and the stats file is written.
"""

from __future__ import annotations

import os
import time
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import LivetexError

STARTUP_TIMEOUT_S = 10.0


@dataclass
class PlayConfig:
    """What ``livetex play`` can be told. Times in seconds, sizes in pixels."""

    bundle: str | list[str]            # a bundle, or several / a directory of them (a clip bank, bank.py)
    audio: str | None = None           # None, "mic" or a file
    input_device: str | None = None
    output_device: str | None = None
    fullscreen: bool = False
    screen: int | None = None
    size: tuple[int, int] | None = None
    temperature: float | None = None
    threshold: float | None = None
    alpha: float | None = None
    audio_model: str | None = None
    audio_walk: str = "plan"       # with a song file: "plan" the walk over the whole song, or mix "greedy"ly
    follow: float | str = "auto"   # planned walk: the energy weight, or "auto" (conditioning.follow_plan)
    interpolate: str | None = None
    duration: float | None = None
    stats: str | None = None
    screenshot: str | None = None
    hud: bool = False
    headless: bool = False
    osc: int | None = None
    osc_host: str = "0.0.0.0"
    seed: int | None = None
    midi: str | None = None        # None: no MIDI; "": the first input port; else (part of) a port name
    midi_map: str | None = None    # the mappings file (default: midi.DEFAULT_MAP)
    osc_out: str | None = None     # HOST:PORT
    ndi: str | None = None         # NDI source name
    record: str | None = None      # mp4 path
    bpm: float = 120.0             # the tempo clock's starting tempo
    link: bool = False             # join an Ableton Link session (GPL extra)
    autopilot: float | None = None # a clip bank: move to the next clip every this many bars


def live_seams(bundle, mode: str):
    """The player's seam maker for ``mode`` (None for "none"). RIFE uses the bundle's network, or one
    already built: building one would import torch."""
    if mode == "none":
        return None
    from ..seams import LiveSeams
    interpolator = None
    if mode == "rife":
        from ..interp import load_interpolator
        interpolator = load_interpolator(bundle, threads=1, build=False)
    return LiveSeams(mode, interpolator)


def _log(msg: str) -> None:
    print(f"livetex: {msg}", file=sys.stderr, flush=True)


def _check_writable(path: str | None, what: str) -> None:
    if path is None:
        return
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise LivetexError(f"cannot write the {what} {path}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise LivetexError(f"cannot write the {what} {path}: directory {d} is not writable")


def walk_settings(bundle, temperature: float | None, threshold: float | None) -> tuple[float, float, float]:
    """(temperature, threshold, rate) of the texture walk: the user's, else the ones calibrated at fit
    time; a rate for other settings is calibrated now (about a second; a quick estimate if none is
    stored, so an old bundle still starts fast)."""
    from ..texture import DEFAULT_TEMPERATURE, DEFAULT_THRESHOLD, calibrate_rate, fitted_walk, initial_rate
    from ..graph import Graph
    tau = DEFAULT_TEMPERATURE if temperature is None else float(temperature)
    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    fitted = fitted_walk(bundle)
    if fitted.get("rate") and abs(fitted.get("temperature", -1) - tau) < 1e-9 and abs(fitted.get("threshold", -1) - thr) < 1e-9:
        return tau, thr, float(fitted["rate"])
    graph = Graph.from_bundle(bundle)
    return tau, thr, (calibrate_rate(graph, temperature=tau, threshold=thr, minutes=1.0) if fitted else initial_rate(graph, tau))


def seam_mode(name: str | None) -> str:
    try:
        from .. import seams
    except ImportError:
        if name not in (None, "none"):
            raise LivetexError("seam interpolation is not available in this installation") from None
        return "none"
    return seams.check_mode(name or "rife")     # rife falls back to flow without its network (below)


def _open_first(paths: list[str], stats) -> tuple[int, object, list]:
    """A clip bank's first playable clip (index, Bundle): the others are only checked cheaply (their
    manifest), so a bank of any size starts in the time one bundle takes. A damaged clip is said and
    skipped; only a bank with no playable clip is refused."""
    from ..bundle import check_manifest, load_bundle
    from .bank import clip_name
    first = None
    bad = []
    for i, p in enumerate(paths):
        try:
            if first is None:
                first = (i, load_bundle(p))
            else:
                check_manifest(p)
        except LivetexError as e:
            if len(paths) == 1:
                raise
            bad.append({"clip": i, "name": clip_name(p), "error": str(e), "t": None})
            stats.event(f"clip {i + 1} ({clip_name(p)}) skipped: {e}")
    if first is None:
        raise LivetexError(f"no playable clip in the bank ({len(paths)} damaged)")
    return first[0], first[1], bad


def play(cfg: PlayConfig) -> dict:
    """Play until done; returns the stats dict (also written to ``cfg.stats`` if given)."""
    from ..bundle import load_bundle
    from .bank import bank_paths
    from .audio_in import FilePlayer, MicInput, WallClock
    from .controls import Controls
    from .prefetch import Prefetcher
    from .scheduler import Scheduler
    from .stats import Stats

    try:
        import cv2
        # Seams and decoding are background work: one OpenCV thread each, so they never take both
        # cores away from the drawing loop (a multi-threaded flow burst is what drops frames).
        cv2.setNumThreads(1)
    except ImportError:
        pass
    t_begin = time.perf_counter()
    stats = Stats()
    paths = bank_paths([cfg.bundle] if isinstance(cfg.bundle, str) else list(cfg.bundle))
    first_index, bundle, bad_clips = _open_first(paths, stats)
    if len(paths) > 1:
        stats.track_clips()
    _check_writable(cfg.stats, "stats file")
    _check_writable(cfg.screenshot, "screenshot")
    _check_writable(cfg.record, "recording")
    if cfg.record and os.path.isdir(cfg.record):
        raise LivetexError(f"cannot write the recording {cfg.record}: it is a directory")
    osc_out_addr = None
    if cfg.osc_out:
        from .osc_out import parse_host_port
        try:
            osc_out_addr = parse_host_port(cfg.osc_out)
        except ValueError as e:
            raise LivetexError(f"--osc-out: {e}") from None
    from ..graph import Graph
    from ..texture import Walk
    graph = Graph.from_bundle(bundle)
    seg, fps = bundle.segments, bundle.fps
    tau, threshold, rate = walk_settings(bundle, cfg.temperature, cfg.threshold)
    seed = cfg.seed if cfg.seed is not None else int(np.random.SeedSequence().entropy % (2**31))
    walk = Walk(graph, tau, rate, threshold, seed=seed)
    start = walk.first_frame()
    mode = seam_mode(cfg.interpolate)
    from ..conditioning import DEFAULT_ALPHA
    controls = Controls(tau, threshold, DEFAULT_ALPHA if cfg.alpha is None else cfg.alpha, hud=cfg.hud,
                        fullscreen=cfg.fullscreen)
    from .actions import Actions
    from .tempo import TempoClock
    tempo = TempoClock(cfg.bpm)
    actions = Actions(controls, tempo, stats)
    if cfg.autopilot:
        controls.set("autopilot", True)

    # ---- audio (devices are checked before any window opens)
    song_cond = live = mic = song_player = planner = None
    audio_info: dict = {"mode": "none"}
    if cfg.audio == "mic":
        from ..audio import features as F
        from .conditioner import MicCondition, _load_model
        _load_model(bundle, cfg.audio_model)          # a bundle that cannot follow audio fails before the device
        mic = MicInput(cfg.input_device, F.SR, stats=stats)
        live = MicCondition(bundle, mic.sr, cfg.audio_model)
        mic.open()
        audio_info = {"mode": "mic", "device": mic.info["name"], "device_index": mic.device, "sr": mic.sr,
                      "model": live.name}
    elif cfg.audio:
        from ..audio import features as F
        from ..media.audio import load_audio
        from ..media.video import check_file
        from .conditioner import SongCondition
        check_file(cfg.audio)
        song_cond = SongCondition(bundle, load_audio(cfg.audio, F.SR, channels=1), cfg.audio_model)
        song_player = FilePlayer(cfg.audio, cfg.output_device, stats=stats)
        if cfg.audio_walk == "plan":
            # The whole song is known: plan the walk as `livetex render --audio` does (cuts where the
            # graph has good seams, ahead of the music); starts where the song's beginning fits best.
            from ..conditioning import ENERGY_WEIGHT, plan_song, song_beats_for, song_energy
            t0 = time.perf_counter()
            rows = song_cond.rows()
            n_out = seg.window_frames + (len(rows) - 1) * seg.stride_frames
            w = ENERGY_WEIGHT if cfg.follow == "auto" else float(cfg.follow)
            beats, accents, beat_info = song_beats_for(song_cond.y, bundle, n_out)
            planner, frames, _, plan_info = plan_song(walk, rows, controls.alpha, seed, bundle,
                                                      song_energy(song_cond.y, seg, len(rows)), w, n_out,
                                                      beats=beats, accents=accents)
            plan_info.update(beat_info)
            planner.walk = walk              # the live walk follows the plan with its own draws
            planner.rng = walk.rng
            start = int(frames[0])
            stats.info["plan_seconds"] = round(time.perf_counter() - t0, 3)
            stats.info.update(plan_info, follow=w)
            _log(f"planned the walk over the song ({len(rows)} steps, {graph.n} source frames) in "
                 f"{stats.info['plan_seconds']:.1f} s (--audio-walk greedy skips this)")
        audio_info = {"mode": "file", "path": os.path.abspath(cfg.audio), "device": song_player.device_name,
                      "sr": song_player.sr, "seconds": round(song_player.duration, 3), "model": song_cond.name,
                      "walk": cfg.audio_walk,
                      "gain_db": round(float(20 * np.log10(max(song_cond.gain, 1e-9))), 2)}
    elif cfg.input_device:
        _log("--input-device is ignored without --audio mic")

    seamer = live_seams(bundle, mode)
    if seamer is not None:
        mode = seamer.mode
    clock = song_player if song_player is not None else WallClock()
    size = cfg.size or bundle.store.size
    stats.info.update({
        "bundle": bundle.path, "fps_source": fps, "n_frames": bundle.n_frames, "segments": seg.count,
        "stride_frames": seg.stride_frames, "window_frames": seg.window_frames,
        "store_size": list(bundle.store.size), "window_size": list(size), "headless": cfg.headless,
        "seed": seed, "start_frame": start, "temperature": tau, "threshold": threshold, "rate": rate,
        "alpha": controls.alpha, "interpolate": mode, "audio": audio_info,
        "duration_requested": cfg.duration,
    })

    from .window import PlayerWindow, open_window
    prefetcher = Prefetcher(bundle.store, stats)
    osc = None
    win = None
    scheduler = None
    bank = None
    started = False
    midi = ndi = recorder = osc_out = link = None
    if cfg.stats:
        stats.stream_to_disk()         # every decision and frame, in constant memory (see stats.py)
    try:
        # Outputs and MIDI are refused (one line) before the window opens, like the audio devices.
        if cfg.midi is not None:
            from .midi import DEFAULT_MAP, MidiInput
            midi = MidiInput(cfg.midi or None, actions, cfg.midi_map or DEFAULT_MAP, stats)
            stats.info["midi"] = {"port": midi.name, "api": midi.api, "map": midi.map.path,
                                  "bindings": len(midi.map.bindings)}
            _log(f"MIDI in from {midi.name!r} ({midi.api}), {len(midi.map.bindings)} mappings from {midi.map.path}"
                 " (L: learn)")
        if cfg.link:
            from .link import LinkSync
            link = LinkSync(tempo, stats)
            _log("Ableton Link on: the tempo is shared with the session's peers")
        from .audio_in import MicTap, SongTap

        def tap():
            return MicTap(mic) if mic is not None else SongTap(song_player) if song_player is not None else None
        if cfg.ndi:
            from .ndi import NdiOut
            ndi = NdiOut(cfg.ndi, bundle.store.size, fps, stats)
            _log(f"NDI: sending {bundle.store.size[0]}x{bundle.store.size[1]} at {fps:g} fps as {ndi.source_name!r}")
        if cfg.record:
            from .record import Recorder
            recorder = Recorder(cfg.record, bundle.store.size, fps, audio=tap(), stats=stats, controls=controls)
            _log(f"recording to {cfg.record} (until it stops: {recorder.part})")
        if osc_out_addr is not None:
            from .osc_out import OscOut
            osc_out = OscOut(*osc_out_addr, tempo=tempo, n_source=bundle.n_frames, audio=tap(), stats=stats)
            _log(f"OSC out to {cfg.osc_out} (/livetex/out/level, /bands, /hit, /bpm, /tempo, /segment, /position)")
        win = open_window(size, cfg.fullscreen, cfg.headless, caption=f"livetex - {os.path.basename(bundle.path)}",
                          screen=cfg.screen)
        if cfg.osc is not None:
            from .osc import OscServer
            osc = OscServer(actions, cfg.osc_host, cfg.osc, stats).start()
            stats.info["osc_port"] = osc.port
            _log(f"OSC listening on {cfg.osc_host}:{osc.port} (/livetex/temperature, /alpha, /threshold, ...)")
        scheduler = Scheduler(walk, seg, fps, clock, controls, prefetcher, stats, start, song=song_cond,
                              live=live, mic=mic, seamer=seamer, store=bundle.store, planner=planner)

        def status() -> str:
            if mic is not None:
                return "MIC LOST - unconditional" if mic.lost else f"mic: {mic.info['name']} ({mic.sr} Hz)"
            if song_player is not None:
                return f"song {clock.now():.1f}/{song_player.duration:.1f} s"
            return "no audio: unconditional"

        if len(paths) > 1:
            bank = _make_bank(cfg, paths, first_index, bad_clips, bundle, scheduler, prefetcher, clock, tempo,
                              controls, stats, seed, mode, mic, song_cond, scheduler.listeners)
            actions.bank = bank
            audio_status = status

            def status() -> str:
                return f"{audio_status()}  |  {bank.status()}"
        sinks = [o for o in (ndi, recorder, osc_out) if o is not None]
        outputs = [o.status for o in (midi, link, ndi, recorder) if o is not None]
        pw = PlayerWindow(win, bundle.store.size, fps, bundle.n_frames, controls, stats, prefetcher, clock,
                          status=status, headless=cfg.headless, actions=actions, sinks=sinks, outputs=outputs,
                          bank=bank)
        if bank is not None:
            def on_n_source(deck):
                pw.n_source = deck.bundle.n_frames
            bank.on_start.append(on_n_source)

        def beat_of_step(rec: dict) -> None:
            # Where the step's first frame falls on the beat grid (lead_ms: how far ahead it was decided).
            rec["beat"] = round(tempo.beat(time.perf_counter() + rec["lead_ms"] / 1000.0), 3)
        scheduler.listeners.append(beat_of_step)
        if osc_out is not None:
            osc_out.set_source_of(lambda: pw.cur_src)
            scheduler.listeners.append(osc_out.on_step)
        pw.prewarm()
        scheduler.warm_up()
        if seamer is not None:
            seamer.reset_counts()         # count the seams made while playing, not the warm-up's
        # Start-up: the first step's frames are decoded before the clock starts, so nothing drops.
        if not prefetcher.wait_ready(seg.window_frames - 1, STARTUP_TIMEOUT_S):
            raise LivetexError("the frame store is too slow to start playing (first frames not decoded in "
                               f"{STARTUP_TIMEOUT_S:g} s)")
        stats.info["startup_s"] = round(time.perf_counter() - t_begin, 3)
        if song_player is not None:
            song_player.start()
        else:
            clock.start()
        for o in (midi, link, ndi, recorder, osc_out):
            if o is not None:
                o.start()
        scheduler.start()
        started = True
        end = cfg.duration if cfg.duration is not None else float("inf")
        if song_player is not None:
            end = min(end, song_player.duration)

        def should_stop(t: float) -> bool:
            if scheduler.error is not None:
                raise scheduler.error
            return t >= end

        pw.run(should_stop)
        if cfg.screenshot:
            try:
                stats.info["screenshot"] = pw.screenshot(cfg.screenshot)
            except Exception as e:   # e.g. the window was closed by the user: nothing left to read
                stats.event(f"no screenshot: {e}")
    finally:
        if bank is not None:
            bank.close()
            stats.info["bank"] = bank.info()
        if scheduler is not None:
            scheduler.stop()
        if recorder is not None:
            stats.info["record"] = recorder.close() if started else recorder.abort()
        if ndi is not None:
            ndi.close()
            stats.info["ndi"] = ndi.info()
        if osc_out is not None:
            osc_out.close()
            stats.info["osc_out"] = {"to": cfg.osc_out, "sent": osc_out.sent, "errors": osc_out.errors}
        if midi is not None:
            midi.close()
            stats.info["midi"].update(received=midi.received, clock_pulses=midi.clock_pulses, lost=midi.lost,
                                      bindings=len(midi.map.bindings), restarts=midi.restarts)
        if link is not None:
            link.close()
            stats.info["link"] = {"peers_end": link.peers}
        stats.info["tempo_end"] = tempo.snapshot()
        if osc is not None:
            osc.close()
            stats.info["osc_messages"] = osc.received
        for s in (mic, song_player):
            if s is not None:
                s.close()
        prefetcher.close()
        if scheduler is not None:
            from .stats import percentiles
            stats.info["seam_ms"] = {k: (round(v * 1000, 2) if isinstance(v, float) else v)
                                     for k, v in percentiles(scheduler.seam_s).items()}
            stats.info["seams_late"] = scheduler.seams_late
            if seamer is not None:
                stats.info["seams_by_method"] = dict(seamer.counts)
            stats.info["lookahead_margin_ms"] = round(scheduler.margin * 1000, 1)
        if song_player is not None:
            stats.info["audio"]["underruns"] = song_player.underruns
        stats.info["clock_end_s"] = round(clock.now(), 4)
        stats.info["controls_end"] = controls.snapshot()
        if win is not None:
            try:
                win.close()
            except Exception:
                pass
        result = stats.to_dict()
        if cfg.stats and started:         # a run that never started has nothing to report
            stats.write(cfg.stats, result)
        stats.close_stream()
    return result


def _make_bank(cfg, paths, first_index, bad, bundle, scheduler, prefetcher, clock, tempo, controls, stats, seed,
               mode, mic, song_cond, listeners):
    """The clip bank around the first clip's deck, and how it opens the others (on its own thread)."""
    from ..bundle import load_bundle
    from ..graph import Graph
    from ..texture import Walk
    from .bank import Bank, Deck, DeckClock, FittedStore
    from .prefetch import Prefetcher
    from .scheduler import Scheduler
    size = bundle.store.size              # the output keeps the first clip's size and fps
    shared = list(listeners)              # the beat of each step, --osc-out

    def tag(index, dclock):
        def fn(rec):
            rec["clip"] = index
            rec["t_master"] = round(rec["t"] + dclock.t0, 4)
        return fn

    def open_deck(index: int, path: str) -> Deck:
        b = load_bundle(path)
        tau, thr, rate = walk_settings(b, cfg.temperature, cfg.threshold)
        walk = Walk(Graph.from_bundle(b), tau, rate, thr, seed=seed + index)
        live = song = None
        try:
            if mic is not None:
                from .conditioner import MicCondition
                live = MicCondition(b, mic.sr, cfg.audio_model)
            elif song_cond is not None:
                from .conditioner import SongCondition
                song = SongCondition(b, song_cond.y, cfg.audio_model)
        except LivetexError as e:
            stats.event(f"clip {index + 1} ({os.path.basename(b.path)}) plays without following the audio: {e}")
        seamer = live_seams(b, mode)
        store = b.store if tuple(b.store.size) == tuple(size) else FittedStore(b.store, size)
        pf = Prefetcher(store, stats)
        dclock = DeckClock(clock)
        sch = None
        try:
            sch = Scheduler(walk, b.segments, b.fps, dclock, controls, pf, stats, walk.first_frame(), song=song,
                            live=live, mic=mic if live is not None else None, seamer=seamer, store=store)
            sch.listeners.extend(shared + [tag(index, dclock)])
            sch.warm_up()
            if not pf.wait_ready(b.segments.window_frames - 1, STARTUP_TIMEOUT_S):
                raise LivetexError(f"its first frames did not decode in {STARTUP_TIMEOUT_S:g} s")
        except BaseException:
            if sch is not None:
                sch.stop()
            pf.close()
            raise
        return Deck(index, path, b, sch, pf, dclock, {"temperature": tau, "threshold": thr}, song=song)

    first = Deck(first_index, paths[first_index], bundle, scheduler, prefetcher, DeckClock(clock),
                 {"temperature": controls.temperature, "threshold": controls.threshold})
    scheduler.listeners.append(tag(first_index, first.clock))
    said = []

    def on_start(deck) -> None:
        # The knobs follow the clip's own calibrated walk, unless the performer set them on the command line.
        if cfg.temperature is None:
            controls.set("temperature", deck.settings["temperature"])
        if cfg.threshold is None:
            controls.set("threshold", deck.settings["threshold"])
        if cfg.audio not in (None, "mic") and cfg.audio_walk == "plan" and not said:
            said.append(1)
            stats.event("clip bank: after a switch the song is followed step by step (greedy), "
                        "the planned walk was the first clip's")
    bank = Bank(paths, first, open_deck, clock, tempo, controls, stats, bundle.fps,
                autopilot_bars=cfg.autopilot, on_start=[on_start])
    bank.bad.update(x["clip"] for x in bad)
    bank.skipped.extend(bad)
    stats.info["bank"] = {"clips": bank.names, "first": first_index}
    _log(f"clip bank: {len(paths)} clips, playing {first.name} (N/B next/previous, 1-0 clip n, A autopilot"
         f"{f', every {bank.bars:g} bars' if cfg.autopilot else ''})")
    return bank

