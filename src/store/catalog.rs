//! The catalog: partners, users, firmware types, device types, firmware records, their
//! associations with device types, and the version counters.
//!
//! Version numbers are allocated in the same write transaction that inserts the record, after
//! every check has passed, so a refused request allocates nothing and numbers are gap-free
//! per counter. Counter scope: `("", type)` for platform types 1–100 (type 4 included),
//! `(partner, type)` for MCU types 101–200.
//!
//! Authorization is the API's job; the only role rules here are the data rules of api.md
//! (platform types belong to the platform partner; admin users only there).

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::blobs;
use super::tables::{
    ASSOC_BY_RECORD, ASSOCIATIONS, COUNTERS, DEVICE_TYPES, DEVICE_TYPES_BY_PARTNER,
    DEVICES_BY_TYPE, FW_TYPES, OWNED, PARTNERS, RECORD_BY_NUMBER, RECORD_NAMES, RECORDS,
    RECORDS_BY_PARTNER, TOKENS, USERS, next_seq,
};
use super::tokens::Token;
use super::{Result, Store, StoreError, audit, codec};
use crate::ids::{new_uuid, now_ms};
use crate::model::{
    self, BinaryRef, DEVICE_DESCRIPTION_TYPE, DeviceType, FirmwareType, ModelError, Partner,
    Record, RecordFields, Role, SEEDED_PLATFORM_TYPES, TypeClass, User,
};
use crate::secrets::new_secret;

/// Hashes a password or client secret for storage.
fn hash_secret(secret: &str) -> Result<String> {
    crate::secrets::hash_secret(secret).map_err(StoreError::Db)
}

/// Credentials created at first start; the caller writes them to a private file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstStart {
    pub platform_partner_id: String,
    pub client_secret: String,
    pub admin_username: String,
    pub admin_password: String,
}

/// A new pool record as the API hands it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub partner_id: String,
    pub fw_type: i64,
    pub fields: RecordFields,
    /// The binary (sha256 and the URL the partner was given), if the url was not empty.
    pub binary: Option<([u8; 32], String)>,
    /// Device types to associate in the same transaction.
    pub associations: Vec<String>,
}

/// A device description (type 4) record, created under one device type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceDescription {
    pub partner_id: String,
    pub device_type_id: String,
    pub fields: RecordFields,
    pub binary: ([u8; 32], String),
    pub device_description_id: Option<String>,
    pub device_profile_id: Option<String>,
}

/// One association of a record, for the associations list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssociationView {
    pub device_type: DeviceType,
    pub partner: Partner,
    pub record_id: u64,
}

pub(crate) fn counter_scope(partner_id: &str, fw_type: u16) -> &str {
    if fw_type <= model::PLATFORM_TYPE_MAX {
        ""
    } else {
        partner_id
    }
}

fn get<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    let value = table.get(key)?;
    value.map(|v| codec::decode(v.value())).transpose()
}

