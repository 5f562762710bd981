//! Probes of the planner's shared ingress and the guarantees every
//! frontend builds on: the one credential parser and `authenticate` (which
//! schemes, uniform failures, charging, what is noted in the audit facts
//! and when), typed errors below and outside secure views (what their
//! client messages may carry), the scoped session (dialect hook, peers,
//! `system.runtime`) and the audit facts a plan records.

use std::any::Any;
use std::sync::{Arc, Mutex};

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use futures::TryStreamExt;
use sluice_planner::audit::{self, AuditHandle};
use sluice_planner::auth::{Charge, Schemes, authenticate, secret_from_authorization};
use sluice_planner::connector::CatalogGate;
use sluice_planner::{
    AuthFailure, AuthFailureKind, CatalogEntry, Error, ErrorKind, Governor, SessionOptions,
    SqlDialect, TokenScope,
};
use sluice_test_support::StaticAuthenticator;

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

const GOOD: &str = "good-secret";
const SHARE: &str = "share-secret";

/// `GOOD` (a public token) and `SHARE` (a partner's share token); the
/// authenticator records every secret it is asked about.
fn recording() -> StaticAuthenticator {
    StaticAuthenticator::new([
        (
            GOOD,
            sluice_test_support::scope(serde_json::json!({
                "token_id": "t-good", "name": "good", "grants": []
            })),
        ),
        (
            SHARE,
            sluice_test_support::scope(serde_json::json!({
                "token_id": "t-share", "name": "partner-gw", "token_type": "share",
                "grants": []
            })),
        ),
    ])
}

/// `authenticate` under a fresh audit handle: its result and the facts it
/// noted.
async fn run(
    auth: &StaticAuthenticator,
    header: Option<&str>,
    schemes: Schemes,
    charge: Charge,
    admit: impl FnOnce(&TokenScope) -> Result<(), AuthFailureKind>,
) -> (Result<Arc<TokenScope>, AuthFailure>, audit::AuditFacts) {
    let handle = AuditHandle::new();
    let result = audit::with_handle(
        handle.clone(),
        authenticate(auth, header, schemes, None, charge, admit),
    )
    .await
    .map(|(_secret, scope)| scope);
    (result, handle.snapshot())
}

fn basic(user_password: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_password))
}

/// The admin API and every Flight call but the handshake accept Bearer
/// only: a valid secret sent as Basic is refused like any bad credential,
/// the authenticator never sees it, and nothing is noted.
#[tokio::test]
async fn basic_credentials_are_refused_where_only_bearer_is_accepted() {
    for header in [
        basic(&format!("user:{GOOD}")),
        format!("basic {}", STANDARD_NO_PAD.encode(format!("user:{GOOD}"))),
        format!("  BASIC   {}  ", STANDARD.encode(format!(":{GOOD}"))),
    ] {
        let auth = recording();
        let (result, facts) = run(
            &auth,
            Some(&header),
            Schemes::Bearer,
            Charge::Request,
            |_| Ok(()),
        )
        .await;
        let failure = result.expect_err(&header);
        assert_eq!(failure.to_string(), "authentication failed", "{header}");
        assert!(failure.retry_after.is_none());
        assert!(
            auth.calls().iter().all(|(s, _)| s != GOOD),
            "{header}: the authenticator saw the secret: {:?}",
            auth.calls()
        );
        assert!(facts.token_id.is_none(), "{header}: {facts:?}");
        assert!(
            matches!(
                secret_from_authorization(Some(&header), Schemes::Bearer),
                Err(AuthFailureKind::Malformed)
            ),
            "{header}"
        );
    }
}

/// Where Basic is accepted (Flight's handshake, Trino) the password is the
/// secret and the user name is ignored.
#[tokio::test]
async fn basic_credentials_carry_the_secret_as_password_where_accepted() {
    for header in [
        basic(&format!("anyone:{GOOD}")),
        format!("Basic {}", STANDARD_NO_PAD.encode(format!("x:{GOOD}"))),
        format!("Bearer {GOOD}"),
    ] {
        let auth = recording();
        let (result, facts) = run(
            &auth,
            Some(&header),
            Schemes::BearerOrBasic,
            Charge::Request,
            |_| Ok(()),
        )
        .await;
        assert_eq!(result.expect(&header).token_id, "t-good");
        assert_eq!(facts.token_id.as_deref(), Some("t-good"));
        assert!(facts.peer.is_none(), "a public token is no partner");
    }
    // The user part is never taken as the secret.
    let auth = recording();
    let (result, _) = run(
        &auth,
        Some(&basic(&format!("{GOOD}:wrong"))),
        Schemes::BearerOrBasic,
        Charge::Request,
        |_| Ok(()),
    )
    .await;
    assert!(result.is_err());
}

