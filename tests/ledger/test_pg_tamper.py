"""Tampering through SQL, on PostgreSQL (and, for the shared cases, on SQLite too, to show identical results):
fsck rejects and `sign_checkpoint` refuses. An attacker who can drop the append-only triggers edits rows and
puts the triggers back; or tampers with the catalog itself (a disabled or neutered trigger, a rule, row-level
security, a dropped primary key) so that later edits pass silently.
"""

from __future__ import annotations

import pytest
from tests.ledger.conftest import LogBackend

from genattr.ledger import CorruptionError, TransparencyLog, generate_signer, merkle
from genattr.ledger.storage import node_id

pg_only = pytest.mark.parametrize("storage_factory", ["postgres"], indirect=True)


@pytest.fixture
def signed6(storage_factory: LogBackend, make_entry, log_key) -> LogBackend:
    """12 entries, the first 6 covered by a signed checkpoint; closed."""
    log = storage_factory.create()
    log.append([make_entry(i) for i in range(6)])
    log.sign_checkpoint(log_key)
    log.append([make_entry(i) for i in range(6, 12)])
    log.close()
    return storage_factory


def _rebuild_tree(db: LogBackend) -> None:
    """A careful attacker recomputes every hash after editing leaves, so the tree is self-consistent."""
    rows = db.query("SELECT idx, data FROM leaves ORDER BY idx")
    tree = merkle.MemoryTree([merkle.leaf_hash(bytes(d)) for _, d in rows])
    params = []
    conn = db.connect()
    db.drop_triggers(conn)
    conn.execute("DELETE FROM nodes")
    q = db._q
    for i, _ in rows:
        conn.execute(q("UPDATE leaves SET hash = ? WHERE idx = ?"), (tree.levels[0][i], i))
    for level in range(1, len(tree.levels)):
        for i, h in enumerate(tree.levels[level]):
            params.append((node_id(level, i), h))
    conn.cursor().executemany(q("INSERT INTO nodes(id, hash) VALUES (?, ?)"), params)
    db.restore_triggers(conn)
    conn.commit()
    conn.close()


def _edit_leaf(db: LogBackend, idx: int, offset: int) -> None:
    ((data,),) = db.query("SELECT data FROM leaves WHERE idx = ?", (idx,))
    bad = bytearray(data)
    bad[offset] ^= 0xFF
    db.tamper("UPDATE leaves SET data = ? WHERE idx = ?", params=(bytes(bad), idx))


def _apply(db: LogBackend, case: str, make_entry) -> None:
    pg = db.kind == "postgres"
    if case == "delete-new-leaf":
        db.tamper("DELETE FROM leaves WHERE idx = 7")
    elif case == "delete-old-leaf":
        db.tamper("DELETE FROM leaves WHERE idx = 2")
    elif case == "edit-new-leaf":
        _edit_leaf(db, 9, 60)
    elif case == "edit-new-node":
        db.tamper(f"UPDATE nodes SET hash = ? WHERE id = {node_id(1, 4)}", params=(bytes(32),))
    elif case == "unregistered-signer-rehashed":
        data = make_entry(999, owner=generate_signer("mallory.example/owner")).encode()
        db.tamper("UPDATE leaves SET data = ? WHERE idx = 10", params=(data,))
        _rebuild_tree(db)
    elif case == "drop-trigger":  # only the trigger: no data touched
        db.sql("DROP TRIGGER checkpoints_append_only ON checkpoints" if pg else "DROP TRIGGER checkpoints_no_delete")
    elif case == "foreign-trigger":
        db.sql("CREATE TRIGGER sneaky AFTER INSERT ON leaves FOR EACH ROW EXECUTE FUNCTION genattr_head_only_grows()"
               if pg else "CREATE TRIGGER sneaky AFTER INSERT ON leaves BEGIN SELECT 1; END")
    elif case == "owners-emptied":
        db.tamper("DELETE FROM owners")
    elif case == "stray-node":
        db.sql(f"INSERT INTO nodes(id, hash) VALUES ({node_id(40, 0)}, ?)", params=(bytes(32),))
    elif case == "lookup-key":
        db.tamper("UPDATE leaves SET lookup = ? WHERE idx = 11", params=(bytes(32),))
    elif case == "short-node-hash":
        db.tamper(f"UPDATE nodes SET hash = ? WHERE id = {node_id(1, 4)}", params=(b"\0" * 31,))
    else:  # pragma: no cover
        raise AssertionError(case)


SHARED = ["delete-new-leaf", "delete-old-leaf", "edit-new-leaf", "edit-new-node", "unregistered-signer-rehashed",
          "drop-trigger", "foreign-trigger", "owners-emptied", "stray-node", "lookup-key", "short-node-hash"]


def _refused(db: LogBackend, log_key) -> None:
    with db.open(check=False) as log:
        with pytest.raises(CorruptionError):
            log.fsck()
        with pytest.raises(CorruptionError, match=r"refusing to sign|tampered|removed|short|bytes"):
            log.sign_checkpoint(log_key)
        assert log.storage.latest_checkpoint()[0] == 6  # nothing new was signed


