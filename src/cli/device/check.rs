//! `otad device check`: connect as a device, CHECK, and show what the server offers.
//!
//! Not here: finding the server (`target.rs`) and the printing (`report.rs`).

use std::path::Path;
use std::process::ExitCode;

use super::target::{check_identity, client_config, resolve};
use super::{CheckArgs, Fail, report, single_runtime};
use crate::client::device::{Client, ClientError};
use crate::ocp::wire;

pub(super) fn check(args: &CheckArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    check_identity(&args.identity)?;
    let target = resolve(&args.endpoint, data_dir)?;
    let cfg = client_config(&target, &args.identity);
    let installed: Vec<(u16, u64)> = args
        .installed
        .iter()
        .map(|i| (i.fw_type, i.version_number))
        .collect();
    if installed.len() > wire::CHECK_MAX_ITEMS {
        return Err(Fail::Usage(format!(
            "at most {} --installed values per CHECK",
            wire::CHECK_MAX_ITEMS
        )));
    }
    let rt = single_runtime()?;
    let (granted, offers) = rt
        .block_on(async {
            let mut client = Client::connect(&cfg).await?;
            let offers = client.check(&installed).await?;
            Ok::<_, ClientError>((client.granted, offers))
        })
        .map_err(|e| Fail::Error(e.explain(&target.addr)))?;
    if args.json {
        report::print_check_json(&cfg.device_id, granted.poll_interval_s, &offers);
    } else {
        report::print_offers(&offers, installed.is_empty());
    }
    Ok(ExitCode::SUCCESS)
}
