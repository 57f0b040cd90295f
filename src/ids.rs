//! Clock and randomness: milliseconds since the epoch, CSPRNG bytes and UUIDs.
//!
//! A leaf: every layer may use it, and it uses nothing of otad's but `model::hex`.
//! Not here: secrets and their hashes (`secrets.rs`).

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all; nothing can run then.
    if let Err(e) = getrandom::fill(&mut out) {
        panic!("operating system random source failed: {e}");
    }
    out
}

/// A random version-4 UUID in its usual text form.
pub fn new_uuid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::model::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
