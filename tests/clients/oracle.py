"""The DESIGN §4 oracle: sluice(Q, T) == DuckDB(Q over T's secure views),
or sluice refuses Q. Nothing else is acceptable.

``Oracle.check`` classifies one (token, query) pair:

* ``compared``  both engines answered; results are equal;
* ``refused``   the query names a column or table the token cannot see:
                DuckDB's binder/catalog rejects it on the secure views and
                sluice refuses it with "not found or not allowed" naming the
                column (resp. "not found" for tables), without leaking the
                names of other hidden columns;
* anything else is a mismatch and raises ``OracleMismatch``: differing
  results, a leak (sluice answers what the oracle cannot), or sluice
  refusing a query the oracle answers.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Callable

import duckdb
import pyarrow as pa

from compare import diff_results
from oracle_queries import Query
from policy_views import OracleDB, build_full_db, build_oracle_db

COLUMN_REFUSAL = "not found or not allowed"
TABLE_REFUSAL = "not found"

SluiceRunner = Callable[[str, str], pa.Table]   # (token key, sql) -> result


class OracleMismatch(AssertionError):
    pass


class OracleBug(AssertionError):
    """The query or the oracle itself is wrong (not a sluice failure)."""


@dataclasses.dataclass
class OracleStats:
    compared: int = 0
    refused: int = 0
    mismatches: int = 0
    details: list[str] = dataclasses.field(default_factory=list)


def mentions(text: str, word: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", text, re.IGNORECASE) is not None


class Oracle:
    def __init__(
        self,
        tokens: dict[str, dict],
        sources: dict[str, pa.Table],
        table_classes: dict[str, dict],
        run_sluice: SluiceRunner,
    ) -> None:
        self.tokens = tokens
        self.sources = sources
        self.table_classes = table_classes
        self.run_sluice = run_sluice
        self._full = build_full_db(sources)
        self._dbs: dict[str, OracleDB] = {}
        self._full_checked: dict[str, Exception | None] = {}
        self.stats: dict[str, OracleStats] = collections.defaultdict(OracleStats)

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()
        self._full.close()

    def db(self, token_key: str) -> OracleDB:
        if token_key not in self._dbs:
            self._dbs[token_key] = build_oracle_db(self.tokens[token_key], self.sources, self.table_classes)
        return self._dbs[token_key]

    # -- the pieces ------------------------------------------------------------
    def validate_on_full(self, query: Query) -> None:
        """The query must be valid SQL for the unrestricted lake."""
        if query.sql not in self._full_checked:
            try:
                self._full.sql(query.sql).to_arrow_table()
                err = None
            except duckdb.Error as e:
                err = e
            self._full_checked[query.sql] = err
        err = self._full_checked[query.sql]
        if query.valid_on_full and err is not None:
            raise OracleBug(f"query {query.id} fails on the unrestricted lake: {err}\n  {query.sql}")
        if not query.valid_on_full and err is None:
            raise OracleBug(f"query {query.id} was expected to fail on the unrestricted lake")

    def run_duckdb(self, token_key: str, sql: str) -> pa.Table | duckdb.Error:
        try:
            return self.db(token_key).con.sql(sql).to_arrow_table()
        except (duckdb.BinderException, duckdb.CatalogException) as e:
            return e
        except duckdb.Error as e:
            raise OracleBug(f"DuckDB failed on the secure views for a non-scoping reason: {e}\n  {sql}") from e

    def run_on_sluice(self, token_key: str, sql: str, run: SluiceRunner | None = None) -> pa.Table | Exception:
        try:
            return (run or self.run_sluice)(token_key, sql)
        except Exception as e:  # any client error is a refusal; classified below
            return e

    # -- the check -------------------------------------------------------------
    def check(self, token_key: str, query: Query, *, validate: bool = True,
              run_sluice: SluiceRunner | None = None) -> str:
        """Returns "compared" or "refused"; raises OracleMismatch otherwise.
        ``validate``: first check the query on the unrestricted lake (off for
        probes, which are designed to fail there). ``run_sluice``: how to
        reach sluice for this check instead of the oracle's own runner (a
        prepared statement with bound values, whose ``query`` holds the same
        values as literals for DuckDB)."""
        if validate:
            self.validate_on_full(query)
        stats = self.stats[token_key]
        want = self.run_duckdb(token_key, query.sql)
        got = self.run_on_sluice(token_key, query.sql, run_sluice)
        try:
            outcome = self._classify(token_key, query, want, got)
        except OracleMismatch as e:
            stats.mismatches += 1
            stats.details.append(f"{token_key}/{query.id}: {str(e).splitlines()[0]}")
            raise
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        return outcome

    def _classify(self, token_key: str, query: Query, want, got) -> str:
        sql = query.sql
        if isinstance(want, pa.Table):
            if isinstance(got, Exception):
                raise OracleMismatch(
                    f"sluice refused a query the secure views answer ({want.num_rows} rows):\n"
                    f"  {sql}\n  sluice error: {_first_line(got)}"
                )
            diff = diff_results(got, want, ordered=query.ordered, check_names=query.names)
            if diff is not None:
                raise OracleMismatch(f"results differ for\n  {sql}\n{diff}")
            return "compared"

        # The oracle cannot answer: the query names something the token cannot see.
        if isinstance(got, pa.Table):
            raise OracleMismatch(
                f"LEAK: sluice answered ({got.num_rows} rows) a query that references something "
                f"outside the token's secure views:\n  {sql}\n  oracle: {_first_line(want)}"
            )
        msg = str(got)
        db = self.db(token_key)
        hidden = db.hidden_columns
        if isinstance(want, duckdb.CatalogException):
            if TABLE_REFUSAL not in msg.lower():
                raise OracleMismatch(f"table refusal without '{TABLE_REFUSAL}':\n  {sql}\n  sluice: {_first_line(got)}")
        else:
            if COLUMN_REFUSAL not in msg.lower():
                raise OracleMismatch(
                    f"column refusal without '{COLUMN_REFUSAL}':\n  {sql}\n  sluice: {_first_line(got)}"
                )
            referenced = [c for c in hidden if mentions(sql, c)]
            if not any(mentions(msg, c) for c in referenced):
                raise OracleMismatch(
                    f"refusal does not name the column (one of {referenced}):\n  {sql}\n  sluice: {_first_line(got)}"
                )
        leaked = [c for c in hidden if not mentions(sql, c) and mentions(msg, c)]
        if leaked:
            raise OracleMismatch(f"refusal names hidden columns {leaked} the query never mentions:\n  {sql}\n  sluice: {msg}")
        return "refused"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return " ".join(text.split())[:600] if text else type(e).__name__
