//! The command line.
//!
//! Machine-readable output (secrets, JSON) goes to stdout; everything meant
//! for a person (context, warnings, logs) goes to stderr, so
//! `SECRET=$(sluice init --config sluice.toml)` just works.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};

use crate::admin;
use sluice_connectors::location::redact_url;

use crate::config::Config;
use crate::demo::DemoArgs;
use crate::error::{Error, Result};
use crate::logging::{self, LogFormat};
use crate::serve;
use sluice_planner::token::{TokenRecord, TokenSpec};

/// sluice: a token-scoped SQL gateway (Arrow Flight SQL over Iceberg).
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Cli {
    /// Log line format on stderr: `text` or `json`. Overrides `[log] format`.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SLUICE__LOG__FORMAT",
        ignore_case = true
    )]
    pub log_format: Option<LogFormat>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory and the token store, run migrations and
    /// create the first admin token. Prints only its secret on stdout.
    Init(InitArgs),
    /// Serve Flight SQL (`[server] flight_addr`) and the admin HTTP API
    /// (`[server] http_addr`) until SIGINT or SIGTERM.
    Serve(ConfigArg),
    /// Manage tokens directly in the store (no running server needed).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Build a demo Iceberg warehouse, a config, an admin token and two
    /// restricted tokens in a directory, print client snippets, then serve.
    Demo(DemoArgs),
    /// Export a query's governed result as Parquet through a running
    /// gateway (`POST /v1/exports`), with a progress bar; Ctrl-C cancels.
    Export(crate::export_cli::ExportArgs),
    /// Federation peers (receiver side): import share profiles, list,
    /// remove. Works on the store; running gateways pick changes up within
    /// `[federation] sync_interval`.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// TLS certificates for the Flight SQL port and for peers (generated
    /// in-process with rcgen).
    #[command(subcommand)]
    Certs(CertsCommand),
}

/// `sluice peer …`.
#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Import a provider's share profile (JSON file, `-` = stdin) as peer
    /// NAME: its tables appear as catalog NAME.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The peer's name (the catalog its tables appear in).
        #[arg(long)]
        name: String,
        /// The share profile the provider gave you.
        #[arg(long)]
        profile: PathBuf,
        /// The provider's catalog to mirror.
        #[arg(long, default_value = "lake")]
        remote_catalog: String,
        /// PEM client certificate presented to the provider (mTLS).
        #[arg(long, requires = "client_key")]
        client_cert: Option<PathBuf>,
        /// PEM key of --client-cert (sealed in the store).
        #[arg(long, requires = "client_cert")]
        client_key: Option<PathBuf>,
        /// Recorded as `imported_by`.
        #[arg(long, default_value = "cli")]
        imported_by: String,
    },
    /// List imported peers (never secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a peer (by name or id) and its sealed secrets.
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        /// Name or id.
        peer: String,
    },
}

/// `sluice certs …`.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a CA (`ca.pem`, `ca.key`; reused when both exist), a server
    /// certificate for --hosts (`server.pem`, `server.key`) and a client
    /// certificate per --client NAME (`NAME.pem`, `NAME.key`) into --dir.
    Create {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Server names and addresses, comma-separated (no server
        /// certificate when empty).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
        /// A client certificate of this name (repeatable).
        #[arg(long)]
        client: Vec<String>,
    },
}

/// The config file option shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Path of the TOML config file (see sluice.example.toml). Environment
    /// variables `SLUICE__SECTION__KEY` override its keys.
    #[arg(
        long,
        short = 'c',
        env = "SLUICE_CONFIG",
        default_value = "sluice.toml"
    )]
    pub config: PathBuf,
}

/// `sluice init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Create another admin token even if the store already has an active one.
    #[arg(long)]
    pub force_new_admin: bool,
    /// Name of the admin token.
    #[arg(long, default_value = "admin")]
    pub name: String,
}

/// `sluice token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token from a JSON token document (validated against the
    /// catalogs). Prints `{"id":…,"secret":…}` on stdout.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// The token document (`-` reads stdin). Same format as `POST /v1/tokens`.
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Recorded as the token's `created_by`.
        #[arg(long, default_value = "cli")]
        created_by: String,
    },
    /// List every token (never secrets).
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one token as JSON (never its secret).
    Show {
        #[command(flatten)]
        config: ConfigArg,
        /// The token's id.
        id: String,
    },
    /// Print a share token's profile (JSON) on stdout, exactly once: its
    /// secret is generated now. Hand it to the partner over a safe channel.
    Download {
        #[command(flatten)]
        config: ConfigArg,
        /// The share token's id.
        id: String,
    },
    /// Revoke a token; takes effect at its next request on every replica.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        /// The token's id.
        id: String,
        /// Allow revoking the last active admin token (`serve` will then
        /// refuse to start until `sluice init --force-new-admin`).
        #[arg(long)]
        force: bool,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(args) => {
            let config = load(&args.config, cli.log_format)?;
            init(&config, &args).await
        }
        Command::Serve(args) => {
            let config = load(&args, cli.log_format)?;
            tracing::info!(config = %args.config.display(), "starting");
            serve::serve(&config).await
        }
        Command::Token(cmd) => token(cmd, cli.log_format).await,
        Command::Demo(args) => {
            logging::init(cli.log_format.unwrap_or_default(), None, None);
            crate::demo::run(&args).await
        }
        Command::Export(args) => crate::export_cli::run(&args).await,
        Command::Peer(cmd) => peer(cmd, cli.log_format).await,
        Command::Certs(CertsCommand::Create { dir, hosts, client }) => {
            let created = crate::certs::create(&dir, &hosts, &client)?;
            if created.reused_ca {
                eprintln!("sluice: reused the CA in {}", dir.display());
            }
            for f in created.files {
                println!("{}", dir.join(f).display());
            }
            Ok(())
        }
    }
}

