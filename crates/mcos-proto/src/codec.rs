//! Little-endian cursor over a received body, and an appender for building one.

use crate::{KEY_BYTES, MAX_STRING_BYTES, ProtoError};
use mcos_core::BlockKey;

/// Reads fields from a body; every read checks the remaining length.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                ProtoError::Malformed(format!(
                    "body ends at byte {} but {n} more bytes were expected at byte {}",
                    self.buf.len(),
                    self.pos
                ))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let s = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// A 128-bit key.
    pub fn key(&mut self) -> Result<BlockKey, ProtoError> {
        Ok(BlockKey(u128::from_le_bytes(self.array::<KEY_BYTES>()?)))
    }

    /// A u16-length-prefixed byte string (at most [`MAX_STRING_BYTES`]).
    pub fn short_bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = self.u16()? as usize;
        if n > MAX_STRING_BYTES {
            return Err(ProtoError::Malformed(format!(
                "string of {n} bytes exceeds {MAX_STRING_BYTES}"
            )));
        }
        self.bytes(n)
    }

    /// A u16-length-prefixed UTF-8 string.
    pub fn short_str(&mut self) -> Result<&'a str, ProtoError> {
        std::str::from_utf8(self.short_bytes()?)
            .map_err(|_| ProtoError::Malformed("string is not UTF-8".into()))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Fails unless the whole body was read (trailing bytes are a malformed frame).
    pub fn finish(&self) -> Result<(), ProtoError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(ProtoError::Malformed(format!(
                "{} trailing bytes after the message",
                self.buf.len() - self.pos
            )))
        }
    }
}

/// Appends fields to a body.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// Appends to `buf`.
    pub fn new(buf: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { buf }
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A 128-bit key.
    pub fn key(&mut self, k: BlockKey) -> &mut Self {
        self.buf.extend_from_slice(&k.0.to_le_bytes());
        self
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// A u16-length-prefixed byte string, cut at [`MAX_STRING_BYTES`].
    pub fn short_bytes(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(MAX_STRING_BYTES)];
        self.u16(b.len() as u16);
        self.bytes(b)
    }
}
