"""Session fixtures of the sluice client-conformance tests.

One lake (pyiceberg, SQLite catalog) and one sluice server (SQLite store)
per session; tokens are created through the admin API. Nothing here skips:
a missing binary or a server that does not start fails the tests that need
it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import TABLE_CLASSES, build_lake  # noqa: E402
from harness import HarnessError, SluiceServer, adbc_query, sluice_binary  # noqa: E402
from oracle import Oracle  # noqa: E402
from policy_views import build_oracle_db  # noqa: E402
from tokens import EU_ANALYST, ORACLE_TOKENS, SALES_READER  # noqa: E402

#: Oracle instances and servers of this session (for the terminal summary).
_ORACLES: list[Oracle] = []
_SERVERS: list[SluiceServer] = []


@pytest.fixture(scope="session")
def lake(tmp_path_factory):
    return build_lake(tmp_path_factory.mktemp("lake"))


@pytest.fixture(scope="session")
def sluice_bin() -> Path:
    try:
        return sluice_binary()
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def server(sluice_bin, lake, tmp_path_factory):
    srv = SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("sluice"), lake=lake)
    _SERVERS.append(srv)
    try:
        srv.start()
    except HarnessError as e:
        srv.close()
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.close()


class Tokens:
    """Named session tokens, created through the admin API on first use, so
    a token the server rejects fails only the tests that use it."""

    def __init__(self, server: SluiceServer, bodies: dict[str, dict]):
        self.server = server
        self.bodies = bodies
        self._made: dict[str, dict | str] = {}

    def __getitem__(self, key: str) -> dict:
        if key not in self._made:
            try:
                self._made[key] = self.server.create_token(self.bodies[key])
            except HarnessError as e:
                self._made[key] = str(e)  # fail every user, ask the server once
        made = self._made[key]
        if isinstance(made, str):
            pytest.fail(made, pytrace=False)
        return made


@pytest.fixture(scope="session")
def tokens(server) -> Tokens:
    """key -> POST /v1/tokens answer (``id``, ``secret``, ...). Keys:
    ORACLE_TOKENS' keys, ``eu_analyst``, ``sales_reader``."""
    bodies = dict(ORACLE_TOKENS)
    bodies["eu_analyst"] = EU_ANALYST
    bodies["sales_reader"] = SALES_READER
    return Tokens(server, bodies)


class Connections:
    """ADBC connections per (token key, auth mode), opened lazily."""

    def __init__(self, server: SluiceServer, tokens: Tokens):
        self.server = server
        self.tokens = tokens
        self._conns: dict[tuple[str, str], object] = {}

    def get(self, key: str, mode: str = "bearer"):
        if (key, mode) not in self._conns:
            self._conns[(key, mode)] = self.server.adbc_connect(self.tokens[key]["secret"], mode=mode)
        return self._conns[(key, mode)]

    def query(self, key: str, sql: str, params=None, mode: str = "bearer"):
        return adbc_query(self.get(key, mode), sql, params)

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        self._conns.clear()


@pytest.fixture(scope="session")
def conns(server, tokens):
    c = Connections(server, tokens)
    yield c
    c.close()


@pytest.fixture
def adbc_bearer(conns):
    """``adbc_bearer(key)`` -> ADBC connection using ``authorization: Bearer``."""
    return lambda key: conns.get(key, "bearer")


@pytest.fixture
def adbc_basic(conns):
    """``adbc_basic(key)`` -> ADBC connection using username/password (Handshake)."""
    return lambda key: conns.get(key, "basic")


@pytest.fixture(scope="session")
def oracle(lake, conns):
    o = Oracle(ORACLE_TOKENS, lake.sources, TABLE_CLASSES, lambda key, sql: conns.query(key, sql))
    _ORACLES.append(o)
    yield o
    o.close()


@pytest.fixture(scope="session")
def expect(lake):
    """``expect(token_body, sql)`` -> what the token's secure views answer
    (DuckDB), as a pyarrow Table."""
    dbs = {}

    def run(token_body: dict, sql: str):
        name = token_body["name"]
        if name not in dbs:
            dbs[name] = build_oracle_db(token_body, lake.sources, TABLE_CLASSES)
        return dbs[name].con.sql(sql).to_arrow_table()

    yield run
    for db in dbs.values():
        db.close()


def _server_errors(srv: SluiceServer, limit: int = 15) -> list[str]:
    """Distinct ERROR lines of a server log (timestamps and ids stripped), most frequent first."""
    import collections
    import re

    try:
        lines = srv.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    counts = collections.Counter()
    for line in lines:
        if " ERROR " in line or '"level":"ERROR"' in line:
            line = re.sub(r"^\S+\s+", "", line)  # timestamp
            line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", line)
            counts[line[:400]] += 1
    return [f"{n:5d}x {text}" for text, n in counts.most_common(limit)]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for srv in _SERVERS:
        errors = _server_errors(srv)
        if errors:
            terminalreporter.section("sluice server log: ERROR lines")
            terminalreporter.write_line(f"log: {srv.log_path}")
            for line in errors:
                terminalreporter.write_line(line)
    for o in _ORACLES:
        if not o.stats:
            continue
        tr = terminalreporter
        tr.section("sluice oracle (DESIGN §4)")
        total = {"compared": 0, "refused": 0, "mismatches": 0}
        for key, s in sorted(o.stats.items()):
            tr.write_line(f"{key:24s} compared={s.compared:4d} refused={s.refused:4d} mismatches={s.mismatches:4d}")
            for k in total:
                total[k] += getattr(s, k)
        tr.write_line(
            f"{'TOTAL':24s} compared={total['compared']:4d} refused={total['refused']:4d} "
            f"mismatches={total['mismatches']:4d}"
        )
        for key, s in sorted(o.stats.items()):
            for d in s.details[:20]:
                tr.write_line(f"  mismatch {d}")
