//! Warm `get_page` over HTTP, with 1 and with 8 clients: `cargo bench -p pageserver --bench get_page`.
//!
//! A page server with default settings (`PS_BENCH_ENGINE=std|uring` picks the engine) runs on a
//! tokio runtime of its own on a loopback port, with its data in a temp directory under
//! `PS_BENCH_DIR`. The timeline gets `PS_BENCH_KEYS` pages (default 10,000) as 8 KiB images,
//! then `PS_BENCH_DELTAS` rounds (default 3) of 100-byte patches on every page, then a
//! checkpoint, so every read finds its records in a layer file and rebuilds the page from an
//! image and its deltas. Every key is read once (warm), then measured.
//!
//! The clients are plain threads with blocking sockets and keep-alive HTTP/1.1 connections,
//! written here so that the client's own cost is a socket write and read. For each of 1 and 8
//! clients, three servers answer the same kind of request with an 8 KiB body:
//!
//! * the ceiling: a thread per connection that answers a canned 8 KiB response, the machine's
//!   limit for one request and one 8 KiB answer over loopback;
//! * the framework: a route of the page server's own router answering a constant 8 KiB body
//!   (HTTP parsing, routing, middleware and the runtime's wake-ups, no read);
//! * `get_page` on random keys.
//!
//! Printed: p50, p99 and requests per second, and the ratio of each p50 to the ceiling's.
#![allow(
    clippy::unwrap_used,
    reason = "benchmark harness: any failure aborts the run"
)]

mod common;

use bytes::Bytes;
use common::{MIB, TENANT, TIMELINE, bench_conf, noise};
use layer_format::value::{PAGE_SIZE, Patch, encode_patches};
use layer_format::{Key, Lsn, Value};
use pageserver::http::wire::encode as encode_ingest;
use pageserver::server::PageServer;
use pageserver::timeline::Record;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A keep-alive HTTP/1.1 client on a blocking socket: one request at a time.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// Sends one request and reads the whole answer: (status, body length).
    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if body.len() < 4096 {
            let mut all = head.into_bytes();
            all.extend_from_slice(body);
            self.stream.write_all(&all).unwrap();
        } else {
            self.stream.write_all(head.as_bytes()).unwrap();
            self.stream.write_all(body).unwrap();
        }
        self.buf.clear();
        let end = loop {
            self.fill();
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = std::str::from_utf8(&self.buf[..end])
            .unwrap()
            .to_ascii_lowercase();
        let status: u16 = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        while self.buf.len() < end + len {
            self.fill();
        }
        assert_eq!(self.buf.len(), end + len, "one answer per request");
        (status, self.buf[end..].to_vec())
    }

    fn fill(&mut self) {
        let at = self.buf.len();
        self.buf.resize(at + 64 * 1024, 0);
        let n = self.stream.read(&mut self.buf[at..]).unwrap();
        assert!(n > 0, "server closed the connection");
        self.buf.truncate(at + n);
    }
}

/// The ceiling: answers every request on a connection with a canned 8 KiB response.
fn canned_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {PAGE_SIZE}\r\n\r\n"
    )
    .into_bytes();
    answer.extend_from_slice(&noise(PAGE_SIZE, 3));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let mut conn = conn.unwrap();
            conn.set_nodelay(true).unwrap();
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut have = 0;
                loop {
                    match conn.read(&mut buf[have..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => have += n,
                    }
                    // Requests carry no body: each ends at the blank line.
                    while let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                        conn.write_all(&answer).unwrap();
                        buf.copy_within(i + 4..have, 0);
                        have -= i + 4;
                    }
                }
            });
        }
    });
    addr
}

