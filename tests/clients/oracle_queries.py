"""The read queries of the DESIGN §4 oracle, generated systematically.

Every query is written in the SQL subset on which DataFusion and DuckDB agree
(no integer ``/``, explicit NULLS FIRST/LAST, total orders under LIMIT, no
text rendering of floats, qualified columns in joins). Each is validated
against an unrestricted DuckDB copy of the lake by ``test_oracle`` (a query
that fails there is a bug of this file, reported as such).

``Query.ordered``: compare rows in order (the query has a total ORDER BY);
otherwise rows are compared as multisets.
``Query.names``: also compare the result's column names (only where both
engines name columns the same way: plain columns, ``*``, aliases).
"""

from __future__ import annotations

import dataclasses
import re

O = "lake.sales.orders"
C = "lake.sales.customers"

ORDER_COLUMNS = [
    "order_id", "region", "customer_id", "customer_email", "amount",
    "sensitivity", "embedding", "attachment", "created_at",
]
CUSTOMER_COLUMNS = ["customer_id", "name", "country", "tier"]

from policy_views import mask_hash  # noqa: E402

#: A real e-mail from the data (several visible orders for most tokens) and
#: its hash: predicates on a hashed column match the hash, never the value.
EMAIL = "frank.x53@corp.example"
EMAIL_SHA256 = mask_hash(EMAIL)  # sluice's keyed hash of EMAIL


@dataclasses.dataclass(frozen=True)
class Query:
    id: str
    sql: str
    ordered: bool = False
    names: bool = False
    #: False for queries that name a table that does not exist at all.
    valid_on_full: bool = True


_queries: list[Query] = []


def q(id_: str, sql: str, *, ordered: bool = False, names: bool = False, valid_on_full: bool = True) -> None:
    sql = re.sub(r"\s+", " ", sql.strip())
    sql = sql.format(O=O, C=C, EMAIL=EMAIL, EMAIL_SHA256=EMAIL_SHA256)
    _queries.append(Query(id_, sql, ordered, names, valid_on_full))


# --- projections -------------------------------------------------------------
q("proj_star_orders", "SELECT * FROM {O}", names=True)
q("proj_star_customers", "SELECT * FROM {C}", names=True)
q("proj_alias_star", "SELECT o.* FROM {O} o WHERE o.order_id < 400", names=True)
q("proj_star_plus_expr", "SELECT *, order_id * 2 AS twice FROM {O} WHERE order_id % 5 = 1", names=True)
for col in ORDER_COLUMNS:
    if col == "order_id":
        q("proj_orders_order_id", "SELECT order_id FROM {O}", names=True)
    else:
        q(f"proj_orders_{col}", f"SELECT order_id, {col} FROM {{O}}", names=True)
        q(f"proj_orders_only_{col}", f"SELECT {col} FROM {{O}} WHERE order_id % 3 = 0", names=True)
for col in CUSTOMER_COLUMNS[1:]:
    q(f"proj_customers_{col}", f"SELECT customer_id, {col} FROM {{C}}", names=True)
q("proj_expr_arith", "SELECT order_id + customer_id AS s, amount * 2 AS a2, amount - 100 AS am FROM {O}", names=True)
q("proj_expr_string", "SELECT upper(region) AS r, length(customer_email) AS l, CAST(order_id AS VARCHAR) AS s FROM {O}", names=True)
q("proj_expr_concat", "SELECT CAST(order_id AS VARCHAR) || '-' || coalesce(region, '?') AS k FROM {O}", names=True)
q("proj_expr_coalesce", "SELECT order_id, coalesce(amount, -1.0) AS a, coalesce(region, 'none') AS r FROM {O}", names=True)
q("proj_expr_substr", "SELECT order_id, substr(customer_email, 1, 5) AS p FROM {O}", names=True)
q("proj_embedding_elem", "SELECT order_id, embedding[1] AS e1, embedding[8] AS e8 FROM {O}", names=True)
q("proj_timestamp_parts", "SELECT order_id, extract(month FROM created_at) AS m, date_trunc('day', created_at) AS d FROM {O}", names=True)
q("proj_name_parts", "SELECT customer_id, upper(name) AS u, length(name) AS l, left(name, 2) AS f FROM {C}", names=True)
q("proj_literal_only", "SELECT 1 AS one, 'x' AS x", names=True)
q("proj_values", "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s)", names=True)

