//! `meshlog query`: every record of a data directory, one JSON object per line.

use super::*;

/// Loads the data-encryption key file, if one is configured.
pub(super) fn load_data_keys(key_file: Option<&Path>) -> Result<Option<DataKeys>, RunError> {
    key_file
        .map(|p| DataKeys::load(p).map_err(RunError::DataKeys))
        .transpose()
}

/// Writes every record in `data_dir` to `out`, one per line, opening encrypted frames with
/// `keys`; returns the number written. Order: the store in `data_dir` itself (without
/// retention), then each retention class's store by class name, each in store order.
pub fn query(
    data_dir: &Path,
    keys: Option<DataKeys>,
    out: &mut impl Write,
) -> Result<u64, ReadError> {
    let mut n = 0;
    let first = reader::frames(data_dir)?;
    let classes = classes::store_dirs(data_dir).map_err(|source| ReadError::Io {
        path: data_dir.join(classes::CLASSES_DIR),
        source,
    })?;
    let mut stores = vec![first];
    for dir in classes.iter().skip(1) {
        stores.push(reader::frames(dir)?);
    }
    for frames in stores {
        for frame in frames.with_keys(keys.clone()) {
            frame?.for_each_line(|line| {
                n += 1;
                out.write_all(line)?;
                out.write_all(b"\n")
            })?;
        }
    }
    Ok(n)
}
