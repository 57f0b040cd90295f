//! Hostile network input on both listeners at once, while legitimate clients keep working.
//!
//! For about 8 s the attack holds half-open TCP connections on both listeners, slow-header
//! and slow-body HTTPS clients, TLS garbage, oversized request heads, and on the device
//! listener authenticated devices that flood PINGs without reading, exceed their in-flight
//! limit, reuse request ids and announce oversize frames. Meanwhile a legitimate partner
//! (HTTPS) and a legitimate device (OCP/1) make requests every 20 ms. Asserted: every
//! legitimate request succeeds, the server's resident memory stays under 512 MiB and its open
//! descriptors under the configured connection caps, and it serves normally afterwards. The
//! legitimate latencies (p50/p99/max) and attack counts are printed for
//! docs/reliability.md.

mod api_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_common::{Server, bytes, s};
use otad::client::device::{Client, ClientConfig};
use otad::ocp::wire::{self, Message};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API_MAX_CONNECTIONS: u64 = 700;
const DEVICE_MAX_CONNECTIONS: u64 = 1600;
const ATTACK: Duration = Duration::from_secs(8);

fn config() -> String {
    format!(
        "[api]\nmax_connections = {API_MAX_CONNECTIONS}\nheader_read_timeout_secs = 3\n\
         login_attempts_per_minute = 100000\n\
         [device]\nmax_connections = {DEVICE_MAX_CONNECTIONS}\nhello_timeout_secs = 3\n"
    )
}

