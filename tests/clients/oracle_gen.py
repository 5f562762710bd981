"""Seeded random queries for the DESIGN §4 oracle ("the leak oracle at scale").

``generate(token_key, seed, n)`` returns ``n`` ``oracle_queries.Query``
objects for one token: the same (token, seed, n) always gives the same
queries. ``generate_prepared(token_key, seed, n)`` returns ``ParamQuery``
objects: SQL with ``?`` placeholders, the bound values, and the same query
with the values written in as literals (what DuckDB runs).

The generator knows each token's secure views (``policy_views.table_view``)
and writes every query in the SQL subset on which DataFusion 53 and DuckDB
agree (the rules at the top of oracle_queries.py), typed for the token:

* a column the token sees masked as text (``hash`` / ``partial`` of a
  number, date or timestamp) is only used through ``CAST(c AS VARCHAR)``,
  which is the identity on the view and valid on the unrestricted lake;
* hidden columns (not granted, attachment, vector) and ungranted tables are
  referenced on purpose now and then, with their real types, so that the
  refusals are exercised: the oracle requires "not found or not allowed"
  naming the column ("not found" for a table);
* ORDER BY ... LIMIT orders by every output column (a total order on the
  output rows), and windows that need a total order order by the table's
  key, only where the key is visible and unmasked.

Every query must be valid on the unrestricted DuckDB lake
(``Oracle.validate_on_full``): a query that is not is a bug of this file.

Engine differences that keep shapes out (not sluice bugs; each checked
against plain DataFusion 53 and DuckDB):

* ``regexp_like`` does not exist in DuckDB and ``regexp_matches`` not in
  DataFusion: regular expressions go through ``SIMILAR TO`` and
  ``regexp_replace``, which both engines have with the same semantics on
  the patterns used here;
* correlated ``LATERAL`` subqueries and ``CROSS JOIN unnest(t.col)``:
  DataFusion 53 cannot plan them ("Physical plan does not support logical
  expression OuterReferenceColumn"); ``unnest`` is used in select lists and
  over constant arrays;
* ``CAST(timestamp AS VARCHAR)`` (``T`` vs space), ``CAST(double AS
  VARCHAR)`` of unmasked numbers (shortest round trip, but exponents
  differ), ``date + interval`` and ``date_trunc`` of a date in select
  lists (Date32 vs TIMESTAMP), timestamp differences (Duration vs INTERVAL),
  integer ``/``: never emitted;
* ``information_schema.tables`` of DataFusion lists its own
  information_schema views under every catalog: metadata queries exclude
  ``table_schema = 'information_schema'``;
* ``vector_search``: the DuckDB oracle does not model it (no ANN in the
  secure views), so the generator does not emit it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pyarrow as pa

from fixtures import TABLE_CLASSES, make_customers, make_orders, make_salaries
from oracle_queries import Query
from policy_views import effective_masks, grant_for, table_view
from tokens import GENERATED_ORACLE_TOKENS

#: Query features the generator does not emit because they hit a known
#: sluice bug: feature -> (what goes wrong, minimal repro as token: SQL).
#: Remove an entry once the gateway is fixed; the generator then emits the
#: feature again (``Gen.allowed``).
KNOWN_GATEWAY_BUGS: dict[str, tuple[str, str]] = {}

O, C, S = "lake.sales.orders", "lake.sales.customers", "lake.hr.salaries"

#: Column kinds of the lake (the raw types).
RAW_KINDS: dict[str, dict[str, str]] = {
    O: {
        "order_id": "int", "region": "text", "customer_id": "int", "customer_email": "text",
        "amount": "float", "sensitivity": "int", "embedding": "list", "attachment": "bin",
        "created_at": "ts",
    },
    C: {"customer_id": "int", "name": "text", "country": "text", "tier": "text"},
    S: {"employee_id": "int", "name": "text", "salary": "float", "hired_on": "date"},
}
KEYS = {O: "order_id", C: "customer_id", S: "employee_id"}
IDENT = {O: "sales.orders", C: "sales.customers", S: "hr.salaries"}
#: Equi-join keys between tables (both integer columns on the lake).
JOINS = [
    (O, "customer_id", C, "customer_id"),
    (O, "customer_id", S, "employee_id"),
    (C, "customer_id", S, "employee_id"),
    (O, "order_id", S, "employee_id"),
    (O, "customer_id", O, "customer_id"),
    (C, "country", C, "country"),
]

#: Literals per column (values that occur, values masks produce, misses).
TEXT_LITERALS = {
    "region": ["eu", "us", "apac", "[REDACTED]", "EU", "x"],
    "country": ["DE", "FR", "US", "JP", "AU", "de"],
    "tier": ["gold", "silver", "bronze", "[REDACTED]", "g"],
    "name": ["Zoë Jones", "Alice Smith", "Bob Kim", "Al X", "[REDACTED]"],
    "customer_email": ["frank.x53@corp.example", "judy.garcía201@mail.test", "[REDACTED]"],
}
TEXT_PREFIXES = ["a", "j", "Z", "1", "2", "*", "**", "f", "0", "e", "al", "ju", "20", "[", "%", "o'"]
INTERVALS = ["1 day", "3 days", "2 hours", "45 minutes", "1 month", "2 weeks", "1 year", "3 days 4 hours"]
TS_LITERALS = ["2024-01-15 00:00:00", "2024-03-01 12:00:00", "2024-06-01 00:00:00", "2024-09-30 23:59:59",
               "2024-12-01 00:00:00"]
DATE_LITERALS = ["2015-06-01", "2016-01-01", "2018-07-15", "2020-01-01", "2022-12-31"]


@dataclasses.dataclass(frozen=True)
class ParamQuery:
    """A prepared statement: ``sql`` with ``?`` placeholders, ``params``
    bound in order, and ``query`` (same id) with the values as literals."""

    sql: str
    params: tuple
    query: Query


@dataclasses.dataclass(frozen=True)
class Col:
    """One column as the generated query uses it."""

    sql: str        # qualified reference, wrapped in CAST(.. AS VARCHAR) for text-masked values
    kind: str       # int float text ts date list bin
    name: str
    hidden: bool
    masked: bool    # any mask (the values are not the raw ones)


@dataclasses.dataclass
class TableSchema:
    fq: str
    visible: dict[str, str]      # column -> kind in the token's view ("mtext": masked to text)
    hidden: dict[str, str]       # column -> raw kind
    masked: set[str]


def token_schema(token: dict) -> dict[str, TableSchema]:
    """What the token sees of every lake table (absent: not granted)."""
    out = {}
    sources = _sources()
    for fq, raw in RAW_KINDS.items():
        ident = IDENT[fq]
        view = table_view(token, ident, sources[ident], TABLE_CLASSES.get(ident))
        if view is None:
            continue
        masks = {c.lower(): m.strip().lower() for c, m in effective_masks(token, fq, grant_for(token, fq)).items()}
        visible = {}
        for c in view.columns:
            k = raw[c]
            m = masks.get(c.lower())
            if m is not None and k not in ("text",) and (m in ("hash",) or m.startswith("partial")):
                k = "mtext"
            visible[c] = k
        out[fq] = TableSchema(fq, visible, {c: raw[c] for c in view.hidden_columns},
                              {c for c in view.columns if c.lower() in masks})
    return out


_SOURCES: dict | None = None


def _sources() -> dict[str, pa.Table]:
    """The lake's schemas (the generator needs types and names only; the
    rows are made without writing a lake)."""
    global _SOURCES
    if _SOURCES is None:
        rng = random.Random(0)
        _SOURCES = {"sales.orders": make_orders(rng).slice(0, 1), "sales.customers": make_customers(rng).slice(0, 1),
                    "hr.salaries": make_salaries(rng).slice(0, 1)}
    return _SOURCES


class NoColumn(Exception):
    """The token's view of a table lacks a column the shape needs: the
    generator draws another shape."""


class Gen:
    """Query builder for one token; all randomness from ``rng``."""

    P_HIDDEN = 0.045      # a column pick takes a hidden column
    P_UNGRANTED = 0.03    # a table pick takes an ungranted table

    def __init__(self, rng: random.Random, schema: dict[str, TableSchema]):
        self.r = rng
        self.schema = schema

    # -- tables and columns -------------------------------------------------------
    def table(self, allow_ungranted: bool = True) -> str:
        granted = [t for t in RAW_KINDS if t in self.schema]
        ungranted = [t for t in RAW_KINDS if t not in self.schema]
        if ungranted and allow_ungranted and self.r.random() < self.P_UNGRANTED:
            return self.r.choice(ungranted)
        return self.r.choice(granted)

    def col(self, fq: str, alias: str | None, kinds=None, *, allow_hidden: bool = True, name: str | None = None) -> Col | None:
        """A column of ``fq`` (one of ``kinds``), referenced through ``alias``."""
        ts = self.schema.get(fq)
        q = f"{alias}." if alias else ""
        if ts is None:  # ungranted table: the raw columns (refused anyway)
            pool = [(c, k, False) for c, k in RAW_KINDS[fq].items() if name is None or c == name]
        else:
            vis = [(c, "text" if k == "mtext" else k, k == "mtext") for c, k in ts.visible.items()]
            hid = [(c, k, False) for c, k in ts.hidden.items()]
            pool = vis
            if name is None and allow_hidden and hid and self.r.random() < self.P_HIDDEN:
                pool = hid
            if name is not None:
                pool = [x for x in vis + hid if x[0] == name]
        if kinds is not None:
            pool = [x for x in pool if x[1] in kinds]
            if not pool and ts is not None:  # fall back to visible columns of the kind
                pool = [x for x in [(c, "text" if k == "mtext" else k, k == "mtext") for c, k in ts.visible.items()]
                        if x[1] in kinds]
        if not pool:
            raise NoColumn(f"{fq} has no column of kind {kinds} for this token")
        c, k, mtext = self.r.choice(pool)
        hidden = ts is not None and c in ts.hidden
        sql = f"CAST({q}{c} AS VARCHAR)" if mtext else f"{q}{c}"
        return Col(sql, k, c, hidden, ts is not None and c in ts.masked)

    def key_ok(self, fq: str) -> bool:
        """The table's key is visible and unmasked (unique): total orders."""
        ts = self.schema.get(fq)
        k = KEYS[fq]
        return ts is not None and k in ts.visible and k not in ts.masked

    # -- literals -----------------------------------------------------------------
    def int_lit(self, c: Col) -> int:
        if c.name == "sensitivity":
            return self.r.randint(0, 3)
        if c.name in ("customer_id", "employee_id"):
            return self.r.randint(1, 240)
        return self.r.randint(1, 3600)

    def float_lit(self, c: Col) -> str:
        hi = 250000 if c.name == "salary" else 12000
        return f"{self.r.uniform(0, hi):.2f}"

    def text_lit(self, c: Col) -> str:
        pool = TEXT_LITERALS.get(c.name, []) if c.kind == "text" and not c.sql.startswith("CAST") else []
        if pool and self.r.random() < 0.6:
            v = self.r.choice(pool)
        else:
            v = self.r.choice(TEXT_PREFIXES)
        return v

    @staticmethod
    def q(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    # -- expressions --------------------------------------------------------------
    def expr(self, c: Col) -> tuple[str, str]:
        """A projection expression over ``c``: (sql, kind)."""
        r, x = self.r, c.sql
        if c.kind == "int":
            k = r.randint(2, 9)
            return r.choice([
                (x, "int"), (f"{x} + {k}", "int"), (f"{x} * {k}", "int"), (f"{x} % {k}", "int"),
                (f"abs({x} - {k * 10})", "int"), (f"coalesce({x}, -{k})", "int"), (f"greatest({x}, {k * 7})", "int"),
                (f"CAST({x} AS DOUBLE) / {k}", "float"),
                (f"CASE WHEN {x} > {self.int_lit(c)} THEN 'hi' WHEN {x} IS NULL THEN 'none' ELSE 'lo' END", "text"),
            ])
        if c.kind == "float":
            k = r.randint(2, 9)
            return r.choice([
                (x, "float"), (f"round({x}, 1)", "float"), (f"floor({x})", "float"), (f"{x} * {k}", "float"),
                (f"{x} - {k * 100}", "float"), (f"abs({x} - 2500)", "float"), (f"coalesce({x}, 0.0)", "float"),
                (f"{x} / 4.0", "float"),
                (f"CASE WHEN {x} > {self.float_lit(c)} THEN 'big' ELSE 'small' END", "text"),
            ])
        if c.kind == "text":
            p = self.q(self.text_lit(c))
            return r.choice([
                (x, "text"), (f"upper({x})", "text"), (f"lower({x})", "text"), (f"length({x})", "int"),
                (f"substr({x}, 1, 3)", "text"), (f"coalesce({x}, 'none')", "text"), (f"{x} || '#'", "text"),
                (f"replace({x}, 'a', '_')", "text"), (f"reverse({x})", "text"), (f"left({x}, 2)", "text"),
                (f"right({x}, 3)", "text"), (f"strpos({x}, 'a')", "int"), (f"lpad({x}, 8, '*')", "text"),
                (f"regexp_replace({x}, '[0-9]+', '#', 'g')", "text"), (f"starts_with({x}, {p})", "bool"),
                (f"{x} ILIKE {self.q(self.text_lit(c) + '%')}", "bool"), (f"nullif({x}, {p})", "text"),
            ])
        if c.kind == "ts":
            return r.choice([
                (x, "ts"), (f"date_trunc('month', {x})", "ts"), (f"date_trunc('day', {x})", "ts"),
                (f"{x} + INTERVAL '{r.choice(INTERVALS)}'", "ts"), (f"{x} - INTERVAL '{r.choice(INTERVALS)}'", "ts"),
                (f"extract({r.choice(['year', 'month', 'day', 'hour', 'quarter', 'dow'])} FROM {x})", "int"),
                (f"CAST({x} AS DATE)", "date"),
            ])
        if c.kind == "date":
            return r.choice([
                (x, "date"), (f"extract({r.choice(['year', 'month', 'day'])} FROM {x})", "int"),
                (f"CASE WHEN {x} >= DATE '{r.choice(DATE_LITERALS)}' THEN 'new' ELSE 'old' END", "text"),
            ])
        if c.kind == "list":
            return (f"{x}[{r.randint(1, 8)}]", "float")
        if c.kind == "bin":
            return (f"{x} IS NULL", "bool")
        raise AssertionError(c)

    def pred(self, c: Col) -> str:
        """A predicate over ``c``."""
        r, x = self.r, c.sql
        if c.kind == "int":
            a, b = sorted((self.int_lit(c), self.int_lit(c)))
            return r.choice([
                f"{x} > {a}", f"{x} < {b}", f"{x} BETWEEN {a} AND {b}", f"{x} IN ({a}, {b}, {a + 1})",
                f"{x} % {r.randint(2, 7)} = {r.randint(0, 1)}", f"{x} IS NULL", f"{x} IS NOT NULL", f"{x} <> {a}",
            ])
        if c.kind == "float":
            a, b = sorted((float(self.float_lit(c)), float(self.float_lit(c))))
            return r.choice([f"{x} > {a:.2f}", f"{x} <= {b:.2f}", f"{x} BETWEEN {a:.2f} AND {b:.2f}",
                             f"{x} IS NULL", f"{x} IS NOT NULL", f"round({x}) > {a:.0f}"])
        if c.kind == "text":
            v = self.text_lit(c)
            p = self.q(v)
            return r.choice([
                f"{x} = {p}", f"{x} <> {p}", f"{x} LIKE {self.q(v + '%')}", f"{x} ILIKE {self.q('%' + v.upper() + '%')}",
                f"{x} IN ({p}, {self.q(self.text_lit(c))})", f"{x} IS NULL", f"{x} IS NOT NULL",
                f"{x} SIMILAR TO '[a-f0-9]%'", f"{x} SIMILAR TO '%(a|e)[0-9]%'",
                f"regexp_replace({x}, '^[a-m].*$', 'M') = 'M'", f"length({x}) > {r.randint(2, 30)}",
                f"{x} < {p}", f"starts_with({x}, {p})", f"coalesce({x}, '') = ''",
            ])
        if c.kind == "ts":
            a, b = sorted((r.choice(TS_LITERALS), r.choice(TS_LITERALS)))
            return r.choice([
                f"{x} >= TIMESTAMP '{a}'", f"{x} < TIMESTAMP '{b}'", f"{x} BETWEEN TIMESTAMP '{a}' AND TIMESTAMP '{b}'",
                f"{x} + INTERVAL '{r.choice(INTERVALS)}' > TIMESTAMP '{a}'",
                f"{x} - INTERVAL '{r.choice(INTERVALS)}' < TIMESTAMP '{b}'",
                f"extract(month FROM {x}) = {r.randint(1, 12)}",
                f"date_trunc('month', {x}) = TIMESTAMP '2024-0{r.randint(1, 9)}-01 00:00:00'",
                f"CAST({x} AS DATE) >= DATE '2024-0{r.randint(1, 9)}-15'", f"{x} IS NULL",
            ])
        if c.kind == "date":
            a, b = sorted((r.choice(DATE_LITERALS), r.choice(DATE_LITERALS)))
            return r.choice([
                f"{x} >= DATE '{a}'", f"{x} BETWEEN DATE '{a}' AND DATE '{b}'",
                f"{x} + INTERVAL '{r.choice(['6 months', '1 year', '10 days'])}' > DATE '{b}'",
                f"extract(year FROM {x}) = {r.randint(2015, 2023)}", f"{x} IS NULL", f"{x} < DATE '{b}'",
            ])
        if c.kind == "list":
            # Four decimals ending in 5: never equal to a (3-decimal) embedding value, whose
            # float32 vs decimal-literal comparison the engines round differently.
            return f"{x}[{r.randint(1, 8)}] > {r.randint(-500, 499) / 1000 + 0.0005:.4f}"
        if c.kind == "bin":
            return r.choice([f"{x} IS NULL", f"{x} IS NOT NULL"])
        raise AssertionError(c)

    def where(self, fq: str, alias: str | None, n: int | None = None) -> str:
        n = self.r.choice([1, 1, 2, 2, 3]) if n is None else n
        parts = []
        for _ in range(n):
            c = self.col(fq, alias)
            p = self.pred(c)
            if self.r.random() < 0.1:
                p = f"NOT ({p})"
            parts.append(p)
        out = parts[0]
        for p in parts[1:]:
            out = f"({out}) {self.r.choice(['AND', 'AND', 'OR'])} ({p})"
        return out

    def projection(self, fq: str, alias: str | None, n: int | None = None) -> list[tuple[str, str]]:
        n = self.r.randint(1, 4) if n is None else n
        out = []
        for _ in range(n):
            out.append(self.expr(self.col(fq, alias)))
        return out

    @staticmethod
    def select_list(exprs: list[tuple[str, str]]) -> str:
        return ", ".join(f"{e} AS c{i}" for i, (e, _) in enumerate(exprs))

    def order_limit(self, n_out: int) -> str:
        """ORDER BY every output column (a total order on the rows), LIMIT/OFFSET."""
        keys = [f"{i + 1} {self.r.choice(['ASC', 'DESC'])} NULLS {self.r.choice(['FIRST', 'LAST'])}" for i in range(n_out)]
        s = f" ORDER BY {', '.join(keys)} LIMIT {self.r.choice([1, 5, 10, 50])}"
        if self.r.random() < 0.3:
            s += f" OFFSET {self.r.randint(1, 20)}"
        return s

    # -- shapes -------------------------------------------------------------------
    def s_filter(self) -> tuple[str, bool, bool]:
        t = self.table()
        a = self.r.choice([None, "t"])
        exprs = self.projection(t, a)
        sql = f"SELECT {self.select_list(exprs)} FROM {t}{' t' if a else ''}"
        if self.r.random() < 0.85:
            sql += f" WHERE {self.where(t, a)}"
        if self.r.random() < 0.35 and all(k not in ("list",) for _, k in exprs):
            return sql + self.order_limit(len(exprs)), True, True
        return sql, False, True

    def s_star(self) -> tuple[str, bool, bool]:
        t = self.table()
        return f"SELECT * FROM {t} WHERE {self.where(t, None)}", False, True

    def s_distinct(self) -> tuple[str, bool, bool]:
        t = self.table()
        exprs = self.projection(t, None, self.r.randint(1, 2))
        return f"SELECT DISTINCT {self.select_list(exprs)} FROM {t} WHERE {self.where(t, None, 1)}", False, True

    def _group_keys(self, t: str, alias: str | None, n: int) -> list[tuple[str, str]]:
        keys = []
        for _ in range(n):
            c = self.col(t, alias, {"int", "text", "ts", "date", "bin"})
            e, k = self.expr(c)
            if c.kind == "int" and self.r.random() < 0.5:
                e, k = f"{c.sql} % {self.r.randint(2, 5)}", "int"
            keys.append((e, k))
        return keys

    def _aggs(self, t: str, alias: str | None, n: int) -> list[str]:
        out = []
        for _ in range(n):
            c = self.col(t, alias)
            x = c.sql
            choices = ["count(*)", f"count({x})"]
            if c.kind != "list" or self.allowed("count_distinct_list"):
                choices.append(f"count(DISTINCT {x})")
            if c.kind in ("int", "float"):
                choices += [f"sum({x})", f"avg({x})", f"min({x})", f"max({x})", f"max({x}) - min({x})"]
                if c.kind == "float":
                    choices += [f"stddev_samp({x})", f"sum(CASE WHEN {x} > {self.float_lit(c)} THEN 1 ELSE 0 END)"]
            elif c.kind in ("text", "ts", "date"):
                choices += [f"min({x})", f"max({x})"]
                if c.kind == "text":
                    # FILTER (WHERE p IS TRUE), not FILTER (WHERE p): DataFusion 53 counts the rows on
                    # which p is NULL in grouped aggregates (plain DataFusion, no sluice involved:
                    # SELECT k, count(*) FILTER (WHERE v < 'x') FROM t GROUP BY k, v NULL -> counted).
                    choices += [f"max(length({x}))", f"count(*) FILTER (WHERE ({self.pred(c)}) IS TRUE)"]
            elif c.kind == "list":
                choices += [f"avg({x}[1])"]
            out.append(self.r.choice(choices))
        return out

    def s_aggregate(self) -> tuple[str, bool, bool]:
        t = self.table()
        a = self.r.choice([None, "t"])
        keys = self._group_keys(t, a, self.r.randint(0, 2))
        aggs = self._aggs(t, a, self.r.randint(1, 3))
        items = [e for e, _ in keys] + aggs
        sql = f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(items))} FROM {t}{' t' if a else ''}"
        if self.r.random() < 0.6:
            sql += f" WHERE {self.where(t, a)}"
        if keys:
            sql += " GROUP BY " + ", ".join(e for e, _ in keys)
            if self.r.random() < 0.3:
                sql += f" HAVING count(*) > {self.r.randint(1, 20)}"
        if keys and self.r.random() < 0.3:
            return sql + self.order_limit(len(items)), True, True
        return sql, False, True

    def s_grouping_sets(self) -> tuple[str, bool, bool]:
        t = self.table()
        keys = self._group_keys(t, None, 2)
        (k1, _), (k2, _) = keys
        if k1 == k2:
            # GROUPING SETS ((a, a), (a)): DuckDB keeps both sets, DataFusion 53 merges them
            # (half the rows); a degenerate query, drawn again.
            raise NoColumn("the same grouping key twice")
        aggs = self._aggs(t, None, self.r.randint(1, 2))
        items = [k1, k2] + aggs
        # The grand total () over an empty input is one row in DuckDB (and the standard), none in
        # DataFusion 53: sets with () only over unfiltered tables (every view has rows).
        if self.r.random() < 0.5:
            how = self.r.choice([f"ROLLUP ({k1}, {k2})", f"CUBE ({k1}, {k2})", f"GROUPING SETS (({k1}), ({k2}), ())"])
            where = ""
        else:
            how = self.r.choice([f"GROUPING SETS (({k1}, {k2}), ({k1}))", f"GROUPING SETS (({k1}), ({k2}))"])
            where = f" WHERE {self.where(t, None, 1)}"
        sql = f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(items))} FROM {t}{where} GROUP BY {how}"
        return sql, False, True

    def _join_pair(self):
        cands = [j for j in JOINS if all(t in self.schema or self.r.random() < self.P_UNGRANTED for t in (j[0], j[2]))]
        if not cands:
            cands = JOINS
        return self.r.choice(cands)

    def _eq(self, a: Col, b: Col) -> str:
        """Join equality; a side masked to text compares as text on both."""
        if a.sql.startswith("CAST") or b.sql.startswith("CAST"):
            ax = a.sql if a.sql.startswith("CAST") else f"CAST({a.sql} AS VARCHAR)"
            bx = b.sql if b.sql.startswith("CAST") else f"CAST({b.sql} AS VARCHAR)"
            return f"{ax} = {bx}"
        return f"{a.sql} = {b.sql}"

    def s_join(self) -> tuple[str, bool, bool]:
        t1, k1, t2, k2 = self._join_pair()
        self_join = t1 == t2
        j1 = self.col(t1, "a", name=k1)
        j2 = self.col(t2, "b", name=k2)
        on = self._eq(j1, j2)
        if self_join and self.key_ok(t1):
            on += f" AND a.{KEYS[t1]} < b.{KEYS[t1]}"
        if self.r.random() < 0.3:
            on += f" AND {self.pred(self.col(t2, 'b'))}"
        kind = "JOIN" if self_join else self.r.choice(["JOIN", "JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL OUTER JOIN"])
        frm = f"{t1} a {kind} {t2} b ON {on}"
        where = f" WHERE {self.where(t1, 'a', 1)}" if self.r.random() < 0.6 else ""
        if self_join or self.r.random() < 0.5:
            # aggregate over the join (self-joins are large)
            keys = self._group_keys(self.r.choice([t1, t2]), None, 0)
            ka = self.col(t1, "a", {"int", "text", "date"})
            kb = self.col(t2, "b", {"int", "text", "date"})
            group = [e for e, _ in (self.expr(ka),)] if self.r.random() < 0.6 else []
            if group and self.r.random() < 0.5:
                group.append(self.expr(kb)[0])
            aggs = ["count(*)", f"count({j2.sql})", f"count(DISTINCT {j1.sql})"] + self._aggs(t2, "b", 1)
            items = group + self.r.sample(aggs, self.r.randint(1, 3))
            del keys
            sql = f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(items))} FROM {frm}{where}"
            if group:
                sql += " GROUP BY " + ", ".join(group)
            return sql, False, True
        exprs = self.projection(t1, "a", self.r.randint(1, 2)) + self.projection(t2, "b", self.r.randint(1, 2))
        sql = f"SELECT {self.select_list(exprs)} FROM {frm}{where}"
        if self.r.random() < 0.3 and all(k != "list" for _, k in exprs):
            return sql + self.order_limit(len(exprs)), True, True
        return sql, False, True

    def s_subquery(self) -> tuple[str, bool, bool]:
        t1, k1, t2, k2 = self._join_pair()
        outer_key = self.col(t1, "a", name=k1)
        inner_key = self.col(t2, "b", name=k2)
        exprs = self.projection(t1, "a", self.r.randint(1, 2))
        kind = self.r.choice(["in", "not_in", "exists", "not_exists", "scalar_where", "scalar_select", "nested_in"])
        inner_where = self.where(t2, "b", 1)
        ok, ik = outer_key.sql, inner_key.sql
        if ok.startswith("CAST") != ik.startswith("CAST"):
            ok = ok if ok.startswith("CAST") else f"CAST({ok} AS VARCHAR)"
            ik = ik if ik.startswith("CAST") else f"CAST({ik} AS VARCHAR)"
        if kind in ("in", "not_in"):
            if kind == "in":
                cond = f"{ok} IN (SELECT {ik} FROM {t2} b WHERE {inner_where})"
            else:  # NOT IN over a NULL-free list (NULL semantics of NOT IN are a known engine minefield)
                cond = (f"{ok} IS NOT NULL AND {ok} NOT IN (SELECT {ik} FROM {t2} b WHERE {ik} IS NOT NULL "
                        f"AND ({inner_where}))")
        elif kind in ("exists", "not_exists"):
            cond = (f"{'NOT ' if kind == 'not_exists' else ''}EXISTS (SELECT 1 FROM {t2} b WHERE "
                    f"{self._eq(inner_key, outer_key)} AND ({inner_where}))")
        elif kind == "scalar_where":
            c = self.col(t2, "b", {"int", "float"})
            oc = self.col(t1, "a", {"int", "float"})
            cond = f"{oc.sql} > (SELECT {self.r.choice(['avg', 'min', 'max'])}({c.sql}) FROM {t2} b WHERE {inner_where})"
        elif kind == "nested_in":
            cond = (f"{ok} IN (SELECT {ik} FROM {t2} b WHERE {ik} IN "
                    f"(SELECT {ik.replace('b.', 'x.')} FROM {t2} x WHERE {self.where(t2, 'x', 1)}))")
        else:
            agg = self.r.choice(["count(*)", f"count({inner_key.sql})", f"max({inner_key.sql})"])
            exprs.append((f"(SELECT {agg} FROM {t2} b WHERE {self._eq(inner_key, outer_key)})", "int"))
            cond = self.where(t1, "a", 1)
        return f"SELECT {self.select_list(exprs)} FROM {t1} a WHERE {cond}", False, True

    def s_cte(self) -> tuple[str, bool, bool]:
        kind = self.r.choice(["simple", "two", "recursive", "recursive", "reused"])
        if kind == "recursive":
            t = self.table()
            key = self.col(t, "x", {"int"}, name=KEYS[t])
            top = self.r.randint(3, 6)
            extra = f" AND {self.pred(self.col(t, 'x'))}" if self.r.random() < 0.5 else ""
            agg = self.r.choice([f"count({key.sql})", "count(*)", f"min({key.sql})"])
            # Both ways of naming the recursive column: an alias in the seed, a column list.
            head = self.r.choice(["r AS (SELECT 1 AS n", "r(n) AS (SELECT 1"])
            sql = (f"WITH RECURSIVE {head} UNION ALL SELECT n + 1 FROM r WHERE n < {top}) "
                   f"SELECT r.n AS c0, {agg} AS c1 FROM r LEFT JOIN {t} x ON {key.sql} % {top} = r.n - 1{extra} "
                   f"GROUP BY r.n")
            return sql, False, True
        if kind == "reused":
            t = self.table()
            g = self.col(t, None, {"int", "text"})
            # aggregated: pairs of groups of equal size can be millions of rows
            sql = (f"WITH t AS (SELECT {g.sql} AS k, count(*) AS n FROM {t} WHERE {self.where(t, None, 1)} "
                   f"GROUP BY {g.sql}) SELECT a.n AS c0, count(*) AS c1, min(b.k) AS c2 FROM t a JOIN t b "
                   f"ON a.n = b.n AND a.k < b.k GROUP BY a.n")
            return sql, False, True
        if kind == "two":
            t1, k1, t2, k2 = self._join_pair()
            a = self.col(t1, None, name=k1)
            b = self.col(t2, None, name=k2)
            ea = self.expr(self.col(t1, None))[0]
            eb = self.expr(self.col(t2, None))[0]
            on = self._eq(Col("p.k", a.kind, "k", False, False), Col("q.k", b.kind, "k", False, False))
            if a.sql.startswith("CAST") != b.sql.startswith("CAST"):
                on = "CAST(p.k AS VARCHAR) = CAST(q.k AS VARCHAR)"
            sql = (f"WITH p AS (SELECT {a.sql} AS k, {ea} AS v FROM {t1} WHERE {self.where(t1, None, 1)}), "
                   f"q AS (SELECT {b.sql} AS k, {eb} AS w FROM {t2}) ")
            if t1 == t2:  # a self-join on a non-key: aggregated
                sql += f"SELECT p.v AS c0, count(q.w) AS c1 FROM p JOIN q ON {on} GROUP BY p.v"
            else:
                sql += f"SELECT p.v AS c0, q.w AS c1 FROM p JOIN q ON {on}"
            return sql, False, True
        t = self.table()
        exprs = self.projection(t, None, self.r.randint(1, 3))
        inner = ", ".join(f"{e} AS v{i}" for i, (e, _) in enumerate(exprs))
        outer = self.r.choice(["*", "count(*) AS c0", f"v0 AS c0, count(*) AS c1"])
        sql = f"WITH t AS (SELECT {inner} FROM {t} WHERE {self.where(t, None)}) SELECT {outer} FROM t"
        if outer.startswith("v0"):
            sql += " GROUP BY v0"
        return sql, False, outer != "*"

    def s_setop(self) -> tuple[str, bool, bool]:
        # No INTERSECT ALL / EXCEPT ALL: DataFusion 53 keeps every duplicate of the left side
        # (plain DataFusion: VALUES a, a, NULL, NULL INTERSECT ALL VALUES a, NULL -> 4 rows, not 2).
        op = self.r.choice(["UNION", "UNION ALL", "INTERSECT", "EXCEPT"])
        kind = self.r.choice(["int", "text", "text", "int", "ts", "date"])
        sides = []
        for _ in range(2):
            t = self.table()
            c = self.col(t, None, {kind})
            sides.append((t, c))
        if sides[0][1].kind != sides[1][1].kind:
            kind = "int"
            sides = [(t, self.col(t, None, {"int"})) for t, _ in sides]
        parts = [f"SELECT {c.sql} AS c0 FROM {t} WHERE {self.where(t, None, 1)}" for t, c in sides]
        sql = f"{parts[0]} {op} {parts[1]}"
        if self.r.random() < 0.3:
            return f"{sql} ORDER BY 1 NULLS FIRST LIMIT {self.r.choice([3, 10, 40])}", True, True
        return sql, False, True

    def s_window(self) -> tuple[str, bool, bool]:
        t = self.table()
        key = KEYS[t]
        total = self.key_ok(t)
        part = self.col(t, None, {"int", "text", "date"})
        pe = part.sql if part.kind != "int" else f"{part.sql} % {self.r.randint(2, 5)}"
        v = self.col(t, None, {"int", "float"})
        fns = [f"rank() OVER (PARTITION BY {pe} ORDER BY {v.sql} NULLS LAST)",
               f"dense_rank() OVER (ORDER BY {pe} NULLS FIRST)",
               f"count(*) OVER (PARTITION BY {pe})", f"sum({v.sql}) OVER (PARTITION BY {pe})",
               f"max({v.sql}) OVER ()", f"avg({v.sql}) OVER (PARTITION BY {pe})"]
        if total:
            fns += [f"row_number() OVER (PARTITION BY {pe} ORDER BY {key})",
                    f"row_number() OVER (ORDER BY {key} DESC)",
                    f"lag({v.sql}) OVER (PARTITION BY {pe} ORDER BY {key})",
                    f"lead({key}, 2) OVER (ORDER BY {key})",
                    f"sum({v.sql}) OVER (ORDER BY {key} ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)",
                    f"first_value({v.sql}) OVER (PARTITION BY {pe} ORDER BY {key})",
                    f"ntile(2) OVER (ORDER BY {key})",
                    f"sum({v.sql}) OVER (PARTITION BY {pe} ORDER BY {key})"]
        chosen = self.r.sample(fns, self.r.randint(1, 2))
        base = self.expr(self.col(t, None))[0]
        items = [base] + chosen
        sql = f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(items))} FROM {t}"
        if self.r.random() < 0.5:
            sql += f" WHERE {self.where(t, None, 1)}"
        if total and self.r.random() < 0.3:
            # top-n per group: a total order inside every partition
            sql = (f"SELECT c0, rn AS c1 FROM (SELECT {base} AS c0, row_number() OVER (PARTITION BY {pe} "
                   f"ORDER BY {v.sql} DESC NULLS LAST, {key}) AS rn FROM {t}) w WHERE rn <= {self.r.randint(1, 4)}")
        return sql, False, True

    def s_unnest(self) -> tuple[str, bool, bool]:
        t = self.table()
        kind = self.r.choice(["embedding", "const_join", "const"])
        if kind == "embedding" and t == O:
            e = self.col(O, None, name="embedding")
            return (f"SELECT order_id AS c0, unnest({e.sql}) AS c1 FROM {O} WHERE {self.where(O, None, 1)}",
                    False, True)
        key = self.col(t, "x", {"int"}, name=KEYS[t])
        n = self.r.randint(2, 4)
        arr = ", ".join(str(i) for i in range(n))
        if kind == "const":
            return f"SELECT unnest([{arr}]) AS c0", False, True
        return (f"SELECT u.k AS c0, count({key.sql}) AS c1 FROM (SELECT unnest([{arr}]) AS k) u "
                f"LEFT JOIN {t} x ON {key.sql} % {n} = u.k AND ({self.where(t, 'x', 1)}) GROUP BY u.k", False, True)

    def s_values_join(self) -> tuple[str, bool, bool]:
        t = self.table()
        c = self.col(t, "x", {"text"})
        lits = [self.text_lit(c) for _ in range(3)]
        vals = ", ".join(f"({self.q(v)}, {i})" for i, v in enumerate(lits))
        sql = (f"SELECT v.label AS c0, count(*) AS c1 FROM {t} x JOIN (VALUES {vals}) AS v(code, label) "
               f"ON {c.sql} = v.code GROUP BY v.label")
        return sql, False, True

    def s_metadata(self) -> tuple[str, bool, bool]:
        k = self.r.randint(0, 3)
        if k == 0:
            return ("SELECT table_schema AS c0, table_name AS c1 FROM information_schema.tables "
                    "WHERE table_catalog = 'lake' AND table_schema <> 'information_schema'"), False, True
        if k == 1:
            t = self.r.choice(list(RAW_KINDS))
            ns, name = IDENT[t].split(".")
            return ("SELECT column_name AS c0 FROM information_schema.columns WHERE table_catalog = 'lake' "
                    f"AND table_schema = '{ns}' AND table_name = '{name}'"), False, True
        if k == 2:
            c = self.r.choice([c for t in RAW_KINDS.values() for c in t])
            return ("SELECT table_name AS c0, count(*) AS c1 FROM information_schema.columns WHERE table_catalog = "
                    f"'lake' AND column_name = '{c}' GROUP BY table_name"), False, True
        return ("SELECT table_schema AS c0, count(*) AS c1 FROM information_schema.columns WHERE table_catalog = 'lake' "
                "AND table_schema <> 'information_schema' GROUP BY table_schema"), False, True

    SHAPES = {
        "filter": 14, "star": 2, "distinct": 3, "aggregate": 10, "grouping_sets": 4, "join": 10, "subquery": 8,
        "cte": 7, "setop": 6, "window": 7, "unnest": 3, "values_join": 2, "metadata": 2,
    }

    @staticmethod
    def allowed(feature: str) -> bool:
        return feature not in KNOWN_GATEWAY_BUGS

    def one(self) -> tuple[str, str, bool, bool]:
        shapes = [s for s in self.SHAPES if self.allowed(s)]
        while True:
            shape = self.r.choices(shapes, weights=[self.SHAPES[s] for s in shapes])[0]
            try:
                sql, ordered, names = getattr(self, f"s_{shape}")()
            except NoColumn:
                continue
            return shape, sql, ordered, names


