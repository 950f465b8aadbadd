//! Deployable in a real mesh, proven as far as one machine without Docker or Kubernetes allows:
//!
//! - `scripts/package` writes the filter (Istio's "oci" and "compat" Wasm variants) and the
//!   collector as OCI images, reproducibly, holding exactly the built artifacts;
//! - a local registry (Debian's docker-registry) takes them from skopeo, and what comes back
//!   (skopeo inspect, a pull, and a fetch that follows Istio's imagefetcher rules) has the
//!   module's exact bytes, the expected media types and the digest the WasmPlugin pins;
//! - the collector image's root file system, pulled back and unpacked, runs as its pod would
//!   (chroot as uid 65532, the ConfigMap's configuration, keys where the Secrets mount them):
//!   /healthz, a stored batch, an intact store;
//! - every Kubernetes and Istio manifest validates offline (Kubernetes schemas, Istio's CRD
//!   schemas kept in deploy/schemas/) and the manifests agree with each other;
//! - every Envoy bootstrap in envoy-config/, and the Envoy configuration inside the Istio
//!   EnvoyFilter, passes `envoy --mode validate`.
//!
//! What only a real cluster shows (admission, CEL rules, istio-agent's fetch, mTLS between pods)
//! is listed in docs/deploy-istio.md.

use meshlog_e2e::deploy::{
    HttpResponse, Registry, http_call, http_get, package, packaged, release_collector_bin,
    require_tool, run_ok, sha256_hex, skopeo, unpack_tar_gz, venv_python,
};
use meshlog_e2e::{PortHold, Proc, envoy_bin, native_path, repo_root, wasm_path};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_WASM_CONFIG: &str = "application/vnd.module.wasm.config.v1+json";
const MT_WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {ptr} in {v}"))
}

fn hex_of(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"))
}

/// A blob of an OCI image layout.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let p = layout.join("blobs/sha256").join(hex_of(digest));
    let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        sha256_hex(&b),
        hex_of(digest),
        "blob {} is corrupt",
        p.display()
    );
    b
}

/// The manifest a layout's index.json names `reference`, as (raw bytes, parsed).
fn layout_manifest(layout: &Path, reference: &str) -> (Vec<u8>, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m.pointer("/annotations/org.opencontainers.image.ref.name") == Some(&json!(reference))
        })
        .unwrap_or_else(|| {
            panic!(
                "no ref {reference} in {}/index.json: {index}",
                layout.display()
            )
        });
    let raw = blob(layout, s(desc, "/digest"));
    let parsed = serde_json::from_slice(&raw).unwrap();
    (raw, parsed)
}

fn layer_media_types(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| s(l, "/mediaType").to_owned())
        .collect()
}

/// The files of a gzip'd tar, by name, read with the system tar into a temp dir.
fn tar_files(gz: &[u8]) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("x");
    unpack_tar_gz(gz, &root);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        if e.path().is_file() {
            out.push((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            ));
        }
    }
    out
}

/// The Wasm module in a manifest, chosen by the rules of Istio's `pkg/wasm/imagefetcher.go`
/// (PrepareFetch): first the "compat" variant (exactly one layer, tar+gzip, a file named
/// plugin.wasm), else the "oci" variant (exactly two layers, one of media type
/// application/vnd.module.wasm.content.layer.v1+wasm, its bytes the module as is). Istio then
/// requires the Wasm magic number.
fn istio_extract(manifest: &Value, fetch: &dyn Fn(&str) -> Vec<u8>) -> Result<Vec<u8>, String> {
    let layers = manifest["layers"].as_array().ok_or("no layers")?;
    let compat = (|| {
        if layers.len() != 1 {
            return Err(format!(
                "number of layers must be 1 but got {}",
                layers.len()
            ));
        }
        if s(&layers[0], "/mediaType") != MT_LAYER_GZIP {
            return Err(format!(
                "invalid media type {}",
                s(&layers[0], "/mediaType")
            ));
        }
        tar_files(&fetch(s(&layers[0], "/digest")))
            .into_iter()
            .find(|(name, _)| name == "plugin.wasm")
            .map(|(_, b)| b)
            .ok_or_else(|| "plugin.wasm not found in the archive".to_owned())
    })();
    let module = compat.or_else(|compat_err| {
        if layers.len() != 2 {
            return Err(format!(
                "compat: {compat_err}; oci: number of layers must be 2 but got {}",
                layers.len()
            ));
        }
        let wasm = layers
            .iter()
            .find(|l| s(l, "/mediaType") == MT_WASM_LAYER)
            .ok_or_else(|| {
                format!("compat: {compat_err}; oci: no layer of type {MT_WASM_LAYER}")
            })?;
        Ok(fetch(s(wasm, "/digest")))
    })?;
    if module.len() < 8 || &module[..4] != b"\0asm" {
        return Err("fetched Wasm binary is invalid".into());
    }
    Ok(module)
}

