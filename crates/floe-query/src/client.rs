//! A Flight SQL client for `floe sql` and the SQL benchmarks: runs one statement against
//! a broker and returns its batches.

use arrow_flight::error::FlightError;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use futures::{Stream, StreamExt, TryStreamExt};
use tonic::transport::{Channel, Endpoint};

/// A connection to a broker's Flight SQL port.
pub struct SqlClient {
    inner: FlightSqlServiceClient<Channel>,
}

/// A statement planned by [`SqlClient::plan`], to fetch later.
#[derive(Debug, Clone)]
pub struct Planned(arrow_flight::Ticket);

impl Planned {
    /// The statement handle inside the ticket (Floe's are 16 random bytes).
    ///
    /// # Errors
    /// A ticket that is not a Flight SQL statement ticket.
    pub fn handle(&self) -> Result<Vec<u8>, ClientError> {
        use arrow_flight::sql::{Any, TicketStatementQuery};
        use prost::Message;
        let any = Any::decode(self.0.ticket.clone())
            .map_err(|e| ClientError(format!("not a Flight SQL ticket: {e}")))?;
        let t: TicketStatementQuery = any
            .unpack()
            .map_err(|e| ClientError(format!("not a statement ticket: {e}")))?
            .ok_or_else(|| ClientError("not a statement ticket".into()))?;
        Ok(t.statement_handle.to_vec())
    }

    /// A ticket for the statement handle `handle` (for trying handles one was not given).
    pub fn from_handle(handle: Vec<u8>) -> Self {
        use arrow_flight::sql::{ProstMessageExt, TicketStatementQuery};
        use prost::Message;
        let t = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        Self(arrow_flight::Ticket::new(t.as_any().encode_to_vec()))
    }
}

/// Why a statement failed, as the user should read it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(String);

impl From<ArrowError> for ClientError {
    fn from(e: ArrowError) -> Self {
        Self::from_text(e.to_string())
    }
}

impl From<FlightError> for ClientError {
    fn from(e: FlightError) -> Self {
        match e {
            FlightError::Tonic(status) => Self(status.message().to_owned()),
            e => Self::from_text(e.to_string()),
        }
    }
}

impl ClientError {
    fn from_text(text: String) -> Self {
        // Server errors can arrive wrapped ("... Status { code: InvalidArgument, message:
        // \"...\" ..."); the status message is the part worth showing.
        let message = text
            .split_once("message: \"")
            .and_then(|(_, rest)| rest.split_once("\", "))
            .map_or(text.clone(), |(m, _)| {
                m.replace("\\\"", "\"").replace("\\n", "\n")
            });
        Self(message)
    }
}

impl SqlClient {
    /// Connects to `url` (`grpc://host:50051` or `http://host:50051`).
    ///
    /// # Errors
    /// A bad URL or nothing listening there.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        let url = url.replacen("grpc://", "http://", 1);
        let channel = Endpoint::from_shared(url.clone())
            .map_err(|e| ClientError(format!("bad Flight SQL address {url}: {e}")))?
            .connect()
            .await
            .map_err(|e| ClientError(format!("cannot connect to Flight SQL at {url}: {e}")))?;
        Ok(Self {
            inner: FlightSqlServiceClient::new(channel),
        })
    }

    /// Runs `sql`, returning its schema and a stream of its batches.
    ///
    /// # Errors
    /// The server refused the statement (its message), or the connection failed.
    pub async fn stream(
        &mut self,
        sql: &str,
    ) -> Result<
        (
            SchemaRef,
            impl Stream<Item = Result<RecordBatch, ClientError>>,
        ),
        ClientError,
    > {
        let info = self.inner.execute(sql.to_owned(), None).await?;
        let schema = std::sync::Arc::new(info.clone().try_decode_schema()?);
        let mut streams = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or_else(|| {
                ClientError("the server sent an endpoint without a ticket".into())
            })?;
            streams.push(self.inner.do_get(ticket).await?);
        }
        let batches = futures::stream::iter(streams)
            .flatten()
            .map_err(ClientError::from);
        Ok((schema, batches))
    }

    /// Plans `sql` (Flight SQL GetFlightInfo) without fetching its answer.
    ///
    /// # Errors
    /// The server refused the statement (its message), or the connection failed.
    pub async fn plan(&mut self, sql: &str) -> Result<Planned, ClientError> {
        let info = self.inner.execute(sql.to_owned(), None).await?;
        let ticket = info
            .endpoint
            .into_iter()
            .find_map(|e| e.ticket)
            .ok_or_else(|| ClientError("the server sent no ticket".into()))?;
        Ok(Planned(ticket))
    }

    /// Fetches a planned statement's answer (Flight DoGet).
    ///
    /// # Errors
    /// The server does not know the ticket (unknown, expired, fetched already, or
    /// another connection's), or the connection failed.
    pub async fn fetch(&mut self, planned: &Planned) -> Result<Vec<RecordBatch>, ClientError> {
        let stream = self.inner.do_get(planned.0.clone()).await?;
        stream.map_err(ClientError::from).try_collect().await
    }

    /// Runs `sql` and collects every batch.
    ///
    /// # Errors
    /// As [`Self::stream`], and failures while reading.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
        let (schema, batches) = self.stream(sql).await?;
        Ok((schema, batches.try_collect().await?))
    }
}
