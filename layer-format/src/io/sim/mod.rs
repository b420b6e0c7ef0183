//! The power-loss simulator: an [`IoEngine`] that keeps every file and directory in memory
//! twice, as the running process sees it (volatile) and as it would survive a power cut
//! (durable), records every operation, and at each persistence point (every `fsync` of a file or
//! a directory) snapshots what is durable and what is not yet. [`crash`] turns those snapshots
//! into crash states.
//!
//! The persistence model is Linux's, taken at its weakest (what POSIX and the kernel promise,
//! not what ext4 happens to do):
//! * A write is durable once its inode is fsynced; before, any subset of the unsynced writes
//!   may survive, each possibly torn at sector granularity ([`image::SECTOR`]).
//! * A directory entry change (create, mkdir, rename, link, unlink) is durable once its
//!   directory is fsynced; before, it may or may not survive, independently of the others,
//!   and of the data of the file it names. A directory's own entry is in its parent.
//! * A failed fsync reports the error once; the writes it covered are then clean but not
//!   durable: the process still reads them, a later fsync succeeds without persisting them, and
//!   a power cut loses them. After an injected failure the simulator flags (I2) any rename or
//!   link of that inode and any open of it for reading.
//!
//! Deliberately broken variants ([`Variant`]) rearrange the operations of the code under test,
//! so that tests can show that the explorer finds the crash states that break them.

pub mod crash;
mod file;
pub mod image;

use super::{EngineKind, FileStat, IoEngine, IoFile};
use file::SimFile;
use image::{Image, Ino, Op};
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// A broken variant of the write path, played by the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// The real sequence of operations.
    #[default]
    Correct,
    /// A directory fsync that directly follows a rename or link into that directory is skipped.
    NoDirFsyncAfterRename,
    /// The fsync of a file that has no final name yet is postponed until just after the file is
    /// renamed or linked: the rename happens before the file fsync.
    RenameBeforeFsync,
}

/// The durable image and the unsynced operations at one persistence point.
#[derive(Debug, Clone)]
pub struct Point {
    /// What the code under test was doing (set with [`SimEngine::set_label`]).
    pub label: String,
    /// A value the test attached before this point (its acknowledged LSN, for example).
    pub acked: u64,
    /// What survives a power cut here for certain.
    pub durable: Image,
    /// Operations done but not yet durable, in order.
    pub pending: Vec<Op>,
}

#[derive(Debug, Default)]
struct State {
    volatile: Image,
    durable: Image,
    pending: Vec<Op>,
    next_ino: Ino,
    points: Vec<Point>,
    recording: bool,
    label: String,
    acked: u64,
    variant: Variant,
    /// File fsyncs left before one fails (`None`: none fails).
    fail_fsync_in: Option<u64>,
    /// The files whose fsync `fail_fsync_in` made fail (their names then).
    fsyncs_failed: Vec<PathBuf>,
    /// Operations the broken variant changed (a directory fsync skipped, a file fsync moved).
    variant_hits: u64,
    failed: HashSet<Ino>,
    deferred_fsync: HashSet<Ino>,
    /// The bytes of every file when it was renamed or linked under each name.
    published: Vec<(PathBuf, Arc<Vec<u8>>)>,
    violations: Vec<String>,
    last_dir_op: std::collections::HashMap<PathBuf, bool>,
}

/// The simulated engine; clones share one filesystem.
#[derive(Debug, Clone, Default)]
pub struct SimEngine {
    state: Arc<Mutex<State>>,
}

fn enoent(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", p.display()),
    )
}

fn eexist(p: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{}: exists", p.display()),
    )
}

impl SimEngine {
    /// An empty filesystem (only `/`), recording persistence points.
    pub fn new(variant: Variant) -> SimEngine {
        let e = SimEngine::default();
        {
            let mut s = e.lock();
            s.recording = true;
            s.variant = variant;
            s.next_ino = 1;
        }
        e
    }

    /// An empty filesystem (only `/`) that records no persistence points: for simulations
    /// that need a deterministic in-memory filesystem, not crash states.
    pub fn unrecorded() -> SimEngine {
        let e = SimEngine::new(Variant::Correct);
        e.lock().recording = false;
        e
    }

