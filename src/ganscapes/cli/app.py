"""The `ganscapes` application object and its entry point.

`main` is what the console script runs: a `UserError` from any command becomes one
line on stderr and exit status 1, and Ctrl-C says how to resume.
"""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import WriteError, refused_write

# `ganscapes --help` lists the commands in the order a user meets them, not alphabetically.
PIPELINE_ORDER = (
    "sample",
    "gather",
    "prepare",
    "dataset",
    "curate",
    "train",
    "metrics",
    "import-official",
    "generate",
    "rank",
    "mix",
    "directions",
    "guide",
    "project",
    "video",
    "post",
    "info",
    "reproduce",
    "studio",
    "demo",
    "env",
)


class PipelineGroup(TyperGroup):
    """The top-level group: commands in `PIPELINE_ORDER`, any not listed there after them."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)  # registration order
        rank = {name: k for k, name in enumerate(PIPELINE_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    cls=PipelineGroup,
    help="New impressionist landscape paintings with StyleGAN2-ADA and CLIP (after GANscapes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
gather_app = typer.Typer(help="Gather raw paintings: crawl WikiArt or import what you have.", no_args_is_help=True)
dataset_app = typer.Typer(help="Inspect prepared datasets.", no_args_is_help=True)
app.add_typer(gather_app, name="gather")
app.add_typer(dataset_app, name="dataset")


def main() -> None:
    """Console-script entry point: user errors become one line and a non-zero exit."""
    try:
        app()
    except SettingError as e:
        typer.echo(f"ganscapes: error: {e.worded(option_name(e.setting))}", err=True)
        sys.exit(1)
    except UserError as e:
        typer.echo(f"ganscapes: error: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        if not refused_write(e):  # anything else is a bug and keeps its traceback
            raise
        typer.echo(f"ganscapes: error: {WriteError(e.filename or 'a file', e)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo(_INTERRUPTED, err=True)
        sys.exit(130)
    except SystemExit as e:
        if e.code == 130:  # Typer turns Ctrl-C inside a command into a silent exit 130
            typer.echo(_INTERRUPTED, err=True)
        raise


# Library settings whose option has another name; the rest are `--` + the name with dashes.
OPTION_NAMES = {
    "cfg": "--cfg",
    "class_idx": "--class",
    "count": "--refuse",  # curate's RefuseRule(count=…)
    "fraction": "--refuse-fraction",  # curate's RefuseRule(fraction=…)
    "num_images": "--num",  # metrics
    "preset": "--cfg",
    "trunc_cutoff": "--trunc-cutoff",
    "truncation_cutoff": "--trunc-cutoff",
}


def option_name(setting: str) -> str:
    """The command-line option of a library setting: `kimg_per_tick` → `--kimg-per-tick`."""
    return OPTION_NAMES.get(setting, "--" + setting.replace("_", "-"))


_INTERRUPTED = "\nganscapes: interrupted; finished work is kept, run the same command again to resume."
