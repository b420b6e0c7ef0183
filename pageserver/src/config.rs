//! Configuration: `<workdir>/pageserver.toml` if present, then command-line overrides; every
//! setting has a default that runs on one machine (brief section 9).
//!
//! Unknown keys and bad values are start-up errors that name the key. Sizes are integers in
//! bytes; durations are strings such as `"20s"` or `"1h"`; `remote_storage` is a table, either
//! `{ local_path = "..." }` or `{ endpoint, bucket, region, prefix }`.

use anyhow::{Context, bail};
use layer_format::io::EngineChoice;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name of the config file inside the work directory.
pub const CONFIG_FILE: &str = "pageserver.toml";

/// Where remote objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStorageConfig {
    /// A directory on the local filesystem (the default: `<workdir>/remote_storage`).
    Local {
        /// The directory.
        local_path: PathBuf,
    },
    /// An S3-compatible endpoint; credentials from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`.
    S3 {
        /// `http(s)://host:port`; plain `http://` is accepted on loopback.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The region.
        region: String,
        /// A prefix for every key (may be empty).
        prefix: String,
        /// Access key id and secret; `None` (always, from the config file) reads
        /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
        credentials: Option<(String, String)>,
    },
}

/// How HTTP requests are authenticated (brief section 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// No authentication: only on a loopback address, unless the file says so explicitly.
    Trust,
    /// `Authorization: Bearer <JWT>` signed with the Ed25519 key whose public half is here.
    Jwt {
        /// A PEM file holding the public key (`auth_validation_public_key_path`).
        public_key_path: PathBuf,
    },
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line, with the fields of the request's or job's span.
    Json,
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct PageServerConf {
    /// This server's id, reported by `GET /v1/status`.
    pub id: u64,
    /// The work directory: tenants' local files live under it.
    pub workdir: PathBuf,
    /// HTTP listen address.
    pub listen_http: SocketAddr,
    /// Remote storage.
    pub remote_storage: RemoteStorageConfig,
    /// The I/O engine.
    pub io_engine: EngineChoice,
    /// Size of the in-memory layer that triggers a flush to an L0 layer.
    pub checkpoint_distance: u64,
    /// Target size of compaction outputs.
    pub compaction_target_size: u64,
    /// Number of L0 layers that triggers compaction.
    pub compaction_threshold: usize,
    /// Number of stacked deltas that triggers an image layer.
    pub image_creation_threshold: usize,
    /// How often compaction runs per timeline.
    pub compaction_period: Duration,
    /// How much LSN history GC keeps.
    pub gc_horizon: u64,
    /// The largest ingest request body, in bytes (a larger one answers 413).
    pub max_ingest_body: u64,
    /// The most records one ingest request may hold (more answers 400).
    pub max_ingest_records: u64,
    /// Layer uploads a timeline runs at once.
    pub upload_concurrency: usize,
    /// Bytes of checked index nodes and values point reads keep (0 disables the cache).
    pub page_cache_size: u64,
    /// Authentication of the HTTP API.
    pub http_auth: HttpAuth,
    /// How long a graceful shutdown waits for the flushes and uploads of every timeline.
    pub shutdown_timeout: Duration,
    /// The format of log lines.
    pub log_format: LogFormat,
    /// Faults injected into remote storage (builds with the `testing` feature only).
    pub remote_storage_faults: Option<crate::remote::faults::FaultConfig>,
    /// A deliberately broken variant of the layer-map logic (`layer_map_mutation`, accepted
    /// only by builds with the testing feature).
    #[cfg(feature = "testing")]
    pub layer_map_mutation: Option<crate::timeline::mutation::Mutation>,
}

