"""Deterministic Milvus fixture collections (created with pymilvus 2.3).

``create_collections(uri)`` (re)creates, in database ``default``:

- ``docs`` (3000 rows): ``id`` INT64 pk, ``title`` VARCHAR(200), ``category``
  VARCHAR(32) (news/blog/paper/memo), ``tenant`` VARCHAR(32)
  (acme/globex/initech), ``sensitivity`` INT32 (0..3), ``rating`` DOUBLE,
  ``published`` BOOL, ``meta`` JSON ({"lang": "en"|"de", "n": int}),
  ``embedding`` FLOAT_VECTOR(8); FLAT / L2.
  The trap: rows 2981..3000 are tenant 'globex', sensitivity 0, with
  embeddings within 0.001 (L2) of ``QUERY_VECTOR``; every other row is more
  than ``TRAP_MARGIN`` (0.5) away from it. So the true top-k of a search for
  ``QUERY_VECTOR`` (k <= 20) is all globex; a policy that filters after the
  top-k instead of inside the search returns nothing (or too little) to a
  non-globex token.
- ``notes`` (500 rows): ``id`` INT64 pk, ``body`` VARCHAR(500), ``tenant``
  VARCHAR(32), ``embedding`` FLOAT_VECTOR(4); HNSW (M=16, efConstruction=64)
  / COSINE.
- ``big`` (50,000 rows): ``id`` INT64 pk, ``grp`` INT64 (= id % 10),
  ``label`` VARCHAR(16) (= f"l{id % 7}"), ``embedding`` FLOAT_VECTOR(4);
  inserted in 10 batches of 5,000 with a flush after every 2 (5 sealed
  segments); FLAT / L2.

All collections use consistency level Strong and are loaded (they are
created in parallel, about 20-40 s in all on 2 cores). ``docs_rows()``,
``notes_rows()``, ``big_rows()`` return exactly the inserted rows (lists of
dicts keyed by field name, ordered by id; embeddings are the float32 values
as Python floats). They are cached: do not mutate them.
"""

from __future__ import annotations

import functools
import sys
import time
import warnings

import numpy as np

DB_NAME = "default"
TRAP_MARGIN = 0.5
TRAP_IDS = range(2981, 3001)
#: The query vector of the trap (exactly representable in float32).
QUERY_VECTOR = [0.25, -0.5, 0.75, -0.125, 0.5, -0.75, 0.125, 0.375]

DOCS_N = 3000
NOTES_N = 500
BIG_N = 50_000
BIG_BATCH = 5_000
BIG_FLUSH_EVERY = 2

DOCS_DIM = 8
NOTES_DIM = 4
BIG_DIM = 4

CATEGORIES = ["news", "blog", "paper", "memo"]
TENANTS = ["acme", "globex", "initech"]
LANGS = ["en", "de"]
_WORDS = [
    "alpha", "beta", "gamma", "delta", "vector", "policy", "token", "gateway",
    "quarterly", "report", "merger", "budget", "roadmap", "incident", "review",
    "launch", "audit", "summary", "draft", "minutes",
]

#: name -> expected row count
EXPECTED_COUNTS = {"docs": DOCS_N, "notes": NOTES_N, "big": BIG_N}


def _f32_lists(arr: np.ndarray) -> list[list[float]]:
    """float32 matrix -> lists of Python floats with the exact float32 values."""
    return arr.astype(np.float32).tolist()


def _l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a.astype(np.float64) - b.astype(np.float64)) ** 2).sum(axis=-1))


