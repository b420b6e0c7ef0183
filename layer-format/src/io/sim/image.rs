//! A filesystem image of the power-loss simulator: directories, names and inode data, and the
//! operations that change them.
//!
//! Invariants:
//! * `/` always exists; every other directory and file is reachable only if each of its
//!   ancestors is in `dirs` ([`Image::materialize`] drops the rest, as a directory whose entry
//!   was lost takes its contents with it).
//! * Inode data lives apart from names: a file's data can be durable while no durable name points
//!   to it, and a name can be durable while its data is not.
//! * Data is shared copy-on-write (`Arc`), so that snapshots at every persistence point are cheap.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An inode number.
pub type Ino = u64;

/// The sector size at which an unsynced write may be torn.
pub const SECTOR: usize = 512;

/// One recorded change. Each is made durable by an fsync: a `Write` by one of its inode, the
/// others by one of the directory they change ([`Op::dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mkdir`.
    Mkdir {
        /// The new directory.
        path: PathBuf,
    },
    /// `open(O_CREAT | O_EXCL)` of a new inode.
    Create {
        /// The name.
        path: PathBuf,
        /// The inode.
        ino: Ino,
    },
    /// `pwrite`.
    Write {
        /// The inode.
        ino: Ino,
        /// Where.
        offset: u64,
        /// What.
        data: Bytes,
    },
    /// `renameat2(RENAME_NOREPLACE)`.
    Rename {
        /// Old name.
        from: PathBuf,
        /// New name.
        to: PathBuf,
    },
    /// `link`.
    Link {
        /// Existing name.
        from: PathBuf,
        /// New name.
        to: PathBuf,
    },
    /// `unlink`.
    Unlink {
        /// The name.
        path: PathBuf,
    },
    /// `rm -r`: a directory and everything below it.
    RemoveDirAll {
        /// The directory.
        path: PathBuf,
    },
}

impl Op {
    /// The directory whose fsync makes this change durable; `None` for a write.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Op::Write { .. } => None,
            Op::Mkdir { path }
            | Op::Create { path, .. }
            | Op::Unlink { path }
            | Op::RemoveDirAll { path } => path.parent(),
            Op::Rename { to, .. } | Op::Link { to, .. } => to.parent(),
        }
    }
}

/// Directories, names and inode data.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Directories other than `/`.
    pub dirs: BTreeSet<PathBuf>,
    /// File names and their inodes.
    pub files: BTreeMap<PathBuf, Ino>,
    /// Inode data.
    pub data: HashMap<Ino, Arc<Vec<u8>>>,
}

fn dir_exists(dirs: &BTreeSet<PathBuf>, p: &Path) -> bool {
    p == Path::new("/") || dirs.contains(p)
}

impl Image {
    /// Whether `p` is a directory.
    pub fn is_dir(&self, p: &Path) -> bool {
        dir_exists(&self.dirs, p)
    }

    /// Applies `op`; false (and no change) where it cannot apply in this image (its source or
    /// parent is missing, its target exists), as when an earlier change it depends on did not
    /// survive.
    pub fn apply(&mut self, op: &Op) -> bool {
        self.apply_torn(op, None)
    }

    /// [`Image::apply`]; for a write, only the sectors `keep` marks (all if `None`).
    pub fn apply_torn(&mut self, op: &Op, keep: Option<&[bool]>) -> bool {
        let parent_ok =
            |dirs: &BTreeSet<PathBuf>, p: &Path| p.parent().is_some_and(|d| dir_exists(dirs, d));
        match op {
            Op::Mkdir { path } => {
                if !parent_ok(&self.dirs, path)
                    || self.is_dir(path)
                    || self.files.contains_key(path)
                {
                    return false;
                }
                self.dirs.insert(path.clone());
            }
            Op::Create { path, ino } => {
                if !parent_ok(&self.dirs, path)
                    || self.files.contains_key(path)
                    || self.is_dir(path)
                {
                    return false;
                }
                self.files.insert(path.clone(), *ino);
                self.data.entry(*ino).or_default();
            }
            Op::Write { ino, offset, data } => {
                let file = Arc::make_mut(self.data.entry(*ino).or_default());
                let start = crate::cast::usize_of(*offset);
                for (i, chunk) in data.chunks(SECTOR).enumerate() {
                    if keep.is_some_and(|k| !k.get(i).copied().unwrap_or(false)) {
                        continue;
                    }
                    let at = start + i * SECTOR;
                    if file.len() < at + chunk.len() {
                        file.resize(at + chunk.len(), 0);
                    }
                    file[at..at + chunk.len()].copy_from_slice(chunk);
                }
            }
            Op::Rename { from, to } | Op::Link { from, to } => {
                let Some(&ino) = self.files.get(from) else {
                    return false;
                };
                if !parent_ok(&self.dirs, to) || self.files.contains_key(to) || self.is_dir(to) {
                    return false;
                }
                if matches!(op, Op::Rename { .. }) {
                    self.files.remove(from);
                }
                self.files.insert(to.clone(), ino);
            }
            Op::Unlink { path } => {
                if self.files.remove(path).is_none() {
                    return false;
                }
            }
            Op::RemoveDirAll { path } => {
                if !self.is_dir(path) {
                    return false;
                }
                self.dirs.retain(|d| !d.starts_with(path));
                self.files.retain(|f, _| !f.starts_with(path));
            }
        }
        true
    }

    /// Every reachable file with its bytes, and every reachable directory (`None`): what a
    /// process sees after mounting this image.
    pub fn materialize(&self) -> BTreeMap<PathBuf, Option<Arc<Vec<u8>>>> {
        let reachable = |p: &Path| p.ancestors().skip(1).all(|a| dir_exists(&self.dirs, a));
        let mut out = BTreeMap::new();
        for d in &self.dirs {
            if reachable(d) {
                out.insert(d.clone(), None);
            }
        }
        for (f, ino) in &self.files {
            if reachable(f) {
                out.insert(
                    f.clone(),
                    Some(self.data.get(ino).cloned().unwrap_or_default()),
                );
            }
        }
        out
    }

    /// The image a process sees after mounting this one: unreachable entries dropped, inodes
    /// no name points to forgotten.
    pub fn mounted(&self) -> Image {
        let m = self.materialize();
        let mut out = Image::default();
        for (p, v) in m {
            match v {
                None => {
                    out.dirs.insert(p);
                }
                Some(_) => {
                    let ino = self.files[&p];
                    out.data.insert(ino, self.data[&ino].clone());
                    out.files.insert(p, ino);
                }
            }
        }
        out
    }

    /// A hash of what [`Image::materialize`] shows (names and bytes; inode numbers apart from
    /// which names share one), to recognise crash states that look the same.
    pub fn content_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (p, v) in self.materialize() {
            p.hash(&mut h);
            match v {
                None => 0u8.hash(&mut h),
                Some(d) => {
                    1u8.hash(&mut h);
                    crc32c::crc32c(&d).hash(&mut h);
                    d.len().hash(&mut h);
                }
            }
        }
        h.finish()
    }
}
