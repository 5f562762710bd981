"""Token definitions used by the client tests (bodies of ``POST /v1/tokens``).

``ORACLE_TOKENS`` are the tokens the DESIGN §4 oracle runs every query as;
each covers a different mix of policy features. Their ``row_limit`` is above
the data size so the oracle never sees truncation. ``PROBES`` lists, per
oracle token, predicates that are TRUE on some hidden row and on no visible
row (the division probe of DESIGN §4.5); ``test_oracle`` checks both halves
of that claim against the data before using them (``PROBE_ROWS``: how many
rows of the unrestricted lake each predicate holds on).
"""

from __future__ import annotations

import copy
import datetime as dt

#: Far enough ahead for any test run, computed so the suite does not start
#: failing on a fixed date.
EXPIRES = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
ORDERS = "lake.sales.orders"
CUSTOMERS = "lake.sales.customers"
SALARIES = "lake.hr.salaries"
ORACLE_ROW_LIMIT = 100_000


def token_body(name: str, grants: list[dict], **fields) -> dict:
    body = {
        "name": name,
        "token_type": "public",
        "expires_at": EXPIRES,
        "grants": grants,
    }
    body.update(fields)
    return body


#: The example token of the task brief (row_limit 1000: truncation tests);
#: only ``expires_at`` is relative instead of a fixed date.
EU_ANALYST = token_body(
    "eu-analyst",
    [
        {
            "table": ORDERS,
            "columns": ["order_id", "region", "amount", "customer_email"],
            "masks": {"customer_email": "hash"},
            "allow_rules": ["region = token.region"],
            "deny_rules": ["amount > 10000"],
        }
    ],
    attributes={"region": "eu"},
    max_sensitivity=2,
    row_limit=1000,
    allow_attachments=False,
    can_export_vectors=False,
)

#: Reads every visible row of sales.* (for metadata / truncation tests).
SALES_READER = token_body(
    "sales-reader",
    [{"table": "lake.sales.*", "columns": "*"}],
    max_sensitivity=3,
    row_limit=1000,
)

ORACLE_TOKENS: dict[str, dict] = {
    # Row rule on a token attribute + hash mask + deny rule; vector and
    # attachment columns listed in the grant but absent (flags false).
    "rowrule_hash_deny": token_body(
        "oracle-rowrule-hash-deny",
        [
            {
                "table": ORDERS,
                "columns": [
                    "order_id", "region", "customer_id", "customer_email",
                    "amount", "created_at", "embedding", "attachment",
                ],
                "masks": {"customer_email": "hash"},
                "allow_rules": ["region = token.region"],
                "deny_rules": ["amount > 10000"],
            },
            {"table": CUSTOMERS, "columns": ["customer_id", "name", "country"]},
        ],
        attributes={"region": "eu"},
        max_sensitivity=2,
        row_limit=ORACLE_ROW_LIMIT,
        allow_attachments=False,
        can_export_vectors=False,
    ),
    # Sensitivity clearance + partial masks + column subset; attachments on.
    "clearance_partial": token_body(
        "oracle-clearance-partial",
        [
            {
                "table": ORDERS,
                "columns": [
                    "order_id", "region", "customer_id", "customer_email",
                    "amount", "sensitivity", "attachment",
                ],
                "masks": {"customer_email": "partial(2,4)"},
            },
            {
                "table": CUSTOMERS,
                "columns": "*",
                "masks": {"name": "partial(1,1)", "tier": "redact"},
            },
        ],
        max_sensitivity=1,
        row_limit=ORACLE_ROW_LIMIT,
        allow_attachments=True,
        can_export_vectors=False,
    ),
    # Namespace glob; a deny rule that is NULL on some rows (NULL hides);
    # vectors exportable, attachments not.
    "glob_deny_null": token_body(
        "oracle-glob-deny-null",
        [
            {
                "table": "lake.sales.*",
                "columns": "*",
                "deny_rules": ["customer_id % 7 = 0"],
            }
        ],
        max_sensitivity=1,
        row_limit=ORACLE_ROW_LIMIT,
        allow_attachments=False,
        can_export_vectors=True,
    ),
    # Several allow rules (any TRUE admits), numeric + string attributes,
    # rules on a column that is itself masked (rules see raw values), redact
    # and null masks.
    "multi_allow_redact": token_body(
        "oracle-multi-allow-redact",
        [
            {
                "table": ORDERS,
                "columns": "*",
                "masks": {"region": "redact", "customer_email": "null"},
                "allow_rules": ["region = 'us'", "amount < token.min_amount"],
                "deny_rules": ["sensitivity = 3"],
            },
            {
                "table": CUSTOMERS,
                "columns": ["customer_id", "name", "tier"],
                "allow_rules": ["tier = token.tier"],
            },
        ],
        attributes={"min_amount": 100, "tier": "gold"},
        max_sensitivity=3,
        row_limit=ORACLE_ROW_LIMIT,
    ),
}