@functools.lru_cache(maxsize=None)
def docs_rows() -> list[dict]:
    rng = np.random.default_rng(20240501)
    n = DOCS_N
    q = np.asarray(QUERY_VECTOR, dtype=np.float32)
    emb = rng.uniform(-1.0, 1.0, size=(n, DOCS_DIM)).astype(np.float32)
    trap = np.array([i - 1 for i in TRAP_IDS])
    others = np.setdiff1d(np.arange(n), trap)
    # No non-trap row within TRAP_MARGIN of QUERY_VECTOR: redraw those (deterministically).
    for _ in range(1000):
        near = others[_l2(emb[others], q) <= TRAP_MARGIN]
        if near.size == 0:
            break
        emb[near] = rng.uniform(-1.0, 1.0, size=(near.size, DOCS_DIM)).astype(np.float32)
    # Trap rows: QUERY_VECTOR + noise with L2 norm in [0.0001, 0.001), distinct norms.
    noise = rng.normal(size=(trap.size, DOCS_DIM))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    noise *= np.linspace(0.0001, 0.00095, trap.size)[:, None]
    emb[trap] = (q.astype(np.float64) + noise).astype(np.float32)

    d = _l2(emb, q)
    assert (d[trap] <= 0.001).all(), d[trap]
    assert (d[others] > TRAP_MARGIN).all(), d[others].min()

    category = rng.integers(0, len(CATEGORIES), n)
    tenant = rng.integers(0, len(TENANTS), n)
    sensitivity = rng.integers(0, 4, n)
    rating = np.round(rng.uniform(0.0, 5.0, n), 3)
    published = rng.random(n) < 0.6
    lang = rng.integers(0, len(LANGS), n)
    meta_n = rng.integers(0, 100, n)
    w1 = rng.integers(0, len(_WORDS), n)
    w2 = rng.integers(0, len(_WORDS), n)
    tenant[trap] = TENANTS.index("globex")
    sensitivity[trap] = 0

    embs = _f32_lists(emb)
    rows = []
    for i in range(n):
        rows.append({
            "id": i + 1,
            "title": f"doc {i + 1}: {_WORDS[w1[i]]} {_WORDS[w2[i]]}",
            "category": CATEGORIES[category[i]],
            "tenant": TENANTS[tenant[i]],
            "sensitivity": int(sensitivity[i]),
            "rating": float(rating[i]),
            "published": bool(published[i]),
            "meta": {"lang": LANGS[lang[i]], "n": int(meta_n[i])},
            "embedding": embs[i],
        })
    return rows


@functools.lru_cache(maxsize=None)
def notes_rows() -> list[dict]:
    rng = np.random.default_rng(20240502)
    n = NOTES_N
    emb = rng.uniform(-1.0, 1.0, size=(n, NOTES_DIM)).astype(np.float32)
    tenant = rng.integers(0, len(TENANTS), n)
    nwords = rng.integers(3, 12, n)
    embs = _f32_lists(emb)
    rows = []
    for i in range(n):
        words = " ".join(_WORDS[j] for j in rng.integers(0, len(_WORDS), nwords[i]))
        rows.append({
            "id": i + 1,
            "body": f"note {i + 1}: {words}",
            "tenant": TENANTS[tenant[i]],
            "embedding": embs[i],
        })
    return rows


@functools.lru_cache(maxsize=None)
def _big_embeddings() -> list[list[float]]:
    rng = np.random.default_rng(20240503)
    return _f32_lists(rng.uniform(-1.0, 1.0, size=(BIG_N, BIG_DIM)).astype(np.float32))


@functools.lru_cache(maxsize=None)
def big_rows() -> list[dict]:
    embs = _big_embeddings()
    return [
        {"id": i, "grp": i % 10, "label": f"l{i % 7}", "embedding": embs[i - 1]}
        for i in range(1, BIG_N + 1)
    ]


ROWS = {"docs": docs_rows, "notes": notes_rows, "big": big_rows}


# --- creation with pymilvus ------------------------------------------------------------

