//! The schedule's steps: ingest, flush, checkpoint, compaction, GC, reset and restart,
//! releases of held writes, forged duplicates; and the end of a run.

use super::*;

impl Sim {
    pub(super) fn key(&mut self) -> Key {
        let k = if self.rng.chance(0.7) {
            u128::from(self.rng.next()) % self.cfg.hot_keys
        } else {
            u128::from(self.rng.next()) % self.cfg.keys
        };
        Key::from_u128(k)
    }

    pub(super) fn value(&mut self, base: bool) -> ModelValue {
        let kind = self.rng.range(0, 99);
        if (base && kind < 30) || kind < 8 {
            let fill = self.rng.next() as u8;
            let mut page = vec![fill; PAGE];
            page[self.rng.range(0, PAGE as u64 - 1) as usize] = fill.wrapping_add(1);
            return ModelValue::Image(page);
        }
        let will_init = base || kind < 20;
        let patches = (0..self.rng.range(1, 3))
            .map(|_| {
                let len = self.rng.range(1, 200) as usize;
                let offset = self.rng.range(0, (PAGE - len) as u64) as u16;
                let byte = self.rng.next() as u8;
                (offset, vec![byte; len])
            })
            .collect();
        ModelValue::Delta { will_init, patches }
    }

    pub(super) async fn ingest_records(
        &mut self,
        records: &[([u8; 16], u64, ModelValue)],
    ) -> Result<(), Failure> {
        let mut body = Vec::new();
        for (k, l, v) in records {
            encode_record(&mut body, *k, *l, v);
        }
        let tl = self.timeline.clone();
        let body = Bytes::from(body);
        let r = self
            .drive("ingest", async move {
                // Bodies written by the page model's own encoder, decoded by the server's.
                tl.ingest_decoded(
                    |last| pageserver::http::wire::decode(&body, last, u64::MAX),
                    None,
                )
                .await
                .map_err(|e| e.to_string())
            })
            .await?;
        r.map_err(|e| self.fail(format!("ingest: {e}")))?;
        Ok(())
    }

    pub(super) async fn ingest(&mut self) -> Result<(), Failure> {
        let count = self.rng.range(1, 40);
        let mut records: Vec<([u8; 16], u64, ModelValue)> = Vec::new();
        let mut lsn = self.next_lsn;
        for _ in 0..count {
            // Several records at one LSN now and then (different keys).
            if !self.rng.chance(0.2) || records.is_empty() {
                lsn += self.rng.range(0, 2);
            }
            let key = self.key();
            if records.iter().any(|(k, l, _)| *k == key.0 && *l == lsn) {
                continue;
            }
            let fresh =
                !self.model.has_record(key.0, lsn) && !records.iter().any(|(k, _, _)| *k == key.0);
            let value = self.value(fresh);
            records.push((key.0, lsn, value));
        }
        let last = records.last().expect("one record at least").1;
        self.ingest_records(&records).await?;
        for (k, l, v) in records {
            self.model.add(k, l, v);
        }
        self.next_lsn = last + 1;
        self.note(&format!("ingest {count} up to {last}"));
        Ok(())
    }

    pub(super) async fn compact(&mut self) -> Result<(), Failure> {
        if self.timeline.status().pending_uploads > 0 {
            self.stats.compactions_with_uploads_pending += 1;
        }
        let tl = self.timeline.clone();
        let r = self
            .drive("compact", async move {
                tl.compact().await.map_err(|e| format!("{e:#}"))
            })
            .await?;
        let r = r.map_err(|e| self.fail(format!("compaction: {e}")))?;
        if r.outcome == "compacted" {
            match r.outputs {
                0 => {}
                1 => self.stats.single_output_compactions += 1,
                _ => self.stats.multi_output_compactions += 1,
            }
        }
        self.note(&format!("compact {} {} {}", r.outcome, r.inputs, r.outputs));
        Ok(())
    }

    pub(super) async fn gc(&mut self) -> Result<(), Failure> {
        let tl = self.timeline.clone();
        let r = self
            .drive("gc", async move { tl.gc().map_err(|e| format!("{e:#}")) })
            .await?;
        let removed = r.map_err(|e| self.fail(format!("gc: {e}")))?;
        self.stats.gc_removed += removed as u64;
        self.note(&format!("gc {removed}"));
        Ok(())
    }

