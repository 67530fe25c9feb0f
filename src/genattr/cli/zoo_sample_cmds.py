"""`genattr zoo sample`: per-image PNGs with one seed each, a preview grid, and logged generation.

    genattr zoo sample fmnist-dcgan-s0 -n 16 --seed 0 --out-dir samples/       # 16 PNGs + samples.json/.csv
    genattr zoo sample fmnist-dcgan-s0 -n 64 -o grid.png                       # a preview grid only
    genattr zoo sample fmnist-dcgan-s0 -n 8 --out-dir out/ --log gen.db --owner-key keys/owner.skey
                                              # NAME-logI.png (I = log index; the seeds stay private)

One seed per image: image i is G(z(seed_i)) with seed_i = SEED + i (``--seed``), or fresh random 63-bit seeds
with ``--log`` and no ``--seed``; ``genattr zoo sample NAME -n 1 --seed S`` regenerates any one of them. The
latent convention is the generation log's (:func:`genattr.attribution.deniability.seeded_latent`), so a logged
image regenerates from the seed in its receipt.

Per-image PNGs are written at the model's own size (32×32): what the classifiers and detectors read. The grid
is a preview: tiles with borders, upscaled ×2 by default — never feed it (or a crop of it) to a classifier.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from genattr.cli.common import clean_errors, console, emit_json, err_console

INDEX_JSON, INDEX_CSV = "samples.json", "samples.csv"
CONVENTION = ("image = G(seeded_latent(seed, 0)), genattr.attribution.deniability; regenerate one with "
              "`genattr zoo sample NAME -n 1 --seed SEED --out-dir DIR`")


def image_name(model: str, seed: int) -> str:
    return f"{model}-seed{seed}.png"


def logged_image_name(model: str, index: int) -> str:
    """Logged images are named by their public log index: the seed is private (it opens the commitment)."""
    return f"{model}-log{index}.png"


def _save_new(im: Any, path: Path) -> Path:
    """Save a PNG without overwriting anything: an existing name gets a -dupK suffix."""
    k = 0
    while True:
        target = path if k == 0 else path.with_name(f"{path.stem}-dup{k}{path.suffix}")
        try:
            with open(target, "xb") as f:
                im.save(f, format="PNG")
            return target
        except FileExistsError:
            k += 1


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tmp.replace(path)


def write_index(out_dir: Path, model: str, model_sha256: str, rows: list[dict[str, Any]], *, logged: bool) -> None:
    """samples.json and samples.csv: file, seed (and log index) per image. With --log the seeds are private
    (the log publishes only salted commitments), so the index is then written 0600."""
    mode = 0o600 if logged else 0o644
    doc = {"model": model, "model_sha256": model_sha256, "convention": CONVENTION, "images": rows}
    _write_atomic(out_dir / INDEX_JSON, json.dumps(doc, indent=2) + "\n", mode)
    buf = io.StringIO()
    fields = ["file", "seed", *(["log_index"] if logged else [])]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    _write_atomic(out_dir / INDEX_CSV, buf.getvalue(), mode)


def _logged(images_fn: Any, seeds: list[int], db: Path, owner_key: Path, weights: Path, insecure_key: bool
            ) -> Any:
    """Generate through the log's hook: the entries are durably committed before any image is returned."""
    from genattr.ledger import LoggedGenerator, TransparencyLog, load_signer

    owner = load_signer(owner_key, insecure=insecure_key)
    with TransparencyLog.open(db) as log:
        gen = LoggedGenerator(images_fn, log, owner=owner, model_id=weights, per_sample_seeds=True)
        return gen(seeds=seeds)


