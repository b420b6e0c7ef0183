//! The publish-once primitive (I1): a final name is never overwritten, temp files never
//! outlive a failed or abandoned write, and the `link` + `unlink` fallback for filesystems
//! without `RENAME_NOREPLACE` keeps the same guarantees.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use bytes::Bytes;
use layer_format::durable::publish_batch;
use layer_format::io::{EngineKind, FileStat, IoEngine, IoFile, StdEngine};
use layer_format::name::{Generation, is_temp_file_name};
use layer_format::{DeltaLayerWriter, FinishedLayer, LayerError, LayerReader, Lsn};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use test_support::layer::*;
use test_support::values::*;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn temps(dir: &Path) -> usize {
    names(dir).iter().filter(|n| is_temp_file_name(n)).count()
}

/// Writes a layer over `key(k0)..key(k1)` whose values depend on `salt`.
fn finished(
    engine: &Arc<dyn IoEngine>,
    dir: &Path,
    k0: u128,
    k1: u128,
    salt: u64,
) -> FinishedLayer {
    let mut w = delta_writer(engine, dir, k0..k1, 1..100);
    for k in k0..k1 {
        w.put(key(k), Lsn(10 + salt), &delta(k, salt, true, 100))
            .unwrap();
    }
    w.finish_unpublished(None).unwrap()
}

#[test]
fn publish_never_overwrites_an_existing_file() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let first = finished(&engine, dir.path(), 0, 10, 1).publish().unwrap();
        let before = std::fs::metadata(&first.path).unwrap();
        let bytes_before = std::fs::read(&first.path).unwrap();

        let second = finished(&engine, dir.path(), 0, 10, 2);
        assert_eq!(second.info.path, first.path, "same name, different bytes");
        assert_ne!(second.info.checksum, first.checksum);
        match second.publish() {
            Err(LayerError::AlreadyExists { path }) => assert_eq!(path, first.path),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        let after = std::fs::metadata(&first.path).unwrap();
        assert_eq!(
            (after.ino(), after.len(), after.mtime_nsec()),
            (before.ino(), before.len(), before.mtime_nsec())
        );
        assert_eq!(std::fs::read(&first.path).unwrap(), bytes_before);
        assert_eq!(temps(dir.path()), 0, "the refused temp file is removed");
        assert_eq!(names(dir.path()).len(), 1);
    }
}

#[test]
fn dropping_an_unfinished_writer_removes_its_temp_file() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = delta_writer(&engine, dir.path(), 0..9, 1..9);
        w.put(key(1), Lsn(1), &delta(1, 1, true, 10)).unwrap();
        assert_eq!(temps(dir.path()), 1);
        drop(w);
        assert!(names(dir.path()).is_empty());

        // A finished but unpublished layer is a synced temp file; dropping it removes it too.
        let f = finished(&engine, dir.path(), 0, 3, 1);
        assert!(f.file.temp_path().exists());
        drop(f);
        assert!(names(dir.path()).is_empty());
    }
}

#[test]
fn batch_is_all_or_nothing_and_hands_the_files_back() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let a = finished(&engine, dir.path(), 0, 10, 1);
        let b = finished(&engine, dir.path(), 10, 20, 1);
        let c = finished(&engine, dir.path(), 20, 30, 1);
        let (pa, pb, pc) = (a.info.clone(), b.info.clone(), c.info.clone());
        // A leftover of an earlier attempt under b's name.
        std::fs::write(&pb.path, b"leftover").unwrap();

        let err = publish_batch(vec![a.file, b.file, c.file]).unwrap_err();
        assert!(
            matches!(&err.error, LayerError::AlreadyExists { path } if *path == pb.path),
            "{err}"
        );
        assert!(!pa.path.exists(), "a was renamed, then moved back");
        assert!(!pc.path.exists());
        assert_eq!(
            std::fs::read(&pb.path).unwrap(),
            b"leftover",
            "leftover untouched"
        );
        assert_eq!(err.unpublished.len(), 3);
        assert_eq!(temps(dir.path()), 3);

        // The caller moves the leftover aside and publishes the same files again.
        std::fs::rename(&pb.path, dir.path().join("aside")).unwrap();
        let published = publish_batch(err.unpublished).unwrap();
        assert_eq!(
            published,
            vec![pa.path.clone(), pb.path.clone(), pc.path.clone()]
        );
        assert_eq!(temps(dir.path()), 0);
        for info in [pa, pb, pc] {
            let r = LayerReader::open(&engine, &info.path).unwrap();
            assert_eq!(r.verify_checksum(info.checksum).unwrap().record_count, 10);
        }
    }
}

/// The std engine with faults a real system can produce: `renameat2` answering `EINVAL` (a
/// filesystem without `RENAME_NOREPLACE`), failing writes (`ENOSPC`), failing fsyncs (`EIO`).
#[derive(Debug, Default)]
struct FaultyEngine {
    inner: StdEngine,
    rename_einval: bool,
    fail_writes: bool,
    fail_fsync: bool,
    einvals: AtomicUsize,
    links: AtomicUsize,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn IoFile>,
    fail_writes: bool,
    fail_fsync: bool,
}

fn os_error(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

impl IoFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.fail_writes {
            return Err(os_error(rustix::io::Errno::NOSPC));
        }
        self.inner.write_all_at(buf, offset)
    }
    fn write_vectored_all_at(&self, bufs: Vec<Bytes>, offset: u64) -> io::Result<()> {
        if self.fail_writes {
            return Err(os_error(rustix::io::Errno::NOSPC));
        }
        self.inner.write_vectored_all_at(bufs, offset)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(offset, len)
    }
    fn fsync(&self) -> io::Result<()> {
        if self.fail_fsync {
            return Err(os_error(rustix::io::Errno::IO));
        }
        self.inner.fsync()
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
}

