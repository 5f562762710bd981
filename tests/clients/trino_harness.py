"""Client side of the Trino HTTP frontend tests (DESIGN §5 "Trino HTTP").

* ``trino_connect``: a real ``trino`` 0.340 DB-API connection to a sluice
  server (Basic or Bearer auth over plain http, which the client refuses
  unless ``allow_insecure_auth=True``);
* ``RawTrino``: the protocol by hand with ``requests`` (POST /v1/statement,
  GET/DELETE nextUri, /v1/query, /v1/info) for what the client hides:
  headers, page boundaries, retries, exact JSON encodings;
* ``Deadline``: a ``stats_callback`` that aborts a DB-API query which runs
  past a time limit, so a server that ignores a limit fails the test
  instead of hanging it;
* result normalisation for comparing Trino rows with ADBC (Arrow) results.

The trino client's own behaviour these helpers rely on (trino 0.340):

* ``dbapi.Connection(..., allow_insecure_auth=True)``: without it any
  ``auth`` over ``http`` raises ``TrinoAuthError`` ("TLS/SSL is required");
* ``BasicAuthentication(user, password)`` -> ``requests`` basic auth;
  ``JWTAuthentication(token)`` -> ``Authorization: Bearer <token>``;
* a non-2xx answer raises ``trino.exceptions.HttpError("error <status>: …")``
  (not a DB-API error); a 200 answer with ``error`` raises
  ``TrinoUserError`` (errorType USER_ERROR), ``TrinoExternalError``
  (EXTERNAL) or ``TrinoQueryError`` (anything else, e.g.
  INSUFFICIENT_RESOURCES).
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import struct
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import requests

import compare

#: What the tests send as ``X-Trino-User``. sluice records it but never
#: authorises by it.
TEST_USER = "sluice-test"
#: Per-request HTTP timeout of raw requests (a GET may wait ``max_wait``).
HTTP_TIMEOUT_S = 60
#: How long a raw or DB-API query may take before the test gives up.
QUERY_DEADLINE_S = 120.0

NEXT_URI_PATH = re.compile(r"^/v1/statement/executing/(?P<id>[^/]+)/(?P<slug>[^/]+)/(?P<token>\d+)$")
WWW_AUTHENTICATE = 'Basic realm="Trino"'
ROW_LIMIT_WARNING = "SLUICE_ROW_LIMIT"
TRUNCATED_HEADER = "X-Sluice-Truncated"
#: Terminal states of ``stats.state``.
DONE_STATES = {"FINISHED", "FAILED"}

#: ``[trino]`` settings of the second server the Trino protocol tests use
#: (conftest ``trino_small``): small pages, a short client timeout, two
#: query slots and a short run-time cap, so paging, reaping, queueing and
#: time limits are observable in seconds. Only that server sets ``[trino]``;
#: the main server runs on the defaults.
TRINO_SMALL_CONFIG = """[trino]
page_max_rows = 100
page_max_bytes = 65536
max_wait = "1s"
client_timeout = "2s"
max_concurrent_queries = 2
max_run_time = "5s"
"""
TRINO_SMALL = {
    "page_max_rows": 100,
    "page_max_bytes": 65536,
    "client_timeout_s": 2.0,
    "max_concurrent_queries": 2,
    "max_run_time_s": 5.0,
}

#: Trino-vs-Flight oracles of this session (conftest prints their summary).
TRINO_ORACLES: list = []


# --- DB-API ------------------------------------------------------------------------

def trino_auth(secret: str, mode: str = "basic", user: str = TEST_USER):
    from trino.auth import BasicAuthentication, JWTAuthentication

    if mode == "basic":
        return BasicAuthentication(user, secret)
    if mode == "bearer":
        return JWTAuthentication(secret)
    raise ValueError(mode)


def trino_connect(server, secret: str, *, mode: str = "basic", user: str = TEST_USER, **kwargs):
    """A ``trino.dbapi`` connection to ``server``'s HTTP port authenticated
    with the token ``secret`` (``basic``: any user name, password = secret;
    ``bearer``: the client's JWT authentication, which sends the secret as
    a bearer token). Extra keyword arguments go to ``trino.dbapi.connect``
    (``catalog``, ``schema``, ``session_properties``,
    ``legacy_prepared_statements`` ...)."""
    import trino

    kwargs.setdefault("request_timeout", HTTP_TIMEOUT_S)
    return trino.dbapi.connect(
        host="127.0.0.1",
        port=server.http_port,
        user=user,
        http_scheme="http",
        auth=trino_auth(secret, mode, user),
        allow_insecure_auth=True,
        **kwargs,
    )


class DeadlineExceeded(AssertionError):
    pass


class Deadline:
    """``stats_callback`` for ``conn.cursor(stats_callback=…)``: raises
    ``DeadlineExceeded`` from inside the client's polling loop once
    ``seconds`` have passed, so a query the server never ends cannot hang
    the test. The caller cancels the cursor afterwards."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.monotonic()
        self.states: list[str] = []

    def __call__(self, stats: dict) -> None:
        state = stats.get("state")
        if state and (not self.states or self.states[-1] != state):
            self.states.append(state)
        if time.monotonic() - self.start > self.seconds:
            raise DeadlineExceeded(f"query still running after {self.seconds}s (states seen: {self.states})")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def run_dbapi(conn, sql: str, params=None, *, deadline_s: float = QUERY_DEADLINE_S):
    """Runs ``sql`` on a new cursor; returns ``(description, rows)``. The
    cursor is not closed (closing sends DELETE, which tests check on their
    own)."""
    guard = Deadline(deadline_s)
    cur = conn.cursor(stats_callback=guard)
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        rows = cur.fetchall()
        return cur.description, rows
    except DeadlineExceeded:
        _quiet_cancel(cur)
        raise


