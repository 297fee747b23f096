//! Length-prefixed frames: a big-endian `i32` size, then that many bytes.
//!
//! A frame is read under three limits a server needs against hostile or broken peers:
//! its announced size ([`FrameLimits::max_size`], Kafka's `socket.request.max.bytes`),
//! how long a connection may sit without starting a frame ([`FrameLimits::idle`], Kafka's
//! `connections.max.idle.ms`), and how long a frame may take to arrive once it started
//! ([`FrameLimits::arrival`]). The buffer grows as bytes arrive, never to the announced
//! size up front: a peer that announces 100 MiB and sends ten bytes holds ten bytes.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::{Error, Result};

/// The limits one frame is read under.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Largest size a frame may announce; a larger (or negative) one is refused before
    /// anything is allocated.
    pub max_size: usize,
    /// Longest wait for the first byte of a frame (None: wait forever).
    pub idle: Option<Duration>,
    /// Longest time from a frame's first byte to its last.
    pub arrival: Duration,
}

impl FrameLimits {
    /// Only a size cap, no timeouts (clients reading a server's answers, tests).
    pub fn size_only(max_size: usize) -> Self {
        Self {
            max_size,
            idle: None,
            arrival: Duration::MAX,
        }
    }
}

/// The first read of a frame's buffer; later reads double what has arrived.
const FIRST_READ: usize = 64 * 1024;

/// Reads one frame. Returns `Ok(None)` on a clean end of stream before a new frame.
///
/// # Errors
/// [`Error::FrameTooLarge`] for a size over the cap, [`Error::Idle`] when no frame starts
/// within `idle`, [`Error::FrameTimeout`] when a started frame is not complete within
/// `arrival`, [`Error::Io`] when the socket fails or closes inside a frame.
///
/// # Cancel safety
/// Not cancel safe: a partially read frame is lost if the future is dropped.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
) -> Result<Option<Bytes>> {
    let mut len_buf = [0u8; 4];
    let first = match limits.idle {
        Some(idle) => tokio::time::timeout(idle, reader.read(&mut len_buf))
            .await
            .map_err(|_| Error::Idle { idle })?,
        None => reader.read(&mut len_buf).await,
    }
    .map_err(|source| Error::Io {
        op: "reading frame size",
        source,
    })?;
    if first == 0 {
        return Ok(None);
    }
    let deadline = Instant::now().checked_add(limits.arrival);
    let timed_out = |size: Option<usize>, received: usize| Error::FrameTimeout {
        arrival: limits.arrival,
        size,
        received,
    };
    let mut read = first;
    while read < 4 {
        let n = until(deadline, reader.read(&mut len_buf[read..]))
            .await
            .ok_or_else(|| timed_out(None, read))?
            .map_err(|source| Error::Io {
                op: "reading frame size",
                source,
            })?;
        if n == 0 {
            return Err(Error::Io {
                op: "reading frame size",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        read += n;
    }
    let size = i32::from_be_bytes(len_buf);
    let size = match usize::try_from(size) {
        Ok(s) if s <= limits.max_size => s,
        _ => {
            return Err(Error::FrameTooLarge {
                size: i64::from(size),
                max: limits.max_size,
            })
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < size {
        if buf.len() == buf.capacity() {
            // Grow with what arrived, never to the announced size at once.
            let want = buf.len().max(FIRST_READ).min(size - buf.len());
            buf.reserve_exact(want);
        }
        let room = (size - buf.len()).min(buf.capacity() - buf.len());
        let n = until(
            deadline,
            (&mut *reader).take(room as u64).read_buf(&mut buf),
        )
        .await
        .ok_or_else(|| timed_out(Some(size), buf.len()))?
        .map_err(|source| Error::Io {
            op: "reading frame body",
            source,
        })?;
        if n == 0 {
            return Err(Error::Io {
                op: "reading frame body",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
    }
    Ok(Some(Bytes::from(buf)))
}

/// `fut`, or None once `deadline` passes (None: no deadline).
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test awaits the writer it spawns
mod tests {
    use super::*;

    fn limits(max: usize) -> FrameLimits {
        FrameLimits::size_only(max)
    }

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut data: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0];
        let f = read_frame(&mut data, &limits(10)).await.unwrap().unwrap();
        assert_eq!(&f[..], b"abc");
        let f = read_frame(&mut data, &limits(10)).await.unwrap().unwrap();
        assert!(f.is_empty());
        assert!(read_frame(&mut data, &limits(10)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_oversized_and_negative_sizes() {
        let mut data: &[u8] = &[0, 0, 0, 11];
        assert!(matches!(
            read_frame(&mut data, &limits(10)).await,
            Err(Error::FrameTooLarge { size: 11, max: 10 })
        ));
        let mut data: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut data, &limits(10)).await,
            Err(Error::FrameTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut data: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut data, &limits(10)).await,
            Err(Error::Io { .. })
        ));
        let mut data: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut data, &limits(10)).await,
            Err(Error::Io { .. })
        ));
    }

    #[tokio::test]
    async fn a_large_frame_arrives_whole_across_many_reads() {
        let size = 3 * FIRST_READ + 17;
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let (mut tx, mut rx) = tokio::io::duplex(1000);
        let sent = body.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(&(size as i32).to_be_bytes()).await.unwrap();
            for piece in sent.chunks(999) {
                tx.write_all(piece).await.unwrap();
            }
        });
        let f = read_frame(&mut rx, &limits(size)).await.unwrap().unwrap();
        writer.await.unwrap();
        assert_eq!(&f[..], &body[..]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_and_a_stalled_frame_time_out() {
        let l = FrameLimits {
            max_size: 1 << 20,
            idle: Some(Duration::from_secs(600)),
            arrival: Duration::from_secs(30),
        };
        // Nothing at all: idle.
        let (_tx, mut rx) = tokio::io::duplex(64);
        assert!(matches!(
            read_frame(&mut rx, &l).await,
            Err(Error::Idle { .. })
        ));
        // A size announcing 1000 bytes, then ten: the frame times out, holding ten.
        let (mut tx, mut rx) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        tx.write_all(&1000i32.to_be_bytes()).await.unwrap();
        tx.write_all(&[7; 10]).await.unwrap();
        match read_frame(&mut rx, &l).await {
            Err(Error::FrameTimeout {
                size: Some(1000),
                received: 10,
                ..
            }) => {}
            other => panic!("expected a frame timeout, got {other:?}"),
        }
        // Half a size prefix is a stalled frame too.
        let (mut tx, mut rx) = tokio::io::duplex(64);
        tx.write_all(&[0, 0]).await.unwrap();
        assert!(matches!(
            read_frame(&mut rx, &l).await,
            Err(Error::FrameTimeout { size: None, .. })
        ));
    }
}
