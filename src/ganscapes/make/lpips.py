"""LPIPS, the learned perceptual distance (Zhang et al., CVPR 2018), from local weight files.

NVIDIA's projector (`projector.py`, `project`) measures how far a generated picture is
from the target with LPIPS on VGG16 features. ganscapes never downloads a network and
never runs code from a file, so NVIDIA's TorchScript `vgg16.pt` is not used: the same
distance is built here from two sets of plain tensors the user keeps on disk,

- torchvision's VGG16 ImageNet weights (`vgg16-397923af.pth`; keys `features.N.weight`
  and `features.N.bias`), and
- the LPIPS v0.1 linear heads of the `lpips` package (`weights/v0.1/vgg.pth`; keys
  `lin0.model.1.weight` … `lin4.model.1.weight`),

given as two files or one file holding both, in safetensors or PyTorch format (read with
`torch.load(weights_only=True)`, PyTorch's restricted unpickler). Every tensor's shape is
checked against VGG16's before anything is copied.

The distance (lpips package, `LPIPS.forward` with `lpips=True`): pictures in [-1, 1] are
shifted and scaled per channel (its `ScalingLayer`), go through VGG16's convolutions; the
activations after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 are normalised to unit
length along the channels, their squared difference is weighted per channel by the
linear heads, averaged over the picture and summed over the five layers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ganscapes.errors import UserError, first_line

# VGG16's convolution widths, "M" a 2×2 max-pool: the layout of torchvision's `vgg16().features`,
# so that its state-dict keys (features.0, features.2, … features.28) fit this module as they are.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in `features`
TAP_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)  # lpips ScalingLayer
SCALE = (0.458, 0.448, 0.450)
MAX_FILE_BYTES = 2 << 30  # VGG16's ImageNet file is 528 MB
EPS = 1e-10


def _vgg16_features() -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(torch.nn.MaxPool2d(2, 2))
        else:
            layers += [torch.nn.Conv2d(channels, item, 3, padding=1), torch.nn.ReLU()]
            channels = item
    return torch.nn.Sequential(*layers)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor LPIPS needs, by its key in the published files, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, t in _vgg16_features().state_dict().items():
        shapes[f"features.{name}"] = tuple(t.shape)
    for k, c in enumerate(TAP_CHANNELS):
        shapes[f"lin{k}.model.1.weight"] = (1, c, 1, 1)
    return shapes


class LPIPS(torch.nn.Module):
    """distance(a, b) → [N]; pictures [N, 3, H, W] in [-1, 1]; differentiable."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        super().__init__()
        self.features = _vgg16_features()[: TAPS[-1] + 1]
        self.features.load_state_dict(
            {k.removeprefix("features."): v for k, v in tensors.items() if k.startswith("features.")}, strict=False
        )
        heads = [tensors[f"lin{k}.model.1.weight"].float() for k in range(len(TAPS))]
        self.heads = torch.nn.ParameterList(torch.nn.Parameter(h, requires_grad=False) for h in heads)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS))
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = 0
        for fa, fb, head in zip(self._taps(a), self._taps(b), self.heads):
            total = total + F.conv2d((fa - fb).pow(2), head).mean(dim=(1, 2, 3))
        return total


def check_files(paths: list[Path]) -> None:
    """Refuse, in one sentence, a weights file that is not there (before anything slow is loaded)."""
    for path in paths:
        if not Path(path).is_file():
            raise UserError(
                f"The LPIPS weights file {path} does not exist; ganscapes does not download them: give VGG16's "
                "vgg16-397923af.pth and the lpips package's vgg.pth as saved on this machine."
            )


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    check_files([path])
    if path.stat().st_size > MAX_FILE_BYTES:
        raise UserError(f"{path} is larger than {MAX_FILE_BYTES >> 20} MB: not an LPIPS or VGG16 weights file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # damaged bytes, a pickle asking for code: refused either way
        raise UserError(f"Cannot read {path} as a weights file: {first_line(e, 160)}.") from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise UserError(f"{path} holds no named tensors (a state dict), so it is not an LPIPS or VGG16 weights file.")
    return {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}


def load_lpips(paths: list[Path], device="cpu") -> LPIPS:
    """LPIPS from one or more local files whose tensors together hold VGG16's features and the heads."""
    found: dict[str, torch.Tensor] = {}
    for path in paths:
        for key, t in _read_tensors(Path(path)).items():
            found[key.removeprefix("net.")] = t  # lpips saves heads as `lin0…`, some conversions as `net.…`
    shapes = expected_shapes()
    missing = [k for k in shapes if k not in found]
    if missing:
        has_vgg = not any(k.startswith("features.") for k in missing)
        has_heads = not any(k.startswith("lin") for k in missing)
        what = "VGG16's features (vgg16-397923af.pth)" if not has_vgg else "the LPIPS heads (vgg.pth)"
        if not has_vgg and not has_heads:
            what = "VGG16's features (vgg16-397923af.pth) and the LPIPS heads (vgg.pth)"
        raise UserError(f"The LPIPS weights given lack {what}: {len(missing)} tensors missing, e.g. {missing[0]}.")
    for key, shape in shapes.items():
        if tuple(found[key].shape) != shape:
            raise UserError(f"{key} has shape {list(found[key].shape)} in the LPIPS weights given, not {list(shape)}.")
    return LPIPS({k: found[k].float() for k in shapes}).to(device)
