//! Catalog commands: GetCatalogs, GetDbSchemas, GetTables, GetTableTypes,
//! GetSqlInfo, GetXdbcTypeInfo and the (always empty) key commands.
//!
//! Catalog listings are read from the token's scoped session
//! ([`Governor::context`](sluice_planner::Governor::context)), in which only
//! the token's secure views exist: a table without a grant is absent here
//! exactly as it is absent from planning.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::sql::metadata::{
    GetTablesBuilder, SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData,
    XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, Nullable,
    Searchable, SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel, SqlSupportedCaseSensitivity,
    SqlSupportedGroupBy, SqlSupportedResultSetConcurrency, SqlSupportedResultSetType,
    SqlSupportedSubqueries, SqlSupportedTransaction, SqlSupportedUnions,
    SqlTransactionIsolationLevel, SupportedSqlGrammar, XdbcDataType, XdbcDatetimeSubcode,
};
use datafusion::datasource::TableType;
use sluice_planner::{Governor, TokenScope};

use crate::error::Result;
use crate::statement::flight_schema;

/// The table types GetTables reports, as listed by GetTableTypes.
pub(crate) const TABLE_TYPES: [&str; 3] = ["LOCAL TEMPORARY", "TABLE", "VIEW"];

/// Flight SQL name of a DataFusion table type.
fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// SQL `LIKE` as Flight SQL filter patterns use it: `%` is any run of
/// characters, `_` any one character, `\` escapes the next character.
/// Case-sensitive. `None` matches everything.
pub(crate) fn like(pattern: Option<&str>, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Many,
        One,
        Lit(char),
    }
    let Some(pattern) = pattern else {
        return true;
    };
    let mut toks = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '%' => Tok::Many,
            '_' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy wildcard matching with backtracking to the last `%`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(Tok::Many) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Many)
}

/// GetCatalogs: the catalogs of the token's scoped session.
pub(crate) fn catalogs(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    query: CommandGetCatalogs,
) -> Result<RecordBatch> {
    let ctx = governor.context(scope);
    let mut builder = query.into_builder();
    for name in ctx.catalog_names() {
        builder.append(name);
    }
    Ok(builder.build()?)
}

/// GetDbSchemas: schemas of the scoped session, filtered by catalog
/// (exact) and schema pattern (`LIKE`).
pub(crate) fn db_schemas(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch> {
    let ctx = governor.context(scope);
    let catalog_filter = query.catalog.clone();
    let pattern = query.db_schema_filter_pattern.clone();
    let mut builder = query.into_builder();
    for catalog_name in ctx.catalog_names() {
        if catalog_filter.as_ref().is_some_and(|c| *c != catalog_name) {
            continue;
        }
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            if like(pattern.as_deref(), &schema_name) {
                builder.append(&catalog_name, &schema_name);
            }
        }
    }
    Ok(builder.build()?)
}

/// GetTables: tables of the scoped session filtered by catalog, schema
/// and table patterns and table types; with `include_schema`, each
/// table's Arrow schema as the token sees it (granted columns only).
pub(crate) async fn tables(
    governor: &Governor,
    scope: &Arc<TokenScope>,
    query: CommandGetTables,
) -> Result<RecordBatch> {
    let ctx = governor.context(scope);
    let catalog_filter = query.catalog.clone();
    let schema_pattern = query.db_schema_filter_pattern.clone();
    let table_pattern = query.table_name_filter_pattern.clone();
    let types = query.table_types.clone();
    let include_schema = query.include_schema;
    let mut builder: GetTablesBuilder = query.into_builder();
    let empty = Schema::empty();
    for catalog_name in ctx.catalog_names() {
        if catalog_filter.as_ref().is_some_and(|c| *c != catalog_name) {
            continue;
        }
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            if !like(schema_pattern.as_deref(), &schema_name) {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            let mut table_names = schema.table_names();
            table_names.sort();
            for table_name in table_names {
                if !like(table_pattern.as_deref(), &table_name) {
                    continue;
                }
                let (table_type, table_schema) = if include_schema {
                    let Some(table) = schema.table(&table_name).await? else {
                        continue;
                    };
                    (
                        table.table_type(),
                        Some(flight_schema(sluice_planner::wire_schema(&table.schema()))),
                    )
                } else {
                    let Some(table_type) = schema.table_type(&table_name).await? else {
                        continue;
                    };
                    (table_type, None)
                };
                let type_name = table_type_name(table_type);
                if !types.is_empty() && !types.iter().any(|t| t == type_name) {
                    continue;
                }
                builder.append(
                    &catalog_name,
                    &schema_name,
                    &table_name,
                    type_name,
                    table_schema.as_deref().unwrap_or(&empty),
                )?;
            }
        }
    }
    Ok(builder.build()?)
}

