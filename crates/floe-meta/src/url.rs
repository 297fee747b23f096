//! Store URL handling: backend detection, password redaction, SQLite defaults.

use std::path::{Path, PathBuf};

use crate::{Backend, Error, Result};

/// Returns `url` with any password removed (`user:***@host`, `password=***`), for logs and errors.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let rest = &out[rest_start..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{head}{query}");
    }
    out
}

/// Which backend a URL selects.
pub(crate) fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "expected a sqlite: or postgres:// URL".into(),
        })
    }
}

/// A SQLite URL with our defaults applied, plus the database file (if on disk).
pub(crate) struct SqliteUrl {
    /// URL to hand to sqlx (`mode=rwc` added unless a mode was given).
    pub url: String,
    /// The database file, `None` for in-memory databases.
    pub file: Option<PathBuf>,
}

/// Applies SQLite defaults: create the file if missing (`mode=rwc`).
pub(crate) fn sqlite_url(url: &str) -> Result<SqliteUrl> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() && query.is_none() {
        return Err(Error::InvalidUrl {
            url: redact_url(url),
            reason: "no database file given".into(),
        });
    }
    let in_memory = path == ":memory:" || query.is_some_and(|q| q.contains("mode=memory"));
    // sqlx's `Any` driver round-trips the URL through `url::Url`, which would
    // resolve `..` against the "host" of `sqlite://../x.db`; pass absolute paths.
    let path = if in_memory || path.is_empty() || Path::new(path).is_absolute() {
        path.to_owned()
    } else {
        let cwd = std::env::current_dir().map_err(|e| Error::InvalidUrl {
            url: redact_url(url),
            reason: format!("relative path and no current directory: {e}"),
        })?;
        cwd.join(path).display().to_string()
    };
    let mut params: Vec<&str> = query
        .map(|q| q.split('&').filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    if !params.iter().any(|p| p.starts_with("mode=")) {
        params.push("mode=rwc");
    }
    let file = (!in_memory && !path.is_empty()).then(|| PathBuf::from(&path));
    let url = format!("sqlite://{path}?{}", params.join("&"));
    Ok(SqliteUrl { url, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://floe:s3cr@t@db:5432/meta"),
            "postgres://floe:***@db:5432/meta"
        );
        assert_eq!(
            redact_url("postgres://floe@db/meta?sslmode=require&password=hunter2"),
            "postgres://floe@db/meta?sslmode=require&password=***"
        );
        assert_eq!(redact_url("postgres://db/meta"), "postgres://db/meta");
        assert_eq!(
            redact_url("sqlite:///var/lib/floe/meta.db"),
            "sqlite:///var/lib/floe/meta.db"
        );
    }

    #[test]
    fn picks_backend() {
        assert_eq!(backend_of("sqlite://x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(backend_of("sqlite:x.db").ok(), Some(Backend::Sqlite));
        assert_eq!(backend_of("postgres://h/db").ok(), Some(Backend::Postgres));
        assert_eq!(
            backend_of("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            backend_of("mysql://u:pw@h/db"),
            Err(Error::InvalidUrl { url, .. }) if url == "mysql://u:***@h/db"
        ));
    }

    #[test]
    fn sqlite_defaults() {
        let u = sqlite_url("sqlite:///abs/meta.db").map_err(|e| e.to_string());
        let u = u.as_ref().map(|u| (u.url.as_str(), u.file.clone()));
        assert_eq!(
            u,
            Ok((
                "sqlite:///abs/meta.db?mode=rwc",
                Some(PathBuf::from("/abs/meta.db"))
            ))
        );
        let cwd = std::env::current_dir().map(|d| d.display().to_string());
        let cwd = cwd.unwrap_or_default();
        let u = sqlite_url("sqlite://rel.db?cache=shared").map(|u| u.url);
        let want = format!("sqlite://{cwd}/rel.db?cache=shared&mode=rwc");
        assert_eq!(u.ok(), Some(want));
        let u = sqlite_url("sqlite:data/rel.db?mode=ro").map(|u| u.url);
        let want = format!("sqlite://{cwd}/data/rel.db?mode=ro");
        assert_eq!(u.ok(), Some(want));
        let u = sqlite_url("sqlite::memory:").map(|u| u.file);
        assert_eq!(u.ok(), Some(None));
        assert!(sqlite_url("sqlite://").is_err());
    }
}
