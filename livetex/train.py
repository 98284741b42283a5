"""Fit the bi-gram model to one video: InfoNCE so that phi(V_i) finds psi(V_{i+1}).

Read top to bottom: config -> data (segment clips gathered from cached thumbnails) -> batches of
*runs* of consecutive segments -> loss -> loop with early stop -> embeddings and ONNX into the bundle.

Why runs: a batch is R runs of L consecutive segments from random places. Every clip is encoded once
and used both as a query and as a key, so each anchor i sees its positive i+1, hard temporal neighbours
(i-L..i-1, i+2..i+L, from its own run) and random negatives (the other runs) at the cost of one forward
pass over R*L clips — the cheap "in-batch negatives" that make CPU training feasible.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

# MKL's fastest matrix kernels may sum in an order that depends on how buffers happen to be aligned,
# so two fits with the same seed can differ in the last bits; STRICT reproducibility mode removes that.
# It must be set before MKL loads, i.e. before torch is imported (a user's own setting wins).
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
import torch  # noqa: E402
import torch.nn.functional as F
from tqdm import tqdm

from .errors import LivetexError
from .model import BigramModel, ExportedEncoder
from .segments import Segments

MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models")


@dataclass
class TrainConfig:
    backbone: str = "tiny3d"
    size: int = 32            # training frame side (px); thumbnails are resized to it once
    frames: int = 8           # frames sampled evenly from each 0.5 s window
    width: int = 16           # tiny3d channel width
    features: int = 256       # backbone output size
    diff: bool = True         # feed frame differences (motion) as extra channels
    dim: int = 64             # embedding size of phi and psi
    steps: int = 600          # maximum optimisation steps
    runs: int = 6             # runs per batch ...
    run_len: int = 16         # ... of this many consecutive segments
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 30
    tau: float = 0.1          # InfoNCE temperature
    symmetric: bool = True    # also ask psi(V_{i+1}) to find phi(V_i) among the queries
    # Augmentation is off by default: consecutive segments of a static-camera performance differ by
    # well under one pixel of motion at 32 px, so even a 1 px random shift drowns the signal.
    shift: int = 0            # augmentation: random spatial shift (px at training size)
    brightness: float = 0.0   # augmentation: random gain per clip
    noise: float = 0.0        # augmentation: Gaussian pixel noise (std, pixel range 0..1)
    view: str = "segment"     # frames each head sees: "segment" (whole window) or "seam" (see SegmentClips)
    soft: float = 0.0         # soft positives from pixel distance (0: one-hot InfoNCE, as the paper)
    patience: int = 150       # early stop when the smoothed loss improved < min_delta over this many steps
    min_delta: float = 0.01
    weights: str | None = None  # local checkpoint for pretrained backbones
    batch_embed: int = 256


def load_config(name_or_path: str | None = None, **overrides) -> TrainConfig:
    """A TrainConfig from defaults, then ``models/NAME.json`` (or a JSON path), then ``overrides``."""
    d: dict = {}
    if name_or_path:
        path = name_or_path if os.path.isfile(name_or_path) else os.path.join(MODELS_DIR, name_or_path + ".json")
        if not os.path.isfile(path):
            raise LivetexError(f"no model config {name_or_path!r} (looked for {path})")
        with open(path) as f:
            d = json.load(f)
    d.update(overrides)
    known = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(d) - known - {"description"})
    if bad:
        raise LivetexError(f"unknown training settings: {', '.join(bad)}")
    return TrainConfig(**{k: v for k, v in d.items() if k in known})


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LivetexError("--device cuda asked for, but torch sees no CUDA GPU (use --device auto or cpu)")
    return torch.device(name)


# -------------------------------------------------------------------------------------------- data
class SegmentClips:
    """Clips (B, 3, T, S, S) float in [0, 1], gathered by segment index from frames cached once as uint8.

    ``view`` says which frames of a segment each head sees:

    - ``"segment"``: phi and psi both see the whole window V_i (the paper's formulation).
    - ``"seam"``: phi sees the last W - s frames of V_t (what is on screen when the walk leaves t);
      psi sees the first W - s frames of V_j (what the appended tail of V_j continues from). The
      transition t -> j is then scored where the cut happens, so a high score means a seamless cut.
    """

    def __init__(self, thumbs: np.ndarray, seg: Segments, size: int, frames: int, device: torch.device,
                 view: str = "segment"):
        x = torch.from_numpy(np.array(thumbs)).permute(0, 3, 1, 2)                 # (n, 3, h, w) uint8
        if x.shape[-1] != size:
            if x.shape[-1] % size:
                raise LivetexError(f"training size {size} must divide the thumbnail size {x.shape[-1]}")
            k = x.shape[-1] // size
            x = torch.cat([F.avg_pool2d(c.float(), k).round().to(torch.uint8) for c in x.split(1024)])
        self.frames = x.to(device)
        self.view = view
        self.q_offsets, self.k_offsets = clip_offsets(seg, frames, view)
        starts = seg.starts[:, None]
        self.q_index = torch.from_numpy(starts + self.q_offsets[None, :]).to(device)   # (N, T)
        self.k_index = torch.from_numpy(starts + self.k_offsets[None, :]).to(device)
        self.shared = view == "segment"
        self.N = seg.count

    def __call__(self, ids: torch.Tensor, role: str = "q") -> torch.Tensor:
        x = self.frames[(self.q_index if role == "q" else self.k_index)[ids]]      # (B, T, 3, S, S) uint8
        return x.permute(0, 2, 1, 3, 4).float() / 255.0


def clip_offsets(seg: Segments, frames: int, view: str) -> tuple[np.ndarray, np.ndarray]:
    """Frame offsets within a segment read by the query (phi) and key (psi) encoders, each (frames,)."""
    W, S = seg.window_frames, seg.stride_frames
    if view == "segment":
        o = np.rint(np.linspace(0, W - 1, frames)).astype(np.int64)
        return o, o
    if view == "seam":
        L = W - S
        o = np.rint(np.linspace(0, L - 1, frames)).astype(np.int64)
        return o + S, o
    raise LivetexError(f"unknown clip view {view!r} (segment or seam)")


def sample_runs(N: int, runs: int, run_len: int, g: torch.Generator) -> torch.Tensor:
    """Segment ids of R runs of consecutive segments, shape (R * L,)."""
    L = max(2, min(run_len, N))
    starts = torch.randint(0, N - L + 1, (runs,), generator=g)
    return (starts[:, None] + torch.arange(L)[None, :]).reshape(-1)


def augment(x: torch.Tensor, shift: int, brightness: float, g: torch.Generator, noise: float = 0.0) -> torch.Tensor:
    """Per-clip random shift (edge-padded) and gain, the same for all frames of a clip; pixel noise."""
    if shift:
        b, _, _, h, w = x.shape
        pad = F.pad(x.flatten(1, 2), (shift, shift, shift, shift), mode="replicate").view(b, x.shape[1], x.shape[2], h + 2 * shift, w + 2 * shift)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=g)
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=g)
        x = torch.stack([pad[i, :, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    if brightness:
        gain = 1.0 + (torch.rand(x.shape[0], 1, 1, 1, 1, generator=g) * 2 - 1) * brightness
        x = (x * gain.to(x.device)).clamp(0, 1)
    if noise:
        # Overlapping segments share identical pixels; noise stops the net from matching them
        # by exact lookup, so it must learn similarity that also holds for lookalike segments.
        x = x + noise * torch.randn(x.shape, generator=g).to(x.device)
    return x


# -------------------------------------------------------------------------------------------- loss
def info_nce(q: torch.Tensor, k: torch.Tensor, ids: torch.Tensor, tau: float, symmetric: bool,
             pix: torch.Tensor | None = None, soft: float = 0.0, past: int = 4) -> torch.Tensor:
    """InfoNCE over one batch of clips with segment ids ``ids`` (M,), queries q and keys k (M, d).

    Anchor a (a clip whose successor id+1 is the next clip of its run) has positive k[a + 1]; every
    other clip is a negative except copies of ids[a] and ids[a] + 1 (self and successor appear in two
    runs when runs overlap: they are neither).

    ``soft`` > 0 replaces the one-hot target by soft positives: a key c gets weight
    exp(-|pix[a+1] - pix[c]|^2 / (soft * median)) from its pixel distance to the true successor, except
    the anchor's recent past (ids[a] - past .. ids[a]), which stays a pure negative (the arrow of time).
    One-hot InfoNCE also pushes away segments that look exactly like the successor — the very jumps
    a texture wants — and a per-video net is strong enough to learn that; soft targets keep them close.
    """
    pos = torch.nonzero(ids[1:] == ids[:-1] + 1).squeeze(1)        # anchor positions a; positive at a + 1
    a_ids = ids[pos][:, None]
    exclude = (ids[None, :] == a_ids) | (ids[None, :] == a_ids + 1)
    rows = torch.arange(len(pos), device=ids.device)
    keep = exclude.clone()
    keep[rows, pos + 1] = False
    logits = (q[pos] @ k.T / tau).masked_fill(keep, float("-inf"))
    if soft > 0 and pix is not None:
        d = torch.cdist(pix[pos + 1], pix).pow(2)                    # (B, M) squared distance to the successor
        w = torch.exp(-d / (soft * d.median().clamp_min(1e-8)))
        recent = (ids[None, :] <= a_ids) & (ids[None, :] >= a_ids - past)
        w = w.masked_fill(keep | recent, 0.0)
        w[rows, pos + 1] = 1.0
        w = w / w.sum(1, keepdim=True)
        loss = -(w * torch.log_softmax(logits, 1).masked_fill(keep, 0.0)).sum(1).mean()
    else:
        loss = F.cross_entropy(logits, pos + 1)
    if symmetric:
        keep = exclude.clone()
        keep[rows, pos] = False
        logits = (k[pos + 1] @ q.T / tau).masked_fill(keep, float("-inf"))
        loss = 0.5 * (loss + F.cross_entropy(logits, pos))
    return loss


def clip_grey(x: torch.Tensor, side: int = 16) -> torch.Tensor:
    """(B, 3, T, S, S) clips -> (B, T * side * side) grey pixels, the distance used by soft targets."""
    g = x.mean(1)                                                   # (B, T, S, S)
    g = F.adaptive_avg_pool2d(g, side) if g.shape[-1] != side else g
    return g.flatten(1)


# ----------------------------------------------------------------------------------------- training
def train(clips: SegmentClips, tc: TrainConfig, device: torch.device, seed: int = 0, progress: bool = True):
    """Optimise a BigramModel; returns (model, log dict)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = BigramModel(asdict(tc)).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / tc.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, tc.steps) / tc.steps)))
    runs = max(2, min(tc.runs, clips.N // 2))
    curve, ema, best, best_step = [], None, float("inf"), 0
    t0 = time.time()
    bar = tqdm(range(tc.steps), desc="fit", unit="step", disable=None if progress else True)
    model.train()
    step = 0
    for step in bar:
        ids = sample_runs(clips.N, runs, tc.run_len, g).to(device)
        xk = clips(ids, "k")
        if clips.shared:
            q, k = model(augment(xk, tc.shift, tc.brightness, g, tc.noise))
        else:
            q = model(augment(clips(ids, "q"), tc.shift, tc.brightness, g, tc.noise), "phi")
            k = model(augment(xk, tc.shift, tc.brightness, g, tc.noise), "psi")
        pix = clip_grey(xk) if tc.soft > 0 else None
        loss = info_nce(q, k, ids, tc.tau, tc.symmetric, pix, tc.soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        lv = loss.item()
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        if step % 10 == 0:
            curve.append([step, round(lv, 4), round(ema, 4)])
            bar.set_postfix(loss=f"{ema:.3f}")
        if ema < best * (1 - tc.min_delta):
            best, best_step = ema, step
        elif step - best_step >= tc.patience and step >= 2 * tc.warmup:
            break  # converged: no real progress for `patience` steps
    bar.close()
    return model, {"steps_run": step + 1, "seconds": round(time.time() - t0, 2), "curve": curve,
                   "loss_first": curve[0][1] if curve else None, "loss_final": ema}


@torch.no_grad()
def embed_all(model: BigramModel, clips: SegmentClips, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """phi, psi of every segment, (N, dim) float32."""
    model.eval()
    phis, psis = [], []
    for ids in torch.arange(clips.N, device=clips.frames.device).split(batch):
        phis.append(model(clips(ids, "q"), "phi").float().cpu())
        psis.append(model(clips(ids, "k"), "psi").float().cpu())
    return torch.cat(phis).numpy(), torch.cat(psis).numpy()


def successor_accuracy(phi: np.ndarray, psi: np.ndarray) -> float:
    """Fraction of segments whose best-scoring other segment is their true successor."""
    s = phi[:-1] @ psi.T
    s[np.arange(len(s)), np.arange(len(s))] = -np.inf
    return float(np.mean(s.argmax(1) == np.arange(1, len(phi))))


def export_onnx(model: BigramModel, tc: TrainConfig, thumb: int, path: str) -> None:
    """Write the encoder (raw thumbnail clips -> phi, psi) as ONNX."""
    enc = ExportedEncoder(model.cpu(), tc.size, thumb).eval()
    dummy = torch.rand(2, tc.frames, thumb, thumb, 3) * 255
    torch.onnx.export(enc, (dummy,), path, input_names=["clip"], output_names=["phi", "psi"],
                      dynamic_axes={"clip": {0: "batch"}, "phi": {0: "batch"}, "psi": {0: "batch"}},
                      opset_version=17, dynamo=False)


def fit_model(bw, seg: Segments, thumbs: np.ndarray, cfg, progress: bool = True):
    """The exporter's model step: train, embed every segment, write phi/psi + ONNX into bundle writer ``bw``.
    Returns (phi, psi)."""
    overrides = dict(cfg.train)
    tc = load_config(overrides.pop("config", None), **overrides)
    if seg.count < 4:
        raise LivetexError(f"video is too short to fit: {seg.count} segments; the model needs at least 4 "
                           f"({(3 * seg.stride_frames + seg.window_frames) / seg.fps:.1f} s)")
    device = pick_device(cfg.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    clips = SegmentClips(thumbs, seg, tc.size, tc.frames, device, tc.view)
    model, log = train(clips, tc, device, cfg.seed, progress)
    phi, psi = embed_all(model, clips, tc.batch_embed)
    bw.add_array("phi", phi)
    bw.add_array("psi", psi)
    export_onnx(model, tc, thumbs.shape[1], bw.file("video_encoder.onnx"))
    # phi must be fed the query frames of a segment and psi its key frames (offsets from its first frame).
    bw.add_model("video_encoder", "video_encoder.onnx",
                 inputs={"clip": ["batch", tc.frames, thumbs.shape[1], thumbs.shape[2], 3]}, outputs=["phi", "psi"],
                 query_offsets=clips.q_offsets.tolist(), key_offsets=clips.k_offsets.tolist())
    bw.manifest["fit"] = {**asdict(tc), **log, "device": device.type, "seed": cfg.seed,
                          "successor_top1": successor_accuracy(phi, psi)}
    return phi, psi
