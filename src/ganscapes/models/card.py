"""The starter model's card: what it was trained on, how long, how good, measured not claimed.

`python -m ganscapes.models.card SNAPSHOT` (the snapshot the bundled model was exported
from) measures the bundled starter model and writes `starter.json` beside it (the numbers
the card `STARTER.md` quotes, and that a test re-measures) and `docs/starter-seeds.png`
(32 seeds, for the README).

Quality is the sliced Wasserstein distance (ProGAN's SWD, `gan/metrics/swd.py`) between
the model's pictures and a *fresh* set of procedural paintings — drawn with a seed the
training set did not use, so the number says how well the model learned the
distribution, not its training images. Two protocols:

- `full`: 16,384 pictures a side (ProGAN's protocol), paintings drawn at 192–512 px as
  the training set was; the card's headline figure.
- `quick`: 1,024 a side, paintings drawn at 64–128 px: cheap enough for a test, which
  re-measures it with another seed and compares with the spread recorded here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import UserError
from ganscapes.fileio import read_jsonl, write_json_atomic
from ganscapes.gan.checkpoint import load_model
from ganscapes.gan.metrics import compute_metrics
from ganscapes.gan.train_state import load_state
from ganscapes.models import bundled_model, model_card

RECORD = "starter.json"
SHEET = Path("docs") / "starter-seeds.png"
QUICK_SEEDS = (101, 102, 103, 104, 105)  # fresh sets for the recorded spread; the test uses another
FULL_SEED = 100


@dataclass(frozen=True)
class SwdProtocol:
    name: str
    images: int  # a side: generated pictures, and fresh procedural paintings
    min_side: int  # the paintings' drawn size before prepare crops and resizes them
    max_side: int


FULL = SwdProtocol("full", 16384, 192, 512)
QUICK = SwdProtocol("quick", 1024, 64, 128)


def fresh_dataset(protocol: SwdProtocol, seed: int, res: int, folder: Path) -> Path:
    """The fresh paintings of `protocol` drawn with `seed`, prepared at `res`, built in `folder` or reused from it.

    Drawing and preparing 16,384 paintings is most of the full protocol's hour; the set does not
    depend on the model, so a kept folder lets it be built once (even while the model trains).
    """
    raw, data = folder / "raw", folder / f"fresh-{res}.zip"
    if not data.is_file():
        make_samples(raw, n=protocol.images, seed=seed, min_side=protocol.min_side, max_side=protocol.max_side,
                     progress=False)  # fmt: skip
        partial = data.with_suffix(".partial.zip")
        prepare_dataset(raw, partial, PrepareConfig(res=res, workers=1), log=lambda _: None, progress=False)
        partial.replace(data)
    return data


def kept_folder(keep: Path, protocol: SwdProtocol, seed: int) -> Path:
    return keep / f"{protocol.name}-seed{seed}"


def fresh_swd(
    model_path: Path, protocol: SwdProtocol, seed: int, device: str = "cpu", keep: Path | None = None
) -> float:
    """SWD ×10³ (average over the pyramid) of the model against `protocol.images` fresh paintings drawn with `seed`.

    `keep`: a folder where the fresh set is kept between measurements (one subfolder per protocol and seed).
    """
    model = load_model(model_path)
    with contextlib.ExitStack() as stack:
        folder = (
            kept_folder(keep, protocol, seed)
            if keep is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        data = fresh_dataset(protocol, seed, model.resolution, folder)
        result = compute_metrics(model, data, metrics=("swd",), num_images=protocol.images, device=device, seed=0)
    return float(result["SWDx1e3_avg"])


def training_facts(snapshot: Path) -> dict:
    """kimg and training time at `snapshot`, from its training state and the run's log up to it.

    The bundled model must be this snapshot's G_ema: a card about another model is refused.
    """
    run_dir = snapshot.parent
    state_path = snapshot.with_name(snapshot.name.replace("network-snapshot-", "training-state-")).with_suffix(".pt")
    state = load_state(state_path)
    if load_model(snapshot).model_hash != load_model(bundled_model("starter")).model_hash:
        raise UserError(f"The bundled starter model was not exported from {snapshot}; export it first.")
    kimg = state["cur_nimg"] / 1000
    rows = [r for r in read_jsonl(run_dir / "log.jsonl") if r["kimg"] <= kimg + 1e-9]
    config = json.loads((run_dir / "config.json").read_text())
    return {
        "kimg": round(kimg, 3),
        "wall_hours": round(sum(r.get("sec_per_tick", 0.0) for r in rows) / 3600, 2),  # ticks, snapshots aside
        "train_hours": round(state["train_seconds"] / 3600, 2),  # the training steps alone
        "batch": config.get("batch"),
        "preset": config.get("preset"),
        "run": run_dir.name,
        "snapshot": snapshot.name,
    }


def measure(snapshot: Path, full: bool = True, device: str = "cpu", keep: Path | None = None) -> dict:
    path = bundled_model("starter")
    facts = training_facts(snapshot)  # refuses before an hour of measuring
    started = time.time()
    quick = [fresh_swd(path, QUICK, s, device, keep) for s in QUICK_SEEDS]
    record = {
        "model_hash": load_model(path).model_hash,
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "date": time.strftime("%Y-%m-%d"),
        **facts,
        "swd_quick": {
            "protocol": asdict(QUICK),
            "seeds": list(QUICK_SEEDS),
            "values": [round(v, 3) for v in quick],
            "mean": round(statistics.mean(quick), 3),
            "sd": round(statistics.stdev(quick), 3),
        },
    }
    if full:
        record["swd_full"] = {
            "protocol": asdict(FULL),
            "seed": FULL_SEED,
            "value": round(fresh_swd(path, FULL, FULL_SEED, device, keep), 3),
        }
    record["measure_seconds"] = round(time.time() - started)
    return record


def save_seed_sheet(out: Path, seeds: range = range(32), psi: float = 0.7) -> Path:
    """32 seeds of the starter model, 8 to a row, each shown at 128 px."""
    from PIL import Image

    from ganscapes.data.grid import image_grid
    from ganscapes.make.generate import generate_images

    with tempfile.TemporaryDirectory() as tmp:
        result = generate_images(bundled_model("starter"), seeds, psi=psi, out=Path(tmp), progress=False)
        pictures = [Image.open(p).convert("RGB") for p in result.images]
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(pictures, columns=8, tile=128, fit="contain", gap=2).save(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure the bundled starter model and write its record and sheet.")
    parser.add_argument("snapshot", type=Path, help="the training snapshot the bundled model was exported from")
    parser.add_argument("--facts-only", action="store_true", help="update the training facts of starter.json only")
    parser.add_argument("--no-full", action="store_true", help="skip the 16,384-image SWD (an hour on a laptop)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=Path, help="a folder that keeps the fresh paintings between measurements")
    parser.add_argument(
        "--fresh-only", action="store_true", help="only build the fresh sets (quick and full) in --keep"
    )
    args = parser.parse_args(argv)
    out = model_card("starter").with_name(RECORD)
    if args.fresh_only:
        if args.keep is None:
            parser.error("--fresh-only needs --keep FOLDER")
        res = load_model(args.snapshot).resolution
        for protocol, seed in [(QUICK, s) for s in QUICK_SEEDS] + [(FULL, FULL_SEED)]:
            print(fresh_dataset(protocol, seed, res, kept_folder(args.keep, protocol, seed)), flush=True)
        return
    if args.facts_only:
        record = {**json.loads(out.read_text()), **training_facts(args.snapshot)}
        write_json_atomic(out, record)
        print(json.dumps(record, indent=1))
        return
    record = measure(args.snapshot, full=not args.no_full, device=args.device, keep=args.keep)
    write_json_atomic(out, record)
    save_seed_sheet(SHEET)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
