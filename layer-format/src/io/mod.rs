//! The I/O engine: the only way this project touches the filesystem.
//!
//! A deliberately narrow interface (create exclusive, write at, read at, fsync, rename without
//! replace, link, unlink, directory fsync, list, mkdir) with two implementations:
//!
//! * [`StdEngine`]: plain blocking system calls (`pwrite`, `pread`, `fsync`, `renameat2`).
//! * [`UringEngine`]: file data I/O (reads, writes, fsync) through `tokio-uring` on a dedicated
//!   thread; namespace operations (rename, link, unlink, directory fsync) are single system calls
//!   with nothing to batch, so it performs them as the std engine does.
//!
//! Keeping the interface this small is what lets a third, simulated implementation record every
//! operation and replay crash states (the power-loss tests).
//!
//! Every method blocks the calling thread until the operation is complete. Async callers run
//! layer I/O on blocking threads (`spawn_blocking`), never on a runtime worker.

mod mem;
#[cfg(any(test, feature = "testing"))]
pub mod sim;
mod std_engine;
mod uring_engine;

pub use mem::MemFile;
pub use std_engine::StdEngine;
pub use uring_engine::UringEngine;

use bytes::Bytes;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

/// An open file of an [`IoEngine`]. Closed when dropped.
pub trait IoFile: Send + Sync + fmt::Debug {
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes the concatenation of `bufs` at `offset` with vectored writes (`pwritev`), so
    /// that buffers gathered from several places reach the kernel without being copied first.
    fn write_vectored_all_at(&self, bufs: Vec<Bytes>, offset: u64) -> io::Result<()>;
    /// Fills `buf` from `offset`; `UnexpectedEof` if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Starts writing back `len` bytes from `offset` to the device without waiting for it
    /// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`): a hint that makes a later
    /// [`IoFile::fsync`] shorter, never a promise of durability. Only the start is asked
    /// for: a wait flag would consume a writeback error that the fsync must still report. An
    /// engine that cannot give the hint does nothing.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (`fsync`).
    fn fsync(&self) -> io::Result<()>;
    /// The current size of the file in bytes.
    fn size(&self) -> io::Result<u64>;
}

/// The filesystem operations production code may use.
pub trait IoEngine: Send + Sync + fmt::Debug {
    /// Which implementation this is.
    fn kind(&self) -> EngineKind;
    /// Creates a new file for reading and writing; fails with `AlreadyExists` if the name is
    /// taken (`O_CREAT | O_EXCL`).
    fn create_exclusive(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;
    /// Opens an existing file read-only.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>>;
    /// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists
    /// (`renameat2(RENAME_NOREPLACE)`). Filesystems without the flag answer `EINVAL`
    /// (`io::Error::raw_os_error() == Some(libc EINVAL)`).
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates the hard link `to` for `from`, failing with `AlreadyExists` if `to` exists.
    fn link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file name.
    fn unlink(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of a directory durable (fsync of the directory).
    fn fsync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names in a directory, unsorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// What kind of entry `path` is, and its size (without following a final symlink).
    fn stat(&self, path: &Path) -> io::Result<FileStat>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
}

/// What [`IoEngine::stat`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// A directory.
    pub is_dir: bool,
    /// A regular file.
    pub is_file: bool,
    /// Size in bytes.
    pub size: u64,
}

/// The most buffers one vectored write system call accepts (Linux `UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;

/// The implementation behind an [`IoEngine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// Blocking system calls.
    Std,
    /// io_uring through `tokio-uring`.
    Uring,
}

/// The `io_engine` setting: which engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// The engine measured fastest for every operation the benchmarks time: today the std
    /// engine (`cargo bench -p layer-format`, docs/performance.md: io_uring's point reads cost
    /// thread hand-offs that make them 20-70 times slower, and its writes were not faster).
    #[default]
    Auto,
    /// io_uring or fail.
    Uring,
    /// Blocking system calls.
    Std,
}

impl FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<EngineChoice, String> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "uring" => Ok(EngineChoice::Uring),
            "std" => Ok(EngineChoice::Std),
            other => Err(format!(
                "unknown io_engine {other:?}: expected auto, uring or std"
            )),
        }
    }
}