#: More oracle tokens, used by the generated oracle (oracle_gen.py,
#: test_oracle_generated.py, benches/oracle_scale.py). They are kept apart
#: from ORACLE_TOKENS because the hand-written oracle's exact counts
#: (oracle_queries.EXPECTED_OUTCOMES) and several tests ("no oracle token
#: sees hr.salaries") are about those four. Between them they cover what
#: the four do not: a namespace glob and an exact grant on the same table
#: (the exact grant wins, and keeps every mask of the glob on a column it
#: does not mask itself), masks on numeric, date and timestamp columns, row
#: rules on columns the token is not granted, and a grant on every table of
#: the lake (hr.salaries included).
SCALE_ORACLE_TOKENS: dict[str, dict] = {
    # lake.sales.* masks customer_email, name and created_at and denies
    # customer_id % 5 = 0; the exact orders grant wins (its own allow rule,
    # no deny rule, a column subset, amount hashed) but inherits the glob's
    # masks on customer_email and created_at. customers come from the glob.
    "overlap_glob_exact": token_body(
        "oracle-overlap-glob-exact",
        [
            {
                "table": "lake.sales.*",
                "columns": "*",
                "masks": {"customer_email": "partial(3,3)", "name": "hash", "created_at": "partial(7,0)"},
                "deny_rules": ["customer_id % 5 = 0"],
            },
            {
                "table": ORDERS,
                "columns": ["order_id", "region", "customer_id", "customer_email", "amount", "sensitivity", "created_at"],
                "masks": {"amount": "hash"},
                "allow_rules": ["region IN ('eu', 'us')"],
            },
        ],
        max_sensitivity=2,
        row_limit=ORACLE_ROW_LIMIT,
    ),
    # lake.* (every table) with masks the exact grants override (tier:
    # partial by the glob, null by the exact grant) or inherit (salary:
    # redact, i.e. NULL for a number); orders through the glob alone.
    "overlap_catalog_glob": token_body(
        "oracle-overlap-catalog-glob",
        [
            {"table": "lake.*", "columns": "*", "masks": {"salary": "redact", "tier": "partial(1,0)"}},
            {
                "table": SALARIES,
                "columns": ["employee_id", "name", "salary", "hired_on"],
                "masks": {"hired_on": "hash", "name": "partial(2,0)"},
                "allow_rules": ["salary > 60000"],
            },
            {"table": CUSTOMERS, "columns": ["customer_id", "name", "tier"], "masks": {"tier": "null"}},
        ],
        max_sensitivity=3,
        row_limit=ORACLE_ROW_LIMIT,
        allow_attachments=True,
    ),
    # Masks on numbers, a timestamp and a date: partial and hash present
    # their text, redact of a number is NULL, null keeps the type.
    "numeric_temporal_masks": token_body(
        "oracle-numeric-temporal-masks",
        [
            {
                "table": ORDERS,
                "columns": ["order_id", "region", "customer_id", "amount", "sensitivity", "created_at"],
                "masks": {"amount": "partial(1,3)", "created_at": "hash", "sensitivity": "redact"},
            },
            {"table": CUSTOMERS, "columns": "*", "masks": {"country": "null", "customer_id": "partial(0,1)"}},
            {
                "table": SALARIES,
                "columns": "*",
                "masks": {"salary": "hash", "hired_on": "partial(4,0)"},
                "deny_rules": ["hired_on < DATE '2016-01-01'"],
            },
        ],
        max_sensitivity=2,
        row_limit=ORACLE_ROW_LIMIT,
    ),
    # Row rules over columns the token is not granted (region, email,
    # sensitivity, tier, name, salary), with token attributes.
    "rules_on_ungranted": token_body(
        "oracle-rules-on-ungranted",
        [
            {
                "table": ORDERS,
                "columns": ["order_id", "customer_id", "amount", "created_at"],
                "allow_rules": ["region = token.region", "customer_email LIKE '%@corp.example'"],
                "deny_rules": ["sensitivity >= token.max_s"],
            },
            {
                "table": CUSTOMERS,
                "columns": ["customer_id", "country"],
                "allow_rules": ["tier IN ('gold', 'silver')"],
                "deny_rules": ["name LIKE 'Z%'"],
            },
            {
                "table": SALARIES,
                "columns": ["employee_id", "hired_on"],
                "deny_rules": ["salary > 200000", "name LIKE 'a%'"],
            },
        ],
        attributes={"region": "us", "max_s": 2},
        max_sensitivity=3,
        row_limit=ORACLE_ROW_LIMIT,
    ),
}

