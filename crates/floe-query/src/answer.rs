//! Encodings of query answers for HTTP: JSON rows and the Arrow IPC stream format.
//!
//! An HTTP answer is written as the query produces it ([`Encoder`]), never built whole in
//! memory, and stops at a row and a byte limit ([`AnswerLimits`]): a JSON answer then
//! ends with `"truncated": true`, an Arrow IPC answer is cut off with an error (the IPC
//! stream format has no place for a marker, and a stream that ends cleanly would look
//! complete).

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::writer::{JsonArray, LineDelimited, WriterBuilder};
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

/// How much one HTTP answer may carry.
#[derive(Debug, Clone, Copy)]
pub struct AnswerLimits {
    /// Rows.
    pub max_rows: usize,
    /// Bytes of the encoded answer, checked every [`SLICE_ROWS`] rows.
    pub max_bytes: usize,
}

/// Rows encoded at a time: the byte limit may be passed by at most one such slice.
pub const SLICE_ROWS: usize = 1024;

/// Bytes of the values of `batch` (its slice only, not buffers it shares).
fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// The wire format of an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"columns": [...], "rows": [...], "row_count": n, "truncated": bool}`.
    Json,
    /// The Arrow IPC stream format ([`ARROW_STREAM`]).
    ArrowStream,
}

/// What [`Encoder::batch`] says about the answer after a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More rows may follow.
    More,
    /// A limit was reached: nothing more goes in; [`Encoder::finish`] says so.
    Full,
}

/// Encodes an answer piece by piece, within its limits.
pub struct Encoder {
    format: Format,
    limits: AnswerLimits,
    rows: usize,
    bytes: usize,
    truncated: bool,
    wrote_row: bool,
    out: Vec<u8>,
    ipc: Option<IpcPieces>,
}

impl Encoder {
    /// Starts an answer of `schema` (its head is in the first [`Self::take`]).
    ///
    /// # Errors
    /// A schema the format cannot carry.
    pub fn new(
        schema: &SchemaRef,
        format: Format,
        limits: AnswerLimits,
    ) -> Result<Self, ArrowError> {
        let mut e = Self {
            format,
            limits,
            rows: 0,
            bytes: 0,
            truncated: false,
            wrote_row: false,
            out: Vec::new(),
            ipc: None,
        };
        match format {
            Format::Json => {
                let columns: Vec<_> = schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({ "name": f.name(), "type": f.data_type().to_string() }))
                    .collect();
                e.out.extend_from_slice(b"{\"columns\":");
                serde_json::to_writer(&mut e.out, &columns)
                    .map_err(|err| ArrowError::JsonError(err.to_string()))?;
                e.out.extend_from_slice(b",\"rows\":[");
            }
            Format::ArrowStream => {
                let mut ipc = IpcPieces::new(schema)?;
                e.out = ipc.take();
                e.ipc = Some(ipc);
            }
        }
        Ok(e)
    }

    /// Adds a batch, up to the limits.
    ///
    /// # Errors
    /// A value the format cannot carry (JSON: a union column, such as `json_get`'s).
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Progress, ArrowError> {
        let mut at = 0;
        while at < batch.num_rows() {
            if self.rows >= self.limits.max_rows || self.bytes >= self.limits.max_bytes {
                self.truncated = true;
                return Ok(Progress::Full);
            }
            let mut take = SLICE_ROWS
                .min(batch.num_rows() - at)
                .min(self.limits.max_rows - self.rows);
            if self.ipc.is_none() {
                // JSON may spend six bytes on one (a control character is `\u00XX`):
                // encode no more rows at once than could fit what is left, so that the
                // answer never builds far past its limit in memory.
                let left = self.limits.max_bytes.saturating_sub(self.bytes);
                while take > 1 && 6 * slice_bytes(&batch.slice(at, take)) > left {
                    take /= 2;
                }
                if 6 * slice_bytes(&batch.slice(at, take)) > left {
                    self.truncated = true;
                    return Ok(Progress::Full);
                }
            }
            let slice = batch.slice(at, take);
            let before = self.out.len();
            match &mut self.ipc {
                Some(ipc) => {
                    ipc.write(&slice)?;
                    self.out.extend(ipc.take());
                }
                None => self.json_rows(&slice)?,
            }
            self.bytes += self.out.len() - before;
            self.rows += take;
            at += take;
        }
        // Full exactly at a batch's end is not truncated yet: only more rows would be.
        Ok(Progress::More)
    }

    fn json_rows(&mut self, slice: &RecordBatch) -> Result<(), ArrowError> {
        let mut lines = Vec::new();
        {
            let mut w = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(&mut lines);
            w.write(slice)?;
            w.finish()?;
        }
        // One object per line; JSON escapes newlines inside strings, so every raw newline
        // ends a row.
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            if self.wrote_row {
                self.out.push(b',');
            }
            self.out.extend_from_slice(line);
            self.wrote_row = true;
        }
        Ok(())
    }

    /// Whether a limit cut the answer short.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Rows in the answer so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Ends the answer. JSON: the row count and whether it was truncated, and `error`
    /// when the query failed after rows went out. Arrow: the end-of-stream marker (the
    /// caller cuts a truncated or failed stream short instead).
    ///
    /// # Errors
    /// Encoding failures.
    pub fn finish(&mut self, error: Option<&str>) -> Result<(), ArrowError> {
        match &mut self.ipc {
            Some(ipc) => {
                ipc.finish()?;
                self.out.extend(ipc.take());
            }
            None => {
                let mut tail = serde_json::json!({
                    "row_count": self.rows,
                    "truncated": self.truncated,
                });
                if let Some(e) = error {
                    tail["error"] = serde_json::Value::String(e.to_owned());
                }
                let tail = serde_json::to_string(&tail)
                    .map_err(|err| ArrowError::JsonError(err.to_string()))?;
                // `{"row_count":..}` without its opening brace closes the rows array.
                self.out.extend_from_slice(b"],");
                self.out.extend_from_slice(&tail.as_bytes()[1..]);
            }
        }
        Ok(())
    }

    /// The bytes encoded since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }
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
