//! `sluice demo`: one command from nothing to a governed gateway.
//!
//! In `--dir` (default `./demo`) it builds (or reuses) a local Iceberg
//! warehouse with `sluice_connectors::build_demo_warehouse`, writes
//! `sluice.toml`, initialises the store under `sluice-data/`, creates an
//! admin token and two restricted tokens (`eu-analyst`, `auditor`), saves
//! their secrets to `tokens.json` (mode 0600), prints ready-to-paste client
//! snippets and serves. Re-running reuses the warehouse and, while they
//! still authenticate, the tokens.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};
use sluice_connectors::location::absolute;

use crate::admin;
use crate::auth::StoreAuthenticator;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::serve;
use crate::store::Store;
use sluice_planner::token::{CreatedToken, TokenSpec};

/// `sluice demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Directory for the warehouse, config, store and tokens.json; an
    /// existing demo directory is reused.
    #[arg(long, default_value = "./demo")]
    pub dir: PathBuf,
    /// Rows of the demo orders table (only when the warehouse is built).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Set everything up and print the snippets, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
    /// Flight SQL listen address written into the demo config.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub flight_addr: SocketAddr,
    /// Admin HTTP API listen address written into the demo config.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
}

/// The catalog name clients see in the demo.
const CATALOG: &str = "lake";

/// One saved demo token.
#[derive(Clone, Serialize, Deserialize)]
pub struct SavedToken {
    /// Token id.
    pub id: String,
    /// Token secret.
    pub secret: String,
}

