//! What makes a test's processes die with it: a process group per process and the parent death
//! signal. The one place this crate needs `unsafe` (std's `pre_exec` is unsafe, and so are the
//! libc calls), kept to async-signal-safe syscalls.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// A signal to send.
#[derive(Debug, Clone, Copy)]
pub enum Signal {
    /// SIGTERM: stop gracefully.
    Term,
    /// SIGKILL.
    Kill,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// Puts the process `cmd` starts in a new process group (its id is the process's id) and has the
/// kernel SIGKILL it when the thread that spawned it exits (Linux `PR_SET_PDEATHSIG`). If the
/// parent is already gone when the child gets there, the child does not start.
pub fn die_with_parent(cmd: &mut Command) {
    cmd.process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec. It calls only prctl(2) and
    // getppid(2), which are async-signal-safe, allocates nothing and reads only a copied
    // integer.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(std::io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a positive pid of our own child; no memory is involved.
        unsafe {
            libc::kill(pid, sig.raw());
        }
    }
}

/// Sends `sig` to the process group led by `pid` (a process started with
/// [`die_with_parent`], not yet reaped, so the group id cannot have been reused).
pub fn signal_group(pid: u32, sig: Signal) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is
        // involved.
        unsafe {
            libc::kill(-pid, sig.raw());
        }
    }
}
