"""The Milvus test server and its fixture collections, checked with pymilvus
alone (no sluice needed): the data equals milvus_fixtures' rows, the
nearest-neighbour trap holds, and the Milvus 2.3.5 behaviours that the
connector's paging relies on (query results in primary-key order, the
offset+limit window of 16384) still hold.
"""

from __future__ import annotations

import math

import pytest

import milvus_fixtures as mf

MAX_WINDOW = 16384


@pytest.fixture(scope="module")
def colls(milvus):
    pm = mf.import_pymilvus()
    alias = "test_milvus_fixtures"
    pm.connections.connect(alias=alias, uri=milvus.uri, db_name=mf.DB_NAME, timeout=30)
    yield {name: pm.Collection(name, using=alias) for name in mf.EXPECTED_COUNTS}
    pm.connections.disconnect(alias)


def test_counts(colls):
    for name, want in mf.EXPECTED_COUNTS.items():
        res = colls[name].query(expr="id >= 0", output_fields=["count(*)"])
        assert res[0]["count(*)"] == want, name
        assert colls[name].num_entities == want, name


def test_docs_rows_equal_fixture(colls):
    got = colls["docs"].query(expr="id > 0", output_fields=["*"], limit=MAX_WINDOW)
    want = {r["id"]: r for r in mf.docs_rows()}
    assert len(got) == len(want)
    for row in got:
        exp = want[row["id"]]
        assert set(row) == set(exp)
        for k, v in exp.items():
            if k == "embedding":
                assert [float(x) for x in row[k]] == v, (row["id"], k)
            else:
                assert row[k] == v, (row["id"], k)


def test_big_rows_equal_fixture_and_keyset_paging(colls):
    want = mf.big_rows()
    got, last = [], 0
    while True:
        page = colls["big"].query(expr=f"id > {last}", limit=MAX_WINDOW, output_fields=["*"])
        if not page:
            break
        ids = [r["id"] for r in page]
        assert ids == sorted(ids), "query results are not in primary-key order"
        got += page
        last = ids[-1]
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for g, w in zip(got, want):
        assert (g["grp"], g["label"]) == (w["grp"], w["label"])
        assert [float(x) for x in g["embedding"]] == w["embedding"]


def test_notes_rows_equal_fixture(colls):
    got = colls["notes"].query(expr="id > 0", output_fields=["*"], limit=MAX_WINDOW)
    assert [{**r, "embedding": [float(x) for x in r["embedding"]]} for r in got] == mf.notes_rows()


def test_trap_true_neighbours_are_globex(colls):
    res = colls["docs"].search(
        [mf.QUERY_VECTOR], "embedding", {"metric_type": "L2", "params": {}}, limit=20,
        output_fields=["tenant", "sensitivity"],
    )
    hits = res[0]
    assert list(hits.ids) == list(mf.TRAP_IDS)
    assert {h.entity.get("tenant") for h in hits} == {"globex"}
    assert {h.entity.get("sensitivity") for h in hits} == {0}
    # Milvus L2 distances are squared; a bound: float32 distances of the
    # trap rows, all within 0.001 of the query vector.
    assert max(hits.distances) <= 0.001 ** 2 * 1.01
    # Filtered inside the search, a non-globex tenant still gets k hits, all far away.
    res = colls["docs"].search(
        [mf.QUERY_VECTOR], "embedding", {"metric_type": "L2", "params": {}}, limit=5,
        expr="tenant == 'acme'", output_fields=["tenant"],
    )
    assert len(res[0]) == 5
    assert min(res[0].distances) > mf.TRAP_MARGIN ** 2  # a bound: every acme row is farther than the margin


def test_notes_cosine_search(colls):
    q = mf.notes_rows()[41]["embedding"]
    res = colls["notes"].search([q], "embedding", {"metric_type": "COSINE", "params": {"ef": 64}}, limit=3)
    assert res[0].ids[0] == 42
    assert math.isclose(res[0].distances[0], 1.0, abs_tol=1e-5)


def test_offset_limit_window(colls):
    page = colls["big"].query(expr="id > 0", offset=MAX_WINDOW - 100, limit=100, output_fields=["id"])
    assert [r["id"] for r in page] == list(range(MAX_WINDOW - 99, MAX_WINDOW + 1))
    pm = mf.import_pymilvus()
    with pytest.raises(pm.MilvusException, match=r"\(offset\+limit\) should be in range \[1, 16384\]"):
        colls["big"].query(expr="id > 0", offset=MAX_WINDOW, limit=1, output_fields=["id"])
