"""Yu et al. (2022) fingerprinting model: folded instances, warm start, losses, tiny training, decoding."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from genattr.errors import ConfigError, DataError
from genattr.generators import Generator, create_generator
from genattr.watermark.fingerprint import (
    INSTANCE_ARCH,
    FingerprintModel,
    ModulatedConvTranspose,
    bit_accuracy_on_fresh_codes,
    code_tensor,
    discriminator_loss,
    generator_losses,
    make_discriminator,
    sample_codes,
)
from genattr.watermark.fingerprint_training import FingerprintTrainConfig, train_fingerprint, warmup_decoder

# The 16 codewords of the extended Hamming [8, 4, 4] code: pairwise at least 4 bits apart.
_G = np.array([[1, 0, 0, 0, 0, 1, 1, 1], [0, 1, 0, 0, 1, 0, 1, 1], [0, 0, 1, 0, 1, 1, 0, 1],
               [0, 0, 0, 1, 1, 1, 1, 0]], dtype=np.uint8)
HAMMING_CODES = np.array([(np.array(m) @ _G) % 2 for m in np.ndindex(2, 2, 2, 2)], dtype=np.uint8)


def randomise_modulation(model: FingerprintModel, std: float = 0.15, seed: int = 0) -> FingerprintModel:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ModulatedConvTranspose):
                m.affine.weight.copy_(torch.randn(m.affine.weight.shape, generator=g) * std)
                m.affine.bias.copy_(torch.randn(m.affine.bias.shape, generator=g) * 0.1)
                m.gain.mul_(0.5 + torch.rand(m.gain.shape, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def tiny_model(demodulate: bool = True, bits: int = 16, seed: int = 0) -> FingerprintModel:
    torch.manual_seed(seed)
    return randomise_modulation(FingerprintModel(code_bits=bits, latent_dim=6, ngf=4, ndf=4, embed_dim=8,
                                                 embed_layers=2, demodulate=demodulate), seed=seed)


@functools.lru_cache(maxsize=1)
def tiny_decoding_model() -> FingerprintModel:
    """An 8-bit model whose decoder reads the codes: strong random modulation, then a decoder warm-up
    (F trained on L_c against the frozen E, G). Shared by the fingerprint test files (~3 s)."""
    torch.manual_seed(0)
    m = FingerprintModel(code_bits=8, latent_dim=2, ngf=8, ndf=8, embed_dim=16, embed_layers=1, demodulate=False)
    randomise_modulation(m, std=2.0)
    warmup_decoder(m, 150, batch_size=64, lr=1e-2, seed=0)
    return m.eval()


# -- instances ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("demodulate", [True, False])
def test_instance_equals_modulated_generator(demodulate: bool) -> None:
    model = tiny_model(demodulate)
    code = sample_codes(1, 16, torch.Generator().manual_seed(3))[0]
    inst = model.instance(code)
    z = torch.randn(12, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = model(z, code.expand(12, -1))
        got = inst(z)
    assert isinstance(inst, Generator) and inst.arch == INSTANCE_ARCH
    assert (ref - got).abs().max().item() <= 1e-5
    assert ref.std() > 0.05  # not a degenerate constant output
    # the modulation matters: another code gives another generator
    other = model.instance(1 - code)
    with torch.no_grad():
        assert (other(z) - got).abs().max() > 1e-3


def test_instance_round_trips_as_plain_generator(tmp_path) -> None:
    model = tiny_model()
    code = [1, 0] * 8
    inst = model.instance(code)
    inst.save_pretrained(tmp_path / "inst")
    meta = json.loads((tmp_path / "inst" / "config.json").read_text())
    assert meta["arch"] == INSTANCE_ARCH and "code" not in json.dumps(meta)
    keys = set(inst.state_dict())
    assert not any("affine" in k or "embed" in k or "decoder" in k for k in keys)  # no E, F, code inside
    loaded = Generator.from_pretrained(tmp_path / "inst")
    z = torch.randn(5, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(z), inst(z), rtol=0, atol=0)
    x = loaded.sample(3, torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 32, 32)
    # FLIPAD split: forward == tanh(final_layer(penultimate))
    with torch.no_grad():
        torch.testing.assert_close(loaded.output_activation(loaded.final_layer(loaded.penultimate(z))), loaded(z))


def test_corrupt_instance_file_is_a_clear_error(tmp_path) -> None:
    tiny_model().instance([0] * 16).save_pretrained(tmp_path / "inst")
    (tmp_path / "inst" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError):
        Generator.from_pretrained(tmp_path / "inst")


@pytest.mark.parametrize("bad", [[0, 1, 1], [2] * 16, "01x1" * 4, np.zeros((2, 16)), "", [0.5] * 16])
def test_bad_codes_raise(bad) -> None:
    with pytest.raises(ConfigError):
        tiny_model().instance(bad)


def test_code_tensor_accepts_strings_and_bools() -> None:
    assert code_tensor("0101", 4).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert code_tensor(np.array([True, False]), 2).tolist() == [1.0, 0.0]


@pytest.mark.parametrize("demodulate", [True, False])
def test_warm_start_reproduces_the_zoo_generator(demodulate: bool) -> None:
    torch.manual_seed(0)
    base = create_generator("dcgan", latent_dim=6, ngf=4).eval()
    with torch.no_grad():
        for bn in (m for m in base.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    model = FingerprintModel(code_bits=16, latent_dim=6, ngf=4, ndf=4, demodulate=demodulate)
    model.warm_start(base, reset_modulation=True)
    z = torch.randn(8, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(z, sample_codes(8, 16)), base(z), atol=1e-5, rtol=1e-4)
    # the default keeps a small code-dependent modulation (1 ± affine_init) so training can start
    torch.manual_seed(1)
    near = FingerprintModel(code_bits=16, latent_dim=6, ngf=4, ndf=4, demodulate=demodulate).warm_start(base)
    with torch.no_grad():
        a, b = near(z, sample_codes(8, 16)), near(z, sample_codes(8, 16))
        ref = base(z)
    assert (a - b).abs().mean() > 0 and (a - ref).abs().mean() < 0.5 * (ref - ref.mean()).abs().mean()
    with pytest.raises(ConfigError):
        FingerprintModel(code_bits=16, latent_dim=6, ngf=8).warm_start(base)


def test_codes_never_mix_across_the_batch() -> None:
    model = tiny_model().train()
    z, c = torch.randn(6, 6), sample_codes(6, 16)
    with torch.no_grad():
        whole = model(z, c)
        parts = torch.cat([model(z[i:i + 1], c[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(parts, whole, atol=1e-6, rtol=1e-5)


# -- losses --------------------------------------------------------------------------------------------------
class ConstD(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.scale = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value + self.scale * x.flatten(1).sum(1)


def test_generator_loss_terms_on_toy_inputs() -> None:
    model = tiny_model()
    z = torch.randn(4, 6)
    c1 = sample_codes(4, 16, torch.Generator().manual_seed(1))
    total, terms = generator_losses(model, ConstD(0.3), z, c1, c1.clone())
    assert terms["const"].item() == pytest.approx(0.0, abs=1e-12)  # same z, same code → same image
    assert terms["adv"].item() == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(-0.3))), rel=1e-6)
    with torch.no_grad():
        x = model(torch.cat([z, z]), torch.cat([c1, c1]))
        z_hat, logits = model.decode_logits(x)
    assert terms["z"].item() == pytest.approx((z_hat - torch.cat([z, z])).pow(2).mean().item(), rel=1e-5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.cat([c1, c1]))
    assert terms["c"].item() == pytest.approx(bce.item(), rel=1e-5)
    want = 1 * terms["adv"] + 1 * terms["z"] + 2 * terms["c"] + 2 * terms["const"]
    assert total.item() == pytest.approx(want.item(), rel=1e-6)
    _, t2 = generator_losses(model, ConstD(0.3), z, c1, 1 - c1)
    assert t2["const"].item() > 0
    total.backward()
    assert model.embed.net[0].weight.grad is not None and model.decoder.head.weight.grad is not None


def test_discriminator_loss_and_r1() -> None:
    D = make_discriminator(1, 4)
    real, fake = torch.rand(4, 1, 32, 32) * 2 - 1, torch.rand(4, 1, 32, 32) * 2 - 1
    plain, _t = discriminator_loss(D, real, fake)
    with_r1, t1 = discriminator_loss(D, real, fake, r1_gamma=10.0)
    assert "r1" in t1 and t1["r1"].item() > 0
    assert with_r1.item() == pytest.approx(plain.item() + 5.0 * t1["r1"].item(), rel=1e-5)
    const = ConstD(0.0)
    loss, _ = discriminator_loss(const, real, fake)
    assert loss.item() == pytest.approx(2 * float(torch.log(torch.tensor(2.0))), rel=1e-6)


# -- training ---------------------------------------------------------------------------------------------------
def _tiny_cfg(**kw) -> FingerprintTrainConfig:
    base = {"code_bits": 8, "latent_dim": 4, "ngf": 4, "ndf": 4, "embed_dim": 8, "embed_layers": 1, "batch_size": 8,
            "steps_per_epoch": 2, "epochs": 2, "eval_codes": 16, "fd_n": 16, "r1_every": 2, "decoder_warmup_steps": 0}
    return FingerprintTrainConfig(**(base | kw))


def test_training_runs_resumes_and_logs(tmp_path) -> None:
    images = torch.rand(32, 1, 32, 32) * 2 - 1
    calls = []

    def fd_fn(x: torch.Tensor) -> float:
        calls.append(x.shape)
        return float(x.mean())

    full = train_fingerprint(_tiny_cfg(), tmp_path / "full", images=images, progress=False, fd_fn=fd_fn)
    assert full.epochs_done == 2 and len(full.history) == 2
    for rec in full.history:
        assert 0 <= rec["bit_accuracy"] <= 1 and "word_accuracy" in rec and "fd" in rec and "train_c" in rec
    assert calls and calls[0] == (16, 1, 32, 32)
    # interrupted after one epoch, then resumed: the same weights as the uninterrupted run
    train_fingerprint(_tiny_cfg(epochs=1), tmp_path / "part", images=images, progress=False)
    resumed = train_fingerprint(_tiny_cfg(), tmp_path / "part", images=images, progress=False)
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    loaded = FingerprintModel.load(tmp_path / "full" / "model")
    z, c = torch.randn(2, 4), sample_codes(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(z, c), full.model(z, c))
    with pytest.raises(ConfigError, match="different config"):
        train_fingerprint(_tiny_cfg(lr=0.5), tmp_path / "full", images=images, progress=False)


def test_training_with_code_pool_and_immunisation(tmp_path) -> None:
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    cfg = _tiny_cfg(epochs=1, steps_per_epoch=1, code_pool=3, perturb={"name": "blur", "kernel_size": 3},
                    adv_start_step=1, decoder_warmup_steps=3, decoder_warmup_batch=4)
    res = train_fingerprint(cfg, tmp_path / "r", images=images, progress=False)
    warm, first = res.history
    assert warm["epoch"] == 0 and "decoder_warmup_bce" in warm and 0 <= warm["bit_accuracy"] <= 1
    assert first["train_adv"] == 0.0  # before adv_start_step: no adversarial term yet
    with pytest.raises(ConfigError):
        train_fingerprint(_tiny_cfg(code_pool=0), tmp_path / "x", images=images, progress=False)


def test_init_from_a_finished_run_starts_from_its_weights(tmp_path) -> None:
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    base = train_fingerprint(_tiny_cfg(epochs=1), tmp_path / "base", images=images, progress=False)
    # zero learning rates: the immunised run must hold exactly the weights it started from
    cfg = _tiny_cfg(epochs=1, init_from=str(tmp_path / "base"), lr=0.0, lr_fingerprint=0.0,
                    perturb={"name": "blur", "kernel_size": 3})
    res = train_fingerprint(cfg, tmp_path / "immune", images=images, progress=False)
    for (k, a), b in zip(base.model.state_dict().items(), res.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    fresh = train_fingerprint(_tiny_cfg(epochs=1, lr=0.0, lr_fingerprint=0.0, seed=5), tmp_path / "fresh",
                              images=images, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(base.model.state_dict().values(),
                                                     fresh.model.state_dict().values(), strict=True))
    with pytest.raises(DataError, match="no training checkpoint"):
        train_fingerprint(_tiny_cfg(init_from=str(tmp_path / "nowhere")), tmp_path / "x", images=images,
                          progress=False)
    with pytest.raises(ConfigError, match="model config"):
        train_fingerprint(_tiny_cfg(init_from=str(tmp_path / "base"), code_bits=16), tmp_path / "y", images=images,
                          progress=False)


def test_ema_is_the_moving_average_of_the_steps_and_resumes(tmp_path) -> None:
    images = torch.rand(32, 1, 32, 32) * 2 - 1
    run = functools.partial(train_fingerprint, images=images, progress=False)
    w0 = run(_tiny_cfg(epochs=1, lr=0.0, lr_fingerprint=0.0), tmp_path / "w0").model.state_dict()
    w1 = run(_tiny_cfg(epochs=1, steps_per_epoch=1), tmp_path / "w1").model.state_dict()
    w2 = run(_tiny_cfg(epochs=1), tmp_path / "w2").model.state_dict()
    d = 0.75
    ema = run(_tiny_cfg(epochs=1, ema_decay=d), tmp_path / "ema").model.state_dict()
    for k, v in ema.items():
        want = w2[k] if k.startswith("decoder.") else d * d * w0[k] + d * (1 - d) * w1[k] + (1 - d) * w2[k]
        torch.testing.assert_close(v, want, msg=k)
    # interrupted after one epoch and resumed: the average continues where it stopped
    full = run(_tiny_cfg(ema_decay=d), tmp_path / "full")
    run(_tiny_cfg(epochs=1, ema_decay=d), tmp_path / "part")
    resumed = run(_tiny_cfg(ema_decay=d), tmp_path / "part")
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(ConfigError, match="ema_decay"):
        run(_tiny_cfg(ema_decay=1.0), tmp_path / "bad")


def test_decoder_only_immunisation_keeps_every_instance(tmp_path) -> None:
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    base = train_fingerprint(_tiny_cfg(epochs=1), tmp_path / "base", images=images, progress=False)
    cfg = _tiny_cfg(epochs=2, init_from=str(tmp_path / "base"), decoder_only=True, lr_fingerprint=0.05,
                    perturb={"name": "blur", "kernel_size": 3})
    res = train_fingerprint(cfg, tmp_path / "imm", images=images, progress=False)
    before, after = base.model.state_dict(), res.model.state_dict()
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same == (not k.startswith("decoder.")), k  # only F moved
    assert all(0 <= r["bit_accuracy_perturbed"] <= 1 and "train_d" not in r for r in res.history)
    code = sample_codes(1, 8, torch.Generator().manual_seed(1))[0]
    z = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(res.model.instance(code)(z), base.model.instance(code)(z))
    with pytest.raises(ConfigError, match="decoder_only"):
        train_fingerprint(_tiny_cfg(decoder_only=True, fingerprint=False), tmp_path / "x", images=images,
                          progress=False)


def test_unfingerprinted_baseline_ignores_the_code(tmp_path) -> None:
    images = torch.rand(32, 1, 32, 32) * 2 - 1
    res = train_fingerprint(_tiny_cfg(fingerprint=False, decoder_warmup_steps=5), tmp_path / "b", images=images,
                            progress=False, fd_fn=lambda x: float(x.std()))
    assert [sorted(r) for r in res.history] == [["epoch", "fd", "seconds", "train_adv", "train_d", "train_r1"]] * 2
    z = torch.randn(3, 4)
    with torch.no_grad():
        torch.testing.assert_close(res.model(z, sample_codes(3, 8)), res.model(z, sample_codes(3, 8)))
    assert all(float(p.abs().max()) == 0 for n, p in res.model.named_parameters() if ".affine." in n)
    assert (tmp_path / "b" / "best" / "config.json").is_file()
    with pytest.raises(ConfigError, match="baseline"):
        train_fingerprint(_tiny_cfg(fingerprint=False, perturb={"name": "blur", "kernel_size": 3}),
                          tmp_path / "x", images=images, progress=False)


def test_best_validation_epoch_is_kept(tmp_path) -> None:
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    res = train_fingerprint(_tiny_cfg(epochs=3, lr_fingerprint=0.05), tmp_path / "r", images=images, progress=False)
    accs = [h["bit_accuracy"] for h in res.history]
    best = max(range(3), key=lambda i: (accs[i], i))  # ties keep the later epoch
    kept = FingerprintModel.load(tmp_path / "r" / "best")
    extra = json.loads((tmp_path / "r" / "best" / "config.json").read_text())["extra"]
    assert extra["kept_epoch"] == best + 1 and extra["kept_bit_accuracy"] == accs[best]
    assert (tmp_path / "r" / "best.safetensors").is_file()
    if best == 2:
        for a, b in zip(kept.state_dict().values(), res.model.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b)
    # the kept checkpoint is a valid --init-from source
    again = train_fingerprint(_tiny_cfg(epochs=1, lr=0.0, lr_fingerprint=0.0,
                                        init_from=str(tmp_path / "r" / "best.safetensors")),
                              tmp_path / "i", images=images, progress=False)
    for a, b in zip(kept.state_dict().values(), again.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_immunised_runs_keep_the_epoch_that_reads_perturbed_images_best(tmp_path) -> None:
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    cfg = _tiny_cfg(epochs=2, lr_fingerprint=0.05, perturb={"name": "noise", "std": 0.3})
    res = train_fingerprint(cfg, tmp_path / "r", images=images, progress=False)
    scores = [h["bit_accuracy_perturbed"] for h in res.history]
    path = tmp_path / "r" / "best" / "config.json"
    meta = json.loads(path.read_text())
    assert meta["extra"]["kept_score"] == max(scores)
    assert meta["extra"]["kept_epoch"] == max(range(2), key=lambda i: (scores[i], i)) + 1
    # a best kept before scores were perturbed ones (clean accuracy 1.0, no kept_score) does not block the rest
    meta["extra"].pop("kept_score")
    meta["extra"]["kept_bit_accuracy"] = 1.0
    path.write_text(json.dumps(meta))
    train_fingerprint(replace(cfg, epochs=3), tmp_path / "r", images=images, progress=False)
    assert json.loads(path.read_text())["extra"]["kept_epoch"] == 3


def test_model_load_rejects_corruption(tmp_path) -> None:
    tiny_model().save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(DataError):
        FingerprintModel.load(tmp_path / "m")
    with pytest.raises(DataError):
        FingerprintModel.load(tmp_path / "nothing")


# -- decoding -----------------------------------------------------------------------------------------------------
def test_distinct_codes_decode_distinctly() -> None:
    model = tiny_decoding_model()
    acc = bit_accuracy_on_fresh_codes(model, 256, seed=1)
    assert acc["bit_accuracy"] > 0.9
    g = torch.Generator().manual_seed(5)
    votes = []
    for code in HAMMING_CODES:
        x = model.sample(9, torch.from_numpy(code).float(), g)
        votes.append(model.decode(x).float().mean(0) > 0.5)
    decoded = torch.stack(votes).to(torch.uint8).numpy()
    assert len({row.tobytes() for row in decoded}) == len(HAMMING_CODES)  # pairwise distinct
    dist = (decoded[:, None, :] != HAMMING_CODES[None, :, :]).sum(2)
    assert (dist.argmin(1) == np.arange(len(HAMMING_CODES))).all()  # each decodes nearest to its own code


def test_decode_rejects_wrong_image_size() -> None:
    from genattr.attribution import InvalidInputError

    with pytest.raises(InvalidInputError):
        tiny_model().decode(torch.zeros(2, 1, 28, 28))
