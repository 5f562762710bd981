#!/usr/bin/env python3
"""Bench baseline (``benches/engine.py``): Arrow's reference Flight server,
the C++ one pyarrow ships, streaming a Parquet directory that it loaded
into memory before the first request. No SQL, no scan, no decoding, no
policy; its record batches go to gRPC without being copied. What it
reaches is the most a Flight stream to the same client achieves on this
machine, so the wide-stream figures of the gateway are read against it.

    python benches/flight_reference.py <port> <parquet dir> <batch rows>...

Every ticket ``<n>`` answers the whole table in batches of ``n`` rows
(one Flight message each). It prints ``ready`` once it listens.
"""

from __future__ import annotations

import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.flight as flight


class Reference(flight.FlightServerBase):
    def __init__(self, location: str, table: pa.Table, batch_rows: list[int]):
        super().__init__(location)
        # Re-chunked up front: a request only hands buffers to gRPC.
        self.tables = {str(n).encode(): pa.Table.from_batches(table.combine_chunks().to_batches(max_chunksize=n))
                       for n in batch_rows}

    def do_get(self, context, ticket):
        return flight.RecordBatchStream(self.tables[ticket.ticket])


def main() -> None:
    port, directory = int(sys.argv[1]), sys.argv[2]
    batch_rows = [int(n) for n in sys.argv[3:]] or [8192]
    table = ds.dataset(directory, format="parquet").to_table()
    server = Reference(f"grpc://127.0.0.1:{port}", table, batch_rows)
    print("ready", flush=True)
    server.serve()


if __name__ == "__main__":
    main()
