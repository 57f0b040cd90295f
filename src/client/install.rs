//! The install step of a device after its download, as a real device goes through it:
//! REPORT INSTALLING, install (here: wait), then REPORT FAILED with a reason, or REPORT
//! INSTALLED, reboot (close the connection and connect again) and CHECK with the new
//! version number. That confirming CHECK is what makes the server record the update as
//! confirmed (docs/protocol.md, sections 10 and 14). Used by `otad device download
//! --install` and the fleet simulator.
//!
//! Not here: the protocol client (`device.rs`) and choosing which devices fail
//! (`simulate/`).

use std::time::Duration;

use super::device::{Client, ClientConfig, ClientError};
use crate::ocp::report;
use crate::ocp::wire::OfferItem;

/// How an install ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Installed, rebooted, confirmed by a CHECK with the new number.
    Confirm,
    /// Installed (REPORT INSTALLED) but never back with the new number: the device stays
    /// away, as one that bricked on reboot would.
    NeverConfirm,
    /// The install failed: REPORT FAILED with this LwM2M result code (2-10) as the reason.
    Fail(u8),
}

/// Where an install stopped on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Install,
    Confirm,
}

/// What the confirming CHECK answered (offers for other types, or a newer image).
#[derive(Debug, Default)]
pub struct Confirmed {
    pub offers: Vec<OfferItem>,
}

/// Installs `offer` (downloaded and verified by `client`) and ends as `ending` says after
/// `install_time`. `installed` is what the device runs besides: the confirming CHECK lists
/// it with this type's number replaced by the offer's. Returns the confirming CHECK's
/// answer for [`Ending::Confirm`], else `None`.
pub async fn install(
    mut client: Client,
    cfg: &ClientConfig,
    offer: &OfferItem,
    installed: &[(u16, u64)],
    install_time: Duration,
    ending: Ending,
) -> Result<Option<Confirmed>, (Step, ClientError)> {
    let at = |e| (Step::Install, e);
    let (t, vn, size) = (offer.fw_type, offer.version_number, offer.size);
    client
        .report(t, vn, report::INSTALLING, report::RESULT_INITIAL, size)
        .await
        .map_err(at)?;
    if !install_time.is_zero() {
        // A long install must not lose the connection to the idle timeout.
        let idle = Duration::from_secs(30);
        let mut left = install_time;
        while !left.is_zero() {
            let nap = left.min(idle);
            tokio::time::sleep(nap).await;
            left -= nap;
            if !left.is_zero() {
                client.ping().await.map_err(at)?;
            }
        }
    }
    let (state, result) = match ending {
        Ending::Fail(result) => (report::FAILED, result),
        Ending::Confirm | Ending::NeverConfirm => (report::INSTALLED, report::RESULT_SUCCESS),
    };
    client
        .report(t, vn, state, result, size)
        .await
        .map_err(at)?;
    if ending != Ending::Confirm {
        return Ok(None);
    }
    // The reboot: this connection ends, the new firmware connects afresh.
    drop(client);
    let confirm = |e| (Step::Confirm, e);
    let mut client = Client::connect(cfg).await.map_err(confirm)?;
    let mut list: Vec<(u16, u64)> = installed
        .iter()
        .copied()
        .filter(|(ft, _)| *ft != t)
        .collect();
    list.push((t, vn));
    let offers = client.check(&list).await.map_err(confirm)?;
    Ok(Some(Confirmed { offers }))
}
