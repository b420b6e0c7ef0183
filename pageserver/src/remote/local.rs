//! The local-filesystem backend (the default): objects are files under a root directory.
//!
//! Durable like the layer files: an object is written to a temp file, fsynced, and published
//! under its key with `RENAME_NOREPLACE` (or `link`, which refuses to overwrite as well) followed
//! by a directory fsync, through the layer-format I/O engine, so that the power-loss tests see
//! every operation. Directories created for a key are fsynced into their parents. Temp files
//! never appear in listings.

use super::file_source::FileSource;
use super::{ListedObject, PutOutcome, RemoteStorage};
use crate::lock::MutexExt;
use anyhow::Context;
use bytes::Bytes;
use futures::future::BoxFuture;
use layer_format::LayerError;
use layer_format::durable::{TempFile, publish};
use layer_format::io::IoEngine;
use layer_format::name::is_temp_file_name;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Objects as files under `root`.
#[derive(Debug, Clone)]
pub struct LocalFs {
    root: PathBuf,
    engine: Arc<dyn IoEngine>,
    /// Directories whose entry is known durable in their parent.
    durable_dirs: Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

impl LocalFs {
    /// A backend rooted at `root` (created if missing).
    pub fn new(root: &Path, engine: Arc<dyn IoEngine>) -> anyhow::Result<LocalFs> {
        layer_format::durable::create_dir_all_durable(&*engine, root)
            .with_context(|| format!("create {}", root.display()))?;
        Ok(LocalFs {
            root: root.to_path_buf(),
            engine,
            durable_dirs: Arc::default(),
        })
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(
            !key.is_empty()
                && key
                    .split('/')
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
            "invalid object key {key:?}"
        );
        Ok(self.root.join(key))
    }

    /// Creates the directories above `path` and makes each one's entry durable in its
    /// parent, once per process: a directory an earlier put created but could not fsync is
    /// fsynced again by the next put.
    fn ensure_parent(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().expect("object paths have a parent");
        let mut chain = Vec::new();
        let mut p = parent;
        while p != self.root && !self.durable_dirs.lock_unpoisoned().contains(p) {
            chain.push(p.to_path_buf());
            p = p.parent().expect("below the root");
        }
        if chain.is_empty() {
            return Ok(());
        }
        self.engine.create_dir_all(parent)?;
        for dir in chain.iter().rev() {
            self.engine
                .fsync_dir(dir.parent().expect("below the root"))?;
            self.durable_dirs.lock_unpoisoned().insert(dir.clone());
        }
        Ok(())
    }

