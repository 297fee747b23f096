//! HTTP on port 8181: the Iceberg REST catalog (read side: config, namespaces, list,
//! load and exists for tables), `/metrics` (Prometheus, see [`crate::metrics`]),
//! `/health` and `/ready`.
//!
//! The catalog answers from the same catalog Floe commits to, so Spark, Trino, PyIceberg
//! or DuckDB see each topic's table with the metadata location and the FileIO
//! properties they need to find the files (S3 endpoint, region, addressing). It never
//! hands out the keys Floe writes with; credentials go to readers only when the operator
//! names separate reader keys (`[lake.s3] reader_*`, see `lake::reader_properties`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::broker::Broker;

/// Builds the router.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/config", get(config))
        .route("/v1/namespaces", get(list_namespaces))
        .route(
            "/v1/namespaces/{ns}",
            get(load_namespace).head(namespace_exists),
        )
        .route("/v1/namespaces/{ns}/tables", get(list_tables))
        .route(
            "/v1/namespaces/{ns}/tables/{table}",
            get(load_table).head(table_exists),
        )
        .route(
            "/v1/namespaces/{ns}/tables/{table}/metrics",
            axum::routing::post(report_metrics),
        )
        .route("/v1/sql", axum::routing::post(sql))
        .with_state(broker)
}

/// Serves HTTP until the broker shuts down.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let shutdown = broker.shutdown.clone();
    let app = router(broker);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        warn!(error = %e, "HTTP server stopped with an error");
    }
}

/// `POST /v1/sql`: the body is the statement (plain text, or JSON `{"sql": "..."}`). The
/// answer is JSON rows, or an Arrow IPC stream with `Accept:
/// application/vnd.apache.arrow.stream`, written as the query produces it, up to `[query]
/// http_max_rows` and `http_max_bytes` (JSON then ends with `"truncated": true`; Arrow is
/// cut off); a client that hangs up cancels the query. Errors before the first rows are
/// JSON `{"error": message}` with the status of [`sql_status`].
async fn sql(
    State(broker): State<Arc<Broker>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use floe_query::answer;
    let fail = |status: StatusCode, message: String| {
        (status, Json(json!({ "error": message }))).into_response()
    };
    let Some(engine) = broker.query.get().cloned() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "SQL is off on this broker ([query] enabled = false, or the lake is off)".into(),
        );
    };
    let header = |name: axum::http::header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let statement = match sql_statement(&header(axum::http::header::CONTENT_TYPE), &body) {
        Ok(s) => s,
        Err(message) => return fail(StatusCode::BAD_REQUEST, message),
    };
    let format = if header(axum::http::header::ACCEPT).contains(answer::ARROW_STREAM) {
        answer::Format::ArrowStream
    } else {
        answer::Format::Json
    };
    let q = &broker.config.query;
    let limits = answer::AnswerLimits {
        max_rows: q.http_max_rows,
        max_bytes: q.http_max_bytes,
    };
    let answer = match engine.answer(&statement, format, limits).await {
        Ok(a) => a,
        Err(e) => {
            let mut message = e.to_string();
            if matches!(e, floe_query::Error::Answer(_)) && format == answer::Format::Json {
                message.push_str(" (cast the column to a string, or ask for Arrow IPC)");
            }
            let mut r = fail(sql_status(&e), message);
            if e.kind() == floe_query::ErrorKind::Busy {
                r.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
            }
            return r;
        }
    };
    let content_type = match format {
        answer::Format::ArrowStream => answer::ARROW_STREAM,
        answer::Format::Json => "application/json",
    };
    let body = answer
        .into_stream()
        .map(|piece| piece.map_err(std::io::Error::other));
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// The statement of a `POST /v1/sql` body: the text itself, or the `sql` member of a JSON
/// object when the content type is JSON.
///
/// # Errors
/// A readable message for a body that is not what its content type says.
pub(crate) fn sql_statement(content_type: &str, body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    if !content_type.starts_with("application/json") {
        return Ok(text.into_owned());
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => v
            .get("sql")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "expected {\"sql\": \"...\"}".to_owned()),
        Err(e) => Err(format!("the body is not JSON: {e}")),
    }
}

