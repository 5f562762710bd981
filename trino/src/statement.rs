//! Trino statements that are not plain queries: session statements (`USE`,
//! `SET SESSION`, `PREPARE`, `EXECUTE`, …), answered by the frontend with
//! protocol headers, and metadata statements (`SHOW …`, `DESCRIBE`),
//! translated into queries over the Trino-shaped `information_schema` /
//! `system.jdbc` of the token's session.
//!
//! Recognised by their leading keywords with a small lexer (DataFusion's
//! parser knows neither Trino's session statements nor its `SHOW` forms);
//! everything else is a query for the governor.

use sluice_planner::{Error, ErrorKind, Result};

/// A Trino statement, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrinoStatement {
    /// A query (or `EXPLAIN`): planned by the governor as is.
    Query(String),
    /// `USE [catalog.]schema`.
    Use {
        /// Catalog, when given.
        catalog: Option<String>,
        /// Schema.
        schema: String,
    },
    /// `SET SESSION name = value`.
    SetSession {
        /// Property name (may be `catalog.property`).
        name: String,
        /// The value (a string literal's content, or the literal as written).
        value: String,
    },
    /// `RESET SESSION name`.
    ResetSession {
        /// Property name.
        name: String,
    },
    /// `PREPARE name FROM statement`.
    Prepare {
        /// Statement name.
        name: String,
        /// The statement's text.
        sql: String,
    },
    /// `EXECUTE name [USING params]`.
    Execute {
        /// Statement name.
        name: String,
        /// Text of the `USING` list.
        params: Option<String>,
    },
    /// `EXECUTE IMMEDIATE 'sql' [USING params]`.
    ExecuteImmediate {
        /// The statement's text.
        sql: String,
        /// Text of the `USING` list.
        params: Option<String>,
    },
    /// `DEALLOCATE PREPARE name`.
    Deallocate {
        /// Statement name.
        name: String,
    },
    /// `SHOW CATALOGS [LIKE p]`.
    ShowCatalogs {
        /// Pattern.
        like: Option<String>,
    },
    /// `SHOW SCHEMAS [FROM catalog] [LIKE p]`.
    ShowSchemas {
        /// Catalog, when given.
        catalog: Option<String>,
        /// Pattern.
        like: Option<String>,
    },
    /// `SHOW TABLES [FROM [catalog.]schema] [LIKE p]`.
    ShowTables {
        /// Name parts of the schema (`[catalog, schema]`, `[schema]` or none).
        schema: Vec<String>,
        /// Pattern.
        like: Option<String>,
    },
    /// `SHOW COLUMNS FROM table [LIKE p]`, `DESCRIBE table`.
    ShowColumns {
        /// Name parts of the table.
        table: Vec<String>,
        /// Pattern.
        like: Option<String>,
    },
    /// A statement sluice does not support, with the reason.
    Unsupported(String),
}

impl TrinoStatement {
    /// Whether the governor plans it (a query or a metadata statement), as
    /// opposed to a session statement the frontend answers itself.
    pub fn is_plannable(&self) -> bool {
        matches!(
            self,
            TrinoStatement::Query(_)
                | TrinoStatement::ShowCatalogs { .. }
                | TrinoStatement::ShowSchemas { .. }
                | TrinoStatement::ShowTables { .. }
                | TrinoStatement::ShowColumns { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A word; `true` when it was double-quoted.
    Word(String, bool),
    Str(String),
    Sym(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// Splits `sql` into words, string literals and symbols with byte offsets,
/// skipping whitespace and comments. Numbers come out as words.
fn lex(sql: &str) -> Result<Vec<Token>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = sql[i + 2..]
                .find("*/")
                .ok_or_else(|| syntax("unterminated comment"))?;
            i += 2 + end + 2;
        } else if c == b'\'' || c == b'"' {
            let start = i;
            let mut value = String::new();
            i += 1;
            loop {
                let Some(rel) = sql[i..].find(c as char) else {
                    return Err(syntax("unterminated quoted text"));
                };
                value.push_str(&sql[i..i + rel]);
                i += rel + 1;
                if b.get(i) == Some(&c) {
                    value.push(c as char);
                    i += 1;
                } else {
                    break;
                }
            }
            let tok = if c == b'\'' {
                Tok::Str(value)
            } else {
                Tok::Word(value, true)
            };
            out.push(Token { tok, start, end: i });
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Word(sql[start..i].to_string(), false),
                start,
                end: i,
            });
        } else {
            let ch = sql[i..].chars().next().unwrap_or(' ');
            out.push(Token {
                tok: Tok::Sym(ch),
                start: i,
                end: i + ch.len_utf8(),
            });
            i += ch.len_utf8();
        }
    }
    Ok(out)
}