    pub(super) async fn flush(&mut self, wait_upload: bool) -> Result<(), Failure> {
        let tl = self.timeline.clone();
        let r = if wait_upload {
            self.drive("checkpoint", async move {
                tl.checkpoint().await.map_err(|e| format!("{e:#}"))
            })
            .await?
        } else {
            self.drive("flush", async move {
                tl.flush().await.map_err(|e| format!("{e:#}"))
            })
            .await?
        };
        match r {
            Ok(()) => self.note(if wait_upload { "checkpoint" } else { "flush" }),
            // With every write failing up to 30 % of the time, a checkpoint may give up waiting
            // for its index (60 s): an answer the API allows. The flush itself succeeded, and
            // the end of the seed proves the queue drains.
            Err(e) if wait_upload && e.contains("is not uploaded after") => {
                self.stats.checkpoints_timed_out += 1;
                self.note("checkpoint timed out");
            }
            Err(e) => return Err(self.fail(format!("flush: {e}"))),
        }
        Ok(())
    }

    /// Releases some held and late writes, in random order.
    pub(super) async fn release(&mut self) -> Result<(), Failure> {
        let n = self.rng.range(1, 6);
        for _ in 0..n {
            let i = self.rng.next() as usize;
            let (held, late) = self.storage.pending();
            let (what, done) = if self.rng.chance(0.5) {
                ("held", self.storage.release(i))
            } else {
                ("late", self.storage.release_late(i))
            };
            if self.log {
                println!(
                    "seed {} step {}: release {what}: {done} (held {held}, late {late}, {:?} in)",
                    self.seed,
                    self.step,
                    self.started.elapsed()
                );
            }
            self.settle().await;
        }
        self.note("release");
        Ok(())
    }