fn put<T: serde::Serialize>(
    txn: &WriteTransaction,
    def: redb::TableDefinition<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<()> {
    let bytes = codec::encode(value)?;
    txn.open_table(def)?.insert(key, bytes.as_slice())?;
    Ok(())
}

pub(crate) fn get_record_w(txn: &WriteTransaction, id: u64) -> Result<Option<Record>> {
    let table = txn.open_table(RECORDS)?;
    let value = table.get(id)?;
    value.map(|v| codec::decode(v.value())).transpose()
}

pub(crate) fn get_record_r(txn: &ReadTransaction, id: u64) -> Result<Option<Record>> {
    let table = txn.open_table(RECORDS)?;
    let value = table.get(id)?;
    value.map(|v| codec::decode(v.value())).transpose()
}

fn put_record(txn: &WriteTransaction, record: &Record) -> Result<()> {
    let bytes = codec::encode(record)?;
    txn.open_table(RECORDS)?
        .insert(record.id, bytes.as_slice())?;
    Ok(())
}

/// The partner-scoped lookup of a record by type and version number (pool or image).
fn record_by_number_w(
    txn: &WriteTransaction,
    partner_id: &str,
    fw_type: u16,
    vn: u64,
) -> Result<Option<Record>> {
    let id = txn
        .open_table(RECORD_BY_NUMBER)?
        .get((counter_scope(partner_id, fw_type), fw_type, vn))?
        .map(|v| v.value());
    let Some(id) = id else { return Ok(None) };
    Ok(get_record_w(txn, id)?.filter(|r| r.partner_id == partner_id))
}

fn record_by_number_r(
    txn: &ReadTransaction,
    partner_id: &str,
    fw_type: u16,
    vn: u64,
) -> Result<Option<Record>> {
    let id = txn
        .open_table(RECORD_BY_NUMBER)?
        .get((counter_scope(partner_id, fw_type), fw_type, vn))?
        .map(|v| v.value());
    let Some(id) = id else { return Ok(None) };
    Ok(get_record_r(txn, id)?.filter(|r| r.partner_id == partner_id))
}

fn type_exists_w(txn: &WriteTransaction, partner_id: &str, fw_type: u16) -> Result<bool> {
    Ok(txn
        .open_table(FW_TYPES)?
        .get((counter_scope(partner_id, fw_type), fw_type))?
        .is_some())
}

fn device_type_w(txn: &WriteTransaction, id: &str) -> Result<Option<DeviceType>> {
    get(&txn.open_table(DEVICE_TYPES)?, id)
}

/// Resolves a binary the partner moved to its repository into the record's link.
fn attach_binary(
    txn: &WriteTransaction,
    partner_id: &str,
    sha256: &[u8; 32],
    url: &str,
) -> Result<BinaryRef> {
    let blake3 = txn
        .open_table(OWNED)?
        .get((partner_id, sha256))?
        .map(|v| *v.value())
        .ok_or_else(|| {
            StoreError::Invalid(ModelError::new(
                "url",
                "unknown_binary",
                "url must be one that moveToRepository returned for this partner",
            ))
        })?;
    let meta = blobs::get_blob_in(txn, &blake3)?
        .ok_or_else(|| StoreError::Corrupt("owned blob missing".into()))?;
    blobs::add_ref(txn, &blake3)?;
    Ok(BinaryRef {
        blake3,
        sha256: *sha256,
        size: meta.size,
        url: url.to_string(),
    })
}

fn allocate_version(txn: &WriteTransaction, scope: &str, fw_type: u16) -> Result<u64> {
    let mut counters = txn.open_table(COUNTERS)?;
    let next = counters.get((scope, fw_type))?.map_or(1, |v| v.value() + 1);
    counters.insert((scope, fw_type), next)?;
    Ok(next)
}

fn name_key_taken(
    txn: &WriteTransaction,
    partner_id: &str,
    fw_type: u16,
    scope: &str,
    fields: &RecordFields,
    except: Option<u64>,
) -> Result<bool> {
    let found = txn
        .open_table(RECORD_NAMES)?
        .get((
            partner_id,
            fw_type,
            scope,
            fields.name.as_str(),
            fields.version.as_str(),
        ))?
        .map(|v| v.value());
    Ok(found.is_some_and(|id| Some(id) != except))
}

fn version_exists_error(fields: &RecordFields) -> StoreError {
    StoreError::conflict(
        "version_exists",
        format!(
            "a record named {:?} with version {:?} already exists for this type",
            fields.name, fields.version
        ),
    )
}

/// Inserts a new record with its indexes, allocating its version number. Checks done.
fn insert_record(txn: &WriteTransaction, mut record: Record) -> Result<Record> {
    let scope = counter_scope(&record.partner_id, record.fw_type).to_string();
    record.version_number = allocate_version(txn, &scope, record.fw_type)?;
    record.id = next_seq(txn, "next_record_id")?;
    put_record(txn, &record)?;
    txn.open_table(RECORD_BY_NUMBER)?.insert(
        (scope.as_str(), record.fw_type, record.version_number),
        record.id,
    )?;
    txn.open_table(RECORD_NAMES)?.insert(
        (
            record.partner_id.as_str(),
            record.fw_type,
            record.device_type_id.as_deref().unwrap_or(""),
            record.name.as_str(),
            record.version.as_str(),
        ),
        record.id,
    )?;
    txn.open_table(RECORDS_BY_PARTNER)?
        .insert((record.partner_id.as_str(), record.id), ())?;
    Ok(record)
}

fn associate_in(txn: &WriteTransaction, record: &Record, device_type_id: &str) -> Result<()> {
    let mut assoc = txn.open_table(ASSOCIATIONS)?;
    let key = (device_type_id, record.fw_type, record.version_number);
    if assoc.get(key)?.is_some() {
        return Err(StoreError::conflict(
            "already_associated",
            "this image is already associated with the device type",
        ));
    }
    assoc.insert(key, record.id)?;
    txn.open_table(ASSOC_BY_RECORD)?
        .insert((record.id, device_type_id), ())?;
    Ok(())
}

/// Checks that `device_type_id` may receive `record`: it exists, and MCU types (whose numbers
/// mean something only within one partner) stay within the record's partner.
fn check_association_target(
    txn: &WriteTransaction,
    record_partner: &str,
    fw_type: u16,
    device_type_id: &str,
) -> Result<DeviceType> {
    let dt = device_type_w(txn, device_type_id)?.ok_or_else(|| {
        StoreError::Invalid(ModelError::new(
            "associations",
            "unknown_device_type",
            format!("device type {device_type_id} does not exist"),
        ))
    })?;
    if fw_type > model::PLATFORM_TYPE_MAX && dt.partner_id != record_partner {
        return Err(StoreError::Invalid(ModelError::new(
            "associations",
            "foreign_mcu_type",
            "an MCU-type image can only be associated with its own partner's device types",
        )));
    }
    Ok(dt)
}

impl Store {
    /// Creates the platform partner, the first admin and the seeded platform types when the
    /// database has none; returns the new credentials, or `None` if already bootstrapped.
    pub fn bootstrap(&self) -> Result<Option<FirstStart>> {
        if self.platform_partner()?.is_some() {
            return Ok(None);
        }
        let first = FirstStart {
            platform_partner_id: new_uuid(),
            client_secret: new_secret(),
            admin_username: "admin".to_string(),
            admin_password: new_secret(),
        };
        let secret_hash = hash_secret(&first.client_secret)?;
        let password_hash = hash_secret(&first.admin_password)?;
        let f = first.clone();
        let created = self.write(true, move |txn| {
            // Another opener may have won the race between our check and this commit.
            for entry in txn.open_table(PARTNERS)?.iter()? {
                let (_, v) = entry?;
                let p: Partner = codec::decode(v.value())?;
                if p.platform {
                    return Ok(false);
                }
            }
            let now = now_ms();
            let partner = Partner {
                id: f.platform_partner_id.clone(),
                name: "platform".to_string(),
                email: None,
                secret_hash,
                platform: true,
                created_ms: now,
            };
            put(txn, PARTNERS, &partner.id, &partner)?;
            let user = User {
                username: f.admin_username.clone(),
                partner_id: partner.id.clone(),
                role: Role::Admin,
                password_hash,
                created_ms: now,
            };
            put(txn, USERS, &user.username, &user)?;
            let mut types = txn.open_table(FW_TYPES)?;
            for (t, name) in SEEDED_PLATFORM_TYPES {
                let ft = FirmwareType {
                    fw_type: t,
                    name: name.to_string(),
                    description: String::new(),
                    partner_id: partner.id.clone(),
                    created_ms: now,
                    updated_ms: now,
                };
                types.insert(("", t), codec::encode(&ft)?.as_slice())?;
            }
            drop(types);
            audit::append(
                txn,
                "system",
                "appliance.bootstrap",
                "platform",
                "first start",
            )?;
            Ok(true)
        })?;
        Ok(created.then_some(first))
    }

    pub fn platform_partner(&self) -> Result<Option<Partner>> {
        let txn = self.read()?;
        for entry in txn.open_table(PARTNERS)?.iter()? {
            let (_, v) = entry?;
            let p: Partner = codec::decode(v.value())?;
            if p.platform {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Creates a partner; returns it with its client secret (shown once).
    pub fn create_partner(
        &self,
        actor: &str,
        name: &str,
        email: Option<&str>,
    ) -> Result<(Partner, String)> {
        model::validate_name(name)?;
        if let Some(e) = email {
            model::validate_email(e)?;
        }
        let secret = new_secret();
        let partner = Partner {
            id: new_uuid(),
            name: name.to_string(),
            email: email.map(str::to_string),
            secret_hash: hash_secret(&secret)?,
            platform: false,
            created_ms: now_ms(),
        };
        let p = partner.clone();
        let actor = actor.to_string();
        self.write(true, move |txn| {
            put(txn, PARTNERS, &p.id, &p)?;
            audit::append(
                txn,
                &actor,
                "partner.create",
                &format!("partner/{}", p.id),
                &p.name,
            )?;
            Ok(())
        })?;
        Ok((partner, secret))
    }

    pub fn partner(&self, id: &str) -> Result<Option<Partner>> {
        get(&self.read()?.open_table(PARTNERS)?, id)
    }

    pub fn partners(&self) -> Result<Vec<Partner>> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(PARTNERS)?.iter()? {
            let (_, v) = entry?;
            out.push(codec::decode(v.value())?);
        }
        Ok(out)
    }

    /// Replaces a partner's client secret; returns the new one (shown once).
    pub fn rotate_partner_secret(&self, actor: &str, partner_id: &str) -> Result<String> {
        let secret = new_secret();
        let hash = hash_secret(&secret)?;
        let id = partner_id.to_string();
        let actor = actor.to_string();
        self.write(true, move |txn| {
            let mut p: Partner = get(&txn.open_table(PARTNERS)?, &id)?
                .ok_or_else(|| StoreError::not_found("partner", "unknown_partner"))?;
            p.secret_hash = hash;
            put(txn, PARTNERS, &id, &p)?;
            // Tokens obtained with the old secret (client credentials) go with it.
            txn.open_table(TOKENS)?.retain(|_, v| {
                codec::decode::<Token>(v).is_ok_and(|t| t.partner_id != id || t.username.is_some())
            })?;
            audit::append(
                txn,
                &actor,
                "partner.rotate_secret",
                &format!("partner/{id}"),
                "",
            )?;
            Ok(())
        })?;
        Ok(secret)
    }

    pub fn create_user(
        &self,
        actor: &str,
        partner_id: &str,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User> {
        model::validate_username(username)?;
        model::validate_password(password)?;
        let user = User {
            username: username.to_string(),
            partner_id: partner_id.to_string(),
            role,
            password_hash: hash_secret(password)?,
            created_ms: now_ms(),
        };
        let u = user.clone();
        let actor = actor.to_string();
        self.write(true, move |txn| {
            let partner: Partner = get(&txn.open_table(PARTNERS)?, &u.partner_id)?
                .ok_or_else(|| StoreError::not_found("partner", "unknown_partner"))?;
            model::validate_role_for(u.role, &partner)?;
            if txn.open_table(USERS)?.get(u.username.as_str())?.is_some() {
                return Err(StoreError::conflict(
                    "username_exists",
                    format!("username {:?} is taken", u.username),
                ));
            }
            put(txn, USERS, &u.username, &u)?;
            audit::append(
                txn,
                &actor,
                "user.create",
                &format!("partner/{}/users/{}", u.partner_id, u.username),
                u.role.as_str(),
            )?;
            Ok(())
        })?;
        Ok(user)
    }

    pub fn user(&self, username: &str) -> Result<Option<User>> {
        get(&self.read()?.open_table(USERS)?, username)
    }

    pub fn users(&self, partner_id: &str) -> Result<Vec<User>> {
        let txn = self.read()?;
        let mut out = Vec::new();
        for entry in txn.open_table(USERS)?.iter()? {
            let (_, v) = entry?;
            let u: User = codec::decode(v.value())?;
            if u.partner_id == partner_id {
                out.push(u);
            }
        }
        Ok(out)
    }

    pub fn remove_user(&self, actor: &str, partner_id: &str, username: &str) -> Result<()> {
        let (pid, name, actor) = (
            partner_id.to_string(),
            username.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let user: Option<User> = get(&txn.open_table(USERS)?, &name)?;
            if user.is_none_or(|u| u.partner_id != pid) {
                return Err(StoreError::not_found("user", "unknown_user"));
            }
            txn.open_table(USERS)?.remove(name.as_str())?;
            txn.open_table(TOKENS)?.retain(|_, v| {
                codec::decode::<Token>(v)
                    .is_ok_and(|t| t.username.as_deref() != Some(name.as_str()))
            })?;
            audit::append(
                txn,
                &actor,
                "user.remove",
                &format!("partner/{pid}/users/{name}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Creates a firmware type. 1–100 only for admins (platform), 101–200 per partner.
    pub fn create_type(
        &self,
        actor: &str,
        admin: bool,
        partner_id: &str,
        fw_type: i64,
        name: &str,
        description: &str,
    ) -> Result<FirmwareType> {
        let (t, class) = model::type_class(fw_type)?;
        if class == TypeClass::Platform && !admin {
            return Err(StoreError::Invalid(ModelError::new(
                "type",
                "type_reserved",
                "types 1-100 are platform types; partners use 101-200",
            )));
        }
        model::validate_name(name)?;
        model::validate_description(description)?;
        let (pid, name, description, actor) = (
            partner_id.to_string(),
            name.to_string(),
            description.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let owner = match class {
                TypeClass::Platform => platform_partner_w(txn)?.id,
                TypeClass::Mcu => pid.clone(),
            };
            let scope = counter_scope(&pid, t).to_string();
            let mut types = txn.open_table(FW_TYPES)?;
            if types.get((scope.as_str(), t))?.is_some() {
                return Err(StoreError::conflict(
                    "type_exists",
                    format!("firmware type {t} already exists"),
                ));
            }
            let now = now_ms();
            let ft = FirmwareType {
                fw_type: t,
                name,
                description,
                partner_id: owner,
                created_ms: now,
                updated_ms: now,
            };
            types.insert((scope.as_str(), t), codec::encode(&ft)?.as_slice())?;
            drop(types);
            audit::append(
                txn,
                &actor,
                "type.create",
                &format!("partner/{pid}/types/{t}"),
                &ft.name,
            )?;
            Ok(ft)
        })
    }

    /// Renames a firmware type; partners cannot change platform types (403).
    pub fn update_type(
        &self,
        actor: &str,
        admin: bool,
        partner_id: &str,
        fw_type: u16,
        name: &str,
        description: &str,
    ) -> Result<()> {
        model::validate_name(name)?;
        model::validate_description(description)?;
        let (pid, name, description, actor) = (
            partner_id.to_string(),
            name.to_string(),
            description.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let scope = counter_scope(&pid, fw_type).to_string();
            let mut types = txn.open_table(FW_TYPES)?;
            let current = types
                .get((scope.as_str(), fw_type))?
                .map(|v| v.value().to_vec());
            let Some(bytes) = current else {
                return Err(StoreError::not_found("firmware type", "unknown_type"));
            };
            if scope.is_empty() && !admin {
                return Err(StoreError::forbidden(
                    "platform_type",
                    "platform types can only be changed by an appliance admin",
                ));
            }
            let mut ft: FirmwareType = codec::decode(&bytes)?;
            ft.name = name;
            ft.description = description;
            ft.updated_ms = now_ms();
            types.insert((scope.as_str(), fw_type), codec::encode(&ft)?.as_slice())?;
            drop(types);
            audit::append(
                txn,
                &actor,
                "type.update",
                &format!("partner/{pid}/types/{fw_type}"),
                &ft.name,
            )?;
            Ok(())
        })
    }

    /// Platform types plus the partner's own, by number.
    pub fn types(&self, partner_id: &str) -> Result<Vec<FirmwareType>> {
        let txn = self.read()?;
        let table = txn.open_table(FW_TYPES)?;
        let mut out = Vec::new();
        for scope in ["", partner_id] {
            for entry in table.range((scope, 0u16)..=(scope, u16::MAX))? {
                let (_, v) = entry?;
                out.push(codec::decode(v.value())?);
            }
        }
        Ok(out)
    }

    pub fn fw_type(&self, partner_id: &str, fw_type: u16) -> Result<Option<FirmwareType>> {
        let txn = self.read()?;
        let table = txn.open_table(FW_TYPES)?;
        let value = table.get((counter_scope(partner_id, fw_type), fw_type))?;
        value.map(|v| codec::decode(v.value())).transpose()
    }

    pub fn create_device_type(
        &self,
        actor: &str,
        partner_id: &str,
        name: &str,
        description: &str,
    ) -> Result<DeviceType> {
        model::validate_name(name)?;
        model::validate_description(description)?;
        let now = now_ms();
        let dt = DeviceType {
            id: new_uuid(),
            partner_id: partner_id.to_string(),
            name: name.to_string(),
            description: description.to_string(),
            created_ms: now,
            updated_ms: now,
        };
        let d = dt.clone();
        let actor = actor.to_string();
        self.write(true, move |txn| {
            if get::<Partner>(&txn.open_table(PARTNERS)?, &d.partner_id)?.is_none() {
                return Err(StoreError::not_found("partner", "unknown_partner"));
            }
            put(txn, DEVICE_TYPES, &d.id, &d)?;
            txn.open_table(DEVICE_TYPES_BY_PARTNER)?
                .insert((d.partner_id.as_str(), d.id.as_str()), ())?;
            audit::append(
                txn,
                &actor,
                "device_type.create",
                &format!("partner/{}/deviceTypes/{}", d.partner_id, d.id),
                &d.name,
            )?;
            Ok(())
        })?;
        Ok(dt)
    }

    /// A device type of this partner (`None` for another partner's).
    pub fn device_type(&self, partner_id: &str, id: &str) -> Result<Option<DeviceType>> {
        let dt: Option<DeviceType> = get(&self.read()?.open_table(DEVICE_TYPES)?, id)?;
        Ok(dt.filter(|d| d.partner_id == partner_id))
    }

    pub fn device_types(&self, partner_id: &str) -> Result<Vec<DeviceType>> {
        let txn = self.read()?;
        let index = txn.open_table(DEVICE_TYPES_BY_PARTNER)?;
        let table = txn.open_table(DEVICE_TYPES)?;
        let mut out = Vec::new();
        for entry in index.range((partner_id, "")..)? {
            let (k, _) = entry?;
            let (pid, id) = k.value();
            if pid != partner_id {
                break;
            }
            if let Some(dt) = get::<DeviceType>(&table, id)? {
                out.push(dt);
            }
        }
        Ok(out)
    }

    pub fn update_device_type(
        &self,
        actor: &str,
        partner_id: &str,
        id: &str,
        name: &str,
        description: &str,
    ) -> Result<()> {
        model::validate_name(name)?;
        model::validate_description(description)?;
        let (pid, id, name, description, actor) = (
            partner_id.to_string(),
            id.to_string(),
            name.to_string(),
            description.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            let mut dt = device_type_w(txn, &id)?
                .filter(|d| d.partner_id == pid)
                .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
            dt.name = name;
            dt.description = description;
            dt.updated_ms = now_ms();
            put(txn, DEVICE_TYPES, &id, &dt)?;
            audit::append(
                txn,
                &actor,
                "device_type.update",
                &format!("partner/{pid}/deviceTypes/{id}"),
                &dt.name,
            )?;
            Ok(())
        })
    }

    /// Deletes a device type that has no devices and no associations (else 409).
    pub fn delete_device_type(&self, actor: &str, partner_id: &str, id: &str) -> Result<()> {
        let (pid, id, actor) = (partner_id.to_string(), id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            device_type_w(txn, &id)?
                .filter(|d| d.partner_id == pid)
                .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
            let has_devices = txn
                .open_table(DEVICES_BY_TYPE)?
                .range((id.as_str(), "")..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == id);
            let has_images = txn
                .open_table(ASSOCIATIONS)?
                .range((id.as_str(), 0u16, 0u64)..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == id);
            if has_devices || has_images {
                return Err(StoreError::conflict(
                    "device_type_in_use",
                    "the device type still has devices or firmware images",
                ));
            }
            txn.open_table(DEVICE_TYPES)?.remove(id.as_str())?;
            txn.open_table(DEVICE_TYPES_BY_PARTNER)?
                .remove((pid.as_str(), id.as_str()))?;
            audit::append(
                txn,
                &actor,
                "device_type.delete",
                &format!("partner/{pid}/deviceTypes/{id}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Creates a pool record (and its associations) and allocates its version number, all in
    /// one transaction.
    pub fn create_pool_record(&self, actor: &str, new: NewRecord) -> Result<Record> {
        let (t, _) = model::type_class(new.fw_type)?;
        if t == DEVICE_DESCRIPTION_TYPE {
            return Err(StoreError::Invalid(ModelError::new(
                "type",
                "device_description_in_pool",
                "type 4 (device description) is created under a device type, not in the pool",
            )));
        }
        new.fields.validate()?;
        let actor = actor.to_string();
        self.write(true, move |txn| {
            if !type_exists_w(txn, &new.partner_id, t)? {
                return Err(StoreError::Invalid(ModelError::new(
                    "type",
                    "unknown_type",
                    format!("firmware type {t} does not exist for this partner"),
                )));
            }
            if name_key_taken(txn, &new.partner_id, t, "", &new.fields, None)? {
                return Err(version_exists_error(&new.fields));
            }
            let mut targets = Vec::new();
            for dt in &new.associations {
                if targets.contains(dt) {
                    continue;
                }
                check_association_target(txn, &new.partner_id, t, dt)?;
                targets.push(dt.clone());
            }
            let binary = match &new.binary {
                Some((sha, url)) => Some(attach_binary(txn, &new.partner_id, sha, url)?),
                None => None,
            };
            let now = now_ms();
            let record = insert_record(
                txn,
                Record {
                    id: 0,
                    partner_id: new.partner_id.clone(),
                    fw_type: t,
                    version_number: 0,
                    name: new.fields.name.clone(),
                    description: new.fields.description.clone(),
                    version: new.fields.version.clone(),
                    tags: new.fields.tags.clone(),
                    binary,
                    device_type_id: None,
                    device_description_id: None,
                    device_profile_id: None,
                    created_ms: now,
                    updated_ms: now,
                },
            )?;
            for dt in &targets {
                associate_in(txn, &record, dt)?;
            }
            audit::append(
                txn,
                &actor,
                "pool.create",
                &format!(
                    "partner/{}/pool/{t}/{}",
                    record.partner_id, record.version_number
                ),
                &format!("{} {}", record.name, record.version),
            )?;
            Ok(record)
        })
    }

    /// Creates a type-4 record under a device type, associated with it, in one transaction.
    pub fn create_device_description(
        &self,
        actor: &str,
        new: NewDeviceDescription,
    ) -> Result<Record> {
        new.fields.validate()?;
        for (field, value) in [
            ("deviceDescriptionId", &new.device_description_id),
            ("deviceProfileId", &new.device_profile_id),
        ] {
            if let Some(v) = value {
                model::validate_optional_text(field, v, model::ID_MAX)?;
            }
        }
        let actor = actor.to_string();
        self.write(true, move |txn| {
            device_type_w(txn, &new.device_type_id)?
                .filter(|d| d.partner_id == new.partner_id)
                .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
            let t = DEVICE_DESCRIPTION_TYPE;
            if name_key_taken(
                txn,
                &new.partner_id,
                t,
                &new.device_type_id,
                &new.fields,
                None,
            )? {
                return Err(version_exists_error(&new.fields));
            }
            let (sha, url) = &new.binary;
            let binary = attach_binary(txn, &new.partner_id, sha, url)?;
            let now = now_ms();
            let record = insert_record(
                txn,
                Record {
                    id: 0,
                    partner_id: new.partner_id.clone(),
                    fw_type: t,
                    version_number: 0,
                    name: new.fields.name.clone(),
                    description: new.fields.description.clone(),
                    version: new.fields.version.clone(),
                    tags: new.fields.tags.clone(),
                    binary: Some(binary),
                    device_type_id: Some(new.device_type_id.clone()),
                    device_description_id: new.device_description_id.clone(),
                    device_profile_id: new.device_profile_id.clone(),
                    created_ms: now,
                    updated_ms: now,
                },
            )?;
            associate_in(txn, &record, &new.device_type_id)?;
            audit::append(
                txn,
                &actor,
                "image.create",
                &format!(
                    "partner/{}/deviceTypes/{}/firmwareImages/{t}/{}",
                    record.partner_id, new.device_type_id, record.version_number
                ),
                &format!("{} {}", record.name, record.version),
            )?;
            Ok(record)
        })
    }

    /// A pool record of this partner (type 4 records are not in the pool).
    pub fn pool_record(&self, partner_id: &str, fw_type: u16, vn: u64) -> Result<Option<Record>> {
        let txn = self.read()?;
        Ok(record_by_number_r(&txn, partner_id, fw_type, vn)?
            .filter(|r| r.device_type_id.is_none()))
    }

    /// A platform-type pool record by number, whoever owns it (platform numbers are global).
    pub fn platform_record(&self, fw_type: u16, vn: u64) -> Result<Option<Record>> {
        if fw_type > model::PLATFORM_TYPE_MAX {
            return Ok(None);
        }
        let txn = self.read()?;
        let id = txn
            .open_table(RECORD_BY_NUMBER)?
            .get(("", fw_type, vn))?
            .map(|v| v.value());
        let Some(id) = id else { return Ok(None) };
        Ok(get_record_r(&txn, id)?.filter(|r| r.device_type_id.is_none()))
    }

    pub fn record(&self, id: u64) -> Result<Option<Record>> {
        get_record_r(&self.read()?, id)
    }

    /// Replaces a pool record's editable fields. The binary is immutable once attached: a
    /// different url, or "" after one is attached, is 409 `binary_attached`.
    pub fn update_pool_record(
        &self,
        actor: &str,
        partner_id: &str,
        fw_type: u16,
        vn: u64,
        fields: RecordFields,
        binary: Option<([u8; 32], String)>,
    ) -> Result<Record> {
        fields.validate()?;
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let mut record = record_by_number_w(txn, &pid, fw_type, vn)?
                .filter(|r| r.device_type_id.is_none())
                .ok_or_else(|| StoreError::not_found("pool record", "unknown_version_number"))?;
            if name_key_taken(txn, &pid, fw_type, "", &fields, Some(record.id))? {
                return Err(version_exists_error(&fields));
            }
            let new_binary = match (&record.binary, binary) {
                (Some(current), Some((sha, _))) if current.sha256 == sha => None,
                (Some(_), _) => {
                    return Err(StoreError::conflict(
                        "binary_attached",
                        "the record's binary is immutable once attached; create a new record",
                    ));
                }
                (None, Some((sha, url))) => Some(attach_binary(txn, &pid, &sha, &url)?),
                (None, None) => None,
            };
            txn.open_table(RECORD_NAMES)?.remove((
                pid.as_str(),
                fw_type,
                "",
                record.name.as_str(),
                record.version.as_str(),
            ))?;
            txn.open_table(RECORD_NAMES)?.insert(
                (
                    pid.as_str(),
                    fw_type,
                    "",
                    fields.name.as_str(),
                    fields.version.as_str(),
                ),
                record.id,
            )?;
            record.name = fields.name;
            record.description = fields.description;
            record.version = fields.version;
            record.tags = fields.tags;
            if new_binary.is_some() {
                record.binary = new_binary;
            }
            record.updated_ms = now_ms();
            put_record(txn, &record)?;
            audit::append(
                txn,
                &actor,
                "pool.update",
                &format!("partner/{pid}/pool/{fw_type}/{vn}"),
                "",
            )?;
            Ok(record)
        })
    }

    /// Deletes a pool record that has no associations (else 409 `associated`).
    pub fn delete_pool_record(
        &self,
        actor: &str,
        partner_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<()> {
        let (pid, actor) = (partner_id.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let record = record_by_number_w(txn, &pid, fw_type, vn)?
                .filter(|r| r.device_type_id.is_none())
                .ok_or_else(|| StoreError::not_found("pool record", "unknown_version_number"))?;
            let associated = txn
                .open_table(ASSOC_BY_RECORD)?
                .range((record.id, "")..)?
                .next()
                .transpose()?
                .is_some_and(|(k, _)| k.value().0 == record.id);
            if associated {
                return Err(StoreError::conflict(
                    "associated",
                    "the record is still associated with device types",
                ));
            }
            txn.open_table(RECORDS)?.remove(record.id)?;
            // The number stays allocated (never reused); only the lookup goes.
            txn.open_table(RECORD_BY_NUMBER)?.remove((
                counter_scope(&pid, fw_type),
                fw_type,
                vn,
            ))?;
            txn.open_table(RECORD_NAMES)?.remove((
                pid.as_str(),
                fw_type,
                "",
                record.name.as_str(),
                record.version.as_str(),
            ))?;
            txn.open_table(RECORDS_BY_PARTNER)?
                .remove((pid.as_str(), record.id))?;
            if let Some(b) = &record.binary {
                blobs::release(txn, &b.blake3)?;
            }
            audit::append(
                txn,
                &actor,
                "pool.delete",
                &format!("partner/{pid}/pool/{fw_type}/{vn}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Every record of the partner (pool and type 4), optionally of one type; unordered
    /// (the API sorts and pages).
    pub fn partner_records(&self, partner_id: &str, fw_type: Option<u16>) -> Result<Vec<Record>> {
        let txn = self.read()?;
        let index = txn.open_table(RECORDS_BY_PARTNER)?;
        let mut out = Vec::new();
        for entry in index.range((partner_id, 0u64)..=(partner_id, u64::MAX))? {
            let (k, _) = entry?;
            if let Some(r) = get_record_r(&txn, k.value().1)?
                && fw_type.is_none_or(|t| t == r.fw_type)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Pool records of the partner (type 4 excluded).
    pub fn pool_records(&self, partner_id: &str, fw_type: Option<u16>) -> Result<Vec<Record>> {
        let mut all = self.partner_records(partner_id, fw_type)?;
        all.retain(|r| r.device_type_id.is_none());
        Ok(all)
    }

    /// Whether a pool record with this (type, name, version) exists, ignoring one record id.
    pub fn version_exists(
        &self,
        partner_id: &str,
        fw_type: u16,
        name: &str,
        version: &str,
        exclude_id: Option<u64>,
    ) -> Result<bool> {
        let txn = self.read()?;
        let found = txn
            .open_table(RECORD_NAMES)?
            .get((partner_id, fw_type, "", name, version))?
            .map(|v| v.value());
        Ok(found.is_some_and(|id| Some(id) != exclude_id))
    }

    /// Associates the partner's pool record (type, vn) with one of its device types.
    /// Admins may associate another partner's platform-type record: pass the record owner.
    pub fn associate(
        &self,
        actor: &str,
        record_partner: &str,
        device_type_partner: &str,
        device_type_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<Record> {
        let (rp, dp, dt, actor) = (
            record_partner.to_string(),
            device_type_partner.to_string(),
            device_type_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            device_type_w(txn, &dt)?
                .filter(|d| d.partner_id == dp)
                .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
            let record = record_by_number_w(txn, &rp, fw_type, vn)?
                .filter(|r| r.device_type_id.is_none())
                .ok_or_else(|| {
                    StoreError::Invalid(ModelError::new(
                        "versionNumber",
                        "unknown_version_number",
                        format!("no pool record of type {fw_type} with version number {vn}"),
                    ))
                })?;
            check_association_target(txn, &rp, fw_type, &dt)?;
            associate_in(txn, &record, &dt)?;
            audit::append(
                txn,
                &actor,
                "image.associate",
                &format!("partner/{dp}/deviceTypes/{dt}/firmwareImages/{fw_type}/{vn}"),
                "",
            )?;
            Ok(record)
        })
    }

    /// Removes an association (404 if absent). A type-4 record goes with its association.
    pub fn dissociate(
        &self,
        actor: &str,
        device_type_partner: &str,
        device_type_id: &str,
        fw_type: u16,
        vn: u64,
    ) -> Result<()> {
        let (dp, dt, actor) = (
            device_type_partner.to_string(),
            device_type_id.to_string(),
            actor.to_string(),
        );
        self.write(true, move |txn| {
            device_type_w(txn, &dt)?
                .filter(|d| d.partner_id == dp)
                .ok_or_else(|| StoreError::not_found("device type", "unknown_device_type"))?;
            let id = txn
                .open_table(ASSOCIATIONS)?
                .remove((dt.as_str(), fw_type, vn))?
                .map(|v| v.value())
                .ok_or_else(|| StoreError::not_found("association", "not_associated"))?;
            txn.open_table(ASSOC_BY_RECORD)?.remove((id, dt.as_str()))?;
            audit::append(
                txn,
                &actor,
                "image.dissociate",
                &format!("partner/{dp}/deviceTypes/{dt}/firmwareImages/{fw_type}/{vn}"),
                "",
            )?;
            Ok(())
        })
    }

    /// Device types a record is associated with, with their partners.
    pub fn associations_of(&self, record_id: u64) -> Result<Vec<AssociationView>> {
        let txn = self.read()?;
        let index = txn.open_table(ASSOC_BY_RECORD)?;
        let dts = txn.open_table(DEVICE_TYPES)?;
        let partners = txn.open_table(PARTNERS)?;
        let mut out = Vec::new();
        for entry in index.range((record_id, "")..)? {
            let (k, _) = entry?;
            let (id, dt_id) = k.value();
            if id != record_id {
                break;
            }
            let Some(device_type) = get::<DeviceType>(&dts, dt_id)? else {
                return Err(StoreError::Corrupt(format!(
                    "association to missing device type {dt_id}"
                )));
            };
            let Some(partner) = get::<Partner>(&partners, &device_type.partner_id)? else {
                return Err(StoreError::Corrupt(
                    "device type of a missing partner".into(),
                ));
            };
            out.push(AssociationView {
                device_type,
                partner,
                record_id,
            });
        }
        Ok(out)
    }

    /// Records associated with a device type, optionally of one type, by (type, number).
    pub fn images(&self, device_type_id: &str, fw_type: Option<u16>) -> Result<Vec<Record>> {
        let txn = self.read()?;
        let assoc = txn.open_table(ASSOCIATIONS)?;
        let (lo, hi) = fw_type.map_or((0, u16::MAX), |t| (t, t));
        let mut out = Vec::new();
        for entry in assoc.range((device_type_id, lo, 0u64)..=(device_type_id, hi, u64::MAX))? {
            let (_, v) = entry?;
            let record = get_record_r(&txn, v.value())?
                .ok_or_else(|| StoreError::Corrupt("association to a missing record".into()))?;
            out.push(record);
        }
        Ok(out)
    }

    /// Distinct tags of the partner's records, sorted.
    pub fn tags(&self, partner_id: &str) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self
            .partner_records(partner_id, None)?
            .into_iter()
            .flat_map(|r| r.tags)
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}

fn platform_partner_w(txn: &WriteTransaction) -> Result<Partner> {
    for entry in txn.open_table(PARTNERS)?.iter()? {
        let (_, v) = entry?;
        let p: Partner = codec::decode(v.value())?;
        if p.platform {
            return Ok(p);
        }
    }
    Err(StoreError::Corrupt(
        "no platform partner; the store was not bootstrapped".into(),
    ))
}