/// Loads the config and installs logging (CLI format > config format).
fn load(arg: &ConfigArg, log_format: Option<LogFormat>) -> Result<Config> {
    let config = Config::load(&arg.config)?;
    logging::init(
        log_format.unwrap_or(config.log.format),
        config.log.filter.as_deref(),
        Some(&config.tracing),
    );
    tracing::debug!(?config, "configuration loaded");
    Ok(config)
}

async fn init(config: &Config, args: &InitArgs) -> Result<()> {
    let store = config.open_store().await?;
    store.ticket_key().await?;
    let admins = store.count_active_admins(Utc::now()).await?;
    if admins > 0 && !args.force_new_admin {
        return Err(Error::Refused(format!(
            "the store already has {admins} active admin token(s); \
             use --force-new-admin to create another"
        )));
    }
    let created = store
        .create_token(
            &TokenSpec::admin(&args.name, config.policy.default_row_limit),
            "init",
            config.policy.default_row_limit,
        )
        .await?;
    eprintln!(
        "sluice: initialised {} (store {}); created admin token {} '{}'.\n\
         sluice: its secret is printed below and shown only once: keep it safe.",
        config.server.data_dir.display(),
        redact_url(config.store.url()),
        created.id,
        args.name
    );
    println!("{}", created.secret);
    store.close().await;
    Ok(())
}

async fn token(cmd: TokenCommand, log_format: Option<LogFormat>) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            config,
            file,
            created_by,
        } => {
            let cfg = load(&config, log_format)?;
            let body = if file.as_os_str() == "-" {
                let mut s = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut s)
                    .map_err(Error::io("<stdin>"))?;
                s
            } else {
                std::fs::read(&file).map_err(Error::io(&file))?
            };
            let spec = TokenSpec::from_json(&body).map_err(|e| Error::InvalidToken(vec![e]))?;
            let store = cfg.open_store().await?;
            let governor = crate::serve::load_governor(&cfg).await?;
            let created = admin::create_token(
                &store,
                &governor,
                &spec,
                &created_by,
                cfg.policy.default_row_limit,
            )
            .await?;
            if spec.token_type == sluice_planner::TokenType::Share {
                // The secret is generated by `sluice token download`.
                print_json(&sluice_planner::token::CreatedShare::new(
                    &created.id,
                    &spec.name,
                ))?;
            } else {
                print_json(&created)?;
            }
            store.close().await;
        }
        TokenCommand::List { config, json } => {
            let cfg = load(&config, log_format)?;
            let store = cfg.open_store().await?;
            let tokens = store.list_tokens().await?;
            if json {
                print_json(&tokens)?;
            } else {
                print_table(&tokens)?;
            }
            store.close().await;
        }
        TokenCommand::Show { config, id } => {
            let cfg = load(&config, log_format)?;
            let store = cfg.open_store().await?;
            let record = store
                .get_token(&id)
                .await?
                .ok_or_else(|| Error::TokenNotFound(id.clone()))?;
            print_json(&serde_json::json!({ "status": admin::status(&record), "token": record }))?;
            store.close().await;
        }
        TokenCommand::Download { config, id } => {
            let cfg = load(&config, log_format)?;
            let ca = match &cfg.server.tls {
                Some(t) => Some(crate::federation::profile_ca(t)?),
                None => None,
            };
            let store = cfg.open_store().await?;
            let outcome = store.download_share_profile(&id, Utc::now()).await?;
            store.close().await;
            match outcome {
                Ok((secret, record)) => {
                    print_json(&crate::federation::build_profile(
                        secret.expose(),
                        &record,
                        ca,
                    ))?;
                    eprintln!(
                        "sluice: the profile above holds the share token's secret and is shown only once"
                    );
                }
                Err(crate::store::federation::DownloadRefusal::NotFound) => {
                    return Err(Error::TokenNotFound(id));
                }
                Err(crate::store::federation::DownloadRefusal::NotShare) => {
                    return Err(Error::Refused(format!("token {id} is not a share token")));
                }
                Err(crate::store::federation::DownloadRefusal::Gone(why)) => {
                    return Err(Error::Refused(why.to_string()));
                }
            }
        }
        TokenCommand::Revoke { config, id, force } => {
            let cfg = load(&config, log_format)?;
            let store = cfg.open_store().await?;
            let record = admin::revoke_token(&store, &id, force).await?;
            eprintln!("sluice: token {} '{}' revoked", record.id, record.name);
            print_json(&record)?;
            store.close().await;
        }
    }
    Ok(())
}

