"""`genattr log ...` / `genattr witness ...` through typer's CliRunner, against log_app / witness_app directly."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from genattr.cli.ledger_cmds import log_app, witness_app

ORIGIN = "example.com/cli-log"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0, app=log_app):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def _image(path: Path, seed: int) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def setup(tmp_path: Path, runner: CliRunner) -> dict:
    k = tmp_path / "keys"
    k.mkdir()
    run(runner, "keygen", ORIGIN, "--out", k / "log")
    run(runner, "keygen", "owner.example/alice", "--out", k / "owner", "--kind", "owner")
    db = tmp_path / "log.db"
    out = run(runner, "init", db, "--origin", ORIGIN, "--log-key", k / "log.vkey", "--owner", k / "owner.vkey")
    assert "created log" in out.output
    imgs = [_image(tmp_path / f"img{i}.png", i) for i in range(3)]
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 100)
    return {"k": k, "db": db, "imgs": imgs, "weights": weights, "tmp": tmp_path}


def test_full_walkthrough(runner: CliRunner, setup: dict) -> None:
    k, db, imgs, tmp = setup["k"], setup["db"], setup["imgs"], setup["tmp"]
    assert (k / "log.skey").stat().st_mode & 0o077 == 0  # private key not readable by others
    out = run(runner, "append", db, *imgs, "--owner-key", k / "owner.skey", "--weights", setup["weights"],
              "--batch-seed", "1234", "--receipts", tmp / "receipts.jsonl")  # one batch from one seed
    assert out.stdout.splitlines()[0].startswith("0\t")
    receipts = [json.loads(line) for line in (tmp / "receipts.jsonl").read_text().splitlines()]
    assert [r["index"] for r in receipts] == [0, 1, 2] and receipts[0]["seed"] == {"type": "int", "value": "1234"}
    out = run(runner, "checkpoint", db, "--key", k / "log.skey", "--out", tmp / "cp.txt")
    assert out.output.startswith(f"{ORIGIN}\n3\n") and (tmp / "cp.txt").read_text() == out.output
    run(runner, "prove", db, "--image", imgs[1], "--out", tmp / "p.tlog-proof")
    text = (tmp / "p.tlog-proof").read_text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ") and "\nindex 1\n" in text
    out = run(runner, "verify", tmp / "p.tlog-proof", "--log-key", k / "log.vkey", "--image", imgs[1],
              "--owner", k / "owner.vkey")
    assert out.output.startswith(f"OK: entry 1 is in {ORIGIN} at tree size 3")
    out = run(runner, "audit", imgs[2], "--db", db, "--log-key", k / "log.vkey", "--proof-out", tmp / "a.proof")
    assert out.output.startswith("FOUND: logged at index 2")
    assert (tmp / "a.proof").exists()
    other = _image(tmp / "other.png", 99)
    out = run(runner, "audit", other, "--db", db, code=3)  # NOT FOUND exits 3, FOUND 0
    assert out.output.startswith("NOT FOUND: not in the log up to checkpoint 3") and "weak evidence" in out.output
    out = run(runner, "audit", imgs[1], "--bundle", tmp / "p.tlog-proof", "--log-key", k / "log.vkey", "--json")
    assert json.loads(out.output)["found"] is True
    out = run(runner, "fsck", db, "--log-key", k / "log.vkey")
    assert out.output.startswith("OK: 3 entries")


def test_policy_file_and_witness_cosigning(runner: CliRunner, setup: dict, monkeypatch, log_key) -> None:
    """checkpoint --policy asks the policy's witnesses (served in-process here) and enforces the quorum."""
    import warnings

    from genattr.ledger import Policy, Witness, WitnessClient
    from genattr.ledger import witness as witness_mod
    from genattr.ledger.note import signer_from_skey

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from genattr.ledger.witness_server import create_witness_app

    k, db, imgs, tmp = setup["k"], setup["db"], setup["imgs"], setup["tmp"]
    for i in range(2):
        run(runner, "keygen", f"w{i}.example", "--out", k / f"w{i}", "--kind", "witness")
    log_vkey = (k / "log.vkey").read_text().strip()
    wit = [signer_from_skey((k / f"w{i}.skey").read_text()) for i in range(2)]
    apps = {f"http://w{i}.example": TestClient(create_witness_app(Witness(tmp / f"w{i}.db", wit[i], [log_vkey])))
            for i in range(2)}
    policy = Policy.k_of_n([log_vkey], [(w.vkey, f"http://w{i}.example") for i, w in enumerate(wit)], 2)
    (tmp / "policy.txt").write_text(policy.encode())
    monkeypatch.setattr(witness_mod, "witness_clients_from_policy",
                        lambda p, http=None: [WitnessClient(w.url, w.key, http=apps[w.url])
                                              for w in p.witnesses.values()])
    run(runner, "append", db, imgs[0], "--owner-key", k / "owner.skey", "--model-id", "ab" * 32)
    out = run(runner, "checkpoint", db, "--key", k / "log.skey", "--policy", tmp / "policy.txt")
    assert "— w0.example " in out.output and "— w1.example " in out.output
    run(runner, "prove", db, "--index", "0", "--out", tmp / "p.tlog-proof")
    out = run(runner, "verify", tmp / "p.tlog-proof", "--policy", tmp / "policy.txt")
    assert "cosigned by w1, w2" in out.output
    # A stricter policy (all of 3 witnesses) is not met: one clear line, exit 1.
    (tmp / "strict.txt").write_text(
        f"log {log_vkey}\nwitness w1 {wit[0].vkey}\nwitness w2 {wit[1].vkey}\n"
        f"witness w3 {_fresh_witness_vkey()}\ngroup q all w1 w2 w3\nquorum q\n"
    )
    out = run(runner, "verify", tmp / "p.tlog-proof", "--policy", tmp / "strict.txt", code=1)
    assert out.output.startswith("error: checkpoint is not cosigned") and len(out.output.splitlines()) == 1


