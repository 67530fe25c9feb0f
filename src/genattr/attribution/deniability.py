"""Strict attribution from the generation log (Zhang et al. 2020, §VII): regenerate G(s) from an opened seed.

The log (:mod:`genattr.ledger`) holds, per released sample, the weights' hash, the output's pixel hash and a
salted commitment to the seed. When an owner is accused of an image, they open the commitment (seed + salt
from their private receipt) and anyone holding the weights regenerates G(s):

* the opened seed, pushed through the named weights, must reproduce the logged output hash exactly —
  otherwise the entry proves nothing about this model;
* if the disputed image *is* that output (same pixel hash), the attribution is strict: this model made it,
  from this seed, and logged it no later than the checkpoint;
* if it is not, the owner can show what their model actually released (and by how many 8-bit levels the
  disputed image differs from it); absence from the log is still only weak evidence (see
  ``genattr.ledger.audit.ABSENCE_CAVEAT``), so :mod:`genattr.attribution.seed_reconstruction` (relaxed
  attribution) is the fallback.

Seed → latent convention for torch generators: the latent of sample i of a batch generated with seed s is
``seeded_latents(s, n, D)[i]`` — one N(0, I) row per sample, drawn from a generator seeded with a hash of
exactly the bytes the commitment covers (``genattr.ledger.entry.seed_material(s, i)``), so one sample can
be regenerated without the rest of its batch. :func:`logged_sampler` wraps a generator so that
``genattr.ledger.LoggedGenerator`` logs with this convention; other conventions plug in with ``latent_fn``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genattr.errors import ConfigError
from genattr.sampling import derive_seed

LATENT_DOMAIN = "genattr/ledger-latent/v1"
LatentFn = Callable[[int | bytes | str, int, int], torch.Tensor]  # (seed, sample, latent_dim) -> (latent_dim,)


def seeded_latent(seed: int | bytes | str, sample: int, latent_dim: int) -> torch.Tensor:
    """The (latent_dim,) N(0, I) latent of sample ``sample`` generated with ``seed`` (module docstring)."""
    from genattr.ledger.entry import seed_material

    g = torch.Generator().manual_seed(derive_seed(LATENT_DOMAIN, seed_material(seed, sample).hex()))
    return torch.randn(latent_dim, generator=g)


def seeded_latents(seed: int | bytes | str, n: int, latent_dim: int) -> torch.Tensor:
    return torch.stack([seeded_latent(seed, i, latent_dim) for i in range(n)]) if n else torch.empty(0, latent_dim)


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """float NCHW [-1, 1] → uint8 N×H×W×C (what is saved to PNG and what the log hashes)."""
    from genattr.data import to_uint8

    return to_uint8(x).permute(0, 2, 3, 1).contiguous().numpy()


def seeded_images(generator: torch.nn.Module, seeds: list[int | bytes | str]) -> torch.Tensor:
    """One image per seed, (n, C, H, W) float in [-1, 1]: image i = G(seeded_latent(seeds[i], 0)), so any one
    image regenerates from its own seed (``regenerate(G, seed)``, ``genattr zoo sample --seed``)."""
    d = int(generator.latent_dim)  # type: ignore[arg-type]
    z = torch.stack([seeded_latent(s, 0, d) for s in seeds]) if seeds else torch.empty(0, d)
    was = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            return torch.cat([generator(z[i:i + 256]) for i in range(0, z.shape[0], 256)]).detach().float()
    finally:
        generator.train(was)


def to_pil_images(x: torch.Tensor) -> list[Any]:
    """float NCHW [-1, 1] → 8-bit PIL images ('L' or 'RGB'): exactly the pixels a PNG of them holds."""
    from PIL import Image

    arr = to_uint8_hwc(x)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]  # uint8: 'L' or 'RGB'


def image_sampler(generator: torch.nn.Module) -> Callable[..., list[Any]]:
    """``generate(seeds=[s0, s1, …])`` → one 8-bit PIL image per seed (see :func:`seeded_images`), for
    ``LoggedGenerator(image_sampler(G), log, owner=…, model_id=…, per_sample_seeds=True)``: one seed per
    image, the images ready to ``.save()`` as PNG (their pixels are what the log hashes)."""

    def generate(*, seeds: list[int | bytes | str]) -> list[Any]:
        return to_pil_images(seeded_images(generator, list(seeds)))

    return generate


def logged_sampler(generator: torch.nn.Module) -> Callable[..., np.ndarray]:
    """``generate(batch_size=n, seed=s)`` → uint8 N×H×W×C, for ``LoggedGenerator(generate, log, ...)``."""

    def generate(*, batch_size: int = 1, seed: int | bytes | str) -> np.ndarray:
        generator.eval()
        with torch.no_grad():
            return to_uint8_hwc(generator(seeded_latents(seed, batch_size, int(generator.latent_dim))))

    return generate


def regenerate(generator: torch.nn.Module, seed: int | bytes | str, sample: int = 0, *,
               latent_fn: LatentFn | None = None) -> torch.Tensor:
    """G(s) for one logged sample, (1, C, H, W) float in [-1, 1], in eval mode."""
    d = getattr(generator, "latent_dim", None)
    if isinstance(d, bool) or not isinstance(d, int):
        raise ConfigError(f"the generator {type(generator).__name__} has no integer latent_dim")
    z = (latent_fn or seeded_latent)(seed, sample, d).reshape(1, d).float()
    was = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            return generator(z).detach().float()
    finally:
        generator.train(was)


def _image_uint8(image: Any) -> np.ndarray | None:
    """A disputed image as uint8 H×W×C: a file path, a uint8 array, or a float (1, C, H, W)/(C, H, W) tensor."""
    if image is None:
        return None
    if isinstance(image, str | Path):
        from PIL import Image

        with Image.open(image) as im:
            arr = np.asarray(im)
        return arr[..., None] if arr.ndim == 2 else arr
    if isinstance(image, torch.Tensor):
        t = image if image.ndim == 4 else image[None]
        return to_uint8_hwc(t)[0]
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ConfigError(f"images must be uint8 arrays, files or float tensors; got {arr.dtype}")
    return arr[..., None] if arr.ndim == 2 else arr


@dataclass(frozen=True)
class DeniabilityCheck:
    commitment_opens: bool  # seed + salt open the entry's seed commitment
    model_matches: bool | None  # the weights file hashes to the entry's model id (None: no file given)
    regenerated_matches_entry: bool  # G(seed) hashes to the entry's output hash
    image_matches_entry: bool | None  # the disputed image hashes to the entry's output hash
    image_max_level_diff: int | None  # largest 8-bit difference between the disputed image and G(seed)
    message: str

    @property
    def entry_verified(self) -> bool:
        """The entry is an honest record of this model's output for the opened seed."""
        return self.commitment_opens and self.regenerated_matches_entry and self.model_matches is not False

    @property
    def strict_attribution(self) -> bool:
        """The disputed image is exactly the logged, regenerated output."""
        return self.entry_verified and bool(self.image_matches_entry)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"entry_verified": self.entry_verified, "strict_attribution": self.strict_attribution}


