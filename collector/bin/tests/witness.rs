//! Witnessed checkpoints and signed-by-default, on the real binary: `meshlog witness` cosigns an
//! honest log's checkpoints (kept in `cosigned.log`, required by `verify --witness`), refuses a
//! forked or rolled-back log with 409, and its state catches a log rolled back or deleted
//! whole (`verify --witness-state`); `serve` without a key makes one beside the data directory,
//! signs with it, and a store whose only segment was deleted no longer verifies INTACT.

use super::*;

/// `meshlog keygen --out DIR --name NAME`: (signing key file, verifier key file).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let out = run(&["keygen", "--out", dir.to_str().unwrap(), "--name", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.join("signing.key"), dir.join("verifier.pub"))
}

fn key_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// A minimal HTTP/1.1 request; returns status, headers and body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        head,
        String::from_utf8_lossy(&buf[head_end + 4..]).into_owned(),
    )
}

/// A running witness: its process, address and state directory.
struct WitnessProc {
    proc: Proc,
    addr: SocketAddr,
    state: PathBuf,
}

fn start_witness(tmp: &Path, key: &Path, log: &Path) -> WitnessProc {
    let state = tmp.join("witness-state");
    let mut proc = Proc::spawn(&[
        "witness",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ]);
    let addr = proc.addr();
    WitnessProc { proc, addr, state }
}

/// A configuration: `data`, the log's signing key, checkpoints every second, asking `witness`.
fn config(
    tmp: &Path,
    name: &str,
    data: &Path,
    signing: &Path,
    witness: SocketAddr,
    wkey: &Path,
) -> PathBuf {
    let cfg = tmp.join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\n[integrity]\nsigning_key = {signing:?}\n\
             checkpoint_interval_s = 1\n[[witness.ask]]\nurl = \"http://{}\"\npublic_key = \"{}\"\n",
            witness,
            key_text(wkey)
        ),
    )
    .unwrap();
    cfg
}

