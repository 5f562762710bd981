"""The npm ``trino-client`` (pinned in tests/clients/npm/package-lock.json,
installed by scripts/test.sh with ``npm ci``) against sluice's Trino
frontend, through tests/clients/npm/query.mjs (Basic auth).

What this client needs (trino-client 0.2.9, dist/index.js): the POST is
sent with axios' default ``Content-Type: application/x-www-form-urlencoded``
(the body is still raw SQL); the client never yields the POST answer, only
pages fetched from ``nextUri``, skipping pages without ``data`` unless they
are the last, so ``columns`` must be on the data pages (or the last page)
and errors must come on a fetched page; ``X-Trino-Set-Catalog`` /
``-Set-Schema`` of any answer become the next requests' defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import lake_counts
from tokens import EU_ANALYST, ORDERS, SALES_READER

NPM_DIR = Path(__file__).resolve().parent / "npm"
SCRIPT = NPM_DIR / "query.mjs"
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node not found: scripts/test.sh installs nodejs/npm", pytrace=False)
    if not (NPM_DIR / "node_modules" / "trino-client").is_dir():
        pytest.fail(f"trino-client not installed: run `npm ci` in {NPM_DIR} (scripts/test.sh does)", pytrace=False)
    return path


@pytest.fixture
def npm_query(node, server, tokens):
    """``npm_query(key, *sql, catalog=None, schema=None, secret=None)`` ->
    the list of per-statement results printed by query.mjs."""

    def run(key: str | None, *statements: str, catalog=None, schema=None, secret=None, user=None):
        env = dict(os.environ)
        for name, value in (("TRINO_CATALOG", catalog), ("TRINO_SCHEMA", schema), ("TRINO_USER", user)):
            if value:
                env[name] = value
            else:
                env.pop(name, None)
        secret = secret if secret is not None else tokens[key]["secret"]
        res = subprocess.run(
            [node, str(SCRIPT), server.http_base, secret, *statements],
            capture_output=True, text=True, timeout=TIMEOUT_S, cwd=NPM_DIR, env=env,
        )
        assert res.returncode == 0, f"query.mjs exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
        return json.loads(res.stdout)["results"]

    return run


def test_query(npm_query, expect):
    sql = f"SELECT order_id, region, customer_email, amount FROM {ORDERS} WHERE order_id < 600 ORDER BY order_id"
    (res,) = npm_query("eu_analyst", sql)
    assert res["error"] is None, res["error"]
    assert res["columns"] == [
        {"name": "order_id", "type": "bigint"}, {"name": "region", "type": "varchar"},
        {"name": "customer_email", "type": "varchar"}, {"name": "amount", "type": "double"},
    ]
    want = expect(EU_ANALYST, sql).to_pylist()
    assert len(want) == lake_counts.EU_ANALYST_ID_LT_600
    assert [r[0] for r in res["rows"]] == [w["order_id"] for w in want]
    assert [r[2] for r in res["rows"]] == [w["customer_email"] for w in want]
    assert [r[3] for r in res["rows"]] == pytest.approx([w["amount"] for w in want])


def test_row_limit(npm_query):
    (res,) = npm_query("sales_reader", f"SELECT order_id FROM {ORDERS}")
    assert res["error"] is None, res["error"]
    assert len(res["rows"]) == SALES_READER["row_limit"]


def test_empty_result_has_columns(npm_query):
    (res,) = npm_query("eu_analyst", f"SELECT order_id FROM {ORDERS} WHERE order_id < 0")
    assert res["error"] is None, res["error"]
    assert res["rows"] == []
    assert res["columns"] == [{"name": "order_id", "type": "bigint"}]


def test_hidden_table_error(npm_query):
    hidden, missing = npm_query("eu_analyst", "SELECT * FROM lake.hr.salaries", "SELECT * FROM lake.hr.nope")
    for res in (hidden, missing):
        assert res["rows"] == []
        assert res["error"], f"the npm client saw no error (errors must come on a nextUri page): {res}"
        assert res["error"].get("errorName") == "TABLE_NOT_FOUND", res["error"]
        assert res["error"]["errorType"] == "USER_ERROR"
    assert hidden["error"]["message"].replace("salaries", "<t>") == missing["error"]["message"].replace("nope", "<t>")


def test_hidden_column_error(npm_query):
    (res,) = npm_query("eu_analyst", f"SELECT sensitivity FROM {ORDERS}")
    assert res["error"], res
    assert res["error"].get("errorName") == "COLUMN_NOT_FOUND", res["error"]


def test_metadata(npm_query):
    schemas, tables, columns, info = npm_query(
        "eu_analyst",
        "SHOW SCHEMAS FROM lake",
        "SHOW TABLES FROM lake.sales",
        "SHOW COLUMNS FROM lake.sales.orders",
        "SELECT table_schema, table_name FROM lake.information_schema.tables WHERE table_schema <> 'information_schema'",
    )
    for res in (schemas, tables, columns, info):
        assert res["error"] is None, res
    assert {r[0] for r in schemas["rows"]} - {"information_schema"} == {"sales"}
    assert tables["rows"] == [["orders"]]
    assert [(r[0], r[1]) for r in columns["rows"]] == [
        ("order_id", "bigint"), ("region", "varchar"), ("customer_email", "varchar"), ("amount", "double")]
    assert info["rows"] == [["sales", "orders"]]


def test_use_applies_to_next_statements(npm_query):
    use, count, show = npm_query("sales_reader", "USE lake.sales", "SELECT count(*) FROM customers", "SHOW TABLES")
    assert use["error"] is None, use
    assert count["error"] is None, count
    assert count["rows"] == [[lake_counts.CUSTOMERS_ROWS]], count
    assert sorted(r[0] for r in show["rows"]) == ["customers", "orders"]


def test_catalog_schema_options(npm_query):
    (res,) = npm_query("sales_reader", "SELECT count(*) FROM orders", catalog="lake", schema="sales")
    assert res["error"] is None, res
    assert res["rows"] == [[lake_counts.READER_ORDERS]], res


def test_bad_password_is_401(npm_query):
    (res,) = npm_query(None, "SELECT 1", secret="slc_not-a-real-token")
    assert res["error"], res
    assert res["error"]["httpStatus"] == 401, res
    assert res["error"]["wwwAuthenticate"] == 'Basic realm="Trino"'


def test_user_name_grants_nothing(npm_query):
    (res,) = npm_query("eu_analyst", "SELECT * FROM lake.sales.customers", user="admin")
    assert res["error"], res
    assert res["error"].get("errorName") == "TABLE_NOT_FOUND", res
