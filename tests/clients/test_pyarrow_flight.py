"""pyarrow.flight against sluice: Handshake (basic -> bearer), statement
queries as hand-encoded CommandStatementQuery + DoGet, metadata commands,
and row-limit truncation reported in the stream's app_metadata."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight
import pytest

import flight_proto as fp
import lake_counts
from compare import diff_results
from harness import bearer_options, flight_options
from tokens import EU_ANALYST, SALES_READER

ORDERS = "lake.sales.orders"
TRUNCATED = "sluice.truncated"


def run_statement(client, options, sql: str):
    """GetFlightInfo + DoGet of every endpoint: (table, app_metadata of the last
    stream, FlightInfo)."""
    info = fp.statement_info(client, sql, options)
    assert info.endpoints, "FlightInfo without endpoints"
    tables, metadata = [], []
    for ep in info.endpoints:
        t, md = fp.read_stream(client.do_get(ep.ticket, options))
        tables.append(t)
        metadata = md
    return pa.concat_tables(tables), metadata, info


@pytest.fixture
def client(server):
    c = server.flight_client()
    yield c
    c.close()


def test_handshake_returns_bearer(client, tokens):
    key, value = client.authenticate_basic_token("u", tokens["eu_analyst"]["secret"], flight_options())
    assert key.lower() == b"authorization"
    # the bearer credential is the token's own secret
    assert value == b"Bearer " + tokens["eu_analyst"]["secret"].encode()


def test_statement_with_handshake_bearer(client, tokens, expect):
    header = client.authenticate_basic_token("analyst", tokens["eu_analyst"]["secret"], flight_options())
    options = flight_options(header=header)
    sql = f"SELECT order_id, amount FROM {ORDERS} WHERE amount > 1000"
    got, _, _ = run_statement(client, options, sql)
    want = expect(EU_ANALYST, sql)
    assert got.num_rows == lake_counts.EU_ANALYST_AMOUNT_GT_1000
    assert diff_results(got, want, ordered=False, check_names=True) is None


def test_statement_with_token_as_bearer(client, tokens, expect):
    sql = f"SELECT region, count(*) AS n FROM {ORDERS} GROUP BY region"
    got, _, _ = run_statement(client, bearer_options(tokens["eu_analyst"]["secret"]), sql)
    assert diff_results(got, expect(EU_ANALYST, sql), ordered=False, check_names=True) is None


def test_flight_info_schema_matches_stream(client, tokens):
    sql = f"SELECT order_id, customer_email, amount FROM {ORDERS} WHERE order_id < 500"
    got, _, info = run_statement(client, bearer_options(tokens["eu_analyst"]["secret"]), sql)
    assert info.schema.names == got.schema.names == ["order_id", "customer_email", "amount"]


def test_small_result_not_truncated(client, tokens, expect):
    sql = f"SELECT order_id FROM {ORDERS} WHERE order_id < 200"
    got, md, _ = run_statement(client, bearer_options(tokens["sales_reader"]["secret"]), sql)
    meta = fp.truncation_metadata(md)
    assert meta[TRUNCATED] is False
    assert meta["rows"] == got.num_rows == expect(SALES_READER, sql).num_rows
    assert got.num_rows == lake_counts.READER_ID_LT_200  # below the row limit of 1000


def test_large_result_truncated_to_row_limit(client, tokens, expect):
    sql = f"SELECT order_id, amount FROM {ORDERS}"
    assert expect(SALES_READER, sql).num_rows == lake_counts.READER_ORDERS  # above the row limit of 1000
    got, md, _ = run_statement(client, bearer_options(tokens["sales_reader"]["secret"]), sql)
    assert got.num_rows == 1000
    meta = fp.truncation_metadata(md)
    assert meta[TRUNCATED] is True
    assert meta["rows"] == 1000


def test_exactly_row_limit_is_not_truncation(client, tokens):
    sql = f"SELECT order_id FROM {ORDERS} ORDER BY order_id LIMIT 1000"
    got, md, _ = run_statement(client, bearer_options(tokens["sales_reader"]["secret"]), sql)
    assert got.num_rows == 1000
    assert fp.truncation_metadata(md)[TRUNCATED] is False


def test_one_over_row_limit_is_truncation(client, tokens):
    sql = f"SELECT order_id FROM {ORDERS} ORDER BY order_id LIMIT 1001"
    got, md, _ = run_statement(client, bearer_options(tokens["sales_reader"]["secret"]), sql)
    assert got.num_rows == 1000
    assert fp.truncation_metadata(md)[TRUNCATED] is True


def test_truncation_keeps_order_prefix(client, tokens, expect):
    sql = f"SELECT order_id FROM {ORDERS} ORDER BY order_id DESC"
    got, _, _ = run_statement(client, bearer_options(tokens["sales_reader"]["secret"]), sql)
    want = expect(SALES_READER, sql).column("order_id").to_pylist()[:1000]
    assert got.column("order_id").to_pylist() == want


def test_aggregate_over_more_rows_than_limit(client, tokens, expect):
    """The cap applies to result rows, not to the rows an aggregate reads."""
    sql = f"SELECT count(*) AS n FROM {ORDERS}"
    got, md, _ = run_statement(client, bearer_options(tokens["sales_reader"]["secret"]), sql)
    assert got.column("n").to_pylist() == expect(SALES_READER, sql).column("n").to_pylist()
    assert got.column("n").to_pylist() == [lake_counts.READER_ORDERS]  # above the row limit of 1000
    assert fp.truncation_metadata(md)[TRUNCATED] is False


def _command_rows(client, options, command: bytes) -> list[dict]:
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
    rows = []
    for ep in info.endpoints:
        rows += client.do_get(ep.ticket, options).read_all().to_pylist()
    return rows


def test_get_catalogs_and_schemas(client, tokens):
    options = bearer_options(tokens["eu_analyst"]["secret"])
    catalogs = [r["catalog_name"] for r in _command_rows(client, options, fp.command_get_catalogs())]
    assert catalogs == ["lake"]
    schemas = [(r["catalog_name"], r["db_schema_name"]) for r in _command_rows(client, options, fp.command_get_db_schemas())]
    assert schemas == [("lake", "sales")]  # not lake.hr


def test_get_tables_only_granted(client, tokens):
    rows = _command_rows(client, bearer_options(tokens["eu_analyst"]["secret"]), fp.command_get_tables(include_schema=True))
    user = [r for r in rows if r["db_schema_name"] != "information_schema"]
    assert [(r["catalog_name"], r["db_schema_name"], r["table_name"]) for r in user] == [("lake", "sales", "orders")]
    schema = pa.ipc.read_schema(pa.py_buffer(user[0]["table_schema"]))
    assert set(schema.names) == {"order_id", "region", "amount", "customer_email"}


def test_get_table_types(client, tokens):
    rows = _command_rows(client, bearer_options(tokens["eu_analyst"]["secret"]), fp.command_get_table_types())
    assert [r["table_type"] for r in rows] == ["LOCAL TEMPORARY", "TABLE", "VIEW"]


def test_get_xdbc_type_info(client, tokens):
    rows = _command_rows(client, bearer_options(tokens["eu_analyst"]["secret"]), fp.command_get_xdbc_type_info())
    assert sorted(r["type_name"] for r in rows) == sorted([
        "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE", "DECIMAL", "VARCHAR",
        "VARBINARY", "DATE", "TIME", "TIMESTAMP", "INTERVAL"])


def test_get_primary_keys_empty(client, tokens):
    options = bearer_options(tokens["eu_analyst"]["secret"])
    assert _command_rows(client, options, fp.command_get_primary_keys("lake", "sales", "orders")) == []
