//! OCP/1 against a real `otad serve` over real TLS: the full update flow, resume, raw and
//! proof modes, pushes, session replacement, and each error code with its close/keep-open
//! behaviour. The device side is the reference client (`otad::client::device`) or raw
//! frames written through it.

mod api_common;

use std::time::Duration;

use api_common::*;
use otad::client::device::{Client, ClientConfig, ClientError, Progress, ProgressReports};
use otad::ocp::wire::{self, ErrorCode, Message};
use reqwest::Method;
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A partner with a device type, one device and one associated image with a binary.
struct Fleet {
    tenant: Tenant,
    device_type: String,
    device: String,
    token: String,
    data: Vec<u8>,
    sha256: String,
    version_number: u64,
    image_id: String,
}

fn device_addr(server: &Server) -> String {
    let text = std::fs::read_to_string(server.data.join("listen.json")).expect("listen.json");
    let v: Value = serde_json::from_str(&text).expect("listen.json is JSON");
    v["device"]
        .as_str()
        .expect("listen.json has device")
        .to_string()
}

fn client_config(server: &Server, device: &str, token: &str) -> ClientConfig {
    ClientConfig {
        addr: device_addr(server),
        server_name: "localhost".into(),
        ca_file: server.data.join("tls").join("cert.pem"),
        device_id: device.into(),
        token: token.into(),
        max_frame: 256 * 1024,
        max_inflight: 16,
        chunk_log: 4,
    }
}

fn fleet(server: &Server, name: &str, size: usize, seed: u64) -> Fleet {
    let admin = server.admin_token();
    let tenant = server.api.tenant(&admin, name);
    let device_type = server
        .api
        .device_type(&tenant.id, &tenant.token, &format!("{name} kettle"));
    let device = format!("{name}-dev-1");
    let token = s(
        &server
            .api
            .post_json(
                &format!("{}/devices", tenant.base()),
                &tenant.token,
                &json!({"deviceId": device, "deviceTypeId": device_type}),
            )
            .ok_json(201),
        "token",
    );
    let data = bytes(size, seed);
    let (sha256, url) = server.api.publish(&tenant.id, &tenant.token, &data);
    let record = server.api.pool_create(
        &tenant.id,
        &tenant.token,
        &json!({"name": format!("{name}-app"), "type": 3, "version": "2.0.0", "url": url}),
    );
    let version_number: u64 = s(&record, "versionNumber").parse().expect("versionNumber");
    server
        .api
        .post_json(
            &format!("{}/deviceTypes/{device_type}/firmwareImages", tenant.base()),
            &tenant.token,
            &record,
        )
        .ok_json(201);
    Fleet {
        image_id: s(&record, "id"),
        tenant,
        device_type,
        device,
        token,
        data,
        sha256,
        version_number,
    }
}

fn server_code(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::Server { code, .. } => Some(*code),
        _ => None,
    }
}

/// Reads frames until the server closes; returns what came before the close.
async fn until_closed(client: &mut Client) -> Vec<(u32, Message)> {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), client.recv()).await {
            Ok(Ok(frame)) => frames.push(frame),
            Ok(Err(_)) => return frames,
            Err(_) => panic!("server did not close the connection within 30 s; got {frames:?}"),
        }
    }
}

