//! The read-only SQL guard (DESIGN §4.8).
//!
//! Only queries are accepted: `SELECT`, `WITH`, `VALUES`, `EXPLAIN` (not
//! `EXPLAIN ANALYZE`, whose operator metrics would count rows the policy
//! hides, nor `EXPLAIN VERBOSE` / `FORMAT`, whose statistics and schemas
//! would describe what lies below a secure view), `SHOW TABLES`,
//! `SHOW COLUMNS` and `DESCRIBE`. Everything else is
//! refused here with a message naming the statement, and again by
//! DataFusion's own `SQLOptions` check on the logical plan (defence in
//! depth: e.g. `SELECT … INTO` plans as DDL and is caught there).

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::error::{Error, ErrorKind, Result};

/// Checks that `stmt` is a read-only statement sluice accepts.
pub fn check(stmt: &DFStatement) -> Result<()> {
    match stmt {
        DFStatement::Statement(s) => check_sql(s),
        DFStatement::Explain(e) => {
            if e.analyze {
                return Err(refused("EXPLAIN ANALYZE"));
            }
            if e.verbose {
                return Err(refused("EXPLAIN VERBOSE"));
            }
            if e.format
                .as_deref()
                .is_some_and(|f| !f.eq_ignore_ascii_case("indent"))
            {
                return Err(refused("EXPLAIN FORMAT"));
            }
            check(&e.statement)
        }
        DFStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE")),
        DFStatement::CopyTo(_) => Err(refused("COPY")),
        DFStatement::Reset(_) => Err(refused("RESET")),
    }
}

fn check_sql(s: &Statement) -> Result<()> {
    match s {
        Statement::Query(_)
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ExplainTable { .. } => Ok(()),
        Statement::Explain {
            analyze,
            verbose,
            format,
            statement,
            ..
        } => {
            if *analyze {
                return Err(refused("EXPLAIN ANALYZE"));
            }
            if *verbose {
                return Err(refused("EXPLAIN VERBOSE"));
            }
            if format.is_some() {
                return Err(refused("EXPLAIN FORMAT"));
            }
            check_sql(statement)
        }
        other => Err(refused(&statement_kind(other))),
    }
}

/// Words that may lead a statement, for naming it in errors.
const STATEMENT_WORDS: &[&str] = &[
    "ALTER",
    "ANALYZE",
    "ATTACH",
    "BEGIN",
    "CACHE",
    "CALL",
    "COMMENT",
    "COMMIT",
    "COPY",
    "CREATE",
    "DATABASE",
    "DEALLOCATE",
    "DECLARE",
    "DELETE",
    "DETACH",
    "DISCARD",
    "DROP",
    "EXECUTE",
    "EXTERNAL",
    "FROM",
    "FUNCTION",
    "GRANT",
    "INDEX",
    "INSERT",
    "INTO",
    "KILL",
    "LOAD",
    "LOCK",
    "MATERIALIZED",
    "MERGE",
    "OR",
    "OVERWRITE",
    "PREPARE",
    "RELEASE",
    "REPLACE",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SCHEMA",
    "SET",
    "START",
    "TABLE",
    "TEMP",
    "TEMPORARY",
    "TRANSACTION",
    "TRUNCATE",
    "UNCACHE",
    "UNLOAD",
    "UPDATE",
    "USE",
    "VACUUM",
    "VIEW",
];

/// The leading keywords of a statement, for error messages (never its
/// identifiers or literals).
fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let words: Vec<String> = text
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .take_while(|w| STATEMENT_WORDS.contains(&w.as_str()))
        .take(3)
        .collect();
    if words.is_empty() {
        "this statement".to_string()
    } else {
        words.join(" ")
    }
}

fn refused(what: &str) -> Error {
    Error::refused(
        ErrorKind::ReadOnly,
        format!(
            "{what} is not allowed: sluice is read-only and accepts only queries \
         (SELECT, WITH, VALUES, EXPLAIN, SHOW TABLES, SHOW COLUMNS, DESCRIBE)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParser;

    use super::*;

    fn verdict(sql: &str) -> Result<()> {
        let mut stmts = DFParser::parse_sql(sql).expect("parses");
        check(&stmts.pop_front().expect("one statement"))
    }

    #[test]
    fn accepts_queries() {
        for sql in [
            "SELECT 1",
            "WITH t AS (SELECT 1 AS a) SELECT * FROM t",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "EXPLAIN FORMAT INDENT SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM lake.sales.orders",
            "DESCRIBE lake.sales.orders",
        ] {
            assert!(verdict(sql).is_ok(), "{sql}: {:?}", verdict(sql));
        }
    }

    #[test]
    fn refuses_everything_else() {
        for (sql, kind) in [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            (
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc'",
                "CREATE EXTERNAL TABLE",
            ),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
            ("INSERT INTO t VALUES (1)", "INSERT INTO"),
            ("DELETE FROM t", "DELETE FROM"),
            ("UPDATE t SET a = 1", "UPDATE"),
            ("DROP TABLE t", "DROP TABLE"),
            ("COPY (SELECT 1) TO '/tmp/x.parquet'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE"),
            ("EXPLAIN VERBOSE SELECT 1", "EXPLAIN VERBOSE"),
            ("EXPLAIN FORMAT TREE SELECT 1", "EXPLAIN FORMAT"),
            ("EXPLAIN CREATE TABLE t (a INT)", "CREATE TABLE"),
            ("PREPARE p AS SELECT 1", "PREPARE"),
            ("RESET datafusion.execution.batch_size", "RESET"),
        ] {
            let err = verdict(sql).expect_err(sql).to_string();
            assert!(
                err.starts_with(&format!("{kind} is not allowed")),
                "{sql}: {err}"
            );
        }
    }
}
