"""Training the fingerprinting GAN of Yu et al. (2022) on Fashion-MNIST: resumable, with a Rich progress bar
and per-epoch bit accuracy (fresh codes) and FD.

    cfg = FingerprintTrainConfig(code_bits=64, epochs=10, warm_start="zoo/fmnist-dcgan-s0")
    result = train_fingerprint(cfg, "runs/yu2022-64", fd_fn=...)  # → runs/yu2022-64/model/

Every step draws a fresh latent batch z and two fresh code batches c₁, c₂ (Table 2: a fixed code set
over-fits the decoder; ``code_pool`` reproduces that ablation by drawing codes from a fixed pool instead).
G, E, F are updated on Eq. 5; D on the logistic loss with a lazy R1 penalty every ``r1_every`` steps.
``perturb`` (a :mod:`genattr.perturbations` config) perturbs the images before F only: immunisation.

A checkpoint (one safetensors file with the run state in its metadata, written then renamed) is saved at
the end of every epoch; rerunning the same config resumes, a larger ``epochs`` extends a finished run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genattr.errors import ConfigError, DataError
from genattr.training.checkpoint import read_checkpoint, restore_checkpoint, write_checkpoint
from genattr.watermark.fingerprint import (
    FingerprintModel,
    bit_accuracy_on_fresh_codes,
    discriminator_loss,
    generator_losses,
    make_discriminator,
    sample_codes,
)

CHECKPOINT = "checkpoint.safetensors"
BEST_CHECKPOINT = "best.safetensors"
BEST_DIR = "best"
STATE = "train_state.json"
MODEL_DIR = "model"


@dataclass
class FingerprintTrainConfig:
    code_bits: int = 64
    latent_dim: int = 100
    ngf: int = 32
    ndf: int = 32
    embed_dim: int = 128
    embed_layers: int = 2  # the paper's 8-layer mapping net entangles the bits; 2 layers decode faster here
    demodulate: bool = True
    affine_init: float = 0.5  # initial spread of the modulation s = 1 + A_l(E(c))
    seed: int = 0
    epochs: int = 10
    batch_size: int = 64
    steps_per_epoch: int | None = None  # None: one pass over the training images
    lr: float = 2e-4  # G and D
    lr_fingerprint: float = 1e-3  # E, the A_l and F
    betas: tuple[float, float] = (0.0, 0.99)
    lambdas: tuple[float, float, float, float] = (1.0, 1.0, 2.0, 2.0)
    r1_gamma: float = 1.0
    r1_every: int = 4
    adv_start_step: int = 0  # no adversarial term (and no D update) before this step
    decoder_warmup_steps: int = 2000  # F alone on L_c against the initial E, G before joint training (fresh runs)
    decoder_warmup_lr: float = 3e-3
    decoder_warmup_batch: int = 128
    warm_start: str | None = None  # a DCGAN generator directory (save_pretrained), e.g. zoo/fmnist-dcgan-s0
    # a finished run directory (its checkpoint): start E, G, F *and* D from it, e.g. to immunise a trained model
    # (fresh optimisers; the decoder warm-up, if any, then adapts F to the perturbation first)
    init_from: str | None = None
    code_pool: int | None = None  # Table 2 ablation: draw training codes from a fixed pool of this size
    perturb: dict[str, Any] | None = None  # immunisation: perturbation config applied before F
    eval_codes: int = 1000  # fresh codes for the per-epoch bit accuracy
    fd_n: int = 2000  # images for the per-epoch FD (when an fd_fn is given)
    # exponential moving average of E and G's weights (StyleGAN2's G_ema; 0 = off): evaluation, the saved model
    # and the kept best use the average, F stays the live decoder; the checkpoint keeps both
    ema_decay: float = 0.0
    # False: the same recipe with the fingerprint switched off (A_l = 0 and frozen, no E/F training, only the
    # adversarial term, no decoder warm-up) — the "unfingerprinted model of the same recipe" for the FD ratio
    fingerprint: bool = True
    # immunise F alone (Eq. 5's L_z + L_c on perturbed images): E and G stay as they were, so image quality is
    # unchanged and every instance already issued stays readable by the new decoder
    decoder_only: bool = False
    data: str = "fashion-mnist"
    limit: int | None = None
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validated(self) -> FingerprintTrainConfig:
        cfg = FingerprintTrainConfig(**asdict(self))
        cfg.betas = tuple(cfg.betas)  # type: ignore[assignment]
        cfg.lambdas = tuple(float(v) for v in cfg.lambdas)  # type: ignore[assignment]
        if cfg.epochs < 1 or cfg.batch_size < 2 or cfg.r1_every < 1:
            raise ConfigError("epochs ≥ 1, batch_size ≥ 2 and r1_every ≥ 1 are required")
        if len(cfg.lambdas) != 4:
            raise ConfigError("lambdas are (adv, z, c, const)")
        if not 0.0 <= cfg.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {cfg.ema_decay}")
        if not cfg.fingerprint and (cfg.perturb or cfg.code_pool is not None or cfg.init_from):
            raise ConfigError("fingerprint=False (the unfingerprinted baseline) takes no perturb, code_pool or "
                              "init_from")
        if cfg.decoder_only and not cfg.fingerprint:
            raise ConfigError("decoder_only needs the fingerprint (fingerprint=True)")
        if cfg.code_pool is not None and cfg.code_pool < 1:
            raise ConfigError("code_pool must be ≥ 1 (or None for fresh codes every step)")
        return cfg

    def model_config(self) -> dict[str, Any]:
        return {"code_bits": self.code_bits, "latent_dim": self.latent_dim, "ngf": self.ngf, "ndf": self.ndf,
                "embed_dim": self.embed_dim, "embed_layers": self.embed_layers, "demodulate": self.demodulate,
                "affine_init": self.affine_init}


@dataclass
class FingerprintTrainResult:
    model: FingerprintModel
    out_dir: Path
    epochs_done: int
    seconds: float
    history: list[dict[str, float]]


def _resume_key(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in ("epochs", "threads", "eval_codes", "fd_n")}


def _perturbation(cfg: FingerprintTrainConfig, gen: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if not cfg.perturb:
        return None
    from genattr.perturbations import perturbation_from_config

    p = perturbation_from_config(cfg.perturb)
    if not getattr(p, "differentiable", True):
        raise ConfigError(f"immunisation needs a differentiable perturbation; {cfg.perturb} is not "
                          "(use e.g. JPEG mode='differentiable')")
    return lambda x: p(x, gen)


def train_fingerprint(cfg: FingerprintTrainConfig, out_dir: str | Path, *, images: torch.Tensor | None = None,
                      resume: bool = True, progress: bool = True,
                      fd_fn: Callable[[torch.Tensor], float] | None = None,
                      on_epoch: Callable[[int, FingerprintModel, list[dict[str, float]]], bool | None] | None = None
                      ) -> FingerprintTrainResult:
    """Train (or resume) one fingerprinting model; writes ``checkpoint.safetensors`` each epoch and finally
    ``model/`` (:meth:`FingerprintModel.save`).

    ``fd_fn(images) -> float`` (optional) measures the FD of ``fd_n`` images, each with its own fresh code;
    ``on_epoch`` may add metrics to ``history[-1]`` and return True to stop (recorded; resuming won't continue).
    """
    cfg = cfg.validated()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, out, images, resume, progress, fd_fn, on_epoch)
    finally:
        torch.set_num_threads(before)


def _load_images(cfg: FingerprintTrainConfig, images: torch.Tensor | None) -> torch.Tensor:
    if images is None:
        from genattr.data import load_dataset

        images = load_dataset(cfg.data, "train").to_model(32)
    if cfg.limit is not None:
        images = images[: cfg.limit]
    if images.ndim != 4 or tuple(images.shape[-2:]) != (32, 32) or not torch.isfinite(images).all():
        raise DataError(f"training images must be finite (N, C, 32, 32), got {tuple(images.shape)}")
    if images.shape[0] < cfg.batch_size:
        raise ConfigError(f"{images.shape[0]} training images is fewer than one batch of {cfg.batch_size}")
    return images


def _build(cfg: FingerprintTrainConfig, channels: int) -> tuple[FingerprintModel, nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = FingerprintModel(channels=channels, **cfg.model_config())
        D = make_discriminator(channels, cfg.ndf)
    if cfg.init_from:
        src = Path(cfg.init_from)
        ckpt = src / CHECKPOINT if src.is_dir() else src
        if not ckpt.is_file():
            raise DataError(f"init_from: no training checkpoint at {ckpt} (give a finished `fingerprint train` run "
                            "directory)")
        t, meta = read_checkpoint(ckpt)
        theirs = {k: meta["config"].get(k) for k in cfg.model_config()}
        if theirs != cfg.model_config():
            raise ConfigError(f"init_from {src}: its model config {theirs} differs from this run's "
                              f"{cfg.model_config()}")
        restore_checkpoint(t, meta, modules={"M": model, "D": D}, optimizers={})
    elif cfg.warm_start:
        from genattr.generators import Generator

        model.warm_start(Generator.from_pretrained(cfg.warm_start))
    if not cfg.fingerprint:  # with or without a warm start
        for layer in [*model.generator.blocks, model.generator.to_image]:
            nn.init.zeros_(layer.affine.weight)
            nn.init.zeros_(layer.affine.bias)
    return model, D


def _optimizers(cfg: FingerprintTrainConfig, model: FingerprintModel, D: nn.Module
                ) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    fp_params = [*model.embed.parameters(), *model.decoder.parameters()]
    affine = [p for n, p in model.generator.named_parameters() if ".affine." in n]
    g_params = [p for n, p in model.generator.named_parameters() if ".affine." not in n]
    if cfg.decoder_only:  # E, G (and D) frozen: only F learns
        for p in [*model.embed.parameters(), *model.generator.parameters()]:
            p.requires_grad_(False)
        opt_f = torch.optim.Adam(model.decoder.parameters(), lr=cfg.lr_fingerprint, betas=cfg.betas)
        return opt_f, torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    groups = [{"params": g_params, "lr": cfg.lr}]
    if cfg.fingerprint:
        groups.append({"params": fp_params + affine, "lr": cfg.lr_fingerprint})
    else:  # A_l stay exactly 0: G(z, c) does not depend on c
        for p in fp_params + affine:
            p.requires_grad_(False)
    opt_g = torch.optim.Adam(groups, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)
    return opt_g, opt_d


@torch.no_grad()
def _fd(model: FingerprintModel, cfg: FingerprintTrainConfig, fd_fn: Callable[[torch.Tensor], float]) -> float:
    g = torch.Generator().manual_seed(cfg.seed + 4321)
    xs = [model.sample(min(500, cfg.fd_n - i), sample_codes(min(500, cfg.fd_n - i), cfg.code_bits, g), g)
          for i in range(0, cfg.fd_n, 500)]
    return float(fd_fn(torch.cat(xs)))


def _ema_pairs(ema: FingerprintModel, model: FingerprintModel) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    mods = ("generator", "embed")
    return ([p for m in mods for p in getattr(ema, m).parameters()],
            [p for m in mods for p in getattr(model, m).parameters()])


def _decoder_losses(model: FingerprintModel, z: torch.Tensor, c: torch.Tensor,
                    lambdas: tuple[float, float, float, float],
                    perturb: Callable[[torch.Tensor], torch.Tensor] | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Eq. 5 restricted to F (decoder-only immunisation): λ_z‖z − ẑ‖² + λ_c·BCE on the perturbed images."""
    import torch.nn.functional as F

    with torch.no_grad():
        x = model(z, c)
        if perturb is not None:
            x = perturb(x)
    z_hat, logits = model.decode_logits(x)
    terms = {"z": (z_hat - z).pow(2).mean(), "c": F.binary_cross_entropy_with_logits(logits, c)}
    terms["bit_acc"] = ((logits.detach() > 0).float() == c).float().mean()
    return lambdas[1] * terms["z"] + lambdas[2] * terms["c"], terms


def _eval_model(model: FingerprintModel, ema: FingerprintModel | None) -> FingerprintModel:
    if ema is None:
        return model
    ema.decoder.load_state_dict(model.decoder.state_dict())
    ema.eval()
    return ema


def _train(cfg: FingerprintTrainConfig, out: Path, images: torch.Tensor | None, resume: bool, progress: bool,
           fd_fn: Callable[[torch.Tensor], float] | None,
           on_epoch: Callable[[int, FingerprintModel, list[dict[str, float]]], bool | None] | None
           ) -> FingerprintTrainResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    images = _load_images(cfg, images)
    n, channels = images.shape[0], images.shape[1]
    model, D = _build(cfg, channels)
    opt_g, opt_d = _optimizers(cfg, model, D)
    noise = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    pool = None
    if cfg.code_pool is not None:
        pool = sample_codes(cfg.code_pool, cfg.code_bits, torch.Generator().manual_seed(cfg.seed + 99))
    start_epoch, step, history, elapsed, stopped = 0, 0, [], 0.0, False

    ckpt = out / CHECKPOINT
    if resume and ckpt.is_file():
        t, meta = read_checkpoint(ckpt)
        defaults = json.loads(json.dumps(asdict(FingerprintTrainConfig())))
        if _resume_key(defaults | meta["config"]) != _resume_key(json.loads(json.dumps(asdict(cfg)))):
            raise ConfigError(f"{out} holds a run with a different config; use another --out or resume=False")
        restore_checkpoint(t, meta, modules={"M": model, "D": D}, optimizers={"opt_g": opt_g, "opt_d": opt_d})
        noise.set_state(t["rng.noise"])
        start_epoch, step, history, elapsed = meta["epoch"], meta["step"], meta["history"], meta["seconds"]
        stopped = bool(meta.get("stopped", False))
    ema: FingerprintModel | None = None
    if cfg.ema_decay > 0:
        import copy

        ema = copy.deepcopy(model).requires_grad_(False)
        if resume and ckpt.is_file():
            restore_checkpoint(t, meta, modules={"EMA": ema}, optimizers={})
        ema_to, ema_from = _ema_pairs(ema, model)

    perturb = _perturbation(cfg, noise)
    if start_epoch == 0 and step == 0 and cfg.decoder_warmup_steps > 0 and cfg.fingerprint:
        # notes' pitfall: a decoder that has not learnt to read the codes gives L_c no gradient and the run
        # stalls at bit accuracy 0.5 (measured: 600 joint steps without warm-up stayed at 0.50–0.53)
        losses = warmup_decoder(model, cfg.decoder_warmup_steps, batch_size=cfg.decoder_warmup_batch,
                                lr=cfg.decoder_warmup_lr, seed=cfg.seed + 31, perturb=perturb)
        history.append({"epoch": 0, "decoder_warmup_bce": float(sum(losses[-50:]) / len(losses[-50:])),
                        **{k: v for k, v in bit_accuracy_on_fresh_codes(model, cfg.eval_codes, seed=cfg.seed + 555
                                                                        ).items() if k.endswith("accuracy")},
                        "seconds": time.perf_counter()})
        history[-1]["seconds"] = 0.0
        if progress:
            from rich.console import Console

            Console(stderr=True).log(f"decoder warm-up ({cfg.decoder_warmup_steps} steps): bit accuracy "
                                     f"{history[-1]['bit_accuracy']:.4f}")
        model.train()
    # GAN training oscillates (measured: bit accuracy 0.971 → 0.913 from epoch 19 to 20), so the epoch with the
    # best bit accuracy on the validation codes (seed + 555, never the test codes of `reproduce yu2022`) is kept
    # in OUT/best (model) and OUT/best.safetensors (checkpoint, for --init-from)
    best_acc = -1.0 if not (out / BEST_DIR).is_dir() else _best_so_far(out, cfg)
    steps_per_epoch = cfg.steps_per_epoch or n // cfg.batch_size
    end_epoch = start_epoch if stopped else cfg.epochs
    t0 = time.perf_counter() - elapsed
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[stats]}"), TimeRemainingColumn())
    model.train()
    D.train()
    with torch.random.fork_rng(devices=[]), Progress(*columns, disable=not progress) as bar:
        torch.manual_seed(cfg.seed + 17 + start_epoch)  # dropout-free nets; kept for any global draw
        task = bar.add_task(f"yu2022 {cfg.code_bits}b", total=end_epoch * steps_per_epoch,
                            completed=start_epoch * steps_per_epoch, stats="")
        for epoch in range(start_epoch, end_epoch):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            sums: dict[str, float] = {}
            for b in range(steps_per_epoch):
                j = (b * cfg.batch_size) % (n - cfg.batch_size + 1)
                real = images[order[j:j + cfg.batch_size]]
                m = real.shape[0]
                z = torch.randn(m, cfg.latent_dim, generator=noise)
                if pool is None:
                    c1, c2 = sample_codes(m, cfg.code_bits, noise), sample_codes(m, cfg.code_bits, noise)
                else:
                    pick = torch.randint(0, pool.shape[0], (2, m), generator=noise)
                    c1, c2 = pool[pick[0]], pool[pick[1]]
                adv_on = step >= cfg.adv_start_step
                if cfg.decoder_only:
                    adv_on = False
                    loss_g, terms = _decoder_losses(model, z, c1, cfg.lambdas, perturb)
                elif cfg.fingerprint:
                    lambdas = cfg.lambdas if adv_on else (0.0, *cfg.lambdas[1:])
                    loss_g, terms = generator_losses(model, D, z, c1, c2, lambdas=lambdas,  # type: ignore[arg-type]
                                                     perturb=perturb)
                else:  # the baseline: Eq. 5's adversarial term alone, one image per z
                    adv_on = True
                    loss_g = torch.nn.functional.softplus(-D(model(z, c1))).mean()
                    terms = {"adv": loss_g.detach()}
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                if ema is not None:
                    with torch.no_grad():
                        torch._foreach_lerp_(ema_to, ema_from, 1.0 - cfg.ema_decay)
                if adv_on:
                    with torch.no_grad():
                        fake = model(z, c1)
                    r1 = cfg.r1_gamma * cfg.r1_every if step % cfg.r1_every == 0 else 0.0  # lazy R1
                    loss_d, dterms = discriminator_loss(D, real, fake, r1_gamma=r1)
                    opt_d.zero_grad(set_to_none=True)
                    loss_d.backward()
                    opt_d.step()
                    terms = terms | dterms
                step += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
                bar.update(task, advance=1, stats=f"bits {float(terms['bit_acc']):.3f} "
                           f"c {float(terms['c'].detach()):.3f}" if cfg.fingerprint else
                           f"adv {float(terms['adv']):.3f}")
            rec: dict[str, float] = {"epoch": epoch + 1, **{f"train_{k}": v / steps_per_epoch for k, v in sums.items()}}
            model.eval()
            ev_model = _eval_model(model, ema)
            if cfg.fingerprint:
                ev = bit_accuracy_on_fresh_codes(ev_model, cfg.eval_codes, seed=cfg.seed + 555)
                rec["bit_accuracy"], rec["word_accuracy"] = ev["bit_accuracy"], ev["word_accuracy"]
                if cfg.perturb:  # what immunisation is for: the same validation codes, perturbed
                    pv = _perturbation(cfg, torch.Generator().manual_seed(cfg.seed + 777))
                    evp = bit_accuracy_on_fresh_codes(ev_model, cfg.eval_codes, seed=cfg.seed + 555, perturb=pv)
                    rec["bit_accuracy_perturbed"] = evp["bit_accuracy"]
            if fd_fn is not None:
                rec["fd"] = _fd(ev_model, cfg, fd_fn)
                if ema is not None:
                    rec["fd_raw"] = _fd(model, cfg, fd_fn)
            rec["seconds"] = time.perf_counter() - t0
            history.append(rec)
            parts = []
            if cfg.fingerprint:
                parts.append(f"bit accuracy {rec['bit_accuracy']:.4f}, word accuracy {rec['word_accuracy']:.3f}")
            if "bit_accuracy_perturbed" in rec:
                parts.append(f"perturbed {rec['bit_accuracy_perturbed']:.4f}")
            if "fd" in rec:
                parts.append(f"FD {rec['fd']:.2f}")
            if "fd_raw" in rec:
                parts.append(f"FD without EMA {rec['fd_raw']:.2f}")
            msg = ", ".join(parts)
            bar.console.log(f"epoch {epoch + 1}: {msg or 'done'}")
            if on_epoch is not None:
                stopped = bool(on_epoch(epoch + 1, ev_model, history))
            model.train()
            _save_checkpoint(out, cfg, model, D, opt_g, opt_d, noise, epoch + 1, step, history,
                             time.perf_counter() - t0, stopped, ema=ema)
            # the baseline has no bits to validate on: its last epoch is kept; immunised runs keep the epoch
            # that reads perturbed images best
            score = (rec.get("bit_accuracy_perturbed", rec["bit_accuracy"]) if cfg.fingerprint
                     else float(epoch + 1))
            if score >= best_acc:
                best_acc = score
                _save_best(out, cfg, ev_model, history, epoch + 1, score)
            if stopped:
                end_epoch = epoch + 1
                break
    model.eval()
    model = _eval_model(model, ema)
    seconds = history[-1]["seconds"] if history else time.perf_counter() - t0
    model.save(out / MODEL_DIR, extra={"train_config": json.loads(json.dumps(asdict(cfg))), "epochs_done": end_epoch,
                                       "train_seconds": seconds, "history": history})
    return FingerprintTrainResult(model, out, end_epoch, seconds, history)


