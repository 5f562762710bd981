"""A real Milvus 2.3.5 standalone server for the tests (PyPI ``milvus``).

``MilvusServer`` runs the venv's ``milvus-server`` entry point on loopback
with every port pinned and every component's ip set to 127.0.0.1 (otherwise
it binds a non-loopback address or moves ports), a fresh data dir per start
(``tempfile.mkdtemp``; a data dir cannot be reused soon after a stop), and
its own process group, so that ``stop()`` reaches the Go binary too. It is
ready when ``http://127.0.0.1:9091/healthz`` answers ``OK``.

CLI (used by scripts/test.sh)::

    python tests/clients/milvus_harness.py start --pidfile F --logfile L
        starts the server detached, waits until it is healthy, creates the
        fixture collections (milvus_fixtures.py), prints the URI, exits 0
        and leaves the server running. Writes the process-group id to F and
        the data dir to F.datadir. On failure: stops it, prints the log
        tails to stderr and exits 1.
    python tests/clients/milvus_harness.py stop --pidfile F
        stops that process group (SIGINT, then SIGKILL) and removes the
        data dir. Succeeds if nothing is running.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
#: milvus-server option -> port. All pinned: the wrapper silently moves a
#: port that is busy, so they are checked free before starting.
PORTS = {
    "--etcd-port": 2379,
    "--root-coord-port": 53100,
    "--proxy-port": 19530,
    "--proxy-internal-port": 19529,
    "--query-coord-port": 19531,
    "--query-node-port": 21123,
    "--index-coord-port": 22930,
    "--index-node-port": 21121,
    "--data-coord-port": 13333,
    "--data-node-port": 21124,
}
#: metrics / health port (the wrapper's METRICS_PORT; also moved if busy).
HEALTH_PORT = 9091
#: embedded etcd's peer port (not configurable here, but must be free).
ETCD_PEER_PORT = 2380
HEALTH_URL = f"http://{HOST}:{HEALTH_PORT}/healthz"
URI = f"http://{HOST}:{PORTS['--proxy-port']}"
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
START_TIMEOUT_S = 120.0
#: how long to wait for ports still held (e.g. TIME_WAIT after a previous run).
PORT_WAIT_S = 75.0


class MilvusError(RuntimeError):
    pass


def milvus_server_exe() -> str:
    """The ``milvus-server`` entry point of the interpreter's venv."""
    exe = Path(sys.executable).parent / "milvus-server"
    if exe.is_file() and os.access(exe, os.X_OK):
        return str(exe)
    found = shutil.which("milvus-server")
    if found:
        return found
    raise MilvusError(
        f"milvus-server not found next to {sys.executable} nor on PATH: "
        "pip install -r tests/clients/requirements.txt (milvus==2.3.5)"
    )


def server_command(data_dir: str) -> list[str]:
    cmd = [milvus_server_exe(), "--data", data_dir]
    for opt, port in PORTS.items():
        cmd += [opt, str(port)]
    for comp in COMPONENTS:
        cmd += ["--extra-config", f"{comp}.ip={HOST}"]
    return cmd


def _port_free(port: int) -> bool:
    # Same test as the wrapper (bind without SO_REUSEADDR), so that a port
    # we call free is not then moved by the wrapper.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_ports_free(timeout_s: float = PORT_WAIT_S) -> float:
    """Wait until every pinned port can be bound; returns the seconds waited.

    After a stop, the server side of closed connections sits in TIME_WAIT
    for about 60 s, and the wrapper's bind test (no SO_REUSEADDR) would then
    move the port, so a restart within a minute waits here."""
    t0 = time.monotonic()
    ports = list(PORTS.values()) + [HEALTH_PORT, ETCD_PEER_PORT]
    deadline = time.monotonic() + timeout_s
    while True:
        busy = [p for p in ports if not _port_free(p)]
        if not busy:
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            try:
                ss = subprocess.run(["ss", "-tanp"], capture_output=True, text=True, timeout=10).stdout
                ss = "\n".join(l for l in ss.splitlines() if any(f":{p} " in l for p in busy))
            except (OSError, subprocess.SubprocessError):
                ss = "(ss not available)"
            raise MilvusError(
                f"Milvus ports still in use after {timeout_s:.0f}s: {busy} "
                f"(another Milvus running? `pgrep -af 'milvus run'`)\n{ss}"
            )
        time.sleep(1.0)