    /// A filesystem that starts as `image` (everything in it durable), not recording.
    pub fn from_image(image: &Image) -> SimEngine {
        let e = SimEngine::default();
        {
            let mut s = e.lock();
            let mounted = image.mounted();
            s.next_ino = mounted.data.keys().max().copied().unwrap_or(0) + 1;
            s.volatile = mounted.clone();
            s.durable = mounted;
        }
        e
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Names what the code under test does from now on (carried by each point).
    pub fn set_label(&self, label: &str) {
        self.lock().label = label.to_string();
    }

    /// Attaches `acked` to every later point.
    pub fn set_acked(&self, acked: u64) {
        self.lock().acked = acked;
    }

    /// The `n`th file fsync from now (0: the next one) fails with `EIO`.
    pub fn fail_fsync_in(&self, n: u64) {
        self.lock().fail_fsync_in = Some(n);
    }

    /// Records a final persistence point (a power cut after the last operation).
    pub fn end(&self) {
        let mut s = self.lock();
        s.snapshot();
    }

    /// Every persistence point recorded.
    pub fn points(&self) -> Vec<Point> {
        self.lock().points.clone()
    }

    /// The bytes each final name had when it was published (renamed or linked to), while
    /// recording.
    pub fn published(&self) -> Vec<(PathBuf, Arc<Vec<u8>>)> {
        self.lock().published.clone()
    }

    /// The files whose fsync [`SimEngine::fail_fsync_in`] made fail, by their names then.
    pub fn fsyncs_failed(&self) -> Vec<PathBuf> {
        self.lock().fsyncs_failed.clone()
    }

    /// Operations the broken variant changed: directory fsyncs skipped
    /// ([`Variant::NoDirFsyncAfterRename`]) or file fsyncs moved after a rename
    /// ([`Variant::RenameBeforeFsync`]). Zero means the variant never played.
    pub fn variant_hits(&self) -> u64 {
        self.lock().variant_hits
    }

    /// I2 violations seen: a file published or read back after its fsync failed.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// What the process sees now.
    pub fn volatile(&self) -> Image {
        self.lock().volatile.clone()
    }
}

impl State {
    fn snapshot(&mut self) {
        if self.recording {
            self.points.push(Point {
                label: self.label.clone(),
                acked: self.acked,
                durable: self.durable.clone(),
                pending: self.pending.clone(),
            });
        }
    }

    fn record(&mut self, op: Op) {
        let applied = self.volatile.apply(&op);
        debug_assert!(applied, "checked before recording: {op:?}");
        if let Some(d) = op.dir() {
            let into = matches!(op, Op::Rename { .. } | Op::Link { .. });
            self.last_dir_op.insert(d.to_path_buf(), into);
        }
        self.pending.push(op);
    }

    fn fsync_file(&mut self, ino: Ino) -> io::Result<()> {
        if let Some(n) = self.fail_fsync_in {
            if n == 0 {
                self.fail_fsync_in = None;
                let names = self
                    .volatile
                    .files
                    .iter()
                    .filter(|(_, i)| **i == ino)
                    .map(|(p, _)| p.clone());
                self.fsyncs_failed.extend(names);
                self.snapshot();
                // Linux: the error is reported once; the pages are clean but never durable.
                self.pending
                    .retain(|op| !matches!(op, Op::Write { ino: i, .. } if *i == ino));
                self.failed.insert(ino);
                return Err(io::Error::from_raw_os_error(5));
            }
            self.fail_fsync_in = Some(n - 1);
        }
        self.snapshot();
        let (mine, rest): (Vec<Op>, Vec<Op>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|op| matches!(op, Op::Write { ino: i, .. } if *i == ino));
        for op in &mine {
            self.durable.apply(op);
        }
        self.pending = rest;
        Ok(())
    }

    fn fsync_dir(&mut self, dir: &Path) {
        self.snapshot();
        let (mine, rest): (Vec<Op>, Vec<Op>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|op| {
                op.dir() == Some(dir)
                    || matches!(op, Op::Rename { from, .. } if from.parent() == Some(dir))
            });
        let mut still = Vec::new();
        for op in mine {
            // A change whose own prerequisite is not durable yet (a rename of a file whose
            // creation in another directory is unsynced) stays pending.
            if !self.durable.apply(&op) {
                still.push(op);
            }
        }
        self.pending = rest;
        self.pending.extend(still);
    }

