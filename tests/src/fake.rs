//! A misbehaving collector for the filter's error paths: an HTTP/1.1 server on a loopback port
//! that records every request the filter sends (batch id, encoding, body, when) and answers each
//! as a script says: any status with any headers, or not at all (it hangs until the caller's
//! timeout).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its `meshlog-batch-id`.
    pub batch_id: Option<String>,
    /// Its `content-encoding`.
    pub encoding: Option<String>,
    /// The body, as sent.
    pub body: Vec<u8>,
    /// When it was read in full.
    pub at: Instant,
    /// The request line and header lines, as received.
    pub head: Vec<String>,
}

/// How to answer a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with these extra headers and a short body.
    Status(u16, Vec<(&'static str, String)>),
    /// No answer: keep the connection open, silent, until the fake stops.
    Hang,
    /// Pass the request on to the server at this address and, unless `lose_answer`, its answer
    /// back; with `lose_answer` the server has the request (a collector stores it) but the
    /// sender's connection is closed unanswered: the lost answer.
    Forward {
        /// Where the real collector listens.
        to: SocketAddr,
        /// Drop the answer.
        lose_answer: bool,
    },
}

type Script = dyn Fn(usize, &Received) -> Reply + Send + Sync;

/// The running fake collector; stops (and closes every connection) on drop.
pub struct FakeCollector {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl FakeCollector {
    /// Starts it; `script(n, request)` answers the `n`-th request (from 0).
    pub fn start(script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake collector");
        let addr = listener.local_addr().expect("fake collector address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (r, s) = (Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, s, script) = (Arc::clone(&r), Arc::clone(&s), Arc::clone(&script));
                std::thread::spawn(move || serve(conn, &r, &s, &*script));
            }
        });
        FakeCollector {
            addr,
            received,
            stop,
        }
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(conn: TcpStream, received: &Mutex<Vec<Received>>, stop: &AtomicBool, script: &Script) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut rd = BufReader::new(conn);
    loop {
        // Request line and headers (a read timeout just polls the stop flag).
        let mut head: Vec<String> = Vec::new();
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let mut line = String::new();
            match rd.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) if line == "\r\n" && !head.is_empty() => break,
                Ok(_) => head.push(line.trim_end().to_owned()),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
        let header = |name: &str| {
            head.iter().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        let mut got = 0;
        while got < len {
            match rd.read(&mut body[got..]) {
                Ok(0) => return,
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let req = Received {
            batch_id: header("meshlog-batch-id"),
            encoding: header("content-encoding"),
            body,
            at: Instant::now(),
            head,
        };
        let n = {
            let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
            r.push(req.clone());
            r.len() - 1
        };
        match script(n, &req) {
            Reply::Status(code, headers) => {
                let body = format!("fake collector: {code}");
                let mut resp = format!(
                    "HTTP/1.1 {code} Fake\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    resp.push_str(&format!("{k}: {v}\r\n"));
                }
                resp.push_str("\r\n");
                resp.push_str(&body);
                if out.write_all(resp.as_bytes()).is_err() {
                    return;
                }
            }
            Reply::Forward { to, lose_answer } => {
                let Some(answer) = forward(to, &req) else {
                    return;
                };
                if lose_answer || out.write_all(&answer).is_err() {
                    return;
                }
            }
            Reply::Hang => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                return;
            }
        }
    }
}

/// Sends `req` to `to` on a new connection (`connection: close`) and returns the raw answer.
fn forward(to: SocketAddr, req: &Received) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut raw = String::new();
    for (i, l) in req.head.iter().enumerate() {
        if i > 0 && l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        raw.push_str(l);
        raw.push_str("\r\n");
    }
    raw.push_str("connection: close\r\n\r\n");
    s.write_all(raw.as_bytes()).ok()?;
    s.write_all(&req.body).ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}
