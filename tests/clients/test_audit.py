"""The audit log (``system.audit_log``) and redaction receipts, through the
real clients: pyarrow.flight for Flight SQL, the Trino protocol over HTTP,
the admin API. Every request leaves one record, readable within a second;
statements are stored without their literals; what policy did is in the
record and in the receipt the client gets."""

from __future__ import annotations

import json
import time
import uuid

import pyarrow.flight as flight
import pytest
import requests

import flight_proto as fp
from harness import FLIGHT_ERRORS, SluiceServer, metric, start_or_fail
from tokens import token_body
from trino_harness import RawTrino, wait_until

ORDERS = "lake.sales.orders"
#: A record must be readable this long after the answer.
AUDIT_DEADLINE_S = 1.0

MASKED = token_body(
    "audit-masked",
    [{
        "table": ORDERS,
        "columns": ["order_id", "region", "customer_email", "amount"],
        "masks": {"customer_email": "hash"},
        "allow_rules": ["region = token.region"],
    }],
    attributes={"region": "eu"},
    max_sensitivity=3,
    row_limit=5,
)
OTHER = token_body("audit-other", [{"table": ORDERS, "columns": ["order_id"]}], max_sensitivity=3)


@pytest.fixture(scope="module")
def audited(sluice_bin, lake, tmp_path_factory):
    srv = start_or_fail(SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("audited"), lake=lake))
    srv.tokens = {"masked": srv.create_token(MASKED), "other": srv.create_token(OTHER)}
    yield srv
    srv.close()


@pytest.fixture
def client(audited):
    c = audited.flight_client()
    yield c
    c.close()


def rid() -> str:
    return f"audit-{uuid.uuid4()}"


