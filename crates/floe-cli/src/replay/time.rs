//! The timestamps users type: RFC 3339 in UTC, epoch milliseconds, `now`, `now-1h`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses a timestamp into epoch milliseconds.
///
/// # Errors
/// A readable message naming the accepted forms.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if text == "now" {
        return Ok(millis(SystemTime::now()));
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let d = humantime::parse_duration(ago).map_err(|e| format!("'{ago}': {e}"))?;
        let ago = i64::try_from(d.as_millis()).map_err(|_| format!("'{text}' is too far back"))?;
        return Ok(millis(SystemTime::now()).saturating_sub(ago));
    }
    humantime::parse_rfc3339_weak(text)
        .map(millis)
        .map_err(|e| {
            format!(
                "'{text}' is not a time ({e}); use RFC 3339 in UTC (2026-11-21T10:00:00Z), \
                 epoch milliseconds, 'now' or 'now-<duration>' (now-1h)"
            )
        })
}

/// RFC 3339 with milliseconds, in UTC.
pub fn format_time(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        Err(_) => format!("{ms} ms"),
    }
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_documented_form() {
        assert_eq!(parse_time("1763719200000"), Ok(1_763_719_200_000));
        assert_eq!(parse_time("2025-11-21T10:00:00Z"), Ok(1_763_719_200_000));
        assert_eq!(parse_time("2025-11-21 10:00:00.5"), Ok(1_763_719_200_500));
        let now = millis(SystemTime::now());
        let hour_ago = parse_time("now-1h").expect("relative");
        assert!((now - 3_600_000 - hour_ago).abs() < 60_000, "{hour_ago}");
        assert!(parse_time("yesterday")
            .expect_err("bad")
            .contains("RFC 3339"));
        assert_eq!(format_time(1_763_719_200_500), "2025-11-21T10:00:00.500Z");
    }
}
