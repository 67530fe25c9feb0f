"""How each zoo entry is trained. ``genattr zoo rebuild`` replays these exactly.

Zoo v2: every entry has its own seed (no two generators start from the same weights, across architectures
too: seed 0 once gave DCGAN and EBGAN final layers at cosine 0.87), and each run trains until its per-epoch
Fréchet distance flattens (``converged``) or reaches ``epochs``, the cap. Width ngf = ndf = 32 (the paper's
64 halved) keeps the zoo within about 6 CPU-hours; architectures, losses and optimiser settings are those of
FLIPAD G.2, exceptions noted.
"""

from __future__ import annotations

from dataclasses import dataclass

from genattr.training import TrainConfig

FD_EVAL_N = 2000  # samples for the cheap per-epoch FD (the manifest's FD uses 10k)
PLATEAU_WINDOW = 3  # epochs
PLATEAU_GAIN = 0.05  # stop when the last WINDOW epochs improved the best FD by less than 5 %


@dataclass(frozen=True)
class Recipe:
    name: str
    arch: str
    seed: int
    epochs: int  # cap; training stops earlier once converged
    n_critic: int | None = None  # None: the paper's (G.2) default for the architecture
    min_epochs: int = 5

    def train_config(self, **overrides) -> TrainConfig:
        kw = {"arch": self.arch, "seed": self.seed, "epochs": self.epochs, "ngf": 32, "ndf": 32,
              "n_critic": self.n_critic, "data": "fashion-mnist"} | overrides
        return TrainConfig(**kw)


def converged(fds: list[float], *, min_epochs: int = 5, window: int = PLATEAU_WINDOW,
              gain: float = PLATEAU_GAIN) -> bool:
    """True once the FD curve has flattened: after ``min_epochs``, the best FD of the last ``window``
    epochs is less than ``gain`` (relative) below the best FD before them."""
    if len(fds) < max(min_epochs, window + 1):
        return False
    before, recent = min(fds[:-window]), min(fds[-window:])
    return recent > (1.0 - gain) * before


RECIPES: tuple[Recipe, ...] = (
    Recipe("fmnist-dcgan-s0", "dcgan", 0, 10),
    Recipe("fmnist-dcgan-s1", "dcgan", 1, 10),
    Recipe("fmnist-dcgan-s2", "dcgan", 2, 10),
    Recipe("fmnist-dcgan-s3", "dcgan", 3, 10),
    Recipe("fmnist-dcgan-s4", "dcgan", 4, 10),
    Recipe("fmnist-wgangp-s5", "wgan_gp", 5, 15),
    # G.2 updates the LSGAN/EBGAN generators every 5th step. Even at the longer budget that is ~94 generator
    # updates per epoch (≈ 750 over the LSGAN cap), which left G far from converged in v1, so these two still
    # update G every step (only WGAN-GP keeps 5 critic steps). Everything else follows G.2.
    Recipe("fmnist-lsgan-s6", "lsgan", 6, 14, n_critic=1),
    Recipe("fmnist-ebgan-s7", "ebgan", 7, 10, n_critic=1),
)


ZOO_VERSION = 2  # what `genattr zoo rebuild` builds now; written to the manifest as "zoo_version"

# The recipes of zoo v1 (2–3 epochs, four models on seed 0), kept while the shipped zoo/ is still v1: the
# manifest's "zoo_version" (absent = 1) says which recipe set built the weights on disk.
RECIPES_V1: tuple[Recipe, ...] = (
    Recipe("fmnist-dcgan-s0", "dcgan", 0, 2),
    Recipe("fmnist-wgangp-s0", "wgan_gp", 0, 10),
    Recipe("fmnist-lsgan-s0", "lsgan", 0, 3, n_critic=1),
    Recipe("fmnist-ebgan-s0", "ebgan", 0, 2, n_critic=1),
    *(Recipe(f"fmnist-dcgan-s{i}", "dcgan", i, 2) for i in range(1, 5)),
)


def recipes_for(manifest: dict) -> tuple[Recipe, ...]:
    """The recipe set that built a zoo manifest's weights."""
    return RECIPES if manifest.get("zoo_version", 1) == ZOO_VERSION else RECIPES_V1


def recipe(name: str) -> Recipe:
    from genattr.errors import UnknownNameError

    for r in RECIPES:
        if r.name == name:
            return r
    raise UnknownNameError(f"no zoo recipe named {name!r}; known: {', '.join(r.name for r in RECIPES)}")
