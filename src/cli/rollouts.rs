//! `otad rollout create|list|show|pause|resume|advance|cancel`: staged rollouts over the
//! HTTP API. `show --watch` redraws one bar per group (confirmed of size) until the rollout
//! ends: indicatif bars on a terminal, a plain line per change otherwise.
//!
//! Not here: the rules (the server's), the HTTP client (`client/http.rs`).

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use http::Method;
use serde_json::{Map, Value, json};

use super::client::{CliError, Context, Result};
use super::output::{fields, items, table, text, time};
use super::session::Ctx;
use crate::client::http::seg;

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout of an image to a device type, group by group.
    ///
    /// Example: otad rollout create --device-type $DT --image 17 --groups 1,10,50,100
    ///
    /// Example: otad rollout create --device-type $DT --image 17 --canary kettle-0001 --groups 100 --window-days sat,sun --window-start 02:00 --window-minutes 180
    Create(Box<CreateArgs>),
    /// List the partner's rollouts, newest first.
    ///
    /// Example: otad rollout list --state running
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_name = "ID")]
        device_type: Option<String>,
    },
    /// Show a rollout and its groups; --watch redraws until it ends.
    ///
    /// Example: otad rollout show 3 --watch
    Show {
        id: String,
        #[arg(long)]
        watch: bool,
        /// How often --watch asks the server, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval_ms: u64,
    },
    /// Stop making first offers until resumed.
    ///
    /// Example: otad rollout pause 3
    Pause { id: String },
    /// Resume a paused rollout.
    ///
    /// Example: otad rollout resume 3
    Resume { id: String },
    /// Start the next group (after the current one succeeded), or a scheduled rollout now.
    ///
    /// Example: otad rollout advance 3
    Advance { id: String },
    /// End the rollout for good; the image stays held.
    ///
    /// Example: otad rollout cancel 3
    Cancel { id: String },
}

/// What `rollout create` takes.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[arg(long, value_name = "ID")]
    pub device_type: String,
    /// The firmware image (record) id.
    #[arg(long, value_name = "ID")]
    pub image: String,
    /// Cumulative percents of the target, ascending, ending at 100.
    #[arg(
        long,
        value_name = "P,P,...",
        value_delimiter = ',',
        default_value = "100"
    )]
    pub groups: Vec<f64>,
    /// A device of an explicit first (canary) group (repeatable).
    #[arg(long = "canary", value_name = "DEVICE")]
    pub canary: Vec<String>,
    #[arg(long)]
    pub name: Option<String>,
    /// Share of a group that must confirm (0-1).
    #[arg(long, value_name = "SHARE")]
    pub success_threshold: Option<f64>,
    /// Share of a group whose failures stop the rollout (0-1).
    #[arg(long, value_name = "SHARE")]
    pub error_threshold: Option<f64>,
    #[arg(long, value_name = "N")]
    pub min_failures: Option<u64>,
    /// A device not confirmed this long after its first offer counts as failed.
    #[arg(long, value_name = "SECS")]
    pub confirm_timeout: Option<u64>,
    /// How long a group must run before the next one starts.
    #[arg(long, value_name = "SECS")]
    pub soak: Option<u64>,
    /// Wait for `otad rollout advance` after each group.
    #[arg(long)]
    pub manual_advance: bool,
    #[arg(long, value_name = "N")]
    pub max_per_minute: Option<u64>,
    /// Maintenance window days (UTC), e.g. mon,tue.
    #[arg(long, value_name = "DAYS", value_delimiter = ',', requires_all = ["window_start", "window_minutes"])]
    pub window_days: Vec<String>,
    /// Maintenance window start, HH:MM UTC.
    #[arg(long, value_name = "HH:MM", requires = "window_days")]
    pub window_start: Option<String>,
    #[arg(long, value_name = "MINUTES", requires = "window_days")]
    pub window_minutes: Option<u64>,
    /// Start later: Unix time in milliseconds.
    #[arg(long, value_name = "MS")]
    pub start_at: Option<u64>,
    /// Only devices with this tag (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only devices with this attribute (repeatable: all of them).
    #[arg(long = "attr", value_name = "KEY=VALUE")]
    pub attributes: Vec<String>,
}

fn finished(r: &Value) -> bool {
    matches!(
        r.get("state").and_then(Value::as_str),
        Some("completed" | "stopped" | "cancelled")
    )
}