/// Every key of `pageserver.toml` a release build accepts (the test-only ones aside).
pub const CONFIG_KEYS: &[&str] = &[
    "id",
    "listen_http",
    "remote_storage",
    "io_engine",
    "checkpoint_distance",
    "compaction_target_size",
    "compaction_threshold",
    "image_creation_threshold",
    "compaction_period",
    "gc_horizon",
    "max_ingest_body",
    "max_ingest_records",
    "upload_concurrency",
    "page_cache_size",
    "http_auth_type",
    "auth_validation_public_key_path",
    "shutdown_timeout",
    "log_format",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    id: Option<u64>,
    listen_http: Option<String>,
    remote_storage: Option<RemoteStorageToml>,
    io_engine: Option<String>,
    checkpoint_distance: Option<u64>,
    compaction_target_size: Option<u64>,
    compaction_threshold: Option<usize>,
    image_creation_threshold: Option<usize>,
    compaction_period: Option<String>,
    gc_horizon: Option<u64>,
    max_ingest_body: Option<u64>,
    max_ingest_records: Option<u64>,
    upload_concurrency: Option<usize>,
    page_cache_size: Option<u64>,
    http_auth_type: Option<String>,
    auth_validation_public_key_path: Option<PathBuf>,
    shutdown_timeout: Option<String>,
    log_format: Option<String>,
    remote_storage_faults: Option<crate::remote::faults::FaultConfig>,
    layer_map_mutation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteStorageToml {
    local_path: Option<PathBuf>,
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
}

/// Parses a duration such as `"20s"`, `"1h"` or `"30d"`.
pub fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

impl PageServerConf {
    /// Defaults for `workdir`, without reading any file.
    pub fn defaults(workdir: &Path) -> PageServerConf {
        PageServerConf {
            id: 1,
            workdir: workdir.to_path_buf(),
            listen_http: SocketAddr::from(([127, 0, 0, 1], 9898)),
            remote_storage: RemoteStorageConfig::Local {
                local_path: workdir.join("remote_storage"),
            },
            io_engine: EngineChoice::Auto,
            checkpoint_distance: 256 << 20,
            compaction_target_size: 128 << 20,
            compaction_threshold: 10,
            image_creation_threshold: 3,
            compaction_period: Duration::from_secs(20),
            gc_horizon: 64 << 20,
            max_ingest_body: 64 << 20,
            max_ingest_records: 1 << 20,
            upload_concurrency: 8,
            page_cache_size: crate::page_cache::DEFAULT_PAGE_CACHE_SIZE,
            http_auth: HttpAuth::Trust,
            shutdown_timeout: Duration::from_secs(30),
            log_format: LogFormat::Plain,
            remote_storage_faults: None,
            #[cfg(feature = "testing")]
            layer_map_mutation: None,
        }
    }

    /// Reads `<workdir>/pageserver.toml` if present, then applies `overrides` (TOML
    /// `key = value` lines, as given with `-c`).
    pub fn load(workdir: &Path, overrides: &[String]) -> anyhow::Result<PageServerConf> {
        Self::load_from(workdir, &workdir.join(CONFIG_FILE), overrides)
    }

    /// Like [`load`](Self::load), with the settings read from `path` (if present) instead of
    /// `<workdir>/pageserver.toml`; defaults that name a place (local remote storage) are
    /// still under `workdir`.
    pub fn load_from(
        workdir: &Path,
        path: &Path,
        overrides: &[String],
    ) -> anyhow::Result<PageServerConf> {
        let mut text = String::new();
        match std::fs::read_to_string(path) {
            Ok(t) => text = t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        for o in overrides {
            let t: toml::Table = toml::from_str(o)
                .with_context(|| format!("parse override {o:?} (expected key=value in TOML)"))?;
            table.extend(t);
        }
        let file: ConfigFile = table
            .try_into()
            .with_context(|| format!("invalid configuration ({} and overrides)", path.display()))?;
        PageServerConf::from_file(workdir, file)
    }

    fn from_file(workdir: &Path, f: ConfigFile) -> anyhow::Result<PageServerConf> {
        let mut c = PageServerConf::defaults(workdir);
        if let Some(v) = f.id {
            c.id = v;
        }
        if let Some(v) = f.listen_http {
            c.listen_http = v.parse().with_context(|| {
                format!("listen_http: {v:?} is not an address such as 127.0.0.1:9898")
            })?;
        }
        if let Some(v) = f.io_engine {
            c.io_engine = v.parse().map_err(anyhow::Error::msg).context("io_engine")?;
        }
        if let Some(r) = f.remote_storage {
            c.remote_storage = match (r.local_path, r.endpoint, r.bucket) {
                (Some(local_path), None, None) if r.region.is_none() && r.prefix.is_none() => {
                    let local_path = if local_path.is_absolute() {
                        local_path
                    } else {
                        workdir.join(local_path)
                    };
                    RemoteStorageConfig::Local { local_path }
                }
                (None, Some(endpoint), Some(bucket)) => {
                    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                        bail!("remote_storage.endpoint: {endpoint:?} is not an http(s) URL");
                    }
                    RemoteStorageConfig::S3 {
                        endpoint,
                        bucket,
                        region: r.region.unwrap_or_else(|| "us-east-1".into()),
                        prefix: r.prefix.unwrap_or_default(),
                        credentials: None,
                    }
                }
                _ => bail!(
                    "remote_storage: expected {{ local_path }} or {{ endpoint, bucket, region, prefix }}"
                ),
            };
        }
        let positive = |name: &str, v: u64| -> anyhow::Result<u64> {
            if v == 0 {
                bail!("{name}: must be above zero");
            }
            Ok(v)
        };
        if let Some(v) = f.checkpoint_distance {
            c.checkpoint_distance = positive("checkpoint_distance", v)?;
        }
        if let Some(v) = f.compaction_target_size {
            c.compaction_target_size = positive("compaction_target_size", v)?;
        }
        if let Some(v) = f.compaction_threshold {
            c.compaction_threshold = positive("compaction_threshold", v as u64)? as usize;
        }
        if let Some(v) = f.image_creation_threshold {
            c.image_creation_threshold = positive("image_creation_threshold", v as u64)? as usize;
        }
        if let Some(v) = f.compaction_period {
            c.compaction_period = humantime::parse_duration(&v).with_context(|| {
                format!("compaction_period: {v:?} is not a duration such as \"20s\"")
            })?;
        }
        if let Some(v) = f.gc_horizon {
            c.gc_horizon = v;
        }
        if let Some(v) = f.max_ingest_body {
            c.max_ingest_body = positive("max_ingest_body", v)?;
            if v > 1 << 30 {
                bail!(
                    "max_ingest_body: at most 1073741824 (1 GiB): a body is held in memory whole"
                );
            }
        }
        if let Some(v) = f.upload_concurrency {
            c.upload_concurrency = positive("upload_concurrency", v as u64)? as usize;
        }
        if let Some(v) = f.max_ingest_records {
            c.max_ingest_records = positive("max_ingest_records", v)?;
        }
        if let Some(v) = f.page_cache_size {
            c.page_cache_size = v;
        }
        if let Some(v) = f.shutdown_timeout {
            c.shutdown_timeout = humantime::parse_duration(&v).with_context(|| {
                format!("shutdown_timeout: {v:?} is not a duration such as \"30s\"")
            })?;
        }
        if let Some(v) = f.log_format {
            c.log_format = match v.as_str() {
                "plain" => LogFormat::Plain,
                "json" => LogFormat::Json,
                _ => bail!("log_format: {v:?} is not \"plain\" or \"json\""),
            };
        }
        c.http_auth = match (
            f.http_auth_type.as_deref(),
            f.auth_validation_public_key_path,
        ) {
            (None | Some("Trust"), None) => HttpAuth::Trust,
            (None | Some("Trust"), Some(_)) => {
                bail!("auth_validation_public_key_path is set but http_auth_type is not \"JWT\"")
            }
            (Some("JWT"), Some(p)) => HttpAuth::Jwt {
                public_key_path: if p.is_absolute() { p } else { workdir.join(p) },
            },
            (Some("JWT"), None) => bail!(
                "http_auth_type = \"JWT\" needs auth_validation_public_key_path (an Ed25519 public key, PEM)"
            ),
            (Some(other), _) => bail!("http_auth_type: {other:?} is not \"Trust\" or \"JWT\""),
        };
        // Trust by default only where nobody else can connect: an operator who exposes the API
        // without authentication says so.
        if c.http_auth == HttpAuth::Trust
            && f.http_auth_type.is_none()
            && !c.listen_http.ip().is_loopback()
        {
            bail!(
                "listen_http {} is not a loopback address and no authentication is configured: set http_auth_type = \"JWT\" with auth_validation_public_key_path, or http_auth_type = \"Trust\" explicitly on a trusted network",
                c.listen_http
            );
        }
        if let Some(faults) = f.remote_storage_faults {
            if !crate::failpoints::enabled() {
                bail!("remote_storage_faults: only builds with the testing feature inject faults");
            }
            c.remote_storage_faults = Some(faults);
        }
        if let Some(m) = f.layer_map_mutation {
            #[cfg(feature = "testing")]
            {
                c.layer_map_mutation = Some(
                    m.parse()
                        .map_err(|e: String| anyhow::anyhow!("layer_map_mutation: {e}"))?,
                );
            }
            #[cfg(not(feature = "testing"))]
            bail!(
                "layer_map_mutation = {m:?}: only builds with the testing feature play broken variants"
            );
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests;
