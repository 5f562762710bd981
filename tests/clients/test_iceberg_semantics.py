"""Iceberg semantics of sluice's own scan, against pyiceberg's.

Tables written and evolved by pyiceberg (renamed, added, dropped and
promoted columns, a name reused for a new field id, partition spec
evolution, copy-on-write deletes, many files) are read through sluice over
Flight SQL and compared row for row with what pyiceberg's own scan returns.
The same catalog is served twice: ``evo`` keeps tables' metadata for an
hour (so what it shows changes only after ``POST
/v1/catalogs/evo/refresh``), ``evo_live`` re-reads it for every query.
"""

from __future__ import annotations

import os
import re

import pyarrow as pa
import pytest
import requests

from harness import SluiceServer, adbc_query, start_or_fail
from tokens import token_body

CATALOG = "evo"
NAMESPACE = "lab"
ROWS = 240


def _rows(start: int, count: int, *, tier: bool = False) -> pa.Table:
    ids = list(range(start, start + count))
    columns = {
        "id": pa.array(ids, pa.int64()),
        "name": pa.array([f"n{i}" for i in ids], pa.string()),
        "score": pa.array([i % 97 for i in ids], pa.int32()),
        "region": pa.array([("eu", "us", "apac")[i % 3] for i in ids], pa.string()),
    }
    if tier:
        columns["tier"] = pa.array([("gold", None, "basic")[i % 3] for i in ids], pa.string())
    return pa.table(columns)


class Evo:
    """The pyiceberg catalog and where sluice finds it."""

    def __init__(self, root):
        from pyiceberg.catalog.sql import SqlCatalog

        self.warehouse = root / "warehouse"
        self.warehouse.mkdir()
        self.uri = f"sqlite:///{root / 'catalog.db'}"
        self.catalog = SqlCatalog(CATALOG, uri=self.uri, warehouse=f"file://{self.warehouse}")
        self.catalog.create_namespace(NAMESPACE)

    def create(self, name: str, data: pa.Table, *, partition_by_region: bool = True, appends: int = 1):
        from pyiceberg.transforms import IdentityTransform

        table = self.catalog.create_table(f"{NAMESPACE}.{name}", schema=data.schema)
        if partition_by_region:
            with table.update_spec() as spec:
                spec.add_field("region", IdentityTransform(), "region")
        per = data.num_rows // appends
        for i in range(appends):
            table = self.catalog.load_table(f"{NAMESPACE}.{name}")
            table.append(data.slice(i * per, per if i < appends - 1 else data.num_rows - i * per))
        return self.catalog.load_table(f"{NAMESPACE}.{name}")

    def load(self, name: str):
        return self.catalog.load_table(f"{NAMESPACE}.{name}")

    def config(self) -> str:
        sections = []
        for served, interval in ((CATALOG, "1h"), (f"{CATALOG}_live", "0s")):
            sections += [
                f"[catalogs.{served}]",
                'kind = "iceberg"',
                'catalog = "sql"',
                f'catalog_name = "{CATALOG}"',
                f'uri = "{self.uri}"',
                f'warehouse = "file://{self.warehouse}"',
                f'refresh_interval = "{interval}"',
                "",
            ]
        return "\n".join(sections)


@pytest.fixture(scope="module")
def evo(tmp_path_factory):
    evo = Evo(tmp_path_factory.mktemp("evo"))
    for name in ("renamed", "dropped", "partitions", "deleted", "gone"):
        evo.create(name, _rows(1, ROWS))
    evo.create("many_files", _rows(1, 600), partition_by_region=False, appends=6)
    evo.create("moved", _rows(1, ROWS), partition_by_region=False)
    people = _rows(1, 60)
    person = pa.StructArray.from_arrays(
        [people["name"].combine_chunks(), pa.array([f"secret{i}@x" for i in range(60)], pa.string())],
        names=["name", "email"])
    evo.create("nested", pa.table({"id": people["id"], "region": people["region"], "person": person}),
               partition_by_region=False)
    # A Parquet file written without field ids, added in place: pyiceberg
    # gives the table a name mapping to read it.
    import pyarrow.parquet as pq

    added = evo.catalog.create_table(f"{NAMESPACE}.added", schema=_rows(1, 1).schema)
    path = evo.warehouse / "added-without-field-ids.parquet"
    pq.write_table(_rows(1, ROWS), path)
    added.add_files([f"file://{path}"])
    return evo