/// Progress REPORTs ride in the download's pipeline and count against max_inflight: at
/// every window size, including 1, the server never answers TOO_MANY_INFLIGHT, and it
/// stores each report as it comes.
#[test]
fn progress_reports_inside_the_download_pipeline() {
    let server = Server::start();
    let f = fleet(&server, "prog", 300_000 + 123, 9);
    let rt = runtime();
    for window in [1u8, 2, 16] {
        let mut cfg = client_config(&server, &f.device, &f.token);
        cfg.max_inflight = window;
        cfg.chunk_log = 2;
        let sent = rt.block_on(async {
            let mut c = Client::connect(&cfg).await.expect("connect");
            let offer = c.check(&[(3, 0)]).await.expect("check").remove(0);
            let mut progress = Progress {
                blake3: offer.blake3,
                size: offer.size,
                verified_upto: 0,
            };
            let mut reports = ProgressReports::new(&offer, 0);
            let mut out = Vec::new();
            c.download_reporting(&mut progress, None, Some(&mut reports), |_, d| {
                out.extend_from_slice(d);
                Ok(())
            })
            .await
            .unwrap_or_else(|e| panic!("window {window}: {e}"));
            assert_eq!(out, f.data, "window {window}");
            // The connection is still in step: the next request gets its own answer.
            c.ping().await.expect("ping after the download");
            reports.sent
        });
        assert_eq!(
            sent, 9,
            "one report per tenth (the last is DOWNLOADED's): window {window}"
        );
        let dev = server
            .api
            .get(
                &format!("{}/devices/{}", f.tenant.base(), f.device),
                &f.tenant.token,
            )
            .ok_json(200);
        let ota = &dev["ota"][0];
        assert_eq!(ota["state"], "downloading", "{dev}");
        let done = ota["bytesDone"].as_u64().expect("bytesDone");
        assert!(done >= 9 * 30_013 && done < f.data.len() as u64, "{dev}");
    }
}

#[test]
fn full_flow_check_download_report_confirm() {
    let server = Server::start();
    let f = fleet(&server, "flow", 300_000 + 123, 1);
    let cfg = client_config(&server, &f.device, &f.token);
    let rt = runtime();
    let downloaded = rt.block_on(async {
        let mut c = Client::connect(&cfg).await.expect("connect");
        assert_eq!(c.granted.chunk_log, 4);
        assert_eq!(c.granted.max_inflight, 16);
        let offers = c.check(&[(3, 0), (5, 0)]).await.expect("check");
        assert_eq!(offers.len(), 1, "{offers:?}");
        let o = &offers[0];
        assert_eq!(o.fw_type, 3);
        assert_eq!(o.version_number, f.version_number);
        assert_eq!(o.size, f.data.len() as u64);
        assert_eq!(hex(&o.sha256), f.sha256);
        assert_eq!(o.version, "2.0.0");
        assert!(!o.pushed);
        let mut progress = Progress {
            blake3: o.blake3,
            size: o.size,
            verified_upto: 0,
        };
        let mut out = Vec::new();
        c.download(&mut progress, None, |_, d| {
            out.extend_from_slice(d);
            Ok(())
        })
        .await
        .expect("download");
        c.report(3, f.version_number, 1, 0, progress.verified_upto)
            .await
            .expect("report downloading");
        c.report(3, f.version_number, 2, 0, progress.verified_upto)
            .await
            .expect("report downloaded");
        c.report(3, f.version_number, 4, 1, progress.verified_upto)
            .await
            .expect("report installed");
        // After the reboot the device reports the new number: confirmed, nothing offered.
        let offers = c
            .check(&[(3, f.version_number)])
            .await
            .expect("check again");
        assert!(offers.is_empty(), "{offers:?}");
        out
    });
    assert_eq!(downloaded, f.data);
    assert_eq!(sha256_hex(&downloaded), f.sha256);
    assert_eq!(hex(blake3::hash(&downloaded).as_bytes()).len(), 64);
    let dev = server
        .api
        .get(
            &format!("{}/devices/{}", f.tenant.base(), f.device),
            &f.tenant.token,
        )
        .ok_json(200);
    let ota = &dev["ota"][0];
    assert_eq!(ota["state"], "confirmed", "{dev}");
    let states: Vec<&str> = ota["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["offered", "downloading", "downloaded", "installed"],
        "{dev}"
    );
    assert_eq!(
        dev["installed"][0]["versionNumber"],
        f.version_number.to_string()
    );
}