def _quiet_cancel(cur) -> None:
    try:
        cur.cancel()
    except Exception:  # noqa: BLE001 - the test already fails for the deadline
        pass


class TrinoConnections:
    """One DB-API connection per (token key, auth mode), made on first use."""

    def __init__(self, server, tokens):
        self.server = server
        self.tokens = tokens
        self._conns: dict[tuple[str, str], Any] = {}

    def get(self, key: str, mode: str = "basic"):
        if (key, mode) not in self._conns:
            self._conns[(key, mode)] = trino_connect(self.server, self.tokens[key]["secret"], mode=mode)
        return self._conns[(key, mode)]

    def query(self, key: str, sql: str, params=None, mode: str = "basic"):
        """``(description, rows)`` of ``sql`` run as token ``key``."""
        return run_dbapi(self.get(key, mode), sql, params)

    def rows(self, key: str, sql: str, params=None, mode: str = "basic") -> list[list]:
        return self.query(key, sql, params, mode)[1]

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        self._conns.clear()


def error_of(fn, *args, **kwargs):
    """Calls ``fn``; returns the ``TrinoQueryError`` it raised (fails if it
    raised nothing or something else)."""
    import trino.exceptions as te

    try:
        fn(*args, **kwargs)
    except te.TrinoQueryError as e:
        return e
    except Exception as e:  # noqa: BLE001 - reported as the failure
        raise AssertionError(f"expected a Trino query error, got {type(e).__name__}: {e}") from e
    raise AssertionError("expected a Trino query error, the statement succeeded")


# --- the protocol by hand ------------------------------------------------------------

def auth_header(secret: str, mode: str = "bearer", user: str = TEST_USER) -> str:
    if mode == "bearer":
        return f"Bearer {secret}"
    if mode == "basic":
        return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    raise ValueError(mode)


