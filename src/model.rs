//! Domain types of otad and the rules that make a value valid.
//!
//! Everything here is pure: no I/O, no clock, no randomness. The store (`store/`) persists
//! these types and the API renders them; both call the `validate_*` functions here so that a
//! rule is written once. What lives elsewhere: eligibility (`ota.rs`), hashing and the
//! verified-slice format (`hashtree.rs`), record encoding (`store/codec.rs`).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Highest platform firmware type number; 1..=100 are platform types.
/// The OAuth client id of the public client (RFC 6749 §2.1): the OTA Manager, and `otad
/// login` for a user without the partner's client secret. It sends `client_id` in the form
/// instead of HTTP Basic, may use only the password grant, and its users act for their own
/// partner.
pub const PUBLIC_CLIENT_ID: &str = "otad-manager";

pub const PLATFORM_TYPE_MAX: u16 = 100;
/// MCU types a partner may own: 101..=200, so at most 100 per partner by construction.
pub const MCU_TYPE_MIN: u16 = 101;
pub const MCU_TYPE_MAX: u16 = 200;
/// The device description type: created only under a device type, never in the pool.
pub const DEVICE_DESCRIPTION_TYPE: u16 = 4;
/// Device attribute carrying the installed version of type `t` is `2000 + t`.
pub const VERSION_ATTRIBUTE_BASE: u32 = 2000;

pub const NAME_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 1024;
/// The version string travels in the device OFFER with a u8 length, capped at 64 bytes.
pub const VERSION_MAX: usize = 64;
pub const TAG_MAX: usize = 64;
pub const TAGS_MAX: usize = 32;
pub const DEVICE_ID_MAX: usize = 64;
pub const USERNAME_MAX: usize = 64;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 1024;
pub const EMAIL_MAX: usize = 254;
/// Device ids, partner ids and device type ids share this bound on stored ids.
pub const ID_MAX: usize = 64;

/// The platform types seeded at first start (immutable numbers).
pub const SEEDED_PLATFORM_TYPES: [(u16, &str); 8] = [
    (1, "BOOTLOADER"),
    (2, "SOFTDEVICE"),
    (3, "APPLICATION"),
    (4, "DEVICE_DESCRIPTION"),
    (5, "HUB"),
    (6, "WIFI"),
    (7, "WIFI_CERTIFICATES"),
    (8, "WAN_APN_LIST"),
];

/// A rule a value broke. `trace` is the short machine code the API puts in its error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ModelError {
    pub field: &'static str,
    pub reason: String,
    pub trace: &'static str,
}

impl ModelError {
    pub fn new(field: &'static str, trace: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
            trace,
        }
    }
}

/// Which counter and owner a firmware type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeClass {
    /// 1..=100: created by an appliance admin, visible to every partner, one global counter.
    Platform,
    /// 101..=200: owned by one partner, one counter per (partner, type).
    Mcu,
}

/// Classifies a firmware type number, rejecting anything outside 1..=200.
pub fn type_class(fw_type: i64) -> Result<(u16, TypeClass), ModelError> {
    match fw_type {
        1..=100 => Ok((fw_type as u16, TypeClass::Platform)),
        101..=200 => Ok((fw_type as u16, TypeClass::Mcu)),
        _ => Err(ModelError::new(
            "type",
            "type_out_of_range",
            format!("firmware type {fw_type} is outside 1-200 (1-100 platform, 101-200 MCU)"),
        )),
    }
}