    fn put_blocking(&self, key: &str, data: &[u8]) -> anyhow::Result<PutOutcome> {
        let path = self.path(key)?;
        self.ensure_parent(&path)
            .with_context(|| format!("create directories for {key}"))?;
        let temp = TempFile::create(&self.engine, &path)?;
        temp.write_all_at(data, 0)?;
        match publish(temp.sync()?) {
            Ok(_) => Ok(PutOutcome::Created),
            Err(LayerError::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    /// A put that copies `file` chunk by chunk into the temp file, checking it as it goes;
    /// only a file that matches its recorded size and checksum is published.
    fn put_file_blocking(&self, key: &str, file: &FileSource) -> anyhow::Result<PutOutcome> {
        let path = self.path(key)?;
        self.ensure_parent(&path)
            .with_context(|| format!("create directories for {key}"))?;
        let temp = TempFile::create(&self.engine, &path)?;
        file.read_checked(|offset, chunk| Ok(temp.write_all_at(&chunk, offset)?))?;
        match publish(temp.sync()?) {
            Ok(_) => Ok(PutOutcome::Created),
            Err(LayerError::AlreadyExists { .. }) => Ok(PutOutcome::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    fn get_blocking(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let path = self.path(key)?;
        let file = match self.engine.open_read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
        };
        let mut buf = vec![0u8; file.size()? as usize];
        file.read_exact_at(&mut buf, 0)
            .with_context(|| format!("read {}", path.display()))?;
        Ok(Some(Bytes::from(buf)))
    }

    fn list_blocking(&self, prefix: &str) -> anyhow::Result<Vec<ListedObject>> {
        Ok(self.walk(prefix)?.0)
    }

    /// Removes the temp files of interrupted puts under `prefix`; fsyncs each directory
    /// that lost one.
    fn remove_leftovers_blocking(&self, prefix: &str) -> anyhow::Result<usize> {
        let temps = self.walk(prefix)?.1;
        let mut dirs = std::collections::BTreeSet::new();
        for t in &temps {
            match self.engine.unlink(t) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("remove {}", t.display())),
            }
            dirs.insert(t.parent().expect("below the root").to_path_buf());
        }
        for d in dirs {
            self.engine
                .fsync_dir(&d)
                .with_context(|| format!("fsync {}", d.display()))?;
        }
        Ok(temps.len())
    }

    /// The objects under `prefix`, sorted, and the temp files among them.
    fn walk(&self, prefix: &str) -> anyhow::Result<(Vec<ListedObject>, Vec<PathBuf>)> {
        // Walk from the deepest directory the prefix names completely.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path(dir_part)?
        };
        let (mut out, mut temps) = (Vec::new(), Vec::new());
        let mut stack = vec![(start, dir_part.to_string())];
        while let Some((dir, key_prefix)) = stack.pop() {
            let names = match self.engine.list_dir(&dir) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("list {}", dir.display())),
            };
            for name in names {
                let Some(name) = name.to_str().map(str::to_string) else {
                    continue;
                };
                let key = if key_prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{key_prefix}/{name}")
                };
                let path = dir.join(&name);
                let stat = match self.engine.stat(&path) {
                    Ok(s) => s,
                    // Deleted since the directory was read.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
                };
                if stat.is_dir {
                    if prefix.starts_with(&key) || key.starts_with(prefix) {
                        stack.push((path, key));
                    }
                } else if key.starts_with(prefix) {
                    if is_temp_file_name(&name) {
                        temps.push(path);
                    } else {
                        out.push(ListedObject {
                            key,
                            size: stat.size,
                        });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((out, temps))
    }

    fn delete_blocking(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        layer_format::durable::remove_durable(&*self.engine, &[path])
            .map_err(|(p, e)| anyhow::Error::new(e).context(format!("delete {}", p.display())))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("blocking task panicked")?
}

impl RemoteStorage for LocalFs {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move || this.put_blocking(&key, &data)))
    }
    fn put_file_if_absent<'a>(
        &'a self,
        key: &'a str,
        file: &'a FileSource,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        let (this, key, file) = (self.clone(), key.to_string(), file.clone());
        Box::pin(blocking(move || this.put_file_blocking(&key, &file)))
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move || this.get_blocking(&key)))
    }
    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedObject>>> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        Box::pin(blocking(move || this.list_blocking(&prefix)))
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        let (this, key) = (self.clone(), key.to_string());
        Box::pin(blocking(move || this.delete_blocking(&key)))
    }
    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        Box::pin(blocking(move || this.remove_leftovers_blocking(&prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{Created, create_once};
    use layer_format::io::{EngineChoice, open_engine};

    #[tokio::test]
    async fn leftovers_of_interrupted_puts_are_removed_under_the_prefix_only() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(dir.path(), open_engine(EngineChoice::Std).unwrap()).unwrap();
        fs.put_if_absent("t/a/obj", Bytes::from_static(b"kept"))
            .await
            .unwrap();
        fs.put_if_absent("u/obj", Bytes::from_static(b"kept"))
            .await
            .unwrap();
        let temps = [
            dir.path().join("t/a/obj2.0123456789abcdef.___temp"),
            dir.path().join("t/obj3.0123456789abcdef.___temp"),
            dir.path().join("u/obj4.0123456789abcdef.___temp"),
        ];
        for t in &temps {
            std::fs::write(t, b"half").unwrap();
        }
        assert_eq!(fs.remove_leftovers("t/").await.unwrap(), 2);
        assert!(!temps[0].exists() && !temps[1].exists());
        assert!(temps[2].exists(), "outside the prefix");
        assert_eq!(fs.list("").await.unwrap(), vec!["t/a/obj", "u/obj"]);
        assert_eq!(fs.remove_leftovers("t/").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn create_once_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(dir.path(), open_engine(EngineChoice::Std).unwrap()).unwrap();
        assert_eq!(
            create_once(&fs, "test", "a/b/c", Bytes::from_static(b"one"))
                .await
                .unwrap(),
            Created::New
        );
        assert_eq!(
            create_once(&fs, "test", "a/b/c", Bytes::from_static(b"one"))
                .await
                .unwrap(),
            Created::Identical
        );
        let err = create_once(&fs, "test", "a/b/c", Bytes::from_static(b"two"))
            .await
            .unwrap_err();
        assert!(
            err.downcast_ref::<super::super::Conflict>().is_some(),
            "{err:#}"
        );
        assert_eq!(
            fs.get("a/b/c").await.unwrap().unwrap(),
            Bytes::from_static(b"one")
        );
        assert_eq!(fs.get("a/b/d").await.unwrap(), None);
        fs.put_if_absent("a/x", Bytes::from_static(b"x"))
            .await
            .unwrap();
        fs.put_if_absent("ab/y", Bytes::from_static(b"y"))
            .await
            .unwrap();
        assert_eq!(
            fs.list("a/").await.unwrap(),
            vec!["a/b/c".to_string(), "a/x".to_string()]
        );
        assert_eq!(
            fs.list("a").await.unwrap(),
            vec!["a/b/c".to_string(), "a/x".to_string(), "ab/y".to_string()]
        );
        assert_eq!(fs.list("zzz/").await.unwrap(), Vec::<String>::new());
        fs.delete("a/x").await.unwrap();
        fs.delete("a/x").await.unwrap();
        assert_eq!(fs.list("a/").await.unwrap(), vec!["a/b/c".to_string()]);
        assert!(fs.get("../escape").await.is_err());
    }
}