# --- filters -----------------------------------------------------------------
FILTERS = {
    "region_eu": "region = 'eu'",
    "region_us": "region = 'us'",
    "region_null": "region IS NULL",
    "region_in": "region IN ('us', 'apac')",
    "region_not_eu": "NOT (region = 'eu')",
    "amount_gt_1000": "amount > 1000",
    "amount_between": "amount BETWEEN 100 AND 500",
    "amount_null": "amount IS NULL",
    "amount_gt_10000": "amount > 10000",
    "amount_eq_10000": "amount = 10000",
    "customer_lt_50": "customer_id < 50",
    "customer_null": "customer_id IS NULL",
    "order_mod3": "order_id % 3 = 0",
    "sensitivity_eq_2": "sensitivity = 2",
    "sensitivity_ge_1": "sensitivity >= 1",
    "created_after": "created_at >= TIMESTAMP '2024-06-01 00:00:00'",
    "created_before": "created_at < TIMESTAMP '2024-02-01 00:00:00'",
    "or_combo": "region = 'eu' OR amount < 50",
    "coalesce_none": "coalesce(region, 'none') = 'none'",
    "upper_us": "upper(region) = 'US'",
    "length_region": "length(region) = 2",
    "embedding_gt": "embedding[1] > 0.5",
    "attachment_null": "attachment IS NULL",
    "order_range": "order_id BETWEEN 900 AND 1300",
}
for name, pred in FILTERS.items():
    q(f"filt_rows_{name}", f"SELECT order_id FROM {{O}} WHERE {pred}", names=True)
    q(f"filt_count_{name}", f"SELECT count(*) AS n FROM {{O}} WHERE {pred}", names=True)
q("filt_customers_country", "SELECT customer_id FROM {C} WHERE country = 'DE'", names=True)
q("filt_customers_tier", "SELECT customer_id, tier FROM {C} WHERE tier IN ('gold', 'silver')", names=True)
q("filt_customers_tier_null", "SELECT count(*) AS n FROM {C} WHERE tier IS NULL", names=True)

# --- predicates on masked columns (must see the masked value) -----------------
MASKED_PREDICATES = {
    "email_like_a": "customer_email LIKE 'a%'",
    "email_like_domain": "customer_email LIKE '%@example.com'",
    "email_like_star": "customer_email LIKE '%*%'",
    "email_eq_real": "customer_email = '{EMAIL}'",
    "email_eq_hash": "customer_email = '{EMAIL_SHA256}'",
    "email_null": "customer_email IS NULL",
    "email_len64": "length(customer_email) = 64",
    "email_prefix": "substr(customer_email, 1, 2) = 'fr'",
    "email_lt_b": "customer_email < 'b'",
    "email_redacted": "customer_email = '[REDACTED]'",
    "region_redacted": "region = '[REDACTED]'",
    "email_quote": "customer_email LIKE '%''%'",
}
for name, pred in MASKED_PREDICATES.items():
    q(f"mask_rows_{name}", f"SELECT order_id, customer_email FROM {{O}} WHERE {pred}", names=True)
    q(f"mask_count_{name}", f"SELECT count(*) AS n FROM {{O}} WHERE {pred}", names=True)
q("mask_name_like", "SELECT customer_id, name FROM {C} WHERE name LIKE 'Z%'", names=True)
q("mask_name_star", "SELECT count(*) AS n FROM {C} WHERE name LIKE '%*%'", names=True)
q("mask_name_eq_real", "SELECT customer_id FROM {C} WHERE name = 'Zoë Jones'", names=True)
q("mask_tier_gold", "SELECT customer_id FROM {C} WHERE tier = 'gold'", names=True)
q("mask_email_distinct", "SELECT DISTINCT customer_email FROM {O}", names=True)
q("mask_email_count_distinct", "SELECT count(DISTINCT customer_email) AS n FROM {O}", names=True)
q("mask_email_max", "SELECT max(customer_email) AS mx, min(customer_email) AS mn FROM {O}", names=True)
q("mask_email_length_hist", "SELECT length(customer_email) AS l, count(*) AS n FROM {O} GROUP BY length(customer_email)", names=True)

