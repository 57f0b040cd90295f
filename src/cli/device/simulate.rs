//! `otad device simulate`: the fleet (from `--devices-file` or registered through the API),
//! the flags turned into simulator [`Options`], the run, and the progress lines of repeat
//! and hold runs on stderr.
//!
//! Not here: the API calls behind the defaults (`fleet_setup.rs`), the state kept between
//! runs (`fleet_state.rs`), the simulation (`client/simulate/`) and the printed totals
//! (`report.rs`).

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use super::report::print_report;
use super::target::resolve;
use super::{Fail, SimulateArgs, fleet_setup, fleet_state};
use crate::client::simulate::{self, DeviceCreds, Options};

/// Without `--devices-file`: new devices registered through the API, and their firmware
/// type (`--type`, else that of their device type's images).
fn registered_fleet(args: &SimulateArgs, data_dir: &Path) -> Result<(Vec<DeviceCreds>, u16), Fail> {
    let mut ctx = fleet_setup::connect(args.partner.clone(), data_dir)?;
    let (dt, types) = fleet_setup::pick_device_type(&mut ctx, args.device_type.as_deref())?;
    let fw_type = match args.fw_type {
        Some(t) => t,
        None => fleet_setup::firmware_type(&types, &dt)?,
    };
    if let Some(out) = &args.devices_out
        && out.exists()
    {
        return Err(Fail::Usage(format!(
            "{} exists already; --devices-out writes a new file",
            out.display()
        )));
    }
    let n = args
        .devices
        .map_or(100, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let devices = fleet_setup::register(&mut ctx, &dt, n)?;
    let first = devices.first().map_or("", |d| d.id.as_str());
    let mut said = format!(
        "otad: simulate: registered {} devices ({first} …) of device type {dt}, firmware type {fw_type}",
        devices.len()
    );
    if let Some(out) = &args.devices_out {
        let csv: String = std::iter::once("deviceId,token\n".to_string())
            .chain(devices.iter().map(|d| format!("{},{}\n", d.id, d.token)))
            .collect();
        crate::datadir::write_private_file(out, csv.as_bytes())
            .map_err(|e| Fail::Error(format!("cannot write {}: {e}", out.display())))?;
        said.push_str(&format!("; their tokens are in {}", out.display()));
    }
    eprintln!("{said}");
    Ok((devices, fw_type))
}

/// The devices to simulate and their firmware type: from `--devices-file` (the type from
/// `--type`, else asked of the API), or registered through the API.
fn fleet(args: &SimulateArgs, data_dir: &Path) -> Result<(Vec<DeviceCreds>, u16), Fail> {
    let Some(file) = &args.devices_file else {
        return registered_fleet(args, data_dir);
    };
    let text = fs::read_to_string(file)
        .map_err(|e| Fail::Error(format!("cannot read {}: {e}", file.display())))?;
    let mut devices: Vec<DeviceCreds> = simulate::parse_devices_csv(&text)
        .map_err(|e| Fail::Error(format!("{}: {e}", file.display())))?;
    if devices.is_empty() {
        return Err(Fail::Error(format!(
            "{} lists no devices (expected deviceId,token lines)",
            file.display()
        )));
    }
    if let Some(n) = args.devices {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > devices.len() {
            return Err(Fail::Usage(format!(
                "--devices {n} but {} lists only {}; import more devices or lower --devices",
                file.display(),
                devices.len()
            )));
        }
        devices.truncate(n);
    }
    let fw_type = match args.fw_type {
        Some(t) => t,
        None => {
            let first = devices.first().map_or("", |d| d.id.as_str()).to_string();
            let found = fleet_setup::connect(args.partner.clone(), data_dir)
                .and_then(|mut ctx| fleet_setup::firmware_type_of_device(&mut ctx, &first));
            found.map_err(|e| {
                let why = match e {
                    Fail::Usage(m) | Fail::Error(m) => m,
                    Fail::Cli(e) => e.message,
                };
                Fail::Usage(format!(
                    "which firmware type? pass --type T (asking the API failed: {why})"
                ))
            })?
        }
    };
    Ok((devices, fw_type))
}

pub(super) fn simulate(args: &SimulateArgs, data_dir: &Path) -> Result<ExitCode, Fail> {
    let target = resolve(&args.endpoint, data_dir)?;
    if args.fail_share.unwrap_or(0.0) + args.never_confirm_share.unwrap_or(0.0) > 1.0 + 1e-9 {
        return Err(Fail::Usage(
            "--fail-share and --never-confirm-share together exceed 1 (all devices)".into(),
        ));
    }
    let (mut devices, fw_type) = fleet(args, data_dir)?;
    let mut fleet_state = match &args.fleet_state {
        Some(path) => Some(fleet_state::load(path)?),
        None => None,
    };
    let installed_by_device = match (&fleet_state, &args.fleet_state) {
        (Some(state), Some(path)) => resume_fleet(state, path, fw_type, &mut devices)?,
        _ => HashMap::new(),
    };
    let mut opts = Options::new(
        target.addr.clone(),
        target.server_name.clone(),
        target.ca_file.clone(),
        devices,
    );
    opts.concurrency = usize::try_from(args.concurrency).unwrap_or(usize::MAX);
    opts.fw_type = fw_type;
    opts.installed_version = args.installed;
    opts.installed_by_device = installed_by_device;
    opts.no_offer_ok = args.allow_no_offer;
    let injecting = args.fail_share.is_some()
        || args.never_confirm_share.is_some()
        || args.install_secs.is_some();
    if args.install || injecting {
        opts.install = Some(simulate::Install {
            delay: Duration::from_secs_f64(args.install_secs.unwrap_or(0.0)),
            fail_share: args.fail_share.unwrap_or(0.0),
            fail_result: args.fail_result,
            never_confirm_share: args.never_confirm_share.unwrap_or(0.0),
            seed: args.seed,
        });
    }
    opts.chunk_log = args.chunk_log;
    opts.max_inflight = args.max_inflight;
    opts.timeout = Duration::from_secs(args.timeout);
    opts.raw = args.raw;
    opts.hash_image = !args.skip_image_hash;
    if let Some(size) = args.get_size {
        let group = crate::hashtree::group_size(args.chunk_log);
        if !u64::from(size).is_multiple_of(group) {
            return Err(Fail::Usage(format!(
                "--get-size {size} must be a multiple of the group size {group} (1024·2^{})",
                args.chunk_log
            )));
        }
        opts.get_size = Some(size);
    }
    opts.mode = match (args.repeat_seconds, args.hold) {
        (Some(window), _) => simulate::Mode::Repeat {
            warmup: Duration::from_secs(args.warmup_seconds),
            window: Duration::from_secs(window),
        },
        (None, Some(hold)) => simulate::Mode::Hold {
            hold: Duration::from_secs(hold),
            ping_every: Duration::from_secs(args.ping_every),
        },
        (None, None) => simulate::Mode::Once,
    };
    if opts.mode != simulate::Mode::Once {
        // Progress lines for whoever measures alongside (bench/ocp/run.sh waits for them).
        opts.hook = Some(simulate::Hook(std::sync::Arc::new(announce)));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail::Error(format!("cannot start the async runtime: {e}")))?;
    let report = rt
        .block_on(simulate::run(opts))
        .map_err(|e| Fail::Error(e.to_string()))?;
    if let (Some(state), Some(path)) = (fleet_state.as_mut(), &args.fleet_state) {
        fleet_state::record(state, fw_type, &report.endings);
        fleet_state::save(path, state)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print_report(&report);
    }
    if report.failed > 0 {
        if !args.json {
            eprintln!(
                "otad: {} of {} devices failed",
                report.failed, report.devices
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies the `--fleet-state` of earlier runs: leaves out the devices that are away and
/// returns the version number each other listed device runs.
fn resume_fleet(
    state: &fleet_state::FleetState,
    path: &Path,
    fw_type: u16,
    devices: &mut Vec<DeviceCreds>,
) -> Result<HashMap<String, u64>, Fail> {
    let before = devices.len();
    devices.retain(|d| !state.get(&d.id).is_some_and(|e| e.away));
    let away = before - devices.len();
    if devices.is_empty() {
        return Err(Fail::Error(format!(
            "every device is away in {} (installed, never confirmed): nothing to simulate",
            path.display()
        )));
    }
    if away > 0 {
        eprintln!(
            "otad: simulate: {away} devices stay away (never confirmed, {})",
            path.display()
        );
    }
    Ok(devices
        .iter()
        .filter_map(|d| {
            let e = state.get(&d.id).filter(|e| e.fw_type == fw_type)?;
            Some((d.id.clone(), e.version_number))
        })
        .collect())
}

/// One stderr line per moment of a repeat or hold run, with the wall-clock time.
fn announce(event: simulate::SimEvent) {
    use simulate::SimEvent;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let text = match event {
        SimEvent::AllConnected {
            connected,
            failed,
            after,
        } => format!(
            "all connected: {connected} devices ({failed} failed) after {:.2} s",
            after.as_secs_f64()
        ),
        SimEvent::WindowStart => "window started".to_string(),
        SimEvent::WindowEnd => "window ended".to_string(),
        SimEvent::HoldEnd => "hold ended".to_string(),
    };
    let cpu = process_cpu_seconds().map_or(String::new(), |s| format!(", process CPU {s:.2} s"));
    eprintln!("otad: simulate: {text} (at {now:.3}{cpu})");
}

/// User + system CPU time of this process so far, from /proc/self/stat (Linux; the kernel
/// reports it in USER_HZ = 100 ticks per second), so a benchmark can charge the simulator's
/// own CPU to exactly its measuring window.
fn process_cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}
