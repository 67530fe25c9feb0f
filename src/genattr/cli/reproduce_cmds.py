"""`genattr reproduce …`: rerun a paper's experiments on the shipped zoo and write its results directory.

By default a run uses smoke-test sizes (minutes) and writes to a fresh run directory
(runs/reproduce/PAPER-TIMESTAMP), shipping nothing: the committed results (docs/results/PAPER) and shipped
models (models/PAPER) are replaced only with ``--paper-size --write-docs --ship`` (or an explicit --out /
--models). ``--quick`` (the old smoke-test flag) is accepted and does nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from genattr.cli.common import (
    PAPER_SIZE_HELP,
    clean_errors,
    console,
    parse_set,
    prepare_reproduce,
    reproduce_done,
    reproduce_log,
)

reproduce_app = typer.Typer(help="Reproduce a paper's experiments on the shipped zoo.", no_args_is_help=True)


@reproduce_app.callback()
def _group() -> None:
    """Reproduce a paper's experiments on the shipped zoo (one sub-command per paper)."""
    # A callback keeps this a command group while it has a single paper, so `reproduce yu2019` parses
    # the same whether the app is used alone or mounted under `genattr`.


OUT_HELP = "Results directory (default: a fresh runs/reproduce/PAPER-TIMESTAMP)."
WRITE_DOCS_HELP = "Write to docs/results/PAPER, replacing the committed results (needs --paper-size)."
SHIP_HELP = "Ship the trained models to models/PAPER (or --models), replacing the shipped ones (needs --paper-size)."
Opt = typer.Option


def _quick_alias(quick: bool) -> None:
    if quick:
        from genattr.cli.common import deprecated

        deprecated("--quick", "nothing (smoke-test sizes are the default; --paper-size for the real run)")