/// Missing and malformed credentials take the authenticator's path (so
/// they are counted and throttled like unknown ones) with an empty secret,
/// and answer exactly like an unknown secret.
#[tokio::test]
async fn malformed_credentials_fail_through_the_authenticator_like_unknown_ones() {
    let unknown = {
        let auth = recording();
        run(
            &auth,
            Some("Bearer nope"),
            Schemes::BearerOrBasic,
            Charge::Request,
            |_| Ok(()),
        )
        .await
        .0
        .unwrap_err()
        .to_string()
    };
    let cases: Vec<Option<String>> = vec![
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer    ".into()),
        Some("Token abc".into()),
        Some(format!("Digest {GOOD}")),
        Some("Basic !!!".into()),
        Some(basic("no-colon")),
        Some(basic("user:")),
        Some(format!(
            "Basic {}",
            STANDARD.encode([0xff, 0xfe, b':', b'x'])
        )),
    ];
    for header in cases {
        let auth = recording();
        let (result, facts) = run(
            &auth,
            header.as_deref(),
            Schemes::BearerOrBasic,
            Charge::Request,
            |_| Ok(()),
        )
        .await;
        let failure = result.expect_err(&format!("{header:?}"));
        assert_eq!(failure.to_string(), unknown, "{header:?}");
        assert_eq!(
            auth.calls(),
            vec![(String::new(), true)],
            "{header:?}: exactly one authenticator call with an empty secret"
        );
        assert!(facts.token_id.is_none());
    }
}

/// Every kind of credential failure reads the same; only rate limits say
/// more (when to retry).
#[test]
fn every_credential_failure_reads_the_same() {
    for kind in [
        AuthFailureKind::Malformed,
        AuthFailureKind::Unknown,
        AuthFailureKind::Expired,
        AuthFailureKind::Revoked,
        AuthFailureKind::Audience,
        AuthFailureKind::Unavailable,
    ] {
        assert_eq!(
            AuthFailure::new(kind).to_string(),
            "authentication failed",
            "{kind:?}"
        );
    }
}

/// A frontend's refusal of an authenticated token (Flight: a share token
/// without a client certificate) is an ordinary authentication failure,
/// and the token is not noted in the audit facts (nor as a partner).
#[tokio::test]
async fn a_refused_admission_notes_no_token_in_the_audit_facts() {
    let auth = recording();
    let (result, facts) = run(
        &auth,
        Some(&format!("Bearer {SHARE}")),
        Schemes::Bearer,
        Charge::Request,
        |scope| {
            assert_eq!(scope.token_id, "t-share");
            Err(AuthFailureKind::Audience)
        },
    )
    .await;
    let failure = result.unwrap_err();
    assert_eq!(failure.kind, AuthFailureKind::Audience);
    assert_eq!(failure.to_string(), "authentication failed");
    assert!(failure.retry_after.is_none());
    assert!(facts.token_id.is_none(), "{facts:?}");
    assert!(facts.peer.is_none(), "{facts:?}");
}

/// An admitted share token is noted with the partner's name.
#[tokio::test]
async fn an_admitted_share_token_is_noted_with_its_partner() {
    let auth = recording();
    let (result, facts) = run(
        &auth,
        Some(&format!("Bearer {SHARE}")),
        Schemes::Bearer,
        Charge::Request,
        |_| Ok(()),
    )
    .await;
    assert_eq!(result.unwrap().token_id, "t-share");
    assert_eq!(facts.token_id.as_deref(), Some("t-share"));
    assert_eq!(facts.peer.as_deref(), Some("partner-gw"));
}

