//! The flags that reach Hubble Relay, shared by `ingest --hubble-relay` and `serve --hubble-relay`.

use std::path::PathBuf;

use clap::Args;
use flowgate::relay::{RelayConfig, RelayError};

use super::Fail;

#[derive(Args, Clone, Default)]
pub(crate) struct RelayArgs {
    /// Hubble Relay's gRPC address (host:port, http://... or https://...), e.g.
    /// hubble-relay.kube-system.svc:80 in the cluster or localhost:4245 through a port-forward
    #[arg(long, value_name = "ADDR")]
    pub hubble_relay: Option<String>,
    /// Reach Relay over TLS, with the system's roots unless --hubble-ca is given
    #[arg(long, requires = "hubble_relay")]
    pub hubble_tls: bool,
    /// PEM CA bundle that signed Relay's certificate (implies TLS)
    #[arg(long, requires = "hubble_relay", value_name = "FILE")]
    pub hubble_ca: Option<PathBuf>,
    /// PEM client certificate, for Relay with mutual TLS (with --hubble-client-key)
    #[arg(long, requires_all = ["hubble_relay", "hubble_client_key"], value_name = "FILE")]
    pub hubble_client_cert: Option<PathBuf>,
    /// PEM key of the client certificate
    #[arg(long, requires = "hubble_client_cert", value_name = "FILE")]
    pub hubble_client_key: Option<PathBuf>,
    /// Name Relay's certificate is checked against when it is not the address's host (Cilium's
    /// certificates name *.hubble-relay.cilium.io)
    #[arg(long, requires = "hubble_relay", value_name = "NAME")]
    pub hubble_tls_server_name: Option<String>,
}

impl RelayArgs {
    /// The configuration, with its TLS files read and checked before anything connects.
    pub(crate) fn config(&self) -> Result<Option<RelayConfig>, Fail> {
        let Some(address) = self.hubble_relay.clone() else { return Ok(None) };
        let config = RelayConfig {
            address,
            ca: self.hubble_ca.clone(),
            client_cert: self.hubble_client_cert.clone(),
            client_key: self.hubble_client_key.clone(),
            tls_server_name: self.hubble_tls_server_name.clone(),
            tls: self.hubble_tls,
        };
        config.endpoint().map_err(Fail::from)?;
        Ok(Some(config))
    }
}

/// A configuration that cannot work is the input's (2); a Relay that cannot be reached or breaks
/// the stream is the runtime's (3).
impl From<RelayError> for Fail {
    fn from(e: RelayError) -> Self {
        match e {
            RelayError::Ingest(e) => Fail::from(e),
            e @ RelayError::Config { .. } => Fail::of(e, 2),
            e @ (RelayError::Connect { .. } | RelayError::Stream { .. }) => Fail::of(e, 3),
        }
    }
}
