"""`ganscapes env`: the facts a bug report needs, gathered without failing.

Every probe is guarded: a missing or broken optional package is reported as such
rather than stopping the report, since a broken install is exactly when it is needed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report() -> list[tuple[str, str]]:
    """(name, value) rows: versions, devices and CPU threads."""
    from ganscapes import __version__

    rows = [
        ("ganscapes", __version__),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", platform.platform()),
        ("CPU cores", str(os.cpu_count())),
    ]
    for dist in ("torch", "torchvision", "open_clip_torch", "numpy", "pillow", "safetensors"):
        rows.append((dist, _version(dist)))
    rows.append(("gradio", _version("gradio")))  # optional: only the studio needs it
    try:
        import torch
    except Exception as e:  # a broken torch install should still produce a report
        rows.append(("torch import", f"failed: {e}"))
        return rows
    rows.append(("torch CPU threads", str(torch.get_num_threads())))
    rows.append(("CUDA build", str(torch.version.cuda or "none")))
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as e:
        count = 0
        rows.append(("CUDA", f"error: {e}"))
    rows.append(("CUDA devices", str(count)))
    for i in range(count):
        props = torch.cuda.get_device_properties(i)
        rows.append(
            (f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB, capability {props.major}.{props.minor}")
        )
    mps = getattr(torch.backends, "mps", None)
    rows.append(("MPS", "available" if mps is not None and mps.is_available() else "not available"))
    return rows