class Page:
    """One HTTP answer of the statement protocol."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.status = response.status_code
        self.headers = response.headers
        self.json: dict = response.json() if self.status == 200 else {}

    @property
    def next_uri(self) -> str | None:
        return self.json.get("nextUri")

    @property
    def state(self) -> str | None:
        return (self.json.get("stats") or {}).get("state")

    @property
    def data(self) -> list:
        return self.json.get("data") or []

    @property
    def error(self) -> dict | None:
        return self.json.get("error")

    def __repr__(self) -> str:
        return f"Page(status={self.status}, state={self.state}, rows={len(self.data)}, next={self.next_uri})"


class RawTrino:
    """The Trino statement protocol with ``requests`` against one server,
    authenticated as one token (``secret``; ``None``: no Authorization)."""

    def __init__(self, base: str, secret: str | None, *, mode: str = "bearer", user: str = TEST_USER,
                 timeout_s: float = HTTP_TIMEOUT_S):
        self.base = base.rstrip("/")
        self.secret = secret
        self.mode = mode
        self.user = user
        self.timeout_s = timeout_s
        self.http = requests.Session()

    def headers(self, extra: dict | None = None) -> dict:
        h = {"X-Trino-User": self.user, "X-Trino-Source": "sluice-tests"}
        if self.secret is not None:
            h["Authorization"] = auth_header(self.secret, self.mode, self.user)
        h.update(extra or {})
        return h

    def post(self, sql: str, headers: dict | None = None, **kwargs) -> Page:
        h = self.headers({"Content-Type": "text/plain; charset=utf-8", **(headers or {})})
        return Page(self.http.post(f"{self.base}/v1/statement", data=sql.encode(), headers=h,
                                   timeout=self.timeout_s, **kwargs))

    def get(self, uri: str, headers: dict | None = None) -> Page:
        return Page(self.http.get(uri, headers=self.headers(headers), timeout=self.timeout_s))

    def delete(self, uri: str) -> requests.Response:
        return self.http.delete(uri, headers=self.headers(), timeout=self.timeout_s)

    def advance(self, page: Page) -> Page:
        """GET the page's nextUri (the next page)."""
        assert page.next_uri, f"no nextUri: {page.json}"
        nxt = self.get(page.next_uri)
        assert nxt.status == 200, (nxt.status, nxt.response.text[:500])
        return nxt

    def finish(self, page: Page, *, deadline_s: float = QUERY_DEADLINE_S) -> list[Page]:
        """Follows nextUri from ``page`` to the end; the pages after it.
        Cancels the query and fails past ``deadline_s``."""
        start = time.monotonic()
        out: list[Page] = []
        while page.next_uri:
            if time.monotonic() - start > deadline_s:
                self.delete(page.next_uri)
                raise DeadlineExceeded(f"query not done after {deadline_s}s: {out[-3:]}")
            page = self.advance(page)
            out.append(page)
        return out

    def run(self, sql: str, headers: dict | None = None, *, deadline_s: float = QUERY_DEADLINE_S) -> list[Page]:
        """POST then follow nextUri to the end; every page (the POST
        answer first)."""
        page = self.post(sql, headers)
        assert page.status == 200, (page.status, page.response.text[:500])
        return [page] + self.finish(page, deadline_s=deadline_s)

    def wait_for_data(self, page: Page, *, deadline_s: float = QUERY_DEADLINE_S) -> Page:
        """Advance until a page with rows (or the end)."""
        start = time.monotonic()
        while not page.data and page.next_uri:
            if time.monotonic() - start > deadline_s:
                raise DeadlineExceeded(f"no data after {deadline_s}s: {page}")
            page = self.advance(page)
        return page

    # -- query management -------------------------------------------------------------
    def queries(self) -> list[dict]:
        """GET /v1/query: the caller's live queries."""
        r = self.http.get(f"{self.base}/v1/query", headers=self.headers(), timeout=self.timeout_s)
        assert r.status_code == 200, (r.status_code, r.text[:500])
        out = r.json()
        assert isinstance(out, list), out
        return out

    def query_ids(self) -> set[str]:
        return {q["queryId"] for q in self.queries()}

    def query_info(self, query_id: str) -> requests.Response:
        return self.http.get(f"{self.base}/v1/query/{query_id}", headers=self.headers(), timeout=self.timeout_s)

    def close(self) -> None:
        self.http.close()


