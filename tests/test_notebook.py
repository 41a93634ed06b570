"""notebooks/ganscapes.ipynb: runs headless and offline on the tiny preset, shows every picture, resumes.

The notebook is executed by nbclient in a real Jupyter kernel, with a cell inserted
after the parameters cell (as papermill does) that points it at a temporary persistent
folder, small counts and a random-weights CLIP. It is run twice on the same folder, as a
notebook service that restarts would run it: the second time the training cell must
continue the first run, not start a new one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "ganscapes.ipynb"

# The cells that must show a picture (image/png) or, for the walk, a playable video.
PICTURE_CELLS = {
    "prepare_dataset(": "image/png",
    "curate_dataset(": "image/png",
    "train(config": "image/png",
    "generate_images(": "image/png",
    "rank_images(": "image/png",
    "style_mix(": "image/png",
    "latent_walk(": "text/html",
    "post_files(": "image/png",
}


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_committed_notebook_has_no_outputs_and_one_parameters_cell():
    nb = read_notebook()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and code.index(tagged[0]) == 0
    for name in ("WORK", "RESOLUTION", "PRESET", "MINUTES", "PROMPT", "SNAP_MINUTES"):
        assert f"\n{name} = " in "\n" + tagged[0].source
    for marker in PICTURE_CELLS:
        assert sum(marker in c.source for c in code) == 1, marker


def execute(folder: Path, minutes: float):
    nb = read_notebook()
    where = next(k for k, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(
        where + 1,
        nbformat.v4.new_code_cell(
            f"WORK = {str(folder)!r}\nIMAGES = 24\nMINUTES = {minutes}\nSEEDS = 12\nTOP = 4\nMETRIC_IMAGES = 64\n"
            'CLIP_PRETRAINED = "random"\nDEVICE = "cpu"\n'
        ),
    )
    nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder.parent)}}
    ).execute()
    return nb


def outputs_of(nb, marker: str) -> list:
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    return cell.outputs


def text_of(outputs) -> str:
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


@pytest.mark.slow
def test_the_notebook_runs_offline_shows_its_pictures_and_resumes_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("GANSCAPES_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "drive"

    first = execute(folder, minutes=0.3)
    for marker, kind in PICTURE_CELLS.items():
        shown = [o for o in outputs_of(first, marker) if o.output_type == "display_data" and kind in o.data]
        assert shown, f"the cell with {marker} showed no {kind}"
    (walk,) = [o for o in outputs_of(first, "latent_walk(") if "text/html" in o.get("data", {})]
    assert "<video" in walk.data["text/html"] and "base64" in walk.data["text/html"]
    assert "refused" in text_of(outputs_of(first, "curate_dataset("))
    trained = text_of(outputs_of(first, "train(config"))
    assert "Transfer learning from" in trained and "--resume latest" not in trained
    runs = sorted((folder / "runs").iterdir())
    assert len(runs) == 1
    snapshots = sorted(runs[0].glob("network-snapshot-*.safetensors"))
    assert snapshots
    assert len(list((folder / "pictures" / "final").glob("*.png"))) == 4

    # A restart: the same notebook, the same folder. Training continues the same run.
    second = execute(folder, minutes=0.2)
    resumed = text_of(outputs_of(second, "train(config"))
    assert f"Resuming {runs[0].relative_to(folder)}" in resumed or f"Resuming {runs[0]}" in resumed
    assert sorted((folder / "runs").iterdir()) == runs
    assert len(sorted(runs[0].glob("network-snapshot-*.safetensors"))) > len(snapshots)
    # The dataset is not prepared again, nor curated twice.
    assert "preparing" not in text_of(outputs_of(second, "prepare_dataset("))
    assert "refused" not in text_of(outputs_of(second, "curate_dataset("))
    assert os.path.isfile(folder / "dataset.png")
