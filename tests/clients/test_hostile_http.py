"""Hostile input on `http_addr` (the admin API, `/v1/search`, `/v1/exports`
and the Trino protocol share it), sent as raw bytes so nothing on the
client side tidies it up: invalid UTF-8, oversized and numerous headers,
truncated and lying bodies, broken chunked encoding, junk request lines,
deeply nested and oversized JSON, every shape of authorization header, and
connections that stall half-way. Each gets a clear answer (or a closed
connection where HTTP has no answer), the process lives, and a normal
request succeeds right after."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
import requests

from trino_harness import RawTrino

AUTH_FAILED = {"error": "authentication failed"}
ROUTES = ["/v1/tokens", "/v1/search", "/v1/exports", "/v1/statement"]


def _raw(server, data: bytes, *, read_timeout: float = 10.0) -> bytes:
    """Sends `data` on a fresh connection and reads until the server closes
    it (requests say `Connection: close`) or `read_timeout` passes (a
    request the server is still waiting to complete). The write side stays
    open: a half-closed connection is one the server may drop unanswered."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=read_timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close before reading everything
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except (ConnectionResetError, TimeoutError, socket.timeout):
            pass
        return b"".join(chunks)


def _status(answer: bytes) -> int | None:
    """The status code of the first response, or None for no response."""
    if not answer.startswith(b"HTTP/1."):
        return None
    return int(answer.split(b" ", 2)[1])


def _body(answer: bytes) -> bytes:
    return answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""


def _request(method: str, path: str, headers: dict[str, bytes | str] | None = None,
             body: bytes = b"", *, length: int | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()))
    lines.append(f"Content-Length: {len(body) if length is None else length}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _still_serving(server, tokens) -> None:
    """A normal admin request and a normal Trino query succeed."""
    admin = {"Authorization": f"Bearer {server.admin_secret}"}
    r = requests.get(f"{server.http_base}/v1/tokens", headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    # Run to the end like a real client: a query whose pages are not all
    # fetched holds one of the token's Trino slots until it is abandoned.
    pages = RawTrino(server.http_base, tokens["sales_reader"]["secret"]).run("SELECT 1")
    assert all(p.error is None for p in pages), pages
    assert [row for p in pages for row in p.data] == [[1]], pages
    assert server.proc.poll() is None, "the gateway exited"


@pytest.fixture
def admin(server):
    return f"Bearer {server.admin_secret}"


# --- bodies --------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/search", "/v1/exports"])
@pytest.mark.parametrize("body,why", [
    (b'{"name": "\xff\xfe"}', "invalid UTF-8"),
    (b'{"name": "x"', "truncated JSON"),
    (b"[" * 200_000, "nesting 200,000 deep"),
    (b'{"name": "x", "name": "y"}', "duplicate key"),
    (b"\x00\x01\x02" * 100, "binary junk"),
    (b"", "empty body"),
])
def test_malformed_json_bodies_get_400_naming_the_problem(server, tokens, admin, path, body, why):
    answer = _raw(server, _request("POST", path, {"Authorization": admin,
                                                  "Content-Type": "application/json"}, body))
    assert _status(answer) == 400, (why, answer[:300])
    err = json.loads(_body(answer))["error"]
    assert err and "internal" not in err.lower(), (why, err)
    _still_serving(server, tokens)


@pytest.mark.parametrize("path", ROUTES)
def test_a_body_over_the_limit_is_413(server, tokens, admin, path):
    body = b'{"name": "' + b"x" * (3 << 20) + b'"}'
    r = requests.post(f"{server.http_base}{path}", data=body, timeout=60,
                      headers={"Authorization": admin, "Content-Type": "application/json"})
    assert r.status_code == 413, (path, r.status_code, r.text[:200])
    if path != "/v1/statement":  # Trino answers its own way
        assert r.json() == {"error": "the request body is over the 2 MiB limit"}, r.text[:200]
    _still_serving(server, tokens)


def test_invalid_utf8_statement_is_a_trino_error_not_a_crash(server, tokens):
    secret = tokens["sales_reader"]["secret"]
    answer = _raw(server, _request("POST", "/v1/statement",
                                   {"Authorization": f"Bearer {secret}", "X-Trino-User": "p"},
                                   b"SELECT '\xff\xfe'"))
    assert _status(answer) in (400, 200), answer[:300]
    assert b"error" in _body(answer).lower(), answer[:300]
    _still_serving(server, tokens)


@pytest.mark.parametrize("path", ["/v1/tokens", "/v1/statement"])
def test_a_body_shorter_than_its_content_length_leaves_nothing_behind(server, tokens, admin, path):
    # The client announces 10,000 bytes, sends 20 and closes.
    answer = _raw(server, _request("POST", path, {"Authorization": admin}, b'{"name": "truncated',
                                   length=10_000), read_timeout=3)
    assert _status(answer) in (None, 400), answer[:300]
    _still_serving(server, tokens)


def test_broken_chunked_encoding_is_refused(server, tokens, admin):
    data = (b"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: " + admin.encode()
            + b"\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nZZZZ\r\n{}\r\n0\r\n\r\n")
    answer = _raw(server, data)
    assert _status(answer) in (None, 400), answer[:300]
    _still_serving(server, tokens)


# --- request lines and headers -------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
    b"GET\r\n\r\n",
    b"GET /health HTTP/9.9\r\n\r\n",
    b"G\xffT /health HTTP/1.1\r\n\r\n",
    b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/tokens/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/tokens HTTP/1.1\r\nHost: x\r\nNo-Colon-Here\r\n\r\n",
    # control characters are not allowed in a header value: the HTTP layer
    # refuses the request before anything reads the credential
    b"GET /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slc_\x01\x02\r\n\r\n",
    b"\r\n" * 10_000,
], ids=["tls", "no_target", "bad_version", "bad_method", "long_target", "bad_percent", "bad_header",
     "control_chars_in_authorization", "blank_lines"])
