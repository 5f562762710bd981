"""What no statement can do to the gateway, through the real clients and the
release-shaped binary: statements that used to abort the process (an 8 KB
``1+1+…`` chain, a long ``OR`` chain, ``array_repeat`` folded while planning)
get a clear refusal and the process lives; a query needing several times its
memory share spills or fails naming the limit, and the process's peak RSS
stays within the configured bound plus a fixed overhead; Flight SQL queries
stop at ``limits.query_timeout`` with DEADLINE_EXCEEDED, and Trino's with
EXCEEDED_TIME_LIMIT."""

from __future__ import annotations

import time

import pyarrow.flight as flight
import pytest

import flight_proto as fp
from harness import SluiceServer, start_or_fail
from tokens import token_body
from trino_harness import RawTrino

MIB = 1 << 20
MEMORY_LIMIT = 192 * MIB
QUERY_MEMORY_LIMIT = 64 * MIB
#: What the process holds besides query memory: code, catalogs, caches,
#: the allocator's slack, the batches in flight to the client.
FIXED_OVERHEAD = 320 * MIB

LIMITS = f"""[limits]
memory_limit = "{MEMORY_LIMIT // MIB}MiB"
query_memory_limit = "{QUERY_MEMORY_LIMIT // MIB}MiB"
query_timeout = "600s"
"""

#: Sorts 24M rows (about 190 MB of keys) in full: three times the query's
#: share, all of the gateway's.
BIG_SORT = (
    "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r "
    "FROM range(24000000))"
)


@pytest.fixture(scope="module")
def bounded(sluice_bin, lake, tmp_path_factory):
    srv = start_or_fail(SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("bounded"), lake=lake,
                                     extra_config=LIMITS))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def secret(bounded) -> str:
    body = token_body("limits-reader", [{"table": "lake.sales.orders", "columns": ["order_id", "region"]}],
                      max_sensitivity=3)
    return bounded.create_token(body)["secret"]


def peak_rss(srv: SluiceServer) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def query(srv: SluiceServer, secret: str, sql: str):
    with srv.adbc_connect(secret) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def flight_error(srv: SluiceServer, secret: str, sql: str) -> Exception:
    """The error pyarrow raises for ``sql`` (``ArrowInvalid`` for
    INVALID_ARGUMENT, ``FlightTimedOutError`` for DEADLINE_EXCEEDED, …)."""
    client = srv.flight_client()
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())])
    with pytest.raises(Exception) as e:
        desc = flight.FlightDescriptor.for_command(fp.command_statement_query(sql))
        info = client.get_flight_info(desc, options)
        client.do_get(info.endpoints[0].ticket, options).read_all()
    return e.value


def still_serving(srv: SluiceServer, secret: str) -> None:
    assert srv.proc.poll() is None, "the gateway process died"
    assert query(srv, secret, "SELECT count(*) FROM lake.sales.orders WHERE order_id > 0")[0][0] > 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + "+".join(["1"] * 4000),
        "SELECT order_id FROM lake.sales.orders WHERE " + " OR ".join(f"order_id = {i}" for i in range(3000)),
        "SELECT cardinality(array_repeat(1, 100000000000))",
        "SELECT " + "CAST(" * 40 + "1 AS" + " AS BIGINT)" * 40,
    ],
    ids=["plus_chain_8kb", "or_chain", "array_repeat_folded", "backtracking_casts"],
)
def test_statements_that_aborted_the_process_are_refused_clearly(bounded, secret, sql):
    e = flight_error(bounded, secret, sql)
    assert "invalid argument" in str(e).lower(), repr(e)[:300]
    assert "limits." in str(e) or "too complex" in str(e), str(e)[:300]
    still_serving(bounded, secret)


def test_a_query_needing_several_times_its_share_spills_and_peak_rss_stays_bounded(bounded, secret):
    rows = query(bounded, secret, BIG_SORT)
    assert rows == [(24000000,)]
    rss = peak_rss(bounded)
    assert rss < MEMORY_LIMIT + FIXED_OVERHEAD, (
        f"peak RSS {rss / MIB:.0f} MiB above {MEMORY_LIMIT / MIB:.0f} MiB + {FIXED_OVERHEAD / MIB:.0f} MiB")
    print(f"peak RSS {rss / MIB:.0f} MiB (memory_limit {MEMORY_LIMIT / MIB:.0f} MiB)")
    still_serving(bounded, secret)


def test_a_query_past_its_time_limit_is_stopped_on_both_protocols(bounded):
    # The token's own query_timeout, shorter than the gateway's.
    body = token_body("limits-hasty", [{"table": "lake.sales.orders", "columns": ["order_id"]}],
                      max_sensitivity=3, query_timeout="3s")
    secret = bounded.create_token(body)["secret"]
    t0 = time.monotonic()
    e = flight_error(bounded, secret, "SELECT count(*) FROM range(100000000000)")
    assert "time limit of 3s" in str(e), repr(e)[:300]
    assert time.monotonic() - t0 < 20
    trino = RawTrino(bounded.http_base, secret)
    last = trino.run("SELECT count(*) FROM range(100000000000)", deadline_s=60)[-1]
    assert last.state == "FAILED", last
    assert last.error["errorName"] == "EXCEEDED_TIME_LIMIT", last.error
    still_serving(bounded, secret)