def import_pymilvus():
    """``import pymilvus`` without its import-time warnings (pymilvus 2.3
    uses pkg_resources, environs reads marshmallow.__version__)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="environs")
        import pymilvus
    return pymilvus


def _schemas():
    import_pymilvus()
    from pymilvus import CollectionSchema, DataType, FieldSchema

    def pk():
        return FieldSchema("id", DataType.INT64, is_primary=True, auto_id=False)

    return {
        "docs": CollectionSchema([
            pk(),
            FieldSchema("title", DataType.VARCHAR, max_length=200),
            FieldSchema("category", DataType.VARCHAR, max_length=32),
            FieldSchema("tenant", DataType.VARCHAR, max_length=32),
            FieldSchema("sensitivity", DataType.INT32),
            FieldSchema("rating", DataType.DOUBLE),
            FieldSchema("published", DataType.BOOL),
            FieldSchema("meta", DataType.JSON),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=DOCS_DIM),
        ], description="sluice test documents (with the nearest-neighbour trap)"),
        "notes": CollectionSchema([
            pk(),
            FieldSchema("body", DataType.VARCHAR, max_length=500),
            FieldSchema("tenant", DataType.VARCHAR, max_length=32),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=NOTES_DIM),
        ], description="sluice test notes (HNSW, COSINE)"),
        "big": CollectionSchema([
            pk(),
            FieldSchema("grp", DataType.INT64),
            FieldSchema("label", DataType.VARCHAR, max_length=16),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=BIG_DIM),
        ], description="sluice test big collection (several segments)"),
    }


INDEXES = {
    "docs": {"index_type": "FLAT", "metric_type": "L2", "params": {}},
    "notes": {"index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 16, "efConstruction": 64}},
    "big": {"index_type": "FLAT", "metric_type": "L2", "params": {}},
}


def _columns(schema, rows: list[dict]) -> list[list]:
    return [[r[f.name] for r in rows] for f in schema.fields]


def _count(coll) -> int:
    res = coll.query(expr="id >= 0", output_fields=["count(*)"], consistency_level="Strong")
    return int(res[0]["count(*)"])


def _create_one(name: str, uri: str, alias: str) -> float:
    from pymilvus import Collection, connections, utility

    t0 = time.monotonic()
    schema = _schemas()[name]
    connections.connect(alias=alias, uri=uri, db_name=DB_NAME, timeout=30)
    try:
        if utility.has_collection(name, using=alias):
            utility.drop_collection(name, using=alias)
        coll = Collection(name, schema, using=alias, consistency_level="Strong")
        rows = ROWS[name]()
        if name == "big":
            # several sealed segments: a flush after every BIG_FLUSH_EVERY batches
            for b, start in enumerate(range(0, len(rows), BIG_BATCH)):
                coll.insert(_columns(schema, rows[start:start + BIG_BATCH]))
                if (b + 1) % BIG_FLUSH_EVERY == 0:
                    coll.flush()
        else:
            coll.insert(_columns(schema, rows))
        coll.flush()
        coll.create_index("embedding", INDEXES[name])
        utility.wait_for_index_building_complete(name, using=alias)
        coll.load()
        utility.wait_for_loading_complete(name, using=alias)
        n_ent = coll.num_entities
        n_cnt = _count(coll)
        want = EXPECTED_COUNTS[name]
        if n_ent != want or n_cnt != want:
            raise AssertionError(f"{name}: num_entities={n_ent} count(*)={n_cnt}, want {want}")
    finally:
        connections.disconnect(alias)
    return time.monotonic() - t0


def create_collections(uri: str, alias: str = "sluice_fixtures", verbose: bool = True) -> dict[str, float]:
    """Drop and create docs, notes, big (in parallel, one connection each:
    a flush or a load is mostly waiting, about 3 s each); insert, flush,
    index, load, verify num_entities and count(*). Returns seconds per
    collection."""
    from concurrent.futures import ThreadPoolExecutor

    import_pymilvus()
    ROWS["docs"](), ROWS["notes"](), ROWS["big"]()  # generate before the threads
    timings = {}
    with ThreadPoolExecutor(max_workers=len(EXPECTED_COUNTS)) as pool:
        futs = {name: pool.submit(_create_one, name, uri, f"{alias}_{name}") for name in EXPECTED_COUNTS}
        errors = []
        for name, fut in futs.items():
            try:
                timings[name] = fut.result()
            except Exception as e:  # noqa: BLE001 - collected, raised below
                errors.append((name, e))
                continue
            if verbose:
                print(f"milvus_fixtures: {name}: {EXPECTED_COUNTS[name]} rows in {timings[name]:.1f}s",
                      file=sys.stderr, flush=True)
    if errors:
        name, e = errors[0]
        raise RuntimeError(f"creating Milvus collection {name!r} failed: {e!r}"
                           + "".join(f"; {n!r}: {x!r}" for n, x in errors[1:])) from e
    return timings


def collections_present(uri: str, alias: str = "sluice_fixtures_check") -> bool:
    """True if every fixture collection exists with its expected row count."""
    import_pymilvus()
    from pymilvus import Collection, connections, utility

    connections.connect(alias=alias, uri=uri, db_name=DB_NAME, timeout=30)
    try:
        for name, want in EXPECTED_COUNTS.items():
            if not utility.has_collection(name, using=alias):
                return False
            coll = Collection(name, using=alias)
            coll.load()
            if _count(coll) != want:
                return False
        return True
    finally:
        connections.disconnect(alias)


if __name__ == "__main__":
    create_collections(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:19530")
