"""A small Fashion-MNIST classifier whose penultimate features stand in for Inception features when we
measure generator quality (Fréchet distance) and generic feature-space statistics (Yu 2019 FD ratio)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genattr.errors import DataError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class FashionClassifier(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool → fc ``feature_dim`` (features) → 10 logits; input (N,1,32,32)."""

    def __init__(self, *, channels: int = 1, feature_dim: int = 128, n_classes: int = 10) -> None:
        super().__init__()
        self.config = {"channels": channels, "feature_dim": feature_dim, "n_classes": n_classes}
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(True), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(True),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(True), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(True),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 8 * 8, feature_dim), nn.ReLU(True))
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Penultimate features of a batch in eval mode, chunked to bound memory."""
        was = self.training
        self.eval()
        try:
            return torch.cat([self.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:
            self.train(was)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        self.eval()
        return torch.cat([self(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])

    def save_pretrained(self, directory: str | Path, *, extra: dict | None = None) -> Path:
        from safetensors.torch import save_file

        from genattr import __version__

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(d / WEIGHTS_FILE))
        meta = {"class": type(self).__name__, "config": self.config, "genattr_version": __version__}
        if extra:
            meta["extra"] = extra
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FashionClassifier:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        d = Path(directory)
        try:
            meta = json.loads((d / CONFIG_FILE).read_text())
            model = cls(**meta["config"])
            model.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
        except (OSError, json.JSONDecodeError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
            raise DataError(f"{d}: not a valid saved FashionClassifier ({exc})") from exc
        return model.eval()


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, *, epochs: int = 3, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True) -> tuple[FashionClassifier, float]:
    """Adam + cross-entropy with random horizontal flips; returns (model, seconds)."""
    with torch.random.fork_rng(devices=[]):  # seeded init (and dropout below) without touching the caller's RNG
        torch.manual_seed(seed)
        model = FashionClassifier(channels=train_x.shape[1])
        return _train_classifier(model, train_x, train_y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                 progress=progress)


def _train_classifier(model: FashionClassifier, train_x: torch.Tensor, train_y: torch.Tensor, *, epochs: int,
                      batch_size: int, lr: float, seed: int, progress: bool) -> tuple[FashionClassifier, float]:
    from rich.progress import track

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * (len(train_x) // batch_size))
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(train_x), generator=gen)
        batches = range(len(train_x) // batch_size)
        for b in track(batches, description=f"classifier epoch {epoch + 1}/{epochs}", disable=not progress):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x, y = train_x[idx], train_y[idx]
            flip = torch.rand(len(x), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval(), time.perf_counter() - t0
