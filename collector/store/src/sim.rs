//! A simulated file system for crash tests: power loss, not process death.
//!
//! [`SimFs`] implements [`FileSystem`] and keeps, in memory, the model of what a disk would
//! hold: per file (inode) its current bytes (the page cache) and its durable bytes (as of its
//! last successful `sync_data`/`sync_all`), and per directory which entries are durable (as of
//! its last `sync_dir`). Every operation is also applied to a real directory so the code that
//! only reads (segment listing, scanner, Merkle rebuild, `meshlog verify`) sees what a running
//! machine would see.
//!
//! Each mutating operation counts as one step. At the step chosen by [`SimFs::crash_at`] the
//! machine dies: that operation and every later one fails, so nothing more reaches the model.
//! [`SimFs::power_loss`] then rewrites the real directory to what the disk holds after the
//! crash, chosen by a seed:
//! - a directory entry created or removed since its directory was last synced is, per entry,
//!   either kept or reverted (a new file disappears, a removed one comes back);
//! - bytes appended since the file's last sync are dropped, kept, or cut at a random length;
//!   any other unsynced change (a cut, a rewrite) is kept or lost as a whole.
//!
//! Directories themselves are taken as durable once created (the store syncs the parent right
//! after creating one anyway), and files the store writes with `std::fs` directly (the lock,
//! `tree.state`, `checkpoints.log`) are outside the model: they survive as written.
//!
//! Faults without a crash: [`SimFs::fail_next`] makes the next operations of a kind fail with
//! an I/O error (EIO) or a full disk (ENOSPC), and [`SimFs::fail_at`] the `n`-th operation,
//! leaving the model unchanged.

use crate::fs::{FileSystem, FsFile};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Kinds of operation, for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `create`, `create_new`.
    Create,
    /// One `write` call.
    Write,
    /// `set_len`.
    SetLen,
    /// `sync_data`, `sync_all`.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// `remove_file`.
    Remove,
    /// `create_dir_all`.
    Mkdir,
}

/// splitmix64: small, seedable, good enough to pick crash points.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    /// Directory entries as the running system sees them.
    current: BTreeMap<PathBuf, usize>,
    /// Directory entries as the disk holds them.
    durable: BTreeMap<PathBuf, usize>,
    steps: u64,
    crash_at: Option<u64>,
    crashed: bool,
    /// Armed faults: how many more operations of the kind fail, and how.
    faults: HashMap<Op, Vec<io::ErrorKind>>,
    /// Armed faults by step number.
    step_faults: BTreeMap<u64, io::ErrorKind>,
    /// Operations done, by kind.
    counts: BTreeMap<Op, u64>,
}

/// ENOSPC for `StorageFull`, EIO for anything else.
fn fault(kind: io::ErrorKind) -> io::Error {
    match kind {
        io::ErrorKind::StorageFull => io::Error::from_raw_os_error(28),
        _ => io::Error::from_raw_os_error(5),
    }
}

fn power_off() -> io::Error {
    io::Error::other("simulated power loss")
}

impl State {
    /// Counts one step of `kind`; fails at and after the crash point, or with an armed fault.
    fn step(&mut self, kind: Op) -> io::Result<()> {
        if self.crashed {
            return Err(power_off());
        }
        self.steps += 1;
        if self.crash_at == Some(self.steps) {
            self.crashed = true;
            return Err(power_off());
        }
        if let Some(f) = self.faults.get_mut(&kind)
            && !f.is_empty()
        {
            return Err(fault(f.remove(0)));
        }
        if let Some(e) = self.step_faults.remove(&self.steps) {
            return Err(fault(e));
        }
        *self.counts.entry(kind).or_default() += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.crashed {
            Err(power_off())
        } else {
            Ok(())
        }
    }

    fn inode_mut(&mut self, ino: usize) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(ino)
            .ok_or_else(|| io::Error::other("no such inode"))
    }

    /// The inode at `path`, registering a file the model does not know yet (made with
    /// `std::fs`) as durable.
    fn lookup_or_adopt(&mut self, path: &Path) -> io::Result<usize> {
        if let Some(ino) = self.current.get(path) {
            return Ok(*ino);
        }
        let data = std::fs::read(path)?;
        let ino = self.inodes.len();
        self.inodes.push(Inode {
            durable: data.clone(),
            data,
        });
        self.current.insert(path.to_owned(), ino);
        self.durable.insert(path.to_owned(), ino);
        Ok(ino)
    }
}