#[test]
fn package_is_reproducible_and_holds_exactly_the_built_artifacts() {
    let p = packaged();
    let module = std::fs::read(wasm_path()).unwrap();
    let binary = std::fs::read(release_collector_bin()).unwrap();
    let i = &p.images;
    let tag = s(i, "/tag");
    assert_eq!(s(i, "/filter/module_sha256"), sha256_hex(&module));
    assert_eq!(s(i, "/collector/binary_sha256"), sha256_hex(&binary));

    // The same inputs give the same digests: what a WasmPlugin pins can be rebuilt.
    let again = tempfile::tempdir().unwrap();
    let second = package(again.path());
    for ptr in [
        "/filter/oci/manifest_digest",
        "/filter/compat/manifest_digest",
        "/collector/manifest_digest",
    ] {
        assert_eq!(
            s(i, ptr),
            s(&second, ptr),
            "{ptr} differs between two builds"
        );
    }

    // The oci variant: config and second layer the Wasm config, first layer the module as is.
    let filter = p.dir.join("filter");
    let (raw, m) = layout_manifest(&filter, tag);
    assert_eq!(
        sha256_hex(&raw),
        hex_of(s(i, "/filter/oci/manifest_digest"))
    );
    assert_eq!(s(&m, "/mediaType"), MT_MANIFEST);
    assert_eq!(s(&m, "/config/mediaType"), MT_WASM_CONFIG);
    assert_eq!(layer_media_types(&m), [MT_WASM_LAYER, MT_WASM_CONFIG]);
    assert_eq!(blob(&filter, s(&m, "/layers/0/digest")), module);
    let wasm_config: Value =
        serde_json::from_slice(&blob(&filter, s(&m, "/config/digest"))).unwrap();
    assert_eq!(wasm_config["config"]["rootIds"], json!(["meshlog"]));
    assert!(
        wasm_config["abiVersions"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "the module's proxy-wasm ABI was not found: {wasm_config}"
    );

    // The compat variant: one tar+gzip layer with plugin.wasm, the module.
    let (_, c) = layout_manifest(&filter, &format!("{tag}-compat"));
    assert_eq!(s(&c, "/config/mediaType"), MT_IMAGE_CONFIG);
    assert_eq!(layer_media_types(&c), [MT_LAYER_GZIP]);
    let files = tar_files(&blob(&filter, s(&c, "/layers/0/digest")));
    assert_eq!(files.len(), 1, "the compat layer holds plugin.wasm only");
    assert_eq!(files[0].0, "plugin.wasm");
    assert_eq!(files[0].1, module);
}

#[test]
fn filter_images_round_trip_through_a_registry_as_istio_would_fetch_them() {
    let p = packaged();
    let i = &p.images;
    let tag = s(i, "/tag");
    let module = std::fs::read(wasm_path()).unwrap();
    let registry = Registry::start();
    let layout = p.dir.join("filter");

    for (variant, reference) in [("oci", tag.to_owned()), ("compat", format!("{tag}-compat"))] {
        let want_digest = s(i, &format!("/filter/{variant}/manifest_digest"));
        let dest = registry.docker_ref(&format!("meshlog/filter:{reference}"));
        skopeo(&[
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}:{reference}", layout.display()),
            &dest,
        ]);

        // What the registry serves is byte for byte the manifest scripts/package wrote.
        let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &dest]).stdout;
        assert_eq!(
            format!("sha256:{}", sha256_hex(&raw)),
            want_digest,
            "{variant}"
        );
        let manifest: Value = serde_json::from_slice(&raw).unwrap();
        let (want_config, want_layers) = match variant {
            "oci" => (MT_WASM_CONFIG, vec![MT_WASM_LAYER, MT_WASM_CONFIG]),
            _ => (MT_IMAGE_CONFIG, vec![MT_LAYER_GZIP]),
        };
        assert_eq!(s(&manifest, "/config/mediaType"), want_config, "{variant}");
        assert_eq!(layer_media_types(&manifest), want_layers, "{variant}");

        // Istio's fetch: the manifest by tag (its digest is what WasmPlugin.sha256 is compared
        // with), then the layer blobs, then its choice of variant.
        let path = format!("/v2/meshlog/filter/manifests/{reference}");
        let accept = [("Accept", MT_MANIFEST)];
        let r: HttpResponse = http_get(registry.addr, &path, &accept).unwrap();
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.header("docker-content-digest"),
            Some(want_digest),
            "{variant}"
        );
        let fetch = |digest: &str| {
            let r = http_get(
                registry.addr,
                &format!("/v2/meshlog/filter/blobs/{digest}"),
                &[],
            )
            .unwrap();
            assert_eq!(r.status, 200, "blob {digest}");
            r.body
        };
        let got = istio_extract(&serde_json::from_slice(&r.body).unwrap(), &fetch)
            .unwrap_or_else(|e| panic!("{variant}: Istio's rules refuse it: {e}"));
        assert_eq!(sha256_hex(&got), s(i, "/filter/module_sha256"), "{variant}");
        assert_eq!(got, module, "{variant}");

        // A pull back into a fresh layout gives the same module.
        let back = tempfile::tempdir().unwrap();
        skopeo(&[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:{reference}", back.path().display()),
        ]);
        let (raw_back, m) = layout_manifest(back.path(), &reference);
        assert_eq!(raw_back, raw, "{variant}: the pulled manifest differs");
        let pulled = if variant == "oci" {
            blob(back.path(), s(&m, "/layers/0/digest"))
        } else {
            tar_files(&blob(back.path(), s(&m, "/layers/0/digest")))
                .remove(0)
                .1
        };
        assert_eq!(
            sha256_hex(&pulled),
            s(i, "/filter/module_sha256"),
            "{variant}"
        );
    }

    // The emulation of Istio's rules does refuse what Istio refuses: the oci variant without
    // its second layer, and a compat layer without plugin.wasm.
    let (_, mut one_layer) = layout_manifest(&layout, tag);
    one_layer["layers"].as_array_mut().unwrap().truncate(1);
    let from_layout = |d: &str| blob(&layout, d);
    let err = istio_extract(&one_layer, &from_layout).unwrap_err();
    assert!(err.contains("number of layers must be 2"), "{err}");
    let (_, mut wrong) = layout_manifest(&layout, &format!("{tag}-compat"));
    wrong["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar");
    let err = istio_extract(&wrong, &from_layout).unwrap_err();
    assert!(err.contains("invalid media type"), "{err}");
}

