"""The ``livetex`` command line. Each subcommand parses its flags, then calls one library function.

Bad input ends with one line on stderr (``livetex: error: ...``) and a non-zero exit status:
1 for errors, 2 for wrong usage, 130 when interrupted. Heavy modules (torch, onnxruntime, pyglet) are
imported inside the commands that need them, so ``livetex info`` answers instantly.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .errors import LivetexError


def _positive(kind):
    def conv(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {s!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
        return v
    return conv


def _fraction(s):
    v = float(s)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {s}")
    return v


def follow_strength(s):
    """``--follow``: "auto" (the strongest that keeps a song walk as smooth as the texture) or a number >= 0."""
    if s == "auto":
        return s
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be auto or a number >= 0, got {s!r}") from None
    if not 0.0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be auto or a number >= 0, got {s}")
    return v


FOLLOW_HELP = ("with --audio, planned walk: how hard the picture follows the song's loudness (moves while it "
               "is loud, rests in its gaps); default auto: as hard as keeps the cuts as hidden as in the "
               "unconditional texture, measured per song on trial walks; 0: only the audio model's matches")


# ---------------------------------------------------------------------------------------------- fit
def add_fit(sub):
    p = sub.add_parser("fit", help="fit a video: write a bundle the player and renderer use")
    p.add_argument("video", help="input video file")
    p.add_argument("-o", "--output", required=True, help="bundle directory to create")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--start", type=float, default=0.0, help="use the video from this time (s)")
    p.add_argument("--end", type=float, default=None, help="use the video up to this time (s)")
    p.add_argument("--fps", type=_positive(float), default=None, help="resample to this frame rate (Hz)")
    p.add_argument("--store-height", type=_positive(int), default=720, help="frame-store height in pixels (default 720, never upscaled)")
    p.add_argument("--store-codec", choices=["jpeg", "raw"], default="jpeg", help="frame-store codec (default jpeg)")
    p.add_argument("--quality", type=_positive(int), default=90, help="JPEG quality of the frame store (default 90)")
    p.add_argument("--model", action="store_true",
                   help="also train the contrastive bi-gram (phi/psi) and the audio-visual model: for --method learned "
                        "or classic-deep and --audio-model av (minutes of training; the default texture walk does not "
                        "need them). --steps, --config, --backbone and --weights imply it")
    p.add_argument("--no-model", action="store_true", help=argparse.SUPPRESS)   # the default; kept for old scripts
    p.add_argument("--steps", type=_positive(int), default=None, help="training steps (default: from models/default.json)")
    p.add_argument("--config", default=None, help="model preset: models/NAME.json or a JSON file (default: built-in defaults)")
    p.add_argument("--backbone", default=None, help="video backbone name: tiny3d (default), x3d_xs, x3d_s")
    p.add_argument("--weights", default=None, help="local checkpoint for a pretrained backbone")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="torch device (default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_fit)


def cmd_fit(a):
    from .fit import FitConfig, fit
    config = a.config
    if config is None and a.backbone:
        from .train import MODELS_DIR
        if os.path.isfile(os.path.join(MODELS_DIR, a.backbone + ".json")):
            config = a.backbone          # a backbone's own preset (frames, size) comes with it
    train = {k: v for k, v in {"config": config, "steps": a.steps, "backbone": a.backbone,
                               "weights": a.weights}.items() if v is not None}
    model = (a.model or bool(train)) and not a.no_model
    cfg = FitConfig(store_height=a.store_height, store_codec=a.store_codec, store_quality=a.quality,
                    start=a.start, end=a.end, fps=a.fps, model=model, train=train,
                    device=a.device, seed=a.seed)
    path = fit(a.video, a.output, cfg, force=a.force)
    print(f"bundle written: {path}")


# --------------------------------------------------------------------------------------------- info
def add_info(sub):
    p = sub.add_parser("info", help="describe a bundle")
    p.add_argument("bundle")
    p.add_argument("--verify", action="store_true", help="checksum every file, the frame store included")
    p.add_argument("--json", action="store_true", help="print the raw manifest")
    p.set_defaults(func=cmd_info)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def cmd_info(a):
    import json
    from .bundle import load_bundle
    b = load_bundle(a.bundle, verify=a.verify)
    m = b.manifest
    if a.json:
        print(json.dumps(m, indent=1))
        return
    s, st, sg = m["source"], m["store"], b.segments
    total = sum(f["bytes"] for f in m["files"].values())
    rows = [
        ("bundle", f"{b.path}  (schema {m['schema']}, livetex {m['livetex_version']}, {m.get('created', '?')})"),
        ("source", f"{s['name']}  {s['width']}x{s['height']}  {s['fps']:.3g} fps  {s['duration']:.1f} s  "
                   f"{s['codec']}  sha256 {s['sha256'][:12]}…" + ("  (variable frame rate)" if s.get("vfr") else "")),
        ("frames", f"{b.n_frames} at {b.fps:.3g} fps = {b.n_frames / b.fps:.1f} s, stored {st['width']}x{st['height']} "
                   f"{st['codec']}" + (f" q{st['quality']}" if st.get("quality") else "")),
        ("segments", f"{sg.count} x {sg.window_frames} frames ({sg.window_s:g} s) every {sg.stride_frames} frames ({sg.stride_s:g} s)"),
        ("audio", f"{b.audio_sr} Hz mono, {len(b.array('audio')) / b.audio_sr:.1f} s" if b.has_audio else "none (the source has no sound)"),
    ]
    fitm = m.get("fit")
    if fitm:
        rows.append(("model", f"{fitm['backbone']} dim {fitm['dim']}, {fitm['steps_run']} steps, loss "
                              f"{fitm['loss_first']:.3f} -> {fitm['loss_final']:.3f}, {fitm['seconds']:.0f} s on {fitm['device']}"))
    af = m.get("audio_fit", {})
    if af.get("status") == "ok":
        scores = ", ".join(f"{k} {af[k]['picture_score']:+.2f}" for k in ("features", "av")
                           if "picture_score" in af.get(k, {}))
        from .audio import DEFAULT_AUDIO_MODEL
        rows.append(("follows", f"music with the {DEFAULT_AUDIO_MODEL} audio model by default"
                                + (" (av: --audio-model av)" if "tau" in af.get("av", {}) else "")
                                + (f"; picture scores {scores}" if scores else "")))
    for name, meta in m["arrays"].items():
        rows.append(("array", f"{name:10s} {meta['dtype']}{tuple(meta['shape'])}"))
    for name, meta in m["models"].items():
        rows.append(("onnx", f"{name:10s} {meta['file']}"))
    rows.append(("size", f"{_mb(total)} in {len(m['files'])} files" + ("  (all checksums verified)" if a.verify else "")))
    for k, v in rows:
        print(f"{k:9s} {v}")


# ------------------------------------------------------------------------------------------- render
def add_render(sub):
    p = sub.add_parser("render", help="render a texture from a bundle to an mp4 and a JSON timeline")
    p.add_argument("bundle")
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    p.add_argument("--seconds", type=_positive(float), default=30.0, help="length of the output (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeline", default=None, help="timeline JSON (default: next to the mp4)")
    p.add_argument("--audio", default=None, help="conditioning audio: the texture follows it and the mp4 carries it")
    p.add_argument("--method", default=None, help="synthesis method (default contrastive; `livetex methods` lists them)")
    p.add_argument("--temperature", type=_positive(float), default=None, help="sampling temperature (higher: more jumps)")
    p.add_argument("--threshold", type=_fraction, default=None, help="drop transitions below this fraction of the best")
    p.add_argument("--jumps-per-min", type=_positive(float), default=None, help="calibrate the temperature to this jump rate")
    p.add_argument("--alpha", type=_fraction, default=None, help="visual weight in the audio-conditioned mix (default 0.5)")
    p.add_argument("--audio-model", default=None, choices=["features", "av", "vggish"],
                   help="audio embedding for conditioning: features (default; log-mel and onset features), av "
                        "(the per-video audio-visual model) or vggish (needs its weights file)")
    p.add_argument("--audio-walk", default="plan", choices=["plan", "greedy"],
                   help="with --audio: plan the walk over the whole song (default: cuts where the picture allows, "
                        "ahead of the music), or greedy step-by-step mixing as the live player does")
    p.add_argument("--follow", type=follow_strength, default="auto", metavar="auto|W", help=FOLLOW_HELP)
    p.add_argument("--interpolate", default=None, choices=["none", "fade", "flow", "rife"],
                   help="seam smoothing at jumps (default rife, the learned interpolation, if its network is "
                        "in the bundle or its weights are installed; else flow)")
    p.set_defaults(func=cmd_render)


def cmd_render(a):
    from .bundle import load_bundle
    from .media.writer import check_output_path
    from .render import default_timeline_path, render
    from .walks import WalkRequest, run
    b = load_bundle(a.bundle)
    check_output_path(a.output)
    tl_path = a.timeline or default_timeline_path(a.output)
    check_output_path(tl_path)
    if a.audio:
        from .media.video import check_file
        check_file(a.audio)
    method = a.method or default_method(b)
    req = WalkRequest(bundle=b, n_frames=max(1, int(round(a.seconds * b.fps))), seed=a.seed,
                      temperature=a.temperature, threshold=a.threshold, jumps_per_min=a.jumps_per_min,
                      alpha=a.alpha, audio=a.audio, audio_model=a.audio_model, extra={"audio_walk": a.audio_walk, "follow": a.follow})
    tl = run(method, req)
    tl.audio = {"path": os.path.abspath(a.audio)} if a.audio else None
    interp = a.interpolate or "rife"
    if interp == "rife":
        interp = default_interpolation(b)    # the flow morph if no RIFE network loads (a note says so)
    tl.params["interpolate"] = interp
    render(b, tl, a.output, audio=a.audio, interpolate=interp)
    tl.save(tl_path)
    print(f"video written: {a.output}  ({tl.seconds:.1f} s, {len(tl.jumps)} jumps, method {tl.method})")
    print(f"timeline written: {tl_path}")


def default_method(bundle) -> str:
    return "contrastive"


def default_interpolation(bundle=None) -> str:
    """``rife`` if a RIFE network loads (the bundle's, or built from the installed weights), else the
    flow morph (with a one-line note saying how to get RIFE)."""
    try:
        from . import seams
    except ImportError:
        return "none"
    from .interp import load_interpolator
    return "rife" if load_interpolator(bundle) is not None else seams.DEFAULT_MODE


# -------------------------------------------------------------------------------------------- demo
def add_demo(sub):
    p = sub.add_parser("demo", help="fit the bundled clip and render a texture (no arguments needed)")
    p.add_argument("-o", "--output", default="livetex-demo", help="directory for the results (default ./livetex-demo)")
    p.add_argument("--seconds", type=_positive(float), default=60.0, help="length of the texture (default 60)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(a):
    from .demo import run_demo
    run_demo(a.output, seconds=a.seconds)


# ------------------------------------------------------------------------------------------ methods
def add_methods(sub):
    p = sub.add_parser("methods", help="list the synthesis methods")
    p.set_defaults(func=cmd_methods)


def cmd_methods(a):
    from .walks import methods
    for name, m in sorted(methods().items()):
        print(f"{name:14s} {'[needs --audio] ' if m.needs_audio else ''}{m.description}")


# Commands defined in their own modules: (module, function that adds the subparser).
_EXTERNAL = [("livetex.metrics", "add_parser"), ("livetex.plot", "add_parser"),
             ("livetex.player", "add_parser"), ("livetex.report", "add_parser")]


EXAMPLES = {
    None: """examples:
  livetex demo                                        fit the bundled clip and render two textures
  livetex fit my-clip.mp4 -o clip.bundle              fit your own clip
  livetex play clip.bundle --audio mic --fullscreen   play it live, following the microphone
  livetex COMMAND --help                              each command's options, with an example""",
    "fit": "example:\n  livetex fit my-clip.mp4 -o clip.bundle --start 10 --end 130",
    "info": "example:\n  livetex info clip.bundle --verify",
    "render": "examples:\n  livetex render clip.bundle -o texture.mp4 --seconds 60\n"
              "  livetex render clip.bundle -o song.mp4 --audio song.mp3",
    "demo": "example:\n  livetex demo -o livetex-demo",
    "methods": "example:\n  livetex methods",
    "eval-timeline": "example:\n  livetex eval-timeline texture.json",
    "plot": "example:\n  livetex plot clip.bundle -o matrix.png --timeline texture.json",
    "play": """examples:
  livetex play clip.bundle --audio mic --screen 1 --fullscreen       the room's microphone, on the projector
  livetex play clip.bundle --audio song.mp3                          play a song and follow it
  livetex play clip.bundle --audio mic --midi --ndi livetex --record set.mp4 --osc 9000 --osc-out 10.0.0.5:7000
  livetex play bank/ --audio mic --autopilot 8                       a clip bank: the next clip every 8 bars
  livetex play --list-devices                                        audio devices and MIDI ports""",
    "eval": "example:\n  livetex eval my-clip.mp4 --audio song.mp3 -o report",
}


def _add_examples(p: argparse.ArgumentParser, sub) -> None:
    """Every --help ends with an example (the description's own line breaks are kept)."""
    for name, sp in [(None, p), *sub.choices.items()]:
        if name in EXAMPLES:
            sp.epilog = EXAMPLES[name]
            sp.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livetex", description="Real-time, audio-reactive video textures.")
    p.add_argument("--version", action="version", version=f"livetex {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (add_fit, add_info, add_render, add_demo, add_methods):
        add(sub)
    import importlib
    for mod, fn in _EXTERNAL:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        getattr(m, fn)(sub)
    _add_examples(p, sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
        return 0
    except LivetexError as e:
        print(f"livetex: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("livetex: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `livetex ... | head`: the reader is gone, nothing left to say
        sys.stderr.close()
        return 0
    except OSError as e:
        if os.environ.get("LIVETEX_DEBUG"):
            raise
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        print(f"livetex: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug, not bad input: still one line, with a way to see more
        if os.environ.get("LIVETEX_DEBUG"):
            raise
        print(f"livetex: internal error: {type(e).__name__}: {e} (set LIVETEX_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