def _best_so_far(out: Path, cfg: FingerprintTrainConfig) -> float:
    meta = json.loads((out / BEST_DIR / "config.json").read_text()).get("extra") or {}
    if "kept_score" not in meta and cfg.perturb:  # kept by clean accuracy before scores were perturbed ones
        return -1.0
    return float(meta.get("kept_score", meta.get("kept_bit_accuracy", -1.0)))


def _save_best(out: Path, cfg: FingerprintTrainConfig, model: FingerprintModel, history: list[dict[str, float]],
               epoch: int, score: float) -> None:
    import shutil

    tmp = out / (BEST_CHECKPOINT + ".tmp")
    shutil.copy2(out / CHECKPOINT, tmp)
    tmp.replace(out / BEST_CHECKPOINT)
    model.eval()
    model.save(out / BEST_DIR, extra={"train_config": json.loads(json.dumps(asdict(cfg))), "epochs_done": epoch,
                                      "kept_epoch": epoch,
                                      "kept_bit_accuracy": history[-1].get("bit_accuracy"),
                                      "kept_score": score,
                                      "history": history})
    model.train()


def warmup_decoder(model: FingerprintModel, steps: int, *, batch_size: int = 64, lr: float = 1e-2, seed: int = 0,
                   perturb: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[float]:
    """Train only F on L_c against the current (frozen) E and G: the decoder warm-up that keeps a run from
    stalling at bit accuracy 0.5 (notes, pitfalls). Returns the per-step BCE."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.decoder.parameters(), lr=lr)
    losses = []
    model.decoder.train()
    for _ in range(steps):
        c = sample_codes(batch_size, model.code_bits, g)
        with torch.no_grad():
            x = model(torch.randn(batch_size, model.latent_dim, generator=g), c)
            if perturb is not None:
                x = perturb(x)
        loss = F.binary_cross_entropy_with_logits(model.decoder(x)[1], c)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _save_checkpoint(out: Path, cfg: FingerprintTrainConfig, model: nn.Module, D: nn.Module,
                     opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer, noise: torch.Generator, epoch: int,
                     step: int, history: list[dict[str, float]], seconds: float, stopped: bool,
                     ema: nn.Module | None = None) -> None:
    meta = {"config": json.loads(json.dumps(asdict(cfg))), "epoch": epoch, "step": step, "history": history,
            "seconds": seconds, "stopped": stopped}
    modules = {"M": model, "D": D} | ({"EMA": ema} if ema is not None else {})
    write_checkpoint(out / CHECKPOINT, modules=modules, optimizers={"opt_g": opt_g, "opt_d": opt_d},
                     rngs={"noise": noise.get_state()}, meta=meta, state_copy=out / STATE)


__all__ = ["FingerprintTrainConfig", "FingerprintTrainResult", "train_fingerprint", "warmup_decoder"]
