//! Arrow Flight SQL on port 50051, for ADBC and JDBC Flight SQL drivers and `floe sql`.
//!
//! A statement is planned in GetFlightInfo (so SQL errors come back there, as
//! `InvalidArgument` with DataFusion's message), parked under a ticket, and started and
//! streamed by DoGet: a parked statement holds no turn among `[query] max_concurrent`, so
//! clients that plan and never fetch cannot keep others out. A ticket is 128 random
//! bits, good only on the connection that planned it (its peer address: a driver that
//! fetches on another connection gets `NOT_FOUND`), once, and for `[query]
//! flight_ticket_ttl`; a task sweeps the statements nobody fetched in time. Prepared
//! statements are not offered: drivers (ADBC included) fall back to plain statements
//! when the server answers "unimplemented".

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
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

use crate::engine::{Prepared, QueryEngine};
use crate::error::{Error, ErrorKind};

/// A planned query waiting for its DoGet.
struct Parked {
    since: Instant,
    /// The connection that planned it; None when the transport does not say.
    owner: Option<SocketAddr>,
    statement: Prepared,
}

/// The Flight SQL service over a [`QueryEngine`].
#[derive(Clone)]
pub struct FlightSql {
    engine: Arc<QueryEngine>,
    ttl: Duration,
    parked: Arc<parking_lot::Mutex<HashMap<[u8; 16], Parked>>>,
}

impl FlightSql {
    /// A service answering from `engine`, whose tickets are good for `ttl`.
    pub fn new(engine: Arc<QueryEngine>, ttl: Duration) -> Self {
        Self {
            engine,
            ttl,
            parked: Arc::default(),
        }
    }

    fn park(&self, statement: Prepared, owner: Option<SocketAddr>) -> [u8; 16] {
        let handle = *uuid::Uuid::new_v4().as_bytes();
        self.parked.lock().insert(
            handle,
            Parked {
                since: Instant::now(),
                owner,
                statement,
            },
        );
        self.count_parked();
        handle
    }

    /// Publishes how many statements are parked (`QueryStats::parked`).
    fn count_parked(&self) {
        let n = self.parked.lock().len() as u64;
        self.engine
            .stats()
            .parked
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops the parked statements older than the ticket lifetime.
    fn sweep(&self) -> usize {
        let dropped = {
            let mut parked = self.parked.lock();
            let before = parked.len();
            parked.retain(|_, p| p.since.elapsed() < self.ttl);
            before - parked.len()
        };
        self.count_parked();
        dropped
    }

    /// Queries parked now (tests).
    pub fn parked(&self) -> usize {
        self.parked.lock().len()
    }

    /// Sweeps expired tickets every quarter of their lifetime (at least every second)
    /// until `shutdown`.
    pub async fn run_sweeper(self, shutdown: CancellationToken) {
        let every = (self.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {
                    let dropped = self.sweep();
                    if dropped > 0 {
                        tracing::debug!(dropped, "planned Flight SQL queries expired without a DoGet");
                    }
                }
            }
        }
    }
}

/// The statement handle of a DoGet ticket, parsed as DoGet parses it: a protobuf `Any`
/// holding a Flight SQL `TicketStatementQuery`, whose handle is Floe's 16 random bytes.
///
/// # Errors
/// `InvalidArgument` for anything else.
pub fn parse_ticket(ticket: &[u8]) -> Result<[u8; 16], Status> {
    use arrow_flight::sql::{Any, Command};
    let any = Any::decode(ticket).map_err(|e| Status::invalid_argument(e.to_string()))?;
    match Command::try_from(any).map_err(|e| Status::invalid_argument(e.to_string()))? {
        Command::TicketStatementQuery(t) => <[u8; 16]>::try_from(&t.statement_handle[..])
            .map_err(|_| Status::invalid_argument("not a Floe statement handle")),
        other => Err(Status::invalid_argument(format!(
            "not a statement ticket: {}",
            other.type_url()
        ))),
    }
}

/// A query error as the client sees it, by [`ErrorKind`]: the user's mistakes as
/// `InvalidArgument` (ADBC raises `ProgrammingError`), busy as `Unavailable` (retriable),
/// DataFusion's message either way.
pub fn status(e: &Error) -> Status {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::User => Status::invalid_argument(message),
        ErrorKind::Busy | ErrorKind::Unavailable => Status::unavailable(message),
        ErrorKind::Timeout => Status::deadline_exceeded(message),
        ErrorKind::Cancelled => Status::cancelled(message),
        ErrorKind::Internal => Status::internal(message),
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
        let owner = request.remote_addr();
        let statement = self
            .engine
            .prepare(&query.query)
            .await
            .map_err(|e| status(&e))?;
        let schema = statement.schema.clone();
        let handle = self.park(statement, owner);
        let ticket = TicketStatementQuery {
            statement_handle: handle.to_vec().into(),
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
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let handle = <[u8; 16]>::try_from(&ticket.statement_handle[..])
            .map_err(|_| Status::invalid_argument("not a Floe statement handle"))?;
        // DoGet decoded the ticket as `parse_ticket` does (fuzzed there).
        let peer = request.remote_addr();
        let statement = {
            let mut parked = self.parked.lock();
            // Another connection's ticket is answered as if it did not exist.
            match parked.get(&handle) {
                Some(p) if p.owner == peer && p.since.elapsed() < self.ttl => {
                    parked.remove(&handle).map(|p| p.statement)
                }
                _ => None,
            }
        }
        .ok_or_else(|| Status::not_found("unknown, expired or already fetched statement"))?;
        self.count_parked();
        let stream = self.engine.start(statement).await.map_err(|e| status(&e))?;
        let schema = wire_schema(stream.schema.clone());
        let batches = stream.map_err(|e| FlightError::Tonic(Box::new(status(&e))));
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

/// Serves Flight SQL on `listener` until `shutdown` is cancelled.
pub async fn serve(
    engine: Arc<QueryEngine>,
    listener: tokio::net::TcpListener,
    ticket_ttl: Duration,
    shutdown: CancellationToken,
) {
    let addr = listener.local_addr().ok();
    info!(listen = ?addr, "floe is serving Arrow Flight SQL");
    let flight = FlightSql::new(engine, ticket_ttl);
    let mut sweeper = tokio::task::JoinSet::new();
    sweeper.spawn(flight.clone().run_sweeper(shutdown.clone()));
    let service = FlightServiceServer::new(flight);
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
    sweeper.abort_all();
}

impl std::fmt::Debug for FlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlightSql")
    }
}