@reproduce_app.command("yu2019")
@clean_errors
def yu2019(
    out: Annotated[Path | None, Opt("--out", "-o", help=OUT_HELP)] = None,
    models: Annotated[Path | None, Opt("--models", help="Ship the attribution nets here (implies --ship).")] = None,
    write_docs: Annotated[bool, Opt("--write-docs", help=WRITE_DOCS_HELP)] = False,
    ship: Annotated[bool, Opt("--ship/--no-ship", help=SHIP_HELP)] = False,
    paper_size: Annotated[bool, Opt("--paper-size", help=PAPER_SIZE_HELP)] = False,
    only: Annotated[list[str] | None, Opt(help="Run only these experiments (repeatable): architectures, "
                                               "seeds, components, immunisation, visnet.")] = None,
    quick: Annotated[bool, Opt("--quick", hidden=True)] = False,
    set_: Annotated[list[str] | None, Opt("--set", help="Override a setting, KEY=VALUE (repeatable; "
                                                        "tuples comma-separated), e.g. --set epochs=6.")] = None,
    as_json: Annotated[bool, Opt("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Yu, Davis & Fritz 2019 (learned GAN fingerprints): Tables 1, 3, 4, 5, 7 and the fingerprint figure."""
    from genattr.evaluation.yu2019 import Yu2019Config, quick_config, run_yu2019

    _quick_alias(quick)
    cfg = (Yu2019Config() if paper_size else quick_config()).override(parse_set(set_))
    out_dir, models_dir, command = prepare_reproduce("yu2019", out=out, models=models, write_docs=write_docs,
                                                     ship=ship, paper_size=paper_size, only=only, set_=set_)
    report = run_yu2019(out_dir, models_dir=models_dir, config=cfg, only=only, command=command,
                        log=lambda m: reproduce_log(m, as_json))
    reproduce_done("yu2019", report, out_dir, models_dir, as_json)


@reproduce_app.command("flipad")
@clean_errors
def flipad(
    out: Annotated[Path | None, Opt("--out", "-o", help=OUT_HELP)] = None,
    models: Annotated[Path | None, Opt("--models", help="Ship Table 1's FLIPAD detectors here (implies --ship).")
                      ] = None,
    write_docs: Annotated[bool, Opt("--write-docs", help=WRITE_DOCS_HELP)] = False,
    ship: Annotated[bool, Opt("--ship/--no-ship", help=SHIP_HELP + " First run's detector of each "
                                                                   "`ship_models` generator.")] = False,
    paper_size: Annotated[bool, Opt("--paper-size", help=PAPER_SIZE_HELP)] = False,
    only: Annotated[list[str] | None, Opt(help="Run only these experiments (repeatable), "
                                               "e.g. table1, table2, table3.")] = None,
    quick: Annotated[bool, Opt("--quick", hidden=True)] = False,
    set_: Annotated[list[str] | None, Opt("--set", help="Override a setting, KEY=VALUE (repeatable).")] = None,
    merge_from: Annotated[list[Path] | None, Opt(
        "--merge-from", help="Run nothing: copy the methods of these results directories (e.g. runs made in "
                             "parallel with --out) into --out (or --write-docs) and rebuild its report "
                             "(repeatable).")] = None,
    as_json: Annotated[bool, Opt("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Laszkiewicz et al. 2024 (FLIPAD and baselines): Tables 1, 2, 3 (+ AUC, timings, Fig. 4)."""
    from genattr.errors import ConfigError
    from genattr.evaluation.flipad_experiments import FlipadConfig, merge_results, quick_config, reproduce_flipad

    _quick_alias(quick)
    if merge_from:
        if out is None and not write_docs:
            raise ConfigError("--merge-from needs the directory to merge into: --out DIR or --write-docs")
        target = out if out is not None else Path("docs/results/flipad")
        for src in merge_from:
            report = merge_results(src, target)
        console.print(f"[bold green]merged[/] {len(merge_from)} result director{'y' if len(merge_from) == 1 else 'ies'}"
                      f" → {escape(str(report))}")
        return
    cfg = (FlipadConfig() if paper_size else quick_config()).override(parse_set(set_))
    out_dir, models_dir, command = prepare_reproduce("flipad", out=out, models=models, write_docs=write_docs,
                                                     ship=ship, paper_size=paper_size, only=only, set_=set_)
    report = reproduce_flipad(out_dir, config=cfg, only=only, command=command,
                              log=lambda m: reproduce_log(m, as_json), models_dir=models_dir)
    reproduce_done("flipad", report, out_dir, models_dir, as_json)


@reproduce_app.command("kim2021")
@clean_errors
def kim2021(
    out: Annotated[Path | None, Opt("--out", "-o", help=OUT_HELP)] = None,
    models: Annotated[Path | None, Opt("--models", help="Write the release (key sets + user models) here "
                                                        "(implies --ship).")] = None,
    write_docs: Annotated[bool, Opt("--write-docs", help=WRITE_DOCS_HELP)] = False,
    ship: Annotated[bool, Opt("--ship/--no-ship", help=SHIP_HELP)] = False,
    paper_size: Annotated[bool, Opt("--paper-size", help=PAPER_SIZE_HELP)] = False,
    only: Annotated[list[str] | None, Opt(help="Run only these experiments (repeatable).")] = None,
    quick: Annotated[bool, Opt("--quick", hidden=True)] = False,
    set_: Annotated[list[str] | None, Opt("--set", help="Override a setting, KEY=VALUE (repeatable).")] = None,
    as_json: Annotated[bool, Opt("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Kim, Ren & Yang 2021 (registry keys): Tables 1, 2, 5–6, Fig. 2, border ablation, the many-user simulation."""
    from genattr.evaluation.kim2021 import Kim2021Config, quick_config, reproduce_kim2021

    _quick_alias(quick)
    cfg = (Kim2021Config() if paper_size else quick_config()).override(parse_set(set_))
    out_dir, models_dir, command = prepare_reproduce("kim2021", out=out, models=models, write_docs=write_docs,
                                                     ship=ship, paper_size=paper_size, only=only, set_=set_)
    report = reproduce_kim2021(cfg, out_dir, models_dir=models_dir, only=only, command=command,
                               log=lambda m: reproduce_log(m, as_json))
    reproduce_done("kim2021", report, out_dir, models_dir, as_json)


def _register_more() -> None:
    """Papers whose reproduction commands live beside their method's CLI module."""
    from genattr.cli.fingerprint_cmds import reproduce_yu2022_cmd
    from genattr.cli.reconstruct_cmds import reproduce_zhang2020_command

    reproduce_app.command("zhang2020")(reproduce_zhang2020_command)
    reproduce_app.command("yu2022")(reproduce_yu2022_cmd)


_register_more()

__all__ = ["reproduce_app"]
