"""Shared pieces of the Milvus / vector-search client tests: the catalog
config, a started sluice server with it, and throwaway pymilvus
collections."""

from __future__ import annotations

import contextlib

import milvus_fixtures as mf
from harness import SluiceServer, start_or_fail

#: ``[catalogs.vec]`` pointing at ``uri``; ``timeout`` and ``refresh`` are
#: durations ("2s").
VEC_CONFIG = """[catalogs.vec]
kind = "milvus"
uri = "{uri}"
database = "default"
timeout = "{timeout}"
refresh_interval = "{refresh}"
consistency = "strong"

[catalogs.vec.tables."default.docs"]
sensitivity_column = "sensitivity"
"""


def vec_server(sluice_bin, lake, workdir, uri: str, timeout: str, refresh: str) -> SluiceServer:
    """A started sluice server with the lake and ``[catalogs.vec]`` at ``uri``."""
    return start_or_fail(SluiceServer(binary=sluice_bin, workdir=workdir, lake=lake,
                              extra_config=VEC_CONFIG.format(uri=uri, timeout=timeout, refresh=refresh)))


@contextlib.contextmanager
def temp_collection(uri: str, name: str, fields: list, rows, metric: str = "L2"):
    """A collection ``name`` created by pymilvus with ``fields`` (FieldSchema
    list, built by the caller from the ``DataType`` it is given: ``fields``
    may be a function of ``DataType``) and ``rows`` (row dicts or column
    lists), a FLAT index on ``embedding`` and loaded; dropped on exit."""
    mf.import_pymilvus()
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility

    alias = f"tmp_{name}"
    connections.connect(alias=alias, uri=uri)
    if utility.has_collection(name, using=alias):
        utility.drop_collection(name, using=alias)
    if callable(fields):
        fields = fields(FieldSchema, DataType)
    coll = Collection(name, CollectionSchema(fields), consistency_level="Strong", using=alias)
    try:
        coll.insert(rows)
        coll.flush()
        coll.create_index("embedding", {"index_type": "FLAT", "metric_type": metric, "params": {}})
        coll.load()
        yield coll
    finally:
        utility.drop_collection(name, using=alias)
        connections.disconnect(alias)
