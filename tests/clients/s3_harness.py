"""An S3 API on loopback for the export tests: moto's server (PyPI
``moto[server]``), optionally behind a :class:`tcp_proxy.TcpProxy`.

``MotoServer`` runs the venv's ``moto_server -H 127.0.0.1 -p PORT`` (free
port, own process group, log to a file) and is ready when ``GET /`` answers
(ListBuckets). moto keeps every bucket, object and open multipart upload in
its process, so a proxy in front of it can be paused or closed (a slow or
unreachable object store for the gateway) while the tests still see moto's
state through their own direct client.

``S3`` is that direct client (boto3, path-style, moto's static credentials
``testing``/``testing``, region us-east-1): buckets, objects under a prefix,
open multipart uploads, object bytes, Parquet files read with pyarrow.

Run as a script for a quick manual check: ``python tests/clients/s3_harness.py``
starts moto, makes a bucket, lists it, stops.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

HOST = "127.0.0.1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
START_TIMEOUT_S = 60.0


class S3HarnessError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def moto_command(port: int) -> list[str]:
    """``moto_server`` next to the running interpreter (the venv's bin; not
    resolved, the venv's python is a symlink), else ``python -m moto.server``."""
    exe = Path(sys.executable).parent / "moto_server"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe), "-H", HOST, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]


class MotoServer:
    """One moto server on a free loopback port."""

    def __init__(self, log_path: str | Path | None = None):
        self.log_path = Path(log_path) if log_path else None
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """(host, port), the target of a TcpProxy."""
        return (HOST, self.port)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> "MotoServer":
        if self.proc is not None:
            raise S3HarnessError("MotoServer already started")
        self.port = _free_port()
        t0 = time.monotonic()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                moto_command(self.port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            tail = self.log_tail()
            self.stop()
            raise S3HarnessError(f"moto_server not ready on {self.endpoint} after {timeout_s:.0f}s\n{tail}") from None
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise S3HarnessError(f"moto_server exited with code {rc}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.endpoint + "/", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError

    def log_tail(self, n: int = 40) -> str:
        if not self.log_path:
            return "(no moto log)"
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no moto log)"
        return "--- moto log (tail) ---\n" + "\n".join(lines[-n:])

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def client(self) -> "S3":
        return S3(self.endpoint)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class S3:
    """A direct boto3 client of one S3 endpoint (moto, not the proxy)."""

    def __init__(self, endpoint: str):
        import boto3
        import botocore.config

        self.endpoint = endpoint
        self.boto = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )

    # -- buckets and objects ----------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        """Creates ``bucket`` (us-east-1 needs no location constraint); an
        existing one of ours is fine."""
        try:
            self.boto.create_bucket(Bucket=bucket)
        except self.boto.exceptions.BucketAlreadyOwnedByYou:
            pass

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.boto.put_object(Bucket=bucket, Key=key, Body=body)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """key -> size of every object whose key starts with ``prefix``."""
        out: dict[str, int] = {}
        for page in self.boto.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = obj["Size"]
        return out

    def objects_below(self, bucket: str, prefix: str) -> dict[str, int]:
        """name relative to ``prefix/`` -> size, for the objects *below* the
        directory-like ``prefix`` (``acme/q1`` lists ``acme/q1/...``, not
        ``acme/q10``)."""
        base = prefix.rstrip("/") + "/"
        return {k[len(base):]: size for k, size in self.objects(bucket, base).items()}

    def get(self, bucket: str, key: str) -> bytes:
        return self.boto.get_object(Bucket=bucket, Key=key)["Body"].read()

    def multipart_uploads(self, bucket: str, prefix: str = "") -> list[dict]:
        """Open (neither completed nor aborted) multipart uploads whose key
        starts with ``prefix``: dicts with ``Key``, ``UploadId``, ``Parts``
        (the number of parts uploaded so far)."""
        out = []
        kwargs = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self.boto.list_multipart_uploads(**kwargs)
            for up in page.get("Uploads", []):
                out.append({"Key": up["Key"], "UploadId": up["UploadId"]})
            if not page.get("IsTruncated"):
                break
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["UploadIdMarker"] = page["NextUploadIdMarker"]
        for up in out:
            try:
                parts = self.boto.list_parts(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
                up["Parts"] = len(parts.get("Parts", []))
            except self.boto.exceptions.NoSuchUpload:
                up["Parts"] = None  # completed or aborted meanwhile
        return out

    def state(self, bucket: str, prefix: str = "") -> dict:
        """Everything under ``prefix``: ``{"objects": {key: size}, "uploads":
        [key, ...]}`` (for before/after comparisons and messages)."""
        return {
            "objects": self.objects(bucket, prefix),
            "uploads": sorted(u["Key"] for u in self.multipart_uploads(bucket, prefix)),
        }

    def empty_bucket(self, bucket: str) -> None:
        """Aborts every open multipart upload and deletes every object."""
        for up in self.multipart_uploads(bucket):
            with contextlib.suppress(self.boto.exceptions.NoSuchUpload):
                self.boto.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        for key in self.objects(bucket):
            self.boto.delete_object(Bucket=bucket, Key=key)

    # -- Parquet ---------------------------------------------------------------------
    def parquet_file(self, bucket: str, key: str):
        """A ``pyarrow.parquet.ParquetFile`` of the object's bytes."""
        import pyarrow.parquet as pq

        return pq.ParquetFile(io.BytesIO(self.get(bucket, key)))

    def read_parquet(self, bucket: str, key: str):
        return self.parquet_file(bucket, key).read()

    def filesystem(self):
        """A ``pyarrow.fs.S3FileSystem`` on this endpoint (paths are
        ``bucket/key``)."""
        import pyarrow.fs as pafs

        scheme, _, hostport = self.endpoint.partition("://")
        return pafs.S3FileSystem(
            endpoint_override=hostport, scheme=scheme, access_key=ACCESS_KEY, secret_key=SECRET_KEY,
            region=REGION, allow_bucket_creation=False, allow_bucket_deletion=False,
        )

    def read_dataset(self, bucket: str, prefix: str):
        """Every ``*.parquet`` object below ``prefix`` as one table, read by
        pyarrow's own S3 client (``pyarrow.dataset``)."""
        import pyarrow.dataset as ds

        base = f"{bucket}/{prefix.rstrip('/')}"
        return ds.dataset(base, format="parquet", filesystem=self.filesystem(),
                          exclude_invalid_files=False,
                          ignore_prefixes=["_", "."]).to_table()


def main() -> int:
    with MotoServer() as moto:
        s3 = moto.client()
        s3.create_bucket("selfcheck")
        s3.put("selfcheck", "a/b.txt", b"hello")
        print(f"moto on {moto.endpoint} (started in {moto.startup_s:.1f}s): {s3.objects('selfcheck')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
