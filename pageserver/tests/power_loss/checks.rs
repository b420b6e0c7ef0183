//! What one crash state must satisfy after recovery: the server's state, the timeline's
//! reads, the files left on disk.

use super::*;

/// Checks one crash state; the violations found.
pub(super) async fn check_state(
    image: &Image,
    acked: u64,
    model: &Model,
    published: &HashMap<PathBuf, HashSet<u32>>,
) -> Vec<String> {
    let mut bad = Vec::new();
    // No file under a final name differs from what was published under it.
    for (path, bytes) in image.materialize() {
        let Some(bytes) = bytes else { continue };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_temp_file_name(name) {
            continue;
        }
        if let Some(versions) = published.get(&path)
            && !versions.contains(&crc32c::crc32c(&bytes))
        {
            bad.push(format!(
                "{} ({} bytes) differs from what was published",
                path.display(),
                bytes.len()
            ));
        }
    }
    let engine = SimEngine::from_image(image);
    let mgr = match start(engine.clone(), Upload::Correct, &Arc::default()).await {
        Ok(m) => m,
        Err(e) => {
            bad.push(format!("recovery failed: {e:#}"));
            return bad;
        }
    };
    let (t, tl) = ids();
    let timeline = mgr.get(t).ok().and_then(|tenant| tenant.timeline(tl));
    match (timeline, acked) {
        (None, 0) => {}
        (None, _) => bad.push(format!(
            "the acknowledged timeline is gone (tenant attached: {}; files: {:?})",
            mgr.get(t).is_ok(),
            image.materialize().keys().collect::<Vec<_>>()
        )),
        (Some(timeline), _) => {
            bad.extend(check_timeline(&engine, &timeline, acked, model).await);
            timeline.stop().await;
        }
    }
    mgr.shutdown();
    bad
}

pub(super) async fn check_timeline(
    engine: &SimEngine,
    timeline: &Arc<pageserver::timeline::Timeline>,
    acked: u64,
    model: &Model,
) -> Vec<String> {
    let mut bad = Vec::new();
    let info = timeline.status();
    let remote: Lsn = info.remote_consistent_lsn;
    if acked > 0 && remote.0 < acked - 1 {
        bad.push(format!(
            "remote_consistent_lsn {remote} below the acknowledged {}",
            Lsn(acked - 1)
        ));
        return bad;
    }
    // GC never cuts above what is durable remotely; reads below its cutoff are refused.
    let cutoff: Lsn = info.gc_cutoff_lsn;
    if cutoff > remote {
        bad.push(format!(
            "gc_cutoff_lsn {cutoff} above remote_consistent_lsn {remote}"
        ));
    }
    // Every page at the acknowledged LSN and at each earlier flush boundary the cutoff allows.
    let acked_lsn = acked.saturating_sub(1);
    let lsns = (1..=acked_lsn / 12).map(|i| i * 12).chain([acked_lsn]);
    for lsn in lsns.filter(|l| *l > 0 && *l >= cutoff.0).map(Lsn) {
        for k in 0..KEYS {
            let key = Key::from_u128(k);
            let got = timeline.get_page(key, lsn).await.ok();
            if got != model.page(key, lsn) {
                bad.push(format!("page {k} at {lsn} differs from the model"));
            }
        }
    }
    // The load queues an index upload under the new generation: let it land first.
    if !timeline.wait_uploads(Duration::from_secs(30)).await {
        bad.push("uploads after recovery did not finish".into());
    }
    bad.extend(check_files(engine));
    // The next ingest, flush with upload, and compaction succeed.
    let next = remote.0 + 1;
    // Bases from what the recovered timeline holds: records above it were lost with the crash.
    let recs = with_bases(
        records(next, 12, KEYS, SMALL_DELTA_BYTES, 0),
        &model.upto(remote),
    );
    if let Err(e) = timeline.ingest(recs.clone(), None).await {
        bad.push(format!("ingest after recovery: {e:?}"));
    } else if let Err(e) = timeline.checkpoint().await {
        bad.push(format!("flush after recovery: {e:#}"));
    } else if let Err(e) = timeline.compact().await {
        bad.push(format!("compaction after recovery: {e:#}"));
    }
    bad
}

/// The authoritative index's layers are all in remote storage with their size and checksum;
/// locally no temp file and no layer outside it.
pub(super) fn check_files(engine: &SimEngine) -> Vec<String> {
    let mut bad = Vec::new();
    let files: BTreeMap<PathBuf, Option<Arc<Vec<u8>>>> = engine.volatile().materialize();
    let (t, tl) = ids();
    let prefix = PathBuf::from(REMOTE).join(index_part::names::timeline_prefix(t, tl));
    let gens = PathBuf::from(REMOTE).join(format!("tenants/{t}/generations"));
    let mine = files
        .keys()
        .filter(|p| p.parent() == Some(&gens))
        .filter_map(|p| p.file_name()?.to_str()?.parse::<Generation>().ok())
        .max();
    let names: Vec<String> = files
        .keys()
        .filter(|p| p.parent() == Some(&prefix))
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect();
    let Some(mine) = mine else {
        return vec!["no generation claimed".into()];
    };
    let Some(object) = select_authoritative(names.iter().map(String::as_str), mine)
        .ok()
        .and_then(|s| s.authoritative)
    else {
        return vec!["no authoritative index".into()];
    };
    let Some(Some(bytes)) = files.get(&prefix.join(object.to_string())) else {
        return vec![format!("{object} unreadable")];
    };
    let index = match IndexPart::from_json_object(bytes, object, ParseMode::Strict) {
        Ok(i) => i,
        Err(e) => return vec![format!("{object}: {e}")],
    };
    for (name, meta) in &index.layers {
        let file = IndexPart::file_name(name, meta).to_string();
        match files.get(&prefix.join(&file)) {
            Some(Some(d))
                if d.len() as u64 == meta.file_size && crc32c::crc32c(d) == meta.checksum => {}
            Some(Some(_)) => bad.push(format!("{object}: {file} is not what the index records")),
            _ => bad.push(format!("{object} references missing {file}")),
        }
    }
    for p in files.keys().filter(|p| p.starts_with(REMOTE)) {
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_temp_file_name)
        {
            bad.push(format!(
                "remote temp object {} left after recovery",
                p.display()
            ));
        }
    }
    let local = PathBuf::from(WORKDIR).join(format!("tenants/{t}/timelines/{tl}"));
    for p in files.keys().filter(|p| p.parent() == Some(&local)) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match classify_local(name) {
            LocalFile::Temp => bad.push(format!("temp file {name} left after recovery")),
            LocalFile::Layer(f)
                if index
                    .layers
                    .get(&f.layer)
                    .is_none_or(|m| m.generation != f.generation) =>
            {
                bad.push(format!("local layer {name} is not in the index"));
            }
            _ => {}
        }
    }
    bad
}
