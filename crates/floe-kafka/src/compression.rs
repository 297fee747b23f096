//! Compressing a batch's records for a topic's `compression.type` (the broker-side
//! recompression Kafka does when the topic's codec is not `producer`), in the framings
//! Kafka's clients read: gzip, xerial-framed snappy, lz4 frames of independent blocks,
//! zstd frames.

use std::io::Write as _;

use bytes::BufMut as _;
use kafka_protocol::compression::{self as cmpr, Compressor as _};

use crate::request::guarded;

/// A codec with its level, as `compression.type` and `compression.*.level` choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// No compression.
    None,
    /// gzip at this level (-1: the codec's default).
    Gzip(i32),
    /// snappy.
    Snappy,
    /// lz4 at this level.
    Lz4(i32),
    /// zstd at this level.
    Zstd(i32),
}

impl Codec {
    /// The topic's codec, or `None` when batches keep the producer's
    /// (`compression.type=producer`).
    pub fn for_topic(c: &floe_common::TopicConfig) -> Option<Codec> {
        use floe_common::CompressionType as T;
        Some(match c.compression {
            T::Producer => return None,
            T::Uncompressed => Codec::None,
            T::Gzip => Codec::Gzip(c.compression_gzip_level),
            T::Snappy => Codec::Snappy,
            T::Lz4 => Codec::Lz4(c.compression_lz4_level),
            T::Zstd => Codec::Zstd(c.compression_zstd_level),
        })
    }

    /// The codec id in a v2 batch's attributes.
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip(_) => 1,
            Codec::Snappy => 2,
            Codec::Lz4(_) => 3,
            Codec::Zstd(_) => 4,
        }
    }

    /// `records` (a batch's uncompressed records section) compressed with this codec.
    /// The codecs run under the panic guard, as their decoders do.
    ///
    /// # Errors
    /// What the codec reports.
    pub fn compress(self, records: &[u8]) -> Result<Vec<u8>, String> {
        guarded(|| {
            Ok(match self {
                Codec::None => records.to_vec(),
                Codec::Gzip(level) => {
                    let level = match u32::try_from(level) {
                        Ok(l) => flate2::Compression::new(l),
                        Err(_) => flate2::Compression::default(),
                    };
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
                    e.write_all(records)?;
                    e.finish()?
                }
                Codec::Snappy => {
                    let mut out = bytes::BytesMut::new();
                    cmpr::Snappy::compress(&mut out, |b| {
                        b.put_slice(records);
                        Ok(())
                    })?;
                    out.to_vec()
                }
                Codec::Lz4(level) => {
                    // Independent blocks: Kafka's Java reader refuses linked ones.
                    let mut e = lz4::EncoderBuilder::new()
                        .level(u32::try_from(level).unwrap_or(9))
                        .block_mode(lz4::BlockMode::Independent)
                        .build(Vec::new())?;
                    e.write_all(records)?;
                    let (out, result) = e.finish();
                    result?;
                    out
                }
                Codec::Zstd(level) => zstd::bulk::compress(records, level)?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::compression::Decompressor as _;

    #[test]
    fn every_codec_round_trips_through_kafka_protocols_decoders() {
        let records: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [
            Codec::None,
            Codec::Gzip(-1),
            Codec::Gzip(9),
            Codec::Snappy,
            Codec::Lz4(1),
            Codec::Lz4(17),
            Codec::Zstd(-5),
            Codec::Zstd(22),
        ] {
            let compressed = codec.compress(&records).expect("compress");
            let mut buf = bytes::Bytes::from(compressed.clone());
            let back: Vec<u8> = match codec {
                Codec::None => compressed,
                Codec::Gzip(_) => cmpr::Gzip::decompress(&mut buf, |b| Ok(b.to_vec())).unwrap(),
                Codec::Snappy => cmpr::Snappy::decompress(&mut buf, |b| Ok(b.to_vec())).unwrap(),
                Codec::Lz4(_) => cmpr::Lz4::decompress(&mut buf, |b| Ok(b.to_vec())).unwrap(),
                Codec::Zstd(_) => cmpr::Zstd::decompress(&mut buf, |b| Ok(b.to_vec())).unwrap(),
            };
            assert_eq!(back, records, "{codec:?}");
        }
    }
}