    /// Reset (same generation) or restart (a new generation): what was not uploaded is
    /// dropped, and the storage node resends it from the timeline's new `last_record_lsn`.
    pub(super) async fn reload(&mut self, restart: bool, drop_cache: bool) -> Result<(), Failure> {
        let (t, tl) = ids();
        if restart {
            // The process dies: its writes in flight may still land.
            self.storage.crash_in_flight();
            let old = self.timeline.clone();
            self.drive("stop", async move { old.stop().await }).await?;
            self.server.shutdown();
            self.server = start(&self.cfg, self.mutation, &self.engine, &self.storage)
                .await
                .map_err(|e| self.fail(e))?;
            self.stats.restarts += 1;
        } else {
            let mgr = self.server.tenants.clone();
            let r = self
                .drive("reset", async move {
                    mgr.reset_tenant(t, drop_cache)
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("{e:#}"))
                })
                .await?;
            r.map_err(|e| self.fail(format!("reset: {e}")))?;
            self.stats.resets += 1;
        }
        self.timeline = self
            .server
            .tenants
            .get(t)
            .map_err(|e| self.fail(format!("tenant after reload: {e}")))?
            .timeline(tl)
            .ok_or_else(|| self.fail("timeline gone after reload"))?;
        let last = self.timeline.last_record_lsn();
        if last < self.acked {
            return Err(self.fail(format!(
                "after reload last_record_lsn {last} is below the acknowledged {}",
                self.acked
            )));
        }
        let lost = self.model.records_above(last.0);
        self.note(&format!(
            "{} drop_cache={drop_cache}: last {last}, resend {}",
            if restart { "restart" } else { "reset" },
            lost.len()
        ));
        // In requests of about 40 records, never splitting one LSN across two (each request
        // starts above the last LSN ingested).
        let mut start = 0;
        while start < lost.len() {
            let mut end = (start + 40).min(lost.len());
            while end < lost.len() && lost[end].1 == lost[end - 1].1 {
                end += 1;
            }
            self.ingest_records(&lost[start..end]).await?;
            start = end;
        }
        Ok(())
    }

    /// A compaction whose output is a layer already in the map (a replayed or confused job):
    /// refused whole, nothing changes, its inputs stay.
    pub(super) async fn forge_duplicate(&mut self) -> Result<(), Failure> {
        let (run, l1, before) = self.timeline.with_layer_map(|m| {
            let l1 = m
                .layers()
                .find(|h| h.meta.level == Some(index_part::Level::L1))
                .cloned();
            (m.l0_run(|_| true), l1, m.index())
        });
        let Some(l1) = l1 else { return Ok(()) };
        if run.len() < 2 {
            return Ok(());
        }
        let copy = Arc::new(LayerHandle::new(
            l1.name.clone(),
            l1.meta,
            &self.timeline.dir,
        ));
        let pending = self.timeline.status().pending_uploads;
        let r = self.timeline.install_for_test(Change::Compaction {
            inputs: run,
            outputs: vec![copy],
        });
        match r {
            Err(e)
                if matches!(
                    e.downcast_ref::<ApplyError>(),
                    Some(ApplyError::Duplicate(_))
                ) => {}
            other => {
                return Err(self.fail(format!(
                    "a duplicate install was not refused as a duplicate: {:?}",
                    other.map(|a| a.map(|a| a.removed.len()))
                )));
            }
        }
        let after = self.timeline.with_layer_map(|m| m.index());
        if after != before || self.timeline.status().pending_uploads != pending {
            return Err(self.fail("a refused duplicate changed the layer map or queued uploads"));
        }
        self.stats.duplicates_refused += 1;
        self.note("duplicate refused");
        Ok(())
    }

    pub(super) async fn step(&mut self) -> Result<(), Failure> {
        let x = self.rng.range(0, 99);
        match x {
            0..=34 => self.ingest().await?,
            35..=41 => self.flush(false).await?,
            42..=48 => self.flush(true).await?,
            49..=61 => self.compact().await?,
            62..=69 => self.gc().await?,
            70..=84 => self.release().await?,
            85..=87 => {
                let drop_cache = self.rng.chance(0.5);
                self.reload(false, drop_cache).await?
            }
            88..=90 => self.reload(true, false).await?,
            91..=93 => self.forge_duplicate().await?,
            _ => {
                // Late writes land, some of them.
                let n = self.rng.range(1, 4);
                for _ in 0..n {
                    let i = self.rng.next() as usize;
                    self.storage.release_late(i);
                }
                self.note("late writes land");
            }
        }
        self.settle().await;
        // The store's own pace: some waiting writes go through after every step.
        for _ in 0..self.rng.range(0, self.cfg.background_releases) {
            let i = self.rng.next() as usize;
            if !self.storage.release(i) {
                break;
            }
            self.settle().await;
        }
        if self.log {
            let info = self.timeline.status();
            let (held, late) = self.storage.pending();
            println!(
                "seed {} step {}: state: layers {} delta {} image, pending uploads {}, remote {}, held {held}, late {late}, faults {:?}",
                self.seed,
                self.step,
                info.delta_layers,
                info.image_layers,
                info.pending_uploads,
                info.remote_consistent_lsn,
                self.storage.counts()
            );
        }
        self.stats.steps += 1;
        self.check(4).await
    }

    /// Lands everything, checkpoints, reads every key at several LSNs.
    pub(super) async fn finish(&mut self) -> Result<(), Failure> {
        self.step += 1;
        while self.storage.release_late(0) {}
        self.storage.set_faults(SimFaults::default());
        self.flush(true).await?;
        let tl = self.timeline.clone();
        let idle = self
            .drive("wait for uploads", async move {
                tl.wait_uploads(Duration::from_secs(600)).await
            })
            .await?;
        if !idle {
            return Err(self.fail("uploads did not finish"));
        }
        self.check(0).await?;
        let (low, high) = self.read_bounds();
        if high >= low {
            let mut lsns = vec![low, high, (low + high) / 2];
            for _ in 0..2 {
                lsns.push(self.rng.range(low, high));
            }
            for k in 0..self.cfg.keys {
                for &l in &lsns {
                    self.check_read(Key::from_u128(k), Lsn(l)).await?;
                }
            }
        }
        let c = self.storage.counts();
        self.stats.faults_fired = c.failed_before + c.failed_after + c.late;
        self.stats.late_landed = c.landed_late;
        self.stats.late_after_retry = c.late_no_effect;
        self.images_created();
        Ok(())
    }

    pub(super) fn images_created(&mut self) {
        self.stats.images = self
            .timeline
            .with_layer_map(|m| m.layers().filter(|h| !h.name.is_delta()).count() as u64);
    }
}