/// Opens the engine `choice` asks for.
pub fn open_engine(choice: EngineChoice) -> io::Result<Arc<dyn IoEngine>> {
    match choice {
        EngineChoice::Std => Ok(Arc::new(StdEngine)),
        EngineChoice::Uring => Ok(Arc::new(UringEngine::start()?)),
        EngineChoice::Auto => Ok(Arc::new(StdEngine)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_parses() {
        assert_eq!("auto".parse(), Ok(EngineChoice::Auto));
        assert_eq!("uring".parse(), Ok(EngineChoice::Uring));
        assert_eq!("std".parse(), Ok(EngineChoice::Std));
        assert!("epoll".parse::<EngineChoice>().is_err());
    }

    /// The default picks the engine measured fastest for every benchmarked operation
    /// (docs/performance.md, "The default engine"): std, today.
    #[test]
    fn auto_is_the_engine_measured_fastest() {
        assert_eq!(EngineChoice::default(), EngineChoice::Auto);
        assert_eq!(
            open_engine(EngineChoice::Auto).unwrap().kind(),
            EngineKind::Std
        );
    }

    /// Both engines behave the same for every operation of the interface.
    #[test]
    fn engines_agree() {
        for engine in [
            open_engine(EngineChoice::Std).unwrap(),
            open_engine(EngineChoice::Uring).unwrap(),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let a = dir.path().join("a");
            let f = engine.create_exclusive(&a).unwrap();
            assert_eq!(
                engine.create_exclusive(&a).unwrap_err().kind(),
                io::ErrorKind::AlreadyExists,
                "{engine:?}"
            );
            f.write_all_at(b"hello world", 0).unwrap();
            f.write_all_at(b"W", 6).unwrap();
            // A vectored write of more buffers than one system call takes.
            let many: Vec<Bytes> = (0..IOV_MAX + 5)
                .map(|i| Bytes::from(vec![i as u8; 3]))
                .collect();
            f.write_vectored_all_at(many, 11).unwrap();
            let mut back = vec![0u8; (IOV_MAX + 5) * 3];
            f.read_exact_at(&mut back, 11).unwrap();
            assert!(
                back.chunks(3).enumerate().all(|(i, c)| c == [i as u8; 3]),
                "{engine:?}"
            );
            // The writeback hint leaves the bytes as they are, and a range past what a file
            // offset can hold is refused rather than truncated.
            f.start_writeback(0, 11).unwrap();
            if engine.kind() == EngineKind::Std {
                assert_eq!(
                    f.start_writeback(u64::MAX, 1).unwrap_err().kind(),
                    io::ErrorKind::InvalidInput
                );
            }
            f.fsync().unwrap();
            assert_eq!(f.size().unwrap(), 11 + (IOV_MAX as u64 + 5) * 3);
            let mut buf = [0u8; 5];
            f.read_exact_at(&mut buf, 6).unwrap();
            assert_eq!(&buf, b"World");
            let err = f
                .read_exact_at(&mut buf, f.size().unwrap() - 2)
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{engine:?}");
            drop(f);

            let b = dir.path().join("b");
            std::fs::write(&b, b"other").unwrap();
            let err = engine.rename_noreplace(&a, &b).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
            assert_eq!(std::fs::read(&b).unwrap(), b"other");
            assert_eq!(
                engine.link(&a, &b).unwrap_err().kind(),
                io::ErrorKind::AlreadyExists
            );
            let c = dir.path().join("c");
            engine.rename_noreplace(&a, &c).unwrap();
            engine.link(&c, &a).unwrap();
            engine.unlink(&c).unwrap();
            engine.fsync_dir(dir.path()).unwrap();
            let mut names = engine.list_dir(dir.path()).unwrap();
            names.sort();
            assert_eq!(names, vec![OsString::from("a"), OsString::from("b")]);
            let r = engine.open_read(&a).unwrap();
            let mut all = [0u8; 11];
            r.read_exact_at(&mut all, 0).unwrap();
            assert_eq!(&all, b"hello World");
            assert!(r.write_all_at(b"x", 0).is_err(), "read-only handle");
            engine.create_dir_all(&dir.path().join("x/y")).unwrap();
            assert!(engine.stat(&dir.path().join("x/y")).unwrap().is_dir);
            let st = engine.stat(&a).unwrap();
            assert!(st.is_file && !st.is_dir && st.size == 11 + (IOV_MAX as u64 + 5) * 3);
            assert_eq!(
                engine.stat(&dir.path().join("nope")).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
            engine.remove_dir_all(&dir.path().join("x")).unwrap();
            assert!(!dir.path().join("x").exists());
        }
    }
}
