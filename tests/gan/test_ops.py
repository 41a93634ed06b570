"""FIR resampling, bias_act and resampling convolutions against direct reference computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganscapes.gan import ops
from ganscapes.gan.ops import (
    ACTIVATION_GAINS,
    bias_act,
    conv2d_resample,
    downsample2d,
    normalize_2nd_moment,
    setup_filter,
    upfirdn2d,
    upsample2d,
)
from ganscapes.gan.ops import (
    modconv_epilogue_ as ops_epilogue,
)


def reference_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
    """The definition, one output sample at a time: zero-stuff, pad, true conv, decimate.

    The four steps of `upfirdn2d` in NVIDIA's `torch_utils/ops/upfirdn2d.py`.
    """
    x = np.asarray(x, dtype=np.float64)
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        f = np.outer(f, f)
    f = f * gain
    N, C, H, W = x.shape
    stuffed = np.zeros((N, C, H * up, W * up))
    stuffed[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = pad
    padded = np.zeros((N, C, H * up + py0 + py1, W * up + px0 + px1))
    padded[:, :, py0 : py0 + H * up, px0 : px0 + W * up] = stuffed
    fh, fw = f.shape
    out_h, out_w = padded.shape[2] - fh + 1, padded.shape[3] - fw + 1
    out = np.zeros((N, C, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i : i + fh, j : j + fw]
            out[:, :, i, j] = (window * f[::-1, ::-1]).sum(axis=(2, 3))  # true convolution
    return out[:, :, ::down, ::down]


@pytest.fixture
def x():
    return torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))


def test_setup_filter_is_the_normalised_outer_product():
    f = setup_filter()
    assert f.shape == (4, 4)
    expected = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    assert torch.equal(f, expected)
    assert setup_filter(list(range(1, 9))).shape == (8,)  # 8 taps or more stay 1-D


@pytest.mark.parametrize(
    "up,down,pad,gain",
    [(1, 1, (1, 2, 0, 1), 1.0), (2, 1, (2, 1, 2, 1), 4.0), (1, 2, (1, 1, 1, 1), 1.0), (2, 1, (3, 2, 3, 2), 4.0)],
)
def test_upfirdn2d_matches_the_definition(x, up, down, pad, gain):
    f = setup_filter()
    got = upfirdn2d(x, f, up=up, down=down, padding=pad, gain=gain)
    ref = reference_upfirdn2d(x, f, up=up, down=down, pad=pad, gain=gain)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)


def test_upfirdn2d_with_an_asymmetric_filter_is_a_true_convolution(x):
    f = torch.tensor([[1.0, 2.0], [0.0, 5.0]])
    got = upfirdn2d(x, f, padding=(1, 1, 1, 1))
    np.testing.assert_allclose(got.numpy(), reference_upfirdn2d(x, f, pad=(1, 1, 1, 1)), atol=1e-5)
    flipped = upfirdn2d(x, f, padding=(1, 1, 1, 1), flip_filter=True)
    np.testing.assert_allclose(flipped.numpy(), reference_upfirdn2d(x, f.flip([0, 1]), pad=(1, 1, 1, 1)), atol=1e-5)


def test_negative_padding_crops(x):
    f = torch.ones(1, 1)
    got = upfirdn2d(x, f, padding=(-1, -2, -1, 0))
    assert torch.equal(got, x[:, :, 1:, 1:-2])


def test_upsample2d_and_downsample2d_match_the_helpers_of_the_facts_sheet(x):
    f = setup_filter()
    up = upsample2d(x, f)
    assert up.shape == (2, 3, 14, 18)
    np.testing.assert_allclose(up.numpy(), reference_upfirdn2d(x, f, up=2, pad=(2, 1, 2, 1), gain=4), atol=1e-5)
    down = downsample2d(torch.randn(2, 3, 8, 10), f)
    assert down.shape == (2, 3, 4, 5)


def test_upsample_keeps_a_constant_image_constant():
    f = setup_filter()
    up = upsample2d(torch.full((1, 1, 6, 6), 2.0), f)
    assert torch.allclose(up[:, :, 2:-2, 2:-2], torch.tensor(2.0))


@pytest.mark.parametrize("flip_weight", [True, False])
def test_up_conv_equals_zero_stuffing_then_a_true_convolution(x, flip_weight):
    f = setup_filter()
    w = torch.randn(5, 3, 3, 3, generator=torch.Generator().manual_seed(1))
    got = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=flip_weight)
    stuffed = upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4)
    ref = F.conv2d(stuffed, w if flip_weight else w.flip([2, 3]))
    assert got.shape == (2, 5, 14, 18)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_down_conv_and_1x1_down(x):
    f = setup_filter()
    w = torch.randn(4, 3, 3, 3)
    got = conv2d_resample(x, w, f, down=2, padding=1)
    ref = F.conv2d(upfirdn2d(x, f, padding=(2, 2, 2, 2)), w, stride=2)
    torch.testing.assert_close(got, ref)
    w1 = torch.randn(4, 3, 1, 1)
    got1 = conv2d_resample(x, w1, f, down=2)
    ref1 = F.conv2d(upfirdn2d(x, f, down=2, padding=(1, 1, 1, 1)), w1)
    torch.testing.assert_close(got1, ref1)


def test_stride_two_conv_gradients_are_exact_to_second_order():
    # The phase-by-phase weight gradient (and the input gradient beside it) against finite
    # differences, and their own gradients too: R1 differentiates the input gradient again.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64, generator=g).requires_grad_()
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=g).requires_grad_()
    wt = torch.randn(3, 4, 3, 3, dtype=torch.float64, generator=g).requires_grad_()  # [in, out, k, k]
    for weight, transposed in ((w, False), (wt, True)):
        conv = lambda x, w, transposed=transposed: ops._StrideTwoConv.apply(x, w, transposed)  # noqa: E731
        assert torch.autograd.gradcheck(conv, (x, weight))
        assert torch.autograd.gradgradcheck(conv, (x, weight))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_down_conv_weight_gradient_by_phases_matches_onednns(layout):
    f = setup_filter()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 8, 64, 64, generator=g).to(memory_format=layout).requires_grad_()
    w = (torch.randn(16, 8, 3, 3, generator=g) / 8).requires_grad_()
    dy = torch.randn(2, 16, 32, 32, generator=g)
    assert ops._weight_gradient_by_phases(upfirdn2d(x, f, padding=(2, 2, 2, 2)), w, 1)
    y = conv2d_resample(x, w, f, down=2, padding=1)
    dx, dw = torch.autograd.grad(y, [x, w], dy)
    ref_y = F.conv2d(upfirdn2d(x, f, padding=(2, 2, 2, 2)), w, stride=2)
    ref_dx, ref_dw = torch.autograd.grad(ref_y, [x, w], dy)
    assert torch.equal(y, ref_y) and torch.equal(dx, ref_dx)  # oneDNN's own forward and input gradient
    torch.testing.assert_close(dw, ref_dw, rtol=1e-5, atol=1e-5)  # the same sums in another order


@pytest.mark.parametrize("flip_weight", [True, False])
def test_up_conv_weight_gradient_by_phases_matches_onednns(flip_weight):
    f = setup_filter()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 8, 64, 64, generator=g).to(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(6, 8, 3, 3, generator=g) / 8).requires_grad_()
    dy = torch.randn(2, 6, 128, 128, generator=g)
    y = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=flip_weight)
    dx, dw = torch.autograd.grad(y, [x, w], dy)
    with torch.no_grad():  # the same layer through oneDNN's transposed convolution alone
        ref_y = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=flip_weight)
    w2 = w.detach().clone().requires_grad_()
    wt = w2.transpose(0, 1)
    wt = (wt.flip([2, 3]) if flip_weight else wt).contiguous(memory_format=torch.channels_last)
    ref = upfirdn2d(F.conv_transpose2d(x, wt, stride=2), f, padding=(1, 1, 1, 1), gain=4)
    ref_dx, ref_dw = torch.autograd.grad(ref, [x, w2], dy)
    assert torch.equal(y, ref_y) and torch.equal(y, ref) and torch.equal(dx, ref_dx)
    # 32,768 products per weight, added in another order: both float32 sums against float64.
    x64, w64 = x.detach().double(), w.detach().double().requires_grad_()
    wt64 = w64.transpose(0, 1)
    ref64 = upfirdn2d(F.conv_transpose2d(x64, wt64.flip([2, 3]) if flip_weight else wt64, stride=2), f.double(),
                      padding=(1, 1, 1, 1), gain=4)  # fmt: skip
    (exact,) = torch.autograd.grad(ref64, [w64], dy.double())
    error = lambda d: ((d.double() - exact).norm() / exact.norm()).item()  # noqa: E731
    assert error(dw) < 1e-5 and error(dw) < 3 * error(ref_dw) + 1e-7


def test_bias_act_order_gain_and_clamp():
    x = torch.tensor([[-2.0, 0.5, 300.0]]).reshape(1, 3, 1, 1)
    b = torch.tensor([1.0, 0.0, 0.0])
    with torch.no_grad():
        y = bias_act(x, b, act="lrelu", clamp=256)
    s2 = float(np.sqrt(2))
    expected = torch.tensor([-1 * 0.2 * s2, 0.5 * s2, 256.0]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(y, expected)
    assert torch.equal(x, torch.tensor([[-2.0, 0.5, 300.0]]).reshape(1, 3, 1, 1))  # input untouched
    # the autograd path gives the same numbers
    xg = x.clone().requires_grad_(True)
    torch.testing.assert_close(bias_act(xg, b, act="lrelu", clamp=256), expected)
    assert torch.equal(bias_act(x, None, act="linear"), x)


def _step_by_step_bias_act(x, b, act, gain, clamp):
    """NVIDIA's reference form of bias_act, one autograd op per step."""
    y = x if b is None else x + b.reshape(1, -1, 1, 1)
    y = {"lrelu": lambda t: F.leaky_relu(t, 0.2), "relu": F.relu, "linear": lambda t: t}[act](y)
    y = y * gain if gain != 1 else y
    return y.clamp(-clamp, clamp) if clamp is not None else y


