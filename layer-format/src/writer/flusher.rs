//! The writer's flusher: a helper thread that checksums gathered chunks and writes them to the
//! temp file, so that gathering the next chunk overlaps the checksum and the write of the
//! previous one. It keeps the CRC32C of the whole file, in file order, and returns it with the
//! file's size; after each write it asks the kernel to start writing that range back, so that
//! the writer's final fsync waits for the tail only.
//!
//! At most [`DEPTH`] chunks wait in the channel and one is being written, so memory stays
//! bounded. Chunks are written in submission order at increasing offsets. The first write
//! error ends the thread; the writer sees it at its next submission or at `finish`.

use crate::LayerError;
use crate::error::Result;
use crate::io::IoFile;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
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
    /// Ends with the size of the file and the CRC32C of all of it.
    thread: Option<JoinHandle<Result<Flushed>>>,
    /// The temp file, for the error of a writer used after a failure.
    path: PathBuf,
}

impl Flusher {
    pub(super) fn start(file: Arc<dyn IoFile>, path: PathBuf) -> Result<Flusher> {
        let failed_path = path.clone();
        let (tx, rx) = sync_channel::<Vec<Bytes>>(DEPTH);
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
                }
                Ok(Flushed { size: offset, crc })
            })
            .map_err(|e| LayerError::io("start flusher thread for", path, e))?;
        Ok(Flusher {
            tx: Some(tx),
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
            return Err(self
                .join()
                .expect_err("a flusher thread only stops early on error"));
        }
        Ok(())
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
