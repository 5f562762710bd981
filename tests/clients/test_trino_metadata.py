"""Trino metadata over sluice's Trino frontend, scoped to the token
(DESIGN §4.1-4.2, §5): SHOW CATALOGS / SCHEMAS / TABLES / COLUMNS,
DESCRIBE, ``lake.information_schema.{schemata,tables,columns,views}``,
``system.jdbc.{catalogs,schemas,tables,columns}`` and ``version()``.

The expected visible tables and columns (in table order) come from
``policy_views.table_view`` (the oracle's reading of §4, independent of
sluice); the expected Trino type strings from the lake's Arrow schemas.
Tokens: ``eu_analyst`` (lake.sales.orders, 4 columns), ``sales_reader``
(lake.sales.*, no attachment/vector columns), two oracle tokens (one sees
``embedding`` array(real), one ``attachment`` varbinary), and the admin
token, which sees lake.hr too (so hiding it from the others means
something).
"""

from __future__ import annotations

import re

import pytest
import requests
import trino.exceptions as te

from fixtures import TABLE_CLASSES
from policy_views import table_view
from tokens import EU_ANALYST, ORACLE_TOKENS, SALES_READER
from trino_harness import error_of, jdbc_type_of, run_dbapi, trino_connect, trino_type_of

TOKENS = ["eu_analyst", "sales_reader", "glob_deny_null", "clearance_partial"]
BODIES = {"eu_analyst": EU_ANALYST, "sales_reader": SALES_READER, **ORACLE_TOKENS}
TABLES = ["sales.orders", "sales.customers", "hr.salaries"]


@pytest.fixture(scope="module")
def visible(lake):
    """token key -> {(schema, table): [(column, trino type), ...] in table order}."""
    out = {}
    for key in TOKENS:
        tables = {}
        for ident in TABLES:
            view = table_view(BODIES[key], ident, lake.sources[ident], TABLE_CLASSES.get(ident))
            if view is None:
                continue
            src = lake.sources[ident].schema
            schema, table = ident.split(".")
            tables[(schema, table)] = [(c, trino_type_of(src.field(c).type)) for c in view.columns]
        out[key] = tables
    return out


def test_expectations_cover_the_interesting_cases(visible):
    """Sanity of the fixtures the assertions below rely on."""
    assert set(visible["eu_analyst"]) == {("sales", "orders")}
    assert [c for c, _ in visible["eu_analyst"][("sales", "orders")]] == [
        "order_id", "region", "customer_email", "amount"]
    assert set(visible["sales_reader"]) == {("sales", "orders"), ("sales", "customers")}
    assert ("embedding", "array(real)") in visible["glob_deny_null"][("sales", "orders")]
    assert ("attachment", "varbinary") in visible["clearance_partial"][("sales", "orders")]
    for key in TOKENS:
        assert ("hr", "salaries") not in visible[key]


def _q(trino_conns, key, sql):
    return trino_conns.query(key, sql)


def _rows(trino_conns, key, sql):
    return trino_conns.rows(key, sql)


def _names(desc):
    return [d.name for d in desc]


def _user_schemas(values) -> set[str]:
    return {v for v in values if v != "information_schema"}


# --- SHOW ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", TOKENS)
def test_show_catalogs(trino_conns, key):
    desc, rows = _q(trino_conns, key, "SHOW CATALOGS")
    assert _names(desc) == ["Catalog"]
    assert rows == [["lake"], ["system"]], rows


@pytest.mark.parametrize("key", TOKENS)
def test_show_schemas(trino_conns, visible, key):
    want = {s for s, _ in visible[key]}
    desc, rows = _q(trino_conns, key, "SHOW SCHEMAS FROM lake")
    assert _names(desc) == ["Schema"]
    assert _user_schemas(r[0] for r in rows) == want
    assert _rows(trino_conns, key, "SHOW SCHEMAS FROM lake LIKE 's%'") == [["sales"]]
    assert _rows(trino_conns, key, "SHOW SCHEMAS FROM lake LIKE 'h%'") == []


def test_show_schemas_session_catalog(server, tokens):
    conn = trino_connect(server, tokens["eu_analyst"]["secret"], catalog="lake")
    try:
        assert _user_schemas(r[0] for r in run_dbapi(conn, "SHOW SCHEMAS")[1]) == {"sales"}
    finally:
        conn.close()


