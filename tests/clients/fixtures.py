"""Deterministic Iceberg test lake written with pyiceberg.

The lake is what sluice serves in the client-conformance tests and what the
DuckDB oracle (see ``policy_views.py``) rebuilds each token's secure views
from. ``build_lake(root)`` writes it and returns a :class:`Lake` holding the
catalog location and, per table, the pyarrow table with the table's final
logical content (after every commit).

Tables (catalog name ``lake``, SQL catalog on SQLite, local warehouse):

* ``sales.orders``     partitioned by ``identity(region)``; written as
  append, append, delete (copy-on-write), overwrite of one partition.
* ``sales.customers``  one append.
* ``hr.salaries``      one append; no test token is ever granted it.

Run as a script to write a lake into a directory and print a summary:
``python tests/clients/fixtures.py /tmp/lake``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import sys
from pathlib import Path

import pyarrow as pa

CATALOG_NAME = "lake"
SEED = 20240601

N_ORDERS = 3600
N_CUSTOMERS = 200
#: Orders reference customer ids up to this bound; ids above N_CUSTOMERS have
#: no customer row (outer joins see NULLs).
MAX_ORDER_CUSTOMER_ID = 240
N_SALARIES = 50

#: Orders with ids in this closed range are removed by the delete commit.
DELETED_ORDER_IDS = (1000, 1199)
#: The overwrite commit replaces the whole ``apac`` partition.
OVERWRITTEN_REGION = "apac"

#: Column classification sluice is configured with (config
#: ``[catalogs.lake.tables."<ns>.<table>"]``); the oracle uses the same.
TABLE_CLASSES: dict[str, dict] = {
    "sales.orders": {
        "sensitivity_column": "sensitivity",
        "attachment_columns": ["attachment"],
        "vector_columns": ["embedding"],
    },
}

ORDERS_SCHEMA = pa.schema(
    [
        pa.field("order_id", pa.int64()),
        pa.field("region", pa.string()),
        pa.field("customer_id", pa.int64()),
        pa.field("customer_email", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("sensitivity", pa.int32()),
        pa.field("embedding", pa.list_(pa.float32())),
        pa.field("attachment", pa.binary()),
        pa.field("created_at", pa.timestamp("us")),
    ]
)

CUSTOMERS_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("country", pa.string()),
        pa.field("tier", pa.string()),
    ]
)

SALARIES_SCHEMA = pa.schema(
    [
        pa.field("employee_id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("salary", pa.float64()),
        # A DATE column: the generated oracle masks and computes on dates.
        pa.field("hired_on", pa.date32()),
    ]
)

# Non-ASCII names on purpose (precomposed code points): `partial` masks count
# characters, not bytes.
FIRST_NAMES = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    "ivan", "judy", "mallory", "niaj", "olivia", "peggy", "rupert", "sybil",
    "trent", "victor", "walter", "zoë", "josé", "ångström", "al", "b",
]
LAST_NAMES = [
    "smith", "jones", "müller", "garcía", "nguyen", "kim", "rossi", "dubois",
    "tanaka", "o'brien", "li", "x",
]
DOMAINS = ["example.com", "mail.test", "corp.example"]
COUNTRIES = ["DE", "FR", "US", "JP", "AU", None]
TIERS = ["gold", "silver", "bronze", None]
T0 = dt.datetime(2024, 1, 1)


@dataclasses.dataclass(frozen=True)
class Lake:
    """A written test lake."""

    root: Path
    catalog_db: Path
    warehouse: Path
    #: ``"namespace.table"`` -> final logical content of the table.
    sources: dict[str, pa.Table]

    @property
    def pyiceberg_uri(self) -> str:
        """SQLAlchemy URI as pyiceberg takes it (four slashes, absolute path)."""
        return f"sqlite:///{self.catalog_db}"

    @property
    def warehouse_uri(self) -> str:
        return f"file://{self.warehouse}"


def _pick(rng: random.Random, weighted: list[tuple[object, float]]):
    r = rng.random()
    acc = 0.0
    for value, weight in weighted:
        acc += weight
        if r < acc:
            return value
    return weighted[-1][0]


def _order_row(rng: random.Random, order_id: int) -> dict:
    region = _pick(rng, [("eu", 0.35), ("us", 0.30), ("apac", 0.25), (None, 0.10)])
    customer_id = None if rng.random() < 0.03 else rng.randint(1, MAX_ORDER_CUSTOMER_ID)
    if customer_id is None or rng.random() < 0.05:
        email = None
    else:
        first = FIRST_NAMES[customer_id % len(FIRST_NAMES)]
        last = LAST_NAMES[(customer_id * 7) % len(LAST_NAMES)]
        domain = DOMAINS[(customer_id + order_id) % len(DOMAINS)]
        email = f"{first}.{last}{customer_id}@{domain}"
    kind = rng.random()
    if kind < 0.03:
        amount = None
    elif kind < 0.07:
        amount = round(rng.uniform(10000.01, 50000.0), 2)
    elif kind < 0.075:
        amount = 10000.0  # boundary: `amount > 10000` is false
    else:
        amount = round(rng.uniform(1.0, 5000.0), 2)
    sensitivity = _pick(rng, [(0, 0.38), (1, 0.28), (2, 0.19), (3, 0.10), (None, 0.05)])
    embedding = [round(rng.uniform(-1.0, 1.0), 3) for _ in range(8)]
    attachment = None if rng.random() < 0.1 else rng.randbytes(rng.randint(0, 24))
    created_at = T0 + dt.timedelta(seconds=rng.randint(0, 365 * 86400 - 1))
    return {
        "order_id": order_id,
        "region": region,
        "customer_id": customer_id,
        "customer_email": email,
        "amount": amount,
        "sensitivity": sensitivity,
        "embedding": embedding,
        "attachment": attachment,
        "created_at": created_at,
    }


def make_orders(rng: random.Random) -> pa.Table:
    rows = [_order_row(rng, i) for i in range(1, N_ORDERS + 1)]
    return pa.Table.from_pylist(rows, schema=ORDERS_SCHEMA)


def make_customers(rng: random.Random) -> pa.Table:
    rows = []
    for cid in range(1, N_CUSTOMERS + 1):
        first = FIRST_NAMES[cid % len(FIRST_NAMES)]
        last = LAST_NAMES[(cid * 7) % len(LAST_NAMES)]
        rows.append(
            {
                "customer_id": cid,
                "name": f"{first.capitalize()} {last.capitalize()}",
                "country": rng.choice(COUNTRIES),
                "tier": rng.choice(TIERS),
            }
        )
    return pa.Table.from_pylist(rows, schema=CUSTOMERS_SCHEMA)


def make_salaries(rng: random.Random) -> pa.Table:
    rows = [
        {
            "employee_id": i,
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            "salary": round(rng.uniform(30000, 250000), 2),
            # Derived from the id, not drawn from ``rng``: the other values
            # of the lake stay what they were before this column existed.
            "hired_on": None if i % 11 == 0 else dt.date(2015, 1, 1) + dt.timedelta(days=(i * 137) % 3300),
        }
        for i in range(1, N_SALARIES + 1)
    ]
    return pa.Table.from_pylist(rows, schema=SALARIES_SCHEMA)


def _overwrite_rows(apac: pa.Table) -> pa.Table:
    """New content of the overwritten partition: every 5th order dropped,
    amounts raised by 10% (NULL stays NULL)."""
    apac = apac.filter(pa.array([oid % 5 != 0 for oid in apac["order_id"].to_pylist()]))
    amounts = [None if a is None else round(a * 1.1, 2) for a in apac["amount"].to_pylist()]
    idx = apac.schema.get_field_index("amount")
    return apac.set_column(idx, ORDERS_SCHEMA.field("amount"), pa.array(amounts, pa.float64()))


def _sorted(t: pa.Table, key: str) -> pa.Table:
    return t.sort_by([(key, "ascending")])


def build_lake(root: Path | str) -> Lake:
    """Write the test lake under ``root`` (created; must be empty or absent)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual

    root = Path(root).resolve()
    warehouse = root / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=False)
    catalog_db = root / "catalog.db"
    lake = Lake(root=root, catalog_db=catalog_db, warehouse=warehouse, sources={})

    catalog = SqlCatalog(CATALOG_NAME, uri=lake.pyiceberg_uri, warehouse=lake.warehouse_uri)
    catalog.create_namespace("sales")
    catalog.create_namespace("hr")

    rng = random.Random(SEED)
    orders_all = make_orders(rng)
    customers = make_customers(rng)
    salaries = make_salaries(rng)

    # sales.orders: partitioned by region, four commits.
    orders = catalog.create_table("sales.orders", schema=ORDERS_SCHEMA)
    with orders.update_spec() as spec:
        spec.add_identity("region")
    half = N_ORDERS // 2
    orders.append(orders_all.slice(0, half))
    orders.append(orders_all.slice(half))
    lo, hi = DELETED_ORDER_IDS
    orders.delete(And(GreaterThanOrEqual("order_id", lo), LessThanOrEqual("order_id", hi)))
    ids = orders_all["order_id"].to_pylist()
    after_delete = orders_all.filter(pa.array([not (lo <= i <= hi) for i in ids]))
    regions = after_delete["region"].to_pylist()
    apac_old = after_delete.filter(pa.array([r == OVERWRITTEN_REGION for r in regions]))
    rest = after_delete.filter(pa.array([r != OVERWRITTEN_REGION for r in regions]))
    apac_new = _overwrite_rows(apac_old)
    orders.overwrite(apac_new, overwrite_filter=EqualTo("region", OVERWRITTEN_REGION))
    orders_final = _sorted(pa.concat_tables([rest, apac_new]), "order_id")

    cust_tbl = catalog.create_table("sales.customers", schema=CUSTOMERS_SCHEMA)
    cust_tbl.append(customers)
    sal_tbl = catalog.create_table("hr.salaries", schema=SALARIES_SCHEMA)
    sal_tbl.append(salaries)

    sources = {
        "sales.orders": orders_final,
        "sales.customers": customers,
        "hr.salaries": salaries,
    }
    # Self-check: what pyiceberg reads back is exactly the expected content.
    keys = {"sales.orders": "order_id", "sales.customers": "customer_id", "hr.salaries": "employee_id"}
    for ident, expected in sources.items():
        got = _sorted(catalog.load_table(ident).scan().to_arrow(), keys[ident])
        got = got.cast(expected.schema)
        if not got.equals(expected):
            raise AssertionError(f"fixture self-check failed for {ident}")
    # append, append, delete, and the overwrite's delete and append
    n_snapshots = len(catalog.load_table("sales.orders").snapshots())
    if n_snapshots != 5:
        raise AssertionError(f"sales.orders has {n_snapshots} snapshots, expected 5")

    return dataclasses.replace(lake, sources=sources)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIR", file=sys.stderr)
        return 2
    lake = build_lake(argv[1])
    print(f"catalog: {lake.pyiceberg_uri}\nwarehouse: {lake.warehouse_uri}")
    for name, t in lake.sources.items():
        print(f"{name}: {t.num_rows} rows, columns {t.column_names}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
