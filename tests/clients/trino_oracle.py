"""Trino frontend == Flight SQL frontend, for the same token and query.

``TrinoVsFlight.check`` runs one query as one token over ADBC Flight SQL
(the reference, itself held to DuckDB by ``test_oracle``) and over the
``trino`` DB-API client, and classifies the pair:

* ``compared``  both answered, with equal results (same column count,
                names where the query fixes them, each Trino column type
                the contract's Trino type of Flight's Arrow type, rows
                equal in order when the query has a total ORDER BY,
                otherwise as multisets; values normalised by
                ``trino_harness.norm_value``);
* ``refused``   both refused, and Trino with the matching error kind:
                Flight's "not found or not allowed" (a column) ->
                COLUMN_NOT_FOUND, Flight's "not found" (a table) ->
                TABLE_NOT_FOUND, anything else -> any Trino query error;
                a Trino refusal never names a hidden column the query does
                not mention;
* anything else is a mismatch (``TrinoMismatch``).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable

import pyarrow as pa

from oracle import COLUMN_REFUSAL, TABLE_REFUSAL, mentions
from trino_harness import diff_trino_types, diff_trino_vs_arrow

FlightRunner = Callable[[str, str], pa.Table]           # (token key, sql) -> table
TrinoRunner = Callable[[str, str], tuple[list, list]]    # (token key, sql) -> (description, rows)


class TrinoMismatch(AssertionError):
    pass


@dataclasses.dataclass
class Stats:
    compared: int = 0
    refused: int = 0
    mismatches: int = 0
    details: list[str] = dataclasses.field(default_factory=list)


def flight_refusal_kind(message: str) -> str | None:
    low = message.lower()
    if COLUMN_REFUSAL in low:
        return "COLUMN_NOT_FOUND"
    if TABLE_REFUSAL in low:
        return "TABLE_NOT_FOUND"
    return None


class TrinoVsFlight:
    def __init__(self, run_flight: FlightRunner, run_trino: TrinoRunner, hidden_columns: dict[str, set[str]]):
        self.run_flight = run_flight
        self.run_trino = run_trino
        self.hidden_columns = hidden_columns
        self.stats: dict[str, Stats] = collections.defaultdict(Stats)

    def _flight(self, key: str, sql: str):
        try:
            return self.run_flight(key, sql)
        except Exception as e:  # noqa: BLE001 - a refusal, classified below
            return e

    def _trino(self, key: str, sql: str):
        try:
            return self.run_trino(key, sql)
        except Exception as e:  # noqa: BLE001 - classified below
            return e

    def check(self, key: str, sql: str, *, ordered: bool, names: bool) -> str:
        stats = self.stats[key]
        want = self._flight(key, sql)
        got = self._trino(key, sql)
        try:
            outcome = self._classify(key, sql, want, got, ordered=ordered, names=names)
        except TrinoMismatch as e:
            stats.mismatches += 1
            stats.details.append(f"{key}: {str(e).splitlines()[0]}  [{sql[:160]}]")
            raise
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        return outcome

    def _classify(self, key, sql, want, got, *, ordered: bool, names: bool) -> str:
        import trino.exceptions as te

        if isinstance(want, pa.Table):
            if isinstance(got, Exception):
                raise TrinoMismatch(
                    f"Trino failed ({type(got).__name__}) where Flight answered {want.num_rows} rows: "
                    f"{_first_line(got)}\n  {sql}"
                )
            desc, rows = got
            diff = diff_trino_vs_arrow([d.name for d in desc or []], rows, want, ordered=ordered, check_names=names)
            if diff is None:
                diff = diff_trino_types([d.type_code for d in desc or []], want.schema)
            if diff is not None:
                raise TrinoMismatch(f"results differ:\n  {sql}\n{diff}")
            return "compared"

        if not isinstance(got, Exception):
            raise TrinoMismatch(
                f"LEAK: Trino answered ({len(got[1])} rows) what Flight refuses ({_first_line(want)})\n  {sql}"
            )
        if not isinstance(got, te.TrinoQueryError):
            raise TrinoMismatch(
                f"Trino refused with {type(got).__name__}, not a Trino query error: {_first_line(got)}\n  {sql}"
            )
        kind = flight_refusal_kind(str(want))
        if kind is not None and got.error_name != kind:
            raise TrinoMismatch(
                f"Trino error {got.error_name} where Flight says {kind} ({_first_line(want)}): "
                f"{got.message}\n  {sql}"
            )
        hidden = self.hidden_columns.get(key, set())
        leaked = [c for c in sorted(hidden) if not mentions(sql, c) and mentions(got.message, c)]
        if leaked:
            raise TrinoMismatch(f"Trino refusal names hidden columns {leaked}: {got.message}\n  {sql}")
        return "refused"

    def summary_lines(self) -> list[str]:
        lines = []
        total = Stats()
        for key, s in sorted(self.stats.items()):
            lines.append(f"{key:24s} compared={s.compared:4d} refused={s.refused:4d} mismatches={s.mismatches:4d}")
            total.compared += s.compared
            total.refused += s.refused
            total.mismatches += s.mismatches
        lines.append(f"{'TOTAL':24s} compared={total.compared:4d} refused={total.refused:4d} "
                     f"mismatches={total.mismatches:4d}")
        for key, s in sorted(self.stats.items()):
            lines += [f"  mismatch {d}" for d in s.details[:20]]
        return lines


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return " ".join(text.split())[:600] if text else type(e).__name__