#: Every token the generated oracle runs its queries as.
GENERATED_ORACLE_TOKENS: dict[str, dict] = {**ORACLE_TOKENS, **SCALE_ORACLE_TOKENS}

#: Per oracle token: (table, predicate) pairs that select hidden rows only
#: (or that reference a column the token lacks, which must be refused).
PROBES: dict[str, list[tuple[str, str]]] = {
    "rowrule_hash_deny": [
        (ORDERS, "region <> 'eu'"),
        (ORDERS, "region IS NULL"),
        (ORDERS, "amount > 10000"),
        (ORDERS, "amount IS NULL"),
        # References a column the token lacks: must be refused, not evaluated.
        (ORDERS, "sensitivity = 3"),
    ],
    "clearance_partial": [
        (ORDERS, "sensitivity >= 2"),
        (ORDERS, "sensitivity IS NULL"),
    ],
    "glob_deny_null": [
        (ORDERS, "customer_id % 7 = 0"),
        (ORDERS, "customer_id IS NULL"),
        (ORDERS, "sensitivity > 1"),
        (CUSTOMERS, "customer_id % 7 = 0"),
    ],
    "multi_allow_redact": [
        (ORDERS, "sensitivity = 3"),
        (ORDERS, "sensitivity IS NULL"),
        (CUSTOMERS, "tier <> 'gold'"),
        (CUSTOMERS, "tier IS NULL"),
    ],
}


#: (table, predicate) of PROBES -> rows of the unrestricted lake it holds
#: on (the other half of each probe's precondition: no visible row).
PROBE_ROWS: dict[tuple[str, str], int] = {
    (ORDERS, "region <> 'eu'"): 1719,
    (ORDERS, "region IS NULL"): 352,
    (ORDERS, "amount > 10000"): 129,
    (ORDERS, "amount IS NULL"): 101,
    (ORDERS, "sensitivity = 3"): 302,
    (ORDERS, "sensitivity >= 2"): 917,
    (ORDERS, "sensitivity IS NULL"): 167,
    (ORDERS, "customer_id % 7 = 0"): 451,
    (ORDERS, "customer_id IS NULL"): 96,
    (ORDERS, "sensitivity > 1"): 917,
    (CUSTOMERS, "customer_id % 7 = 0"): 28,
    (CUSTOMERS, "tier <> 'gold'"): 103,
    (CUSTOMERS, "tier IS NULL"): 45,
}


def oracle_token(key: str) -> dict:
    return copy.deepcopy(ORACLE_TOKENS[key])
