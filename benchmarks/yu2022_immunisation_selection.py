"""Yu 2022 immunisation: choose, per attack, between joint fine-tuning (E, G, F on Eq. 5 with perturbed images
before F) and decoder-only immunisation (F alone; E and G frozen) on VALIDATION codes.

    PYTHONPATH=src python benchmarks/yu2022_immunisation_selection.py \\
        --joint runs/yu2022-64-immune-{attack} --decoder-only runs/yu2022-64-dimmune-{attack}

For every attack of Fig. 5 (blur, crop, noise, JPEG, combination) and each candidate run that exists (its kept
``best`` model), the bit accuracy over that attack's strength grid (``ROBUSTNESS_GRID``, the points
`genattr reproduce yu2022 --only robustness` plots) is measured on ``--n`` fresh validation codes and latents —
seeds of their own, never the reproduction's test codes. The rule, fixed before the run: the candidate with the
highest mean bit accuracy over the grid (ties → decoder-only, which leaves G and every issued instance as they
were). Writes docs/results/yu2022/immunisation_selection.json; ship the winners with `genattr fingerprint ship
--run RUN --variant fp64-immune-ATTACK --force` (the JSON lists the commands).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--joint", default="runs/yu2022-64-immune-{attack}")
    p.add_argument("--decoder-only", default="runs/yu2022-64-dimmune-{attack}")
    p.add_argument("--attacks", default="blur,crop,noise,jpeg,combination")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "yu2022" / "immunisation_selection.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from genattr.evaluation.yu2022.experiments import ROBUSTNESS_GRID, matched_bits
    from genattr.perturbations import perturbation_from_config
    from genattr.sampling import derive_seed
    from genattr.watermark.fingerprint import FingerprintModel, sample_codes

    rows, chosen = [], {}
    for attack in args.attacks.split(","):
        cands = {}
        for kind, pattern in (("decoder_only", args.decoder_only), ("joint", args.joint)):
            run = ROOT / pattern.format(attack=attack)
            model_dir = run / "best" if (run / "best").is_dir() else run / "model"
            if (model_dir / "model.safetensors").is_file():
                cands[kind] = (run, FingerprintModel.load(model_dir).eval())
        for kind, (run, model) in cands.items():
            t0 = time.perf_counter()
            codes = sample_codes(args.n, model.code_bits, torch.Generator().manual_seed(
                derive_seed("yu2022-immunisation-validation", attack)))
            pts = []
            for label, pcfg in ROBUSTNESS_GRID[attack]:
                pert = perturbation_from_config(json.loads(json.dumps(pcfg)))
                g = torch.Generator().manual_seed(derive_seed("immunisation-validation", attack, label))
                k, _ = matched_bits(model, codes, seed=derive_seed("immunisation-validation-z", attack),
                                    perturb=lambda x, pert=pert, g=g: pert(x, g))
                pts.append({"strength": label, "bit_accuracy": float(k.mean() / model.code_bits)})
            clean, _ = matched_bits(model, codes, seed=derive_seed("immunisation-validation-z", attack))
            row = {"attack": attack, "kind": kind, "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT)
                   else str(run), "points": pts, "mean": statistics.fmean(q["bit_accuracy"] for q in pts),
                   "clean": float(clean.mean() / model.code_bits), "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(f"{attack} {kind}: mean over the grid {row['mean']:.4f} (clean {row['clean']:.4f}): "
                  + ", ".join(f"{q['strength']} {q['bit_accuracy']:.3f}" for q in pts), flush=True)
        mine = [r for r in rows if r["attack"] == attack]
        if mine:
            best = max(mine, key=lambda r: (r["mean"], r["kind"] == "decoder_only"))
            chosen[attack] = {"kind": best["kind"], "run": best["run"],
                              "ship": f"genattr fingerprint ship --run {best['run']} --variant fp64-immune-{attack} "
                                      "--force"}
    out = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
           "rule": "per attack: the highest mean bit accuracy over the attack's Fig. 5 grid on validation codes "
                   "(ties -> decoder-only)", "n": args.n, "rows": rows, "chosen": chosen}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for attack, c in chosen.items():
        print(f"{attack}: {c['kind']} → {c['ship']}")


if __name__ == "__main__":
    main()
