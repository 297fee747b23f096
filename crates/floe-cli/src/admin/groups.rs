//! `floe groups list|describe|reset-offsets`.

use anyhow::{bail, Context};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};

use super::{offsets_for_time, partition_count, print_table, watermarks, Connection, TIMEOUT};
use crate::replay::parse_time;

/// `floe groups`.
#[derive(clap::Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(clap::Subcommand)]
pub enum GroupsCommand {
    /// Every consumer group with its state and member count.
    List,
    /// A group's members, and its committed offsets and lag per partition.
    Describe {
        /// The group.
        group: String,
    },
    /// Move a group's committed offsets on a topic. Prints the plan; `--execute` applies
    /// it. The group must have no active members.
    ResetOffsets {
        /// The group.
        group: String,
        /// The topic whose offsets move.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        to: ResetTo,
        /// Apply the plan (without it, nothing changes).
        #[arg(long)]
        execute: bool,
    },
}

/// Where the offsets go: exactly one.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    /// The start of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// The end of each partition.
    #[arg(long)]
    to_latest: bool,
    /// The first offset at or after this time: RFC 3339 in UTC, epoch milliseconds,
    /// `now-<duration>`.
    #[arg(long, value_parser = parse_time)]
    to_datetime: Option<i64>,
}

/// Runs `floe groups`.
///
/// # Errors
/// The broker cannot be reached, the group or topic is unknown, or the group is active.
pub async fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let conn = &args.connection;
    match args.command {
        GroupsCommand::List => list(conn),
        GroupsCommand::Describe { group } => describe(conn, &group),
        GroupsCommand::ResetOffsets {
            group,
            topic,
            to,
            execute,
        } => reset(conn, &group, &topic, &to, execute),
    }
}

fn groups(conn: &Connection, group: Option<&str>) -> anyhow::Result<Vec<GroupRow>> {
    let list = conn
        .consumer(None)?
        .fetch_group_list(group, TIMEOUT)
        .context("asking the broker for its consumer groups")?;
    Ok(list.groups().iter().map(GroupRow::from).collect())
}

struct GroupRow {
    name: String,
    state: String,
    protocol_type: String,
    members: Vec<(String, String, String)>,
}

impl From<&GroupInfo> for GroupRow {
    fn from(g: &GroupInfo) -> Self {
        Self {
            name: g.name().to_string(),
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| {
                    (
                        m.id().to_string(),
                        m.client_id().to_string(),
                        m.client_host().to_string(),
                    )
                })
                .collect(),
        }
    }
}

fn list(conn: &Connection) -> anyhow::Result<()> {
    let mut rows: Vec<Vec<String>> = groups(conn, None)?
        .into_iter()
        .map(|g| {
            vec![
                g.name,
                g.state,
                g.protocol_type,
                g.members.len().to_string(),
            ]
        })
        .collect();
    rows.sort();
    print_table(&["GROUP", "STATE", "TYPE", "MEMBERS"], &rows);
    Ok(())
}

/// The group's state, or an error naming it when the broker does not know it.
fn group(conn: &Connection, name: &str) -> anyhow::Result<GroupRow> {
    // An unknown group is described as `Dead` with no members, as by Kafka.
    groups(conn, Some(name))?
        .into_iter()
        .find(|g| g.name == name && !(g.state == "Dead" && g.members.is_empty()))
        .with_context(|| format!("group '{name}' does not exist"))
}

fn describe(conn: &Connection, name: &str) -> anyhow::Result<()> {
    let g = group(conn, name)?;
    println!("group {name}: {} ({} members)", g.state, g.members.len());
    if !g.members.is_empty() {
        print_table(
            &["MEMBER", "CLIENT", "HOST"],
            &g.members
                .iter()
                .map(|(id, c, h)| vec![id.clone(), c.clone(), h.clone()])
                .collect::<Vec<_>>(),
        );
    }
    // OffsetFetch needs partitions: ask for every partition of every topic, keep those
    // with an offset.
    let consumer = conn.consumer(Some(name))?;
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .context("asking the broker for its topics")?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let committed = consumer
        .committed_offsets(tpl, TIMEOUT)
        .with_context(|| format!("reading the offsets of group '{name}'"))?;
    let mut rows = Vec::new();
    for e in committed.elements() {
        let Offset::Offset(at) = e.offset() else {
            continue;
        };
        let (_, end) = consumer
            .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)
            .with_context(|| format!("reading the end of {}/{}", e.topic(), e.partition()))?;
        rows.push(vec![
            e.topic().to_string(),
            e.partition().to_string(),
            at.to_string(),
            end.to_string(),
            (end - at).max(0).to_string(),
        ]);
    }
    rows.sort_by(|a, b| (&a[0], a[1].parse::<i32>().ok()).cmp(&(&b[0], b[1].parse::<i32>().ok())));
    if rows.is_empty() {
        println!("no committed offsets");
    } else {
        print_table(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"], &rows);
    }
    Ok(())
}

fn reset(
    conn: &Connection,
    name: &str,
    topic: &str,
    to: &ResetTo,
    execute: bool,
) -> anyhow::Result<()> {
    // Like Kafka's tool: offsets of a group with live members would be overwritten by
    // their next commit, so an active group is refused.
    if let Some(g) = groups(conn, Some(name))?
        .into_iter()
        .find(|g| g.name == name)
    {
        if !g.members.is_empty() {
            bail!(
                "group '{name}' is {} with {} active members; stop its consumers first",
                g.state,
                g.members.len()
            );
        }
    }
    let consumer = conn.consumer(Some(name))?;
    let partitions = partition_count(&consumer, topic)?;
    let mut current = TopicPartitionList::new();
    for p in 0..partitions {
        current.add_partition(topic, p);
    }
    let current = consumer
        .committed_offsets(current, TIMEOUT)
        .with_context(|| format!("reading the offsets of group '{name}'"))?;
    let marks = watermarks(&consumer, topic, partitions)?;
    let highs: Vec<i64> = marks.iter().map(|&(_, high)| high).collect();
    let targets: Vec<i64> = match to.to_datetime {
        Some(ts) => offsets_for_time(&consumer, topic, ts, &highs)?,
        None if to.to_earliest => marks.iter().map(|&(low, _)| low).collect(),
        None => highs,
    };
    let mut plan = TopicPartitionList::new();
    let mut rows = Vec::new();
    for (p, target) in (0..partitions).zip(&targets) {
        let now = match current.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.to_string(),
            _ => "-".to_string(),
        };
        rows.push(vec![
            topic.to_string(),
            p.to_string(),
            now,
            target.to_string(),
        ]);
        plan.add_partition_offset(topic, p, Offset::Offset(*target))
            .context("building the commit")?;
    }
    print_table(&["TOPIC", "PARTITION", "CURRENT", "NEW"], &rows);
    if !execute {
        println!("dry run: nothing changed; add --execute to apply");
        return Ok(());
    }
    consumer
        .commit(&plan, CommitMode::Sync)
        .with_context(|| format!("committing the new offsets of group '{name}'"))?;
    println!("group {name}: offsets of {topic} reset");
    Ok(())
}
