//! The writer's flusher: a helper thread that checksums gathered chunks and writes them to the
//! temp file, so that gathering the next chunk overlaps the checksum and the write of the
//! previous one. It keeps the CRC32C of the whole file, in file order, and returns it with the
//! file's size; after each write it asks the kernel to start writing that range back, so that
//! the writer's final fsync waits for the tail only.
//!
//! Written buffers that were the writer's scratch (none but the flusher holds them any more,
//! and they have a scratch buffer's capacity) go back to the writer as spares, through a
//! bounded channel that the flusher never waits on.
//!
//! At most [`DEPTH`] chunks wait in the channel and one is being written, so memory stays
//! bounded. Chunks are written in submission order at increasing offsets. The first write
//! error ends the thread; the writer sees it at its next submission or at `finish`.

use crate::LayerError;
use crate::error::Result;
use crate::io::IoFile;
use bytes::{Bytes, BytesMut};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// One write of a chunk (failpoint `layer-write`: `return` fails it with `ENOSPC`, as a full
/// filesystem would).
fn write(file: &dyn IoFile, segments: Vec<Bytes>, offset: u64) -> std::io::Result<()> {
    fail::fail_point!("layer-write", |_| Err(std::io::Error::from_raw_os_error(
        rustix::io::Errno::NOSPC.raw_os_error()
    )));
    file.write_vectored_all_at(segments, offset)
}

/// Chunks queued between the writer and the flusher thread.
const DEPTH: usize = 1;

/// What the flusher wrote: the file's size and the CRC32C of all of it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flushed {
    pub(super) size: u64,
    pub(super) crc: u32,
}

pub(super) struct Flusher {
    tx: Option<SyncSender<Vec<Bytes>>>,
    /// Written scratch buffers coming back, emptied.
    spares: Receiver<BytesMut>,
    /// Capacity of a scratch buffer.
    scratch_capacity: usize,
    /// Ends with the size of the file and the CRC32C of all of it.
    thread: Option<JoinHandle<Result<Flushed>>>,
    /// The temp file, for the error of a writer used after a failure.
    path: PathBuf,
}

impl Flusher {
    pub(super) fn start(
        file: Arc<dyn IoFile>,
        path: PathBuf,
        scratch_capacity: usize,
    ) -> Result<Flusher> {
        let failed_path = path.clone();
        let (tx, rx) = sync_channel::<Vec<Bytes>>(DEPTH);
        let (spare_tx, spares) = sync_channel::<BytesMut>(DEPTH + 1);
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("layer-flusher".into())
            .spawn(move || {
                let (mut offset, mut crc) = (0u64, 0u32);
                for segments in rx {
                    let len: u64 = segments.iter().map(|s| s.len() as u64).sum();
                    crc = segments
                        .iter()
                        .fold(crc, |crc, s| crc32c::crc32c_append(crc, s));
                    // Handles kept to learn, after the write, which buffers only we hold.
                    let written = segments.clone();
                    write(&*file, segments, offset).map_err(|source| LayerError::Io {
                        op: "write",
                        path: thread_path.clone(),
                        offset: Some(offset),
                        source,
                    })?;
                    // Queue what was just written for writeback, so that the final fsync
                    // waits for the tail rather than the whole file. Only a hint: an error
                    // here changes nothing that fsync does not check again.
                    let _ = file.start_writeback(offset, len);
                    offset += len;
                    for buf in written {
                        if let Ok(mut spare) = buf.try_into_mut()
                            && spare.capacity() >= scratch_capacity
                        {
                            spare.clear();
                            // Full: the writer has spares enough, and this one is freed.
                            let _ = spare_tx.try_send(spare);
                        }
                    }
                }
                Ok(Flushed { size: offset, crc })
            })
            .map_err(|e| LayerError::io("start flusher thread for", path, e))?;
        Ok(Flusher {
            tx: Some(tx),
            spares,
            scratch_capacity,
            thread: Some(thread),
            path: failed_path,
        })
    }

    /// Queues a chunk for writing; blocks while [`DEPTH`] chunks are already queued.
    pub(super) fn submit(&mut self, segments: Vec<Bytes>) -> Result<()> {
        let Some(tx) = self.tx.as_ref() else {
            // A caller that goes on after an error gets an error again, not a panic.
            let source = std::io::Error::other("an earlier write of this layer failed");
            return Err(LayerError::io("write", self.path.clone(), source));
        };
        if tx.send(segments).is_err() {
            // The thread ended early: it met a write error.
            return Err(match self.join() {
                Err(e) => e,
                Ok(_) => unreachable!("a flusher thread only stops early on error"),
            });
        }
        Ok(())
    }

    /// An empty scratch buffer: a written one if the flusher has given one back, else new.
    pub(super) fn spare(&self) -> BytesMut {
        self.spares
            .try_recv()
            .unwrap_or_else(|_| BytesMut::with_capacity(self.scratch_capacity))
    }

    /// Waits for every queued chunk to be written; returns the file's size and CRC32C.
    pub(super) fn finish(mut self) -> Result<Flushed> {
        self.join()
    }

    fn join(&mut self) -> Result<Flushed> {
        drop(self.tx.take());
        let Some(thread) = self.thread.take() else {
            let source = std::io::Error::other("an earlier write of this layer failed");
            return Err(LayerError::io("write", self.path.clone(), source));
        };
        match thread.join() {
            Ok(outcome) => outcome,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // An abandoned writer: wait until the thread no longer touches the file.
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{EngineChoice, open_engine};

    /// A written scratch buffer comes back as a spare, emptied and with its capacity, so the
    /// writer reuses it instead of allocating; a caller's value (smaller capacity) does not.
    #[test]
    fn written_scratch_buffers_come_back_as_spares() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = open_engine(EngineChoice::Std).expect("engine");
        let path = dir.path().join("f");
        let file: Arc<dyn IoFile> = engine.create_exclusive(&path).expect("create").into();
        let capacity = 64 * 1024;
        let mut flusher = Flusher::start(file, path.clone(), capacity).expect("start");
        let mut scratch = BytesMut::with_capacity(capacity);
        scratch.extend_from_slice(&[7u8; 1000]);
        let scratch_at = scratch.as_ptr();
        let value = Bytes::from(vec![9u8; 2000]);
        flusher
            .submit(vec![scratch.freeze(), value])
            .expect("submit");
        let spare = flusher
            .spares
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the written scratch buffer comes back");
        assert_eq!(spare.as_ptr(), scratch_at, "the same buffer");
        assert!(spare.is_empty() && spare.capacity() >= capacity);
        assert!(
            flusher.spares.try_recv().is_err(),
            "the value is not a spare"
        );
        let flushed = flusher.finish().expect("finish");
        assert_eq!(flushed.size, 3000);
        let mut expected = vec![7u8; 1000];
        expected.extend([9u8; 2000]);
        assert_eq!(std::fs::read(&path).expect("read"), expected);
        assert_eq!(flushed.crc, crc32c::crc32c(&expected));
    }
}
