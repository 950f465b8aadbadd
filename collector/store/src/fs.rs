//! The file operations the writer and recovery use to change segment files, behind a trait.
//!
//! Production uses [`StdFs`], which is `std::fs` and nothing else: the writer and recovery are
//! generic over [`FileSystem`] with `StdFs` as the default, so the calls are monomorphised to
//! the same `std::fs::File` calls as before (no dynamic dispatch, no extra state). Tests plug in
//! a simulated file system that remembers what was fsync'd and can lose everything else, to
//! check that "acknowledged means fsync'd" holds under power loss and not only under `kill -9`
//! (which keeps the page cache).
//!
//! What goes through the trait: creating, opening, writing, cutting and syncing segment files,
//! writing recovery's quarantine copies, removing a half-made segment, creating the segments
//! and quarantine directories and syncing directories. Reads that only look (listing segments,
//! scanning frames, rebuilding the Merkle tree) use `std::fs` directly; so do the lock file and
//! the Merkle log's own files (`tree.state`, `checkpoints.log`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;

/// An open file of a [`FileSystem`].
pub trait FsFile: Read + Write + Seek + Send + std::fmt::Debug + 'static {
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Cuts or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The file's length.
    fn file_len(&self) -> io::Result<u64>;
}

/// The directory and file operations of the writer and recovery.
pub trait FileSystem: Send + Sync + std::fmt::Debug + 'static {
    /// The open file type.
    type File: FsFile;
    /// Opens `path` for writing, creating it or cutting it to empty.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates `path` for writing; fails with `AlreadyExists` if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open_rw(&self, path: &Path) -> io::Result<Self::File>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents if missing.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (files created, renamed or removed in it).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system: `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl FsFile for File {
    #[inline]
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    #[inline]
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }

    #[inline]
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    #[inline]
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl FileSystem for StdFs {
    type File = File;

    #[inline]
    fn create(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    #[inline]
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().write(true).create_new(true).open(path)
    }

    #[inline]
    fn open_rw(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    #[inline]
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    #[inline]
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    #[inline]
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        meshlog_format::fsutil::sync_dir(dir)
    }
}