/// Only a continuation goes uncharged; every request is charged once.
#[tokio::test]
async fn only_a_continuation_goes_uncharged() {
    let auth = recording();
    let header = format!("Bearer {GOOD}");
    run(
        &auth,
        Some(&header),
        Schemes::BearerOrBasic,
        Charge::Request,
        |_| Ok(()),
    )
    .await
    .0
    .unwrap();
    run(
        &auth,
        Some(&header),
        Schemes::BearerOrBasic,
        Charge::Continuation,
        |_| Ok(()),
    )
    .await
    .0
    .unwrap();
    assert_eq!(
        auth.calls(),
        vec![(GOOD.to_string(), true), (GOOD.to_string(), false)]
    );
}

/// The secret read from a header never shows in `Debug`.
#[test]
fn a_presented_secret_never_shows_in_debug() {
    for (header, schemes) in [
        (format!("Bearer {GOOD}"), Schemes::Bearer),
        (basic(&format!("u:{GOOD}")), Schemes::BearerOrBasic),
    ] {
        let s = secret_from_authorization(Some(&header), schemes).unwrap();
        assert_eq!(s.expose(), GOOD);
        assert!(!format!("{s:?}").contains(GOOD));
    }
}

// ---------------------------------------------------------------------------
// Errors below and outside secure views
// ---------------------------------------------------------------------------

const LEAK: &str =
    "s3://corp-warehouse/hr/salaries/ceo=jane-doe/00000.parquet: credentials AKIAEXAMPLE";

fn leaks(text: &str) -> bool {
    ["s3://", "jane-doe", "AKIA", "top-secret"]
        .iter()
        .any(|n| text.contains(n))
}

/// A scan that fails with a connector's message (paths, partition values,
/// credentials).
#[derive(Debug)]
struct FailingScan(SchemaRef);

impl PartitionStream for FailingScan {
    fn schema(&self) -> &SchemaRef {
        &self.0
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let stream = futures::stream::once(async {
            Err(DataFusionError::External(Box::new(std::io::Error::other(
                LEAK,
            ))))
        });
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.0), stream))
    }
}

/// A schema whose table lookup fails the way a catalog backend does.
#[derive(Debug)]
struct FailingLookup;