@pytest.fixture(scope="module")
def gateway(sluice_bin, lake, evo, tmp_path_factory):
    srv = start_or_fail(SluiceServer(binary=sluice_bin, workdir=tmp_path_factory.mktemp("evo-gw"), lake=lake,
                                     extra_config=evo.config()))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def reader(gateway):
    grants = [{"table": f"{c}.{NAMESPACE}.*", "columns": "*"} for c in (CATALOG, f"{CATALOG}_live")]
    return gateway.create_token(token_body("evo-reader", grants))["secret"]


def sluice_rows(gateway, secret, sql):
    with gateway.adbc_connect(secret) as conn:
        return adbc_query(conn, sql).to_pylist()


def pyiceberg_rows(table, row_filter=None, columns=("*",)):
    scan = table.scan(row_filter=row_filter, selected_fields=columns) if row_filter else table.scan(selected_fields=columns)
    return sorted(scan.to_arrow().to_pylist(), key=lambda r: r["id"])


def pa_string():
    from pyiceberg.types import StringType

    return StringType()


def refresh(gateway, catalog=CATALOG):
    r = requests.post(f"{gateway.http_base}/v1/catalogs/{catalog}/refresh", headers=gateway.admin_headers(), timeout=30)
    assert r.status_code == 204, r.text


def assert_same(gateway, secret, catalog, table_name, expected, where=""):
    got = sluice_rows(gateway, secret, f"SELECT * FROM {catalog}.{NAMESPACE}.{table_name} {where} ORDER BY id")
    assert len(got) == len(expected)
    assert got == expected


def test_renamed_added_and_promoted_columns_read_by_field_id_like_pyiceberg(gateway, reader, evo):
    with evo.load("renamed").update_schema() as update:
        update.rename_column("name", "label")
        update.add_column("tier", pa_string())
    table = evo.load("renamed")
    expected = pyiceberg_rows(table)
    assert all(r["tier"] is None for r in expected) and expected[0]["label"] == "n1"

    # The live catalog sees the new schema before any new snapshot: the
    # renamed column keeps its values, the added one reads as NULL.
    assert_same(gateway, reader, f"{CATALOG}_live", "renamed", expected)
    # The cached one still has the old schema until it is refreshed.
    old = sluice_rows(gateway, reader, f"SELECT * FROM {CATALOG}.{NAMESPACE}.renamed ORDER BY id LIMIT 1")
    assert set(old[0]) == {"id", "name", "score", "region"}
    refresh(gateway)
    assert_same(gateway, reader, CATALOG, "renamed", expected)

    # int -> long, then a write under the new schema.
    with evo.load("renamed").update_schema() as update:
        from pyiceberg.types import LongType

        update.update_column("score", LongType())
    table = evo.load("renamed")
    new = _rows(ROWS + 1, 30, tier=True).rename_columns(["id", "label", "score", "region", "tier"])
    new = new.cast(table.schema().as_arrow())
    table.append(new)
    refresh(gateway)
    expected = pyiceberg_rows(evo.load("renamed"))
    assert len(expected) == ROWS + 30
    assert_same(gateway, reader, CATALOG, "renamed", expected)
    assert_same(gateway, reader, CATALOG, "renamed", [r for r in expected if r["label"] >= "n2"],
                where="WHERE label >= 'n2'")


