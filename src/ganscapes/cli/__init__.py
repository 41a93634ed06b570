"""The `ganscapes` command line: parse options, call the library, report.

Each command is a thin layer over a library function of the same stage, so everything
here can also be done from Python. Heavy imports (torch, open_clip, gradio) happen
inside the commands that need them, keeping `ganscapes --help` and the data commands
quick. The commands live in one module per stage; importing them registers them on
`app`, and `--help` lists them in pipeline order (`app.PIPELINE_ORDER`).
"""

from ganscapes.cli import data, clip, gan, make, directions, project, apps  # noqa: F401, I001  (registers the commands)
from ganscapes.cli.app import app, main
from ganscapes.cli.data import parse_aspect  # noqa: F401

__all__ = ["app", "main"]
