"""The report of `genattr reproduce yu2022`: ``README.md`` from the experiments' JSON files, with Table 3 and
Table 2 rendered beside the paper's numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from genattr.evaluation.yu2022.experiments import COMMAND, EXPERIMENTS, PAPER


def attribution_table(data: dict[str, Any]) -> list[str]:
    """Table 3 side by side: fingerprint attributor vs the Yu 2019 classifier, then the definitions."""
    def f(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}"

    paper = data.get("paper_table3", PAPER["table3"])
    lines = ["| instances | closed world: fingerprint | closed world: classifier | open world: fingerprint | "
             "open world: classifier | unseen instances attributed to a known one: fingerprint / classifier | "
             "paper closed world: classifier / ours | paper open world (unseen GANs): classifier / ours |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, row in data.get("results", {}).items():
        clf = row.get("classifier") or {}
        unseen = (row.get("unseen_instances") or {}).get("attributed_to_known")
        unseen_c = (clf.get("unseen_instances") or {}).get("attributed_to_known")
        pc = paper.get("closed_world", {}).get(n) or (None, None)
        po = paper.get("open_world_unseen_gans", {}).get(n) or (None, None)
        lines.append(f"| {n} | {f(row.get('closed_world'))} | {f(clf.get('closed_world'))} | "
                     f"{f(row.get('open_world'))} | {f(clf.get('open_world'))} | {f(unseen)} / {f(unseen_c)} | "
                     f"{f(pc[0])} / {f(pc[1])} | {f(po[0])} / {f(po[1])} |")
    lines.append("")
    for key, text in data.get("definitions", {}).items():
        lines.append(f"* **{key}**: {text}")
    return [*lines, ""]


def table2_table(data: dict[str, Any]) -> list[str]:
    """Table 2: bit accuracy on the training codes vs on fresh codes, per fingerprint-set size."""
    lines = [f"{data.get('steps', '?')} training steps per run, warm-started from {data.get('warm_start', '?')}; "
             "train = codes of the run's fixed set, test = fresh random codes.", "",
             "| fingerprint set | paper train | paper test | ours train | ours test |",
             "| --- | --- | --- | --- | --- |"]
    for size, row in data.get("results", {}).items():
        paper = row.get("paper") or (None, None)
        cells = ["—" if v is None else f"{v:.3f}" for v in (*paper, row["train_bit_accuracy"],
                                                          row["test_bit_accuracy"])]
        label = "sampled on the fly" if size == "fresh" else f"{int(size):,}"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def write_report(out: Path) -> Path:
    """``README.md`` from every ``<experiment>.json`` present (numbers only; measured, never asserted)."""
    lines = ["# Yu et al. (ICLR 2022) on Fashion-MNIST 32×32", "",
             f"Written by `{COMMAND}`; see docs/yu2022.md for the setup and the reading.", ""]
    from genattr import zoo

    lines += [zoo.provenance() + " The fingerprinted generator is warm-started from, and compared with, the zoo "
              "DCGAN; `fidelity` also compares it with the same recipe trained without the fingerprint "
              "(`models/yu2022/baseline`).", ""]
    for name in EXPERIMENTS:
        p = out / f"{name}.json"
        if p.is_file():
            data = json.loads(p.read_text())
            data.pop("config", None)
            lines += [f"## {name}", ""]
            if name == "table2":
                lines += table2_table(data)
            if name == "attribution":
                lines += attribution_table(data)
                data.pop("definitions", None)  # shown with the table; the dump below is cut at 4000 characters
                data.pop("paper_table3", None)
            lines += ["```json", json.dumps(data, indent=1)[:4000], "```", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


__all__ = ["attribution_table", "table2_table", "write_report"]
