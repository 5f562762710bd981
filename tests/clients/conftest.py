"""Session fixtures of the sluice client-conformance tests.

One lake (pyiceberg, SQLite catalog) and one sluice server (SQLite store)
per session; tokens are created through the admin API. One real Milvus
2.3.5 server (``milvus``: scripts/test.sh starts it and sets
SLUICE_TEST_MILVUS_URI, else the fixture starts its own). One moto S3
server (``moto``) behind a TcpProxy (``s3_proxy``) and the gateways with
``[exports]`` that use it (``export_env``, ``export_mem_env``). Nothing here
skips: a missing binary or a server that does not start fails the tests
that need it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from exports_harness import (  # noqa: E402
    BUCKET, EXPORT_TOKENS, FAULT_BUCKET, MEM_LIMIT_TOML, ExportEnv, exports_config,
)
from fixtures import TABLE_CLASSES, build_lake  # noqa: E402
from harness import HarnessError, SluiceServer, Tokens, adbc_query, sluice_binary, start_or_fail  # noqa: E402
from milvus_harness import MilvusError, MilvusServer  # noqa: E402
from oracle import Oracle  # noqa: E402
from policy_views import build_oracle_db  # noqa: E402
from s3_harness import MotoServer, S3HarnessError  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402
from tokens import EU_ANALYST, ORACLE_TOKENS, SALES_READER, SCALE_ORACLE_TOKENS  # noqa: E402
from trino_harness import (  # noqa: E402
    TRINO_ORACLES, TRINO_SMALL_CONFIG, RawTrino, TrinoConnections, wait_until,
)

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
    start_or_fail(srv)
    yield srv
    srv.close()


class MilvusHandle:
    """What the ``milvus`` fixture yields: ``.uri`` (gRPC, e.g.
    ``http://127.0.0.1:19530``) and ``.server`` (the MilvusServer this
    session started, or None when SLUICE_TEST_MILVUS_URI was given)."""

    def __init__(self, uri: str, server: MilvusServer | None = None):
        self.uri = uri
        self.server = server

    def __repr__(self) -> str:
        return f"MilvusHandle(uri={self.uri!r}, own_server={self.server is not None})"


@pytest.fixture(scope="session")
def milvus(tmp_path_factory):
    """A real Milvus 2.3.5 with the collections of milvus_fixtures.py (docs,
    notes, big). With SLUICE_TEST_MILVUS_URI (scripts/test.sh) that server
    is used, and the collections are re-created if one is missing or has the
    wrong row count; otherwise this session starts its own server (pinned
    ports 19530 etc., so not next to another one) and stops it at the end."""
    from milvus_fixtures import collections_present, create_collections

    uri = os.environ.get("SLUICE_TEST_MILVUS_URI")
    if uri:
        try:
            if not collections_present(uri):
                create_collections(uri, verbose=False)
        except Exception as e:  # noqa: BLE001 - reported as a failure
            pytest.fail(f"Milvus at SLUICE_TEST_MILVUS_URI={uri}: {type(e).__name__}: {e}", pytrace=False)
        yield MilvusHandle(uri)
        return
    srv = MilvusServer(log_path=tmp_path_factory.mktemp("milvus") / "milvus-server.log")
    try:
        srv.start()
        create_collections(srv.uri, verbose=False)
    except (MilvusError, Exception) as e:  # noqa: BLE001 - reported as a failure
        srv.stop()
        pytest.fail(f"starting Milvus or creating its collections: {type(e).__name__}: {e}", pytrace=False)
    except BaseException:
        srv.stop()
        raise
    try:
        yield MilvusHandle(srv.uri, srv)
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def tokens(server) -> Tokens:
    """key -> POST /v1/tokens answer (``id``, ``secret``, ...). Keys:
    ORACLE_TOKENS' and SCALE_ORACLE_TOKENS' keys, ``eu_analyst``,
    ``sales_reader`` (each made on first use)."""
    bodies = dict(ORACLE_TOKENS)
    bodies.update(SCALE_ORACLE_TOKENS)
    bodies["eu_analyst"] = EU_ANALYST
    bodies["sales_reader"] = SALES_READER
    return Tokens(server, bodies)


class Connections:
    """ADBC connections per (token key, auth mode), opened lazily."""

    def __init__(self, server: SluiceServer, tokens: Tokens):
        self.server = server
        self.tokens = tokens
        self._conns: dict[tuple[str, str], object] = {}
        self._recorded: dict[tuple[str, str], object] = {}

    def get(self, key: str, mode: str = "bearer"):
        if (key, mode) not in self._conns:
            self._conns[(key, mode)] = self.server.adbc_connect(self.tokens[key]["secret"], mode=mode)
        return self._conns[(key, mode)]

    def query(self, key: str, sql: str, params=None, mode: str = "bearer"):
        return adbc_query(self.get(key, mode), sql, params)

    def query_recorded(self, key: str, sql: str):
        """``query`` for read-only oracle queries, remembering the answer
        (table or exception) so that the Trino-vs-Flight oracle does not run
        the same ~1100 Flight queries a second time in one session. The lake
        is static during a session, so the recorded answer is the answer."""
        if (key, sql) not in self._recorded:
            try:
                self._recorded[(key, sql)] = self.query(key, sql)
            except Exception as e:  # noqa: BLE001 - recorded, re-raised below
                self._recorded[(key, sql)] = e
        out = self._recorded[(key, sql)]
        if isinstance(out, Exception):
            raise out
        return out

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
    o = Oracle(ORACLE_TOKENS, lake.sources, TABLE_CLASSES, lambda key, sql: conns.query_recorded(key, sql))
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


# --- Trino HTTP frontend ------------------------------------------------------------

@pytest.fixture(scope="session")
def trino_conns(server, tokens):
    """``trino`` DB-API connections to the main server, one per (token key,
    auth mode): ``trino_conns.get(key, mode)``, ``.query(key, sql, params)``
    -> (description, rows), ``.rows(...)``."""
    c = TrinoConnections(server, tokens)
    yield c
    c.close()


@pytest.fixture(scope="session")
def trino_small(sluice_bin, lake, tmp_path_factory):
    """A second server on the same lake with TRINO_SMALL_CONFIG (its own
    SQLite store, so its own tokens: see ``small_tokens``)."""
    srv = SluiceServer(
        binary=sluice_bin, workdir=tmp_path_factory.mktemp("sluice-trino-small"), lake=lake,
        extra_config=TRINO_SMALL_CONFIG,
    )
    _SERVERS.append(srv)
    start_or_fail(srv)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def small_tokens(trino_small) -> Tokens:
    """Tokens of ``trino_small`` (same keys as ``tokens``). The first use
    also warms the server up (catalog load) so that time-bounded tests do
    not pay for it."""
    bodies = dict(ORACLE_TOKENS)
    bodies["eu_analyst"] = EU_ANALYST
    bodies["sales_reader"] = SALES_READER
    made = Tokens(trino_small, bodies)
    raw = RawTrino(trino_small.http_base, made["sales_reader"]["secret"])
    try:
        raw.run("SELECT count(*) FROM lake.sales.orders")
    finally:
        raw.close()
    return made


def _live_queries(srv: SluiceServer) -> list[dict]:
    raw = RawTrino(srv.http_base, srv.admin_secret, timeout_s=10)
    try:
        return raw.queries()
    finally:
        raw.close()


@pytest.fixture
def small(trino_small, small_tokens):
    """``trino_small`` for one test, with no query of an earlier test still
    holding a slot (they are cancelled or reaped within the client timeout);
    the test's own queries must be gone within a few seconds after it."""
    wait_until(lambda: not _live_queries(trino_small), timeout_s=15,
               what="no live Trino queries on the small server before the test")
    yield trino_small
    try:
        wait_until(lambda: not _live_queries(trino_small), timeout_s=15,
                   what="no live Trino queries on the small server after the test")
    except Exception:  # noqa: BLE001 - the next test's setup reports it
        pass