def test_admin_sees_hr(server):
    conn = trino_connect(server, server.admin_secret)
    try:
        assert _user_schemas(r[0] for r in run_dbapi(conn, "SHOW SCHEMAS FROM lake")[1]) == {"sales", "hr"}
        assert run_dbapi(conn, "SHOW TABLES FROM lake.hr")[1] == [["salaries"]]
        rows = run_dbapi(conn, "SELECT table_schema, table_name FROM lake.information_schema.tables "
                               "WHERE table_schema <> 'information_schema'")[1]
        assert {tuple(r) for r in rows} == {("sales", "orders"), ("sales", "customers"), ("hr", "salaries")}
    finally:
        conn.close()


@pytest.mark.parametrize("key", TOKENS)
def test_show_tables(trino_conns, visible, key):
    want = {t for s, t in visible[key] if s == "sales"}
    desc, rows = _q(trino_conns, key, "SHOW TABLES FROM lake.sales")
    assert _names(desc) == ["Table"]
    assert {r[0] for r in rows} == want and len(rows) == len(want)
    like = _rows(trino_conns, key, "SHOW TABLES FROM lake.sales LIKE 'cust%'")
    assert [r[0] for r in like] == (["customers"] if "customers" in want else [])


def _sub_word(text: str, word: str) -> str:
    return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", "<name>", text)


def _same_modulo_names(msg_a: str, name_a: str, msg_b: str, name_b: str) -> bool:
    """Messages equal once the parts in which the two dotted names differ
    are blanked out."""
    for pa_, pb in zip(name_a.split("."), name_b.split(".")):
        if pa_ != pb:
            msg_a, msg_b = _sub_word(msg_a, pa_), _sub_word(msg_b, pb)
    return msg_a == msg_b


def test_show_tables_of_hidden_schema_like_missing(trino_conns):
    for key in ["eu_analyst", "sales_reader"]:
        outcome = []
        for schema in ["hr", "zz"]:
            try:
                outcome.append(("rows", _rows(trino_conns, key, f"SHOW TABLES FROM lake.{schema}")))
            except te.TrinoQueryError as e:
                outcome.append(("error", e.error_name, _sub_word(e.message, schema)))
        assert outcome == [("error", "SCHEMA_NOT_FOUND", "Schema 'lake.<name>' does not exist")] * 2, outcome


COLUMN_HEADER = ["Column", "Type", "Extra", "Comment"]


@pytest.mark.parametrize("key", TOKENS)
@pytest.mark.parametrize("form", ["SHOW COLUMNS FROM {t}", "DESCRIBE {t}"])
def test_show_columns_and_describe(trino_conns, visible, key, form):
    for (schema, table), cols in visible[key].items():
        desc, rows = _q(trino_conns, key, form.format(t=f"lake.{schema}.{table}"))
        assert _names(desc) == COLUMN_HEADER
        assert [(r[0], r[1]) for r in rows] == cols, (key, table, rows)


@pytest.mark.parametrize("form", ["SHOW COLUMNS FROM {t}", "DESCRIBE {t}"])
@pytest.mark.parametrize(
    "hidden,missing",
    [("lake.hr.salaries", "lake.hr.nope"), ("lake.sales.customers", "lake.sales.nope"),
     ("lake.hr.salaries", "lake.zz.salaries")],
)
def test_describe_hidden_table_like_missing(trino_conns, form, hidden, missing):
    e_hidden = error_of(_q, trino_conns, "eu_analyst", form.format(t=hidden))
    e_missing = error_of(_q, trino_conns, "eu_analyst", form.format(t=missing))
    assert e_hidden.error_name == e_missing.error_name
    if hidden.split(".")[1] == missing.split(".")[1]:
        assert e_hidden.error_name == "TABLE_NOT_FOUND", repr(e_hidden)
    assert _same_modulo_names(e_hidden.message, hidden, e_missing.message, missing), (
        e_hidden.message, e_missing.message)


def test_describe_session_qualified(server, tokens):
    conn = trino_connect(server, tokens["eu_analyst"]["secret"], catalog="lake", schema="sales")
    try:
        rows = run_dbapi(conn, "DESCRIBE orders")[1]
        assert [r[0] for r in rows] == ["order_id", "region", "customer_email", "amount"]
    finally:
        conn.close()


