"""The ADBC Flight SQL driver against sluice (DESIGN §5): queries with both
auth styles, bound parameters, metadata calls (get_objects,
get_table_schema, get_table_types, get_info) scoped to the token."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

import lake_counts
from compare import diff_results
from harness import adbc_query
from policy_views import mask_hash
from tokens import EU_ANALYST, SALES_READER

ORDERS = "lake.sales.orders"
EU_COLUMNS = {"order_id", "region", "amount", "customer_email"}
#: sales.* with columns "*": every column but the attachment and vector ones.
READER_ORDER_COLUMNS = {"order_id", "region", "customer_id", "customer_email", "amount", "sensitivity", "created_at"}
CUSTOMER_COLUMNS = {"customer_id", "name", "country", "tier"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _ids(t: pa.Table) -> list[int]:
    return sorted(t.column("order_id").to_pylist())


@pytest.mark.parametrize("mode", ["bearer", "basic"])
def test_query_matches_secure_view(conns, expect, mode):
    sql = f"SELECT order_id, region, amount, customer_email FROM {ORDERS}"
    got = conns.query("eu_analyst", sql, mode=mode)
    want = expect(EU_ANALYST, sql)
    assert got.num_rows == want.num_rows == lake_counts.EU_ANALYST_ORDERS
    assert diff_results(got, want, ordered=False, check_names=True) is None


def test_select_without_table(conns):
    t = conns.query("eu_analyst", "SELECT 1 AS one, 'a' AS s")
    assert t.to_pylist() == [{"one": 1, "s": "a"}]


def test_hash_mask_values(conns, lake):
    got = conns.query("eu_analyst", f"SELECT order_id, customer_email FROM {ORDERS}")
    source = {r["order_id"]: r["customer_email"] for r in lake.sources["sales.orders"].to_pylist()}
    assert got.num_rows == lake_counts.EU_ANALYST_ORDERS
    n_hashed = 0
    for row in got.to_pylist():
        raw = source[row["order_id"]]
        if raw is None:
            assert row["customer_email"] is None
        else:
            assert HEX64.match(row["customer_email"]), row
            assert row["customer_email"] == mask_hash(raw)
            n_hashed += 1
    assert n_hashed == lake_counts.EU_ANALYST_EMAILS


def test_rows_respect_rules(conns, lake):
    got = conns.query("eu_analyst", f"SELECT order_id, region, amount FROM {ORDERS}")
    assert got.num_rows == lake_counts.EU_ANALYST_ORDERS
    assert set(got.column("region").to_pylist()) == {"eu"}
    assert all(a is not None and a <= 10000 for a in got.column("amount").to_pylist())
    sens = {r["order_id"]: r["sensitivity"] for r in lake.sources["sales.orders"].to_pylist()}
    assert all(sens[i] is not None and sens[i] <= 2 for i in got.column("order_id").to_pylist())


def test_star_expands_to_granted_columns(conns):
    t = conns.query("eu_analyst", f"SELECT * FROM {ORDERS} WHERE order_id < 100")
    assert set(t.column_names) == EU_COLUMNS
    t = conns.query("sales_reader", f"SELECT * FROM {ORDERS} WHERE order_id < 100")
    assert set(t.column_names) == READER_ORDER_COLUMNS


def test_types_round_trip(conns, lake):
    t = conns.query("sales_reader", f"SELECT order_id, amount, sensitivity, created_at FROM {ORDERS} WHERE order_id <= 50")
    assert pa.types.is_int64(t.schema.field("order_id").type)
    assert pa.types.is_float64(t.schema.field("amount").type)
    assert pa.types.is_integer(t.schema.field("sensitivity").type)
    assert pa.types.is_timestamp(t.schema.field("created_at").type)
    src = {r["order_id"]: r for r in lake.sources["sales.orders"].to_pylist()}
    assert t.num_rows == lake_counts.READER_ID_LE_50
    for row in t.to_pylist():
        s = src[row["order_id"]]
        assert row["amount"] == s["amount"]
        assert row["sensitivity"] == s["sensitivity"]
        assert row["created_at"].replace(tzinfo=None) == s["created_at"]


# --- parameters --------------------------------------------------------------------

def _visible_and_hidden_ids(expect, lake):
    visible = _ids(expect(EU_ANALYST, f"SELECT order_id FROM {ORDERS}"))
    all_ids = lake.sources["sales.orders"].column("order_id").to_pylist()
    hidden = sorted(set(all_ids) - set(visible))
    return visible, hidden


def test_parameter_int(conns, expect, lake):
    visible, hidden = _visible_and_hidden_ids(expect, lake)
    sql = f"SELECT order_id, amount FROM {ORDERS} WHERE order_id = ?"
    t = conns.query("eu_analyst", sql, (visible[0],))
    assert t.column("order_id").to_pylist() == [visible[0]]
    # A hidden row is not reachable through a parameter either.
    t = conns.query("eu_analyst", sql, (hidden[0],))
    assert t.num_rows == 0


def test_parameter_reuse_same_cursor(conns, expect, lake):
    visible, _ = _visible_and_hidden_ids(expect, lake)
    cur = conns.get("eu_analyst").cursor()
    try:
        sql = f"SELECT order_id FROM {ORDERS} WHERE order_id = ?"
        for oid in visible[:3]:
            cur.execute(sql, (oid,))
            assert cur.fetch_arrow_table().column("order_id").to_pylist() == [oid]
    finally:
        cur.close()


def test_parameters_string_and_float(conns, expect):
    sql = f"SELECT order_id FROM {ORDERS} WHERE region = ? AND amount > ?"
    got = conns.query("eu_analyst", sql, ("eu", 2500.0))
    want = expect(EU_ANALYST, f"SELECT order_id FROM {ORDERS} WHERE region = 'eu' AND amount > 2500.0")
    assert _ids(got) == _ids(want) and got.num_rows == lake_counts.EU_ANALYST_AMOUNT_GT_2500
    assert conns.query("eu_analyst", sql, ("us", 0.0)).num_rows == 0


def test_parameter_on_masked_column_sees_hash(conns, lake, expect):
    visible, _ = _visible_and_hidden_ids(expect, lake)
    src = {r["order_id"]: r["customer_email"] for r in lake.sources["sales.orders"].to_pylist()}
    oid = next(i for i in visible if src[i] is not None)
    email = src[oid]
    sql = f"SELECT order_id FROM {ORDERS} WHERE customer_email = ?"
    assert conns.query("eu_analyst", sql, (email,)).num_rows == 0
    hashed = mask_hash(email)
    assert oid in conns.query("eu_analyst", sql, (hashed,)).column("order_id").to_pylist()


def test_error_then_connection_still_usable(conns):
    conn = conns.get("eu_analyst")
    with pytest.raises(Exception):
        adbc_query(conn, "SELEC nonsense FROM")
    assert adbc_query(conn, "SELECT 1 AS x").to_pylist() == [{"x": 1}]


def test_row_limit_caps_adbc_results(conns):
    t = conns.query("sales_reader", f"SELECT order_id FROM {ORDERS}")
    assert t.num_rows == SALES_READER["row_limit"] == 1000


def test_explain_is_allowed(conns):
    t = conns.query("eu_analyst", f"EXPLAIN SELECT count(*) FROM {ORDERS}")
    assert t.column("plan_type").to_pylist() == ["logical_plan", "physical_plan"]


# --- metadata -------------------------------------------------------------------------

def _objects(conn) -> dict[tuple[str, str, str], list[str]]:
    """get_objects(depth=all) flattened: (catalog, schema, table) -> columns."""
    data = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    out = {}
    for cat in data:
        for sch in cat["catalog_db_schemas"] or []:
            for tbl in sch["db_schema_tables"] or []:
                cols = [c["column_name"] for c in (tbl["table_columns"] or [])]
                out[(cat["catalog_name"], sch["db_schema_name"], tbl["table_name"])] = cols
    return out


def _user_tables(objects: dict) -> dict:
    """Drop information_schema views (DataFusion's own; scoped separately)."""
    return {k: v for k, v in objects.items() if k[1] != "information_schema"}


def test_get_objects_only_granted(conns):
    objs = _user_tables(_objects(conns.get("eu_analyst")))
    assert set(objs) == {("lake", "sales", "orders")}
    assert set(objs[("lake", "sales", "orders")]) == EU_COLUMNS

    objs = _user_tables(_objects(conns.get("sales_reader")))
    assert set(objs) == {("lake", "sales", "orders"), ("lake", "sales", "customers")}
    assert set(objs[("lake", "sales", "orders")]) == READER_ORDER_COLUMNS
    assert set(objs[("lake", "sales", "customers")]) == CUSTOMER_COLUMNS


def test_get_objects_hides_ungranted_schema(conns):
    data = conns.get("eu_analyst").adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    schemas = {(c["catalog_name"], s["db_schema_name"]) for c in data for s in (c["catalog_db_schemas"] or [])}
    assert ("lake", "hr") not in schemas
    assert ("lake", "sales") in schemas


def test_get_objects_filters(conns):
    conn = conns.get("sales_reader")
    data = conn.adbc_get_objects(
        depth="tables", catalog_filter="lake", db_schema_filter="sales", table_name_filter="ord%"
    ).read_all().to_pylist()
    tables = [t["table_name"] for c in data for s in (c["catalog_db_schemas"] or []) for t in (s["db_schema_tables"] or [])]
    assert tables == ["orders"]
    data = conn.adbc_get_objects(depth="tables", db_schema_filter="hr").read_all().to_pylist()
    tables = [t["table_name"] for c in data for s in (c["catalog_db_schemas"] or []) for t in (s["db_schema_tables"] or [])]
    assert tables == []


def test_get_table_schema(conns):
    schema = conns.get("eu_analyst").adbc_get_table_schema("orders", catalog_filter="lake", db_schema_filter="sales")
    assert set(schema.names) == EU_COLUMNS
    assert pa.types.is_int64(schema.field("order_id").type)
    schema = conns.get("sales_reader").adbc_get_table_schema("customers", catalog_filter="lake", db_schema_filter="sales")
    assert set(schema.names) == CUSTOMER_COLUMNS


def test_get_table_schema_ungranted_is_not_found(conns):
    conn = conns.get("eu_analyst")
    errors = []
    for table, schema in [("salaries", "hr"), ("nope", "hr"), ("customers", "sales")]:
        with pytest.raises(Exception) as exc:
            conn.adbc_get_table_schema(table, catalog_filter="lake", db_schema_filter=schema)
        msg = str(exc.value)
        for word, repl in ((table, "<T>"), (schema, "<S>")):
            msg = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", repl, msg)
        errors.append(msg)
    assert errors[0] == errors[1] == errors[2], errors


def test_get_table_types(conns):
    types = conns.get("eu_analyst").adbc_get_table_types()
    assert sorted(types) == ["LOCAL TEMPORARY", "TABLE", "VIEW"]


def test_get_info(conns):
    info = conns.get("eu_analyst").adbc_get_info()
    assert info.get("vendor_name") == "sluice", info
    assert info.get("driver_name") == "ADBC Flight SQL Driver - Go", info


def test_get_info_with_handshake_auth(conns):
    info = conns.get("eu_analyst", "basic").adbc_get_info()
    assert info.get("vendor_name") == "sluice", info
