"""The real ``trino`` Python client (DB-API, 0.340) and the raw Trino
statement protocol against sluice's Trino HTTP frontend (DESIGN §5).

Covered: /v1/info; Basic and Bearer auth and the uniform 401; fetch styles
and ``cursor.description``; Trino types and their JSON encodings;
parameters (EXECUTE IMMEDIATE, the PREPARE/EXECUTE/DEALLOCATE fallback and
raw prepared-statement headers); the row-limit warning; Trino-shaped
errors; USE / SET SESSION / RESET SESSION; ``X-Trino-User`` never trusted;
retry idempotence; DELETE; infoUri and /v1/query scoping; and, on a second
server with small ``[trino]`` settings (``trino_small``), page bounds, the
abandoned-query reaper, QUEUED with ``max_concurrent_queries``, cancel
mid-stream and EXCEEDED_TIME_LIMIT.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import secrets
import time
from decimal import Decimal
from urllib.parse import quote_plus, unquote_plus, urlsplit

import pytest
import requests
import trino
import trino.dbapi
import trino.exceptions as te

import lake_counts
from oracle import mentions
from policy_views import mask_hash
from tokens import EU_ANALYST, ORDERS, SALES_READER, token_body
from trino_harness import (
    DONE_STATES,
    NEXT_URI_PATH,
    ROW_LIMIT_WARNING,
    TEST_USER,
    TRINO_SMALL,
    TRUNCATED_HEADER,
    WWW_AUTHENTICATE,
    Deadline,
    RawTrino,
    auth_header,
    columns_of,
    diff_trino_vs_arrow,
    error_of,
    rows_of,
    run_dbapi,
    trino_connect,
    wait_until,
)

EU_COLUMNS = ["order_id", "region", "customer_email", "amount"]  # table order
EU_HIDDEN = ["customer_id", "sensitivity", "embedding", "attachment", "created_at"]
#: Runs for hours on the test lake: only a time limit or a cancel ends it.
HEAVY = (
    f"SELECT count(*) AS n FROM {ORDERS} a CROSS JOIN {ORDERS} b CROSS JOIN {ORDERS} c"
)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _small_token(name: str, **fields) -> dict:
    return token_body(name, [{"table": ORDERS, "columns": ["order_id", "region"]}], max_sensitivity=3, **fields)


def _sub_word(text: str, word: str) -> str:
    return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", "<name>", text)


def _names(desc) -> list[str]:
    return [d.name for d in desc]


def _ids(rows) -> list[int]:
    return sorted(r[0] for r in rows)


def _visible_hidden_ids(expect, lake):
    visible = sorted(expect(EU_ANALYST, f"SELECT order_id FROM {ORDERS}").column("order_id").to_pylist())
    all_ids = lake.sources["sales.orders"].column("order_id").to_pylist()
    return visible, sorted(set(all_ids) - set(visible))


@pytest.fixture
def raw(server, tokens):
    """``raw(key, mode="bearer", user=...)`` -> RawTrino on the main server."""
    made = []

    def make(key: str | None, mode: str = "bearer", user: str = TEST_USER) -> RawTrino:
        secret = None if key is None else (server.admin_secret if key == "admin" else tokens[key]["secret"])
        r = RawTrino(server.http_base, secret, mode=mode, user=user)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def raw_small(small, small_tokens):
    """``raw_small(key, ...)`` -> RawTrino on the small server; every query
    the test left open is cancelled at the end."""
    made = []

    def make(key: str | None, mode: str = "bearer", user: str = TEST_USER) -> RawTrino:
        secret = None if key is None else (small.admin_secret if key == "admin" else small_tokens[key]["secret"])
        r = RawTrino(small.http_base, secret, mode=mode, user=user)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _live(r: RawTrino, sql: str):
    """Starts ``sql`` and advances to its first data page; the query must
    still have pages left (so it is alive). Returns (query id, page)."""
    first = r.post(sql)
    assert first.status == 200, first.response.text[:500]
    page = r.wait_for_data(first)
    assert page.data and page.next_uri, f"query ended on its first page: {page}"
    return first.json["id"], page


# --- /v1/info ---------------------------------------------------------------------------

def test_info_needs_no_auth(server):
    r = requests.get(f"{server.http_base}/v1/info", timeout=30)
    assert r.status_code == 200, r.text
    info = r.json()
    assert isinstance(info["nodeVersion"]["version"], str) and info["nodeVersion"]["version"]
    assert info["coordinator"] is True
    assert info["starting"] is False


# --- authentication -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_query_with_each_auth_mode(trino_conns, expect, mode):
    sql = f"SELECT order_id, region, customer_email, amount FROM {ORDERS}"
    desc, rows = trino_conns.query("eu_analyst", sql, mode=mode)
    want = expect(EU_ANALYST, sql)
    assert _names(desc) == EU_COLUMNS
    assert len(rows) == want.num_rows == lake_counts.EU_ANALYST_ORDERS
    assert diff_trino_vs_arrow(_names(desc), rows, want, ordered=False, check_names=True) is None


def test_basic_auth_any_user_name(server, tokens):
    for user in ["someone", "admin", "x y"]:
        conn = trino_connect(server, tokens["eu_analyst"]["secret"], user=user)
        try:
            assert run_dbapi(conn, "SELECT 1 AS one")[1] == [[1]]
        finally:
            conn.close()


def test_client_refuses_auth_over_http_without_insecure_switch(server, tokens):
    """trino 0.340: ``auth`` over plain http needs ``allow_insecure_auth=True``
    (dbapi.Connection raises TrinoAuthError otherwise); every test passes it."""
    from trino.auth import BasicAuthentication

    with pytest.raises(te.TrinoAuthError):
        trino.dbapi.connect(host="127.0.0.1", port=server.http_port, user="u", http_scheme="http",
                            auth=BasicAuthentication("u", tokens["eu_analyst"]["secret"]))


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def bad_trino_auth(server):
    """kind -> Authorization header value (None: no header)."""
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    expired = server.create_token(_small_token("trino-expired", expires_at=_iso(expires)))
    revoked = server.create_token(_small_token("trino-revoked"))
    r = server.revoke_token(revoked["id"])
    assert r.status_code == 200, r.text
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.5)
    return {
        "no_header": None,
        "bearer_garbage": "Bearer this-is-not-a-token",
        "bearer_unknown": "Bearer " + secrets.token_urlsafe(32),
        "bearer_empty": "Bearer ",
        "basic_unknown": _basic("u", secrets.token_urlsafe(32)),
        "basic_empty_password": _basic("u", ""),
        "basic_malformed": "Basic %%%not-base64%%%",
        "basic_no_colon": "Basic " + base64.b64encode(b"just-a-user").decode(),
        "scheme_garbage": "Digest abc",
        "bearer_expired": "Bearer " + expired["secret"],
        "basic_expired": _basic("u", expired["secret"]),
        "bearer_revoked": "Bearer " + revoked["secret"],
        "basic_revoked": _basic("u", revoked["secret"]),
    }


def _unauthorized(r: requests.Response, kind: str) -> str:
    assert r.status_code == 401, (kind, r.status_code, r.text[:300])
    assert r.headers.get("WWW-Authenticate") == WWW_AUTHENTICATE, (kind, dict(r.headers))
    return r.text


def test_auth_failures_uniform_401(server, tokens, bad_trino_auth):
    # A real query's nextUri and id: neither is a capability without the token.
    good = RawTrino(server.http_base, tokens["sales_reader"]["secret"])
    first = good.post(f"SELECT order_id FROM {ORDERS}")
    assert first.status == 200 and first.next_uri, first.response.text[:300]
    try:
        bodies: dict[str, dict[str, str]] = {"statement": {}, "next": {}, "list": {}, "info": {}}
        for kind, header in bad_trino_auth.items():
            h = {"X-Trino-User": TEST_USER}
            if header is not None:
                h["Authorization"] = header
            r = requests.post(f"{server.http_base}/v1/statement", data=b"SELECT 1", headers=h, timeout=30)
            bodies["statement"][kind] = _unauthorized(r, kind)
            r = requests.get(first.next_uri, headers=h, timeout=30)
            bodies["next"][kind] = _unauthorized(r, kind)
            r = requests.get(f"{server.http_base}/v1/query", headers=h, timeout=30)
            bodies["list"][kind] = _unauthorized(r, kind)
            r = requests.get(f"{server.http_base}/v1/query/{first.json['id']}", headers=h, timeout=30)
            bodies["info"][kind] = _unauthorized(r, kind)
        for endpoint, by_kind in bodies.items():
            assert len(set(by_kind.values())) == 1, (endpoint, by_kind)
    finally:
        good.finish(first)
        good.close()


def test_auth_failure_through_client(server):
    conn = trino_connect(server, "slc_" + secrets.token_urlsafe(32))
    try:
        with pytest.raises(te.HttpError) as exc:
            run_dbapi(conn, "SELECT 1")
        assert "401" in str(exc.value)
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_revoked_token_refused_on_next_query(server, mode):
    tok = server.create_token(_small_token(f"trino-revoke-next-{mode}"))
    conn = trino_connect(server, tok["secret"], mode=mode)
    try:
        assert run_dbapi(conn, f"SELECT count(*) FROM {ORDERS}")[1] == [[lake_counts.READER_ORDERS]]
        assert server.revoke_token(tok["id"]).status_code == 200
        with pytest.raises(te.HttpError) as exc:
            run_dbapi(conn, f"SELECT count(*) FROM {ORDERS}")
        assert "401" in str(exc.value)
    finally:
        conn.close()


# --- fetching and description -------------------------------------------------------------

def test_fetchone_fetchmany_fetchall(trino_conns, expect):
    sql = f"SELECT order_id FROM {ORDERS} ORDER BY order_id"
    want = [[i] for i in expect(EU_ANALYST, sql).column("order_id").to_pylist()]
    assert len(want) == lake_counts.EU_ANALYST_ORDERS  # more than the fetches below take one by one
    conn = trino_conns.get("eu_analyst")
    cur = conn.cursor()
    cur.execute(sql)
    got = [cur.fetchone(), cur.fetchone()]
    got += cur.fetchmany(100)
    cur.arraysize = 7
    got += cur.fetchmany()
    got += cur.fetchall()
    assert cur.fetchone() is None
    assert cur.fetchmany(5) == []
    assert got == want
    # fetchall straight away, and iteration over the cursor
    cur = conn.cursor()
    cur.execute(sql)
    assert cur.fetchall() == want
    cur = conn.cursor()
    cur.execute(sql)
    assert [row for row in cur] == want


def test_empty_result_has_description(trino_conns):
    cur = trino_conns.get("eu_analyst").cursor()
    cur.execute(f"SELECT order_id, region FROM {ORDERS} WHERE order_id < 0")
    assert cur.fetchall() == []
    assert _names(cur.description) == ["order_id", "region"]
    assert [d.type_code for d in cur.description] == ["bigint", "varchar"]


def test_description_of_table_columns(trino_conns):
    cur = trino_conns.get("sales_reader").cursor()
    cur.execute(f"SELECT * FROM {ORDERS} WHERE order_id <= 20")
    cur.fetchall()
    desc = {d.name: d for d in cur.description}
    assert _names(cur.description) == [
        "order_id", "region", "customer_id", "customer_email", "amount", "sensitivity", "created_at",
    ]
    assert {n: d.type_code for n, d in desc.items()} == {
        "order_id": "bigint", "region": "varchar", "customer_id": "bigint", "customer_email": "varchar",
        "amount": "double", "sensitivity": "integer", "created_at": "timestamp(6)",
    }
    assert desc["region"].internal_size == 2147483647
    assert desc["created_at"].precision == 6


def test_select_star_expands_to_granted_columns(trino_conns):
    desc, _ = trino_conns.query("eu_analyst", f"SELECT * FROM {ORDERS} WHERE order_id < 100")
    assert _names(desc) == EU_COLUMNS


def test_hash_mask_values(trino_conns, lake):
    _, rows = trino_conns.query("eu_analyst", f"SELECT order_id, customer_email FROM {ORDERS}")
    source = {r["order_id"]: r["customer_email"] for r in lake.sources["sales.orders"].to_pylist()}
    assert len(rows) == lake_counts.EU_ANALYST_ORDERS
    hashed = 0
    for oid, email in rows:
        if source[oid] is None:
            assert email is None
        else:
            assert email == mask_hash(source[oid])
            hashed += 1
    assert hashed == lake_counts.EU_ANALYST_EMAILS


def test_table_values_round_trip(trino_conns, lake):
    _, rows = trino_conns.query(
        "sales_reader", f"SELECT order_id, amount, sensitivity, created_at FROM {ORDERS} WHERE order_id <= 80"
    )
    src = {r["order_id"]: r for r in lake.sources["sales.orders"].to_pylist()}
    assert len(rows) == lake_counts.READER_ID_LE_80
    for oid, amount, sens, created in rows:
        assert amount == src[oid]["amount"]
        assert sens == src[oid]["sensitivity"]
        assert created == src[oid]["created_at"]
        assert type(created) is dt.datetime and created.tzinfo is None


# --- types ----------------------------------------------------------------------------------

LITERALS = (
    "SELECT CAST(1 AS TINYINT) AS t1, CAST(2 AS SMALLINT) AS t2, CAST(3 AS INTEGER) AS t3, "
    "CAST(4 AS BIGINT) AS t4, REAL '1.5' AS r, DOUBLE '2.5' AS d, true AS b, 'x' AS v, "
    "CAST('1.23' AS DECIMAL(10,2)) AS de, DATE '2024-01-02' AS da, "
    "TIMESTAMP '2024-01-02 03:04:05.123456' AS ts, X'CAFE' AS vb, ARRAY[1,2,3] AS arr, "
    "CAST('NaN' AS DOUBLE) AS nn, CAST(9223372036854775807 AS BIGINT) AS big, "
    "CAST('12345678901234567890123456789.123456789' AS DECIMAL(38,9)) AS wide, "
    "CAST(NULL AS VARCHAR) AS nul"
)


def test_literal_types_and_values(trino_conns):
    desc, rows = trino_conns.query("eu_analyst", LITERALS)
    types = {d.name: d.type_code for d in desc}
    assert _names(desc) == ["t1", "t2", "t3", "t4", "r", "d", "b", "v", "de", "da", "ts", "vb", "arr",
                            "nn", "big", "wide", "nul"]
    assert types["t1"] == "tinyint"
    assert types["t2"] == "smallint"
    assert types["t3"] == "integer"
    assert types["t4"] == "bigint"
    assert types["r"] == "real"
    assert types["d"] == "double"
    assert types["b"] == "boolean"
    assert types["v"] == "varchar"
    assert types["de"] == "decimal(10,2)"
    assert types["da"] == "date"
    assert types["ts"] == "timestamp(9)"  # DataFusion's timestamp literals are nanoseconds
    assert types["vb"] == "varbinary"
    assert types["arr"] == "array(bigint)"  # integer literals are Int64
    assert types["nn"] == "double"
    assert types["wide"] == "decimal(38,9)"
    assert types["nul"] == "varchar"
    d = {x.name: x for x in desc}
    assert d["v"].internal_size == 2147483647
    assert (d["de"].precision, d["de"].scale) == (10, 2)
    assert d["ts"].precision == 9
    (row,) = rows
    v = dict(zip(_names(desc), row))
    assert [v["t1"], v["t2"], v["t3"], v["t4"]] == [1, 2, 3, 4]
    assert all(type(v[k]) is int for k in ("t1", "t2", "t3", "t4", "big"))
    assert v["r"] == 1.5 and v["d"] == 2.5
    assert v["b"] is True
    assert v["v"] == "x"
    assert v["de"] == Decimal("1.23") and isinstance(v["de"], Decimal)
    assert v["da"] == dt.date(2024, 1, 2) and type(v["da"]) is dt.date
    assert v["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert v["vb"] == b"\xca\xfe"
    assert v["arr"] == [1, 2, 3]
    assert isinstance(v["nn"], float) and math.isnan(v["nn"])
    assert v["big"] == 9223372036854775807
    assert v["wide"] == Decimal("12345678901234567890123456789.123456789")
    assert v["nul"] is None


def test_literal_json_encodings(raw):
    """The wire form the contract (and ENVIRONMENT.md) fixes: typeSignature
    arguments, decimals as strings, timestamps with exactly p digits,
    varbinary as base64, NaN as a string."""
    pages = raw("eu_analyst").run(LITERALS)
    cols = {c["name"]: c for c in columns_of(pages)}
    (row,) = rows_of(pages)
    v = dict(zip([c["name"] for c in columns_of(pages)], row))
    for c in cols.values():
        assert set(c) >= {"name", "type", "typeSignature"}, c
        assert isinstance(c["typeSignature"]["rawType"], str)
        assert isinstance(c["typeSignature"]["arguments"], list)
    assert cols["v"]["typeSignature"] == {"rawType": "varchar", "arguments": [{"kind": "LONG", "value": 2147483647}]}
    assert cols["de"]["typeSignature"] == {
        "rawType": "decimal", "arguments": [{"kind": "LONG", "value": 10}, {"kind": "LONG", "value": 2}]
    }
    ts_sig = cols["ts"]["typeSignature"]
    assert ts_sig["rawType"] == "timestamp"
    (p_arg,) = ts_sig["arguments"]
    assert p_arg == {"kind": "LONG", "value": 9}
    p = p_arg["value"]
    assert cols["ts"]["type"] == f"timestamp({p})"
    arr_sig = cols["arr"]["typeSignature"]
    assert arr_sig["rawType"] == "array"
    assert arr_sig["arguments"][0]["kind"] == "TYPE"
    assert arr_sig["arguments"][0]["value"]["rawType"] == "bigint"
    assert cols["t4"]["typeSignature"] == {"rawType": "bigint", "arguments": []}
    assert v["t1"] == 1 and v["t4"] == 4 and v["big"] == 9223372036854775807
    assert v["de"] == "1.23"
    assert v["wide"] == "12345678901234567890123456789.123456789"
    assert v["da"] == "2024-01-02"
    m = re.fullmatch(r"2024-01-02 03:04:05\.(\d+)", v["ts"])
    assert m and len(m.group(1)) == p and m.group(1).startswith("123456"), v["ts"]
    assert base64.b64decode(v["vb"]) == b"\xca\xfe"
    assert v["arr"] == [1, 2, 3]
    assert v["nn"] == "NaN"
    assert v["b"] is True
    assert v["nul"] is None


def test_nan_and_infinities(trino_conns, raw):
    sql = ("SELECT CAST('NaN' AS DOUBLE) AS a, CAST('Infinity' AS DOUBLE) AS b, "
           "CAST('-Infinity' AS DOUBLE) AS c, REAL 'NaN' AS d")
    desc, rows = trino_conns.query("eu_analyst", sql)
    a, b, c, d = rows[0]
    assert math.isnan(a) and b == math.inf and c == -math.inf and math.isnan(d)
    assert [x.type_code for x in desc] == ["double", "double", "double", "real"]
    (row,) = rows_of(raw("eu_analyst").run(sql))
    assert row == ["NaN", "Infinity", "-Infinity", "NaN"]


def test_row_and_map(trino_conns, raw):
    sql = ("SELECT named_struct('a', CAST(1 AS BIGINT), 'b', 'x') AS r, "
           "MAP(ARRAY['k1', 'k2'], ARRAY[CAST(10 AS BIGINT), CAST(20 AS BIGINT)]) AS m, "
           "ARRAY[ARRAY[CAST(1 AS BIGINT)], ARRAY[CAST(2 AS BIGINT), NULL]] AS nested")
    desc, rows = trino_conns.query("eu_analyst", sql)
    types = [d.type_code for d in desc]
    assert types[0] == "row(a bigint, b varchar)", types
    assert types[1] == "map(varchar, bigint)", types
    assert types[2] == "array(array(bigint))", types
    r, m, nested = rows[0]
    assert tuple(r) == (1, "x") and r.a == 1 and r.b == "x"
    assert m == {"k1": 10, "k2": 20}
    assert nested == [[1], [2, None]]
    pages = raw("eu_analyst").run(sql)
    cols = columns_of(pages)
    (row,) = rows_of(pages)
    assert row[0] == [1, "x"]
    assert row[1] == {"k1": 10, "k2": 20}
    sig = cols[0]["typeSignature"]
    assert sig["rawType"] == "row"
    assert [a["kind"] for a in sig["arguments"]] == ["NAMED_TYPE", "NAMED_TYPE"]
    assert [a["value"]["fieldName"]["name"] for a in sig["arguments"]] == ["a", "b"]
    assert [a["value"]["typeSignature"]["rawType"] for a in sig["arguments"]] == ["bigint", "varchar"]
    msig = cols[1]["typeSignature"]
    assert msig["rawType"] == "map"
    assert [a["kind"] for a in msig["arguments"]] == ["TYPE", "TYPE"]
    assert [a["value"]["rawType"] for a in msig["arguments"]] == ["varchar", "bigint"]


def test_time_and_timestamp_with_time_zone(trino_conns, raw):
    sql = "SELECT TIME '03:04:05' AS t, TIMESTAMP '2024-01-02 03:04:05.123456' AT TIME ZONE 'UTC' AS z"
    desc, rows = trino_conns.query("eu_analyst", sql)
    t_type, z_type = [d.type_code for d in desc]
    assert t_type == "time(9)", t_type
    assert z_type == "timestamp(9) with time zone", z_type
    t, z = rows[0]
    assert t == dt.time(3, 4, 5)
    assert z.tzinfo is not None and z.utcoffset() == dt.timedelta(0)
    assert z == dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc)
    pages = raw("eu_analyst").run(sql)
    (row,) = rows_of(pages)
    tp = int(re.search(r"\d", t_type).group())
    frac = row[0][9:] if tp else ""
    assert row[0][:8] == "03:04:05" and len(frac) == tp and set(frac) <= {"0"}, row[0]
    zp = int(re.search(r"\d", z_type).group())
    m = re.fullmatch(r"2024-01-02 03:04:05\.(\d+) (\S+)", row[1])
    assert m and len(m.group(1)) == zp and m.group(1).startswith("123456"), row[1]
    assert m.group(2) == "UTC", row[1]
    sig = columns_of(pages)[1]["typeSignature"]
    assert sig == {"rawType": "timestamp with time zone", "arguments": [{"kind": "LONG", "value": zp}]}, sig


# --- parameters -------------------------------------------------------------------------

@pytest.fixture(params=["immediate", "legacy"])
def param_conn(request, server, tokens):
    """A connection that binds parameters with EXECUTE IMMEDIATE … USING
    (``immediate``) or with PREPARE / EXECUTE … USING / DEALLOCATE PREPARE
    and the X-Trino-*-Prepare headers (``legacy``)."""
    conn = trino_connect(server, tokens["eu_analyst"]["secret"],
                         legacy_prepared_statements=(request.param == "legacy"))
    yield conn
    conn.close()


def test_parameter_int(param_conn, expect, lake):
    visible, hidden = _visible_hidden_ids(expect, lake)
    sql = f"SELECT order_id, amount FROM {ORDERS} WHERE order_id = ?"
    assert [r[0] for r in run_dbapi(param_conn, sql, (visible[0],))[1]] == [visible[0]]
    # a hidden row stays hidden through a parameter
    assert run_dbapi(param_conn, sql, (hidden[0],))[1] == []


def test_parameters_str_and_float(param_conn, expect):
    sql = f"SELECT order_id FROM {ORDERS} WHERE region = ? AND amount > ?"
    got = run_dbapi(param_conn, sql, ("eu", 2500.0))[1]
    want = expect(EU_ANALYST, f"SELECT order_id FROM {ORDERS} WHERE region = 'eu' AND amount > 2500.0")
    assert _ids(got) == sorted(want.column("order_id").to_pylist())
    assert len(got) == lake_counts.EU_ANALYST_AMOUNT_GT_2500
    assert run_dbapi(param_conn, sql, ("us", 0.0))[1] == []


def test_parameter_bool(param_conn, expect):
    got = run_dbapi(param_conn, f"SELECT count(*) FROM {ORDERS} WHERE (amount > 1000) = ?", (True,))[1]
    want = expect(EU_ANALYST, f"SELECT count(*) AS n FROM {ORDERS} WHERE amount > 1000").column("n").to_pylist()
    assert got == [want]


def test_parameter_null(param_conn, expect):
    assert run_dbapi(param_conn, "SELECT coalesce(?, 'dflt') AS c", (None,))[1] == [["dflt"]]
    got = run_dbapi(param_conn, f"SELECT count(*) FROM {ORDERS} WHERE ? IS NULL", (None,))[1]
    assert got == [[expect(EU_ANALYST, f"SELECT count(*) AS n FROM {ORDERS}").column("n")[0].as_py()]]


def test_parameter_datetime(server, tokens, expect):
    conn = trino_connect(server, tokens["sales_reader"]["secret"])
    try:
        sql = f"SELECT count(*) FROM {ORDERS} WHERE created_at >= ? AND order_id < ?"
        got = run_dbapi(conn, sql, (dt.datetime(2024, 6, 1), 900))[1]
        want = expect(SALES_READER, f"SELECT count(*) AS n FROM {ORDERS} "
                                    "WHERE created_at >= TIMESTAMP '2024-06-01 00:00:00' AND order_id < 900")
        assert got == [[want.column("n")[0].as_py()]] == [[lake_counts.READER_CREATED_FROM_JUNE_ID_LT_900]]
    finally:
        conn.close()


@pytest.mark.parametrize(
    "value,expected",
    [
        (42, 42),
        (-7, -7),
        ("o'brien; DROP TABLE x --", "o'brien; DROP TABLE x --"),
        ("zoë ångström", "zoë ångström"),
        (2.5, 2.5),
        (True, True),
        (Decimal("1.25"), Decimal("1.25")),
        (dt.date(2024, 1, 2), dt.date(2024, 1, 2)),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 123456), dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
        (b"\xca\xfe\x00", b"\xca\xfe\x00"),
        ([1, 2, 3], [1, 2, 3]),
    ],
    ids=["int", "negative_int", "str_quote", "str_unicode", "float", "bool", "decimal", "date",
         "datetime", "bytes", "list"],
)
def test_parameter_round_trip(param_conn, value, expected):
    (row,) = run_dbapi(param_conn, "SELECT ? AS v", (value,))[1]
    got = row[0]
    if isinstance(expected, Decimal):
        assert Decimal(str(got)) == expected
    else:
        assert got == expected and type(got) is type(expected), (got, type(got))


def test_parameters_several_in_order(param_conn):
    got = run_dbapi(param_conn, "SELECT ? AS a, ? AS b, ? AS c, cardinality(?) AS n, ? + 1 AS d",
                    (1, "x", 2.5, [4, 5, 6], Decimal("1.25")))[1]
    a, b, c, n, d = got[0]
    assert (a, b, c, n) == (1, "x", 2.5, 3)
    assert Decimal(str(d)) == Decimal("2.25")


def test_parameter_on_masked_column_sees_hash(param_conn, lake, expect):
    visible, _ = _visible_hidden_ids(expect, lake)
    src = {r["order_id"]: r["customer_email"] for r in lake.sources["sales.orders"].to_pylist()}
    oid = next(i for i in visible if src[i] is not None)
    sql = f"SELECT order_id FROM {ORDERS} WHERE customer_email = ?"
    assert run_dbapi(param_conn, sql, (src[oid],))[1] == []
    assert oid in [r[0] for r in run_dbapi(param_conn, sql, (mask_hash(src[oid]),))[1]]


def test_parameter_with_hidden_column_refused(param_conn):
    err = error_of(run_dbapi, param_conn, f"SELECT order_id FROM {ORDERS} WHERE sensitivity = ?", (3,))
    assert isinstance(err, te.TrinoUserError)
    assert err.error_name == "COLUMN_NOT_FOUND" and mentions(err.message, "sensitivity"), err


def test_execute_immediate_detected(server, tokens):
    """The client probes ``EXECUTE IMMEDIATE 'SELECT 1'`` (no USING) once
    per host:port and falls back to PREPARE/EXECUTE if it fails: sluice must
    pass the probe."""
    key = ("127.0.0.1", server.http_port)
    trino.dbapi.must_use_legacy_prepared_statements.cache.pop(key, None)
    conn = trino_connect(server, tokens["eu_analyst"]["secret"])
    try:
        assert run_dbapi(conn, "SELECT ? + 1", (41,))[1] == [[42]]
    finally:
        conn.close()
    assert trino.dbapi.must_use_legacy_prepared_statements.get(key) is False


def test_raw_prepare_execute_deallocate(raw, expect, lake):
    visible, hidden = _visible_hidden_ids(expect, lake)
    r = raw("eu_analyst")
    stmt = f"SELECT order_id FROM {ORDERS} WHERE order_id = ?"
    pages = r.run(f"PREPARE q1 FROM {stmt}")
    assert pages[-1].error is None, pages[-1].error
    added = [p.headers["X-Trino-Added-Prepare"] for p in pages if "X-Trino-Added-Prepare" in p.headers]
    assert len(added) == 1, [dict(p.headers) for p in pages]
    name, value = added[0].split("=", 1)
    assert name.strip() == "q1" and unquote_plus(value.strip()) == stmt
    prepared = {"X-Trino-Prepared-Statement": f"q1={quote_plus(stmt)}"}
    pages = r.run(f"EXECUTE q1 USING {visible[0]}", prepared)
    assert pages[-1].error is None, pages[-1].error
    assert rows_of(pages) == [[visible[0]]]
    assert rows_of(r.run(f"EXECUTE q1 USING {hidden[0]}", prepared)) == []
    pages = r.run("DEALLOCATE PREPARE q1", prepared)
    assert pages[-1].error is None, pages[-1].error
    dealloc = [p.headers["X-Trino-Deallocated-Prepare"] for p in pages if "X-Trino-Deallocated-Prepare" in p.headers]
    assert dealloc == ["q1"]
    # The client carries prepared statements; without the header there is none.
    pages = r.run(f"EXECUTE q1 USING {visible[0]}")
    assert pages[-1].error is not None and not rows_of(pages)


# --- row limit ----------------------------------------------------------------------------

def _limit_warnings(pages) -> list[dict]:
    return [w for p in pages for w in (p.json.get("warnings") or [])
            if (w.get("warningCode") or {}).get("name") == ROW_LIMIT_WARNING]


def test_truncation_warning_and_header(raw):
    pages = raw("sales_reader").run(f"SELECT order_id FROM {ORDERS}")
    assert len(rows_of(pages)) == SALES_READER["row_limit"] == 1000
    last = pages[-1]
    assert last.next_uri is None
    assert last.headers.get(TRUNCATED_HEADER, "").lower() == "true", dict(last.headers)
    warnings = [w for w in (last.json.get("warnings") or [])
                if (w.get("warningCode") or {}).get("name") == ROW_LIMIT_WARNING]
    assert len(warnings) == 1, last.json.get("warnings")
    w = warnings[0]
    assert isinstance(w["warningCode"]["code"], int)
    assert "row_limit" in w["message"], w


@pytest.mark.parametrize(
    "key,sql,rows",
    [("eu_analyst", f"SELECT order_id FROM {ORDERS}", lake_counts.EU_ANALYST_ORDERS),  # 944 < 1000
     ("sales_reader", f"SELECT order_id FROM {ORDERS} ORDER BY order_id LIMIT 1000", 1000)],  # exactly row_limit
    ids=["below_limit", "exactly_limit"],
)
def test_no_truncation_warning_when_not_cut(raw, key, sql, rows):
    pages = raw(key).run(sql)
    assert len(rows_of(pages)) == rows
    assert not _limit_warnings(pages)
    assert [p.headers.get(TRUNCATED_HEADER) for p in pages if TRUNCATED_HEADER in p.headers] == []


def test_truncation_through_client(trino_conns):
    """Exactly row_limit rows, and the warning on ``cursor.warnings``.

    trino 0.340 sets ``cursor.warnings`` only from the POST answer
    (client.py TrinoQuery.execute: ``self._warnings = getattr(status,
    "warnings", [])``; later pages' warnings are ignored), so a Python
    user sees the truncation only if the POST answer carries the warning."""
    cur = trino_conns.get("sales_reader").cursor()
    cur.execute(f"SELECT order_id, region FROM {ORDERS}")
    rows = cur.fetchall()
    assert len(rows) == 1000
    names = [(w.get("warningCode") or {}).get("name") for w in (cur.warnings or [])]
    assert ROW_LIMIT_WARNING in names, cur.warnings


# --- errors ------------------------------------------------------------------------------

def test_syntax_error(trino_conns):
    err = error_of(trino_conns.query, "eu_analyst", "SELEC 1")
    assert isinstance(err, te.TrinoUserError), repr(err)
    assert err.error_name == "SYNTAX_ERROR"
    assert err.error_type == "USER_ERROR"
    assert isinstance(err.error_code, int)
    assert err.error_location == (1, 1)
    assert isinstance(err.error_exception, str) and err.error_exception
    assert err.query_id


@pytest.mark.parametrize(
    "hidden,missing,template",
    [
        ("salaries", "nope", "SELECT * FROM lake.hr.{t}"),
        ("salaries", "nope", "SELECT count(*) FROM lake.hr.{t}"),
        ("customers", "nope", "SELECT * FROM lake.sales.{t}"),
        ("salaries", "nope", "SELECT o.order_id FROM lake.sales.orders o JOIN lake.hr.{t} s ON o.order_id = s.employee_id"),
        ("hr", "zz", "SELECT * FROM lake.{t}.salaries"),
    ],
)
def test_hidden_table_same_error_as_missing(trino_conns, hidden, missing, template):
    e_hidden = error_of(trino_conns.query, "eu_analyst", template.format(t=hidden))
    e_missing = error_of(trino_conns.query, "eu_analyst", template.format(t=missing))
    assert isinstance(e_hidden, te.TrinoUserError)
    assert e_hidden.error_name == e_missing.error_name
    # A table of a hidden schema, like one of a missing schema, is
    # TABLE_NOT_FOUND (as a hidden or missing table is).
    assert e_hidden.error_name == "TABLE_NOT_FOUND", repr(e_hidden)
    assert _sub_word(e_hidden.message, hidden) == _sub_word(e_missing.message, missing)
    assert e_hidden.error_location == e_missing.error_location


@pytest.mark.parametrize("column", EU_HIDDEN)
def test_hidden_column_not_found(trino_conns, column):
    err = error_of(trino_conns.query, "eu_analyst", f"SELECT order_id, {column} FROM {ORDERS}")
    assert isinstance(err, te.TrinoUserError)
    assert err.error_name == "COLUMN_NOT_FOUND", repr(err)
    assert mentions(err.message, column), err.message
    assert not [h for h in EU_HIDDEN if h != column and mentions(err.message, h)], err.message
    missing = error_of(trino_conns.query, "eu_analyst", f"SELECT order_id, no_such_column FROM {ORDERS}")
    assert missing.error_name == "COLUMN_NOT_FOUND"
    assert _sub_word(err.message, column) == _sub_word(missing.message, "no_such_column")


@pytest.mark.parametrize(
    "sql",
    [
        f"INSERT INTO {ORDERS} (order_id, region) VALUES (999999, 'eu')",
        "CREATE TABLE lake.sales.evil (a INTEGER)",
        f"DROP TABLE {ORDERS}",
        f"DELETE FROM {ORDERS}",
    ],
    ids=["insert", "create_table", "drop_table", "delete"],
)
def test_writes_permission_denied(trino_conns, sql):
    before = trino_conns.rows("sales_reader", f"SELECT count(*) FROM {ORDERS}")
    err = error_of(trino_conns.query, "eu_analyst", sql)
    assert isinstance(err, te.TrinoUserError)
    assert err.error_name == "PERMISSION_DENIED", repr(err)
    assert trino_conns.rows("sales_reader", f"SELECT count(*) FROM {ORDERS}") == before


@pytest.mark.parametrize("fn", ["word_stem('running')", "no_such_function(1)"])
def test_function_not_found(trino_conns, fn):
    err = error_of(trino_conns.query, "eu_analyst", f"SELECT {fn}")
    assert isinstance(err, te.TrinoUserError)
    assert err.error_name == "FUNCTION_NOT_FOUND", repr(err)
    assert mentions(err.message, fn.split("(")[0]), err.message


@pytest.mark.parametrize("sql", ["SELECT 1 / 0", f"SELECT order_id / (order_id - order_id) FROM {ORDERS}"],
                         ids=["constant", "per_row"])
def test_division_by_zero(trino_conns, sql):
    err = error_of(trino_conns.query, "eu_analyst", sql)
    assert isinstance(err, te.TrinoUserError)
    assert err.error_name == "DIVISION_BY_ZERO", repr(err)


def test_error_then_connection_usable_and_close_quiet(trino_conns):
    """``cursor.close()`` after a failed query DELETEs its last nextUri
    (trino 0.340 keeps it): sluice answers 204, so close() does not raise."""
    conn = trino_conns.get("eu_analyst")
    cur = conn.cursor()
    with pytest.raises(te.TrinoUserError):
        cur.execute("SELECT * FROM lake.hr.salaries")
        cur.fetchall()
    cur.close()
    assert run_dbapi(conn, "SELECT 2 AS x")[1] == [[2]]


# --- session: USE, SET SESSION, RESET SESSION ----------------------------------------------

def test_use_catalog_schema(server, tokens, raw):
    pages = raw("eu_analyst").run("USE lake.sales")
    assert pages[-1].error is None, pages[-1].error
    set_catalog = [p.headers["X-Trino-Set-Catalog"] for p in pages if "X-Trino-Set-Catalog" in p.headers]
    set_schema = [p.headers["X-Trino-Set-Schema"] for p in pages if "X-Trino-Set-Schema" in p.headers]
    assert set_catalog == ["lake"]
    assert set_schema == ["sales"]
    conn = trino_connect(server, tokens["eu_analyst"]["secret"])
    try:
        run_dbapi(conn, "USE lake.sales")
        assert (conn._client_session.catalog, conn._client_session.schema) == ("lake", "sales")
        n = run_dbapi(conn, "SELECT count(*) FROM orders")[1]
        assert n == run_dbapi(conn, f"SELECT count(*) FROM {ORDERS}")[1] == [[lake_counts.EU_ANALYST_ORDERS]]
        assert run_dbapi(conn, "SHOW TABLES")[1] == [["orders"]]
    finally:
        conn.close()


def test_use_schema_with_catalog_default(server, tokens, raw):
    pages = raw("eu_analyst").run("USE sales", {"X-Trino-Catalog": "lake"})
    assert pages[-1].error is None, pages[-1].error
    assert [p.headers["X-Trino-Set-Schema"] for p in pages if "X-Trino-Set-Schema" in p.headers] == ["sales"]
    conn = trino_connect(server, tokens["eu_analyst"]["secret"], catalog="lake")
    try:
        run_dbapi(conn, "USE sales")
        assert run_dbapi(conn, "SELECT count(*) FROM orders")[1] == [[lake_counts.EU_ANALYST_ORDERS]]
    finally:
        conn.close()


def test_catalog_and_schema_connection_defaults(server, tokens):
    conn = trino_connect(server, tokens["sales_reader"]["secret"], catalog="lake", schema="sales")
    try:
        assert run_dbapi(conn, "SELECT count(*) FROM customers")[1] == [[lake_counts.CUSTOMERS_ROWS]]
        assert sorted(r[0] for r in run_dbapi(conn, "SHOW TABLES")[1]) == ["customers", "orders"]
    finally:
        conn.close()
    conn = trino_connect(server, tokens["sales_reader"]["secret"], catalog="lake")
    try:
        assert run_dbapi(conn, "SELECT count(*) FROM sales.customers")[1] == [[lake_counts.CUSTOMERS_ROWS]]
    finally:
        conn.close()


def test_use_hidden_schema_like_missing(trino_conns):
    e_hidden = error_of(trino_conns.query, "eu_analyst", "USE lake.hr")
    e_missing = error_of(trino_conns.query, "eu_analyst", "USE lake.zz")
    assert e_hidden.error_name == e_missing.error_name
    assert _sub_word(e_hidden.message, "hr") == _sub_word(e_missing.message, "zz")


def test_set_and_reset_session(server, tokens, raw):
    r = raw("eu_analyst")
    pages = r.run("SET SESSION query_max_run_time = '10m'")
    assert pages[-1].error is None, pages[-1].error
    values = [p.headers["X-Trino-Set-Session"] for p in pages if "X-Trino-Set-Session" in p.headers]
    assert values == ["query_max_run_time=10m"]
    pages = r.run("RESET SESSION query_max_run_time")
    assert pages[-1].error is None, pages[-1].error
    cleared = [p.headers["X-Trino-Clear-Session"] for p in pages if "X-Trino-Clear-Session" in p.headers]
    assert cleared == ["query_max_run_time"]
    # the real client keeps the property and sends it on later queries
    conn = trino_connect(server, tokens["eu_analyst"]["secret"])
    try:
        run_dbapi(conn, "SET SESSION query_max_run_time = '10m'")
        assert conn._client_session.properties == {"query_max_run_time": "10m"}
        assert run_dbapi(conn, "SELECT 1")[1] == [[1]]
        run_dbapi(conn, "RESET SESSION query_max_run_time")
        assert conn._client_session.properties == {}
    finally:
        conn.close()


# --- X-Trino-User is recorded, never trusted -----------------------------------------------

@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_user_header_grants_nothing(server, tokens, mode):
    conn = trino_connect(server, tokens["eu_analyst"]["secret"], mode=mode, user="admin")
    try:
        assert run_dbapi(conn, "SHOW TABLES FROM lake.sales")[1] == [["orders"]]
        err = error_of(run_dbapi, conn, "SELECT * FROM lake.sales.customers")
        assert err.error_name == "TABLE_NOT_FOUND"
        desc, _ = run_dbapi(conn, f"SELECT * FROM {ORDERS} WHERE order_id < 10")
        assert _names(desc) == EU_COLUMNS
    finally:
        conn.close()
    headers = {"Authorization": f"Bearer {tokens['eu_analyst']['secret']}", "X-Trino-User": "admin"}
    r = requests.post(f"{server.http_base}/v1/tokens", json=_small_token("escalate", admin=True),
                      headers=headers, timeout=30)
    assert r.status_code == 403, r.text


# --- protocol details ----------------------------------------------------------------------

def test_post_answer_shape(raw):
    """The POST answer has id, infoUri, stats.state, an absolute nextUri of
    the form /v1/statement/executing/{queryId}/{slug}/{n} and no data and
    no error, also for a statement that fails: the npm trino-client drops
    the POST answer (it only yields pages fetched from nextUri)."""
    r = raw("eu_analyst")
    for sql in [f"SELECT order_id FROM {ORDERS}", "SELEC 1", "SELECT * FROM lake.hr.salaries"]:
        first = r.post(sql)
        assert first.status == 200, first.response.text[:300]
        body = first.json
        assert body["id"] and body["infoUri"] and body["stats"]["state"], body
        assert first.next_uri, body
        parts = urlsplit(first.next_uri)
        assert parts.scheme == "http" and parts.netloc == f"127.0.0.1:{r.base.rsplit(':', 1)[1]}", first.next_uri
        m = NEXT_URI_PATH.match(parts.path)
        assert m and m.group("id") == body["id"], first.next_uri
        assert urlsplit(body["infoUri"]).path == f"/v1/query/{body['id']}", body["infoUri"]
        assert not body.get("data") and not body.get("error"), body
        page = r.finish(first)[-1]
        assert page.state in DONE_STATES
        assert (page.error is not None) == (sql != f"SELECT order_id FROM {ORDERS}"), page.json


def test_next_uri_uses_request_host(server, tokens, raw):
    r = raw("eu_analyst")
    first = r.post("SELECT 1", {"Host": f"localhost:{server.http_port}"})
    assert first.status == 200
    assert first.next_uri.startswith(f"http://localhost:{server.http_port}/v1/statement/executing/"), first.next_uri
    same = first.next_uri.replace(f"localhost:{server.http_port}", f"127.0.0.1:{server.http_port}", 1)
    page = r.get(same)
    for _ in range(100):
        if not page.next_uri:
            break
        assert page.next_uri.startswith(f"http://localhost:{server.http_port}/"), page.next_uri
        page = r.get(page.next_uri.replace(f"localhost:{server.http_port}", f"127.0.0.1:{server.http_port}", 1))
    assert page.state == "FINISHED" and page.next_uri is None


def test_body_is_raw_sql_never_a_form(raw):
    r = raw("eu_analyst")
    sql = "SELECT 'a=b&c+d%20e' AS s"
    for content_type in ["text/plain; charset=utf-8", "application/x-www-form-urlencoded;charset=utf-8", None]:
        headers = {} if content_type is None else {"Content-Type": content_type}
        page = r.post(sql, headers)
        assert page.status == 200, page.response.text[:300]
        pages = [page] + r.finish(page)
        assert rows_of(pages) == [["a=b&c+d%20e"]], content_type


def _stable(page) -> dict:
    body = dict(page.json)
    body["stats"] = {"state": (body.get("stats") or {}).get("state")}
    return body


def test_retry_returns_identical_page(raw):
    r = raw("sales_reader")
    first = r.post(f"SELECT order_id, region FROM {ORDERS} ORDER BY order_id")
    page = first
    seen_rows = list(first.data)
    for _ in range(2000):
        if not page.next_uri:
            break
        a = r.get(page.next_uri)
        b = r.get(page.next_uri)
        assert a.status == b.status == 200
        assert _stable(a) == _stable(b)
        seen_rows += a.data
        page = a
    assert page.next_uri is None and page.state == "FINISHED"
    assert len(seen_rows) == 1000
    assert [row[0] for row in seen_rows] == sorted(row[0] for row in seen_rows)


def test_retry_on_small_pages(raw_small):
    r = raw_small("sales_reader")
    page = r.post(f"SELECT order_id FROM {ORDERS} ORDER BY order_id")
    rows = list(page.data)
    for _ in range(2000):
        if not page.next_uri:
            break
        a, b = r.get(page.next_uri), r.get(page.next_uri)
        assert _stable(a) == _stable(b)
        rows += a.data
        page = a
    assert page.next_uri is None and page.state == "FINISHED"
    assert len(rows) == 1000 and len({x[0] for x in rows}) == 1000


def test_delete_cancels_and_unlists(raw_small):
    r = raw_small("sales_reader")
    qid, page = _live(r, f"SELECT * FROM {ORDERS}")
    assert qid in r.query_ids()
    resp = r.delete(page.next_uri)
    assert resp.status_code == 204, (resp.status_code, resp.text)
    assert qid not in r.query_ids()
    again = r.delete(page.next_uri)
    assert again.status_code == 204, (again.status_code, again.text)
    after = r.get(page.next_uri)
    assert after.status == 410, (after.status, after.response.text[:300])
    assert after.response.json() == {"error": "query not found or expired"}


def test_info_uri_only_for_its_token(raw_small):
    owner = raw_small("sales_reader")
    qid, page = _live(owner, f"SELECT * FROM {ORDERS}")
    try:
        r = owner.query_info(qid)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["queryId"] == qid and isinstance(body["state"], str)
        other = raw_small("eu_analyst")
        denied = other.query_info(qid)
        assert denied.status_code == 404, (denied.status_code, denied.text)
        fake = qid[:-1] + ("x" if qid[-1] != "x" else "y")
        unknown = other.query_info(fake)
        assert unknown.status_code == 404
        assert _sub_word(denied.text, qid) == _sub_word(unknown.text, fake)
        same_user = raw_small("eu_analyst", user=TEST_USER).query_info(qid)
        assert same_user.status_code == 404
        assert raw_small(None).query_info(qid).status_code == 401
    finally:
        assert owner.delete(page.next_uri).status_code == 204


def test_query_list_scoped_to_token(raw_small):
    reader, eu, admin = raw_small("sales_reader"), raw_small("eu_analyst"), raw_small("admin")
    qa, pa_ = _live(reader, f"SELECT * FROM {ORDERS}")
    qb, pb = _live(eu, f"SELECT * FROM {ORDERS}")
    try:
        assert qa in reader.query_ids() and qb not in reader.query_ids()
        assert qb in eu.query_ids() and qa not in eu.query_ids()
        assert admin.query_ids() == {qa, qb}  # (the small fixture: no other live query)
        eu_as_admin = raw_small("eu_analyst", user="admin")
        assert qa not in eu_as_admin.query_ids()
        for q in reader.queries():
            assert set(q) >= {"queryId", "state"}
    finally:
        assert reader.delete(pa_.next_uri).status_code == 204
        assert eu.delete(pb.next_uri).status_code == 204


# --- pages, reaping, queueing, cancel, time limits (small server) -------------------------

def test_pages_bounded_by_rows(raw_small, small_tokens, small):
    r = raw_small("sales_reader")
    pages = r.run(f"SELECT order_id FROM {ORDERS}")
    sizes = [len(p.data) for p in pages if p.data]
    assert sum(sizes) == 1000
    # A bound, not a size: how rows split into pages depends on when the
    # engine's batches arrive (a page need not be full).
    assert max(sizes) <= TRINO_SMALL["page_max_rows"], sizes
    assert len(sizes) >= 1000 // TRINO_SMALL["page_max_rows"]
    conn = trino_connect(small, small_tokens["sales_reader"]["secret"])
    try:
        rows = run_dbapi(conn, f"SELECT order_id FROM {ORDERS} ORDER BY order_id")[1]
        assert len(rows) == 1000 and rows == sorted(rows)
    finally:
        conn.close()


def test_pages_bounded_by_bytes(raw_small):
    r = raw_small("sales_reader")
    pages = r.run(f"SELECT order_id, lpad(CAST(order_id AS VARCHAR), 10000, 'x') AS pad "
                  f"FROM {ORDERS} WHERE order_id <= 300")
    rows = rows_of(pages)
    assert len(rows) == lake_counts.READER_ID_LE_300 and all(len(row[1]) == 10000 for row in rows)
    # Bounds, not sizes: a page's JSON size is estimated from Arrow sizes,
    # and how rows split into pages depends on when batches arrive.
    limit = TRINO_SMALL["page_max_bytes"]
    data_pages = [p for p in pages if p.data]
    for p in data_pages:
        if len(p.data) > 1:
            assert len(json.dumps(p.data)) <= 2 * limit, (len(p.data), len(json.dumps(p.data)))
    total = len(json.dumps(rows))
    assert len(data_pages) >= total // (2 * limit), (len(data_pages), total)


def test_abandoned_query_reaped(raw_small):
    r = raw_small("sales_reader")
    qid, page = _live(r, f"SELECT * FROM {ORDERS}")
    last_poll = time.monotonic()
    assert qid in r.query_ids()
    wait_until(lambda: qid not in r.query_ids(), timeout_s=TRINO_SMALL["client_timeout_s"] + 12,
               interval_s=0.25, what="abandoned query reaped")
    # wall clock: not reaped before (most of) client_timeout without a poll
    assert time.monotonic() - last_poll >= TRINO_SMALL["client_timeout_s"] * 0.75
    # A reaped query is kept for a grace period (client_timeout) so that a
    # late poll learns why it ended.
    after = r.get(page.next_uri)
    assert after.status == 200, (after.status, after.response.text[:300])
    assert after.error and after.error.get("errorName") == "ABANDONED_QUERY", after.json
    assert not after.data


def test_queued_until_a_slot_frees(raw_small):
    # One token executes at most half of the slots (rounded up), so the
    # slots are filled by two tokens; the queued query is the first one's.
    slots = TRINO_SMALL["max_concurrent_queries"]
    assert slots == 2
    r = raw_small("sales_reader")
    r2 = raw_small("eu_analyst")
    holders = [_live(r, f"SELECT * FROM {ORDERS}"), _live(r2, f"SELECT * FROM {ORDERS}")]
    pages = [p for _, p in holders]
    owners = [r, r2]
    queued = r.post("SELECT 1 AS one")
    try:
        assert queued.status == 200
        assert queued.state == "QUEUED", queued.json
        page = queued
        for _ in range(2):
            # Keep the holders alive (client_timeout) first: the POST and
            # every poll of the queued query each wait up to max_wait.
            pages = [o.advance(p) for o, p in zip(owners, pages)]
            page = r.advance(page)
            assert page.state == "QUEUED" and not page.data, page.json
        assert r.delete(pages[0].next_uri).status_code == 204
        states, rows = [], []
        start = time.monotonic()
        while page.next_uri:
            assert time.monotonic() - start < 20, states  # wall clock: the freed slot is taken promptly
            page = r.advance(page)
            states.append(page.state)
            rows += page.data
        assert rows == [[1]] and page.state == "FINISHED", states
    finally:
        for o, p in zip(owners, pages):
            if p.next_uri:
                o.delete(p.next_uri)


def test_cancel_mid_stream(small, small_tokens):
    admin = RawTrino(small.http_base, small.admin_secret)
    conn = trino_connect(small, small_tokens["sales_reader"]["secret"])
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM {ORDERS} ORDER BY order_id")
        first = cur.fetchmany(5)
        assert len(first) == 5
        qid = cur.query_id
        assert qid in admin.query_ids()
        cur.cancel()
        assert qid not in admin.query_ids()
        cur.close()  # a second DELETE of the same nextUri: 204 again
    finally:
        conn.close()
        admin.close()


# The last tests of the small server: HEAVY keeps the engine busy until a
# time limit or a cancel ends it, so a server that fails to end it must not
# take the main server (and every later test) down with it. The client gets
# a short request timeout and no retries, so a server that stops answering
# fails these tests in bounded time.
HEAVY_CLIENT = {"request_timeout": 30, "max_attempts": 1}


@pytest.mark.parametrize("how", ["set_session", "header"])
def test_query_max_run_time_exceeded(small, small_tokens, how):
    props = {"query_max_run_time": "1s"} if how == "header" else None
    conn = trino_connect(small, small_tokens["sales_reader"]["secret"], session_properties=props, **HEAVY_CLIENT)
    try:
        if how == "set_session":
            run_dbapi(conn, "SET SESSION query_max_run_time = '1s'")
        start = time.monotonic()
        err = error_of(run_dbapi, conn, HEAVY, deadline_s=30)
        elapsed = time.monotonic() - start
        assert err.error_name == "EXCEEDED_TIME_LIMIT", repr(err)
        assert err.error_type == "INSUFFICIENT_RESOURCES"
        assert not isinstance(err, te.TrinoUserError)
        # wall clock: the 1 s session limit ended it, not the server's cap
        assert 0.9 <= elapsed < TRINO_SMALL["max_run_time_s"] * 0.9, elapsed
        assert run_dbapi(conn, "SELECT 1")[1] == [[1]]
    finally:
        conn.close()


def test_session_cannot_raise_max_run_time(small, small_tokens):
    conn = trino_connect(small, small_tokens["sales_reader"]["secret"], **HEAVY_CLIENT)
    try:
        run_dbapi(conn, "SET SESSION query_max_run_time = '1h'")
        start = time.monotonic()
        err = error_of(run_dbapi, conn, HEAVY, deadline_s=30)
        elapsed = time.monotonic() - start
        assert err.error_name == "EXCEEDED_TIME_LIMIT", repr(err)
        # wall clock: the server's cap ended it, not the session's 1 h
        assert TRINO_SMALL["max_run_time_s"] * 0.8 <= elapsed < 25, elapsed
        assert requests.get(f"{small.http_base}/v1/info", timeout=10).status_code == 200
    finally:
        conn.close()


def test_deadline_guard_helper():
    """The helper itself (no server): the callback raises after the limit."""
    guard = Deadline(0.0)
    time.sleep(0.01)
    with pytest.raises(AssertionError):
        guard({"state": "RUNNING"})
    assert guard.states == ["RUNNING"]
    assert auth_header("s", "bearer") == "Bearer s"
    assert base64.b64decode(auth_header("s", "basic", "u").split()[1]) == b"u:s"
