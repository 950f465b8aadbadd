//! `meshlog-otlp-load`: drives an OTLP logs receiver with the batches the filter sends, and
//! reports what it acknowledged: batches/s, records/s, MB/s of request bodies, acknowledgement
//! latency (p50, p99, max) and the receiver's peak RSS. `scripts/bench` runs it against
//! `meshlog serve` (acknowledged = fsync'd) and against rotel (blackhole exporter), same bytes.
//!
//! Usage: `meshlog-otlp-load --url http://127.0.0.1:4318/v1/logs --seconds 10 --connections 16
//! --records 200 [--pid PID] [--encoding gzip|identity] [--protocol http|grpc] [--tls-ca FILE
//! [--tls-cert FILE --tls-key FILE]]`. Prints one JSON object on stdout.
//!
//! OTLP/HTTP (the default): each connection is a thread with one keep-alive HTTP/1.1
//! connection, sending a batch and waiting for its answer (as the filter does per in-flight
//! slot). OTLP/gRPC (`--protocol grpc`, `--url http://HOST:PORT`): each connection is one
//! HTTP/2 connection with one Export in flight, the same records as protobuf, encoded once before
//! the measured loop as the HTTP bodies are (and never compressed: compressing per request
//! would make this process the bottleneck). Every batch carries a
//! unique `meshlog-batch-id` (header or metadata), as the filter's do. A non-2xx answer (or a
//! gRPC status other than OK) counts as an error, not an ack. With `--tls-ca` the connection is
//! TLS (`https://` is implied), with `--tls-cert`/`--tls-key` mutual TLS.

use meshlog_e2e::load::{batch, cpu_seconds, peak_rss_kib, read_response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The resource every batch carries, as the filter's do.
const RESOURCE: &[(&str, &str)] = &[
    ("service.name", "bench"),
    ("meshlog.vm.id", "0123456789abcdef"),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Grpc,
}

struct Tls {
    ca: PathBuf,
    client: Option<(PathBuf, PathBuf)>,
}

struct Args {
    host: String,
    path: String,
    seconds: u64,
    connections: usize,
    records: usize,
    pid: Option<u32>,
    gzip: bool,
    protocol: Protocol,
    tls: Option<Tls>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1:4318".into(),
        path: "/v1/logs".into(),
        seconds: 10,
        connections: 16,
        records: 200,
        pid: None,
        gzip: true,
        protocol: Protocol::Http,
        tls: None,
    };
    let (mut ca, mut cert, mut key) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => {
                let url = val()?;
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .ok_or("--url must start with http:// or https://")?;
                let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
                a.host = host.to_owned();
                a.path = format!("/{path}");
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--connections" => {
                a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?
            }
            "--records" => a.records = val()?.parse().map_err(|e| format!("--records: {e}"))?,
            "--pid" => a.pid = Some(val()?.parse().map_err(|e| format!("--pid: {e}"))?),
            "--encoding" => {
                a.gzip = match val()?.as_str() {
                    "gzip" => true,
                    "identity" => false,
                    o => return Err(format!("--encoding: gzip or identity, not {o}")),
                }
            }
            "--protocol" => {
                a.protocol = match val()?.as_str() {
                    "http" => Protocol::Http,
                    "grpc" => Protocol::Grpc,
                    o => return Err(format!("--protocol: http or grpc, not {o}")),
                }
            }
            "--tls-ca" => ca = Some(PathBuf::from(val()?)),
            "--tls-cert" => cert = Some(PathBuf::from(val()?)),
            "--tls-key" => key = Some(PathBuf::from(val()?)),
            o => return Err(format!("unknown argument {o}")),
        }
    }
    if a.connections == 0 || a.records == 0 || a.seconds == 0 {
        return Err("--connections, --records and --seconds must be positive".into());
    }
    a.tls = match (ca, cert, key) {
        (None, None, None) => None,
        (Some(ca), None, None) => Some(Tls { ca, client: None }),
        (Some(ca), Some(c), Some(k)) => Some(Tls {
            ca,
            client: Some((c, k)),
        }),
        _ => return Err("--tls-cert and --tls-key go together, and need --tls-ca".into()),
    };
    if a.protocol == Protocol::Grpc {
        // Never compressed (see the module docs).
        a.gzip = false;
    }
    Ok(a)
}

