//! `meshlog keygen`: checkpoint signing keys and data-encryption keys.

use super::*;

/// Runs `meshlog keygen`: what is printed on `out` is for scripts (the verifier key, or the
/// new data key's id); what was written where goes to stderr.
pub fn keygen(args: KeygenArgs, out: &mut impl Write) -> Result<(), RunError> {
    let printed = |e: io::Error| RunError::Io {
        context: "writing to stdout".into(),
        source: e,
    };
    if let Some(file) = args.export {
        let key = keys::read_signer_key(&file)?;
        return writeln!(out, "{}", key.verifier()).map_err(printed);
    }
    if let Some(file) = args.data_key {
        let id = keys::append_data_key(&file)?;
        writeln!(out, "{id}").map_err(printed)?;
        eprintln!(
            "meshlog: added data-encryption key {id} to {}; it encrypts new data from now on",
            file.display()
        );
        return Ok(());
    }
    let Some(dir) = args.out else {
        // clap requires one of the two.
        return Ok(());
    };
    let name = args.name.as_deref().unwrap_or(DEFAULT_ORIGIN);
    let key = SignerKey::generate(name).map_err(|source| KeyFileError::Key {
        path: dir.clone(),
        source,
    })?;
    // Only the owner needs the directory that holds the private key.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io_err(format!("creating {}", dir.display())))?;
    let signing = dir.join(keys::SIGNING_KEY_FILE);
    let verifier = dir.join(keys::VERIFIER_KEY_FILE);
    // Check both first, so a refusal leaves no half-written pair behind.
    for path in [&signing, &verifier] {
        if path.symlink_metadata().is_ok() {
            return Err(KeyFileError::AlreadyExists { path: path.clone() }.into());
        }
    }
    keys::write_signer_key(&signing, &key)?;
    if let Err(e) = keys::write_verifier_key(&verifier, &key.verifier()) {
        // Without its public half the new private key is useless: take it back.
        let _ = std::fs::remove_file(&signing);
        return Err(e.into());
    }
    writeln!(out, "{}", key.verifier()).map_err(printed)?;
    eprintln!(
        "meshlog: wrote the checkpoint signing key {} (private, keep it secret) and the \
         verifier key {} (public)",
        signing.display(),
        verifier.display()
    );
    Ok(())
}