fn tls(server: &Server) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let path = server.data.join("tls").join("cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&path).expect("cert.pem") {
        roots.add(cert.expect("cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A TLS connection to the API listener, or None when the server refused it (under attack,
/// an attacker's connection may be dropped; that is not a failure of the test).
async fn https(
    addr: &str,
    connector: &tokio_rustls::TlsConnector,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let name = rustls_pki_types::ServerName::try_from("localhost").ok()?;
    connector.connect(name, tcp).await.ok()
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        / 1024
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("proc fd")
        .count() as u64
}

#[derive(Default)]
struct Counts {
    half_open: AtomicU64,
    slow_headers: AtomicU64,
    slow_bodies: AtomicU64,
    garbage: AtomicU64,
    oversize_heads: AtomicU64,
    device_floods: AtomicU64,
    pings_flooded: AtomicU64,
    protocol_abuse: AtomicU64,
    pipelined: AtomicU64,
    pipelines_stalled: AtomicU64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

#[test]
fn hostile_clients_on_both_listeners_do_not_starve_legitimate_ones() {
    let server = Server::start_with_config(&config());
    let api = server.api.clone();
    let admin = server.admin_token();
    let t = api.tenant(&admin, "Hostile");
    let dt = api.device_type(&t.id, &t.token, "hostile-dt");
    let data = bytes(1 << 20, 3);
    let (_, url) = api.publish(&t.id, &t.token, &data);
    let rec = api.pool_create(
        &t.id,
        &t.token,
        &json!({"name": "fw", "type": 3, "version": "1", "url": url}),
    );
    api.associate(&t.id, &t.token, &dt, &rec);
    let mut device_tokens = Vec::new();
    for i in 0..5 {
        let id = format!("dev-{i}");
        let tok = api.register_device(&t.id, &t.token, &id, &dt);
        device_tokens.push((id, tok));
    }
    let api_addr = api.addr.to_string();
    let dev_addr = server.device_addr();
    let ca = server.data.join("tls").join("cert.pem");
    let device_cfg = |(id, tok): &(String, String)| ClientConfig {
        addr: dev_addr.clone(),
        server_name: "localhost".into(),
        ca_file: ca.clone(),
        device_id: id.clone(),
        token: tok.clone(),
        max_frame: 256 * 1024,
        max_inflight: 4,
        chunk_log: 4,
    };
    let pid = server.pid();
    let rss_before = rss_mib(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let http_tls = tls(&server);
    let mut attacks = Vec::new();
    // Half-open TCP on both listeners: connect, say nothing, hold.
    for (addr, n) in [(api_addr.clone(), 300), (dev_addr.clone(), 1000)] {
        for _ in 0..n {
            let (addr, stop, counts) = (addr.clone(), stop.clone(), counts.clone());
            attacks.push(rt.spawn(async move {
                if let Ok(mut s) = TcpStream::connect(&addr).await {
                    counts.half_open.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf))
                            .await
                        {
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            _ => {}
                        }
                    }
                }
            }));
        }
    }
    // Slow headers and slow bodies over real TLS.
    for slow_body in [false, true] {
        for _ in 0..100 {
            let (addr, stop, counts, connector) = (
                api_addr.clone(),
                stop.clone(),
                counts.clone(),
                http_tls.clone(),
            );
            let path = format!("{}/pool", t.base());
            attacks.push(rt.spawn(async move {
                let Some(mut s) = https(&addr, &connector).await else {
                    return;
                };
                let head = if slow_body {
                    counts.slow_bodies.fetch_add(1, Ordering::Relaxed);
                    format!(
                        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n"
                    )
                } else {
                    counts.slow_headers.fetch_add(1, Ordering::Relaxed);
                    "GET /healthz HTTP/1.1\r\n".to_string()
                };
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(b"x").await.is_err() || s.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }));
        }
    }
    // HTTP pipelining without reading: authenticated list requests written 100 at a time
    // for as long as the server takes them. It must stop reading once its answers back up
    // (bounded memory), not buffer answers for a client that never reads.
    for _ in 0..20 {
        let (addr, stop, counts, connector) = (
            api_addr.clone(),
            stop.clone(),
            counts.clone(),
            http_tls.clone(),
        );
        let req = format!(
            "GET {}/pool HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
            t.base(),
            t.token
        );
        attacks.push(rt.spawn(async move {
            let Some(mut s) = https(&addr, &connector).await else {
                return;
            };
            let batch = req.repeat(100);
            let mut stalled = false;
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(1), s.write_all(batch.as_bytes()))
                    .await
                {
                    Ok(Ok(())) => {
                        counts.pipelined.fetch_add(100, Ordering::Relaxed);
                    }
                    Ok(Err(_)) => return,
                    Err(_) => {
                        if !stalled {
                            stalled = true;
                            counts.pipelines_stalled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    // TLS garbage and oversized request heads, in waves until the attack ends.
    {
        let (api_addr, dev_addr, stop, counts, connector) = (
            api_addr.clone(),
            dev_addr.clone(),
            stop.clone(),
            counts.clone(),
            http_tls.clone(),
        );
        attacks.push(rt.spawn(async move {
            let mut wave = 0u64;
            while !stop.load(Ordering::Relaxed) {
                wave += 1;
                let mut set = tokio::task::JoinSet::new();
                for i in 0..40u64 {
                    let addr = if i % 2 == 0 {
                        api_addr.clone()
                    } else {
                        dev_addr.clone()
                    };
                    let counts = counts.clone();
                    set.spawn(async move {
                        if let Ok(mut s) = TcpStream::connect(&addr).await {
                            let junk: Vec<u8> = (0..4096u64)
                                .map(|k| (k * 31 + wave * 7 + i) as u8)
                                .collect();
                            let _ = s.write_all(&junk).await;
                            let mut buf = [0u8; 256];
                            let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                                .await;
                            counts.garbage.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                for _ in 0..10 {
                    let (addr, counts, connector) =
                        (api_addr.clone(), counts.clone(), connector.clone());
                    set.spawn(async move {
                        let Some(mut s) = https(&addr, &connector).await else {
                            return;
                        };
                        let big = "a".repeat(100_000);
                        let req =
                            format!("GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
                        let _ = s.write_all(req.as_bytes()).await;
                        let mut buf = Vec::new();
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
                                .await;
                        let head = String::from_utf8_lossy(&buf[..buf.len().min(12)]).to_string();
                        assert!(
                            buf.is_empty() || head.starts_with("HTTP/1.1 431"),
                            "oversized head answered {head:?}"
                        );
                        counts.oversize_heads.fetch_add(1, Ordering::Relaxed);
                    });
                }
                while set.join_next().await.is_some() {}
            }
        }));
    }
    // Devices abusing the protocol: PING floods without reading, too many in flight,
    // request_id reuse, oversize frame announcements (fatal: reconnect and go on).
    for dev in device_tokens.iter().skip(1) {
        let (stop, counts, cfg) = (stop.clone(), counts.clone(), device_cfg(dev));
        attacks.push(rt.spawn(async move {
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let Ok(mut c) = Client::connect(&cfg).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                counts.device_floods.fetch_add(1, Ordering::Relaxed);
                let mut burst = Vec::new();
                match round % 3 {
                    0 => {
                        for rid in 1..=2000u32 {
                            wire::encode(rid, &Message::Ping, &mut burst);
                        }
                        counts.pings_flooded.fetch_add(2000, Ordering::Relaxed);
                    }
                    1 => {
                        for _ in 0..50 {
                            wire::encode(7, &Message::Ping, &mut burst);
                        }
                        counts.protocol_abuse.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        // A header (version 1, type, flags) announcing a 2 GiB body.
                        burst.extend_from_slice(&[0x01, 0x01, 0x00, 0x00]);
                        burst.extend_from_slice(&1u32.to_be_bytes());
                        burst.extend_from_slice(&0x8000_0000u32.to_be_bytes());
                        counts.protocol_abuse.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), c.send_raw(&burst)).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }

    // Legitimate traffic, measured.
    let legit_dev = device_cfg(&device_tokens[0]);
    let started = Instant::now();
    let device_latencies = rt.spawn({
        let stop = stop.clone();
        async move {
            let mut c = Client::connect(&legit_dev)
                .await
                .expect("legit device connects");
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let offers = c.check(&[(3, 0)]).await.expect("legit CHECK");
                let o = offers.first().expect("an offer");
                c.call(Message::Get {
                    blake3: o.blake3,
                    offset: 0,
                    length: 16_384,
                    with_proof: true,
                })
                .await
                .expect("legit GET");
                lat.push(t0.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            lat
        }
    });
    let mut http_lat = Vec::new();
    let mut peak_rss = rss_before;
    let mut peak_fds = 0;
    while started.elapsed() < ATTACK {
        let t0 = Instant::now();
        api.get("/healthz", "").expect(200);
        let page = api
            .get(&format!("{}/pool", t.base()), &t.token)
            .ok_json(200);
        assert_eq!(s(&page["content"][0], "name"), "fw");
        http_lat.push(t0.elapsed());
        peak_rss = peak_rss.max(rss_mib(pid));
        peak_fds = peak_fds.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut dev_lat = rt.block_on(device_latencies).expect("legit device task");
    rt.block_on(async {
        for a in attacks {
            let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
        }
    });
    drop(rt);

    // Bounds held, and the server serves normally afterwards.
    assert!(peak_rss <= 512, "server RSS reached {peak_rss} MiB");
    let fd_cap = API_MAX_CONNECTIONS + DEVICE_MAX_CONNECTIONS + 64;
    assert!(
        peak_fds <= fd_cap,
        "server held {peak_fds} descriptors (cap {fd_cap})"
    );
    api.get("/healthz", "").expect(200);
    let c = &counts;
    assert!(c.half_open.load(Ordering::Relaxed) >= 1000);
    assert!(c.garbage.load(Ordering::Relaxed) > 0 && c.oversize_heads.load(Ordering::Relaxed) > 0);
    assert!(
        c.pipelines_stalled.load(Ordering::Relaxed) > 0,
        "the server read every pipelined request of clients that never read an answer"
    );
    assert!(
        http_lat.len() > 50 && dev_lat.len() > 50,
        "too few legitimate requests"
    );
    http_lat.sort();
    dev_lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "hostile: {} half-open, {} slow-header, {} slow-body, {} TLS-garbage, {} oversize-head connections; {} pipelined requests whose answers were never read ({} of 20 connections stalled by the server); {} abusive device sessions ({} PINGs flooded, {} reuse/oversize); legit HTTPS (healthz+list) n={} p50 {:.1} ms p99 {:.1} ms max {:.1} ms; legit device (CHECK+GET) n={} p50 {:.1} ms p99 {:.1} ms max {:.1} ms; RSS {} -> peak {} MiB; peak fds {}",
        c.half_open.load(Ordering::Relaxed),
        c.slow_headers.load(Ordering::Relaxed),
        c.slow_bodies.load(Ordering::Relaxed),
        c.garbage.load(Ordering::Relaxed),
        c.oversize_heads.load(Ordering::Relaxed),
        c.pipelined.load(Ordering::Relaxed),
        c.pipelines_stalled.load(Ordering::Relaxed),
        c.device_floods.load(Ordering::Relaxed),
        c.pings_flooded.load(Ordering::Relaxed),
        c.protocol_abuse.load(Ordering::Relaxed),
        http_lat.len(),
        ms(percentile(&http_lat, 0.5)),
        ms(percentile(&http_lat, 0.99)),
        ms(*http_lat.last().expect("latencies")),
        dev_lat.len(),
        ms(percentile(&dev_lat, 0.5)),
        ms(percentile(&dev_lat, 0.99)),
        ms(*dev_lat.last().expect("latencies")),
        rss_before,
        peak_rss,
        peak_fds,
    );
}