/// The rustls client configuration of `--tls-*`.
fn tls_config(t: &Tls) -> Result<rustls::ClientConfig, String> {
    let read_certs = |p: &PathBuf| {
        CertificateDer::pem_file_iter(p)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&t.ca)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", t.ca.display()))?;
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let mut cfg = match &t.client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let k =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            b.with_client_auth_cert(read_certs(cert)?, k)
                .map_err(|e| e.to_string())?
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(body);
    e.finish().unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    acks: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

/// A connection to the receiver: plain TCP, or TLS over it.
trait Conn: Read + Write {}
impl<T: Read + Write> Conn for T {}

fn connect(a: &Args, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Box<dyn Conn>> {
    let s = TcpStream::connect(&a.host)?;
    s.set_nodelay(true)?;
    Ok(match tls {
        None => Box::new(s),
        Some(cfg) => {
            let host = a.host.rsplit_once(':').map_or(a.host.as_str(), |h| h.0);
            let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
            let c =
                rustls::ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
            Box::new(rustls::StreamOwned::new(c, s))
        }
    })
}

fn worker(
    a: &Args,
    conn: usize,
    bodies: &[Vec<u8>],
    tls: Option<&Arc<rustls::ClientConfig>>,
    stop: &AtomicBool,
) -> Tally {
    let mut t = Tally::default();
    let mut seq = 0usize;
    'outer: while !stop.load(Ordering::Relaxed) {
        let Ok(s) = connect(a, tls) else {
            t.errors += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        // Reads are buffered; writes go straight through (one request at a time).
        let mut r = BufReader::new(s);
        while !stop.load(Ordering::Relaxed) {
            let body = &bodies[seq % bodies.len()];
            let first = seq * a.records;
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{}meshlog-batch-id: {conn:016x}:{first}-{}\r\nContent-Length: {}\r\n\r\n",
                a.path,
                a.host,
                if a.gzip {
                    "Content-Encoding: gzip\r\n"
                } else {
                    ""
                },
                first + a.records - 1,
                body.len()
            );
            seq += 1;
            let t0 = Instant::now();
            let w = r.get_mut();
            if w.write_all(head.as_bytes()).is_err()
                || w.write_all(body).is_err()
                || w.flush().is_err()
            {
                t.errors += 1;
                continue 'outer;
            }
            match read_response(&mut r) {
                Ok(200..=299) => {
                    t.acks += 1;
                    t.latencies_us.push(t0.elapsed().as_micros() as u64);
                }
                Ok(_) => t.errors += 1,
                Err(_) => {
                    t.errors += 1;
                    continue 'outer;
                }
            }
        }
    }
    t
}

/// OTLP/gRPC: `a.connections` HTTP/2 connections, one Export in flight on each.
/// Sends requests already encoded as protobuf (so the measured loop neither clones nor encodes
/// them), decodes the answers.
#[derive(Clone, Copy, Default)]
struct EncodedCodec;

impl tonic::codec::Codec for EncodedCodec {
    type Encode = Bytes;
    type Decode = ExportLogsServiceResponse;
    type Encoder = EncodedCodec;
    type Decoder = EncodedCodec;
    fn encoder(&mut self) -> Self {
        *self
    }
    fn decoder(&mut self) -> Self {
        *self
    }
}

impl tonic::codec::Encoder for EncodedCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for EncodedCodec {
    type Item = ExportLogsServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportLogsServiceResponse>, tonic::Status> {
        let r = ExportLogsServiceResponse::decode(src.copy_to_bytes(src.remaining()))
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(Some(r))
    }
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

fn grpc_load(a: &Arc<Args>, requests: Arc<Vec<Bytes>>, stop: &Arc<AtomicBool>) -> Tally {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshlog-otlp-load: tokio: {e}");
            std::process::exit(1);
        }
    };
    let endpoint = |a: &Args| -> Result<Endpoint, String> {
        let scheme = if a.tls.is_some() { "https" } else { "http" };
        let mut e =
            Endpoint::from_shared(format!("{scheme}://{}", a.host)).map_err(|e| e.to_string())?;
        if let Some(t) = &a.tls {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))
            };
            let mut c = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&t.ca)?));
            if let Some((cert, key)) = &t.client {
                c = c.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            e = e.tls_config(c).map_err(|e| e.to_string())?;
        }
        Ok(e)
    };
    let endpoint = match endpoint(a) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("meshlog-otlp-load: {e}");
            std::process::exit(2);
        }
    };
    rt.block_on(async {
        let tasks: Vec<_> = (0..a.connections)
            .map(|conn| {
                let (a, requests, stop, endpoint) =
                    (a.clone(), requests.clone(), stop.clone(), endpoint.clone());
                tokio::spawn(async move {
                    let mut t = Tally::default();
                    let mut seq = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        // Its own connection (a Channel per task, not shared).
                        let Ok(ch) = endpoint.connect().await else {
                            t.errors += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let mut client =
                            tonic::client::Grpc::new(ch).max_encoding_message_size(64 << 20);
                        while !stop.load(Ordering::Relaxed) {
                            let first = seq * a.records;
                            let mut req =
                                tonic::Request::new(requests[seq % requests.len()].clone());
                            if let Ok(v) =
                                format!("{conn:016x}:{first}-{}", first + a.records - 1).parse()
                            {
                                req.metadata_mut().insert("meshlog-batch-id", v);
                            }
                            seq += 1;
                            let t0 = Instant::now();
                            let sent =
                                match client.ready().await {
                                    Ok(()) => client
                                        .unary(
                                            req,
                                            tonic::codegen::http::uri::PathAndQuery::from_static(
                                                EXPORT_PATH,
                                            ),
                                            EncodedCodec,
                                        )
                                        .await,
                                    Err(e) => Err(tonic::Status::unavailable(e.to_string())),
                                };
                            match sent {
                                Ok(_) => {
                                    t.acks += 1;
                                    t.latencies_us.push(t0.elapsed().as_micros() as u64);
                                }
                                Err(s) if s.code() == tonic::Code::Unavailable => {
                                    t.errors += 1;
                                }
                                Err(_) => {
                                    t.errors += 1;
                                    break;
                                }
                            }
                        }
                    }
                    t
                })
            })
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            if let Ok(t) = task.await {
                total.acks += t.acks;
                total.errors += t.errors;
                total.latencies_us.extend(t.latencies_us);
            }
        }
        total
    })
}