/// The ConfigMap's meshlog.toml.
fn configmap_toml() -> String {
    let docs = docs_in(&repo_root().join("deploy/kubernetes/configmap.yaml"));
    s(&docs[0], "/data/meshlog.toml").to_owned()
}

/// `chroot [--userspec=65532:65532] ROOTFS ARGS...`: the image's file system as the process's
/// whole world, as in a container (without namespaces).
fn in_rootfs(rootfs: &Path, as_meshlog: bool, args: &[&str]) -> Command {
    let mut cmd = Command::new(require_tool("chroot", "coreutils"));
    if as_meshlog {
        cmd.arg("--userspec=65532:65532");
    }
    cmd.arg(rootfs)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin");
    cmd
}

#[test]
fn collector_image_runs_from_its_unpacked_root_filesystem_as_its_pod_would() {
    let p = packaged();
    let i = &p.images;
    let tag = s(i, "/tag");
    let uid = run_ok("id -u", Command::new("id").arg("-u")).stdout;
    assert_eq!(
        String::from_utf8_lossy(&uid).trim(),
        "0",
        "this test unpacks the image with its owners and runs it under chroot: run it as root \
         (CI and scripts/test do)"
    );

    // Through the registry and back, as a node would pull it.
    let registry = Registry::start();
    let dest = registry.docker_ref(&format!("meshlog/collector:{tag}"));
    skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        &format!("oci:{}:{tag}", p.dir.join("collector").display()),
        &dest,
    ]);
    let inspect: Value =
        serde_json::from_slice(&skopeo(&["inspect", "--tls-verify=false", &dest]).stdout).unwrap();
    assert_eq!(s(&inspect, "/Digest"), s(i, "/collector/manifest_digest"));
    assert_eq!(s(&inspect, "/Os"), "linux");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));
    let config: Value = serde_json::from_slice(
        &skopeo(&["inspect", "--tls-verify=false", "--config", &dest]).stdout,
    )
    .unwrap();
    let entrypoint: Vec<&str> = config["config"]["Entrypoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        entrypoint,
        [
            "/usr/local/bin/meshlog",
            "serve",
            "--config",
            "/etc/meshlog/meshlog.toml"
        ]
    );
    assert_eq!(s(&config, "/config/User"), "65532:65532");
    assert!(
        config["config"]["Volumes"]
            .get("/var/lib/meshlog")
            .is_some(),
        "{config}"
    );
    assert!(
        config["config"]["ExposedPorts"].get("4318/tcp").is_some(),
        "{config}"
    );

    let back = tempfile::tempdir().unwrap();
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:{tag}", back.path().display()),
    ]);
    let (_, m) = layout_manifest(back.path(), tag);
    assert_eq!(layer_media_types(&m), [MT_LAYER_GZIP]);
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    unpack_tar_gz(&blob(back.path(), s(&m, "/layers/0/digest")), &rootfs);

    // The tree: a non-root user, the data directory its own, the binary the release build.
    use std::os::unix::fs::MetadataExt;
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("meshlog:x:65532:65532:"), "{passwd}");
    let data = std::fs::metadata(rootfs.join("var/lib/meshlog")).unwrap();
    assert_eq!(
        (data.uid(), data.gid(), data.mode() & 0o7777),
        (65532, 65532, 0o700)
    );
    assert_eq!(
        sha256_hex(&std::fs::read(rootfs.join("usr/local/bin/meshlog")).unwrap()),
        s(i, "/collector/binary_sha256")
    );

    // As the pod: the ConfigMap at /etc/meshlog, the Secrets' files at their mount paths, group
    // 65532 and mode 0440 (the StatefulSet's fsGroup and defaultMode).
    std::fs::write(rootfs.join("etc/meshlog/meshlog.toml"), configmap_toml()).unwrap();
    let root_cmd = |args: &[&str]| {
        let what = format!("chroot ROOTFS {}", args.join(" "));
        run_ok(&what, &mut in_rootfs(&rootfs, false, args))
    };
    root_cmd(&[
        "meshlog",
        "keygen",
        "--out",
        "/etc/meshlog-keys/signing",
        "--name",
        "deploy.test/meshlog",
    ]);
    std::fs::create_dir_all(rootfs.join("etc/meshlog-keys/data")).unwrap();
    root_cmd(&[
        "meshlog",
        "keygen",
        "--data-key",
        "/etc/meshlog-keys/data/data.keys",
    ]);
    // The verifier key is not part of the Secret: the auditor keeps it.
    std::fs::create_dir_all(rootfs.join("auditor")).unwrap();
    std::fs::rename(
        rootfs.join("etc/meshlog-keys/signing/verifier.pub"),
        rootfs.join("auditor/verifier.pub"),
    )
    .unwrap();
    for (path, mode) in [
        ("", 0o755),
        ("signing", 0o750),
        ("data", 0o750),
        ("signing/signing.key", 0o440),
        ("data/data.keys", 0o440),
    ] {
        let f = rootfs.join("etc/meshlog-keys").join(path);
        std::os::unix::fs::chown(&f, Some(0), Some(65532)).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let as_meshlog = |args: &[&str]| {
        let what = format!("chroot --userspec=65532:65532 ROOTFS {}", args.join(" "));
        run_ok(&what, &mut in_rootfs(&rootfs, true, args))
    };
    as_meshlog(&[
        "meshlog",
        "validate",
        "--config",
        "/etc/meshlog/meshlog.toml",
    ]);

    // The entrypoint, with the one change a test needs: a loopback port instead of the pod's
    // 0.0.0.0:4318 (the Kubernetes `args` field would append it the same way).
    let mut args: Vec<&str> = entrypoint.clone();
    args.extend(["--listen", "127.0.0.1:0"]);
    let mut serve = Proc::spawn("collector (image)", in_rootfs(&rootfs, true, &args));
    let addr: SocketAddr = serve.listening_addr(Duration::from_secs(20));
    let health = http_get(addr, "/healthz", &[]).unwrap();
    assert_eq!(health.status, 200, "{}", serve.output());

    let batch = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "deploy-test"}}]},
        "scopeLogs": [{"scope": {"name": "deploy"}, "logRecords": [{
            "timeUnixNano": "1767225600000000000",
            "observedTimeUnixNano": "1767225600000000000",
            "severityNumber": 9,
            "eventName": "meshlog.http.access",
            "attributes": [
                {"key": "http.request.method", "value": {"stringValue": "POST"}},
                {"key": "url.path", "value": {"stringValue": "/api/image-rootfs-marker"}},
                {"key": "http.response.status_code", "value": {"intValue": "201"}}]}]}]}]});
    let body = serde_json::to_vec(&batch).unwrap();
    let r = http_call(
        addr,
        "POST",
        "/v1/logs",
        &[
            ("Content-Type", "application/json"),
            ("meshlog-batch-id", "deploy:0-0"),
        ],
        &body,
    )
    .unwrap();
    assert_eq!(
        r.status,
        200,
        "{} / {}",
        String::from_utf8_lossy(&r.body),
        serve.output()
    );

    serve.terminate();
    let status = serve.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "serve did not exit 0 on SIGTERM ({status:?}):\n{}",
        serve.output()
    );

    // Stored, encrypted at rest, signed, and owned by the unprivileged user.
    let q = as_meshlog(&["meshlog", "query", "--config", "/etc/meshlog/meshlog.toml"]).stdout;
    let q = String::from_utf8(q).unwrap();
    let records: Vec<Value> = q
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{q}");
    assert_eq!(records[0]["url.path"], "/api/image-rootfs-marker");
    assert_eq!(records[0]["resource.service.name"], "deploy-test");
    let verify = as_meshlog(&[
        "meshlog",
        "verify",
        "--data-dir",
        "/var/lib/meshlog",
        "--public-key",
        "/auditor/verifier.pub",
    ]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        report.contains("INTACT") && !report.contains("NOT INTACT"),
        "{report}"
    );
    let mut plain_hits = 0;
    let mut files = 0;
    let mut stack = vec![rootfs.join("var/lib/meshlog")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            assert_eq!(
                meta.uid(),
                65532,
                "{} is not the collector's",
                e.path().display()
            );
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                let b = std::fs::read(e.path()).unwrap();
                plain_hits += b.windows(12).filter(|w| w == b"rootfs-marke").count();
            }
        }
    }
    assert!(files > 0, "the data directory is empty");
    assert_eq!(
        plain_hits, 0,
        "the record is stored in plain text: the data key was not used"
    );

    // Backup and restore as docs/deploy-envoy.md describes it: a copy of the stopped
    // collector's data directory (owners and modes kept), checked with the auditor's public key,
    // readable with the data key alone.
    run_ok(
        "cp -a (backup)",
        Command::new("cp")
            .arg("-a")
            .arg(rootfs.join("var/lib/meshlog"))
            .arg(rootfs.join("var/lib/meshlog-restored")),
    );
    let verify = as_meshlog(&[
        "meshlog",
        "verify",
        "--data-dir",
        "/var/lib/meshlog-restored",
        "--public-key",
        "/auditor/verifier.pub",
    ]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        report.contains("INTACT") && !report.contains("NOT INTACT"),
        "{report}"
    );
    let restored = as_meshlog(&[
        "meshlog",
        "query",
        "--data-dir",
        "/var/lib/meshlog-restored",
        "--key-file",
        "/etc/meshlog-keys/data/data.keys",
    ]);
    assert_eq!(
        restored.stdout,
        q.as_bytes(),
        "the restored copy reads differently"
    );
}