@pytest.mark.parametrize("case", SHARED)
def test_checkpoint_refuses_what_fsck_rejects(signed6: LogBackend, make_entry, log_key, case: str) -> None:
    _apply(signed6, case, make_entry)
    _refused(signed6, log_key)


# PostgreSQL catalog tampering: each leaves the rows intact but would let later edits (or hidden rows) pass.
CATALOG = {
    "disabled-trigger": ("ALTER TABLE leaves DISABLE TRIGGER leaves_append_only", "trigger leaves_append_only is "
                                                                                   "disabled"),
    "replica-only-trigger": ("ALTER TABLE nodes ENABLE REPLICA TRIGGER nodes_append_only",
                             "trigger nodes_append_only is disabled"),
    "neutered-function": ("CREATE OR REPLACE FUNCTION genattr_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                          "$$ BEGIN RETURN OLD; END $$", "function genattr_append_only was altered"),
    "do-instead-nothing": ("CREATE RULE keep AS ON DELETE TO leaves DO INSTEAD NOTHING", "foreign rule keep"),
    "row-level-security": ("ALTER TABLE leaves ENABLE ROW LEVEL SECURITY", "row-level security is enabled on leaves"),
    "dropped-primary-key": ("ALTER TABLE leaves DROP CONSTRAINT leaves_pkey", "table leaves was altered"),
    "retyped-column": ("ALTER TABLE nodes ALTER COLUMN hash TYPE text", "table nodes was altered"),
    "dropped-truncate-guard": ("DROP TRIGGER leaves_no_truncate ON leaves", "trigger leaves_no_truncate is missing"),
    "foreign-index": ("CREATE INDEX i ON leaves(lookup)", "foreign index i"),
    "foreign-table": ("CREATE TABLE shadow (x INTEGER)", "foreign table shadow"),
}


@pg_only
@pytest.mark.parametrize("case", sorted(CATALOG))
def test_catalog_tampering_is_reported(signed6: LogBackend, log_key, case: str) -> None:
    sql, what = CATALOG[case]
    signed6.sql(sql)
    with signed6.open(check=False) as log:
        assert any(what in p for p in log.storage.schema_problems()), log.storage.schema_problems()
        with pytest.raises(CorruptionError):  # a report naming it, or (retyped hash column) unreadable nodes
            log.fsck()
        if case != "retyped-column":
            errors = log.fsck(raise_on_error=False).errors
            assert any(what in e for e in errors), errors
        with pytest.raises(CorruptionError, match="refusing to sign: schema"):
            log.sign_checkpoint(log_key)


@pg_only
def test_triggers_guard_truncate_and_the_size_row(signed6: LogBackend) -> None:
    conn = signed6.connect()
    for stmt in ("TRUNCATE leaves", "TRUNCATE nodes, checkpoints", "TRUNCATE log_head", "DELETE FROM log_head",
                 "UPDATE log_head SET size = 3", "UPDATE log_head SET application_id = 1", "DELETE FROM meta",
                 "UPDATE owners SET vkey = 'x'", "TRUNCATE cosignatures"):
        with pytest.raises(signed6.integrity_error, match=r"append-only|only grows"):
            conn.execute(stmt)
    conn.execute("UPDATE log_head SET size = size")  # not shrinking: allowed (appends raise it)
    with pytest.raises(signed6.integrity_error):
        conn.execute("INSERT INTO log_head(id, application_id, schema_version, size) VALUES (1, 0, 1, 0)")
    conn.close()
    with signed6.open() as log:
        assert log.size == 12 and log.fsck().ok


@pg_only
def test_a_size_row_out_of_step_stops_appends(signed6: LogBackend, make_entry) -> None:
    """The size row is the sequencer: if rows were added past it or it was rolled back, appends refuse (instead
    of overwriting or skipping indices) and fsck says why."""
    signed6.tamper("UPDATE log_head SET size = 10")
    with signed6.open() as log:
        with pytest.raises(CorruptionError, match="log_head says 10 entries but the leaves end at 12"):
            log.append([make_entry(12)])
        assert any("log_head says 10" in e for e in log.fsck(raise_on_error=False).errors)
        assert log.size == 12


@pg_only
def test_the_tail_deleted_with_its_triggers_restored(signed6: LogBackend) -> None:
    signed6.tamper("DELETE FROM leaves WHERE idx >= 4", "DELETE FROM checkpoints")
    # No checkpoint left in the database: only the size row and the record remember 12 and 6.
    with pytest.raises(CorruptionError, match="rolled back"):
        TransparencyLog.open(signed6.target)
    with signed6.open(check=False) as log:
        errors = log.fsck(raise_on_error=False).errors
    assert any("log_head says 12" in e for e in errors) and any("rolled back" in e for e in errors)
