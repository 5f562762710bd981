"""Result comparison across engines (sluice vs DuckDB).

Column types: the Arrow type of every column of sluice's answer must equal
DuckDB's, up to the documented engine differences of
``ENGINE_TYPE_DIFFERENCES`` (each observed on the oracle's queries, each
with its reason); any other type difference is a mismatch. Where both sides
are sluice answers (a peer vs its provider), the types must be identical.

Values are then normalised so that the representations those allowed type
differences imply disappear (Int32 vs Int64 vs HUGEINT, DATE vs midnight
TIMESTAMP, Decimal vs float, list vs tuple); floats compare with a
tolerance; unordered results compare as multisets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from decimal import Decimal

import pyarrow as pa

REL_TOL = 1e-9
ABS_TOL = 1e-7


@dataclasses.dataclass(frozen=True)
class EngineTypeDifference:
    """sluice (DataFusion) answers a column with type ``sluice`` where
    DuckDB answers the same column with type ``duckdb``, for ``reason``."""

    sluice: pa.DataType
    duckdb: pa.DataType
    reason: str


#: The Arrow type differences between sluice and DuckDB that are differences
#: of the engines, not of the answer; each was observed on the oracle's
#: queries (oracle_queries.py and the §4.5 probes). Anything else is a
#: mismatch. (pyarrow's type equality already ignores the name of a list's
#: item field, which is "element" in sluice's Iceberg columns and "l" in
#: DuckDB's: it carries no meaning.)
ENGINE_TYPE_DIFFERENCES: tuple[EngineTypeDifference, ...] = (
    EngineTypeDifference(pa.uint64(), pa.int64(),
                         "row_number(), rank(), dense_rank(), ntile(): DataFusion UInt64, DuckDB BIGINT"),
    EngineTypeDifference(pa.int32(), pa.int64(),
                         "length() and extract()/date_part(): DataFusion Int32, DuckDB BIGINT"),
    EngineTypeDifference(pa.int64(), pa.int32(),
                         "integer literals (SELECT 1, VALUES, CASE ... THEN 1): DataFusion Int64, DuckDB INTEGER"),
    EngineTypeDifference(pa.int64(), pa.float64(),
                         "integer / integer: DataFusion divides integers (Int64), DuckDB's / is DOUBLE division"),
    EngineTypeDifference(pa.int64(), pa.decimal128(38, 0),
                         "sum() of integers: DataFusion Int64, DuckDB HUGEINT (decimal128(38, 0) in Arrow)"),
    EngineTypeDifference(pa.string_view(), pa.string(),
                         "string functions, || and CAST to VARCHAR: DataFusion Utf8View, DuckDB VARCHAR (Utf8)"),
    EngineTypeDifference(pa.large_string(), pa.string(),
                         "string_agg(): DataFusion LargeUtf8, DuckDB VARCHAR (Utf8)"),
    EngineTypeDifference(pa.large_binary(), pa.binary(),
                         "Iceberg binary columns: sluice's Iceberg reader yields LargeBinary, the fixture's pyarrow "
                         "source (DuckDB's input) Binary"),
)

_ALLOWED = {(d.sluice, d.duckdb) for d in ENGINE_TYPE_DIFFERENCES}


def engine_types_match(sluice: pa.DataType, duckdb: pa.DataType) -> bool:
    """The type sluice answered for a column against DuckDB's: equal, or an
    ``ENGINE_TYPE_DIFFERENCES`` entry (also as the item type of lists)."""
    if sluice == duckdb or (sluice, duckdb) in _ALLOWED:
        return True
    for kind in (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list):
        if kind(sluice) and kind(duckdb):
            if pa.types.is_fixed_size_list(sluice) and sluice.list_size != duckdb.list_size:
                return False
            return engine_types_match(sluice.value_type, duckdb.value_type)
    return False


def diff_types(got: pa.Schema, want: pa.Schema, *, types: str) -> str | None:
    """None if the column types agree under ``types`` ("engines": sluice vs
    DuckDB, up to ENGINE_TYPE_DIFFERENCES; "same": two sluice answers,
    identical), else the differing columns."""
    if types == "engines":
        match = engine_types_match
    elif types == "same":
        match = pa.DataType.equals
    else:
        raise ValueError(f"types must be 'engines' or 'same', not {types!r}")
    bad = [
        f"column {i} {got.field(i).name!r}: sluice {got.field(i).type} vs oracle {want.field(i).type}"
        for i in range(len(got))
        if not match(got.field(i).type, want.field(i).type)
    ]
    if not bad:
        return None
    what = "not an allowed engine difference" if types == "engines" else "both are sluice answers"
    return f"column types differ ({what}):\n  " + "\n  ".join(bad)


def table_rows(t: pa.Table) -> list[tuple]:
    """Rows of an Arrow table as tuples (duplicate column names allowed)."""
    cols = [t.column(i).to_pylist() for i in range(t.num_columns)]
    return [tuple(normalize(c[r]) for c in cols) for r in range(t.num_rows)]


def normalize(v):
    if v is None or isinstance(v, (bool, str, bytes)):
        return v
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, dt.datetime):
        if type(v) is not dt.datetime and hasattr(v, "to_pydatetime"):
            # pyarrow returns pandas.Timestamp for ns timestamps when pandas
            # is installed (the Trino tests need it): compare as datetime.
            v = v.to_pydatetime(warn=False)
        return v.replace(tzinfo=None) if v.tzinfo is None else v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    if isinstance(v, (list, tuple)):
        return tuple(normalize(x) for x in v)
    if isinstance(v, dict):
        return tuple((k, normalize(x)) for k, x in sorted(v.items()))
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    return v


def _key(v):
    if v is None:
        return (0,)
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, (int, float)):
        f = float(v)
        if math.isnan(f):
            return (2, math.inf, 1)
        return (2, float(f"{f:.9g}"), 0)
    if isinstance(v, str):
        return (3, v)
    if isinstance(v, bytes):
        return (4, v)
    if isinstance(v, dt.datetime):
        return (5, v.isoformat())
    if isinstance(v, tuple):
        return (6, tuple(_key(x) for x in v))
    return (7, repr(v))


def row_key(row: tuple):
    return tuple(_key(v) for v in row)


def values_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(fa, fb, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def rows_equal(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))


def _short(rows: list[tuple], n: int = 5) -> str:
    out = [repr(r)[:300] for r in rows[:n]]
    if len(rows) > n:
        out.append(f"... ({len(rows)} rows)")
    return "\n    ".join(out) if out else "(no rows)"


def diff_results(
    got: pa.Table,
    want: pa.Table,
    *,
    ordered: bool,
    check_names: bool,
    types: str | None = "engines",
) -> str | None:
    """None if ``got`` (sluice's answer) matches ``want``, else a
    human-readable difference. ``types``: "engines" when ``want`` is
    DuckDB's answer (types equal up to ENGINE_TYPE_DIFFERENCES), "same"
    when it is another sluice answer (types identical), None only for a
    pure-Python reference table whose types pyarrow inferred (values only)."""
    if got.num_columns != want.num_columns:
        return (
            f"column count differs: sluice {got.num_columns} {got.column_names} "
            f"vs oracle {want.num_columns} {want.column_names}"
        )
    if check_names and [n.lower() for n in got.column_names] != [n.lower() for n in want.column_names]:
        return f"column names differ: sluice {got.column_names} vs oracle {want.column_names}"
    if types is not None:
        diff = diff_types(got.schema, want.schema, types=types)
        if diff is not None:
            return diff
    g, w = table_rows(got), table_rows(want)
    if len(g) != len(w):
        return _describe(g, w, f"row count differs: sluice {len(g)} vs oracle {len(w)}")
    if not ordered:
        g.sort(key=row_key)
        w.sort(key=row_key)
    for i, (rg, rw) in enumerate(zip(g, w)):
        if not rows_equal(rg, rw):
            return _describe(g[i:], w[i:], f"first difference at {'row' if ordered else 'sorted row'} {i}")
    return None


def _describe(g: list[tuple], w: list[tuple], headline: str) -> str:
    gs, ws = set(map(repr, g)), set(map(repr, w))
    only_g = [r for r in g if repr(r) not in ws]
    only_w = [r for r in w if repr(r) not in gs]
    return (
        f"{headline}\n  sluice: {_short(g)}\n  oracle: {_short(w)}"
        f"\n  only in sluice ({len(only_g)}): {_short(only_g, 3)}"
        f"\n  only in oracle ({len(only_w)}): {_short(only_w, 3)}"
    )