async fn peer(cmd: PeerCommand, log_format: Option<LogFormat>) -> Result<()> {
    use crate::federation::{AcceptError, AcceptRequest, PeerView};
    let config = match &cmd {
        PeerCommand::Import { config, .. }
        | PeerCommand::List { config, .. }
        | PeerCommand::Remove { config, .. } => config.clone(),
    };
    let cfg = load(&config, log_format)?;
    let store = cfg.open_store().await?;
    match cmd {
        PeerCommand::Import {
            name,
            profile,
            remote_catalog,
            client_cert,
            client_key,
            imported_by,
            ..
        } => {
            let text = if profile.as_os_str() == "-" {
                let mut s = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut s)
                    .map_err(Error::io("<stdin>"))?;
                s
            } else {
                std::fs::read(&profile).map_err(Error::io(&profile))?
            };
            let profile = serde_json::from_slice(&text).map_err(|e| {
                Error::Refused(format!("{}: not a share profile: {e}", profile.display()))
            })?;
            let read = |p: &Option<PathBuf>| -> Result<Option<String>> {
                p.as_ref()
                    .map(|p| std::fs::read_to_string(p).map_err(Error::io(p)))
                    .transpose()
            };
            let key = crate::seal::SealKey::load(
                cfg.federation.seal_key.as_ref().map(|k| k.expose()),
                &cfg.server.data_dir,
            )?;
            let local: Vec<String> = cfg.catalogs.keys().cloned().collect();
            let request = AcceptRequest {
                name,
                profile,
                remote_catalog: Some(remote_catalog),
                client_cert: read(&client_cert)?,
                client_key: read(&client_key)?,
            };
            let row = crate::federation::accept(&store, &key, &local, request, &imported_by)
                .await
                .map_err(|e| match e {
                    AcceptError::Invalid(m) | AcceptError::Taken(m) => Error::Refused(m),
                    AcceptError::Store(e) => e,
                })?;
            eprintln!(
                "sluice: peer '{}' imported; running gateways mount it within [federation] sync_interval",
                row.owner_name
            );
            print_json(&PeerView::of(&row, None))?;
        }
        PeerCommand::List { json, .. } => {
            let rows = store.list_external_tokens().await?;
            let views: Vec<PeerView> = rows.iter().map(|r| PeerView::of(r, None)).collect();
            if json {
                print_json(&views)?;
            } else {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{:<20} {:<36} {:<10} ENDPOINT", "NAME", "ID", "STATE");
                for v in &views {
                    let state = if v.state == "revoked" {
                        "revoked"
                    } else {
                        "active"
                    };
                    let _ = writeln!(
                        out,
                        "{:<20} {:<36} {:<10} {}",
                        v.name, v.id, state, v.endpoint
                    );
                }
            }
        }
        PeerCommand::Remove { peer, .. } => match store.delete_external_token(&peer).await? {
            Some(row) => eprintln!("sluice: peer '{}' removed", row.owner_name),
            None => {
                store.close().await;
                return Err(Error::Refused(format!("peer '{peer}' not found")));
            }
        },
    }
    store.close().await;
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::Refused(e.to_string()))?;
    println!("{s}");
    Ok(())
}

fn print_table(tokens: &[TokenRecord]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let w = tokens
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let io = Error::io("<stdout>");
    let mut lines = format!(
        "{:<36}  {:<w$}  {:<6}  {:<5}  {:<7}  EXPIRES\n",
        "ID", "NAME", "TYPE", "ADMIN", "STATUS"
    );
    for t in tokens {
        lines.push_str(&format!(
            "{:<36}  {:<w$}  {:<6}  {:<5}  {:<7}  {}\n",
            t.id,
            t.name,
            t.token_type.as_str(),
            if t.admin { "yes" } else { "no" },
            admin::status(t),
            t.expires_at
                .map(|e| e.to_rfc3339())
                .unwrap_or_else(|| "never".into()),
        ));
    }
    out.write_all(lines.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_commands() {
        let cli = Cli::try_parse_from([
            "sluice", "token", "create", "--config", "x.toml", "--file", "t.json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Token(TokenCommand::Create { .. })
        ));
        let cli = Cli::try_parse_from([
            "sluice",
            "--log-format",
            "json",
            "serve",
            "--config",
            "x.toml",
        ])
        .unwrap();
        assert_eq!(cli.log_format, Some(LogFormat::Json));
        let cli = Cli::try_parse_from(["sluice", "demo", "--no-serve", "--rows", "10"]).unwrap();
        let Command::Demo(d) = cli.command else {
            panic!()
        };
        assert!(d.no_serve);
        assert_eq!(d.rows, 10);
        let cli =
            Cli::try_parse_from(["sluice", "init", "--config", "x.toml", "--force-new-admin"])
                .unwrap();
        let Command::Init(i) = cli.command else {
            panic!()
        };
        assert!(i.force_new_admin);
    }
}
