"""The ``trino`` SQLAlchemy dialect (trino 0.340, SQLAlchemy 2.x) and
``pandas.read_sql`` against sluice's Trino frontend. The dialect reflects
through ``information_schema`` with bound parameters (EXECUTE IMMEDIATE …
USING), relying on the session catalog from the URL's database part.

What the dialect sends (trino/sqlalchemy/dialect.py): get_schema_names ->
``SELECT "schema_name" FROM "information_schema"."schemata"``;
get_table_names -> ``… "information_schema"."tables" WHERE "table_schema"
= ? AND "table_type" = 'BASE TABLE'``; has_table -> the same without the
type; get_columns -> has_table, then ``SELECT "column_name", "data_type",
"column_default", UPPER("is_nullable") AS "is_nullable", "comment" FROM
"information_schema"."columns" WHERE "table_schema" = ? AND "table_name" =
? ORDER BY "ordinal_position" ASC`` (so ``columns`` needs a ``comment``
column too); get_view_names -> ``tables`` with table_type 'VIEW'.
"""

from __future__ import annotations

import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from sqlalchemy import exc, inspect
from sqlalchemy.engine import URL

import lake_counts
from tokens import EU_ANALYST, ORDERS, SALES_READER
from trino_harness import TEST_USER, trino_auth

EU_COLUMNS = ["order_id", "region", "customer_email", "amount"]
READER_ORDER_TYPES = {
    "order_id": sa.BIGINT, "region": sa.VARCHAR, "customer_id": sa.BIGINT, "customer_email": sa.VARCHAR,
    "amount": sa.Float, "sensitivity": sa.INTEGER, "created_at": sa.TIMESTAMP,
}


def _engine(server, secret: str, mode: str = "basic", database: str = "lake") -> sa.Engine:
    return sa.create_engine(
        f"trino://{TEST_USER}@127.0.0.1:{server.http_port}/{database}",
        connect_args={"auth": trino_auth(secret, mode), "http_scheme": "http", "allow_insecure_auth": True},
    )


@pytest.fixture(scope="module")
def engines(server, tokens):
    made: dict[tuple[str, str], sa.Engine] = {}

    def get(key: str, mode: str = "basic") -> sa.Engine:
        if (key, mode) not in made:
            made[(key, mode)] = _engine(server, tokens[key]["secret"], mode)
        return made[(key, mode)]

    yield get
    for e in made.values():
        e.dispose()


@pytest.mark.parametrize("key,want", [("eu_analyst", {"sales"}), ("sales_reader", {"sales"})])
def test_schema_names(engines, key, want):
    names = inspect(engines(key)).get_schema_names()
    assert {n for n in names if n != "information_schema"} == want
    assert "hr" not in names


@pytest.mark.parametrize(
    "key,want", [("eu_analyst", ["orders"]), ("sales_reader", ["customers", "orders"])]
)
def test_table_names(engines, key, want):
    insp = inspect(engines(key))
    assert sorted(insp.get_table_names(schema="sales")) == want
    assert insp.get_table_names(schema="hr") == []
    assert insp.get_view_names(schema="sales") == []


def test_has_table(engines):
    insp = inspect(engines("eu_analyst"))
    assert insp.has_table("orders", schema="sales")
    assert not insp.has_table("customers", schema="sales")
    assert not insp.has_table("salaries", schema="hr")
    assert not insp.has_table("nope", schema="sales")
    assert inspect(engines("sales_reader")).has_table("customers", schema="sales")


def test_columns_eu(engines):
    cols = inspect(engines("eu_analyst")).get_columns("orders", schema="sales")
    assert [c["name"] for c in cols] == EU_COLUMNS
    types = {c["name"]: c["type"] for c in cols}
    assert isinstance(types["order_id"], sa.BIGINT)
    assert isinstance(types["region"], sa.VARCHAR)
    assert isinstance(types["customer_email"], sa.VARCHAR)
    assert isinstance(types["amount"], sa.Float)
    for c in cols:
        assert isinstance(c["nullable"], bool)


def test_columns_reader(engines):
    cols = inspect(engines("sales_reader")).get_columns("orders", schema="sales")
    assert [c["name"] for c in cols] == list(READER_ORDER_TYPES)
    for c in cols:
        assert isinstance(c["type"], READER_ORDER_TYPES[c["name"]]), (c["name"], c["type"])
    created = next(c for c in cols if c["name"] == "created_at")
    assert getattr(created["type"], "precision", None) == 6
    cust = inspect(engines("sales_reader")).get_columns("customers", schema="sales")
    assert [c["name"] for c in cust] == ["customer_id", "name", "country", "tier"]


