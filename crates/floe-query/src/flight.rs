//! Arrow Flight SQL on port 50051, for ADBC and JDBC Flight SQL drivers and `floe sql`.
//!
//! A statement is planned and started in GetFlightInfo (so SQL errors come back there,
//! as `InvalidArgument` with DataFusion's message), parked under a ticket, and streamed
//! by DoGet. A parked query nobody fetches within a minute is dropped, which cancels it.
//! Prepared statements are not offered: drivers (ADBC included) fall back to plain
//! statements when the server answers "unimplemented".

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{FlightDescriptor, FlightEndpoint, FlightInfo, Ticket};
use futures::{Stream, TryStreamExt};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::engine::{QueryEngine, QueryStream};
use crate::error::Error;

/// How long a planned query waits for its DoGet.
const PARKED_FOR: Duration = Duration::from_secs(60);

/// The Flight SQL service over a [`QueryEngine`].
#[derive(Clone)]
pub struct FlightSql {
    engine: Arc<QueryEngine>,
    next: Arc<AtomicU64>,
    parked: Arc<parking_lot::Mutex<HashMap<u64, (Instant, QueryStream)>>>,
}

impl FlightSql {
    /// A service answering from `engine`.
    pub fn new(engine: Arc<QueryEngine>) -> Self {
        Self {
            engine,
            next: Arc::new(AtomicU64::new(1)),
            parked: Arc::default(),
        }
    }

    fn park(&self, stream: QueryStream) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut parked = self.parked.lock();
        parked.retain(|_, (at, _)| at.elapsed() < PARKED_FOR);
        parked.insert(id, (Instant::now(), stream));
        id
    }
}

/// A query error as the client sees it: the user's mistakes as `InvalidArgument` (ADBC
/// raises `ProgrammingError`), the rest as `Internal`, DataFusion's message either way.
pub fn status(e: &Error) -> Status {
    match e {
        Error::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        Error::Cancelled => Status::cancelled(e.to_string()),
        e if e.is_user_error() => Status::invalid_argument(e.to_string()),
        e => Status::internal(e.to_string()),
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let stream = self
            .engine
            .execute(&query.query)
            .await
            .map_err(|e| status(&e))?;
        let schema = stream.schema.clone();
        let id = self.park(stream);
        let ticket = TicketStatementQuery {
            statement_handle: id.to_be_bytes().to_vec().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&wire_schema(schema))
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(endpoint)
            .with_descriptor(request.into_inner());
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let id = <[u8; 8]>::try_from(&ticket.statement_handle[..])
            .map(u64::from_be_bytes)
            .map_err(|_| Status::invalid_argument("not a Floe statement handle"))?;
        let (_, stream) =
            self.parked.lock().remove(&id).ok_or_else(|| {
                Status::not_found("unknown, expired or already fetched statement")
            })?;
        let schema = wire_schema(stream.schema.clone());
        let batches =
            tokio_stream(stream.batches).map_err(|e| FlightError::Tonic(Box::new(status(&e))));
        let out: DoGetStream = Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(Arc::new(schema))
                .build(batches)
                .map_err(Status::from),
        );
        Ok(Response::new(out))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The schema as the encoder sends it (dictionaries hydrated), so FlightInfo and DoGet
/// agree: ADBC checks they do.
fn wire_schema(
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> datafusion::arrow::datatypes::Schema {
    let known = FlightDataEncoderBuilder::new()
        .with_schema(schema.clone())
        .build(futures::stream::empty())
        .known_schema();
    known.unwrap_or(schema).as_ref().clone()
}

fn tokio_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Serves Flight SQL on `listener` until `shutdown` is cancelled.
pub async fn serve(
    engine: Arc<QueryEngine>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().ok();
    info!(listen = ?addr, "floe is serving Arrow Flight SQL");
    let service = FlightServiceServer::new(FlightSql::new(engine));
    let served = Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            // Small answers otherwise wait out Nagle against delayed ACKs (~40 ms each way).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown.cancelled_owned(),
        )
        .await;
    if let Err(e) = served {
        warn!(error = %e, "Flight SQL server stopped with an error");
    }
}

impl std::fmt::Debug for FlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlightSql")
    }
}
