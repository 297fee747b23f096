//! The Confluent Schema Registry REST API over [`Registry`]: decode the request, one
//! call, encode the answer. Bodies are `application/vnd.schemaregistry.v1+json`; errors
//! are `{"error_code": N, "message": "..."}` with the status of [`Error::status`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::registry::{Registered, Registry, SchemaRequest, VersionSpec};
use crate::schema::{self, SchemaType};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

type Params = Query<HashMap<String, String>>;
type Shared = State<Arc<Registry>>;

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(registry: Arc<Registry>, listener: TcpListener, shutdown: CancellationToken) {
    if let Err(e) = axum::serve(listener, router(registry))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        warn!(error = %e, "schema registry stopped with an error");
    }
}

/// The API's routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { answer(Ok(json!({}))) }))
        .route("/schemas/types", get(types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatible_with_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatible),
        )
        .route(
            "/config",
            get(global_config)
                .put(set_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/mode",
            get(global_mode)
                .put(set_global_mode)
                .delete(delete_global_mode),
        )
        .route(
            "/mode/{subject}",
            get(subject_mode)
                .put(set_subject_mode)
                .delete(delete_subject_mode),
        )
        .with_state(registry)
}

fn answer(result: Result<Value>) -> Response {
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                warn!(error = %e, source = ?std::error::Error::source(&e), "schema registry request failed");
            } else {
                debug!(error = %e, "schema registry request refused");
            }
            let body = json!({ "error_code": e.code(), "message": e.to_string() });
            (
                status,
                [(header::CONTENT_TYPE, CONTENT_TYPE)],
                body.to_string(),
            )
                .into_response()
        }
    }
}

fn raw(result: Result<String>) -> Response {
    match result {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => answer(Err(e)),
    }
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::BadRequest(e.to_string()))
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn id_of(s: &str) -> Result<i64> {
    s.parse().map_err(|_| Error::SchemaNotFound(s.to_string()))
}

/// A version as `GET /subjects/{s}/versions/{v}` answers it; Confluent leaves out
/// `schemaType` for Avro and `references` when there are none.
fn version_json(r: &Registered) -> Value {
    let mut v = json!({
        "subject": r.subject,
        "version": r.version,
        "id": r.id,
        "schema": r.schema,
    });
    decorate(&mut v, r.schema_type, &r.references);
    v
}

fn decorate(v: &mut Value, ty: SchemaType, refs: &[crate::schema::Reference]) {
    if ty != SchemaType::Avro {
        v["schemaType"] = json!(ty.as_str());
    }
    if !refs.is_empty() {
        v["references"] = json!(refs);
    }
}

async fn types() -> Response {
    let names: Vec<&str> = SchemaType::ALL.iter().map(|t| t.as_str()).collect();
    answer(Ok(json!(names)))
}

async fn schema_by_id(State(r): Shared, Path(id): Path<String>, Query(p): Params) -> Response {
    answer(
        async {
            let (stored, ty, refs) = r.schema(id_of(&id)?).await?;
            let text = schema::in_format(ty, &stored.schema, p.get("format").map(String::as_str))
                .map_err(|e| Error::Corrupt(format!("schema {id}: {e}")))?;
            let mut v = json!({ "schema": text });
            decorate(&mut v, ty, &refs);
            Ok(v)
        }
        .await,
    )
}

async fn raw_schema_by_id(State(r): Shared, Path(id): Path<String>) -> Response {
    raw(async { Ok(r.schema(id_of(&id)?).await?.0.schema) }.await)
}

async fn id_versions(State(r): Shared, Path(id): Path<String>, Query(p): Params) -> Response {
    answer(
        async {
            let pairs = r.id_versions(id_of(&id)?, flag(&p, "deleted")).await?;
            Ok(json!(pairs
                .into_iter()
                .map(|(subject, version)| json!({"subject": subject, "version": version}))
                .collect::<Vec<_>>()))
        }
        .await,
    )
}

async fn id_subjects(State(r): Shared, Path(id): Path<String>, Query(p): Params) -> Response {
    answer(
        async {
            let mut subjects: Vec<String> = r
                .id_versions(id_of(&id)?, flag(&p, "deleted"))
                .await?
                .into_iter()
                .map(|(s, _)| s)
                .collect();
            subjects.dedup();
            Ok(json!(subjects))
        }
        .await,
    )
}

async fn subjects(State(r): Shared, Query(p): Params) -> Response {
    let prefix = p.get("subjectPrefix").map_or("", String::as_str);
    answer(
        r.subjects(flag(&p, "deleted"), prefix)
            .await
            .map(|s| json!(s)),
    )
}

async fn versions(State(r): Shared, Path(subject): Path<String>, Query(p): Params) -> Response {
    answer(
        r.versions(&subject, flag(&p, "deleted"))
            .await
            .map(|v| json!(v)),
    )
}

async fn register(State(r): Shared, Path(subject): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let registered = r.register(&subject, body::<SchemaRequest>(&bytes)?).await?;
            Ok(json!({ "id": registered.id, "version": registered.version, "subject": registered.subject }))
        }
        .await,
    )
}

async fn lookup(
    State(r): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let found = r
                .lookup(
                    &subject,
                    body::<SchemaRequest>(&bytes)?,
                    flag(&p, "deleted"),
                )
                .await?;
            Ok(version_json(&found))
        }
        .await,
    )
}

