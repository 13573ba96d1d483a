//! Serde for state floats that must come back bit for bit (running sums in snapshots): JSON
//! number parsing may differ from the written value in the last bit, which would make a
//! restored window disagree with one that never stopped.

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(value.to_bits())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    u64::deserialize(d).map(f64::from_bits)
}
