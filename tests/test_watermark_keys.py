"""Kim et al. 2021 keys, user models and metrics on tiny inputs (8×8 keys, a 32 px DCGAN with ngf=4)."""

from __future__ import annotations

import math

import pytest
import torch

import genattr.watermark.matmul as matmul_mod
from genattr.errors import ConfigError, DataError
from genattr.generators import Generator, create_generator
from genattr.perturbations import get_grid
from genattr.perturbations.grids import DCTMask, dct_mask, kornia_kernel
from genattr.watermark.keys import (
    KeyGenConfig,
    KeySet,
    NonCompliantKeyError,
    border_mask,
    check_compliance,
    check_keys,
    compliance_report,
    generate_keys,
    key_scores,
    load_keys,
    lowpass_basis,
    orthogonality,
    save_keys,
)
from genattr.watermark.kim_metrics import (
    attributability,
    attributability_from_scores,
    delta_x,
    distinguishability,
    eq6_rhs,
    eq7_rhs,
    quantize_8bit,
    simulate_attributability,
    theory_checks,
)
from genattr.watermark.kim_training import (
    FinetuneConfig,
    check_same_architecture,
    finetune,
    robust_transform,
    sample_eval,
    save_user_model,
)
from genattr.watermark.matmul import fast_matmul_ok

FAST = KeyGenConfig(steps=40, pool=256, block=8, mine_every=15, mine_k=64, lr=0.1)


