"""The whole pipeline at once: demo, and the web studio."""

from __future__ import annotations

from pathlib import Path

import typer

from ganscapes.cli.app import app
from ganscapes.cli.shared import (
    CLIP_MODEL,
    CLIP_PRETRAINED,
    CLIP_WEIGHTS,
    MODEL_HELP,
    model_file,
)
from ganscapes.errors import UserError

# ---------------------------------------------------------------------------------------
# demo


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for everything the demo makes."),
    minutes: float = typer.Option(10.0, "--minutes", help="Training budget in minutes, in total across reruns."),
    res: int = typer.Option(64, "--res", help="Training resolution (a power of two, 16 to 1024)."),
    images: int = typer.Option(300, "--images", help="Procedural paintings to sample."),
    prompt: str = typer.Option("impressionist painting of autumn woods", "--prompt", help="What rank looks for."),
    generate: int = typer.Option(64, "--generate", help="Paintings to generate."),
    device: str = typer.Option("auto", "--device", help="auto, cuda, mps or cpu."),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
    from_scratch: bool = typer.Option(
        False, "--from-scratch", help="Train from random weights instead of fine-tuning the bundled starter model."
    ),
) -> None:
    """Run the whole pipeline on procedural paintings and write report.html (resumable)."""
    from ganscapes.demo.pipeline import DemoConfig, run_demo

    config = DemoConfig(
        out=out,
        minutes=minutes,
        res=res,
        images=images,
        prompt=prompt,
        generate=generate,
        device=device,
        clip_model=clip_model,
        clip_pretrained=clip_pretrained,
        clip_weights=clip_weights,
        from_scratch=from_scratch,
    )
    run_demo(config, log=lambda line: typer.echo(line))


# ---------------------------------------------------------------------------------------
# studio


@app.command()
def studio(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every network; warned)."),
    port: int = typer.Option(7860, "--port", help="Port to listen on."),
    out: Path = typer.Option(Path("studio-output"), "--out", help="Folder for the studio's pictures."),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="SQLite catalog of every picture.", show_default="OUT/catalog.sqlite"
    ),
    device: str = typer.Option("auto", "--device", help="auto, cuda, mps or cpu."),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
) -> None:
    """A local web studio: paint from prompts and seeds, mix, guide, finish, browse the catalog."""
    import importlib.util
    import socket

    if importlib.util.find_spec("gradio") is None:
        raise UserError("The studio needs Gradio, an optional extra: pip install 'ganscapes[studio]'.")
    model = model_file(model)
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be from 1 to 65535, not {port}.")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UserError(
                f"Cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or --host."
            ) from None
    from ganscapes.studio.app import launch
    from ganscapes.studio.core import Studio, StudioConfig

    config = StudioConfig(
        model=model,
        out=out,
        catalog=catalog,
        device=device,
        clip_model=clip_model,
        clip_pretrained=clip_pretrained,
        clip_weights=clip_weights,
    )
    launch(
        Studio(config),
        host=host,
        port=port,
        log=lambda line: typer.echo(line, err=line.startswith("ganscapes: warning")),
    )
