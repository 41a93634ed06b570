"""`ganscapes directions`: semantic sliders found without labels (PCA or SeFa), and their names.

The `--directions FILE.npz --edit NAME=AMOUNT` options that generate, mix and video share
are defined here too.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ganscapes.cli.app import app
from ganscapes.cli.shared import DEVICE, MODEL_HELP, Device, model_file
from ganscapes.errors import UserError

DIRECTIONS = typer.Option(
    None,
    "--directions",
    help="A directions file made by ganscapes directions (for --edit).",
    show_default="none",
)
EDIT = typer.Option(
    [],
    "--edit",
    help="Move along a direction: NAME=AMOUNT or INDEX=AMOUNT, in σ (e.g. sky=1.5, 0=-2); repeat for several.",
    show_default="none",
)


def check_edit_options(edits: list[str], directions: Path | None) -> None:
    """The edits' syntax and the file's presence, before a model is loaded: a typo costs no time."""
    from ganscapes.make.directions import parse_edit

    for text in edits:
        parse_edit(text)
    if edits and directions is None:
        raise UserError("--edit needs --directions FILE.npz, the directions file made by ganscapes directions.")
    if directions is not None and not edits:
        raise UserError("--directions was given without --edit NAME=AMOUNT; say which direction to move.")
    if directions is not None and not directions.is_file():
        raise UserError(f"The directions file {directions} does not exist.")


def load_edits(edits: list[str], directions: Path | None, model):
    from ganscapes.make.directions import edits_from

    return edits_from(edits, directions, model)


class Method(str, Enum):
    PCA = "pca"
    SEFA = "sefa"


def _names(pairs: list[str]) -> list[tuple[int, str]]:
    found = []
    for pair in pairs:
        index, sep, name = pair.partition("=")
        if not sep or not index.strip().isdigit() or len(index.strip()) > 6:
            raise UserError(f"--name takes INDEX=NAME, such as 0=sky, not {pair[:50]!r}.")
        found.append((int(index), name))
    return found


@app.command()
def directions(
    action: list[str] | None = typer.Argument(
        None,
        metavar="[name FILE.npz INDEX NAME]",
        help="name FILE.npz INDEX NAME: name a direction of an existing file (then --edit NAME=AMOUNT).",
        show_default=False,
    ),
    model: Path | None = typer.Option(None, "--model", help=MODEL_HELP, show_default="none"),
    method: Method = typer.Option(Method.PCA, "--method", help="pca: GANSpace, from sampled ws; sefa: closed form."),
    layers: str = typer.Option(
        "all", "--layers", help="The w rows the directions move: all, coarse, middle, fine, 0-3, 8-, 0,2,4."
    ),
    count: int = typer.Option(10, "--count", help="How many directions to keep (K)."),
    out: Path | None = typer.Option(None, "--out", help="The directions file to write (.npz).", show_default="none"),
    samples: int = typer.Option(10_000, "--samples", help="Random z mapped to w for PCA and for σ."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled z."),
    name: list[str] = typer.Option([], "--name", help="Name a direction: INDEX=NAME, e.g. 0=sky (repeat)."),
    preview: bool = typer.Option(False, "--preview", help="Also draw FILE.png: directions x (-3σ … +3σ)."),
    preview_seeds: str = typer.Option("0", "--preview-seeds", help="Seeds of the preview's pictures, e.g. 0,1."),
    psi: float = typer.Option(0.7, "--psi", help="Truncation psi of the preview's pictures."),
    device: Device = DEVICE,
) -> None:
    """Semantic directions in W (GANSpace PCA or SeFa), no labels and no extra weights; a preview; their names."""
    if action:
        if len(action) != 4 or action[0] != "name":
            raise UserError("Besides its options, directions takes only: name FILE.npz INDEX NAME.")
        if not action[2].isdigit() or len(action[2]) > 6:
            raise UserError(f"The index of the direction to name must be a number from 0, not {action[2][:20]!r}.")
        _rename(Path(action[1]), [(int(action[2]), action[3])])
        return
    if model is None and out is not None and name:  # --out FILE.npz --name 0=sky: rename only
        _rename(out, _names(name))
        return
    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.directions import find_directions
    from ganscapes.make.mix import layer_range
    from ganscapes.make.seeds import parse_seeds

    if model is None or out is None:
        raise UserError("Give --model and --out FILE.npz (or use: ganscapes directions name FILE.npz INDEX NAME).")
    if out.suffix.lower() != ".npz":
        raise UserError(f"--out must be an .npz file, not {out.name}.")
    names = _names(name)
    seeds = parse_seeds(preview_seeds) if preview else []
    if len(seeds) > 8:
        raise UserError(f"--preview-seeds takes at most 8 seeds, not {len(seeds)}.")
    dev = resolve_device(device.value)
    loaded = load_model(model_file(model), device=dev, generator_only=True)
    chosen = layer_range(layers, loaded.G_ema.num_ws)
    found = find_directions(loaded, method.value, chosen, count, samples=samples, seed=seed, device=dev)
    _keep_names(found, out)
    for k, text in names:
        found.rename(k, text)
    out.parent.mkdir(parents=True, exist_ok=True)
    found.save(out)
    sigma = ", ".join(f"{s:.3g}" for s in found.sigma[:5]) + (" …" if len(found) > 5 else "")
    typer.echo(f"{len(found)} {method.value.upper()} directions on w rows {layers} in {out}; σ {sigma}.")
    if preview:
        _preview(loaded, found, seeds, psi, dev, out.with_suffix(".png"))


def _keep_names(found, out: Path) -> None:
    """Names given to the same directions before (same model, method, rows, samples and seed) stay."""
    from ganscapes.make.directions import Directions

    if not out.is_file():
        return
    try:
        old = Directions.load(out)
    except UserError:
        return  # not a directions file (or a damaged one): it is simply replaced
    same = (old.model_hash, old.method, old.layers, old.samples, old.seed) == (
        found.model_hash,
        found.method,
        found.layers,
        found.samples,
        found.seed,
    )
    if same:
        for k in range(min(len(old), len(found))):
            if old.names[k]:
                found.names[k] = old.names[k]


def _preview(loaded, found, seeds: list[int], psi: float, dev, path: Path) -> None:
    import numpy as np

    from ganscapes.make.directions import preview_sheet
    from ganscapes.provenance import write_png

    sheet, recipe = preview_sheet(loaded, found, seeds, psi=psi, device=dev)
    write_png(path, np.asarray(sheet), recipe.to_json())
    typer.echo(f"preview: {path} ({len(found) * len(seeds)} rows x 7 columns, -3σ … +3σ)")


def _rename(file: Path, names: list[tuple[int, str]]) -> None:
    """Name directions in an existing file, keeping the others' names."""
    from ganscapes.make.directions import Directions

    found = Directions.load(file)
    for index, name in names:
        found.rename(index, name)
    found.save(file)
    shown = ", ".join(f"{index} is {found.names[index]!r}" for index, _ in names)
    typer.echo(f"{file}: direction {shown}.")
