//! Small helpers: argument parsers, JSON output, process CPU time.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context};

/// Parses a duration such as `20s`, `500ms`, `2m`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("'{s}' is not a duration (examples: 20s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => bail!("unknown duration unit '{other}' in '{s}' (use ms, s, m or h)"),
    };
    if !secs.is_finite() || !(0.0..=1e7).contains(&secs) {
        bail!("duration '{s}' is out of range");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Target send rate: a number of messages per second, or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Max,
    PerSec(f64),
}

/// Parses `max` or a positive number of messages per second.
pub fn parse_rate(s: &str) -> anyhow::Result<Rate> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    let r: f64 = s
        .parse()
        .with_context(|| format!("rate must be 'max' or messages per second, not '{s}'"))?;
    if !r.is_finite() || r <= 0.0 {
        bail!("rate must be positive, not '{s}'");
    }
    Ok(Rate::PerSec(r))
}

/// Parses a librdkafka `key=value` property.
pub fn parse_property(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("expected key=value, got '{s}'"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// One flat JSON object, written field by field.
pub struct JsonLine {
    buf: String,
}

impl Default for JsonLine {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonLine {
    pub fn new() -> Self {
        Self {
            buf: String::from("{"),
        }
    }

    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        push_json_string(&mut self.buf, k);
        self.buf.push(':');
    }

    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        push_json_string(&mut self.buf, v);
        self
    }

    pub fn opt_str(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub fn null(mut self, k: &str) -> Self {
        self.key(k);
        self.buf.push_str("null");
        self
    }

    pub fn int(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }

    pub fn num(mut self, k: &str, v: f64) -> Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.buf, "{}", (v * 1000.0).round() / 1000.0);
        } else {
            self.buf.push_str("null");
        }
        self
    }

    pub fn opt_num(self, k: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.num(k, v),
            None => self.null(k),
        }
    }

    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn opt_bool(self, k: &str, v: Option<bool>) -> Self {
        match v {
            Some(v) => self.bool(k, v),
            None => self.null(k),
        }
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// CPU time (user + system) this process has used so far, from `/proc/self/stat`.
/// `None` where that file is unavailable. Assumes the usual 100 clock ticks per second.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ") ".
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time (user + system) of all of this process's threads so far, with nanosecond
/// resolution (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`). Threads that have exited are
/// included, unlike a sum over `/proc/self/task`.
pub fn process_cpu_precise() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Bytes per second as decimal megabytes (10^6) per second.
pub fn mb(bytes_per_sec: f64) -> f64 {
    bytes_per_sec / 1e6
}

/// Bytes per second as mebibytes (2^20) per second.
pub fn mib(bytes_per_sec: f64) -> f64 {
    bytes_per_sec / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() -> anyhow::Result<()> {
        assert_eq!(parse_duration("20s")?, Duration::from_secs(20));
        assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
        assert_eq!(parse_duration("2m")?, Duration::from_secs(120));
        assert_eq!(parse_duration("3")?, Duration::from_secs(3));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
        Ok(())
    }

    #[test]
    fn rates() -> anyhow::Result<()> {
        assert_eq!(parse_rate("max")?, Rate::Max);
        assert_eq!(parse_rate("5000")?, Rate::PerSec(5000.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        Ok(())
    }

    #[test]
    fn json() {
        let j = JsonLine::new()
            .str("a", "x\"y\n")
            .int("b", 3)
            .num("c", 1.23456)
            .num("d", f64::NAN)
            .bool("e", true)
            .finish();
        assert_eq!(j, r#"{"a":"x\"y\n","b":3,"c":1.235,"d":null,"e":true}"#);
    }
}
