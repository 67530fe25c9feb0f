"""`genattr serve`: options reach the app's settings (uvicorn stubbed), and one real start in a subprocess that
answers over TCP and stops on SIGINT."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from genattr.cli.main import app
from tests.service.conftest import png

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_options_reach_the_settings(tmp_path, monkeypatch) -> None:
    import uvicorn

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    res = runner.invoke(app, ["serve", "--db", url, "--port", "9123", "--max-files", "3", "--max-body-mb", "0.5",
                              "--workers", "2"])
    assert res.exit_code == 0, res.output
    settings = seen["app"].state.genattr.settings
    assert (settings.database_url, settings.max_files, settings.max_body_bytes, settings.workers) == \
        (url, 3, 512 * 1024, 2)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 9123
    assert "0 attribution components" in res.output and "import-shipped" in res.output
    assert "http://127.0.0.1:9123/" in res.output

    res = runner.invoke(app, ["serve", "--db", url, "--host", "0.0.0.0"])
    assert res.exit_code == 0 and "reachable from other machines" in res.output
    assert runner.invoke(app, ["serve", "--log-level", "loud"]).exit_code == 2
    assert runner.invoke(app, ["serve", "--port", "70000"]).exit_code == 2


def test_serve_answers_over_tcp(tmp_path) -> None:
    from tests.service.tiny import build_tiny_registry

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    build_tiny_registry(tmp_path, url)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "genattr", "serve", "--port", str(port), "--db", url,
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the server did not come up in 90 s"
            time.sleep(0.3)
        r = httpx.post(f"{base}/v1/attribute", files=[("files", ("a.png", png(0, (32, 32)), "image/png"))],
                       timeout=30)
        assert r.status_code == 200, r.text
        assert len(r.json()["results"]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
