//! The data directory's identity file, `floe.id` (Kafka's `meta.properties`). It marks a
//! directory as holding this cluster's logs, so that a broker pointed at an empty
//! directory while its metadata store lists topics (a volume that is not mounted, a
//! wrong path) refuses to start instead of starting every partition empty: with the lake
//! off that would hand out offsets from 0 again, and with it on, records the table had
//! not landed would be gone.

use std::path::Path;

use tracing::{info, warn};

use crate::{Error, Result};

/// Name of the identity file in the data directory.
pub const ID_FILE: &str = "floe.id";

/// Checks the data directory against the metadata store, which lists `stored_topics`
/// topics, and writes the identity file if it is missing and the directory may be used.
///
/// - With the file: its `cluster.id` must be `cluster_id`. An empty file is an
///   operator's confirmation that the logs are gone for good; it is filled in.
/// - Without it: a directory that holds logs (written before the file existed) or a
///   store without topics (a first start) gets the file. A directory without logs while
///   the store lists topics is refused.
///
/// # Errors
/// [`Error::DataDir`] for a directory refused as above; I/O errors.
pub fn check(data_dir: &Path, cluster_id: &str, stored_topics: usize) -> Result<()> {
    let path = data_dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => {
            warn!(file = %path.display(), "empty identity file: starting with whatever logs the data directory holds");
        }
        Ok(text) => {
            return match cluster_of(&text) {
                Some(id) if id == cluster_id => Ok(()),
                Some(id) => Err(Error::DataDir {
                    path: data_dir.to_path_buf(),
                    reason: format!(
                        "it belongs to cluster {id:?}, but this broker's cluster_id is {cluster_id:?}: \
                         point data_dir at this cluster's directory, or set cluster_id to {id:?}"
                    ),
                }),
                None => Err(Error::DataDir {
                    path: data_dir.to_path_buf(),
                    reason: format!("{} has no cluster.id line", path.display()),
                }),
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if stored_topics > 0 && !has_logs(data_dir)? {
                return Err(Error::DataDir {
                    path: data_dir.to_path_buf(),
                    reason: format!(
                        "it holds no logs and no {ID_FILE}, but the metadata store lists {stored_topics} \
                         topic(s): is the volume mounted, is data_dir right? If the logs are lost for good, \
                         create an empty file {} and start again: every partition then starts empty \
                         (topics with a lake table continue after the table's offsets)",
                        path.display()
                    ),
                });
            }
        }
        Err(source) => {
            return Err(Error::Io {
                op: "read",
                path,
                source,
            })
        }
    }
    let contents = format!("version=1\ncluster.id={cluster_id}\n");
    floe_log::write_atomic(data_dir, ID_FILE, contents.as_bytes()).map_err(|source| {
        Error::DataDirWrite {
            path: path.clone(),
            source,
        }
    })?;
    info!(file = %path.display(), cluster_id, "wrote the data directory's identity file");
    Ok(())
}

fn cluster_of(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("cluster.id="))
        .map(str::trim)
}

/// Whether `log/` holds any topic directory.
fn has_logs(data_dir: &Path) -> Result<bool> {
    let log = data_dir.join("log");
    let entries = match std::fs::read_dir(&log) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                op: "list",
                path: log,
                source,
            })
        }
    };
    Ok(entries.flatten().any(|e| e.path().is_dir()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<()>) -> String {
        match r {
            Err(e @ Error::DataDir { .. }) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_first_start_writes_the_file_and_later_starts_accept_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        check(dir.path(), "c1", 0).expect("first start");
        let text = std::fs::read_to_string(dir.path().join(ID_FILE)).expect("file");
        assert_eq!(cluster_of(&text), Some("c1"));
        // The file, not the logs, makes the directory acceptable from now on.
        check(dir.path(), "c1", 5).expect("known directory");
        let msg = refused(check(dir.path(), "c2", 5));
        assert!(msg.contains("\"c1\"") && msg.contains("\"c2\""), "{msg}");
    }

    #[test]
    fn an_empty_directory_is_refused_while_the_store_lists_topics() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("log")).expect("log dir");
        let msg = refused(check(dir.path(), "c1", 3));
        assert!(
            msg.contains("3 topic(s)") && msg.contains("mounted"),
            "{msg}"
        );
        assert!(!dir.path().join(ID_FILE).exists());
        // The operator confirms with an empty file.
        std::fs::write(dir.path().join(ID_FILE), "").expect("touch");
        check(dir.path(), "c1", 3).expect("confirmed");
        let text = std::fs::read_to_string(dir.path().join(ID_FILE)).expect("file");
        assert_eq!(cluster_of(&text), Some("c1"));
    }

    #[test]
    fn a_directory_with_logs_from_before_the_file_is_adopted() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("log/orders/0")).expect("log dir");
        check(dir.path(), "c1", 1).expect("adopted");
        assert!(dir.path().join(ID_FILE).exists());
        std::fs::write(dir.path().join(ID_FILE), "version=1\n").expect("damage");
        let msg = refused(check(dir.path(), "c1", 1));
        assert!(msg.contains("no cluster.id"), "{msg}");
    }
}
