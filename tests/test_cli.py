"""The command line, as a user runs it: real subprocesses for help, errors and the data commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ganscapes.cli as cli
from ganscapes.errors import UserError

from helpers_images import jpeg_bytes, noise, png_bytes, write, zip_bytes

COMMANDS = [
    "sample",
    "gather",
    "prepare",
    "dataset",
    "curate",
    "train",
    "metrics",
    "generate",
    "rank",
    "mix",
    "video",
    "post",
    "reproduce",
    "info",
    "guide",
    "project",
    "demo",
    "studio",
    "import-official",
    "env",
]


def ganscapes(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "ganscapes", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture
def src(tmp_path) -> Path:
    folder = tmp_path / "src"
    write(folder / "wide.png", png_bytes(noise(80, 60, seed=1)))
    write(folder / "tall.jpg", jpeg_bytes(noise(60, 80, seed=2)))
    write(folder / "square.png", png_bytes(noise(50, 50, seed=3)))
    return folder


def assert_one_line_error(proc: subprocess.CompletedProcess, message: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.endswith("\n")
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ganscapes: error: ")
    assert lines[0] == f"ganscapes: error: {message}"
    assert proc.stdout == ""


# ---------------------------------------------------------------------------------------
# Help


def test_help_lists_every_command():
    proc = ganscapes("--help")
    assert proc.returncode == 0, proc.stderr
    for command in COMMANDS:
        assert f" {command} " in proc.stdout, command
    assert "StyleGAN2-ADA" in proc.stdout


def test_help_lists_the_commands_in_pipeline_order():
    """From gathering to the studio, as a user meets them; every command has its place in the list."""
    import typer.main
    from typer.testing import CliRunner

    from ganscapes.cli.app import PIPELINE_ORDER

    root = typer.main.get_command(cli.app)
    assert set(root.commands) == set(PIPELINE_ORDER)
    assert root.list_commands(None) == list(PIPELINE_ORDER)
    result = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = [m.group(1) for m in re.finditer(r"^\W+ ([a-z][a-z-]+)\s{2,}", result.output, re.M)]
    assert listed == list(PIPELINE_ORDER), listed
    assert listed.index("prepare") < listed.index("train") < listed.index("generate") < listed.index("rank")


def test_prepare_help_shows_the_defaults():
    proc = ganscapes("prepare", "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for option in ["--out", "--res", "--format", "--aspect", "--workers", "--min-size", "--max-pixels", "--strict"]:
        assert option in out, option
    assert "[default: 1024]" in out
    assert "[default: center-rect]" in out
    assert "[default: auto]" in out
    assert "center-rect|letterbox|center-crop|squeeze" in out
    assert "all cores" in out


# ---------------------------------------------------------------------------------------
# User errors: one line on stderr, exit status 1, no traceback


def test_missing_source(tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = ganscapes("prepare", str(missing), "--out", str(tmp_path / "ds"), cwd=tmp_path)
    assert_one_line_error(proc, f"Source {missing} does not exist.")
    assert not (tmp_path / "ds").exists()


def test_bad_res(src, tmp_path):
    proc = ganscapes("prepare", str(src), "--out", str(tmp_path / "ds"), "--res", "100", cwd=tmp_path)
    assert_one_line_error(proc, "--res must be a power of two from 4 to 2048, not 100.")
    assert not (tmp_path / "ds").exists()


def test_bad_aspect(src, tmp_path):
    proc = ganscapes("prepare", str(src), "--out", str(tmp_path / "ds"), "--aspect", "foo", cwd=tmp_path)
    assert_one_line_error(proc, "--aspect must be 'auto', a number such as 1.27, or a ratio such as 4:3, not 'foo'.")


# ---------------------------------------------------------------------------------------
# The data commands


def test_prepare_then_dataset_info(src, tmp_path):
    out = tmp_path / "ds"
    proc = ganscapes(
        "prepare", str(src), "--out", str(out), "--res", "16", "--aspect", "4:3", "--workers", "1", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = tmp_path / "ds.prepare-report.tsv"
    assert proc.stdout == (
        f"Prepared 3 image(s) at 16x16 (3 new, 0 reused) in {out}; 0 skipped (see {report}). Restore aspect: 1.333\n"
    )
    assert sorted(p.name for p in (out / "00000").iterdir()) == [f"img{i:08d}.png" for i in range(3)]

    proc = ganscapes("dataset", "info", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in proc.stdout.splitlines())
    assert rows == {
        "dataset": f"{out} (folder)",
        "images": "3",
        "resolution": "16x16",
        "format": "center-rect",
        "aspect": "1.333",
        "sources": "3",
        "skipped": "0",
        "labels": "no",
    }


def test_env_reports_versions_and_cores():
    proc = ganscapes("env", timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in proc.stdout.splitlines())
    for key in [
        "ganscapes",
        "Python",
        "torch",
        "torchvision",
        "open_clip_torch",
        "numpy",
        "pillow",
        "CPU cores",
        "CUDA devices",
    ]:
        assert key in rows, key
    assert rows["Python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")
    assert rows["CPU cores"] == str(os.cpu_count())
    for dist in ["torch", "torchvision", "open_clip_torch"]:
        assert rows[dist][0].isdigit(), (dist, rows[dist])
    assert rows["gradio"][0].isdigit() or rows["gradio"] == "not installed"


def test_env_names_a_missing_optional_package(monkeypatch):
    """Gradio (the studio's) and open_clip are listed even when absent: "not installed"."""
    import importlib.metadata

    from ganscapes.env import environment_report

    real = importlib.metadata.version

    def version(dist):
        if dist in ("gradio", "open_clip_torch"):
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    rows = dict(environment_report())
    assert rows["gradio"] == "not installed" and rows["open_clip_torch"] == "not installed"
    assert rows["numpy"][0].isdigit()


# ---------------------------------------------------------------------------------------
# import-official and generate


@pytest.mark.slow
def test_import_official_then_generate(tmp_path):
    from gan.official_pickle import write_official_pickle

    from helpers_models import tiny_model

    source = tiny_model(res=16, with_training_nets=True)
    pkl = tmp_path / "network-snapshot-000040.pkl"
    marker = write_official_pickle(pkl, G=source.G, D=source.D, G_ema=source.G_ema, augment_p=0.1)
    model = tmp_path / "landscapes.safetensors"

    proc = ganscapes("import-official", str(pkl), "--out", str(model), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists()
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in proc.stdout.splitlines())
    assert rows == {
        "model": str(model),
        "source": "official-pickle:network-snapshot-000040.pkl",
        "networks": "G_ema, G, D",
        "resolution": "16x16",
        "channels": "3",
        "c_dim": "0",
        "num_ws": "6",
        "model hash": source.model_hash,
    }

    out = tmp_path / "pictures"
    proc = ganscapes(
        "generate",
        "--model",
        str(model),
        "--seeds",
        "0-3",
        "--psi",
        "0.7",
        "--out",
        str(out),
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith(
        f"4 image(s) in {out} (seed0000.png … seed0003.png); latents in {out / 'latents.npz'}; cpu, "
    )
    assert sorted(p.name for p in out.iterdir()) == ["latents.npz", *(f"seed{i:04d}.png" for i in range(4))]

    proc = ganscapes("generate", "--model", str(model), "--seeds", "5-2", "--out", str(out), cwd=tmp_path)
    assert_one_line_error(proc, "The seed range '5-2' runs backwards; write 2-5.")


def test_generate_user_errors_in_process(monkeypatch, capsys, tmp_path):
    assert (
        run_main(
            monkeypatch,
            "generate",
            "--model",
            str(tmp_path / "m.safetensors"),
            "--seeds",
            "0",
            "--out",
            str(tmp_path / "o"),
        )
        == 1
    )
    assert capsys.readouterr().err == f"ganscapes: error: Model file {tmp_path / 'm.safetensors'} does not exist.\n"
    assert run_main(monkeypatch, "import-official", str(tmp_path / "s.pkl"), "--out", str(tmp_path / "m.pt")) == 1
    assert capsys.readouterr().err == "ganscapes: error: --out must name a .safetensors file, not 'm.pt'.\n"
    assert run_main(monkeypatch, "generate", "--model", "m", "--seeds", "0", "--out", "o", "--psi", "abc") == 2


# ---------------------------------------------------------------------------------------
# In-process checks (cheap)


@pytest.mark.parametrize(
    "text, value",
    [("auto", None), (" AUTO ", None), ("1.27", 1.27), ("4:3", 4 / 3), ("16:9", 16 / 9), ("1", 1.0), ("0.5", 0.5)],
)
def test_parse_aspect(text, value):
    assert cli.parse_aspect(text) == (pytest.approx(value) if value is not None else None)


@pytest.mark.parametrize("text", ["foo", "4:0", ":", "4:", "x:3", ""])
def test_parse_aspect_rejects(text):
    with pytest.raises(UserError, match="--aspect must be 'auto', a number such as 1.27, or a ratio such as 4:3"):
        cli.parse_aspect(text)


def run_main(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["ganscapes", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    return info.value.code


def test_interrupt_says_how_to_resume(monkeypatch, capsys, src, tmp_path):
    import ganscapes.data.prepare as prepare_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_mod, "prepare_dataset", interrupted)
    assert run_main(monkeypatch, "prepare", str(src), "--out", str(tmp_path / "ds")) == 130
    err = capsys.readouterr().err
    assert "ganscapes: interrupted; finished work is kept, run the same command again to resume." in err
    assert "Traceback" not in err


def test_dataset_info_on_a_missing_dataset(monkeypatch, capsys, tmp_path):
    assert run_main(monkeypatch, "dataset", "info", str(tmp_path / "nope")) == 1
    assert capsys.readouterr().err == f"ganscapes: error: Dataset {tmp_path / 'nope'} does not exist.\n"


def test_gather_import_command(monkeypatch, capsys, tmp_path):
    archive = write(
        tmp_path / "in.zip",
        zip_bytes([("../evil.png", png_bytes(noise(20, 20, seed=1))), ("ok.png", png_bytes(noise(20, 20)))]),
    )
    out = tmp_path / "raw"
    monkeypatch.setattr(sys, "argv", ["ganscapes", "gather", "import", str(archive), "--out", str(out)])
    try:
        cli.main()
    except SystemExit as e:  # click exits 0 after a command in standalone mode
        assert e.code in (0, None)
    captured = capsys.readouterr()
    assert f"refused {archive}:../evil.png: absolute or '..' path in the archive" in captured.out
    assert f"Imported 1 image(s) into {out}; 0 duplicate(s), 0 skipped, 1 refused." in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "ok.png"]
    assert not (tmp_path / "evil.png").exists()


def _leaf_commands(command, path=()):
    if hasattr(command, "commands"):  # a group (Typer may bundle its own click)
        for name, sub in command.commands.items():
            yield from _leaf_commands(sub, (*path, name))
    else:
        yield path, command


def test_every_option_of_every_command_shows_its_default_in_help():
    """`ganscapes COMMAND --help` must list every option with its default (issue 2)."""
    import typer.main
    from typer.testing import CliRunner

    root = typer.main.get_command(cli.app)
    leaves = list(_leaf_commands(root))
    assert {" ".join(p) for p, _ in leaves} >= {
        "sample",
        "gather wikiart",
        "gather import",
        "prepare",
        "dataset info",
        "generate",
        "import-official",
        "env",
    }
    runner = CliRunner()
    for path, command in leaves:
        result = runner.invoke(cli.app, [*path, "--help"], env={"COLUMNS": "250"})
        assert result.exit_code == 0, (path, result.output)
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            assert param.opts[0] in result.output, (path, param.opts[0])
            if param.required:
                continue
            shown = param.show_default
            assert shown is not False, (path, param.name)
            assert param.default is not None or isinstance(shown, str), (path, param.name)
            expected = shown if isinstance(shown, str) else None
            if expected is not None:
                assert expected in result.output, (path, param.name)


def test_library_settings_are_named_as_options_on_the_command_line(tmp_path):
    """The library names a bad setting as its API does (`kimg_per_tick`); the CLI as its option."""
    from ganscapes.cli.app import option_name
    from ganscapes.errors import SettingError

    assert str(SettingError("kimg_per_tick", "must be at least 1e-06, not 0.")).startswith("kimg_per_tick must")
    assert option_name("kimg_per_tick") == "--kimg-per-tick" and option_name("cfg") == "--cfg"
    assert option_name("truncation_cutoff") == "--trunc-cutoff"
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset
    from ganscapes.data.sample import make_samples

    make_samples(tmp_path / "raw", n=4, seed=0, min_side=32, max_side=48, progress=False)
    data = tmp_path / "data.zip"
    prepare_dataset(tmp_path / "raw", data, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganscapes",
            "train",
            "--data",
            str(data),
            "--cfg",
            "tiny",
            "--kimg-per-tick",
            "0",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "ganscapes: error: --kimg-per-tick must be at least 1e-06, not 0.0."


# Settings the library checks but no command sets (the command line cannot get them wrong).
LIBRARY_ONLY_SETTINGS = {"ada_kimg"}  # TrainConfig.ada_kimg: train.py's ADA speed, not a `train` option


def test_every_setting_the_library_names_is_an_option_of_some_command():
    """Each `SettingError` name in src/ganscapes, and each OPTION_NAMES entry, words as an option that exists."""
    import typer.main

    from ganscapes.cli.app import OPTION_NAMES, option_name

    options = {
        opt
        for _, command in _leaf_commands(typer.main.get_command(cli.app))
        for param in command.params
        if param.param_type_name == "option"
        for opt in (*param.opts, *param.secondary_opts)
    }
    root = Path(cli.__file__).resolve().parents[1]
    raised: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name == "errors.py":  # its docstring's example
            continue
        text = path.read_text(encoding="utf-8")
        # SettingError("name", …), _one_of("name", …) and train_config's ("name", c.name, low) checks
        patterns = [r'SettingError\(\s*"(\w+)"', r'_one_of\(\s*"(\w+)"']
        if path.name == "train_config.py":
            patterns.append(r'\(\s*"(\w+)",\s*(?:c\.)?\1\b')
        for pattern in patterns:
            for name in re.findall(pattern, text):
                raised.setdefault(name, set()).add(path.relative_to(root).as_posix())
    assert {"kimg_per_tick", "res", "top", "count", "num_images", "minutes", "aspect"} <= set(raised), sorted(raised)
    missing = {
        name: (option_name(name), sorted(raised.get(name, {"OPTION_NAMES"})))
        for name in set(raised) - LIBRARY_ONLY_SETTINGS | set(OPTION_NAMES)
        if option_name(name) not in options
    }
    assert not missing, f"settings whose option no command has: {missing}"
    assert all(option_name(name) not in options for name in LIBRARY_ONLY_SETTINGS)


# ---------------------------------------------------------------------------------------
# --model: a file or a run folder, the same on every command

EMPTY = "empty-folder"
MODEL_COMMANDS = {  # each command that takes --model, with the rest of a valid command line
    "generate": ["--seeds", "0", "--out", "o"],
    "mix": ["--forms", "1", "--styles", "2", "--out", "o"],
    "video": ["--seeds", "1,2", "--out", "o.mp4"],
    "directions": ["--out", "d.npz"],
    "guide": ["--prompt", "autumn woods", "--out", "o"],
    "project": ["picture.png", "--out", "o"],
    "post": ["picture.png", "--out", "o"],
    "reproduce": ["picture.png"],
    "metrics": ["--data", "data.zip"],
    "studio": ["--port", "0"],
}


def test_every_command_that_takes_a_model_resolves_it_in_one_place():
    import typer.main

    takes_model = {
        " ".join(path)
        for path, command in _leaf_commands(typer.main.get_command(cli.app))
        if any("--model" in p.opts for p in command.params)
    }
    assert takes_model == set(MODEL_COMMANDS)


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
def test_a_folder_without_snapshots_is_refused_by_every_model_command(command, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / EMPTY).mkdir()
    if command == "studio":
        pytest.importorskip("gradio")
    assert run_main(monkeypatch, command, "--model", EMPTY, *MODEL_COMMANDS[command]) == 1
    assert capsys.readouterr().err == (
        f"ganscapes: error: --model {EMPTY} is a folder without a training snapshot "
        "(network-snapshot-*.safetensors with its training state).\n"
    )


def test_a_run_folder_as_model_picks_its_best_snapshot_and_says_so(monkeypatch, capsys, tmp_path):
    import json

    from ganscapes.gan.checkpoint import save_model

    from helpers_models import tiny_model

    run = tmp_path / "runs" / "00000-pictures-tiny-ada"
    run.mkdir(parents=True)
    for tag, seed in (("000004", 0), ("000008", 1)):  # the best is the older one
        save_model(run / f"network-snapshot-{tag}.safetensors", tiny_model(res=16, seed=seed))
        (run / f"training-state-{tag}.pt").write_bytes(b"")
    best = {"kimg": 4.0, "score": 3.5, "metric": "SWDx1e3_avg", "snapshot": "network-snapshot-000004.safetensors"}
    (run / "best.json").write_text(json.dumps(best))
    said = (
        f"model: {run / 'network-snapshot-000004.safetensors'} (the run's best snapshot, SWDx1e3_avg 3.5000 at 4 kimg)"
    )

    out = tmp_path / "pictures"
    assert run_main(monkeypatch, "generate", "--model", str(run), "--seeds", "3", "--out", str(out)) in (0, None)
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == said  # then the progress bar
    assert captured.out.startswith(f"1 image(s) in {out} (seed0003.png)")
    assert run_main(monkeypatch, "reproduce", str(out / "seed0003.png"), "--model", str(run)) in (0, None)
    captured = capsys.readouterr()
    assert captured.err == said + "\n" and captured.out == f"{out / 'seed0003.png'}: identical\n"

    (run / "best.json").unlink()  # no metrics: the latest snapshot, which did not make the picture
    assert run_main(monkeypatch, "reproduce", str(out / "seed0003.png"), "--model", str(run)) == 1
    err = capsys.readouterr().err
    latest = run / "network-snapshot-000008.safetensors"
    assert err.startswith(f"model: {latest} (the run's latest snapshot, 8 kimg; it has no best.json)\n")
    assert "--force is needed" in err