# --- aggregates ----------------------------------------------------------------
q("agg_count", "SELECT count(*) AS n FROM {O}", names=True)
q("agg_count_customers", "SELECT count(*) AS n FROM {C}", names=True)
q("agg_count_col", "SELECT count(amount) AS a, count(region) AS r, count(customer_id) AS c FROM {O}", names=True)
q("agg_sum_avg", "SELECT sum(amount) AS s, avg(amount) AS a FROM {O}", names=True)
q("agg_min_max", "SELECT min(amount) AS mn, max(amount) AS mx FROM {O}", names=True)
q("agg_min_max_ts", "SELECT min(created_at) AS mn, max(created_at) AS mx FROM {O}", names=True)
q("agg_min_max_id", "SELECT min(order_id) AS mn, max(order_id) AS mx FROM {O}", names=True)
q("agg_count_distinct", "SELECT count(DISTINCT region) AS r, count(DISTINCT customer_id) AS c FROM {O}", names=True)
q("agg_stddev", "SELECT stddev_samp(amount) AS sd FROM {O}", names=True)
q("agg_filter_clause", "SELECT count(*) FILTER (WHERE amount > 1000) AS big FROM {O}", names=True)
q("agg_sum_case", "SELECT sum(CASE WHEN amount > 1000 THEN 1 ELSE 0 END) AS big FROM {O}", names=True)
q("agg_by_region", "SELECT region, count(*) AS n, sum(amount) AS s, avg(amount) AS a, min(amount) AS mn, max(amount) AS mx FROM {O} GROUP BY region", names=True)
q("agg_by_sensitivity", "SELECT sensitivity, count(*) AS n FROM {O} GROUP BY sensitivity", names=True)
q("agg_by_region_sensitivity", "SELECT region, sensitivity, count(*) AS n FROM {O} GROUP BY region, sensitivity", names=True)
q("agg_by_month", "SELECT date_trunc('month', created_at) AS m, count(*) AS n FROM {O} GROUP BY date_trunc('month', created_at)", names=True)
q("agg_by_extract", "SELECT extract(quarter FROM created_at) AS qtr, sum(amount) AS s FROM {O} GROUP BY extract(quarter FROM created_at)", names=True)
q("agg_by_customer_having", "SELECT customer_id, count(*) AS n FROM {O} GROUP BY customer_id HAVING count(*) > 15", names=True)
q("agg_having_sum", "SELECT region, sum(amount) AS s FROM {O} GROUP BY region HAVING sum(amount) > 100000", names=True)
q("agg_having_no_select", "SELECT region FROM {O} GROUP BY region HAVING max(amount) > 4000", names=True)
q("agg_by_email_having", "SELECT customer_email, count(*) AS n FROM {O} GROUP BY customer_email HAVING count(*) > 3", names=True)
q("agg_by_bucket", "SELECT floor(amount / 1000) AS b, count(*) AS n FROM {O} GROUP BY floor(amount / 1000)", names=True)
q("agg_by_tier", "SELECT tier, count(*) AS n FROM {C} GROUP BY tier", names=True)
q("agg_by_country", "SELECT country, count(*) AS n FROM {C} GROUP BY country", names=True)
q("agg_by_attachment_null", "SELECT attachment IS NULL AS missing, count(*) AS n FROM {O} GROUP BY attachment IS NULL", names=True)
q("agg_by_embedding_sign", "SELECT embedding[2] > 0 AS pos, count(*) AS n FROM {O} GROUP BY embedding[2] > 0", names=True)
q("agg_string_agg", "SELECT string_agg(r, ',' ORDER BY r) AS rs FROM (SELECT DISTINCT region AS r FROM {O} WHERE region IS NOT NULL) t", names=True)
q("agg_spread", "SELECT region, max(amount) - min(amount) AS spread FROM {O} GROUP BY region", names=True)
q("agg_empty_input", "SELECT count(*) AS n, sum(amount) AS s FROM {O} WHERE order_id < 0", names=True)
q("agg_bool", "SELECT count(*) AS n FROM {O} WHERE (amount > 100) = (sensitivity > 0)", names=True)

