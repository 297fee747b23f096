//! Compatibility levels: which earlier versions a new schema is checked against, and in
//! which direction.

use crate::schema::{incompatibilities, Parsed};

/// A subject's (or the global) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No check.
    None,
    /// The new schema reads data written with the latest version.
    Backward,
    /// ... with every earlier version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every earlier version reads data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every earlier version.
    FullTransitive,
}

impl Level {
    /// Confluent's default.
    pub const DEFAULT: Level = Level::Backward;

    /// The level a request or the store names (any case).
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return None,
        })
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    /// Why `new` may not follow `previous` (oldest first) at this level; empty when it
    /// may. A non-transitive level checks the latest version only.
    pub fn check(self, new: &Parsed, previous: &[Parsed]) -> Vec<String> {
        let against: &[Parsed] = if self.transitive() {
            previous
        } else {
            previous
                .last()
                .map(std::slice::from_ref)
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        for old in against.iter().rev() {
            if self.backward() {
                out.extend(incompatibilities(new, old));
            }
            if self.forward() {
                out.extend(incompatibilities(old, new));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{parse, SchemaType};

    fn avro(fields: &str) -> Parsed {
        parse(
            SchemaType::Avro,
            &format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn levels_pick_direction_and_history() {
        let v1 = avro(r#"{"name":"a","type":"int"}"#);
        // Drops a, adds b with a default: backward (reads v1 data, ignores a) and
        // forward (v1 reads it? a has no default: no).
        let v2 = avro(r#"{"name":"b","type":"int","default":0}"#);
        assert!(Level::Backward
            .check(&v2, std::slice::from_ref(&v1))
            .is_empty());
        assert!(!Level::Forward
            .check(&v2, std::slice::from_ref(&v1))
            .is_empty());
        assert!(!Level::Full.check(&v2, std::slice::from_ref(&v1)).is_empty());
        assert!(Level::None.check(&v2, std::slice::from_ref(&v1)).is_empty());
        // v3 needs a again without a default: fine against v2's... not against v1's
        // data? It reads v1 (has a); reading v2 data (no a) fails.
        let v3 = avro(r#"{"name":"a","type":"int"},{"name":"b","type":"int","default":0}"#);
        let history = [v1, v2];
        assert!(!Level::Backward.check(&v3, &history).is_empty());
        let v4 =
            avro(r#"{"name":"b","type":"int","default":0},{"name":"c","type":"int","default":1}"#);
        assert!(
            Level::Backward.check(&v4, &history).is_empty(),
            "latest only"
        );
        assert!(Level::BackwardTransitive.check(&v4, &history).is_empty());
        let v5 = avro(r#"{"name":"b","type":"int"}"#);
        assert!(Level::Backward.check(&v5, &history).is_empty());
        assert!(
            !Level::BackwardTransitive.check(&v5, &history).is_empty(),
            "v1 has no b"
        );
        assert_eq!(Level::parse("full_transitive"), Some(Level::FullTransitive));
        assert_eq!(Level::parse("sideways"), None);
    }
}
