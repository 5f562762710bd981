"""Per-token cost budgets through the real clients: a token whose document
sets ``budget.rows_returned_per_hour`` is charged by every protocol (ADBC
Flight SQL, the Trino protocol), refused once the budget is spent (Flight
``RESOURCE_EXHAUSTED`` with ``retry-after``, Trino
``EXCEEDED_TOKEN_BUDGET``) naming the budget and when it resets; the
token's introspection shows what it spent, ``system.audit_log`` what each
statement read (``bytes_scanned``) and returned; and a restarted gateway
still knows what was spent (it reads the audit log)."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow.flight as flight
import pytest
import requests

import flight_proto as fp
from harness import FLIGHT_ERRORS, SluiceServer, start_or_fail
from tokens import token_body
from trino_harness import RawTrino

ROWS_PER_HOUR = 5
SQL = "SELECT order_id FROM lake.sales.orders ORDER BY order_id LIMIT 3"


@pytest.fixture(scope="module")
def budgeted(sluice_bin, lake, tmp_path_factory):
    srv = start_or_fail(SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("budgets"), lake=lake))
    yield srv
    srv.close()


def flight_rows(srv: SluiceServer, secret: str, sql: str) -> int:
    with srv.adbc_connect(secret) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return len(cur.fetchall())


def flight_refusal(srv: SluiceServer, secret: str, sql: str) -> Exception:
    client = srv.flight_client()
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {secret}".encode())])
    with pytest.raises(FLIGHT_ERRORS) as e:
        desc = flight.FlightDescriptor.for_command(fp.command_statement_query(sql))
        info = client.get_flight_info(desc, options)
        client.do_get(info.endpoints[0].ticket, options).read_all()
    return e.value


def introspect(srv: SluiceServer, token_id: str) -> dict:
    r = requests.get(f"{srv.http_base}/v1/tokens/{token_id}/introspect", headers=srv.admin_headers(), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def audit_rows(srv: SluiceServer, token_id: str) -> list[tuple]:
    """(action, rows, bytes_scanned) of the token's records, once written."""
    sql = ("SELECT action, rows, bytes_scanned FROM system.audit_log "
           f"WHERE token_id = '{token_id}' AND rows > 0 ORDER BY time")
    deadline = time.monotonic() + 10
    while True:
        with srv.adbc_connect(srv.admin_secret) as conn, conn.cursor() as cur:
            cur.execute(sql)
            rows = cur.fetchall()
        if sum(r[1] for r in rows) >= 2 * 3 or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)


def test_a_spent_budget_refuses_every_protocol_until_it_resets_and_survives_a_restart(budgeted):
    body = token_body("budgeted", [{"table": "lake.sales.orders", "columns": ["order_id", "region"]}],
                      max_sensitivity=3, budget={"rows_returned_per_hour": ROWS_PER_HOUR,
                                                 "bytes_scanned_per_day": "1GiB"})
    created = budgeted.create_token(body)
    token_id, secret = created["id"], created["secret"]

    # One statement over Flight SQL, one over Trino: both charged.
    assert flight_rows(budgeted, secret, SQL) == 3
    pages = RawTrino(budgeted.http_base, secret).run(SQL)
    assert pages[-1].state == "FINISHED", pages[-1]
    assert sum(len(p.data) for p in pages) == 3

    # Spent (6 of 5): the next statement is refused on both protocols.
    e = flight_refusal(budgeted, secret, SQL)
    assert "budget.rows_returned_per_hour (6 of 5)" in str(e), str(e)[:300]
    assert "statements run again at" in str(e)
    last = RawTrino(budgeted.http_base, secret).run(SQL)[-1]
    assert last.state == "FAILED", last
    assert last.error["errorName"] == "EXCEEDED_TOKEN_BUDGET", last.error
    assert last.error["errorType"] == "INSUFFICIENT_RESOURCES", last.error

    # Introspection shows the budget and what was spent.
    doc = introspect(budgeted, token_id)
    assert doc["token"]["budget"] == {"rows_returned_per_hour": ROWS_PER_HOUR, "bytes_scanned_per_day": 1 << 30}
    assert doc["spent"]["hour"]["rows_returned"] == 6
    assert doc["spent"]["day"]["bytes_scanned"] > 0
    resets = dt.datetime.fromisoformat(doc["spent"]["hour_resets_at"].replace("Z", "+00:00"))
    assert dt.timedelta(0) < resets - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(hours=1)
    # The audit log records what each statement read and returned.
    rows = audit_rows(budgeted, token_id)
    assert sum(r[1] for r in rows) == 6, rows
    assert all(r[2] > 0 for r in rows), rows
    scanned = sum(r[2] for r in rows)
    assert scanned == doc["spent"]["day"]["bytes_scanned"], (rows, doc["spent"])

    # Other tokens are not affected.
    other = budgeted.create_token(token_body("unbudgeted", [{"table": "lake.sales.orders",
                                                              "columns": ["order_id"]}], max_sensitivity=3))
    assert flight_rows(budgeted, other["secret"], SQL) == 3

    # A restart does not hand the budget out again.
    budgeted.close()
    budgeted.run_init = False
    start_or_fail(budgeted)
    e = flight_refusal(budgeted, secret, SQL)
    assert "budget.rows_returned_per_hour (6 of 5)" in str(e), str(e)[:300]
    assert introspect(budgeted, token_id)["spent"]["day"]["bytes_scanned"] == scanned


def test_a_budget_that_cannot_be_met_is_refused_when_the_token_is_made(budgeted):
    for budget, word in [({"rows_returned_per_hour": 0}, "rows_returned_per_hour"),
                         ({"bytes_scanned_per_hour": "2GiB", "bytes_scanned_per_day": "1GiB"}, "larger"),
                         ({"rows_per_hour": 1}, "rows_per_hour"),
                         ({"bytes_scanned_per_day": "lots"}, "lots")]:
        body = token_body("bad-budget", [{"table": "lake.sales.orders", "columns": ["order_id"]}], budget=budget)
        r = requests.post(f"{budgeted.http_base}/v1/tokens", json=body, headers=budgeted.admin_headers(), timeout=30)
        assert r.status_code == 400, (budget, r.status_code, r.text)
        assert word in r.json()["error"], (budget, r.text)
