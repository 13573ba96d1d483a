//! The dead letter of a message that is not a reading, as it goes to `temperature_data_dlq`.
//!
//! A dead letter must always fit in a Kafka message, whatever the sender put in the original:
//! the broker takes a message of up to ~1 MiB on the readings topic, and that message's copy
//! plus our headers would be larger than the same limit on the dead-letter topic (a delivery
//! that can never succeed, and the flush waiting for it never ends). So the copy is capped:
//! the first [`MAX_VALUE_BYTES`] of the value and [`MAX_KEY_BYTES`] of the key, and a capped
//! part says so in headers with its original size and SHA-256, which identify the original
//! on the source topic (named by the source headers).
//!
//! [`DeadLetter`] is pure; [`record`] turns one into the outgoing record of a message read.

use rdkafka::message::Message;
use sha2::{Digest, Sha256};

use super::metrics;
use crate::index::OutboxRecord;
use crate::topics;

/// The dead-letter reason of a reading whose sensor is beyond the limit of tracked sensors.
pub const SENSOR_LIMIT: &str = "sensor_limit";

/// The most of a rejected message's value a dead letter copies.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most of its key a dead letter copies.
pub const MAX_KEY_BYTES: usize = 1024;
/// The most of the reason's wording a dead letter carries.
pub const MAX_DETAIL_BYTES: usize = 1024;

/// Header names, one place for each.
pub mod header {
    /// The reason's stable code (`too_large`, `bad_json`, `sensor_limit`, …).
    pub const REASON: &str = "thermoalert.reason";
    /// The reason in words.
    pub const DETAIL: &str = "thermoalert.detail";
    pub const SOURCE_TOPIC: &str = "thermoalert.source.topic";
    pub const SOURCE_PARTITION: &str = "thermoalert.source.partition";
    pub const SOURCE_OFFSET: &str = "thermoalert.source.offset";
    /// Size in bytes of the original value, when the copy is cut short.
    pub const VALUE_BYTES: &str = "thermoalert.original.bytes";
    /// Hex SHA-256 of the original value, when the copy is cut short.
    pub const VALUE_SHA256: &str = "thermoalert.original.sha256";
    /// Size in bytes of the original key, when its copy is cut short.
    pub const KEY_BYTES: &str = "thermoalert.original.key.bytes";
    /// Hex SHA-256 of the original key, when its copy is cut short.
    pub const KEY_SHA256: &str = "thermoalert.original.key.sha256";
}

/// Where the rejected message was read.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A dead letter: the (capped) key and value of the original, and the headers that explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl DeadLetter {
    /// The dead letter of the message `key`/`value` read at `source`, rejected for `reason`
    /// (a stable code) described by `detail`.
    pub fn new(
        key: &[u8],
        value: &[u8],
        reason: &'static str,
        detail: &str,
        source: Source<'_>,
    ) -> DeadLetter {
        let mut headers = vec![
            (header::REASON, reason.to_owned()),
            (header::DETAIL, truncate_str(detail, MAX_DETAIL_BYTES).to_owned()),
            (header::SOURCE_TOPIC, source.topic.to_owned()),
            (header::SOURCE_PARTITION, source.partition.to_string()),
            (header::SOURCE_OFFSET, source.offset.to_string()),
        ];
        let key = capped(key, MAX_KEY_BYTES, header::KEY_BYTES, header::KEY_SHA256, &mut headers);
        let value =
            capped(value, MAX_VALUE_BYTES, header::VALUE_BYTES, header::VALUE_SHA256, &mut headers);
        DeadLetter { key, value, headers }
    }
}

