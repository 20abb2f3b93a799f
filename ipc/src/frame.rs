use serde::{Serialize, de::DeserializeOwned};

/// Largest frame either side accepts. A script can return big JSON, but a length
/// beyond this means a corrupt stream or a runaway script, and we refuse rather than
/// allocate.
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes exceeds the {MAX_FRAME} byte limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Decode(#[from] postcard::Error),
}

/// Appends one length-prefixed frame to `out`, so that several messages can be
/// written with a single syscall.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; 4]);
    let buf = std::mem::take(out);
    let mut buf = postcard::to_extend(msg, buf)?;
    let len = buf.len() - start - 4;
    if len > MAX_FRAME {
        buf.truncate(start);
        *out = buf;
        return Err(FrameError::TooLarge(len));
    }
    buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    *out = buf;
    Ok(())
}

pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Capacity a decoder keeps between large frames.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// Accumulates bytes from a stream and yields whole messages.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    /// Bytes held when [`FrameDecoder::spare`] handed out its region.
    filled: usize,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn extend(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Space to read into directly; call [`FrameDecoder::commit`] with the count read.
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        self.compact();
        let len = self.buf.len();
        self.filled = len;
        if self.buf.capacity() - len < min {
            self.buf.reserve(min);
        }
        let cap = self.buf.capacity();
        self.buf.resize(cap, 0);
        &mut self.buf[len..]
    }

    /// Keeps `n` bytes of the region handed out by the last [`FrameDecoder::spare`].
    pub fn commit(&mut self, n: usize) {
        self.buf.truncate(self.filled + n);
    }

    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        let avail = &self.buf[self.pos..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let msg = postcard::from_bytes(&avail[4..4 + len])?;
        self.pos += 4 + len;
        Ok(Some(msg))
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // A buffer grown for one large frame gives the memory back once that
        // frame is consumed (and is not zero-filled again on every read).
        if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() <= KEEP_CAPACITY / 2 {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FromWorker, ToWorker};

    #[test]
    fn round_trip_split_anywhere() {
        let msgs = vec![
            ToWorker::Stop,
            ToWorker::Cancel { req: 7 },
            ToWorker::Reply {
                req: 9,
                result: Ok("{\"a\":1}".into()),
            },
        ];
        let mut bytes = Vec::new();
        for m in &msgs {
            encode_into(m, &mut bytes).expect("encode");
        }
        for cut in 0..bytes.len() {
            let mut d = FrameDecoder::new();
            d.extend(&bytes[..cut]);
            let mut got: Vec<ToWorker> = Vec::new();
            while let Some(m) = d.next_frame().expect("decode") {
                got.push(m);
            }
            d.extend(&bytes[cut..]);
            while let Some(m) = d.next_frame().expect("decode") {
                got.push(m);
            }
            assert_eq!(got, msgs);
        }
    }

    #[test]
    fn a_buffer_grown_for_a_large_frame_shrinks_after_it() {
        let big = encode(&ToWorker::Analyze {
            req: 1,
            source: "x".repeat(8 * KEEP_CAPACITY),
        })
        .expect("encode");
        let mut d = FrameDecoder::new();
        d.extend(&big);
        assert!(d.next_frame::<ToWorker>().expect("decode").is_some());
        let _ = d.spare(64 * 1024);
        d.commit(0);
        assert!(d.buf.capacity() <= KEEP_CAPACITY + 64 * 1024);
    }

    #[test]
    fn commit_after_compaction_keeps_the_right_bytes() {
        // Regression: the offset taken before spare() compacted the buffer was stale.
        let a = encode(&ToWorker::Cancel { req: 1 }).expect("encode");
        let b = encode(&ToWorker::Cancel { req: 2 }).expect("encode");
        let mut d = FrameDecoder::new();
        d.extend(&a);
        d.extend(&b[..2]);
        assert_eq!(
            d.next_frame::<ToWorker>().expect("ok"),
            Some(ToWorker::Cancel { req: 1 })
        );
        let spare = d.spare(64);
        spare[..b.len() - 2].copy_from_slice(&b[2..]);
        d.commit(b.len() - 2);
        assert_eq!(
            d.next_frame::<ToWorker>().expect("ok"),
            Some(ToWorker::Cancel { req: 2 })
        );
    }

    #[test]
    fn oversized_length_is_refused_not_allocated() {
        let mut d = FrameDecoder::new();
        d.extend(&(u32::MAX).to_le_bytes());
        assert!(matches!(
            d.next_frame::<FromWorker>(),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn spare_and_commit_read_in_place() {
        let bytes = encode(&ToWorker::Cancel { req: 3 }).expect("encode");
        let mut d = FrameDecoder::new();
        let spare = d.spare(64);
        spare[..bytes.len()].copy_from_slice(&bytes);
        d.commit(bytes.len());
        assert_eq!(
            d.next_frame::<ToWorker>().expect("ok"),
            Some(ToWorker::Cancel { req: 3 })
        );
        assert_eq!(d.next_frame::<ToWorker>().expect("ok"), None);
    }
}
