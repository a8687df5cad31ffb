//! SIGINT and SIGTERM during `mcos run` and `mcos replay`: stop cleanly, say what was done,
//! remove what the run created, and exit 130 (SIGINT) or 143 (SIGTERM) with a message.
//!
//! A watcher thread receives the signal. While a real node is open (the only time the run has
//! files open), it only raises the stop flag: the replay loop stops at the next request, the
//! node closes and removes its tier file, and the command returns [`Interrupted`]. Otherwise
//! nothing is in flight that needs closing, so the watcher removes the run directory (if this
//! run created it) and exits at once. One mutex orders the two: a node is never opened after
//! the watcher decided to exit.

use anyhow::{Context, Result, bail};
use mcos_tiers::lock::DirLock;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Signal received (0: none). Written by the watcher thread, read by the replay loop.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// What the watcher may do right now; guarded so entering the real phase and deciding to exit
/// never race.
static STATE: Mutex<State> = Mutex::new(State {
    node_open: false,
    doing: String::new(),
    created_dir: None,
    lock_file: None,
});
/// Whether the watcher thread was started (once per process).
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct State {
    /// A real node is open: the main thread cleans up, the watcher only raises the flag.
    node_open: bool,
    /// What the run is doing, for the exit message.
    doing: String,
    /// The run directory, if this run created it (removed on exit when empty).
    created_dir: Option<PathBuf>,
    /// The run directory's lock file (removed on exit).
    lock_file: Option<PathBuf>,
}

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The run was stopped by a signal; the message says what was done and what was removed.
#[derive(Debug)]
pub struct Interrupted {
    /// The signal (SIGINT or SIGTERM).
    pub signal: i32,
    /// What had been done.
    pub message: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Interrupted {}

/// Exit status for a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// The signal's name.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Starts the watcher thread (once).
pub fn install() -> Result<()> {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("cannot install the SIGINT/SIGTERM handler")?;
    std::thread::Builder::new()
        .name("mcos-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                SIGNAL.store(sig, Ordering::Release);
                let st = state();
                if st.node_open {
                    eprintln!(
                        "\n{} received: stopping the real replay and removing its files...",
                        signal_name(sig)
                    );
                    // The main thread finishes; a second signal still stops the process.
                    drop(st);
                    if signals.forever().next().is_some() {
                        eprintln!("second signal: exiting without cleaning up");
                        std::process::exit(exit_code(sig));
                    }
                    return;
                }
                let removed = remove_run_files(&st);
                eprintln!(
                    "\ninterrupted by {} while {}{}",
                    signal_name(sig),
                    if st.doing.is_empty() {
                        "starting"
                    } else {
                        &st.doing
                    },
                    removed
                );
                std::process::exit(exit_code(sig));
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// The signal received so far, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::Acquire) {
        0 => None,
        s => Some(s),
    }
}

/// Records what the run is doing, for the message if it is interrupted.
pub fn doing(what: impl Into<String>) {
    state().doing = what.into();
}

/// Marks a real node as open (`true`) or closed. Opening fails if a signal already arrived.
pub fn node_open(open: bool) -> Result<()> {
    let mut st = state();
    if open && let Some(sig) = received() {
        bail!(Interrupted {
            signal: sig,
            message: format!("interrupted by {} before the node opened", signal_name(sig)),
        });
    }
    st.node_open = open;
    Ok(())
}

/// Removes the lock file and, if this run created it and it is empty, the run directory.
/// Returns a note for the exit message.
fn remove_run_files(st: &State) -> String {
    if let Some(lock) = &st.lock_file {
        let _ = std::fs::remove_file(lock);
    }
    match &st.created_dir {
        Some(dir) if std::fs::remove_dir(dir).is_ok() => {
            format!("; removed {}", dir.display())
        }
        Some(dir) if dir.exists() => format!("; {} is not empty and was left", dir.display()),
        _ => String::new(),
    }
}

/// The run directory (`--dir`): created if missing (and then removed at the end if empty),
/// and locked for this process, so a second run on it is refused naming this one.
pub struct RunDir {
    path: PathBuf,
    created: bool,
    lock: Option<DirLock>,
}

impl RunDir {
    /// Creates (if needed) and locks `path`.
    pub fn open(path: &Path) -> Result<RunDir> {
        let created = !path.exists();
        if created {
            std::fs::create_dir_all(path)
                .with_context(|| format!("cannot create run directory {}", path.display()))?;
        } else if !path.is_dir() {
            bail!(
                "--dir {} is not a directory: give a directory for the disk tier's file",
                path.display()
            );
        }
        let lock = match DirLock::acquire(path) {
            Ok(l) => l,
            Err(e) => {
                if created {
                    let _ = std::fs::remove_dir(path);
                }
                return Err(anyhow::anyhow!("--dir {e}"));
            }
        };
        let mut st = state();
        st.created_dir = created.then(|| path.to_path_buf());
        st.lock_file = Some(lock.path().to_path_buf());
        Ok(RunDir {
            path: path.to_path_buf(),
            created,
            lock: Some(lock),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        drop(self.lock.take());
        {
            let mut st = state();
            st.created_dir = None;
            st.lock_file = None;
        }
        if self.created && std::fs::remove_dir(&self.path).is_err() && self.path.exists() {
            eprintln!(
                "warning: run directory {} is not empty, so it was left in place",
                self.path.display()
            );
        }
    }
}