@pytest.mark.parametrize(
    "act, with_bias, clamp", [("lrelu", True, 1.5), ("lrelu", True, None), ("relu", True, 1.5), ("linear", True, 1.5),
                              ("linear", False, None)],
)  # fmt: skip
def test_bias_act_gradients_first_and_second_order_match_the_step_by_step_form(act, with_bias, clamp):
    """Training keeps only bias_act's output; its gradients, and R1's gradient of a gradient, must not change."""
    gen = torch.Generator().manual_seed(3)
    x0, w = torch.randn(2, 4, 5, 5, generator=gen) * 2, torch.randn(2, 4, 5, 5, generator=gen)
    b0 = torch.randn(4, generator=gen) if with_bias else None
    gain = ACTIVATION_GAINS[act]
    results = []
    for form in (
        lambda x, b: bias_act(x, b, act=act, clamp=clamp),
        lambda x, b: _step_by_step_bias_act(x, b, act, gain, clamp),
    ):
        x = x0.clone().requires_grad_(True)
        b = None if b0 is None else b0.clone().requires_grad_(True)
        inputs = [x] if b is None else [x, b]
        y = form(x, b)
        first = torch.autograd.grad((y * w).square().sum(), inputs, create_graph=True)
        second = torch.autograd.grad(first[0].square().sum(), inputs, allow_unused=True)
        results.append((y.detach(), first, second))
    (y, first, second), (y_ref, first_ref, second_ref) = results
    assert torch.equal(y, y_ref)
    if clamp is not None:
        assert (y.abs() == clamp).any() and (y.abs() < clamp).any()  # both sides of the bound exercised
    for got, ref in zip(first, first_ref):
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)
    for got, ref in zip(second, second_ref):
        # Piecewise linear: the second derivative flows only through the first-order gradient's weights.
        torch.testing.assert_close(got if got is not None else torch.zeros_like(ref), ref, rtol=1e-6, atol=1e-6)


