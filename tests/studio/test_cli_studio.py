"""`ganscapes studio` as a user runs it: what stops it with one sentence, and how it launches.

In-process (`run_cli`): every refusal here comes before the server would start, and a
test fails rather than hangs if one ever got that far, because Gradio's launch is
replaced by a stand-in. Each test checks that nothing is left listening on its port.
The real server is started, in a subprocess, by the browser test.
"""

from __future__ import annotations

import importlib.util
import os
import socket

import pytest

from helpers_clip import assert_error, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_free(port: int) -> None:
    """Nothing listens on 127.0.0.1:port (connecting is refused, binding works)."""
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, f"something listens on port {port}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.fixture
def no_launch(monkeypatch):
    """Fail, instead of serving forever, if a refused command reaches the server."""
    from ganscapes.studio import app

    def launch(*args, **kwargs):
        raise AssertionError("the studio was launched")

    monkeypatch.setattr(app, "launch", launch)


def studio_args(model, tmp_path, port, *more):
    return ["studio", "--model", model, "--out", tmp_path / "out", "--port", port, "--device", "cpu", *more]


def test_a_missing_model_is_one_line(tmp_path, monkeypatch, capsys, no_launch):
    port = free_port()
    missing = tmp_path / "nope.safetensors"
    assert run_cli(monkeypatch, *studio_args(missing, tmp_path, port)) == 1
    out, err = capsys.readouterr()
    assert_error(err, f"Model file {missing} does not exist.")
    assert out == ""
    assert not (tmp_path / "out").exists()
    assert_free(port)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.safetensors", b"not a model", "is not a readable safetensors file"),
        ("bad.pkl", b"\x80\x04garbage", "bad.pkl"),
    ],
)
def test_a_corrupt_model_is_one_line(tmp_path, monkeypatch, capsys, no_launch, name, content, message):
    port = free_port()
    path = tmp_path / name
    path.write_bytes(content)
    assert run_cli(monkeypatch, *studio_args(path, tmp_path, port)) == 1
    _, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("ganscapes: error: ") and message in err and str(path) in err
    assert_free(port)


def test_a_port_in_use_is_one_line(model_file, tmp_path, monkeypatch, capsys, no_launch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert run_cli(monkeypatch, *studio_args(model_file, tmp_path, port)) == 1
        _, err = capsys.readouterr()
        assert_error(
            err, f"Cannot listen on 127.0.0.1:{port} (Address already in use); choose another --port or --host."
        )
    assert not (tmp_path / "out").exists()  # refused before the model was even read
    assert_free(port)


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_a_port_out_of_range_is_one_line(model_file, tmp_path, monkeypatch, capsys, no_launch, port):
    assert run_cli(monkeypatch, *studio_args(model_file, tmp_path, port)) == 1
    _, err = capsys.readouterr()
    assert_error(err, f"--port must be from 1 to 65535, not {port}.")


def test_without_gradio_the_command_says_how_to_install_it(model_file, tmp_path, monkeypatch, capsys, no_launch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert run_cli(monkeypatch, *studio_args(model_file, tmp_path, free_port())) == 1
    _, err = capsys.readouterr()
    assert_error(err, "The studio needs Gradio, an optional extra: pip install 'ganscapes[studio]'.")


@pytest.mark.slow
def test_the_studio_launches_quietly_on_loopback_and_warns_for_other_hosts(model_file, tmp_path, monkeypatch, capsys):
    """The page is built for real (without CLIP: offline, no weights); only Gradio's server start is replaced."""
    gr = pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'ganscapes[studio]')")
    monkeypatch.delenv("GANSCAPES_CLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_SSR_MODE"):
        monkeypatch.delenv(name, raising=False)  # quiet_environment sets them; undo that afterwards
    launched: list[dict] = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kwargs: launched.append(kwargs))

    port = free_port()
    assert run_cli(monkeypatch, *studio_args(model_file, tmp_path, port)) == 0
    out, err = capsys.readouterr()
    assert out == f"ganscapes studio: http://127.0.0.1:{port}  (Ctrl-C stops it)\n" and err == ""
    (kwargs,) = launched
    assert kwargs["server_name"] == "127.0.0.1" and kwargs["server_port"] == port
    assert kwargs["share"] is False and kwargs["ssr_mode"] is False and kwargs["mcp_server"] is False
    assert kwargs["allowed_paths"] == [str((tmp_path / "out").resolve())]
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"

    assert run_cli(monkeypatch, *studio_args(model_file, tmp_path, port, "--host", "0.0.0.0")) == 0
    out, err = capsys.readouterr()
    assert out == f"ganscapes studio: http://127.0.0.1:{port}  (Ctrl-C stops it)\n"
    assert err.startswith("ganscapes: warning: the studio listens on 0.0.0.0") and "anyone" in err
    assert launched[-1]["server_name"] == "0.0.0.0"
    assert_free(port)
