"""The PostgreSQL log schema (one spec for the DDL and for the catalog check), URL helpers, the record location.

Kept apart from `pg_storage` so the schema and the check that nothing was added, dropped or altered cannot
drift: both are generated from `_TABLES`, `_FUNCTIONS` and `_TRIGGERS` below. Nothing here imports psycopg.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from genattr.ledger.errors import CorruptionError, StorageError

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "check_empty", "check_log", "ddl", "default_record_dir",
           "is_postgres_url", "record_file_name", "redact_url", "schema_problems", "to_conninfo"]

APPLICATION_ID = 0x47414C47  # "GALG", as the SQLite log's application_id
SCHEMA_VERSION = 1
_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")

# table -> (columns as (name, type, not null), constraints as pg_get_constraintdef prints them)
_TABLES: dict[str, tuple[list[tuple[str, str, bool]], list[str]]] = {
    # The one-row sequencer: appends lock it (SELECT ... FOR UPDATE) before reading the size.
    "log_head": ([("id", "smallint", True), ("application_id", "bigint", True), ("schema_version", "integer", True),
                  ("size", "bigint", True)], ["PRIMARY KEY (id)", "CHECK ((id = 0))", "CHECK ((size >= 0))"]),
    "meta": ([("key", "text", True), ("value", "text", True)], ["PRIMARY KEY (key)"]),
    "leaves": ([("idx", "bigint", True), ("data", "bytea", True), ("hash", "bytea", True), ("lookup", "bytea", False)],
               ["PRIMARY KEY (idx)"]),
    "lookup": ([("key", "bytea", True), ("idx", "bigint", True)], ["PRIMARY KEY (key, idx)"]),
    "lookup_progress": ([("id", "smallint", True), ("next_idx", "bigint", True)],
                        ["PRIMARY KEY (id)", "CHECK ((id = 0))"]),
    "nodes": ([("id", "bigint", True), ("hash", "bytea", True)], ["PRIMARY KEY (id)"]),
    "checkpoints": ([("size", "bigint", True), ("note", "text", True)], ["PRIMARY KEY (size)"]),
    "cosignatures": ([("size", "bigint", True), ("line", "text", True)], ["PRIMARY KEY (size, line)"]),
    "owners": ([("key_id", "bytea", True), ("vkey", "text", True)], ["PRIMARY KEY (key_id)"]),
    "witness_state": ([("name", "text", True), ("size", "bigint", True)], ["PRIMARY KEY (name)"]),
}
_IMMUTABLE = ("meta", "leaves", "nodes", "checkpoints", "cosignatures", "owners")

_FUNCTIONS = {
    "genattr_append_only": """
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END
""",
    # The size may only grow, and the marker columns never change.
    "genattr_head_only_grows": """
BEGIN
    IF NEW.id <> OLD.id OR NEW.application_id <> OLD.application_id OR NEW.schema_version <> OLD.schema_version
       OR NEW.size < OLD.size THEN
        RAISE EXCEPTION 'log_head only grows' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
""",
}

# pg_trigger.tgtype bits: ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32
_ROW_UPDATE_DELETE, _ROW_DELETE, _ROW_UPDATE, _STMT_TRUNCATE = 1 | 2 | 8 | 16, 1 | 2 | 8, 1 | 2 | 16, 2 | 32


def _trigger_specs() -> dict[tuple[str, str], tuple[str, int]]:
    """{(table, trigger): (function, tgtype)}. TRUNCATE fires no row trigger, hence the statement triggers."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for t in _IMMUTABLE:
        out[(t, f"{t}_append_only")] = ("genattr_append_only", _ROW_UPDATE_DELETE)
        out[(t, f"{t}_no_truncate")] = ("genattr_append_only", _STMT_TRUNCATE)
    out[("log_head", "log_head_no_delete")] = ("genattr_append_only", _ROW_DELETE)
    out[("log_head", "log_head_only_grows")] = ("genattr_head_only_grows", _ROW_UPDATE)
    out[("log_head", "log_head_no_truncate")] = ("genattr_append_only", _STMT_TRUNCATE)
    return out


def _events(tgtype: int) -> tuple[str, str]:
    if tgtype & 32:
        return "BEFORE TRUNCATE", "FOR EACH STATEMENT"
    ops = " OR ".join(op for bit, op in ((16, "UPDATE"), (8, "DELETE")) if tgtype & bit)
    return f"BEFORE {ops}", "FOR EACH ROW"


