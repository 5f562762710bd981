"""The Milvus connector, ``vector_search`` and ``POST /v1/search`` through
real clients: ADBC Flight SQL, the ``trino`` DB-API client and
plain HTTP, against the real Milvus 2.3.5 of the session (``milvus``
fixture, collections of ``milvus_fixtures.py``) and the Iceberg test lake.

A module-scoped server serves both catalogs: ``lake`` (Iceberg) and
``vec`` (Milvus, consistency strong). Every expected answer is computed
here, in Python / numpy, from the rows the fixtures inserted
(``milvus_fixtures.docs_rows()`` ...) and the lake's sources, never from
sluice.

Covered: metadata of the collections on every path (types, the vector
column absent without ``can_export_vectors``, ungranted tables absent);
scans equal to the inserted data (paging through 50,000 rows), filter
pushdown (the Milvus ``expr=`` and projected ``fields=`` in EXPLAIN) with
results equal to Python; the DESIGN §4 policy on Milvus tables; leak
tests (the trap of hidden nearest neighbours, on the native and on the
exact path, via Flight, Trino and /v1/search, and on Iceberg; vectors never
returned without ``can_export_vectors``); ``ORDER BY l2_distance(...)``;
``/v1/search`` status codes; and
resilience with a TCP proxy in front of Milvus (slow, down, back).
"""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
import requests

import milvus_fixtures as mf
from harness import HarnessError, SluiceServer, adbc_query
from tcp_proxy import TcpProxy
from tokens import token_body
from trino_harness import run_dbapi, trino_connect
from vector_harness import vec_server

DOCS = "vec.default.docs"
NOTES = "vec.default.notes"
BIG = "vec.default.big"
ORDERS = "lake.sales.orders"
QV = mf.QUERY_VECTOR
TRAP = set(mf.TRAP_IDS)
ROW_LIMIT = 100_000
ALL_DOCS_COLUMNS = ["id", "title", "category", "tenant", "sensitivity", "rating", "published", "meta", "embedding"]
ACME_COLUMNS = ["id", "title", "category", "tenant", "sensitivity", "published", "meta"]
REDACTED = "[REDACTED]"
UNAVAILABLE = "catalog vec is unavailable"
#: Distances from Milvus are float32 computations.
DIST_TOL = 1e-4


ACME_GRANT_COLUMNS = ["id", "title", "category", "tenant", "sensitivity", "published", "meta", "embedding"]


def _acme_grant(allow: list[str]) -> dict:
    return {
        "table": DOCS,
        "columns": ACME_GRANT_COLUMNS,
        "masks": {"title": "redact"},
        "allow_rules": allow,
    }


FULL_GRANTS = [
    {"table": "vec.default.*", "columns": "*"},
    {"table": ORDERS, "columns": "*"},
]

TOKENS: dict[str, dict] = {
    # Everything, vectors included; admin so that EXPLAIN shows the plan
    # below the secure view. max_sensitivity 3 (the data's maximum), so the
    # policy is `sensitivity <= 3` and translates into Milvus.
    "full": token_body("vs-full", FULL_GRANTS, max_sensitivity=3, row_limit=ROW_LIMIT,
                       can_export_vectors=True, allow_attachments=True, admin=True),
    # The tenant token of the brief: native path (policy translates).
    "acme": token_body("vs-acme", [_acme_grant(["tenant = token.tenant"])], attributes={"tenant": "acme"},
                       max_sensitivity=1, row_limit=ROW_LIMIT, can_export_vectors=False),
    # Same rows, but a rule Milvus cannot evaluate: exact path.
    "acme_exact": token_body("vs-acme-exact", [_acme_grant(["length(title) > 0 AND tenant = token.tenant"])],
                             attributes={"tenant": "acme"}, max_sensitivity=1, row_limit=ROW_LIMIT,
                             can_export_vectors=False),
    # The same two policies on admin tokens, only to read their plans.
    "acme_admin": token_body("vs-acme-admin", [_acme_grant(["tenant = token.tenant"])],
                             attributes={"tenant": "acme"}, max_sensitivity=1, row_limit=ROW_LIMIT,
                             can_export_vectors=False, admin=True),
    "acme_exact_admin": token_body("vs-acme-exact-admin", [_acme_grant(["length(title) > 0 AND tenant = token.tenant"])],
                                   attributes={"tenant": "acme"}, max_sensitivity=1, row_limit=ROW_LIMIT,
                                   can_export_vectors=False, admin=True),
    # can_export_vectors, but the grant omits the vector column.
    "noemb": token_body("vs-noemb", [{"table": DOCS, "columns": [c for c in ALL_DOCS_COLUMNS if c != "embedding"]}],
                        max_sensitivity=3, row_limit=ROW_LIMIT, can_export_vectors=True),
    # Deny rules (translatable: native path).
    "deny": token_body("vs-deny", [{"table": DOCS, "columns": "*", "deny_rules": ["category = 'memo'", "rating > 4.5"]}],
                       max_sensitivity=2, row_limit=ROW_LIMIT, can_export_vectors=False),
    # Row limit.
    "limited": token_body("vs-limited", [{"table": DOCS, "columns": "*"}], max_sensitivity=3, row_limit=100,
                          can_export_vectors=False),
    # Iceberg: like tokens.EU_ANALYST, with the embedding granted (searchable, not readable).
    "lake_eu": token_body(
        "vs-lake-eu",
        [{
            "table": ORDERS,
            "columns": ["order_id", "region", "amount", "customer_email", "embedding"],
            "masks": {"customer_email": "hash"},
            "allow_rules": ["region = token.region"],
            "deny_rules": ["amount > 10000"],
        }],
        attributes={"region": "eu"}, max_sensitivity=2, row_limit=ROW_LIMIT, can_export_vectors=False,
    ),
}

VECTORLESS = ["acme", "acme_exact", "noemb", "deny", "limited"]


# --- Python side: the data and the expected answers ----------------------------------

def docs() -> list[dict]:
    return mf.docs_rows()


def visible_docs(key: str) -> list[dict]:
    """The docs rows token ``key`` may see (DESIGN §4 rules, by hand)."""
    rows = docs()
    if key in ("acme", "acme_exact", "acme_admin", "acme_exact_admin"):
        return [r for r in rows if r["tenant"] == "acme" and r["sensitivity"] <= 1]
    if key == "deny":
        return [r for r in rows if r["sensitivity"] <= 2 and r["category"] != "memo" and not r["rating"] > 4.5]
    if key in ("full", "noemb", "limited"):
        return list(rows)
    raise KeyError(key)


def distances(vectors: np.ndarray, q, metric: str) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(q, dtype=np.float32).astype(np.float64)
    if metric == "l2":
        return np.sqrt(((v - q) ** 2).sum(axis=1))
    if metric == "cosine":
        return 1.0 - (v @ q) / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    if metric == "inner_product":
        return v @ q
    raise ValueError(metric)


def exact_topk(rows: list[dict], q, k: int, metric: str = "l2", *, id_key="id", vec_key="embedding"):
    """[(id, distance)] of the k nearest rows (inner product: largest first)."""
    rows = [r for r in rows if r[vec_key] is not None]
    if not rows:
        return []
    d = distances(np.array([r[vec_key] for r in rows]), q, metric)
    order = np.argsort(-d if metric == "inner_product" else d, kind="stable")[:k]
    return [(rows[i][id_key], float(d[i])) for i in order]


def assert_topk(got: list[tuple], rows: list[dict], q, k: int, metric: str = "l2", *,
                id_key="id", vec_key="embedding", tol: float = DIST_TOL) -> None:
    """``got`` ([(id, _distance)] in answer order) is the exact top-k of
    ``rows``: k (or all) rows, no duplicates, each distance right, ordered,
    every row strictly nearer than the k-th included, none farther than
    the k-th (ties within ``tol`` may go either way)."""
    want = exact_topk(rows, q, k, metric, id_key=id_key, vec_key=vec_key)
    assert len(got) == len(want), f"got {len(got)} rows, want {len(want)}: {got[:5]} vs {want[:5]}"
    ids = [g[0] for g in got]
    assert len(set(ids)) == len(ids), f"duplicate ids: {ids}"
    by_id = {r[id_key]: r for r in rows}
    unknown = [i for i in ids if i not in by_id]
    assert not unknown, f"rows outside the visible set returned: {unknown}"
    true_d = dict(zip([r[id_key] for r in rows if r[vec_key] is not None],
                      distances(np.array([r[vec_key] for r in rows if r[vec_key] is not None]), q, metric)))
    sign = -1.0 if metric == "inner_product" else 1.0
    for i, d in got:
        assert d is not None and abs(d - true_d[i]) <= tol, f"id {i}: _distance {d}, true {true_d[i]}"
    dists = [sign * d for _, d in got]
    assert all(a <= b + tol for a, b in zip(dists, dists[1:])), f"not ordered by distance: {got}"
    if want:
        kth = sign * want[-1][1]
        must = {i for i, d in want if sign * d < kth - tol}
        assert must <= set(ids), f"missing nearer rows {sorted(must - set(ids))}"
        too_far = [i for i in ids if sign * true_d[i] > kth + tol]
        assert not too_far, f"rows farther than the k-th returned: {too_far}"


