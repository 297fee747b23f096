//! Length-prefixed frames: a big-endian `i32` size, then that many bytes.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Error, Result};

/// Reads one frame. Returns `Ok(None)` on a clean end of stream before a new frame.
///
/// A size over `max_size` is refused *before* anything is allocated, so a hostile peer
/// cannot make the broker reserve memory it announced but never sent.
///
/// # Cancel safety
/// Not cancel safe: a partially read frame is lost if the future is dropped.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Option<BytesMut>> {
    let mut len_buf = [0u8; 4];
    let mut read = 0;
    while read < 4 {
        let n = reader
            .read(&mut len_buf[read..])
            .await
            .map_err(|source| Error::Io {
                op: "reading frame size",
                source,
            })?;
        if n == 0 {
            if read == 0 {
                return Ok(None);
            }
            return Err(Error::Io {
                op: "reading frame size",
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        read += n;
    }
    let size = i32::from_be_bytes(len_buf);
    if size < 0 || size as usize > max_size {
        return Err(Error::FrameTooLarge {
            size: i64::from(size),
            max: max_size,
        });
    }
    let mut buf = BytesMut::zeroed(size as usize);
    reader
        .read_exact(&mut buf)
        .await
        .map_err(|source| Error::Io {
            op: "reading frame body",
            source,
        })?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut data: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0];
        let f = read_frame(&mut data, 10).await.unwrap().unwrap();
        assert_eq!(&f[..], b"abc");
        let f = read_frame(&mut data, 10).await.unwrap().unwrap();
        assert!(f.is_empty());
        assert!(read_frame(&mut data, 10).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_oversized_and_negative_sizes() {
        let mut data: &[u8] = &[0, 0, 0, 11];
        assert!(matches!(
            read_frame(&mut data, 10).await,
            Err(Error::FrameTooLarge { size: 11, max: 10 })
        ));
        let mut data: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut data, 10).await,
            Err(Error::FrameTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn truncated_frame_is_an_error() {
        let mut data: &[u8] = &[0, 0, 0, 5, 1, 2];
        assert!(matches!(
            read_frame(&mut data, 10).await,
            Err(Error::Io { .. })
        ));
        let mut data: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut data, 10).await,
            Err(Error::Io { .. })
        ));
    }
}