def test_bias_act_keeps_only_its_output_for_the_backward_pass():
    """The step-by-step form saves the biased input and the pre-clamp values: two tensors per layer."""
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    for form, expected in ((lambda: bias_act(x, b, act="lrelu", clamp=1.0), 1),
                           (lambda: _step_by_step_bias_act(x, b, "lrelu", 2**0.5, 1.0), 2)):  # fmt: skip
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(saved.append, lambda _: None):
            form()
        assert len({t.data_ptr() for t in saved if t.numel() == x.numel()}) == expected


def test_normalize_2nd_moment():
    z = torch.randn(4, 16) * 5
    n = normalize_2nd_moment(z)
    torch.testing.assert_close(n.square().mean(dim=1), torch.ones(4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pieces", ["pieces", "whole"])  # "whole": as on GPUs
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("noise_shape", [None, (13, 11), (3, 1, 13, 11)])
def test_the_in_place_epilogue_is_bit_identical_to_the_steps_it_joins(monkeypatch, channels_last, noise_shape, pieces):
    """Generation applies demodulation, noise and bias_act piece by piece; the pixels must not move by one bit."""
    from ganscapes.gan import ops

    monkeypatch.setattr(ops, "EPILOGUE_PIECE_BYTES", 5 * 11 * 4 * 3)  # three rows a piece: pieces and a remainder
    if pieces == "whole":
        monkeypatch.setattr(ops, "PIECEWISE_DEVICES", ())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 13, 11, generator=gen) * 300
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    dcoefs, bias = torch.rand(3, 5, generator=gen) + 0.5, torch.randn(5, generator=gen)
    noise = None if noise_shape is None else torch.randn(noise_shape, generator=gen)
    scaled = x * dcoefs.reshape(3, 5, 1, 1) if noise is None else torch.addcmul(noise, x, dcoefs.reshape(3, 5, 1, 1))
    expected = bias_act(scaled, bias, act="lrelu", gain=1.3, clamp=256)
    with torch.no_grad():
        got = ops.modconv_epilogue_(x.clone(memory_format=torch.preserve_format), dcoefs, noise, bias,
                                    act="lrelu", gain=1.3, clamp=256)  # fmt: skip
        styles = torch.randn(3, 5, generator=gen)
        source = x.clone(memory_format=torch.preserve_format)
        then = ops.modconv_epilogue_(source, dcoefs, noise, bias, act="lrelu", gain=1.3, clamp=256, then_scale=styles)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert got.is_contiguous(memory_format=layout) and torch.equal(got, expected)  # in the layout that came in
    assert then.data_ptr() == source.data_ptr()  # in place
    assert torch.equal(then, expected * styles.reshape(3, 5, 1, 1))  # the next layer's modulation, bit for bit
    assert (expected.abs() == 256).any()  # the clamp was exercised


def test_generating_without_autograd_paints_the_same_bits_as_with_it(monkeypatch):
    """The in-place path (no autograd) against the autograd path, through a whole generator with noise and clamps."""
    from ganscapes.gan import networks

    calls = []
    monkeypatch.setattr(networks, "modconv_epilogue_", lambda *a, **k: calls.append(1) or ops_epilogue(*a, **k))
    torch.manual_seed(0)
    synthesis = dict(channel_base=512, channel_max=32, conv_clamp=1.0)
    G = networks.build_generator(
        dict(
            z_dim=32,
            c_dim=0,
            w_dim=32,
            img_resolution=32,
            img_channels=3,
            mapping_kwargs=dict(num_layers=2),
            synthesis_kwargs=synthesis,
        )  # fmt: skip
    ).requires_grad_(False)
    for name, p in G.named_parameters():
        if name.endswith("noise_strength") or name.endswith("bias"):
            p.normal_()
    z = torch.randn(4, 32)
    with torch.no_grad():
        fast = G(z, None, noise_mode="const")
    assert len(calls) == 7  # every 3×3 layer took the in-place path (4², 8², 16², 32²: 1 + 2 + 2 + 2)
    with torch.enable_grad():
        plain = G(z, None, noise_mode="const")
    assert len(calls) == 7 and torch.equal(fast, plain)


def test_values_derived_from_a_parameter_are_kept_until_it_changes():
    """Generation keeps a layer's demodulation sums; a changed weight must never be served stale ones."""
    from ganscapes.gan.ops import DerivedFromParameters

    cache, calls = DerivedFromParameters(), []
    box = [torch.nn.Parameter(torch.ones(3))]
    p = box[0]

    def compute():
        calls.append(1)
        return box[0].detach() * 2

    with torch.no_grad():
        first, again = cache.get(p, "twice", compute), cache.get(p, "twice", compute)
        assert len(calls) == 1 and again is first
        p.add_(1)  # what an optimiser step or load_state_dict does: an in-place change
        assert torch.equal(cache.get(p, "twice", compute), torch.full((3,), 4.0)) and len(calls) == 2
        plain = torch.ones(3)
        cache.get(plain, "twice", lambda: plain * 2)  # not a parameter: never kept
        assert len(cache._items) == 1
    cache.get(p, "twice", compute)  # with autograd: always computed afresh
    assert len(calls) == 3
    del p, first, again
    box.clear()
    import gc

    gc.collect()
    assert cache._items == {}  # gone with its parameter


@pytest.mark.parametrize("target", [torch.contiguous_format, torch.channels_last])
def test_relayout_in_pieces_is_an_exact_copy(monkeypatch, target):
    from ganscapes.gan import ops

    monkeypatch.setattr(ops, "RELAYOUT_PIECE_BYTES", 7 * 9 * 4 * 2)  # two rows a piece, and a remainder
    other = torch.channels_last if target == torch.contiguous_format else torch.contiguous_format
    x = torch.randn(3, 7, 33, 9).contiguous(memory_format=other)
    with torch.no_grad():
        y = ops.relayout(x, target)
    assert y.is_contiguous(memory_format=target) and torch.equal(y, x) and y.data_ptr() != x.data_ptr()


def test_relayout_with_autograd_returns_the_gradient_in_the_inputs_layout(monkeypatch):
    """Training's up-sampling layers change layout twice; the gradient must come back unchanged, in the
    layout the layer before works in, and a double backward (path length) must go through it."""
    from ganscapes.gan import ops

    monkeypatch.setattr(ops, "RELAYOUT_PIECE_BYTES", 5 * 11 * 4 * 3)  # pieces and a remainder
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 13, 11, generator=gen).requires_grad_(True)
    w = torch.randn(3, 5, 13, 11, generator=gen)
    y = ops.relayout(x, torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous() and torch.equal(y, x)
    (grad,) = torch.autograd.grad((y * y * w).sum(), x, create_graph=True)
    assert grad.is_contiguous() and torch.equal(grad, 2 * x * w)
    (second,) = torch.autograd.grad(grad.sum(), x)
    assert torch.equal(second, 2 * w)


def test_grid_sample_double_backward_matches_pytorch():
    """R1 through the augmentation: the gradient penalty's gradient must flow back through
    the grid sampling. The function used on GPUs (where PyTorch's kernel has no double
    backward) is run here on the CPU against PyTorch's own CPU double backward."""
    from ganscapes.gan.ops import _GridSample

    torch.manual_seed(0)
    theta = torch.eye(2, 3).repeat(2, 1, 1) + 0.05 * torch.randn(2, 2, 3)
    grid = F.affine_grid(theta, [2, 3, 12, 10], align_corners=False)
    weights = torch.randn(3, requires_grad=True)

    def penalty_grad(sample):
        x = torch.randn(2, 3, 8, 9, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        logits = (sample(x, grid) * weights[None, :, None, None]).square().sum()
        (dx,) = torch.autograd.grad(logits, [x], create_graph=True)
        (dw,) = torch.autograd.grad(dx.square().sum(), [weights])
        return sample(x, grid), dx, dw

    def builtin(x, g):
        return F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)

    ours, theirs = penalty_grad(_GridSample.apply), penalty_grad(builtin)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert theirs[2].abs().sum() > 0  # the second-order path really carries a gradient


def test_grid_sample_gradient_with_respect_to_the_grid():
    from ganscapes.gan.ops import _GridSample

    theta = (torch.eye(2, 3).repeat(1, 1, 1) + 0.1).requires_grad_(True)
    x = torch.randn(1, 2, 6, 6)
    ours = torch.autograd.grad(
        _GridSample.apply(x, F.affine_grid(theta, [1, 2, 5, 5], align_corners=False)).sum(), [theta]
    )
    ref = torch.autograd.grad(
        F.grid_sample(x, F.affine_grid(theta, [1, 2, 5, 5], align_corners=False), align_corners=False).sum(), [theta]
    )
    torch.testing.assert_close(ours[0], ref[0])