fn main() {
    let a = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("meshlog-otlp-load: {e}");
            std::process::exit(2);
        }
    };
    // 32 distinct batches, rotated: realistic variety without encoding in the measured loop.
    let raw: Vec<Vec<u8>> = (0..32).map(|s| batch(a.records, s, RESOURCE)).collect();
    let raw_bytes: usize = raw.iter().map(Vec::len).sum::<usize>() / raw.len();
    let stop = Arc::new(AtomicBool::new(false));
    let (wire_bytes, t0, cpu0, mut total) = match a.protocol {
        Protocol::Http => {
            let bodies: Arc<Vec<Vec<u8>>> = Arc::new(if a.gzip {
                raw.iter().map(|b| gzip(b)).collect()
            } else {
                raw
            });
            let wire_bytes: usize = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
            let tls = match a.tls.as_ref().map(tls_config).transpose() {
                Ok(c) => c.map(Arc::new),
                Err(e) => {
                    eprintln!("meshlog-otlp-load: {e}");
                    std::process::exit(2);
                }
            };
            let cpu0 = a.pid.and_then(cpu_seconds);
            let t0 = Instant::now();
            let handles: Vec<_> = (0..a.connections)
                .map(|c| {
                    let (a, bodies, stop, tls) = (
                        Arc::clone(&a),
                        Arc::clone(&bodies),
                        Arc::clone(&stop),
                        tls.clone(),
                    );
                    std::thread::spawn(move || worker(&a, c, &bodies, tls.as_ref(), &stop))
                })
                .collect();
            std::thread::sleep(Duration::from_secs(a.seconds));
            stop.store(true, Ordering::Relaxed);
            let mut total = Tally::default();
            for h in handles {
                if let Ok(t) = h.join() {
                    total.acks += t.acks;
                    total.errors += t.errors;
                    total.latencies_us.extend(t.latencies_us);
                }
            }
            (wire_bytes, t0, cpu0, total)
        }
        Protocol::Grpc => {
            let requests: Vec<ExportLogsServiceRequest> = raw
                .iter()
                .map(|b| {
                    serde_json::from_slice(b).unwrap_or_else(|e| {
                        eprintln!("meshlog-otlp-load: the batch is not OTLP/JSON: {e}");
                        std::process::exit(1);
                    })
                })
                .collect();
            let requests: Vec<Bytes> = requests
                .iter()
                .map(|r| Bytes::from(r.encode_to_vec()))
                .collect();
            let wire_bytes = requests.iter().map(Bytes::len).sum::<usize>() / requests.len();
            let requests = Arc::new(requests);
            let cpu0 = a.pid.and_then(cpu_seconds);
            let t0 = Instant::now();
            let timer = {
                let (stop, secs) = (stop.clone(), a.seconds);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(secs));
                    stop.store(true, Ordering::Relaxed);
                })
            };
            let total = grpc_load(&a, requests, &stop);
            let _ = timer.join();
            (wire_bytes, t0, cpu0, total)
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    // The receiver's CPU per record acknowledged: steadier than records/s when other work
    // shares the machine.
    let records = total.acks as f64 * a.records as f64;
    let cpu_us_per_record = match (cpu0, a.pid.and_then(cpu_seconds)) {
        (Some(c0), Some(c1)) if records > 0.0 => Some((c1 - c0) * 1e6 / records),
        _ => None,
    };
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        let l = &total.latencies_us;
        if l.is_empty() {
            return f64::NAN;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i] as f64 / 1000.0
    };
    let out = serde_json::json!({
        "seconds": secs,
        "connections": a.connections,
        "records_per_batch": a.records,
        "protocol": if a.protocol == Protocol::Grpc { "grpc" } else { "http" },
        "tls": match &a.tls { None => "none", Some(Tls { client: None, .. }) => "tls", Some(_) => "mtls" },
        "encoding": if a.gzip { "gzip" } else { "identity" },
        "batch_json_bytes": raw_bytes,
        "batch_wire_bytes": wire_bytes,
        "acks": total.acks,
        "errors": total.errors,
        "batches_per_s": total.acks as f64 / secs,
        "records_per_s": (total.acks as f64) * a.records as f64 / secs,
        "json_mb_per_s": (total.acks as f64) * raw_bytes as f64 / secs / 1e6,
        "wire_mb_per_s": (total.acks as f64) * wire_bytes as f64 / secs / 1e6,
        "ack_p50_ms": pct(0.50),
        "ack_p99_ms": pct(0.99),
        "ack_max_ms": pct(1.0),
        "peak_rss_mib": a.pid.and_then(peak_rss_kib).map(|k| k as f64 / 1024.0),
        "cpu_us_per_record": cpu_us_per_record,
    });
    println!("{out}");
}
