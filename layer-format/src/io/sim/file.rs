//! An open file of the simulator: writes are recorded as operations, reads see the volatile
//! image, fsync makes the inode's data durable (or, in [`Variant::RenameBeforeFsync`], defers
//! it until the file is published).

use super::image::{Ino, Op};
use super::{SimEngine, Variant, enoent};
use crate::io::IoFile;
use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};

/// An open file of the simulator.
#[derive(Debug)]
pub(super) struct SimFile {
    pub(super) engine: SimEngine,
    pub(super) ino: Ino,
    pub(super) path: PathBuf,
}

impl IoFile for SimFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.engine.lock().record(Op::Write {
            ino: self.ino,
            offset,
            data: Bytes::copy_from_slice(buf),
        });
        Ok(())
    }

    fn write_vectored_all_at(&self, bufs: Vec<Bytes>, offset: u64) -> io::Result<()> {
        let mut joined = Vec::with_capacity(bufs.iter().map(Bytes::len).sum());
        for b in &bufs {
            joined.extend_from_slice(b);
        }
        self.engine.lock().record(Op::Write {
            ino: self.ino,
            offset,
            data: Bytes::from(joined),
        });
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.engine.lock();
        let data = s
            .volatile
            .data
            .get(&self.ino)
            .ok_or_else(|| enoent(&self.path))?;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| data.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn fsync(&self) -> io::Result<()> {
        let mut s = self.engine.lock();
        if s.variant == Variant::RenameBeforeFsync
            && !s
                .volatile
                .files
                .iter()
                .any(|(p, i)| *i == self.ino && !is_temp(p))
        {
            s.deferred_fsync.insert(self.ino);
            s.variant_hits += 1;
            return Ok(());
        }
        s.fsync_file(self.ino)
    }

    fn size(&self) -> io::Result<u64> {
        let s = self.engine.lock();
        Ok(s.volatile.data.get(&self.ino).map_or(0, |d| d.len() as u64))
    }
}

fn is_temp(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(crate::name::is_temp_file_name)
}
