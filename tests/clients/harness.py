"""Running a real sluice server for the client tests.

``SluiceServer`` writes a TOML config, runs ``sluice init`` (stdout = the
admin secret), starts ``sluice serve``, waits for ``GET /health`` and the
Flight port, and stops the process on ``close()``. The admin API helpers
(``create_token`` / ``revoke_token``) and client factories (ADBC,
pyarrow.flight) live here too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from fixtures import TABLE_CLASSES, Lake

STARTUP_TIMEOUT_S = float(os.environ.get("SLUICE_TEST_STARTUP_TIMEOUT", "180"))
QUERY_TIMEOUT_S = "120"

#: Every server started in this test session (their logs and embedded
#: stores are searched for leaked secrets at the end of the suite).
STARTED: list["SluiceServer"] = []
#: Every token secret the harness saw (admin secrets, created tokens; the
#: federation harness adds share secrets from downloaded profiles, seal keys
#: and lines of the test certificates' private keys).
SECRETS: set[str] = set()

#: Test servers are not rate limited unless a test configures ``[limits]``
#: itself: the suite makes thousands of requests with one token and many
#: deliberate authentication failures from 127.0.0.1.
UNLIMITED = "[limits]\nrate_limit_per_minute = 0\nauth_failures_per_minute = 0"


class HarnessError(RuntimeError):
    pass


def sluice_binary() -> Path:
    """The binary under test: ``$SLUICE_BIN``, else the debug build in
    ``$CARGO_TARGET_DIR`` (default ``~/.cache/sluice-target``)."""
    env = os.environ.get("SLUICE_BIN")
    if env:
        path = Path(env)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache" / "sluice-target"))
        path = target / "debug" / "sluice"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise HarnessError(
            f"sluice binary not found at {path}: build it (cargo build -p sluice --bin sluice) "
            "or set SLUICE_BIN; scripts/test.sh does both"
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


from policy_views import MASK_KEY  # noqa: E402


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config(
    *,
    flight_addr: str,
    http_addr: str,
    data_dir: Path,
    store_url: str,
    lake: Lake,
    extra: str = "",
) -> str:
    lines = [
        "[server]",
        f"flight_addr = {_toml_str(flight_addr)}",
        f"http_addr = {_toml_str(http_addr)}",
        f"data_dir = {_toml_str(str(data_dir))}",
        "",
        "[store]",
        f"url = {_toml_str(store_url)}",
        "",
        "[policy]",
        f"mask_key = {_toml_str(MASK_KEY)}",
        "",
        "[catalogs.lake]",
        'kind = "iceberg"',
        'catalog = "sql"',
        f"uri = {_toml_str(lake.pyiceberg_uri)}",
        f"warehouse = {_toml_str(lake.warehouse_uri)}",
    ]
    for ident, cls in TABLE_CLASSES.items():
        lines += ["", f'[catalogs.lake.tables."{ident}"]']
        if cls.get("sensitivity_column"):
            lines.append(f"sensitivity_column = {_toml_str(cls['sensitivity_column'])}")
        for key in ("attachment_columns", "vector_columns"):
            if key in cls:
                lines.append(f"{key} = [" + ", ".join(_toml_str(c) for c in cls[key]) + "]")
    if "[limits]" not in extra:
        lines += ["", UNLIMITED]
    if extra:
        lines += ["", extra]
    return "\n".join(lines) + "\n"


def start_or_fail(server: "SluiceServer") -> "SluiceServer":
    """Starts ``server``; one that does not come up fails the calling test
    (not an error), and is closed."""
    import pytest

    try:
        server.start()
    except HarnessError as e:
        server.close()
        pytest.fail(str(e), pytrace=False)
    return server


@dataclasses.dataclass
class SluiceServer:
    binary: Path
    workdir: Path
    lake: Lake
    store_url: str | None = None
    #: Run ``sluice init`` before serving (False for a second replica on a
    #: store that is already initialised; then pass ``admin_secret``).
    run_init: bool = True
    admin_secret: str | None = None
    extra_config: str = ""

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.flight_port = free_port()
        self.http_port = free_port()
        if self.store_url is None:
            self.store_url = f"sqlite://{self.data_dir}/sluice.db"
        self.config_path = self.workdir / "sluice.toml"
        self.log_path = self.workdir / "sluice.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    # -- addresses -------------------------------------------------------------
    @property
    def flight_addr(self) -> str:
        return f"127.0.0.1:{self.flight_port}"

    @property
    def flight_uri(self) -> str:
        return f"grpc://{self.flight_addr}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> "SluiceServer":
        self.config_path.write_text(
            render_config(
                flight_addr=self.flight_addr,
                http_addr=f"127.0.0.1:{self.http_port}",
                data_dir=self.data_dir,
                store_url=self.store_url,
                lake=self.lake,
                extra=self.extra_config,
            )
        )
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        if self.run_init:
            res = subprocess.run(
                [str(self.binary), "init", "--config", str(self.config_path)],
                capture_output=True, text=True, timeout=300, env=env,
            )
            if res.returncode != 0:
                raise HarnessError(
                    f"sluice init failed (exit {res.returncode})\nstdout: {res.stdout}\nstderr: {res.stderr}"
                )
            secret = res.stdout.strip()
            if not secret or len(secret.split()) != 1:
                raise HarnessError(f"sluice init must print only the admin secret, got stdout {res.stdout!r}")
            self.admin_secret = secret
        if self.admin_secret:
            SECRETS.add(self.admin_secret)
        if not self.admin_secret:
            raise HarnessError("no admin secret (run_init=False needs admin_secret)")
        self._log = open(self.log_path, "ab")
        if not any(s is self for s in STARTED):
            STARTED.append(self)
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--config", str(self.config_path)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        health_ok = flight_ok = False
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"sluice serve exited with {self.proc.returncode}\n{self.log_tail()}")
            if not health_ok:
                try:
                    r = requests.get(f"{self.http_base}/health", timeout=2)
                    health_ok = r.status_code == 200
                    last = f"/health -> {r.status_code}"
                except requests.RequestException as e:
                    last = f"/health: {e}"
            if not flight_ok:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.flight_port), timeout=1):
                    flight_ok = True
            if health_ok and flight_ok:
                return
            time.sleep(0.2)
        raise HarnessError(f"sluice not ready after {STARTUP_TIMEOUT_S}s ({last}, flight={flight_ok})\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "--- sluice log (tail) ---\n" + "\n".join(lines[-n:])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- admin API -----------------------------------------------------------------
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_secret}"}

    def create_token(self, body: dict) -> dict:
        """POST /v1/tokens; returns the JSON answer (``id``, ``secret``, ...)."""
        r = requests.post(f"{self.http_base}/v1/tokens", json=body, headers=self.admin_headers(), timeout=30)
        if r.status_code not in (200, 201):
            raise HarnessError(f"POST /v1/tokens {body.get('name')!r} -> {r.status_code}: {r.text}")
        out = r.json()
        if not out.get("id") or not out.get("secret"):
            raise HarnessError(f"POST /v1/tokens answer lacks id/secret: {out}")
        SECRETS.add(out["secret"])
        return out

    def revoke_token(self, token_id: str) -> requests.Response:
        return requests.delete(f"{self.http_base}/v1/tokens/{token_id}", headers=self.admin_headers(), timeout=30)

    # -- clients ---------------------------------------------------------------------
    def adbc_connect(self, secret: str, *, mode: str = "bearer"):
        """An ADBC DB-API connection authenticated with ``secret``: ``bearer``
        sends ``authorization: Bearer`` on every call; ``basic`` does a
        Handshake with username/password (password = token)."""
        import adbc_driver_flightsql.dbapi as flightsql

        db_kwargs = {
            "adbc.flight.sql.rpc.timeout_seconds.fetch": QUERY_TIMEOUT_S,
            "adbc.flight.sql.rpc.timeout_seconds.query": QUERY_TIMEOUT_S,
            "adbc.flight.sql.rpc.timeout_seconds.update": QUERY_TIMEOUT_S,
        }
        if mode == "bearer":
            db_kwargs["adbc.flight.sql.authorization_header"] = f"Bearer {secret}"
        elif mode == "basic":
            db_kwargs["username"] = "x"
            db_kwargs["password"] = secret
        else:
            raise ValueError(mode)
        return flightsql.connect(self.flight_uri, db_kwargs=db_kwargs, autocommit=True)

    def flight_client(self):
        import pyarrow.flight as flight

        return flight.FlightClient(self.flight_uri)


class Tokens:
    """Named tokens of one server, created through the admin API on first
    use, so a token the server rejects fails only the tests that use it."""

    def __init__(self, server: SluiceServer, bodies: dict[str, dict]):
        self.server = server
        self.bodies = bodies
        self._made: dict[str, dict | str] = {}

    def __getitem__(self, key: str) -> dict:
        import pytest

        if key not in self._made:
            try:
                self._made[key] = self.server.create_token(self.bodies[key])
            except HarnessError as e:
                self._made[key] = str(e)  # fail every user, ask the server once
        made = self._made[key]
        if isinstance(made, str):
            pytest.fail(made, pytrace=False)
        return made


FLIGHT_TIMEOUT_S = float(QUERY_TIMEOUT_S)


def _flight_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa
    import pyarrow.flight as flight

    # pyarrow maps some gRPC codes to Flight errors and others (e.g.
    # INVALID_ARGUMENT -> ArrowInvalid) to plain Arrow exceptions.
    return (flight.FlightError, pa.ArrowException)


#: Any error a pyarrow.flight call can raise for a refused request.
FLIGHT_ERRORS = _flight_errors()


def flight_options(authorization: str | bytes | None = None, *, header: tuple[bytes, bytes] | None = None):
    """pyarrow.flight call options with a timeout and, optionally, an
    ``authorization`` header (a value such as ``"Bearer <secret>"``, or a
    ready (key, value) pair as returned by ``authenticate_basic_token``)."""
    import pyarrow.flight as flight

    headers = []
    if header is not None:
        headers.append(header)
    elif authorization is not None:
        value = authorization.encode() if isinstance(authorization, str) else authorization
        headers.append((b"authorization", value))
    return flight.FlightCallOptions(headers=headers, timeout=FLIGHT_TIMEOUT_S)


def bearer_options(secret: str):
    return flight_options(f"Bearer {secret}")


def adbc_query(conn, sql: str, params=None):
    """Run ``sql`` on an ADBC connection; the result as a pyarrow Table."""
    cur = conn.cursor()
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        return cur.fetch_arrow_table()
    finally:
        cur.close()


def metric_sum(text: str, name: str, **labels) -> float:
    """Sum of the Prometheus series ``name`` in ``text`` whose labels
    include ``labels`` (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def metric(server: SluiceServer, name: str, **labels) -> float:
    """``metric_sum`` of the server's ``GET /metrics`` now."""
    r = requests.get(f"{server.http_base}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return metric_sum(r.text, name, **labels)