/// GetTableTypes.
pub(crate) fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch> {
    let mut builder = query.into_builder();
    for t in TABLE_TYPES {
        builder.append(t);
    }
    Ok(builder.build()?)
}

/// Arrow columnar format version reported by GetSqlInfo.
const ARROW_FORMAT_VERSION: &str = "1.5";

/// `1 << v` for each enum value: the Flight SQL bitmask encoding.
fn bitmask(values: &[i32]) -> i32 {
    values.iter().fold(0, |m, v| m | (1 << v))
}

const NUMERIC_FUNCTIONS: &[&str] = &[
    "abs", "acos", "asin", "atan", "atan2", "cbrt", "ceil", "cos", "degrees", "exp", "floor", "ln",
    "log", "log10", "log2", "pi", "power", "radians", "random", "round", "signum", "sin", "sqrt",
    "tan", "trunc",
];
const STRING_FUNCTIONS: &[&str] = &[
    "ascii",
    "btrim",
    "char_length",
    "concat",
    "concat_ws",
    "initcap",
    "left",
    "length",
    "lower",
    "lpad",
    "ltrim",
    "md5",
    "octet_length",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substring",
    "translate",
    "trim",
    "upper",
];
const SYSTEM_FUNCTIONS: &[&str] = &["coalesce", "nullif", "arrow_typeof"];
const DATETIME_FUNCTIONS: &[&str] = &[
    "current_date",
    "current_time",
    "date_bin",
    "date_part",
    "date_trunc",
    "extract",
    "now",
    "to_date",
    "to_timestamp",
];

/// The GetSqlInfo answers of this server. Every info the Flight SQL JDBC
/// driver reads is present with the type it expects (it unboxes them, so a
/// missing key or an `int32` where it wants `int64` is an exception there).
pub(crate) fn sql_info_data(server_name: &str, server_version: &str) -> Result<SqlInfoData> {
    let mut b = SqlInfoDataBuilder::new();
    // Server.
    b.append(SqlInfo::FlightSqlServerName, server_name);
    b.append(SqlInfo::FlightSqlServerVersion, server_version);
    b.append(SqlInfo::FlightSqlServerArrowVersion, ARROW_FORMAT_VERSION);
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    b.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, false);
    b.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    b.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    // SQL dialect (DataFusion).
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // Quoted identifiers keep their case and compare case-sensitively, which
    // none of the enum's other values describes.
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityUnknown as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlKeywords, Vec::<String>::new());
    b.append(SqlInfo::SqlNumericFunctions, NUMERIC_FUNCTIONS);
    b.append(SqlInfo::SqlStringFunctions, STRING_FUNCTIONS);
    b.append(SqlInfo::SqlSystemFunctions, SYSTEM_FUNCTIONS);
    b.append(SqlInfo::SqlDatetimeFunctions, DATETIME_FUNCTIONS);
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlExtraNameCharacters, "");
    b.append(SqlInfo::SqlSupportsColumnAliasing, true);
    b.append(SqlInfo::SqlNullPlusNullIsNull, true);
    b.append(
        SqlInfo::SqlSupportsConvert,
        BTreeMap::<i32, Vec<i32>>::new(),
    );
    b.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    b.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    b.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    b.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    b.append(
        SqlInfo::SqlSupportedGroupBy,
        bitmask(&[
            SqlSupportedGroupBy::SqlGroupByUnrelated as i32,
            SqlSupportedGroupBy::SqlGroupByBeyondSelect as i32,
        ]),
    );
    b.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    b.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    b.append(
        SqlInfo::SqlSupportedGrammar,
        bitmask(&[
            SupportedSqlGrammar::SqlMinimumGrammar as i32,
            SupportedSqlGrammar::SqlCoreGrammar as i32,
        ]),
    );
    // ANSI-92 entry level (bit 0).
    b.append(SqlInfo::SqlAnsi92SupportedLevel, bitmask(&[0]));
    b.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    b.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    b.append(SqlInfo::SqlSchemaTerm, "schema");
    b.append(SqlInfo::SqlProcedureTerm, "procedure");
    b.append(SqlInfo::SqlCatalogTerm, "catalog");
    b.append(SqlInfo::SqlCatalogAtStart, true);
    b.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    b.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);
    b.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    b.append(SqlInfo::SqlSelectForUpdateSupported, false);
    b.append(SqlInfo::SqlStoredProceduresSupported, false);
    b.append(
        SqlInfo::SqlSupportedSubqueries,
        bitmask(&[
            SqlSupportedSubqueries::SqlSubqueriesInComparisons as i32,
            SqlSupportedSubqueries::SqlSubqueriesInExists as i32,
            SqlSupportedSubqueries::SqlSubqueriesInIns as i32,
        ]),
    );
    b.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    b.append(
        SqlInfo::SqlSupportedUnions,
        bitmask(&[
            SqlSupportedUnions::SqlUnion as i32,
            SqlSupportedUnions::SqlUnionAll as i32,
        ]),
    );
    // Limits: 0 = none or unknown (int64, as JDBC reads them).
    for info in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        b.append(info, 0i64);
    }
    b.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, false);
    // Transactions: none.
    b.append(
        SqlInfo::SqlDefaultTransactionIsolation,
        i64::from(SqlTransactionIsolationLevel::SqlTransactionNone as i32),
    );
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.append(
        SqlInfo::SqlSupportedTransactionsIsolationLevels,
        bitmask(&[SqlTransactionIsolationLevel::SqlTransactionNone as i32]),
    );
    b.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    b.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    // Result sets: forward-only, read-only.
    b.append(
        SqlInfo::SqlSupportedResultSetTypes,
        bitmask(&[SqlSupportedResultSetType::SqlResultSetTypeForwardOnly as i32]),
    );
    let read_only =
        bitmask(&[SqlSupportedResultSetConcurrency::SqlResultSetConcurrencyReadOnly as i32]);
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        read_only,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0i32,
    );
    b.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0i32,
    );
    b.append(SqlInfo::SqlBatchUpdatesSupported, false);
    b.append(SqlInfo::SqlSavepointsSupported, false);
    b.append(SqlInfo::SqlNamedParametersSupported, false);
    b.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    b.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    Ok(b.build()?)
}