fn syntax(msg: &str) -> Error {
    Error::refused(ErrorKind::Syntax(None), msg)
}

struct Cursor<'a> {
    sql: &'a str,
    toks: Vec<Token>,
    pos: usize,
}

impl Cursor<'_> {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Token { tok: Tok::Word(w, false), .. }) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(syntax(&format!("expected {kw}")))
        }
    }

    fn eat_sym(&mut self, c: char) -> bool {
        if matches!(self.toks.get(self.pos), Some(Token { tok: Tok::Sym(s), .. }) if *s == c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// An identifier: unquoted ones are lower-cased (like DataFusion's
    /// identifier normalisation), quoted ones kept.
    fn ident(&mut self) -> Result<String> {
        match self.toks.get(self.pos) {
            Some(Token {
                tok: Tok::Word(w, quoted),
                ..
            }) => {
                self.pos += 1;
                Ok(if *quoted {
                    w.clone()
                } else {
                    w.to_ascii_lowercase()
                })
            }
            _ => Err(syntax("expected an identifier")),
        }
    }

    fn qualified(&mut self) -> Result<Vec<String>> {
        let mut parts = vec![self.ident()?];
        while self.eat_sym('.') {
            parts.push(self.ident()?);
        }
        Ok(parts)
    }

    fn string(&mut self) -> Result<String> {
        match self.toks.get(self.pos) {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(syntax("expected a string literal")),
        }
    }

    /// Text from the current token to the end (without a trailing `;`).
    fn rest(&self) -> Option<String> {
        let start = self.toks.get(self.pos)?.start;
        let text = self.sql[start..].trim().trim_end_matches(';').trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
            || (self.pos + 1 == self.toks.len() && matches!(self.toks[self.pos].tok, Tok::Sym(';')))
    }

    fn end(&self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(syntax(&format!(
                "unexpected text: {}",
                &self.sql[self.toks[self.pos].start..]
            )))
        }
    }

    fn like(&mut self) -> Result<Option<String>> {
        if self.eat_kw("like") {
            let p = self.string()?;
            if self.eat_kw("escape") {
                self.string()?;
            }
            Ok(Some(p))
        } else {
            Ok(None)
        }
    }

    fn end_offset(&self) -> usize {
        self.toks
            .get(self.pos.wrapping_sub(1))
            .map(|t| t.end)
            .unwrap_or(0)
    }
}

