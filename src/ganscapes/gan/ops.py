"""The low-level operations of StyleGAN2, in plain PyTorch (no compiled extension).

NVIDIA's release ships CUDA kernels for two ops, `upfirdn2d` and `bias_act`, with
reference fallbacks. Here there are only the reference forms, written so that the heavy
work lands in cuDNN/oneDNN convolutions: the FIR filter runs as a depthwise
convolution, separably (two 1-D passes) when the filter is an outer product, and
2× upsampling is done polyphase-free by a strided transposed convolution instead of
inserting zeros into a 4× larger tensor.

Conventions (those of NVIDIA's `torch_utils/ops`): NCHW; "true convolution" means the
kernel is flipped relative to `F.conv2d`, which is a correlation.
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)
ACTIVATION_GAINS = {"linear": 1.0, "lrelu": SQRT2, "relu": SQRT2}


# ---------------------------------------------------------------------------------------
# FIR filters


def setup_filter(taps=(1, 3, 3, 1), separable: bool | None = None) -> torch.Tensor:
    """A normalised FIR filter: 2-D outer product for short filters, 1-D for ≥ 8 taps.

    This is the form stored in official checkpoints as `resample_filter` ([4,4] for the
    default [1,3,3,1]), normalised to sum 1.
    """
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1 and separable is None:
        separable = f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    return f / f.sum()


def _as_separable(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(fy, fx) with f = outer(fy, fx), if the 2-D filter is exactly rank one."""
    if f.ndim == 1:
        return f, f
    row = f.sum(dim=0)
    col = f.sum(dim=1)
    total = f.sum()
    if total == 0:
        return None
    fy, fx = col, row / total
    if torch.allclose(torch.outer(fy, fx), f, rtol=1e-6, atol=1e-9):
        return fy, fx
    return None


