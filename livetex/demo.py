"""``livetex demo``: the whole pipeline on the clip livetex ships, with no argument and no download.

Fits livetex/data/demo/pianist.avi (reusing the bundle when a previous demo already fitted it), renders a
texture on its own and one following livetex/data/demo/hungarian_dance_5.ogg, their timelines and the
transition-matrix picture, and says where everything is.
"""

from __future__ import annotations

import os

from .errors import LivetexError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "demo")
VIDEO = os.path.join(DATA, "pianist.avi")
SONG = os.path.join(DATA, "hungarian_dance_5.ogg")


def _reusable(bundle_dir: str, video: str) -> bool:
    from .bundle import load_bundle, sha256_file
    if not os.path.isdir(bundle_dir):
        return False
    try:
        b = load_bundle(bundle_dir)
    except LivetexError:
        return False
    return b.has("graph_exits") and b.manifest["source"]["sha256"] == sha256_file(video)


def run_demo(out_dir: str = "livetex-demo", seconds: float = 60.0) -> dict:
    from .bundle import load_bundle
    from .fit import FitConfig, fit
    from .plot import plot
    from .render import render
    from .walks import WalkRequest, run

    if not os.path.isfile(VIDEO):
        raise LivetexError(f"the demo clip is missing from the installation: {VIDEO}")
    os.makedirs(out_dir, exist_ok=True)
    bundle_dir = os.path.join(out_dir, "fitted")
    if _reusable(bundle_dir, VIDEO):
        print(f"reusing the fitted bundle in {bundle_dir}")
    else:
        print(f"fitting {VIDEO} (one-off; under a minute on a laptop CPU)")
        fit(VIDEO, bundle_dir, FitConfig(), force=True)
    b = load_bundle(bundle_dir)
    results = {"bundle": bundle_dir}

    req = WalkRequest(bundle=b, n_frames=int(round(seconds * b.fps)), seed=0)
    tl = run("contrastive", req)
    from .cli import default_interpolation
    tl.params["interpolate"] = default_interpolation(b)
    video = os.path.join(out_dir, "texture.mp4")
    render(b, tl, video, interpolate=tl.params["interpolate"])
    tl.save(os.path.join(out_dir, "texture.json"))
    results["texture"] = video
    results["picture"] = plot(b, os.path.join(out_dir, "matrix.png"), tl)

    # The same performer following a new piece of music (the texture's picture follows the song).
    song_seconds = min(seconds, 45.0)
    req = WalkRequest(bundle=b, n_frames=int(round(song_seconds * b.fps)), seed=0, audio=SONG)
    tl_music = run("contrastive", req)
    tl_music.params["interpolate"] = tl.params["interpolate"]
    tl_music.audio = {"path": SONG}
    music = os.path.join(out_dir, "texture_with_music.mp4")
    render(b, tl_music, music, audio=SONG, interpolate=tl.params["interpolate"])
    tl_music.save(os.path.join(out_dir, "texture_with_music.json"))
    results["music"] = music

    from .metrics import format_metrics, rendered_seams, timeline_metrics
    m = timeline_metrics(b, tl)
    m.update({k: v for k, v in rendered_seams(b, tl, video).items() if k in ("visible_after", "ghosted_seams")})
    print(format_metrics({k: m[k] for k in ("seconds", "jumps", "jumps_per_min", "coverage", "reshown", "landing_tenths",
                                            "visible_after", "ghosted_seams")}))
    print(f"\ntexture ({seconds:.0f} s, on its own):      {os.path.abspath(video)}")
    print(f"texture following music ({song_seconds:.0f} s): {os.path.abspath(music)}")
    print(f"transition matrix and walk:         {os.path.abspath(results['picture'])}")
    print(f"fitted bundle:                      {os.path.abspath(bundle_dir)}")
    print(f"next: livetex play {bundle_dir} --audio mic   (needs a display and a microphone)")
    return results
