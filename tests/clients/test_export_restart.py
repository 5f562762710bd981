"""Export jobs across a gateway crash: the job that was running is marked
failed (never silently lost) and its staged files are removed; the job
that was queued survives the restart and runs. The gateway is killed with
SIGKILL, so nothing of its own shutdown path helps."""

from __future__ import annotations

import os
import signal

from exports_harness import (
    EXPORT_TOKENS, ExportApi, exports_config, tree_files, unique, wait_running_with_output,
    wide_cross_join_sql,
)
from harness import SluiceServer, Tokens, start_or_fail
from trino_harness import wait_until

#: Long enough to be running when the gateway is killed.
HUGE_SQL = wide_cross_join_sql(40)
SMALL_SQL = wide_cross_join_sql(1, limit=10)


def test_restart_fails_the_running_job_and_runs_the_queued_one(sluice_bin, lake, tmp_path_factory, s3_proxy):
    workdir = tmp_path_factory.mktemp("sluice-export-restart")
    root = workdir / "data" / "exports"
    config = exports_config(root, s3_proxy.uri, concurrency=1)
    first = start_or_fail(SluiceServer(binary=sluice_bin, workdir=workdir, lake=lake, extra_config=config))
    second = None
    try:
        secret = Tokens(first, EXPORT_TOKENS)["big"]["secret"]
        api = ExportApi(first.http_base, secret)
        running = api.submit(HUGE_SQL, f"file:///big/{unique('crash')}", compression="none",
                             max_file_bytes=8 * 1024 * 1024)["id"]
        wait_running_with_output(api, running)
        queued_dest = f"file:///big/{unique('queued')}"
        queued = api.submit(SMALL_SQL, queued_dest)["id"]
        assert api.job(queued)["state"] == "queued", "concurrency = 1: the second job must wait"
        # Rows are counted as they are encoded; the first part reaches the
        # staging directory a moment later.
        wait_until(lambda: (root / ".sluice-staging" / running).is_dir(), timeout_s=60,
                   what="the running job stages its files")
        assert api.job(running)["state"] == "running"

        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=30)
        first.close()

        second = start_or_fail(SluiceServer(binary=sluice_bin, workdir=workdir, lake=lake, extra_config=config,
                                            run_init=False, admin_secret=first.admin_secret))
        api = ExportApi(second.http_base, secret)
        crashed = api.wait(running, timeout_s=60)
        assert crashed["state"] == "failed", crashed
        assert "stopped while the job was running" in crashed["error"], crashed
        assert crashed["manifest"] is None
        done = api.wait(queued, timeout_s=120)
        assert done["state"] == "succeeded", done
        assert done["rows"] == 10
        # The crashed job's staging directory goes; only the queued job's
        # files (and nothing of the crashed one) are under the root.
        wait_until(lambda: not (root / ".sluice-staging" / running).exists(), timeout_s=30,
                   what="the crashed job's staging directory removed by the janitor")
        files = tree_files(root)
        prefix = queued_dest.removeprefix("file:///") + "/"
        # its 10 rows in one part, and the manifest
        assert sorted(files) == [f"{prefix}_manifest.json", f"{prefix}part-00000.parquet"], files
    finally:
        if second is not None:
            second.close()
        first.close()