    fn check_parent(&self, p: &Path) -> io::Result<()> {
        match p.parent() {
            Some(d) if self.volatile.is_dir(d) => Ok(()),
            _ => Err(enoent(p)),
        }
    }

    fn publish_check(&mut self, from: &Path, to: &Path) {
        let Some(&ino) = self.volatile.files.get(from) else {
            return;
        };
        if self.failed.contains(&ino) {
            self.violations.push(format!(
                "{} published as {} after its fsync failed",
                from.display(),
                to.display()
            ));
        }
        let bytes = self.volatile.data.get(&ino).cloned().unwrap_or_default();
        if self.recording {
            self.published.push((to.to_path_buf(), bytes));
        }
    }

    fn after_publish(&mut self, to: &Path) -> io::Result<()> {
        if self.variant == Variant::RenameBeforeFsync
            && let Some(&ino) = self.volatile.files.get(to)
            && self.deferred_fsync.remove(&ino)
        {
            return self.fsync_file(ino);
        }
        Ok(())
    }
}

impl SimEngine {
    /// A rename (or link) that refuses to replace an existing name.
    fn publish(&self, from: &Path, to: &Path, link: bool) -> io::Result<()> {
        let mut s = self.lock();
        if !s.volatile.files.contains_key(from) {
            return Err(enoent(from));
        }
        s.check_parent(to)?;
        if s.volatile.files.contains_key(to) || s.volatile.is_dir(to) {
            return Err(eexist(to));
        }
        s.publish_check(from, to);
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        let target = to.clone();
        s.record(if link {
            Op::Link { from, to }
        } else {
            Op::Rename { from, to }
        });
        s.after_publish(&target)
    }
}

impl IoEngine for SimEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Std
    }

    fn create_exclusive(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let mut s = self.lock();
        s.check_parent(path)?;
        if s.volatile.files.contains_key(path) || s.volatile.is_dir(path) {
            return Err(eexist(path));
        }
        let ino = s.next_ino;
        s.next_ino += 1;
        s.record(Op::Create {
            path: path.to_path_buf(),
            ino,
        });
        Ok(Box::new(SimFile {
            engine: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let mut s = self.lock();
        let ino = *s.volatile.files.get(path).ok_or_else(|| enoent(path))?;
        if s.failed.contains(&ino) {
            s.violations.push(format!(
                "{} opened for reading after its fsync failed",
                path.display()
            ));
        }
        Ok(Box::new(SimFile {
            engine: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.publish(from, to, false)
    }

    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.publish(from, to, true)
    }

    fn unlink(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.volatile.files.contains_key(path) {
            return Err(enoent(path));
        }
        s.record(Op::Unlink {
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.volatile.is_dir(dir) {
            return Err(enoent(dir));
        }
        if s.variant == Variant::NoDirFsyncAfterRename
            && s.last_dir_op.get(dir).copied().unwrap_or(false)
        {
            s.variant_hits += 1;
            return Ok(());
        }
        s.fsync_dir(dir);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let s = self.lock();
        if !s.volatile.is_dir(dir) {
            return Err(enoent(dir));
        }
        let child = |p: &PathBuf| {
            (p.parent() == Some(dir)).then(|| p.file_name().map(|n| n.to_os_string()))?
        };
        let mut out: Vec<OsString> = s.volatile.dirs.iter().filter_map(child).collect();
        out.extend(s.volatile.files.keys().filter_map(child));
        Ok(out)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !s.volatile.is_dir(a))
            .map(Path::to_path_buf)
            .collect();
        for d in missing.into_iter().rev() {
            if s.volatile.files.contains_key(&d) {
                return Err(eexist(&d));
            }
            s.record(Op::Mkdir { path: d });
        }
        Ok(())
    }

    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        let s = self.lock();
        if s.volatile.is_dir(path) {
            return Ok(FileStat {
                is_dir: true,
                is_file: false,
                size: 0,
            });
        }
        let ino = s.volatile.files.get(path).ok_or_else(|| enoent(path))?;
        Ok(FileStat {
            is_dir: false,
            is_file: true,
            size: s.volatile.data.get(ino).map_or(0, |d| d.len() as u64),
        })
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if !s.volatile.is_dir(dir) {
            return Err(enoent(dir));
        }
        s.record(Op::RemoveDirAll {
            path: dir.to_path_buf(),
        });
        Ok(())
    }
}
