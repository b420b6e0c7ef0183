//! A local file uploaded as an object: read in chunks, and checked against the size and
//! checksum the index records in the same pass, before any backend makes the object visible.
//! A file damaged on local disk is never uploaded.

use anyhow::{Context, bail};
use bytes::Bytes;
use layer_format::io::IoEngine;
use std::path::PathBuf;
use std::sync::Arc;

/// Bytes read from a file at once while uploading it.
pub const UPLOAD_CHUNK: usize = 1 << 20;

/// A local file to upload, with what it must hold.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Reads the file.
    pub engine: Arc<dyn IoEngine>,
    /// The file.
    pub path: PathBuf,
    /// Its size, as the index records it.
    pub size: u64,
    /// Its CRC32C, as the index records it.
    pub checksum: u32,
}

impl FileSource {
    /// Reads the file in chunks of at most [`UPLOAD_CHUNK`] bytes, in order, handing each to
    /// `each` with its offset; then checks the size and CRC32C. An error from `each`, a short
    /// or long file, or another checksum ends the read with an error. Blocking.
    pub fn read_checked(
        &self,
        mut each: impl FnMut(u64, Bytes) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let path = &self.path;
        let f = self
            .engine
            .open_read(path)
            .with_context(|| format!("open {}", path.display()))?;
        let size = f
            .size()
            .with_context(|| format!("stat {}", path.display()))?;
        if size != self.size {
            bail!(
                "{} is {size} bytes, the index records {}",
                path.display(),
                self.size
            );
        }
        let (mut offset, mut crc) = (0u64, 0u32);
        while offset < size {
            let n = usize::try_from(size - offset).map_or(UPLOAD_CHUNK, |l| l.min(UPLOAD_CHUNK));
            let mut buf = vec![0u8; n];
            f.read_exact_at(&mut buf, offset)
                .with_context(|| format!("read {} at {offset}", path.display()))?;
            crc = crc32c::crc32c_append(crc, &buf);
            each(offset, Bytes::from(buf))?;
            offset += n as u64;
        }
        if crc != self.checksum {
            bail!(
                "{} has checksum {crc:08x}, the index records {:08x}",
                path.display(),
                self.checksum
            );
        }
        Ok(())
    }

    /// The whole file as its chunks, checked, read on a blocking thread (for backends that
    /// need the body in one piece).
    pub async fn read_all(&self) -> anyhow::Result<Vec<Bytes>> {
        let f = self.clone();
        tokio::task::spawn_blocking(move || f.read_all_checked())
            .await
            .context("read task panicked")?
    }

    /// The whole file as its chunks, checked. Blocking.
    pub fn read_all_checked(&self) -> anyhow::Result<Vec<Bytes>> {
        let mut chunks = Vec::new();
        self.read_checked(|_, c| {
            chunks.push(c);
            Ok(())
        })?;
        Ok(chunks)
    }

    /// Whether `existing` holds exactly the file's bytes (and the file is as recorded).
    pub fn same_as(&self, existing: &[u8]) -> anyhow::Result<bool> {
        if existing.len() as u64 != self.size {
            return Ok(false);
        }
        let mut same = true;
        self.read_checked(|offset, c| {
            let at = usize::try_from(offset).unwrap_or(usize::MAX);
            same &= existing.get(at..at + c.len()) == Some(&c[..]);
            Ok(())
        })?;
        Ok(same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::local::LocalFs;
    use crate::remote::{Conflict, Created, RemoteStorage, create_once_file};
    use layer_format::io::{EngineChoice, open_engine};

    /// Sizes around the chunk boundary, where a chunked copy goes wrong, and one drawn per run
    /// (`FILE_SOURCE_SEED=N` replays it): up to four chunks, any remainder.
    fn sizes() -> (u64, Vec<usize>) {
        let seed = std::env::var("FILE_SOURCE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                t.map_or(1, |d| u64::from(d.subsec_nanos()))
            });
        // splitmix64, one draw.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let drawn = 1 + (z ^ (z >> 31)) as usize % (4 * UPLOAD_CHUNK);
        let sizes = vec![
            1,
            UPLOAD_CHUNK - 1,
            UPLOAD_CHUNK,
            UPLOAD_CHUNK + 1,
            2 * UPLOAD_CHUNK + 4321,
            drawn,
        ];
        (seed, sizes)
    }

    fn file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> FileSource {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        FileSource {
            engine: open_engine(EngineChoice::Std).unwrap(),
            path,
            size: bytes.len() as u64,
            checksum: crc32c::crc32c(bytes),
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// Puts, then checks every rule of a file upload on `storage`.
    async fn each_rule_holds(storage: &dyn RemoteStorage, local: &std::path::Path) {
        let (seed, sizes) = sizes();
        for (i, n) in sizes.into_iter().enumerate() {
            let key = format!("t/layer-{i}");
            let data = bytes(n, 7);
            let f = file(local, &format!("f{i}"), &data);
            assert_eq!(
                create_once_file(storage, "test", &key, &f).await.unwrap(),
                Created::New
            );
            assert_eq!(
                storage.get(&key).await.unwrap().unwrap(),
                data,
                "{n} bytes (FILE_SOURCE_SEED={seed})"
            );
            assert_eq!(
                create_once_file(storage, "test", &key, &f).await.unwrap(),
                Created::Identical,
                "{n} bytes again"
            );
            // Other bytes of the same size under the same name: a conflict, nothing changes.
            let other = file(local, &format!("g{i}"), &bytes(n, 8));
            let e = create_once_file(storage, "test", &key, &other)
                .await
                .unwrap_err();
            assert!(e.is::<Conflict>(), "{e:#}");
            assert_eq!(storage.get(&key).await.unwrap().unwrap(), data);
            // A file damaged after its checksum was recorded is never uploaded.
            let mut damaged = file(local, &format!("h{i}"), &data);
            damaged.checksum ^= 1;
            let fresh = format!("t/damaged-{i}");
            let e = create_once_file(storage, "test", &fresh, &damaged)
                .await
                .unwrap_err();
            assert!(format!("{e:#}").contains("checksum"), "{e:#}");
            assert_eq!(storage.get(&fresh).await.unwrap(), None, "{n} bytes");
            let mut short = file(local, &format!("s{i}"), &data);
            short.size += 1;
            let e = create_once_file(storage, "test", &fresh, &short)
                .await
                .unwrap_err();
            assert!(format!("{e:#}").contains("the index records"), "{e:#}");
            assert_eq!(storage.get(&fresh).await.unwrap(), None);
        }
    }

    #[tokio::test]
    async fn the_local_backend_copies_files_in_chunks_and_publishes_only_checked_ones() {
        let (remote, local) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let fs = LocalFs::new(remote.path(), open_engine(EngineChoice::Std).unwrap()).unwrap();
        each_rule_holds(&fs, local.path()).await;
        // The refused copies left no temp file behind.
        assert_eq!(fs.remove_leftovers("t/").await.unwrap(), 0);
    }

    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_backend_without_streaming_gets_the_whole_checked_file() {
        let store = crate::testing::sim_storage::SimStorage::new(
            1,
            crate::testing::sim_storage::SimFaults::default(),
            "none/",
        );
        let local = tempfile::tempdir().unwrap();
        each_rule_holds(&store, local.path()).await;
    }
}
