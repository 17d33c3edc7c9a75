//! Partial updates: telling a field set to `null` (clear it) from a missing one (keep it).

use serde::{Deserialize, Deserializer};

/// For `#[serde(default, deserialize_with = "crate::patch::present")]` on an
/// `Option<Option<T>>`: a missing field stays `None`, `null` becomes `Some(None)`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}