def like_to_regex(pattern: str) -> re.Pattern:
    out = ""
    for ch in pattern:
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
    return re.compile(f"^{out}$", re.DOTALL)


def like(value: str, pattern: str) -> bool:
    return bool(like_to_regex(pattern).match(value))


def orders_rows(lake) -> list[dict]:
    return lake.sources["sales.orders"].to_pylist()


def lake_eu_visible(lake) -> list[dict]:
    return [
        r for r in orders_rows(lake)
        if r["region"] == "eu" and r["sensitivity"] is not None and r["sensitivity"] <= 2
        and r["amount"] is not None and not r["amount"] > 10000
    ]


def vec_sql(v, trino: bool = False) -> str:
    body = ", ".join(repr(float(x)) for x in v)
    return f"ARRAY[{body}]" if trino else f"[{body}]"


def vs(table: str, v, k: int, column=None, metric=None, filt=None, *, trino=False) -> str:
    """The ``vector_search(...)`` call."""
    args = [f"'{table}'", vec_sql(v, trino), str(k)]
    extra = [column, metric, filt]
    while extra and extra[-1] is None:
        extra.pop()
    for x in extra:
        args.append("NULL" if x is None else "'" + x.replace("'", "''") + "'")
    return f"vector_search({', '.join(args)})"


def pairs(t: pa.Table, id_col: str = "id") -> list[tuple]:
    return list(zip(t.column(id_col).to_pylist(), t.column("_distance").to_pylist()))


# --- the server -------------------------------------------------------------------------

class VsTokens:
    def __init__(self, server: SluiceServer, bodies: dict[str, dict]):
        self.server = server
        self.bodies = bodies
        self._made: dict[str, dict | str] = {}

    def secret(self, key: str) -> str:
        if key not in self._made:
            try:
                self._made[key] = self.server.create_token(self.bodies[key])
            except HarnessError as e:
                self._made[key] = str(e)
        made = self._made[key]
        if isinstance(made, str):
            pytest.fail(made, pytrace=False)
        return made["secret"]


class Clients:
    """ADBC and trino connections per token key (opened lazily)."""

    def __init__(self, server: SluiceServer, tokens: VsTokens):
        self.server = server
        self.tokens = tokens
        self._adbc: dict[str, object] = {}
        self._trino: dict[str, object] = {}

    def adbc(self, key: str):
        if key not in self._adbc:
            self._adbc[key] = self.server.adbc_connect(self.tokens.secret(key))
        return self._adbc[key]

    def q(self, key: str, sql: str) -> pa.Table:
        return adbc_query(self.adbc(key), sql)

    def error(self, key: str, sql: str) -> str:
        with pytest.raises(Exception) as exc:
            self.q(key, sql)
        return str(exc.value)

    def trino(self, key: str):
        if key not in self._trino:
            self._trino[key] = trino_connect(self.server, self.tokens.secret(key))
        return self._trino[key]

    def tq(self, key: str, sql: str):
        """(column names, rows) through the trino client."""
        desc, rows = run_dbapi(self.trino(key), sql)
        return [d.name for d in desc], rows

    def search(self, key: str | None, body, headers: dict | None = None) -> requests.Response:
        h = {} if key is None else {"Authorization": f"Bearer {self.tokens.secret(key)}"}
        h.update(headers or {})
        return requests.post(f"{self.server.http_base}/v1/search", json=body, headers=h, timeout=60)

    def close(self) -> None:
        for c in list(self._adbc.values()) + list(self._trino.values()):
            try:
                c.close()
            except Exception:  # noqa: BLE001 - teardown
                pass


@pytest.fixture(scope="module")
def vs_server(sluice_bin, lake, milvus, tmp_path_factory):
    srv = vec_server(sluice_bin, lake, tmp_path_factory.mktemp("sluice-vs"), milvus.uri, "20s", "5s")
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def c(vs_server):
    clients = Clients(vs_server, VsTokens(vs_server, TOKENS))
    yield clients
    clients.close()


# =====================================================================================
# 1. Metadata
# =====================================================================================

DOCS_ARROW = {
    "id": pa.int64(), "title": pa.string(), "category": pa.string(), "tenant": pa.string(),
    "sensitivity": pa.int32(), "rating": pa.float64(), "published": pa.bool_(), "meta": pa.string(),
    "embedding": pa.list_(pa.float32(), 8),
}
DOCS_TRINO = {
    "id": "bigint", "title": "varchar", "category": "varchar", "tenant": "varchar", "sensitivity": "integer",
    "rating": "double", "published": "boolean", "meta": "varchar", "embedding": "array(real)",
}


def _objects(conn) -> dict[tuple[str, str, str], list[str]]:
    data = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    out = {}
    for cat in data:
        for sch in cat["catalog_db_schemas"] or []:
            for tbl in sch["db_schema_tables"] or []:
                out[(cat["catalog_name"], sch["db_schema_name"], tbl["table_name"])] = [
                    col["column_name"] for col in (tbl["table_columns"] or [])
                ]
    return {k: v for k, v in out.items() if k[1] != "information_schema"}


