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

    /// Runs `sql` and collects every batch.
    ///
    /// # Errors
    /// As [`Self::stream`], and failures while reading.
    pub async fn query(&mut self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), ClientError> {
        let (schema, batches) = self.stream(sql).await?;
        Ok((schema, batches.try_collect().await?))
    }
}
