//! `otad device report`: one REPORT of any state and result, as a device would send it, so
//! every OTA state (a failure with its reason, a deferral, an install) can be shown to the
//! server by hand. Names and numbers of states and results: `ocp/report.rs`.
//!
//! Not here: the flags (`mod.rs`) and the reports a download sends itself (`download.rs`).

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::target::{check_identity, client_config, resolve};
use super::{Fail, ReportArgs, single_runtime};
use crate::client::device::{Client, ClientError};
use crate::ocp::report;
use crate::ocp::wire::ErrorCode;

/// The (state, result) pair to send: the result given, or the state's default; refused
/// before any connection when the protocol does not allow it.
fn pair(args: &ReportArgs) -> Result<(u8, u8), Fail> {
    let state = args.state;
    let state_name = report::state_name(state).unwrap_or("?");
    let result = match args.result {
        Some(r) => r,
        None => report::default_result(state).ok_or_else(|| {
            Fail::Usage(format!(
                "--state {state_name} needs --result REASON, one of {}",
                report::results_for(state).join(", ")
            ))
        })?,
    };
    if !report::allowed(state, result) {
        return Err(Fail::Usage(format!(
            "--result {} is not allowed with --state {state_name}; allowed: {}",
            report::result_name(result).unwrap_or("?"),
            report::results_for(state).join(", ")
        )));
    }
    Ok((state, result))
}

pub(super) fn send(args: &ReportArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    let (state, result) = pair(args)?;
    check_identity(&args.identity)?;
    let target = resolve(&args.endpoint, data_dir)?;
    let cfg = client_config(&target, &args.identity);
    let rt = single_runtime()?;
    rt.block_on(async {
        let mut client = Client::connect(&cfg).await?;
        client
            .report(
                args.fw_type,
                args.version_number,
                state,
                result,
                args.bytes_done,
            )
            .await
    })
    .map_err(|e| match &e {
        ClientError::Server { code, .. } if ErrorCode::from_u16(*code) == Some(ErrorCode::Forbidden) => {
            Fail::Error(format!(
                "{}; a device reports only on an image it was offered (run `otad device check` first)",
                e.explain(&target.addr)
            ))
        }
        _ => Fail::Error(e.explain(&target.addr)),
    })?;
    let state_name = report::state_name(state).unwrap_or("?");
    let result_name = report::result_name(result).unwrap_or("?");
    if args.json {
        println!(
            "{}",
            json!({
                "deviceId": args.identity.device_id,
                "type": args.fw_type,
                "versionNumber": args.version_number.to_string(),
                "state": state_name,
                "result": result,
                "resultName": result_name,
                "bytesDone": args.bytes_done,
            })
        );
    } else {
        println!(
            "reported {state_name} (result {result} {result_name}) for type {} versionNumber {}",
            args.fw_type, args.version_number
        );
    }
    Ok(ExitCode::SUCCESS)
}
