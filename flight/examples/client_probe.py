"""Real-client checks against the `memory_server` example.

    cargo test -p sluice-flight --no-run   # builds target/debug/examples/memory_server
    target/debug/examples/memory_server 127.0.0.1:50231 &
    python -m venv /tmp/v && /tmp/v/bin/pip install pyarrow adbc-driver-flightsql adbc-driver-manager
    /tmp/v/bin/python flight/examples/client_probe.py 50231

Checked with pyarrow 26.0.1 and adbc-driver-flightsql 1.x (Go driver).
Exits non-zero on the first failed check.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as dbapi
import pyarrow.flight as fl

PORT = sys.argv[1] if len(sys.argv) > 1 else "50231"
LOC = f"grpc://127.0.0.1:{PORT}"
ALICE = "alice-secret-0123456789"  # row_limit 3, no `secret` column
BOB = "bob-secret-0123456789"  # row_limit 100, every column


def _ld(field: int, payload: bytes) -> bytes:
    """Protobuf length-delimited field."""
    n, varint = len(payload), b""
    while True:
        b, n = n & 0x7F, n >> 7
        varint += bytes([b | 0x80]) if n else bytes([b])
        if not n:
            break
    return bytes([field << 3 | 2]) + varint + payload


def statement_query(sql: str) -> bytes:
    """Any(CommandStatementQuery{query}) built by hand (pyarrow has no Flight SQL)."""
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return _ld(1, url) + _ld(2, _ld(1, sql.encode()))


def pyarrow_trailer():
    client = fl.FlightClient(LOC)
    header = client.authenticate_basic_token(b"user", ALICE.encode())
    assert header == (b"authorization", f"Bearer {ALICE}".encode()), header
    opts = fl.FlightCallOptions(headers=[header])
    sql = "SELECT id, region FROM lake.sales.orders ORDER BY id"
    info = client.get_flight_info(fl.FlightDescriptor.for_command(statement_query(sql)), opts)
    reader = client.do_get(info.endpoints[0].ticket, opts)
    rows, trailer = 0, None
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if chunk.app_metadata is not None:
            trailer = json.loads(chunk.app_metadata.to_pybytes())
        elif chunk.data is not None:
            rows += chunk.data.num_rows
    assert rows == 3, rows
    assert trailer == {"sluice.truncated": True, "rows": 3}, trailer
    table = client.do_get(info.endpoints[0].ticket, opts).read_all()
    assert table.num_rows == 3, table.num_rows
    print("pyarrow: handshake, statement, trailer ok")


def adbc():
    conn = dbapi.connect(LOC, db_kwargs={"username": "u", "password": BOB})
    cur = conn.cursor()
    cur.execute("SELECT id, region FROM lake.sales.orders WHERE region = $1 ORDER BY id", parameters=("eu",))
    assert cur.fetch_arrow_table().to_pydict() == {"id": [1, 3], "region": ["eu", "eu"]}
    for v in (1, 4):
        cur.execute("SELECT id FROM lake.sales.orders WHERE id = $1", parameters=(v,))
        assert cur.fetch_arrow_table().to_pydict() == {"id": [v]}
    for bad in ("DELETE FROM lake.sales.orders", "SELECT * FROM lake.sales.hidden"):
        try:
            cur.execute(bad)
            raise AssertionError(f"accepted: {bad}")
        except dbapi.ProgrammingError as e:
            assert "INVALID_ARGUMENT" in str(e), e
    objs = conn.adbc_get_objects().read_all().to_pylist()
    tables = [t["table_name"] for c in objs for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
    assert tables == ["orders"], tables
    schema = conn.adbc_get_table_schema("orders", db_schema_filter="sales", catalog_filter="lake")
    assert schema.names == ["id", "region", "amount", "secret"], schema.names
    assert "TABLE" in conn.adbc_get_table_types()
    assert conn.adbc_get_info()["vendor_name"] == "sluice-example"
    cur.close()
    conn.close()
    try:
        dbapi.connect(LOC, db_kwargs={"username": "u", "password": "wrong"}).cursor().execute("SELECT 1")
        raise AssertionError("bad password accepted")
    except dbapi.Error as e:
        assert "authentication failed" in str(e), e
    print("adbc: prepared + params, refusals, get_objects, table schema, info, auth ok")


if __name__ == "__main__":
    pyarrow_trailer()
    adbc()