def _rng(token_key: str, seed: int, what: str) -> random.Random:
    return random.Random(f"{what}:{seed}:{token_key}")


def generate(token_key: str, seed: int, n: int, tokens: dict[str, dict] = GENERATED_ORACLE_TOKENS) -> list[Query]:
    """``n`` queries for ``token_key``, deterministic in (token, seed, n)."""
    g = Gen(_rng(token_key, seed, "queries"), token_schema(tokens[token_key]))
    out = []
    for i in range(n):
        shape, sql, ordered, names = g.one()
        out.append(Query(f"{token_key}-s{seed}-{i:05d}-{shape}", sql, ordered=ordered, names=names))
    return out


def _literal(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    raise TypeError(v)


def generate_prepared(token_key: str, seed: int, n: int,
                      tokens: dict[str, dict] = GENERATED_ORACLE_TOKENS) -> list[ParamQuery]:
    """``n`` parameterised queries for ``token_key`` (deterministic): a
    projection and one to three predicates with bound values, sometimes
    joined or aggregated."""
    r = _rng(token_key, seed, "prepared")
    g = Gen(r, token_schema(tokens[token_key]))
    out = []
    for i in range(n):
        while True:
            try:
                out.append(_one_prepared(g, r, token_key, seed, i))
                break
            except NoColumn:
                continue
    return out


def _one_prepared(g: Gen, r: random.Random, token_key: str, seed: int, i: int) -> ParamQuery:
    if True:
        t = g.table()
        a = "t"
        params: list = []
        conds = []
        for _ in range(r.randint(1, 3)):
            c = g.col(t, a, {"int", "float", "text", "ts"})
            if c.kind == "int":
                v = g.int_lit(c)
                op = r.choice(["=", ">", "<", "<>", ">="])
                conds.append((f"{c.sql} {op} ?", [v]))
            elif c.kind == "float":
                lo, hi = sorted((float(g.float_lit(c)), float(g.float_lit(c))))
                conds.append(r.choice([(f"{c.sql} > ?", [lo]), (f"{c.sql} BETWEEN ? AND ?", [lo, hi])]))
            elif c.kind == "text":
                v = g.text_lit(c)
                conds.append(r.choice([(f"{c.sql} = ?", [v]), (f"{c.sql} LIKE ?", [v + "%"]),
                                       (f"{c.sql} IN (?, ?)", [v, g.text_lit(c)]),
                                       (f"coalesce({c.sql}, ?) <> ?", ["none", v])]))
            else:
                v = dt.datetime.fromisoformat(r.choice(TS_LITERALS))
                conds.append(r.choice([(f"{c.sql} >= ?", [v]), (f"{c.sql} < ?", [v])]))
        where_p = " AND ".join(s for s, _ in conds)
        for _, vs in conds:
            params.extend(vs)
        if r.random() < 0.5:
            exprs = g.projection(t, a, r.randint(1, 3))
            head = f"SELECT {g.select_list(exprs)} FROM {t} {a}"
            tail = ""
        else:
            key = g._group_keys(t, a, 1)[0][0]
            head = f"SELECT {key} AS c0, count(*) AS c1 FROM {t} {a}"
            tail = f" GROUP BY {key}"
        sql = f"{head} WHERE {where_p}{tail}"
        lit_sql = sql
        for v in params:
            lit_sql = lit_sql.replace("?", _literal(v), 1)
        qid = f"{token_key}-p{seed}-{i:05d}"
        return ParamQuery(sql, tuple(params), Query(qid, lit_sql, ordered=False, names=True))
