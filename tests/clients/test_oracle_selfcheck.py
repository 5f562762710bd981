"""Checks of the test machinery itself (no sluice needed): the lake fixture,
the DuckDB secure-view builder against a pure-Python reading of DESIGN §4,
the result comparator and the hand-written protobuf encoding.

If the oracle were wrong, the oracle tests would prove nothing; these tests
pin it to an independent implementation.
"""

from __future__ import annotations


import pyarrow as pa
import pytest

import flight_proto
import lake_counts
from compare import ENGINE_TYPE_DIFFERENCES, diff_results, engine_types_match
from fixtures import TABLE_CLASSES
from policy_views import build_oracle_db, grant_specificity, mask_expr, mask_hash, register_udfs
from oracle import Oracle, mentions
from oracle_queries import EXPECTED_OUTCOMES, QUERIES, probe_queries
from tokens import ORACLE_TOKENS, PROBES


def _sha(v):
    return mask_hash(v)


def _partial(v, a, b):
    if v is None:
        return None
    n = len(v)
    if n <= a + b:
        return "*" * n
    return v[:a] + "*" * (n - a - b) + v[n - b:]


def _ok_sens(r, max_s):
    return r["sensitivity"] is not None and r["sensitivity"] <= max_s


# Pure-Python reference: per oracle token and table, (row filter, column -> value function).
REFERENCE = {
    "rowrule_hash_deny": {
        "lake.sales.orders": (
            lambda r: _ok_sens(r, 2) and r["region"] == "eu" and r["amount"] is not None and not r["amount"] > 10000,
            {
                "order_id": None, "region": None, "customer_id": None,
                "customer_email": lambda r: _sha(r["customer_email"]),
                "amount": None, "created_at": None,
            },
        ),
        "lake.sales.customers": (lambda r: True, {"customer_id": None, "name": None, "country": None}),
    },
    "clearance_partial": {
        "lake.sales.orders": (
            lambda r: _ok_sens(r, 1),
            {
                "order_id": None, "region": None, "customer_id": None,
                "customer_email": lambda r: _partial(r["customer_email"], 2, 4),
                "amount": None, "sensitivity": None, "attachment": None,
            },
        ),
        "lake.sales.customers": (
            lambda r: True,
            {
                "customer_id": None,
                "name": lambda r: _partial(r["name"], 1, 1),
                "country": None,
                "tier": lambda r: "[REDACTED]",
            },
        ),
    },
    "glob_deny_null": {
        "lake.sales.orders": (
            lambda r: _ok_sens(r, 1) and r["customer_id"] is not None and r["customer_id"] % 7 != 0,
            {c: None for c in ["order_id", "region", "customer_id", "customer_email", "amount",
                               "sensitivity", "embedding", "created_at"]},
        ),
        "lake.sales.customers": (
            lambda r: r["customer_id"] % 7 != 0,
            {c: None for c in ["customer_id", "name", "country", "tier"]},
        ),
    },
    "multi_allow_redact": {
        "lake.sales.orders": (
            lambda r: _ok_sens(r, 3)
            and (r["region"] == "us" or (r["amount"] is not None and r["amount"] < 100))
            and r["sensitivity"] != 3,
            {
                "order_id": None,
                "region": lambda r: "[REDACTED]",
                "customer_id": None,
                "customer_email": lambda r: None,
                "amount": None, "sensitivity": None, "created_at": None,
            },
        ),
        "lake.sales.customers": (
            lambda r: r["tier"] == "gold",
            {"customer_id": None, "name": None, "tier": None},
        ),
    },
}


def _reference_table(rows: list[dict], keep, columns: dict) -> pa.Table:
    out = {c: [] for c in columns}
    for r in rows:
        if not keep(r):
            continue
        for c, f in columns.items():
            out[c].append(r[c] if f is None else f(r))
    return pa.table({c: pa.array(v) if v else pa.array([], pa.null()) for c, v in out.items()})


def test_lake_fixture_shape(lake):
    orders = lake.sources["sales.orders"].to_pylist()
    assert len(orders) == lake_counts.ORDERS_ROWS
    assert {r["region"] for r in orders} == {"eu", "us", "apac", None}
    # the edge cases the policies meet: NULL amounts, amounts above the deny
    # rules' 10000, orders without a customer
    assert sum(r["amount"] is None for r in orders) == 101
    assert sum(r["amount"] is not None and r["amount"] > 10000 for r in orders) == 129
    assert {r["sensitivity"] for r in orders} == {0, 1, 2, 3, None}
    assert sum(r["customer_id"] is None for r in orders) == 96
    assert all(len(r["embedding"]) == 8 for r in orders)
    assert len({r["order_id"] for r in orders}) == len(orders)
    assert lake.sources["sales.customers"].num_rows == lake_counts.CUSTOMERS_ROWS == 200
    assert lake.sources["hr.salaries"].num_rows == lake_counts.SALARIES_ROWS