def _same_type(got: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_fixed_size_list(want):
        return (pa.types.is_fixed_size_list(got) and got.list_size == want.list_size
                and got.value_type == want.value_type)
    return got == want


def test_adbc_table_schema_types(c):
    conn = c.adbc("full")
    schema = conn.adbc_get_table_schema("docs", catalog_filter="vec", db_schema_filter="default")
    assert schema.names == ALL_DOCS_COLUMNS
    for name, want in DOCS_ARROW.items():
        assert _same_type(schema.field(name).type, want), (name, schema.field(name).type)
    for table, cols, dim in [("notes", ["id", "body", "tenant", "embedding"], 4),
                             ("big", ["id", "grp", "label", "embedding"], 4)]:
        s = conn.adbc_get_table_schema(table, catalog_filter="vec", db_schema_filter="default")
        assert s.names == cols
        assert _same_type(s.field("embedding").type, pa.list_(pa.float32(), dim)), s
        assert s.field("id").type == pa.int64()


def test_query_result_types(c):
    t = c.q("full", f"SELECT * FROM {DOCS} WHERE id = 1")
    assert t.column_names == ALL_DOCS_COLUMNS
    for name, want in DOCS_ARROW.items():
        assert _same_type(t.schema.field(name).type, want), (name, t.schema.field(name).type)


def test_adbc_get_objects_full_and_scoped(c):
    full = _objects(c.adbc("full"))
    assert full[("vec", "default", "docs")] == ALL_DOCS_COLUMNS
    assert full[("vec", "default", "notes")] == ["id", "body", "tenant", "embedding"]
    assert full[("vec", "default", "big")] == ["id", "grp", "label", "embedding"]
    assert ("lake", "sales", "orders") in full
    acme = _objects(c.adbc("acme"))
    assert acme == {("vec", "default", "docs"): ACME_COLUMNS}
    noemb = _objects(c.adbc("noemb"))
    assert noemb == {("vec", "default", "docs"): [x for x in ALL_DOCS_COLUMNS if x != "embedding"]}
    lake_eu = _objects(c.adbc("lake_eu"))
    assert lake_eu == {("lake", "sales", "orders"): ["order_id", "region", "customer_email", "amount"]}


@pytest.mark.parametrize("key", VECTORLESS)
def test_adbc_table_schema_has_no_vector(c, key):
    schema = c.adbc(key).adbc_get_table_schema("docs", catalog_filter="vec", db_schema_filter="default")
    assert "embedding" not in schema.names
    assert not any(pa.types.is_fixed_size_list(f.type) or pa.types.is_list(f.type) for f in schema), schema


def test_adbc_table_schema_ungranted_is_not_found(c):
    errors = []
    for table in ("notes", "big", "nope"):
        with pytest.raises(Exception) as exc:
            c.adbc("acme").adbc_get_table_schema(table, catalog_filter="vec", db_schema_filter="default")
        errors.append(re.sub(rf"\b{table}\b", "<T>", str(exc.value)))
    assert errors[0] == errors[1] == errors[2], errors


def test_information_schema_columns(c):
    t = c.q("full", "SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_catalog = 'vec' AND table_schema = 'default' ORDER BY table_name, ordinal_position")
    rows = t.to_pylist()
    docs_cols = [(r["column_name"], r["data_type"]) for r in rows if r["table_name"] == "docs"]
    assert [n for n, _ in docs_cols] == ALL_DOCS_COLUMNS
    types = dict(docs_cols)
    assert types["id"] == "Int64" and types["sensitivity"] == "Int32" and types["rating"] == "Float64"
    assert types["title"] == "Utf8" and types["meta"] == "Utf8" and types["published"] == "Boolean"
    assert "FixedSizeList" in types["embedding"] and "8" in types["embedding"] and "Float32" in types["embedding"]
    assert {r["table_name"] for r in rows} == {"docs", "notes", "big"}
    for key in VECTORLESS:
        t = c.q(key, "SELECT table_catalog, table_schema, table_name, column_name, data_type "
                     "FROM information_schema.columns WHERE table_schema <> 'information_schema'")
        got = t.to_pylist()
        assert {(r["table_catalog"], r["table_schema"], r["table_name"]) for r in got} == {("vec", "default", "docs")}
        assert "embedding" not in {r["column_name"] for r in got}, key
        assert not any("List" in r["data_type"] for r in got), key


def test_information_schema_tables_only_granted(c):
    t = c.q("acme", "SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema <> 'information_schema'")
    assert t.to_pylist() == [{"table_catalog": "vec", "table_schema": "default", "table_name": "docs"}]


def test_trino_show_columns_and_describe(c):
    for stmt in (f"SHOW COLUMNS FROM {DOCS}", f"DESCRIBE {DOCS}"):
        _, rows = c.tq("full", stmt)
        assert [(r[0], r[1]) for r in rows] == list(DOCS_TRINO.items()), rows
        for key in ("acme", "noemb", "deny"):
            _, rows = c.tq(key, stmt)
            names = [r[0] for r in rows]
            assert "embedding" not in names and not any("array" in r[1] for r in rows), (key, rows)
        _, rows = c.tq("acme", stmt)
        assert [(r[0], r[1]) for r in rows] == [(n, DOCS_TRINO[n]) for n in ACME_COLUMNS]


def test_trino_information_schema_and_tables(c):
    _, rows = c.tq("full", "SELECT table_name, column_name, data_type FROM vec.information_schema.columns "
                           "WHERE table_schema = 'default' AND table_name = 'docs'")
    assert [(r[1], r[2]) for r in rows] == list(DOCS_TRINO.items())
    _, rows = c.tq("acme", "SELECT table_name, column_name, data_type FROM vec.information_schema.columns "
                           "WHERE table_schema = 'default'")
    assert [(r[0], r[1], r[2]) for r in rows] == [("docs", n, DOCS_TRINO[n]) for n in ACME_COLUMNS]
    _, rows = c.tq("acme", "SELECT column_name FROM system.jdbc.columns WHERE table_cat = 'vec'")
    assert sorted(r[0] for r in rows) == sorted(ACME_COLUMNS)
    _, rows = c.tq("acme", "SHOW TABLES FROM vec.default")
    assert [r[0] for r in rows] == ["docs"]
    _, rows = c.tq("full", "SHOW TABLES FROM vec.default")
    assert sorted(r[0] for r in rows) == ["big", "docs", "notes"]
    _, rows = c.tq("acme", "SHOW CATALOGS")
    assert "lake" not in [r[0] for r in rows]


def test_trino_select_star_has_no_vector(c):
    names, rows = c.tq("acme", f"SELECT * FROM {DOCS} ORDER BY id LIMIT 3")
    assert names == ACME_COLUMNS
    assert all(not isinstance(v, list) for r in rows for v in r)


def test_ungranted_table_same_error_as_missing(c):
    errs = [re.sub(r"'[^']*'", "'<T>'", c.error("acme", f"SELECT * FROM {t}")) for t in (NOTES, BIG, "vec.default.nope")]
    assert errs[0] == errs[1] == errs[2], errs
    assert "not found" in errs[0]


# =====================================================================================
# 2. Scans and filter pushdown
# =====================================================================================

def _norm_docs_row(r: dict) -> dict:
    out = dict(r)
    if isinstance(out.get("meta"), str):
        out["meta"] = json.loads(out["meta"])
    return out


def test_scan_docs_equals_fixture(c):
    t = c.q("full", f"SELECT * FROM {DOCS}")
    assert t.num_rows == mf.DOCS_N
    got = sorted((_norm_docs_row(r) for r in t.to_pylist()), key=lambda r: r["id"])
    want = docs()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w, (g, w)


def test_scan_notes_equals_fixture(c):
    t = c.q("full", f"SELECT * FROM {NOTES}")
    got = sorted(t.to_pylist(), key=lambda r: r["id"])
    assert got == mf.notes_rows()


def test_scan_big_pages_through_everything(c):
    t = c.q("full", f"SELECT count(*) AS n, count(DISTINCT id) AS d, sum(id) AS s, min(id) AS lo, max(id) AS hi FROM {BIG}")
    assert t.to_pylist() == [{"n": mf.BIG_N, "d": mf.BIG_N, "s": mf.BIG_N * (mf.BIG_N + 1) // 2, "lo": 1, "hi": mf.BIG_N}]
    t = c.q("full", f"SELECT id, grp, label FROM {BIG}")
    got = sorted(zip(t.column("id").to_pylist(), t.column("grp").to_pylist(), t.column("label").to_pylist()))
    assert got == [(r["id"], r["grp"], r["label"]) for r in mf.big_rows()]


def test_scan_big_with_vectors(c):
    t = c.q("full", f"SELECT id, embedding FROM {BIG} WHERE grp = 3")
    got = dict(zip(t.column("id").to_pylist(), t.column("embedding").to_pylist()))
    want = {r["id"]: r["embedding"] for r in mf.big_rows() if r["grp"] == 3}
    assert got == want


def _title(i: int) -> str:
    return docs()[i - 1]["title"]


#: (SQL condition, Python predicate, fragments the pushed Milvus expr must contain or None if
#: nothing of the condition may be pushed).
FILTERS = [
    ("category = 'news'", lambda r: r["category"] == "news", ['category == "news"']),
    ("category <> 'news' AND sensitivity >= 2", lambda r: r["category"] != "news" and r["sensitivity"] >= 2,
     ['category != "news"', "sensitivity >= 2"]),
    ("title LIKE 'doc 1%'", lambda r: r["title"].startswith("doc 1"), ['title like "doc 1%"']),
    ("title LIKE 'doc 29%' AND NOT (category IN ('news', 'blog'))",
     lambda r: r["title"].startswith("doc 29") and r["category"] not in ("news", "blog"),
     ['title like "doc 29%"']),
    ("category IN ('news', 'memo')", lambda r: r["category"] in ("news", "memo"), ['"news"', '"memo"']),
    ("tenant NOT IN ('acme', 'globex')", lambda r: r["tenant"] not in ("acme", "globex"), ['"acme"', '"globex"']),
    ("id IN (1, 2, 3, 2999)", lambda r: r["id"] in (1, 2, 3, 2999), ["id in [1, 2, 3, 2999]"]),
    ("NOT published", lambda r: not r["published"], ["published"]),
    # Float comparisons are never pushed (Milvus' -0.0 and NaN semantics
    # differ from DataFusion's): only the rest of the condition is.
    ("published AND rating > 4.0", lambda r: r["published"] and r["rating"] > 4.0, ["published == true"]),
    ("rating BETWEEN 1.5 AND 2.25", lambda r: 1.5 <= r["rating"] <= 2.25, []),
    ("rating NOT BETWEEN 1 AND 4", lambda r: not (1 <= r["rating"] <= 4), []),
    ("id BETWEEN 100 AND 200 OR id > 2990", lambda r: 100 <= r["id"] <= 200 or r["id"] > 2990, ["id > 2990"]),
    ("sensitivity < 2 OR category = 'paper'", lambda r: r["sensitivity"] < 2 or r["category"] == "paper",
     ["sensitivity < 2", 'category == "paper"']),
    ("NOT (sensitivity = 0 OR tenant = 'acme')", lambda r: not (r["sensitivity"] == 0 or r["tenant"] == "acme"),
     ['"acme"']),
    ("rating > 2", lambda r: r["rating"] > 2, []),
    ("rating = 2.35", lambda r: r["rating"] == 2.35, []),
    ("published = false", lambda r: r["published"] is False, ["published"]),
    ("category > 'blog' AND category < 'news'", lambda r: "blog" < r["category"] < "news",
     ['category > "blog"', 'category < "news"']),
    ("title >= 'doc 2' AND title < 'doc 3'", lambda r: "doc 2" <= r["title"] < "doc 3",
     ['title >= "doc 2"', 'title < "doc 3"']),
    ("id > 2500 AND id <= 2600", lambda r: 2500 < r["id"] <= 2600, ["id > 2500", "id <= 2600"]),
    ("id > -9223372036854775807", lambda r: True, ["id > -9223372036854775807"]),
    # i64::MIN is not pushed: Milvus cannot parse -9223372036854775808 (it
    # negates the out-of-range 9223372036854775808)
    ("id > -9223372036854775808", lambda r: True, None),
    ("category = 'new''s' OR title = 'a\"b\\c'", lambda r: False, None),
    # Not translatable: stays in DataFusion.
    ("length(title) > 12", lambda r: len(r["title"]) > 12, None),
    ("id % 7 = 3", lambda r: r["id"] % 7 == 3, None),
    ("title LIKE '%merger'", lambda r: r["title"].endswith("merger"), None),
    ("title LIKE 'doc 1_%'", lambda r: like(r["title"], "doc 1_%"), None),
    ("upper(category) = 'NEWS'", lambda r: r["category"] == "news", None),
    ("meta LIKE '%\"de\"%'", lambda r: r["meta"]["lang"] == "de", None),
]


@pytest.mark.parametrize("cond,pred,frags", FILTERS, ids=[f[0] for f in FILTERS])
def test_filter_equals_python(c, cond, pred, frags):
    t = c.q("full", f"SELECT id FROM {DOCS} WHERE {cond}")
    got = sorted(t.column("id").to_pylist())
    want = sorted(r["id"] for r in docs() if pred(r))
    assert got == want, f"{cond}: {len(got)} rows vs {len(want)}"


def _plan(c, key: str, sql: str) -> str:
    t = c.q(key, f"EXPLAIN {sql}")
    rows = t.to_pylist()
    return "\n".join(r["plan"] for r in rows if r["plan_type"] == "physical_plan")


def _milvus_lines(plan: str, kind: str = "MilvusQueryExec") -> list[str]:
    return [ln.strip() for ln in plan.splitlines() if kind in ln]


def _fields(line: str) -> list[str]:
    m = re.search(r"fields=\[([^\]]*)\]", line)
    assert m, line
    return [f.strip() for f in m.group(1).split(",") if f.strip()]


def _expr(line: str) -> str | None:
    m = re.search(r"expr=(.*?)(?:, limit=\d+)?$", line)
    return m.group(1) if m else None


@pytest.mark.parametrize("cond,pred,frags", [f for f in FILTERS if f[2] is not None],
                         ids=[f[0] for f in FILTERS if f[2] is not None])
def test_explain_shows_pushed_expr(c, cond, pred, frags):
    lines = _milvus_lines(_plan(c, "full", f"SELECT id FROM {DOCS} WHERE {cond}"))
    assert len(lines) == 1, lines
    expr = _expr(lines[0])
    assert expr is not None, lines[0]
    for frag in frags:
        assert frag in expr, f"{frag!r} not in expr {expr!r}"
    if not frags:
        assert "rating" not in expr, expr
    assert "sensitivity <= 3" in expr  # the token's policy, pushed too


@pytest.mark.parametrize("cond", ["length(title) > 12", "id % 7 = 3", "title LIKE '%merger'", "title LIKE 'doc 1_%'"])
def test_explain_untranslatable_stays_in_datafusion(c, cond):
    plan = _plan(c, "full", f"SELECT id FROM {DOCS} WHERE {cond}")
    lines = _milvus_lines(plan)
    assert len(lines) == 1, plan
    expr = _expr(lines[0]) or ""
    assert "title" not in expr and "%" not in expr.replace("like", "") and "length" not in expr, expr
    assert "FilterExec" in plan


def test_explain_projection_fields(c):
    line = _milvus_lines(_plan(c, "full", f"SELECT id FROM {DOCS} WHERE category = 'news'"))[0]
    assert set(_fields(line)) == {"id", "category", "sensitivity"}, line
    line = _milvus_lines(_plan(c, "full", f"SELECT title, rating FROM {DOCS}"))[0]
    assert set(_fields(line)) == {"title", "rating", "sensitivity"}, line
    line = _milvus_lines(_plan(c, "full", f"SELECT grp, count(*) FROM {BIG} GROUP BY grp"))[0]
    assert _fields(line) == ["grp"], line
    assert "embedding" not in _fields(_milvus_lines(_plan(c, "full", f"SELECT count(*) FROM {DOCS}"))[0])


def test_big_filtered_paging(c):
    t = c.q("full", f"SELECT id FROM {BIG} WHERE grp = 3 AND label IN ('l1', 'l2')")
    want = sorted(r["id"] for r in mf.big_rows() if r["grp"] == 3 and r["label"] in ("l1", "l2"))
    assert sorted(t.column("id").to_pylist()) == want
    t = c.q("full", f"SELECT count(*) AS n FROM {BIG} WHERE id > 10000 AND grp <> 0")
    assert t.column("n").to_pylist() == [sum(1 for r in mf.big_rows() if r["id"] > 10000 and r["grp"] != 0)]


# =====================================================================================
# 3. Policy on Milvus
# =====================================================================================

def test_acme_sees_exactly_its_rows(c):
    for key in ("acme", "acme_exact"):
        t = c.q(key, f"SELECT * FROM {DOCS}")
        assert t.column_names == ACME_COLUMNS
        got = sorted((_norm_docs_row(r) for r in t.to_pylist()), key=lambda r: r["id"])
        want = [{k: (REDACTED if k == "title" else r[k]) for k in ACME_COLUMNS} for r in visible_docs("acme")]
        assert got == want, key


def test_acme_refused_columns(c):
    for col in ("rating", "embedding"):
        msg = c.error("acme", f"SELECT {col} FROM {DOCS}")
        assert f'"{col}"' in msg and "not found or not allowed" in msg, msg
    msg = c.error("acme", f"SELECT id FROM {DOCS} WHERE rating > 1")
    assert "not found or not allowed" in msg


def test_acme_mask_cannot_be_probed(c):
    t = c.q("acme", f"SELECT count(*) AS n FROM {DOCS} WHERE title LIKE 'doc%'")
    assert t.column("n").to_pylist() == [0]
    t = c.q("acme", f"SELECT count(*) AS n FROM {DOCS} WHERE title = '{REDACTED}'")
    assert t.column("n").to_pylist() == [len(visible_docs("acme"))]


def test_acme_hidden_rows_never_evaluated(c):
    # DESIGN §4.5: a division that fails only on hidden rows must not fail.
    t = c.q("acme", f"SELECT count(*) AS n FROM {DOCS} "
                    f"WHERE 1 / (CASE WHEN tenant <> 'acme' OR sensitivity > 1 THEN 0 ELSE 1 END) = 1")
    assert t.column("n").to_pylist() == [len(visible_docs("acme"))]
    probe = vs(DOCS, QV, 10, filt="1 / (CASE WHEN tenant <> 'acme' OR sensitivity > 1 THEN 0 ELSE 1 END) = 1")
    for key in ("acme", "acme_exact"):
        t = c.q(key, f"SELECT count(*) AS n FROM {probe}")
        assert t.column("n").to_pylist() == [10]
    assert t.column("n").to_pylist() == [10]


def test_acme_filters_equal_python(c):
    vis = visible_docs("acme")
    for cond, pred in [
        ("category = 'news'", lambda r: r["category"] == "news"),
        ("tenant = 'globex'", lambda r: False),
        ("sensitivity >= 2", lambda r: False),
        ("id > 2980", lambda r: r["id"] > 2980),
        ("NOT published OR category IN ('memo')", lambda r: not r["published"] or r["category"] == "memo"),
    ]:
        t = c.q("acme", f"SELECT id FROM {DOCS} WHERE {cond}")
        assert sorted(t.column("id").to_pylist()) == sorted(r["id"] for r in vis if pred(r)), cond


def test_acme_policy_is_pushed(c):
    line = _milvus_lines(_plan(c, "acme_admin", f"SELECT id FROM {DOCS}"))[0]
    expr = _expr(line)
    assert expr and 'tenant == "acme"' in expr and "sensitivity <= 1" in expr, line


def test_deny_rules(c):
    t = c.q("deny", f"SELECT id, category, rating, sensitivity FROM {DOCS}")
    got = sorted(t.column("id").to_pylist())
    assert got == sorted(r["id"] for r in visible_docs("deny"))
    t = c.q("deny", f"SELECT count(*) AS n FROM {DOCS} WHERE category = 'memo' OR rating > 4.5")
    assert t.column("n").to_pylist() == [0]


def test_row_limit_truncates(c):
    t = c.q("limited", f"SELECT id FROM {DOCS}")
    assert t.num_rows == 100
    # 100 distinct docs; which 100 an unordered scan returns first is not fixed
    assert len(set(t.column("id").to_pylist())) == 100
    assert set(t.column("id").to_pylist()) <= {r["id"] for r in docs()}
    t = c.q("limited", f"SELECT id FROM {DOCS} ORDER BY id")
    assert t.column("id").to_pylist() == list(range(1, 101))
    t = c.q("limited", f"SELECT count(*) AS n FROM {DOCS}")
    assert t.column("n").to_pylist() == [mf.DOCS_N]


def test_row_limit_on_vector_search(c):
    t = c.q("limited", f"SELECT id, _distance FROM {vs(DOCS, QV, 150)}")
    assert t.num_rows == 100
    # The first 100 of the 150 nearest, nearest first.
    assert_topk(pairs(t), docs(), QV, 100)
    r = c.search("limited", {"table": DOCS, "vector": QV, "k": 150, "columns": ["id", "_distance"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["truncated"] is True
    assert len(body["rows"]) == 100
    assert_topk([tuple(x) for x in body["rows"]], docs(), QV, 100)


# =====================================================================================
# 4. Leak tests: hidden rows never rank, vectors never come back
# =====================================================================================

def test_trap_is_the_true_top_for_full_token(c):
    t = c.q("full", f"SELECT id, tenant, _distance FROM {vs(DOCS, QV, 20)}")
    ids = t.column("id").to_pylist()
    assert set(ids) == TRAP
    assert set(t.column("tenant").to_pylist()) == {"globex"}
    assert_topk(pairs(t), docs(), QV, 20)
    assert max(t.column("_distance").to_pylist()) < 0.001
    assert "MilvusSearchExec" in _plan(c, "full", f"SELECT id, _distance FROM {vs(DOCS, QV, 20)}")


@pytest.mark.parametrize("k", [1, 5, 10, 20, 50, 200])
@pytest.mark.parametrize("key", ["acme", "acme_exact"])
def test_trap_hidden_from_acme(c, key, k):
    t = c.q(key, f"SELECT * FROM {vs(DOCS, QV, k)}")
    assert t.column_names == ACME_COLUMNS + ["_distance"]
    ids = t.column("id").to_pylist()
    assert not TRAP & set(ids), f"trap ids leaked: {sorted(TRAP & set(ids))}"
    assert len(ids) == k
    dists = t.column("_distance").to_pylist()
    assert min(dists) > mf.TRAP_MARGIN, "a distance of a hidden trap row came back"
    assert set(t.column("tenant").to_pylist()) == {"acme"}
    assert set(t.column("title").to_pylist()) == {REDACTED}
    assert max(t.column("sensitivity").to_pylist()) <= 1
    assert_topk(pairs(t), visible_docs("acme"), QV, k)


def test_acme_k_above_visible_rows(c):
    n = len(visible_docs("acme"))
    for key in ("acme", "acme_exact"):
        t = c.q(key, f"SELECT id, _distance FROM {vs(DOCS, QV, n + 50)}")
        assert t.num_rows == n
        assert_topk(pairs(t), visible_docs("acme"), QV, n + 50)


def test_native_and_exact_paths_are_used(c):
    sql = f"SELECT id, _distance FROM {vs(DOCS, QV, 10)}"
    native = _plan(c, "acme_admin", sql)
    lines = _milvus_lines(native, "MilvusSearchExec")
    assert len(lines) == 1, native
    expr = _expr(lines[0])
    assert expr and 'tenant == "acme"' in expr and "sensitivity <= 1" in expr, lines[0]
    assert "embedding" not in _fields(lines[0])
    exact = _plan(c, "acme_exact_admin", sql)
    assert "MilvusSearchExec" not in exact and "MilvusQueryExec" in exact, exact
    # Another metric than the index's (L2) is always exact.
    other = _plan(c, "acme_admin", f"SELECT id, _distance FROM {vs(DOCS, QV, 10, metric='cosine')}")
    assert "MilvusSearchExec" not in other and "MilvusQueryExec" in other, other
    # Same answers from the admin twins.
    for twin, key in (("acme_admin", "acme"), ("acme_exact_admin", "acme_exact")):
        assert c.q(twin, sql).column("id").to_pylist() == c.q(key, sql).column("id").to_pylist()


@pytest.mark.parametrize("metric", ["cosine", "inner_product", "l2"])
@pytest.mark.parametrize("key", ["acme", "acme_exact", "full"])
def test_metrics_exact_over_visible(c, key, metric):
    t = c.q(key, f"SELECT id, _distance FROM {vs(DOCS, QV, 25, 'embedding', metric)}")
    assert_topk(pairs(t), visible_docs(key) if key != "full" else docs(), QV, 25, metric)
    if key != "full":
        assert not TRAP & set(t.column("id").to_pylist())


def test_default_metric_is_the_index_metric(c):
    # docs: FLAT/L2 -> Euclidean distance; notes: HNSW/COSINE -> 1 - cos.
    t = c.q("full", f"SELECT id, _distance FROM {vs(DOCS, QV, 5)}")
    assert_topk(pairs(t), docs(), QV, 5, "l2")
    q4 = [0.5, -0.25, 0.125, 1.0]
    t = c.q("full", f"SELECT id, _distance FROM {vs(NOTES, q4, 5)}")
    got = pairs(t)
    true_d = dict(zip([r["id"] for r in mf.notes_rows()],
                      distances(np.array([r["embedding"] for r in mf.notes_rows()]), q4, "cosine")))
    for i, d in got:
        assert abs(d - true_d[i]) <= DIST_TOL, (i, d, true_d[i])
    # HNSW is approximate; the exact cosine answer must agree on the nearest row.
    exact = c.q("full", f"SELECT id, _distance FROM {vs(NOTES, q4, 5, metric='cosine')}")
    assert_topk(pairs(exact), mf.notes_rows(), q4, 5, "cosine")


def test_deny_token_vector_search(c):
    for metric in ("l2", "cosine"):
        t = c.q("deny", f"SELECT id, _distance FROM {vs(DOCS, QV, 30, metric=metric)}")
        assert_topk(pairs(t), visible_docs("deny"), QV, 30, metric)


NEWS = "category = 'news'"
BLOG = "category = 'blog'"
TITLE_PROBE = "title LIKE 'doc%'"
TITLE_MASKED = f"title = '{REDACTED}'"
WIDEN = "tenant = 'globex' OR true"


def test_prefilter_applies_before_topk_and_where_after(c):
    vis = visible_docs("acme")
    news = [r for r in vis if r["category"] == "news"]
    for key in ("acme", "acme_exact"):
        t = c.q(key, f"SELECT id, _distance FROM {vs(DOCS, QV, 10, filt=NEWS)}")
        assert_topk(pairs(t), news, QV, 10)
        # WHERE on the output: only removes rows from the 10 nearest.
        t = c.q(key, f"SELECT id, _distance FROM {vs(DOCS, QV, 10)} WHERE category = 'news'")
        top10 = exact_topk(vis, QV, 10)
        want = [i for i, _ in top10 if next(r for r in vis if r["id"] == i)["category"] == "news"]
        assert t.column("id").to_pylist() == want
        # The pre-filter sees masked values.
        t = c.q(key, f"SELECT id FROM {vs(DOCS, QV, 10, filt=TITLE_PROBE)}")
        assert t.num_rows == 0
        t = c.q(key, f"SELECT id, _distance FROM {vs(DOCS, QV, 10, filt=TITLE_MASKED)}")
        assert_topk(pairs(t), vis, QV, 10)
        # A pre-filter cannot widen the policy: TRUE on every visible row,
        # it answers the 10 nearest visible rows.
        t = c.q(key, f"SELECT id, _distance FROM {vs(DOCS, QV, 10, filt=WIDEN)}")
        assert not TRAP & set(t.column("id").to_pylist())
        assert_topk(pairs(t), vis, QV, 10)


def test_full_token_prefilter_native(c):
    rows = [r for r in docs() if r["category"] == "news" and r["published"]]
    sql = f"SELECT id, _distance FROM {vs(DOCS, QV, 15, filt=NEWS + ' AND published')}"
    line = _milvus_lines(_plan(c, "full", sql), "MilvusSearchExec")
    assert line and 'category == "news"' in _expr(line[0]), line
    assert_topk(pairs(c.q("full", sql)), rows, QV, 15)


def test_acme_trap_via_trino(c):
    for key in ("acme", "acme_exact"):
        names, rows = c.tq(key, f"SELECT id, _distance FROM {vs(DOCS, QV, 10, trino=True)}")
        assert names == ["id", "_distance"]
        got = [tuple(r) for r in rows]
        assert not TRAP & {i for i, _ in got}
        assert_topk(got, visible_docs("acme"), QV, 10)
        names, rows = c.tq(key, f"SELECT * FROM {vs(DOCS, QV, 5, trino=True)}")
        assert names == ACME_COLUMNS + ["_distance"]
        assert all(not isinstance(v, list) for r in rows for v in r)


def test_acme_trap_via_http_search(c):
    for key in ("acme", "acme_exact"):
        r = c.search(key, {"table": DOCS, "vector": QV, "k": 10})
        assert r.status_code == 200, r.text
        body = r.json()
        names = [col["name"] for col in body["columns"]]
        assert names == ACME_COLUMNS + ["_distance"]
        got = [(row[0], row[-1]) for row in body["rows"]]
        assert not TRAP & {i for i, _ in got}
        assert_topk(got, visible_docs("acme"), QV, 10)
        assert all(not isinstance(v, list) for row in body["rows"] for v in row)


VECTOR_PROBES = [
    f"SELECT embedding FROM {DOCS}",
    f"SELECT CAST(embedding AS VARCHAR) FROM {DOCS}",
    f"SELECT arrow_cast(embedding, 'Utf8') FROM {DOCS}",
    f"SELECT embedding[1] FROM {DOCS}",
    f"SELECT array_length(embedding) FROM {DOCS}",
    f"SELECT array_to_string(embedding, ',') FROM {DOCS}",
    f"SELECT id FROM {DOCS} WHERE embedding[1] > 0",
    f"SELECT id FROM {DOCS} ORDER BY l2_distance(embedding, {vec_sql(QV)}) LIMIT 5",
    f"SELECT l2_distance(embedding, {vec_sql(QV)}) FROM {DOCS}",
    f'SELECT "embedding" FROM {DOCS}',
    f"SELECT d.embedding FROM {DOCS} d",
    f"SELECT embedding FROM {vs(DOCS, QV, 5)}",
    f"SELECT CAST(embedding AS VARCHAR) FROM {vs(DOCS, QV, 5)}",
    f"SELECT id FROM {vs(DOCS, QV, 5, filt='embedding[1] > 0')}",
    f"SELECT id FROM {vs(DOCS, QV, 5, filt='array_length(embedding) = 8')}",
]


@pytest.mark.parametrize("sql", VECTOR_PROBES)
@pytest.mark.parametrize("key", ["acme", "acme_exact", "noemb", "deny"])
def test_vector_never_returned(c, key, sql):
    msg = c.error(key, sql)
    assert "embedding" in msg or "vector" in msg, msg
    assert not re.search(r"-?0\.\d{5,}", msg), f"numbers in the error: {msg}"


@pytest.mark.parametrize("key", ["acme", "acme_exact", "deny", "limited"])
def test_vector_absent_from_select_star(c, key):
    for sql in (f"SELECT * FROM {DOCS} LIMIT 20", f"SELECT * FROM {vs(DOCS, QV, 5)}",
                f"SELECT t.* FROM {DOCS} t LIMIT 5", f"WITH x AS (SELECT * FROM {DOCS}) SELECT * FROM x LIMIT 5"):
        t = c.q(key, sql)
        assert "embedding" not in t.column_names, (key, sql)
        assert not any(pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type) for f in t.schema), (sql, t.schema)


def test_vector_column_error_same_as_missing_column(c):
    a = c.error("acme", f"SELECT embedding FROM {DOCS}").replace("embedding", "<C>")
    b = c.error("acme", f"SELECT nosuchcol FROM {DOCS}").replace("nosuchcol", "<C>")
    assert a == b


def test_noemb_cannot_search_or_read(c):
    msg = c.error("noemb", f"SELECT id FROM {vs(DOCS, QV, 5)}")
    assert "vector" in msg
    r = c.search("noemb", {"table": DOCS, "vector": QV, "k": 5})
    assert r.status_code == 400, r.text
    assert "embedding" not in c.q("noemb", f"SELECT * FROM {DOCS} LIMIT 1").column_names


def test_http_search_never_returns_vector(c):
    for key in ("acme", "acme_exact", "deny"):
        r = c.search(key, {"table": DOCS, "vector": QV, "k": 5, "columns": ["embedding"]})
        assert r.status_code == 400, (key, r.status_code, r.text)
        assert "rows" not in r.json()
        r = c.search(key, {"table": DOCS, "vector": QV, "k": 5, "columns": ["id", "embedding"]})
        assert r.status_code == 400, (key, r.status_code, r.text)
        r = c.search(key, {"table": DOCS, "vector": QV, "k": 5, "filter": "embedding[1] > 0"})
        assert r.status_code == 400, (key, r.status_code, r.text)
        r = c.search(key, {"table": DOCS, "vector": QV, "k": 5})
        assert r.status_code == 200
        assert "embedding" not in [col["name"] for col in r.json()["columns"]]
    # With can_export_vectors it does come back.
    r = c.search("full", {"table": DOCS, "vector": QV, "k": 2, "columns": ["id", "embedding"]})
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    by_id = {d["id"]: d["embedding"] for d in docs()}
    assert [len(x[1]) for x in rows] == [8, 8]
    for i, e in rows:
        assert np.allclose(e, by_id[i], atol=1e-6)


def test_trino_vector_never_returned(c):
    import trino.exceptions as te

    for sql in (f"SELECT embedding FROM {DOCS}", f"SELECT cardinality(embedding) FROM {DOCS}",
                f"SELECT embedding[1] FROM {DOCS}", f"SELECT embedding FROM {vs(DOCS, QV, 3, trino=True)}"):
        with pytest.raises(te.TrinoQueryError) as exc:
            c.tq("acme", sql)
        assert "embedding" in str(exc.value)


# --- Iceberg -------------------------------------------------------------------------

def _hidden_trap_vector(lake):
    """The embedding of a row lake_eu may not see (a US order): its own
    nearest neighbour at distance 0 is hidden."""
    row = next(r for r in orders_rows(lake)
               if r["region"] == "us" and r["sensitivity"] is not None and r["embedding"] is not None)
    return row["order_id"], [float(x) for x in row["embedding"]]


def test_iceberg_exact_topk_over_visible(c, lake):
    hidden_id, q = _hidden_trap_vector(lake)
    vis = lake_eu_visible(lake)
    assert hidden_id not in {r["order_id"] for r in vis}
    for k in (1, 10, 40):
        t = c.q("lake_eu", f"SELECT order_id, _distance FROM {vs(ORDERS, q, k, metric='l2')}")
        assert hidden_id not in t.column("order_id").to_pylist()
        assert_topk(pairs(t, "order_id"), vis, q, k, id_key="order_id")
    t = c.q("lake_eu", f"SELECT * FROM {vs(ORDERS, q, 5, 'embedding', 'l2')}")
    assert t.column_names == ["order_id", "region", "customer_email", "amount", "_distance"]
    assert set(t.column("region").to_pylist()) == {"eu"}
    for metric in ("cosine", "inner_product"):
        t = c.q("lake_eu", f"SELECT order_id, _distance FROM {vs(ORDERS, q, 10, metric=metric)}")
        assert_topk(pairs(t, "order_id"), vis, q, 10, metric, id_key="order_id")
    # No index on Iceberg: the default metric is cosine.
    t = c.q("lake_eu", f"SELECT order_id, _distance FROM {vs(ORDERS, q, 10)}")
    assert_topk(pairs(t, "order_id"), vis, q, 10, "cosine", id_key="order_id")
    # The full token does see the hidden row first (the trap works).
    t = c.q("full", f"SELECT order_id, _distance FROM {vs(ORDERS, q, 3, metric='l2')}")
    assert t.column("order_id").to_pylist()[0] == hidden_id
    assert_topk(pairs(t, "order_id"), [r for r in orders_rows(lake) if r["sensitivity"] is not None], q, 3,
                id_key="order_id")


def test_iceberg_vector_search_via_trino_and_http(c, lake):
    hidden_id, q = _hidden_trap_vector(lake)
    vis = lake_eu_visible(lake)
    _, rows = c.tq("lake_eu", f"SELECT order_id, _distance FROM {vs(ORDERS, q, 10, metric='l2', trino=True)}")
    assert_topk([tuple(r) for r in rows], vis, q, 10, id_key="order_id")
    r = c.search("lake_eu", {"table": ORDERS, "vector": q, "k": 10, "metric": "l2",
                             "columns": ["order_id", "_distance"]})
    assert r.status_code == 200, r.text
    assert_topk([tuple(x) for x in r.json()["rows"]], vis, q, 10, id_key="order_id")


def test_iceberg_vector_never_returned(c):
    for sql in (f"SELECT embedding FROM {ORDERS}", f"SELECT embedding[1] FROM {ORDERS}",
                f"SELECT embedding FROM {vs(ORDERS, QV, 3)}"):
        msg = c.error("lake_eu", sql)
        assert "embedding" in msg
    t = c.q("lake_eu", f"SELECT * FROM {vs(ORDERS, QV, 3)}")
    assert "embedding" not in t.column_names
    _, rows = c.tq("lake_eu", f"SHOW COLUMNS FROM {ORDERS}")
    assert "embedding" not in [r[0] for r in rows]


# =====================================================================================
# 5. ORDER BY l2_distance(...) LIMIT k
# =====================================================================================

@pytest.mark.parametrize("k", [1, 10, 30])
def test_order_by_distance_equals_vector_search(c, k):
    a = c.q("full", f"SELECT id FROM {DOCS} ORDER BY l2_distance(embedding, {vec_sql(QV)}) LIMIT {k}")
    b = c.q("full", f"SELECT id FROM {vs(DOCS, QV, k)}")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    a = c.q("full", f"SELECT id, l2_distance(embedding, {vec_sql(QV)}) AS d FROM {DOCS} ORDER BY d LIMIT {k}")
    got = list(zip(a.column("id").to_pylist(), a.column("d").to_pylist()))
    assert_topk(got, docs(), QV, k, tol=1e-6)
    a = c.q("full", f"SELECT id FROM {DOCS} ORDER BY cosine_distance(embedding, {vec_sql(QV)}) LIMIT {k}")
    b = c.q("full", f"SELECT id FROM {vs(DOCS, QV, k, metric='cosine')}")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()


def test_order_by_distance_on_big(c):
    q = [0.1, -0.2, 0.3, -0.4]
    a = c.q("full", f"SELECT id FROM {BIG} ORDER BY l2_distance(embedding, {vec_sql(q)}) LIMIT 10")
    b = c.q("full", f"SELECT id, _distance FROM {vs(BIG, q, 10)}")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert_topk(pairs(b), mf.big_rows(), q, 10)


def test_big_native_search_matches_numpy(c):
    q = [0.3, 0.1, -0.7, 0.2]
    sql = f"SELECT id, _distance FROM {vs(BIG, q, 2000)}"
    assert "MilvusSearchExec" in _plan(c, "full", sql)
    assert_topk(pairs(c.q("full", sql)), mf.big_rows(), q, 2000)
    sql = f"SELECT id, grp, _distance FROM {vs(BIG, q, 100, filt='grp = 3 AND label <> ' + repr('l1'))}"
    line = _milvus_lines(_plan(c, "full", sql), "MilvusSearchExec")
    assert line and "grp == 3" in _expr(line[0]), line
    t = c.q("full", sql)
    assert set(t.column("grp").to_pylist()) == {3}
    assert_topk(pairs(t), [r for r in mf.big_rows() if r["grp"] == 3 and r["label"] != "l1"], q, 100)


def test_vector_search_in_join_union_cte(c):
    vis = visible_docs("acme")
    by_id = {r["id"]: r for r in vis}
    top = exact_topk(vis, QV, 5)
    for key in ("acme", "acme_exact"):
        t = c.q(key, f"SELECT v.id, d.category, v._distance FROM {vs(DOCS, QV, 5)} v "
                     f"JOIN {DOCS} d ON v.id = d.id ORDER BY v._distance")
        assert t.column("id").to_pylist() == [i for i, _ in top]
        assert t.column("category").to_pylist() == [by_id[i]["category"] for i, _ in top]
        t = c.q(key, f"SELECT 'n' AS s, id FROM {vs(DOCS, QV, 3, filt=NEWS)} "
                     f"UNION ALL SELECT 'b', id FROM {vs(DOCS, QV, 3, filt=BLOG)}")
        got = sorted(zip(t.column("s").to_pylist(), t.column("id").to_pylist()))
        want = sorted([("n", i) for i, _ in exact_topk([r for r in vis if r["category"] == "news"], QV, 3)]
                      + [("b", i) for i, _ in exact_topk([r for r in vis if r["category"] == "blog"], QV, 3)])
        assert got == want
        t = c.q(key, f"WITH x AS (SELECT * FROM {vs(DOCS, QV, 5)}) SELECT id FROM x ORDER BY _distance")
        assert t.column("id").to_pylist() == [i for i, _ in top]


# =====================================================================================
# 6. POST /v1/search
# =====================================================================================

def test_http_search_shape(c):
    r = c.search("full", {"table": DOCS, "vector": QV, "k": 3, "columns": ["id", "tenant", "_distance"],
                          "metric": "l2"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"columns", "rows", "truncated", "receipt"}
    assert body["columns"] == [{"name": "id", "type": "Int64"}, {"name": "tenant", "type": "Utf8"},
                               {"name": "_distance", "type": "Float64"}]
    assert body["truncated"] is False
    # The receipt: the table read, and the same in the header.
    assert body["receipt"]["tables"] == [DOCS] and body["receipt"]["truncated"] is False
    assert json.loads(r.headers["x-sluice-receipt"]) == body["receipt"]
    assert [row[1] for row in body["rows"]] == ["globex"] * 3
    assert_topk([(row[0], row[2]) for row in body["rows"]], docs(), QV, 3)
    r = c.search("acme", {"table": DOCS, "vector": QV, "k": 4, "columns": ["id", "_distance"],
                          "filter": "category = 'blog'", "metric": "cosine", "column": "embedding"})
    assert r.status_code == 200, r.text
    blog = [x for x in visible_docs("acme") if x["category"] == "blog"]
    assert_topk([tuple(row) for row in r.json()["rows"]], blog, QV, 4, "cosine")


def _bodies_equal_modulo_table(a: requests.Response, b: requests.Response, ta: str, tb: str) -> bool:
    return a.text.replace(ta, "<T>") == b.text.replace(tb, "<T>")


def test_http_search_401_identical(c, vs_server):
    body = {"table": DOCS, "vector": QV, "k": 3}
    url = f"{vs_server.http_base}/v1/search"
    answers = [
        requests.post(url, json=body, timeout=30),
        requests.post(url, json=body, headers={"Authorization": "Bearer slc_notarealtoken"}, timeout=30),
        requests.post(url, json=body, headers={"Authorization": "Bearer "}, timeout=30),
        requests.post(url, json=body, headers={"Authorization": "Basic Zm9vOmJhcg=="}, timeout=30),
        requests.post(url, json=body, headers={"Authorization": "garbage"}, timeout=30),
    ]
    for a in answers:
        assert a.status_code == 401, a.text
        assert a.json() == {"error": "authentication failed"}
    assert len({a.text for a in answers}) == 1


def test_http_search_404_identical(c):
    a = c.search("acme", {"table": NOTES, "vector": [0.1, 0.2, 0.3, 0.4], "k": 3})
    b = c.search("acme", {"table": "vec.default.nope", "vector": [0.1, 0.2, 0.3, 0.4], "k": 3})
    d = c.search("acme", {"table": ORDERS, "vector": QV, "k": 3})
    assert (a.status_code, b.status_code, d.status_code) == (404, 404, 404), (a.text, b.text, d.text)
    assert _bodies_equal_modulo_table(a, b, NOTES, "vec.default.nope")
    assert _bodies_equal_modulo_table(a, d, NOTES, ORDERS)
    assert f"table '{NOTES}' not found" in a.json()["error"]


@pytest.mark.parametrize("body", [
    {"table": DOCS, "vector": [], "k": 3},
    {"table": DOCS, "vector": QV, "k": 0},
    {"table": DOCS, "vector": QV, "k": 16385},
    {"table": DOCS, "vector": QV, "k": -1},
    {"table": DOCS, "vector": QV, "k": 1.5},
    {"table": DOCS, "vector": [1.0, 2.0], "k": 3},
    {"table": DOCS, "vector": ["a"] * 8, "k": 3},
    {"table": DOCS, "vector": [None] * 8, "k": 3},
    {"table": DOCS, "vector": "0.1,0.2", "k": 3},
    {"table": DOCS, "vector": QV},
    {"vector": QV, "k": 3},
    {"table": DOCS, "vector": QV, "k": 3, "metric": "manhattan"},
    {"table": DOCS, "vector": QV, "k": 3, "column": "title"},
    {"table": DOCS, "vector": QV, "k": 3, "columns": []},
    {"table": DOCS, "vector": QV, "k": 3, "sql": "SELECT 1"},
    {"table": DOCS, "vector": QV, "k": 3, "filter": "nosuch = 1"},
], ids=lambda b: json.dumps(b)[:60])
def test_http_search_400(c, body):
    r = c.search("acme", body)
    assert r.status_code == 400, (r.status_code, r.text)
    assert isinstance(r.json().get("error"), str)


def test_http_search_400_not_json(c, vs_server):
    h = {"Authorization": f"Bearer {c.tokens.secret('acme')}"}
    for data, ctype in (("not json", "application/json"), ("{}", "application/json"), ("[1,2]", "application/json")):
        r = requests.post(f"{vs_server.http_base}/v1/search", data=data, headers={**h, "Content-Type": ctype}, timeout=30)
        assert r.status_code == 400, (data, r.status_code, r.text)


def test_large_k_select_star(c):
    # k within 1..16384 and fewer than k visible rows: every visible row, ranked.
    t = c.q("full", f"SELECT * FROM {vs(DOCS, QV, 1000)}")
    assert t.num_rows == 1000
    assert_topk(pairs(t), docs(), QV, 1000)


def test_large_k_ids_only(c):
    t = c.q("full", f"SELECT id, _distance FROM {vs(DOCS, QV, 16384)}")
    assert t.num_rows == mf.DOCS_N
    assert_topk(pairs(t), docs(), QV, 16384)


# =====================================================================================
# 7. Resilience: Milvus slow or down behind a proxy
# =====================================================================================

RES_TOKEN = token_body("vs-res", [{"table": DOCS, "columns": "*"}, {"table": ORDERS, "columns": "*"}],
                       max_sensitivity=3, row_limit=ROW_LIMIT, can_export_vectors=False)
GIVE_UP_S = 30.0


@pytest.fixture(scope="module")
def proxy(milvus):
    host, port = milvus.uri.split("://", 1)[1].rsplit(":", 1)
    p = TcpProxy((host, int(port))).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def res(sluice_bin, lake, proxy, tmp_path_factory):
    srv = vec_server(sluice_bin, lake, tmp_path_factory.mktemp("sluice-vs-res"), proxy.uri, "2s", "1s")
    clients = Clients(srv, VsTokens(srv, {"res": RES_TOKEN}))
    yield clients
    clients.close()
    srv.close()


@pytest.fixture
def healthy(res, proxy):
    """The proxy forwards and sluice serves Milvus again before and after the test."""
    proxy.forward()
    _wait_milvus_ok(res)
    yield res
    proxy.forward()
    _wait_milvus_ok(res)


def _ready(res) -> tuple[int, dict]:
    r = requests.get(f"{res.server.http_base}/ready", timeout=10)
    return r.status_code, r.json()


def _milvus_query(res) -> pa.Table:
    return res.q("res", f"SELECT count(*) AS n FROM {DOCS} WHERE category = 'news'")


def _wait_milvus_ok(res) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    last = None
    while time.monotonic() < deadline:
        try:
            t = _milvus_query(res)
            status, body = _ready(res)
            if status == 200 and body["catalogs"]["vec"]["status"] == "ready" and body["status"] == "ready":
                assert t.column("n").to_pylist() == [sum(1 for r in docs() if r["category"] == "news")]
                return
            last = body
        except Exception as e:  # noqa: BLE001 - polled
            last = e
        time.sleep(0.5)
    raise AssertionError(f"Milvus catalog not working again after {GIVE_UP_S}s: {last!r}")


def _lake_query(res) -> int:
    t = res.q("res", f"SELECT count(*) AS n FROM {ORDERS}")
    return t.column("n").to_pylist()[0]


def _res_probe(lake):
    """(order_id, embedding) of an order the resilience token sees."""
    row = next(r for r in orders_rows(lake) if r["sensitivity"] is not None and r["embedding"] is not None)
    return row["order_id"], [float(x) for x in row["embedding"]]


def _lake_rows(lake) -> int:
    # The resilience token sees every row with a sensitivity (max 3).
    return sum(1 for r in orders_rows(lake) if r["sensitivity"] is not None)


def _wait_ready_state(res, want: str) -> dict:
    """Polls /ready until the vec catalog reports ``want``; the body."""
    deadline = time.monotonic() + GIVE_UP_S
    while True:
        status, body = _ready(res)
        if body.get("catalogs", {}).get("vec", {}).get("status") == want:
            # Ready only when every catalog is.
            assert status == (200 if want == "ready" else 503), (status, body)
            return body
        assert time.monotonic() < deadline, f"/ready never reported vec {want} within {GIVE_UP_S}s: {body}"
        time.sleep(0.5)


@pytest.fixture(params=["slow", "down"])
def outage(request, healthy, proxy):
    """Milvus behind the proxy is slow (accepts, never answers) or down
    (connections refused); restored (and checked) by ``healthy``."""
    if request.param == "slow":
        proxy.pause()
    else:
        proxy.close()
    return healthy


MILVUS_SQL = [
    f"SELECT count(*) FROM {DOCS}",
    f"SELECT id FROM {DOCS} WHERE category = 'news'",
    f"SELECT id, _distance FROM {vs(DOCS, QV, 5)}",
]


def test_resilience_forwarding_works(healthy, proxy):
    res = healthy
    status, body = _ready(res)
    assert status == 200
    assert body == {"status": "ready", "catalogs": {"vec": {"kind": "milvus", "status": "ready"},
                                                    "lake": {"kind": "iceberg", "status": "ready"}}}
    t = res.q("res", f"SELECT id, _distance FROM {vs(DOCS, QV, 3)}")
    assert set(t.column("id").to_pylist()) <= TRAP
    assert_topk(pairs(t), docs(), QV, 3)
    # how many connections the gateway's Milvus client opened (and reopened) varies
    assert proxy.accepted > 0


@pytest.mark.parametrize("sql", MILVUS_SQL, ids=["count", "filtered", "vector_search"])
def test_outage_flight_clear_error(outage, lake, sql):
    res = outage
    lake_result: dict = {}

    def lake_worker():
        try:
            lake_result["n"] = _lake_query(res)
        except Exception as e:  # noqa: BLE001 - asserted below
            lake_result["error"] = e

    th = threading.Thread(target=lake_worker)
    th.start()  # the lake, at the same time as the failing Milvus query
    t0 = time.monotonic()
    with pytest.raises(Exception) as exc:
        res.q("res", sql)
    elapsed = time.monotonic() - t0
    th.join(GIVE_UP_S)
    assert not th.is_alive(), "a lake query hangs while Milvus is unavailable"
    assert lake_result.get("n") == _lake_rows(lake), lake_result
    assert elapsed < GIVE_UP_S, f"failed only after {elapsed:.1f}s"  # wall clock: fails in bounded time
    assert UNAVAILABLE in str(exc.value), f"{sql}: {exc.value}"


def test_outage_lake_keeps_working(outage, lake):
    res = outage
    _wait_ready_state(res, "unavailable")
    for _ in range(3):
        t0 = time.monotonic()
        assert _lake_query(res) == _lake_rows(lake)
        assert time.monotonic() - t0 < GIVE_UP_S  # wall clock: answers in bounded time
    hidden_id, q = _res_probe(lake)
    t = res.q("res", f"SELECT order_id FROM {vs(ORDERS, q, 1, metric='l2')}")
    assert t.column("order_id").to_pylist() == [hidden_id]
    _, rows = res.tq("res", f"SELECT count(*) FROM {ORDERS}")
    assert rows == [[_lake_rows(lake)]]


def test_outage_trino_clear_error(outage, lake):
    import trino.exceptions as te

    res = outage
    for sql in (MILVUS_SQL[0], f"SELECT id, _distance FROM {vs(DOCS, QV, 5, trino=True)}"):
        t0 = time.monotonic()
        with pytest.raises(te.TrinoQueryError) as exc:
            res.tq("res", sql)
        assert time.monotonic() - t0 < GIVE_UP_S  # wall clock: answers in bounded time
        assert UNAVAILABLE in str(exc.value), f"{sql}: {exc.value}"
    _, rows = res.tq("res", f"SELECT count(*) FROM {ORDERS}")
    assert rows == [[_lake_rows(lake)]]


def test_outage_http_search_503(outage, lake):
    res = outage
    t0 = time.monotonic()
    r = res.search("res", {"table": DOCS, "vector": QV, "k": 3})
    assert time.monotonic() - t0 < GIVE_UP_S  # wall clock: answers in bounded time
    assert r.status_code == 503, (r.status_code, r.text)
    assert "vec" in r.json()["error"]
    metrics = requests.get(f"{res.server.http_base}/metrics", timeout=10).text
    # at least one: the catalog's background refreshes fail too, as often as they run
    assert re.search(r'^sluice_connector_errors_total\{[^}]*catalog="vec"[^}]*\} [1-9]', metrics, re.M), \
        [line for line in metrics.splitlines() if "connector" in line]
    hidden_id, q = _res_probe(lake)
    r = res.search("res", {"table": ORDERS, "vector": q, "k": 1, "metric": "l2", "columns": ["order_id"]})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[hidden_id]]


def test_outage_ready_reports_catalog(outage):
    body = _wait_ready_state(outage, "unavailable")
    assert body["status"] == "unavailable"
    assert body["not_ready"] == ["catalog vec"]
    assert body["catalogs"]["vec"]["kind"] == "milvus"


def test_outage_recovers(outage, proxy):
    res = outage
    _wait_ready_state(res, "unavailable")
    proxy.forward()
    _wait_milvus_ok(res)
    t = res.q("res", f"SELECT id, _distance FROM {vs(DOCS, QV, 20)}")
    assert set(t.column("id").to_pylist()) == TRAP
    assert _ready(res)[1]["status"] == "ready"


def test_main_server_ready(vs_server):
    r = requests.get(f"{vs_server.http_base}/ready", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "catalogs": {"vec": {"kind": "milvus", "status": "ready"},
                                                        "lake": {"kind": "iceberg", "status": "ready"}}}
