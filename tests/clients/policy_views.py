"""The DESIGN §4 oracle side: a token's secure views, rebuilt in DuckDB.

Given a token definition (the JSON body sent to ``POST /v1/tokens``), the
lake's source tables and the operator's column classification, build an
in-memory DuckDB database in which ``lake.<ns>.<table>`` holds exactly what
the token may see:

* a table exists iff some grant matches it (the most specific grant wins:
  exact name > longer glob > shorter glob > ``*``; it also keeps every
  mask a broader matching grant puts on a column it grants and does not
  mask itself);
* only granted columns exist, in the table's column order; attachment
  columns only with ``allow_attachments``, vector columns only with
  ``can_export_vectors``;
* masked columns hold the masked value (``hash``, ``redact``, ``null``,
  ``partial(a,b)``); ``hash`` and ``partial`` of a number, date or
  timestamp mask the value's text (``value_text``);
* rows: sensitivity <= max_sensitivity (NULL sensitivity invisible) AND
  (no allow rule OR some allow rule IS TRUE) AND every deny rule IS FALSE.
  Rules are evaluated over the raw (unmasked) columns, with ``token.<attr>``
  replaced by the attribute's literal value.

This module is deliberately independent of sluice: the oracle must not share
code (or bugs) with the system under test.
"""

from __future__ import annotations

import dataclasses
import re

import blake3
import duckdb
import pyarrow as pa

