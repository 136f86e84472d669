//! An upper bound of a value's size as compact JSON (`serde_json::to_writer`), from a walk of its `Serialize`
//! form that formats nothing: a string counts 6 bytes per byte (the longest escape, `\u001f`), a number its
//! type's longest text. Every field a type serializes is counted, so the bound holds for fields added later
//! too. [`super::check_job_within`] takes a job whose bound is under the limit as it is (every typical job),
//! and measures the exact size only of the others.

use std::fmt;

use serde::Serialize;
use serde::ser::{self, Serializer};

/// An upper bound of `value`'s compact JSON size in bytes; `None` if its `Serialize` reports an error (the
/// exact measurement then reports it).
pub(super) fn json_bound<T: Serialize + ?Sized>(value: &T) -> Option<usize> {
    let mut bound = Bound(0);
    value.serialize(&mut bound).ok().map(|()| bound.0)
}

/// Longest JSON text of an integer up to 64 bits (`-9223372036854775808`).
const INT: usize = 20;
/// Longest JSON text of a 128-bit integer.
const INT128: usize = 40;
/// Longest JSON text of a float (`ryu`'s longest is 24; `null` for a non-finite one).
const FLOAT: usize = 32;

struct Bound(usize);

impl Bound {
    fn add(&mut self, bytes: usize) {
        self.0 = self.0.saturating_add(bytes);
    }

    /// A string of `len` bytes: quotes, and each byte at most a 6-byte escape.
    fn string(&mut self, len: usize) {
        self.add(len.saturating_mul(6).saturating_add(2));
    }
}

/// An error a `Serialize` impl raised.
#[derive(Debug)]
struct Failed;

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot be encoded")
    }
}

impl std::error::Error for Failed {}

impl ser::Error for Failed {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Failed
    }
}

/// Counts what a `Display` would write.
struct Count(usize);

impl fmt::Write for Count {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 = self.0.saturating_add(s.len());
        Ok(())
    }
}