# --- window functions ------------------------------------------------------------
q("win_row_number", "SELECT order_id, row_number() OVER (PARTITION BY region ORDER BY order_id) AS rn FROM {O}", names=True)
q("win_rank_amount", "SELECT order_id, rank() OVER (ORDER BY amount DESC NULLS LAST, order_id) AS rk FROM {O}", names=True)
q("win_dense_rank_sens", "SELECT order_id, dense_rank() OVER (PARTITION BY region ORDER BY sensitivity NULLS LAST) AS dr FROM {O}", names=True)
q("win_running_sum", "SELECT order_id, sum(amount) OVER (PARTITION BY region ORDER BY order_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rs FROM {O}", names=True)
q("win_count_partition", "SELECT order_id, count(*) OVER (PARTITION BY customer_id) AS n FROM {O}", names=True)
q("win_lag_lead", "SELECT order_id, lag(amount) OVER (ORDER BY order_id) AS prev, lead(order_id, 2) OVER (PARTITION BY region ORDER BY order_id) AS nxt FROM {O}", names=True)
q("win_avg_partition", "SELECT order_id, avg(amount) OVER (PARTITION BY region) AS a FROM {O}", names=True)
q("win_first_value", "SELECT order_id, first_value(order_id) OVER (PARTITION BY customer_id ORDER BY order_id) AS f FROM {O}", names=True)
q("win_topn_per_group", "SELECT order_id, region, rn FROM (SELECT order_id, region, row_number() OVER (PARTITION BY region ORDER BY amount DESC NULLS LAST, order_id) AS rn FROM {O}) t WHERE rn <= 3", names=True)
# ntile(2), not ntile(4): DataFusion 53 spreads the remainder rows of ntile(k)
# differently from the SQL standard (and DuckDB) when k > 2 (6 rows, k = 4:
# [1,1,2,3,3,4] vs [1,1,2,2,3,4]), an engine difference unrelated to policy.
q("win_ntile", "SELECT order_id, ntile(2) OVER (ORDER BY order_id) AS nt FROM {O}", names=True)
q("win_masked_partition", "SELECT order_id, row_number() OVER (PARTITION BY customer_email ORDER BY order_id) AS rn FROM {O}", names=True)
q("win_total", "SELECT order_id, sum(amount) OVER () AS total, count(*) OVER () AS n FROM {O}", names=True)
q("win_sliding", "SELECT order_id, avg(amount) OVER (ORDER BY order_id ROWS BETWEEN 2 PRECEDING AND 2 FOLLOWING) AS a FROM {O}", names=True)
q("win_percent_rank", "SELECT order_id, percent_rank() OVER (PARTITION BY region ORDER BY order_id) AS pr FROM {O}", names=True)
q("win_customers", "SELECT customer_id, row_number() OVER (PARTITION BY country ORDER BY customer_id) AS rn FROM {C}", names=True)
q("win_over_agg", "SELECT region, count(*) AS n, rank() OVER (ORDER BY count(*) DESC, region NULLS LAST) AS rk FROM {O} GROUP BY region", names=True)

