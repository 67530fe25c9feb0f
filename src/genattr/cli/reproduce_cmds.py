"""`genattr reproduce …`: rerun a paper's experiments on the shipped zoo and write its results directory."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from genattr.cli.common import clean_errors, console

reproduce_app = typer.Typer(help="Reproduce a paper's experiments on the shipped zoo.", no_args_is_help=True)


@reproduce_app.callback()
def _group() -> None:
    """Reproduce a paper's experiments on the shipped zoo (one sub-command per paper)."""
    # A callback keeps this a command group while it has a single paper, so `reproduce yu2019` parses
    # the same whether the app is used alone or mounted under `genattr`.


def _parse_set(pairs: list[str] | None) -> dict[str, str]:
    from genattr.errors import ConfigError

    items = {}
    for kv in pairs or []:
        if "=" not in kv:
            raise ConfigError(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        items[k.strip()] = v.strip()
    return items


@reproduce_app.command("yu2019")
@clean_errors
def yu2019(
    out: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("docs/results/yu2019"),
    models: Annotated[Path, typer.Option("--models", help="Where the attribution nets are shipped.")
                      ] = Path("models/yu2019"),
    ship: Annotated[bool, typer.Option(help="Save the calibrated nets of Tables 1 and 3 to --models.")] = True,
    only: Annotated[list[str] | None, typer.Option(help="Run only these experiments (repeatable): architectures, "
                                                        "seeds, components, immunisation, visnet.")] = None,
    quick: Annotated[bool, typer.Option(help="Tiny sizes (a smoke test; numbers are meaningless).")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable; "
                                                                 "tuples comma-separated), e.g. --set epochs=6.")
                    ] = None,
) -> None:
    """Yu, Davis & Fritz 2019 (learned GAN fingerprints): Tables 1, 3, 4, 5, 7 and the fingerprint figure."""
    from genattr.evaluation.yu2019 import Yu2019Config, quick_config, run_yu2019

    cfg = (quick_config() if quick else Yu2019Config()).override(_parse_set(set_))
    parts = ["genattr", "reproduce", "yu2019"]
    if out != Path("docs/results/yu2019"):
        parts += ["--out", str(out)]
    if models != Path("models/yu2019"):
        parts += ["--models", str(models)]
    if not ship:
        parts.append("--no-ship")
    for e in only or []:
        parts += ["--only", e]
    if quick:
        parts.append("--quick")
    for kv in set_ or []:
        parts += ["--set", kv]
    command = shlex.join(parts)
    report = run_yu2019(out, models_dir=models if ship else None, config=cfg, only=only, command=command,
                        log=lambda m: console.print(m, highlight=False))
    console.print(f"[bold green]yu2019 done[/] → {escape(str(report))}")


@reproduce_app.command("flipad")
@clean_errors
def flipad(
    out: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("docs/results/flipad"),
    models: Annotated[Path, typer.Option("--models", help="Where Table 1's FLIPAD detectors are shipped.")
                      ] = Path("models/flipad"),
    ship: Annotated[bool, typer.Option(help="Save the first run's calibrated FLIPAD of each `ship_models` "
                                            "generator to --models.")] = True,
    only: Annotated[list[str] | None, typer.Option(help="Run only these experiments (repeatable), "
                                                        "e.g. table1, table2, table3.")] = None,
    quick: Annotated[bool, typer.Option(help="Tiny sizes (a smoke test; numbers are meaningless).")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable).")
                    ] = None,
    merge_from: Annotated[list[Path] | None, typer.Option(
        "--merge-from", help="Run nothing: copy the methods of these results directories (e.g. runs made in "
                             "parallel with --out) into --out and rebuild its report (repeatable).")] = None,
) -> None:
    """Laszkiewicz et al. 2024 (FLIPAD and baselines): Tables 1, 2, 3 (+ AUC, timings, Fig. 4)."""
    from genattr.evaluation.flipad_experiments import FlipadConfig, merge_results, quick_config, reproduce_flipad

    if merge_from:
        for src in merge_from:
            report = merge_results(src, out)
        console.print(f"[bold green]merged[/] {len(merge_from)} result director{'y' if len(merge_from) == 1 else 'ies'}"
                      f" → {escape(str(report))}")
        return

    cfg = (quick_config() if quick else FlipadConfig()).override(_parse_set(set_))
    parts = ["genattr", "reproduce", "flipad", *(["--out", str(out)] if out != Path("docs/results/flipad") else []),
             *(["--models", str(models)] if models != Path("models/flipad") else []), *([] if ship else ["--no-ship"]),
             *[a for e in only or [] for a in ("--only", e)], *(["--quick"] if quick else []),
             *[a for kv in set_ or [] for a in ("--set", kv)]]
    report = reproduce_flipad(out, config=cfg, only=only, command=shlex.join(parts),
                              log=lambda m: console.print(m, highlight=False), models_dir=models if ship else None)
    console.print(f"[bold green]flipad done[/] → {escape(str(report))}")


@reproduce_app.command("kim2021")
@clean_errors
def kim2021(
    out: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("docs/results/kim2021"),
    models: Annotated[Path, typer.Option("--models", help="Where the key sets and user models are shipped.")
                      ] = Path("models/kim2021"),
    ship: Annotated[bool, typer.Option(help="Write the release (key sets + user models) to --models.")] = True,
    only: Annotated[list[str] | None, typer.Option(help="Run only these experiments (repeatable).")] = None,
    quick: Annotated[bool, typer.Option(help="Tiny sizes (a smoke test; numbers are meaningless).")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting, KEY=VALUE (repeatable).")
                    ] = None,
) -> None:
    """Kim, Ren & Yang 2021 (registry keys): Tables 1, 2, 5–6, Fig. 2, border ablation, the many-user simulation."""
    from genattr.evaluation.kim2021 import Kim2021Config, quick_config, reproduce_kim2021

    cfg = (quick_config() if quick else Kim2021Config()).override(_parse_set(set_))
    parts = ["genattr", "reproduce", "kim2021", *(["--out", str(out)] if out != Path("docs/results/kim2021") else []),
             *(["--models", str(models)] if models != Path("models/kim2021") else []), *([] if ship else ["--no-ship"]),
             *[a for e in only or [] for a in ("--only", e)], *(["--quick"] if quick else []),
             *[a for kv in set_ or [] for a in ("--set", kv)]]
    report = reproduce_kim2021(cfg, out, models_dir=models if ship else None, only=only, command=shlex.join(parts),
                               log=lambda m: console.print(m, highlight=False))
    console.print(f"[bold green]kim2021 done[/] → {escape(str(report))}")


def _register_more() -> None:
    """Papers whose reproduction commands live beside their method's CLI module."""
    from genattr.cli.fingerprint_cmds import reproduce_yu2022_cmd
    from genattr.cli.reconstruct_cmds import reproduce_zhang2020_command

    reproduce_app.command("zhang2020")(reproduce_zhang2020_command)
    reproduce_app.command("yu2022")(reproduce_yu2022_cmd)


_register_more()

__all__ = ["reproduce_app"]