def test_lake_counts(lake):
    """The counts tests assert (lake_counts.py), recomputed from the rows."""
    want = {name: getattr(lake_counts, name) for name in [*lake_counts.DEFINITIONS, "CUSTOMER_NAMES_DISTINCT"]}
    assert lake_counts.recompute(lake.sources) == want


#: Rows of each oracle token's secure views (the reference below must match
#: them): some rows of every table, and fewer orders than the table holds.
VIEW_ROWS = {
    ("rowrule_hash_deny", "lake.sales.orders"): 944,
    ("rowrule_hash_deny", "lake.sales.customers"): 200,
    ("clearance_partial", "lake.sales.orders"): 2140,
    ("clearance_partial", "lake.sales.customers"): 200,
    ("glob_deny_null", "lake.sales.orders"): 1797,
    ("glob_deny_null", "lake.sales.customers"): 172,
    ("multi_allow_redact", "lake.sales.orders"): 926,
    ("multi_allow_redact", "lake.sales.customers"): 52,
}


@pytest.mark.parametrize("token_key", sorted(REFERENCE))
def test_secure_views_match_python_reference(lake, token_key):
    db = build_oracle_db(ORACLE_TOKENS[token_key], lake.sources, TABLE_CLASSES)
    try:
        assert set(db.views) == set(REFERENCE[token_key])
        for fq, (keep, columns) in REFERENCE[token_key].items():
            ident = fq.split(".", 1)[1]
            want = _reference_table(lake.sources[ident].to_pylist(), keep, columns)
            got = db.con.sql(f"SELECT * FROM {fq}").to_arrow_table()
            assert got.num_rows == VIEW_ROWS[(token_key, fq)], f"{token_key} {fq}: {got.num_rows} rows"
            # values only: the reference's types are what pyarrow infers from Python values
            diff = diff_results(got, want, ordered=False, check_names=True, types=None)
            assert diff is None, f"{token_key} {fq}: {diff}"
    finally:
        db.close()


def test_expected_outcomes_are_the_secure_views(lake):
    """oracle_queries.EXPECTED_OUTCOMES, recomputed with DuckDB alone: the
    queries the secure views answer or refuse, and the probes that name a
    hidden column (refused) or not (compared)."""
    oracle = Oracle(ORACLE_TOKENS, lake.sources, TABLE_CLASSES, run_sluice=None)
    try:
        got = {}
        for tok in ORACLE_TOKENS:
            answered = sum(isinstance(oracle.run_duckdb(tok, q.sql), pa.Table) for q in QUERIES)
            probes = {"compared": 0, "refused": 0}
            for table, predicate in PROBES.get(tok, []):
                hidden = oracle.db(tok).views[table].hidden_columns
                outcome = "refused" if any(mentions(predicate, c) for c in hidden) else "compared"
                probes[outcome] += len(probe_queries(table, predicate))
            got[tok] = {"queries": (answered, len(QUERIES) - answered),
                        "probes": (probes["compared"], probes["refused"])}
    finally:
        oracle.close()
    assert got == EXPECTED_OUTCOMES


def test_every_token_hides_rows_and_columns(lake):
    for key, token in ORACLE_TOKENS.items():
        db = build_oracle_db(token, lake.sources, TABLE_CLASSES)
        try:
            assert "lake.hr.salaries" not in db.views
            assert db.hidden_columns, f"{key} hides no column"
        finally:
            db.close()


def test_mask_expressions_in_duckdb():
    import duckdb

    con = duckdb.connect()
    register_udfs(con)
    values = ["alice@example.com", "zoë", "ab", "", None, "o'brien"]
    t = pa.table({"v": pa.array(values, pa.string())})
    con.register("t", t)
    got = con.sql(f"SELECT {mask_expr('v', 'hash', pa.string())} FROM t").fetchall()
    assert [g[0] for g in got] == [_sha(v) for v in values]
    for a, b in [(2, 4), (1, 1), (0, 0), (3, 0), (0, 2)]:
        got = con.sql(f"SELECT {mask_expr('v', f'partial({a},{b})', pa.string())} FROM t").fetchall()
        assert [g[0] for g in got] == [_partial(v, a, b) for v in values], (a, b)
    got = con.sql(f"SELECT {mask_expr('v', 'redact', pa.string())} FROM t").fetchall()
    assert [g[0] for g in got] == ["[REDACTED]"] * len(values)
    got = con.sql(f"SELECT {mask_expr('v', 'null', pa.string())} FROM t").fetchall()
    assert [g[0] for g in got] == [None] * len(values)