/// Every YAML document in a file (documents separated by `---` lines).
fn docs_in(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else {
            let last = docs.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.iter()
        .map(|d| {
            serde_norway::from_str::<Value>(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    out
}

/// Every *.yaml below `dir`, sub-folders included (as the validator reads a folder).
fn yaml_files_deep(dir: &Path) -> Vec<PathBuf> {
    let mut out = yaml_files(dir);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(yaml_files_deep(&e.path()));
        }
    }
    out.sort();
    out
}

fn validate_manifests(paths: &[&Path]) -> (bool, String) {
    let out = Command::new(venv_python())
        .arg(repo_root().join("scripts/validate-manifests"))
        .args(paths)
        .current_dir(repo_root())
        .output()
        .expect("run scripts/validate-manifests");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_manifest_validates_offline_against_kubernetes_and_istio_schemas() {
    let root = repo_root();
    let k8s = root.join("deploy/kubernetes");
    let istio = root.join("envoy-config/istio");
    let (ok, report) = validate_manifests(&[&k8s, &istio]);
    assert!(ok, "{report}");
    // Every document of every file was checked, each kind against the right schemas.
    let mut want = 0;
    for f in yaml_files_deep(&k8s).into_iter().chain(yaml_files(&istio)) {
        for (n, d) in docs_in(&f).iter().enumerate() {
            want += 1;
            let rel = f.strip_prefix(&root).unwrap().display().to_string();
            let line = report
                .lines()
                .find(|l| l.starts_with(&format!("ok   {rel}#{n}:")))
                .unwrap_or_else(|| panic!("{rel}#{n} not reported valid:\n{report}"));
            let api = s(d, "/apiVersion");
            if api.contains("istio.io") {
                assert!(
                    line.contains("istio-1.27.0") && line.contains("istio-1.30.3"),
                    "{line}"
                );
            } else {
                assert!(line.contains("Kubernetes 1.29.0"), "{line}");
            }
        }
    }
    assert!(
        report.contains(&format!("{want} valid, 0 invalid")),
        "{report}"
    );
    let kinds: Vec<String> = yaml_files(&k8s)
        .iter()
        .chain(yaml_files(&istio).iter())
        .flat_map(|f| docs_in(f))
        .map(|d| s(&d, "/kind").to_owned())
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "PeerAuthentication",
        "AuthorizationPolicy",
        "WasmPlugin",
        "EnvoyFilter",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} among {kinds:?}");
    }
}

#[test]
fn the_validator_rejects_broken_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: meshlog, namespace: istio-system}
spec:
  url: oci://registry.example.com/meshlog/filter:0.1.0
  sha256: not-a-digest
  match:
    - mode: SEVER
  failStrategy: FAIL_RELOAD
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: meshlog-collector, namespace: meshlog}
spec:
  mtls: {mode: STRICT}
  mtsl: {mode: STRICT}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: meshlog-collector, namespace: meshlog}
