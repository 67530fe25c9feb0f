"""`genattr registry …`: the model registry database (models, attribution components, API tokens).

    genattr registry init [--db URL]                      create / upgrade the database
    genattr registry import-shipped [ROOT]                register the zoo and every shipped model
    genattr registry add NAME --kind zoo --arch dcgan --path DIR
    genattr registry add NAME --kind flipad-detector --path DIR --covers MODEL
    genattr registry list [--kind K] | show NAME | remove NAME
    genattr registry token create LABEL | revoke LABEL | list

``--db`` takes a SQLAlchemy URL (``postgresql+psycopg://user:pw@host/db``) or a plain path (a SQLite file); the
default is ``$GENATTR_DATABASE_URL``, else ``$GENATTR_HOME/registry.db``. Every command has ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from genattr.cli.common import clean_errors, console, warn

if TYPE_CHECKING:
    from genattr.registry import Registry

registry_app = typer.Typer(help="The model registry database: models, attribution components, API tokens.",
                           no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for registry writes over HTTP (stored hashed).", no_args_is_help=True)
registry_app.add_typer(token_app, name="token")

DbOpt = Annotated[str | None, typer.Option(
    "--db", help="Database URL or SQLite file path [default: $GENATTR_DATABASE_URL, else $GENATTR_HOME/registry.db].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def db_url(db: str | None) -> str | None:
    """``--db``: a URL as given; a plain path becomes ``sqlite:///<absolute path>``."""
    if db is None or "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


@contextmanager
def opened(db: str | None) -> Iterator[Registry]:
    from genattr.registry import Registry

    reg = Registry.open(db_url(db))
    try:
        yield reg
    finally:
        reg.close()


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _short(text: str | None, n: int = 12) -> str:
    return "-" if not text else (text[:n] + "…" if len(text) > n else text)


