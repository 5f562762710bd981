"""Two sluice gateways federated on loopback (DESIGN §7).

The PROVIDER serves the test lake with TLS on its Flight SQL port
(``[server.tls]``, client certificates verified against the test CA) and
issues *share* tokens; their profile (endpoint, secret, CA) is downloaded
once. The RECEIVER imports a profile as an external token and mounts the
provider's tables as a catalog named after the peer.

Built on ``harness.SluiceServer`` / ``render_config`` (the TLS and
``[federation]`` sections go through its ``extra_config`` hook), so the
gateways are in ``harness.STARTED`` and their logs are searched for
``harness.SECRETS`` at the end of the suite: every share secret that a
downloaded profile carried, the receivers' seal keys and the client keys'
material are added there.

Certificates come from the binary itself: ``sluice certs create --dir DIR
--hosts 127.0.0.1,localhost --client receiver`` (run twice, in two
directories, for an untrusted CA).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
import secrets
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import requests

import flight_proto as fp
from harness import (
    FLIGHT_TIMEOUT_S, QUERY_TIMEOUT_S, SECRETS, HarnessError, SluiceServer, _toml_str,
)

#: The client certificate name `certs create --client` is asked for.
CLIENT_NAME = "receiver"
#: Substrings of the receiver's peer errors (SPEC "Querying through the receiver").
UNAVAILABLE = "is unavailable"
CIRCUIT_OPEN = "circuit open"
REVOKED = "peer access revoked"
AUTH_FAILED = "authentication failed"
COLUMN_REFUSAL = "not found or not allowed"
TABLE_REFUSAL = "not found"
#: How long a catalog change (accept, CLI import/remove) may take to reach a
#: running gateway before a test gives up: sync_interval plus slow-CI slack.
SYNC_TIMEOUT_S = 60.0


# --- certificates -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Certs:
    """What ``sluice certs create`` wrote into ``dir``."""

    dir: Path
    client: str = CLIENT_NAME

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.dir / f"{self.client}.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / f"{self.client}.key"

    def ca_pem(self) -> str:
        return self.ca.read_text()

    def client_pair(self) -> tuple[str, str]:
        """(certificate PEM, private key PEM) of the client certificate."""
        return self.client_cert.read_text(), self.client_key.read_text()


def make_certs(binary: Path, directory: Path, client: str = CLIENT_NAME) -> Certs:
    """Runs ``sluice certs create`` into ``directory`` and checks that every
    promised file is there. The private keys' material joins
    ``harness.SECRETS`` (no gateway may log it)."""
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "certs", "create", "--dir", str(directory),
           "--hosts", "127.0.0.1,localhost", "--client", client]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed (exit {res.returncode})\n"
                           f"stdout: {res.stdout}\nstderr: {res.stderr}")
    certs = Certs(directory, client)
    for path in (certs.ca, certs.ca_key, certs.server_cert, certs.server_key, certs.client_cert, certs.client_key):
        if not path.is_file() or not path.read_text().strip().startswith("-----BEGIN"):
            raise HarnessError(f"`sluice certs create` did not write a PEM file {path}: {sorted(directory.iterdir())}")
    for key in (certs.ca_key, certs.server_key, certs.client_key):
        SECRETS.update(pem_body_lines(key.read_text()))
    return certs


def pem_body_lines(pem: str) -> list[str]:
    """The full-length base64 lines of a PEM document: pieces of a private
    key that a leak would contain whatever the newline encoding."""
    return [line for line in pem.splitlines() if len(line) >= 40 and not line.startswith("-----")]


def cert_fingerprint(pem: str) -> str:
    """Lower-case hex SHA-256 of the DER encoding of the first certificate in ``pem``."""
    body = pem.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    return hashlib.sha256(base64.b64decode("".join(body.split()))).hexdigest()


# --- config sections --------------------------------------------------------------------

def provider_tls_config(certs: Certs, *, require_client_cert_for_share: bool = True,
                        client_ca: bool = True) -> str:
    """``[server.tls]`` for a provider (SPEC "Provider config")."""
    lines = [
        "[server.tls]",
        f"cert = {_toml_str(str(certs.server_cert))}",
        f"key = {_toml_str(str(certs.server_key))}",
        f"ca = {_toml_str(str(certs.ca))}",
        f"require_client_cert_for_share = {'true' if require_client_cert_for_share else 'false'}",
    ]
    if client_ca:
        lines.append(f"client_ca = {_toml_str(str(certs.ca))}")
    return "\n".join(lines)


def new_seal_key() -> str:
    """Base64 of 32 random bytes (``[federation] seal_key``); added to
    ``harness.SECRETS``."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    SECRETS.add(key)
    return key