def _fresh_witness_vkey() -> str:
    from genattr.ledger import ALG_COSIGNATURE_V1, generate_signer

    return generate_signer("w3.example", ALG_COSIGNATURE_V1).vkey


@pytest.mark.parametrize(
    "args",
    [
        ("fsck", "{tmp}/missing.db"),
        ("init", "{db}", "--origin", "other.example/x", "--log-key", "{k}/log.vkey"),
        ("init", "{db}", "--origin", ORIGIN, "--log-key", "{k}/log.vkey"),
        ("append", "{db}", "{tmp}/img0.png", "--owner-key", "{k}/owner.skey"),
        ("append", "{db}", "{tmp}/img0.png", "--owner-key", "{k}/owner.skey", "--model-id", "zz"),
        ("append", "{db}", "{tmp}/nope.png", "--owner-key", "{k}/owner.skey", "--model-id", "ab" * 32),
        ("append", "{db}", "{tmp}/img0.png", "--owner-key", "{k}/log.vkey", "--model-id", "ab" * 32),
        ("checkpoint", "{db}", "--key", "{k}/owner.skey"),
        ("prove", "{db}", "--index", "0", "--out", "{tmp}/x"),
        ("prove", "{db}", "--out", "{tmp}/x"),
        ("verify", "{tmp}/img0.png", "--log-key", "{k}/log.vkey"),
        ("audit", "{tmp}/img0.png", "--db", "{db}"),
        ("audit", "{tmp}/img0.png"),
        ("keygen", "bad name", "--out", "{tmp}/x"),
        ("keygen", "x", "--out", "{k}/log"),
        ("keygen", "x", "--out", "{tmp}/y", "--kind", "nope"),
    ],
)
def test_errors_are_one_line_and_nonzero(runner: CliRunner, setup: dict, args: tuple) -> None:
    fmt = {"db": setup["db"], "k": setup["k"], "tmp": setup["tmp"]}
    result = runner.invoke(log_app, [a.format(**fmt) for a in args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output


def test_fsck_fails_loudly_on_tampering(runner: CliRunner, setup: dict) -> None:
    k, db, imgs = setup["k"], setup["db"], setup["imgs"]
    run(runner, "append", db, *imgs, "--owner-key", k / "owner.skey", "--model-id", "cd" * 32)
    run(runner, "checkpoint", db, "--key", k / "log.skey")
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER leaves_no_update")
    conn.execute("UPDATE leaves SET data = substr(data, 1, 60) || x'00' || substr(data, 62) WHERE idx = 1")
    conn.commit()
    conn.close()
    out = run(runner, "fsck", db, code=1)
    assert out.output.startswith("error: fsck failed: leaf 1")


def test_witness_serve_help_and_bad_key(runner: CliRunner, setup: dict) -> None:
    assert "add-checkpoint" in run(runner, "serve", "--help", app=witness_app).output
    out = run(runner, "serve", "--db", setup["tmp"] / "w.db", "--key", setup["k"] / "log.skey", "--log",
              setup["k"] / "log.vkey", app=witness_app, code=1)
    assert out.output.startswith("error: skey")


def test_ledger_never_imports_torch() -> None:
    code = ("import sys, genattr.ledger, genattr.cli.ledger_cmds; "
            "bad = [m for m in ('torch', 'fastapi', 'numpy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2],
                   env={"PYTHONPATH": str(Path(__file__).parents[2] / "src"), "PATH": "/usr/bin:/bin"})