#[async_trait]
impl SchemaProvider for FailingLookup {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        vec!["t".into()]
    }

    async fn table(
        &self,
        _name: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::External(Box::new(std::io::Error::other(
            LEAK,
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        name == "t"
    }
}

fn mem(schema: SchemaRef, cols: Vec<arrow::array::ArrayRef>) -> Arc<dyn TableProvider> {
    let batch = RecordBatch::try_new(Arc::clone(&schema), cols).unwrap();
    Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
}

/// `lake.s.broken` (its scan fails), `lake.s.accounts` (text tenant ids,
/// one of them not a number) and `lake.bad.t` (its lookup fails).
fn failing_governor() -> Governor {
    let n = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let s = MemorySchemaProvider::new();
    s.register_table(
        "broken".into(),
        Arc::new(StreamingTable::try_new(Arc::clone(&n), vec![Arc::new(FailingScan(n))]).unwrap()),
    )
    .unwrap();
    s.register_table(
        "accounts".into(),
        sluice_test_support::accounts_with_a_text_tenant(),
    )
    .unwrap();
    let catalog = MemoryCatalogProvider::new();
    catalog.register_schema("s", Arc::new(s)).unwrap();
    catalog
        .register_schema("bad", Arc::new(FailingLookup))
        .unwrap();
    let mut g = Governor::new().with_target_partitions(1);
    g.add_catalog(
        "lake",
        CatalogEntry {
            provider: Arc::new(catalog),
            tables: Default::default(),
        },
    );
    g
}

fn tenant_token() -> Arc<TokenScope> {
    sluice_test_support::scope(serde_json::json!({
        "token_id": "t-tenant", "name": "tenant",
        "grants": [
            {"table": "lake.s.accounts", "allow_rules": ["CAST(tenant AS BIGINT) = 1"]},
            {"table": "lake.s.broken"},
            {"table": "lake.bad.*"}
        ]
    }))
}

/// Plans and runs `sql`; the error if any.
async fn failure(g: &Governor, scope: &Arc<TokenScope>, sql: &str) -> Option<Error> {
    let plan = match g.plan(scope, sql).await {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    let stream = match plan.execute().await {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    let batches: Result<Vec<RecordBatch>, _> = stream.try_collect().await;
    batches.err().map(Error::DataFusion)
}

fn every_text(e: &Error) -> Vec<String> {
    vec![e.message(), e.bare_message(), e.to_string()]
}

/// A scan below a secure view that fails with a connector's message
/// reaches every client message as the secure view's own: the table,
/// nothing else.
#[tokio::test]
async fn a_scan_failure_below_a_secure_view_is_opaque_in_every_message() {
    let g = failing_governor();
    let e = failure(&g, &tenant_token(), "SELECT n FROM lake.s.broken")
        .await
        .expect("the scan fails");
    assert_eq!(e.kind(), ErrorKind::ReadFailed, "{e:?}");
    for text in every_text(&e) {
        assert!(!leaks(&text), "{text}");
        assert!(text.contains("lake.s.broken"), "{text}");
    }
    // Wrapped by whatever runs above it, it stays what it is.
    let Error::DataFusion(d) = e else {
        panic!("a DataFusion error")
    };
    let wrapped = Error::DataFusion(DataFusionError::Shared(Arc::new(d)).context("while joining"));
    assert_eq!(wrapped.kind(), ErrorKind::ReadFailed);
    for text in every_text(&wrapped) {
        assert!(!leaks(&text), "{text}");
    }
}

/// A row rule that fails on a hidden row (a tenant id that is not a
/// number) answers opaquely: the hidden value is in no client message.
#[tokio::test]
async fn a_row_rule_failing_on_a_hidden_row_is_opaque_in_every_message() {
    let g = failing_governor();
    for sql in [
        "SELECT id FROM lake.s.accounts",
        "SELECT count(*) FROM lake.s.accounts",
        "SELECT tenant FROM lake.s.accounts WHERE id > 0 ORDER BY tenant",
    ] {
        let e = failure(&g, &tenant_token(), sql)
            .await
            .expect("the rule fails on the hidden row");
        assert!(
            matches!(e.kind(), ErrorKind::ReadFailed),
            "{sql}: {:?} {e:?}",
            e.kind()
        );
        for text in every_text(&e) {
            assert!(!leaks(&text), "{sql}: {text}");
        }
    }
}

/// A cast that fails above the barrier quotes a value the token sees:
/// never a hidden row's, never a masked column's real value.
#[tokio::test]
async fn a_cast_failure_above_the_barrier_quotes_only_visible_values() {
    let g = sluice_test_support::governor();
    // eu sees only region 'eu' rows; hidden rows are 'us', 'apac', NULL.
    let eu = sluice_test_support::token("eu");
    for sql in [
        "SELECT order_id FROM lake.sales.orders WHERE CAST(region AS BIGINT) > 0",
        "SELECT CAST(region AS BIGINT) FROM lake.sales.orders",
        "SELECT CAST(customer_email AS BIGINT) FROM lake.sales.orders",
        "SELECT order_id FROM lake.sales.orders ORDER BY CAST(customer_email AS BIGINT)",
    ] {
        let e = failure(&g, &eu, sql).await.expect(sql);
        for text in every_text(&e) {
            assert!(
                !text.contains("'us'") && !text.contains("apac"),
                "{sql}: {text}"
            );
            assert!(!text.contains("@x.com"), "{sql}: {text}");
        }
    }
    // auditor sees emails masked partial(1,4).
    let auditor = sluice_test_support::token("auditor");
    let e = failure(
        &g,
        &auditor,
        "SELECT CAST(customer_email AS BIGINT) FROM lake.sales.orders",
    )
    .await
    .expect("the cast fails");
    for text in every_text(&e) {
        assert!(!text.contains("@x.com"), "{text}");
    }
}

/// A catalog backend failing outside any secure view (a table lookup
/// while planning) is a connector failure, whose detail (paths,
/// credentials) no client message carries.
#[tokio::test]
async fn a_lookup_failure_outside_a_secure_view_carries_no_internals_to_clients() {
    let g = failing_governor();
    let e = failure(&g, &tenant_token(), "SELECT * FROM lake.bad.t")
        .await
        .expect("the lookup fails");
    assert_eq!(e.kind(), ErrorKind::ConnectorFailed, "{e:?}");
    // `message()` is documented as "the message to show a client" and is
    // what the HTTP search and export answers use.
    assert!(!leaks(&e.message()), "message(): {}", e.message());
}

// ---------------------------------------------------------------------------
// Sessions: the dialect hook, peers, system.runtime
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Ready;

#[async_trait]
impl CatalogGate for Ready {
    async fn ready(&self) -> datafusion::error::Result<()> {
        Ok(())
    }
}

/// A governor with `lake` (the test catalog) and a peer mounted as `aaa`,
/// which sorts first.
fn governor_with_peer() -> Governor {
    let g = sluice_test_support::governor();
    g.mount_gated(
        "aaa",
        CatalogEntry {
            provider: sluice_test_support::raw_catalog(),
            tables: Default::default(),
        },
        Arc::new(Ready),
    );
    g
}

fn default_catalog(g: &Governor, scope: &Arc<TokenScope>) -> String {
    g.context(scope)
        .state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone()
}

/// A federation peer never becomes the catalog of unqualified names, even
/// when it sorts first or is the only catalog the token sees.
#[tokio::test]
async fn a_mounted_peer_never_becomes_the_default_catalog() {
    let g = governor_with_peer();
    let both = sluice_test_support::scope(serde_json::json!({
        "token_id": "t-both", "name": "both", "max_sensitivity": 9,
        "grants": [{"table": "aaa.*"}, {"table": "lake.*"}]
    }));
    assert_eq!(default_catalog(&g, &both), "lake");
    let peer_only = sluice_test_support::scope(serde_json::json!({
        "token_id": "t-peer", "name": "peer", "max_sensitivity": 9,
        "grants": [{"table": "aaa.*"}]
    }));
    assert_ne!(default_catalog(&g, &peer_only), "aaa");
    let e = g
        .plan(&peer_only, "SELECT * FROM sales.orders")
        .await
        .expect_err("an unqualified name never reaches the peer");
    assert!(matches!(e.kind(), ErrorKind::NotFound(_)), "{e:?}");
}

/// What a dialect is handed: the token's scoped catalogs only, and the
/// gateway's own tables only in admin sessions.
#[derive(Debug, Default)]
struct Spy {
    catalogs: Mutex<Vec<(String, Vec<String>)>>,
    runtime: Mutex<Vec<bool>>,
}

impl SqlDialect for Spy {
    fn catalog(&self, name: &str, scoped: Arc<dyn CatalogProvider>) -> Arc<dyn CatalogProvider> {
        self.catalogs
            .lock()
            .unwrap()
            .push((name.to_string(), scoped.schema_names()));
        scoped
    }

    fn system_catalog(
        &self,
        visible: Vec<(String, Arc<dyn CatalogProvider>)>,
        runtime: Option<Arc<dyn datafusion::catalog::SchemaProvider>>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.runtime.lock().unwrap().push(runtime.is_some());
        let names: Vec<String> = visible.iter().map(|(n, _)| n.clone()).collect();
        assert!(!names.contains(&"hidden".to_string()), "{names:?}");
        runtime.map(|r| {
            let c = MemoryCatalogProvider::new();
            let _ = c.register_schema(sluice_planner::RUNTIME_SCHEMA, r);
            Arc::new(c) as Arc<dyn CatalogProvider>
        })
    }
}

#[tokio::test]
async fn a_dialect_sees_only_scoped_catalogs_and_runtime_only_for_admins() {
    let one = || {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        mem(schema, vec![Arc::new(Int64Array::from(vec![7]))])
    };
    let mut g = sluice_test_support::governor().with_system_table("audit_log", one());
    g.add_catalog(
        "hidden",
        CatalogEntry {
            provider: sluice_test_support::raw_catalog(),
            tables: Default::default(),
        },
    );
    for name in ["eu", "nothing", "admin", "eu_ops"] {
        let scope = sluice_test_support::token(name);
        let spy = Arc::new(Spy::default());
        let options = SessionOptions {
            dialect: Arc::clone(&spy) as Arc<dyn SqlDialect>,
            ..SessionOptions::default()
        };
        let ctx = g.context_with(&scope, &options);
        let handed = spy.catalogs.lock().unwrap().clone();
        for (catalog, schemas) in &handed {
            assert!(
                scope.may_see_prefix(catalog),
                "{name}: handed {catalog}, which it may not see"
            );
            if name == "eu" {
                assert!(!schemas.contains(&"hr".to_string()), "{name}: {schemas:?}");
            }
        }
        let runtime = spy.runtime.lock().unwrap().clone();
        let is_admin = scope.is_admin();
        assert_eq!(runtime, vec![is_admin], "{name}");
        assert_eq!(
            ctx.catalog("system")
                .and_then(|c| c.schema(sluice_planner::RUNTIME_SCHEMA))
                .is_some(),
            is_admin,
            "{name}"
        );
        if !is_admin {
            assert!(ctx.catalog("hidden").is_none(), "{name}");
            let e = g
                .plan_with(
                    &scope,
                    "SELECT x FROM system.runtime.audit_log",
                    &options,
                    None,
                )
                .await
                .expect_err(name);
            assert!(matches!(e.kind(), ErrorKind::NotFound(_)), "{name}: {e:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Audit facts of a plan
// ---------------------------------------------------------------------------

/// The plan records what it reads in the request's audit facts, by
/// itself, and nothing secret: not the mask key, not the policy text.
#[tokio::test]
async fn a_plan_records_what_it_reads_and_nothing_secret() {
    let g = sluice_test_support::governor();
    let eu = sluice_test_support::token("eu");
    let handle = AuditHandle::new();
    let plan = audit::with_handle(
        handle.clone(),
        g.plan(
            &eu,
            "SELECT o.order_id, o.customer_email, c.name FROM lake.sales.orders o \
             JOIN lake.sales.customers c ON o.customer_id = c.customer_id",
        ),
    )
    .await
    .unwrap();
    let facts = handle.snapshot();
    assert_eq!(
        facts.tables,
        vec![
            "lake.sales.orders".to_string(),
            "lake.sales.customers".to_string()
        ]
    );
    assert!(
        facts
            .columns_masked
            .contains(&"lake.sales.orders.customer_email".to_string()),
        "{facts:?}"
    );
    assert!(facts.row_policy.contains_key("lake.sales.orders"));
    assert_eq!(facts.tables, plan.facts().receipt.tables);
    let dump = format!("{facts:?}");
    let key = String::from_utf8_lossy(sluice_test_support::MASK_KEY).to_string();
    assert!(!dump.contains(&key), "the mask key is in the audit facts");
    for policy in ["token.region", "10000", "max_sensitivity"] {
        assert!(!dump.contains(policy), "policy text {policy} in {dump}");
    }
    // A failed plan records no tables it did not read.
    let handle = AuditHandle::new();
    let _ = audit::with_handle(
        handle.clone(),
        g.plan(&eu, "SELECT * FROM lake.hr.salaries"),
    )
    .await
    .unwrap_err();
    assert!(handle.snapshot().tables.is_empty());
}

/// `vector_search` computes distances below the barrier but only on
/// visible rows: a hidden row whose vector has another length never makes
/// the search fail (a dimension error passes the barrier by design, so it
/// must only ever be about visible rows).
#[tokio::test]
async fn vector_distances_are_computed_on_visible_rows_only() {
    use arrow::array::{Float32Builder, ListBuilder};
    let mut emb = ListBuilder::new(Float32Builder::new());
    for v in [vec![1.0f32, 2.0, 3.0], vec![9.0, 9.0], vec![1.5, 2.5, 3.5]] {
        for x in v {
            emb.values().append_value(x);
        }
        emb.append(true);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, true),
        Field::new(
            "emb",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            true,
        ),
    ]));
    let table = mem(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["eu", "us", "eu"])),
            Arc::new(emb.finish()),
        ],
    );
    let g = sluice_test_support::catalog::governor_of(
        "lake",
        sluice_test_support::catalog::memory_catalog([("s", vec![("vecs", table)])]),
    );
    let seeker = sluice_test_support::scope(serde_json::json!({
        "token_id": "t-seeker", "name": "seeker", "attributes": {"region": "eu"},
        "grants": [{"table": "lake.s.vecs", "allow_rules": ["region = token.region"]}]
    }));
    for sql in [
        "SELECT id FROM vector_search('lake.s.vecs', [1.0, 2.0, 3.0], 5) ORDER BY id",
        "SELECT id FROM vector_search('lake.s.vecs', [1.0, 2.0, 3.0], 5, 'emb', 'l2') ORDER BY id",
    ] {
        let plan = g.plan(&seeker, sql).await.expect(sql);
        let batches: Vec<RecordBatch> = plan
            .execute()
            .await
            .expect(sql)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{sql}: a hidden row made the search fail: {e}"));
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ids, vec![1, 3], "{sql}");
    }
}
