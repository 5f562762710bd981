//! Federation (DESIGN §7): share profiles on the provider side, imported
//! peers mounted as catalogs on the receiver side.
//!
//! Provider: a `share` token's profile ([`Profile`]) holds the endpoint, the
//! secret and the CA that signed the provider's certificate. It is served
//! once by `GET /v1/tokens/{id}/download` (the secret is generated then).
//!
//! Receiver: `accept` validates a profile and stores it in
//! `external_tokens` with the secret (and an optional client key) sealed
//! (`crate::seal::SealKey`). [`Peers`] mounts every stored peer as a catalog named
//! after it, keeps the set in step with the store (`sync_interval`: what
//! `sluice peer` or another replica changed), rediscovers tables
//! (`refresh_interval`), and records a provider's refusal of the share
//! token as a revocation.
//!
//! - `config`: the `[federation]` section;
//! - `profile`: share profiles (provider);
//! - `accept`: importing a profile (receiver);
//! - `peers`: mounting imported peers as catalogs (receiver);
//! - `seal_binding`: what sealed secrets are bound to.

mod accept;
mod config;
mod peers;
mod profile;
mod seal_binding;

pub use accept::{AcceptError, AcceptRequest, PeerView, accept};
pub use config::FederationConfig;
pub use peers::Peers;
pub use profile::{
    PROFILE_VERSION, Profile, build_profile, fingerprint, pem_certificates, profile_ca,
};