/// The simulated file system; clones share the model.
#[derive(Debug, Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl SimFs {
    /// A disk holding what is under `root` now, all of it durable.
    pub fn new(root: &Path) -> io::Result<Self> {
        let mut st = State::default();
        let mut dirs = vec![root.to_owned()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                let p = e.path();
                if e.file_type()?.is_dir() {
                    dirs.push(p);
                } else {
                    st.lookup_or_adopt(&p)?;
                }
            }
        }
        Ok(SimFs {
            state: Arc::new(Mutex::new(st)),
        })
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The machine dies at the `n`-th operation (1-based).
    pub fn crash_at(&self, n: u64) {
        self.st().crash_at = Some(n);
    }

    /// True once the crash point was reached.
    pub fn crashed(&self) -> bool {
        self.st().crashed
    }

    /// Successful operations of `kind` so far.
    pub fn count(&self, kind: Op) -> u64 {
        self.st().counts.get(&kind).copied().unwrap_or(0)
    }

    /// The next operation of `kind` fails with `error` (`StorageFull` gives ENOSPC, anything
    /// else EIO); arming several queues them.
    pub fn fail_next(&self, kind: Op, error: io::ErrorKind) {
        self.st().faults.entry(kind).or_default().push(error);
    }

    /// The `n`-th operation (1-based, whatever its kind) fails with `error`, as for
    /// [`fail_next`](Self::fail_next).
    pub fn fail_at(&self, n: u64, error: io::ErrorKind) {
        self.st().step_faults.insert(n, error);
    }

    /// The durable bytes of the file at `path` (as the disk's directory entry has it).
    pub fn durable_len(&self, path: &Path) -> Option<usize> {
        let st = self.st();
        let ino = *st.durable.get(path)?;
        st.inodes.get(ino).map(|i| i.durable.len())
    }

    /// Power loss: from now on every operation fails, and the real directory is rewritten to
    /// what the disk holds, with the unsynced state torn as `seed` decides (see the module
    /// documentation). Returns the number of files whose state was not fully durable.
    pub fn power_loss(&self, seed: u64) -> io::Result<usize> {
        let mut rng = Rng::new(seed);
        let mut st = self.st();
        st.crashed = true;
        let paths: BTreeSet<PathBuf> = st
            .current
            .keys()
            .chain(st.durable.keys())
            .cloned()
            .collect();
        let mut torn = 0;
        let mut content: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        for path in paths {
            let (cur, dur) = (
                st.current.get(&path).copied(),
                st.durable.get(&path).copied(),
            );
            let entry = if cur == dur || rng.below(2) == 0 {
                dur
            } else {
                cur
            };
            if cur != dur {
                torn += 1;
            }
            let Some(ino) = entry else {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                continue;
            };
            let bytes = match content.get(&ino) {
                Some(b) => b.clone(),
                None => {
                    let i = st
                        .inodes
                        .get(ino)
                        .ok_or_else(|| io::Error::other("no such inode"))?;
                    let b = after_crash(i, &mut rng);
                    if b != i.data {
                        torn += 1;
                    }
                    content.insert(ino, b.clone());
                    b
                }
            };
            std::fs::write(&path, bytes)?;
        }
        Ok(torn)
    }
}

/// What the disk holds of a file after power loss.
fn after_crash(i: &Inode, rng: &mut Rng) -> Vec<u8> {
    let (d, c) = (&i.durable, &i.data);
    if c == d {
        return d.clone();
    }
    if c.len() > d.len() && c.starts_with(d) {
        let extra = (c.len() - d.len()) as u64;
        let keep = match rng.below(3) {
            0 => 0,
            1 => extra,
            _ => rng.below(extra + 1),
        };
        return c.get(..d.len() + keep as usize).unwrap_or(c).to_vec();
    }
    if rng.below(2) == 0 {
        d.clone()
    } else {
        c.clone()
    }
}

/// An open file of a [`SimFs`].
#[derive(Debug)]
pub struct SimFile {
    real: File,
    ino: usize,
    state: Arc<Mutex<State>>,
}

impl SimFile {
    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Read for SimFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.st().alive()?;
        self.real.read(buf)
    }
}

impl Seek for SimFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.st().alive()?;
        self.real.seek(pos)
    }
}

impl Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let state = self.state.clone();
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        st.step(Op::Write)?;
        let pos = self.real.stream_position()? as usize;
        let n = self.real.write(buf)?;
        let data = &mut st.inode_mut(self.ino)?.data;
        if data.len() < pos + n {
            data.resize(pos + n, 0);
        }
        data[pos..pos + n].copy_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.st().alive()
    }
}

impl FsFile for SimFile {
    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.st();
        st.step(Op::Sync)?;
        let i = st.inode_mut(self.ino)?;
        i.durable = i.data.clone();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.st();
        st.step(Op::SetLen)?;
        self.real.set_len(len)?;
        st.inode_mut(self.ino)?.data.resize(len as usize, 0);
        Ok(())
    }

    fn file_len(&self) -> io::Result<u64> {
        self.st().alive()?;
        Ok(self.real.metadata()?.len())
    }
}

impl SimFs {
    fn new_file(&self, path: &Path, real: File, fresh: bool) -> io::Result<SimFile> {
        let mut st = self.st();
        let ino = match st.current.get(path) {
            Some(ino) if !fresh => *ino,
            _ => {
                st.inodes.push(Inode::default());
                st.inodes.len() - 1
            }
        };
        st.inode_mut(ino)?.data.clear();
        st.current.insert(path.to_owned(), ino);
        Ok(SimFile {
            real,
            ino,
            state: self.state.clone(),
        })
    }
}

impl FileSystem for SimFs {
    type File = SimFile;

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        self.st().step(Op::Create)?;
        let real = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        self.new_file(path, real, false)
    }

    fn create_new(&self, path: &Path) -> io::Result<SimFile> {
        self.st().step(Op::Create)?;
        let real = OpenOptions::new().write(true).create_new(true).open(path)?;
        self.new_file(path, real, true)
    }

    fn open_rw(&self, path: &Path) -> io::Result<SimFile> {
        let mut st = self.st();
        st.alive()?;
        let real = OpenOptions::new().read(true).write(true).open(path)?;
        let ino = st.lookup_or_adopt(path)?;
        Ok(SimFile {
            real,
            ino,
            state: self.state.clone(),
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st();
        st.step(Op::Remove)?;
        std::fs::remove_file(path)?;
        st.current.remove(path);
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.st().step(Op::Mkdir)?;
        std::fs::create_dir_all(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.st();
        st.step(Op::SyncDir)?;
        let in_dir = |p: &Path| p.parent() == Some(dir);
        let current: Vec<(PathBuf, usize)> = st
            .current
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable.retain(|p, _| !in_dir(p));
        st.durable.extend(current);
        Ok(())
    }
}
