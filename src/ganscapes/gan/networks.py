"""StyleGAN2 generator and discriminator (the ADA release's architecture; StyleGAN2 paper §2–4).

Class, parameter and buffer names are those of NVIDIA's `training/networks.py`, so an
official state dict loads by name and a reader of the paper or the official code finds
the same structure here. Each top-level network keeps its constructor arguments in
`init_kwargs`, which is what checkpoints record to rebuild it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from ganscapes.gan.ops import (
    ACTIVATION_GAINS,
    bias_act,
    conv2d_resample,
    derived,
    downsample2d,
    modconv_epilogue_,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

# ---------------------------------------------------------------------------------------
# Equalized-learning-rate layers (ProGAN §4.1; `training/networks.py` `FullyConnectedLayer`, `Conv2dLayer`)


class FullyConnectedLayer(nn.Module):
    """Dense layer whose weight is stored at 1/lr_multiplier scale and rescaled at run time."""

    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = float(lr_multiplier / np.sqrt(in_features))  # a Python float: torch.compile guards
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Convolution with equalized lr, optional FIR up/down-sampling, bias, activation, clamp.

    With `trainable=False` (Freeze-D) weight and bias are buffers under the same names.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        bias=True,
        activation="linear",
        up=1,
        down=1,
        resample_filter=(1, 3, 3, 1),
        conv_clamp=None,
        channels_last=False,
        trainable=True,
    ):
        super().__init__()
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size**2))
        self.act_gain = ACTIVATION_GAINS[activation]
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", b)

    def forward(self, x, gain=1):
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w.to(x.dtype),
            self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=(self.up == 1),
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)


# ---------------------------------------------------------------------------------------
# Mapping network (`training/networks.py` `MappingNetwork`)


class MappingNetwork(nn.Module):
    """z (and label) → w: normalise, embed the label, num_layers lrelu FC layers at lr × 0.01.

    Also tracks w_avg, the centre that truncation pulls towards.
    """

    def __init__(
        self,
        z_dim,
        c_dim,
        w_dim,
        num_ws,
        num_layers=8,
        embed_features=None,
        layer_features=None,
        activation="lrelu",
        lr_multiplier=0.01,
        w_avg_beta=0.995,
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            layer = FullyConnectedLayer(
                features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{i}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))
        # When a list, every w_avg update appends its batch mean here, so that training
        # with several processes can replay all updates in one global order.
        self.w_avg_updates: list[torch.Tensor] | None = None

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, skip_w_avg_update=False):
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            batch_mean = x.detach().mean(dim=0)
            if self.w_avg_updates is not None:
                self.w_avg_updates.append(batch_mean)
            self.w_avg.copy_(batch_mean.lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = x.clone()
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x


# ---------------------------------------------------------------------------------------
# Synthesis network (`training/networks.py` `SynthesisLayer`, `ToRGBLayer`, `SynthesisBlock`, `SynthesisNetwork`)


def modulated_conv2d(
    x,
    weight,
    styles,
    noise=None,
    up=1,
    padding=0,
    resample_filter=None,
    demodulate=True,
    flip_weight=True,
    fused_modconv=True,
    epilogue=None,
    modulated=False,
):
    """Modulate the weight per sample by its styles, demodulate, convolve (StyleGAN2 §2.2; `training/networks.py`).

    The fused form is one grouped convolution over the whole batch; the unfused form
    scales activations instead and shares one weight, which is the same mathematics and
    usually faster for larger batches on CPU.

    `epilogue`: the keyword arguments of the `bias_act` that follows (bias, act, gain,
    clamp). Given (only without autograd, unfused, demodulated), it is applied here, in
    place and piece by piece with demodulation and noise (`ops.modconv_epilogue_`), and
    the result is the layer's output. `modulated`: `x` already holds `x · styles` (the
    previous layer's epilogue applied it; unfused float32 only).
    """
    N = x.shape[0]
    O, I, kh, kw = weight.shape  # noqa: E741 (out, in: the paper's names)
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so fp16 cannot overflow; demodulation cancels both factors.
        weight = weight * (1 / np.sqrt(I * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = None
    if demodulate:
        # Σ_{i,k} (W[o,i,k]·s[n,i])² = Σ_i s[n,i]² · Σ_k W[o,i,k]²: a small matmul instead
        # of squaring the [N, O, I, k, k] modulated weight.
        square_sums = derived.get(weight, "square-sums", lambda: weight.square().sum(dim=[2, 3]).t())  # [I, O]
        dcoefs = (styles.square() @ square_sums + 1e-8).rsqrt()  # [N, O]
    if modulated and (fused_modconv or x.dtype != torch.float32):
        raise ValueError("a modulated input is for the unfused float32 path")
    if not fused_modconv:
        if not modulated:
            x = x * styles.to(x.dtype).reshape(N, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), resample_filter, up=up, padding=padding, flip_weight=flip_weight,
        )  # fmt: skip
        if epilogue is not None:
            if not demodulate or torch.is_grad_enabled():
                raise ValueError("the in-place epilogue is for demodulated layers without autograd")
            return modconv_epilogue_(x, dcoefs, noise, **epilogue)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(N, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(N, -1, 1, 1)
        if noise is not None:
            return x + noise.to(x.dtype)
        return x
    w = weight.unsqueeze(0) * styles.reshape(N, 1, -1, 1, 1)
    if demodulate:
        w = w * dcoefs.reshape(N, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, I, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=N, flip_weight=flip_weight)
    x = x.reshape(N, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution (optionally 2× up), noise, bias, lrelu, clamp."""

    def __init__(
        self,
        in_channels,
        out_channels,
        w_dim,
        resolution,
        kernel_size=3,
        up=1,
        use_noise=True,
        activation="lrelu",
        resample_filter=(1, 3, 3, 1),
        conv_clamp=None,
        channels_last=False,
    ):
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATION_GAINS[activation]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="random", fused_modconv=True, gain=1, styles=None, then_scale=None):
        """`styles`: this layer's `affine(w)` when the caller computed it already; with it, a
        generating (no autograd, unfused, float32) caller may pass `x` already multiplied by
        it. `then_scale`: the next layer's styles, which this layer's epilogue applies to its
        output (generating only); the two together save one pass over the largest tensors."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be random, const or none, not {noise_mode!r}")
        modulated = styles is not None and not fused_modconv and not torch.is_grad_enabled()
        styles = self.affine(w) if styles is None else styles
        noise = None
        if self.use_noise and noise_mode == "random":
            out_res = self.resolution
            noise = torch.randn([x.shape[0], 1, out_res, out_res], device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        # Generating (no autograd, unfused): bias and activation join demodulation in place.
        in_place = not fused_modconv and not torch.is_grad_enabled()
        epilogue = (
            dict(bias=self.bias, act=self.activation, gain=act_gain, clamp=act_clamp, then_scale=then_scale)
            if in_place
            else None
        )
        if then_scale is not None and not in_place:
            raise ValueError("then_scale is for generating without autograd, unfused")
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
            epilogue=epilogue,
            modulated=modulated,
        )
        if in_place:
            return x
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1×1 convolution to image channels, without demodulation (`training/networks.py` `ToRGBLayer`)."""

    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = float(1 / np.sqrt(in_channels * kernel_size**2))

    def forward(self, x, w, fused_modconv=True):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: [const or conv0 (up 2)], conv1, torgb."""

    def __init__(
        self,
        in_channels,
        out_channels,
        w_dim,
        resolution,
        img_channels,
        is_last,
        architecture="skip",
        resample_filter=(1, 3, 3, 1),
        conv_clamp=None,
        use_fp16=False,
        fp16_channels_last=False,
        **layer_kwargs,
    ):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown synthesis architecture {architecture!r}")
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                channels_last=self.channels_last,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim=w_dim,
            resolution=resolution,
            conv_clamp=conv_clamp,
            channels_last=self.channels_last,
            **layer_kwargs,
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
                channels_last=self.channels_last,
            )

    def forward(self, x, img, ws, force_fp32=False, fused_modconv=None, **layer_kwargs):
        w_iter = iter(ws.unbind(dim=1))
        dtype = _block_dtype(self.use_fp16, force_fp32, ws.device)
        if fused_modconv is None:
            # The official choice on CUDA. On CPUs oneDNN runs one shared convolution about
            # twice as fast as a grouped one, and both compute the same function.
            on_cuda = ws.device.type == "cuda"
            fused_modconv = on_cuda and (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)
        # Channels-last: NVIDIA's option for fp16 layers on GPUs; on CPUs it is oneDNN's own
        # layout, so the whole block runs in it (no reordering around each convolution: the
        # 3×3 convolutions of 64 to 256 channels run 10-40 % faster, forward and backward).
        cpu_layout = ws.device.type == "cpu" and not fused_modconv
        memory_format = (
            torch.channels_last
            if (self.channels_last and dtype == torch.float16) or cpu_layout
            else torch.contiguous_format
        )
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = x.contiguous(memory_format=memory_format)
        else:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=np.sqrt(0.5), **layer_kwargs)
            x = y.add_(x)
        elif not fused_modconv and not torch.is_grad_enabled() and dtype == torch.float32:
            # Generating: conv0's epilogue applies conv1's modulation while its pieces are in cache.
            w0, w1 = next(w_iter), next(w_iter)
            styles1 = self.conv1.affine(w1)
            x = self.conv0(x, w0, fused_modconv=False, then_scale=styles1, **layer_kwargs)
            x = self.conv1(x, w1, fused_modconv=False, styles=styles1, **layer_kwargs)
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img.add_(y) if img is not None else y
        return x, img


def _block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    """fp16 only on CUDA: CPUs compute half precision slowly and the official code forces fp32 there."""
    return torch.float16 if use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32


def channels_per_resolution(resolutions, channel_base, channel_max) -> dict[int, int]:
    """C(r) = min(channel_base // r, channel_max), as in `training/networks.py` `SynthesisNetwork`."""
    return {r: min(channel_base // r, channel_max) for r in resolutions}


def fp16_resolution(img_resolution: int, num_fp16_res: int) -> int:
    """Blocks at this resolution and above run in fp16 (on CUDA; never b4)."""
    return max(2 ** (int(np.log2(img_resolution)) + 1 - num_fp16_res), 8)


class SynthesisNetwork(nn.Module):
    """ws → image, block by block from 4² to the output resolution ('skip' architecture)."""

    def __init__(
        self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=0, **block_kwargs
    ):
        super().__init__()
        if not (img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0):
            raise ValueError(f"img_resolution must be a power of two of at least 4, not {img_resolution}")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = channels_per_resolution(self.block_resolutions, channel_base, channel_max)
        fp16_res = fp16_resolution(img_resolution, num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == self.img_resolution
            block = SynthesisBlock(
                in_channels,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                use_fp16=(res >= fp16_res),
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def blocks(self):
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def forward(self, ws, **block_kwargs):
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, **block_kwargs)
        return img


class Generator(nn.Module):
    """z, c → image: the mapping network then the synthesis network."""

    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, synthesis_kwargs=None):
        super().__init__()
        mapping_kwargs = dict(mapping_kwargs or {})
        synthesis_kwargs = dict(synthesis_kwargs or {})
        self.init_kwargs = copy.deepcopy(
            dict(
                z_dim=z_dim,
                c_dim=c_dim,
                w_dim=w_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                mapping_kwargs=mapping_kwargs,
                synthesis_kwargs=synthesis_kwargs,
            )
        )
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, **synthesis_kwargs):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, **synthesis_kwargs)


# ---------------------------------------------------------------------------------------
# Discriminator (`training/networks.py` `DiscriminatorBlock`, `DiscriminatorEpilogue`, `Discriminator`)


class DiscriminatorBlock(nn.Module):
    """fromrgb (first block), conv0, conv1 (down 2), and a 1×1 down skip in 'resnet'."""

    def __init__(
        self,
        in_channels,
        tmp_channels,
        out_channels,
        resolution,
        img_channels,
        first_layer_idx,
        architecture="resnet",
        activation="lrelu",
        resample_filter=(1, 3, 3, 1),
        conv_clamp=None,
        use_fp16=False,
        fp16_channels_last=False,
        freeze_layers=0,
    ):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_layers = 0

        def trainable() -> bool:
            # Freeze-D counts layers from the top block down: fromrgb, conv0, conv1, skip.
            index = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return index >= freeze_layers

        common = dict(resample_filter=resample_filter, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels,
                tmp_channels,
                kernel_size=1,
                activation=activation,
                conv_clamp=conv_clamp,
                trainable=trainable(),
                **common,
            )
        self.conv0 = Conv2dLayer(
            tmp_channels,
            tmp_channels,
            kernel_size=3,
            activation=activation,
            conv_clamp=conv_clamp,
            trainable=trainable(),
            **common,
        )
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            kernel_size=3,
            activation=activation,
            down=2,
            conv_clamp=conv_clamp,
            trainable=trainable(),
            **common,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2, trainable=trainable(), **common
            )

    def forward(self, x, img, force_fp32=False):
        device = (x if x is not None else img).device
        dtype = _block_dtype(self.use_fp16, force_fp32, device)
        memory_format = (  # channels-last on CPUs, as in SynthesisBlock
            torch.channels_last
            if (self.channels_last and dtype == torch.float16) or device.type == "cpu"
            else torch.contiguous_format
        )
        if x is not None:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y.add_(x)
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the std-dev across strided groups of the batch as extra channels (`training/networks.py`)."""

    def __init__(self, group_size, num_channels=1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x):
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        if N % G != 0:
            raise ValueError(f"the batch ({N}) must be divisible by the minibatch-std group size ({G})")
        F_ = self.num_channels
        c = C // F_
        y = x.reshape(G, -1, F_, c, H, W)  # group members are samples j, j+N/G, j+2N/G, …
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, F_, 1, 1)
        y = y.repeat(G, 1, H, W)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4×4 end of D: mbstd, conv, fc, out, and the projection onto the label embedding."""

    def __init__(
        self,
        in_channels,
        cmap_dim,
        resolution,
        img_channels,
        architecture="resnet",
        mbstd_group_size=4,
        mbstd_num_channels=1,
        activation="lrelu",
        conv_clamp=None,
        only_block=False,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        # 'skip' adds the image at every scale; a 4×4 D has no blocks, so its epilogue reads the image.
        self.reads_image = architecture == "skip" or only_block
        if self.reads_image:
            self.fromrgb = Conv2dLayer(
                img_channels, in_channels, kernel_size=1, activation=activation, conv_clamp=conv_clamp
            )
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, img, cmap, force_fp32=False):
        if self.reads_image:
            y = self.fromrgb(img.to(torch.float32))
            x = x.to(torch.float32) + y if x is not None else y
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """image, c → logit: resnet blocks from the image resolution down to 8², then the epilogue."""

    def __init__(
        self,
        c_dim,
        img_resolution,
        img_channels,
        architecture="resnet",
        channel_base=32768,
        channel_max=512,
        num_fp16_res=0,
        conv_clamp=None,
        cmap_dim=None,
        block_kwargs=None,
        mapping_kwargs=None,
        epilogue_kwargs=None,
    ):
        super().__init__()
        block_kwargs = dict(block_kwargs or {})
        mapping_kwargs = dict(mapping_kwargs or {})
        epilogue_kwargs = dict(epilogue_kwargs or {})
        self.init_kwargs = copy.deepcopy(
            dict(
                c_dim=c_dim,
                img_resolution=img_resolution,
                img_channels=img_channels,
                architecture=architecture,
                channel_base=channel_base,
                channel_max=channel_max,
                num_fp16_res=num_fp16_res,
                conv_clamp=conv_clamp,
                cmap_dim=cmap_dim,
                block_kwargs=block_kwargs,
                mapping_kwargs=mapping_kwargs,
                epilogue_kwargs=epilogue_kwargs,
            )
        )
        if not (img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0):
            raise ValueError(f"img_resolution must be a power of two of at least 4, not {img_resolution}")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = channels_per_resolution(self.block_resolutions + [4], channel_base, channel_max)
        fp16_res = fp16_resolution(img_resolution, num_fp16_res)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim
        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            in_channels = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(
                in_channels,
                channels[res],
                channels[res // 2],
                resolution=res,
                first_layer_idx=layer_idx,
                use_fp16=(res >= fp16_res),
                **block_kwargs,
                **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **mapping_kwargs
            )
        if img_resolution == 4:
            epilogue_kwargs["only_block"] = True
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **epilogue_kwargs, **common)

    def forward(self, img, c, force_fp32=False):
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap, force_fp32=force_fp32)


# ---------------------------------------------------------------------------------------
# Construction from recorded kwargs


def _build(cls, kwargs: dict, what: str):
    try:
        return cls(**copy.deepcopy(kwargs))
    except TypeError as e:
        raise ValueError(f"the {what} settings do not fit this version of ganscapes ({e})") from None


def build_generator(kwargs: dict) -> Generator:
    return _build(Generator, kwargs, "generator")


def build_discriminator(kwargs: dict) -> Discriminator:
    return _build(Discriminator, kwargs, "discriminator")


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "Conv2dLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "FullyConnectedLayer",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "build_discriminator",
    "build_generator",
    "channels_per_resolution",
    "fp16_resolution",
    "modulated_conv2d",
    "num_parameters",
]