# --- joins -------------------------------------------------------------------------
q("join_inner", "SELECT o.order_id, c.name FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id", names=True)
q("join_inner_star", "SELECT * FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id WHERE o.order_id < 600")
q("join_left", "SELECT o.order_id, c.country FROM {O} o LEFT JOIN {C} c ON o.customer_id = c.customer_id", names=True)
q("join_right_count", "SELECT count(*) AS n, count(o.order_id) AS o_n FROM {O} o RIGHT JOIN {C} c ON o.customer_id = c.customer_id", names=True)
# A WHERE on the outer side of a RIGHT JOIN rejects the NULL-extended rows,
# also when both sides have a column of the same name (DataFusion 53's
# physical filter pushdown moved it onto the other side's customer_id).
q("join_right_where_outer", "SELECT coalesce(o.sensitivity, -8) AS s, max(length(c.country)) AS l, count(c.customer_id) AS n FROM {O} o RIGHT JOIN {C} c ON o.customer_id = c.customer_id AND c.tier = 'bronze' WHERE o.customer_id % 5 = 1 GROUP BY coalesce(o.sensitivity, -8)", names=True)
q("join_full_count", "SELECT count(*) AS n, count(o.order_id) AS o_n, count(c.customer_id) AS c_n FROM {O} o FULL OUTER JOIN {C} c ON o.customer_id = c.customer_id", names=True)
q("join_group_country", "SELECT c.country, count(*) AS n, sum(o.amount) AS s FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id GROUP BY c.country", names=True)
q("join_filter_tier", "SELECT o.order_id FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id WHERE c.tier = 'gold'", names=True)
q("join_filter_sensitivity", "SELECT o.order_id, c.name FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id WHERE o.sensitivity = 1", names=True)
q("join_on_country", "SELECT o.order_id FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id AND c.country = 'FR'", names=True)
q("join_on_hidden", "SELECT o.order_id FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id AND o.sensitivity = 0", names=True)
q("join_using", "SELECT order_id, name FROM {O} JOIN {C} USING (customer_id)", names=True)
q("join_comma_where", "SELECT count(*) AS n FROM {O} o, {C} c WHERE o.customer_id = c.customer_id AND o.amount > 1000", names=True)
q("join_self_customer", "SELECT count(*) AS n FROM {O} a JOIN {O} b ON a.customer_id = b.customer_id AND a.order_id < b.order_id", names=True)
q("join_self_email", "SELECT count(*) AS n FROM {O} a JOIN {O} b ON a.customer_email = b.customer_email AND a.order_id <> b.order_id", names=True)
q("join_self_region_pairs", "SELECT a.region AS ra, b.region AS rb, count(*) AS n FROM {O} a JOIN {O} b ON a.customer_id = b.customer_id AND a.order_id < b.order_id GROUP BY a.region, b.region", names=True)
q("join_self_customers", "SELECT count(*) AS n FROM {C} c1 JOIN {C} c2 ON c1.country = c2.country AND c1.customer_id < c2.customer_id", names=True)
q("join_three_way", "SELECT count(*) AS n FROM {O} a JOIN {C} c ON a.customer_id = c.customer_id JOIN {O} b ON b.customer_id = c.customer_id AND b.order_id > a.order_id", names=True)
q("join_values", "SELECT o.order_id, r.label FROM {O} o JOIN (VALUES ('eu', 'Europe'), ('us', 'America')) AS r(code, label) ON o.region = r.code", names=True)
q("join_anti_left", "SELECT o.order_id FROM {O} o LEFT JOIN {C} c ON o.customer_id = c.customer_id WHERE c.customer_id IS NULL", names=True)
q("join_masked_name", "SELECT c.name, count(*) AS n FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id GROUP BY c.name", names=True)
q("join_embedding", "SELECT o.order_id, o.embedding FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id WHERE c.country = 'JP'", names=True)
q("join_attachment", "SELECT o.order_id, o.attachment FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id WHERE c.country = 'AU'", names=True)
q("join_cross_small", "SELECT count(*) AS n FROM (SELECT DISTINCT region FROM {O}) a CROSS JOIN (SELECT DISTINCT tier FROM {C}) b", names=True)

# --- subqueries --------------------------------------------------------------------
q("sub_in", "SELECT order_id FROM {O} WHERE customer_id IN (SELECT customer_id FROM {C} WHERE tier = 'gold')", names=True)
q("sub_not_in", "SELECT order_id FROM {O} WHERE customer_id IS NOT NULL AND customer_id NOT IN (SELECT customer_id FROM {C} WHERE country = 'US')", names=True)
q("sub_not_in_customers", "SELECT count(*) AS n FROM {C} WHERE customer_id NOT IN (SELECT customer_id FROM {O} WHERE customer_id IS NOT NULL)", names=True)
q("sub_exists", "SELECT c.customer_id FROM {C} c WHERE EXISTS (SELECT 1 FROM {O} o WHERE o.customer_id = c.customer_id AND o.amount > 4000)", names=True)
q("sub_not_exists", "SELECT c.customer_id FROM {C} c WHERE NOT EXISTS (SELECT 1 FROM {O} o WHERE o.customer_id = c.customer_id)", names=True)
q("sub_exists_hidden", "SELECT c.customer_id FROM {C} c WHERE EXISTS (SELECT 1 FROM {O} o WHERE o.customer_id = c.customer_id AND o.sensitivity = 2)", names=True)
q("sub_scalar_avg", "SELECT order_id FROM {O} WHERE amount > (SELECT avg(amount) FROM {O})", names=True)
q("sub_scalar_max", "SELECT (SELECT max(order_id) FROM {O}) AS mx, (SELECT count(*) FROM {C}) AS nc", names=True)
q("sub_scalar_correlated", "SELECT c.customer_id, (SELECT count(*) FROM {O} o WHERE o.customer_id = c.customer_id) AS n FROM {C} c", names=True)
q("sub_scalar_correlated_sum", "SELECT c.customer_id, (SELECT sum(o.amount) FROM {O} o WHERE o.customer_id = c.customer_id) AS s FROM {C} c", names=True)
q("sub_derived", "SELECT t.region, t.n FROM (SELECT region, count(*) AS n FROM {O} GROUP BY region) t WHERE t.n > 10", names=True)
q("sub_derived_star", "SELECT * FROM (SELECT * FROM {O} WHERE amount > 2000) t WHERE t.order_id % 2 = 0", names=True)
q("sub_having_scalar", "SELECT customer_id, count(*) AS n FROM {O} GROUP BY customer_id HAVING count(*) > (SELECT count(*) FROM {C} WHERE tier = 'gold') / 10.0", names=True)
q("sub_in_masked", "SELECT order_id FROM {O} WHERE customer_email IN (SELECT customer_email FROM {O} WHERE order_id < 100)", names=True)
q("sub_in_hidden_column", "SELECT order_id FROM {O} WHERE order_id IN (SELECT order_id FROM {O} WHERE sensitivity = 0)", names=True)
q("sub_max_per_region", "SELECT o.order_id FROM {O} o WHERE o.amount = (SELECT max(i.amount) FROM {O} i WHERE i.region = o.region)", names=True)
q("sub_nested", "SELECT count(*) AS n FROM {O} WHERE customer_id IN (SELECT customer_id FROM {C} WHERE customer_id IN (SELECT customer_id FROM {O} WHERE amount > 3000))", names=True)

