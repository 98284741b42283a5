"""X3D backbones from pytorchvideo 0.1.5, with Kinetics-400 weights from a local checkpoint.

pytorchvideo is the only livetex dependency that reaches for torchvision, and only for a detection
head X3D never uses (``pytorchvideo.models.head`` imports ``torchvision.ops.RoIAlign``). torchvision
wheels here are CUDA builds that break a CPU torch, so this module — the one place pytorchvideo is
imported — lends it a stand-in ``torchvision.ops`` for the duration of the import and removes it again.

Weights are never downloaded: pass the file with ``livetex fit --backbone x3d_xs --weights X3D_XS.pyth``
(the checkpoints of the PyTorchVideo model zoo, ``{"model_state": state_dict}``).
"""

from __future__ import annotations

import os
import sys
import types

import torch
from torch import nn

from .errors import LivetexError

# Architecture of the PyTorchVideo model zoo entries (pytorchvideo/models/hub/x3d.py).
SPECS = {
    "x3d_xs": {"input_clip_length": 4, "input_crop_size": 160, "depth_factor": 2.2, "file": "X3D_XS.pyth"},
    "x3d_s": {"input_clip_length": 13, "input_crop_size": 160, "depth_factor": 2.2, "file": "X3D_S.pyth"},
}
ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def _import_create_x3d():
    try:
        import torchvision.ops  # noqa: F401  (a working torchvision: nothing to lend)
        lend = False
    except Exception:
        lend = True
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.ops")}
    if lend:
        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")

        class RoIAlign(nn.Module):  # only detection heads use it; X3D never builds one
            def __init__(self, *a, **k):
                raise LivetexError("RoIAlign needs a real torchvision; livetex's X3D backbones do not use it")

        ops.RoIAlign = RoIAlign
        tv.ops = ops
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
    try:
        from pytorchvideo.models.x3d import create_x3d
    except ImportError as e:
        raise LivetexError(f"the X3D backbones need pytorchvideo: pip install 'livetex[x3d]' ({e})") from None
    finally:
        if lend:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    return create_x3d


class X3DFeatures(nn.Module):
    """A frozen, pretrained X3D as a feature extractor: clips (B, 3, T, H, W) in [0, 1] -> (B, 2048).

    The backbone stays in eval mode (its batch-norm statistics are Kinetics', not this video's);
    only the phi/psi heads on top of it are trained.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1))
        self.register_buffer("std", torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1))
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.out_dim = 2048

    def train(self, mode: bool = True):
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def build_x3d(name: str, cfg: dict) -> nn.Module:
    spec = SPECS[name]
    path = cfg.get("weights")
    if not path:
        raise LivetexError(f"the {name} backbone needs its Kinetics-400 weights, which livetex never downloads: "
                           f"fetch {ZOO}{spec['file']} yourself and pass --weights /path/to/{spec['file']}")
    if not os.path.isfile(path):
        raise LivetexError(f"weights file not found: {path} (expected {spec['file']} from {ZOO})")
    create_x3d = _import_create_x3d()
    net = create_x3d(input_clip_length=spec["input_clip_length"], input_crop_size=spec["input_crop_size"],
                     depth_factor=spec["depth_factor"], model_num_class=400, head_activation=None)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
        if state is None:
            raise ValueError("no state dict inside")
        net.load_state_dict(state)
    except Exception as e:
        raise LivetexError(f"{path} is not a {name} checkpoint ({str(e).splitlines()[0][:200]})") from None
    head = net.blocks[-1]
    # Any clip size: the zoo's fixed pooling window assumes 160 px crops, livetex feeds thumbnails.
    head.pool.pool = nn.AdaptiveAvgPool3d(1)
    head.dropout, head.proj, head.activation = nn.Identity(), nn.Identity(), None
    return X3DFeatures(net)