def zoo_sample(
    name: Annotated[str, typer.Argument(help="Zoo model name (see `genattr zoo list`).")],
    n: Annotated[int, typer.Option("-n", min=1, max=100_000, help="Number of images.")] = 64,
    seed: Annotated[int | None, typer.Option(help="Seed of the first image; image i uses SEED + i (same seed, "
                                             "same image). Default 0, or fresh random seeds with --log.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG preview grid to write (default grid.png "
                                             "when no --out-dir is given).")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Write one PNG per image at the model's size "
                                                 "(NAME-seedS.png) and an index (samples.json, samples.csv).")
                       ] = None,
    nrow: Annotated[int, typer.Option(min=1, help="Images per grid row.")] = 8,
    scale: Annotated[int | None, typer.Option(min=1, max=16, help="Integer upscaling of the grid preview "
                                              "(default 2; 1 for a single image).")] = None,
    log: Annotated[Path | None, typer.Option("--log", help="Log every image in this generation log database "
                                             "(`genattr log init`) before writing it; needs --out-dir.")] = None,
    owner_key: Annotated[Path | None, typer.Option("--owner-key", help="The owner's .skey (signs each entry); "
                                                   "with --log.")] = None,
    receipts: Annotated[Path | None, typer.Option(help="With --log: append the receipts (seed openings) here "
                                                  "(default OUT_DIR/receipts.jsonl, 0600; keep it private).")
                        ] = None,
    insecure_key: Annotated[bool, typer.Option("--insecure-key", help="Use a private key file others can read "
                                                                     "or write (refused by default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
    output_alias: Annotated[Path | None, typer.Option("--output", hidden=True)] = None,
) -> None:
    """Sample a zoo generator: per-image PNGs with their seeds (--out-dir), a preview grid (-o), and with
    --log, logged generation (one seed per image, committed before any file is written)."""
    from genattr import zoo
    from genattr.attribution.deniability import seeded_images, to_pil_images
    from genattr.cli.common import renamed_option
    from genattr.data import save_png
    from genattr.errors import ConfigError

    out = renamed_option(out, output_alias, "-o/--out", "--output")
    if log is not None and (out_dir is None or owner_key is None):
        raise ConfigError("--log needs --out-dir (the released images) and --owner-key (signs each entry)")
    if log is None and (owner_key is not None or receipts is not None):
        raise ConfigError("--owner-key / --receipts only apply with --log")
    if out_dir is None and out is None:
        out = Path("grid.png")
    weights = zoo.verify(name) / "model.safetensors"
    g = zoo.load(name)
    if seed is None and log is not None:
        seeds = [secrets.randbits(63) for _ in range(n)]
    else:
        seeds = [(seed or 0) + i for i in range(n)]
    files: list[Path] = []
    indices: list[int] | None = None
    receipts_path: Path | None = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if log is not None:
        from genattr.attribution.deniability import image_sampler

        receipts_path = receipts or (out_dir / "receipts.jsonl")  # type: ignore[operator]
        rf = _open_private_append(receipts_path)  # a bad path fails here, before anything is committed
        try:
            res = _logged(image_sampler(g), seeds, log, owner_key, weights, insecure_key)  # type: ignore[arg-type]
            # Committed. Receipts first (they open the commitments), then the images.
            indices = [r.index for r in res.receipts]
            files = [out_dir / logged_image_name(name, i) for i in indices]  # type: ignore[operator]
            rf.write("".join(json.dumps(r.to_dict() | {"image": str(f)}) + "\n"
                             for r, f in zip(res.receipts, files, strict=True)))
            rf.flush()
            os.fsync(rf.fileno())
        finally:
            rf.close()
        pil = res.images
        x = None
    else:
        x = seeded_images(g, seeds)
        pil = to_pil_images(x) if out_dir is not None else []
    rows: list[dict[str, Any]] = []
    if out_dir is not None:
        if log is None:
            files = [out_dir / image_name(name, s) for s in seeds]
        for i, (im, f) in enumerate(zip(pil, files, strict=True)):
            if log is None:
                im.save(f, format="PNG")
            else:
                files[i] = f = _save_new(im, f)
            rows.append({"file": f.name, "seed": seeds[i], **({"log_index": indices[i]} if indices else {})})
        write_index(out_dir, name, zoo.entry(name)["file_sha256"], rows, logged=log is not None)
    if out is not None:
        if x is None:
            x = seeded_images(g, seeds)
        sc = scale if scale is not None else (1 if n == 1 else 2)
        save_png(x, out, nrow=nrow, scale=sc)
    say = err_console if as_json else console
    if out_dir is not None:
        say.print(f"wrote {n} images of {escape(name)} ({g.image_size}×{g.image_size}, one seed each: "
                  f"{_seed_range(seeds)}) to {escape(str(out_dir))}, index in {INDEX_JSON} / {INDEX_CSV}",
                  highlight=False)
    if log is not None:
        say.print(f"logged {n} images in {escape(str(log))} (indices {indices[0]}…{indices[-1]}) before writing "
                  f"them; receipts in {escape(str(receipts_path))}. The receipts and the index hold the seeds: keep "
                  "them private, publish only the PNGs.", highlight=False)  # type: ignore[index]
    if out is not None:
        say.print(f"wrote a preview grid of {n} images to {escape(str(out))} (×{sc} upscaled tiles with borders: "
                  f"a preview, not input for a classifier; the models read single {g.image_size}×{g.image_size} "
                  "images, use --out-dir)", highlight=False)
    if as_json:
        emit_json({"model": name, "n": n, "seeds": seeds, "out_dir": None if out_dir is None else str(out_dir),
                   "files": [str(f) for f in files], "grid": None if out is None else str(out),
                   "log": None if log is None else {"db": str(log), "indices": indices,
                                                    "receipts": str(receipts_path)}})


def _seed_range(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}…{seeds[-1]}"
    return "seed " + str(seeds[0]) if len(seeds) == 1 else f"{len(seeds)} random seeds"


def _open_private_append(path: Path) -> Any:
    from genattr.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"--receipts {path} is a directory; give a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")


zoo_sample = clean_errors(zoo_sample)

__all__ = ["INDEX_CSV", "INDEX_JSON", "image_name", "write_index", "zoo_sample"]