#: milvus.yaml section -> the port the wrapper must have written there.
_CONFIG_PORTS = {
    "rootCoord": PORTS["--root-coord-port"],
    "proxy": PORTS["--proxy-port"],
    "queryCoord": PORTS["--query-coord-port"],
    "queryNode": PORTS["--query-node-port"],
    "indexNode": PORTS["--index-node-port"],
    "dataCoord": PORTS["--data-coord-port"],
    "dataNode": PORTS["--data-node-port"],
}


def check_config_ports(data_dir: str) -> None:
    """The wrapper moves a port it finds busy instead of failing: check the
    milvus.yaml it wrote has every pinned port and every component ip."""
    path = Path(data_dir) / "configs" / "milvus.yaml"
    section = None
    ports: dict[str, int] = {}
    ips: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            section = line.split(":", 1)[0].strip()
            continue
        if line.startswith("  ") and not line.startswith("   ") and section in _CONFIG_PORTS:
            key, _, val = line.strip().partition(":")
            val = val.split("#", 1)[0].strip()
            if key == "port":
                ports[section] = int(val)
            elif key == "ip":
                ips[section] = val
    bad = [f"{sec}.port={ports.get(sec)} (want {want})" for sec, want in _CONFIG_PORTS.items() if ports.get(sec) != want]
    bad += [f"{sec}.ip={ips.get(sec)!r} (want {HOST})" for sec in COMPONENTS if ips.get(sec) != HOST]
    if bad:
        raise MilvusError(f"milvus-server did not use the pinned settings ({path}): " + ", ".join(bad))


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH_URL, timeout=5) as resp:
            return resp.status == 200 and resp.read().decode("utf-8", "replace").strip() == "OK"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"({path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


def log_tails(log_path: Path | None, data_dir: str | None, lines: int = 40) -> str:
    """The tails of the wrapper's log and of the Go binary's logs."""
    parts = []
    paths = [log_path] if log_path else []
    if data_dir:
        logs = Path(data_dir) / "logs"
        paths += [logs / "milvus-stdout.log", logs / "milvus-stderr.log"]
    for p in paths:
        if p.exists():
            parts.append(f"--- {p} (last {lines} lines) ---\n{_tail(p, lines)}")
    return "\n".join(parts) or "(no log written)"


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces/parens
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def stop_group(pgid: int, proc: subprocess.Popen | None = None, grace_s: float = 30.0) -> None:
    """SIGINT to the process group, wait up to ``grace_s`` for every member
    to exit, then SIGKILL what is left."""
    def alive() -> bool:
        if proc is not None and proc.poll() is None:
            return True
        return bool(_group_members(pgid))

    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive():
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while alive() and time.monotonic() < deadline:
            time.sleep(0.2)
    if proc is not None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    left = _group_members(pgid)
    if left:
        raise MilvusError(f"Milvus process group {pgid} still has processes after SIGKILL: {left}")
    # A detached leader (CLI mode) is reaped by init, a little later: wait
    # briefly so that `pgrep milvus` right after a stop finds nothing.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pgid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