def federation_config(seal_key: str | None = None, **settings) -> str:
    """``[federation]`` for a receiver. ``settings`` are written as given:
    strings quoted (durations such as ``"2s"``), numbers bare. Without
    ``seal_key`` the gateway generates ``<data_dir>/seal.key``."""
    lines = ["[federation]"]
    if seal_key is not None:
        lines.append(f"seal_key = {_toml_str(seal_key)}")
    for key, value in settings.items():
        lines.append(f"{key} = {_toml_str(value) if isinstance(value, str) else value}")
    return "\n".join(lines)


# --- servers -----------------------------------------------------------------------------

@dataclasses.dataclass
class TlsSluiceServer(SluiceServer):
    """A ``SluiceServer`` whose Flight SQL port speaks TLS (a provider)."""

    certs: Certs | None = None
    require_client_cert_for_share: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.certs is None:
            raise HarnessError("TlsSluiceServer needs certs")
        tls = provider_tls_config(self.certs, require_client_cert_for_share=self.require_client_cert_for_share)
        self.extra_config = tls + ("\n\n" + self.extra_config if self.extra_config else "")

    @property
    def flight_uri(self) -> str:
        return f"grpc+tls://{self.flight_addr}"

    def adbc_connect(self, secret: str, *, mode: str = "bearer", client: Certs | None = None):
        """ADBC over TLS (the test CA as root); ``client``: present that
        client certificate. Only ``bearer`` auth."""
        if mode != "bearer":
            raise ValueError(mode)
        return adbc_tls_connect(self.flight_uri, secret, ca_pem=self.certs.ca_pem(), client=client)

    def flight_client(self, client: Certs | None = None):
        return tls_flight_client(self.flight_uri, ca_pem=self.certs.ca_pem(), client=client)


def adbc_tls_connect(uri: str, secret: str, *, ca_pem: str, client: Certs | None = None):
    """An ADBC DB-API connection over TLS with ``authorization: Bearer``;
    with ``client``, mutual TLS with that client certificate."""
    import adbc_driver_flightsql.dbapi as flightsql

    db_kwargs = {
        "adbc.flight.sql.rpc.timeout_seconds.fetch": QUERY_TIMEOUT_S,
        "adbc.flight.sql.rpc.timeout_seconds.query": QUERY_TIMEOUT_S,
        "adbc.flight.sql.rpc.timeout_seconds.update": QUERY_TIMEOUT_S,
        "adbc.flight.sql.authorization_header": f"Bearer {secret}",
        "adbc.flight.sql.client_option.tls_root_certs": ca_pem,
    }
    if client is not None:
        cert, key = client.client_pair()
        db_kwargs["adbc.flight.sql.client_option.mtls_cert_chain"] = cert
        db_kwargs["adbc.flight.sql.client_option.mtls_private_key"] = key
    return flightsql.connect(uri, db_kwargs=db_kwargs, autocommit=True)


def tls_flight_client(uri: str, *, ca_pem: str, client: Certs | None = None):
    """pyarrow.flight client over TLS (``ca_pem`` as root); with ``client``,
    presenting that client certificate."""
    import pyarrow.flight as flight

    kwargs = {"tls_root_certs": ca_pem.encode()}
    if client is not None:
        cert, key = client.client_pair()
        kwargs["cert_chain"] = cert.encode()
        kwargs["private_key"] = key.encode()
    return flight.FlightClient(uri, **kwargs)


