//! Every redb table of otad, in one place, with its key and value layout.
//!
//! Values marked "encoded" are `codec::encode` bytes (schema byte + postcard). Scope strings:
//! `""` is the platform (platform firmware types and their counters), otherwise a partner id.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// Named sequences and the schema version: `schema`, `next_record_id`, `next_data_id`,
/// `next_audit_seq`, `next_rollout_id`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (scope, firmware type) → last allocated version number.
pub const COUNTERS: TableDefinition<(&str, u16), u64> = TableDefinition::new("counters");
/// partner id → encoded `Partner`.
pub const PARTNERS: TableDefinition<&str, &[u8]> = TableDefinition::new("partners");
/// username → encoded `User`.
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// (scope, firmware type) → encoded `FirmwareType`.
pub const FW_TYPES: TableDefinition<(&str, u16), &[u8]> = TableDefinition::new("fw_types");
/// device type id → encoded `DeviceType`.
pub const DEVICE_TYPES: TableDefinition<&str, &[u8]> = TableDefinition::new("device_types");
/// (partner id, device type id) → ().
pub const DEVICE_TYPES_BY_PARTNER: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("device_types_by_partner");
/// record id → encoded `Record`.
pub const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// (counter scope, firmware type, version number) → record id.
pub const RECORD_BY_NUMBER: TableDefinition<(&str, u16, u64), u64> =
    TableDefinition::new("record_by_number");
/// (partner id, firmware type, device type id or "" for the pool, name, version) → record id.
pub const RECORD_NAMES: TableDefinition<(&str, u16, &str, &str, &str), u64> =
    TableDefinition::new("record_names");
/// (partner id, record id) → ().
pub const RECORDS_BY_PARTNER: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("records_by_partner");
/// (device type id, firmware type, version number) → record id: what a device type may get.
pub const ASSOCIATIONS: TableDefinition<(&str, u16, u64), u64> =
    TableDefinition::new("associations");
/// (record id, device type id) → ().
pub const ASSOC_BY_RECORD: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("assoc_by_record");
/// device id → encoded `Device`.
pub const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// (device type id, device id) → ().
pub const DEVICES_BY_TYPE: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("devices_by_type");
/// device id → encoded `DeviceLabels` (tags and attributes); no row = none.
pub const DEVICE_LABELS: TableDefinition<&str, &[u8]> = TableDefinition::new("device_labels");
/// rollout id → encoded `rollout::Rollout` (definition, state, groups with counters).
pub const ROLLOUTS: TableDefinition<u64, &[u8]> = TableDefinition::new("rollouts");
/// (rollout id, device id) → encoded `rollout::DeviceOutcome`.
pub const ROLLOUT_DEVICES: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("rollout_devices");
/// (device type id, firmware type) → id of the latest rollout there (at most one unfinished).
pub const ROLLOUT_LATEST: TableDefinition<(&str, u16), u64> =
    TableDefinition::new("rollout_latest");
/// (device type id, record id) → rollout id: an association offered only through it.
pub const ROLLOUT_HELD: TableDefinition<(&str, u64), u64> = TableDefinition::new("rollout_held");
/// (due ms, rollout id, device id) → (): confirm timeouts, walked by the timer pass.
pub const ROLLOUT_DUE: TableDefinition<(u64, u64, &str), ()> = TableDefinition::new("rollout_due");
/// sequence → encoded `AuditEntry`. Append-only.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// blake3 → encoded `BlobMeta`: published, content-addressed binaries.
pub const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// sha256 → blake3 of a published blob.
pub const BLOB_BY_SHA: TableDefinition<&[u8; 32], &[u8; 32]> = TableDefinition::new("blob_by_sha");
/// (data id, row index) → blob bytes; rows of `blobs::ROW_BYTES` except the last.
pub const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");
/// (data id, row index) → outboard pairs; rows of `blobs::OUTBOARD_ROW_PAIRS` pairs.
pub const OUTBOARDS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("outboards");
/// data id → encoded `Upload`: data rows that are not (yet) a published blob.
pub const UPLOADS: TableDefinition<u64, &[u8]> = TableDefinition::new("uploads");
/// (partner id, sha256) → data id of a complete upload awaiting moveToRepository.
pub const STAGED: TableDefinition<(&str, &[u8; 32]), u64> = TableDefinition::new("staged");
/// (partner id, sha256) → blake3: binaries moved to a partner's repository (one blob ref each).
pub const OWNED: TableDefinition<(&str, &[u8; 32]), &[u8; 32]> = TableDefinition::new("owned");

