"""``tillbox edge user add`` and ``tillbox edge web`` as a person runs them: one-line
errors with their exit status, a private password file, a server that really serves."""

from __future__ import annotations

import os
import socket
import urllib.request

import pytest

from systest.console import ConsoleServer, run


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'edge.db'}"


def _password_file(tmp_path, text="correct horse battery\n", mode=0o600):
    path = tmp_path / "pw"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _one_line_error(proc, status, *words):
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_the_edge_offers_the_consoles_commands():
    proc = run("edge", "--help")
    assert proc.returncode == 0
    assert "web" in proc.stdout and "user" in proc.stdout
    assert "warning" not in proc.stderr


def test_user_add_refuses_a_password_file_others_can_read(tmp_path, db):
    pw = _password_file(tmp_path, mode=0o644)
    proc = run("edge", "user", "add", "--db", db, "--name", "ada", "--role", "admin",
               "--password-file", str(pw))  # fmt: skip
    _one_line_error(proc, 1, "can be read by others", f"chmod 600 {pw}")


def test_user_add_creates_a_user_who_can_sign_in(tmp_path, db):
    from fastapi.testclient import TestClient

    from console.app import create_app

    pw = _password_file(tmp_path)
    args = ["edge", "user", "add", "--db", db, "--name", "mia", "--role", "merchant",
            "--tenant", "demo", "--password-file", str(pw), "--json"]  # fmt: skip
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    assert '"role": "merchant"' in proc.stdout
    _one_line_error(run(*args), 1, "already exists")
    again = _password_file(tmp_path, "another long password\n")
    replaced = [*args[:-3], "--password-file", str(again), "--replace"]
    assert run(*replaced).returncode == 0
    app = create_app(db, index_interval_s=None)
    try:
        client = TestClient(app, base_url="https://testserver")
        r = client.post(
            "/api/v1/session", json={"name": "mia", "password": "correct horse battery"}
        )
        assert r.status_code == 401  # --replace set a new password
        r = client.post(
            "/api/v1/session", json={"name": "mia", "password": "another long password"}
        )
        assert r.status_code == 200 and r.json()["tenant"] == "demo"
    finally:
        app.state.pool.close()


@pytest.mark.parametrize(
    ("extra", "status", "words"),
    [
        (["--role", "merchant"], 1, ["--tenant"]),
        (["--role", "admin", "--tenant", "demo"], 1, ["leave --tenant out"]),
        (["--role", "boss"], 2, ["invalid choice"]),
        (["--role", "admin", "--name", "a b"], 1, ["user name"]),
    ],
)
def test_user_add_refuses_bad_input_in_one_line(tmp_path, db, extra, status, words):
    pw = _password_file(tmp_path)
    args = ["edge", "user", "add", "--db", db, "--name", "ada", "--password-file", str(pw)]
    _one_line_error(run(*args, *extra), status, *words)


def test_user_add_refuses_a_short_a_missing_and_a_huge_password_file(tmp_path, db):
    base = ["edge", "user", "add", "--db", db, "--name", "ada", "--role", "admin"]
    short = _password_file(tmp_path, "short\n")
    _one_line_error(run(*base, "--password-file", str(short)), 1, "10 to")
    _one_line_error(run(*base, "--password-file", str(tmp_path / "nope")), 1, "check the path")
    huge = _password_file(tmp_path, "x" * 10_000)
    _one_line_error(run(*base, "--password-file", str(huge)), 1, "larger than")


def test_web_refuses_a_bad_address_a_taken_port_and_a_readable_key(tmp_path, db, region):
    _one_line_error(run("edge", "web", "--db", db, "--listen", "localhost"), 2, "HOST:PORT")
    _one_line_error(run("edge", "web", "--db", db, "--listen", "1.2.3.4:99999"), 2, "HOST:PORT")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        proc = run("edge", "web", "--db", db, "--listen", f"127.0.0.1:{port}")
        _one_line_error(proc, 1, f"cannot listen on 127.0.0.1:{port}", "--listen")
    finally:
        taken.close()
    key = tmp_path / "region.key"
    key.write_text(region.key_path.read_text())
    os.chmod(key, 0o644)
    proc = run("edge", "web", "--db", db, "--listen", "127.0.0.1:1", "--key", str(key))
    _one_line_error(proc, 1, "chmod 600")
    proc = run("edge", "web", "--db", db, "--listen", "127.0.0.1:1", "--tls-cert", "c.pem")
    _one_line_error(proc, 1, "--tls-key")
    _one_line_error(run("edge", "web", "--db", "mysql://x", "--listen", "127.0.0.1:1"), 1, "sqlite")


def test_web_serves_pages_and_stops_cleanly(tmp_path, db, region):
    server = ConsoleServer(db, tmp_path, region.key_path).start()
    try:
        with urllib.request.urlopen(server.url + "/login", timeout=10) as r:
            page = r.read().decode()
            assert "Sign in" in page
            assert "script-src 'none'" in r.headers["Content-Security-Policy"]
        with urllib.request.urlopen(server.url + "/static/console.css", timeout=10) as r:
            assert r.status == 200
    finally:
        assert server.proc.stop() == 0
    assert "console listening on http://127.0.0.1:" in server.proc.log()


def test_web_refuses_broker_settings_it_could_not_use_in_one_line(tmp_path, db):
    base = ["edge", "web", "--db", db, "--listen", "127.0.0.1:1"]
    _one_line_error(run(*base, "--broker", "mqtt://127.0.0.1:1883"), 1, "--publisher-password-file")
    pw = _password_file(tmp_path, "publisher-secret\n")
    _one_line_error(run(*base, "--publisher-password-file", str(pw)), 1, "goes with --broker")
    _one_line_error(
        run(*base, "--broker", "http://x", "--publisher-password-file", str(pw)), 1, "mqtt://"
    )
    open_pw = _password_file(tmp_path, "publisher-secret\n", mode=0o644)
    proc = run(
        *base, "--broker", "mqtt://127.0.0.1:1883", "--publisher-password-file", str(open_pw)
    )
    _one_line_error(proc, 1, "can be read by others")
    assert "publisher-secret" not in proc.stderr + proc.stdout


def test_web_turns_nagle_off_on_every_connection():
    """uvicorn writes a response's headers and its body separately; with Nagle's algorithm
    on, the body waits for the client's delayed ACK (40 ms on Linux) on every request.
    asyncio turns Nagle off only on a listening socket created as TCP, so the socket that
    ``tillbox edge web`` binds must say so (bench/console.py: 56 ms -> 3 ms a request)."""
    import asyncio

    from console.cli import _bind

    sock = _bind("127.0.0.1", 0)

    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connection(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("socket")
            accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=sock)  # as uvicorn serves it
        async with server:
            _r, w = await asyncio.open_connection(*sock.getsockname()[:2])
            nodelay = await accepted
            w.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0, "TCP_NODELAY is off on the console's connections"