def ddl() -> list[str]:
    """The statements that create a log in the current schema (run in one transaction)."""
    stmts = []
    for table, (cols, cons) in _TABLES.items():
        parts = [f"{n} {t.upper()}{' NOT NULL' if nn else ''}" for n, t, nn in cols] + cons
        stmts.append(f"CREATE TABLE {table} ({', '.join(parts)})")
    for name, body in _FUNCTIONS.items():
        stmts.append(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $genattr${body}$genattr$")
    for (table, trig), (func, tgtype) in _trigger_specs().items():
        when, each = _events(tgtype)
        stmts.append(f"CREATE TRIGGER {trig} {when} ON {table} {each} EXECUTE FUNCTION {func}()")
    return stmts


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


_NS = "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())"


def schema_problems(conn: Any) -> list[str]:
    """Differences between the catalog of the current schema and the one `ddl()` creates: a dropped, disabled,
    altered or foreign trigger, function, table, column, constraint, index or rule, and row-level security
    (which could hide rows from the log's reads). `conn` is a psycopg connection."""
    q = conn.execute
    problems: list[str] = []
    rels = {str(n): str(k) for n, k in q(f"SELECT relname, relkind FROM pg_class WHERE relnamespace = {_NS}")}
    want_tables = set(_TABLES)
    want_indexes = {f"{t}_pkey" for t in _TABLES}
    tables = {n for n, k in rels.items() if k == "r"}
    problems += [f"table {t} is missing" for t in sorted(want_tables - tables)]
    problems += [f"foreign table {t} (not created by genattr)" for t in sorted(tables - want_tables)]
    indexes = {n for n, k in rels.items() if k == "i"}
    problems += [f"foreign index {i} (not created by genattr)" for i in sorted(indexes - want_indexes)]
    problems += [f"foreign {'view' if k in 'vm' else 'relation'} {n} (not created by genattr)"
                 for n, k in sorted(rels.items()) if k not in ("r", "i")]
    cols: dict[str, list[tuple[str, str, bool]]] = {}
    for rel, att, typ, nn in q(
        f"SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
        f"JOIN pg_class c ON a.attrelid = c.oid WHERE c.relnamespace = {_NS} AND c.relkind = 'r' "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
    ):
        cols.setdefault(str(rel), []).append((str(att), str(typ), bool(nn)))
    cons: dict[str, set[str]] = {}
    for rel, definition in q(
        f"SELECT c.relname, pg_get_constraintdef(k.oid) FROM pg_constraint k JOIN pg_class c ON k.conrelid = c.oid "
        f"WHERE c.relnamespace = {_NS}"
    ):
        cons.setdefault(str(rel), set()).add(_norm(str(definition)))
    for t in sorted(want_tables & tables):
        want_cols, want_cons = _TABLES[t]
        if cols.get(t, []) != want_cols:
            problems.append(f"table {t} was altered (columns)")
        if cons.get(t, set()) != {_norm(c) for c in want_cons}:
            problems.append(f"table {t} was altered (constraints)")
    funcs = {str(n): (str(lang), str(src)) for n, lang, src in q(
        f"SELECT p.proname, l.lanname, p.prosrc FROM pg_proc p JOIN pg_language l ON p.prolang = l.oid "
        f"WHERE p.pronamespace = {_NS}")}
    for name, body in _FUNCTIONS.items():
        if name not in funcs:
            problems.append(f"function {name} is missing")
        elif funcs[name][0] != "plpgsql" or _norm(funcs[name][1]) != _norm(body):
            problems.append(f"function {name} was altered")
    problems += [f"foreign function {n} (not created by genattr)" for n in sorted(set(funcs) - set(_FUNCTIONS))]
    got_trig = {(str(rel), str(name)): (str(func), int(tgtype), str(enabled), str(fns) == "t") for rel, name, func,
                tgtype, enabled, fns in q(
        "SELECT c.relname, t.tgname, p.proname, t.tgtype, t.tgenabled, "
        f"CASE WHEN p.pronamespace = {_NS} THEN 't' ELSE 'f' END FROM pg_trigger t "
        "JOIN pg_class c ON t.tgrelid = c.oid JOIN pg_proc p ON t.tgfoid = p.oid "
        f"WHERE c.relnamespace = {_NS} AND NOT t.tgisinternal")}
    want_trig = _trigger_specs()
    problems += [f"trigger {n} is missing" for (_, n) in sorted(set(want_trig) - set(got_trig))]
    problems += [f"foreign trigger {n} on {t} (not created by genattr)"
                 for (t, n) in sorted(set(got_trig) - set(want_trig))]
    for key in sorted(set(want_trig) & set(got_trig)):
        func, tgtype, enabled, own = got_trig[key]
        if (func, tgtype, own) != (*want_trig[key], True):
            problems.append(f"trigger {key[1]} was altered")
        elif enabled != "O":  # 'D' disabled; 'R'/'A' fire only under session_replication_role
            problems.append(f"trigger {key[1]} is disabled")
    problems += [f"foreign rule {r} on {t} (not created by genattr)" for t, r in q(
        "SELECT tablename, rulename FROM pg_rules WHERE schemaname = current_schema() ORDER BY 1, 2")]
    problems += [f"row-level security is enabled on {t}" for (t,) in q(
        f"SELECT relname FROM pg_class WHERE relnamespace = {_NS} AND (relrowsecurity OR relforcerowsecurity) "
        "ORDER BY 1")]
    problems += [f"foreign row-level security policy {p} on {t}" for t, p in q(
        "SELECT tablename, policyname FROM pg_policies WHERE schemaname = current_schema() ORDER BY 1, 2")]
    return problems


def _relations(c: Any) -> set[str]:
    return {str(r[0]) for r in c.execute(f"SELECT relname FROM pg_class WHERE relnamespace = {_NS} "
                                         "AND relkind IN ('r', 'p', 'v', 'm', 'f')")}


def check_empty(c: Any, where: str, schema: str) -> None:
    """A log is only ever created in an empty schema (never over another application's tables)."""
    if _relations(c):
        raise StorageError(f"{where}: schema {schema} is not empty; refusing to initialise a log there "
                           "(give the log its own schema or database)")


def check_log(c: Any, where: str, schema: str) -> None:
    """On open: refuse a schema that is not a genattr log (the SQLite log's application_id/user_version check)."""
    rels = _relations(c)
    if not rels:
        raise StorageError(f"no log at {where} (schema {schema} is empty; run `genattr log init` first)")
    if "log_head" not in rels:
        raise CorruptionError(f"{where}: schema {schema} is not a genattr log (no log_head table)")
    row = c.execute("SELECT application_id, schema_version FROM log_head WHERE id = 0").fetchone()
    if row is None or row[0] != APPLICATION_ID:
        raise CorruptionError(f"{where} is not a genattr log (wrong or missing application id)")
    if row[1] != SCHEMA_VERSION:
        raise StorageError(f"{where}: unsupported log schema version {row[1]}")
    missing = {"meta", "leaves", "nodes", "checkpoints"} - rels
    if missing:
        raise CorruptionError(f"{where}: tables missing: {', '.join(sorted(missing))}")


# -- URLs --------------------------------------------------------------------------------------------------------


def is_postgres_url(target: object) -> bool:
    """True for ``postgresql://``, ``postgresql+psycopg://`` (SQLAlchemy style) and ``postgres://`` strings."""
    return isinstance(target, str) and target.lower().startswith(_SCHEMES)


def to_conninfo(url: str) -> str:
    """A libpq URI from a SQLAlchemy-style URL: ``postgresql+psycopg://`` -> ``postgresql://``."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql{sep}{rest}" if scheme.lower() in ("postgresql+psycopg", "postgresql") else url


def redact_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


# -- the signed-checkpoint record of a PostgreSQL log ------------------------------------------------------------


def default_record_dir() -> Path:
    """Where records of PostgreSQL logs live by default: ``$GENATTR_LOG_STATE_DIR``, else
    ``$XDG_STATE_HOME/genattr/ledger``, else ``~/.local/state/genattr/ledger`` (on the signing host)."""
    env = os.environ.get("GENATTR_LOG_STATE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "genattr" / "ledger"


def record_file_name(host: str, port: str | int, dbname: str, schema: str) -> str:
    """File name of a log's record, from where the log lives (server, database, schema): not from the origin,
    which is stored in the database and would let someone who edits the database move the record away."""
    ident = hashlib.sha256(f"{host}\n{port}\n{dbname}\n{schema}".encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{host}-{dbname}-{schema}")[:80]
    return f"pg-{readable}-{ident}.checkpoint"
