//! OAuth access tokens: issued, looked up, revoked and expired. Only the SHA-256 of a token
//! is stored; the token itself (160 random bits) is shown once to the client.
//!
//! Who may get a token (password and client checks, rate limits) is decided in `api/auth.rs`.

use redb::ReadableTableMetadata;
use serde::{Deserialize, Serialize};

use super::tables::{DEVICE_TOKENS, TOKENS};
use super::{Result, Store, codec};
use crate::ids::now_ms;
use crate::secrets::{new_secret, token_hash};

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub partner_id: String,
    /// The user it was issued to; `None` for a client-credentials (machine) token.
    pub username: Option<String>,
    /// Appliance admin: may act on every partner's paths.
    pub admin: bool,
    pub created_ms: u64,
    pub expires_ms: u64,
}

impl Store {
    /// Issues a token valid for `ttl_secs`; returns the token text (shown once).
    pub fn issue_token(
        &self,
        partner_id: &str,
        username: Option<&str>,
        admin: bool,
        ttl_secs: u64,
    ) -> Result<(String, Token)> {
        let text = new_secret();
        let now = now_ms();
        let token = Token {
            partner_id: partner_id.to_string(),
            username: username.map(str::to_string),
            admin,
            created_ms: now,
            expires_ms: now.saturating_add(ttl_secs.saturating_mul(1000)),
        };
        let hash = token_hash(&text);
        let t = token.clone();
        self.write(true, move |txn| {
            let bytes = codec::encode(&t)?;
            txn.open_table(TOKENS)?.insert(&hash, bytes.as_slice())?;
            Ok(())
        })?;
        Ok((text, token))
    }

    /// The unexpired token with this text, if any.
    pub fn token(&self, text: &str) -> Result<Option<Token>> {
        let txn = self.read()?;
        let table = txn.open_table(TOKENS)?;
        let value = table.get(&token_hash(text))?;
        let token: Option<Token> = value.map(|v| codec::decode(v.value())).transpose()?;
        Ok(token.filter(|t| t.expires_ms > now_ms()))
    }

    /// Revokes a token; unknown tokens are not an error (RFC 7009).
    pub fn revoke_token(&self, text: &str) -> Result<()> {
        let hash = token_hash(text);
        self.write(true, move |txn| {
            txn.open_table(TOKENS)?.remove(&hash)?;
            Ok(())
        })
    }

    /// Deletes expired tokens; returns how many.
    pub fn sweep_tokens(&self, now: u64) -> Result<u64> {
        self.write(true, move |txn| {
            let mut table = txn.open_table(TOKENS)?;
            let before = table.len()?;
            table.retain(|_, v| codec::decode::<Token>(v).is_ok_and(|t| t.expires_ms > now))?;
            Ok(before - table.len()?)
        })
    }

    /// The device whose token this is (device tokens used as HTTP bearer tokens).
    pub fn device_id_by_token(&self, text: &str) -> Result<Option<String>> {
        let txn = self.read()?;
        let table = txn.open_table(DEVICE_TOKENS)?;
        Ok(table.get(&token_hash(text))?.map(|v| v.value().to_string()))
    }
}