def test_a_dropped_column_name_reused_for_a_new_field_id_does_not_read_the_old_values(gateway, reader, evo):
    with evo.load("dropped").update_schema() as update:
        update.delete_column("score")
    with evo.load("dropped").update_schema() as update:
        update.add_column("score", pa_string())
    expected = pyiceberg_rows(evo.load("dropped"))
    assert all(r["score"] is None for r in expected)
    assert_same(gateway, reader, f"{CATALOG}_live", "dropped", expected)


def test_partition_spec_evolution_reads_and_prunes_both_specs_like_pyiceberg(gateway, reader, evo):
    from pyiceberg.expressions import And, EqualTo, GreaterThan

    # From identity(region) to unpartitioned (other transforms need
    # pyiceberg-core to write).
    with evo.load("partitions").update_spec() as spec:
        spec.remove_field("region")
    evo.load("partitions").append(_rows(ROWS + 1, 120))
    table = evo.load("partitions")
    assert len(table.specs()) == 2
    assert_same(gateway, reader, f"{CATALOG}_live", "partitions", pyiceberg_rows(table))
    expected = pyiceberg_rows(table, And(EqualTo("region", "eu"), GreaterThan("id", 100)))
    assert expected
    assert_same(gateway, reader, f"{CATALOG}_live", "partitions", expected,
                where="WHERE region = 'eu' AND id > 100")


def test_rows_deleted_by_pyiceberg_are_gone_after_a_refresh(gateway, reader, evo):
    before = sluice_rows(gateway, reader, f"SELECT count(*) AS n FROM {CATALOG}.{NAMESPACE}.deleted")
    assert before == [{"n": ROWS}]
    evo.load("deleted").delete("score < 50")
    evo.load("deleted").delete("region = 'apac'")
    table = evo.load("deleted")
    expected = pyiceberg_rows(table)
    assert 0 < len(expected) < ROWS
    # Served from the cached snapshot until the refresh.
    assert sluice_rows(gateway, reader, f"SELECT count(*) AS n FROM {CATALOG}.{NAMESPACE}.deleted") == before
    refresh(gateway)
    assert_same(gateway, reader, CATALOG, "deleted", expected)


def scan_line(gateway, secret, sql):
    with gateway.adbc_connect(secret) as conn:
        plan = adbc_query(conn, "EXPLAIN " + sql).to_pylist()
    text = "\n".join(r["plan"] for r in plan)
    return next((line.strip() for line in text.splitlines() if "IcebergScan:" in line), None), text


def test_a_table_of_many_files_is_read_in_parallel_partitions(gateway, reader, evo):
    table = evo.load("many_files")
    files = len(table.inspect.files())
    assert files == 6
    expected = pyiceberg_rows(table)
    assert_same(gateway, reader, CATALOG, "many_files", expected)
    scan, text = scan_line(gateway, gateway.admin_secret, f"SELECT id FROM {CATALOG}.{NAMESPACE}.many_files")
    partitions = int(re.search(r"partitions=(\d+)", scan).group(1))
    assert f"files={files}" in scan, text
    assert partitions >= min(2, os.cpu_count() or 1), text
    # Pruning to one file keeps the plan's shape: how many files survive
    # depends on data the caller may not see.
    pruned, text = scan_line(gateway, gateway.admin_secret,
                             f"SELECT id FROM {CATALOG}.{NAMESPACE}.many_files WHERE id > 590")
    assert "files=1" in pruned and f"partitions={partitions} " in pruned, text


def test_delete_free_flat_tables_are_read_by_datafusions_parquet_reader(gateway, evo):
    scan, text = scan_line(gateway, gateway.admin_secret,
                           f"SELECT id, name FROM {CATALOG}.{NAMESPACE}.many_files WHERE region = 'eu'")
    assert "reader=parquet" in scan, text
    assert "region" in scan, text