/// Random keys below `keys`, one stream per client.
fn key_stream(seed: u64, keys: u128) -> impl FnMut() -> Key {
    let mut rng = test_support::Rng::new(seed);
    move || Key::from_u128(u128::from(rng.next()) % keys)
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn p(&self, q: usize) -> f64 {
        self.latencies[(self.latencies.len() * q / 100).min(self.latencies.len() - 1)].as_secs_f64()
            * 1e6
    }
    fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// `clients` threads, each sending `per_client` requests for `path(key)` one after another.
fn drive(
    addr: SocketAddr,
    clients: usize,
    per_client: usize,
    keys: u128,
    path: impl Fn(Key) -> String + Sync,
) -> Run {
    let start = Instant::now();
    let mut latencies: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let path = &path;
                s.spawn(move || {
                    let mut client = Client::connect(addr);
                    let mut next = key_stream(c as u64 + 11, keys);
                    let mut out = Vec::with_capacity(per_client);
                    for _ in 0..per_client {
                        let p = path(next());
                        let t = Instant::now();
                        let (status, body) = client.request("GET", &p, b"");
                        out.push(t.elapsed());
                        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                        assert_eq!(body.len(), PAGE_SIZE);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = start.elapsed();
    latencies.sort();
    Run { latencies, elapsed }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let keys = env("PS_BENCH_KEYS", 10_000) as u128;
    let rounds = env("PS_BENCH_DELTAS", 3);
    let requests = env("PS_BENCH_REQUESTS", 20_000);
    let (_dir, conf) = bench_conf();
    // The server's runtime, built as the binary builds it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let constant = Bytes::from(noise(PAGE_SIZE, 4));
    let (server, addr) = rt.block_on(async {
        let server = PageServer::start(conf).await.unwrap();
        let app = pageserver::http::router_with(
            server.clone(),
            axum::Router::new().route(
                "/constant",
                axum::routing::get(move || {
                    let c = constant.clone();
                    async move { c }
                }),
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, addr)
    });

    let mut admin = Client::connect(addr);
    let ok = |(status, body): (u16, Vec<u8>)| {
        assert!(status < 300, "{status}: {}", String::from_utf8_lossy(&body));
    };
    ok(admin.request(
        "POST",
        "/v1/tenant",
        format!("{{\"tenant_id\":\"{TENANT}\"}}").as_bytes(),
    ));
    ok(admin.request(
        "POST",
        &format!("/v1/tenant/{TENANT}/timeline"),
        format!("{{\"timeline_id\":\"{TIMELINE}\"}}").as_bytes(),
    ));
    let tl = format!("/v1/tenant/{TENANT}/timeline/{TIMELINE}");

    // Images of every key, then `rounds` patches on each, in bodies of about 1 MiB.
    let page = Bytes::from(noise(PAGE_SIZE, 1));
    let patch = noise(96, 2);
    let mut lsn = 0u64;
    let mut records = Vec::new();
    let mut send = |records: &mut Vec<Record>| {
        if !records.is_empty() {
            ok(admin.request("POST", &format!("{tl}/ingest"), &encode_ingest(records)));
            records.clear();
        }
    };
    for round in 0..=rounds {
        for k in 0..keys {
            lsn += 1;
            let value = if round == 0 {
                Value::Image(page.clone())
            } else {
                Value::Delta {
                    will_init: false,
                    record: encode_patches(&[Patch {
                        offset: ((k as usize + round) % 80) as u16 * 100,
                        bytes: &patch,
                    }]),
                }
            };
            records.push(Record {
                key: Key::from_u128(k),
                lsn: Lsn(lsn),
                value,
            });
            let per_body = if round == 0 {
                MIB / (PAGE_SIZE + 29)
            } else {
                MIB / 129
            };
            if records.len() >= per_body {
                send(&mut records);
            }
        }
    }
    send(&mut records);
    ok(admin.request("PUT", &format!("{tl}/checkpoint"), b""));
    let lsn = Lsn(lsn);
    println!(
        "pageserver get_page benchmark ({:?} engine), {keys} pages with {rounds} deltas each, on {addr}",
        server.engine.kind()
    );

    // Warm: every key once.
    for k in 0..keys {
        let (status, body) = admin.request(
            "GET",
            &format!("{tl}/page?key={}&lsn={lsn}", Key::from_u128(k)),
            b"",
        );
        assert_eq!((status, body.len()), (200, PAGE_SIZE));
    }

    let canned = canned_server();
    for clients in [1, 8] {
        let per_client = requests / clients;
        let ceiling = drive(canned, clients, per_client, keys, |_| "/constant".into());
        let framework = drive(addr, clients, per_client, keys, |_| "/constant".into());
        let get_page = drive(addr, clients, per_client, keys, |key| {
            format!("{tl}/page?key={key}&lsn={lsn}")
        });
        println!("  {clients} client(s), {} requests each:", per_client);
        for (label, run) in [
            ("ceiling: canned 8 KiB answer", &ceiling),
            ("framework: constant 8 KiB route", &framework),
            ("get_page, warm, random keys", &get_page),
        ] {
            println!(
                "    {label:<34} p50 {:>6.1} us  p99 {:>6.1} us  {:>8.0} req/s  p50/ceiling {:.2}",
                run.p(50),
                run.p(99),
                run.per_sec(),
                run.p(50) / ceiling.p(50)
            );
        }
    }
    let (_, metrics) = admin.request("GET", "/metrics", b"");
    let metrics = String::from_utf8(metrics).unwrap();
    let lookups: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("pageserver_page_cache_lookups_total{"))
        .collect();
    println!("  block cache over the whole run: {}", lookups.join(", "));
    server.shutdown();
}