# --- CTEs ------------------------------------------------------------------------------
q("cte_simple", "WITH t AS (SELECT region, sum(amount) AS s FROM {O} GROUP BY region) SELECT region, s FROM t WHERE s > 1000", names=True)
q("cte_two", "WITH big AS (SELECT order_id, customer_id FROM {O} WHERE amount > 2500), gold AS (SELECT customer_id FROM {C} WHERE tier = 'gold') SELECT big.order_id FROM big JOIN gold ON big.customer_id = gold.customer_id", names=True)
q("cte_reused", "WITH t AS (SELECT customer_id, count(*) AS n FROM {O} GROUP BY customer_id) SELECT a.customer_id FROM t a JOIN t b ON a.n = b.n AND a.customer_id < b.customer_id", names=True)
q("cte_star", "WITH t AS (SELECT * FROM {O}) SELECT * FROM t WHERE order_id < 500", names=True)
q("cte_customers_star", "WITH t AS (SELECT * FROM {C}) SELECT * FROM t", names=True)
q("cte_masked", "WITH t AS (SELECT customer_email AS e FROM {O}) SELECT e, count(*) AS n FROM t GROUP BY e", names=True)
q("cte_hidden", "WITH t AS (SELECT order_id, sensitivity FROM {O}) SELECT count(*) AS n FROM t WHERE sensitivity IS NOT NULL", names=True)
q("cte_window", "WITH r AS (SELECT order_id, region, row_number() OVER (PARTITION BY region ORDER BY order_id DESC) AS rn FROM {O}) SELECT order_id, region FROM r WHERE rn = 1", names=True)
q("cte_nested_agg", "WITH per AS (SELECT customer_id, sum(amount) AS s FROM {O} GROUP BY customer_id) SELECT count(*) AS n, max(s) AS mx FROM per", names=True)

# --- set operations --------------------------------------------------------------------
q("set_union", "SELECT region AS v FROM {O} UNION SELECT country FROM {C}", names=True)
q("set_union_all_ids", "SELECT customer_id FROM {O} UNION ALL SELECT customer_id FROM {C}", names=True)
q("set_union_all_split", "SELECT order_id FROM {O} WHERE region = 'eu' UNION ALL SELECT order_id FROM {O} WHERE region = 'us'", names=True)
q("set_intersect", "SELECT customer_id FROM {O} INTERSECT SELECT customer_id FROM {C}", names=True)
q("set_except", "SELECT customer_id FROM {C} EXCEPT SELECT customer_id FROM {O}", names=True)
q("set_union_masked", "SELECT customer_email AS v FROM {O} UNION SELECT name FROM {C}", names=True)
q("set_union_agg", "SELECT count(*) AS n FROM (SELECT order_id FROM {O} UNION ALL SELECT customer_id FROM {C}) t", names=True)
q("set_union_hidden", "SELECT sensitivity AS v FROM {O} UNION SELECT 99", names=True)
q("set_union_ordered", "SELECT order_id AS id FROM {O} WHERE order_id < 50 UNION SELECT customer_id FROM {C} WHERE customer_id < 20 ORDER BY id", ordered=True, names=True)

