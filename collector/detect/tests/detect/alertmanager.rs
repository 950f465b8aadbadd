//! A real Prometheus Alertmanager (Debian `prometheus-alertmanager`) on a free port, with its own
//! storage and no cluster listener. Shared by path with the `meshlog` binary's detection tests
//! (`collector/bin/tests/detect.rs`), so it uses only what both test crates have (std, tempfile,
//! reqwest's blocking client, serde_json) and no crate depends on the other.

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bin() -> String {
    for name in ["prometheus-alertmanager", "alertmanager"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name.into();
        }
    }
    panic!(
        "Prometheus Alertmanager not found: install the Debian package prometheus-alertmanager \
         (scripts/test does it through ensure_alertmanager in scripts/lib.sh)"
    );
}

impl Alertmanager {
    /// Starts one (one receiver, `group_wait` 1s) and waits until it is ready.
    pub fn start() -> Alertmanager {
        let bin = bin();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: sink\n  group_wait: 1s\nreceivers:\n  - name: sink\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(30);
        while !reqwest::blocking::get(format!("{}/-/ready", am.url))
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < end, "alertmanager did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    /// Every alert it holds (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        let v: Value = reqwest::blocking::get(format!("{}/api/v2/alerts", self.url))
            .unwrap()
            .json()
            .unwrap();
        v.as_array().cloned().unwrap_or_default()
    }
}
