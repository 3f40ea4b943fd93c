//! Order-preserving ("memcomparable") key encoding: comparing two encoded
//! keys byte-wise gives the same order as comparing the values they encode,
//! component by component. Range scans, prefix scans and `ORDER BY pk` are
//! therefore plain RocksDB iterations.
//!
//! - unsigned integers: big-endian;
//! - signed integers: sign bit flipped, then big-endian;
//! - booleans: one byte, 0 or 1;
//! - strings and bytes: every 0x00 written as 0x00 0xFF, then a 0x00 0x01
//!   terminator, so no encoded string is a prefix of another and a string
//!   sorts before its extensions.

use kalamdb_commons::Value;

#[derive(Debug, Default, Clone)]
pub struct KeyBuilder {
    buf: Vec<u8>,
}

impl KeyBuilder {
    pub fn new() -> Self {
        Self::with_capacity(32)
    }

    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(mut self, v: i64) -> Self {
        self.buf
            .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    pub fn i32(mut self, v: i32) -> Self {
        self.buf
            .extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
        self
    }

    pub fn i16(mut self, v: i16) -> Self {
        self.buf
            .extend_from_slice(&((v as u16) ^ (1 << 15)).to_be_bytes());
        self
    }

    pub fn bool(mut self, v: bool) -> Self {
        self.buf.push(u8::from(v));
        self
    }

    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.buf.reserve(v.len() + 2);
        for &b in v {
            self.buf.push(b);
            if b == 0 {
                self.buf.push(0xFF);
            }
        }
        self.buf.extend_from_slice(&[0x00, 0x01]);
        self
    }

    pub fn str(self, v: &str) -> Self {
        self.bytes(v.as_bytes())
    }

    /// Appends a primary-key value; `None` for types that cannot be keys
    /// (and for NULL, which no key may hold).
    pub fn value(self, v: &Value) -> Option<Self> {
        Some(match v {
            Value::Boolean(b) => self.bool(*b),
            Value::Int16(i) => self.i16(*i),
            Value::Int32(i) => self.i32(*i),
            Value::Int64(i) => self.i64(*i),
            Value::Date32(d) => self.i32(*d),
            Value::TimestampMicros(t) => self.i64(*t),
            Value::Text(s) => self.str(s),
            Value::Bytes(b) => self.bytes(b),
            _ => return None,
        })
    }

    pub fn raw(mut self, v: &[u8]) -> Self {
        self.buf.extend_from_slice(v);
        self
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    pub fn build(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a string component written by [`KeyBuilder::str`] from the start
/// of `key`: the string and the number of key bytes it took; `None` if
/// `key` does not start with one.
pub fn decode_str(key: &[u8]) -> Option<(String, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < key.len() {
        match (key[i], key.get(i + 1)) {
            (0x00, Some(0xFF)) => {
                out.push(0);
                i += 2;
            }
            (0x00, Some(0x01)) => return String::from_utf8(out).ok().map(|s| (s, i + 2)),
            (0x00, _) => return None,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strings_decode_back() {
        for s in ["", "alice", "a\0b", "\0\0", "ü-user"] {
            let key = KeyBuilder::new().str(s).i64(7).build();
            let (back, used) = decode_str(&key).unwrap();
            assert_eq!(back, s);
            assert_eq!(used, key.len() - 8);
        }
        assert_eq!(decode_str(b"abc"), None);
        assert_eq!(decode_str(&[b'a', 0x00, 0x07]), None);
    }

    fn key_of(parts: &[(i64, String)]) -> Vec<u8> {
        parts
            .iter()
            .fold(KeyBuilder::new(), |k, (i, s)| k.i64(*i).str(s))
            .build()
    }

    proptest! {
        #[test]
        fn i64_order_is_preserved(a: i64, b: i64) {
            let ka = KeyBuilder::new().i64(a).build();
            let kb = KeyBuilder::new().i64(b).build();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn i32_and_i16_order_is_preserved(a: i32, b: i32, c: i16, d: i16) {
            prop_assert_eq!(a.cmp(&b), KeyBuilder::new().i32(a).build().cmp(&KeyBuilder::new().i32(b).build()));
            prop_assert_eq!(c.cmp(&d), KeyBuilder::new().i16(c).build().cmp(&KeyBuilder::new().i16(d).build()));
        }

        #[test]
        fn byte_string_order_is_preserved(a: Vec<u8>, b: Vec<u8>) {
            let ka = KeyBuilder::new().bytes(&a).build();
            let kb = KeyBuilder::new().bytes(&b).build();
            prop_assert_eq!(a.cmp(&b), ka.cmp(&kb));
        }

        #[test]
        fn composite_keys_order_component_by_component(
            a in proptest::collection::vec((any::<i64>(), ".{0,6}"), 1..4),
            b in proptest::collection::vec((any::<i64>(), ".{0,6}"), 1..4),
        ) {
            prop_assert_eq!(a.cmp(&b), key_of(&a).cmp(&key_of(&b)));
        }

        #[test]
        fn user_prefix_never_covers_another_user(a in "[a-z\\x00]{0,8}", b in "[a-z\\x00]{0,8}", pk: i64) {
            prop_assume!(a != b);
            let prefix_a = KeyBuilder::new().u64(7).str(&a).build();
            let row_b = KeyBuilder::new().u64(7).str(&b).i64(pk).build();
            prop_assert!(!row_b.starts_with(&prefix_a));
        }
    }
}