@pytest.mark.parametrize("table,schema", [("salaries", "hr"), ("customers", "sales"), ("nope", "sales")])
def test_columns_of_hidden_table(engines, table, schema):
    with pytest.raises(exc.NoSuchTableError):
        inspect(engines("eu_analyst")).get_columns(table, schema=schema)


def test_core_select(engines, expect):
    engine = engines("eu_analyst", "bearer")
    orders = sa.Table(
        "orders", sa.MetaData(),
        sa.Column("order_id", sa.BIGINT), sa.Column("region", sa.VARCHAR),
        sa.Column("customer_email", sa.VARCHAR), sa.Column("amount", sa.Float),
        schema="sales",
    )
    stmt = (sa.select(orders.c.order_id, orders.c.amount)
            .where(orders.c.region == "eu", orders.c.amount > 2500)
            .order_by(orders.c.order_id)
            .limit(50))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    want = expect(EU_ANALYST, f"SELECT order_id, amount FROM {ORDERS} WHERE region = 'eu' AND amount > 2500 "
                              "ORDER BY order_id LIMIT 50")
    assert [tuple(r) for r in rows] == [(r["order_id"], r["amount"]) for r in want.to_pylist()]
    assert len(rows) == 50  # the LIMIT (446 rows match)


def test_table_autoload(engines):
    """``Table(..., autoload_with=engine)`` reflects columns, then asks
    for the table comment from ``system.metadata.table_comments`` (the
    dialect tolerates only PERMISSION_DENIED there, and only unwrapped) and
    for partitions from ``"orders$partitions"`` (any error tolerated)."""
    engine = engines("eu_analyst")
    orders = sa.Table("orders", sa.MetaData(), autoload_with=engine, schema="sales")
    assert [c.name for c in orders.columns] == EU_COLUMNS
    with pytest.raises(exc.NoSuchTableError):
        sa.Table("salaries", sa.MetaData(), autoload_with=engine, schema="hr")


def test_text_query_with_bound_parameters(engines):
    with engines("sales_reader").connect() as conn:
        n = conn.execute(sa.text(f"SELECT count(*) FROM {ORDERS} WHERE region = :r AND amount > :a"),
                         {"r": "us", "a": 100.0}).scalar()
    assert n == lake_counts.READER_US_AMOUNT_GT_100


def test_pandas_read_sql(engines, expect):
    sql = f"SELECT order_id, region, amount FROM {ORDERS} WHERE order_id < 800 ORDER BY order_id"
    df = pd.read_sql(sql, engines("eu_analyst"))
    want = expect(EU_ANALYST, sql).to_pandas()
    assert list(df.columns) == ["order_id", "region", "amount"]
    assert df["order_id"].tolist() == want["order_id"].tolist()
    assert df["region"].tolist() == want["region"].tolist()
    assert df["amount"].tolist() == pytest.approx(want["amount"].tolist(), rel=1e-12, nan_ok=True)
    assert len(df) == lake_counts.EU_ANALYST_ID_LT_800


def test_pandas_read_sql_truncated_to_row_limit(engines):
    df = pd.read_sql(f"SELECT order_id FROM {ORDERS}", engines("sales_reader"))
    assert len(df) == SALES_READER["row_limit"]


def test_url_credentials_basic_and_jwt(server, tokens):
    secret = tokens["eu_analyst"]["secret"]
    urls = [
        URL.create("trino", username=TEST_USER, password=secret, host="127.0.0.1", port=server.http_port,
                   database="lake", query={"allow_insecure_auth": "true"}),
        URL.create("trino", username=TEST_USER, host="127.0.0.1", port=server.http_port,
                   database="lake/sales", query={"access_token": secret, "allow_insecure_auth": "true"}),
    ]
    for url in urls:
        engine = sa.create_engine(url)
        try:
            assert inspect(engine).get_table_names(schema="sales") == ["orders"]
            with engine.connect() as conn:
                assert conn.execute(sa.text(f"SELECT count(*) FROM {ORDERS}")).scalar() == lake_counts.EU_ANALYST_ORDERS
        finally:
            engine.dispose()


def test_schema_in_url_gives_unqualified_names(server, tokens):
    engine = _engine(server, tokens["sales_reader"]["secret"], database="lake/sales")
    try:
        assert sorted(inspect(engine).get_table_names()) == ["customers", "orders"]
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == lake_counts.CUSTOMERS_ROWS
    finally:
        engine.dispose()


def test_server_version(engines, server):
    """version() through the dialect: the version /v1/info reports ("sluice-<version>")."""
    with engines("eu_analyst").connect() as conn:
        version = conn.execute(sa.text("SELECT version()")).scalar()
    info = requests.get(f"{server.http_base}/v1/info", timeout=30).json()
    assert info["nodeVersion"]["version"] == f"sluice-{version}", (version, info)