def test_junk_request_lines_are_refused(server, tokens, data):
    answer = _raw(server, data, read_timeout=3)
    status = _status(answer)
    assert status is None or 400 <= status < 500, answer[:300]
    _still_serving(server, tokens)


def test_oversized_and_numerous_headers_are_refused(server, tokens, admin):
    huge = _request("GET", "/v1/tokens", {"Authorization": admin, "X-Big": "v" * (1 << 20)})
    many = _request("GET", "/v1/tokens", {"Authorization": admin,
                                          **{f"X-H{i}": "v" for i in range(20_000)}})
    for data in (huge, many):
        status = _status(_raw(server, data))
        assert status in (None, 400, 431), status
    _still_serving(server, tokens)


# --- authorization headers -----------------------------------------------------------

def _auth_shapes(secret: str) -> dict[str, list[bytes]]:
    """kind -> the Authorization header values to send (several: repeated)."""
    b64 = lambda s: base64.b64encode(s).decode()  # noqa: E731
    return {
        "empty": [b""],
        "scheme_only": [b"Bearer"],
        "scheme_space": [b"Bearer "],
        "two_spaces_no_secret": [b"Bearer  "],
        "unknown_scheme": [f"Token {secret}".encode()],
        "secret_without_scheme": [secret.encode()],
        "non_ascii": [b"Bearer \xff\xfe\xfd"],
        "basic_no_colon": [f"Basic {b64(secret.encode())}".encode()],
        "basic_bad_base64": [b"Basic !!!!"],
        "basic_empty_password": [f"Basic {b64(b'user:')}".encode()],
        "bearer_1kb": [b"Bearer " + b"a" * 1024],
        "truncated_secret": [f"Bearer {secret[:-1]}".encode()],
        "secret_plus_char": [f"Bearer {secret}x".encode()],
        "two_headers_one_bad": [f"Bearer {secret}".encode(), b"Bearer nope"],
        "two_headers_one_empty": [b"", f"Bearer {secret}".encode()],
    }


def _with_auth(path: str, values: list[bytes], body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
             b"Content-Type: application/json",
             b"X-Trino-User: probe"]
    lines += [b"Authorization: " + v for v in values]
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize("path,body", [
    ("/v1/tokens", b'{"name": "x"}'),
    ("/v1/search", b'{"table": "lake.sales.orders", "vector": [1.0], "k": 1}'),
    ("/v1/exports", b'{"query": "SELECT 1", "destination": "file:///tmp/x"}'),
    ("/v1/statement", b"SELECT 1"),
])
def test_every_authorization_shape_gets_the_same_401(server, tokens, path, body):
    secret = tokens["sales_reader"]["secret"]
    answers = {}
    for kind, values in _auth_shapes(secret).items():
        answer = _raw(server, _with_auth(path, values, body))
        status = _status(answer)
        if status == 429:  # the client address's failed-authentication bucket: also uniform
            continue
        assert status == 401, (kind, answer[:300])
        answers[kind] = json.loads(_body(answer)) if path != "/v1/statement" else _body(answer)
    assert answers, "every attempt was rate limited"
    assert len({json.dumps(a, sort_keys=True) if isinstance(a, dict) else a for a in answers.values()}) == 1, answers
    if path != "/v1/statement":
        assert next(iter(answers.values())) == AUTH_FAILED
    _still_serving(server, tokens)


# --- stalled connections -------------------------------------------------------------

def test_stalled_connections_do_not_block_other_clients(server, tokens):
    """Fifty connections send half a request and stall; others are served."""
    stalled = []
    try:
        for i in range(50):
            s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
            s.sendall(b"POST /v1/statement HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" if i % 2
                      else b"GET /v1/tok")
            stalled.append(s)
        started = time.monotonic()
        errors: list[BaseException] = []

        def normal():
            try:
                _still_serving(server, tokens)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=normal) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert time.monotonic() - started < 30
    finally:
        for s in stalled:
            s.close()
    _still_serving(server, tokens)
