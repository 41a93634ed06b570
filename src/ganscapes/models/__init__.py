"""Models that ship inside the package, by name: `--model starter`, `--resume starter`.

The starter model lets a new user see landscapes on day one, on a CPU, before training
anything: `make demo` fine-tunes it, and every command that takes a model accepts its
name. Its model card (`STARTER.md`, beside the weights) says how it was made.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ganscapes.errors import UserError

BUNDLED = {"starter": "starter-64.safetensors"}
CARDS = {"starter": "STARTER.md"}


def bundled_model(name: str) -> Path:
    """The file of the bundled model `name`; one sentence when this installation lacks it."""
    if name not in BUNDLED:
        raise UserError(f"There is no bundled model called {name!r}; the bundled models are {', '.join(BUNDLED)}.")
    path = Path(str(resources.files(__package__).joinpath(BUNDLED[name])))
    if not path.is_file():
        raise UserError(
            f"This installation of ganscapes lacks the bundled {name} model ({path.name}); "
            "reinstall ganscapes, or pass a model file of your own."
        )
    return path


def model_card(name: str) -> Path:
    return Path(str(resources.files(__package__).joinpath(CARDS[name])))
