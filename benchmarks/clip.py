"""How fast CLIP scores a folder of paintings, against what the encoder alone allows.

Three figures, each on the same N images (N 1024² PNGs made here, smooth colour fields
with some noise so that they compress like paintings, or the images of --folder):

- end to end: `embed_images` with a fresh embedding cache, exactly what curate and rank
  do the first time — hashing, decoding in --workers processes, the model's own
  preprocessing, encoding, writing the cache — in images per second;
- the bound: the encoder's forward pass alone, on random preprocessed tensors of the same
  batch size, in images per second; the ratio of the two says how much of the time goes
  to anything but the model;
- re-ranking: the whole set again with a new prompt once the cache is warm (hashing the
  files to find their embeddings, encoding the phrase, scoring, sorting), in seconds.

The default model is ViT-B-32 with random weights (`--clip-pretrained random`): speed
does not depend on the values, and no download is needed. Run by hand, not in CI:

    .venv/bin/python benchmarks/clip.py [--n 1000] [--res 1024] [--folder DIR] [--batch 32]
                                        [--workers N] [--device auto] [--clip-model ViT-B-32]
                                        [--clip-pretrained random] [--clip-weights FILE]

On two CPU cores ViT-B-32 encodes about 14 images/s, so --n 1000 takes minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image


def make_painting(args: tuple[Path, int, int]) -> int:
    """One procedural 'painting' PNG: low-frequency colour fields, brush-stroke noise."""
    path, res, seed = args
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize((res, res), Image.Resampling.BICUBIC), np.float32)
    strokes = rng.normal(0, 10, (res // 4, res // 4, 3)).repeat(4, axis=0).repeat(4, axis=1)
    pixels = np.clip(base + strokes + rng.normal(0, 3, (res, res, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path.stat().st_size


def make_images(folder: Path, n: int, res: int) -> float:
    """Write n PNGs with every core; returns the mean file size in MB."""
    jobs = [(folder / f"painting_{i:05d}.png", res, i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sizes = list(pool.map(make_painting, jobs, chunksize=4))
    return sum(sizes) / len(sizes) / 1e6


def forward_rate(encoder, batch: int, batches: int) -> float:
    """Images/s of encoder.encode_images alone on random preprocessed tensors (one warm-up batch)."""
    import torch

    size = encoder.image_size
    pixels = torch.randn([batch, 3, size, size], generator=torch.Generator().manual_seed(0))
    encoder.encode_images(pixels)  # warm-up; encode_images returns host memory, so it syncs
    start = time.perf_counter()
    for _ in range(batches):
        encoder.encode_images(pixels)
    return batches * batch / (time.perf_counter() - start)


def device_description(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    if device.type == "mps":
        return f"Apple MPS, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def main() -> None:
    from ganscapes.clip.embed import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images to score (at most this many from --folder)")
    parser.add_argument("--res", type=int, default=1024, help="side of the generated PNGs")
    parser.add_argument("--folder", type=Path, help="score these images instead of generated ones")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="decoding processes (default: %(default)s)"
    )
    parser.add_argument(
        "--bound-batches", type=int, default=0, help="timed batches for the bound (default: as many as N fills, 2–20)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--clip-pretrained", default="random", help="an open_clip tag, or random (the default)")
    parser.add_argument(
        "--clip-weights", type=Path, help="a local weights file (then --clip-pretrained says how it was trained)"
    )
    parser.add_argument("--prompt", default="a quiet river at dawn, oil on canvas", help="the re-ranking phrase")
    args = parser.parse_args()

    from ganscapes.clip.cache import EmbeddingCache
    from ganscapes.clip.embed import embed_images, folder_refs
    from ganscapes.clip.encoder import ClipSpec, load_clip
    from ganscapes.clip.prompts import Prompt, prompt_embeddings, scores
    from ganscapes.device import resolve_device

    device = resolve_device(args.device)
    start = time.perf_counter()
    encoder = load_clip(ClipSpec(args.clip_model, args.clip_pretrained, args.clip_weights), device)
    load_s = time.perf_counter() - start

    load_before = os.getloadavg()[0]  # before making images, which loads every core
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            refs = folder_refs(args.folder)[: args.n]
            mb = sum(r.path.stat().st_size for r in refs) / max(1, len(refs)) / 1e6
            source = f"{len(refs)} images from {args.folder}, {mb:.2f} MB each"
        else:
            images = Path(tmp) / "images"
            images.mkdir()
            start = time.perf_counter()
            mb = make_images(images, args.n, args.res)
            refs = folder_refs(images)
            made = time.perf_counter() - start
            source = f"{len(refs)} generated {args.res}² PNGs, {mb:.2f} MB each (made in {made:.0f} s)"
        if not refs:
            parser.error("no images to score")

        print(f"device: {device_description(device)}")
        print(
            f"model: {encoder.model_id} (loaded in {load_s:.1f} s); batch {args.batch}, {args.workers} decoding workers"
        )
        print(f"images: {source}")
        print(
            f"{time.strftime('%Y-%m-%d %H:%M')}, load average before the run: {load_before:.2f} "
            "(other work on the machine skews every figure)"
        )
        print()

        # (a) end to end, fresh cache
        with EmbeddingCache(Path(tmp) / "cache", encoder.model_id) as cache:
            start = time.perf_counter()
            first = embed_images(refs, encoder, cache, batch=args.batch, workers=args.workers, progress=False)
            e2e_s = time.perf_counter() - start
        e2e_rate = len(refs) / e2e_s

        # (b) the bound: forward passes only
        batches = args.bound_batches or min(20, max(2, len(refs) // args.batch))
        bound_rate = forward_rate(encoder, args.batch, batches)

        # (c) re-rank with a new prompt on the warm cache
        with EmbeddingCache(Path(tmp) / "cache", encoder.model_id) as cache:
            calls = encoder.image_calls
            start = time.perf_counter()
            again = embed_images(refs, encoder, cache, batch=args.batch, workers=args.workers, progress=False)
            lookup_s = time.perf_counter() - start
            pos, neg = prompt_embeddings(encoder, Prompt((args.prompt,)))
            order = np.argsort(-scores(again.embeddings, pos, neg), kind="stable")
            rerank_s = time.perf_counter() - start
        assert again.encoded == 0 and encoder.image_calls == calls, "the warm cache did not hit"
        assert len(order) == len(first.refs)

    print("| measure | result | note |")
    print("|---|---|---|")
    print(
        f"| end to end: embed_images, fresh cache | {e2e_rate:.1f} images/s | "
        f"{len(refs)} images in {e2e_s:.1f} s; hash, decode, preprocess, encode, cache write |"
    )
    print(
        f"| encoder forward only (the bound) | {bound_rate:.1f} images/s | "
        f"{batches} batches of {args.batch} random {encoder.image_size}² tensors |"
    )
    print(f"| end to end / bound | {e2e_rate / bound_rate:.0%} | |")
    print(
        f"| re-rank {len(order)} cached images, new prompt | {rerank_s:.2f} s | "
        f"of which {lookup_s:.2f} s hashing files + cache lookup, "
        f"{rerank_s - lookup_s:.2f} s phrase (the process's first text encoding) + scores + sort |"
    )
    if first.unreadable:
        print(f"\n{len(first.unreadable)} unreadable images were skipped.")


if __name__ == "__main__":
    main()