# --- ORDER BY / LIMIT (total orders) -----------------------------------------------------
q("ord_id_limit", "SELECT order_id, amount FROM {O} ORDER BY order_id LIMIT 10", ordered=True, names=True)
q("ord_amount_desc", "SELECT order_id, amount FROM {O} ORDER BY amount DESC NULLS LAST, order_id LIMIT 25", ordered=True, names=True)
q("ord_offset", "SELECT order_id, created_at FROM {O} ORDER BY created_at, order_id LIMIT 5 OFFSET 10", ordered=True, names=True)
q("ord_masked", "SELECT order_id, customer_email FROM {O} ORDER BY customer_email NULLS FIRST, order_id LIMIT 20", ordered=True, names=True)
q("ord_region_desc_id", "SELECT order_id, region FROM {O} ORDER BY region NULLS LAST, order_id DESC LIMIT 30", ordered=True, names=True)
q("ord_positional", "SELECT order_id, amount FROM {O} ORDER BY 1 DESC LIMIT 7", ordered=True, names=True)
q("ord_top_customers", "SELECT customer_id, count(*) AS n FROM {O} GROUP BY customer_id ORDER BY n DESC, customer_id NULLS LAST LIMIT 10", ordered=True, names=True)
q("ord_full_desc", "SELECT order_id FROM {O} ORDER BY order_id DESC", ordered=True, names=True)
q("ord_hidden_key", "SELECT order_id FROM {O} ORDER BY sensitivity NULLS LAST, order_id LIMIT 10", ordered=True, names=True)
q("ord_customers_name", "SELECT customer_id, name FROM {C} ORDER BY name, customer_id LIMIT 15", ordered=True, names=True)
q("ord_expr", "SELECT order_id FROM {O} ORDER BY abs(amount - 2500) NULLS LAST, order_id LIMIT 12", ordered=True, names=True)
q("ord_limit_only_count", "SELECT count(*) AS n FROM (SELECT order_id FROM {O} ORDER BY order_id LIMIT 100) t", names=True)
q("ord_embedding_key", "SELECT order_id FROM {O} ORDER BY embedding[3] DESC NULLS LAST, order_id LIMIT 10", ordered=True, names=True)

# --- DISTINCT ------------------------------------------------------------------------------
q("dist_region", "SELECT DISTINCT region FROM {O}", names=True)
q("dist_region_sens", "SELECT DISTINCT region, sensitivity FROM {O}", names=True)
q("dist_customer", "SELECT DISTINCT customer_id FROM {O}", names=True)
q("dist_tier", "SELECT DISTINCT tier FROM {C}", names=True)
q("dist_country_ordered", "SELECT DISTINCT country FROM {C} ORDER BY country NULLS FIRST", ordered=True, names=True)
q("dist_month", "SELECT DISTINCT extract(month FROM created_at) AS m FROM {O}", names=True)
q("dist_masked_name", "SELECT DISTINCT name FROM {C}", names=True)

# --- CASE ----------------------------------------------------------------------------------
q("case_amount_bands", "SELECT order_id, CASE WHEN amount > 1000 THEN 'big' WHEN amount IS NULL THEN 'none' ELSE 'small' END AS band FROM {O}", names=True)
q("case_simple_region", "SELECT order_id, CASE region WHEN 'eu' THEN 1 WHEN 'us' THEN 2 ELSE 0 END AS r FROM {O}", names=True)
q("case_grouped", "SELECT CASE WHEN amount > 1000 THEN 'big' ELSE 'small' END AS band, count(*) AS n FROM {O} GROUP BY CASE WHEN amount > 1000 THEN 'big' ELSE 'small' END", names=True)
q("case_masked", "SELECT order_id, CASE WHEN customer_email LIKE '%@example.com' THEN 1 ELSE 0 END AS ex FROM {O}", names=True)
q("case_sensitivity", "SELECT order_id, CASE WHEN sensitivity > 1 THEN 'high' ELSE 'low' END AS s FROM {O}", names=True)
q("case_in_agg", "SELECT region, sum(CASE WHEN amount > 500 THEN amount ELSE 0 END) AS s FROM {O} GROUP BY region", names=True)
q("case_tier", "SELECT customer_id, CASE tier WHEN 'gold' THEN 3 WHEN 'silver' THEN 2 ELSE 1 END AS t FROM {C}", names=True)
q("case_nullif", "SELECT order_id, nullif(region, 'eu') AS r FROM {O}", names=True)

