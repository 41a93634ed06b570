"""StyleGAN2Loss (R1, path length, style mixing, phases), the ADA controller and training_phases."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from torch import nn

from ganscapes.gan.ada import AdaController
from ganscapes.gan.loss import StyleGAN2Loss, mixed_ws, r1_penalty, training_phases
from ganscapes.gan.networks import build_discriminator

from helpers_models import tiny_generator, tiny_kwargs

RES = 16
BATCH = 4


@pytest.fixture
def nets():
    G = tiny_generator(RES, seed=0).train()
    torch.manual_seed(1)
    D = build_discriminator(tiny_kwargs(RES)[1]).train()
    return G, D


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(7)
    real = torch.rand(BATCH, 3, RES, RES, generator=gen) * 2 - 1
    z = torch.randn(BATCH, 32, generator=gen)
    c = torch.zeros(BATCH, 0)
    return real, c, z, c


def grads(module):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in module.named_parameters()}


def zero_grads(*modules):
    for m in modules:
        for p in m.parameters():
            p.grad = None


# ---------------------------------------------------------------------------------------
# R1


class ToyD(nn.Module):
    """A small float64 conv net D(img, c) -> [N, 1], non-linear so the R1 gradient is not trivial."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1).double()
        self.fc = nn.Linear(4 * 4 * 4, 1).double()

    def forward(self, img, c, **kwargs):
        return self.fc(torch.tanh(self.conv(img)).flatten(1))


def toy_pipe(x):
    """A differentiable stand-in for the augment pipe: flip, scale, and mix with a shifted copy."""
    return torch.flip(x, [3]) * 1.5 + 0.25 * x.roll(1, 2)


def finite_difference_r1(D, x, c, pipe=None, eps=1e-6):
    def total(v):
        return D(pipe(v) if pipe else v, c).sum()

    grad = torch.zeros_like(x)
    flat = x.reshape(-1)
    for i in range(flat.numel()):
        plus, minus = flat.clone(), flat.clone()
        plus[i] += eps
        minus[i] -= eps
        grad.reshape(-1)[i] = (total(plus.view_as(x)) - total(minus.view_as(x))) / (2 * eps)
    return grad.square().sum(dim=[1, 2, 3])


@pytest.mark.parametrize("pipe", [None, toy_pipe], ids=["no-pipe", "through-pipe"])
def test_r1_penalty_equals_finite_differences(pipe):
    D = ToyD()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    c = torch.zeros(2, 0, dtype=torch.float64)
    with torch.no_grad():
        expected = finite_difference_r1(D, x, c, pipe)
    got = r1_penalty(D, x, c, augment_pipe=pipe)
    assert got.shape == (2,)
    assert torch.allclose(got.detach(), expected, rtol=1e-6, atol=1e-9)
    assert got.requires_grad  # create_graph: the penalty can be backpropagated into D


