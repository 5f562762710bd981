"""Hand-written protobuf encoding for the few Flight SQL messages the
pyarrow.flight tests send (pyarrow has no Flight SQL client).

Flight SQL commands travel as a ``google.protobuf.Any`` (field 1
``type_url``, field 2 ``value``) inside a ``FlightDescriptor`` of type CMD
(GetFlightInfo), a ``Ticket`` (DoGet) or an ``Action`` body (DoAction).
"""

from __future__ import annotations

import json

TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."


def varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes, messages."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def field_str(number: int, s: str) -> bytes:
    return field_bytes(number, s.encode("utf-8"))


def pack_any(message_name: str, value: bytes) -> bytes:
    return field_str(1, TYPE_PREFIX + message_name) + field_bytes(2, value)


def command_statement_query(query: str) -> bytes:
    """Any(CommandStatementQuery{query})."""
    return pack_any("CommandStatementQuery", field_str(1, query))


def command_statement_update(query: str) -> bytes:
    """Any(CommandStatementUpdate{query}) -- sent with DoPut; must be refused."""
    return pack_any("CommandStatementUpdate", field_str(1, query))


def command_get_tables(include_schema: bool = False) -> bytes:
    """Any(CommandGetTables{include_schema})."""
    body = field_varint(5, 1) if include_schema else b""
    return pack_any("CommandGetTables", body)


def command_get_catalogs() -> bytes:
    return pack_any("CommandGetCatalogs", b"")


def command_get_db_schemas() -> bytes:
    return pack_any("CommandGetDbSchemas", b"")


def command_get_table_types() -> bytes:
    return pack_any("CommandGetTableTypes", b"")


def command_get_xdbc_type_info() -> bytes:
    return pack_any("CommandGetXdbcTypeInfo", b"")


def command_get_primary_keys(catalog: str, db_schema: str, table: str) -> bytes:
    return pack_any("CommandGetPrimaryKeys", field_str(1, catalog) + field_str(2, db_schema) + field_str(3, table))


def action_create_prepared_statement(query: str) -> bytes:
    """Any(ActionCreatePreparedStatementRequest{query}) for DoAction
    ``CreatePreparedStatement``."""
    return pack_any("ActionCreatePreparedStatementRequest", field_str(1, query))


# -- decoding (enough to walk simple messages) --------------------------------------

def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for every field of a message."""
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            value = buf[pos:pos + n]
            pos += n
        elif wire == 1:
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == 5:
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def unpack_any(buf: bytes) -> tuple[str, bytes]:
    fields = {n: v for n, _, v in parse_fields(buf)}
    return fields.get(1, b"").decode(), fields.get(2, b"")


# -- pyarrow.flight helpers -----------------------------------------------------------

def statement_info(client, sql: str, options=None):
    """GetFlightInfo(CommandStatementQuery)."""
    import pyarrow.flight as flight

    desc = flight.FlightDescriptor.for_command(command_statement_query(sql))
    return client.get_flight_info(desc, options) if options is not None else client.get_flight_info(desc)


def read_stream(reader):
    """Read a DoGet stream to its end with ``read_chunk``: returns
    (pyarrow Table, list of app_metadata payloads as bytes, in order)."""
    import pyarrow as pa

    batches, metadata = [], []
    schema = reader.schema
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if chunk.data is not None:
            batches.append(chunk.data)
        if chunk.app_metadata is not None:
            metadata.append(chunk.app_metadata.to_pybytes())
    return pa.Table.from_batches(batches, schema=schema), metadata


def truncation_metadata(metadata: list[bytes]) -> dict:
    """The JSON object of the stream's last app_metadata
    (``{"sluice.truncated": bool, "rows": n}``)."""
    if not metadata:
        raise AssertionError("DoGet stream carried no app_metadata")
    return json.loads(metadata[-1].decode("utf-8"))
