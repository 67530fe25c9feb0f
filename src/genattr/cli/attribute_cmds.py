"""`genattr attribute IMAGE…|DIR`: who made these images? One answer per image, from every registered component.

    genattr attribute img1.png img2.png                       # a table
    genattr attribute folder/ --json > verdicts.json          # {"schema": "genattr.verdict/1", "results": [...]}
    genattr attribute folder/ --out results.csv --engine ray  # a CSV row per image; Ray tasks over image chunks
    genattr attribute img.png --deep                          # + seed reconstruction over the shortlist

The components come from the model registry (``--db URL``, else ``GENATTR_DATABASE_URL``, else the SQLite file
under ``GENATTR_HOME``); an empty default registry is filled with the shipped models first. A folder of any size
streams in chunks (``--chunk-size``) with a progress bar on stderr; nothing is cropped or resized — an image of
the wrong size or colour is reported as an error row. The combining policy is docs/attribute.md. Exit code 1
when some file could not be attributed (its row says why), else 0.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from genattr.cli.common import clean_errors, console, err_console, warn

attribute_app = typer.Typer(help="One answer per image from every registered attribution method.")

MAX_FILE_BYTES = 64 << 20  # a larger "image file" is refused unread
TABLE_LIMIT = 200  # above this many images the terminal gets counts per answer, not one row each
CSV_FIELDS = ("path", "answer", "confidence", "model_id", "decided_by", "image_sha256", "log", "kim-keys", "yu2022",
              "classifier", "flipad", "seed-reconstruction", "error")


def expand_inputs(inputs: list[Path], *, recursive: bool = False) -> list[Path]:
    """Files as given; folders → their PNG/JPEG/WebP files, sorted (deterministic order)."""
    from genattr.errors import DataError
    from genattr.unified.images import SUFFIXES

    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in (p.rglob("*") if recursive else p.iterdir())
                           if f.suffix.lower() in SUFFIXES and f.is_file())
            if not found:
                raise DataError(f"{p}: no .png/.jpg/.jpeg/.webp images found" + ("" if recursive else
                                                                                 " (--recursive for subfolders)"))
            out.extend(found)
        else:
            out.append(p)  # a missing file becomes an error row, not the end of the run
    return out


def _read(path: Path, shape: tuple[int, ...]) -> tuple[Any, bytes | None, str | None]:
    """(tensor (C, H, W), file bytes, None) or (None, None, error message)."""
    from genattr.errors import GenattrError
    from genattr.unified.images import decode_image

    try:
        if not path.is_file():
            return None, None, "no such file"
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, None, f"larger than {MAX_FILE_BYTES >> 20} MiB; refusing to read it"
        data = path.read_bytes()
        return decode_image(data, shape, where=path.name), data, None
    except GenattrError as exc:
        return None, None, str(exc)
    except OSError as exc:
        return None, None, exc.strerror or str(exc)


def _chunks(paths: list[Path], shape: tuple[int, ...], size: int, meta: deque[Any]) -> Iterator[Any]:
    """Decoded chunks for the engine; per chunk, (paths, {index in chunk: error}, index of each good image) goes
    to ``meta`` in the same order (the engine may read ahead)."""
    import torch

    for s in range(0, len(paths), size):
        part = paths[s:s + size]
        xs, data, good, bad = [], [], [], {}
        for j, p in enumerate(part):
            x, b, err = _read(p, shape)
            if err is not None:
                bad[j] = err
            else:
                xs.append(x)
                data.append(b)
                good.append(j)
        meta.append((part, bad, good))
        yield (torch.stack(xs) if xs else torch.zeros(0, *shape)), data


def _load_pipeline(db: str | None, calibration: Path | None) -> Any:
    from genattr.registry import Registry
    from genattr.unified import Pipeline

    with Registry.open(db) as reg:
        if db is None and not reg.list_components() and not reg.list_models():
            warn(f"the registry {reg.display_url} is empty: registering the shipped models first "
                 "(`genattr registry import-shipped`)")
            reg.import_shipped()
        if not reg.list_components():
            from genattr.errors import ConfigError

            raise ConfigError(f"the registry {reg.display_url} has no attribution components; register some "
                              "(`genattr registry import-shipped`, `genattr registry add …`)")
        return Pipeline.from_registry(reg, calibration=calibration)


def emit_results(paths: list[Any], verdicts: dict[int, Any], errors: dict[int, str], **context: Any) -> None:
    """The ``--json`` output of the one-method commands (classify predict, flipad score, keys verify,
    fingerprint decode): ``{"schema": "genattr.verdict/1", **context, "results": [...]}``, one result per input in
    order — a verdict with its ``path``, or ``{"path", "error"}`` for a file that was not attributed."""
    from genattr.unified import SCHEMA_VERSION
    from genattr.unified.verdict import json_clean

    results = [{"path": str(p), "error": errors[i]} if i in errors else {"path": str(p), **verdicts[i].to_json()}
               for i, p in enumerate(paths)]
    typer.echo(json.dumps({"schema": SCHEMA_VERSION, **json_clean(context), "results": results}, indent=2,
                          allow_nan=False))


def _summary(v: Any, method: str) -> str:
    evs = v.evidence_of(method)
    if all(e.verdict is None for e in evs):
        return "skipped"
    return ";".join(e.verdict for e in evs if e.verdict is not None)


def _csv_row(path: Path, v: Any, err: str | None) -> dict[str, Any]:
    if err is not None:
        return {"path": str(path), "error": err}
    row = {"path": str(path), "answer": v.answer, "confidence": f"{v.confidence:.6g}", "model_id": v.model_id or "",
           "decided_by": v.decided_by or "", "image_sha256": v.image_sha256 or "", "error": ""}
    for m in ("log", "kim-keys", "yu2022", "classifier", "flipad", "seed-reconstruction"):
        row[m] = _summary(v, m)
    return row


@attribute_app.command("attribute")
@clean_errors
def attribute_cmd(
    inputs: Annotated[list[Path], typer.Argument(metavar="IMAGE…|DIR",
                                                 help="Image files (PNG, JPEG, WebP) and/or folders of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print {\"schema\": \"genattr.verdict/1\", \"results\": \\"
                                                         "[verdict, …]} on stdout.")] = False,
    deep: Annotated[bool, typer.Option("--deep", help="Also reconstruct seeds over the shortlist (slow).")] = False,
    engine: Annotated[str, typer.Option(help="local (in-process) or ray (Ray tasks over image chunks).")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="A Ray cluster (e.g. ray://head:10001 "
                                                    "or auto); default: a local Ray.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write one CSV row per image here.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Registry URL (default: $GENATTR_DATABASE_URL or the "
                                                        "SQLite file under $GENATTR_HOME).")] = None,
    calibration: Annotated[Path | None, typer.Option(help="Calibration scores (JSON) to use instead of the shipped "
                                                          "models/unified/calibration.json.")] = None,
    chunk_size: Annotated[int, typer.Option(min=1, max=65536, help="Images per chunk (and per Ray task).")] = 256,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Include images in subfolders.")] = False,
    threads: Annotated[int, typer.Option(min=1, help="torch threads per chunk.")] = 2,
) -> None:
    """Attribute every image: a registered model's name, real, unknown or ambiguous, with the confidence and the
    evidence of each method (trusted log, Kim keys, Yu 2022 fingerprints, classifiers + FLIPAD detectors, and
    with --deep seed reconstruction)."""
    import torch

    from genattr.unified.engines import make_engine

    paths = expand_inputs(inputs, recursive=recursive)
    eng = make_engine(engine, address=ray_address)
    pipe = _load_pipeline(db, calibration)
    shape = tuple(pipe.image_shape)
    methods = ", ".join(f"{m} ×{k}" for m, k in pipe.describe()["methods"].items() if k)
    err_console.print(f"attributing {len(paths)} image(s) ({shape[0]}×{shape[1]}×{shape[2]}) with {methods}"
                      f"{' + seed reconstruction' if deep else ''}; engine {engine}, chunks of {chunk_size}",
                      highlight=False, markup=False)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        counts, rows, n_bad = _run(pipe, eng, paths, shape, chunk_size, deep, as_json, out)
    finally:
        torch.set_num_threads(old)
        eng.shutdown()
    if not as_json:
        _print_human(rows, counts, len(paths), out)
    if n_bad:
        raise typer.Exit(1)


def _run(pipe: Any, eng: Any, paths: list[Path], shape: tuple[int, ...], chunk_size: int, deep: bool,
         as_json: bool, out: Path | None) -> tuple[Counter[str], list[tuple[str, Any, str | None]], int]:
    from genattr.progress import rich_progress
    from genattr.unified import SCHEMA_VERSION

    meta: deque[Any] = deque()
    counts: Counter[str] = Counter()
    rows: list[tuple[str, Any, str | None]] = []  # for the terminal table (kept only while small)
    n_bad = 0
    first = True
    csv_file = out.open("w", newline="", encoding="utf-8") if out is not None else None
    writer = csv.DictWriter(csv_file, fieldnames=CSV_FIELDS) if csv_file is not None else None
    if writer is not None:
        writer.writeheader()
    if as_json:
        sys.stdout.write(f'{{"schema": "{SCHEMA_VERSION}", "results": [')
    progress = rich_progress(err_console, label="attributing")
    try:
        with progress:
            task = progress.add_task("attribute", total=len(paths))
            for verdicts in eng.run(pipe, _chunks(paths, shape, chunk_size, meta), deep=deep):
                part, bad, good = meta.popleft()
                by_index = dict(zip(good, verdicts, strict=True))
                for j, p in enumerate(part):
                    v, err = by_index.get(j), bad.get(j)
                    n_bad += err is not None
                    counts["error" if err is not None else v.answer] += 1  # type: ignore[union-attr]
                    if len(rows) <= TABLE_LIMIT:
                        rows.append((str(p), v, err))
                    if writer is not None:
                        writer.writerow(_csv_row(p, v, err))
                    if as_json:
                        item = {"path": str(p), "error": err} if err is not None else \
                            {"path": str(p), **v.to_json()}  # type: ignore[union-attr]
                        sys.stdout.write(("" if first else ",") + "\n" + json.dumps(item, allow_nan=False))
                        first = False
                progress.advance(task, len(part))
    finally:
        if as_json:
            sys.stdout.write("\n]}\n")
            sys.stdout.flush()
        if csv_file is not None:
            csv_file.close()
    return counts, rows, n_bad


def _print_human(rows: list[tuple[str, Any, str | None]], counts: Counter[str], n: int, out: Path | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    if n <= TABLE_LIMIT:
        table = Table(title="genattr attribute (docs/attribute.md explains the answers)")
        for col in ("image", "answer", "confidence", "decided by", "evidence"):
            table.add_column(col)
        for path, v, err in rows:
            if err is not None:
                table.add_row(escape(Path(path).name), "[red]error[/]", "", "", escape(err))
                continue
            ev = "; ".join(f"{m}: {_summary(v, m)}" for m in ("log", "kim-keys", "yu2022", "classifier", "flipad",
                                                               "seed-reconstruction") if _summary(v, m) != "skipped")
            table.add_row(escape(Path(path).name), escape(v.answer), f"{v.confidence:.3f}", escape(v.decided_by or "-"),
                          escape(ev or "no method ran"))
        console.print(table)
    table = Table(title=f"{n} image(s)")
    table.add_column("answer")
    table.add_column("images", justify="right")
    for answer, k in counts.most_common():
        table.add_row(escape(answer), str(k))
    console.print(table)
    if out is not None:
        console.print(f"one row per image in {escape(str(out))}", highlight=False)


__all__ = ["attribute_app", "emit_results", "expand_inputs"]
