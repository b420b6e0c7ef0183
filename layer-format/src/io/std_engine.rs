//! The std engine: blocking system calls. Also the home of the namespace operations that the
//! io_uring engine shares.

use super::{EngineKind, FileStat, IOV_MAX, IoEngine, IoFile};
use bytes::Bytes;
use rustix::fs::{CWD, RenameFlags};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Blocking system calls through `std` and `rustix`.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdEngine;

#[derive(Debug)]
struct StdFile(File);

impl IoFile for StdFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn write_vectored_all_at(&self, bufs: Vec<Bytes>, mut offset: u64) -> io::Result<()> {
        for group in bufs.chunks(IOV_MAX) {
            let mut slices: Vec<IoSlice<'_>> = group.iter().map(|b| IoSlice::new(b)).collect();
            let mut rest = &mut slices[..];
            IoSlice::advance_slices(&mut rest, 0);
            while !rest.is_empty() {
                let n = match rustix::io::pwritev(&self.0, rest, offset) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
        }
        Ok(())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        start_writeback(&self.0, offset, len)
    }
    fn fsync(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

/// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`: queue the range's dirty pages
/// for writeback and return (rustix does not wrap this call).
#[expect(
    unsafe_code,
    reason = "the one FFI call of the workspace: sync_file_range has no safe wrapper in rustix or nix"
)]
pub(super) fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is open for the life of `file`; the call reads no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens a new file with `O_CREAT | O_EXCL | O_CLOEXEC`, mode 0644.
pub(super) fn create_exclusive_std(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
}

pub(super) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    rustix::fs::fsync(&fd).map_err(io::Error::from)
}

pub(super) fn stat(path: &Path) -> io::Result<FileStat> {
    let m = std::fs::symlink_metadata(path)?;
    Ok(FileStat {
        is_dir: m.is_dir(),
        is_file: m.is_file(),
        size: m.len(),
    })
}

pub(super) fn list_dir(dir: &Path) -> io::Result<Vec<OsString>> {
    std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

impl IoEngine for StdEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Std
    }
    fn create_exclusive(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(StdFile(create_exclusive_std(path)?)))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(StdFile(File::open(path)?)))
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        rename_noreplace(from, to)
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        fsync_dir(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        stat(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }
}
