//! `floe topics list|create|describe|delete|alter`.

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;

use super::{partition_count, print_table, Connection, TIMEOUT};

/// `floe topics`.
#[derive(clap::Args)]
pub struct TopicsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(clap::Subcommand)]
pub enum TopicsCommand {
    /// Every topic with its partition count.
    List,
    /// Partitions with their offsets, and the topic's configuration overrides.
    Describe {
        /// The topic.
        topic: String,
    },
    /// Create a topic.
    Create {
        /// The topic.
        topic: String,
        /// Partitions [default: the broker's `default_partitions`].
        #[arg(long)]
        partitions: Option<i32>,
        /// A topic configuration, `key=value` (repeatable), e.g. `retention.ms=86400000`.
        #[arg(long = "config", value_parser = parse_pair)]
        configs: Vec<(String, String)>,
    },
    /// Delete a topic and its data (its Iceberg table stays).
    Delete {
        /// The topic.
        topic: String,
    },
    /// Change a topic's configuration or add partitions.
    Alter {
        /// The topic.
        topic: String,
        /// Grow to this many partitions (Kafka cannot shrink a topic).
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a configuration, `key=value` (repeatable).
        #[arg(long = "config", value_parser = parse_pair)]
        configs: Vec<(String, String)>,
        /// Remove an override, back to the default (repeatable).
        #[arg(long = "delete-config")]
        delete: Vec<String>,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected key=value, got '{s}'"))
}

/// Runs `floe topics`.
///
/// # Errors
/// The broker cannot be reached or refuses the change (its message is shown).
pub async fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let conn = &args.connection;
    match args.command {
        TopicsCommand::List => list(conn),
        TopicsCommand::Describe { topic } => describe(conn, &topic).await,
        TopicsCommand::Create {
            topic,
            partitions,
            configs,
        } => {
            let mut new = NewTopic::new(
                &topic,
                partitions.unwrap_or(-1),
                TopicReplication::Fixed(-1),
            );
            for (k, v) in &configs {
                new = new.set(k, v);
            }
            let results = conn
                .admin()?
                .create_topics(&[new], &options())
                .await
                .context("sending CreateTopics")?;
            for r in results {
                r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic '{t}': {e}"))?;
            }
            println!("created topic {topic}");
            Ok(())
        }
        TopicsCommand::Delete { topic } => {
            let results = conn
                .admin()?
                .delete_topics(&[&topic], &options())
                .await
                .context("sending DeleteTopics")?;
            for r in results {
                r.map_err(|(t, e)| anyhow::anyhow!("cannot delete topic '{t}': {e}"))?;
            }
            println!("deleted topic {topic}");
            Ok(())
        }
        TopicsCommand::Alter {
            topic,
            partitions,
            configs,
            delete,
        } => alter(conn, &topic, partitions, &configs, &delete).await,
    }
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(super::TIMEOUT))
}

fn list(conn: &Connection) -> anyhow::Result<()> {
    let metadata = conn
        .consumer(None)?
        .fetch_metadata(None, TIMEOUT)
        .context("asking the broker for its topics")?;
    let mut rows: Vec<Vec<String>> = metadata
        .topics()
        .iter()
        .map(|t| vec![t.name().to_string(), t.partitions().len().to_string()])
        .collect();
    rows.sort();
    print_table(&["TOPIC", "PARTITIONS"], &rows);
    Ok(())
}

/// The topic's configuration overrides (what differs from the broker's defaults).
async fn overrides(conn: &Connection, topic: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let results = conn
        .admin()?
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &options())
        .await
        .context("sending DescribeConfigs")?;
    let mut out = BTreeMap::new();
    for r in results {
        let resource =
            r.map_err(|e| anyhow::anyhow!("cannot read the configs of '{topic}': {e}"))?;
        for entry in resource.entries {
            if matches!(entry.source, ConfigSource::DynamicTopic) {
                if let Some(v) = entry.value {
                    out.insert(entry.name, v);
                }
            }
        }
    }
    Ok(out)
}

async fn describe(conn: &Connection, topic: &str) -> anyhow::Result<()> {
    let consumer = conn.consumer(None)?;
    let partitions = partition_count(&consumer, topic)?;
    let rows: Vec<Vec<String>> = super::watermarks(&consumer, topic, partitions)?
        .into_iter()
        .zip(0..)
        .map(|((low, high), p)| {
            vec![
                p.to_string(),
                low.to_string(),
                high.to_string(),
                (high - low).to_string(),
            ]
        })
        .collect();
    println!("topic {topic}: {partitions} partitions");
    print_table(&["PARTITION", "START", "END", "RECORDS"], &rows);
    let configs = overrides(conn, topic).await?;
    if configs.is_empty() {
        println!("configuration: broker defaults");
    } else {
        println!("configuration overrides:");
        for (k, v) in configs {
            println!("  {k}={v}");
        }
    }
    Ok(())
}

async fn alter(
    conn: &Connection,
    topic: &str,
    partitions: Option<i32>,
    configs: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    if partitions.is_none() && configs.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --partitions, --config or --delete-config");
    }
    let admin = conn.admin()?;
    if !configs.is_empty() || !delete.is_empty() {
        // AlterConfigs replaces a topic's whole set of overrides: start from the current one.
        let mut wanted = overrides(conn, topic).await?;
        for k in delete {
            if wanted.remove(k).is_none() {
                bail!("'{k}' is not set on topic '{topic}'");
            }
        }
        for (k, v) in configs {
            wanted.insert(k.clone(), v.clone());
        }
        let mut change = AlterConfig::new(ResourceSpecifier::Topic(topic));
        for (k, v) in &wanted {
            change = change.set(k, v);
        }
        for r in admin
            .alter_configs(&[change], &options())
            .await
            .context("sending AlterConfigs")?
        {
            r.map_err(|(_, e)| anyhow::anyhow!("cannot change the configs of '{topic}': {e}"))?;
        }
        println!("updated the configuration of {topic}");
    }
    if let Some(n) = partitions {
        let n = usize::try_from(n).context("--partitions must be positive")?;
        for r in admin
            .create_partitions(&[NewPartitions::new(topic, n)], &options())
            .await
            .context("sending CreatePartitions")?
        {
            r.map_err(|(_, e)| anyhow::anyhow!("cannot grow '{topic}' to {n} partitions: {e}"))?;
        }
        println!("{topic} now has {n} partitions");
    }
    Ok(())
}