def check_entry(receipt: Any, generator: torch.nn.Module, *, image: Any = None, weights: str | Path | None = None,
                latent_fn: LatentFn | None = None) -> DeniabilityCheck:
    """Check a log entry by regenerating G(s) from its opened seed commitment.

    ``receipt``: a ``genattr.ledger.Receipt`` (entry bytes, seed, salt, sample index) or its ``to_dict()``.
    ``image``: the disputed image (path, uint8 array or float tensor), optional. ``weights``: the weights
    file, to check the entry's model id.
    """
    from genattr.ledger import Receipt, model_id_from_file, pixel_hash, verify_seed

    rec = receipt if isinstance(receipt, Receipt) else Receipt.from_dict(receipt)
    entry = rec.parsed
    opens = verify_seed(entry, rec.seed, rec.salt, rec.sample)
    model_ok = None if weights is None else hmac.compare_digest(model_id_from_file(weights), entry.model_id)
    regen = to_uint8_hwc(regenerate(generator, rec.seed, rec.sample, latent_fn=latent_fn))[0]
    regen_ok = hmac.compare_digest(pixel_hash(regen), entry.output_hash)
    img = _image_uint8(image)
    img_ok = None if img is None else hmac.compare_digest(pixel_hash(img), entry.output_hash)
    diff = None
    if img is not None:
        diff = int(np.abs(img.astype(np.int16) - regen.astype(np.int16)).max()) if img.shape == regen.shape else 255
    parts = []
    if not opens:
        parts.append("the seed and salt do NOT open the entry's seed commitment")
    if model_ok is False:
        parts.append("the weights file does NOT match the entry's model id")
    if not regen_ok:
        parts.append("regenerating G(seed) does NOT reproduce the logged output hash")
    if parts:
        msg = "entry not verified: " + "; ".join(parts) + "."
    else:
        msg = (f"entry verified: seed commitment opens and G(seed) reproduces the logged output (sample "
               f"{rec.sample}, log index {rec.index}).")
        if img_ok:
            msg += " The disputed image IS this logged output: strict attribution to this model."
        elif img is not None:
            msg += (f" The disputed image is NOT this logged output (max difference {diff} of 255 levels); "
                    "the entry shows what the model released instead.")
    return DeniabilityCheck(opens, model_ok, regen_ok, img_ok, diff, msg)


def audit_image(image: str | Path | Any, db: str | Path, *, policy: str | Path | None = None,
                log_key: str | None = None) -> Any:
    """``genattr.ledger.audit_log`` on a log database: is the image's exact pixel hash logged?

    ``policy`` (a tlog-policy file) or ``log_key`` (the trusted log vkey, literal or a file) pins trust; with
    neither, the log's own stored key is used (the answer is then only as trustworthy as the database).
    """
    from genattr.ledger import FormatError, Policy, TransparencyLog, audit_log, verifier_from_vkey
    from genattr.ledger.note import ALG_ED25519

    def key_text(v: str) -> str:
        p = Path(v)
        return p.read_text(encoding="utf-8").strip() if len(v) < 4096 and p.is_file() else v.strip()

    if policy is not None and log_key is not None:
        raise FormatError("give a policy or a log key, not both")
    pol = None
    if policy is not None:
        pol = Policy.parse(Path(policy).read_bytes())
    elif log_key is not None:
        pol = Policy.k_of_n([key_text(log_key)], [], 0)
    pinned = verifier_from_vkey(key_text(log_key), alg=ALG_ED25519) if log_key is not None else None
    if not Path(db).is_file():
        raise FormatError(f"no log database at {db}")
    with TransparencyLog.open(db, log_key=pinned) as log:
        return audit_log(image, log, policy=pol)


__all__ = ["LATENT_DOMAIN", "DeniabilityCheck", "audit_image", "check_entry", "image_sampler", "logged_sampler",
           "regenerate", "seeded_images", "seeded_latent", "seeded_latents", "to_pil_images", "to_uint8_hwc"]