spec:
  serviceName: meshlog-collector-pods
  replicas: one
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: c, image: i, livenessProbe: {httpGet: {path: /healthz}}}]
---
apiVersion: v1
kind: Service
metadata: {name: Not_A_Name}
spec:
  ports: [{port: 4318}]
"#,
    )
    .unwrap();
    let (ok, report) = validate_manifests(&[&bad]);
    assert!(!ok, "broken manifests passed:\n{report}");
    for (doc, why) in [
        ("#0: extensions.istio.io/v1alpha1 WasmPlugin", "SEVER"),
        (
            "#0: extensions.istio.io/v1alpha1 WasmPlugin",
            "not-a-digest",
        ),
        ("#1: security.istio.io/v1 PeerAuthentication", "mtsl"),
        ("#2: apps/v1 StatefulSet", "one"),
        ("#3: v1 Service", "Not_A_Name"),
    ] {
        let block: String = report.split("FAIL ").filter(|b| b.contains(doc)).collect();
        assert!(block.contains(why), "{doc}: {why} not reported:\n{report}");
    }
    assert!(report.contains("0 valid, 4 invalid"), "{report}");
}

/// The one document of `kind` in the deploy manifests.
fn one(docs: &[Value], kind: &str, name: &str) -> Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .clone()
}

#[test]
fn manifests_agree_with_each_other_with_the_image_and_with_the_filter() {
    let root = repo_root();
    let docs: Vec<Value> = yaml_files(&root.join("deploy/kubernetes"))
        .iter()
        .flat_map(|f| docs_in(f))
        .collect();
    let ns = "meshlog";
    for d in &docs {
        if d["kind"] != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], ns, "{}", d["metadata"]["name"]);
        }
    }
    let sts = one(&docs, "StatefulSet", "meshlog-collector");
    let svc = one(&docs, "Service", "meshlog-collector");
    let headless = one(&docs, "Service", "meshlog-collector-pods");
    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let container = &pod["spec"]["containers"][0];

    // Selectors pick the collector's pods.
    let selects = |sel: &Value| {
        sel.as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(selects(&sts["spec"]["selector"]["matchLabels"]));
    assert!(selects(&svc["spec"]["selector"]));
    assert!(selects(&headless["spec"]["selector"]));
    for (kind, name) in [
        ("PodDisruptionBudget", "meshlog-collector"),
        ("PeerAuthentication", "meshlog-collector"),
        ("AuthorizationPolicy", "meshlog-collector"),
    ] {
        assert!(
            selects(&one(&docs, kind, name)["spec"]["selector"]["matchLabels"]),
            "{kind}"
        );
    }
    assert_eq!(sts["spec"]["serviceName"], headless["metadata"]["name"]);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    for label in [
        "meshlog.io/enabled",
        "meshlog.io/access-logger",
        "meshlog.io/tcp",
    ] {
        assert!(
            labels.get(label).is_none(),
            "the collector must not log itself ({label})"
        );
    }

    // One port everywhere: the ConfigMap's listen, the container port, the Service, the probes,
    // the AuthorizationPolicy and the plugin configurations' cluster.
    let toml = configmap_toml();
    assert!(toml.contains("\nlisten = \"0.0.0.0:4318\"\n"), "{toml}");
    let cport = &container["ports"][0];
    assert_eq!(cport["containerPort"], 4318);
    assert_eq!(svc["spec"]["ports"][0]["port"], 4318);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], cport["name"]);
    assert!(
        s(&svc, "/spec/ports/0/name").starts_with("http-"),
        "Istio protocol selection"
    );
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(
            container[probe]["httpGet"]["port"], cport["name"],
            "{probe}"
        );
    }
    let authz = one(&docs, "AuthorizationPolicy", "meshlog-collector");
    let rules = authz["spec"]["rules"].as_array().unwrap();
    let post = rules
        .iter()
        .find(|r| r["to"][0]["operation"]["methods"] == json!(["POST"]))
        .expect("a rule for POST");
    assert_eq!(post["to"][0]["operation"]["paths"], json!(["/v1/logs"]));
    assert_eq!(post["to"][0]["operation"]["ports"], json!(["4318"]));
    for r in rules {
        assert_eq!(r["to"][0]["operation"]["ports"], json!(["4318"]));
        for p in r["from"][0]["source"]["principals"].as_array().unwrap() {
            if let Some(sa) = p
                .as_str()
                .unwrap()
                .strip_prefix("cluster.local/ns/meshlog/sa/")
            {
                one(&docs, "ServiceAccount", sa);
            }
        }
    }
    assert_eq!(
        one(&docs, "PeerAuthentication", "meshlog-collector")["spec"]["mtls"]["mode"],
        "STRICT"
    );
    let cluster = format!(
        "outbound|4318||{}.{ns}.svc.cluster.local",
        s(&svc, "/metadata/name")
    );
    let mut plugin_configs = 0;
    for f in yaml_files(&root.join("envoy-config/istio")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let config_lines = text.lines().filter(|l| !l.trim_start().starts_with('#'));
        for line in config_lines.filter(|l| l.contains("outbound|")) {
            plugin_configs += 1;
            assert!(line.contains(&cluster), "{}: {line}", f.display());
        }
    }
    assert!(
        plugin_configs >= 3,
        "{plugin_configs} plugin configurations name a cluster"
    );

    // The data directory, the keys and the user: where the ConfigMap says, the StatefulSet mounts.
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (s(m, "/name").to_owned(), s(m, "/mountPath").to_owned()))
        .collect();
    let mount_of = |name: &str| {
        mounts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no mount {name}"))
            .1
            .clone()
    };
    assert!(
        toml.contains(&format!("data_dir = \"{}\"", mount_of("data"))),
        "{toml}"
    );
    assert_eq!(mount_of("config"), "/etc/meshlog");
    assert_eq!(
        s(&sts, "/spec/volumeClaimTemplates/0/metadata/name"),
        "data"
    );
    for (volume, key) in [("signing-key", "signing.key"), ("data-key", "data.keys")] {
        let path = format!("{}/{key}", mount_of(volume));
        assert!(
            toml.contains(&format!("\"{path}\"")),
            "{path} not in {toml}"
        );
        let v = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == volume)
            .unwrap();
        assert_eq!(v["secret"]["items"][0]["path"], key);
    }
    let sc = &pod["spec"]["securityContext"];
    assert_eq!(
        (sc["runAsUser"].clone(), sc["fsGroup"].clone()),
        (json!(65532), json!(65532))
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());

    // The images the manifests name are the ones scripts/package tags.
    let tag = s(&packaged().images, "/tag");
    assert_eq!(
        s(container, "/image"),
        format!("registry.example.com/meshlog/collector:{tag}")
    );
    let wasmplugin = docs_in(&root.join("envoy-config/istio/wasmplugin.yaml")).remove(0);
    assert_eq!(
        s(&wasmplugin, "/spec/url"),
        format!("oci://registry.example.com/meshlog/filter:{tag}")
    );
    // An explicit match: SERVER, so each call is logged once, at the callee.
    assert_eq!(wasmplugin["spec"]["match"], json!([{"mode": "SERVER"}]));
}

