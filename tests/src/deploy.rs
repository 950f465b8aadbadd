//! Helpers for `tests/tests/deploy.rs`: the packaged OCI images, a local registry, skopeo, the
//! manifest validator and a plain HTTP client that shows headers. As everywhere in this crate, a
//! missing component is a panic that says how to install it (scripts/test installs them all).

use super::{PortHold, Proc, artifact, repo_root, wait_for};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// The release collector (the binary the image holds), checked fresh against its sources.
pub fn release_collector_bin() -> PathBuf {
    artifact("target/release/meshlog", "cargo build --release -p meshlog")
}

/// An executable on PATH, or a panic naming the Debian package that has it.
pub fn require_tool(name: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` not found on PATH. Install it: apt-get install -y {debian_package} \
                 (scripts/test does, through ensure_deploy_tools in scripts/lib.sh)"
            )
        })
}

/// The `.venv` Python with kubernetes-validate (and so jsonschema and PyYAML) importable.
pub fn venv_python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import kubernetes_validate, jsonschema, yaml"])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} cannot import kubernetes_validate: run scripts/test (it installs it), or \
         `python3 -m venv .venv && .venv/bin/pip install kubernetes-validate==1.37.0`",
        py.display()
    );
    py
}

/// Runs a command and returns its output, panicking with stderr when it fails.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({cmd:?}): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `skopeo ARGS...`, which must succeed.
pub fn skopeo(args: &[&str]) -> Output {
    let bin = require_tool("skopeo", "skopeo");
    run_ok(
        &format!("skopeo {}", args.join(" ")),
        Command::new(bin).args(args),
    )
}

/// Runs `scripts/package --no-build --out OUT` and returns the `images.json` it wrote.
pub fn package(out: &Path) -> serde_json::Value {
    // Both inputs must exist and be fresh; scripts/package would only check that they exist.
    let _ = super::wasm_path();
    let _ = release_collector_bin();
    run_ok(
        "scripts/package",
        Command::new(repo_root().join("scripts/package"))
            .arg("--no-build")
            .arg("--out")
            .arg(out),
    );
    let text = std::fs::read_to_string(out.join("images.json")).expect("images.json written");
    serde_json::from_str(&text).expect("images.json is JSON")
}

/// One packaging per test process, shared by the tests that only read it: the layouts and
/// images.json under `target/deploy-test/<pid>` (removed and rewritten each run).
pub struct Packaged {
    /// The output directory.
    pub dir: PathBuf,
    /// Its images.json.
    pub images: serde_json::Value,
}

/// The shared packaging (see [`Packaged`]).
pub fn packaged() -> &'static Packaged {
    static P: OnceLock<Packaged> = OnceLock::new();
    P.get_or_init(|| {
        let base = repo_root().join("target/deploy-test");
        // Earlier runs' output: nothing else writes here.
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("create target/deploy-test");
        let images = package(&dir);
        Packaged { dir, images }
    })
}

/// A local OCI registry (Debian's docker-registry, the CNCF distribution registry) on a free
/// loopback port with its own storage directory and configuration file; killed on drop.
pub struct Registry {
    /// The process.
    pub proc: Proc,
    /// Where it listens (plain HTTP).
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts it and waits until `GET /v2/` answers 200.
    pub fn start() -> Self {
        let bin = require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().expect("registry temp dir");
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        // Held until just before the registry binds it (it cannot be told to bind port 0).
        let port = PortHold::new().release();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: meshlog-test-only\n",
                storage.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config);
        let mut proc = Proc::spawn("docker-registry", cmd);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let up = wait_for(Duration::from_secs(20), || {
            if let Some(status) = proc.wait_exit(Duration::ZERO) {
                panic!("docker-registry exited ({status}):\n{}", proc.output());
            }
            http_get(addr, "/v2/", &[]).ok().filter(|r| r.status == 200)
        });
        assert!(
            up.is_some(),
            "docker-registry did not answer GET /v2/ on {addr}:\n{}",
            proc.output()
        );
        Registry {
            proc,
            addr,
            _dir: dir,
        }
    }

    /// `docker://127.0.0.1:PORT/NAME`, for skopeo.
    pub fn docker_ref(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.addr)
    }
}

/// An HTTP/1.1 response with its headers (names lower-cased) and de-chunked body.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` with extra headers, `Connection: close`, read to EOF.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    http_call(addr, "GET", path, headers, b"")
}

/// One HTTP/1.1 request with `Connection: close`, read to EOF.
pub fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| std::io::Error::other("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| std::io::Error::other(format!("bad chunk size: {e}")))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(std::io::Error::other("truncated chunk"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Lowercase hex sha256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Unpacks a gzip'd tar layer into `into` with the system `tar`, keeping numeric owners and
/// modes (as a container runtime does; owners need root).
pub fn unpack_tar_gz(blob: &[u8], into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let archive = into.with_extension("tar.gz");
    std::fs::write(&archive, blob).unwrap();
    run_ok(
        "tar -xzpf (as root: keeps owners and modes)",
        Command::new("tar")
            .arg("--numeric-owner")
            .arg("-xzpf")
            .arg(&archive)
            .arg("-C")
            .arg(into),
    );
    std::fs::remove_file(&archive).unwrap();
}