# --- exports (S3 on moto) ------------------------------------------------------------

@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """A moto S3 server on a free loopback port (s3_harness.MotoServer)."""
    srv = MotoServer(log_path=tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        srv.start()
    except S3HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def s3_proxy(moto):
    """A TcpProxy in front of moto: the S3 endpoint the gateways are given,
    so tests can pause or cut their object store while moto keeps its state."""
    proxy = TcpProxy(moto.address).start()
    yield proxy
    proxy.stop()


def _start_export_env(sluice_bin, lake, workdir, moto, proxy, **config) -> ExportEnv:
    s3 = moto.client()
    for bucket in (BUCKET, FAULT_BUCKET):
        s3.create_bucket(bucket)
    root = workdir / "data" / "exports"  # the spec's default place, inside data_dir
    srv = SluiceServer(binary=sluice_bin, workdir=workdir, lake=lake,
                       extra_config=exports_config(root, proxy.uri, **config))
    _SERVERS.append(srv)
    start_or_fail(srv)
    return ExportEnv(server=srv, root=root, s3=s3, proxy=proxy, tokens=Tokens(srv, EXPORT_TOKENS))


@pytest.fixture(scope="session")
def export_env(sluice_bin, lake, tmp_path_factory, moto, s3_proxy):
    """A server with [exports] (S3 through ``s3_proxy``; retry_timeout 2s,
    cleanup_interval 1s) and its export tokens (exports_harness)."""
    env = _start_export_env(sluice_bin, lake, tmp_path_factory.mktemp("sluice-exports"), moto, s3_proxy)
    yield env
    env.close()
    env.server.close()


@pytest.fixture
def exports(export_env):
    """``export_env`` for one test: the S3 proxy forwarding and no job of an
    earlier test still queued or running."""
    export_env.proxy.forward()
    wait_until(lambda: not export_env.live_jobs(), timeout_s=60,
               what="no live export jobs before the test")
    yield export_env


@pytest.fixture(scope="session")
def export_mem_env(sluice_bin, lake, tmp_path_factory, moto, s3_proxy):
    """A fresh server only for the memory test (its VmHWM starts low), with
    ``[exports] memory_limit`` = exports_harness.MEM_LIMIT."""
    env = _start_export_env(sluice_bin, lake, tmp_path_factory.mktemp("sluice-exports-mem"), moto, s3_proxy,
                            memory_limit=MEM_LIMIT_TOML)
    yield env
    env.close()
    env.server.close()


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
    for o in TRINO_ORACLES:
        if not o.stats:
            continue
        tr = terminalreporter
        tr.section("sluice Trino vs Flight SQL (same token, same query)")
        for line in o.summary_lines():
            tr.write_line(line)