@registry_app.command("init")
@clean_errors
def init(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Create the registry database (or upgrade its schema); safe to run again."""
    from genattr.registry.db import head_revision

    with opened(db) as reg:
        info = {"url": reg.display_url, "backend": reg.backend, "revision": head_revision(),
                "models": len(reg.list_models()), "components": len(reg.list_components())}
    if as_json:
        _emit(info)
        return
    console.print(f"registry ready: {escape(info['url'])} (schema {info['revision']}, {info['models']} models, "
                  f"{info['components']} components)", highlight=False)


@registry_app.command("add")
@clean_errors
def add(
    name: Annotated[str, typer.Argument(help="Name of the model or component (A-Z a-z 0-9 . _ -).")],
    kind: Annotated[str, typer.Option(help="Model kind (zoo, keyed-user, fingerprint-instance, external) or "
                                           "component kind (classifier, flipad-detector, kim-keys, yu2022-decoder, "
                                           "yu2022-index, log-origin).")],
    path: Annotated[str | None, typer.Option(help="Directory (or file / log database URL) it lives at.")] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture (models only), e.g. dcgan.")] = None,
    sha256: Annotated[str | None, typer.Option(help="sha256 of the weights (computed from --path if omitted).")
                      ] = None,
    owner: Annotated[str | None, typer.Option(help="Owner of the model (models only).")] = None,
    covers: Annotated[list[str] | None, typer.Option(
        help="Components: a model it covers, repeatable and in order (a classifier's candidates; 'real' is the "
             "real-data class).")] = None,
    meta: Annotated[str | None, typer.Option(help="Extra metadata as a JSON object (log-origin: origin, "
                                                  "verifier_key).")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register one model or attribution component."""
    from genattr.errors import ConfigError
    from genattr.registry import COMPONENT_KINDS, MODEL_KINDS

    try:
        extra = json.loads(meta) if meta else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--meta is not JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise ConfigError("--meta must be a JSON object")
    with opened(db) as reg:
        if kind in MODEL_KINDS:
            if covers:
                raise ConfigError("--covers is for components; a model covers nothing")
            if arch is None:
                raise ConfigError("a model needs --arch (e.g. dcgan)")
            rec: Any = reg.add_model(name=name, kind=kind, architecture=arch, path=path, sha256=sha256, owner=owner,
                                     meta=extra)
            what = f"model {rec.name} ({rec.kind}, id {rec.id[:12]})"
        elif kind in COMPONENT_KINDS:
            if arch is not None or owner is not None:
                raise ConfigError("--arch and --owner are for models")
            if path is None:
                raise ConfigError(f"a {kind} needs --path")
            rec = reg.add_component(kind=kind, name=name, path=path, sha256=sha256, models=covers or (), meta=extra)
            what = f"{rec.kind} {rec.name}" + (f" covering {', '.join(rec.models)}" if rec.models else "")
        else:
            raise ConfigError(f"unknown kind {kind!r}; models: {', '.join(MODEL_KINDS)}; components: "
                              f"{', '.join(COMPONENT_KINDS)}")
    if as_json:
        _emit(rec.to_json())
        return
    console.print(f"registered {escape(what)}", highlight=False)


def _models_table(models: list[Any]) -> Table:
    t = Table(title="models")
    t.add_column("name", overflow="fold")
    for col in ("kind", "arch", "owner", "id", "created"):
        t.add_column(col)
    for m in models:
        t.add_row(escape(m.name), m.kind, escape(m.architecture), escape(m.owner or "-"), _short(m.id),
                  m.created.strftime("%Y-%m-%d %H:%M"))
    return t


def _components_table(components: list[Any]) -> Table:
    t = Table(title="attribution components")
    t.add_column("name", overflow="fold")
    for col in ("kind", "covers", "sha256"):
        t.add_column(col)
    for c in components:
        covers = ", ".join(c.models) if len(c.models) <= 6 else f"{', '.join(c.models[:5])}, … ({len(c.models)})"
        t.add_row(escape(c.name), c.kind, escape(covers or "-"), _short(c.sha256))
    return t


@registry_app.command("list")
@clean_errors
def list_cmd(
    kind: Annotated[str | None, typer.Option(help="Only this model or component kind.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered models and attribution components."""
    from genattr.errors import ConfigError
    from genattr.registry import COMPONENT_KINDS, MODEL_KINDS

    if kind is not None and kind not in MODEL_KINDS + COMPONENT_KINDS:
        raise ConfigError(f"unknown kind {kind!r}; known: {', '.join(MODEL_KINDS + COMPONENT_KINDS)}")
    with opened(db) as reg:
        models = reg.list_models(kind) if kind is None or kind in MODEL_KINDS else []
        components = reg.list_components(kind) if kind is None or kind in COMPONENT_KINDS else []
    if as_json:
        _emit({"models": [m.to_json() for m in models], "components": [c.to_json() for c in components]})
        return
    if not models and not components:
        console.print("the registry is empty; `genattr registry import-shipped` registers the shipped models")
        return
    if models:
        console.print(_models_table(models))
    if components:
        console.print(_components_table(components))


def _lookup(reg: Registry, name: str) -> tuple[str, Any]:
    """("model", ModelRecord) or ("component", ComponentRecord); names are unique across both."""
    from genattr.errors import UnknownNameError

    try:
        return "model", reg.get_model(name)
    except UnknownNameError:
        pass
    try:
        return "component", reg.get_component(name)
    except UnknownNameError:
        raise UnknownNameError(f"no registered model or component {name!r} (see `genattr registry list`)") from None


@registry_app.command("show")
@clean_errors
def show(
    name: Annotated[str, typer.Argument(help="Model name, id (or id prefix ≥ 8 digits) or component name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one model (and the components covering it) or one component."""
    with opened(db) as reg:
        what, rec = _lookup(reg, name)
        data = rec.to_json()
        if what == "model":
            data["components"] = reg.model_components(rec.id)
        elif rec.kind == "yu2022-index":
            data["codes"] = len(reg.list_codes(rec.name))
    if as_json:
        _emit({"type": what, **data})
        return
    t = Table(title=f"{what} {escape(rec.name)}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    for key, value in data.items():
        text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
        t.add_row(key, escape(text if len(text) <= 400 else text[:400] + "…"))
    console.print(t)


@registry_app.command("remove")
@clean_errors
def remove(
    name: Annotated[str, typer.Argument(help="Model name/id or component name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a model (none of the components may cover it) or a component. Files on disk are left alone."""
    with opened(db) as reg:
        what, rec = _lookup(reg, name)
        if what == "model":
            reg.remove_model(rec.id)
        else:
            reg.remove_component(rec.name)
    if as_json:
        _emit({"removed": rec.name, "type": what})
        return
    console.print(f"removed {what} {escape(rec.name)}", highlight=False)


@registry_app.command("import-shipped")
@clean_errors
def import_shipped(
    root: Annotated[Path | None, typer.Argument(help="A genattr checkout (holding zoo/ and models/) "
                                                     "[default: $GENATTR_HOME, else this checkout].")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register the zoo and every shipped classifier, detector, key set and fingerprint decoder/index, with
    their sha256 checked against the manifests; all or nothing, and safe to run again."""
    with opened(db) as reg:
        counts = reg.import_shipped(root)
        url = reg.display_url
    if as_json:
        _emit({"url": url, "counts": counts})
        return
    t = Table(title=f"import-shipped → {escape(url)}")
    t.add_column("kind")
    t.add_column("added", justify="right")
    for key, value in counts.items():
        if key not in ("unchanged", "skipped"):
            t.add_row(key, str(value))
    console.print(t)
    console.print(f"{counts['unchanged']} already registered and unchanged", highlight=False)
    if counts["skipped"]:
        warn(f"{counts['skipped']} folder(s) under models/ were skipped: listed in no manifest, or not an attribution "
             "component (the Yu 2022 same-recipe baseline has no decoder)")


@token_app.command("create")
@clean_errors
def token_create(
    label: Annotated[str, typer.Argument(help="A unique label, e.g. the client's name.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a bearer token; it is printed once and stored only as its sha256."""
    with opened(db) as reg:
        token = reg.create_token(label)
    if as_json:
        _emit({"label": label, "token": token})
        return
    console.print(f"token {escape(label)}: {token}", highlight=False, soft_wrap=True)
    warn("store it now: it is not shown again (only its sha256 is kept)")


@token_app.command("revoke")
@clean_errors
def token_revoke(
    label: Annotated[str, typer.Argument(help="The token's label.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token (its label stays taken, for the record)."""
    with opened(db) as reg:
        reg.revoke_token(label)
    if as_json:
        _emit({"revoked": label})
        return
    console.print(f"revoked token {escape(label)}", highlight=False)


@token_app.command("list")
@clean_errors
def token_list(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List token labels and whether they are revoked (never the tokens)."""
    with opened(db) as reg:
        tokens = reg.list_tokens()
    if as_json:
        _emit({"tokens": [t.to_json() for t in tokens]})
        return
    t = Table(title="API tokens")
    for col in ("label", "created", "revoked"):
        t.add_column(col)
    for tok in tokens:
        t.add_row(escape(tok.label), tok.created.strftime("%Y-%m-%d %H:%M"),
                  tok.revoked.strftime("%Y-%m-%d %H:%M") if tok.revoked else "-")
    console.print(t)


__all__ = ["db_url", "registry_app", "token_app"]