def _filter(x: torch.Tensor, f: torch.Tensor, gain: float, flip: bool, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Depthwise filtering of every channel of x with f·gain (true convolution if flip),
    `pad` = (rows, columns) of zeros on both sides, which the convolution adds itself
    rather than a padded copy of x being made first."""
    C = x.shape[1]
    py, px = pad
    sep = _as_separable(f)
    if sep is not None:
        fy, fx = sep
        g = math.sqrt(gain)
        fy, fx = (fy * g).to(x.dtype), (fx * g).to(x.dtype)
        if flip:
            fy, fx = fy.flip(0), fx.flip(0)
        x = F.conv2d(x, fx.reshape(1, 1, 1, -1).expand(C, 1, 1, -1), padding=(0, px), groups=C)
        return F.conv2d(x, fy.reshape(1, 1, -1, 1).expand(C, 1, -1, 1), padding=(py, 0), groups=C)
    w = (f * gain).to(x.dtype)
    if flip:
        w = w.flip([0, 1])
    return F.conv2d(x, w[None, None].expand(C, 1, *w.shape), padding=(py, px), groups=C)


def _symmetric(padding) -> tuple[int, int] | None:
    """(rows, columns) when `padding` (px0, px1, py0, py1) pads each axis equally and never crops."""
    px0, px1, py0, py1 = padding
    return (py0, px0) if px0 == px1 >= 0 and py0 == py1 >= 0 else None


def _pad_or_crop(x: torch.Tensor, padding) -> torch.Tensor:
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    H, W = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0) : H - max(-py1, 0), max(-px0, 0) : W - max(-px1, 0)]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding=(0, 0, 0, 0),
    gain: float = 1.0,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative: crop), FIR-filter, downsample (`torch_utils/ops/upfirdn2d.py`).

    The general reference form; the networks use the faster `upsample2d` /
    `downsample2d` / resampling convolutions below, which are tested against it.
    """
    if isinstance(padding, int):
        padding = (padding,) * 4
    N, C, H, W = x.shape
    if up > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(N, C, H * up, W * up)
    both = _symmetric(padding)
    if both is not None:
        x = _filter(x, f, gain, flip=not flip_filter, pad=both)
    else:
        x = _filter(_pad_or_crop(x, padding), f, gain, flip=not flip_filter)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2× FIR upsampling: `upfirdn2d(x, f, up=2, padding=((fw+1)//2, (fw-2)//2)*2, gain=4)`.

    A stride-2 transposed convolution with the filter touches only the real samples,
    instead of filtering a zero-stuffed image four times the size.
    """
    fw = f.shape[-1]
    start = fw - 1 - (fw + 1) // 2
    H2, W2 = 2 * x.shape[2], 2 * x.shape[3]
    y = _transposed_filter(x, f, gain=4.0)
    return y[:, :, start : start + H2, start : start + W2]


def _transposed_filter(x: torch.Tensor, f: torch.Tensor, gain: float) -> torch.Tensor:
    """Full true convolution of the zero-stuffed (2×) x with f·gain, without the stuffing."""
    C = x.shape[1]
    sep = _as_separable(f)
    if sep is not None:
        g = math.sqrt(gain)
        fy, fx = (sep[0] * g).to(x.dtype), (sep[1] * g).to(x.dtype)
        x = F.conv_transpose2d(x, fx.reshape(1, 1, 1, -1).expand(C, 1, 1, -1), stride=(1, 2), groups=C)
        return F.conv_transpose2d(x, fy.reshape(1, 1, -1, 1).expand(C, 1, -1, 1), stride=(2, 1), groups=C)
    w = (f * gain).to(x.dtype)
    return F.conv_transpose2d(x, w[None, None].expand(C, 1, *w.shape), stride=2, groups=C)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2× FIR downsampling, `upfirdn2d(x, f, down=2, padding=(1,1,1,1))` for a 4-tap f."""
    fw = f.shape[-1]
    pad = [(fw - 1) // 2, (fw - 2) // 2] * 2
    both = _symmetric(pad)
    if both is not None:
        return _filter_strided(x, f, stride=2, pad=both)
    return _filter_strided(_pad_or_crop(x, pad), f, stride=2)


def _filter_strided(x: torch.Tensor, f: torch.Tensor, stride: int, pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Depthwise true convolution with f, keeping every stride-th output (computed directly);
    `pad` as in `_filter`."""
    C = x.shape[1]
    py, px = pad
    sep = _as_separable(f)
    if sep is not None:
        fy, fx = (t.flip(0).to(x.dtype) for t in sep)
        x = F.conv2d(x, fx.reshape(1, 1, 1, -1).expand(C, 1, 1, -1), stride=(1, stride), padding=(0, px), groups=C)
        return F.conv2d(x, fy.reshape(1, 1, -1, 1).expand(C, 1, -1, 1), stride=(stride, 1), padding=(py, 0), groups=C)
    w = f.flip([0, 1]).to(x.dtype)
    return F.conv2d(x, w[None, None].expand(C, 1, *w.shape), stride=stride, padding=(py, px), groups=C)


# ---------------------------------------------------------------------------------------
# Bias and activation


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float = 0.2,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add bias along `dim`, activate, scale by gain (default: the activation's), clamp.

    The order and default gains of `bias_act` in NVIDIA's `torch_utils/ops/bias_act.py`.
    With autograd, `_BiasAct` keeps only the output for the backward pass, as NVIDIA's
    CUDA kernel does; the step-by-step reference form would keep two tensors per layer.
    """
    if act not in ACTIVATION_GAINS:
        raise ValueError(f"unknown activation {act!r}")
    gain = ACTIVATION_GAINS[act] if gain is None else gain
    clamp = clamp if clamp is not None and clamp >= 0 else None
    if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
        return _BiasAct.apply(x, b, dim, act, alpha, gain, clamp)
    return _bias_act_into(torch.empty_like(x), x, b, dim, act, alpha, gain, clamp)


def _bias_shape(x: torch.Tensor, dim: int) -> list[int]:
    shape = [1] * x.ndim
    shape[dim] = -1
    return shape


def _bias_act_into(out, x, b, dim, act, alpha, gain, clamp) -> torch.Tensor:
    """`out` = bias_act(x) without autograd: the first step writes `out`, the others work in place.

    Each step is the kernel the step-by-step form would run on the same operands, so the
    bits are the same, with one new tensor instead of four.
    """
    if b is not None:
        torch.add(x, b.to(x.dtype).reshape(_bias_shape(x, dim)), out=out)
    elif act == "linear" and gain != 1:  # a skip connection's: the gain is the first step
        torch.mul(x, gain, out=out)
        gain = 1
    else:
        out.copy_(x)
    return _activate_(out, act, alpha, gain, clamp)


def _bias_act_grad(dy: torch.Tensor, y: torch.Tensor | None, act: str, alpha: float, gain: float, clamp):
    """The gradient of `bias_act` from its output, in the order autograd takes the steps back.

    Clamp (zero where the output sits on a bound: NVIDIA's CUDA kernel decides from the
    output too), gain, then the activation's slope (the output has the input's sign).
    Differentiable ATen ops, so R1's double backward goes through them; without a double
    backward the later steps work in place.
    """
    dx = dy
    if clamp is not None:
        dx = torch.ops.aten.hardtanh_backward(dx, y, -clamp, clamp)
    if gain != 1:
        dx = dx * gain if dx is dy or torch.is_grad_enabled() else dx.mul_(gain)
    if act == "lrelu":
        dx = torch.ops.aten.leaky_relu_backward(dx, y, alpha, True)
    elif act == "relu":
        dx = torch.ops.aten.threshold_backward(dx, y, 0)
    return dx


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, dim, act, alpha, gain, clamp):
        y = _bias_act_into(torch.empty_like(x), x, b, dim, act, alpha, gain, clamp)
        ctx.settings = (dim, act, alpha, gain, clamp)
        ctx.bias_shape = None if b is None else b.shape
        needs_y = act != "linear" or clamp is not None
        ctx.save_for_backward(y if needs_y else None)
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        y = None if y is None else y.detach()  # the slope and the bounds are constants to a double backward
        dim, act, alpha, gain, clamp = ctx.settings
        dx = _bias_act_grad(dy, y, act, alpha, gain, clamp)
        db = None
        if ctx.bias_shape is not None and ctx.needs_input_grad[1]:
            dims = [d for d in range(dx.ndim) if d != dim % dx.ndim]
            db = dx.sum(dim=dims).reshape(ctx.bias_shape)
        return dx, db, None, None, None, None, None


def _activate_(x: torch.Tensor, act: str, alpha: float, gain: float, clamp: float | None) -> torch.Tensor:
    """`bias_act`'s steps after the bias, in place and in its order: activation, gain, clamp."""
    if act == "lrelu":
        F.leaky_relu_(x, alpha)
    elif act == "relu":
        x.relu_()
    if gain != 1:
        x.mul_(gain)
    if clamp is not None and clamp >= 0:
        x.clamp_(-clamp, clamp)
    return x


def _pieces(x: torch.Tensor, piece_bytes: int):
    """Indices cutting an [N, C, H, W] tensor into pieces of about `piece_bytes`: one sample,
    all channels, a band of rows. Yields (sample slice, band index) for `scale[n]` and `x[band]`."""
    N, C, H, W = x.shape
    rows = max(1, piece_bytes // (C * W * x.element_size()))
    for n in range(N):
        for top in range(0, H, rows):
            sample = slice(n, n + 1)
            yield sample, (sample, slice(None), slice(top, top + rows))


EPILOGUE_PIECE_BYTES = 1 << 20  # a piece of the tensor that stays in a core's L2 cache through every step
# Pieces are for CPU caches; on a GPU each piece would cost five kernel launches (hundreds
# per layer at 256²), so there the whole tensor is one piece.
PIECEWISE_DEVICES = ("cpu",)
_WHOLE = ((slice(None), (slice(None),)),)  # one piece: (every sample, the whole tensor)


def modconv_epilogue_(
    x: torch.Tensor,
    dcoefs: torch.Tensor,
    noise: torch.Tensor | None,
    bias: torch.Tensor,
    act: str,
    alpha: float = 0.2,
    gain: float = 1.0,
    clamp: float | None = None,
    then_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Without autograd: demodulate, add noise, then `bias_act`, piece by piece, in place.

    After a synthesis layer's convolution there are five element-wise steps (demodulation
    with noise, bias, activation, gain, clamp). Applied to the whole tensor, each reads and
    writes all of it: at 256² and batch 8 the top layers hold 134 MB, so each step is a
    trip through main memory. Applied to pieces of about 1 MB, a piece stays in cache from
    the first step to the last. Every step is the same PyTorch kernel with the same
    operands as in `modulated_conv2d` followed by `bias_act`, so the result is identical
    to the bit; only the order in which elements are visited changes.

    In place when `x` is dense (NCHW, or channels-last as the CPU's synthesis blocks run);
    a piece (one sample, a band of rows) is then one block of memory in either layout.
    `then_scale` ([N, C]): the next layer's modulation `x · styles`, applied last while
    the piece is still in cache (that layer is then told its input is modulated).
    x: [N, C, H, W]; dcoefs: [N, C]; noise: broadcastable to [N, 1, H, W].
    """
    N, C, H, W = x.shape
    dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
    out = x if dense else torch.empty_like(x, memory_format=torch.contiguous_format)
    scale = dcoefs.to(x.dtype).reshape(N, C, 1, 1)
    noise = None if noise is None else noise.to(x.dtype).expand(N, 1, H, W)
    b = bias.to(x.dtype).reshape(1, C, 1, 1)
    then = None if then_scale is None else then_scale.to(x.dtype).reshape(N, C, 1, 1)
    for sample, band in _pieces(x, EPILOGUE_PIECE_BYTES) if x.device.type in PIECEWISE_DEVICES else _WHOLE:
        source, piece = x[band], out[band]
        if noise is None:
            torch.mul(source, scale[sample], out=piece)
        else:
            torch.addcmul(noise[band], source, scale[sample], out=piece)
        _activate_(piece.add_(b), act, alpha, gain, clamp)
        if then is not None:
            piece.mul_(then[sample])
    return out


def grid_sample_bilinear(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """`F.grid_sample` (bilinear, zero padding, align_corners False) that R1 can differentiate twice.

    R1 differentiates the discriminator's gradient with respect to the real images, and
    that gradient passes back through the augmentation's grid sampling. PyTorch's CPU
    kernel supports this double backward; its CUDA kernel does not ("derivative for
    aten::grid_sampler_2d_backward is not implemented"), so training with the geometric
    augmentations would stop at the first R1 step on a GPU. NVIDIA meets the same limit
    in `torch_utils/ops/grid_sample_gradfix.py`: the input gradient of bilinear sampling
    is linear in the output gradient, so its own derivative is the same sampling again,
    and the grid (built from constants) needs no second derivative. On CPUs the built-in
    op runs, so the CPU results stay those of PyTorch's own kernel.
    """
    if x.device.type == "cpu":
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return _GridSample.apply(x, grid)


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grid):
        ctx.save_for_backward(x, grid)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    @staticmethod
    def backward(ctx, dy):
        x, grid = ctx.saved_tensors
        return _GridSampleBackward.apply(dy, x, grid, ctx.needs_input_grad[1])


class _GridSampleBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dy, x, grid, grid_grad: bool):
        ctx.save_for_backward(grid)
        # interpolation 0 = bilinear, padding 0 = zeros, align_corners False; output mask: [input, grid]
        dx, dgrid = torch.ops.aten.grid_sampler_2d_backward(dy, x, grid, 0, 0, False, [True, grid_grad])
        return dx, (dgrid if grid_grad else None)  # no grid-sized zeros on every R1 step

    @staticmethod
    def backward(ctx, ddx, _ddgrid):
        (grid,) = ctx.saved_tensors
        if ctx.needs_input_grad[2]:
            raise RuntimeError("grid_sample_bilinear has no second derivative with respect to the grid")
        # dx is linear in dy and independent of x: d(dx)/d(dy) applied to ddx is the sampling itself.
        ddy = _GridSample.apply(ddx, grid) if ctx.needs_input_grad[0] and ddx is not None else None
        return ddy, None, None, None


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Network output in about [-1, 1] → uint8 pixels; `+128` then truncation rounds (facts, conventions)."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


# ---------------------------------------------------------------------------------------
# Generation: what does not change between batches is computed once


class DerivedFromParameters:
    """Values computed from a parameter (its demodulation sums, a re-laid-out copy), kept
    while that parameter is unchanged, so that generating batch after batch does not redo them.

    Only without autograd: training recomputes everything, as the gradients need. An entry
    is keyed by the parameter object and its version counter, which every in-place change
    (an optimiser step, `load_state_dict`, `copy_`) advances; it goes when the parameter does.
    Computing the same function of the same numbers, a kept value is identical to a fresh one.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[int, object], tuple[weakref.ref, int, torch.Tensor]] = {}

    def get(self, param: torch.Tensor, name: object, compute) -> torch.Tensor:
        if torch.is_grad_enabled() or not isinstance(param, nn.Parameter):
            return compute()
        key = (id(param), name)
        hit = self._items.get(key)
        if hit is not None and hit[0]() is param and hit[1] == param._version:
            return hit[2]
        value = compute()
        self._items[key] = (weakref.ref(param, lambda _, key=key: self._items.pop(key, None)), param._version, value)
        return value


derived = DerivedFromParameters()

RELAYOUT_PIECE_BYTES = 1 << 19  # a piece of a layout change that stays in cache


def relayout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """`x.contiguous(memory_format=...)`, done piece by piece (rows of one sample) when large.

    Turning a channels-last tensor into NCHW (or back) in one pass reads one layout and
    writes the other with strides that defeat the caches; piece by piece, each piece's
    reads and writes stay in cache: 2.5 times faster for a 33 MB tensor here. A copy, so
    the numbers are the same. With autograd (`_Relayout`) the gradient goes back into the
    input's layout the same way, so the backward pass of the layers before stays in their
    layout instead of converting it inside each convolution's backward, in one slow pass.
    """
    if x.is_contiguous(memory_format=memory_format):
        return x
    if x.ndim != 4:
        return x.contiguous(memory_format=memory_format)
    if x.requires_grad and torch.is_grad_enabled():
        return _Relayout.apply(x, memory_format)
    return _relayout_copy(x, memory_format)


def _relayout_copy(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    if x.is_contiguous(memory_format=memory_format):
        return x
    if x.device.type != "cpu" or x.numel() * x.element_size() < 4 * RELAYOUT_PIECE_BYTES:
        return x.contiguous(memory_format=memory_format)
    out = torch.empty_like(x, memory_format=memory_format)
    for _, band in _pieces(x, RELAYOUT_PIECE_BYTES):
        out[band].copy_(x[band])
    return out


def _layout_of(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


class _Relayout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, memory_format):
        ctx.input_format = _layout_of(x)
        return _relayout_copy(x, memory_format)

    @staticmethod
    def backward(ctx, grad):
        # Through `relayout` again, so that a double backward (path length) can follow it.
        return relayout(grad, ctx.input_format), None


# ---------------------------------------------------------------------------------------
# Resampling convolutions (`torch_utils/ops/conv2d_resample.py`)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
) -> torch.Tensor:
    """Convolution with optional 2× FIR up- or downsampling (`torch_utils/ops/conv2d_resample.py`).

    An up-sampled result stays in the layout it was computed in (channels-last on CPUs,
    the layout the synthesis blocks run in there); a grouped one goes back to NCHW for the
    caller's reshape.

    `flip_weight=True` is a plain `F.conv2d` (a correlation); False flips the kernel (a
    true convolution). Up layers are true convolutions (NVIDIA's layers in
    `training/networks.py` pass `flip_weight=(up == 1)`), which a transposed convolution
    is by construction.
    """
    kh, kw = w.shape[2], w.shape[3]
    if up == 2:
        if kh == 1 and kw == 1:
            return conv2d_resample(upsample2d(x, f), w, groups=groups, flip_weight=flip_weight)
        # oneDNN's strided transposed convolution and the depthwise FIR passes run two to
        # three times faster on channels-last tensors (its native layout on CPUs: no
        # reordering into and out of blocked layouts around every call).
        layout = torch.channels_last if x.device.type == "cpu" else torch.contiguous_format

        def transposed_weight() -> torch.Tensor:
            O, I = w.shape[0], w.shape[1]  # noqa: E741 -- conv_transpose2d wants [in, out/groups, k, k]
            wt = w.reshape(groups, O // groups, I, kh, kw).transpose(1, 2).reshape(groups * I, O // groups, kh, kw)
            return (wt.flip([2, 3]) if flip_weight else wt).contiguous(memory_format=layout)

        wt = derived.get(w, ("up", groups, flip_weight, layout), transposed_weight)
        x = relayout(x, layout)
        if _weight_gradient_by_phases(x, wt, groups):
            x = _StrideTwoConv.apply(x, wt, True)
        else:
            x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
        x = upfirdn2d(x, f, padding=_up_fir_padding(kw, f.shape[-1], padding), gain=4)
        return x if groups == 1 else relayout(x, torch.contiguous_format)
    if not flip_weight:
        w = w.flip([2, 3])
    if down == 2:
        if kh == 1 and kw == 1:
            return F.conv2d(downsample2d(x, f), w, groups=groups)
        fw = f.shape[-1]
        p0, p1 = padding + (fw - 1) // 2, padding + (fw - 2) // 2
        x = upfirdn2d(x, f, padding=(p0, p1, p0, p1))
        if _weight_gradient_by_phases(x, w, groups):
            return _StrideTwoConv.apply(x, w, False)
        return F.conv2d(x, w, stride=2, groups=groups)
    return F.conv2d(x, w, padding=padding, groups=groups)


# Below this input size oneDNN's own weight gradient was as fast (33² inputs of the strided
# convolution, 32² inputs of the transposed one; measured with batch 8 on one thread).
PHASES_MIN_INPUT = 64


def _weight_gradient_by_phases(x: torch.Tensor, w: torch.Tensor, groups: int) -> bool:
    return (
        x.device.type == "cpu"
        and groups == 1
        and w.shape[2:] == (3, 3)
        and w.requires_grad
        and torch.is_grad_enabled()
        and min(x.shape[2], x.shape[3]) >= PHASES_MIN_INPUT
    )


class _StrideTwoConv(torch.autograd.Function):
    """A 3×3 stride-2 convolution, or with `transposed` its transpose, whose weight gradient
    is taken phase by phase.

    On CPUs oneDNN computes the weight gradient of a strided convolution at a fraction of
    its stride-1 rate (25 to 70 % on the discriminator's downsampling layers and the
    generator's upsampling layers at 64² and 128²; `benchmarks/profile_ops.py` lists them).
    Split the large side (the strided convolution's input, the transposed one's output) into
    its four polyphase components (even or odd rows × even or odd columns): the 2×2, 2×1,
    1×2 and 1×1 corners of the kernel then each see one component at stride 1, so the same
    sums are four stride-1 weight gradients, which run at the full rate. The forward pass and
    the input gradient are oneDNN's own (bit-identical); the weight gradient differs only in
    the order of the additions. Both gradients are differentiable ATen ops, so a double
    backward (R1, path length) goes through them.
    """

    @staticmethod
    def forward(ctx, x, w, transposed: bool):
        ctx.save_for_backward(x, w)
        ctx.transposed = transposed
        return F.conv_transpose2d(x, w, stride=2) if transposed else F.conv2d(x, w, stride=2)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = torch.ops.aten.convolution_backward(
                dy, x, w, None, [2, 2], [0, 0], [1, 1], ctx.transposed, [0, 0], 1, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            dw = _stride_two_weight_gradient(dy, x) if ctx.transposed else _stride_two_weight_gradient(x, dy)
        return dx, dw, None


def _stride_two_weight_gradient(big: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """Σ_{n,a,b} small[n,s,a,b] · big[n,t,2a+i,2b+j] for i, j < 3, as [S, T, 3, 3]: the weight
    gradient of a 3×3 stride-2 convolution (big: its input, small: the output's gradient) and
    of a transposed one (big: the output's gradient, small: its input), as four stride-1 weight
    gradients.

    The taps i = 0 and 2 read the even rows big[2a], big[2a+2] (a 2-tap kernel over the even
    rows), the tap i = 1 the odd row big[2a+1]; the same for columns.
    """
    Ho, Wo = small.shape[2], small.shape[3]
    S, T = small.shape[1], big.shape[1]
    layout = torch.channels_last if big.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format

    def corner(row: int, col: int) -> torch.Tensor:  # the kernel taps that read one component
        kh, kw = 2 - row, 2 - col
        phase = big[:, :, row::2, col::2][:, :, : Ho + 1 - row, : Wo + 1 - col].contiguous(memory_format=layout)
        shape_only = small.new_empty(1).expand(S, T, kh, kw)
        mask = [False, True, False]
        return torch.ops.aten.convolution_backward(
            small, phase, shape_only, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask
        )[1]

    ee, eo, oe, oo = corner(0, 0), corner(0, 1), corner(1, 0), corner(1, 1)
    top = torch.cat([ee[:, :, :1, :1], eo[:, :, :1], ee[:, :, :1, 1:]], dim=3)
    middle = torch.cat([oe[:, :, :, :1], oo, oe[:, :, :, 1:]], dim=3)
    bottom = torch.cat([ee[:, :, 1:, :1], eo[:, :, 1:], ee[:, :, 1:, 1:]], dim=3)
    return torch.cat([top, middle, bottom], dim=2)


def _up_fir_padding(k: int, fw: int, padding: int) -> tuple[int, int, int, int]:
    """FIR padding after a stride-2 transposed conv so that the result is exactly 2H.

    The zero-stuffed form pads by p0 = padding + (fw+1)//2 and p1 = padding + (fw-2)//2
    (3 and 2 for a 3×3 kernel and a 4-tap filter); the transposed convolution has
    already grown the image by k-1 at the start and k-2 at the end.
    """
    p0 = padding + (fw + 1) // 2 - (k - 1)
    p1 = padding + (fw - 2) // 2 - (k - 2)
    return (p0, p1, p0, p1)
