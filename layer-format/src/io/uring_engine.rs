//! The io_uring engine: file data I/O through `tokio-uring` on one dedicated thread.
//!
//! `tokio-uring` files are tied to the thread of their ring, so the engine owns a thread that
//! runs the ring and keeps every open file in a table; an [`IoFile`] handle is an id into that
//! table plus a duplicate descriptor for `fstat`. A call sends a request over a channel and
//! blocks until the ring answers, so requests of different callers run concurrently on the ring
//! while each caller sees ordinary blocking semantics. Opening a file is a plain `open` (the
//! descriptor is then handed to the ring); namespace operations are delegated to the std engine.
//!
//! The thread ends when the engine and all its files are dropped.

use super::{EngineKind, FileStat, IOV_MAX, IoEngine, IoFile, std_engine};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use tokio::sync::mpsc;

enum Op {
    Register(File),
    Close,
    Data(DataOp),
}

/// Operations that run on the ring.
enum DataOp {
    Write { buf: Vec<u8>, offset: u64 },
    Writev { bufs: Vec<Bytes>, offset: u64 },
    Read { len: usize, offset: u64 },
    Fsync,
}

struct Request {
    file: u64,
    op: Op,
    reply: Option<std_mpsc::SyncSender<io::Result<Vec<u8>>>>,
}

/// io_uring through `tokio-uring` on a dedicated thread.
#[derive(Debug)]
pub struct UringEngine {
    tx: mpsc::UnboundedSender<Request>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct UringFile {
    id: u64,
    tx: mpsc::UnboundedSender<Request>,
    /// A duplicate of the ring's descriptor, for `fstat`.
    meta: File,
}

fn ring_gone() -> io::Error {
    io::Error::other("the io_uring thread has stopped")
}

/// Sends a request and waits for the ring's answer: the buffer written or read.
fn call(tx: &mpsc::UnboundedSender<Request>, file: u64, op: Op) -> io::Result<Vec<u8>> {
    let (reply, rx) = std_mpsc::sync_channel(1);
    tx.send(Request {
        file,
        op,
        reply: Some(reply),
    })
    .map_err(|_| ring_gone())?;
    rx.recv().map_err(|_| ring_gone())?
}

impl UringEngine {
    /// Starts the ring thread; fails if the kernel or a sandbox refuses io_uring.
    pub fn start() -> io::Result<UringEngine> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("io-uring".into())
            .spawn(move || ring_thread(rx, ready_tx))?;
        ready_rx.recv().map_err(|_| ring_gone())??;
        Ok(UringEngine {
            tx,
            next_id: AtomicU64::new(1),
        })
    }

    fn register(&self, file: File) -> io::Result<Box<dyn IoFile>> {
        let meta = file.try_clone()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        call(&self.tx, id, Op::Register(file))?;
        Ok(Box::new(UringFile {
            id,
            tx: self.tx.clone(),
            meta,
        }))
    }
}

fn ring_thread(
    mut rx: mpsc::UnboundedReceiver<Request>,
    ready: std_mpsc::SyncSender<io::Result<()>>,
) {
    let rt = match tokio_uring::Runtime::new(&tokio_uring::builder()) {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        // Creating a ring can succeed where submitting to it is forbidden: probe once.
        if let Err(e) = tokio_uring::no_op().await {
            let _ = ready.send(Err(e));
            return;
        }
        let _ = ready.send(Ok(()));
        let files: Rc<RefCell<HashMap<u64, Rc<tokio_uring::fs::File>>>> = Rc::default();
        while let Some(req) = rx.recv().await {
            let Request { file, op, reply } = req;
            let answer = |r: io::Result<Vec<u8>>| {
                if let Some(reply) = &reply {
                    let _ = reply.send(r);
                }
            };
            match op {
                Op::Register(f) => {
                    files
                        .borrow_mut()
                        .insert(file, Rc::new(tokio_uring::fs::File::from_std(f)));
                    answer(Ok(Vec::new()));
                }
                Op::Close => {
                    // Operations in flight hold their own reference; the descriptor closes
                    // when the last one finishes.
                    files.borrow_mut().remove(&file);
                }
                Op::Data(op) => {
                    let Some(f) = files.borrow().get(&file).cloned() else {
                        answer(Err(io::Error::other("unknown io_uring file")));
                        continue;
                    };
                    tokio_uring::spawn(async move {
                        let r = match op {
                            DataOp::Write { buf, offset } => {
                                let (res, buf) = f.write_all_at(buf, offset).await;
                                res.map(|()| buf)
                            }
                            DataOp::Writev { bufs, mut offset } => {
                                let mut res = Ok(Vec::new());
                                for group in bufs.chunks(IOV_MAX) {
                                    let len: u64 = group.iter().map(|b| b.len() as u64).sum();
                                    if let Err(e) =
                                        f.writev_at_all(group.to_vec(), Some(offset)).await.0
                                    {
                                        res = Err(e);
                                        break;
                                    }
                                    offset += len;
                                }
                                res
                            }
                            DataOp::Read { len, offset } => {
                                let (r, buf) =
                                    f.read_exact_at(Vec::with_capacity(len), offset).await;
                                r.map(|()| buf)
                            }
                            DataOp::Fsync => f.sync_all().await.map(|()| Vec::new()),
                        };
                        if let Some(reply) = reply {
                            let _ = reply.send(r);
                        }
                    });
                }
            }
        }
    });
}

impl IoFile for UringFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let op = DataOp::Write {
            buf: buf.to_vec(),
            offset,
        };
        call(&self.tx, self.id, Op::Data(op)).map(drop)
    }
    fn write_vectored_all_at(&self, bufs: Vec<Bytes>, offset: u64) -> io::Result<()> {
        call(&self.tx, self.id, Op::Data(DataOp::Writev { bufs, offset })).map(drop)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let op = DataOp::Read {
            len: buf.len(),
            offset,
        };
        let data = call(&self.tx, self.id, Op::Data(op))?;
        if data.len() != buf.len() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
        }
        buf.copy_from_slice(&data);
        Ok(())
    }
    fn start_writeback(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    fn fsync(&self) -> io::Result<()> {
        call(&self.tx, self.id, Op::Data(DataOp::Fsync)).map(drop)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.meta.metadata()?.len())
    }
}

impl Drop for UringFile {
    fn drop(&mut self) {
        let _ = self.tx.send(Request {
            file: self.id,
            op: Op::Close,
            reply: None,
        });
    }
}

impl IoEngine for UringEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Uring
    }
    fn create_exclusive(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.register(std_engine::create_exclusive_std(path)?)
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.register(File::open(path)?)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        std_engine::rename_noreplace(from, to)
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        std_engine::fsync_dir(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std_engine::list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        std_engine::stat(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }
}
