//! Assembling the server configuration: defaults, then `floe.toml` (or `--config`), then
//! `FLOE_*` variables and flags (clap reads both; flags win over the environment).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use floe_server::config::FsyncPolicy;
use floe_server::ServerConfig;

/// Flags of `floe serve`. Each has a `FLOE_*` variable; both override the config file.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Config file (TOML). Default: ./floe.toml if it exists.
    #[arg(long, env = "FLOE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (WAL, SQLite metadata) [default: ./floe-data].
    #[arg(long, env = "FLOE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listen address [default: 0.0.0.0:9092].
    #[arg(long, env = "FLOE_KAFKA_LISTEN")]
    pub kafka_listen: Option<String>,
    /// Host advertised to Kafka clients [default: listen host, or localhost for 0.0.0.0].
    #[arg(long, env = "FLOE_KAFKA_ADVERTISED_HOST")]
    pub advertised_host: Option<String>,
    /// Port advertised to Kafka clients [default: the bound port].
    #[arg(long, env = "FLOE_KAFKA_ADVERTISED_PORT")]
    pub advertised_port: Option<u16>,
    /// Metadata store URL: postgres://... or sqlite://... [default: sqlite in the data dir].
    #[arg(long, env = "FLOE_META_URL")]
    pub meta_url: Option<String>,
    /// Create topics on first use [default: true].
    #[arg(long, env = "FLOE_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long, env = "FLOE_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// Fsync policy: "always" or an interval such as "50ms" [default: 50ms].
    #[arg(long, env = "FLOE_FSYNC")]
    pub fsync: Option<FsyncPolicy>,
    /// Node id reported to clients [default: 1].
    #[arg(long, env = "FLOE_NODE_ID")]
    pub node_id: Option<i32>,
    /// HTTP listen address: Iceberg REST catalog, /health, /ready [default: 0.0.0.0:8181].
    #[arg(long, env = "FLOE_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Arrow Flight SQL listen address [default: 0.0.0.0:50051].
    #[arg(long, env = "FLOE_FLIGHT_LISTEN")]
    pub flight_listen: Option<String>,
    /// Schema registry (Confluent REST API) listen address [default: 0.0.0.0:8081].
    #[arg(long, env = "FLOE_REGISTRY_LISTEN")]
    pub registry_listen: Option<String>,
    /// Land topics into Iceberg tables [default: true].
    #[arg(long, env = "FLOE_LAKE_ENABLED")]
    pub lake_enabled: Option<bool>,
    /// Iceberg catalog: sql or rest [default: sql].
    #[arg(long, env = "FLOE_LAKE_CATALOG")]
    pub lake_catalog: Option<String>,
    /// Catalog URI: database URL for sql, base URI for rest [default: sqlite in the data dir].
    #[arg(long, env = "FLOE_LAKE_CATALOG_URI")]
    pub lake_catalog_uri: Option<String>,
    /// Warehouse: file:/abs/path or s3://bucket/prefix [default: file:<data dir>/warehouse].
    #[arg(long, env = "FLOE_LAKE_WAREHOUSE")]
    pub lake_warehouse: Option<String>,
    /// Longest time between landing rounds, e.g. "2s" [default: 2s].
    #[arg(long, env = "FLOE_LAKE_COMMIT_INTERVAL", value_parser = humantime::parse_duration)]
    pub lake_commit_interval: Option<std::time::Duration>,
    /// How often each table gets retention, compaction, manifest merge and snapshot expiry [default: 60s].
    #[arg(long, env = "FLOE_LAKE_HOUSEKEEPING_INTERVAL", value_parser = humantime::parse_duration)]
    pub lake_housekeeping_interval: Option<std::time::Duration>,
    /// S3 endpoint URL, for an s3:// warehouse.
    #[arg(long, env = "FLOE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, env = "FLOE_S3_REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "FLOE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key.
    #[arg(long, env = "FLOE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// S3 path-style addressing [default: false].
    #[arg(long, env = "FLOE_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// Access key id the REST catalog hands to Iceberg readers (a separate, read-only key)
    /// [default: none; readers bring their own].
    #[arg(long, env = "FLOE_S3_READER_ACCESS_KEY_ID")]
    pub s3_reader_access_key_id: Option<String>,
    /// Secret of the reader key.
    #[arg(long, env = "FLOE_S3_READER_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_reader_secret_access_key: Option<String>,
    /// Longest a SIGTERM may take (drain, fsync, last landing round) [default: 30s].
    #[arg(long, env = "FLOE_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Option<std::time::Duration>,
    /// Log format: text or json.
    #[arg(long, env = "FLOE_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
}

