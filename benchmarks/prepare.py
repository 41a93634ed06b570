"""How fast `prepare` turns large JPEG paintings into 1024² training images.

Generates N painting-sized JPEG sources (3000×2400 by default, with texture so they
compress like real scans), then measures, in images per second:

- decode only: a full-size JPEG decode (Pillow), one process — what a naive prepare
  could at best reach per core;
- prepare with 1 worker, and with every core (center-rect, --res 1024).

prepare may beat the decode-only figure because it asks libjpeg for a reduced DCT
scale when the output is far smaller than the source. Run by hand, not in CI:

    .venv/bin/python benchmarks/prepare.py [--count 24] [--width 3000] [--height 2400] [--res 1024]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ganscapes.data.prepare import PrepareConfig, prepare_dataset


def make_sources(folder: Path, count: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    # Smooth colour fields plus fine noise: a file size in the range of real scans.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(count):
        phase = rng.uniform(0, 6.3, 3)
        base = np.stack([127 + 100 * np.sin(xx / (200 + 50 * k) + yy / 300 + phase[k]) for k in range(3)], -1)
        noise = rng.normal(0, 12, (height, width, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"painting_{i:03d}.jpg", quality=90)


def decode_rate(folder: Path) -> float:
    files = sorted(folder.glob("*.jpg"))
    start = time.perf_counter()
    for f in files:
        with Image.open(f) as img:
            img.load()
    return len(files) / (time.perf_counter() - start)


def prepare_rate(src: Path, out: Path, res: int, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = prepare_dataset(src, out, PrepareConfig(res=res, workers=workers), log=lambda _: None, progress=False)
    return result.images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--width", type=int, default=3000)
    parser.add_argument("--height", type=int, default=2400)
    parser.add_argument("--res", type=int, default=1024)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "raw", Path(tmp) / "dataset"
        src.mkdir()
        load_before = os.getloadavg()[0]  # before making the sources, which loads a core
        make_sources(src, args.count, args.width, args.height)
        mb = sum(f.stat().st_size for f in src.iterdir()) / len(list(src.iterdir())) / 1e6
        print(
            f"machine: {platform.processor() or platform.machine()}, {cores} cores, "
            f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}, "
            f"load average {load_before:.2f} at the start"
        )
        print(
            f"sources: {args.count} JPEGs {args.width}x{args.height}, {mb:.1f} MB each; "
            f"output {args.res}x{args.res} PNG"
        )
        print(f"decode only (1 process):   {decode_rate(src):6.2f} images/s")
        print(f"prepare, 1 worker:         {prepare_rate(src, out, args.res, 1):6.2f} images/s")
        print(f"prepare, {cores} workers:        {prepare_rate(src, out, args.res, cores):6.2f} images/s")


if __name__ == "__main__":
    main()
