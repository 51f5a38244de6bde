//! A bounds-checked little-endian cursor over the file's bytes. Every read either returns what
//! is there or a `Malformed` naming the offset; nothing here allocates more than the file holds.

use crate::error::Malformed;
use crate::value::ValueType;

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.left() {
            return Err(Malformed::Truncated {
                at: self.pos as u64,
                needed: n as u64,
                left: self.left() as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i8(&mut self) -> Result<i8, Malformed> {
        Ok(i8::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, Malformed> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Malformed> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(crate) fn f32(&mut self) -> Result<f32, Malformed> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// GGUF bools are one byte; anything but 0 or 1 means the cursor is out of step with the
    /// writer, so it is an error rather than `true`.
    pub(crate) fn bool(&mut self) -> Result<bool, Malformed> {
        let at = self.pos as u64;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            found => Err(Malformed::BadBool { found, at }),
        }
    }

    pub(crate) fn value_type(&mut self) -> Result<ValueType, Malformed> {
        let at = self.pos as u64;
        let id = self.u32()?;
        ValueType::from_id(id).ok_or(Malformed::UnknownValueType { id, at })
    }

    /// Reads a u64 count of items that each take at least `min_bytes` bytes, and refuses it
    /// unless that many items could fit in the rest of the file. This is what keeps a corrupt
    /// count from becoming a huge `Vec::with_capacity`.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_bytes: usize,
    ) -> Result<usize, Malformed> {
        let at = self.pos as u64;
        let count = self.u64()?;
        let left = self.left();
        match usize::try_from(count) {
            Ok(n) if n.checked_mul(min_bytes).is_some_and(|need| need <= left) => Ok(n),
            _ => Err(Malformed::TooLong {
                what,
                count,
                min_bytes: min_bytes as u64,
                at,
                left: left as u64,
            }),
        }
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes with no terminator.
    pub(crate) fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = self.count("string length", 1)?;
        let at = self.pos as u64;
        std::str::from_utf8(self.take(len)?).map_err(|_| Malformed::BadUtf8 { at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_stops_at_the_end() {
        let bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.u16().unwrap(), 0x0201);
        assert_eq!(c.u32().unwrap(), 0x0605_0403);
        assert_eq!(
            c.u32().unwrap_err(),
            Malformed::Truncated {
                at: 6,
                needed: 4,
                left: 3
            }
        );
        assert_eq!(c.pos(), 6);
    }

    #[test]
    fn counts_are_checked_against_the_bytes_left() {
        // (count, min_bytes, bytes after the count, accepted)
        let cases = [
            (0u64, 8usize, 0usize, true),
            (3, 1, 3, true),
            (4, 1, 3, false),
            (2, 8, 16, true),
            (2, 8, 15, false),
            (u64::MAX, 1, 100, false),
            (u64::MAX / 2 + 2, 2, 100, false), // count * min_bytes wraps to a small number
        ];
        for (count, min_bytes, n_after, accepted) in cases {
            let mut bytes = count.to_le_bytes().to_vec();
            bytes.resize(8 + n_after, 0);
            let got = Cursor::new(&bytes).count("items", min_bytes);
            assert_eq!(
                got.is_ok(),
                accepted,
                "count {count} x {min_bytes} in {n_after}"
            );
        }
    }

    #[test]
    fn strings_must_be_utf8_and_bools_0_or_1() {
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xc3, 0x28]);
        assert_eq!(
            Cursor::new(&bytes).str().unwrap_err(),
            Malformed::BadUtf8 { at: 8 }
        );
        assert_eq!(
            Cursor::new(&[2]).bool().unwrap_err(),
            Malformed::BadBool { found: 2, at: 0 }
        );
        assert!(Cursor::new(&[1]).bool().unwrap());
    }
}