#[test]
fn resume_after_cut_and_after_restart_of_the_client() {
    let server = Server::start();
    let f = fleet(&server, "resume", 1_000_000 + 7, 2);
    let cfg = client_config(&server, &f.device, &f.token);
    let rt = runtime();
    let out = rt.block_on(async {
        let mut c = Client::connect(&cfg).await.expect("connect");
        let o = c.check(&[(3, 0)]).await.expect("check").remove(0);
        let mut progress = Progress {
            blake3: o.blake3,
            size: o.size,
            verified_upto: 0,
        };
        let mut out = vec![0u8; o.size as usize];
        let mut write = |at: u64, d: &[u8]| {
            out[at as usize..at as usize + d.len()].copy_from_slice(d);
            Ok(())
        };
        c.download(&mut progress, Some(300_000), &mut write)
            .await
            .expect("first part");
        assert!(progress.verified_upto >= 300_000 && progress.verified_upto < o.size);
        // Cut the connection with GETs possibly still in flight.
        drop(c);
        // A new session (as after a reboot) resumes from what was verified.
        let mut c = Client::connect(&cfg).await.expect("reconnect");
        let again = c.check(&[(3, 0)]).await.expect("check").remove(0);
        assert_eq!(again.blake3, o.blake3, "the same image is still offered");
        progress.verified_upto -= 5000; // a device may keep a slightly stale mark: still fine
        c.download(&mut progress, None, &mut write)
            .await
            .expect("rest");
        assert_eq!(progress.verified_upto, o.size);
        out
    });
    assert_eq!(out, f.data);
}

