"""Reading official NVIDIA snapshots safely (`ganscapes.gan.official`).

The pickles come from `official_pickle.py`, which writes the byte structure of
stylegan2-ada-pytorch's `network-snapshot-*.pkl` from our own modules, and can plant any
global (`os.system`, `builtins.eval`, …) anywhere in the tree. Every hostile pickle here
would create a marker file if its payload ran; the tests check both the refusal and that
the marker never appears. Two control tests prove the payloads do run under a plain
unpickler, so the refusals are not vacuous.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import pickletools
import re
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from official_pickle import (
    LEGACY_MAGIC,
    LEGACY_SYS_INFO,
    Call,
    Global,
    dumps_official,
    easydict,
    legacy_storage_bytes,
    persistent,
    snapshot_dict,
    write_official_pickle,
)
from torch import nn

from ganscapes.errors import UserError
from ganscapes.gan.config import network_kwargs, resolve_preset
from ganscapes.gan.networks import Discriminator, Generator, build_discriminator, build_generator
from ganscapes.gan.official import (
    DROPPED_KWARGS,
    STATE_DICT_TABLE,
    UnsafePickleError,
    map_official_state_dict,
    official_kwargs_to_ours,
    read_official_pickle,
    safe_unpickle,
)

PROTOCOLS = (3, 4)


# ---------------------------------------------------------------------------------------
# Helpers


def tiny_kwargs(res=16, c_dim=0, g_arch="skip", d_arch="resnet", num_fp16_res=0, **block_kwargs):
    G_kwargs, D_kwargs = network_kwargs(resolve_preset("tiny", res), res, c_dim=c_dim)
    G_kwargs["synthesis_kwargs"]["architecture"] = g_arch
    G_kwargs["synthesis_kwargs"]["num_fp16_res"] = num_fp16_res
    D_kwargs["architecture"] = d_arch
    D_kwargs["num_fp16_res"] = num_fp16_res
    D_kwargs["block_kwargs"].update(block_kwargs)
    return G_kwargs, D_kwargs


def tiny_nets(res=16, c_dim=0, seed=0, **kwargs):
    torch.manual_seed(seed)
    G_kwargs, D_kwargs = tiny_kwargs(res, c_dim, **kwargs)
    G, D = build_generator(G_kwargs), build_discriminator(D_kwargs)
    for i, buf in enumerate(G.buffers()):  # w_avg starts at 0; make every buffer distinctive
        buf.add_(0.01 * (i + 1))
    return G, D


def assert_one_sentence(message: str, path) -> None:
    assert str(path) in message
    assert "\n" not in message
    assert message.endswith("."), message
    assert "Traceback" not in message


def assert_same_state(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for key, tensor in ours.items():
        assert theirs[key].dtype == torch.float32 and theirs[key].is_contiguous(), key
        assert torch.equal(tensor, theirs[key]), key


def globals_in(data: bytes) -> set[str]:
    """The module.name of every GLOBAL / STACK_GLOBAL in a pickle, memo references included."""
    found, memo, recent = set(), {}, [None, None]
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
            recent = [recent[-1], arg]
        elif op.name == "MEMOIZE":
            memo[len(memo)] = recent[-1]
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = recent[-1]
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            recent = [recent[-1], memo.get(arg)]
        elif op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
            recent = [recent[-1], None]
        elif op.name == "STACK_GLOBAL":
            found.add(f"{recent[0]}.{recent[1]}")
            recent = [recent[-1], None]
        elif op.name not in ("FRAME", "PROTO"):
            recent = [recent[-1], None]
    return found


# ---------------------------------------------------------------------------------------
# The fixture writes the byte structure of `torch_utils/persistence.py` pickles


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fixture_has_the_official_byte_structure(tmp_path, protocol):
    G, D = tiny_nets()
    path = tmp_path / "network-snapshot-000000.pkl"
    write_official_pickle(path, G=G, D=D, training_set_kwargs={"path": "x.zip"}, augment_p=0.5, protocol=protocol)
    data = path.read_bytes()
    assert data[:2] == bytes([0x80, protocol])
    found = globals_in(data)
    scalar = {g for g in found if g.endswith("multiarray.scalar")}  # numpy.core (1.x) or numpy._core (2.x)
    assert len(scalar) == 1
    assert found - scalar == {
        "torch_utils.persistence._reconstruct_persistent_obj",
        "collections.OrderedDict",
        "dnnlib.util.EasyDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch.storage._load_from_bytes",
        "numpy.dtype",
    } | ({"builtins.set"} if protocol < 4 else set())
    # module_src is stored once and shared through the memo
    assert data.count(b"module_src must never run") == 1
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


# ---------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("protocol", [*PROTOCOLS, 5])  # 5 is Python 3.14's default
@pytest.mark.parametrize("res,c_dim", [(16, 0), (32, 5)])
def test_round_trip(tmp_path, protocol, res, c_dim):
    G, D = tiny_nets(res, c_dim)
    G_ema, _ = tiny_nets(res, c_dim, seed=1)
    training_set_kwargs = {
        "class_name": "training.dataset.ImageFolderDataset",
        "path": "/data/x.zip",
        "use_labels": c_dim > 0,
        "max_size": 1000,
        "xflip": False,
        "resolution": res,
    }
    path = tmp_path / "network-snapshot-000200.pkl"
    marker = write_official_pickle(
        path, G=G, D=D, G_ema=G_ema, training_set_kwargs=training_set_kwargs, augment_p=0.125, protocol=protocol
    )
    snap = read_official_pickle(path)

    assert set(snap.networks) == {"G", "G_ema", "D"}
    for name, net in (("G", G), ("G_ema", G_ema), ("D", D)):
        got = snap.networks[name]
        assert got.class_name == type(net).__name__
        assert_same_state(net.state_dict(), got.state_dict)
        assert got.init_kwargs == net.init_kwargs
        assert json.loads(json.dumps(got.init_kwargs)) == got.init_kwargs
        assert all(type(v) is dict for v in got.init_kwargs.values() if isinstance(v, dict))  # no EasyDict
    assert ("mapping.fc7.weight" in snap.D.state_dict) == (c_dim > 0)  # the conditional D's 8-layer mapping
    assert ("mapping.embed.weight" in snap.G.state_dict) == (c_dim > 0)
    assert snap.training_set_kwargs == training_set_kwargs
    assert snap.augment_p == 0.125
    assert not marker.exists()


@pytest.mark.parametrize("res", [16, 32])
@pytest.mark.parametrize("c_dim", [0, 3])
def test_official_networks_load_strictly_into_ours_and_compute_the_same(tmp_path, res, c_dim):
    G, D = tiny_nets(res, c_dim, num_fp16_res=2)
    path = tmp_path / "snap.pkl"
    write_official_pickle(path, G=G, D=D)
    snap = read_official_pickle(path)

    G2 = Generator(**official_kwargs_to_ours(snap.G_ema.class_name, snap.G_ema.init_kwargs))
    G2.load_state_dict(map_official_state_dict(snap.G_ema.state_dict, "G_ema"), strict=True)
    D2 = build_discriminator(official_kwargs_to_ours(snap.D.class_name, snap.D.init_kwargs))
    D2.load_state_dict(map_official_state_dict(snap.D.state_dict, "D"), strict=True)
    assert G2.init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 2
    assert G2.init_kwargs["synthesis_kwargs"]["conv_clamp"] == 256
    assert D2.init_kwargs["conv_clamp"] == 256

    G.eval(), G2.eval(), D.eval(), D2.eval()
    z = torch.randn(2, G.z_dim)
    c = torch.eye(c_dim)[[0, 1]] if c_dim else torch.zeros(2, 0)
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        assert torch.equal(G2(z, c, noise_mode="const"), img)
        assert torch.equal(D2(img, c), D(img, c))


@pytest.mark.parametrize("g_arch,d_arch", [("skip", "orig"), ("orig", "skip"), ("resnet", "resnet")])
def test_other_architectures_load(tmp_path, g_arch, d_arch):
    G, D = tiny_nets(32, 2, g_arch=g_arch, d_arch=d_arch)
    path = tmp_path / "snap.pkl"
    write_official_pickle(path, G=G, D=D)
    snap = read_official_pickle(path)
    for name, built in (("G_ema", build_generator), ("D", build_discriminator)):
        net = snap.networks[name]
        ours = built(official_kwargs_to_ours(net.class_name, net.init_kwargs))
        ours.load_state_dict(map_official_state_dict(net.state_dict, name), strict=True)
    assert snap.D.init_kwargs["architecture"] == d_arch


def test_freeze_d_weights_stored_as_buffers_come_through(tmp_path):
    G, D = tiny_nets(32, freeze_layers=3)  # b32 fromrgb, conv0, conv1 frozen
    assert "b32.conv0.weight" in dict(D.named_buffers()) and "b32.skip.weight" in dict(D.named_parameters())
    path = tmp_path / "snap.pkl"
    write_official_pickle(path, G=G, D=D)
    snap = read_official_pickle(path)
    assert_same_state(D.state_dict(), snap.D.state_dict)
    D2 = build_discriminator(official_kwargs_to_ours("Discriminator", snap.D.init_kwargs))
    D2.load_state_dict(map_official_state_dict(snap.D.state_dict, "D"), strict=True)
    assert D2.init_kwargs["block_kwargs"] == {"freeze_layers": 3}


def test_state_dict_walk_skips_non_persistent_buffers_and_none_entries(tmp_path):
    class MappingNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc0 = nn.Linear(2, 2)
            self.register_buffer("w_avg", torch.arange(2.0))
            self.register_buffer("scratch", torch.ones(3), persistent=False)
            self.register_buffer("unset", None)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.mapping = MappingNetwork()
            self.add_module("synthesis", None)
            self.init_kwargs = {"z_dim": 2, "c_dim": 0, "w_dim": 2, "img_resolution": 4, "img_channels": 3}

    G = Generator()
    path = tmp_path / "snap.pkl"
    write_official_pickle(path, G=G)
    snap = read_official_pickle(path)
    assert list(snap.G_ema.state_dict) == ["mapping.w_avg", "mapping.fc0.weight", "mapping.fc0.bias"]
    assert_same_state(G.state_dict(), snap.G_ema.state_dict)
    assert snap.D is None and snap.augment_p is None and snap.training_set_kwargs is None


def test_parameters_with_extra_state_use_rebuild_parameter_with_state(tmp_path):
    p = nn.Parameter(torch.arange(4.0))
    p.note = "extra"  # torch pickles such a parameter with _rebuild_parameter_with_state
    data = dumps_official(
        {
            "G_ema": persistent(
                "Generator", {"_parameters": OrderedDict(w=p), "_init_kwargs": {"z_dim": 1, "img_resolution": 4}}
            )
        }
    )
    assert "torch._utils._rebuild_parameter_with_state" in globals_in(data)
    path = tmp_path / "p.pkl"
    path.write_bytes(data)
    assert torch.equal(read_official_pickle(path).G_ema.state_dict["w"], torch.arange(4.0))


@pytest.mark.parametrize("protocol", [*PROTOCOLS, 5])
def test_kwargs_become_plain_json(tmp_path, protocol):
    kwargs = easydict(
        z_dim=np.int64(8),
        c_dim=0,
        w_dim=8,
        img_resolution=np.int32(4),
        img_channels=3,
        mapping_kwargs=easydict(num_layers=2, lr_multiplier=np.float64(0.01)),
        synthesis_kwargs=easydict(
            resample_filter=np.array([1, 3, 3, 1], dtype=np.int64),
            channel_base=np.float32(512.0),
            architecture=np.str_("skip"),
        ),
    )
    state = {"_parameters": OrderedDict(), "_init_args": (), "_init_kwargs": kwargs}
    path = tmp_path / "k.pkl"
    path.write_bytes(dumps_official({"G_ema": persistent("Generator", state)}, protocol=protocol))
    got = read_official_pickle(path).G_ema.init_kwargs
    assert got == {
        "z_dim": 8,
        "c_dim": 0,
        "w_dim": 8,
        "img_resolution": 4,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2, "lr_multiplier": 0.01},
        "synthesis_kwargs": {"resample_filter": [1, 3, 3, 1], "channel_base": 512.0, "architecture": "skip"},
    }
    assert type(got["z_dim"]) is int and type(got["mapping_kwargs"]["lr_multiplier"]) is float
    json.dumps(got)


def test_positional_constructor_arguments_are_named(tmp_path):
    state = {"_init_args": (16, 0, 16, 8, 3), "_init_kwargs": {"mapping_kwargs": easydict(num_layers=2)}}
    path = tmp_path / "a.pkl"
    path.write_bytes(dumps_official({"G_ema": persistent("Generator", state)}))
    assert read_official_pickle(path).G_ema.init_kwargs == {
        "mapping_kwargs": {"num_layers": 2},
        "z_dim": 16,
        "c_dim": 0,
        "w_dim": 16,
        "img_resolution": 8,
        "img_channels": 3,
    }


# ---------------------------------------------------------------------------------------
# Hostile pickles: refused, and nothing runs


def _code(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _nested_in_g(payload):
    G, _ = tiny_nets()
    G.synthesis.b8.conv1.official_extra_state = {"styles_cache": payload}
    return snapshot_dict(G=G)


def _in_tensor_data(storage_bytes):
    tensor = Call(
        Global("torch._utils", "_rebuild_tensor_v2"),
        Call(Global("torch.storage", "_load_from_bytes"), storage_bytes),
        0,
        (1,),
        (1,),
        False,
        OrderedDict(),
    )
    return {"G_ema": persistent("Generator", {"_parameters": OrderedDict(weight=tensor)})}


def _evil_legacy_storage(marker):
    return legacy_storage_bytes(
        [LEGACY_MAGIC, 1001, LEGACY_SYS_INFO, Call(Global("builtins", "exec"), _code(marker)), ["k"]]
    )


def _evil_zip_storage(marker):
    buf = io.BytesIO()
    torch.save(Call(exec, _code(marker)), buf)
    return buf.getvalue()


HOSTILE = {
    # case: (what the message must name, builder(marker) -> object to pickle)
    "os.system": ("os.system", lambda m: Call(Global("os", "system"), f"touch {m}")),
    "posix.system": ("posix.system", lambda m: Call(os.system, f"touch {m}")),
    "nt.system": ("nt.system", lambda m: {"G_ema": Call(Global("nt", "system"), f"type nul > {m}")}),
    "builtins.eval": ("builtins.eval", lambda m: {"G_ema": Call(Global("builtins", "eval"), _code(m))}),
    "builtins.exec nested in G's state": (
        "builtins.exec",
        lambda m: _nested_in_g(Call(Global("builtins", "exec"), _code(m))),
    ),
    "subprocess.Popen": (
        "subprocess.Popen",
        lambda m: _nested_in_g(Call(Global("subprocess", "Popen"), ["touch", str(m)])),
    ),
    "builtins.getattr": (
        "builtins.getattr",
        lambda m: Call(
            Call(Global("builtins", "getattr"), Call(Global("builtins", "__import__"), "os"), "system"), f"touch {m}"
        ),
    ),
    "builtins.__import__": ("builtins.__import__", lambda m: Call(Global("builtins", "__import__"), "os")),
    "copyreg._reconstructor": (
        "copyreg._reconstructor",
        lambda m: Call(
            Global("copyreg", "_reconstructor"), Global("collections", "OrderedDict"), Global("builtins", "dict"), {}
        ),
    ),
    "persistence.persistent_class": (
        "torch_utils.persistence.persistent_class",
        lambda m: {"G_ema": Call(Global("torch_utils.persistence", "persistent_class"), Global("builtins", "object"))},
    ),
    "persistence, another function": (
        "torch_utils.persistence.load_module_src",
        lambda m: Call(Global("torch_utils.persistence", "load_module_src"), _code(m)),
    ),
    "object array of calls": (
        "numpy data of Python objects",
        lambda m: snapshot_dict(
            G=tiny_nets()[0],
            training_set_kwargs={"labels": np.array([1, Call(Global("builtins", "exec"), _code(m))], dtype=object)},
        ),
    ),
    "object array of strings": (
        "numpy data of Python objects",
        lambda m: {"G_ema": None, "training_set_kwargs": {"names": np.array(["a", "b"], dtype=object)}},
    ),
    "legacy storage payload": (
        "not a plain weights-only torch storage",
        lambda m: _in_tensor_data(_evil_legacy_storage(m)),
    ),
    "zip storage payload": ("not a plain weights-only torch storage", lambda m: _in_tensor_data(_evil_zip_storage(m))),
}


@pytest.mark.parametrize("protocol", [*PROTOCOLS, 5])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_pickles_are_refused_without_running(tmp_path, case, protocol):
    named, build = HOSTILE[case]
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "network.pkl"
    path.write_bytes(dumps_official(build(marker), protocol=protocol, marker=tmp_path / "MODULE_SRC_RAN"))
    with pytest.raises(UnsafePickleError) as info:
        read_official_pickle(path)
    message = str(info.value)
    assert named in message
    assert "refusing to load it" in message
    assert_one_sentence(message, path)
    assert isinstance(info.value, UserError)
    assert not marker.exists() and not (tmp_path / "MODULE_SRC_RAN").exists()
    assert os.listdir(tmp_path) == ["network.pkl"]


def test_the_message_for_os_system_reads_well(tmp_path):
    path = tmp_path / "network.pkl"
    path.write_bytes(dumps_official(Call(Global("os", "system"), "true")))
    with pytest.raises(
        UnsafePickleError,
        match=r"network\.pkl asks to run os\.system, which a StyleGAN "
        r"snapshot never needs; refusing to load it\.$",
    ):
        safe_unpickle(path)


def test_protocol_0_inst_opcode_is_refused(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "p0.pkl"
    path.write_bytes(b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n.")
    with pytest.raises(UnsafePickleError, match="os.system"):
        read_official_pickle(path)
    assert not marker.exists()


def test_control_the_payloads_do_run_without_the_allow_list(tmp_path):
    """Proves the refusals above are not vacuous: a plain unpickler runs the payloads."""
    marker = tmp_path / "PAYLOAD_RAN"
    pickle.loads(dumps_official(Call(Global("builtins", "eval"), _code(marker))))
    assert marker.exists()
    marker.unlink()
    with contextlib.suppress(Exception):  # torch notices the missing storage only after the payload ran
        torch.load(io.BytesIO(_evil_legacy_storage(marker)), weights_only=False)
    assert marker.exists()


def test_module_src_never_runs_even_on_a_plain_looking_snapshot(tmp_path):
    G, D = tiny_nets()
    path = tmp_path / "snap.pkl"
    marker = write_official_pickle(path, G=G, D=D, augment_p=0.0)
    read_official_pickle(path)
    assert not marker.exists()
    assert "module_src must never run" in path.read_bytes().decode("latin-1")


def test_tensorflow_pickles_are_named_as_such(tmp_path):
    net = Call(Global("dnnlib.tflib.network", "Network"))
    path = tmp_path / "karras2019stylegan-ffhq-1024x1024.pkl"
    path.write_bytes(dumps_official((net, net, net), protocol=3))
    with pytest.raises(UserError, match="legacy TensorFlow StyleGAN pickle") as info:
        read_official_pickle(path)
    assert "not support TensorFlow pickles yet" in str(info.value)
    assert_one_sentence(str(info.value), path)


@pytest.mark.parametrize("size,stride", [((1000,), (1,)), ((2, 2), (1, 10))])
def test_tensor_views_beyond_their_storage_are_refused(tmp_path, size, stride):
    tensor_args = _rebuild_args(pickle.dumps(torch.arange(4.0)))  # a real 4-element storage
    tensor = Call(
        Global("torch._utils", "_rebuild_tensor_v2"),
        Call(Global("torch.storage", "_load_from_bytes"), tensor_args),
        0,
        size,
        stride,
        False,
        OrderedDict(),
    )
    path = tmp_path / "big.pkl"
    path.write_bytes(dumps_official({"G_ema": persistent("Generator", {"_parameters": OrderedDict(w=tensor)})}))
    with pytest.raises(UserError) as info:
        read_official_pickle(path)
    assert_one_sentence(str(info.value), path)


def _storage_call():
    return Call(Global("torch.storage", "_load_from_bytes"), _rebuild_args(pickle.dumps(torch.arange(4.0))))


def _tensor_call(**build):
    return Call(
        Global("torch._utils", "_rebuild_tensor_v2"), _storage_call(), 0, (4,), (1,), False, OrderedDict(), **build
    )


@pytest.mark.parametrize("case", ["tensor re-pointed", "tensor hooks", "storage", "persistent object"])
def test_objects_cannot_be_modified_after_they_are_built(tmp_path, case):
    """BUILD opcodes aimed at what the allow-list built: Tensor.__setstate__ would re-point a
    tensor at any shape without a bounds check, or attach hooks; stubs and storages are fixed."""
    if case == "tensor re-pointed":
        weight = _tensor_call(state=(_storage_call(), 0, (10**6,), (1,)))
    elif case == "tensor hooks":
        weight = _tensor_call(state=(True, OrderedDict(), OrderedDict(h=Global("collections", "OrderedDict"))))
    elif case == "storage":
        weight = Call(
            Global("torch._utils", "_rebuild_tensor_v2"),
            Call(
                Global("torch.storage", "_load_from_bytes"),
                _rebuild_args(pickle.dumps(torch.arange(4.0))),
                state=(None, {"dtype": None}),
            ),
            0,
            (4,),
            (1,),
            False,
            OrderedDict(),
        )
    else:
        weight = _tensor_call()
    stub = persistent("Generator", {"_parameters": OrderedDict(weight=weight)})
    if case == "persistent object":
        stub.state = {"class_name": "Generator", "state": {}}
    path = tmp_path / "build.pkl"
    path.write_bytes(dumps_official({"G_ema": stub}))
    with pytest.raises(UserError, match="after it was (built|loaded)") as info:
        read_official_pickle(path)
    assert_one_sentence(str(info.value), path)


def test_plain_tensor_call_reads(tmp_path):
    path = tmp_path / "ok.pkl"
    path.write_bytes(dumps_official({"G_ema": persistent("Generator", {"_parameters": OrderedDict(w=_tensor_call())})}))
    assert torch.equal(read_official_pickle(path).G_ema.state_dict["w"], torch.arange(4.0))


def _rebuild_args(data: bytes) -> bytes:
    """The bytes handed to torch.storage._load_from_bytes inside a pickled tensor."""
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            return arg
    raise AssertionError("no storage bytes")


# ---------------------------------------------------------------------------------------
# Broken and foreign files: one sentence naming the file


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_snapshot(tmp_path, protocol):
    G, _ = tiny_nets()
    good = tmp_path / "good.pkl"
    write_official_pickle(good, G=G, protocol=protocol)
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 3):
        path = _write(tmp_path, "cut.pkl", data[:cut])
        with pytest.raises(UserError) as info:
            read_official_pickle(path)
        assert not isinstance(info.value, UnsafePickleError)
        assert_one_sentence(str(info.value), path)


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a readable pickle"),
        (b"hello, I am a text file\n", "is not a readable pickle"),
        (pickle.dumps([1, 2, 3], protocol=4), "it holds a list, not a dict with G, D and G_ema"),
        (pickle.dumps({"a": 1}, protocol=3), "it has no G_ema"),
        (pickle.dumps({"G_ema": "Generator"}, protocol=3), "its G_ema is a str, not a Generator"),
        (pickle.dumps({"G_ema": None}, protocol=3), "its G_ema is nothing, not a Generator"),
    ],
)
def test_foreign_or_broken_files(tmp_path, data, expected):
    path = _write(tmp_path, "network.pkl", data)
    with pytest.raises(UserError) as info:
        read_official_pickle(path)
    message = str(info.value)
    assert expected in message
    assert_one_sentence(message, path)


def test_networks_of_the_wrong_class(tmp_path):
    _, D = tiny_nets()
    path = tmp_path / "swapped.pkl"
    path.write_bytes(dumps_official({"G_ema": D}))
    with pytest.raises(
        UserError,
        match=r"is not a StyleGAN2-ADA network snapshot \(its G_ema is a Discriminator "
        r"object, not a Generator\)\.$",
    ):
        read_official_pickle(path)
    G, _ = tiny_nets()
    path.write_bytes(dumps_official(snapshot_dict(G=G, D=G)))
    with pytest.raises(UserError, match="its D is a Generator object, not a Discriminator"):
        read_official_pickle(path)


def test_malformed_module_state(tmp_path):
    bad = {"G_ema": persistent("Generator", {"_parameters": OrderedDict(weight="not a tensor")})}
    path = _write(tmp_path, "bad.pkl", dumps_official(bad))
    with pytest.raises(UserError, match="a parameter weight that is a str, not a tensor") as info:
        read_official_pickle(path)
    assert_one_sentence(str(info.value), path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_official_pickle(tmp_path / "nope.pkl")


# ---------------------------------------------------------------------------------------
# The name table


def _configs():
    for res in (16, 32):
        for c_dim in (0, 3):
            for g_arch, d_arch in (("skip", "resnet"), ("orig", "orig"), ("resnet", "skip")):
                yield res, c_dim, g_arch, d_arch


def test_every_name_of_our_networks_is_in_the_table_and_every_row_is_used():
    used = set()
    for res, c_dim, g_arch, d_arch in _configs():
        G, D = tiny_nets(res, c_dim, g_arch=g_arch, d_arch=d_arch)
        for net, name in ((G, "G"), (D, "D")):
            state = net.state_dict()
            mapped = map_official_state_dict(state, name)
            assert list(mapped) == list(state)  # identity names, order kept
            for key in state:
                rows = [i for i, r in enumerate(STATE_DICT_TABLE) if r.network == name and re.fullmatch(r.pattern, key)]
                assert len(rows) == 1, (key, rows)  # each name is documented by exactly one row
                used.update(rows)
    assert used == set(range(len(STATE_DICT_TABLE)))


@pytest.mark.parametrize(
    "network,key",
    [
        ("G", "synthesis.b8.conv2.weight"),
        ("G", "mapping.fc0.weight_orig"),
        ("G", "b4.fc.weight"),  # a D name in G
        ("G_ema", "synthesis.b4.conv0.weight"),  # b4 has no conv0
        ("G", "synthesis.b12.conv1.weight"),  # not a power of two
        ("D", "mapping.w_avg"),  # D's mapping has no w_avg
        ("D", "b4.conv0.weight"),  # the epilogue has conv, not conv0
        ("D", "augment_pipe.p"),
    ],
)
def test_unknown_names_are_refused_by_name(network, key):
    state = OrderedDict([("mapping.fc0.bias", torch.zeros(1)), (key, torch.zeros(1))])
    with pytest.raises(UserError) as info:
        map_official_state_dict(state, network)
    message = str(info.value)
    assert repr(key) in message and "\n" not in message and message.endswith(".")


def test_the_table_rows_are_documented():
    for rule in STATE_DICT_TABLE:
        assert rule.network in ("G", "D") and rule.note and rule.replacement


# ---------------------------------------------------------------------------------------
# Official kwargs → ours


def test_missing_kwargs_take_the_official_defaults():
    G = official_kwargs_to_ours("Generator", {"img_resolution": 32})
    assert G == {
        "z_dim": 512,
        "c_dim": 0,
        "w_dim": 512,
        "img_resolution": 32,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 8},
        "synthesis_kwargs": {
            "channel_base": 32768,
            "channel_max": 512,
            "num_fp16_res": 0,
            "conv_clamp": None,
            "architecture": "skip",
        },
    }
    D = official_kwargs_to_ours("Discriminator", {"img_resolution": 32, "c_dim": 2})
    assert D == {
        "c_dim": 2,
        "img_resolution": 32,
        "img_channels": 3,
        "architecture": "resnet",
        "channel_base": 32768,
        "channel_max": 512,
        "num_fp16_res": 0,
        "conv_clamp": None,
        "cmap_dim": None,
        "block_kwargs": {},
        "mapping_kwargs": {},
        "epilogue_kwargs": {"mbstd_group_size": 4},
    }


def test_recorded_kwargs_win_and_train_py_values_are_kept():
    recorded = {
        "z_dim": 512,
        "w_dim": 512,
        "c_dim": 10,
        "img_resolution": 32,
        "img_channels": 3,
        "mapping_kwargs": {"num_layers": 2},
        "synthesis_kwargs": {
            "channel_base": 16384,
            "channel_max": 512,
            "num_fp16_res": 4,
            "conv_clamp": 256,
            "fp16_channels_last": True,
        },
    }
    ours = official_kwargs_to_ours("Generator", recorded)
    assert ours["synthesis_kwargs"] == {
        "channel_base": 16384,
        "channel_max": 512,
        "num_fp16_res": 4,
        "conv_clamp": 256,
        "architecture": "skip",
        "fp16_channels_last": True,
    }
    assert ours["mapping_kwargs"] == {"num_layers": 2}
    assert recorded["synthesis_kwargs"].get("architecture") is None  # the input is not modified


def test_dropped_kwargs_are_dropped_and_the_result_builds():
    assert DROPPED_KWARGS
    recorded = {
        "z_dim": 8,
        "w_dim": 8,
        "c_dim": 0,
        "img_resolution": 8,
        "img_channels": 1,
        "synthesis_kwargs": {"channel_base": 256, "channel_max": 16, "fused_modconv_default": "inference_only"},
    }
    ours = official_kwargs_to_ours("Generator", recorded)
    assert "fused_modconv_default" not in ours["synthesis_kwargs"]
    build_generator(ours)


def test_kwargs_errors():
    with pytest.raises(UserError, match="img_resolution"):
        official_kwargs_to_ours("Generator", {"z_dim": 8})
    with pytest.raises(UserError, match="neither a Generator nor a Discriminator"):
        official_kwargs_to_ours("AugmentPipe", {})
    with pytest.raises(UserError, match="mapping_kwargs as a str"):
        official_kwargs_to_ours("Generator", {"img_resolution": 8, "mapping_kwargs": "x"})


# ---------------------------------------------------------------------------------------
# Our networks against the official names and shapes of NVIDIA's `training/networks.py`
# (written out independently of networks.py)


def official_G_shapes(kw: dict) -> dict[str, tuple]:
    kw = official_kwargs_to_ours("Generator", kw)
    z, c, w, R, ic = kw["z_dim"], kw["c_dim"], kw["w_dim"], kw["img_resolution"], kw["img_channels"]
    syn = kw["synthesis_kwargs"]

    def C(r):
        return min(syn["channel_base"] // r, syn["channel_max"])

    out = {}
    if c:
        out |= {"mapping.embed.weight": (w, c), "mapping.embed.bias": (w,)}
    for i in range(kw["mapping_kwargs"]["num_layers"]):
        out[f"mapping.fc{i}.weight"] = (w, (z + (w if c else 0)) if i == 0 else w)
        out[f"mapping.fc{i}.bias"] = (w,)
    out["mapping.w_avg"] = (w,)
    r = 4
    while r <= R:
        b = f"synthesis.b{r}"
        out[f"{b}.resample_filter"] = (4, 4)
        convs = [("conv1", C(r))] if r == 4 else [("conv0", C(r // 2)), ("conv1", C(r))]
        if r == 4:
            out[f"{b}.const"] = (C(4), 4, 4)
        for name, cin in convs:
            out |= {
                f"{b}.{name}.weight": (C(r), cin, 3, 3),
                f"{b}.{name}.bias": (C(r),),
                f"{b}.{name}.noise_strength": (),
                f"{b}.{name}.noise_const": (r, r),
                f"{b}.{name}.resample_filter": (4, 4),
                f"{b}.{name}.affine.weight": (cin, w),
                f"{b}.{name}.affine.bias": (cin,),
            }
        if syn["architecture"] == "skip" or r == R:
            out |= {
                f"{b}.torgb.weight": (ic, C(r), 1, 1),
                f"{b}.torgb.bias": (ic,),
                f"{b}.torgb.affine.weight": (C(r), w),
                f"{b}.torgb.affine.bias": (C(r),),
            }
        if syn["architecture"] == "resnet" and r > 4:
            out |= {f"{b}.skip.weight": (C(r), C(r // 2), 1, 1), f"{b}.skip.resample_filter": (4, 4)}
        r *= 2
    return out


def official_D_shapes(kw: dict) -> dict[str, tuple]:
    kw = official_kwargs_to_ours("Discriminator", kw)
    c, R, ic, arch = kw["c_dim"], kw["img_resolution"], kw["img_channels"], kw["architecture"]

    def C(r):
        return min(kw["channel_base"] // r, kw["channel_max"])

    cmap = (kw["cmap_dim"] or C(4)) if c else 0
    out = {}

    def conv(p, o, i, k, bias=True):
        return {
            f"{p}.weight": (o, i, k, k),
            f"{p}.resample_filter": (4, 4),
            **({f"{p}.bias": (o,)} if bias else {}),
        }

    r = R
    while r >= 8:
        b = f"b{r}"
        out[f"{b}.resample_filter"] = (4, 4)
        if r == R or arch == "skip":
            out |= conv(f"{b}.fromrgb", C(r), ic, 1)
        out |= conv(f"{b}.conv0", C(r), C(r), 3)
        out |= conv(f"{b}.conv1", C(r // 2), C(r), 3)
        if arch == "resnet":
            out |= conv(f"{b}.skip", C(r // 2), C(r), 1, bias=False)
        r //= 2
    if arch == "skip":
        out |= conv("b4.fromrgb", C(4), ic, 1)
    out |= conv("b4.conv", C(4), C(4) + 1, 3)
    out |= {
        "b4.fc.weight": (C(4), 16 * C(4)),
        "b4.fc.bias": (C(4),),
        "b4.out.weight": (cmap or 1, C(4)),
        "b4.out.bias": (cmap or 1,),
    }
    if c:
        out |= {"mapping.embed.weight": (cmap, c), "mapping.embed.bias": (cmap,)}
        for i in range(8):
            out |= {f"mapping.fc{i}.weight": (cmap, cmap), f"mapping.fc{i}.bias": (cmap,)}
    return out


def _shapes(net: nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("config", list(_configs()))
def test_our_networks_have_the_official_names_and_shapes(config):
    res, c_dim, g_arch, d_arch = config
    G_kwargs, D_kwargs = tiny_kwargs(res, c_dim, g_arch=g_arch, d_arch=d_arch)
    assert _shapes(build_generator(G_kwargs)) == official_G_shapes(G_kwargs)
    assert _shapes(build_discriminator(D_kwargs)) == official_D_shapes(D_kwargs)


def test_facts_sheet_examples():
    """§8.1: paper256 D `b4.fc.weight [512, 8192]`; conditional cifar G `mapping.fc0.weight [512, 1024]`."""
    G_kwargs, _ = network_kwargs(resolve_preset("cifar", 32), 32, c_dim=10)
    assert official_G_shapes(G_kwargs)["mapping.fc0.weight"] == (512, 1024)
    _, D_kwargs = network_kwargs(resolve_preset("paper256", 256), 256)
    assert official_D_shapes(D_kwargs)["b4.fc.weight"] == (512, 8192)
    with torch.device("meta"):  # shapes only, no memory
        assert tuple(Generator(**G_kwargs).state_dict()["mapping.fc0.weight"].shape) == (512, 1024)
        assert tuple(Discriminator(**D_kwargs).state_dict()["b4.fc.weight"].shape) == (512, 8192)