/// The HTTP status of a query error: the statement's fault 400, busy 503 (with
/// `Retry-After`), past the time limit 504, anything else 500.
fn sql_status(e: &floe_query::Error) -> StatusCode {
    match e.kind() {
        floe_query::ErrorKind::User => StatusCode::BAD_REQUEST,
        floe_query::ErrorKind::Busy | floe_query::ErrorKind::Unavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        floe_query::ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        floe_query::ErrorKind::Cancelled | floe_query::ErrorKind::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// An Iceberg REST `ErrorModel` response.
fn error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "code": status.as_u16() } });
    (status, Json(body)).into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    warn!(error = %e, "REST catalog request failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
        format!("the catalog behind Floe is unavailable: {e}"),
    )
}

fn from_iceberg(e: iceberg::Error, what: &str) -> Response {
    match e.kind() {
        iceberg::ErrorKind::NamespaceNotFound => error(
            StatusCode::NOT_FOUND,
            "NoSuchNamespaceException",
            format!("namespace does not exist: {what}"),
        ),
        iceberg::ErrorKind::TableNotFound => error(
            StatusCode::NOT_FOUND,
            "NoSuchTableException",
            format!("table does not exist: {what}"),
        ),
        _ => unavailable(e),
    }
}

#[allow(clippy::result_large_err)]
async fn catalog(broker: &Broker) -> Result<Arc<dyn Catalog>, Response> {
    let Some(lake) = &broker.lake else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            "the lake is disabled on this broker".into(),
        ));
    };
    lake.catalog().await.map_err(unavailable)
}

/// The most levels a namespace path segment may name (Floe's tables live one level
/// deep; a client could otherwise make the broker split a path into millions).
const MAX_NAMESPACE_LEVELS: usize = 16;

/// A namespace path segment: levels joined by the unit separator (0x1F), per the spec.
///
/// # Errors
/// A readable message for an empty level list, an empty level, or too many levels.
pub(crate) fn parse_namespace(ns: &str) -> Result<NamespaceIdent, String> {
    let levels: Vec<String> = ns
        .split('\u{1f}')
        .take(MAX_NAMESPACE_LEVELS + 1)
        .map(str::to_owned)
        .collect();
    if levels.len() > MAX_NAMESPACE_LEVELS {
        return Err(format!("more than {MAX_NAMESPACE_LEVELS} namespace levels"));
    }
    if levels.iter().any(String::is_empty) {
        return Err("a namespace level is empty".into());
    }
    NamespaceIdent::from_vec(levels).map_err(|e| e.to_string())
}

/// [`parse_namespace`], failing as the REST answer itself.
// An error here is the HTTP answer itself; boxing it would only add noise.
#[allow(clippy::result_large_err)]
fn namespace(ns: &str) -> Result<NamespaceIdent, Response> {
    parse_namespace(ns).map_err(|e| {
        let shown: String = ns.chars().take(200).collect();
        error(
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            format!("bad namespace {shown:?}: {e}"),
        )
    })
}

async fn metrics(State(broker): State<Arc<Broker>>) -> Response {
    match crate::metrics::render(&broker.metrics, &broker).await {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response()
        }
    }
}

async fn ready(State(broker): State<Arc<Broker>>) -> Response {
    if broker.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    (StatusCode::OK, "ready").into_response()
}

async fn config(State(broker): State<Arc<Broker>>) -> Response {
    let defaults: HashMap<String, String> = match &broker.lake {
        Some(lake) => {
            let mut d = lake.reader_properties.clone();
            d.insert("warehouse".into(), lake.options.warehouse.clone());
            d
        }
        None => HashMap::new(),
    };
    Json(json!({ "defaults": defaults, "overrides": {} })).into_response()
}