def columns_of(pages: list[Page]) -> list[dict]:
    for p in pages:
        if p.json.get("columns"):
            return p.json["columns"]
    raise AssertionError(f"no page carries columns: {pages}")


def rows_of(pages: list[Page]) -> list[list]:
    return [row for p in pages for row in p.data]


def final_error(pages: list[Page]) -> dict | None:
    return pages[-1].error


def wait_until(predicate, *, timeout_s: float, interval_s: float = 0.2, what: str = "condition"):
    """Polls ``predicate`` until it returns a true value; that value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{what} not reached after {timeout_s}s (last: {last!r})")


def host_of(uri: str) -> str:
    return urlsplit(uri).netloc


# --- result normalisation (Trino rows vs Arrow tables) --------------------------------

def _f32(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    return struct.unpack("f", struct.pack("f", x))[0]


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        or (hasattr(pa.types, "is_list_view") and (pa.types.is_list_view(t) or pa.types.is_large_list_view(t)))
    )


def norm_value(v, t: pa.DataType | None):
    """One value (from the trino client or from ``pyarrow.to_pylist``)
    in a comparable form, guided by the Arrow type of the ADBC column:
    maps (ADBC: list of pairs; Trino: dict) -> sorted tuple of pairs;
    structs (ADBC: dict; Trino: row tuple) -> tuple in field order;
    float32 -> rounded to float32 on both sides (Trino sends ``real`` as a
    JSON number); pandas timestamps -> datetime; then ``compare.normalize``."""
    if v is None:
        return None
    if t is not None:
        if pa.types.is_dictionary(t):
            t = t.value_type
        if pa.types.is_map(t):
            pairs = v.items() if isinstance(v, dict) else v
            items = [(norm_value(k, t.key_type), norm_value(x, t.item_type)) for k, x in pairs]
            return tuple(sorted(items, key=lambda kv: compare._key(kv[0])))
        if pa.types.is_struct(t):
            fields = [t.field(i) for i in range(t.num_fields)]
            if isinstance(v, dict):
                return tuple(norm_value(v.get(f.name), f.type) for f in fields)
            if isinstance(v, (list, tuple)) and len(v) == len(fields):
                return tuple(norm_value(x, f.type) for x, f in zip(v, fields))
        if _is_list(t) and isinstance(v, (list, tuple)):
            return tuple(norm_value(x, t.value_type) for x in v)
        if (pa.types.is_float32(t) or pa.types.is_float16(t)) and isinstance(v, (int, float)) \
                and not isinstance(v, bool):
            return _f32(float(v))
    if isinstance(v, dt.datetime) and type(v) is not dt.datetime and hasattr(v, "to_pydatetime"):
        v = v.to_pydatetime(warn=False)
    if isinstance(v, dict):
        return tuple(sorted(((norm_value(k, None), norm_value(x, None)) for k, x in v.items()),
                            key=lambda kv: compare._key(kv[0])))
    if isinstance(v, (list, tuple)):
        return tuple(norm_value(x, None) for x in v)
    return compare.normalize(v)


def arrow_rows(table: pa.Table) -> list[tuple]:
    types = [table.schema.field(i).type for i in range(table.num_columns)]
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return [tuple(norm_value(c[r], t) for c, t in zip(cols, types)) for r in range(table.num_rows)]


def trino_rows(rows: list[list], types: list[pa.DataType] | None) -> list[tuple]:
    out = []
    for row in rows:
        if types is not None and len(types) == len(row):
            out.append(tuple(norm_value(v, t) for v, t in zip(row, types)))
        else:
            out.append(tuple(norm_value(v, None) for v in row))
    return out


ONE_MICROSECOND = dt.timedelta(microseconds=1)


def values_equal(a, b) -> bool:
    """``compare.values_equal``, plus: timestamps equal within 1 µs (the
    trino client rounds nanoseconds to microseconds half-even; pyarrow
    truncates), nested tuples compared element-wise with the same rules."""
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return abs(a - b) <= ONE_MICROSECOND
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return compare.values_equal(a, b)


def rows_equal(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))


def diff_trino_vs_arrow(
    names: list[str], rows: list[list], want: pa.Table, *, ordered: bool, check_names: bool
) -> str | None:
    """None if the Trino answer (column ``names``, mapped ``rows``) equals
    the Arrow table ``want``; else a readable difference."""
    if len(names) != want.num_columns:
        return f"column count differs: trino {len(names)} {names} vs flight {want.num_columns} {want.column_names}"
    if check_names and [n.lower() for n in names] != [n.lower() for n in want.column_names]:
        return f"column names differ: trino {names} vs flight {want.column_names}"
    types = [want.schema.field(i).type for i in range(want.num_columns)]
    g = trino_rows(rows, types)
    w = arrow_rows(want)
    if len(g) != len(w):
        return compare._describe(g, w, f"row count differs: trino {len(g)} vs flight {len(w)}")
    if not ordered:
        g.sort(key=compare.row_key)
        w.sort(key=compare.row_key)
    for i, (rg, rw) in enumerate(zip(g, w)):
        if not rows_equal(rg, rw):
            where = "row" if ordered else "sorted row"
            return compare._describe(g[i:], w[i:], f"first difference at {where} {i}").replace(
                "sluice:", "trino:").replace("oracle:", "flight:").replace(
                "only in sluice", "only in trino").replace("only in oracle", "only in flight")
    return None


# --- expected Trino types of the lake's columns (independent of sluice) -------------

_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def trino_type_of(t: pa.DataType) -> str:
    """The Trino type name of an Arrow type, as the contract (README, "Types")
    states it."""
    if pa.types.is_dictionary(t):
        return trino_type_of(t.value_type)
    if pa.types.is_int8(t):
        return "tinyint"
    if pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "decimal(20,0)"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "varchar"
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)):
        return "varbinary"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return f"time({_UNIT_DIGITS[t.unit]})"
    if pa.types.is_timestamp(t):
        return f"timestamp({_UNIT_DIGITS[t.unit]})" + (" with time zone" if t.tz else "")
    if _is_list(t):
        return f"array({trino_type_of(t.value_type)})"
    if pa.types.is_map(t):
        return f"map({trino_type_of(t.key_type)}, {trino_type_of(t.item_type)})"
    if pa.types.is_struct(t):
        return "row(" + ", ".join(f"{f.name} {trino_type_of(f.type)}" for f in t) + ")"
    if pa.types.is_null(t):
        return "unknown"
    raise ValueError(f"no Trino type for {t}")


def diff_trino_types(types: list[str], want: pa.Schema) -> str | None:
    """None if every Trino column type (``cursor.description`` type codes)
    is the contract's Trino type of the Flight answer's Arrow type."""
    bad = [
        f"column {i} {f.name!r}: trino {got} vs flight {f.type} (= {trino_type_of(f.type)})"
        for i, (got, f) in enumerate(zip(types, want))
        if got != trino_type_of(f.type)
    ]
    return "column types differ:\n  " + "\n  ".join(bad) if bad else None


#: java.sql.Types codes of system.jdbc.columns.data_type.
JDBC_TYPES = {
    "tinyint": -6, "smallint": 5, "integer": 4, "bigint": -5, "real": 7, "double": 8,
    "boolean": 16, "varchar": 12, "varbinary": -3, "date": 91, "decimal": 3,
    "timestamp": 93, "timestamp with time zone": 2014, "array": 2003,
}


def jdbc_type_of(trino_type: str) -> int:
    base = re.sub(r"\(.*\)", "", trino_type).strip()
    return JDBC_TYPES[base]


def _self_check() -> None:
    """Pure-Python checks of the helpers above (no server needed)."""
    assert trino_type_of(pa.timestamp("us")) == "timestamp(6)"
    assert trino_type_of(pa.list_(pa.float32())) == "array(real)"
    assert trino_type_of(pa.uint64()) == "decimal(20,0)" and trino_type_of(pa.string_view()) == "varchar"
    assert trino_type_of(pa.struct([("a", pa.int64()), ("b", pa.string())])) == "row(a bigint, b varchar)"
    assert trino_type_of(pa.map_(pa.string(), pa.int64())) == "map(varchar, bigint)"
    assert trino_type_of(pa.timestamp("ns", "UTC")) == "timestamp(9) with time zone"
    assert trino_type_of(pa.time64("ns")) == "time(9)"
    schema = pa.schema([("a", pa.int64()), ("s", pa.large_string())])
    assert diff_trino_types(["bigint", "varchar"], schema) is None
    assert "'s'" in diff_trino_types(["bigint", "varbinary"], schema)
    assert jdbc_type_of("timestamp(6)") == 93 and jdbc_type_of("decimal(12,2)") == 3
    mt = pa.map_(pa.string(), pa.int64())
    assert norm_value({"b": 2, "a": 1}, mt) == norm_value([("a", 1), ("b", 2)], mt) == (("a", 1), ("b", 2))
    st = pa.struct([("a", pa.int64()), ("b", pa.string())])
    assert norm_value({"a": 1, "b": "x"}, st) == norm_value((1, "x"), st) == (1, "x")
    assert norm_value(0.123, pa.float32()) == norm_value(0.12300000339746475, pa.float32())
    assert norm_value([0.5, None], pa.list_(pa.float32())) == (0.5, None)
    assert values_equal(norm_value(Decimal("1.50"), None), norm_value(1.5, None))
    assert values_equal(norm_value(dt.datetime(2024, 1, 1, 0, 0, 0, 1), None), dt.datetime(2024, 1, 1))
    assert not values_equal(norm_value(dt.datetime(2024, 1, 1, 0, 0, 0, 2), None), dt.datetime(2024, 1, 1))
    utc = dt.datetime(2024, 1, 1, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert norm_value(utc, None) == dt.datetime(2024, 1, 1, 1)
    assert values_equal(norm_value(float("nan"), None), norm_value(float("nan"), pa.float64()))
    assert norm_value(dt.date(2024, 1, 2), pa.date32()) == dt.datetime(2024, 1, 2)
    assert norm_value(b"\xca\xfe", pa.binary()) == b"\xca\xfe"
    t = pa.table({"a": pa.array([2, 1], pa.int64()), "m": pa.array([[("k", 1.5)], None], pa.map_(pa.string(), pa.float32()))})
    assert diff_trino_vs_arrow(["a", "m"], [[1, None], [2, {"k": 1.5}]], t, ordered=False, check_names=True) is None
    assert diff_trino_vs_arrow(["a", "m"], [[1, None], [2, {"k": 1.5}]], t, ordered=True, check_names=True) is not None
    assert diff_trino_vs_arrow(["A", "m"], [[2, {"k": 1.5}], [1, None]], t, ordered=True, check_names=True) is None
    assert "column names differ" in diff_trino_vs_arrow(["x", "m"], [], t, ordered=False, check_names=True)
    assert "row count" in diff_trino_vs_arrow(["a", "m"], [[1, None]], t, ordered=False, check_names=False)
    assert NEXT_URI_PATH.match("/v1/statement/executing/20240101_000000_00001_abcde/y8f3/1")


if __name__ == "__main__":
    _self_check()
    print("trino_harness self-check ok")
