//! Partners, their users, and the first-start bootstrap that creates the platform partner,
//! the first admin and the seeded platform types.
//!
//! Not here: password and secret hashing (`secrets.rs`), tokens (`tokens.rs`), firmware and
//! device types (`types.rs`).

use redb::{ReadableTable, WriteTransaction};

use super::put;
use crate::ids::{new_uuid, now_ms};
use crate::model::{self, FirmwareType, Partner, Role, SEEDED_PLATFORM_TYPES, User};
use crate::secrets::new_secret;
use crate::store::tables::{FW_TYPES, PARTNERS, TOKENS, USERS};
use crate::store::tokens::Token;
use crate::store::{Result, Store, StoreError, audit, codec};

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
            if find_platform(&txn.open_table(PARTNERS)?)?.is_some() {
                return Ok(false);
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
        find_platform(&self.read()?.open_table(PARTNERS)?)
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
        codec::get(&self.read()?.open_table(PARTNERS)?, id)
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
            let mut p: Partner = codec::get(&txn.open_table(PARTNERS)?, id.as_str())?
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
            let partner: Partner =
                codec::get(&txn.open_table(PARTNERS)?, u.partner_id.as_str())?
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
        codec::get(&self.read()?.open_table(USERS)?, username)
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
            let user: Option<User> = codec::get(&txn.open_table(USERS)?, name.as_str())?;
            let Some(user) = user.filter(|u| u.partner_id == pid) else {
                return Err(StoreError::not_found("user", "unknown_user"));
            };
            // Without an admin nobody could manage partners and users any more (short of
            // the offline password reset, which needs a user to reset).
            if user.role == Role::Admin && !another_admin(txn, &name)? {
                return Err(StoreError::conflict(
                    "last_admin",
                    format!(
                        "{name} is the last admin and cannot be removed; create another admin first"
                    ),
                ));
            }
            txn.open_table(USERS)?.remove(name.as_str())?;
            revoke_tokens_of(txn, &name)?;
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

    /// A signed-in user's own password change (the caller has checked the current one):
    /// the new password, and every other token of the user revoked; `keep` (the hash of the
    /// token the change was made with) stays valid.
    pub fn change_password(&self, username: &str, password: &str, keep: [u8; 32]) -> Result<()> {
        model::validate_password(password)?;
        let hash = hash_secret(password)?;
        let name = username.to_string();
        self.write(true, move |txn| {
            let mut user: User = codec::get(&txn.open_table(USERS)?, name.as_str())?
                .ok_or_else(|| StoreError::not_found("user", "unknown_user"))?;
            user.password_hash = hash;
            put(txn, USERS, &name, &user)?;
            txn.open_table(TOKENS)?.retain(|k, v| {
                k == &keep
                    || codec::decode::<Token>(v)
                        .is_ok_and(|t| t.username.as_deref() != Some(name.as_str()))
            })?;
            audit::append(
                txn,
                &name,
                "user.password_change",
                &format!("partner/{}/users/{name}", user.partner_id),
                "",
            )?;
            Ok(())
        })
    }

    /// Gives a user a new password and revokes the tokens issued to it: the offline
    /// recovery of `otad admin reset-password`, for an operator who lost the password.
    pub fn reset_password(&self, actor: &str, username: &str, password: &str) -> Result<()> {
        model::validate_password(password)?;
        let hash = hash_secret(password)?;
        let (name, actor) = (username.to_string(), actor.to_string());
        self.write(true, move |txn| {
            let mut user: User = codec::get(&txn.open_table(USERS)?, name.as_str())?
                .ok_or_else(|| StoreError::not_found("user", "unknown_user"))?;
            user.password_hash = hash;
            put(txn, USERS, &name, &user)?;
            revoke_tokens_of(txn, &name)?;
            audit::append(
                txn,
                &actor,
                "user.password_reset",
                &format!("partner/{}/users/{name}", user.partner_id),
                "",
            )?;
            Ok(())
        })
    }
}

/// Is there an admin other than `username`?
fn another_admin(txn: &WriteTransaction, username: &str) -> Result<bool> {
    for entry in txn.open_table(USERS)?.iter()? {
        let (k, v) = entry?;
        if k.value() != username && codec::decode::<User>(v.value())?.role == Role::Admin {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes every token issued to the user `username`.
fn revoke_tokens_of(txn: &WriteTransaction, username: &str) -> Result<()> {
    txn.open_table(TOKENS)?.retain(|_, v| {
        codec::decode::<Token>(v).is_ok_and(|t| t.username.as_deref() != Some(username))
    })?;
    Ok(())
}

/// The platform partner, from the `PARTNERS` table of either transaction kind.
pub(super) fn find_platform(
    partners: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<Partner>> {
    for entry in partners.iter()? {
        let (_, v) = entry?;
        let p: Partner = codec::decode(v.value())?;
        if p.platform {
            return Ok(Some(p));
        }
    }
    Ok(None)
}