/// Runs `serve --config cfg`, posts one batch per id list, waits for the witness to cosign,
/// stops (the shutdown checkpoint is pushed too); returns the stderr lines.
fn serve_batches(cfg: &Path, batches: &[&[&str]], expect: &str) -> Vec<String> {
    let mut serve = Proc::spawn(&["serve", "--config", cfg.to_str().unwrap()]);
    let addr = serve.addr();
    for ids in batches {
        let (status, body) = http_post(addr, JSON, &otlp_json("svc", ids));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    serve.wait_line(expect);
    assert_eq!(serve.terminate().code(), Some(0));
    // The last lines, written after the stop.
    while let Ok(l) = serve.lines.recv_timeout(Duration::from_millis(200)) {
        serve.seen.push(l);
    }
    serve.seen.clone()
}

fn verify(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let out = run(&all);
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// The size the witness cosigned for `origin`, over HTTP (`GET /checkpoint/<origin>`).
fn witnessed_size(w: SocketAddr, origin: &str) -> u64 {
    let (status, _, body) = http(w, "GET", &format!("/checkpoint/{origin}"), b"");
    assert_eq!(status, 200, "{body}");
    body.lines().nth(1).unwrap().parse().unwrap()
}

struct Setup {
    tmp: tempfile::TempDir,
    data: PathBuf,
    log_pub: PathBuf,
    w_pub: PathBuf,
    other_pub: PathBuf,
    witness: WitnessProc,
    cfg: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let (signing, log_pub) = keygen(&tmp.path().join("log-keys"), "example.com/log");
    let (w_key, w_pub) = keygen(&tmp.path().join("w-keys"), "example.com/witness");
    let (_, other_pub) = keygen(&tmp.path().join("other-keys"), "example.com/witness2");
    let witness = start_witness(tmp.path(), &w_key, &log_pub);
    let data = tmp.path().join("data");
    let cfg = config(tmp.path(), "log", &data, &signing, witness.addr, &w_pub);
    Setup {
        tmp,
        data,
        log_pub,
        w_pub,
        other_pub,
        witness,
        cfg,
    }
}

#[test]
fn an_honest_log_is_cosigned_and_verify_witness_names_a_missing_witness() {
    let st = setup();
    serve_batches(
        &st.cfg,
        &[&["a1"], &["a2", "a3"]],
        "checkpoint cosigned by witness",
    );
    assert!(st.data.join("cosigned.log").exists());
    assert_eq!(witnessed_size(st.witness.addr, "example.com/log"), 2);

    let (code, out) = verify(&[
        "--data-dir",
        s(&st.data),
        "--public-key",
        s(&st.log_pub),
        "--witness",
        s(&st.w_pub),
        "--witness-state",
        s(&st.witness.state),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("INTACT"), "{out}");
    assert!(
        out.contains("cosigned by witness example.com/witness+"),
        "{out}"
    );

    // A witness that never cosigned is required: NOT INTACT, and it is named.
    let (code, out) = verify(&[
        "--data-dir",
        s(&st.data),
        "--public-key",
        s(&st.log_pub),
        "--witness",
        s(&st.w_pub),
        "--witness",
        s(&st.other_pub),
        "--json",
    ]);
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(out.lines().next().unwrap())
        .unwrap_or_else(|_| serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap());
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{out}");
    assert_eq!(findings[0]["kind"], "not_witnessed");
    let msg = findings[0]["message"].as_str().unwrap();
    assert!(msg.contains("example.com/witness2+"), "{msg}");

    // Removing the cosignatures is caught too.
    std::fs::remove_file(st.data.join("cosigned.log")).unwrap();
    let (code, out) = verify(&["--data-dir", s(&st.data), "--witness", s(&st.w_pub)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not_witnessed") || out.contains("not cosigned by witness"),
        "{out}"
    );
}

#[test]
fn a_rolled_back_log_is_refused_and_caught_by_the_witness_state() {
    let st = setup();
    serve_batches(&st.cfg, &[&["r1"]], "checkpoint cosigned by witness");
    let backup = st.tmp.path().join("backup");
    copy_dir(&st.data, &backup);
    serve_batches(
        &st.cfg,
        &[&["r2"], &["r3"]],
        "checkpoint cosigned by witness",
    );
    assert_eq!(witnessed_size(st.witness.addr, "example.com/log"), 3);

    // Whoever holds the disk and the key puts the old copy back and starts the collector.
    std::fs::remove_dir_all(&st.data).unwrap();
    copy_dir(&backup, &st.data);
    let lines = serve_batches(&st.cfg, &[], "witness refused the checkpoint");
    assert!(
        lines.iter().any(|l| l.contains("it holds 3 leaves")),
        "{}",
        lines.join("\n")
    );
    // The store alone looks fine; the witness's state does not.
    let (code, out) = verify(&["--data-dir", s(&st.data), "--public-key", s(&st.log_pub)]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify(&[
        "--data-dir",
        s(&st.data),
        "--public-key",
        s(&st.log_pub),
        "--witness-state",
        s(&st.witness.state),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("behind_witness"), "{out}");
    assert!(
        out.contains("cosigned 3 leaves of log example.com/log; this store has 1"),
        "{out}"
    );
    // The witness kept what it had.
    assert_eq!(witnessed_size(st.witness.addr, "example.com/log"), 3);
}

#[test]
fn a_log_deleted_whole_is_caught_by_the_witness_state() {
    let st = setup();
    serve_batches(
        &st.cfg,
        &[&["d1"], &["d2"]],
        "checkpoint cosigned by witness",
    );
    std::fs::remove_dir_all(&st.data).unwrap();
    // Without the data directory, the witness alone still says what the log had reached.
    let (code, out) = verify(&[
        "--data-dir",
        s(&st.data),
        "--public-key",
        s(&st.log_pub),
        "--witness-state",
        s(&st.witness.state),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cosigned 2 leaves of log example.com/log: the log was deleted whole"),
        "{out}"
    );
    // A fresh log started in its place is refused by the witness and fails verification.
    let lines = serve_batches(&st.cfg, &[], "witness refused the checkpoint");
    assert!(
        lines.iter().any(|l| l.contains("it holds 2 leaves")),
        "{}",
        lines.join("\n")
    );
    let (code, out) = verify(&[
        "--data-dir",
        s(&st.data),
        "--public-key",
        s(&st.log_pub),
        "--witness-state",
        s(&st.witness.state),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("behind_witness"), "{out}");
}

#[test]
fn a_forked_log_is_refused_with_409_and_the_witness_size() {
    let mut st = setup();
    serve_batches(&st.cfg, &[&["f1"]], "checkpoint cosigned by witness");
    let fork = st.tmp.path().join("fork");
    copy_dir(&st.data, &fork);
    serve_batches(
        &st.cfg,
        &[&["f2"], &["f3"]],
        "checkpoint cosigned by witness",
    );
    // The copy grows on its own, other records, same key: a fork.
    let fork_cfg = st.tmp.path().join("fork.toml");
    let text = std::fs::read_to_string(&st.cfg).unwrap().replace(
        &format!("data_dir = {:?}", st.data),
        &format!("data_dir = {fork:?}"),
    );
    std::fs::write(&fork_cfg, text).unwrap();
    let lines = serve_batches(
        &fork_cfg,
        &[&["x2"], &["x3"]],
        "witness refused the checkpoint",
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("checkpoint cosigned by witness")),
        "{}",
        lines.join("\n")
    );
    // The fork's latest checkpoint, sent as the witness protocol says: 409 with its size.
    let cps = std::fs::read(fork.join("checkpoints.log")).unwrap();
    let note = match meshlog_format::checkpoint_log::parse(&cps).pop().unwrap() {
        meshlog_format::checkpoint_log::Item::Entry(e) => e.note,
        other => panic!("{other:?}"),
    };
    assert!(String::from_utf8_lossy(&note).contains("\n3\n"));
    let mut body = b"old 3\n\n".to_vec();
    body.extend_from_slice(&note);
    let (status, head, text) = http(st.witness.addr, "POST", "/add-checkpoint", &body);
    assert_eq!(status, 409, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/x.tlog.size"),
        "{head}"
    );
    assert_eq!(text, "3\n");
    // The original verifies against the witness; the fork does not.
    let args = |d: &Path| {
        verify(&[
            "--data-dir",
            s(d),
            "--public-key",
            s(&st.log_pub),
            "--witness",
            s(&st.w_pub),
            "--witness-state",
            s(&st.witness.state),
        ])
    };
    let (code, out) = args(&st.data);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = args(&fork);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("witness_mismatch"), "{out}");
    assert!(out.contains("not_witnessed"), "{out}");
    st.witness.proc.wait_line("add-checkpoint refused");
}

#[test]
fn serve_without_a_key_makes_one_beside_the_data_directory_and_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keys = tmp.path().join("data-keys");
    let mut serve = Proc::spawn(&["serve", "--data-dir", s(&data), "--listen", "127.0.0.1:0"]);
    let made = serve.wait_line("verifier key: meshlog/");
    let printed = made
        .split("verifier key: ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let addr = serve.addr();
    assert_eq!(printed, key_text(&keys.join("verifier.pub")));
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join("signing.key")), 0o600);
    assert!(!data.join("signing.key").exists());
    for ids in [&["k1"][..], &["k2", "k3"]] {
        assert_eq!(http_post(addr, JSON, &otlp_json("svc", ids)).0, 200);
    }
    assert_eq!(serve.terminate().code(), Some(0));
    let pubkey = keys.join("verifier.pub");
    let (code, out) = verify(&["--data-dir", s(&data), "--public-key", s(&pubkey)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("INTACT"), "{out}");

    // The next start uses the same key and makes none.
    let mut serve = Proc::spawn(&["serve", "--data-dir", s(&data), "--listen", "127.0.0.1:0"]);
    serve.wait_line("using the key made on first start");
    serve.addr();
    assert_eq!(serve.terminate().code(), Some(0));
    assert!(
        !serve
            .seen
            .iter()
            .any(|l| l.contains("made a checkpoint signing key"))
    );
    assert_eq!(key_text(&pubkey), printed);

    // The only segment deleted: no longer INTACT, with or without the key.
    let segments: Vec<_> = std::fs::read_dir(data.join(SEGMENTS_DIR))
        .unwrap()
        .collect();
    assert_eq!(segments.len(), 1);
    std::fs::remove_file(segments[0].as_ref().unwrap().path()).unwrap();
    let (code, out) = verify(&["--data-dir", s(&data)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("truncated"), "{out}");
    let (code, out) = verify(&["--data-dir", s(&data), "--public-key", s(&pubkey)]);
    assert_eq!(code, Some(1), "{out}");
    // Even with the checkpoints gone too, tree.state still says how many leaves there were.
    std::fs::remove_file(data.join("checkpoints.log")).unwrap();
    let (code, out) = verify(&["--data-dir", s(&data)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("tree.state says the writer committed 2 leaves; the store ends after 0"),
        "{out}"
    );
}

#[test]
fn a_collector_serves_the_witness_endpoint_for_its_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_signing, a_pub) = keygen(&tmp.path().join("a-keys"), "a.example/log");
    let (w_key, w_pub) = keygen(&tmp.path().join("b-witness-keys"), "b.example/witness");
    // Collector B witnesses A's log.
    let b_state = tmp.path().join("b-witness-state");
    let b_cfg = tmp.path().join("b.toml");
    std::fs::write(
        &b_cfg,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n[witness.serve]\nlisten = \"127.0.0.1:0\"\n\
             key_file = {w_key:?}\nstate_dir = {b_state:?}\nlogs = [\"{}\"]\n",
            tmp.path().join("b-data"),
            key_text(&a_pub)
        ),
    )
    .unwrap();
    let mut b = Proc::spawn(&["serve", "--config", s(&b_cfg)]);
    let line = b.wait_line("witness on ");
    let b_addr: SocketAddr = line
        .split("witness on ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let a_cfg = config(
        tmp.path(),
        "a",
        &tmp.path().join("a-data"),
        &a_signing,
        b_addr,
        &w_pub,
    );
    serve_batches(
        &a_cfg,
        &[&["p1"], &["p2"]],
        "checkpoint cosigned by witness",
    );
    assert_eq!(witnessed_size(b_addr, "a.example/log"), 2);
    let (code, out) = verify(&[
        "--data-dir",
        s(&tmp.path().join("a-data")),
        "--public-key",
        s(&a_pub),
        "--witness",
        s(&w_pub),
        "--witness-state",
        s(&b_state),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("cosigned by witness b.example/witness+"),
        "{out}"
    );
    assert_eq!(b.terminate().code(), Some(0));
}

#[test]
fn a_file_where_the_keys_directory_goes_stops_serve_with_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::write(tmp.path().join("data-keys"), b"not a directory").unwrap();
    let out = run(&["serve", "--data-dir", s(&data), "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "data-keys (where serve keeps the key it makes) exists and is not a directory"
        ),
        "{err}"
    );
}

/// Polls the witness until it holds `size` leaves of `origin` (`GET /checkpoint/<origin>`).
fn wait_witnessed(w: SocketAddr, origin: &str, size: u64) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = http(w, "GET", &format!("/checkpoint/{origin}"), b"");
        let held = (status == 200)
            .then(|| body.lines().nth(1).and_then(|l| l.parse::<u64>().ok()))
            .flatten();
        if held == Some(size) {
            return;
        }
        assert!(
            Instant::now() < end,
            "the witness holds {held:?} leaves of {origin}, not {size}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `serve` with `[retention]` of two classes (`short`: service `checkout`; `default`: the rest)
/// asking the witness: posts `(short ids, default ids)` per batch, waits until the witness holds
/// `sizes` (short, default) of the two class logs, stops.
fn serve_classes(cfg: &Path, w: SocketAddr, batches: &[(&[&str], &[&str])], sizes: (u64, u64)) {
    let mut serve = Proc::spawn(&["serve", "--config", s(cfg)]);
    let addr = serve.addr();
    for (short, default) in batches {
        for (svc, ids) in [("checkout", short), ("svc", default)] {
            if !ids.is_empty() {
                let (status, body) = http_post(addr, JSON, &otlp_json(svc, ids));
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            }
        }
    }
    wait_witnessed(w, "example.com/log/short", sizes.0);
    wait_witnessed(w, "example.com/log/default", sizes.1);
    assert_eq!(serve.terminate().code(), Some(0));
}

/// The `verify --json` report of a data directory with classes, and the store of `class`.
fn class_report<'a>(report: &'a Value, class: &str) -> &'a Value {
    report["stores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == class)
        .unwrap_or_else(|| panic!("no store of class {class}: {report:#}"))
}

fn json_report(out: &str) -> Value {
    serde_json::from_str(&out[..out.rfind('}').unwrap() + 1]).unwrap()
}

#[test]
fn each_retention_class_log_is_witnessed_and_one_rolled_back_or_deleted_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (signing, log_pub) = keygen(&tmp.path().join("log-keys"), "example.com/log");
    let (w_key, w_pub) = keygen(&tmp.path().join("w-keys"), "example.com/witness");
    let witness = start_witness(tmp.path(), &w_key, &log_pub);
    let data = tmp.path().join("data");
    let cfg = config(tmp.path(), "log", &data, &signing, witness.addr, &w_pub);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "[retention]\ndefault_days = 400\n[[retention.classes]]\nname = \"short\"\ndays = 30\n\
         match = { \"service.name\" = [\"checkout\"] }\n",
    );
    std::fs::write(&cfg, text).unwrap();

    // Both classes get records; the witness cosigns each class log under its own origin.
    serve_classes(&cfg, witness.addr, &[(&["s1"], &["d1"])], (1, 1));
    let backup = tmp.path().join("short-backup");
    copy_dir(&data.join("classes/short"), &backup);
    serve_classes(
        &cfg,
        witness.addr,
        &[(&["s2"], &["d2"]), (&["s3"], &[])],
        (3, 2),
    );
    for class in ["short", "default"] {
        assert!(
            data.join("classes")
                .join(class)
                .join("cosigned.log")
                .exists(),
            "{class}"
        );
    }
    let witnessed = [
        "--data-dir",
        s(&data),
        "--public-key",
        s(&log_pub),
        "--witness",
        s(&w_pub),
        "--witness-state",
        s(&witness.state),
    ];
    let (code, out) = verify(&witnessed);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("the latest checkpoint of retention class short is cosigned by witness example.com/witness+"),
        "{out}"
    );
    assert!(
        out.contains("the latest checkpoint of retention class default is cosigned by witness example.com/witness+"),
        "{out}"
    );
    let mut json = witnessed.to_vec();
    json.push("--json");
    let (code, out) = verify(&json);
    assert_eq!(code, Some(0), "{out}");
    let report = json_report(&out);
    assert_eq!(class_report(&report, "short")["records"], 3, "{report:#}");
    assert_eq!(class_report(&report, "default")["records"], 2, "{report:#}");
    // Each class log is signed under its own origin.
    let cps = std::fs::read_to_string(data.join("classes/short/checkpoints.log")).unwrap();
    assert!(cps.contains("example.com/log/short\n"), "{cps}");

    // Whoever holds the disk and the key puts the short class's old copy back: the store
    // alone verifies, the witness's state names the class rolled back; the other class is
    // still fine.
    std::fs::remove_dir_all(data.join("classes/short")).unwrap();
    copy_dir(&backup, &data.join("classes/short"));
    let (code, out) = verify(&["--data-dir", s(&data), "--public-key", s(&log_pub)]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = verify(&json);
    assert_eq!(code, Some(1), "{out}");
    let report = json_report(&out);
    let short = class_report(&report, "short");
    assert_eq!(short["intact"], false, "{report:#}");
    let kinds: Vec<&str> = short["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    // Its old latest checkpoint was cosigned then: only the witness's state shows the rollback.
    assert_eq!(kinds, ["behind_witness"], "{report:#}");
    let behind = short["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "behind_witness")
        .unwrap();
    assert!(
        behind["message"].as_str().unwrap().contains(
            "cosigned 3 leaves of log example.com/log/short (retention class short); this store has 1"
        ),
        "{behind:#}"
    );
    assert_eq!(
        class_report(&report, "default")["intact"],
        true,
        "{report:#}"
    );
    // A restart of the rolled-back collector is refused by the witness for that class.
    let mut serve = Proc::spawn(&["serve", "--config", s(&cfg)]);
    serve.addr();
    let refused = serve.wait_line("witness refused the checkpoint");
    assert!(refused.contains("example.com/log/short"), "{refused}");
    assert_eq!(serve.terminate().code(), Some(0));
    wait_witnessed(witness.addr, "example.com/log/short", 3);

    // The short class deleted whole: the witness's state still names it.
    std::fs::remove_dir_all(data.join("classes/short")).unwrap();
    let (code, out) = verify(&witnessed);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "cosigned 3 leaves of log example.com/log/short (retention class short); this store has 0"
        ),
        "{out}"
    );
    // Every class directory gone, the data directory left: each class log is still named.
    std::fs::remove_dir_all(data.join("classes/default")).unwrap();
    let (code, out) = verify(&witnessed);
    assert_eq!(code, Some(1), "{out}");
    for (n, class) in [(3, "short"), (2, "default")] {
        assert!(
            out.contains(&format!(
                "cosigned {n} leaves of log example.com/log/{class} (retention class {class}); \
                 this store has 0"
            )),
            "{out}"
        );
    }
    // And with the whole data directory gone, each class log the witness holds is named.
    std::fs::remove_dir_all(&data).unwrap();
    let (code, out) = verify(&witnessed);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("cosigned 3 leaves of log example.com/log/short: the log was deleted whole"),
        "{out}"
    );
    assert!(
        out.contains("cosigned 2 leaves of log example.com/log/default: the log was deleted whole"),
        "{out}"
    );
}
