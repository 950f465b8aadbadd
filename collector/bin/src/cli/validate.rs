//! `meshlog validate --config FILE`: everything `serve` would refuse at start, found without
//! starting: every configuration problem at once (as `vector validate` and `otelcol validate`
//! do), then the files the configuration names (the signing key, the witness key, the
//! data-encryption keys, the
//! TLS certificate, key and client CA), and addresses `serve` would refuse without TLS.
//! Exit 0 when `serve` would start with it, 1 with every problem listed.

use super::audit::stdout_err;
use super::*;
use crate::config::ConfigError;

/// Checks the configuration file `path`, one line per problem on `out`.
pub fn validate(path: &Path, out: &mut impl Write) -> Result<(), RunError> {
    let problems = problems(path);
    let print = |out: &mut dyn Write| -> io::Result<()> {
        for p in &problems {
            writeln!(out, "problem: {p}")?;
        }
        if problems.is_empty() {
            writeln!(out, "valid: {}", path.display())?;
        }
        Ok(())
    };
    print(out).map_err(stdout_err)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RunError::InvalidConfig(problems.len()))
    }
}

/// Every problem with the configuration at `path` and the files it names.
fn problems(path: &Path) -> Vec<String> {
    let cfg = match Config::load(Some(path)) {
        Ok(c) => c,
        Err(ConfigError::Invalid { problems, .. }) => {
            return problems.iter().map(ToString::to_string).collect();
        }
        Err(e) => return vec![e.to_string()],
    };
    let mut out = Vec::new();
    if let Some(key) = &cfg.integrity.signing_key
        && let Err(e) = keys::read_signer_key(key)
    {
        out.push(format!("integrity.signing_key: {e}"));
    }
    if let Some(w) = &cfg.witness.serve
        && let Err(e) = keys::read_signer_key(&w.key_file)
    {
        out.push(format!("witness.serve.key_file: {e}"));
    }
    if let Some(file) = &cfg.encryption_key_file
        && let Err(e) = DataKeys::load(file)
    {
        out.push(format!("encryption.key_file: {e}"));
    }
    if let Some(tls) = &cfg.tls
        && let Err(e) = meshlog_server::auth::tls::TlsReloader::load(tls.clone())
    {
        out.push(format!("tls: {e}"));
    }
    if cfg.tls.is_none() && !cfg.insecure {
        let mut addrs = vec![("listen", cfg.listen), ("grpc_listen", cfg.grpc_addr())];
        addrs.extend(cfg.metrics_listen.map(|a| ("metrics_listen", a)));
        for (key, a) in addrs.iter().filter(|(_, a)| !a.ip().is_loopback()) {
            out.push(format!(
                "{key}: {a} is not a loopback address and there is no [tls]: serve refuses it \
                 without --insecure (or insecure = true)"
            ));
        }
    }
    if cfg.data_dir.exists() && !cfg.data_dir.is_dir() {
        out.push(format!(
            "data_dir: {} exists and is not a directory",
            cfg.data_dir.display()
        ));
    }
    out
}
