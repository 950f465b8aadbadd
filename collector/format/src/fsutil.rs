//! Small durable-file helpers shared by the writer, recovery and the sweeper: directory fsync
//! and the `deleted/<seq>.leaves` codec (32-byte leaf hashes, back to back).

use meshlog_tlog::merkle::Hash;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// fsyncs a directory so a file created, renamed or removed in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Encodes leaf hashes as a `.leaves` file's content.
pub fn encode_leaves(leaves: &[Hash]) -> Vec<u8> {
    leaves.iter().flatten().copied().collect()
}

/// The leaf hashes in a `deleted/<seq>.leaves` file (32 bytes each); a length that is not a
/// multiple of 32 is an error (`InvalidData`).
pub fn read_leaves(path: &Path) -> io::Result<Vec<Hash>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() % 32 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, not a whole number of 32-byte leaf hashes",
                path.display(),
                bytes.len()
            ),
        ));
    }
    Ok(bytes
        .chunks_exact(32)
        .filter_map(|c| Hash::try_from(c).ok())
        .collect())
}

/// Writes `bytes` to `path` durably: a temporary file beside it, fsync'd, renamed over `path`,
/// and the directory fsync'd. A crash leaves either the old file or the new one.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut f = File::create(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_round_trip_and_a_torn_file_is_invalid_data() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0000000000000001.leaves");
        let leaves = [[1u8; 32], [2u8; 32]];
        write_durably(&p, &encode_leaves(&leaves)).unwrap();
        assert_eq!(read_leaves(&p).unwrap(), leaves);
        assert!(!d.path().join("0000000000000001.leaves.tmp").exists());
        std::fs::write(&p, [0u8; 33]).unwrap();
        assert_eq!(
            read_leaves(&p).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