def test_grant_specificity():
    assert grant_specificity("lake.sales.orders", "lake.sales.orders") > grant_specificity("lake.sales.*", "lake.sales.orders")
    assert grant_specificity("lake.sales.*", "lake.sales.orders") > grant_specificity("lake.*", "lake.sales.orders")
    assert grant_specificity("lake.sales.*", "lake.salesx.orders") is None
    assert grant_specificity("lake.sales.orders", "lake.sales.orders2") is None


def test_compare_detects_differences():
    a = pa.table({"x": [1, 2, 3], "y": [1.0, 2.0, None]})
    assert diff_results(a, a, ordered=True, check_names=True) is None
    shuffled = pa.table({"x": [3, 1, 2], "y": [None, 1.0, 2.0]})
    assert diff_results(shuffled, a, ordered=False, check_names=True) is None
    assert diff_results(shuffled, a, ordered=True, check_names=True) is not None
    near = pa.table({"x": [1, 2, 3], "y": [1.0 + 1e-12, 2.0, None]})
    assert diff_results(near, a, ordered=True, check_names=True) is None
    off = pa.table({"x": [1, 2, 3], "y": [1.001, 2.0, None]})
    assert diff_results(off, a, ordered=True, check_names=True) is not None
    dup = pa.table({"x": [1, 1, 3], "y": [1.0, 1.0, None]})
    assert diff_results(dup, a, ordered=False, check_names=True) is not None
    null_vs_value = pa.table({"x": [1, 2, 3], "y": [1.0, 2.0, 0.0]})
    assert diff_results(null_vs_value, a, ordered=False, check_names=True) is not None
    renamed = a.rename_columns(["x", "z"])
    assert diff_results(renamed, a, ordered=True, check_names=True) is not None
    assert diff_results(renamed, a, ordered=True, check_names=False) is None
    assert diff_results(a.select(["x"]), a, ordered=True, check_names=False) is not None
    ints = pa.table({"n": pa.array([5], pa.int32())})
    bigs = pa.table({"n": pa.array([5], pa.decimal128(38, 0))})
    # the values are equal; the types are no allowed engine difference
    assert diff_results(ints, bigs, ordered=True, check_names=True, types=None) is None
    assert "column types differ" in diff_results(ints, bigs, ordered=True, check_names=True)
    s = pa.table({"s": ["1"]})
    assert diff_results(s, pa.table({"s": [1]}), ordered=True, check_names=True, types=None) is not None


def test_compare_checks_types():
    """Every listed engine difference passes as sluice-vs-DuckDB (also as a
    list's item type) and fails between two sluice answers; the reverse of
    a listed pair and an unlisted pair fail; list item names do not count."""
    for d in ENGINE_TYPE_DIFFERENCES:
        assert d.reason
        assert engine_types_match(d.sluice, d.duckdb), d
        assert engine_types_match(pa.list_(d.sluice), pa.list_(d.duckdb)), d
        g = pa.table({"c": pa.array([None], d.sluice)})
        w = pa.table({"c": pa.array([None], d.duckdb)})
        assert diff_results(g, w, ordered=True, check_names=True) is None, d
        assert "column types differ" in diff_results(g, w, ordered=True, check_names=True, types="same"), d
    assert not engine_types_match(pa.string(), pa.string_view())
    assert not engine_types_match(pa.float64(), pa.decimal128(12, 2))
    assert not engine_types_match(pa.timestamp("ns"), pa.timestamp("us"))
    assert not engine_types_match(pa.list_(pa.float64()), pa.list_(pa.float32()))
    assert not engine_types_match(pa.list_(pa.float32(), 8), pa.list_(pa.float32(), 4))
    assert engine_types_match(pa.list_(pa.field("element", pa.float32())), pa.list_(pa.field("l", pa.float32())))
    a = pa.table({"x": pa.array([1], pa.int64()), "y": pa.array(["a"], pa.string())})
    b = pa.table({"x": pa.array([1], pa.int64()), "y": pa.array(["a"], pa.large_binary())})
    msg = diff_results(a, b, ordered=True, check_names=True)
    assert msg is not None and "'y'" in msg and "'x'" not in msg, msg


def test_protobuf_encoding():
    assert flight_proto.varint(0) == b"\x00"
    assert flight_proto.varint(300) == b"\xac\x02"
    msg = flight_proto.command_statement_query("SELECT 1")
    type_url, value = flight_proto.unpack_any(msg)
    assert type_url == "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    assert flight_proto.parse_fields(value) == [(1, 2, b"SELECT 1")]
    long_sql = "SELECT " + "x" * 1000
    _, value = flight_proto.unpack_any(flight_proto.command_statement_query(long_sql))
    assert flight_proto.parse_fields(value)[0][2].decode() == long_sql
    _, value = flight_proto.unpack_any(flight_proto.command_get_tables(include_schema=True))
    assert flight_proto.parse_fields(value) == [(5, 0, 1)]