async fn delete_subject(
    State(r): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        r.delete_subject(&subject, flag(&p, "permanent"))
            .await
            .map(|v| json!(v)),
    )
}

async fn version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let mut found = r
                .version(&subject, VersionSpec::parse(&version)?, flag(&p, "deleted"))
                .await?;
            found.schema = schema::in_format(
                found.schema_type,
                &found.schema,
                p.get("format").map(String::as_str),
            )
            .map_err(|e| Error::Corrupt(format!("schema {}: {e}", found.id)))?;
            Ok(version_json(&found))
        }
        .await,
    )
}

async fn raw_version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    raw(async {
        Ok(
            r.version(&subject, VersionSpec::parse(&version)?, flag(&p, "deleted"))
                .await?
                .schema,
        )
    }
    .await)
}

async fn delete_version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Response {
    answer(
        async {
            let v = r
                .delete_version(
                    &subject,
                    VersionSpec::parse(&version)?,
                    flag(&p, "permanent"),
                )
                .await?;
            Ok(json!(v))
        }
        .await,
    )
}

async fn referenced_by(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Response {
    answer(
        async {
            Ok(json!(
                r.referenced_by(&subject, VersionSpec::parse(&version)?)
                    .await?
            ))
        }
        .await,
    )
}

fn compatibility_json(messages: Vec<String>, verbose: bool) -> Value {
    let mut v = json!({ "is_compatible": messages.is_empty() });
    if verbose {
        v["messages"] = json!(messages);
    }
    v
}

async fn compatible_with_version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let spec = VersionSpec::parse(&version)?;
            let messages = r
                .test_compatibility(&subject, Some(spec), body(&bytes)?)
                .await?;
            Ok(compatibility_json(messages, flag(&p, "verbose")))
        }
        .await,
    )
}

async fn compatible(
    State(r): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let messages = r.test_compatibility(&subject, None, body(&bytes)?).await?;
            Ok(compatibility_json(messages, flag(&p, "verbose")))
        }
        .await,
    )
}

/// `{"compatibility": "FULL"}` (a PUT to `/config`).
#[derive(serde::Deserialize)]
struct ConfigBody {
    compatibility: String,
}

/// `{"mode": "READONLY"}` (a PUT to `/mode`).
#[derive(serde::Deserialize)]
struct ModeBody {
    mode: String,
}

async fn global_config(State(r): Shared) -> Response {
    answer(
        r.compatibility(None, true)
            .await
            .map(|l| json!({"compatibilityLevel": l.as_str()})),
    )
}

async fn set_global_config(State(r): Shared, bytes: Bytes) -> Response {
    answer(
        async {
            let b: ConfigBody = body(&bytes)?;
            Ok(json!({"compatibility": r.set_compatibility(None, &b.compatibility).await?.as_str()}))
        }
        .await,
    )
}

async fn delete_global_config(State(r): Shared) -> Response {
    answer(
        r.delete_compatibility(None)
            .await
            .map(|l| json!({"compatibilityLevel": l.as_str()})),
    )
}

async fn subject_config(
    State(r): Shared,
    Path(subject): Path<String>,
    Query(p): Params,
) -> Response {
    answer(
        r.compatibility(Some(&subject), flag(&p, "defaultToGlobal"))
            .await
            .map(|l| json!({"compatibilityLevel": l.as_str()})),
    )
}

async fn set_subject_config(
    State(r): Shared,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> Response {
    answer(
        async {
            let b: ConfigBody = body(&bytes)?;
            Ok(json!({"compatibility": r.set_compatibility(Some(&subject), &b.compatibility).await?.as_str()}))
        }
        .await,
    )
}

async fn delete_subject_config(State(r): Shared, Path(subject): Path<String>) -> Response {
    answer(
        r.delete_compatibility(Some(&subject))
            .await
            .map(|l| json!({"compatibilityLevel": l.as_str()})),
    )
}

async fn global_mode(State(r): Shared) -> Response {
    answer(
        r.mode(None, true)
            .await
            .map(|m| json!({"mode": m.as_str()})),
    )
}

async fn set_global_mode(State(r): Shared, bytes: Bytes) -> Response {
    answer(
        async {
            let b: ModeBody = body(&bytes)?;
            Ok(json!({"mode": r.set_mode(None, &b.mode).await?.as_str()}))
        }
        .await,
    )
}

async fn delete_global_mode(State(r): Shared) -> Response {
    answer(
        r.delete_mode(None)
            .await
            .map(|m| json!({"mode": m.as_str()})),
    )
}

async fn subject_mode(State(r): Shared, Path(subject): Path<String>, Query(p): Params) -> Response {
    answer(
        r.mode(Some(&subject), flag(&p, "defaultToGlobal"))
            .await
            .map(|m| json!({"mode": m.as_str()})),
    )
}

async fn set_subject_mode(State(r): Shared, Path(subject): Path<String>, bytes: Bytes) -> Response {
    answer(
        async {
            let b: ModeBody = body(&bytes)?;
            Ok(json!({"mode": r.set_mode(Some(&subject), &b.mode).await?.as_str()}))
        }
        .await,
    )
}

async fn delete_subject_mode(State(r): Shared, Path(subject): Path<String>) -> Response {
    answer(
        r.delete_mode(Some(&subject))
            .await
            .map(|m| json!({"mode": m.as_str()})),
    )
}