# --- information_schema ----------------------------------------------------------------------

@pytest.mark.parametrize("key", TOKENS)
def test_information_schema_schemata(trino_conns, visible, key):
    desc, rows = _q(trino_conns, key, "SELECT catalog_name, schema_name FROM lake.information_schema.schemata")
    assert _names(desc) == ["catalog_name", "schema_name"]
    assert {r[0] for r in rows} == {"lake"}
    assert _user_schemas(r[1] for r in rows) == {s for s, _ in visible[key]}


@pytest.mark.parametrize("key", TOKENS)
def test_information_schema_tables(trino_conns, visible, key):
    desc, rows = _q(trino_conns, key, "SELECT table_catalog, table_schema, table_name, table_type "
                                      "FROM lake.information_schema.tables")
    assert _names(desc) == ["table_catalog", "table_schema", "table_name", "table_type"]
    user = [tuple(r) for r in rows if r[1] != "information_schema"]
    assert sorted(user) == sorted(("lake", s, t, "BASE TABLE") for s, t in visible[key])
    filtered = _rows(trino_conns, key, "SELECT table_name FROM lake.information_schema.tables "
                                       "WHERE table_schema = 'hr'")
    assert filtered == []


@pytest.mark.parametrize("key", TOKENS)
def test_information_schema_columns(trino_conns, visible, key):
    desc, rows = _q(
        trino_conns, key,
        "SELECT table_catalog, table_schema, table_name, column_name, ordinal_position, column_default, "
        "is_nullable, data_type FROM lake.information_schema.columns "
        "WHERE table_schema <> 'information_schema' ORDER BY table_schema, table_name, ordinal_position",
    )
    assert _names(desc) == ["table_catalog", "table_schema", "table_name", "column_name", "ordinal_position",
                            "column_default", "is_nullable", "data_type"]
    got: dict = {}
    for cat, schema, table, column, pos, default, nullable, data_type in rows:
        assert cat == "lake"
        assert default is None
        assert nullable == "YES"  # every column of the lake is nullable
        got.setdefault((schema, table), []).append((pos, column, data_type))
    assert set(got) == set(visible[key])
    for ident, cols in visible[key].items():
        assert [p for p, _, _ in got[ident]] == list(range(1, len(cols) + 1)), got[ident]
        assert [(c, t) for _, c, t in got[ident]] == cols


def test_information_schema_columns_has_no_hidden_column(trino_conns):
    rows = _rows(trino_conns, "eu_analyst", "SELECT column_name FROM lake.information_schema.columns "
                                            "WHERE table_name = 'orders'")
    names = {r[0] for r in rows}
    assert names == {"order_id", "region", "customer_email", "amount"}
    for hidden in ["sensitivity", "customer_id", "embedding", "attachment", "created_at"]:
        assert _rows(trino_conns, "eu_analyst", "SELECT count(*) FROM lake.information_schema.columns "
                                                f"WHERE column_name = '{hidden}'") == [[0]]


def test_information_schema_views_empty(trino_conns):
    desc, rows = _q(trino_conns, "sales_reader", "SELECT * FROM lake.information_schema.views")
    assert _names(desc) == ["table_catalog", "table_schema", "table_name", "view_definition"]
    assert rows == []


def test_information_schema_with_session_catalog(server, tokens):
    """SQLAlchemy's reflection queries name ``"information_schema"."tables"``
    and rely on the session catalog (X-Trino-Catalog)."""
    conn = trino_connect(server, tokens["eu_analyst"]["secret"], catalog="lake")
    try:
        rows = run_dbapi(conn, 'SELECT "table_name" FROM "information_schema"."tables" '
                               "WHERE \"table_schema\" = 'sales' AND \"table_type\" = 'BASE TABLE'")[1]
        assert rows == [["orders"]]
        rows = run_dbapi(conn, 'SELECT "table_name" FROM "information_schema"."tables" '
                               'WHERE "table_schema" = ? AND "table_name" = ?', ("sales", "orders"))[1]
        assert rows == [["orders"]]
    finally:
        conn.close()