pub fn version_attribute_id(fw_type: u16) -> u32 {
    VERSION_ATTRIBUTE_BASE + u32::from(fw_type)
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A required single-line text: trimmed-non-empty, at most `max` bytes, no control characters.
pub fn validate_text(field: &'static str, value: &str, max: usize) -> Result<(), ModelError> {
    if value.trim().is_empty() {
        return Err(ModelError::new(
            field,
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    validate_optional_text(field, value, max)
}

/// Optional text (empty allowed): at most `max` bytes; newlines and tabs allowed, other
/// control characters not.
pub fn validate_optional_text(
    field: &'static str,
    value: &str,
    max: usize,
) -> Result<(), ModelError> {
    if value.len() > max {
        return Err(ModelError::new(
            field,
            "field_too_long",
            format!(
                "{field} is {} bytes; at most {max} are allowed",
                value.len()
            ),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ModelError::new(
            field,
            "invalid_field",
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

pub fn validate_name(value: &str) -> Result<(), ModelError> {
    validate_text("name", value, NAME_MAX)?;
    if has_control(value) {
        return Err(ModelError::new(
            "name",
            "invalid_field",
            "name must be a single line",
        ));
    }
    Ok(())
}

pub fn validate_description(value: &str) -> Result<(), ModelError> {
    validate_optional_text("description", value, DESCRIPTION_MAX)
}

pub fn validate_version_string(value: &str) -> Result<(), ModelError> {
    validate_text("version", value, VERSION_MAX)?;
    if has_control(value) {
        return Err(ModelError::new(
            "version",
            "invalid_field",
            "version must be a single line",
        ));
    }
    Ok(())
}

/// Tags: at most 32, each 1–64 bytes, no commas (the list filter is comma-separated), no
/// control characters, no leading/trailing blanks, no duplicates.
pub fn validate_tags(tags: &[String]) -> Result<(), ModelError> {
    validate_tag_list(tags, TAGS_MAX)
}

/// The rules of [`validate_tags`] with another bound on their number.
fn validate_tag_list(tags: &[String], max: usize) -> Result<(), ModelError> {
    if tags.len() > max {
        return Err(ModelError::new(
            "tags",
            "too_many_tags",
            format!("{} tags given; at most {max} are allowed", tags.len()),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        if tag.is_empty() || tag.len() > TAG_MAX {
            return Err(ModelError::new(
                "tags",
                "invalid_tag",
                format!("tag {i} must be 1-{TAG_MAX} bytes"),
            ));
        }
        if tag.contains(',') || has_control(tag) || tag.trim() != tag {
            return Err(ModelError::new(
                "tags",
                "invalid_tag",
                format!("tag {tag:?} must not contain commas, control characters or edge blanks"),
            ));
        }
        if tags[..i].contains(tag) {
            return Err(ModelError::new(
                "tags",
                "invalid_tag",
                format!("tag {tag:?} is repeated"),
            ));
        }
    }
    Ok(())
}

/// Tags and attributes of a device: set through the API, or by the device itself (DDI
/// configData). Rollouts narrow their target with them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceLabels {
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

impl DeviceLabels {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.attributes.is_empty()
    }

    /// Has every tag of `tags` and every `key = value` of `attributes`.
    pub fn matches(&self, tags: &[String], attributes: &BTreeMap<String, String>) -> bool {
        tags.iter().all(|t| self.tags.contains(t))
            && attributes
                .iter()
                .all(|(k, v)| self.attributes.get(k) == Some(v))
    }
}

/// Bounds on a device's labels (config keys `storage.device_tags_max`,
/// `storage.device_attributes_max`, `storage.attribute_key_max`,
/// `storage.attribute_value_max`). Tags are 1–64 bytes like image tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    pub tags: usize,
    pub attributes: usize,
    pub key_bytes: usize,
    pub value_bytes: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        Self {
            tags: 32,
            attributes: 64,
            key_bytes: 64,
            value_bytes: 256,
        }
    }
}

/// Why a device's labels break their rules; becomes a [`ModelError`] (400) at the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("{0}")]
    Tag(ModelError),
    #[error("{given} attributes given; at most {max} are allowed")]
    TooManyAttributes { given: usize, max: usize },
    #[error(
        "attribute key {key:?} must be 1-{max} bytes without control characters, edge blanks, '=', ';' or ','"
    )]
    BadKey { key: String, max: usize },
    #[error("the value of attribute {key:?} is {len} bytes; at most {max} are allowed")]
    ValueTooLong { key: String, len: usize, max: usize },
    #[error("the value of attribute {key:?} contains control characters")]
    BadValue { key: String },
}

impl From<LabelError> for ModelError {
    fn from(e: LabelError) -> Self {
        let (field, trace) = match &e {
            LabelError::Tag(inner) => return inner.clone(),
            LabelError::TooManyAttributes { .. } => ("attributes", "too_many_attributes"),
            LabelError::BadKey { .. } => ("attributes", "invalid_attribute_key"),
            LabelError::ValueTooLong { .. } => ("attributes", "attribute_too_long"),
            LabelError::BadValue { .. } => ("attributes", "invalid_attribute_value"),
        };
        ModelError::new(field, trace, e.to_string())
    }
}

/// Checks a device's tags (the image tag rules, at most `limits.tags`).
pub fn validate_device_tags(tags: &[String], limits: &LabelLimits) -> Result<(), LabelError> {
    validate_tag_list(tags, limits.tags).map_err(LabelError::Tag)
}

/// Checks a device's attributes: at most `limits.attributes`; keys 1–`key_bytes` bytes,
/// single-line, without the separators of the list filter and the CSV import (`=`, `;`,
/// `,`); values up to `value_bytes` bytes (empty allowed), single-line.
pub fn validate_attributes(
    attributes: &BTreeMap<String, String>,
    limits: &LabelLimits,
) -> Result<(), LabelError> {
    if attributes.len() > limits.attributes {
        return Err(LabelError::TooManyAttributes {
            given: attributes.len(),
            max: limits.attributes,
        });
    }
    for (key, value) in attributes {
        let key_ok = !key.is_empty()
            && key.len() <= limits.key_bytes
            && !has_control(key)
            && key.trim() == key
            && !key.contains(['=', ';', ',']);
        if !key_ok {
            return Err(LabelError::BadKey {
                key: key.clone(),
                max: limits.key_bytes,
            });
        }
        if value.len() > limits.value_bytes {
            return Err(LabelError::ValueTooLong {
                key: key.clone(),
                len: value.len(),
                max: limits.value_bytes,
            });
        }
        if has_control(value) {
            return Err(LabelError::BadValue { key: key.clone() });
        }
    }
    Ok(())
}

/// Both halves of a device's labels.
pub fn validate_labels(labels: &DeviceLabels, limits: &LabelLimits) -> Result<(), LabelError> {
    validate_device_tags(&labels.tags, limits)?;
    validate_attributes(&labels.attributes, limits)
}

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')
}

/// Device ids: 1–64 bytes of `[A-Za-z0-9._-]` (they travel in the OCP HELLO).
pub fn validate_device_id(value: &str) -> Result<(), ModelError> {
    if value.is_empty() || value.len() > DEVICE_ID_MAX || !value.bytes().all(is_id_char) {
        return Err(ModelError::new(
            "deviceId",
            "invalid_device_id",
            "deviceId must be 1-64 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    Ok(())
}

pub fn validate_username(value: &str) -> Result<(), ModelError> {
    let ok = !value.is_empty()
        && value.len() <= USERNAME_MAX
        && value
            .bytes()
            .all(|c| is_id_char(c) || c == b'@' || c == b'+');
    if !ok {
        return Err(ModelError::new(
            "username",
            "invalid_username",
            "username must be 1-64 characters of A-Z a-z 0-9 . _ - @ +",
        ));
    }
    Ok(())
}

pub fn validate_password(value: &str) -> Result<(), ModelError> {
    if value.len() < PASSWORD_MIN || value.len() > PASSWORD_MAX {
        return Err(ModelError::new(
            "password",
            "invalid_password",
            format!("password must be {PASSWORD_MIN}-{PASSWORD_MAX} bytes"),
        ));
    }
    Ok(())
}

/// A contact email: one `@` with text on both sides, no blanks; not a full RFC 5322 check.
pub fn validate_email(value: &str) -> Result<(), ModelError> {
    let ok = value.len() <= EMAIL_MAX
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(value.split_once('@'), Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('@'));
    if !ok {
        return Err(ModelError::new(
            "email",
            "invalid_email",
            "email must look like name@host",
        ));
    }
    Ok(())
}

/// A hawkBit DDI tenant name: 1–64 of `[A-Za-z0-9_-]` (compared without case).
pub fn validate_ddi_tenant(value: &str) -> Result<(), ModelError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ModelError::new(
            "ddiTenant",
            "invalid_ddi_tenant",
            "ddiTenant must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
        ))
    }
}

/// A partner's organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    /// Argon2 PHC string of the OAuth client secret.
    pub secret_hash: String,
    /// The platform partner owns platform types; its users may be appliance admins.
    pub platform: bool,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Appliance admin: may act on every partner's paths.
    Admin,
    /// A user of one partner only.
    Partner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Partner => "partner",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "admin" => Ok(Role::Admin),
            "partner" => Ok(Role::Partner),
            _ => Err(ModelError::new(
                "role",
                "invalid_role",
                "role must be \"partner\" or \"admin\"",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub partner_id: String,
    pub role: Role,
    /// Argon2 PHC string.
    pub password_hash: String,
    pub created_ms: u64,
}

/// Admin role only for users of the platform partner.
pub fn validate_role_for(role: Role, partner: &Partner) -> Result<(), ModelError> {
    if role == Role::Admin && !partner.platform {
        return Err(ModelError::new(
            "role",
            "invalid_role",
            "role admin is only valid for users of the platform partner",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareType {
    pub fw_type: u16,
    pub name: String,
    pub description: String,
    /// Owner: the platform partner for 1..=100, the creating partner for 101..=200.
    pub partner_id: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceType {
    pub id: String,
    pub partner_id: String,
    pub name: String,
    pub description: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// The binary attached to a record: content identity plus the URL the partner was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryRef {
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
    pub size: u64,
    pub url: String,
}

/// A firmware record: a pool record, or (type 4) a record living under one device type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub partner_id: String,
    pub fw_type: u16,
    pub version_number: u64,
    pub name: String,
    pub description: String,
    pub version: String,
    pub tags: Vec<String>,
    pub binary: Option<BinaryRef>,
    /// Set only for type-4 records: the one device type they live under.
    pub device_type_id: Option<String>,
    pub device_description_id: Option<String>,
    pub device_profile_id: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Record {
    pub fn url(&self) -> &str {
        self.binary.as_ref().map_or("", |b| b.url.as_str())
    }
}

/// The editable fields of a record, validated together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordFields {
    pub name: String,
    pub description: String,
    pub version: String,
    pub tags: Vec<String>,
}

impl RecordFields {
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_name(&self.name)?;
        validate_description(&self.description)?;
        validate_version_string(&self.version)?;
        validate_tags(&self.tags)
    }
}

/// Per-(device, type) OTA states reported over OCP (REPORT), plus "offered" and "confirmed"
/// which the server sets itself. Ordered as declared (for counting by state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OtaState {
    Offered,
    Downloading,
    Downloaded,
    Installing,
    Installed,
    Failed,
    Deferred,
    /// The device later reported the offered number (or higher) as installed.
    Confirmed,
}

impl OtaState {
    pub fn as_str(self) -> &'static str {
        match self {
            OtaState::Offered => "offered",
            OtaState::Downloading => "downloading",
            OtaState::Downloaded => "downloaded",
            OtaState::Installing => "installing",
            OtaState::Installed => "installed",
            OtaState::Failed => "failed",
            OtaState::Deferred => "deferred",
            OtaState::Confirmed => "confirmed",
        }
    }

    /// Decodes a REPORT (state, result) pair; `None` for combinations the protocol forbids.
    pub fn from_report(state: u8, result: u8) -> Option<Self> {
        match (state, result) {
            (1, 0) => Some(OtaState::Downloading),
            (2, 0) => Some(OtaState::Downloaded),
            (3, 0) => Some(OtaState::Installing),
            (4, 0 | 1) => Some(OtaState::Installed),
            (5, 2..=10) => Some(OtaState::Failed),
            (6, 11) => Some(OtaState::Deferred),
            _ => None,
        }
    }
}

/// Why an update failed or waits, in words: the LwM2M firmware-update result codes that
/// devices report (OCP/1 REPORT).
pub fn result_reason(result: u8) -> &'static str {
    match result {
        0 => "ok",
        1 => "installed",
        2 => "not enough flash",
        3 => "out of RAM",
        4 => "connection lost during download",
        5 => "integrity check failure",
        6 => "unsupported package type",
        7 => "invalid URI",
        8 => "update failed",
        9 => "unsupported protocol",
        10 => "cancelled",
        11 => "deferred by the device",
        _ => "unknown result",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaEvent {
    pub at_ms: u64,
    pub version_number: u64,
    pub state: OtaState,
    pub result: u8,
    pub bytes_done: u64,
}

/// The latest OTA state of one firmware type on one device, with a bounded history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeOta {
    pub current: OtaEvent,
    pub offered_ms: u64,
    pub history: VecDeque<OtaEvent>,
}

impl TypeOta {
    pub fn new(event: OtaEvent) -> Self {
        Self {
            offered_ms: event.at_ms,
            current: event,
            history: VecDeque::new(),
        }
    }

    /// Makes `event` current, keeping at most `limit` earlier events (oldest dropped first).
    pub fn record(&mut self, event: OtaEvent, limit: usize) {
        let previous = std::mem::replace(&mut self.current, event);
        self.history.push_back(previous);
        while self.history.len() > limit {
            self.history.pop_front();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub partner_id: String,
    pub device_type_id: String,
    /// SHA-256 of the device token (tokens carry ≥ 128 random bits, so a fast hash suffices).
    pub token_hash: [u8; 32],
    pub created_ms: u64,
    pub last_seen_ms: Option<u64>,
    /// Installed version number per firmware type, as last reported in a CHECK.
    pub reported: BTreeMap<u16, u64>,
    pub ota: BTreeMap<u16, TypeOta>,
    /// Explicit pushes: firmware type → record id.
    pub pushes: BTreeMap<u16, u64>,
}

/// One line of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_ms: u64,
    /// Who: a username, `client:<partnerId>`, `device:<id>` or `system`.
    pub actor: String,
    /// What: a short verb-noun such as `pool.create`.
    pub action: String,
    /// Which object, e.g. `partner/…/pool/3/17`.
    pub target: String,
    pub detail: String,
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Parses 64 hex digits (either case) into 32 bytes.
pub fn parse_hash_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_classes_and_bounds() {
        assert_eq!(type_class(1), Ok((1, TypeClass::Platform)));
        assert_eq!(type_class(100), Ok((100, TypeClass::Platform)));
        assert_eq!(type_class(101), Ok((101, TypeClass::Mcu)));
        assert_eq!(type_class(200), Ok((200, TypeClass::Mcu)));
        for bad in [0, -1, 201, 65_536, i64::MAX, i64::MIN] {
            let err = type_class(bad).unwrap_err();
            assert_eq!(err.trace, "type_out_of_range");
        }
        assert_eq!(version_attribute_id(3), 2003);
        assert_eq!(version_attribute_id(105), 2105);
    }

    #[test]
    fn seeded_types_are_platform_and_distinct() {
        let mut seen = Vec::new();
        for (t, name) in SEEDED_PLATFORM_TYPES {
            assert_eq!(type_class(i64::from(t)).unwrap().1, TypeClass::Platform);
            assert!(!seen.contains(&t));
            seen.push(t);
            validate_name(name).unwrap();
        }
        assert_eq!(
            SEEDED_PLATFORM_TYPES[3],
            (DEVICE_DESCRIPTION_TYPE, "DEVICE_DESCRIPTION")
        );
    }

    #[test]
    fn names_versions_descriptions() {
        validate_name("radio fw").unwrap();
        assert_eq!(validate_name("").unwrap_err().trace, "invalid_field");
        assert_eq!(validate_name("   ").unwrap_err().trace, "invalid_field");
        assert_eq!(validate_name("a\nb").unwrap_err().trace, "invalid_field");
        validate_name(&"n".repeat(NAME_MAX)).unwrap();
        assert_eq!(
            validate_name(&"n".repeat(NAME_MAX + 1)).unwrap_err().trace,
            "field_too_long"
        );
        validate_version_string("1.4.2+7d").unwrap();
        validate_version_string(&"v".repeat(VERSION_MAX)).unwrap();
        assert!(validate_version_string(&"v".repeat(VERSION_MAX + 1)).is_err());
        assert!(validate_version_string("").is_err());
        validate_description("").unwrap();
        validate_description("line one\nline two").unwrap();
        assert!(validate_description("bell\u{7}").is_err());
        assert!(validate_description(&"d".repeat(DESCRIPTION_MAX + 1)).is_err());
    }

    #[test]
    fn tags_rules() {
        validate_tags(&[]).unwrap();
        validate_tags(&["beta".into(), "eu-west".into()]).unwrap();
        let too_many: Vec<String> = (0..=TAGS_MAX).map(|i| format!("t{i}")).collect();
        assert_eq!(validate_tags(&too_many).unwrap_err().trace, "too_many_tags");
        for bad in ["", "a,b", " lead", "trail ", "ctl\u{1}"] {
            assert_eq!(
                validate_tags(&[bad.to_string()]).unwrap_err().trace,
                "invalid_tag",
                "{bad:?}"
            );
        }
        assert!(validate_tags(&["t".repeat(TAG_MAX + 1)]).is_err());
        assert!(validate_tags(&["x".into(), "x".into()]).is_err());
    }

    #[test]
    fn device_labels_rules() {
        let limits = LabelLimits::default();
        let attrs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        validate_attributes(&attrs(&[("region", "eu"), ("empty", "")]), &limits).unwrap();
        let many: BTreeMap<String, String> =
            (0..=64).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(
            validate_attributes(&many, &limits),
            Err(LabelError::TooManyAttributes { given: 65, max: 64 })
        );
        for bad in ["", "a=b", "a;b", "a,b", " k", "k\u{1}", &"k".repeat(65)] {
            let e = validate_attributes(&attrs(&[(bad, "v")]), &limits).unwrap_err();
            assert!(matches!(e, LabelError::BadKey { .. }), "{bad:?}");
            assert_eq!(ModelError::from(e).trace, "invalid_attribute_key");
        }
        validate_attributes(&attrs(&[(&"k".repeat(64), &"v".repeat(256))]), &limits).unwrap();
        let e = validate_attributes(&attrs(&[("k", &"v".repeat(257))]), &limits).unwrap_err();
        assert_eq!(ModelError::from(e).trace, "attribute_too_long");
        let e = validate_attributes(&attrs(&[("k", "a\nb")]), &limits).unwrap_err();
        assert_eq!(ModelError::from(e).trace, "invalid_attribute_value");
        let tags: Vec<String> = (0..=32).map(|i| format!("t{i}")).collect();
        let e = validate_device_tags(&tags, &limits).unwrap_err();
        assert_eq!(ModelError::from(e).trace, "too_many_tags");
        let tight = LabelLimits { tags: 1, ..limits };
        assert!(validate_device_tags(&tags[..2], &tight).is_err());
        validate_device_tags(&tags[..1], &tight).unwrap();
        let labels = DeviceLabels {
            tags: vec!["beta".into(), "eu".into()],
            attributes: attrs(&[("hw", "rev2")]),
        };
        assert!(labels.matches(&["eu".into()], &attrs(&[("hw", "rev2")])));
        assert!(labels.matches(&[], &BTreeMap::new()));
        assert!(!labels.matches(&["us".into()], &BTreeMap::new()));
        assert!(!labels.matches(&[], &attrs(&[("hw", "rev3")])));
    }

    #[test]
    fn device_ids_and_usernames() {
        validate_device_id("dev-01.a_B").unwrap();
        validate_device_id(&"d".repeat(64)).unwrap();
        for bad in ["", "with space", "slash/", "ü", &"d".repeat(65)] {
            assert!(validate_device_id(bad).is_err(), "{bad:?}");
        }
        validate_username("ops@example.com").unwrap();
        assert!(validate_username("").is_err());
        assert!(validate_username("a b").is_err());
        validate_password("correct horse").unwrap();
        assert!(validate_password("short").is_err());
        validate_email("ops@example.com").unwrap();
        for bad in ["nobody", "@host", "a@", "a b@c", "a@b@c"] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles() {
        let mut p = Partner {
            id: "p".into(),
            name: "P".into(),
            email: None,
            secret_hash: String::new(),
            platform: false,
            created_ms: 0,
        };
        assert!(validate_role_for(Role::Admin, &p).is_err());
        validate_role_for(Role::Partner, &p).unwrap();
        p.platform = true;
        validate_role_for(Role::Admin, &p).unwrap();
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn report_state_table() {
        assert_eq!(OtaState::from_report(1, 0), Some(OtaState::Downloading));
        assert_eq!(OtaState::from_report(4, 1), Some(OtaState::Installed));
        assert_eq!(OtaState::from_report(5, 5), Some(OtaState::Failed));
        assert_eq!(OtaState::from_report(6, 11), Some(OtaState::Deferred));
        for (s, r) in [
            (1, 1),
            (4, 2),
            (5, 0),
            (5, 11),
            (6, 0),
            (0, 0),
            (7, 0),
            (2, 3),
        ] {
            assert_eq!(OtaState::from_report(s, r), None, "({s},{r})");
        }
    }

    #[test]
    fn history_is_bounded() {
        let ev = |n: u64| OtaEvent {
            at_ms: n,
            version_number: 9,
            state: OtaState::Downloading,
            result: 0,
            bytes_done: n,
        };
        let mut ota = TypeOta::new(ev(0));
        for n in 1..=10 {
            ota.record(ev(n), 4);
        }
        assert_eq!(ota.current.at_ms, 10);
        assert_eq!(ota.history.len(), 4);
        assert_eq!(ota.history.front().map(|e| e.at_ms), Some(6));
    }

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let h = hex(&bytes);
        assert_eq!(parse_hash_hex(&h), Some(bytes));
        assert_eq!(parse_hash_hex(&h.to_uppercase()), Some(bytes));
        assert_eq!(parse_hash_hex(&h[1..]), None);
        assert_eq!(parse_hash_hex(&format!("{}zz", &h[2..])), None);
    }
}
