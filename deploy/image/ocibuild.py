#!/usr/bin/env python3
"""Writes meshlog's OCI images as OCI image layouts, without a container daemon.

Called by scripts/package (which builds the inputs first); standard library only. Everything is
deterministic: fixed timestamps (SOURCE_DATE_EPOCH, default 0), sorted tar entries, uid/gid set
explicitly, gzip without a name or time, so the same binaries always give the same digests.

Two layouts are written into OUT:

  OUT/filter     ref TAG          the Wasm module in Istio's "oci" variant: config and second layer
                                  application/vnd.module.wasm.config.v1+json, the module itself as
                                  one layer application/vnd.module.wasm.content.layer.v1+wasm
                 ref TAG-compat   the "compat" variant: an ordinary OCI image whose single
                                  application/vnd.oci.image.layer.v1.tar+gzip layer holds plugin.wasm
  OUT/collector  ref TAG          the collector: a minimal root file system (the binary, the shared
                                  libraries ldd names, /etc/passwd with uid 65532), non-root,
                                  /var/lib/meshlog a volume, entrypoint `meshlog serve --config
                                  /etc/meshlog/meshlog.toml`

and OUT/images.json, which names every manifest digest and the module's sha256.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
MT_WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
REF_NAME = "org.opencontainers.image.ref.name"

UID = GID = 65532
DATA_DIR = "/var/lib/meshlog"
CONFIG_PATH = "/etc/meshlog/meshlog.toml"
BIN_PATH = "/usr/local/bin/meshlog"

# The image's own configuration: the pod's ConfigMap replaces it (deploy/kubernetes/).
DEFAULT_CONFIG = """\
# meshlog collector, container default: data on the volume, listening on every interface of the
# container (a pod's IP), OTLP/HTTP port 4318. No signing key: mount one and point
# [integrity] signing_key at it for tamper evidence (deploy/kubernetes/ does).
data_dir = "/var/lib/meshlog"
listen = "0.0.0.0:4318"
"""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    """An OCI image layout directory: oci-layout, index.json, blobs/sha256/."""

    def __init__(self, path):
        self.path = path
        self.manifests = []
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)

    def blob(self, data, media_type, annotations=None):
        digest = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest), "wb") as f:
            f.write(data)
        desc = {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}
        if annotations:
            desc["annotations"] = annotations
        return desc

    def manifest(self, ref, config, layers, annotations):
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config,
            "layers": layers,
            "annotations": annotations,
        }
        desc = self.blob(canonical_json(manifest), MT_MANIFEST)
        desc["annotations"] = {REF_NAME: ref}
        self.manifests.append(desc)
        return desc

    def close(self):
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.manifests}, f, indent=2)
            f.write("\n")


def tar_gz(entries, mtime):
    """entries: (path, kind, mode, uid, gid, data) with kind "dir" or "file"; returns
    (uncompressed tar, gzip'd tar)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, mode, uid, gid, data in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
            info.uname = info.gname = ""
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)


