"""Turn a training snapshot into a bundled model: `python -m ganscapes.models.export SNAPSHOT OUT`.

A bundled model keeps G_ema, for pictures, and D, so that fine-tuning it (the demo's
transfer learning, `--resume starter`) starts the game where it stopped, as NVIDIA's
transfer learning resumes from a full snapshot; G, the optimizer and the training state
stay behind (G starts as a copy of G_ema, as `--resume` does for any model without one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ganscapes.gan.checkpoint import Model, load_model, save_model

SOURCE = "ganscapes-bundled"


def export_bundled(snapshot: Path, out: Path) -> Model:
    """Write `snapshot`'s G_ema and D, with its metadata, to `out`; returns what was written."""
    model = load_model(snapshot)
    bundled = Model(G_ema=model.G_ema, D=model.D, meta={**model.meta, "source": SOURCE})
    save_model(out, bundled)
    out.chmod(0o644)  # package data: readable by whoever installs it
    return bundled


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path, help="network-snapshot-*.safetensors of a ganscapes run")
    parser.add_argument(
        "out", type=Path, help="the bundled model to write, e.g. src/ganscapes/models/starter-64.safetensors"
    )
    args = parser.parse_args(argv)
    model = export_bundled(args.snapshot, args.out)
    size = f"{model.resolution}x{model.resolution}"
    print(f"{args.out}: {size}, networks {', '.join(model.networks)}, hash {model.model_hash[:12]}")


if __name__ == "__main__":
    main()
