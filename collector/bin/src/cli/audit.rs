//! `meshlog verify`, `prove` and `verify-proof`: the CLI over `meshlog_audit`.

use super::*;

/// Reads verifier key files; a bad one is a usage error.
fn read_keys(paths: &[PathBuf]) -> Result<Vec<VerifierKey>, RunError> {
    paths
        .iter()
        .map(|p| keys::read_verifier_key(p).map_err(|e| RunError::Usage(e.to_string())))
        .collect()
}

pub(super) fn stdout_err(e: io::Error) -> RunError {
    RunError::Io {
        context: "writing to stdout".into(),
        source: e,
    }
}

/// Runs `meshlog verify`: the report on `out` (text or JSON), a progress bar on a terminal's
/// stderr, `NotIntact` when anything was found.
pub fn verify(args: VerifyArgs, out: &mut impl Write) -> Result<(), RunError> {
    let keys = read_keys(&args.public_key)?;
    let check = meshlog_audit::verify::WitnessCheck {
        keys: read_keys(&args.witness)?,
        state_dir: args.witness_state.clone(),
    };
    if let Some(d) = &check.state_dir
        && !d.is_dir()
    {
        return Err(RunError::Usage(format!(
            "witness state directory {} does not exist",
            d.display()
        )));
    }
    if !args.data_dir.exists()
        && let Some(d) = &check.state_dir
    {
        return deleted_whole(&args.data_dir, d, &keys, &check.keys, out);
    }
    require_dir(&args.data_dir)?;
    let bar = io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "verifying {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut progress = |done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    // With retention classes, every store in the data directory, each with its receipts (and
    // each class log the witness holds, its directory gone or not).
    let with_classes = !classes::class_dirs(&args.data_dir)
        .map_err(io_err(format!(
            "listing {}",
            args.data_dir.join(classes::CLASSES_DIR).display()
        )))?
        .is_empty()
        || witnessed_classes(check.state_dir.as_deref(), &keys);
    let report = if with_classes {
        Verified::DataDir(meshlog_audit::verify::verify_data_dir_with(
            &args.data_dir,
            &keys,
            &check,
            &mut progress,
        )?)
    } else {
        Verified::Store(Box::new(meshlog_audit::verify::verify_with(
            &args.data_dir,
            &keys,
            &check,
            &mut progress,
        )?))
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (written, intact, findings) = match &report {
        Verified::DataDir(r) => (
            if args.json {
                r.write_json(out)
            } else {
                r.write_text(out)
            },
            r.intact,
            r.findings(),
        ),
        Verified::Store(r) => (
            if args.json {
                r.write_json(out)
            } else {
                r.write_text(out)
            },
            r.intact,
            r.findings.len(),
        ),
    };
    written.map_err(stdout_err)?;
    out.flush().map_err(stdout_err)?;
    if intact {
        Ok(())
    } else {
        Err(RunError::NotIntact(findings))
    }
}

/// Whether the witness state holds a class log (`<name>/<class>`) of one of `keys`.
fn witnessed_classes(state_dir: Option<&Path>, keys: &[VerifierKey]) -> bool {
    let held = state_dir
        .and_then(|d| meshlog_witness::origins(d).ok())
        .unwrap_or_default();
    held.iter().any(|o| {
        keys.iter().any(|k| {
            o.strip_prefix(k.name())
                .and_then(|c| c.strip_prefix('/'))
                .is_some_and(meshlog_format::layout::valid_class_name)
        })
    })
}

/// `verify --witness-state` on a data directory that is gone: the witness still knows what the
/// log had reached.
fn deleted_whole(
    data_dir: &Path,
    state_dir: &Path,
    keys: &[VerifierKey],
    witness_keys: &[VerifierKey],
    out: &mut impl Write,
) -> Result<(), RunError> {
    let held = meshlog_witness::origins(state_dir)
        .map_err(io_err(format!("listing {}", state_dir.display())))?;
    // With a key: its log, and its retention class logs (`<name>/<class>`).
    let origins: Vec<String> = match keys.first() {
        Some(k) => {
            let mut o = vec![k.name().to_owned()];
            let classes = format!("{}/", k.name());
            o.extend(held.into_iter().filter(|h| {
                h.strip_prefix(&classes)
                    .is_some_and(meshlog_format::layout::valid_class_name)
            }));
            o
        }
        None => held,
    };
    let mut found = 0;
    for origin in &origins {
        let cp = meshlog_audit::verify::witness_state(state_dir, origin, witness_keys)
            .map_err(RunError::Usage)?;
        if let Some(cp) = cp.filter(|c| c.size > 0) {
            found += 1;
            writeln!(
                out,
                "behind_witness: data directory {} does not exist, but the witness ({}) \
                 cosigned {} leaves of log {origin}: the log was deleted whole",
                data_dir.display(),
                state_dir.display(),
                cp.size
            )
            .map_err(stdout_err)?;
        }
    }
    if found == 0 {
        return Err(RunError::Usage(format!(
            "data directory {} does not exist (and the witness state holds nothing of {})",
            data_dir.display(),
            if origins.is_empty() {
                "any log".to_owned()
            } else {
                origins.join(", ")
            }
        )));
    }
    writeln!(out, "NOT INTACT").map_err(stdout_err)?;
    Err(RunError::NotIntact(found))
}

/// What `meshlog verify` checked: one store, or a data directory with retention classes.
enum Verified {
    Store(Box<meshlog_audit::verify::Report>),
    DataDir(meshlog_audit::verify::DataDirReport),
}

/// Runs `meshlog prove`: the proof, as JSON, on `out`.
pub fn prove(args: ProveArgs, out: &mut impl Write) -> Result<(), RunError> {
    require_dir(&args.data_dir)?;
    let json = match (&args.record, args.consistency.as_deref()) {
        (Some(sel), _) => {
            let key_file = match (&args.key_file, &args.config) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(c)) => Config::load(Some(c))?.encryption_key_file,
                (None, None) => None,
            };
            let keys = load_data_keys(key_file.as_deref())?;
            let keyring = keys.as_ref().map(|k| k.keyring().as_ref());
            serde_json::to_string_pretty(&proof::prove_record(&args.data_dir, sel, keyring)?)
        }
        (None, Some(&[old, new])) => {
            serde_json::to_string_pretty(&proof::prove_consistency(&args.data_dir, old, new)?)
        }
        _ => {
            return Err(RunError::Usage(
                "give a RECORD or --consistency OLD_SIZE NEW_SIZE".into(),
            ));
        }
    }
    .map_err(io::Error::from)
    .map_err(stdout_err)?;
    writeln!(out, "{json}").map_err(stdout_err)
}

/// Runs `meshlog verify-proof`: each check passed on `out`, or the failure.
pub fn verify_proof(args: VerifyProofArgs, out: &mut impl Write) -> Result<(), RunError> {
    let keys = read_keys(&args.public_key)?;
    let bytes = if args.proof.as_os_str() == "-" {
        let mut b = Vec::new();
        io::stdin()
            .read_to_end(&mut b)
            .map_err(io_err("reading the proof from stdin"))?;
        b
    } else {
        std::fs::read(&args.proof).map_err(|e| {
            RunError::Usage(format!("cannot read proof {}: {e}", args.proof.display()))
        })?
    };
    let checks = proof::verify_proof(&bytes, &keys)?;
    for c in &checks {
        writeln!(out, "ok: {c}").map_err(stdout_err)?;
    }
    writeln!(out, "VALID").map_err(stdout_err)
}
