"""Runs generated oracle queries (oracle_gen.py) against a sluice gateway.

Shared by ``test_oracle_generated.py`` (a short seeded run in the normal
suite) and ``benches/oracle_scale.py`` (the long run). Per token:

* ``flight``    every generated query over ADBC Flight SQL, held to DuckDB
                over the token's secure views by ``Oracle.check`` (results
                equal, or a refusal for a named reason, else a mismatch);
* ``trino``     the same queries over the ``trino`` DB-API client, held to
                the Flight answer by ``TrinoVsFlight`` (which the Flight
                side already held to DuckDB);
* ``prepared``  parameterised queries as Flight SQL prepared statements with
                bound values, held to DuckDB running the same query with
                the values written in as literals.

Nothing is skipped: every mismatch is counted and described; the callers
require none. An ``OracleBug`` (a generated query that is invalid on the
unrestricted lake, or that DuckDB rejects for a non-scoping reason) is a
bug of the generator and is counted apart (``generator_bugs``).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Callable

import pyarrow as pa

from oracle import Oracle, OracleBug, OracleMismatch
from oracle_gen import ParamQuery
from oracle_queries import Query
from trino_oracle import TrinoMismatch, TrinoVsFlight

PROTOCOLS = ("flight", "trino", "prepared")


@dataclasses.dataclass
class Counts:
    compared: int = 0
    refused: int = 0
    mismatches: int = 0
    generator_bugs: int = 0
    seconds: float = 0.0
    details: list[str] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return self.compared + self.refused + self.mismatches + self.generator_bugs


class GeneratedRun:
    """``run_flight(key, sql)``, ``run_prepared(key, sql, params)`` and
    ``run_trino(key, sql)`` reach the gateway as token ``key``."""

    def __init__(
        self,
        oracle: Oracle,
        run_prepared: Callable[[str, str, tuple], pa.Table],
        run_trino: Callable[[str, str], tuple[list, list]] | None,
        hidden_columns: dict[str, set[str]],
        max_details: int = 30,
    ):
        self.oracle = oracle
        self.run_prepared = run_prepared
        self.max_details = max_details
        self.counts: dict[tuple[str, str], Counts] = collections.defaultdict(Counts)
        self._flight_answers: dict[tuple[str, str], object] = {}
        self.trino = None
        if run_trino is not None:
            self.trino = TrinoVsFlight(run_flight=self._recorded_flight, run_trino=run_trino,
                                       hidden_columns=hidden_columns)

    def _recorded_flight(self, key: str, sql: str):
        if (key, sql) not in self._flight_answers:
            try:
                self._flight_answers[(key, sql)] = self.oracle.run_sluice(key, sql)
            except Exception as e:  # noqa: BLE001 - re-raised as the Flight answer
                self._flight_answers[(key, sql)] = e
        out = self._flight_answers[(key, sql)]
        if isinstance(out, Exception):
            raise out
        return out

    def _note(self, c: Counts, what: str) -> None:
        if len(c.details) < self.max_details:
            c.details.append(what)

    def flight(self, key: str, queries: list[Query]) -> Counts:
        c = self.counts[(key, "flight")]
        t0 = time.monotonic()
        for q in queries:
            try:
                outcome = self.oracle.check(key, q, run_sluice=self._recorded_flight)
            except OracleMismatch as e:
                c.mismatches += 1
                self._note(c, f"{q.id}: {e}")
                continue
            except OracleBug as e:
                c.generator_bugs += 1
                self._note(c, f"GENERATOR BUG {q.id}: {e}")
                continue
            setattr(c, outcome, getattr(c, outcome) + 1)
        c.seconds += time.monotonic() - t0
        return c

    def trino_(self, key: str, queries: list[Query]) -> Counts:
        assert self.trino is not None
        c = self.counts[(key, "trino")]
        t0 = time.monotonic()
        for q in queries:
            try:
                outcome = self.trino.check(key, q.sql, ordered=q.ordered, names=q.names)
            except TrinoMismatch as e:
                c.mismatches += 1
                self._note(c, f"{q.id}: {e}")
                continue
            setattr(c, outcome, getattr(c, outcome) + 1)
        c.seconds += time.monotonic() - t0
        return c

    def prepared(self, key: str, queries: list[ParamQuery]) -> Counts:
        c = self.counts[(key, "prepared")]
        t0 = time.monotonic()
        for pq in queries:
            def run(_key, _sql, pq=pq):
                return self.run_prepared(key, pq.sql, pq.params)
            try:
                outcome = self.oracle.check(key, pq.query, run_sluice=run)
            except OracleMismatch as e:
                c.mismatches += 1
                self._note(c, f"{pq.query.id}: {e}\n  prepared: {pq.sql}\n  params: {pq.params!r}")
                continue
            except OracleBug as e:
                c.generator_bugs += 1
                self._note(c, f"GENERATOR BUG {pq.query.id}: {e}")
                continue
            setattr(c, outcome, getattr(c, outcome) + 1)
        c.seconds += time.monotonic() - t0
        return c

    def summary_lines(self) -> list[str]:
        lines = [f"{'token':24s} {'protocol':9s} {'queries':>7s} {'compared':>8s} {'refused':>7s} "
                 f"{'mismatch':>8s} {'gen_bug':>7s} {'seconds':>8s}"]
        tot = collections.defaultdict(Counts)
        for (key, proto), c in sorted(self.counts.items()):
            lines.append(f"{key:24s} {proto:9s} {c.total:7d} {c.compared:8d} {c.refused:7d} "
                         f"{c.mismatches:8d} {c.generator_bugs:7d} {c.seconds:8.1f}")
            t = tot[proto]
            for f in ("compared", "refused", "mismatches", "generator_bugs", "seconds"):
                setattr(t, f, getattr(t, f) + getattr(c, f))
        for proto, c in sorted(tot.items()):
            lines.append(f"{'TOTAL':24s} {proto:9s} {c.total:7d} {c.compared:8d} {c.refused:7d} "
                         f"{c.mismatches:8d} {c.generator_bugs:7d} {c.seconds:8.1f}")
        return lines

    def problem_lines(self) -> list[str]:
        out = []
        for (key, proto), c in sorted(self.counts.items()):
            for d in c.details:
                out.append(f"[{key}/{proto}] {d}")
        return out
