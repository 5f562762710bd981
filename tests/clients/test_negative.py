"""What sluice must refuse (DESIGN §3-5): every kind of bad credential with
one uninformative answer, ungranted tables indistinguishable from missing
ones, disallowed columns in every clause, anything but read queries, ticket
replay across tokens, and the admin API's 401/403 paths."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as flight
import pytest
import requests

import flight_proto as fp
import lake_counts
from harness import FLIGHT_ERRORS, adbc_query, bearer_options, flight_options
from oracle import mentions
from tokens import ORDERS, SALES_READER, token_body

AUTH_FAILED = "authentication failed"
COLUMN_REFUSAL = "not found or not allowed"
#: eu_analyst sees order_id, region, amount, customer_email of sales.orders.
EU_HIDDEN = ["customer_id", "sensitivity", "embedding", "attachment", "created_at"]
REFUSAL_WORDING = re.compile(
    r"read.?only|not allowed|not permitted|refused|forbidden|unsupported|not supported|only (read|quer|select)"
    r"|single (sql )?statement",
    re.IGNORECASE,
)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _small_token(name: str, **fields) -> dict:
    return token_body(name, [{"table": ORDERS, "columns": ["order_id", "region"]}], max_sensitivity=3, **fields)


def _grpc_message(text: str) -> str:
    """Strip per-call noise (debug context, timestamps) from a client error."""
    text = re.split(r"gRPC client debug context|Client context:|\. Detail:", text)[0]
    return " ".join(text.split())


def _sub_word(text: str, word: str) -> str:
    return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", "<name>", text)


# --- authentication failures ----------------------------------------------------------

@pytest.fixture(scope="module")
def bad_credentials(server):
    """kind -> authorization header value (None: no header). Expired,
    revoked and wrong-audience tokens are real tokens made for this."""
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    expired = server.create_token(_small_token("neg-expired", expires_at=_iso(expires)))
    revoked = server.create_token(_small_token("neg-revoked"))
    audience = server.create_token(_small_token("neg-audience", audience={"cidrs": ["10.0.0.0/8"]}))
    r = server.revoke_token(revoked["id"])
    assert r.status_code == 200, r.text
    # Let the short-lived token expire (whole seconds + margin).
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.5)
    return {
        "no_header": None,
        "garbage_bearer": "Bearer this-is-not-a-token",
        "garbage_scheme": "Digest abc",
        "malformed_basic": "Basic %%%not-base64%%%",
        "unknown_secret": "Bearer " + secrets.token_urlsafe(32),
        "expired": "Bearer " + expired["secret"],
        "revoked": "Bearer " + revoked["secret"],
        "wrong_audience": "Bearer " + audience["secret"],
    }


def test_revoked_refused_on_next_request(server):
    tok = server.create_token(_small_token("neg-revoke-next"))
    conn = server.adbc_connect(tok["secret"])
    try:
        assert adbc_query(conn, f"SELECT count(*) AS n FROM {ORDERS}").num_rows == 1
        r = server.revoke_token(tok["id"])
        assert r.status_code == 200, r.text
        with pytest.raises(adbc_driver_manager.Error) as exc:
            adbc_query(conn, f"SELECT count(*) AS n FROM {ORDERS}")
        assert exc.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED
        assert AUTH_FAILED in str(exc.value)
    finally:
        conn.close()


def _adbc_failure(server, header: str | None) -> adbc_driver_manager.Error:
    import adbc_driver_flightsql.dbapi as flightsql

    db_kwargs = {} if header is None else {"adbc.flight.sql.authorization_header": header}
    try:
        conn = flightsql.connect(server.flight_uri, db_kwargs=db_kwargs, autocommit=True)
    except adbc_driver_manager.Error as e:
        return e
    try:
        adbc_query(conn, "SELECT 1 AS x")
    except adbc_driver_manager.Error as e:
        return e
    finally:
        conn.close()
    raise AssertionError(f"credential {header!r} was accepted")


def test_adbc_auth_failures_identical(server, bad_credentials):
    messages = {}
    for kind, header in bad_credentials.items():
        err = _adbc_failure(server, header)
        assert err.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, (kind, err)
        assert AUTH_FAILED in str(err), (kind, str(err))
        messages[kind] = _grpc_message(str(err))
    assert len(set(messages.values())) == 1, messages


def test_adbc_handshake_with_bad_password(server, bad_credentials):
    messages = set()
    for password in ["", "nope", secrets.token_urlsafe(32), bad_credentials["expired"].split()[1],
                     bad_credentials["revoked"].split()[1], bad_credentials["wrong_audience"].split()[1]]:
        import adbc_driver_flightsql.dbapi as flightsql

        with pytest.raises(adbc_driver_manager.Error) as exc:
            conn = flightsql.connect(server.flight_uri, db_kwargs={"username": "u", "password": password}, autocommit=True)
            try:
                adbc_query(conn, "SELECT 1 AS x")
            finally:
                conn.close()
        assert exc.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, str(exc.value)
        assert AUTH_FAILED in str(exc.value)
        messages.add(_grpc_message(str(exc.value)))
    assert len(messages) == 1, messages


def test_flight_auth_failures_identical(server, bad_credentials):
    client = server.flight_client()
    messages = {}
    try:
        for kind, header in bad_credentials.items():
            options = flight_options(header)
            with pytest.raises(flight.FlightUnauthenticatedError) as exc:
                fp.statement_info(client, "SELECT 1", options)
            assert AUTH_FAILED in str(exc.value), (kind, str(exc.value))
            messages[kind] = _grpc_message(str(exc.value))
    finally:
        client.close()
    assert len(set(messages.values())) == 1, messages


def test_flight_handshake_bad_password(server, bad_credentials):
    messages = set()
    for password in ["nope", secrets.token_urlsafe(32), bad_credentials["revoked"].split()[1],
                     bad_credentials["expired"].split()[1], bad_credentials["wrong_audience"].split()[1]]:
        client = server.flight_client()
        try:
            with pytest.raises(flight.FlightUnauthenticatedError) as exc:
                client.authenticate_basic_token("u", password, flight_options())
            assert AUTH_FAILED in str(exc.value)
            messages.add(_grpc_message(str(exc.value)))
        finally:
            client.close()
    assert len(messages) == 1, messages


def test_expired_token_worked_before_expiry(server):
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    tok = server.create_token(_small_token("neg-expiring", expires_at=_iso(expires)))
    conn = server.adbc_connect(tok["secret"])
    try:
        assert adbc_query(conn, "SELECT 1 AS x").num_rows == 1
        time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.5)
        with pytest.raises(adbc_driver_manager.Error) as exc:
            adbc_query(conn, "SELECT 1 AS x")
        assert AUTH_FAILED in str(exc.value)
    finally:
        conn.close()


def test_audience_inside_cidr_is_accepted(server):
    tok = server.create_token(_small_token("neg-audience-ok", audience={"cidrs": ["127.0.0.0/8"]}))
    conn = server.adbc_connect(tok["secret"])
    try:
        assert adbc_query(conn, "SELECT 1 AS x").num_rows == 1
    finally:
        conn.close()


def test_revocation_applies_to_basic_auth_sessions(server):
    tok = server.create_token(_small_token("neg-revoke-basic"))
    conn = server.adbc_connect(tok["secret"], mode="basic")
    try:
        assert adbc_query(conn, "SELECT 1 AS x").num_rows == 1
        assert server.revoke_token(tok["id"]).status_code == 200
        with pytest.raises(adbc_driver_manager.Error) as exc:
            adbc_query(conn, "SELECT 1 AS x")
        assert AUTH_FAILED in str(exc.value)
    finally:
        conn.close()


# --- ungranted tables are indistinguishable from missing ones -------------------------

def _adbc_error(conns, key: str, sql: str, params=None) -> str:
    with pytest.raises(adbc_driver_manager.Error) as exc:
        conns.query(key, sql, params)
    msg = str(exc.value)
    assert AUTH_FAILED not in msg
    return msg


@pytest.mark.parametrize(
    "hidden,missing,template",
    [
        ("salaries", "nope", "SELECT * FROM lake.hr.{t}"),
        ("salaries", "nope", "SELECT count(*) FROM lake.hr.{t}"),
        ("salaries", "nope", "SELECT o.order_id FROM lake.sales.orders o JOIN lake.hr.{t} s ON o.order_id = s.employee_id"),
        ("customers", "nope", "SELECT * FROM lake.sales.{t}"),
        ("hr", "zz", "SELECT * FROM lake.{t}.salaries"),
        ("salaries", "nope", "DESCRIBE lake.hr.{t}"),
        # Iceberg metadata tables of a granted table expose file-level
        # statistics of hidden rows: not part of any secure view.
        ("orders$snapshots", "nope$snapshots", 'SELECT * FROM lake.sales."{t}"'),
        ("orders$manifests", "nope$manifests", 'SELECT * FROM lake.sales."{t}"'),
    ],
)
def test_ungranted_table_same_error_as_missing(conns, hidden, missing, template):
    e_hidden = _adbc_error(conns, "eu_analyst", template.format(t=hidden))
    e_missing = _adbc_error(conns, "eu_analyst", template.format(t=missing))
    assert "not found" in e_hidden.lower(), e_hidden
    assert _sub_word(e_hidden, hidden) == _sub_word(e_missing, missing)


def test_ungranted_table_same_error_over_flight(server, tokens):
    client = server.flight_client()
    options = bearer_options(tokens["eu_analyst"]["secret"])
    msgs = []
    try:
        for name in ["salaries", "nope"]:
            with pytest.raises(FLIGHT_ERRORS) as exc:
                fp.statement_info(client, f"SELECT * FROM lake.hr.{name}", options)
            msgs.append(_sub_word(_grpc_message(str(exc.value)), name))
    finally:
        client.close()
    assert msgs[0] == msgs[1]


def test_information_schema_lists_only_granted(conns):
    """Unqualified and as ``lake.information_schema``: the same answer."""
    for prefix in ["", "lake."]:
        rows = conns.query(
            "eu_analyst", f"SELECT table_catalog, table_schema, table_name FROM {prefix}information_schema.tables"
        ).to_pylist()
        user = {(r["table_catalog"], r["table_schema"], r["table_name"]) for r in rows if r["table_schema"] != "information_schema"}
        assert user == {("lake", "sales", "orders")}, user
        cols = conns.query(
            "eu_analyst",
            f"SELECT column_name FROM {prefix}information_schema.columns WHERE table_name = 'orders' AND table_schema = 'sales'",
        ).column("column_name").to_pylist()
        assert set(cols) == {"order_id", "region", "amount", "customer_email"}


def test_show_tables_lists_only_granted(conns):
    rows = conns.query("eu_analyst", "SHOW TABLES").to_pylist()
    names = {(r.get("table_schema"), r.get("table_name")) for r in rows if r.get("table_schema") != "information_schema"}
    assert names == {("sales", "orders")}, rows


def test_show_columns_and_describe_only_granted(conns):
    rows = conns.query("eu_analyst", "SHOW COLUMNS FROM lake.sales.orders").to_pylist()
    assert {r["column_name"] for r in rows} == {"order_id", "region", "amount", "customer_email"}
    rows = conns.query("eu_analyst", "DESCRIBE lake.sales.orders").to_pylist()
    assert {r["column_name"] for r in rows} == {"order_id", "region", "amount", "customer_email"}


# --- disallowed columns in every position -----------------------------------------------

O = "lake.sales.orders"
COLUMN_POSITIONS = {
    "select": "SELECT {c} FROM {O}",
    "select_upper": "SELECT {C} FROM {O}",
    "select_quoted": 'SELECT "{c}" FROM {O}',
    "select_qualified": "SELECT o.{c} FROM {O} o",
    "select_with_star": "SELECT *, {c} FROM {O}",
    "where": "SELECT order_id FROM {O} WHERE {c} IS NOT NULL",
    "join_on": "SELECT a.order_id FROM {O} a JOIN {O} b ON a.{c} = b.{c}",
    "group_by": "SELECT count(*) FROM {O} GROUP BY {c}",
    "order_by": "SELECT order_id FROM {O} ORDER BY {c}",
    "having": "SELECT region FROM {O} GROUP BY region HAVING count({c}) > 0",
    "function_arg": "SELECT coalesce({c}, {c}) FROM {O}",
    "cast_arg": "SELECT CAST({c} AS VARCHAR) FROM {O}",
    "aggregate_arg": "SELECT count(DISTINCT {c}) FROM {O}",
    "filter_clause": "SELECT count(*) FILTER (WHERE {c} IS NULL) FROM {O}",
    "window": "SELECT row_number() OVER (PARTITION BY {c} ORDER BY order_id) FROM {O}",
    "case": "SELECT CASE WHEN {c} IS NULL THEN 1 ELSE 0 END FROM {O}",
    "subquery_in": "SELECT order_id FROM {O} WHERE order_id IN (SELECT order_id FROM {O} WHERE {c} IS NOT NULL)",
    "subquery_exists": "SELECT count(*) FROM {O} a WHERE EXISTS (SELECT 1 FROM {O} b WHERE b.order_id = a.order_id AND b.{c} IS NULL)",
    "scalar_subquery": "SELECT (SELECT count({c}) FROM {O}) AS n",
    "cte": "WITH t AS (SELECT {c} FROM {O}) SELECT * FROM t",
    "derived": "SELECT x FROM (SELECT {c} AS x FROM {O}) t",
    "star_then_column": "SELECT {c} FROM (SELECT * FROM {O}) t",
    "union_branch": "SELECT order_id FROM {O} UNION ALL SELECT count({c}) FROM {O}",
}


@pytest.mark.parametrize("column", ["sensitivity", "customer_id", "created_at", "attachment", "embedding"])
@pytest.mark.parametrize("position", sorted(COLUMN_POSITIONS))
def test_disallowed_column_refused(conns, position, column):
    sql = COLUMN_POSITIONS[position].format(c=column, C=column.upper(), O=O)
    msg = _adbc_error(conns, "eu_analyst", sql)
    assert COLUMN_REFUSAL in msg.lower(), msg
    assert mentions(msg, column), msg
    others = [h for h in EU_HIDDEN if h != column and mentions(msg, h)]
    assert not others, f"error names other hidden columns {others}: {msg}"


def test_disallowed_column_with_parameter(conns):
    msg = _adbc_error(conns, "eu_analyst", f"SELECT order_id FROM {O} WHERE sensitivity = ?", (3,))
    assert COLUMN_REFUSAL in msg.lower() and mentions(msg, "sensitivity")


def test_disallowed_column_over_flight(server, tokens):
    client = server.flight_client()
    options = bearer_options(tokens["eu_analyst"]["secret"])
    try:
        with pytest.raises(FLIGHT_ERRORS) as exc:
            fp.statement_info(client, f"SELECT sensitivity FROM {O}", options)
    finally:
        client.close()
    assert COLUMN_REFUSAL in str(exc.value).lower() and "sensitivity" in str(exc.value)


# --- read-only ---------------------------------------------------------------------------

def _write_statements(lake, tmp):
    salaries_file = next((lake.warehouse / "hr" / "salaries" / "data").rglob("*.parquet"))
    return {
        "create_table": "CREATE TABLE lake.sales.evil (a INT)",
        "create_table_as": "CREATE TABLE evil AS SELECT 1 AS a",
        "create_external_table": f"CREATE EXTERNAL TABLE evil STORED AS PARQUET LOCATION '{salaries_file}'",
        "create_view": f"CREATE VIEW evil AS SELECT * FROM {O}",
        "create_schema": "CREATE SCHEMA lake.evil",
        "drop_table": f"DROP TABLE {O}",
        "drop_schema": "DROP SCHEMA lake.sales CASCADE",
        "insert_values": f"INSERT INTO {O} (order_id, region) VALUES (999999, 'eu')",
        "insert_select": f"INSERT INTO {O} SELECT * FROM {O}",
        "update": f"UPDATE {O} SET amount = 0",
        "delete": f"DELETE FROM {O}",
        "truncate": f"TRUNCATE TABLE {O}",
        "alter": f"ALTER TABLE {O} ADD COLUMN x INT",
        "copy_query": f"COPY (SELECT * FROM {O}) TO '{tmp}/copy_query.parquet'",
        "copy_table": f"COPY {O} TO '{tmp}/copy_table.csv'",
        "set_option": "SET datafusion.execution.batch_size = 1",
        "set_catalog_option": "SET datafusion.catalog.information_schema = false",
        "explain_insert": f"EXPLAIN INSERT INTO {O} (order_id) VALUES (1)",
        "explain_analyze_copy": f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/explain.parquet'",
        "multi_statement": f"SELECT 1; DROP TABLE {O}",
    }


def _file_reads(lake):
    salaries_file = next((lake.warehouse / "hr" / "salaries" / "data").rglob("*.parquet"))
    return {
        "file_parquet": f"SELECT * FROM '{salaries_file}'",
        "file_url": f"SELECT * FROM 'file://{salaries_file}'",
        "file_passwd": "SELECT * FROM '/etc/passwd'",
        "read_parquet": f"SELECT * FROM read_parquet('{salaries_file}')",
        "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
        "parquet_metadata": f"SELECT * FROM parquet_metadata('{salaries_file}')",
    }


def test_writes_and_settings_refused(conns, lake, tmp_path, expect):
    before = expect(SALES_READER, f"SELECT count(*) AS n FROM {O}").column("n").to_pylist()
    failures = []
    for kind, sql in _write_statements(lake, tmp_path).items():
        try:
            conns.query("eu_analyst", sql)
            failures.append(f"{kind}: accepted")
        except adbc_driver_manager.Error as e:
            msg = str(e)
            if AUTH_FAILED in msg or not REFUSAL_WORDING.search(msg):
                failures.append(f"{kind}: unclear refusal: {msg[:300]}")
    assert not failures, "\n".join(failures)
    assert not list(tmp_path.iterdir()), "a refused COPY wrote files"
    after = conns.query("sales_reader", f"SELECT count(*) AS n FROM {O}").column("n").to_pylist()
    assert before == after
    assert conns.query("eu_analyst", "SELECT 1 AS x").num_rows == 1


def test_file_reading_refused(conns, lake):
    for kind, sql in _file_reads(lake).items():
        with pytest.raises(adbc_driver_manager.Error) as exc:
            conns.query("sales_reader", sql)
        assert AUTH_FAILED not in str(exc.value), kind


def test_external_table_cannot_be_used_afterwards(conns, lake):
    salaries_file = next((lake.warehouse / "hr" / "salaries" / "data").rglob("*.parquet"))
    with pytest.raises(adbc_driver_manager.Error):
        conns.query("eu_analyst", f"CREATE EXTERNAL TABLE sneaky STORED AS PARQUET LOCATION '{salaries_file}'")
    with pytest.raises(adbc_driver_manager.Error):
        conns.query("eu_analyst", "SELECT * FROM sneaky")


def test_flight_doput_update_refused(server, tokens):
    client = server.flight_client()
    options = bearer_options(tokens["eu_analyst"]["secret"])
    try:
        desc = flight.FlightDescriptor.for_command(fp.command_statement_update(f"DELETE FROM {O}"))
        with pytest.raises(FLIGHT_ERRORS):
            writer, reader = client.do_put(desc, pa.schema([]), options)
            writer.close()
        body = fp.action_create_prepared_statement(f"DROP TABLE {O}")
        with pytest.raises(FLIGHT_ERRORS):
            list(client.do_action(flight.Action("CreatePreparedStatement", body), options))
    finally:
        client.close()


# --- tickets are bound to the token that made them -----------------------------------

def test_ticket_replay_with_other_token_refused(server, tokens):
    client = server.flight_client()
    owner, other = bearer_options(tokens["sales_reader"]["secret"]), bearer_options(tokens["eu_analyst"]["secret"])
    try:
        info = fp.statement_info(client, f"SELECT order_id, customer_email FROM {O} WHERE order_id < 300", owner)
        ticket = info.endpoints[0].ticket
        # control: the owner may redeem it
        assert client.do_get(ticket, owner).read_all().num_rows == lake_counts.READER_ID_LT_300
        with pytest.raises(FLIGHT_ERRORS):
            client.do_get(ticket, other).read_all()
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.do_get(ticket, flight_options()).read_all()
        raw = ticket.ticket
        for forged in [raw[:-1] + bytes([raw[-1] ^ 1]), raw[: len(raw) // 2], b"garbage"]:
            with pytest.raises(FLIGHT_ERRORS):
                client.do_get(flight.Ticket(forged), owner).read_all()
    finally:
        client.close()


def test_ticket_of_revoked_token_refused(server):
    tok = server.create_token(_small_token("neg-ticket-revoked"))
    client = server.flight_client()
    opts = bearer_options(tok["secret"])
    try:
        info = fp.statement_info(client, f"SELECT order_id FROM {O}", opts)
        assert server.revoke_token(tok["id"]).status_code == 200
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.do_get(info.endpoints[0].ticket, opts).read_all()
    finally:
        client.close()


# --- admin HTTP API ----------------------------------------------------------------------

def test_admin_api_401_identical(server, bad_credentials):
    bodies = {}
    for kind, header in bad_credentials.items():
        headers = {} if header is None else {"Authorization": header}
        r = requests.post(f"{server.http_base}/v1/tokens", json=_small_token("x"), headers=headers, timeout=30)
        assert r.status_code == 401, (kind, r.status_code, r.text)
        assert AUTH_FAILED in r.text.lower(), (kind, r.text)
        bodies[kind] = r.text
    assert len(set(bodies.values())) == 1, bodies


def test_admin_api_403_for_non_admin(server, tokens):
    headers = {"Authorization": f"Bearer {tokens['eu_analyst']['secret']}"}
    r = requests.post(f"{server.http_base}/v1/tokens", json=_small_token("escalate", admin=True), headers=headers, timeout=30)
    assert r.status_code == 403, r.text
    r = requests.delete(f"{server.http_base}/v1/tokens/{tokens['sales_reader']['id']}", headers=headers, timeout=30)
    assert r.status_code == 403, r.text
    r = requests.get(f"{server.http_base}/v1/tokens/{tokens['sales_reader']['id']}/introspect", headers=headers, timeout=30)
    assert r.status_code == 403, r.text


def test_sales_reader_still_valid_after_refused_delete(conns):
    assert conns.query("sales_reader", "SELECT 1 AS x").num_rows == 1


def test_health_needs_no_auth(server):
    assert requests.get(f"{server.http_base}/health", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"deny_rules": ["no_such_column > 1"]},
        {"allow_rules": ["region = token.missing_attribute"]},
        {"allow_rules": ["region = "]},
        {"masks": {"region": "sha1"}},
    ],
    ids=["rule_unknown_column", "rule_unknown_attribute", "rule_syntax", "unknown_mask"],
)
def test_invalid_grants_rejected_at_creation(server, bad):
    grant = {"table": ORDERS, "columns": ["order_id", "region"], **bad}
    body = token_body("neg-invalid", [grant], attributes={"region": "eu"})
    r = requests.post(f"{server.http_base}/v1/tokens", json=body, headers=server.admin_headers(), timeout=30)
    assert r.status_code == 400, (r.status_code, r.text)


def test_secret_strength_and_not_at_rest(server):
    tok = server.create_token(_small_token("neg-at-rest"))
    secret = tok["secret"]
    # "slc_" and 43 base64url characters: 256 bits
    assert re.fullmatch(r"slc_[A-Za-z0-9_-]{43}", secret), "not a 256-bit secret"
    needle = secret.encode()
    searched = [path for path in server.data_dir.rglob("*") if path.is_file()]
    assert server.data_dir / "sluice.db" in searched, searched  # the store, at least
    for path in searched:
        assert needle not in path.read_bytes(), f"token secret stored in {path}"
    assert secret not in server.log_path.read_text(errors="replace"), "token secret in the server log"
