//! The writer's flusher: a helper thread that writes filled buffers to the temp file and
//! computes the whole-file CRC32C, so that encoding the next buffer overlaps the write of the
//! previous one.
//!
//! A fixed set of `DEPTH + 2` buffers circulates (the one being filled, [`DEPTH`] queued, the
//! one being written), so memory stays bounded and buffers stay warm.
//! Buffers are written in submission order at increasing offsets, so the CRC is that of the
//! file's bytes in order. The first write error ends the thread; the writer sees it at its
//! next submission or at `finish`.

use crate::LayerError;
use crate::error::Result;
use crate::io::IoFile;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Buffers queued between the writer and the flusher thread.
const DEPTH: usize = 1;

/// What the thread hands back at the end: the CRC of everything written and the byte count.
type Outcome = Result<(u32, u64)>;

pub(super) struct Flusher {
    tx: Option<SyncSender<Vec<u8>>>,
    recycled: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Outcome>>,
}

impl Flusher {
    pub(super) fn start(file: Arc<dyn IoFile>, path: PathBuf, capacity: usize) -> Result<Flusher> {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        // Buffers in circulation: one being filled, DEPTH queued, one being written. All but
        // the first wait in the recycling channel; reusing them keeps their pages warm.
        let (recycle_tx, recycled) = sync_channel::<Vec<u8>>(DEPTH + 1);
        for _ in 0..DEPTH + 1 {
            recycle_tx
                .send(Vec::with_capacity(capacity))
                .expect("channel has room");
        }
        let thread = std::thread::Builder::new()
            .name("layer-flusher".into())
            .spawn(move || {
                let (mut crc, mut offset) = (0u32, 0u64);
                for buf in rx {
                    let len = buf.len() as u64;
                    let (mut buf, res) = file.write_all_at_owned(buf, offset);
                    res.map_err(|source| LayerError::Io {
                        op: "write",
                        path: path.clone(),
                        offset: Some(offset),
                        source,
                    })?;
                    crc = crc32c::crc32c_append(crc, &buf);
                    offset += len;

                    buf.clear();
                    // The writer may already be gone (finish); then the buffer is freed.
                    let _ = recycle_tx.send(buf);
                }
                Ok((crc, offset))
            })
            .map_err(|e| LayerError::io("start flusher thread for", PathBuf::new(), e))?;
        Ok(Flusher {
            tx: Some(tx),
            recycled,
            thread: Some(thread),
        })
    }

    /// Queues `buf` for writing and returns an empty buffer to fill next.
    pub(super) fn submit(&mut self, buf: Vec<u8>) -> Result<Vec<u8>> {
        let tx = self.tx.as_ref().expect("flusher used after finish");
        if tx.send(buf).is_err() {
            // The thread ended early: it met a write error.
            return Err(self
                .join()
                .expect_err("a flusher thread only stops early on error"));
        }
        match self.recycled.recv() {
            Ok(buf) => Ok(buf),
            // The thread stopped on an error and dropped its end.
            Err(_) => Err(self
                .join()
                .expect_err("a flusher thread only stops early on error")),
        }
    }

    /// Waits for every queued buffer to be written; returns the CRC and the size written.
    pub(super) fn finish(mut self) -> Outcome {
        self.join()
    }

    fn join(&mut self) -> Outcome {
        drop(self.tx.take());
        let thread = self.thread.take().expect("flusher joined once");
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
