//! The governor: the catalogs the gateway serves, and the one pipeline
//! every statement goes through.
//!
//! - this module: the registry of catalogs ([`Governor::mount`], gates of
//!   federation peers, the gateway's own tables, the mask key);
//! - [`session`]: a token's scoped `SessionContext` (only its secure views
//!   exist in it);
//! - [`plan`]: parse, guard, dialect rewrite, plan ([`Governor::plan`]);
//! - [`validate`]: checking a token's grants against the catalogs;
//! - [`governed`]: the planned statement ([`GovernedPlan`]) and its run;
//! - [`explain`]: `EXPLAIN` as tokens that are not admins see it;
//! - [`stream`]: the row-limited result stream ([`GovernedStream`]);
//! - [`wire`]: the Arrow types results have on the wire.

mod explain;
pub mod governed;
mod plan;
mod session;
pub mod stream;
mod validate;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use datafusion::catalog::CatalogProvider;
use datafusion::datasource::TableProvider;

use crate::connector::{CatalogGate, NativeSearchLookup};
use crate::dialect::{DataFusionDialect, SqlDialect};
use crate::limits::Limits;
use crate::masks::MaskKey;
use crate::policy::TableClass;

pub use governed::GovernedPlan;
pub use stream::{GovernedStream, TRUNCATED_METADATA_KEY, conform};
pub use wire::{wire_schema, wire_type};

/// One catalog the gateway serves.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    /// The underlying (unrestricted) catalog.
    pub provider: Arc<dyn CatalogProvider>,
    /// Classification per `namespace.table`.
    pub tables: HashMap<String, TableClass>,
}

/// Per-session settings of a frontend.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The SQL dialect (DataFusion's unless the frontend brings one).
    pub dialect: Arc<dyn SqlDialect>,
    /// Catalog of unqualified names (default: the first visible catalog).
    pub catalog: Option<String>,
    /// Schema of unqualified names (default: `default`).
    pub schema: Option<String>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            dialect: Arc::new(DataFusionDialect),
            catalog: None,
            schema: None,
        }
    }
}

/// Holds the gateway's catalogs and turns token scopes into scoped
/// sessions.
#[derive(Debug, Clone, Default)]
pub struct Governor {
    /// Copy-on-write, shared by clones: peers are mounted and unmounted
    /// while the gateway runs.
    catalogs: Arc<RwLock<Arc<BTreeMap<String, CatalogEntry>>>>,
    /// Gates of mounted catalogs (federation peers), shared by clones.
    gates: Arc<RwLock<HashMap<String, Arc<dyn CatalogGate>>>>,
    native_search: HashMap<String, NativeSearchLookup>,
    target_partitions: Option<usize>,
    mask_key: Option<MaskKey>,
    system_tables: Vec<(String, Arc<dyn TableProvider>)>,
    limits: Arc<Limits>,
    /// The state every statement's session starts from
    /// ([`session::BaseState`]), built on first use and shared by clones;
    /// the builder methods that change what it holds start a new one.
    base: Arc<OnceLock<session::BaseState>>,
}

impl Governor {
    /// A governor without catalogs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `entry` as catalog `name`.
    pub fn add_catalog(&mut self, name: impl Into<String>, entry: CatalogEntry) {
        self.mount(name, entry);
    }

    /// Serves `entry` as catalog `name` from now on, in this governor and
    /// every clone of it (federation peers are mounted while serving).
    pub fn mount(&self, name: impl Into<String>, entry: CatalogEntry) {
        let mut guard = self.catalogs.write().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::clone(&guard);
        next.insert(name.into(), entry);
        *guard = Arc::new(next);
    }

    /// [`Governor::mount`] with a gate awaited before planning statements
    /// that name the catalog.
    pub fn mount_gated(
        &self,
        name: impl Into<String>,
        entry: CatalogEntry,
        gate: Arc<dyn CatalogGate>,
    ) {
        let name = name.into();
        self.gates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), gate);
        self.mount(name, entry);
    }

    /// Whether catalog `name` is gated (a federation peer).
    pub fn is_gated(&self, name: &str) -> bool {
        self.gates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Stops serving catalog `name` (statements planned from now on do not
    /// see it). Returns whether it was served.
    pub fn unmount(&self, name: &str) -> bool {
        self.gates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        let mut guard = self.catalogs.write().unwrap_or_else(|e| e.into_inner());
        if !guard.contains_key(name) {
            return false;
        }
        let mut next = BTreeMap::clone(&guard);
        next.remove(name);
        *guard = Arc::new(next);
        true
    }

    /// The catalogs served now.
    fn catalogs(&self) -> Arc<BTreeMap<String, CatalogEntry>> {
        Arc::clone(&self.catalogs.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The gates of mounted catalogs now.
    fn gates(&self) -> HashMap<String, Arc<dyn CatalogGate>> {
        self.gates.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lets `vector_search` use the native search of catalog `name`'s
    /// tables (found by `lookup`).
    pub fn add_native_search(&mut self, name: impl Into<String>, lookup: NativeSearchLookup) {
        self.native_search.insert(name.into(), lookup);
    }

    /// Fixes DataFusion's `target_partitions` (default: the number of cores).
    pub fn with_target_partitions(mut self, n: usize) -> Self {
        self.target_partitions = Some(n.max(1));
        self.base = Arc::default();
        self
    }

    /// Bounds every statement by `limits` (memory, time, admission,
    /// statement size, function output) instead of the defaults.
    pub fn with_limits(mut self, limits: Arc<Limits>) -> Self {
        self.limits = limits;
        self.base = Arc::default();
        self
    }

    /// The limits every statement runs under.
    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// Keys the `hash` mask: keyed BLAKE3 under a key derived from `key`
    /// instead of plain BLAKE3, so masked values cannot be recovered by
    /// hashing guesses.
    pub fn with_mask_key(mut self, key: &[u8]) -> Self {
        self.mask_key = Some(MaskKey::new(key));
        self
    }

    /// Adds a gateway table (`system.runtime.<name>`, also reachable as
    /// `system.<name>`) that only admin tokens' sessions contain. It is
    /// not policy-scoped: admins see all of it (still capped at their
    /// `row_limit`).
    pub fn with_system_table(
        mut self,
        name: impl Into<String>,
        table: Arc<dyn TableProvider>,
    ) -> Self {
        self.system_tables.push((name.into(), table));
        self
    }

    /// Names of all configured catalogs (not scoped: for operators).
    pub fn catalog_names(&self) -> Vec<String> {
        self.catalogs().keys().cloned().collect()
    }
}