/// One XDBC type description with the common defaults filled in.
fn xdbc(
    name: &str,
    data_type: XdbcDataType,
    sql_data_type: XdbcDataType,
    column_size: Option<i32>,
) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type,
        column_size,
        literal_prefix: None,
        literal_suffix: None,
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: false,
        searchable: Searchable::Full,
        unsigned_attribute: None,
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.to_owned()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    }
}

fn numeric(name: &str, t: XdbcDataType, size: i32, radix: i32) -> XdbcTypeInfo {
    XdbcTypeInfo {
        unsigned_attribute: Some(false),
        num_prec_radix: Some(radix),
        ..xdbc(name, t, t, Some(size))
    }
}

fn datetime(name: &str, t: XdbcDataType, size: i32, sub: XdbcDatetimeSubcode) -> XdbcTypeInfo {
    XdbcTypeInfo {
        literal_prefix: Some(format!("{name} '")),
        literal_suffix: Some("'".to_owned()),
        datetime_subcode: Some(sub),
        ..xdbc(name, t, XdbcDataType::XdbcDatetime, Some(size))
    }
}

/// The SQL types sluice returns (DataFusion's SQL names for them).
pub(crate) fn xdbc_type_info_data() -> Result<XdbcTypeInfoData> {
    use XdbcDataType as X;
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(xdbc("BOOLEAN", X::XdbcBit, X::XdbcBit, Some(1)));
    b.append(numeric("TINYINT", X::XdbcTinyint, 3, 10));
    b.append(numeric("SMALLINT", X::XdbcSmallint, 5, 10));
    b.append(numeric("INTEGER", X::XdbcInteger, 10, 10));
    b.append(numeric("BIGINT", X::XdbcBigint, 19, 10));
    b.append(numeric("REAL", X::XdbcReal, 24, 2));
    b.append(numeric("DOUBLE", X::XdbcDouble, 53, 2));
    b.append(XdbcTypeInfo {
        create_params: Some(vec!["precision".to_owned(), "scale".to_owned()]),
        fixed_prec_scale: true,
        minimum_scale: Some(0),
        maximum_scale: Some(38),
        ..numeric("DECIMAL", X::XdbcDecimal, 38, 10)
    });
    b.append(XdbcTypeInfo {
        literal_prefix: Some("'".to_owned()),
        literal_suffix: Some("'".to_owned()),
        case_sensitive: true,
        ..xdbc("VARCHAR", X::XdbcVarchar, X::XdbcVarchar, Some(i32::MAX))
    });
    b.append(XdbcTypeInfo {
        searchable: Searchable::Basic,
        ..xdbc(
            "VARBINARY",
            X::XdbcVarbinary,
            X::XdbcVarbinary,
            Some(i32::MAX),
        )
    });
    b.append(datetime(
        "DATE",
        X::XdbcDate,
        10,
        XdbcDatetimeSubcode::XdbcSubcodeYear,
    ));
    b.append(datetime(
        "TIME",
        X::XdbcTime,
        18,
        XdbcDatetimeSubcode::XdbcSubcodeTime,
    ));
    b.append(datetime(
        "TIMESTAMP",
        X::XdbcTimestamp,
        29,
        XdbcDatetimeSubcode::XdbcSubcodeTimestamp,
    ));
    b.append(XdbcTypeInfo {
        searchable: Searchable::Basic,
        ..xdbc("INTERVAL", X::XdbcInterval, X::XdbcInterval, None)
    });
    Ok(b.build()?)
}

