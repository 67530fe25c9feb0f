"""The ``genattr`` command line: a thin Typer layer over the library.

Every command turns library errors (``GenattrError``) into one red line on stderr and exit code 1; usage
errors exit 2 (Typer's convention). Tracebacks are shown only with ``GENATTR_DEBUG=1``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from genattr.cli.common import clean_errors, console, err_console, fail
from genattr.errors import GenattrError

app = typer.Typer(name="genattr", help="Attribute generated content to the model that made it.",
                  add_completion=False, pretty_exceptions_enable=False)
zoo_app = typer.Typer(help="The shipped generator zoo.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")

# Re-exported: sub-command modules import these from genattr.cli.common.
__all__ = ["app", "clean_errors", "console", "err_console", "fail", "main"]


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context,
          version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        from genattr import __version__

        console.print(f"genattr {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())
        raise typer.Exit()


@zoo_app.command("list")
@clean_errors
def zoo_list(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the zoo's generators with their measured quality."""
    import json

    from genattr import zoo

    man = zoo.manifest()
    if as_json:
        console.print_json(json.dumps({n: {k: man["models"][n].get(k) for k in ("arch", "seed", "epochs",
                                                                               "quality", "file_sha256")}
                                       for n in zoo.names()}))
        return
    ref = man.get("quality_reference", {}).get("real_train_vs_real_test")
    table = Table(title="genattr zoo (FD: Fréchet distance in classifier features, lower is better)")
    for col in ("name", "arch", "seed", "epochs", "FD", "sha256"):
        table.add_column(col)
    for n in zoo.names():
        e = man["models"][n]
        fd = e.get("quality", {}).get("fd")
        table.add_row(n, e["arch"], str(e["seed"]), str(e["epochs"]), f"{fd:.2f}" if fd is not None else "-",
                      e["file_sha256"][:12])
    console.print(table)
    if ref is not None:
        console.print(f"real train vs real test FD: {ref:.2f}")


def _mount_zoo_sample() -> None:
    """`genattr zoo sample` lives in genattr.cli.zoo_sample_cmds (per-image PNGs, seeds, logged generation)."""
    from genattr.cli.zoo_sample_cmds import zoo_sample

    zoo_app.command("sample")(zoo_sample)


_mount_zoo_sample()


@zoo_app.command("train")
@clean_errors
def zoo_train(
    arch: Annotated[str, typer.Argument(help="Architecture: dcgan, wgan_gp, lsgan or ebgan.")],
    seed: Annotated[int, typer.Option(help="Training seed (weights init, data order, noise).")] = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 5,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (resumed if it exists).")
                   ] = Path("runs/gan"),
    ngf: Annotated[int, typer.Option(min=1)] = 32,
    ndf: Annotated[int, typer.Option(min=1)] = 32,
    batch_size: Annotated[int, typer.Option(min=2)] = 128,
    limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    data: Annotated[str, typer.Option(help="fashion-mnist or digits.")] = "fashion-mnist",
    resume: Annotated[bool, typer.Option(help="Resume from a checkpoint in --out.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Train a GAN on real data (deterministic given --seed, resumable, progress bar, sample grids)."""
    from genattr.generators import generator_class
    from genattr.training import TrainConfig, train_gan

    generator_class(arch)  # unknown names fail with the list of known ones
    cfg = TrainConfig(arch=arch, seed=seed, epochs=epochs, ngf=ngf, ndf=ndf, batch_size=batch_size,
                      limit=limit, data=data)
    res = train_gan(cfg, out, resume=resume)
    if as_json:
        from genattr.cli.common import emit_json

        emit_json({"arch": arch, "seed": seed, "epochs": res.epochs_done, "seconds": res.seconds,
                   "generator": str(out / "generator"), "samples": str(out / "samples")})
        return
    console.print(f"trained {arch} seed {seed} for {res.epochs_done} epochs in {res.seconds:.0f} s; "
                  f"generator saved to {out / 'generator'}, sample grids in {out / 'samples'}")


@zoo_app.command("rebuild")
@clean_errors
def zoo_rebuild(
    only: Annotated[list[str] | None, typer.Option(help="Rebuild only these entries (repeatable).")] = None,
    runs: Annotated[Path, typer.Option(help="Where training runs (and checkpoints) live.")] = Path("runs/zoo"),
    n_eval: Annotated[int, typer.Option(min=100, help="Samples per FD measurement.")] = 10_000,
    measure_only: Annotated[bool, typer.Option(help="Only re-measure quality and rewrite the manifest.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rebuilt manifest entries on stdout.")] = False,
) -> None:
    """Retrain zoo entries from the manifest recipes and re-measure quality (for the record; slow)."""
    from genattr.zoo.build import rebuild

    man = rebuild(only=only, runs=runs, n_eval=n_eval, retrain=not measure_only)
    if as_json:
        from genattr.cli.common import emit_json

        emit_json({n: e for n, e in (man or {}).get("models", {}).items() if not only or n in only})


@app.command()
@clean_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("demo-out"),
    n: Annotated[int, typer.Option("-n", min=1, max=10_000, help="Samples per model.")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json on stdout (the tour on stderr).")
                       ] = False,
) -> None:
    """End-to-end demo on the shipped zoo: sample every model, write grids and a short report."""
    from genattr.demo import run_demo

    report = run_demo(out, n=n, seed=seed, console=err_console if as_json else console)
    if as_json:
        typer.echo((report.parent / "report.json").read_text())
        return
    console.print(f"[bold green]demo done[/] → {escape(str(report))}")


# Sub-command trees owned by other modules: (module, Typer app attribute, command name, help).
_SUBAPPS = (
    ("genattr.cli.ledger_cmds", "log_app", "log", "Tamper-evident generation log (RFC 6962 / C2SP)."),
    ("genattr.cli.ledger_cmds", "witness_app", "witness", "Transparency-log witness (C2SP tlog-witness)."),
    ("genattr.cli.classify_cmds", "classify_app", "classify", "Learned GAN-fingerprint classifier (Yu 2019)."),
    ("genattr.cli.flipad_cmds", "flipad_app", "flipad", "Single-model attribution (FLIPAD, ICML 2024)."),
    ("genattr.cli.keys_cmds", "keys_app", "keys", "Registry keys and keyed user models (Kim et al., ICLR 2021)."),
    ("genattr.cli.fingerprint_cmds", "fingerprint_app", "fingerprint", "Bit fingerprints (Yu et al., ICLR 2022)."),
    ("genattr.cli.reproduce_cmds", "reproduce_app", "reproduce", "Reproduce a paper's experiments."),
    ("genattr.cli.registry_cmds", "registry_app", "registry", "The model registry database (models, components)."),
    # a single command (`genattr reconstruct IMAGE…`), mounted without a group name
    ("genattr.cli.reconstruct_cmds", "reconstruct_app", None, None),
    ("genattr.cli.attribute_cmds", "attribute_app", None, None),  # `genattr attribute IMAGE…|DIR`
    ("genattr.cli.serve_cmds", "serve_app", None, None),
)


def _register_subapps() -> None:
    import importlib
    import importlib.util

    for module, attr, name, help_text in _SUBAPPS:
        if importlib.util.find_spec(module) is None:  # a sub-tree not built yet; real import errors still raise
            continue
        sub = getattr(importlib.import_module(module), attr)
        if name is None:
            app.add_typer(sub)
        else:
            app.add_typer(sub, name=name, help=help_text)


_register_subapps()


def main() -> None:
    try:
        app()
    except GenattrError as exc:  # errors raised outside decorated commands (e.g. callbacks)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(1)


if __name__ == "__main__":
    main()