def parents(path):
    """Every parent directory of an absolute path, outermost first."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def rfc3339(epoch):
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_annotations(version, revision, created, title, description):
    ann = {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": created,
    }
    if revision:
        ann["org.opencontainers.image.revision"] = revision
    return ann


def proxy_wasm_abis(module):
    """The proxy-wasm ABI versions a module exports (export names proxy_abi_version_X_Y_Z)."""
    found = sorted(set(m.decode() for m in re.findall(rb"proxy_abi_version_(\d+_\d+_\d+)", module)))
    return ["v" + v.replace("_", ".") for v in found]


def build_filter(out, wasm, tag, version, revision, mtime):
    module = open(wasm, "rb").read()
    if module[:4] != b"\0asm":
        sys.exit(f"{wasm} is not a WebAssembly module")
    created = rfc3339(mtime)
    layout = Layout(os.path.join(out, "filter"))
    ann = base_annotations(version, revision, created, "meshlog-filter",
                           "meshlog proxy-wasm filter: audit-grade access logs from Envoy")

    # "oci" variant (solo-io Wasm image spec, as Istio's imagefetcher reads it): exactly two
    # layers, one of them the raw module; the runtime configuration is both the config blob and the
    # second layer.
    wasm_config = canonical_json({
        "type": "envoy_proxy",
        "abiVersions": proxy_wasm_abis(module),
        "config": {"rootIds": ["meshlog"]},
    })
    config = layout.blob(wasm_config, MT_WASM_CONFIG)
    wasm_layer = layout.blob(module, MT_WASM_LAYER, {"org.opencontainers.image.title": "plugin.wasm"})
    oci = layout.manifest(tag, config, [wasm_layer, dict(config)], ann)

    # "compat" variant: one gzip'd tar layer with plugin.wasm at its root.
    raw, gz = tar_gz([("plugin.wasm", "file", 0o644, 0, 0, module)], mtime)
    layer = layout.blob(gz, MT_LAYER_GZIP)
    image_config = canonical_json({
        "created": created,
        "architecture": "wasm",
        "os": "wasip1",
        "config": {"Labels": ann},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256(raw)]},
        "history": [{"created": created, "created_by": "scripts/package: plugin.wasm"}],
    })
    compat = layout.manifest(tag + "-compat", layout.blob(image_config, MT_IMAGE_CONFIG), [layer], ann)
    layout.close()
    return {
        "layout": layout.path,
        "module_sha256": sha256(module),
        "module_size": len(module),
        "abi_versions": proxy_wasm_abis(module),
        "oci": {"ref": tag, "manifest_digest": oci["digest"], "config_media_type": MT_WASM_CONFIG,
                "layer_media_types": [MT_WASM_LAYER, MT_WASM_CONFIG]},
        "compat": {"ref": tag + "-compat", "manifest_digest": compat["digest"],
                   "config_media_type": MT_IMAGE_CONFIG, "layer_media_types": [MT_LAYER_GZIP]},
    }


def shared_libraries(binary):
    """(path as the loader finds it, real file) for each library ldd names, the loader included."""
    res = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if res.returncode != 0:
        text = (res.stdout + res.stderr).strip()
        if "not a dynamic executable" in text or "statically linked" in text:
            return []
        sys.exit(f"ldd {binary} failed: {text}")
    libs = []
    for line in res.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            sys.exit(f"ldd {binary}: {line}")
        m = re.match(r"\S+ => (/\S+) \(0x", line) or re.match(r"(/\S+) \(0x", line)
        if m:
            libs.append((m.group(1), os.path.realpath(m.group(1))))
    return libs


def debian_copyrights(paths):
    """{Debian package: its copyright file} for the packages that own `paths`, where dpkg knows
    them (one dpkg call: it reads its whole database each time)."""
    try:
        res = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True)
    except FileNotFoundError:
        return {}
    found = {}
    for line in res.stdout.splitlines():
        pkg = line.split(":")[0].strip()
        doc = f"/usr/share/doc/{pkg}/copyright"
        if pkg and os.path.isfile(doc):
            found[pkg] = doc
    return found


def build_collector(out, binary, tag, version, revision, mtime, arch):
    created = rfc3339(mtime)
    layout = Layout(os.path.join(out, "collector"))
    ann = base_annotations(version, revision, created, "meshlog",
                           "meshlog collector: OTLP/HTTP logs into a tamper-evident store")
    entries = {}

    def add_dir(path, mode=0o755, uid=0, gid=0):
        for p in parents(path) + [path]:
            if p not in entries:
                entries[p] = (p, "dir", mode if p == path else 0o755, uid if p == path else 0,
                              gid if p == path else 0, None)

    def add_file(path, data, mode=0o644, uid=0, gid=0):
        if parents(path):
            add_dir(parents(path)[-1])
        entries[path] = (path, "file", mode, uid, gid, data)

    add_file(BIN_PATH, open(binary, "rb").read(), 0o755)
    libs = shared_libraries(binary)
    for path, real in libs:
        add_file(path, open(real, "rb").read(), 0o755)
    notices = debian_copyrights(sorted({p for lib in libs for p in lib})) if libs else {}
    for pkg, doc in sorted(notices.items()):
        add_file(f"/usr/share/doc/{pkg}/copyright", open(doc, "rb").read())
    add_file("/etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n"
             b"meshlog:x:65532:65532:meshlog:/var/lib/meshlog:/sbin/nologin\n")
    add_file("/etc/group", b"root:x:0:\nmeshlog:x:65532:\n")
    add_file(CONFIG_PATH, DEFAULT_CONFIG.encode())
    add_dir(DATA_DIR, 0o700, UID, GID)
    add_dir("/tmp", 0o1777)

    raw, gz = tar_gz(list(entries.values()), mtime)
    layer = layout.blob(gz, MT_LAYER_GZIP)
    image_config = canonical_json({
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": f"{UID}:{GID}",
            "Entrypoint": [BIN_PATH, "serve", "--config", CONFIG_PATH],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "ExposedPorts": {"4318/tcp": {}},
            "Volumes": {DATA_DIR: {}},
            "WorkingDir": DATA_DIR,
            "StopSignal": "SIGTERM",
            "Labels": ann,
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256(raw)]},
        "history": [{"created": created, "created_by": "scripts/package: meshlog, its shared libraries, /etc"}],
    })
    manifest = layout.manifest(tag, layout.blob(image_config, MT_IMAGE_CONFIG), [layer], ann)
    layout.close()
    return {
        "layout": layout.path,
        "ref": tag,
        "manifest_digest": manifest["digest"],
        "binary_sha256": sha256(open(binary, "rb").read()),
        "shared_libraries": [p for p, _ in libs],
        "config_media_type": MT_IMAGE_CONFIG,
        "layer_media_types": [MT_LAYER_GZIP],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--collector", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--revision", default="")
    a = ap.parse_args()
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    os.makedirs(a.out, exist_ok=True)
    for sub in ("filter", "collector"):
        # A layout is rewritten whole: stale blobs from an older build would linger otherwise.
        path = os.path.join(a.out, sub)
        if os.path.isdir(path):
            import shutil

            shutil.rmtree(path)
    images = {
        "tag": a.tag,
        "filter": build_filter(a.out, a.wasm, a.tag, a.version, a.revision, mtime),
        "collector": build_collector(a.out, a.collector, a.tag, a.version, a.revision, mtime, arch),
    }
    with open(os.path.join(a.out, "images.json"), "w") as f:
        json.dump(images, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