def test_files_added_without_field_ids_are_read_through_the_name_mapping_like_pyiceberg(gateway, reader, evo):
    table = evo.load("added")
    assert "schema.name-mapping.default" in table.properties
    assert_same(gateway, reader, CATALOG, "added", pyiceberg_rows(table))
    scan, text = scan_line(gateway, gateway.admin_secret, f"SELECT * FROM {CATALOG}.{NAMESPACE}.added")
    assert "reader=iceberg" in scan, text


def test_a_non_admin_plan_does_not_change_with_how_many_files_hidden_rows_prune(gateway, evo):
    body = token_body("evo-rows", [{"table": f"{CATALOG}.{NAMESPACE}.many_files", "columns": "*",
                                    "allow_rules": ["region = 'eu'"]}])
    secret = gateway.create_token(body)["secret"]
    plans = set()
    for bound in (100, 150, 300, 590, 10_000):
        scan, text = scan_line(gateway, secret, f"SELECT count(*) FROM {CATALOG}.{NAMESPACE}.many_files WHERE id > {bound}")
        assert scan is None, "non-admins do not see below the secure view"
        plans.add(re.sub(r"\d{3,}", "N", text))
    assert len(plans) == 1, plans


def test_a_nested_field_dropped_and_added_again_never_reads_the_old_values(gateway, reader, evo):
    from pyiceberg.types import StringType

    with evo.load("nested").update_schema() as update:
        update.delete_column(("person", "email"))
    with evo.load("nested").update_schema() as update:
        update.add_column(("person", "email"), StringType())
    expected = pyiceberg_rows(evo.load("nested"))
    assert all(r["person"]["email"] is None for r in expected)
    sql = f"SELECT * FROM {CATALOG}_live.{NAMESPACE}.nested ORDER BY id"
    try:
        got = sluice_rows(gateway, reader, sql)
    except Exception as e:
        # iceberg-rust's reader cannot follow this change and fails the
        # statement (an opaque internal error): refusing is acceptable,
        # showing the dropped field's values is not.
        assert "internal error" in str(e).lower(), e
        return
    assert got == expected


def test_a_moved_column_reads_its_own_values_not_its_neighbours(gateway, reader, evo):
    # Same types side by side: only the field ids tell name and region apart.
    with evo.load("moved").update_schema() as update:
        update.move_before("region", "name")
    table = evo.load("moved")
    assert [f.name for f in table.schema().fields] == ["id", "region", "name", "score"]
    expected = pyiceberg_rows(table)
    assert expected[0]["name"] == "n1" and expected[0]["region"] == "us"
    assert_same(gateway, reader, f"{CATALOG}_live", "moved", expected)
    # Two strings asked for in the other order than the files hold them.
    got = sluice_rows(gateway, reader, f"SELECT region, name FROM {CATALOG}_live.{NAMESPACE}.moved ORDER BY id")
    assert got == [{"region": r["region"], "name": r["name"]} for r in expected]


def test_a_table_dropped_from_the_catalog_is_not_found_after_a_refresh(gateway, reader, evo):
    sql = f"SELECT count(*) AS n FROM {CATALOG}.{NAMESPACE}.gone"
    assert sluice_rows(gateway, reader, sql) == [{"n": ROWS}]
    evo.catalog.drop_table(f"{NAMESPACE}.gone")
    refresh(gateway)
    with pytest.raises(Exception) as e:
        sluice_rows(gateway, reader, sql)
    assert "not found" in str(e.value).lower(), e.value


def test_refreshing_an_unknown_catalog_is_not_found_and_needs_an_admin(gateway, reader):
    r = requests.post(f"{gateway.http_base}/v1/catalogs/nope/refresh", headers=gateway.admin_headers(), timeout=30)
    assert r.status_code == 404
    r = requests.post(f"{gateway.http_base}/v1/catalogs/{CATALOG}/refresh",
                      headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    assert r.status_code == 403
    r = requests.post(f"{gateway.http_base}/v1/catalogs/{CATALOG}/refresh", timeout=30)
    assert r.status_code == 401