def flight_sql(client, options, sql: str) -> pa.Table:
    """GetFlightInfo(CommandStatementQuery) and DoGet of every endpoint on
    the same client; the rows as one table."""
    info = fp.statement_info(client, sql, options)
    tables = [fp.read_stream(client.do_get(ep.ticket, options))[0] for ep in info.endpoints]
    if not tables:
        return info.schema.empty_table()
    return pa.concat_tables(tables)


def call_options(secret: str | None, *, request_id: str | None = None, timeout: float = FLIGHT_TIMEOUT_S):
    import pyarrow.flight as flight

    headers = []
    if secret is not None:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    return flight.FlightCallOptions(headers=headers, timeout=timeout)


# --- HTTP helpers ------------------------------------------------------------------------

def bearer(secret: str | None) -> dict[str, str]:
    return {} if secret is None else {"Authorization": f"Bearer {secret}"}


def unknown_secret() -> str:
    """A well-formed secret no gateway issued (not secret-shaped like
    ``slc_…``, so the end-of-suite leak scan does not trip over a value the
    test itself sent)."""
    return secrets.token_urlsafe(32)


def ready(server: SluiceServer) -> tuple[int, dict]:
    """``GET /ready``: (status, JSON body)."""
    r = requests.get(f"{server.http_base}/ready", timeout=30)
    try:
        body = r.json()
    except ValueError:
        body = {"_text": r.text}
    return r.status_code, body


def peer_status(server: SluiceServer, name: str) -> dict | None:
    """``/ready``'s ``peers[name]`` (None if absent)."""
    _, body = ready(server)
    return (body.get("peers") or {}).get(name)


def create_share_token(provider: SluiceServer, body: dict, *, headers: dict | None = None) -> requests.Response:
    """``POST /v1/tokens`` with a share token document (admin by default)."""
    return requests.post(f"{provider.http_base}/v1/tokens", json=body,
                         headers=provider.admin_headers() if headers is None else headers, timeout=30)


def download(provider: SluiceServer, token_id: str, *, headers: dict | None = None) -> requests.Response:
    """``GET /v1/tokens/<id>/download`` (admin by default). A 200 answer's
    secret joins ``harness.SECRETS``."""
    r = requests.get(f"{provider.http_base}/v1/tokens/{token_id}/download",
                     headers=provider.admin_headers() if headers is None else headers, timeout=30)
    if r.status_code == 200:
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            SECRETS.add(r.json()["token"])
    return r


def share_body(body: dict, provider: SluiceServer, *, name: str | None = None, base_url: str | None = None) -> dict:
    """``body`` (a token document) as a share token of ``provider``, whose
    profile endpoint is ``base_url`` (default: the provider's Flight URI)."""
    out = json.loads(json.dumps(body))
    out["token_type"] = "share"
    out["provider_base_url"] = base_url or provider.flight_uri
    if name is not None:
        out["name"] = name
    return out


@dataclasses.dataclass
class Share:
    """A share token made and downloaded once: the creation answer, the
    document it was made from, and the profile."""

    created: dict
    body: dict
    profile: dict

    @property
    def id(self) -> str:
        return self.created["id"]

    @property
    def name(self) -> str:
        return self.body["name"]

    @property
    def secret(self) -> str:
        return self.profile["token"]


def make_share(provider: SluiceServer, body: dict, *, base_url: str | None = None) -> Share:
    """Creates a share token from ``body`` (made a share token by
    ``share_body``) and downloads its profile; fails loudly otherwise."""
    doc = share_body(body, provider, base_url=base_url)
    r = create_share_token(provider, doc)
    if r.status_code != 201:
        raise HarnessError(f"POST /v1/tokens (share {doc['name']!r}) -> {r.status_code}: {r.text}")
    created = r.json()
    d = download(provider, created["id"])
    if d.status_code != 200:
        raise HarnessError(f"download of share {doc['name']!r} -> {d.status_code}: {d.text}")
    return Share(created=created, body=doc, profile=d.json())


