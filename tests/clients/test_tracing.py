"""W3C trace context through sluice, checked with an OTLP/HTTP receiver on
loopback: a request's ``traceparent`` (HTTP header, Flight gRPC metadata)
is continued by sluice's span, which the answer names in its own
``traceparent`` and which is exported over OTLP with the client's span as
its parent; the audit record carries the trace id."""

from __future__ import annotations

import os
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.flight as flight
import pytest
import requests

import flight_proto as fp
from harness import SluiceServer, free_port, start_or_fail

ORDERS = "lake.sales.orders"
EXPORT_WAIT_S = 20


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    return fp.parse_fields(buf)


def _spans(body: bytes) -> list[dict]:
    """Spans of an OTLP ExportTraceServiceRequest (protobuf): trace and
    span ids as hex, the parent span id, the name, and the resource's
    service.name."""
    out = []
    for n, _, resource_spans in _fields(body):
        if n != 1:
            continue
        service = None
        scope_spans = []
        for m, _, v in _fields(resource_spans):
            if m == 1:  # Resource
                for k, _, kv in _fields(v):
                    if k != 1:
                        continue
                    attrs = {a: b for a, _, b in _fields(kv)}
                    if attrs.get(1) == b"service.name":
                        service = {a: b for a, _, b in _fields(attrs[2])}.get(1, b"").decode()
            elif m == 2:
                scope_spans.append(v)
        for ss in scope_spans:
            for k, _, span in _fields(ss):
                if k != 2:
                    continue
                f = {a: b for a, _, b in _fields(span)}
                out.append({
                    "trace_id": f.get(1, b"").hex(),
                    "span_id": f.get(2, b"").hex(),
                    "parent_span_id": f.get(4, b"").hex(),
                    "name": f.get(5, b"").decode(),
                    "service": service,
                })
    return out


class Receiver:
    """OTLP/HTTP traces endpoint (``POST /v1/traces``) collecting spans."""

    def __init__(self):
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.path == "/v1/traces":
                    with receiver.lock:
                        receiver.spans.extend(_spans(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, what: str) -> dict:
        deadline = time.monotonic() + EXPORT_WAIT_S
        while time.monotonic() < deadline:
            with self.lock:
                found = [s for s in self.spans if predicate(s)]
            if found:
                return found[0]
            time.sleep(0.1)
        with self.lock:
            raise AssertionError(f"no exported span {what} within {EXPORT_WAIT_S}s; got {self.spans[-10:]}")

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def otlp():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def traced(sluice_bin, lake, tmp_path_factory, otlp):
    config = (f'[tracing]\notlp_endpoint = "http://127.0.0.1:{otlp.port}/v1/traces"\n'
              'service_name = "sluice-under-test"')
    old = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # export every 200 ms
    try:
        srv = start_or_fail(SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("traced"), lake=lake,
                                         extra_config=config))
    finally:
        if old is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = old
    yield srv
    srv.close()


def new_parent() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def test_http_continues_the_clients_trace(traced, otlp):
    trace_id, parent = new_parent()
    r = requests.get(f"{traced.http_base}/v1/tokens", timeout=30,
                     headers={**traced.admin_headers(), "traceparent": f"00-{trace_id}-{parent}-01"})
    assert r.status_code == 200
    version, got_trace, got_span, flags = r.headers["traceparent"].split("-")
    assert (version, got_trace, flags) == ("00", trace_id, "01")
    assert got_span != parent and len(got_span) == 16
    span = otlp.wait_for(lambda s: s["trace_id"] == trace_id and s["name"] == "http", "of the HTTP request")
    assert span["parent_span_id"] == parent
    assert span["span_id"] == got_span
    assert span["service"] == "sluice-under-test"


def test_flight_continues_the_clients_trace(traced, otlp):
    trace_id, parent = new_parent()
    client_id = f"trace-{trace_id}"
    client = traced.flight_client()
    try:
        opts = flight.FlightCallOptions(headers=[
            (b"authorization", f"Bearer {traced.admin_secret}".encode()),
            (b"traceparent", f"00-{trace_id}-{parent}-01".encode()),
            (b"x-request-id", client_id.encode()),
        ], timeout=60)
        info = fp.statement_info(client, f"SELECT count(*) FROM {ORDERS}", opts)
        fp.read_stream(client.do_get(info.endpoints[0].ticket, opts))
        span = otlp.wait_for(lambda s: s["trace_id"] == trace_id and s["name"] == "flight", "of the Flight call")
        assert span["parent_span_id"] == parent
        # The audit record names the trace.
        admin = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {traced.admin_secret}".encode())],
                                         timeout=60)
        deadline = time.monotonic() + 5
        while True:
            info = fp.statement_info(
                client, f"SELECT trace_id, action FROM system.audit_log WHERE client_request_id = '{client_id}'", admin)
            rows = fp.read_stream(client.do_get(info.endpoints[0].ticket, admin))[0].to_pylist()
            if len(rows) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert sorted(r["action"] for r in rows) == ["DoGet", "GetFlightInfo"], rows
        assert {r["trace_id"] for r in rows} == {trace_id}
    finally:
        client.close()


def test_tracestate_is_not_continued_and_probes_are_not_traced(traced, otlp):
    trace_id, parent = new_parent()
    r = requests.get(f"{traced.http_base}/health", timeout=30,
                     headers={"traceparent": f"00-{trace_id}-{parent}-01", "tracestate": "k=" + "v" * 4000})
    assert r.status_code == 200
    assert "traceparent" not in r.headers and "tracestate" not in r.headers
    r = requests.get(f"{traced.http_base}/v1/tokens", timeout=30,
                     headers={**traced.admin_headers(), "traceparent": f"00-{trace_id}-{parent}-01",
                              "tracestate": "k=" + "v" * 4000})
    assert r.headers["traceparent"].split("-")[1] == trace_id
    assert "tracestate" not in r.headers
    otlp.wait_for(lambda s: s["trace_id"] == trace_id and s["name"] == "http", "of the HTTP request")
    time.sleep(0.5)  # an exported probe span would have arrived by now
    with otlp.lock:
        names = [s["name"] for s in otlp.spans if s["trace_id"] == trace_id]
    assert names == ["http"], names


def test_requests_without_or_with_a_bad_traceparent_start_a_trace(traced, otlp):
    for headers in ({}, {"traceparent": "00-not-a-trace-01"}):
        r = requests.get(f"{traced.http_base}/v1/tokens", timeout=30, headers={**traced.admin_headers(), **headers})
        assert r.status_code == 200
        _, trace_id, span_id, _ = r.headers["traceparent"].split("-")
        assert len(trace_id) == 32 and trace_id != "0" * 32
        span = otlp.wait_for(lambda s, t=trace_id: s["trace_id"] == t, "of a new trace")
        assert span["span_id"] == span_id and span["parent_span_id"] == ""
