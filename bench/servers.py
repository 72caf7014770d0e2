"""Start, health-check and stop gunicorn servers for the benchmark."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

LOCALHOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server did not start, did not become healthy, or died."""


@dataclass(frozen=True)
class GunicornSettings:
    """The gunicorn settings shared by the app under test and the control."""

    workers: int
    worker_class: str = "sync"

    def arguments(self, port: int) -> list[str]:
        """Command-line options for gunicorn; no access log is configured, so none is written."""
        return [
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--bind",
            f"{LOCALHOST}:{port}",
        ]


def free_port() -> int:
    """Return a TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note if there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class GunicornServer:
    """One gunicorn master serving ``app_spec`` on a free loopback port.

    Use it as a context manager: the server is started and health-checked on entry, and stopped on exit
    (SIGTERM to the master, then SIGKILL to its process group if it has not exited in time), whether the
    block ended normally, with an error, or with Ctrl-C.
    """

    def __init__(
        self,
        *,
        label: str,
        app_spec: str,
        settings: GunicornSettings,
        cwd: Path,
        env: dict[str, str],
        log_path: Path,
        health_path: str,
        startup_timeout: float = 60.0,
        stop_timeout: float = 30.0,
    ) -> None:
        self.label = label
        self.app_spec = app_spec
        self.settings = settings
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.health_path = health_path
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The server's root URL."""
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The gunicorn master's process id, once started."""
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The full gunicorn command line."""
        return [sys.executable, "-m", "gunicorn", *self.settings.arguments(self.port), self.app_spec]

    def start(self) -> None:
        """Launch gunicorn and wait until the health path answers 200."""
        self.port = free_port()
        env = {name: value for name, value in self.env.items() if name != "GUNICORN_CMD_ARGS"}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self._process is not None
        url = self.base_url + self.health_path
        deadline = time.monotonic() + self.startup_timeout
        last_problem = "no answer yet"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ServerError(
                    f"{self.label}: gunicorn exited with code {self._process.returncode} before answering "
                    f"{self.health_path}\n--- log ---\n{log_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        return
                    last_problem = f"status {answer.status}"
            except urllib.error.HTTPError as error:
                last_problem = f"status {error.code}"
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                last_problem = str(error)
            time.sleep(0.1)
        raise ServerError(
            f"{self.label}: {url} not healthy after {self.startup_timeout:.0f}s ({last_problem})"
            f"\n--- log ---\n{log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Stop gunicorn gracefully, then forcibly if it takes longer than ``stop_timeout``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()

    def __enter__(self) -> "GunicornServer":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