def options(secret: str, request_id: str | None = None):
    headers = [(b"authorization", f"Bearer {secret}".encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    return flight.FlightCallOptions(headers=headers, timeout=60)


def run(client, opts, sql):
    info = fp.statement_info(client, sql, opts)
    table, metadata = fp.read_stream(client.do_get(info.endpoints[0].ticket, opts))
    return table, metadata, info


def audit_rows(srv, client, request_id: str, *, at_least: int = 1, column: str = "client_request_id") -> list[dict]:
    """The records whose ``column`` is ``request_id``, read as the admin
    through ``system.audit_log``; fails unless they are there within
    AUDIT_DEADLINE_S of the call."""
    start = time.monotonic()
    while True:
        table, _, _ = run(client, options(srv.admin_secret),
                          f"SELECT * FROM system.audit_log WHERE {column} = '{request_id}' ORDER BY time")
        rows = table.to_pylist()
        if len(rows) >= at_least:
            return rows
        if time.monotonic() - start > AUDIT_DEADLINE_S:
            raise AssertionError(f"{at_least} audit record(s) of {request_id} not readable within "
                                 f"{AUDIT_DEADLINE_S}s: {rows}")
        time.sleep(0.05)


def by_action(rows: list[dict], action: str) -> dict:
    found = [r for r in rows if r["action"] == action]
    assert len(found) == 1, rows
    return found[0]


# -- Flight SQL -----------------------------------------------------------------------------

def test_flight_success_is_audited_with_policy_facts(audited, client):
    masked = audited.tokens["masked"]
    request_id = rid()
    sql = f"SELECT order_id, customer_email FROM {ORDERS} WHERE amount > 1234.5 AND region = 'eu'"
    table, metadata, info = run(client, options(masked["secret"], request_id), sql)
    rows = audit_rows(audited, client, request_id, at_least=2)
    assert sorted(r["action"] for r in rows) == ["DoGet", "GetFlightInfo"], rows

    plan = by_action(rows, "GetFlightInfo")
    get = by_action(rows, "DoGet")
    for r in (plan, get):
        assert r["protocol"] == "flight_sql"
        assert r["token_id"] == masked["id"]
        assert r["outcome"] == "ok", r
        assert r["client_addr"] == "127.0.0.1"
        assert json.loads(r["tables"]) == [ORDERS]
        assert json.loads(r["columns"]) == ["order_id", "customer_email"]
        assert json.loads(r["columns_masked"]) == [f"{ORDERS}.customer_email"]
        assert f"{ORDERS}.customer_id" in json.loads(r["columns_blocked"])
        assert list(json.loads(r["row_policy"])) == [ORDERS]
        # The statement without its literals, and a fingerprint.
        assert "1234" not in r["statement"] and "'eu'" not in r["statement"], r["statement"]
        assert r["statement"].startswith("select order_id, customer_email from lake.sales.orders where amount > ?"), r
        assert len(r["statement_fingerprint"]) == 16
        assert r["latency_ms"] >= 0  # a duration: its value varies run to run
    assert plan["statement_fingerprint"] == get["statement_fingerprint"]
    assert get["rows"] == table.num_rows == 5  # the row limit (more eu rows match)
    assert (plan["rows"], plan["bytes"]) == (0, 0)
    assert get["bytes"] > 0  # the size of the encoded stream, not fixed by the test
    assert get["values_masked"] == table.num_rows

    # The receipt: in FlightInfo.app_metadata, and final in the trailer.
    planned = json.loads(info.app_metadata)
    assert planned["masked"] == [f"{ORDERS}.customer_email"]
    assert list(planned["row_policy"]) == [ORDERS]
    assert planned["withheld"] == [] and planned["tables"] == [ORDERS]
    trailer = fp.truncation_metadata(metadata)
    assert trailer["sluice.receipt"]["truncated"] == trailer["sluice.truncated"]
    assert trailer["sluice.receipt"]["masked"] == planned["masked"]
    assert get["truncated"] == trailer["sluice.truncated"]
    # The receipt never names columns the token was not granted.
    assert "customer_id" not in json.dumps(trailer) and "customer_id" not in info.app_metadata.decode()


def test_flight_truncation_is_audited(audited, client):
    request_id = rid()
    table, metadata, _ = run(client, options(audited.tokens["masked"]["secret"], request_id),
                             f"SELECT order_id FROM {ORDERS}")
    assert table.num_rows == 5
    assert fp.truncation_metadata(metadata)["sluice.receipt"]["truncated"] is True
    get = by_action(audit_rows(audited, client, request_id, at_least=2), "DoGet")
    assert get["truncated"] is True and get["rows"] == 5


def test_flight_denied_unauthenticated_and_error_are_audited(audited, client):
    masked, other = audited.tokens["masked"], audited.tokens["other"]
    # Denied: another token's ticket.
    info = fp.statement_info(client, f"SELECT order_id FROM {ORDERS}", options(masked["secret"]))
    request_id = rid()
    with pytest.raises(FLIGHT_ERRORS):
        client.do_get(info.endpoints[0].ticket, options(other["secret"], request_id)).read_all()
    r = by_action(audit_rows(audited, client, request_id), "DoGet")
    assert r["outcome"] == "denied" and r["token_id"] == other["id"], r

    # Unauthenticated: no token id, no trace of the presented secret.
    request_id = rid()
    bogus = "slc_" + "A" * 43
    with pytest.raises(FLIGHT_ERRORS):
        fp.statement_info(client, "SELECT 1", options(bogus, request_id))
    r = by_action(audit_rows(audited, client, request_id), "GetFlightInfo")
    assert r["outcome"] == "unauthenticated" and r["token_id"] is None, r
    assert bogus not in json.dumps(r, default=str)

    # Error: a table the token cannot see.
    request_id = rid()
    with pytest.raises(FLIGHT_ERRORS):
        fp.statement_info(client, "SELECT * FROM lake.hr.employees WHERE salary > 99", options(masked["secret"], request_id))
    r = by_action(audit_rows(audited, client, request_id), "GetFlightInfo")
    assert r["outcome"] == "error" and r["error"] in ("InvalidArgument", "NotFound"), r
    assert "99" not in r["statement"]


# -- Trino protocol ---------------------------------------------------------------------------

def test_trino_requests_are_audited_with_receipts(audited, client):
    masked = audited.tokens["masked"]
    trino = RawTrino(audited.http_base, masked["secret"])
    request_id = rid()
    pages = trino.run(f"SELECT order_id, customer_email FROM {ORDERS} WHERE amount > 77",
                      headers={"X-Request-Id": request_id})
    receipts = [json.loads(p.headers["x-sluice-receipt"]) for p in pages if "x-sluice-receipt" in p.headers]
    assert len(receipts) == len(pages) == 2, [dict(p.headers) for p in pages]  # the POST and the data page
    assert receipts[-1]["masked"] == [f"{ORDERS}.customer_email"]
    assert receipts[-1]["truncated"] is True  # more than 5 eu rows
    # The POST carried the request id; the pages have their own, and the
    # query id ties them together.
    assert audit_rows(audited, client, request_id)[0]["action"] == "POST /v1/statement"
    rows = audit_rows(audited, client, pages[0].json["id"], at_least=len(pages), column="query_id")
    assert len(rows) == len(pages)
    assert {r["protocol"] for r in rows} == {"trino"}
    assert {r["query_id"] for r in rows} == {pages[0].json["id"]}
    assert all(r["token_id"] == masked["id"] and r["outcome"] == "ok" for r in rows), rows
    assert sum(r["rows"] for r in rows) == sum(len(p.data) for p in pages)
    assert rows[0]["action"] == "POST /v1/statement"
    assert all("77" not in r["statement"] for r in rows)
    # the POST answered no rows; the data page carried the 5 rows and the truncation
    assert [(r["rows"], r["truncated"]) for r in rows] == [(0, False), (5, True)], rows


def test_trino_denied_and_error_are_audited(audited, client):
    trino = RawTrino(audited.http_base, audited.tokens["masked"]["secret"])
    request_id = rid()
    page = trino.post(f"DELETE FROM {ORDERS} WHERE order_id = 4242", headers={"X-Request-Id": request_id})
    assert page.status == 200
    r = audit_rows(audited, client, request_id)[0]
    assert r["outcome"] == "denied" and "PERMISSION_DENIED" in r["error"], r
    assert "4242" not in r["statement"]

    request_id = rid()
    pages = trino.run("SELECT nope FROM lake.sales.orders", headers={"X-Request-Id": request_id})
    assert pages[-1].error
    rows = audit_rows(audited, client, request_id)
    assert [(r["action"], r["outcome"], r["error"]) for r in rows] == \
        [("POST /v1/statement", "error", "COLUMN_NOT_FOUND")], rows

    request_id = rid()
    r401 = requests.post(f"{audited.http_base}/v1/statement", data=b"SELECT 1",
                         headers={"X-Request-Id": request_id, "X-Trino-User": "x"}, timeout=30)
    assert r401.status_code == 401
    r = audit_rows(audited, client, request_id)[0]
    assert r["outcome"] == "unauthenticated" and r["protocol"] == "trino"
    # The answer's x-request-id is the record's own id, not the client's.
    assert r401.headers["x-request-id"] == r["request_id"] != request_id
    assert audit_rows(audited, client, r["request_id"], column="request_id") == [r]


# -- admin API, search --------------------------------------------------------------------------

def test_admin_api_is_audited(audited, client):
    masked = audited.tokens["masked"]
    request_id = rid()
    r = requests.get(f"{audited.http_base}/v1/tokens", timeout=30,
                     headers={"Authorization": f"Bearer {masked['secret']}", "X-Request-Id": request_id})
    assert r.status_code == 403
    row = audit_rows(audited, client, request_id)[0]
    assert (row["outcome"], row["protocol"], row["action"], row["token_id"]) == \
        ("denied", "http", "GET /v1/tokens", masked["id"])

    request_id = rid()
    r = requests.get(f"{audited.http_base}/v1/tokens/{masked['id']}", timeout=30,
                     headers={**audited.admin_headers(), "X-Request-Id": request_id})
    assert r.status_code == 200
    row = audit_rows(audited, client, request_id)[0]
    assert (row["outcome"], row["action"]) == ("ok", "GET /v1/tokens/{id}")

    # An error: an invalid token document.
    request_id = rid()
    r = requests.post(f"{audited.http_base}/v1/tokens", timeout=30, json={"name": "x", "grants": "nope"},
                      headers={**audited.admin_headers(), "X-Request-Id": request_id})
    assert r.status_code == 400
    row = audit_rows(audited, client, request_id)[0]
    assert (row["outcome"], row["action"], row["error"]) == ("error", "POST /v1/tokens", "HTTP 400")

    # Unauthenticated, with the presented secret nowhere in the record.
    request_id = rid()
    bogus = "slc_" + "D" * 43
    r = requests.get(f"{audited.http_base}/v1/tokens", timeout=30,
                     headers={"Authorization": f"Bearer {bogus}", "X-Request-Id": request_id})
    assert r.status_code == 401
    row = audit_rows(audited, client, request_id)[0]
    assert (row["outcome"], row["token_id"]) == ("unauthenticated", None)
    assert bogus not in json.dumps(row, default=str)


def test_only_admins_see_the_audit_log(audited, client):
    for key in ("masked", "other"):
        with pytest.raises(FLIGHT_ERRORS, match="not found"):
            run(client, options(audited.tokens[key]["secret"]), "SELECT * FROM system.audit_log")
        with pytest.raises(FLIGHT_ERRORS, match="not found"):
            run(client, options(audited.tokens[key]["secret"]), "SELECT * FROM system.runtime.audit_log")
    trino = RawTrino(audited.http_base, audited.tokens["masked"]["secret"])
    pages = trino.run("SELECT count(*) FROM system.runtime.audit_log")
    assert pages[-1].error, pages[-1].json
    # The admin reads it over Trino too, under both names.
    admin = RawTrino(audited.http_base, audited.admin_secret)
    for name in ("system.audit_log", "system.runtime.audit_log"):
        pages = admin.run(f"SELECT count(*) FROM {name}")
        assert not pages[-1].error, pages[-1].json
        assert sum(len(p.data) for p in pages) == 1


# -- metrics ------------------------------------------------------------------------------------

def test_request_metrics_move(audited, client):
    masked = audited.tokens["masked"]
    series = {
        "ok": ("sluice_requests_total", {"protocol": "flight_sql", "outcome": "ok"}),
        "unauth": ("sluice_requests_total", {"protocol": "flight_sql", "outcome": "unauthenticated"}),
        "unknown": ("sluice_auth_failures_total", {"kind": "unknown"}),
        "rows": ("sluice_rows_out_total", {"protocol": "flight_sql"}),
        "bytes": ("sluice_bytes_out_total", {"protocol": "flight_sql"}),
        "masked": ("sluice_values_masked_total", {"protocol": "flight_sql"}),
        "blocked": ("sluice_columns_blocked_total", {"protocol": "flight_sql"}),
        "truncated": ("sluice_truncations_total", {"protocol": "flight_sql"}),
        "latency": ("sluice_request_duration_seconds_count", {"protocol": "flight_sql"}),
        "trino": ("sluice_requests_total", {"protocol": "trino", "outcome": "ok"}),
    }
    def snapshot():
        return {k: metric(audited, n, **l) for k, (n, l) in series.items()}

    def at_rest():
        first = snapshot()
        time.sleep(0.2)
        return first if snapshot() == first else None

    # Records (and their metrics) are taken when each answer has ended:
    # start from counters that no earlier request still moves.
    before = wait_until(at_rest, timeout_s=5, what="the request counters at rest")
    request_id = rid()
    table, _, _ = run(client, options(masked["secret"], request_id), f"SELECT order_id, customer_email FROM {ORDERS}")
    with pytest.raises(FLIGHT_ERRORS):
        fp.statement_info(client, "SELECT 1", options("slc_" + "C" * 43))
    pages = RawTrino(audited.http_base, masked["secret"]).run("SELECT 1")
    want = {
        "ok": 2,           # GetFlightInfo and DoGet
        "unauth": 1, "unknown": 1,  # the unknown secret
        "latency": 3,      # every Flight SQL request is timed
        "rows": 5, "masked": 5, "truncated": 1,  # 5 rows (the row limit), 5 e-mails masked
        "blocked": 2 * 5,  # both requests withhold the 5 ungranted columns of orders
        "trino": len(pages),  # each page of the Trino query is a request
    }
    deadline = time.monotonic() + 5
    while True:
        after = snapshot()
        moved = {k: after[k] - before[k] for k in series}
        if all(moved[k] >= v for k, v in want.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert table.num_rows == 5
    get = by_action(audit_rows(audited, client, request_id, at_least=2), "DoGet")
    assert moved == {**want, "bytes": get["bytes"]}, moved  # the bytes of the stream the DoGet record counts
    # Metrics never carry ids or secrets.
    text = requests.get(f"{audited.http_base}/metrics", timeout=30).text
    assert masked["id"] not in text and "slc_" not in text


def test_receipts_count_only_masked_columns_read(audited, client):
    _, metadata, info = run(client, options(audited.tokens["masked"]["secret"]), f"SELECT order_id FROM {ORDERS}")
    assert json.loads(info.app_metadata)["masked"] == []
    assert fp.truncation_metadata(metadata)["sluice.receipt"]["masked"] == []
    _, _, info = run(client, options(audited.tokens["masked"]["secret"]),
                     f"SELECT count(*) FROM {ORDERS} WHERE customer_email IS NOT NULL")
    assert json.loads(info.app_metadata)["masked"] == [f"{ORDERS}.customer_email"]


def test_trino_execute_records_the_prepared_statement(audited, client):
    from trino_harness import trino_connect

    conn = trino_connect(audited, audited.tokens["masked"]["secret"])
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT order_id FROM {ORDERS} WHERE amount > ? AND region = ?", (31337.5, "eu"))
        cur.fetchall()
        query_id = cur.query_id
    finally:
        conn.close()
    rows = audit_rows(audited, client, query_id, column="query_id", at_least=2)
    # the POST of the EXECUTE and its data page both record the prepared statement
    assert [r["action"] for r in rows] == ["POST /v1/statement", "GET /v1/statement/executing/{id}/{id}"], rows
    assert {r["statement"] for r in rows} == {"select order_id from lake.sales.orders where amount > ? and region = ?"}
    assert all("31337" not in (r["statement"] or "") and "'eu'" not in (r["statement"] or "") for r in rows)


def test_error_text_keeps_no_literal(audited, client):
    request_id = rid()
    with pytest.raises(FLIGHT_ERRORS):
        fp.statement_info(client, f"SELECT order_id FROM {ORDERS} WHERE order_id IN (SELECT 'x', 4111111111111111)",
                          options(audited.tokens["masked"]["secret"], request_id))
    r = by_action(audit_rows(audited, client, request_id), "GetFlightInfo")
    assert r["outcome"] == "error" and r["error"], r
    assert "4111" not in r["error"] and "4111" not in r["statement"], r
    # Names of computed columns quote literals: they are not kept.
    request_id = rid()
    run(client, options(audited.tokens["masked"]["secret"], request_id),
        f"SELECT order_id, upper('SECRETW2'), amount > 4111111111111111 FROM {ORDERS}")
    r = by_action(audit_rows(audited, client, request_id, at_least=2), "DoGet")
    assert json.loads(r["columns"]) == ["order_id", "_col1", "_col2"], r
    assert "SECRETW2" not in json.dumps(r, default=str) and "4111" not in json.dumps(r, default=str)
