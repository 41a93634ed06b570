"""The `ganscapes` command line: parse options, call the library, report.

Each command is a thin layer over a library function of the same stage, so everything
here can also be done from Python. Heavy imports (torch, open_clip, gradio) happen
inside the commands that need them, keeping `ganscapes --help` and the data commands
quick. The commands live in one module per stage; importing them registers them on
`app`, in pipeline order.
"""

from ganscapes.cli import data, clip, gan, make, apps  # noqa: F401, I001  (registers the commands, in this order)
from ganscapes.cli.app import app, main
from ganscapes.cli.data import parse_aspect  # noqa: F401

__all__ = ["app", "main"]
