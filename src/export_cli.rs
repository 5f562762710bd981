//! `sluice export`: submits an export job to a running gateway
//! (`POST /v1/exports`), shows its progress until it ends, then prints the
//! manifest's summary. Ctrl-C cancels the job.

use std::io::IsTerminal as _;
use std::time::Duration;

use clap::Args;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use sluice_planner::units::parse_bytes;

/// `sluice export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The statement (any query the token may run).
    #[arg(long)]
    pub sql: String,
    /// Destination: `s3://bucket/prefix` or `file:///path` (a directory
    /// under the gateway's `[exports] root`); must be empty.
    #[arg(long = "to")]
    pub to: String,
    /// The gateway's HTTP address.
    #[arg(long, env = "SLUICE_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The token's secret.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Parquet compression: zstd (default), snappy, gzip, lz4 or none.
    #[arg(long)]
    pub compression: Option<String>,
    /// Size limit of each file (`"256MiB"`, or bytes).
    #[arg(long, value_parser = parse_bytes)]
    pub max_file_bytes: Option<u64>,
    /// Print the job id and return without waiting.
    #[arg(long)]
    pub no_wait: bool,
}

fn failed(message: String) -> Error {
    Error::Refused(message)
}

/// What the gateway answered: the JSON body, or an error naming the status.
async fn answer(resp: reqwest::Response) -> Result<Value> {
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| {
        failed(format!(
            "unreadable answer from the gateway ({status}): {e}"
        ))
    })?;
    if status.is_success() {
        Ok(body)
    } else {
        let message = body["error"].as_str().unwrap_or("no message").to_string();
        Err(failed(format!(
            "the gateway refused the export ({}): {message}",
            status.as_u16()
        )))
    }
}

/// Runs `sluice export`.
pub async fn run(args: &ExportArgs) -> Result<()> {
    let base = args.server.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| failed(format!("HTTP client: {e}")))?;
    let auth = format!("Bearer {}", args.token.trim());
    let mut body = json!({"sql": args.sql, "destination": args.to});
    if let Some(c) = &args.compression {
        body["compression"] = json!(c);
    }
    if let Some(m) = args.max_file_bytes {
        body["max_file_bytes"] = json!(m);
    }
    let resp = client
        .post(format!("{base}/v1/exports"))
        .header("authorization", &auth)
        .json(&body)
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach the gateway at {base}: {e}")))?;
    let job = answer(resp).await?;
    let id = job["id"].as_str().unwrap_or_default().to_string();
    if args.no_wait {
        println!("{id}");
        return Ok(());
    }
    eprintln!(
        "export {id} queued -> {}",
        job["destination"].as_str().unwrap_or("")
    );

    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let url = format!("{base}/v1/exports/{id}");
    let mut interrupted = false;
    let job = loop {
        let resp = client
            .get(&url)
            .header("authorization", &auth)
            .send()
            .await
            .map_err(|e| failed(format!("cannot reach the gateway at {base}: {e}")))?;
        let job = answer(resp).await?;
        let p = &job["progress"];
        let rows = p["rows"].as_u64().unwrap_or(0);
        let bytes = p["bytes"].as_u64().unwrap_or(0);
        bar.set_message(format!(
            "{}: {rows} rows, {}, {}/s, {} files",
            job["state"].as_str().unwrap_or("?"),
            HumanBytes(bytes),
            HumanBytes(p["bytes_per_second"].as_f64().unwrap_or(0.0) as u64),
            p["files"].as_u64().unwrap_or(0),
        ));
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break job;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                bar.println("cancelling…");
                let _ = client.delete(&url).header("authorization", &auth).send().await;
            }
        }
    };
    bar.finish_and_clear();
    match job["state"].as_str() {
        Some("succeeded") => {
            print_summary(&job);
            Ok(())
        }
        Some("cancelled") => Err(failed(format!("export {id} was cancelled"))),
        _ => Err(failed(format!(
            "export {id} failed: {}",
            job["error"].as_str().unwrap_or("no reason given")
        ))),
    }
}

fn print_summary(job: &Value) {
    let m = &job["summary"];
    println!(
        "export {} succeeded: {} rows, {} bytes, {} files -> {}",
        job["id"].as_str().unwrap_or(""),
        m["rows"].as_u64().unwrap_or(0),
        m["bytes"].as_u64().unwrap_or(0),
        m["files"].as_array().map_or(0, Vec::len),
        job["destination"].as_str().unwrap_or(""),
    );
    for f in m["files"].as_array().into_iter().flatten() {
        println!(
            "  {}  {} rows  {}",
            f["path"].as_str().unwrap_or(""),
            f["rows"].as_u64().unwrap_or(0),
            HumanBytes(f["bytes"].as_u64().unwrap_or(0)),
        );
    }
    println!("  manifest: {}", job["manifest"].as_str().unwrap_or(""));
    if m["truncated"].as_bool() == Some(true) {
        println!(
            "  truncated at the token's row limit ({} rows)",
            m["row_limit"].as_u64().unwrap_or(0)
        );
    }
    for c in m["omitted_columns"].as_array().into_iter().flatten() {
        println!(
            "  left out: {}.{} ({})",
            c["table"].as_str().unwrap_or(""),
            c["column"].as_str().unwrap_or(""),
            c["reason"].as_str().unwrap_or(""),
        );
    }
}