impl std::fmt::Debug for SavedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The content of `tokens.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoTokens {
    /// Flight SQL endpoint for clients.
    pub flight_uri: String,
    /// Admin API base URL.
    pub http_url: String,
    /// Tokens by name: `admin`, `eu-analyst`, `auditor`.
    pub tokens: BTreeMap<String, SavedToken>,
}

/// Runs `sluice demo`.
pub async fn run(args: &DemoArgs) -> Result<()> {
    let cwd = std::env::current_dir().map_err(Error::io("."))?;
    let dir = absolute(&cwd, &args.dir);
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;

    eprintln!(
        "sluice demo: preparing the Iceberg warehouse in {} …",
        dir.display()
    );
    let wh = sluice_connectors::build_demo_warehouse(&dir.join("iceberg"), args.rows)
        .await
        .map_err(|e| Error::Catalog {
            name: CATALOG.into(),
            message: e.to_string(),
        })?;
    if wh.created {
        eprintln!("sluice demo: warehouse built ({} orders)", wh.orders_rows);
    } else {
        eprintln!("sluice demo: existing warehouse reused");
    }

    let config_path = dir.join("sluice.toml");
    let text = config_text(&dir, args, &wh.catalog_uri, &wh.warehouse, &wh.catalog_name);
    std::fs::write(&config_path, text).map_err(Error::io(&config_path))?;
    let config = Config::load(&config_path)?;

    let store = config.open_store().await?;
    store.ticket_key().await?;
    let governor = crate::serve::load_governor(&config).await?;
    let tokens_path = dir.join("tokens.json");
    let flight_uri = format!("grpc://{}", client_addr(config.server.flight_addr));
    let http_url = format!("http://{}", client_addr(config.server.http_addr));

    let tokens = match reuse_tokens(&tokens_path, &store).await {
        Some(mut saved) => {
            eprintln!(
                "sluice demo: reusing the tokens in {}",
                tokens_path.display()
            );
            saved.flight_uri = flight_uri;
            saved.http_url = http_url;
            saved
        }
        None => {
            let stale = read_tokens(&tokens_path);
            let limit = config.policy.default_row_limit;
            let mut tokens = BTreeMap::new();
            for (name, spec) in demo_specs(limit) {
                let CreatedToken { id, secret } =
                    admin::create_token(&store, &governor, &spec, "demo", limit).await?;
                tokens.insert(name.to_string(), SavedToken { id, secret });
            }
            // Tokens of an earlier run that no longer all work: revoke the rest.
            for old in stale.iter().flat_map(|t| t.tokens.values()) {
                if let Ok(Some(rec)) = store.get_token(&old.id).await
                    && rec.revoked_at.is_none()
                    && admin::revoke_token(&store, &rec.id, true).await.is_ok()
                {
                    eprintln!(
                        "sluice demo: revoked token {} '{}' of an earlier run",
                        rec.id, rec.name
                    );
                }
            }
            DemoTokens {
                flight_uri,
                http_url,
                tokens,
            }
        }
    };
    write_private(&tokens_path, &tokens)?;
    store.close().await;

    print_snippets(&dir, &config_path, &tokens_path, &tokens);
    if args.no_serve {
        return Ok(());
    }
    serve::serve(&config).await
}

/// The address a client on this machine should dial.
fn client_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

/// The saved tokens of an earlier run, if any.
fn read_tokens(path: &Path) -> Option<DemoTokens> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Saved tokens, if the file exists and every token still authenticates.
async fn reuse_tokens(path: &Path, store: &Store) -> Option<DemoTokens> {
    let saved = read_tokens(path)?;
    let auth = StoreAuthenticator::new(store.clone());
    for name in ["admin", "eu-analyst", "auditor"] {
        let t = saved.tokens.get(name)?;
        let rec = auth
            .authenticate_record(&t.secret, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), false)
            .await
            .ok()?;
        if rec.id != t.id {
            return None;
        }
    }
    Some(saved)
}

/// The demo's token documents.
fn demo_specs(default_row_limit: u64) -> Vec<(&'static str, TokenSpec)> {
    let parse = |json: &str| {
        TokenSpec::from_json(json.as_bytes()).expect("demo token documents are valid JSON")
    };
    vec![
        ("admin", TokenSpec::admin("demo-admin", default_row_limit)),
        (
            "eu-analyst",
            parse(
                r#"{
                "name": "eu-analyst",
                "attributes": {"region": "eu"},
                "max_sensitivity": 2,
                "row_limit": 1000,
                "grants": [
                    {"table": "lake.sales.orders",
                     "columns": ["order_id", "region", "customer_id", "customer_email", "amount", "created_at"],
                     "masks": {"customer_email": "hash"},
                     "allow_rules": ["region = token.region"]},
                    {"table": "lake.sales.customers"}
                ]}"#,
            ),
        ),
        (
            "auditor",
            parse(
                r#"{
                "name": "auditor",
                "max_sensitivity": 1,
                "grants": [{"table": "lake.sales.*"}]
                }"#,
            ),
        ),
    ]
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn config_text(
    dir: &Path,
    args: &DemoArgs,
    catalog_uri: &str,
    warehouse: &str,
    catalog_name: &str,
) -> String {
    format!(
        r#"# Generated by `sluice demo` (rewritten on every run). See sluice.example.toml.

[server]
flight_addr = {flight}
http_addr = {http}
data_dir = {data}

[policy]
default_row_limit = 10000
ticket_ttl_secs = 3600

[catalogs.{CATALOG}]
kind = "iceberg"
catalog = "sql"
catalog_name = {name}
uri = {uri}
warehouse = {wh}

[catalogs.{CATALOG}.tables."sales.orders"]
sensitivity_column = "sensitivity"
attachment_columns = ["attachment"]
vector_columns = ["embedding"]
"#,
        flight = toml_str(&args.flight_addr.to_string()),
        http = toml_str(&args.http_addr.to_string()),
        data = toml_str(&dir.join("sluice-data").display().to_string()),
        name = toml_str(catalog_name),
        uri = toml_str(catalog_uri),
        wh = toml_str(warehouse),
    )
}

/// Writes `value` as JSON readable only by the owner.
fn write_private<T: Serialize>(path: &PathBuf, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::Refused(e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        opts.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(Error::io(path))?;
        }
    }
    let mut f = opts.open(path).map_err(Error::io(path))?;
    f.write_all(&json).map_err(Error::io(path))
}

fn print_snippets(dir: &Path, config: &Path, tokens_path: &Path, t: &DemoTokens) {
    let secret = |name: &str| t.tokens.get(name).map(|s| s.secret.as_str()).unwrap_or("?");
    let id = |name: &str| t.tokens.get(name).map(|s| s.id.as_str()).unwrap_or("?");
    let flight = &t.flight_uri;
    let http = &t.http_url;
    println!(
        r#"
sluice demo ready in {dir}
  config      {config}
  tokens      {tokens}   (admin, eu-analyst, auditor)
  Flight SQL  {flight}
  admin API   {http}

eu-analyst sees lake.sales.orders (6 columns, customer_email hashed, only
region = 'eu', at most 1000 rows) and lake.sales.customers; auditor sees
every lake.sales table with rows of sensitivity <= 1; neither sees lake.hr.

# --- ADBC (pip install adbc-driver-flightsql pyarrow) -----------------------
import adbc_driver_flightsql.dbapi as flight_sql

conn = flight_sql.connect(
    "{flight}",
    db_kwargs={{"adbc.flight.sql.authorization_header": "Bearer {analyst}"}},
)
cur = conn.cursor()
cur.execute("SELECT region, count(*) AS orders, sum(amount) AS total FROM lake.sales.orders GROUP BY region")
print(cur.fetch_arrow_table())

# --- pyarrow.flight (pip install pyarrow) -----------------------------------
import pyarrow.flight as fl

def flight_sql_command(sql):
    # google.protobuf.Any wrapping arrow.flight.protocol.sql.CommandStatementQuery
    def field(number, payload):
        out, n = bytearray([(number << 3) | 2]), len(payload)
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out) + payload
    query = field(1, sql.encode())
    return field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery") + field(2, query)

client = fl.FlightClient("{flight}")
options = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer {auditor}")])
info = client.get_flight_info(
    fl.FlightDescriptor.for_command(flight_sql_command("SELECT * FROM lake.sales.customers LIMIT 5")), options
)
print(client.do_get(info.endpoints[0].ticket, options).read_all())

# --- admin API (curl) --------------------------------------------------------
curl -s -H "Authorization: Bearer {admin}" {http}/v1/tokens
curl -s -H "Authorization: Bearer {analyst}" {http}/v1/tokens/{analyst_id}/introspect
"#,
        dir = dir.display(),
        config = config.display(),
        tokens = tokens_path.display(),
        analyst = secret("eu-analyst"),
        auditor = secret("auditor"),
        admin = secret("admin"),
        analyst_id = id("eu-analyst"),
    );
}

#[cfg(test)]
mod tests {
    use figment::providers::Format as _;

    use super::*;

    #[test]
    fn demo_documents_and_config_parse() {
        let specs = demo_specs(10_000);
        assert_eq!(specs.len(), 3);
        let now = chrono::Utc::now();
        for (_, s) in &specs {
            assert!(s.check(now).is_empty());
        }
        let args = DemoArgs {
            dir: "d".into(),
            rows: 1,
            no_serve: true,
            flight_addr: "0.0.0.0:50051".parse().unwrap(),
            http_addr: "127.0.0.1:8080".parse().unwrap(),
        };
        let text = config_text(
            Path::new("/tmp/d \"q\""),
            &args,
            "sqlite:/tmp/d/iceberg/catalog.db",
            "file:///tmp/d/iceberg/warehouse",
            "lake",
        );
        let cfg = Config::from_figment(figment::Figment::from(figment::providers::Toml::string(
            &text,
        )))
        .unwrap()
        .resolve(Path::new("/"))
        .unwrap();
        assert_eq!(cfg.server.data_dir, Path::new("/tmp/d \"q\"/sluice-data"));
        match &cfg.catalogs["lake"] {
            sluice_connectors::CatalogConfig::Iceberg(lake) => {
                assert_eq!(lake.uri, "sqlite:///tmp/d/iceberg/catalog.db")
            }
            other => panic!("the demo lake is not an Iceberg catalog: {other:?}"),
        }
        assert_eq!(
            client_addr(cfg.server.flight_addr).to_string(),
            "127.0.0.1:50051"
        );
    }
}
