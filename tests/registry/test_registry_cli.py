"""`genattr registry …` through Typer's CliRunner — on SQLite and PostgreSQL (``--db``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genattr.cli.registry_cmds import registry_app
from genattr.registry import Registry

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    res = runner.invoke(registry_app, list(args))
    assert res.exit_code == code, res.output
    return res.output


def test_init_add_list_show_remove(url: str, weights, tmp_path: Path) -> None:
    info = json.loads(run("init", "--db", url, "--json"))
    assert info["revision"] == "0001" and info["models"] == 0
    d1, h1 = weights("g1")
    d2, _ = weights("g2")
    rec = json.loads(run("add", "g1", "--kind", "zoo", "--arch", "dcgan", "--path", str(d1), "--meta", '{"seed": 3}',
                         "--db", url, "--json"))
    assert rec["id"] == h1 and rec["meta"] == {"seed": 3}
    assert "registered model g2" in run("add", "g2", "--kind", "keyed-user", "--arch", "dcgan", "--path", str(d2),
                                        "--owner", "alice", "--db", url)
    det = tmp_path / "det"
    det.mkdir()
    (det / "state.safetensors").write_bytes(b"state")
    out = run("add", "det", "--kind", "flipad-detector", "--path", str(det), "--covers", "g2", "--db", url)
    assert "flipad-detector det covering g2" in out
    listed = json.loads(run("list", "--db", url, "--json"))
    assert [m["name"] for m in listed["models"]] == ["g1", "g2"]
    assert [(c["name"], c["models"]) for c in listed["components"]] == [("det", ["g2"])]
    assert [m["name"] for m in json.loads(run("list", "--kind", "keyed-user", "--db", url, "--json"))["models"]] \
        == ["g2"]
    human = run("list", "--db", url)
    assert "g1" in human and "det" in human and h1[:12] in human
    shown = json.loads(run("show", "g2", "--db", url, "--json"))
    assert shown["type"] == "model" and shown["owner"] == "alice" and shown["components"] == ["det"]
    assert json.loads(run("show", "det", "--db", url, "--json"))["type"] == "component"
    assert "alice" in run("show", "g2", "--db", url)
    err = run("remove", "g2", "--db", url, code=1)
    assert "covered by det" in err and "Traceback" not in err
    assert json.loads(run("remove", "det", "--db", url, "--json")) == {"removed": "det", "type": "component"}
    assert "removed model g2" in run("remove", "g2", "--db", url)
    assert [m["name"] for m in json.loads(run("list", "--db", url, "--json"))["models"]] == ["g1"]


def test_errors_are_one_line(url: str, weights) -> None:
    assert "no registered model or component 'ghost'" in run("show", "ghost", "--db", url, code=1)
    assert "no registered model or component" in run("remove", "ghost", "--db", url, code=1)
    assert "unknown kind 'gan'" in run("add", "x", "--kind", "gan", "--db", url, code=1)
    assert "needs --arch" in run("add", "x", "--kind", "zoo", "--sha256", "a" * 64, "--db", url, code=1)
    assert "--meta is not JSON" in run("add", "x", "--kind", "external", "--arch", "a", "--sha256", "a" * 64,
                                       "--meta", "{", "--db", url, code=1)
    assert "needs --path" in run("add", "c", "--kind", "classifier", "--db", url, code=1)
    d, _ = weights("g")
    run("add", "g", "--kind", "zoo", "--arch", "dcgan", "--path", str(d), "--db", url)
    assert "already registered" in run("add", "g", "--kind", "zoo", "--arch", "dcgan", "--path", str(d), "--db", url,
                                       code=1)
    assert "unknown kind" in run("list", "--kind", "gan", "--db", url, code=1)


def test_import_shipped(url: str, fake_repo: Path) -> None:
    out = json.loads(run("import-shipped", str(fake_repo), "--db", url, "--json"))
    assert out["counts"]["zoo"] == 2 and out["counts"]["classifier"] == 1 and out["counts"]["yu2022-codes"] == 3
    human = run("import-shipped", str(fake_repo), "--db", url)
    assert "8 already registered and unchanged" in human
    shown = json.loads(run("show", "yu2022-index", "--db", url, "--json"))
    assert shown["codes"] == 3 and shown["kind"] == "yu2022-index"
    (fake_repo / "zoo" / "tiny-dcgan" / "model.safetensors").write_bytes(b"tampered")
    with Registry.open(url) as r:
        r.remove_component("flipad-tiny-dcgan")
        r.remove_component("yu2019-closed")
        r.remove_model("tiny-dcgan")
    err = run("import-shipped", str(fake_repo), "--db", url, code=1)
    assert "does not match" in err and "nothing was imported" in err


def test_tokens(url: str) -> None:
    token = json.loads(run("token", "create", "ci", "--db", url, "--json"))["token"]
    with Registry.open(url) as r:
        assert r.verify_token(token)
    human = run("token", "create", "web", "--db", url)
    assert "not shown again" in human
    listed = json.loads(run("token", "list", "--db", url, "--json"))["tokens"]
    assert [t["label"] for t in listed] == ["ci", "web"] and token not in json.dumps(listed)
    assert json.loads(run("token", "revoke", "ci", "--db", url, "--json")) == {"revoked": "ci"}
    with Registry.open(url) as r:
        assert not r.verify_token(token)
    assert "no token labelled 'nobody'" in run("token", "revoke", "nobody", "--db", url, code=1)
    assert "revoked token web" in run("token", "revoke", "web", "--db", url)


def test_plain_path_and_default_database(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "sub" / "reg.db"
    assert json.loads(run("init", "--db", str(db), "--json"))["backend"] == "sqlite"
    assert db.is_file()
    monkeypatch.delenv("GENATTR_DATABASE_URL", raising=False)
    monkeypatch.setenv("GENATTR_HOME", str(tmp_path / "home"))
    assert str(tmp_path / "home" / "registry.db") in json.loads(run("init", "--json"))["url"]
    assert "registry is empty" in run("list")


def test_unreachable_database_is_a_clean_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run("list", "--db", f"postgresql+psycopg://u:pw@127.0.0.1:{port}/x", code=1)
    assert "cannot be reached" in out and "Traceback" not in out


@pytest.mark.parametrize("args", [["--help"], ["token", "--help"]])
def test_registered_in_the_main_cli(args: list[str]) -> None:
    from genattr.cli.main import app

    res = runner.invoke(app, ["registry", *args])
    assert res.exit_code == 0, res.output
    assert ("import-shipped" in res.output) if args == ["--help"] else ("revoke" in res.output)