impl Serializer for &mut Bound {
    type Ok = ();
    type Error = Failed;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _v: bool) -> Result<(), Failed> {
        self.add(5);
        Ok(())
    }
    fn serialize_i8(self, _v: i8) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_i16(self, _v: i16) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_i32(self, _v: i32) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_i64(self, _v: i64) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_i128(self, _v: i128) -> Result<(), Failed> {
        self.add(INT128);
        Ok(())
    }
    fn serialize_u8(self, _v: u8) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_u16(self, _v: u16) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_u32(self, _v: u32) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_u64(self, _v: u64) -> Result<(), Failed> {
        self.add(INT);
        Ok(())
    }
    fn serialize_u128(self, _v: u128) -> Result<(), Failed> {
        self.add(INT128);
        Ok(())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Failed> {
        self.add(FLOAT);
        Ok(())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Failed> {
        self.add(FLOAT);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Failed> {
        self.string(v.len_utf8());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Failed> {
        self.string(v.len());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Failed> {
        // An array of numbers: `255,` per byte, and the brackets.
        self.add(v.len().saturating_mul(4).saturating_add(2));
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Failed> {
        self.add(4);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Failed> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Failed> {
        self.add(4);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Failed> {
        self.add(4);
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Failed> {
        self.string(variant.len());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        // `{"variant":value}`
        self.string(variant.len());
        self.add(3);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Failed> {
        self.add(2);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, Failed> {
        self.add(2);
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Failed> {
        self.add(2);
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Failed> {
        // `{"variant":[...]}`
        self.string(variant.len());
        self.add(5);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Failed> {
        self.add(2);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Failed> {
        self.add(2);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Failed> {
        // `{"variant":{...}}`
        self.string(variant.len());
        self.add(5);
        Ok(self)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Failed> {
        let mut count = Count(0);
        fmt::write(&mut count, format_args!("{value}")).map_err(|_| Failed)?;
        self.string(count.0);
        Ok(())
    }
}

/// One element of a sequence: the element and its comma.
fn element<T: Serialize + ?Sized>(bound: &mut Bound, value: &T) -> Result<(), Failed> {
    bound.add(1);
    value.serialize(bound)
}

impl ser::SerializeSeq for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        element(self, value)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

impl ser::SerializeTuple for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        element(self, value)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        element(self, value)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        element(self, value)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Failed> {
        // The comma, and quotes that serde_json puts around a key that is a number.
        self.add(3);
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failed> {
        // The colon.
        self.add(1);
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

/// One field of a struct: comma, name, colon and value.
fn field<T: Serialize + ?Sized>(
    bound: &mut Bound,
    key: &'static str,
    value: &T,
) -> Result<(), Failed> {
    bound.string(key.len());
    bound.add(2);
    value.serialize(bound)
}

impl ser::SerializeStruct for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        field(self, key, value)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Bound {
    type Ok = ();
    type Error = Failed;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Failed> {
        field(self, key, value)
    }
    fn end(self) -> Result<(), Failed> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;

    use super::json_bound;

    #[derive(Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        A { text: String, n: i64 },
        B { list: Vec<Option<f64>> },
    }

    #[derive(Serialize)]
    enum External {
        Unit,
        New(String),
        Tuple(u8, char),
        Struct { x: u128 },
    }

    #[derive(Serialize)]
    struct Shape {
        text: String,
        map: BTreeMap<String, i32>,
        numbers: BTreeMap<u64, bool>,
        tagged: Tagged,
        external: Vec<External>,
        #[serde(flatten)]
        flat: BTreeMap<String, String>,
        bytes: Vec<u8>,
        unit: (),
    }

    fn exact<T: Serialize>(value: &T) -> usize {
        serde_json::to_vec(value).unwrap().len()
    }

    proptest! {
        /// The bound is never below the size `serde_json` writes, whatever the strings hold (control
        /// characters, quotes, backslashes, multi-byte characters) and whatever the shape.
        #[test]
        fn the_bound_is_never_below_the_exact_size(
            text in ".*",
            keys in proptest::collection::btree_map("\\PC{0,8}", any::<i32>(), 0..5),
            numbers in proptest::collection::btree_map(any::<u64>(), any::<bool>(), 0..5),
            n in any::<i64>(),
            floats in proptest::collection::vec(proptest::option::of(any::<f64>()), 0..5),
            c in any::<char>(),
            x in any::<u128>(),
            bytes in proptest::collection::vec(any::<u8>(), 0..8),
            flat in proptest::collection::btree_map("[a-z]{1,4}", "[\\x00-\\x7f]{0,6}", 0..3),
            tagged_a in any::<bool>(),
        ) {
            let shape = Shape {
                text: text.clone(),
                map: keys,
                numbers,
                tagged: if tagged_a { Tagged::A { text, n } } else { Tagged::B { list: floats } },
                external: vec![External::Unit, External::New("é\"\\".into()), External::Tuple(7, c),
                    External::Struct { x }],
                flat,
                bytes,
                unit: (),
            };
            let bound = json_bound(&shape).unwrap();
            prop_assert!(bound >= exact(&shape), "bound {bound} < exact {}", exact(&shape));
        }
    }

    #[test]
    fn the_worst_string_is_bounded_exactly() {
        let worst = "\u{1}".repeat(10);
        assert_eq!(exact(&worst), 62);
        assert_eq!(json_bound(&worst), Some(62));
    }

    /// A job whose bound is over the limit is measured exactly: accepted when it fits, refused naming its
    /// size when it does not.
    #[test]
    fn a_job_near_the_limit_is_measured_exactly() {
        use crate::coordinator::CoordError;
        use crate::coordinator::limits::check_job_within;
        use crate::job::{HandlerTarget, Job, JobId, JobSpec, Target};
        use crate::schedule::Schedule;

        let spec = JobSpec::new(
            "x".repeat(500),
            Schedule::parse("@hourly").unwrap(),
            Target::Handler(HandlerTarget::new("h")),
        );
        let job = Job::new(JobId::new("near").unwrap(), spec, 0);
        let size = exact(&job);
        assert!(
            json_bound(&job).unwrap() > size + 2_000,
            "the name alone is 3,000 in the bound"
        );
        check_job_within(&job, size).unwrap();
        match check_job_within(&job, size - 1) {
            Err(CoordError::Invalid(message)) => {
                assert!(
                    message.contains(&format!("{size} bytes as JSON")),
                    "{message}"
                )
            }
            other => panic!("a job one byte over is refused: {other:?}"),
        }
    }
}