# --- hidden columns in every clause position (refused unless the token has them) ---------
HIDDEN_POSITIONS = {
    "select": "SELECT order_id, {c} FROM {O}",
    "where": "SELECT order_id FROM {O} WHERE {c} IS NOT NULL",
    "group_by": "SELECT count(*) AS n FROM {O} GROUP BY {c}",
    "order_by": "SELECT order_id FROM {O} ORDER BY {c} NULLS LAST, order_id LIMIT 5",
    "having": "SELECT region FROM {O} GROUP BY region HAVING count({c}) > 0",
    "func_arg": "SELECT coalesce({c}, {c}) AS v FROM {O}",
    "join_on": "SELECT count(*) AS n FROM {O} o JOIN {C} c ON o.customer_id = c.customer_id AND o.{c} IS NOT NULL",
    "subquery": "SELECT count(*) AS n FROM {O} WHERE order_id IN (SELECT order_id FROM {O} WHERE {c} IS NOT NULL)",
}
for pos, tmpl in HIDDEN_POSITIONS.items():
    for col in ("sensitivity", "created_at", "customer_id"):
        q(f"cols_{pos}_{col}", tmpl.replace("{c}", col), names=True)
q("cols_customers_tier_where", "SELECT customer_id FROM {C} WHERE tier IS NOT NULL", names=True)
q("cols_customers_country_group", "SELECT country, count(*) AS n FROM {C} GROUP BY country", names=True)

# --- ungranted / nonexistent tables (catalog-level refusals) -------------------------------
q("tbl_salaries", "SELECT * FROM lake.hr.salaries")
q("tbl_salaries_count", "SELECT count(*) AS n FROM lake.hr.salaries")
q("tbl_nope", "SELECT * FROM lake.sales.nope", valid_on_full=False)
q("tbl_join_salaries", "SELECT count(*) AS n FROM {O} o JOIN lake.hr.salaries s ON o.customer_id = s.employee_id")

QUERIES: list[Query] = list(_queries)

_ids = [x.id for x in QUERIES]
assert len(_ids) == len(set(_ids)), "duplicate query ids"


def probe_queries(table: str, predicate: str) -> list[tuple[str, str]]:
    """DESIGN §4.5 probes: each errors if ``predicate`` is ever evaluated
    by a user expression on a row that satisfies it."""
    div = f"1 / (CASE WHEN {predicate} THEN 0 ELSE 1 END)"
    cast = f"CAST(CASE WHEN {predicate} THEN 'boom' ELSE '1' END AS INTEGER)"
    return [
        ("where_div", f"SELECT count(*) AS n FROM {table} WHERE {div} = 1"),
        ("where_cast", f"SELECT count(*) AS n FROM {table} WHERE {cast} = 1"),
        ("select_div", f"SELECT sum({div}) AS s FROM {table}"),
        ("subquery_div", f"SELECT count(*) AS n FROM (SELECT * FROM {table} WHERE {div} = 1) t"),
        ("group_div", f"SELECT {div} AS k, count(*) AS n FROM {table} GROUP BY {div}"),
        ("cte_cast", f"WITH t AS (SELECT {cast} AS v FROM {table}) SELECT count(*) AS n FROM t WHERE v = 1"),
    ]


#: Per oracle token (tokens.ORACLE_TOKENS): how many of QUERIES, and of the
#: token's §4.5 probes (tokens.PROBES x probe_queries), DuckDB's secure views
#: answer and refuse, as (compared, refused). A full run of test_oracle,
#: test_trino_oracle (and, for share X = rowrule_hash_deny, test_federation)
#: must end with exactly these counts and no mismatch; so a sluice that
#: refuses everything cannot pass. test_oracle_selfcheck recomputes them with
#: DuckDB alone: a change of the queries, tokens, probes or lake shows there.
EXPECTED_OUTCOMES: dict[str, dict[str, tuple[int, int]]] = {
    "rowrule_hash_deny": {"queries": (220, 59), "probes": (24, 6)},
    "clearance_partial": {"queries": (247, 32), "probes": (12, 0)},
    "glob_deny_null": {"queries": (269, 10), "probes": (24, 0)},
    "multi_allow_redact": {"queries": (248, 31), "probes": (24, 0)},
}


def expected_totals(token: str) -> tuple[int, int]:
    """(compared, refused) of QUERIES and the probes together."""
    (qc, qr), (pc, pr) = EXPECTED_OUTCOMES[token]["queries"], EXPECTED_OUTCOMES[token]["probes"]
    return qc + pc, qr + pr
