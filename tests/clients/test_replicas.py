"""Two sluice replicas sharing one PostgreSQL store (DESIGN §3, §5, §8):
tokens made on one work on the other, revocation on one applies to the
other on the very next request, and a DoGet ticket from one is redeemed by
the other (tickets are self-contained).

Needs SLUICE_TEST_POSTGRES_URL (scripts/test.sh starts a throwaway
PostgreSQL and sets it); without it these tests fail rather than skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import adbc_driver_manager
import pytest

import flight_proto as fp
import lake_counts
from harness import HarnessError, SluiceServer, adbc_query, bearer_options
from tokens import ORDERS, token_body

TOKEN = token_body(
    "replica-reader",
    [{"table": ORDERS, "columns": ["order_id", "region", "amount"]}],
    max_sensitivity=3,
    row_limit=100,
)


def _psql() -> str:
    pg_bin = os.environ.get("SLUICE_TEST_PG_BIN")
    candidates = [shutil.which("psql")] + ([str(Path(pg_bin) / "psql")] if pg_bin else [])
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail("psql not found (install PostgreSQL client or set SLUICE_TEST_PG_BIN)", pytrace=False)


@pytest.fixture(scope="module")
def pg_store_url():
    base = os.environ.get("SLUICE_TEST_POSTGRES_URL")
    if not base:
        pytest.fail("SLUICE_TEST_POSTGRES_URL is not set: run scripts/test.sh (it starts PostgreSQL)", pytrace=False)
    name = f"sluice_replicas_{uuid.uuid4().hex[:8]}"
    psql = _psql()
    subprocess.run([psql, base, "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {name}"], check=True)
    yield base.rsplit("/", 1)[0] + "/" + name
    subprocess.run([psql, base, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


@pytest.fixture(scope="module")
def replicas(sluice_bin, lake, pg_store_url, tmp_path_factory):
    a = SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("replica-a"), lake=lake, store_url=pg_store_url)
    b = None
    try:
        a.start()
        b = SluiceServer(
            binary=sluice_bin, workdir=tmp_path_factory.mktemp("replica-b"), lake=lake,
            store_url=pg_store_url, run_init=False, admin_secret=a.admin_secret,
        )
        b.start()
    except HarnessError as e:
        a.close()
        if b is not None:
            b.close()
        pytest.fail(str(e), pytrace=False)
    yield a, b
    a.close()
    b.close()


def test_token_from_a_works_on_b(replicas):
    a, b = replicas
    tok = a.create_token(TOKEN)
    for srv in (a, b):
        conn = srv.adbc_connect(tok["secret"])
        try:
            t = adbc_query(conn, f"SELECT count(*) AS n FROM {ORDERS}")
            assert t.column("n").to_pylist() == [lake_counts.READER_ORDERS]
        finally:
            conn.close()


def test_admin_api_on_both(replicas):
    a, b = replicas
    tok = b.create_token(dict(TOKEN, name="made-on-b"))
    conn = a.adbc_connect(tok["secret"])
    try:
        assert adbc_query(conn, "SELECT 1 AS x").num_rows == 1
    finally:
        conn.close()


def test_revocation_on_a_applies_on_b_next_request(replicas):
    a, b = replicas
    tok = a.create_token(dict(TOKEN, name="revoke-across"))
    conn_b = b.adbc_connect(tok["secret"])
    try:
        assert adbc_query(conn_b, "SELECT 1 AS x").num_rows == 1
        assert a.revoke_token(tok["id"]).status_code == 200
        with pytest.raises(adbc_driver_manager.Error) as exc:
            adbc_query(conn_b, "SELECT 1 AS x")
        assert "authentication failed" in str(exc.value)
    finally:
        conn_b.close()


def test_ticket_from_a_redeemed_on_b(replicas):
    a, b = replicas
    tok = a.create_token(dict(TOKEN, name="ticket-across"))
    opts = bearer_options(tok["secret"])
    ca, cb = a.flight_client(), b.flight_client()
    try:
        info = fp.statement_info(ca, f"SELECT order_id FROM {ORDERS} ORDER BY order_id LIMIT 10", opts)
        t_b, _ = fp.read_stream(cb.do_get(info.endpoints[0].ticket, opts))
        t_a, _ = fp.read_stream(ca.do_get(info.endpoints[0].ticket, opts))
        assert t_b.num_rows == 10
        assert t_a.column("order_id").to_pylist() == t_b.column("order_id").to_pylist()
    finally:
        ca.close()
        cb.close()
