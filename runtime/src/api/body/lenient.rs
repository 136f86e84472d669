//! A JSON text read straight into a typed value the way [`super::JsonObject::into_typed`] reads a
//! `serde_json::Value`: an object member that is `null` counts as absent, at any depth. It reads from the
//! request's bytes without building a `Value` tree: each object is split into its members (each kept as the
//! slice of text it was sent as, a [`RawValue`]), the `null` ones are dropped, and the rest are handed to the
//! target type's visitor one by one; a scalar is read by `serde_json` from its slice. `POST /v1/jobs:batch`
//! reads 10,000 jobs this way without an allocation per string of the body.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object, `null` ones left out, in the order sent.
pub type Members<'de> = Vec<(Key<'de>, &'de RawValue)>;

/// The text of a JSON value (`raw`) read with `null` object members absent.
#[derive(Clone, Copy)]
pub struct Lenient<'de>(pub &'de RawValue);

/// An object's members (`null` ones already left out) read as that object.
pub struct Object<'de>(pub Members<'de>);

/// An object key: borrowed from the text unless it holds escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'de>(pub Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The members of the object `raw`, `null` ones left out; `None` when `raw` is not an object.
pub fn members(raw: &RawValue) -> Result<Option<Members<'_>>, serde_json::Error> {
    if first(raw) != b'{' {
        return Ok(None);
    }
    struct MembersVisitor;
    impl<'de> Visitor<'de> for MembersVisitor {
        type Value = Members<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
            while let Some(key) = map.next_key::<Key<'de>>()? {
                let value: &'de RawValue = map.next_value()?;
                if value.get() != "null" {
                    members.push((key, value));
                }
            }
            Ok(members)
        }
    }
    plain(raw, |d| d.deserialize_map(MembersVisitor)).map(Some)
}

/// The elements of the array `raw`; `None` when `raw` is not an array.
pub fn elements(raw: &RawValue) -> Result<Option<Vec<&RawValue>>, serde_json::Error> {
    if first(raw) != b'[' {
        return Ok(None);
    }
    serde_json::from_str(raw.get()).map(Some)
}

/// The first byte of a value's text (a raw value holds no leading whitespace).
fn first(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

/// `raw` read by `serde_json` itself (a scalar, or a value of the wrong kind for the visitor, which then
/// reports the type error).
fn plain<'de, T>(
    raw: &'de RawValue,
    read: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
    ) -> Result<T, serde_json::Error>,
) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let value = read(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Forwards each listed method to `serde_json` on the raw text.
macro_rules! plainly {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            plain(self.0, |d| d.$method(visitor))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Lenient<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if let Some(members) = members(self.0)? {
            return visitor.visit_map(MembersAccess::new(members));
        }
        if let Some(elements) = elements(self.0)? {
            return visitor.visit_seq(ElementsAccess(elements.into_iter()));
        }
        plain(self.0, |d| d.deserialize_any(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.get() == "null" {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match members(self.0)? {
            Some(members) => visitor.visit_map(MembersAccess::new(members)),
            None => plain(self.0, |d| d.deserialize_map(visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match members(self.0)? {
            Some(members) => visitor.visit_map(MembersAccess::new(members)),
            None => plain(self.0, |d| d.deserialize_struct(name, fields, visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match elements(self.0)? {
            Some(elements) => visitor.visit_seq(ElementsAccess(elements.into_iter())),
            None => plain(self.0, |d| d.deserialize_seq(visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // `{"variant": value}`: the value read leniently too. Any other form is `serde_json`'s to judge.
        match members(self.0)? {
            Some(members) if members.len() == 1 => {
                let (key, value) = members.into_iter().next().expect("one member");
                visitor.visit_enum(VariantAccess { key, value })
            }
            _ => plain(self.0, |d| d.deserialize_enum(name, variants, visitor)),
        }
    }

    plainly! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32
        deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        plain(self.0, |d| d.deserialize_unit_struct(name, visitor))
    }
}

impl<'de> de::Deserializer<'de> for Object<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(MembersAccess::new(self.0))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

/// A key as the visitor's key seed reads it.
fn key_deserializer<'de>(key: Key<'de>) -> KeyDeserializer<'de> {
    match key.0 {
        Cow::Borrowed(key) => KeyDeserializer::Borrowed(BorrowedStrDeserializer::new(key)),
        Cow::Owned(key) => KeyDeserializer::Owned(key.into_deserializer()),
    }
}

enum KeyDeserializer<'de> {
    Borrowed(BorrowedStrDeserializer<'de, serde_json::Error>),
    Owned(StringDeserializer<serde_json::Error>),
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Self::Borrowed(key) => key.deserialize_any(visitor),
            Self::Owned(key) => key.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

struct MembersAccess<'de> {
    members: std::vec::IntoIter<(Key<'de>, &'de RawValue)>,
    value: Option<&'de RawValue>,
}

impl<'de> MembersAccess<'de> {
    fn new(members: Members<'de>) -> Self {
        Self {
            members: members.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for MembersAccess<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(key_deserializer(key)).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value asked for before its key"))?;
        seed.deserialize(Lenient(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

struct ElementsAccess<'de>(std::vec::IntoIter<&'de RawValue>);

impl<'de> SeqAccess<'de> for ElementsAccess<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|element| seed.deserialize(Lenient(element)))
            .transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// `{"variant": value}` as an enum.
struct VariantAccess<'de> {
    key: Key<'de>,
    value: &'de RawValue,
}

impl<'de> de::EnumAccess<'de> for VariantAccess<'de> {
    type Error = serde_json::Error;
    type Variant = Lenient<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Lenient<'de>), Self::Error> {
        let variant = seed.deserialize(key_deserializer(self.key))?;
        Ok((variant, Lenient(self.value)))
    }
}

impl<'de> de::VariantAccess<'de> for Lenient<'de> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests;