def _images(n: int, seed: int, size: int = 8) -> torch.Tensor:
    """Fashion-MNIST-like: a border of exactly −1 around random content."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, size, size), -1.0)
    x[:, :, 1:-1, 1:-1] = torch.rand(n, 1, size - 2, size - 2, generator=g) * 2 - 1
    return x


@pytest.fixture(scope="module")
def issued() -> tuple[torch.Tensor, dict]:
    return generate_keys(6, _images(200, 0), _images(200, 1), real_heldout=_images(200, 2),
                         root_heldout=_images(200, 3), seed=0, config=FAST)


# -- keys ---------------------------------------------------------------------------------------------------
def test_keys_are_unit_orthogonal_and_compliant(issued) -> None:
    keys, info = issued
    assert keys.shape == (6, 1, 8, 8) and keys.dtype == torch.float32
    torch.testing.assert_close(keys.flatten(1).norm(dim=1), torch.ones(6))
    gram = keys.flatten(1).double() @ keys.flatten(1).double().T
    torch.testing.assert_close(gram, torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(orthogonality(keys).max()) < 1e-5
    for x in (_images(200, 2), _images(200, 3), _images(300, 11)):  # held-out and fresh images
        assert (x.flatten(1) @ keys.flatten(1).T < 0).all()
    check_compliance(keys, _images(200, 2), _images(200, 3))
    assert info["angle_deg"] == 90.0 and info["seconds"] > 0


def test_new_keys_are_orthogonal_to_existing(issued) -> None:
    keys, _ = issued
    more, _ = generate_keys(2, _images(200, 0), _images(200, 1), real_heldout=_images(200, 2),
                            root_heldout=_images(200, 3), existing=keys, seed=1, config=FAST)
    assert (more.flatten(1) @ keys.flatten(1).T).abs().max() < 1e-5


def test_45_degree_keys(issued) -> None:
    keys, _ = generate_keys(4, _images(200, 0), _images(200, 1), real_heldout=_images(200, 2),
                            root_heldout=_images(200, 3), angle_deg=45, seed=0, config=FAST)
    gram = keys.flatten(1).double() @ keys.flatten(1).double().T
    off = gram[~torch.eye(4, dtype=torch.bool)]
    torch.testing.assert_close(off, torch.full_like(off, math.cos(math.pi / 4)), atol=1e-5, rtol=0)
    check_compliance(keys, _images(200, 2), _images(200, 3))


def test_border_mask_keys_stay_in_content() -> None:
    m = border_mask((1, 8, 8), content=6)
    assert m.sum() == 36 and m[0, 0].sum() == 0

    def dark(n: int, seed: int) -> torch.Tensor:  # content in [-1, -0.5]: compliant keys exist without the border
        return _images(n, seed) * (1 - m) + (-0.75 + 0.25 * (_images(n, seed + 50) * m)) * m

    keys, _ = generate_keys(2, dark(200, 0), dark(200, 1), real_heldout=dark(200, 2), root_heldout=dark(200, 3),
                            mask=m, seed=0, config=FAST)
    assert (keys * (1 - m)).abs().max() < 1e-6  # nothing on the border
    check_compliance(keys, dark(200, 2), dark(200, 3))


def test_lowpass_basis_is_orthonormal_and_keys_stay_smooth() -> None:
    b = lowpass_basis((1, 8, 8), 3, content=6)  # u + v < 3: 6 functions
    assert b.shape == (6, 64)
    torch.testing.assert_close(b.double() @ b.double().T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)
    m = border_mask((1, 8, 8), content=6)
    assert (b.view(6, 1, 8, 8) * (1 - m)).abs().max() == 0  # zero on the border
    full = lowpass_basis((1, 8, 8), 11, content=6)  # every frequency: the whole 6×6 content space
    assert full.shape == (36, 64)
    with pytest.raises(ConfigError, match="cutoff"):
        lowpass_basis((1, 8, 8), 0, content=6)

    def dark(n: int, seed: int) -> torch.Tensor:  # content in [-1, -0.5]: a smooth positive key is compliant
        return _images(n, seed) * (1 - m) + (-0.75 + 0.25 * (_images(n, seed + 50) * m)) * m

    cfg = KeyGenConfig(steps=40, pool=256, block=8, mine_every=15, mine_k=64, lr=0.1, lowpass=3, content=6)
    keys, info = generate_keys(3, dark(200, 0), dark(200, 1), real_heldout=dark(200, 2), root_heldout=dark(200, 3),
                               seed=0, config=cfg)
    flat = keys.flatten(1).double()
    torch.testing.assert_close(flat @ flat.T, torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
    # inside the span of the basis: projecting onto it changes nothing
    torch.testing.assert_close((flat @ b.double().T) @ b.double(), flat, atol=1e-5, rtol=0)
    check_compliance(keys, dark(200, 2), dark(200, 3))
    assert info["lowpass"] == 3
    with pytest.raises(ConfigError, match="in 6 dimensions"):
        generate_keys(7, dark(200, 0), dark(200, 1), real_heldout=dark(200, 2), root_heldout=dark(200, 3),
                      config=cfg)
    with pytest.raises(ConfigError, match="not both"):
        generate_keys(1, dark(200, 0), dark(200, 1), real_heldout=dark(200, 2), root_heldout=dark(200, 3),
                      mask=m, config=cfg)


def test_noncompliant_key_is_never_issued() -> None:
    x = _images(100, 0)
    symmetric = torch.cat([x, -x])  # no φ has φᵀx < 0 for both x and −x
    cfg = KeyGenConfig(steps=5, pool=64, block=2, max_attempts=1)
    with pytest.raises(NonCompliantKeyError, match="data-compliant"):
        generate_keys(1, symmetric, symmetric, real_heldout=symmetric, root_heldout=symmetric, config=cfg)
    k = torch.zeros(1, 1, 8, 8)
    k[0, 0, 3, 3] = 1
    with pytest.raises(NonCompliantKeyError, match="not data-compliant"):
        check_compliance(k, x)


def test_check_keys_rejects_bad_keys() -> None:
    with pytest.raises(DataError, match="norm"):
        check_keys(torch.ones(2, 1, 4, 4))
    with pytest.raises(DataError, match="shape"):
        check_keys(torch.ones(4, 4) / 4)
    with pytest.raises(DataError, match="per key"):
        check_keys(torch.ones(1, 1, 4, 4) / 4, image_shape=(1, 8, 8))
    k = torch.ones(1, 1, 4, 4) / 4
    k[0, 0, 0, 0] = math.nan
    with pytest.raises(DataError, match="NaN"):
        check_keys(k)
    with pytest.raises(ConfigError, match="angle"):
        generate_keys(1, _images(10, 0), _images(10, 1), real_heldout=_images(10, 2), root_heldout=_images(10, 3),
                      angle_deg=120)


def test_save_load_round_trip_and_atomicity(issued, tmp_path) -> None:
    keys, _ = issued
    ks = KeySet(keys, tuple(f"u{i}" for i in range(6)),
                {"angle_deg": 90.0, "compliance": compliance_report(keys, _images(50, 2), _images(50, 3))})
    save_keys(ks, tmp_path / "set")
    back = load_keys(tmp_path / "set")
    assert torch.equal(back.keys, keys) and back.users == ks.users and back.meta["angle_deg"] == 90.0
    assert back.meta["compliance"][0]["max_real"] < 0
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["keys.json", "keys.safetensors"]
    with pytest.raises(ConfigError, match="exists"):
        save_keys(ks, tmp_path / "set")
    with pytest.raises(DataError):  # wrong norm: refused before anything is written
        save_keys(KeySet(2 * keys, ks.users), tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and [p.name for p in tmp_path.iterdir()] == ["set"]
    with pytest.raises(ConfigError, match="user name"):
        KeySet(keys, tuple(["../x"] + [f"u{i}" for i in range(5)]))
    with pytest.raises(DataError, match="not a key set"):
        load_keys(tmp_path)


# -- metrics ------------------------------------------------------------------------------------------------
def test_distinguishability_and_attributability_hand_computed() -> None:
    k = torch.zeros(2, 1, 2, 2)
    k[0, 0, 0, 0] = 1
    k[1, 0, 0, 1] = 1
    real = -torch.ones(4, 1, 2, 2)
    real[0, 0, 0, 0] = 0.5  # one of four real images violates key 0
    keyed = -torch.ones(4, 1, 2, 2)
    keyed[:3, 0, 0, 0] = 1  # three of four keyed samples have φ_0ᵀx > 0
    assert distinguishability(k[0], keyed, real) == pytest.approx(0.5 * (3 / 4 + 3 / 4))
    user1 = -torch.ones(4, 1, 2, 2)
    user1[:, 0, 0, 1] = 1
    user1[0, 0, 0, 0] = 1  # both keys positive: not attributed
    a, rates = attributability(k, [keyed, user1])
    assert rates == [0.75, 0.75] and a == 0.75
    s = torch.tensor([[1.0, -1.0], [1.0, 0.0]])  # a score of exactly 0 is not "< 0"
    assert attributability_from_scores([s, torch.tensor([[-1.0, 2.0]])])[1] == [0.5, 1.0]


def test_delta_x_forms() -> None:
    root = torch.zeros(2, 1, 2, 2)
    keyed = root.clone()
    keyed[0, 0, 0, 0], keyed[1, 0, 0, 0] = 2.0, -2.0
    d = delta_x(keyed, root)
    assert d["eq3"] == pytest.approx(0.0) and d["mean_norm"] == pytest.approx(2.0)
    assert d["rms"] == pytest.approx(1.0)


def test_quantize_8bit() -> None:
    x = torch.tensor([-1.5, -1.0, 0.0, 0.004, 1.0])
    q = quantize_8bit(x)
    assert q[0] == -1 and q[-1] == 1 and torch.allclose((q + 1) * 127.5, ((q + 1) * 127.5).round(), atol=1e-4)


def test_eq6_eq7_formulas_and_theory_check() -> None:
    s = math.sqrt(math.log(1e4))  # √log(1/δ²) at δ = 1e-2: 3.03
    assert s == pytest.approx(3.035, abs=1e-3)
    assert eq6_rhs(0.1, 2.0, 0.0) == pytest.approx(0.1 * s + 2.0)
    # σ → 0, μ = 0: RHS of Eq. 7 → d_min / d_max (the paper's remark)
    assert eq7_rhs(0.0, 4.0, 1.0, 0.0) == pytest.approx(0.25)
    # a user whose outputs are exactly G0 + γφ + noise along another direction
    k = torch.zeros(2, 1, 2, 2)
    k[0, 0, 0, 0] = 1
    k[1, 0, 0, 1] = 1
    real = -torch.ones(8, 1, 2, 2)
    real[:, 0, 0, 0] = torch.linspace(-1, -0.5, 8)
    root = real.clone()
    g = torch.Generator().manual_seed(0)
    noise = torch.zeros_like(root)
    noise[:, 0, 1, 1] = torch.randn(8, generator=g)
    keyed = root + 2.5 * k[0] + noise
    out = theory_checks(k, 0, keyed, root, 2.5, real)
    assert out["sigma"] == pytest.approx(0.0, abs=1e-9) and out["phi_mu"] == pytest.approx(0.0, abs=1e-9)
    assert out["d_max"] == pytest.approx(1.0) and out["eq6_rhs"] == pytest.approx(1.0)
    assert out["eq6_holds"]
    # key 1: d_min = d_max = 1, σ = 0, μ = 0 → RHS = −1 + 2/1 = 1 ≥ φ_0ᵀφ_1 = 0
    assert out["eq7"][0]["rhs"] == pytest.approx(1.0) and out["eq7"][0]["holds"]


def test_simulation_separates_orthogonal_but_not_parallel_keys(issued) -> None:
    keys, _ = issued
    root = _images(64, 5)
    a, _ = simulate_attributability(keys, root, gamma=4.0, noise_std=0.01, n_per_user=8)
    assert a == 1.0
    same = keys[:1].repeat(3, 1, 1, 1)  # identical keys: every sample fires all of them
    assert simulate_attributability(same, root, gamma=4.0, noise_std=0.01, n_per_user=8)[0] == 0.0


# -- fine-tuning --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_root() -> Generator:
    torch.manual_seed(0)
    return create_generator("dcgan", latent_dim=8, ngf=4).eval()


def _key32() -> torch.Tensor:
    k = torch.zeros(1, 32, 32)
    k[0, 0, :] = 1.0  # the top border row
    return k / k.norm()


def test_hinge_finetune_moves_outputs_along_key(tiny_root, tmp_path) -> None:
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    phi = _key32()
    before = (sample_eval(tiny_root, z).flatten(1) @ phi.flatten()).mean()
    g, info = finetune(tiny_root, phi, FinetuneConfig(steps=30, batch_size=8, lr=1e-2))
    after = (sample_eval(g, z).flatten(1) @ phi.flatten()).mean()
    assert after > before + 0.5
    assert info["steps"] == 30 and info["seconds_per_step"] > 0
    # the root is untouched, and the keyed model keeps its architecture
    assert (sample_eval(tiny_root, z).flatten(1) @ phi.flatten()).mean() == before
    check_same_architecture(tiny_root, g)
    save_user_model(g, tmp_path / "alice", extra={"user": "alice"})
    back = Generator.from_pretrained(tmp_path / "alice")
    torch.testing.assert_close(sample_eval(back, z), sample_eval(g, z))


def test_alg1_grows_gamma_until_distinguishable(tiny_root) -> None:
    real = -torch.ones(32, 1, 32, 32)
    real[:, :, 2:30, 2:30] = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    _, info = finetune(tiny_root, _key32(), FinetuneConfig(mode="alg1", steps=25, batch_size=8, lr=5e-3,
                                                           max_rounds=2, n_check=64), real=real)
    assert info["d_max"] == pytest.approx(32 / math.sqrt(32))
    assert info["rounds"] in (1, 2) and info["history"][0]["gamma"] == pytest.approx(info["d_max"])
    if info["rounds"] == 2:
        assert info["history"][1]["gamma"] == pytest.approx(1.1 * info["d_max"])
    with pytest.raises(ConfigError, match="real images"):
        finetune(tiny_root, _key32(), FinetuneConfig(mode="alg1", steps=1))


def test_robust_finetune_runs_and_bad_inputs(tiny_root) -> None:
    for name in ("blur", "crop", "noise", "jpeg", "combination"):
        t = robust_transform(name)
        x = torch.zeros(3, 1, 32, 32, requires_grad=True)
        t(x, torch.Generator().manual_seed(0)).sum().backward()  # differentiable, for Eq. 11
        assert x.grad is not None
    g, _ = finetune(tiny_root, _key32(), FinetuneConfig(steps=2, batch_size=4, robust="combination", robust_p=1.0))
    assert isinstance(g, Generator)
    with pytest.raises(DataError, match="norm"):
        finetune(tiny_root, 2 * _key32(), FinetuneConfig(steps=1))
    with pytest.raises(DataError, match="per key"):
        finetune(tiny_root, torch.ones(1, 8, 8) / 8, FinetuneConfig(steps=1))
    with pytest.raises(ConfigError):
        FinetuneConfig(robust="rotate")
    other = create_generator("dcgan", latent_dim=8, ngf=8)
    with pytest.raises(DataError, match="architecture differs"):
        check_same_architecture(tiny_root, other)
    with pytest.raises(DataError, match="architecture differs"):
        finetune(tiny_root, _key32(), FinetuneConfig(steps=1), start=other)


# -- the kim2021-worst grid ---------------------------------------------------------------------------------
def test_dct_mask_and_worst_grid() -> None:
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(dct_mask(x, keep=8), x, atol=1e-5, rtol=0)  # keeping everything = identity
    y = dct_mask(x, keep=1)  # DC only: every 8×8 block becomes its mean
    torch.testing.assert_close(y[0, 0, :8, :8], x[0, 0, :8, :8].mean().expand(8, 8), atol=1e-5, rtol=0)
    rgb = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(dct_mask(rgb, keep=8, keep_chroma=8), rgb, atol=1e-4, rtol=0)
    assert kornia_kernel(3.0) == 25 and kornia_kernel(1.5) == 13 and kornia_kernel(1 / 3) == 3
    keys = [e.key for e in get_grid("kim2021-worst")]
    assert keys == ["none", "blur/sigma 3", "blur/sigma 1.5", "crop/0.8 centre", "noise/std 0.3",
                    "jpeg/dct-mask 5x5", "combination/all worst"]
    grid = {e.key: e.transform for e in get_grid("kim2021-worst")}
    img = torch.rand(2, 1, 32, 32) * 2 - 1
    for t in grid.values():
        out = t(img, torch.Generator().manual_seed(0))
        assert out.shape == img.shape and torch.isfinite(out).all()
    assert isinstance(grid["jpeg/dct-mask 5x5"], DCTMask)
    assert next(e.key for e in get_grid("kim2021")) == "none" and len(get_grid("kim2021")) == 6  # unchanged


@pytest.mark.parametrize("mode", ["probed", "float32"])
def test_key_scores_float32_accuracy_in_either_matmul_mode(mode, monkeypatch) -> None:
    # the bf16 fp32-math mode is used only where a probe shows float32 accuracy; either way the scores must
    # match float64 to float32 round-off, chunked or not (a verifier's sign near 0 depends on it)
    if mode == "float32":
        monkeypatch.setattr(matmul_mod, "_FAST_MATMUL", False)
    g = torch.Generator().manual_seed(1)
    k = torch.randn(300, 1, 16, 16, generator=g)
    k = k / k.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    x = torch.rand(700, 1, 16, 16, generator=g) * 2 - 1
    ref = x.flatten(1).double() @ k.flatten(1).double().T
    bound = x.flatten(1).abs().double() @ k.flatten(1).abs().double().T
    for chunk in (8192, 256):
        got = key_scores(k, x, chunk=chunk)
        assert got.dtype == torch.float32 and got.shape == (700, 300)
        assert bool(((got.double() - ref).abs() <= 1e-6 * bound + 1e-7).all())
    assert torch.backends.mkldnn.matmul.fp32_precision != "bf16"  # the global mode is restored


def test_fast_matmul_probe_is_cached_and_boolean() -> None:
    assert fast_matmul_ok() in (True, False)
    assert matmul_mod._FAST_MATMUL is fast_matmul_ok()
