//! Encodings of query answers for HTTP: JSON rows and the Arrow IPC stream format.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
use datafusion::arrow::record_batch::RecordBatch;

/// Media type of the Arrow IPC stream format.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// `{"columns": [{"name", "type"}...], "rows": [{column: value}...], "row_count": n}`.
/// Binary columns come out as hex strings (arrow-json's encoding); nulls are kept.
///
/// # Errors
/// A column type JSON cannot carry (a union, such as the result of `json_get`).
pub fn json(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<serde_json::Value, ArrowError> {
    let mut rows = Vec::new();
    {
        let mut w = WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut rows);
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    let rows: serde_json::Value = if rows.is_empty() {
        serde_json::Value::Array(Vec::new())
    } else {
        serde_json::from_slice(&rows).map_err(|e| ArrowError::JsonError(e.to_string()))?
    };
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    let count: usize = batches.iter().map(RecordBatch::num_rows).sum();
    Ok(serde_json::json!({ "columns": columns, "rows": rows, "row_count": count }))
}

/// Writes an Arrow IPC stream piece by piece: the schema first, then each batch, so an
/// HTTP body can be streamed as the query produces rows.
pub struct IpcPieces {
    writer: StreamWriter<Vec<u8>>,
}

impl IpcPieces {
    /// Starts a stream; [`Self::take`] then returns the schema message.
    ///
    /// # Errors
    /// A schema the IPC format cannot carry.
    pub fn new(schema: &SchemaRef) -> Result<Self, ArrowError> {
        Ok(Self {
            writer: StreamWriter::try_new(Vec::new(), schema)?,
        })
    }

    /// Adds a batch.
    ///
    /// # Errors
    /// Encoding failures.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        self.writer.write(batch)
    }

    /// Ends the stream (the end-of-stream marker).
    ///
    /// # Errors
    /// Encoding failures.
    pub fn finish(&mut self) -> Result<(), ArrowError> {
        self.writer.finish()
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }
}