def accept(receiver: SluiceServer, name: str, profile, *, client: Certs | None = None,
           remote_catalog: str | None = None, headers: dict | None = None, **extra) -> requests.Response:
    """``POST /v1/external-tokens/accept`` (admin by default)."""
    body = {"name": name, "profile": profile, **extra}
    if remote_catalog is not None:
        body["remote_catalog"] = remote_catalog
    if client is not None:
        body["client_cert"], body["client_key"] = client.client_pair()
    return requests.post(f"{receiver.http_base}/v1/external-tokens/accept", json=body,
                         headers=receiver.admin_headers() if headers is None else headers, timeout=60)


def accept_ok(receiver: SluiceServer, name: str, profile: dict, **kw) -> dict:
    r = accept(receiver, name, profile, **kw)
    if r.status_code != 201:
        raise HarnessError(f"accept of peer {name!r} -> {r.status_code}: {r.text}")
    return r.json()


def external_tokens(receiver: SluiceServer, *, headers: dict | None = None) -> requests.Response:
    return requests.get(f"{receiver.http_base}/v1/external-tokens",
                        headers=receiver.admin_headers() if headers is None else headers, timeout=30)


def delete_external(receiver: SluiceServer, ext_id: str, *, headers: dict | None = None) -> requests.Response:
    return requests.delete(f"{receiver.http_base}/v1/external-tokens/{ext_id}",
                           headers=receiver.admin_headers() if headers is None else headers, timeout=30)


def create_token_when_ready(server: SluiceServer, body: dict, *, timeout_s: float = SYNC_TIMEOUT_S) -> dict:
    """``POST /v1/tokens`` of a token whose grants name peer tables: retried
    while the gateway answers "no such table" (the peer's tables are not
    mounted yet); any other refusal fails at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = requests.post(f"{server.http_base}/v1/tokens", json=body, headers=server.admin_headers(), timeout=30)
        if r.status_code in (200, 201):
            out = r.json()
            SECRETS.add(out["secret"])
            return out
        if r.status_code != 400 or "no such table" not in r.text or time.monotonic() > deadline:
            raise HarnessError(f"POST /v1/tokens {body.get('name')!r} -> {r.status_code}: {r.text}"
                               + (f" (still after {timeout_s}s)" if r.status_code == 400 else ""))
        time.sleep(0.3)


def sluice_cli(binary: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs ``sluice <args>`` (text output captured, never raises on exit codes)."""
    import os

    env = dict(os.environ)
    env.setdefault("NO_COLOR", "1")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout, env=env)


# --- comparing and searching ------------------------------------------------------------

_LAKE = re.compile(r"(?<![A-Za-z0-9_\"])lake\.")


def to_peer(sql: str, peer: str) -> str:
    """``sql`` over the provider's ``lake.*`` as the receiver writes it over ``<peer>.*``."""
    return _LAKE.sub(f"{peer}.", sql)


def error_text(e: BaseException) -> str:
    return " ".join(str(e).split())


def files_containing(root: Path, needles: dict[str, bytes]) -> list[str]:
    """"<needle label> in <file>" for every file below ``root`` whose bytes
    contain one of ``needles``."""
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for label, needle in needles.items():
            if needle and needle in data:
                hits.append(f"{label} in {path}")
    return hits


def rfc3339(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def timed(fn):
    """(result or exception, seconds)."""
    start = time.monotonic()
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - returned to the caller
        out = e
    return out, time.monotonic() - start


def grpc_message(text: str) -> str:
    """A client error without per-call noise (debug context, timestamps):
    what two refusals are compared on."""
    text = re.split(r"gRPC client debug context|Client context:|\. Detail:", str(text))[0]
    return " ".join(text.split())


def secret_variants(secret: str) -> dict[str, bytes]:
    """``secret`` and trivial encodings of it: none may be stored."""
    raw = secret.encode()
    return {
        "secret": raw,
        "secret (hex)": raw.hex().encode(),
        "secret (base64)": base64.b64encode(raw),
        "secret (base64url)": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "secret body": secret.split("_", 1)[-1].encode(),
    }
