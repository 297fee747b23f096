//! The inputs the fuzz targets feed the HTTP and Flight SQL surfaces, one function per
//! target, shared by `fuzz/` (cargo-fuzz) and the time-boxed run of the test suite
//! (`tests/tests/fuzz.rs`).

/// A `POST /v1/sql` request: the first byte picks the content type (odd: JSON), the rest
/// is the body; the same bytes also go through the Flight SQL ticket parsing of DoGet.
pub fn sql_request(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let content_type = if mode & 1 == 1 {
        "application/json"
    } else {
        "text/plain"
    };
    let _ = crate::http::sql_statement(content_type, body);
    let _ = floe_query::flight::parse_ticket(body);
}

/// A REST catalog path segment naming a namespace (percent-decoded, as the router hands it
/// over).
pub fn rest_path(data: &[u8]) {
    let _ = crate::http::parse_namespace(&String::from_utf8_lossy(data));
}
