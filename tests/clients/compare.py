"""Result comparison across engines (sluice vs DuckDB).

Values are normalised so that representation differences that carry no
meaning disappear (Int32 vs Int64 vs HUGEINT, DATE vs midnight TIMESTAMP,
Decimal vs float, list vs tuple); floats compare with a tolerance; unordered
results compare as multisets.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pyarrow as pa

REL_TOL = 1e-9
ABS_TOL = 1e-7


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
) -> str | None:
    """None if ``got`` matches ``want``, else a human-readable difference."""
    if got.num_columns != want.num_columns:
        return (
            f"column count differs: sluice {got.num_columns} {got.column_names} "
            f"vs oracle {want.num_columns} {want.column_names}"
        )
    if check_names and [n.lower() for n in got.column_names] != [n.lower() for n in want.column_names]:
        return f"column names differ: sluice {got.column_names} vs oracle {want.column_names}"
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