/// Classifies one Trino statement.
pub fn classify(sql: &str) -> Result<TrinoStatement> {
    // Text the lexer cannot read goes to DataFusion's parser, whose error
    // names the position.
    let Ok(toks) = lex(sql) else {
        return Ok(TrinoStatement::Query(sql.to_string()));
    };
    let mut c = Cursor { sql, toks, pos: 0 };
    let query = || TrinoStatement::Query(sql.to_string());
    if c.eat_kw("use") {
        let parts = c.qualified()?;
        c.end()?;
        return match parts.as_slice() {
            [s] => Ok(TrinoStatement::Use {
                catalog: None,
                schema: s.clone(),
            }),
            [cat, s] => Ok(TrinoStatement::Use {
                catalog: Some(cat.clone()),
                schema: s.clone(),
            }),
            _ => Err(syntax("USE takes [catalog.]schema")),
        };
    }
    if c.peek_kw("set") {
        c.pos += 1;
        if !c.eat_kw("session") {
            return Ok(TrinoStatement::Unsupported(
                "only SET SESSION is supported".into(),
            ));
        }
        let name = c.qualified()?.join(".");
        if !c.eat_sym('=') {
            return Err(syntax("expected = after the session property name"));
        }
        let value = match c.toks.get(c.pos) {
            Some(Token {
                tok: Tok::Str(s), ..
            }) if c.pos + 1 == c.toks.len()
                || (c.pos + 2 == c.toks.len()
                    && matches!(c.toks[c.pos + 1].tok, Tok::Sym(';'))) =>
            {
                s.clone()
            }
            _ => c.rest().ok_or_else(|| syntax("expected a value"))?,
        };
        return Ok(TrinoStatement::SetSession { name, value });
    }
    if c.eat_kw("reset") {
        c.expect_kw("session")?;
        let name = c.qualified()?.join(".");
        c.end()?;
        return Ok(TrinoStatement::ResetSession { name });
    }
    if c.eat_kw("prepare") {
        let name = c.ident()?;
        c.expect_kw("from")?;
        let sql = c
            .rest()
            .ok_or_else(|| syntax("PREPARE needs a statement"))?;
        return Ok(TrinoStatement::Prepare { name, sql });
    }
    if c.eat_kw("execute") {
        let immediate = c.eat_kw("immediate");
        let target = if immediate { c.string()? } else { c.ident()? };
        let params = if c.eat_kw("using") {
            let start = c.end_offset();
            let text = sql[start..].trim().trim_end_matches(';').trim();
            if text.is_empty() {
                return Err(syntax("USING needs parameters"));
            }
            Some(text.to_string())
        } else {
            c.end()?;
            None
        };
        return Ok(if immediate {
            TrinoStatement::ExecuteImmediate {
                sql: target,
                params,
            }
        } else {
            TrinoStatement::Execute {
                name: target,
                params,
            }
        });
    }
    if c.eat_kw("deallocate") {
        c.expect_kw("prepare")?;
        let name = c.ident()?;
        c.end()?;
        return Ok(TrinoStatement::Deallocate { name });
    }
    if c.eat_kw("describe") || c.eat_kw("desc") {
        if c.peek_kw("input") || c.peek_kw("output") {
            return Ok(TrinoStatement::Unsupported(
                "DESCRIBE INPUT / OUTPUT is not supported".into(),
            ));
        }
        let table = c.qualified()?;
        c.end()?;
        return Ok(TrinoStatement::ShowColumns { table, like: None });
    }
    for kw in ["start", "commit", "rollback"] {
        if c.peek_kw(kw) {
            return Ok(TrinoStatement::Unsupported(
                "transactions are not supported (sluice is read-only; use autocommit)".into(),
            ));
        }
    }
    if c.eat_kw("show") {
        if c.eat_kw("catalogs") {
            let like = c.like()?;
            c.end()?;
            return Ok(TrinoStatement::ShowCatalogs { like });
        }
        if c.eat_kw("schemas") {
            let catalog = if c.eat_kw("from") || c.eat_kw("in") {
                Some(c.ident()?)
            } else {
                None
            };
            let like = c.like()?;
            c.end()?;
            return Ok(TrinoStatement::ShowSchemas { catalog, like });
        }
        if c.eat_kw("tables") {
            let schema = if c.eat_kw("from") || c.eat_kw("in") {
                c.qualified()?
            } else {
                vec![]
            };
            if schema.len() > 2 {
                return Err(syntax("SHOW TABLES FROM takes [catalog.]schema"));
            }
            let like = c.like()?;
            c.end()?;
            return Ok(TrinoStatement::ShowTables { schema, like });
        }
        if c.eat_kw("columns") {
            if !(c.eat_kw("from") || c.eat_kw("in")) {
                return Err(syntax("expected FROM after SHOW COLUMNS"));
            }
            let table = c.qualified()?;
            let like = c.like()?;
            c.end()?;
            return Ok(TrinoStatement::ShowColumns { table, like });
        }
        let what = c
            .rest()
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        return Ok(TrinoStatement::Unsupported(format!(
            "SHOW {what} is not supported (SHOW CATALOGS, SCHEMAS, TABLES and COLUMNS are)"
        )));
    }
    Ok(query())
}