/// Schema of GetPrimaryKeys results (FlightSql.proto).
pub(crate) static PRIMARY_KEYS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ]))
});

/// Schema of GetExportedKeys / GetImportedKeys / GetCrossReference results
/// (FlightSql.proto).
pub(crate) static FOREIGN_KEYS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("pk_catalog_name", DataType::Utf8, true),
        Field::new("pk_db_schema_name", DataType::Utf8, true),
        Field::new("pk_table_name", DataType::Utf8, false),
        Field::new("pk_column_name", DataType::Utf8, false),
        Field::new("fk_catalog_name", DataType::Utf8, true),
        Field::new("fk_db_schema_name", DataType::Utf8, true),
        Field::new("fk_table_name", DataType::Utf8, false),
        Field::new("fk_column_name", DataType::Utf8, false),
        Field::new("key_sequence", DataType::Int32, false),
        Field::new("fk_key_name", DataType::Utf8, true),
        Field::new("pk_key_name", DataType::Utf8, true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ]))
});

#[cfg(test)]
mod tests {
    use arrow_flight::sql::CommandGetSqlInfo;

    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like(None, "anything"));
        assert!(like(Some("%"), ""));
        assert!(like(Some("%"), "orders"));
        assert!(like(Some("ord%"), "orders"));
        assert!(!like(Some("ord%"), "xorders"));
        assert!(like(Some("%der%"), "orders"));
        assert!(like(Some("o_ders"), "orders"));
        assert!(!like(Some("o_ders"), "oders"));
        assert!(like(Some("a%b%c"), "aXXbYYbZc"));
        assert!(!like(Some("a%b%c"), "aXXbYYbZ"));
        assert!(like(Some("sales\\_2024"), "sales_2024"));
        assert!(!like(Some("sales\\_2024"), "salesX2024"));
        assert!(!like(Some("Orders"), "orders"));
        assert!(like(Some(""), ""));
        assert!(!like(Some(""), "a"));
        assert!(like(Some("%%_"), "x"));
    }

    #[test]
    fn static_metadata_builds() {
        let info = sql_info_data("sluice", "0.1.0").unwrap();
        let batch = CommandGetSqlInfo {
            info: vec![SqlInfo::FlightSqlServerReadOnly as u32],
        }
        .into_builder(&info)
        .build()
        .unwrap();
        assert_eq!(batch.num_rows(), 1);
        let all = CommandGetSqlInfo { info: vec![] }
            .into_builder(&info)
            .build()
            .unwrap();
        assert!(all.num_rows() > 80, "{}", all.num_rows());
        let xdbc = xdbc_type_info_data().unwrap();
        assert!(xdbc.record_batch(None).unwrap().num_rows() >= 10);
        let tt = table_types(CommandGetTableTypes {}).unwrap();
        assert_eq!(tt.num_rows(), TABLE_TYPES.len());
    }
}