def test_dreg_is_gamma_half_r1_times_gain(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    loss = StyleGAN2Loss(G, D, augment_pipe=toy_pipe, r1_gamma=3.0, force_fp32=True)
    stats = loss.accumulate_gradients("Dreg", real, real_c, z, c, gain=16)
    got = grads(D)
    zero_grads(D)
    penalty = r1_penalty(D, real, real_c, augment_pipe=toy_pipe, force_fp32=True)
    (penalty * 1.5).mean().mul(16).backward()
    assert stats["loss/r1"] == pytest.approx(1.5 * penalty.mean().item(), rel=1e-5)
    assert stats["r1_penalty"] == pytest.approx(penalty.mean().item(), rel=1e-5)
    assert "loss/D_real" not in stats and "scores/real" in stats
    unreached = {name for name, p in D.named_parameters() if p.grad is None}
    assert "b4.out.bias" in unreached and all(name.endswith(".bias") for name in unreached), unreached
    for name, p in D.named_parameters():
        # R1 does not reach the biases (D is piecewise linear in them). NVIDIA's
        # `real_logits * 0` gives them a zero gradient rather than none, so Adam steps them
        # as the official loop does.
        assert got[name] is not None, name
        if p.grad is None:
            assert torch.count_nonzero(got[name]) == 0, name
        else:
            assert torch.allclose(got[name], p.grad, rtol=1e-4, atol=1e-7), name


# ---------------------------------------------------------------------------------------
# Path length


def reference_pl(G, z, c, seed):
    """Path lengths of the first half of the batch, drawn in the loss's RNG order (no mixing)."""
    torch.manual_seed(seed)
    ws = G.mapping(z[: len(z) // 2], c[: len(z) // 2])
    img = G.synthesis(ws, force_fp32=True)
    y = torch.randn_like(img) / math.sqrt(RES * RES)
    (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    return g.square().sum(2).mean(1).sqrt()


def test_path_length_lerps_pl_mean_and_keeps_its_graph(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    G_ref = copy.deepcopy(G).requires_grad_(True)
    loss = StyleGAN2Loss(G, D, style_mixing_prob=0, pl_weight=2.0, force_fp32=True)
    assert loss.pl_mean.item() == 0

    torch.manual_seed(11)
    stats1 = loss.accumulate_gradients("Greg", real, real_c, z, c, gain=4)
    L1 = reference_pl(G_ref, z, c, seed=11)
    a1 = L1.mean() * 0.01  # 0 + 0.01·(mean L − 0), not detached
    ((L1 - a1).square() * 2).mean().mul(4).backward()
    assert loss.pl_mean.item() == pytest.approx(0.01 * L1.mean().item(), rel=1e-5)
    assert stats1["pl_mean"] == pytest.approx(loss.pl_mean.item())
    assert stats1["pl_length"] == pytest.approx(L1.mean().item(), rel=1e-5)
    assert stats1["loss/pl"] == pytest.approx(((L1 - a1).square() * 2).mean().item(), rel=1e-4)
    got, ref = grads(G), grads(G_ref)
    zeroed = [name for name in got if ref[name] is None]
    assert zeroed and all(".torgb.bias" in name for name in zeroed), zeroed  # what the path length never reaches
    for name in got:
        assert got[name] is not None, name  # NVIDIA's `gen_img[:, 0, 0, 0] * 0`: a zero gradient, not none
        if ref[name] is None:
            assert torch.count_nonzero(got[name]) == 0, name
        else:
            assert torch.allclose(got[name], ref[name], rtol=1e-4, atol=1e-8), name
    assert all(p.grad is None for p in D.parameters())

    pl1 = loss.pl_mean.item()
    loss.accumulate_gradients("Greg", real, real_c, z, c, gain=4)  # its own seed state; lerp from pl1
    torch.manual_seed(12)
    loss2 = StyleGAN2Loss(G, D, style_mixing_prob=0, force_fp32=True)
    loss2.load_state_dict(loss.state_dict())
    stats3 = loss2.accumulate_gradients("Greg", real, real_c, z, c, gain=4)
    L3 = reference_pl(G_ref, z, c, seed=12)
    assert loss2.pl_mean.item() == pytest.approx(
        loss.pl_mean.item() + 0.01 * (L3.mean().item() - loss.pl_mean.item()), rel=1e-5
    )
    assert stats3["pl_mean"] == pytest.approx(loss2.pl_mean.item())
    assert loss.pl_mean.item() != pl1


def test_loss_state_dict_round_trip(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    loss = StyleGAN2Loss(G, D, force_fp32=True)
    torch.manual_seed(0)
    loss.accumulate_gradients("Greg", real, real_c, z, c, gain=4)
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    buf.seek(0)
    other = StyleGAN2Loss(G, D, force_fp32=True)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.pl_mean, loss.pl_mean) and loss.pl_mean.item() > 0
    torch.manual_seed(5)
    a = loss.accumulate_gradients("Greg", real, real_c, z, c, gain=4)
    torch.manual_seed(5)
    b = other.accumulate_gradients("Greg", real, real_c, z, c, gain=4)
    assert a == b


# ---------------------------------------------------------------------------------------
# Which network gets gradients; w_avg


def test_g_phases_train_only_g_and_d_phases_only_d(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    G.requires_grad_(True)
    D.requires_grad_(True)  # the worst case: the loss must still keep the other network out
    loss = StyleGAN2Loss(G, D, force_fp32=True)
    for phase in ("Gmain", "Greg", "Gboth"):
        zero_grads(G, D)
        torch.manual_seed(0)
        loss.accumulate_gradients(phase, real, real_c, z, c, gain=1)
        assert all(p.grad is None for p in D.parameters()), phase
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters()), phase
    for phase in ("Dmain", "Dreg", "Dboth"):
        zero_grads(G, D)
        torch.manual_seed(0)
        loss.accumulate_gradients(phase, real, real_c, z, c, gain=1)
        assert all(p.grad is None for p in G.parameters()), phase
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters()), phase
    assert all(p.requires_grad for p in (*G.parameters(), *D.parameters()))  # flags restored


def test_d_phase_updates_w_avg_once_per_call(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    loss = StyleGAN2Loss(G, D, style_mixing_prob=1.0, force_fp32=True)
    before = G.mapping.w_avg.clone()
    with torch.no_grad():
        w = G.mapping(z, c, skip_w_avg_update=True)[:, 0]
    loss.accumulate_gradients("Dmain", real, real_c, z, c, gain=1)
    # one update from the main latents; the mixing latents' mapping call skips it
    assert torch.allclose(G.mapping.w_avg, w.mean(0).lerp(before, 0.995), atol=1e-6)
    G.eval()
    frozen = G.mapping.w_avg.clone()
    loss.accumulate_gradients("Dmain", real, real_c, z, c, gain=1)
    assert torch.equal(G.mapping.w_avg, frozen)


def test_both_phases_equal_main_plus_reg(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    loss = StyleGAN2Loss(G, D, force_fp32=True)
    torch.manual_seed(3)
    both = loss.accumulate_gradients("Dboth", real, real_c, z, c, gain=1)
    g_both = grads(D)
    zero_grads(D)
    torch.manual_seed(3)
    main = loss.accumulate_gradients("Dmain", real, real_c, z, c, gain=1)
    reg = loss.accumulate_gradients("Dreg", real, real_c, z, c, gain=1)
    assert set(both) == set(main) | set(reg)
    assert both["loss/D"] == pytest.approx(main["loss/D"], rel=1e-5)
    assert both["loss/r1"] == pytest.approx(reg["loss/r1"], rel=1e-5)
    for name, p in D.named_parameters():
        assert torch.allclose(g_both[name], p.grad, rtol=1e-4, atol=1e-7), name


def test_phases_report_floats_and_reject_unknown_names(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    loss = StyleGAN2Loss(G, D, force_fp32=True)
    torch.manual_seed(0)
    stats = loss.accumulate_gradients("Dmain", real, real_c, z, c, gain=1)
    assert set(stats) == {"loss/D_fake", "loss/D_real", "loss/D", "scores/fake", "scores/real", "signs/real"}
    assert all(type(v) is float for v in stats.values())
    assert set(loss.accumulate_gradients("Gmain", real, real_c, z, c)) == {"loss/G", "scores/fake"}
    assert StyleGAN2Loss(G, D, pl_weight=0).accumulate_gradients("Greg", real, real_c, z, c) == {}
    with pytest.raises(ValueError, match="Unknown phase"):
        loss.accumulate_gradients("Gpl", real, real_c, z, c)


def test_non_finite_reals_give_non_finite_losses_without_raising(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    real = real.clone()
    real[0, 0, 0, 0] = float("nan")
    ada = AdaController(batch_size=BATCH)
    loss = StyleGAN2Loss(G, D, ada=ada, force_fp32=True)
    main = loss.accumulate_gradients("Dmain", real, real_c, z, c, gain=1)
    reg = loss.accumulate_gradients("Dreg", real, real_c, z, c, gain=16)
    assert not math.isfinite(main["loss/D_real"]) and not math.isfinite(reg["loss/r1"])
    assert math.isfinite(main["loss/D_fake"])
    pipe = FakePipe(0.25)
    assert ada.maybe_update(pipe, 4) == {"ada/p": 0.25}  # NaN logits are not counted; p untouched


# ---------------------------------------------------------------------------------------
# Style mixing


def test_mixed_ws_one_cutoff_from_a_second_latent():
    G = tiny_generator(RES).eval()
    z = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    c = torch.zeros(5, 0)
    with torch.no_grad():
        ref = G.mapping(z, c)
        torch.manual_seed(4)
        ws, cutoff = mixed_ws(G, z, c, 1.0)
        torch.manual_seed(4)
        expected_cutoff = int(torch.randint(1, G.num_ws, ()))
        torch.rand(())
        other = G.mapping(torch.randn_like(z), c)
    assert cutoff == expected_cutoff and 1 <= cutoff <= G.num_ws - 1
    assert torch.equal(ws[:, :cutoff], ref[:, :cutoff])
    assert torch.equal(ws[:, cutoff:], other[:, cutoff:])
    assert (ws[:, cutoff:] - ref[:, cutoff:]).abs().amax(dim=(1, 2)).min() > 0  # every sample mixed

    torch.manual_seed(0)
    with torch.no_grad():
        cutoffs = {mixed_ws(G, z, c, 1.0)[1] for _ in range(200)}
    assert cutoffs == set(range(1, G.num_ws))


def test_mixed_ws_probability():
    G = tiny_generator(RES).eval()
    z = torch.randn(3, 32)
    c = torch.zeros(3, 0)
    with torch.no_grad():
        ref = G.mapping(z, c)
        for _ in range(5):
            ws, cutoff = mixed_ws(G, z, c, 0.0)
            assert cutoff is None and torch.equal(ws, ref)
        torch.manual_seed(0)
        mixed = sum(mixed_ws(G, z, c, 0.5)[1] is not None for _ in range(400))
    assert 150 < mixed < 250


# ---------------------------------------------------------------------------------------
# ADA


class FakePipe(nn.Module):
    def __init__(self, p=0.0):
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))


def test_ada_raises_p_when_d_overfits_only_every_interval():
    ada = AdaController(target=0.6, interval=4, ada_kimg=500, batch_size=8)
    pipe = FakePipe(0.0)
    step = 8 * 4 / (500 * 1000)
    assert ada.step == step
    for batch_idx in range(1, 4):
        ada.accumulate(torch.ones(8, 1))
        assert ada.maybe_update(pipe, batch_idx) is None
        assert pipe.p.item() == 0
    ada.accumulate(torch.ones(8, 1))
    assert ada.maybe_update(pipe, 4) == {"ada/p": pytest.approx(step), "ada/r_t": 1.0}
    assert pipe.p.item() == pytest.approx(step)
    assert ada.sums is None  # reset


def test_ada_lowers_p_but_never_below_zero_and_has_no_upper_clamp():
    ada = AdaController(batch_size=16, interval=4, ada_kimg=100)
    step = 16 * 4 / 100_000
    pipe = FakePipe(1.5 * step)
    for expected in (0.5 * step, 0.0, 0.0):
        ada.accumulate(-torch.ones(16))
        stats = ada.maybe_update(pipe, 8)
        assert stats["ada/r_t"] == -1.0 and pipe.p.item() == pytest.approx(expected)
    pipe.p.fill_(1.0)
    ada.accumulate(torch.tensor([3.0, 2.0, 1.0, -1.0]))  # r_t = 0.5 < 0.6 lowers
    ada.maybe_update(pipe, 4)
    assert pipe.p.item() == pytest.approx(1.0 - step)
    ada.accumulate(torch.ones(4))
    ada.maybe_update(pipe, 4)
    ada.accumulate(torch.ones(4))
    ada.maybe_update(pipe, 4)
    assert pipe.p.item() == pytest.approx(1.0 + step)  # above 1 is allowed
    ada.accumulate(torch.tensor([1.0] * 8 + [-1.0] * 2))  # r_t == target exactly: no move
    assert ada.maybe_update(pipe, 4)["ada/r_t"] == pytest.approx(0.6)
    assert pipe.p.item() == pytest.approx(1.0 + step)


def test_ada_counts_real_logits_of_dmain_and_dreg(nets, batch):
    G, D = nets
    real, real_c, z, c = batch
    ada = AdaController(batch_size=BATCH)
    loss = StyleGAN2Loss(G, D, ada=ada, force_fp32=True)
    s1 = loss.accumulate_gradients("Dmain", real, real_c, z, c, gain=1)
    assert ada.sums[1].item() == BATCH
    s2 = loss.accumulate_gradients("Dreg", real, real_c, z, c, gain=16)
    assert ada.sums[1].item() == 2 * BATCH
    assert ada.sums[0].item() == pytest.approx(BATCH * (s1["signs/real"] + s2["signs/real"]))
    loss.accumulate_gradients("Gmain", real, real_c, z, c, gain=1)
    assert ada.sums[1].item() == 2 * BATCH  # fakes are not counted

    seen = []
    StyleGAN2Loss(G, D, on_real_logits=seen.append, force_fp32=True).accumulate_gradients("Dboth", real, real_c, z, c)
    assert len(seen) == 1 and seen[0].shape == (BATCH, 1) and not seen[0].requires_grad


def test_ada_reduce_fn_sees_the_sums():
    calls = []

    def two_ranks(t):  # as if a second process had seen the same logits
        calls.append(t.clone())
        t.mul_(2)

    ada = AdaController(batch_size=8, reduce_fn=two_ranks)
    pipe = FakePipe()
    ada.accumulate(torch.tensor([1.0, 1.0, -1.0, 0.5]))
    stats = ada.maybe_update(pipe, 4)
    assert calls[0].dtype == torch.float64 and calls[0].tolist() == [2.0, 4.0]
    assert stats["ada/r_t"] == 0.5
    ada.maybe_update(pipe, 8)  # nothing seen: the reduction still runs on every process
    assert len(calls) == 2 and calls[1].tolist() == [0.0, 0.0]


def test_ada_state_dict_round_trip_continues_identically():
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(8, 1, generator=gen) + 0.3 for _ in range(20)]
    a, pipe_a = AdaController(batch_size=8, ada_kimg=1), FakePipe(0.0)
    for i in range(1, 7):  # stop mid-interval, with pending sums
        a.accumulate(logits[i])
        a.maybe_update(pipe_a, i)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b, pipe_b = AdaController(batch_size=8, ada_kimg=1), FakePipe(pipe_a.p.item())
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.last_r_t == a.last_r_t is not None
    for i in range(7, 20):
        a.accumulate(logits[i])
        b.accumulate(logits[i])
        assert a.maybe_update(pipe_a, i) == b.maybe_update(pipe_b, i)
        assert pipe_a.p.item() == pipe_b.p.item()


# ---------------------------------------------------------------------------------------
# Phases and Adam settings


def test_training_phases_lazy_regularisation_numbers():
    phases = training_phases(4, 16, lr_G=0.0025, lr_D=0.0025)
    G, D = phases["G"], phases["D"]
    assert [(p.name, p.interval) for p in (*G.phases, *D.phases)] == [
        ("Gmain", 1),
        ("Greg", 4),
        ("Dmain", 1),
        ("Dreg", 16),
    ]
    assert G.mb_ratio == 0.8 and G.lr == pytest.approx(0.002)
    assert G.betas == (0.0, pytest.approx(0.99**0.8))
    assert D.mb_ratio == 16 / 17 and D.lr == pytest.approx(0.0025 * 16 / 17)
    assert D.betas == (0.0, pytest.approx(0.99 ** (16 / 17)))
    assert G.eps == D.eps == 1e-8
    opt = D.adam([nn.Parameter(torch.zeros(1))])
    assert opt.defaults["lr"] == D.lr and opt.defaults["betas"] == D.betas

    plain = training_phases(None, None, lr_G=0.002, lr_D=0.001)
    assert [(p.name, p.interval) for p in plain["G"].phases] == [("Gboth", 1)]
    assert [(p.name, p.interval) for p in plain["D"].phases] == [("Dboth", 1)]
    assert plain["G"].lr == 0.002 and plain["D"].lr == 0.001 and plain["D"].betas == (0.0, 0.99)
    with pytest.raises(ValueError):
        training_phases(2.5, 16, lr_G=0.002, lr_D=0.002)


# ---------------------------------------------------------------------------------------
# NVIDIA's order of random draws and of the path-length mean


def test_style_mixing_draws_the_second_latent_even_when_it_does_not_mix(nets, batch):
    """The official run_G draws cutoff, coin and a second z every call; the stream after must match."""
    G, _ = nets
    _, c, z, _ = batch
    for prob in (0.0001, 0.9999):  # never mixes / always mixes, same draws either way
        torch.manual_seed(3)
        ws, cutoff = mixed_ws(G, z, c, prob)
        after = torch.rand([])
        torch.manual_seed(3)
        expected_cutoff = int(torch.empty([], dtype=torch.int64).random_(1, ws.shape[1]))
        coin = float(torch.rand([]))
        torch.randn_like(z)
        assert float(torch.rand([])) == float(after)
        assert cutoff == (expected_cutoff if coin < prob else None)


def test_pl_mean_moves_once_per_round_and_chains_bit_for_bit(nets, batch):
    """Two Greg rounds chain the running mean (NVIDIA: decay 0.01 per round); measuring the
    rounds first and chaining them (what several processes do) gives the same bits and
    leaves w_avg alone."""
    G, D = nets
    real, real_c, z, c = batch
    rounds = [(z[:2], c[:2]), (z[2:], c[2:])]
    sequential = StyleGAN2Loss(G, D, force_fp32=True)
    G.requires_grad_(True)
    means = []
    for r, (zr, cr) in enumerate(rounds):
        torch.manual_seed(100 + r)
        stats = sequential.accumulate_gradients("Greg", real[:2], real_c[:2], zr, cr, gain=4)
        means.append(stats["pl_length"])
    expected = 0.01 * means[0]
    expected = expected + 0.01 * (means[1] - expected)
    assert sequential.pl_mean.item() == pytest.approx(expected, rel=1e-6)

    G2 = copy.deepcopy(G)
    measured = StyleGAN2Loss(G2, D, force_fp32=True)
    w_avg = G2.mapping.w_avg.clone()
    measured_means = []
    for r, (zr, cr) in enumerate(rounds):
        torch.manual_seed(100 + r)
        measured_means.append(measured.mean_path_length(zr, cr))
    assert torch.equal(G2.mapping.w_avg, w_avg)
    chain = measured.chain_pl_mean(torch.stack(measured_means))
    assert len(chain) == 3 and chain[0].item() == 0
    assert torch.equal(chain[-1], sequential.pl_mean)