CATALOG = "lake"
DEFAULT_ROW_LIMIT = 10000
_TOKEN_ATTR = re.compile(r"\btoken\.([A-Za-z_][A-Za-z0-9_]*)\b")
_PARTIAL = re.compile(r"^\s*partial\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class TableView:
    """What one token sees of one table."""

    fq_name: str                 # lake.sales.orders
    columns: list[str]           # visible columns, in table order
    hidden_columns: list[str]    # table columns the token cannot reference
    select_list: list[str]       # DuckDB expressions (masked) aliased to the column name
    where: str                   # DuckDB row predicate over raw columns



#: The key of sluice's `hash` mask in these tests (written into the test
#: config as `[policy] mask_key`): `hash` is keyed BLAKE3 under a key
#: derived from it (the `blake3` package is an implementation independent
#: of the Rust crate sluice uses).
MASK_KEY = "sluice-conformance-mask-key"
#: BLAKE3 `derive_key` context of the mask key (planner/src/masks.rs).
HASH_KEY_CONTEXT = "sluice 2026-12-07 hash mask"
_HASH_KEY = blake3.blake3(MASK_KEY.encode(), derive_key_context=HASH_KEY_CONTEXT).digest()


def mask_hash(value):
    """sluice's `hash` mask of one text value (None stays None)."""
    if value is None:
        return None
    return blake3.blake3(value.encode("utf-8"), key=_HASH_KEY).hexdigest()


def register_udfs(con) -> None:
    """Makes `sluice_hash(varchar)` available in a DuckDB connection."""
    con.create_function("sluice_hash", mask_hash, [duckdb.sqltypes.VARCHAR], duckdb.sqltypes.VARCHAR,
                        null_handling="special")


def grant_specificity(pattern: str, table: str) -> int | None:
    """How specifically a grant's ``table`` pattern matches ``table``
    (fully qualified); None if it does not match."""
    if pattern == table:
        return 1 << 30
    if pattern == "*":
        return 0
    if not pattern.endswith(".*"):
        return None
    prefix = pattern[:-2]
    if not table.startswith(prefix + ".") or len(table) == len(prefix) + 1:
        return None
    return prefix.count(".") + 1


def grant_for(token: dict, table: str) -> dict | None:
    best, best_s = None, -1
    for g in token.get("grants", []):
        s = grant_specificity(g["table"], table)
        if s is not None and s > best_s:
            best, best_s = g, s
    return best


def sql_literal(value) -> str:
    """A DuckDB (and DataFusion) SQL literal for a JSON attribute value."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"unsupported attribute value {value!r}")


def bind_rule(rule: str, attributes: dict) -> str:
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in attributes:
            raise KeyError(f"rule {rule!r} uses token.{key}, which the token lacks")
        return sql_literal(attributes[key])

    return _TOKEN_ATTR.sub(sub, rule)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def mask_expr(column: str, mask: str, arrow_type: pa.DataType) -> str:
    """DuckDB expression computing the masked value of ``column``."""
    col = quote_ident(column)
    is_text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    text = col if is_text else value_text(col, arrow_type)
    m = mask.strip().lower()
    if m == "hash":
        return f"sluice_hash({text})"
    if m == "null":
        return f"CAST(NULL AS {_duck_type(arrow_type)})"
    if m == "redact":
        if is_text:
            # A constant: NULLs are redacted too (no NULL-ness leak).
            return "CAST('[REDACTED]' AS VARCHAR)"
        return f"CAST(NULL AS {_duck_type(arrow_type)})"
    pm = _PARTIAL.match(m)
    if pm:
        a, b = int(pm.group(1)), int(pm.group(2))
        n = f"length({text})"
        return (
            f"CASE WHEN {text} IS NULL THEN NULL "
            f"WHEN {n} <= {a + b} THEN repeat('*', {n}) "
            f"ELSE left({text}, {a}) || repeat('*', {n} - {a + b}) || right({text}, {b}) END"
        )
    raise ValueError(f"unknown mask {mask!r}")


def value_text(col: str, arrow_type: pa.DataType) -> str:
    """DuckDB expression for the text a ``hash`` / ``partial`` mask reads
    from a non-text value: the value cast to text as Arrow casts it (what
    sluice's secure view does before masking). Numbers and dates render
    alike in both engines; a timestamp is ISO 8601 with a ``T`` and its
    fraction only when there is one (3 digits for whole milliseconds, else
    6), where DuckDB's own CAST writes a space."""
    if pa.types.is_timestamp(arrow_type):
        if arrow_type.tz is not None:
            raise TypeError("masks of zoned timestamps are not modelled")
        return (
            f"CASE WHEN microsecond({col}) % 1000000 = 0 THEN strftime({col}, '%Y-%m-%dT%H:%M:%S') "
            f"WHEN microsecond({col}) % 1000 = 0 THEN strftime({col}, '%Y-%m-%dT%H:%M:%S.%g') "
            f"ELSE strftime({col}, '%Y-%m-%dT%H:%M:%S.%f') END"
        )
    return f"CAST({col} AS VARCHAR)"


def effective_masks(token: dict, table: str, grant: dict) -> dict[str, str]:
    """The masks of ``grant`` (the most specific grant on ``table``) plus,
    for each column it grants and does not mask itself, the first mask any
    other grant matching ``table`` puts on it: a broader grant's mask is
    never lifted by a more specific grant (column names case-insensitive)."""
    masks = dict(grant.get("masks", {}))
    granted = grant.get("columns", "*")
    for g in token.get("grants", []):
        if grant_specificity(g["table"], table) is None:
            continue
        for column, mask in g.get("masks", {}).items():
            is_granted = granted == "*" or "*" in granted or any(c.lower() == column.lower() for c in granted)
            if is_granted and not any(c.lower() == column.lower() for c in masks):
                masks[column] = mask
    return masks


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BLOB"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_list(t):
        return _duck_type(t.value_type) + "[]"
    raise TypeError(f"no DuckDB type for {t}")


def table_view(token: dict, ident: str, source: pa.Table, table_class: dict | None) -> TableView | None:
    """The secure view of ``lake.<ident>`` for ``token``; None if not granted."""
    fq = f"{CATALOG}.{ident}"
    grant = grant_for(token, fq)
    if grant is None:
        return None
    cls = table_class or {}
    attachments = set(cls.get("attachment_columns", []))
    if cls.get("vector_columns") is not None:
        vectors = set(cls["vector_columns"])
    else:  # every list of floating point values
        vectors = {
            f.name
            for f in source.schema
            if (pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type))
            and pa.types.is_floating(f.type.value_type)
        }
    granted = grant.get("columns", "*")
    visible = []
    for f in source.schema:
        if granted != "*" and "*" not in granted and f.name not in granted:
            continue
        if f.name in attachments and not token.get("allow_attachments", False):
            continue
        if f.name in vectors and not token.get("can_export_vectors", False):
            continue
        visible.append(f.name)
    masks = {c.lower(): m for c, m in effective_masks(token, fq, grant).items()}
    select_list = []
    for name in visible:
        expr = quote_ident(name)
        if name.lower() in masks:
            expr = mask_expr(name, masks[name.lower()], source.schema.field(name).type)
        select_list.append(f"{expr} AS {quote_ident(name)}")

    attributes = token.get("attributes", {})
    conds = []
    sens = cls.get("sensitivity_column")
    if sens:
        max_s = int(token.get("max_sensitivity", 0))
        conds.append(f"({quote_ident(sens)} IS NOT NULL AND {quote_ident(sens)} <= {max_s})")
    allow = [bind_rule(r, attributes) for r in grant.get("allow_rules", [])]
    if allow:
        conds.append("(" + " OR ".join(f"(({r}) IS TRUE)" for r in allow) + ")")
    for r in grant.get("deny_rules", []):
        conds.append(f"(({bind_rule(r, attributes)}) IS FALSE)")
    where = " AND ".join(conds) if conds else "TRUE"
    hidden = [f.name for f in source.schema if f.name not in visible]
    return TableView(fq, visible, hidden, select_list, where)


def hidden_columns_by_token(tokens: dict[str, dict], sources: dict[str, pa.Table],
                            table_classes: dict[str, dict]) -> dict[str, set[str]]:
    """token key -> the columns its grants hide in any table of ``sources``
    (names a refusal may mention, which the comparators check for)."""
    hidden: dict[str, set[str]] = {}
    for key, body in tokens.items():
        cols: set[str] = set()
        for ident, source in sources.items():
            view = table_view(body, ident, source, table_classes.get(ident))
            if view is not None:
                cols |= set(view.hidden_columns)
        hidden[key] = cols
    return hidden


@dataclasses.dataclass
class OracleDB:
    """A DuckDB database holding one token's secure views."""

    con: duckdb.DuckDBPyConnection
    views: dict[str, TableView]   # fq name -> view

    @property
    def hidden_columns(self) -> set[str]:
        return {c for v in self.views.values() for c in v.hidden_columns}

    def close(self) -> None:
        self.con.close()


def build_oracle_db(
    token: dict,
    sources: dict[str, pa.Table],
    table_classes: dict[str, dict],
) -> OracleDB:
    """DuckDB in-memory DB with ``lake.<ns>.<table>`` = the token's secure views."""
    con = duckdb.connect(":memory:")
    register_udfs(con)
    con.execute("SET threads TO 1")
    con.execute(f"ATTACH ':memory:' AS {CATALOG}")
    views: dict[str, TableView] = {}
    created_schemas: set[str] = set()
    for ident, src in sources.items():
        view = table_view(token, ident, src, table_classes.get(ident))
        if view is None:
            continue
        ns, name = ident.split(".")
        if ns not in created_schemas:
            con.execute(f"CREATE SCHEMA {CATALOG}.{ns}")
            created_schemas.add(ns)
        reg = f"src_{ns}_{name}"
        con.register(reg, src)
        cols = ", ".join(view.select_list) if view.select_list else "NULL AS _none"
        con.execute(f"CREATE TABLE {view.fq_name} AS SELECT {cols} FROM {reg} WHERE {view.where}")
        con.unregister(reg)
        views[view.fq_name] = view
    return OracleDB(con, views)


def build_full_db(sources: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """DuckDB with every table unrestricted (validates the queries themselves)."""
    con = duckdb.connect(":memory:")
    register_udfs(con)
    con.execute("SET threads TO 1")
    con.execute(f"ATTACH ':memory:' AS {CATALOG}")
    for ns in sorted({i.split(".")[0] for i in sources}):
        con.execute(f"CREATE SCHEMA {CATALOG}.{ns}")
    for ident, src in sources.items():
        reg = "src_" + ident.replace(".", "_")
        con.register(reg, src)
        con.execute(f"CREATE TABLE {CATALOG}.{ident} AS SELECT * FROM {reg}")
        con.unregister(reg)
    return con