#[test]
fn raw_mode_and_pipelined_requests_with_ping() {
    let server = Server::start();
    let f = fleet(&server, "raw", 200_000, 3);
    let cfg = client_config(&server, &f.device, &f.token);
    runtime().block_on(async {
        let mut c = Client::connect(&cfg).await.expect("connect");
        let o = c.check(&[(3, 0)]).await.expect("check").remove(0);
        let g = 16 * 1024u32;
        // Eight raw GETs and a PING pipelined; answers matched by request_id.
        let mut asked = std::collections::BTreeMap::new();
        for i in 0..8u64 {
            let rid = c
                .send(&Message::Get {
                    blake3: o.blake3,
                    offset: i * u64::from(g),
                    length: g,
                    with_proof: false,
                })
                .await
                .unwrap();
            asked.insert(rid, i * u64::from(g));
        }
        let ping = c.send(&Message::Ping).await.unwrap();
        let mut pong = false;
        while !asked.is_empty() || !pong {
            let (rid, msg) = c.recv().await.unwrap();
            match msg {
                Message::Pong => {
                    assert_eq!(rid, ping);
                    pong = true;
                }
                Message::Data {
                    offset,
                    length,
                    with_proof,
                    payload,
                } => {
                    assert_eq!(asked.remove(&rid), Some(offset));
                    assert!(!with_proof);
                    assert_eq!(length, g);
                    assert_eq!(
                        payload,
                        &f.data[offset as usize..(offset + u64::from(g)) as usize]
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // The last group is clipped to the end of the blob.
        let last = (o.size / u64::from(g)) * u64::from(g);
        match c
            .call(Message::Get {
                blake3: o.blake3,
                offset: last,
                length: u32::MAX,
                with_proof: false,
            })
            .await
            .unwrap()
        {
            Message::Data {
                length, payload, ..
            } => {
                assert_eq!(u64::from(length), o.size - last);
                assert_eq!(payload, &f.data[last as usize..]);
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn errors_that_keep_the_connection_open() {
    let server = Server::start();
    let f = fleet(&server, "keep", 100_000, 4);
    let other = fleet(&server, "other", 50_000, 5);
    let cfg = client_config(&server, &f.device, &f.token);
    runtime().block_on(async {
        let mut c = Client::connect(&cfg).await.expect("connect");
        let o = c.check(&[(3, 0)]).await.expect("check").remove(0);
        // Unaligned offset, zero length, past the end: BAD_RANGE.
        for (offset, length) in [(100u64, 16_384u32), (0, 0), (1 << 30, 16_384)] {
            let e = c
                .call(Message::Get {
                    blake3: o.blake3,
                    offset,
                    length,
                    with_proof: true,
                })
                .await
                .unwrap_err();
            assert_eq!(server_code(&e), Some(ErrorCode::BadRange as u16), "{e}");
        }
        // Another partner's binary: FORBIDDEN; an unknown hash: NOT_FOUND.
        let other_blake3: [u8; 32] = *blake3::hash(&other.data).as_bytes();
        let e = c
            .call(Message::Get {
                blake3: other_blake3,
                offset: 0,
                length: 16_384,
                with_proof: true,
            })
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(ErrorCode::Forbidden as u16), "{e}");
        let e = c
            .call(Message::Get {
                blake3: [7; 32],
                offset: 0,
                length: 16_384,
                with_proof: true,
            })
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(ErrorCode::NotFound as u16), "{e}");
        // A DATA that would not fit max_frame: TOO_LARGE (raw, 16 groups = 256 KiB + header).
        let e = c
            .call(Message::Get {
                blake3: o.blake3,
                offset: 0,
                length: 16 * 16_384,
                with_proof: false,
            })
            .await;
        if o.size > 16 * 16_384 {
            assert_eq!(
                server_code(&e.unwrap_err()),
                Some(ErrorCode::TooLarge as u16)
            );
        }
        // REPORT of an image never offered: FORBIDDEN; a bad state/result pair: BAD_RANGE.
        let e = c
            .report(3, f.version_number + 100, 1, 0, 0)
            .await
            .unwrap_err();
        assert_eq!(server_code(&e), Some(ErrorCode::Forbidden as u16), "{e}");
        let e = c.report(3, f.version_number, 5, 0, 0).await.unwrap_err();
        assert_eq!(server_code(&e), Some(ErrorCode::BadRange as u16), "{e}");
        // Still usable after all of these.
        c.ping().await.expect("ping after errors");

        // Too many in flight: with max_inflight 1, a PING sent right behind a CHECK (in the
        // same write) finds the CHECK still in flight (it waits for a store commit; GETs are
        // answered before the next frame is read, so they cannot be caught in flight) and is
        // refused with its own request_id; the connection stays open. Scheduling may let the
        // CHECK finish first, so a few rounds are allowed, but the refusal must show up.
        let mut one = cfg.clone();
        one.max_inflight = 1;
        let mut c = Client::connect(&one)
            .await
            .expect("connect with max_inflight 1");
        assert_eq!(c.granted.max_inflight, 1);
        let mut refused = false;
        for round in 0..10u32 {
            let mut two = Vec::new();
            let check_rid = 1000 + round * 2;
            wire::encode(
                check_rid,
                &Message::Check {
                    items: vec![(3, 0)],
                },
                &mut two,
            );
            wire::encode(check_rid + 1, &Message::Ping, &mut two);
            c.send_raw(&two).await.unwrap();
            let mut answers = Vec::new();
            while answers.len() < 2 {
                answers.push(c.recv().await.unwrap());
            }
            for (rid, msg) in &answers {
                match msg {
                    Message::Error { code, .. } => {
                        assert_eq!(*code, ErrorCode::TooManyInflight as u16, "{answers:?}");
                        assert_eq!(
                            *rid,
                            check_rid + 1,
                            "the refusal carries the refused request's id"
                        );
                        refused = true;
                    }
                    Message::Offer { .. } => assert_eq!(*rid, check_rid),
                    Message::Pong => assert_eq!(*rid, check_rid + 1),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if refused {
                break;
            }
        }
        assert!(refused, "no TOO_MANY_INFLIGHT in 10 rounds");
        c.ping().await.expect("still open after TOO_MANY_INFLIGHT");
    });
    let dev = server
        .api
        .get(
            &format!("{}/devices/{}", f.tenant.base(), f.device),
            &f.tenant.token,
        )
        .ok_json(200);
    assert!(dev["lastSeenTimestamp"].is_u64(), "{dev}");
}

/// Builds a raw HELLO frame.
fn hello_frame(device: &str, token: &str, rid: u32) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(
        rid,
        &Message::Hello {
            device_id: device.into(),
            token: token.as_bytes().to_vec(),
            max_frame: 256 * 1024,
            max_inflight: 4,
            chunk_log: 2,
            features: None,
        },
        &mut out,
    );
    out
}

/// Opens a TLS connection without sending HELLO (for malformed first frames).
async fn raw_connect(server: &Server, first: &[u8]) -> Vec<(u32, Message)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = server.data.join("tls").join("cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_file_iter(&ca)
            .unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"ocp/1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(device_addr(server))
        .await
        .unwrap();
    let mut tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "server did not close within 15 s");
    let mut frames = Vec::new();
    let mut rest = all.as_slice();
    while rest.len() >= wire::HEADER_LEN {
        let header: [u8; wire::HEADER_LEN] = rest[..wire::HEADER_LEN].try_into().unwrap();
        let h = wire::decode_header(&header, u32::MAX).unwrap();
        let end = wire::HEADER_LEN + h.body_len as usize;
        frames.push((
            h.request_id,
            wire::decode_body(h.msg_type, &rest[wire::HEADER_LEN..end]).unwrap(),
        ));
        rest = &rest[end..];
    }
    frames
}

fn only_error(frames: &[(u32, Message)]) -> u16 {
    match frames {
        [(0, Message::Error { code, .. })] => *code,
        other => panic!("expected one ERROR with request_id 0, got {other:?}"),
    }
}

#[test]
fn errors_that_close_the_connection() {
    let server = Server::start();
    let f = fleet(&server, "close", 10_000, 6);
    let rt = runtime();
    rt.block_on(async {
        // Bad version, reserved flags, oversize body_len before HELLO, GET before HELLO.
        let mut bad_version = hello_frame(&f.device, &f.token, 1);
        bad_version[0] = 2;
        assert_eq!(
            only_error(&raw_connect(&server, &bad_version).await),
            ErrorCode::UnsupportedVersion as u16
        );
        let mut flags = hello_frame(&f.device, &f.token, 1);
        flags[3] = 1;
        assert_eq!(
            only_error(&raw_connect(&server, &flags).await),
            ErrorCode::BadFrame as u16
        );
        let oversize = [1u8, 1, 0, 0, 0, 0, 0, 1, 0, 0, 4, 1];
        assert_eq!(
            only_error(&raw_connect(&server, &oversize).await),
            ErrorCode::BadFrame as u16
        );
        let mut get = Vec::new();
        wire::encode(
            1,
            &Message::Get {
                blake3: [0; 32],
                offset: 0,
                length: 4096,
                with_proof: true,
            },
            &mut get,
        );
        assert_eq!(
            only_error(&raw_connect(&server, &get).await),
            ErrorCode::BadState as u16
        );
        // A truncated HELLO (body shorter than body_len, then the connection half-closes).
        let hello = hello_frame(&f.device, &f.token, 1);
        let frames = raw_connect(&server, &hello[..hello.len() - 3]).await;
        assert!(frames.len() <= 1, "{frames:?}");
        // request_id 0 on HELLO.
        assert_eq!(
            only_error(&raw_connect(&server, &hello_frame(&f.device, &f.token, 0)).await),
            ErrorCode::BadFrame as u16
        );
        // Wrong token and unknown id: the same AUTH_FAILED.
        let wrong =
            only_error(&raw_connect(&server, &hello_frame(&f.device, "not-the-token", 1)).await);
        let unknown =
            only_error(&raw_connect(&server, &hello_frame("no-such-device", &f.token, 1)).await);
        assert_eq!(
            (wrong, unknown),
            (ErrorCode::AuthFailed as u16, ErrorCode::AuthFailed as u16)
        );

        // After HELLO: oversize body_len, a second HELLO, a duplicate request_id.
        let cfg = client_config(&server, &f.device, &f.token);
        let mut c = Client::connect(&cfg).await.unwrap();
        let mut big = vec![1u8, 9, 0, 0, 0, 0, 0, 50];
        big.extend_from_slice(&(c.granted.max_frame + 1).to_be_bytes());
        c.send_raw(&big).await.unwrap();
        let frames = until_closed(&mut c).await;
        assert_eq!(only_error(&frames), ErrorCode::BadFrame as u16);

        let mut c = Client::connect(&cfg).await.unwrap();
        c.send_raw(&hello_frame(&f.device, &f.token, 99))
            .await
            .unwrap();
        assert_eq!(
            only_error(&until_closed(&mut c).await),
            ErrorCode::BadState as u16
        );

        let mut c = Client::connect(&cfg).await.unwrap();
        let mut two = Vec::new();
        c.check(&[(3, 0)]).await.unwrap();
        // Two CHECKs: the first is still waiting for its commit when the second arrives.
        for _ in 0..2 {
            wire::encode(
                500,
                &Message::Check {
                    items: vec![(3, 0)],
                },
                &mut two,
            );
        }
        c.send_raw(&two).await.unwrap();
        let frames = until_closed(&mut c).await;
        assert!(
            frames.iter().any(|(rid, m)| *rid == 0
                && matches!(m, Message::Error { code, .. } if *code == ErrorCode::BadFrame as u16)),
            "{frames:?}"
        );
    });
}

#[test]
fn idle_timeout_and_session_replacement() {
    let server = Server::start_with_config("[device]\nidle_timeout_secs = 2\n");
    let f = fleet(&server, "idle", 5_000, 7);
    let cfg = client_config(&server, &f.device, &f.token);
    runtime().block_on(async {
        // PING keeps a connection alive past the idle timeout…
        let mut c = Client::connect(&cfg).await.unwrap();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            c.ping().await.expect("ping keeps the session");
        }
        // … silence closes it (within idle + slack).
        let started = std::time::Instant::now();
        let frames = until_closed(&mut c).await;
        assert!(frames.is_empty(), "{frames:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(1500),
            "closed too early"
        );

        // A reconnect replaces the old session, which is told BAD_STATE and closed.
        let mut first = Client::connect(&cfg).await.unwrap();
        let _second = Client::connect(&cfg).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(10), first.recv()).await {
            Ok(Ok((0, Message::Error { code, message, .. }))) => {
                assert_eq!(code, ErrorCode::BadState as u16);
                assert!(message.contains("replaced"), "{message}");
            }
            other => panic!("old session was not told it was replaced: {other:?}"),
        }
    });
}

#[test]
fn push_reaches_a_connected_device_unsolicited() {
    let server = Server::start();
    let f = fleet(&server, "push", 20_000, 8);
    // A newer image, then push the older one explicitly.
    let (_, url) = server
        .api
        .publish(&f.tenant.id, &f.tenant.token, &bytes(30_000, 9));
    let newer = server.api.pool_create(
        &f.tenant.id,
        &f.tenant.token,
        &json!({"name": "push-app", "type": 3, "version": "3.0.0", "url": url}),
    );
    server
        .api
        .post_json(
            &format!(
                "{}/deviceTypes/{}/firmwareImages",
                f.tenant.base(),
                f.device_type
            ),
            &f.tenant.token,
            &newer,
        )
        .ok_json(201);
    let cfg = client_config(&server, &f.device, &f.token);
    let rt = runtime();
    let mut c = rt.block_on(async {
        let mut c = Client::connect(&cfg).await.unwrap();
        let offers = c.check(&[(3, 0)]).await.unwrap();
        assert_eq!(offers[0].version, "3.0.0", "newest first");
        c
    });
    let resp = server.api.send(
        server
            .api
            .req(
                Method::PUT,
                &format!(
                    "{}/deviceTypes/{}/firmwareImages/{}/push",
                    f.tenant.base(),
                    f.device_type,
                    f.image_id
                ),
                &f.tenant.token,
            )
            .json(&json!({"value": f.device})),
    );
    resp.ok_json(202);
    rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(10), c.recv()).await {
            Ok(Ok((0, Message::Offer { items }))) => {
                assert_eq!(items.len(), 1);
                assert!(items[0].pushed);
                assert_eq!(items[0].version_number, f.version_number);
            }
            other => panic!("no unsolicited OFFER after the push: {other:?}"),
        }
        // Acting on the pushed OFFER without a CHECK: its REPORT is accepted.
        c.report(3, f.version_number, 1, 0, 0)
            .await
            .expect("report about the pushed image");
        // And a CHECK now answers with the pushed image too.
        let offers = c.check(&[(3, 0)]).await.unwrap();
        assert!(offers[0].pushed);
        assert_eq!(offers[0].version_number, f.version_number);
    });
}

/// A CA and a device certificate signed by it that names `names` as DNS SANs.
fn device_pki(
    dir: &std::path::Path,
    names: &[&str],
) -> (std::path::PathBuf, otad::client::device::Identity) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test device CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("device-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let der_key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (ca_path, (vec![cert.der().clone()], der_key))
}

#[test]
fn mtls_device_certificate_replaces_the_token() {
    let pki = tempfile::tempdir().unwrap();
    let (ca_path, identity) = device_pki(pki.path(), &["mtls-dev-1"]);
    let other_pki = tempfile::tempdir().unwrap();
    let (_, stranger) = device_pki(other_pki.path(), &["mtls-dev-1"]);
    let server = Server::start_with_config(&format!(
        "[device]\nclient_ca = {:?}\n",
        ca_path.display().to_string()
    ));
    let f = fleet(&server, "mtls", 8_000, 10);
    assert_eq!(f.device, "mtls-dev-1");
    let mut cfg = client_config(&server, &f.device, "");
    runtime().block_on(async {
        // Certificate naming the device, empty token: accepted.
        let mut c =
            Client::connect_with_identity(&cfg, Some((identity.0.clone(), identity.1.clone_key())))
                .await
                .expect("mTLS device connects without a token");
        assert_eq!(c.check(&[(3, 0)]).await.unwrap().len(), 1);
        // No certificate and an empty token: refused like any bad credential.
        let e = Client::connect(&cfg).await.err().expect("refused");
        assert_eq!(server_code(&e), Some(ErrorCode::AuthFailed as u16), "{e}");
        // A certificate naming the device but from another CA does not complete the handshake.
        assert!(
            Client::connect_with_identity(&cfg, Some(stranger))
                .await
                .is_err()
        );
        // The token still works with or without a certificate.
        cfg.token = f.token.clone();
        Client::connect(&cfg).await.expect("token still accepted");
    });
}

#[test]
fn a_device_that_stops_reading_is_disconnected() {
    let server = Server::start_with_config("[device]\nwrite_timeout_secs = 2\n");
    let f = fleet(&server, "stall", 2_000_000, 11);
    let mut cfg = client_config(&server, &f.device, &f.token);
    cfg.max_inflight = 64;
    cfg.chunk_log = 6;
    runtime().block_on(async {
        let mut c = Client::connect(&cfg).await.unwrap();
        let o = c.check(&[(3, 0)]).await.unwrap().remove(0);
        // Ask for the whole image again and again without reading a single answer. Once the
        // socket buffers are full the server cannot write; after write_timeout_secs it must
        // close the connection, which shows up here as a failing (or stuck, then failing) send.
        let started = std::time::Instant::now();
        let mut sent = 0u64;
        let closed = loop {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server kept a non-reading device for 60 s"
            );
            let mut frames = Vec::new();
            for i in 0..64u64 {
                let offset = (i % (o.size / 65_536)) * 65_536;
                wire::encode(
                    (sent + i) as u32 % 1_000_000 + 1,
                    &Message::Get {
                        blake3: o.blake3,
                        offset,
                        length: 65_536,
                        with_proof: false,
                    },
                    &mut frames,
                );
            }
            match tokio::time::timeout(Duration::from_secs(10), c.send_raw(&frames)).await {
                Ok(Ok(())) => sent += 64,
                Ok(Err(_)) => break true,
                Err(_) => {}
            }
        };
        assert!(closed);
    });
    // The server is still healthy for other devices.
    let cfg = client_config(&server, &f.device, &f.token);
    runtime().block_on(async {
        let mut c = Client::connect(&cfg)
            .await
            .expect("reconnect after the stall");
        c.ping().await.expect("ping");
    });
}