#[test]
fn the_access_logger_volume_recipe_puts_the_module_where_the_envoyfilter_loads_it() {
    let root = repo_root();
    let ef = docs_in(&root.join("envoy-config/istio/envoyfilter-access-logger.yaml")).remove(0);
    let wanted = s(
        &ef,
        "/spec/configPatches/0/patch/value/typed_config/access_log/0/typed_config/config/vm_config/code/local/filename",
    )
    .to_owned();
    let app =
        docs_in(&root.join("deploy/kubernetes/examples/app-with-access-logger.yaml")).remove(0);
    let meta = &app["spec"]["template"]["metadata"];
    // The EnvoyFilter selects the example, the WasmPlugin does not (no double logging).
    for (k, v) in ef["spec"]["workloadSelector"]["labels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&meta["labels"][k], v, "label {k}");
    }
    let wasmplugin = docs_in(&root.join("envoy-config/istio/wasmplugin.yaml")).remove(0);
    let wp_labels = wasmplugin["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    assert!(
        !wp_labels.iter().all(|(k, v)| &meta["labels"][k] == v),
        "the WasmPlugin selects the access-logger example too"
    );

    // Istio's injection template: for each key of the JSON object, a volume (or a mount into
    // istio-proxy) named by the key, its value the rest of the spec.
    let annotation = |name: &str| -> serde_json::Map<String, Value> {
        serde_json::from_str(s(
            meta,
            &format!("/annotations/{}", name.replace('/', "~1")),
        ))
        .unwrap_or_else(|e| panic!("{name} is not a JSON object: {e}"))
    };
    let named = |m: serde_json::Map<String, Value>| -> Vec<Value> {
        m.into_iter()
            .map(|(k, mut v)| {
                v["name"] = json!(k);
                v
            })
            .collect()
    };
    let volumes = named(annotation("sidecar.istio.io/userVolume"));
    let mounts = named(annotation("sidecar.istio.io/userVolumeMount"));
    assert_eq!((volumes.len(), mounts.len()), (1, 1));
    let item = &volumes[0]["configMap"]["items"][0];
    assert_eq!(mounts[0]["name"], volumes[0]["name"]);
    assert_eq!(
        format!("{}/{}", s(&mounts[0], "/mountPath"), s(item, "/path")),
        wanted,
        "the mounted file is not where the EnvoyFilter loads the module"
    );
    // The key `kubectl create configmap --from-file=KEY=...` in the comments writes.
    let recipe = std::fs::read_to_string(
        root.join("deploy/kubernetes/examples/app-with-access-logger.yaml"),
    )
    .unwrap();
    assert!(
        recipe.contains(&format!(
            "create configmap {} \\\n#     --from-file={}=",
            s(&volumes[0], "/configMap/name"),
            s(item, "/key")
        )),
        "the recipe's kubectl command does not make that ConfigMap"
    );

    // The injected pod, as far as the annotations decide it, is a valid Pod.
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orders-injected", "namespace": "shop"},
        "spec": {
            "containers": [
                app["spec"]["template"]["spec"]["containers"][0].clone(),
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.27.0", "volumeMounts": mounts}
            ],
            "volumes": volumes
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("injected.yaml");
    std::fs::write(&f, serde_json::to_string_pretty(&pod).unwrap()).unwrap();
    let (ok, report) = validate_manifests(&[&f]);
    assert!(ok, "{report}");

    // A ConfigMap holds at most 1 MiB (data and binaryData together): the module must fit.
    let size = std::fs::metadata(wasm_path()).unwrap().len();
    assert!(
        size < 1024 * 1024,
        "the module ({size} bytes) no longer fits a ConfigMap: change the recipe \
         (an image volume, or an init container copying it into an emptyDir)"
    );
}

/// Envoy's `--mode validate` on a file, from the repository root (bootstraps name the module
/// relative to it).
fn envoy_validate(path: &Path) -> (bool, String) {
    let out = Command::new(envoy_bin())
        .args([
            "--mode",
            "validate",
            "--use-dynamic-base-id",
            "-l",
            "error",
            "-c",
        ])
        .arg(path)
        .current_dir(repo_root())
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A bench template with its placeholders filled in (ports, the module, a log file).
fn fill_template(text: &str, dir: &Path) -> String {
    let wasm = wasm_path();
    let mut out = text.to_owned();
    for (key, value) in [
        ("@WASM_PATH@", wasm.display().to_string()),
        ("@NATIVE_PATH@", native_path().display().to_string()),
        ("@ACCESS_LOG@", dir.join("access.log").display().to_string()),
    ] {
        out = out.replace(key, &value);
    }
    for key in [
        "@ADMIN_PORT@",
        "@APP_PORT@",
        "@COLLECTOR_PORT@",
        "@LISTEN_PORT@",
    ] {
        out = out.replace(key, &PortHold::new().release().to_string());
    }
    for key in ["_PORT@", "_PATH@", "@ACCESS_LOG@"] {
        assert!(!out.contains(key), "placeholder {key} left");
    }
    out
}

/// Where the shipped jwt_authn bootstraps read the issuer's keys.
const JWKS_PATH: &str = "envoy-config/jwt/jwks.json";

/// A JWKS holding one P-256 public key made for this run.
fn test_jwks() -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    // Uncompressed point: 0x04 || x || y.
    let p = key.public_key().as_ref();
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..]),
    }]})
    .to_string()
}

