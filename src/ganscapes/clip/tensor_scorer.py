"""CLIP scores of image tensors, differentiable, for searching latent space.

`rank` scores files through the model's own PIL preprocessing. Guided search needs the
score of a generator's output as a function of its latent, so here the same steps —
square picture to the model's input size, normalisation — are tensor operations
(bicubic resampling with antialiasing, as PIL's resize does), and gradients flow back
to the generator.

With `cutouts` > 0 each picture is seen through that many random crops (60–100 % of
its side, random position, random horizontal flip), each resized to the model's input
size, and its score is their mean. Optimising against one fixed view lets the search
find pixel patterns that fool CLIP; against random views it has to change the picture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganscapes.clip.prompts import Prompt, prompt_embeddings

MIN_CROP = 0.6


class TensorEmbedder:
    """CLIP image embeddings of generator output, differentiable (`project`'s CLIP term)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.device = encoder.device
        mean, std = encoder.mean_std
        self.mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self.size = encoder.image_size
        self.model = encoder.model

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Generator output in [-1, 1], any channel count → RGB in [0, 1].

        Alpha (LA, RGBA) is composited on black, as `load_rgb` does for `rank`."""
        x = ((images.float().to(self.device) + 1) / 2).clamp(0, 1)
        if x.shape[1] in (2, 4):
            x = x[:, :-1] * x[:, -1:]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)

    def _embed(self, views: torch.Tensor) -> torch.Tensor:
        features = self.model.encode_image((views - self.mean) / self.std)
        return F.normalize(features.float(), dim=-1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Unit embeddings [N, D] of whole pictures [N, C, H, W] in [-1, 1]."""
        return self._embed(self._resize(self._prepare(images)))


class TensorScorer(TensorEmbedder):
    def __init__(self, encoder, prompt: Prompt):
        super().__init__(encoder)
        pos, neg = prompt_embeddings(encoder, prompt)
        self.pos = torch.from_numpy(pos).to(self.device)
        self.neg = torch.from_numpy(neg).to(self.device)

    def _scores(self, features: torch.Tensor) -> torch.Tensor:
        s = (features @ self.pos.T).mean(dim=1)
        if len(self.neg):
            s = s - (features @ self.neg.T).mean(dim=1)
        return s

    def score(self, images: torch.Tensor, cutouts: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Scores [N] of images [N, C, H, W] in [-1, 1]; differentiable unless under no_grad."""
        x = self._prepare(images)
        if cutouts <= 0:
            return self._scores(self._embed(self._resize(x)))
        n, _, h, w = x.shape
        views = []
        for _ in range(cutouts):
            for i in range(n):
                side = int(min(h, w) * (MIN_CROP + (1 - MIN_CROP) * torch.rand((), generator=generator).item()))
                top = int(torch.randint(0, h - side + 1, (), generator=generator))
                left = int(torch.randint(0, w - side + 1, (), generator=generator))
                crop = x[i : i + 1, :, top : top + side, left : left + side]
                if torch.rand((), generator=generator).item() < 0.5:
                    crop = crop.flip(-1)
                views.append(self._resize(crop))
        scores = self._scores(self._embed(torch.cat(views)))
        return scores.view(cutouts, n).mean(dim=0)
