//! What is checked after every step: reads against the page model, the remote index against
//! the store.

use super::*;

impl Sim {
    /// Compares one read with the model.
    pub(super) async fn check_read(&mut self, key: Key, lsn: Lsn) -> Result<(), Failure> {
        let got = self.timeline.get_page(key, lsn).await;
        let want = self.model.page(key.0, lsn.0);
        let ok = match (&got, &want) {
            (Ok(p), ModelPage::Page(w)) => p.as_ref() == w.as_slice(),
            (Err(ReadError::NotFound { .. }), ModelPage::NotFound) => true,
            (Err(ReadError::Data { .. }), ModelPage::NoBase) => true,
            _ => false,
        };
        self.stats.reads += 1;
        let straddled = self.timeline.with_layer_map(|m| {
            m.visits(key, lsn).iter().any(|v| {
                v.layer.name.is_delta() && *v.lsns.start() > v.layer.name.lsn_range().start
            })
        });
        if straddled {
            self.stats.straddled_reads += 1;
        }
        let digest = match &got {
            Ok(p) => crc32c::crc32c(p) as u64,
            Err(_) => 1,
        };
        self.trace = mix(self.trace, digest);
        if !ok {
            let layers = self
                .timeline
                .with_layer_map(|m| m.visits(key, lsn))
                .iter()
                .map(|v| format!("{}[{}..={}]", v.layer.name, v.lsns.start(), v.lsns.end()))
                .collect::<Vec<_>>();
            return Err(self.fail(format!(
                "read of {key} at {lsn}: server {}, model {}; visits {layers:?}",
                match &got {
                    Ok(p) => format!("a page (crc32c {:08x})", crc32c::crc32c(p)),
                    Err(e) => format!("error: {e}"),
                },
                match &want {
                    ModelPage::Page(p) => format!("a page (crc32c {:08x})", crc32c::crc32c(p)),
                    other => format!("{other:?}"),
                }
            )));
        }
        Ok(())
    }

    pub(super) fn read_bounds(&self) -> (u64, u64) {
        let info = self.timeline.status();
        let cutoff: Lsn = info.gc_cutoff_lsn;
        (cutoff.0.max(1), self.timeline.last_record_lsn().0)
    }

    /// The checks after every step.
    pub(super) async fn check(&mut self, samples: usize) -> Result<(), Failure> {
        {
            let p = panics().lock().unwrap();
            let blocking = format!("{}-blocking", self.thread);
            if let Some((_, msg)) = p.iter().find(|(t, _)| *t == blocking || *t == self.thread) {
                return Err(self.fail(format!("a task panicked: {msg}")));
            }
        }
        self.timeline
            .with_layer_map(|m| m.check_invariant())
            .map_err(|e| self.fail(format!("structural invariant: {e}")))?;
        if let Some(v) = self.storage.violations().first() {
            return Err(self.fail(format!("remote object history: {v}")));
        }
        let info = self.timeline.status();
        let remote: Lsn = info.remote_consistent_lsn;
        if remote < self.acked {
            return Err(self.fail(format!(
                "remote_consistent_lsn {remote} fell below the acknowledged {}",
                self.acked
            )));
        }
        self.acked = remote;
        self.check_remote(info.pending_uploads == 0)?;
        let (low, high) = self.read_bounds();
        if high >= low {
            for _ in 0..samples {
                let key = self.key();
                let lsn = Lsn(self.rng.range(low, high));
                self.check_read(key, lsn).await?;
            }
        }
        Ok(())
    }

    /// The authoritative remote index references only objects that exist with its sizes and
    /// checksums; with an idle upload queue it is the layer map's index.
    pub(super) fn check_remote(&self, idle: bool) -> Result<(), Failure> {
        let (t, tl) = ids();
        let objects = self.storage.objects();
        let prefix = format!("{}/", timeline_prefix(t, tl));
        let keys: Vec<&str> = objects
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .map(String::as_str)
            .collect();
        let sel = select_authoritative(keys.iter().copied(), self.timeline.generation)
            .map_err(|e| self.fail(e))?;
        let Some(object) = sel.authoritative else {
            return Err(self.fail("no authoritative index"));
        };
        let key = index_part::names::index_object_key(t, tl, object);
        let index = IndexPart::from_json_object(&objects[&key], object, ParseMode::Strict)
            .map_err(|e| self.fail(format!("{key}: {e}")))?;
        for (name, meta) in &index.layers {
            let file = IndexPart::file_name(name, meta);
            let k = index_part::names::layer_object_key(t, tl, &file);
            match objects.get(&k) {
                Some(d)
                    if d.len() as u64 == meta.file_size && crc32c::crc32c(d) == meta.checksum => {}
                Some(_) => return Err(self.fail(format!("{key}: {file} differs from the index"))),
                None => return Err(self.fail(format!("{key} references missing {file}"))),
            }
        }
        if idle && !self.timeline.status().stale {
            let mine = self.timeline.with_layer_map(|m| m.index());
            let names = |i: &IndexPart| -> Vec<LayerName> { i.layers.keys().cloned().collect() };
            if names(&index) != names(&mine)
                || index.layers != mine.layers
                || index.disk_consistent_lsn != mine.disk_consistent_lsn
                || index.gc_cutoff_lsn != mine.gc_cutoff_lsn
            {
                return Err(self.fail(format!(
                    "with an idle upload queue the authoritative index {object} differs from the layer map: remote {} layers at {}, map {} layers at {}",
                    index.layers.len(),
                    index.disk_consistent_lsn,
                    mine.layers.len(),
                    mine.disk_consistent_lsn
                )));
            }
        }
        Ok(())
    }
}
