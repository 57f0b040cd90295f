//! `otad audit`: the appliance's append-only audit log (who changed what, when), newest
//! first, from `GET /v1/admin/audit`. Not here: writing the log (the server does, in
//! `store/audit.rs`).

use clap::Args;
use serde_json::Value;

use super::client::{CliError, Result};
use super::output::{table, text, time};
use super::session::Ctx;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only entries newer than this: a duration back from now (90s, 30m, 12h, 7d) or a
    /// timestamp in milliseconds since the Unix epoch.
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    since: Option<u64>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    limit: u64,
}

/// A `--since` value as milliseconds since the epoch.
fn parse_since(s: &str) -> std::result::Result<u64, String> {
    let bad = || format!("{s:?} is neither a duration (30m, 12h, 7d) nor a millisecond timestamp");
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(bad()),
    };
    Ok(crate::ids::now_ms().saturating_sub(secs.saturating_mul(1000)))
}

pub fn run(args: AuditArgs, ctx: &mut Ctx) -> Result<()> {
    let size = args.limit.min(1000);
    let mut entries: Vec<Value> = Vec::new();
    let mut page = 0u64;
    loop {
        let mut path = format!("/v1/admin/audit?page={page}&size={size}");
        if let Some(since) = args.since {
            path.push_str(&format!("&since={since}"));
        }
        let v = ctx.client.get(&path)?;
        let content = v
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| CliError::fail("the audit answer is not a page"))?;
        let room = usize::try_from(args.limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(entries.len());
        entries.extend(content.iter().take(room).cloned());
        page += 1;
        let pages = v.get("totalPages").and_then(Value::as_u64).unwrap_or(0);
        if content.is_empty() || page >= pages || entries.len() as u64 >= args.limit {
            break;
        }
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                text(e, "seq"),
                time(e, "timestamp"),
                text(e, "actor"),
                text(e, "action"),
                text(e, "target"),
                text(e, "detail"),
            ]
        })
        .collect();
    ctx.out.show(&Value::Array(entries), || {
        table(
            &["SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"],
            &rows,
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1700000000000"), Ok(1_700_000_000_000));
        let an_hour_ago = parse_since("1h").unwrap();
        let a_day_ago = parse_since("1d").unwrap();
        assert!(an_hour_ago > a_day_ago);
        assert!(parse_since("1w").is_err());
        assert!(parse_since("h").is_err());
    }
}
