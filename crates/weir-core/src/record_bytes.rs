//! The field encoding of Kafka's internal-topic records (`__consumer_offsets`,
//! `__transaction_state`): big-endian integers, int16-length strings, int32-length bytes,
//! and — for flexible versions — unsigned varints, compact strings and tagged fields.
//! Shared by `groups::records` and `txn::records`, which own their record layouts.
//!
//! Reading is for untrusted bytes: every read checks what is left before taking it, and an
//! array count above the bytes left is refused before a caller loops on it. Writing trusts
//! its caller: each record module checks lengths against what the format can carry
//! (its `check`) before encoding.

/// Why a field could not be read. Each record module turns it into its own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldError {
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    InvalidLength {
        field: &'static str,
        length: i64,
    },
    UnexpectedNull {
        field: &'static str,
    },
    NotUtf8 {
        field: &'static str,
    },
    BadVarint {
        field: &'static str,
    },
    TrailingBytes {
        what: &'static str,
        count: usize,
    },
}

/// Reads big-endian fields off untrusted bytes; every read checks what is left.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], FieldError> {
        if n > self.buf.len() {
            return Err(FieldError::Truncated {
                field,
                needed: n,
                available: self.buf.len(),
            });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FieldError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, FieldError> {
        Ok(i8::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, FieldError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, FieldError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, FieldError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// Kafka's unsigned varint, at most 5 bytes (a u32).
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32, FieldError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>(field)?;
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FieldError::BadVarint { field })
    }

    fn utf8(&mut self, field: &'static str, len: usize) -> Result<String, FieldError> {
        let bytes = self.take(field, len)?;
        let s = std::str::from_utf8(bytes).map_err(|_| FieldError::NotUtf8 { field })?;
        Ok(s.to_string())
    }

    /// An int16-length string; −1 is null.
    pub(crate) fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, FieldError> {
        let len = self.i16(field)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| FieldError::InvalidLength {
            field,
            length: i64::from(len),
        })?;
        self.utf8(field, len).map(Some)
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, FieldError> {
        self.nullable_string(field)?
            .ok_or(FieldError::UnexpectedNull { field })
    }

    /// A compact (flexible-version) string: varint length + 1; 0 is null, refused here.
    pub(crate) fn compact_string(&mut self, field: &'static str) -> Result<String, FieldError> {
        let len = self.uvarint(field)?;
        if len == 0 {
            return Err(FieldError::UnexpectedNull { field });
        }
        self.utf8(field, (len - 1) as usize)
    }

    /// int32-length bytes; these fields are never null in the records weir reads.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, FieldError> {
        let len = self.i32(field)?;
        let len = usize::try_from(len).map_err(|_| FieldError::InvalidLength {
            field,
            length: i64::from(len),
        })?;
        Ok(self.take(field, len)?.to_vec())
    }

    /// An array's element count (`None` = null), int32 or (flexible) compact. Each element
    /// takes at least one byte, so a count above the bytes left is refused before any loop
    /// runs on it.
    pub(crate) fn array_len(
        &mut self,
        field: &'static str,
        flexible: bool,
    ) -> Result<Option<usize>, FieldError> {
        let count = if flexible {
            match self.uvarint(field)? {
                0 => return Ok(None),
                n => i64::from(n) - 1,
            }
        } else {
            match self.i32(field)? {
                -1 => return Ok(None),
                n => i64::from(n),
            }
        };
        let count = usize::try_from(count).map_err(|_| FieldError::InvalidLength {
            field,
            length: count,
        })?;
        if count > self.buf.len() {
            return Err(FieldError::Truncated {
                field,
                needed: count,
                available: self.buf.len(),
            });
        }
        Ok(Some(count))
    }

    /// Skips a flexible version's tagged-field section.
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), FieldError> {
        let count = self.uvarint("tagged fields")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tag size")? as usize;
            self.take("tagged field", size)?;
        }
        Ok(())
    }

    /// The whole input was read: trailing bytes mean a record weir misread.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), FieldError> {
        if !self.buf.is_empty() {
            return Err(FieldError::TrailingBytes {
                what,
                count: self.buf.len(),
            });
        }
        Ok(())
    }
}

pub(crate) fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_string(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).expect("string lengths are checked before encoding (`check`)");
    put_i16(out, len);
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_nullable_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => put_i16(out, -1),
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_i32(out, length_i32(b.len()));
    out.extend_from_slice(b);
}

/// An int32 length or count of something already bounded far below i32::MAX.
pub(crate) fn length_i32(len: usize) -> i32 {
    i32::try_from(len).expect("byte and array lengths are checked before encoding (`check`)")
}