async fn list_namespaces(State(broker): State<Arc<Broker>>) -> Response {
    let catalog = match catalog(&broker).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match catalog.list_namespaces(None).await {
        Ok(list) => {
            let namespaces: Vec<Value> = list.into_iter().map(|n| json!(n.inner())).collect();
            Json(json!({ "namespaces": namespaces })).into_response()
        }
        Err(e) => unavailable(e),
    }
}

async fn load_namespace(State(broker): State<Arc<Broker>>, Path(ns): Path<String>) -> Response {
    let (catalog, ident) = match (catalog(&broker).await, namespace(&ns)) {
        (Ok(c), Ok(i)) => (c, i),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match catalog.get_namespace(&ident).await {
        Ok(n) => {
            Json(json!({ "namespace": n.name().clone().inner(), "properties": n.properties() }))
                .into_response()
        }
        Err(e) => from_iceberg(e, &ns),
    }
}

async fn namespace_exists(State(broker): State<Arc<Broker>>, Path(ns): Path<String>) -> Response {
    let (catalog, ident) = match (catalog(&broker).await, namespace(&ns)) {
        (Ok(c), Ok(i)) => (c, i),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match catalog.namespace_exists(&ident).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => unavailable(e),
    }
}

async fn list_tables(State(broker): State<Arc<Broker>>, Path(ns): Path<String>) -> Response {
    let (catalog, ident) = match (catalog(&broker).await, namespace(&ns)) {
        (Ok(c), Ok(i)) => (c, i),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match catalog.list_tables(&ident).await {
        Ok(tables) => {
            let identifiers: Vec<Value> = tables
                .into_iter()
                .map(|t| json!({ "namespace": t.namespace().clone().inner(), "name": t.name() }))
                .collect();
            Json(json!({ "identifiers": identifiers })).into_response()
        }
        Err(e) => from_iceberg(e, &ns),
    }
}

async fn load_table(
    State(broker): State<Arc<Broker>>,
    Path((ns, table)): Path<(String, String)>,
) -> Response {
    let (catalog, ident) = match (catalog(&broker).await, namespace(&ns)) {
        (Ok(c), Ok(i)) => (c, TableIdent::new(i, table.clone())),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let loaded = match catalog.load_table(&ident).await {
        Ok(t) => t,
        Err(e) => return from_iceberg(e, &format!("{ns}.{table}")),
    };
    let metadata = match serde_json::to_value(loaded.metadata()) {
        Ok(m) => m,
        Err(e) => return unavailable(e),
    };
    // The FileIO properties a reader needs to find the files; credentials only when the
    // operator named reader keys.
    let config = broker
        .lake
        .as_ref()
        .map(|l| l.reader_properties.clone())
        .unwrap_or_default();
    Json(json!({
        "metadata-location": loaded.metadata_location(),
        "metadata": metadata,
        "config": config,
    }))
    .into_response()
}

async fn table_exists(
    State(broker): State<Arc<Broker>>,
    Path((ns, table)): Path<(String, String)>,
) -> Response {
    let (catalog, ident) = match (catalog(&broker).await, namespace(&ns)) {
        (Ok(c), Ok(i)) => (c, TableIdent::new(i, table)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    match catalog.table_exists(&ident).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => unavailable(e),
    }
}

/// `reportMetrics`: Iceberg clients (Spark, Flink) post a scan or commit report after
/// each read. Accepted and dropped: the broker's own metrics are on `/metrics`. Without
/// it those clients log an error after every query.
async fn report_metrics(Path((ns, table)): Path<(String, String)>) -> StatusCode {
    tracing::trace!(namespace = %ns, table = %table, "Iceberg client metrics report dropped");
    StatusCode::NO_CONTENT
}

/// Binds the HTTP listener.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(addr: &str) -> crate::error::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| crate::error::Error::Bind {
            addr: addr.to_owned(),
            source,
        })?;
    if let Ok(a) = listener.local_addr() {
        info!(listen = %a, "HTTP (Iceberg REST catalog, metrics, health) is serving");
    }
    Ok(listener)
}