fn group_label(g: &Value) -> String {
    match g.get("devices").and_then(Value::as_array) {
        Some(list) => format!("canary ({})", list.len()),
        None => format!("{}%", text(g, "percent")),
    }
}

fn group_line(g: &Value) -> String {
    format!(
        "group {} {} {}: {}/{} confirmed, {} offered, {} downloading, {} installed, {} failed, {} timed out, {} waiting",
        text(g, "index"),
        group_label(g),
        text(g, "state"),
        text(g, "confirmed"),
        text(g, "size"),
        text(g, "offered"),
        text(g, "downloading"),
        text(g, "installed"),
        text(g, "failed"),
        text(g, "timedOut"),
        text(g, "waiting"),
    )
}

fn summary(r: &Value) -> String {
    let mut pairs = vec![
        ("id", text(r, "id")),
        ("name", text(r, "name")),
        ("state", text(r, "state")),
        ("deviceTypeId", text(r, "deviceTypeId")),
        ("image", text(r, "firmwareImageId")),
        ("type", text(r, "type")),
        ("versionNumber", text(r, "versionNumber")),
        ("created", time(r, "createdTimestamp")),
    ];
    if r.get("stopReason").is_some() {
        pairs.push(("stopReason", text(r, "stopReason")));
    }
    let mut out = fields(&pairs);
    let rows: Vec<Vec<String>> = r
        .get("groups")
        .map_or(&[][..], items)
        .iter()
        .map(|g| {
            vec![
                text(g, "index"),
                group_label(g),
                text(g, "state"),
                text(g, "size"),
                text(g, "confirmed"),
                text(g, "failed"),
                text(g, "timedOut"),
                text(g, "waiting"),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &[
            "GROUP",
            "SHARE",
            "STATE",
            "SIZE",
            "CONFIRMED",
            "FAILED",
            "TIMED OUT",
            "WAITING",
        ],
        &rows,
    ));
    out
}

/// Polls the rollout until it ends, drawing its groups; returns the last answer.
fn watch(ctx: &mut Ctx, path: &str, every: Duration) -> Result<Value> {
    let mut r = ctx.client.get(path)?;
    if std::io::stderr().is_terminal() && !ctx.out.json {
        let multi = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template("{prefix:>14} [{bar:30}] {msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let bars: Vec<indicatif::ProgressBar> = r
            .get("groups")
            .map_or(&[][..], items)
            .iter()
            .map(|g| {
                let bar = multi.add(indicatif::ProgressBar::new(0));
                bar.set_style(style.clone());
                bar.set_prefix(format!("group {} {}", text(g, "index"), group_label(g)));
                bar
            })
            .collect();
        loop {
            for (bar, g) in bars.iter().zip(r.get("groups").map_or(&[][..], items)) {
                bar.set_length(g.get("size").and_then(Value::as_u64).unwrap_or(0));
                bar.set_position(g.get("confirmed").and_then(Value::as_u64).unwrap_or(0));
                bar.set_message(format!(
                    "{} {}/{} confirmed, {} failed, {} timed out",
                    text(g, "state"),
                    text(g, "confirmed"),
                    text(g, "size"),
                    text(g, "failed"),
                    text(g, "timedOut")
                ));
            }
            if finished(&r) {
                break;
            }
            std::thread::sleep(every);
            r = ctx.client.get(path)?;
        }
        for bar in &bars {
            bar.finish();
        }
    } else {
        let mut last = Vec::new();
        loop {
            let lines: Vec<String> = std::iter::once(format!("rollout {}", text(&r, "state")))
                .chain(
                    r.get("groups")
                        .map_or(&[][..], items)
                        .iter()
                        .map(group_line),
                )
                .collect();
            if lines != last && !ctx.out.json {
                for l in &lines {
                    eprintln!("{l}");
                }
                last = lines;
            }
            if finished(&r) {
                break;
            }
            std::thread::sleep(every);
            r = ctx.client.get(path)?;
        }
    }
    Ok(r)
}

pub fn run(cmd: RolloutCommand, ctx: &mut Ctx) -> Result<()> {
    let base = format!("{}/rollouts", ctx.base()?);
    let r = match cmd {
        RolloutCommand::Create(args) => {
            let CreateArgs {
                device_type,
                image,
                groups,
                canary,
                name,
                success_threshold,
                error_threshold,
                min_failures,
                confirm_timeout,
                soak,
                manual_advance,
                max_per_minute,
                window_days,
                window_start,
                window_minutes,
                start_at,
                tags,
                attributes,
            } = *args;
            let mut list: Vec<Value> = Vec::new();
            if !canary.is_empty() {
                list.push(json!({ "devices": canary }));
            }
            list.extend(groups.iter().map(|p| json!({ "percent": p })));
            let mut attrs = Map::new();
            for a in &attributes {
                let (k, v) = a
                    .split_once('=')
                    .ok_or_else(|| CliError::usage(format!("--attr {a:?} is not KEY=VALUE")))?;
                attrs.insert(k.to_string(), Value::String(v.to_string()));
            }
            let mut body = json!({
                "deviceTypeId": device_type,
                "firmwareImageId": image,
                "groups": list,
                "autoAdvance": !manual_advance,
                "filter": {"tags": tags, "attributes": attrs},
            });
            let optional = [
                ("name", name.map(Value::String)),
                ("successThreshold", success_threshold.map(|v| json!(v))),
                ("errorThreshold", error_threshold.map(|v| json!(v))),
                ("minFailures", min_failures.map(|v| json!(v))),
                ("confirmTimeoutSecs", confirm_timeout.map(|v| json!(v))),
                ("soakSecs", soak.map(|v| json!(v))),
                ("maxPerMinute", max_per_minute.map(|v| json!(v))),
                ("startAt", start_at.map(|v| json!(v))),
                (
                    "window",
                    (!window_days.is_empty()).then(|| {
                        json!({
                            "days": window_days,
                            "start": window_start.unwrap_or_default(),
                            "durationMinutes": window_minutes.unwrap_or_default(),
                        })
                    }),
                ),
            ];
            if let Some(obj) = body.as_object_mut() {
                for (k, v) in optional {
                    if let Some(v) = v {
                        obj.insert(k.to_string(), v);
                    }
                }
            }
            ctx.client
                .json(Method::POST, &base, Some(&body))
                .map_err(|e| e.context("cannot create the rollout"))?
        }
        RolloutCommand::List { state, device_type } => {
            let mut query = Vec::new();
            if let Some(s) = &state {
                query.push(format!("state={}", seg(s)));
            }
            if let Some(dt) = &device_type {
                query.push(format!("deviceTypeId={}", seg(dt)));
            }
            let path = if query.is_empty() {
                base.clone()
            } else {
                format!("{base}?{}", query.join("&"))
            };
            let list = ctx.pages(&path)?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        text(r, "id"),
                        text(r, "name"),
                        text(r, "state"),
                        text(r, "deviceTypeId"),
                        format!("{}/{}", text(r, "type"), text(r, "versionNumber")),
                        time(r, "createdTimestamp"),
                    ]
                })
                .collect();
            ctx.out.show(&Value::Array(list), || {
                table(
                    &["ID", "NAME", "STATE", "DEVICE TYPE", "TYPE/VN", "CREATED"],
                    &rows,
                )
            });
            return Ok(());
        }
        RolloutCommand::Show {
            id,
            watch: follow,
            interval_ms,
        } => {
            let path = format!("{base}/{}", seg(&id));
            if follow {
                watch(ctx, &path, Duration::from_millis(interval_ms.max(50)))?
            } else {
                ctx.client
                    .get(&path)
                    .map_err(|e| e.context(&format!("rollout {id}")))?
            }
        }
        RolloutCommand::Pause { id } => operate(ctx, &base, &id, "pause")?,
        RolloutCommand::Resume { id } => operate(ctx, &base, &id, "resume")?,
        RolloutCommand::Advance { id } => operate(ctx, &base, &id, "advance")?,
        RolloutCommand::Cancel { id } => operate(ctx, &base, &id, "cancel")?,
    };
    ctx.out.show(&r, || summary(&r));
    Ok(())
}

/// POST `/rollouts/{id}/{verb}`: the rollout after the move.
fn operate(ctx: &mut Ctx, base: &str, id: &str, verb: &str) -> Result<Value> {
    ctx.client
        .json(
            Method::POST,
            &format!("{base}/{}/{verb}", seg(id)),
            Some(&json!({})),
        )
        .map_err(|e| e.context(&format!("cannot {verb} rollout {id}")))
}
