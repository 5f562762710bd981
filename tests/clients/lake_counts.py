"""Row counts that the test lake fixes (``fixtures.SEED``), so that tests
assert the exact number of rows a token sees instead of "more than zero".

Each count is defined here by a pure-Python predicate over the fixture's
final rows (``Lake.sources``), reading the tokens' policies by hand (DESIGN
§4: a NULL sensitivity hides a row, a deny rule that is NULL hides it);
``test_oracle_selfcheck.test_lake_counts`` recomputes every constant from
the rows, so a change of the fixture or of a token shows up there first,
naming the constant to update.
"""

from __future__ import annotations

from typing import Callable


def _cleared(r: dict, max_sensitivity: int) -> bool:
    return r["sensitivity"] is not None and r["sensitivity"] <= max_sensitivity


def _eu_analyst(r: dict) -> bool:
    """tokens.EU_ANALYST (and the oracle's rowrule_hash_deny, share X of the
    federation tests): region = 'eu', deny amount > 10000, clearance 2."""
    return r["region"] == "eu" and _cleared(r, 2) and r["amount"] is not None and not r["amount"] > 10000


def _reader(r: dict) -> bool:
    """A token with clearance 3 and no row rule (tokens.SALES_READER, the
    export reader, the small tokens of several tests)."""
    return _cleared(r, 3)


#: name -> (source table, row predicate)
DEFINITIONS: dict[str, tuple[str, Callable[[dict], bool]]] = {
    "ORDERS_ROWS": ("sales.orders", lambda r: True),
    "CUSTOMERS_ROWS": ("sales.customers", lambda r: True),
    "SALARIES_ROWS": ("hr.salaries", lambda r: True),
    "EU_ANALYST_ORDERS": ("sales.orders", _eu_analyst),
    "EU_ANALYST_EMAILS": ("sales.orders", lambda r: _eu_analyst(r) and r["customer_email"] is not None),
    "EU_ANALYST_AMOUNT_GT_1000": ("sales.orders", lambda r: _eu_analyst(r) and r["amount"] > 1000),
    "EU_ANALYST_AMOUNT_GT_2500": ("sales.orders", lambda r: _eu_analyst(r) and r["amount"] > 2500),
    "EU_ANALYST_AMOUNT_LT_1000": ("sales.orders", lambda r: _eu_analyst(r) and r["amount"] < 1000),
    "EU_ANALYST_ID_LT_600": ("sales.orders", lambda r: _eu_analyst(r) and r["order_id"] < 600),
    "EU_ANALYST_ID_LT_800": ("sales.orders", lambda r: _eu_analyst(r) and r["order_id"] < 800),
    "READER_ORDERS": ("sales.orders", _reader),
    "READER_ID_LT_50": ("sales.orders", lambda r: _reader(r) and r["order_id"] < 50),
    "READER_ID_LE_50": ("sales.orders", lambda r: _reader(r) and r["order_id"] <= 50),
    "READER_ID_LE_80": ("sales.orders", lambda r: _reader(r) and r["order_id"] <= 80),
    "READER_ID_LT_200": ("sales.orders", lambda r: _reader(r) and r["order_id"] < 200),
    "READER_ID_LT_300": ("sales.orders", lambda r: _reader(r) and r["order_id"] < 300),
    "READER_ID_LE_300": ("sales.orders", lambda r: _reader(r) and r["order_id"] <= 300),
    "READER_CREATED_FROM_JUNE_ID_LT_900": (
        "sales.orders",
        lambda r: _reader(r) and r["created_at"].month >= 6 and r["order_id"] < 900,
    ),
    "READER_US_AMOUNT_GT_100": (
        "sales.orders", lambda r: _reader(r) and r["region"] == "us" and r["amount"] is not None and r["amount"] > 100,
    ),
    #: orders JOIN customers ON customer_id (customer ids 1..200 have a row)
    "READER_ORDERS_WITH_CUSTOMER": (
        "sales.orders", lambda r: _reader(r) and r["customer_id"] is not None and r["customer_id"] <= 200,
    ),
    "READER_NON_EMPTY_ATTACHMENTS": ("sales.orders", lambda r: _reader(r) and bool(r["attachment"])),
    #: the oracle token clearance_partial: clearance 1
    "CLEARANCE_PARTIAL_ORDERS": ("sales.orders", lambda r: _cleared(r, 1)),
    #: the oracle token multi_allow_redact: region 'us' or amount < 100, deny sensitivity 3
    "MULTI_ALLOW_REDACT_ORDERS": (
        "sales.orders",
        lambda r: _cleared(r, 3) and r["sensitivity"] != 3
        and (r["region"] == "us" or (r["amount"] is not None and r["amount"] < 100)),
    ),
    #: the federation tests' share Y: clearance 3, deny amount > 4000
    "SHARE_Y_ORDERS": (
        "sales.orders", lambda r: _reader(r) and r["amount"] is not None and not r["amount"] > 4000,
    ),
}

ORDERS_ROWS = 3224
CUSTOMERS_ROWS = 200
SALARIES_ROWS = 50
EU_ANALYST_ORDERS = 944
EU_ANALYST_EMAILS = 867
EU_ANALYST_AMOUNT_GT_1000 = 756
EU_ANALYST_AMOUNT_GT_2500 = 446
EU_ANALYST_AMOUNT_LT_1000 = 188
EU_ANALYST_ID_LT_600 = 167
EU_ANALYST_ID_LT_800 = 219
READER_ORDERS = 3057
READER_ID_LT_50 = 46
READER_ID_LE_50 = 47
READER_ID_LE_80 = 75
READER_ID_LT_200 = 184
READER_ID_LT_300 = 271
READER_ID_LE_300 = 272
READER_CREATED_FROM_JUNE_ID_LT_900 = 462
READER_US_AMOUNT_GT_100 = 942
READER_ORDERS_WITH_CUSTOMER = 2464
READER_NON_EMPTY_ATTACHMENTS = 2627
CLEARANCE_PARTIAL_ORDERS = 2140
MULTI_ALLOW_REDACT_ORDERS = 926
SHARE_Y_ORDERS = 2214
#: Distinct customer names (first and last names cycle through short lists).
CUSTOMER_NAMES_DISTINCT = 24


def recompute(sources: dict) -> dict[str, int]:
    """Every count of DEFINITIONS from the lake's rows (``Lake.sources``)."""
    rows = {name: t.to_pylist() for name, t in sources.items()}
    out = {name: sum(1 for r in rows[table] if keep(r)) for name, (table, keep) in DEFINITIONS.items()}
    out["CUSTOMER_NAMES_DISTINCT"] = len({r["name"] for r in rows["sales.customers"]})
    return out