# --- system.jdbc -------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["eu_analyst", "sales_reader"])
def test_jdbc_catalogs_and_schemas(trino_conns, visible, key):
    desc, rows = _q(trino_conns, key, "SELECT table_cat FROM system.jdbc.catalogs")
    assert _names(desc) == ["table_cat"]
    assert rows == [["lake"], ["system"]], rows
    desc, rows = _q(trino_conns, key, "SELECT table_schem, table_catalog FROM system.jdbc.schemas")
    assert _names(desc) == ["table_schem", "table_catalog"]
    lake_schemas = {r[0] for r in rows if r[1] == "lake"}
    assert _user_schemas(lake_schemas) == {s for s, _ in visible[key]}


@pytest.mark.parametrize("key", TOKENS)
def test_jdbc_tables(trino_conns, visible, key):
    desc, rows = _q(trino_conns, key, "SELECT table_cat, table_schem, table_name, table_type, remarks "
                                      "FROM system.jdbc.tables WHERE table_cat = 'lake'")
    assert _names(desc) == ["table_cat", "table_schem", "table_name", "table_type", "remarks"]
    user = [r for r in rows if r[1] != "information_schema"]
    assert sorted((r[1], r[2]) for r in user) == sorted(visible[key])
    assert {r[3] for r in user} == {"TABLE"}, user


@pytest.mark.parametrize("key", TOKENS)
def test_jdbc_columns(trino_conns, visible, key):
    desc, rows = _q(
        trino_conns, key,
        "SELECT table_cat, table_schem, table_name, column_name, data_type, type_name, ordinal_position, "
        "is_nullable FROM system.jdbc.columns WHERE table_cat = 'lake' AND table_schem <> 'information_schema' "
        "ORDER BY table_schem, table_name, ordinal_position",
    )
    assert _names(desc) == ["table_cat", "table_schem", "table_name", "column_name", "data_type", "type_name",
                            "ordinal_position", "is_nullable"]
    got: dict = {}
    for cat, schema, table, column, jdbc, type_name, pos, nullable in rows:
        assert cat == "lake" and nullable == "YES"  # every column of the lake is nullable
        assert jdbc == jdbc_type_of(type_name), (column, jdbc, type_name)
        got.setdefault((schema, table), []).append((pos, column, type_name))
    assert set(got) == set(visible[key])
    for ident, cols in visible[key].items():
        assert [(c, t) for _, c, t in got[ident]] == cols
        assert [p for p, _, _ in got[ident]] == list(range(1, len(cols) + 1))


def test_jdbc_columns_filtered_like_jdbc_drivers(trino_conns):
    rows = _rows(trino_conns, "eu_analyst",
                 "SELECT column_name FROM system.jdbc.columns WHERE table_cat = 'lake' "
                 "AND table_schem LIKE 'sal%' AND table_name LIKE 'orders' AND column_name LIKE '%'")
    assert sorted(r[0] for r in rows) == sorted(["order_id", "region", "customer_email", "amount"])
    assert _rows(trino_conns, "eu_analyst", "SELECT count(*) FROM system.jdbc.columns "
                                            "WHERE table_schem = 'hr'") == [[0]]


# --- consistency and version ---------------------------------------------------------------------

@pytest.mark.parametrize("key", TOKENS)
def test_select_star_order_matches_metadata(trino_conns, visible, key):
    for (schema, table), cols in visible[key].items():
        desc, _ = _q(trino_conns, key, f"SELECT * FROM lake.{schema}.{table} LIMIT 1")
        assert [(d.name, d.type_code) for d in desc] == cols


def test_version(trino_conns, server):
    """version() is the version /v1/info reports ("sluice-<version>")."""
    desc, rows = _q(trino_conns, "eu_analyst", "SELECT version()")
    info = requests.get(f"{server.http_base}/v1/info", timeout=30).json()
    assert len(rows) == 1 and info["nodeVersion"]["version"] == f"sluice-{rows[0][0]}", (rows, info)
    assert desc[0].type_code == "varchar"


def test_type_strings_are_trino_spellings(trino_conns, visible):
    rows = _rows(trino_conns, "glob_deny_null", "SELECT DISTINCT data_type FROM lake.information_schema.columns "
                                                "WHERE table_schema = 'sales'")
    # exactly the Trino types of the token's visible columns
    assert sorted(r[0] for r in rows) == sorted({t for cols in visible["glob_deny_null"].values() for _, t in cols})
    for (t,) in rows:
        assert re.fullmatch(r"[a-z]+(\(.*\))?( with time zone)?", t), t