/// The outgoing record of `msg`, whose value is `bytes`, rejected for `reason`: its key and
/// value capped (see [`DeadLetter::new`]), which is counted.
pub fn record(
    msg: &impl Message,
    bytes: &[u8],
    reason: &'static str,
    detail: &str,
) -> OutboxRecord {
    let source = Source { topic: msg.topic(), partition: msg.partition(), offset: msg.offset() };
    let key = msg.key().unwrap_or_default();
    let letter = DeadLetter::new(key, bytes, reason, detail, source);
    if letter.value.len() < bytes.len() || letter.key.len() < key.len() {
        metrics::dead_letter_cut();
    }
    OutboxRecord {
        topic: topics::DEAD_LETTERS.into(),
        key: letter.key,
        payload: letter.value,
        headers: letter.headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// The first `max` bytes of `bytes`; when that cuts it short, its size and hash go in
/// `headers` under `size_header` and `hash_header`.
fn capped(
    bytes: &[u8],
    max: usize,
    size_header: &'static str,
    hash_header: &'static str,
    headers: &mut Vec<(&'static str, String)>,
) -> Vec<u8> {
    if bytes.len() <= max {
        return bytes.to_vec();
    }
    headers.push((size_header, bytes.len().to_string()));
    headers.push((hash_header, sha256_hex(bytes)));
    bytes[..max].to_vec()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let end = (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: Source<'static> = Source { topic: "temperature_data", partition: 2, offset: 41 };

    fn header<'a>(d: &'a DeadLetter, name: &str) -> Option<&'a str> {
        d.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_small_message_is_copied_whole_with_its_reason_and_source() {
        let d = DeadLetter::new(b"s1", b"{\"oops\"", "bad_json", "not a JSON object", SOURCE);
        assert_eq!((d.key.as_slice(), d.value.as_slice()), (&b"s1"[..], &b"{\"oops\""[..]));
        assert_eq!(header(&d, header::REASON), Some("bad_json"));
        assert_eq!(header(&d, header::DETAIL), Some("not a JSON object"));
        assert_eq!(header(&d, header::SOURCE_TOPIC), Some("temperature_data"));
        assert_eq!(header(&d, header::SOURCE_PARTITION), Some("2"));
        assert_eq!(header(&d, header::SOURCE_OFFSET), Some("41"));
        assert_eq!(header(&d, header::VALUE_BYTES), None, "nothing was cut");
        assert_eq!(header(&d, header::KEY_SHA256), None);
    }

    #[test]
    fn a_huge_value_and_key_are_cut_with_their_size_and_hash_said() {
        let value = vec![b'x'; 1_000_000];
        let key = vec![b'k'; 5000];
        let d = DeadLetter::new(&key, &value, "too_large", "too large", SOURCE);
        assert_eq!(d.value.len(), MAX_VALUE_BYTES);
        assert_eq!(d.key.len(), MAX_KEY_BYTES);
        assert_eq!(header(&d, header::VALUE_BYTES), Some("1000000"));
        assert_eq!(header(&d, header::KEY_BYTES), Some("5000"));
        // Computed independently: `head -c 1000000 /dev/zero | tr '\0' x | sha256sum`.
        assert_eq!(
            header(&d, header::VALUE_SHA256),
            Some("1b977e9f84f1b26b6ed7f68b0498faee2385ea4125bd29adce4a7d9106ba3134")
        );
        let headers: usize = d.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        let size = d.key.len() + d.value.len() + headers;
        assert!(size < MAX_VALUE_BYTES + MAX_KEY_BYTES + 2 * MAX_DETAIL_BYTES);
    }

    #[test]
    fn the_record_of_a_message_goes_to_the_dead_letter_topic_with_its_source() {
        use rdkafka::Timestamp;
        use rdkafka::message::OwnedMessage;
        let value = vec![b'{'; MAX_VALUE_BYTES + 1];
        let msg = OwnedMessage::new(
            Some(value.clone()),
            Some(b"s9".to_vec()),
            "temperature_data".into(),
            Timestamp::NotAvailable,
            4,
            77,
            None,
        );
        let r = record(&msg, &value, "too_large", "a message of 65537 bytes");
        assert_eq!(r.topic, "temperature_data_dlq");
        assert_eq!((r.key.as_slice(), r.payload.len()), (&b"s9"[..], MAX_VALUE_BYTES));
        let header =
            |name: &str| r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(header(header::SOURCE_PARTITION), Some("4"));
        assert_eq!(header(header::SOURCE_OFFSET), Some("77"));
        assert_eq!(header(header::VALUE_BYTES), Some("65537"));
        assert_eq!(header(header::REASON), Some("too_large"));
    }

    #[test]
    fn the_hash_is_sha256() {
        // FIPS 180-2's test vector for "abc".
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_long_detail_is_cut_on_a_character_boundary() {
        let detail = "é".repeat(MAX_DETAIL_BYTES);
        let d = DeadLetter::new(b"k", b"v", "bad_json", &detail, SOURCE);
        let kept = header(&d, header::DETAIL).unwrap();
        assert!(kept.len() <= MAX_DETAIL_BYTES && kept.len() >= MAX_DETAIL_BYTES - 1);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