/// (partner id, key id hex) → encoded `SigningKeyInfo`: partners' public signing keys.
pub const SIGNING_KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("signing_keys");
/// (record id, key id hex) → encoded `ImageSignature`: verified signatures of images.
pub const IMAGE_SIGNATURES: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("image_signatures");
/// device type id → encoded `SignaturePolicy`.
pub const SIGNATURE_POLICIES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("signature_policies");
/// blake3 → encoded `Digests` (SHA-1 and MD5) of a published or staged binary's bytes.
pub const DIGESTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("digests");
/// (partner id, sha256) → the filename given when the partner uploaded those bytes.
pub const BINARY_NAMES: TableDefinition<(&str, &[u8; 32]), &str> =
    TableDefinition::new("binary_names");

/// lowercase DDI tenant name → partner id, for partners whose tenant is not their id.
pub const DDI_TENANTS: TableDefinition<&str, &str> = TableDefinition::new("ddi_tenants");
/// partner id → its DDI tenant name as set (absent: the partner id).
pub const PARTNER_TENANTS: TableDefinition<&str, &str> = TableDefinition::new("partner_tenants");
/// sha256 of a DDI gateway token → partner id.
pub const GATEWAY_TOKENS: TableDefinition<&[u8; 32], &str> = TableDefinition::new("gateway_tokens");
/// partner id → encoded `GatewayToken` (its hash and when it was made): one per partner.
pub const GATEWAY_BY_PARTNER: TableDefinition<&str, &[u8]> =
    TableDefinition::new("gateway_by_partner");
/// device id → encoded `DdiState`: the actions advertised to a DDI agent.
pub const DDI_ACTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("ddi_actions");

/// sha256 of an API access token → encoded `Token`.
pub const TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokens");
/// sha256 of a device token → device id (device tokens as HTTP bearer tokens).
pub const DEVICE_TOKENS: TableDefinition<&[u8; 32], &str> = TableDefinition::new("device_tokens");

/// Calls `$m!` with every table, so code that must touch all of them (creation, backup)
/// cannot forget one.
#[macro_export]
macro_rules! for_all_tables {
    ($m:ident) => {
        $m!(
            META,
            COUNTERS,
            PARTNERS,
            USERS,
            FW_TYPES,
            DEVICE_TYPES,
            DEVICE_TYPES_BY_PARTNER,
            RECORDS,
            RECORD_BY_NUMBER,
            RECORD_NAMES,
            RECORDS_BY_PARTNER,
            ASSOCIATIONS,
            ASSOC_BY_RECORD,
            DEVICES,
            DEVICES_BY_TYPE,
            DEVICE_LABELS,
            ROLLOUTS,
            ROLLOUT_DEVICES,
            ROLLOUT_LATEST,
            ROLLOUT_HELD,
            ROLLOUT_DUE,
            AUDIT,
            BLOBS,
            BLOB_BY_SHA,
            CHUNKS,
            OUTBOARDS,
            UPLOADS,
            STAGED,
            OWNED,
            DIGESTS,
            BINARY_NAMES,
            DDI_TENANTS,
            PARTNER_TENANTS,
            GATEWAY_TOKENS,
            GATEWAY_BY_PARTNER,
            DDI_ACTIONS,
            TOKENS,
            DEVICE_TOKENS,
            SIGNING_KEYS,
            IMAGE_SIGNATURES,
            SIGNATURE_POLICIES
        )
    };
}

/// Creates every table so that read transactions never meet a missing one.
pub fn create_all(txn: &WriteTransaction) -> Result<(), redb::TableError> {
    macro_rules! create {
        ($($t:ident),*) => {
            $( txn.open_table($t)?; )*
        };
    }
    for_all_tables!(create);
    Ok(())
}

/// Takes the next value of a named sequence (starting at 1) inside `txn`.
pub fn next_seq(txn: &WriteTransaction, name: &str) -> Result<u64, redb::StorageError> {
    let mut meta = txn.open_table(META).map_err(table_to_storage)?;
    let next = meta.get(name)?.map_or(1, |v| v.value() + 1);
    meta.insert(name, next)?;
    Ok(next)
}

fn table_to_storage(e: redb::TableError) -> redb::StorageError {
    match e {
        redb::TableError::Storage(s) => s,
        other => redb::StorageError::Corrupted(other.to_string()),
    }
}