#[test]
fn every_envoy_bootstrap_in_envoy_config_validates() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    // (what it is, the file Envoy reads)
    // The mTLS variants name certificate files under /etc/meshlog/tls/: filled with a test
    // CA's files, since validation loads them.
    let pki = meshlog_e2e::tls::Pki::new("meshlog-collector", "spiffe://cluster.local/ns/a/sa/b");
    // The jwt_authn variants read the issuer's keys from envoy-config/jwt/jwks.json, which
    // docs/enduser.md has the user make: filled with a JWKS made for this run.
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, test_jwks()).unwrap();
    let mut checks: Vec<(String, PathBuf)> = yaml_files(&root.join("envoy-config"))
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            if text.contains(JWKS_PATH) {
                let filled = dir.path().join(f.file_name().unwrap());
                std::fs::write(
                    &filled,
                    text.replace(JWKS_PATH, &jwks.display().to_string()),
                )
                .unwrap();
                return (format!("{} (JWKS path filled)", f.display()), filled);
            }
            if !text.contains("/etc/meshlog/tls/") {
                return (f.display().to_string(), f);
            }
            let filled = dir.path().join(f.file_name().unwrap());
            let text = text
                .replace(
                    "/etc/meshlog/tls/client.pem",
                    &pki.server_cert.display().to_string(),
                )
                .replace(
                    "/etc/meshlog/tls/client.key",
                    &pki.server_key.display().to_string(),
                )
                .replace("/etc/meshlog/tls/ca.pem", &pki.ca.display().to_string());
            std::fs::write(&filled, text).unwrap();
            (
                format!("{} (certificate paths filled)", f.display()),
                filled,
            )
        })
        .collect();
    for f in yaml_files(&root.join("envoy-config/bench")) {
        let filled = dir.path().join(f.file_name().unwrap());
        std::fs::write(
            &filled,
            fill_template(&std::fs::read_to_string(&f).unwrap(), dir.path()),
        )
        .unwrap();
        checks.push((format!("{} (placeholders filled)", f.display()), filled));
    }
    // Each run loads and compiles the module: run them side by side.
    std::thread::scope(|scope| {
        let runs: Vec<_> = checks
            .iter()
            .map(|(what, f)| (what, scope.spawn(move || envoy_validate(f))))
            .collect();
        for (what, run) in runs {
            let (ok, out) = run.join().unwrap();
            assert!(ok, "{what}:\n{out}");
        }
    });
    let checked: Vec<&String> = checks.iter().map(|(w, _)| w).collect();
    assert!(checked.len() >= 3 + 8, "only {checked:?}");

    // The EnvoyFilter's access logger, as Istio merges it into a connection manager, is valid
    // Envoy configuration too (the module path pointed at the built module).
    let ef = docs_in(&root.join("envoy-config/istio/envoyfilter-access-logger.yaml")).remove(0);
    let mut access_log =
        ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["access_log"].clone();
    let file = access_log
        .pointer_mut("/0/typed_config/config/vm_config/code/local/filename")
        .expect("the EnvoyFilter loads the module from a local file");
    *file = json!(wasm_path().display().to_string());
    let cluster = "outbound|4318||meshlog-collector.meshlog.svc.cluster.local";
    let bootstrap = json!({
        "static_resources": {
            "listeners": [{
                "name": "virtualInbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": PortHold::new().release()}},
                "traffic_direction": "INBOUND",
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound",
                        "route_config": {"virtual_hosts": [{"name": "app", "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        "access_log": access_log
                    }
                }]}]
            }],
            "clusters": [
                {"name": "app", "type": "STATIC", "load_assignment": {"cluster_name": "app",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
                        {"address": "127.0.0.1", "port_value": PortHold::new().release()}}}}]}]}},
                {"name": cluster, "type": "STATIC", "load_assignment": {"cluster_name": cluster,
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
                        {"address": "127.0.0.1", "port_value": PortHold::new().release()}}}}]}]}}
            ]
        }
    });
    let from_ef = dir.path().join("envoyfilter-bootstrap.json");
    std::fs::write(&from_ef, serde_json::to_vec_pretty(&bootstrap).unwrap()).unwrap();
    let (ok, out) = envoy_validate(&from_ef);
    assert!(ok, "the EnvoyFilter's access logger:\n{out}");

    // And validate does fail: the same with a typo in the logger's configuration.
    let broken = serde_json::to_string(&bootstrap)
        .unwrap()
        .replace("\"vm_config\"", "\"vm_confgi\"");
    let bad = dir.path().join("broken.json");
    std::fs::write(&bad, broken).unwrap();
    let (ok, out) = envoy_validate(&bad);
    assert!(!ok, "a misspelt field passed envoy --mode validate:\n{out}");
}

#[test]
fn the_systemd_unit_is_one_systemd_accepts() {
    let analyze = require_tool("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(repo_root().join("deploy/systemd/meshlog.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/meshlog serve --config /etc/meshlog/meshlog.toml")
    );
    // The data directory, and the signing key's directory beside it (serve signs by default).
    assert!(
        unit.contains("StateDirectory=meshlog meshlog-keys\n") && unit.contains("User=meshlog\n")
    );
    // systemd checks that ExecStart's program exists: point it at the built binary.
    let bin = release_collector_bin();
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let f = dir.path().join(name);
        std::fs::write(
            &f,
            text.replace("/usr/local/bin/meshlog", &bin.display().to_string()),
        )
        .unwrap();
        let out = Command::new(&analyze)
            .arg("verify")
            .arg(&f)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    let (ok, said) = check("meshlog.service", &unit);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
    // A misspelt directive is reported: the check can fail.
    let (_, said) = check(
        "bad.service",
        &unit.replace("\nKillSignal=", "\nKilSignal="),
    );
    assert!(said.contains("Unknown key"), "{said}");
}