/// A SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier, always double-quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(sql: &str) -> TrinoStatement {
        classify(sql).unwrap()
    }

    #[test]
    fn session_statements() {
        assert_eq!(
            q("use lake.Sales"),
            TrinoStatement::Use {
                catalog: Some("lake".into()),
                schema: "sales".into()
            }
        );
        assert_eq!(
            q("USE \"Odd\""),
            TrinoStatement::Use {
                catalog: None,
                schema: "Odd".into()
            }
        );
        assert_eq!(
            q("SET SESSION query_max_run_time = '10s'"),
            TrinoStatement::SetSession {
                name: "query_max_run_time".into(),
                value: "10s".into()
            }
        );
        assert_eq!(
            q("SET SESSION lake.x = 42;"),
            TrinoStatement::SetSession {
                name: "lake.x".into(),
                value: "42".into()
            }
        );
        assert_eq!(
            q("RESET SESSION a"),
            TrinoStatement::ResetSession { name: "a".into() }
        );
        assert_eq!(
            q("PREPARE my_q FROM SELECT ? -- c\n"),
            TrinoStatement::Prepare {
                name: "my_q".into(),
                sql: "SELECT ? -- c".into()
            }
        );
        assert_eq!(
            q("EXECUTE IMMEDIATE 'SELECT ''a'', ?' USING 1, 'b'"),
            TrinoStatement::ExecuteImmediate {
                sql: "SELECT 'a', ?".into(),
                params: Some("1, 'b'".into())
            }
        );
        assert_eq!(
            q("execute st1"),
            TrinoStatement::Execute {
                name: "st1".into(),
                params: None
            }
        );
        assert_eq!(
            q("DEALLOCATE PREPARE st1"),
            TrinoStatement::Deallocate { name: "st1".into() }
        );
    }

    #[test]
    fn metadata_statements() {
        assert_eq!(
            q("SHOW CATALOGS LIKE 'l%'"),
            TrinoStatement::ShowCatalogs {
                like: Some("l%".into())
            }
        );
        assert_eq!(
            q("show schemas from lake"),
            TrinoStatement::ShowSchemas {
                catalog: Some("lake".into()),
                like: None
            }
        );
        assert_eq!(
            q("SHOW TABLES IN lake.sales LIKE 'o%'"),
            TrinoStatement::ShowTables {
                schema: vec!["lake".into(), "sales".into()],
                like: Some("o%".into())
            }
        );
        assert_eq!(
            q("DESCRIBE lake.sales.orders"),
            TrinoStatement::ShowColumns {
                table: vec!["lake".into(), "sales".into(), "orders".into()],
                like: None
            }
        );
        assert!(matches!(
            q("SHOW FUNCTIONS"),
            TrinoStatement::Unsupported(_)
        ));
        assert!(matches!(
            q("START TRANSACTION"),
            TrinoStatement::Unsupported(_)
        ));
    }

    #[test]
    fn queries_pass_through() {
        for sql in [
            "SELECT 1",
            "  with x as (select 1) select * from x",
            "/* use */ SELECT 'use'",
            "EXPLAIN SELECT 1",
            "VALUES 1",
        ] {
            assert_eq!(q(sql), TrinoStatement::Query(sql.to_string()));
        }
        assert_eq!(
            q("SELECT 'unterminated"),
            TrinoStatement::Query("SELECT 'unterminated".into())
        );
    }
}