class MilvusServer:
    """One Milvus standalone server on the pinned loopback ports."""

    uri = URI

    def __init__(self, log_path: str | Path | None = None):
        self.log_path = Path(log_path) if log_path else None
        self.data_dir: str | None = None
        self.proc: subprocess.Popen | None = None
        self._own_log = False
        self.startup_s: float | None = None
        self.port_wait_s: float = 0.0

    def start(self, timeout_s: float = START_TIMEOUT_S, on_spawn=None) -> "MilvusServer":
        """Start and wait until healthy; on failure (timeout, early exit)
        stop it and raise MilvusError with the log tails. ``on_spawn(self)``
        is called right after the process is spawned (the CLI writes its
        pidfile there, so that a stop during startup finds it)."""
        if self.proc is not None:
            raise MilvusError("MilvusServer already started")
        self.port_wait_s = wait_ports_free()
        self.data_dir = tempfile.mkdtemp(prefix="sluice-milvus.")
        if self.log_path is None:
            self.log_path = Path(self.data_dir + ".log")
            self._own_log = True
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                server_command(self.data_dir),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if on_spawn is not None:
            on_spawn(self)
        try:
            self._wait_healthy(timeout_s)
        except BaseException as e:
            tails = log_tails(self.log_path, self.data_dir)
            self.stop()
            if isinstance(e, MilvusError):
                raise MilvusError(f"{e}\n{tails}") from None
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise MilvusError(f"milvus-server exited with code {rc} before it was healthy")
            if _healthy():
                check_config_ports(self.data_dir)
                return
            if time.monotonic() > deadline:
                raise MilvusError(f"Milvus not healthy at {HEALTH_URL} after {timeout_s:.0f}s")
            time.sleep(0.25)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """SIGINT to the process group, wait, SIGKILL fallback; remove the
        data dir (and the log if it was ours)."""
        try:
            if self.proc is not None:
                stop_group(self.proc.pid, self.proc)
        finally:
            self.proc = None
            if self.data_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None
            if self._own_log and self.log_path:
                try:
                    self.log_path.unlink()
                except OSError:
                    pass

    def __enter__(self) -> "MilvusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- CLI -------------------------------------------------------------------------------

def _cmd_start(args) -> int:
    pidfile = Path(args.pidfile)
    datafile = Path(str(pidfile) + ".datadir")
    log_path = Path(args.logfile)
    t0 = time.monotonic()
    srv = MilvusServer(log_path=log_path)

    def write_pidfile(s: MilvusServer) -> None:
        datafile.write_text(f"{s.data_dir}\n")
        pidfile.write_text(f"{s.pid}\n")

    try:
        srv.start(timeout_s=args.timeout, on_spawn=write_pidfile)
    except MilvusError as e:
        print(f"milvus_harness: {e}", file=sys.stderr)
        pidfile.unlink(missing_ok=True)
        datafile.unlink(missing_ok=True)
        return 1
    t1 = time.monotonic()
    print(f"milvus_harness: healthy after {t1 - t0:.1f}s (of which {srv.port_wait_s:.1f}s waiting for "
          f"the ports to be free; pgid {srv.pid}, data {srv.data_dir}, log {log_path})", file=sys.stderr)
    if not args.no_fixtures:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        try:
            from milvus_fixtures import create_collections
            create_collections(srv.uri)
        except BaseException as e:  # noqa: BLE001 - reported, server stopped
            import traceback
            traceback.print_exc()
            print(f"milvus_harness: creating the fixture collections failed: {e!r}\n"
                  f"{log_tails(log_path, srv.data_dir)}", file=sys.stderr)
            srv.stop()
            pidfile.unlink(missing_ok=True)
            datafile.unlink(missing_ok=True)
            return 1
        print(f"milvus_harness: fixture collections created in {time.monotonic() - t1:.1f}s", file=sys.stderr)
    # Leave it running: forget the Popen so that nothing stops it here.
    srv.proc = None
    srv.data_dir = None
    print(srv.uri)
    return 0


def _cmd_stop(args) -> int:
    pidfile = Path(args.pidfile)
    datafile = Path(str(pidfile) + ".datadir")
    rc = 0
    try:
        pgid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pgid = None
    if pgid is not None:
        try:
            stop_group(pgid)
        except MilvusError as e:
            print(f"milvus_harness: {e}", file=sys.stderr)
            rc = 1
    try:
        data_dir = datafile.read_text().strip()
    except OSError:
        data_dir = ""
    if data_dir and Path(data_dir).name.startswith("sluice-milvus."):
        shutil.rmtree(data_dir, ignore_errors=True)
    pidfile.unlink(missing_ok=True)
    datafile.unlink(missing_ok=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start")
    st.add_argument("--pidfile", required=True)
    st.add_argument("--logfile", required=True)
    st.add_argument("--timeout", type=float, default=START_TIMEOUT_S)
    st.add_argument("--no-fixtures", action="store_true", help="do not create the fixture collections")
    sp = sub.add_parser("stop")
    sp.add_argument("--pidfile", required=True)
    args = ap.parse_args(argv)
    return _cmd_start(args) if args.cmd == "start" else _cmd_stop(args)


if __name__ == "__main__":
    sys.exit(main())