/// Builds the configuration. An unknown key or a bad value in the file stops start-up
/// with a message naming the key.
pub fn load(args: &ServeArgs) -> anyhow::Result<ServerConfig> {
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("floe.toml")).filter(|p| p.exists()),
    };
    let mut cfg: ServerConfig = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid config file {}", p.display()))?
        }
        None => ServerConfig::default(),
    };
    if let Some(v) = &args.data_dir {
        cfg.data_dir = v.clone();
    }
    if let Some(v) = &args.kafka_listen {
        cfg.kafka.listen = v.clone();
    }
    if let Some(v) = &args.advertised_host {
        cfg.kafka.advertised_host = Some(v.clone());
    }
    if let Some(v) = args.advertised_port {
        cfg.kafka.advertised_port = Some(v);
    }
    if let Some(v) = &args.meta_url {
        cfg.meta.url = Some(v.clone());
    }
    if let Some(v) = args.auto_create_topics {
        cfg.kafka.auto_create_topics = v;
    }
    if let Some(v) = args.default_partitions {
        cfg.kafka.default_partitions = v;
    }
    if let Some(v) = args.fsync {
        cfg.log.fsync = v;
    }
    if let Some(v) = args.node_id {
        cfg.node_id = v;
    }
    if let Some(v) = &args.http_listen {
        cfg.http.listen = v.clone();
    }
    if let Some(v) = &args.flight_listen {
        cfg.query.flight_listen = v.clone();
    }
    if let Some(v) = &args.registry_listen {
        cfg.registry.listen = v.clone();
    }
    if let Some(v) = args.lake_enabled {
        cfg.lake.enabled = v;
    }
    if let Some(v) = &args.lake_catalog {
        cfg.lake.catalog = v.clone();
    }
    if let Some(v) = &args.lake_catalog_uri {
        cfg.lake.catalog_uri = Some(v.clone());
    }
    if let Some(v) = &args.lake_warehouse {
        cfg.lake.warehouse = Some(v.clone());
    }
    if let Some(v) = args.lake_commit_interval {
        cfg.lake.commit_interval = v;
    }
    if let Some(v) = args.lake_housekeeping_interval {
        cfg.lake.housekeeping_interval = v;
    }
    for (value, slot) in [
        (&args.s3_endpoint, &mut cfg.lake.s3.endpoint),
        (&args.s3_region, &mut cfg.lake.s3.region),
        (&args.s3_access_key_id, &mut cfg.lake.s3.access_key_id),
        (
            &args.s3_secret_access_key,
            &mut cfg.lake.s3.secret_access_key,
        ),
        (
            &args.s3_reader_access_key_id,
            &mut cfg.lake.s3.reader_access_key_id,
        ),
        (
            &args.s3_reader_secret_access_key,
            &mut cfg.lake.s3.reader_secret_access_key,
        ),
    ] {
        if let Some(v) = value {
            *slot = Some(v.clone());
        }
    }
    if let Some(v) = args.shutdown_timeout {
        cfg.shutdown_timeout = v;
    }
    if let Some(v) = args.s3_path_style {
        cfg.lake.s3.path_style = v;
    }
    cfg.topic_defaults().context("invalid [log] defaults")?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ServeArgs,
    }

    #[test]
    fn serve_help_lists_every_setting() {
        use clap::CommandFactory;
        let mut cli = crate::Cli::command();
        let help = cli
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        for key in [
            "shutdown_timeout",
            "commit_interval",
            "max_buffer_bytes",
            "flight_listen",
            "retention_ms",
        ] {
            assert!(help.contains(key), "{key} missing from floe serve --help");
        }
    }

    #[test]
    fn flags_override_file_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("floe.toml");
        std::fs::write(
            &f,
            "data_dir = \"/from/file\"\n[kafka]\ndefault_partitions = 3\n",
        )
        .unwrap();
        let t = T::parse_from([
            "t",
            "--config",
            f.to_str().unwrap(),
            "--data-dir",
            "/from/flag",
        ]);
        let cfg = load(&t.a).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(cfg.kafka.default_partitions, 3);

        std::fs::write(&f, "[kafka]\nno_such_key = 1\n").unwrap();
        let t = T::parse_from(["t", "--config", f.to_str().unwrap()]);
        let err = format!("{:#}", load(&t.a).unwrap_err());
        assert!(err.contains("no_such_key"), "{err}");

        std::fs::write(&f, "[log]\nfsync = \"sometimes\"\n").unwrap();
        let t = T::parse_from(["t", "--config", f.to_str().unwrap()]);
        let err = format!("{:#}", load(&t.a).unwrap_err());
        assert!(err.contains("fsync must be"), "{err}");
    }
}

#[cfg(test)]
mod example_file {
    use std::collections::BTreeSet;

    use floe_server::ServerConfig;

    fn keys(v: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let key = format!("{prefix}{k}");
                keys(v, &format!("{key}."), out);
                out.insert(key);
            }
        }
    }

    /// The example is what `floe serve --help` prints as the list of settings: it must
    /// name every setting the broker has, each with its default.
    #[test]
    fn the_shipped_example_lists_every_setting_with_its_default() {
        let text = include_str!("../../../floe.example.toml");
        let cfg: ServerConfig = toml::from_str(text).unwrap();
        cfg.topic_defaults().unwrap();
        let defaults = toml::Value::try_from(ServerConfig::default()).unwrap();
        let (mut want, mut have) = (BTreeSet::new(), BTreeSet::new());
        keys(&defaults, "", &mut want);
        keys(&toml::from_str::<toml::Value>(text).unwrap(), "", &mut have);
        let missing: Vec<_> = want.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "settings missing from floe.example.toml: {missing:?}"
        );
        let unknown: Vec<_> = have.difference(&want).collect();
        assert!(
            unknown.is_empty(),
            "floe.example.toml sets what has no default: {unknown:?}"
        );
        assert_eq!(
            toml::Value::try_from(cfg).unwrap(),
            defaults,
            "a value is not the default"
        );
        let doc = include_str!("../../../docs/configuration.md");
        assert!(
            doc.contains(&format!("```toml\n{}\n```", text.trim_end())),
            "docs/configuration.md's example is not floe.example.toml"
        );
    }
}
