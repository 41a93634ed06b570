"""The demo's options, as `ganscapes demo` takes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ganscapes.clip.prompts import DEFAULT_PROMPT as PROMPT
from ganscapes.errors import SettingError

STARTER = "starter"  # the bundled model the demo fine-tunes (ganscapes.models)
STARTER_RES = 64


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo-output")
    minutes: float = 10.0  # training budget in total, across reruns
    res: int = 64
    images: int = 300  # procedural paintings to sample
    device: str = "auto"
    prompt: str = PROMPT
    generate: int = 64
    top: int = 6
    refuse_fraction: float = 0.06  # the article's 314 of 5,314
    metric_images: int = 256  # images per set for the SWD at the end of training
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_weights: Path | None = None
    seed: int = 0
    from_scratch: bool = False  # True: random initial weights, not the bundled starter model

    def validate(self) -> None:
        """Refuse bad options in one sentence each, before anything is written."""
        if self.minutes <= 0:
            raise SettingError("minutes", f"must be positive, not {self.minutes:g}.")
        if not (16 <= self.res <= 1024 and self.res & (self.res - 1) == 0):
            raise SettingError("res", f"must be a power of two from 16 to 1024, not {self.res}.")
        if not self.from_scratch and self.res != STARTER_RES:
            raise SettingError(
                "res",
                f"must be {STARTER_RES} to fine-tune the starter model ({STARTER_RES}x{STARTER_RES}), not {self.res}; "
                "train from random weights at another size with --from-scratch.",
            )
        if self.images < 10:
            raise SettingError("images", f"must be at least 10, not {self.images}.")
        if self.generate < max(10, self.top):
            raise SettingError(
                "generate",
                f"must be at least 10 and at least the number of top picks ({self.top}), not {self.generate}.",
            )
