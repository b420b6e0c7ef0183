//! An in-memory, read-only [`IoFile`]: lets the reader run on bytes that never touched a disk
//! (the fuzz target, and tests that mangle files byte by byte).

use super::IoFile;
use std::io;

/// A read-only file whose contents are a byte vector.
#[derive(Debug, Clone)]
pub struct MemFile(pub Vec<u8>);

impl IoFile for MemFile {
    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "MemFile is read-only",
        ))
    }
    fn write_vectored_all_at(&self, _bufs: Vec<bytes::Bytes>, _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "MemFile is read-only",
        ))
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn fsync(&self) -> io::Result<()> {
        Ok(())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}
