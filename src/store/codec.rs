//! Encoding of stored values: one schema-version byte, then postcard; and [`get`], which
//! reads one back from a table.
//!
//! The leading byte lets a later release read older rows and migrate them; a value with an
//! unknown version or that does not decode is reported as corruption, never a panic.

use std::borrow::Borrow;

use redb::{Key, ReadableTable};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Version of every value layout written by this release.
pub const SCHEMA: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(value, vec![SCHEMA])
        .map_err(|e| StoreError::Db(format!("cannot encode value: {e}")))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&SCHEMA, body)) => postcard::from_bytes(body)
            .map_err(|e| StoreError::Corrupt(format!("undecodable value: {e}"))),
        Some((other, _)) => Err(StoreError::Corrupt(format!(
            "value has schema version {other}, this release reads {SCHEMA}"
        ))),
        None => Err(StoreError::Corrupt("empty value".into())),
    }
}

/// Reads and decodes the value under `key`. Takes a table of either transaction kind
/// (redb's `ReadableTable` serves both), so each getter is written once.
pub fn get<'k, K: Key + 'static, T: DeserializeOwned>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl Borrow<K::SelfType<'k>>,
) -> Result<Option<T>, StoreError> {
    let value = table.get(key)?;
    value.map(|v| decode(v.value())).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OtaEvent, OtaState};

    #[test]
    fn round_trip_and_rejects() {
        let ev = OtaEvent {
            at_ms: 5,
            version_number: 7,
            state: OtaState::Failed,
            result: 5,
            bytes_done: 9,
        };
        let bytes = encode(&ev).unwrap();
        assert_eq!(bytes[0], SCHEMA);
        assert_eq!(decode::<OtaEvent>(&bytes).unwrap(), ev);
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(matches!(
            decode::<OtaEvent>(&wrong),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<OtaEvent>(&[]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<OtaEvent>(&bytes[..2]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
