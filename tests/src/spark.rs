//! Spark 3.5 with the Iceberg 1.10 runtime (installed by `scripts/spark-setup.sh`),
//! reading topic tables through Floe's REST catalog with the shipped configuration
//! `catalog/spark-3.5-iceberg-1.10.conf`.

use std::path::PathBuf;
use std::process::Command;

/// Where `scripts/spark-setup.sh` installs Spark (`FLOE_SPARK_DIR`, default
/// `~/.cache/floe-spark`).
fn spark_dir() -> PathBuf {
    std::env::var_os("FLOE_SPARK_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/floe-spark"),
        PathBuf::from,
    )
}

/// The Iceberg Spark runtime jar `scripts/spark-setup.sh` fetched.
pub fn iceberg_jar() -> PathBuf {
    spark_dir().join("jars/iceberg-spark-runtime-3.5_2.12-1.10.2.jar")
}

/// The folder holding `spark-sql`, and the `SPARK_HOME` it needs (pyspark's package
/// folder in the venv, whatever the Python version). Panics when Spark is not installed.
pub fn spark_paths() -> (PathBuf, PathBuf) {
    let dir = spark_dir();
    let bin = dir.join("venv/bin");
    let spark_home = std::fs::read_dir(dir.join("venv/lib"))
        .ok()
        .and_then(|mut d| d.find_map(|e| Some(e.ok()?.path().join("site-packages/pyspark"))))
        .unwrap_or_default();
    assert!(
        bin.join("spark-sql").exists() && spark_home.exists() && iceberg_jar().exists(),
        "Spark is not installed in {}: run scripts/spark-setup.sh (scripts/test.sh does)",
        dir.display()
    );
    (bin, spark_home)
}

/// Runs `sql` with `spark-sql` against the REST catalog at `rest_uri`, with the settings of
/// `catalog/spark-3.5-iceberg-1.10.conf` (only the URI replaced), and returns the lines
/// it printed. Panics with Spark's output when it fails.
pub fn spark_sql(rest_uri: &str, sql: &str) -> Vec<String> {
    let (bin, spark_home) = spark_paths();
    let conf = crate::package_path("../catalog/spark-3.5-iceberg-1.10.conf");
    // spark-sql leaves metastore_db/ and derby.log in its working directory.
    let work = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin.join("spark-sql"))
        .current_dir(work.path())
        .env("SPARK_HOME", &spark_home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .args(["--master", "local[1]", "--driver-memory", "1g"])
        .arg("--jars")
        .arg(iceberg_jar())
        .arg("--properties-file")
        .arg(conf)
        .args(["--conf", &format!("spark.sql.catalog.floe.uri={rest_uri}")])
        .args(["--conf", "spark.ui.enabled=false"])
        .args(["-S", "-e", sql])
        .output()
        .expect("run spark-sql");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "spark-sql failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}
