"""The fitted bundle: a self-contained directory the player and renderer need, and nothing else.

Layout (all paths relative to the bundle directory)::

    manifest.json        format tag, schema version, source, geometry, and every file with size and sha256
    frames.jpg.bin       frame store (see framestore.py), plus frames_index.npy; or frames.npy (raw)
    thumbs.npy           (n_frames, h, w, 3) uint8 small frames for training, metrics and baselines
    audio.npy            (n_samples,) float32 mono source audio, sample 0 at frame 0 (if the source has sound)
    *.npy / *.onnx       model arrays and networks added by the fit

A bundle is written into a hidden sibling directory and renamed into place only when complete, so a
crash or Ctrl-C never leaves a half-written bundle where a player would look for one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil

import numpy as np

from . import __version__
from .errors import LivetexError
from .framestore import FrameStore
from .segments import Segments, segments_from_dict

FORMAT = "livetex-bundle"
SCHEMA = 1
MANIFEST = "manifest.json"
_ALWAYS_HASH = 64 << 20


def sha256_file(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _is_bundle(path: str) -> bool:
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class BundleWriter:
    """Build a bundle in a temporary directory; ``commit`` moves it to ``path``.

    Use as a context manager: leaving the block with an exception deletes everything written.
    """

    def __init__(self, path: str, force: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            raise LivetexError(f"output directory does not exist: {parent}")
        if os.path.exists(self.path):
            if not force:
                raise LivetexError(f"{path} already exists (use --force to replace it)")
            if not _is_bundle(self.path):
                raise LivetexError(f"{path} exists and is not a livetex bundle; refusing to replace it")
        self.tmp = os.path.join(parent, f".{os.path.basename(self.path)}.tmp-{os.getpid()}")
        try:
            os.makedirs(self.tmp)
        except OSError as e:
            raise LivetexError(f"cannot write to {parent}: {e.strerror or e}") from None
        self.manifest: dict = {"format": FORMAT, "schema": SCHEMA, "livetex_version": __version__,
                               "arrays": {}, "models": {}}
        self._done = False

    def file(self, name: str) -> str:
        """Path inside the (temporary) bundle for a file the caller writes itself."""
        return os.path.join(self.tmp, name)

    def add_array(self, name: str, arr: np.ndarray, **meta) -> None:
        """Save ``arr`` as ``name.npy`` and list it in the manifest."""
        arr = np.asarray(arr)
        np.save(self.file(name + ".npy"), arr)
        self.manifest["arrays"][name] = {"file": name + ".npy", "shape": list(arr.shape), "dtype": str(arr.dtype), **meta}

    def register_array(self, name: str, shape, dtype, **meta) -> None:
        """List a ``name.npy`` the caller wrote itself."""
        self.manifest["arrays"][name] = {"file": name + ".npy", "shape": list(shape), "dtype": str(np.dtype(dtype)), **meta}

    def add_model(self, name: str, filename: str, **meta) -> None:
        """List an ONNX model the caller wrote to ``file(filename)``."""
        self.manifest["models"][name] = {"file": filename, **meta}

    def commit(self) -> str:
        files = {}
        for root, _, names in os.walk(self.tmp):
            for n in sorted(names):
                p = os.path.join(root, n)
                rel = os.path.relpath(p, self.tmp)
                files[rel] = {"bytes": os.path.getsize(p), "sha256": sha256_file(p)}
        self.manifest["files"] = files
        self.manifest["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with open(self.file(MANIFEST), "w") as f:
            json.dump(self.manifest, f, indent=1)
        old = None
        if os.path.exists(self.path):
            old = self.tmp + ".old"
            os.rename(self.path, old)
        try:
            os.rename(self.tmp, self.path)
        except BaseException:
            if old:  # put the bundle being replaced back: a failed --force must not lose it
                os.rename(old, self.path)
            raise
        if old:
            shutil.rmtree(old, ignore_errors=True)
        self._done = True
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._done = True

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if not self._done:
            self.abort()
        return False


class Bundle:
    """A validated, read-only view of a bundle directory.

    Attributes: ``manifest`` (dict), ``fps`` (Hz), ``n_frames``, ``segments`` (Segments), ``store``
    (FrameStore). Arrays are memory-mapped on first use.
    """

    def __init__(self, path: str, verify: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        self.manifest = _read_manifest(self.path)
        _check_files(self.path, self.manifest, verify)
        m = self.manifest
        try:
            self.fps = float(m["fps"])
            self.n_frames = int(m["n_frames"])
            self.segments: Segments = segments_from_dict(m["segments"], self.n_frames, self.fps)
            self.store = FrameStore(self.path, m["store"])
            self._arrays: dict[str, np.ndarray] = {}
            for name in m["arrays"]:
                self.array(name)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise LivetexError(f"{path} is a damaged bundle: {e}") from None
        if self.store.n != self.n_frames:
            raise LivetexError(f"{path} is a damaged bundle: frame store holds {self.store.n} frames, "
                               f"manifest says {self.n_frames}")

    @property
    def fps_fraction(self):
        from fractions import Fraction
        return Fraction(int(self.manifest["fps_num"]), int(self.manifest["fps_den"]))

    @property
    def has_audio(self) -> bool:
        return "audio" in self.manifest["arrays"]

    @property
    def audio_sr(self) -> int | None:
        return self.manifest["arrays"]["audio"]["sr"] if self.has_audio else None

    def has(self, name: str) -> bool:
        return name in self.manifest["arrays"] or name in self.manifest["models"]

    def array(self, name: str) -> np.ndarray:
        """A listed array, memory-mapped read-only."""
        if name not in self._arrays:
            meta = self.manifest["arrays"].get(name)
            if meta is None:
                raise LivetexError(f"bundle {self.path} has no {name!r} array"
                                   + (" (re-fit it with a newer livetex)" if name in ("phi", "psi") else ""))
            try:
                a = np.load(os.path.join(self.path, meta["file"]), mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise LivetexError(f"{self.path} is a damaged bundle: {meta['file']}: {e}") from None
            if list(a.shape) != list(meta["shape"]) or str(a.dtype) != meta["dtype"]:
                raise LivetexError(f"{self.path} is a damaged bundle: {meta['file']} is {a.dtype}{list(a.shape)}, "
                                   f"manifest says {meta['dtype']}{meta['shape']}")
            self._arrays[name] = a
        return self._arrays[name]

    def model_path(self, name: str) -> str:
        meta = self.manifest["models"].get(name)
        if meta is None:
            raise LivetexError(f"bundle {self.path} has no {name!r} model")
        return os.path.join(self.path, meta["file"])

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)


def _read_manifest(path: str) -> dict:
    if not os.path.exists(path):
        raise LivetexError(f"no such bundle: {path}")
    if not os.path.isdir(path):
        raise LivetexError(f"{path} is not a bundle directory")
    mp = os.path.join(path, MANIFEST)
    if not os.path.exists(mp):
        raise LivetexError(f"{path} is not a livetex bundle (no {MANIFEST})")
    try:
        with open(mp) as f:
            m = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise LivetexError(f"{path} is a damaged bundle: {MANIFEST} is not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise LivetexError(f"{path} is not a livetex bundle ({MANIFEST} has no livetex format tag)")
    if m.get("schema") != SCHEMA:
        raise LivetexError(f"{path} has bundle schema {m.get('schema')}, this livetex reads schema {SCHEMA}; "
                           "re-fit the video with this version")
    for key in ("fps", "fps_num", "fps_den", "n_frames", "segments", "store", "arrays", "models", "files"):
        if key not in m:
            raise LivetexError(f"{path} is a damaged bundle: {MANIFEST} lacks {key!r}")
    return m


def _check_files(path: str, m: dict, verify: bool) -> None:
    try:
        _check_listed_files(path, m, verify)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        # A manifest with the right tag but the wrong shape (hand-edited, or from a buggy writer).
        raise LivetexError(f"{path} is a damaged bundle: malformed file list in {MANIFEST} "
                           f"({type(e).__name__}: {e})") from None


def _check_listed_files(path: str, m: dict, verify: bool) -> None:
    for rel, meta in m["files"].items():
        p = os.path.join(path, rel)
        if not os.path.isfile(p):
            raise LivetexError(f"{path} is a damaged bundle: {rel} is missing")
        size = os.path.getsize(p)
        if size != meta["bytes"]:
            raise LivetexError(f"{path} is a damaged bundle: {rel} is {size} bytes, manifest says {meta['bytes']}")
        # Small files are always checksummed; the (large) frame store only when asked.
        if (verify or size <= _ALWAYS_HASH) and sha256_file(p) != meta["sha256"]:
            raise LivetexError(f"{path} is a damaged bundle: {rel} fails its checksum")
    listed = [a["file"] for a in m["arrays"].values()] + [x["file"] for x in m["models"].values()]
    for rel in listed + list(m["store"].get("files", [])):
        if rel not in m["files"]:
            raise LivetexError(f"{path} is a damaged bundle: {rel} is not in the file list")


def check_manifest(path: str) -> dict:
    """The cheap check of a bundle not opened yet (a clip bank's): its manifest is there and readable.
    No other file is opened; :func:`load_bundle` does the full validation when the clip is played."""
    return _read_manifest(os.path.abspath(os.fspath(path)))


def load_bundle(path: str, verify: bool = False) -> Bundle:
    """Open and validate a bundle; LivetexError with one clear line if it is wrong or damaged."""
    return Bundle(path, verify=verify)