impl IoEngine for FaultyEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Std
    }
    fn create_exclusive(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        Ok(Box::new(FaultyFile {
            inner: self.inner.create_exclusive(path)?,
            fail_writes: self.fail_writes,
            fail_fsync: self.fail_fsync,
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.inner.open_read(path)
    }
    fn rename_noreplace(&self, from: &Path, to: &Path) -> io::Result<()> {
        if !self.rename_einval {
            return self.inner.rename_noreplace(from, to);
        }
        self.einvals.fetch_add(1, Ordering::SeqCst);
        Err(os_error(rustix::io::Errno::INVAL))
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.links.fetch_add(1, Ordering::SeqCst);
        self.inner.link(from, to)
    }
    fn unlink(&self, path: &Path) -> io::Result<()> {
        self.inner.unlink(path)
    }
    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.fsync_dir(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.inner.list_dir(dir)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn stat(&self, path: &Path) -> io::Result<FileStat> {
        self.inner.stat(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir)
    }
}

#[test]
fn write_errors_remove_the_temp_file() {
    let engine: Arc<dyn IoEngine> = Arc::new(FaultyEngine {
        fail_writes: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut w = delta_writer(&engine, dir.path(), 0..3000, 1..9);
    // Enough data for the flusher to meet the error before finish.
    let mut seen = None;
    for k in 0..3000 {
        if let Err(e) = w.put(key(k), Lsn(2), &delta(k, 2, true, 2000)) {
            seen = Some(e);
            break;
        }
    }
    let err = match seen {
        Some(e) => {
            // A writer used after a failure keeps failing; it does not panic.
            let _ = w.put(key(2999), Lsn(3), &delta(2999, 3, true, 10));
            assert!(matches!(
                w.finish(),
                Err(LayerError::Io { op: "write", .. })
            ));
            e
        }
        None => w.finish().unwrap_err(),
    };
    assert!(
        matches!(
            &err,
            LayerError::Io {
                op: "write",
                offset: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn an_fsync_error_from_the_filesystem_never_publishes() {
    let engine: Arc<dyn IoEngine> = Arc::new(FaultyEngine {
        fail_fsync: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let err = finished_result(&engine, dir.path()).unwrap_err();
    assert!(matches!(&err, LayerError::Io { op: "fsync", .. }), "{err}");
    assert!(names(dir.path()).is_empty(), "neither temp nor final name");
}

fn finished_result(engine: &Arc<dyn IoEngine>, dir: &Path) -> Result<FinishedLayer, LayerError> {
    let mut w = DeltaLayerWriter::new(engine, dir, Generation(1), key(0)..key(5), Lsn(1)..Lsn(9))?;
    w.put(key(1), Lsn(2), &delta(1, 2, true, 50))?;
    w.finish_unpublished(None)
}

#[test]
fn einval_falls_back_to_link_and_unlink_without_overwriting() {
    let fs = Arc::new(FaultyEngine {
        rename_einval: true,
        ..Default::default()
    });
    let engine: Arc<dyn IoEngine> = fs.clone();
    let dir = tempfile::tempdir().unwrap();
    let info = finished(&engine, dir.path(), 0, 10, 1).publish().unwrap();
    assert_eq!(fs.einvals.load(Ordering::SeqCst), 1);
    assert_eq!(fs.links.load(Ordering::SeqCst), 1);
    assert_eq!(
        names(dir.path()),
        vec![info.file_name.to_string()],
        "no temp name left behind"
    );
    assert_eq!(std::fs::metadata(&info.path).unwrap().nlink(), 1);
    LayerReader::open(&engine, &info.path)
        .unwrap()
        .verify_checksum(info.checksum)
        .unwrap();

    let ino = std::fs::metadata(&info.path).unwrap().ino();
    let bytes = std::fs::read(&info.path).unwrap();
    let again = finished(&engine, dir.path(), 0, 10, 2);
    assert!(matches!(
        again.publish(),
        Err(LayerError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::metadata(&info.path).unwrap().ino(), ino);
    assert_eq!(std::fs::read(&info.path).unwrap(), bytes);
    assert_eq!(temps(dir.path()), 0);

    // The batch undo path also works without RENAME_NOREPLACE.
    let a = finished(&engine, dir.path(), 20, 30, 1);
    let b = finished(&engine, dir.path(), 0, 10, 3);
    let pa = a.info.path.clone();
    let err = publish_batch(vec![a.file, b.file]).unwrap_err();
    assert!(matches!(err.error, LayerError::AlreadyExists { .. }));
    assert!(!pa.exists());
    assert_eq!(err.unpublished.len(), 2);
    drop(err);
    assert_eq!(names(dir.path()), vec![info.file_name.to_string()]);
}

#[test]
fn a_move_falls_back_to_link_and_unlink_and_never_replaces() {
    let fs = Arc::new(FaultyEngine {
        rename_einval: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, b"first").unwrap();
    layer_format::durable::move_noreplace(&*fs, &a, &b).unwrap();
    assert_eq!(fs.einvals.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read(&b).unwrap(), b"first");
    assert!(!a.exists());
    std::fs::write(&a, b"second").unwrap();
    let err = layer_format::durable::move_noreplace(&*fs, &a, &b).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&b).unwrap(), b"first", "never replaced");
    assert_eq!(std::fs::read(&a).unwrap(), b"second", "the source stays");
}
