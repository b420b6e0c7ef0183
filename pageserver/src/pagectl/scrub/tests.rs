//! The scrub's driver against a real backend (the local filesystem) wrapped to act out what
//! other processes do while it runs.

use super::*;
use crate::remote::PutOutcome;
use crate::remote::local::LocalFs;
use bytes::Bytes;
use futures::future::BoxFuture;
use index_part::names::{LayerFileName, generation_claim_key, index_object_key, layer_object_key};
use index_part::{LayerMetadata, LayerName, TimelineMetadata};
use layer_format::{Key, Lsn};
use std::sync::Mutex;

const T: &str = "0123456789abcdef0123456789abcdef";
const TL: &str = "fedcba9876543210fedcba9876543210";

fn ids() -> (TenantId, TimelineId) {
    (T.parse().unwrap(), TL.parse().unwrap())
}

fn layer(k: u128, generation: u32) -> LayerFileName {
    LayerFileName {
        layer: LayerName::Image {
            key_range: Key::from_u128(k)..Key::from_u128(k + 1),
            lsn: Lsn(16),
        },
        generation: Generation(generation),
    }
}

fn index_json(generation: u32, layers: &[&LayerFileName]) -> Bytes {
    let (t, tl) = ids();
    let mut index = IndexPart::new(
        Generation(generation),
        TimelineMetadata {
            tenant_id: t,
            timeline_id: tl,
            created_at: std::time::UNIX_EPOCH,
        },
    );
    index.disk_consistent_lsn = Lsn(100);
    for l in layers {
        index.layers.insert(
            l.layer.clone(),
            LayerMetadata {
                file_size: 3,
                generation: l.generation,
                checksum: crc32c::crc32c(b"abc"),
                level: None,
            },
        );
    }
    Bytes::from(index.to_json().unwrap())
}

/// Claims 1 and 2; index (1, 1) and (2, 1) naming layer `kept`; an orphan of generation 1.
async fn bucket(fs: &LocalFs) -> (String, String) {
    let (t, tl) = ids();
    let (kept, orphan) = (layer(1, 1), layer(2, 1));
    for g in [1, 2] {
        fs.put_if_absent(&generation_claim_key(t, Generation(g)), Bytes::from("{}"))
            .await
            .unwrap();
    }
    for (g, s) in [(1, 1), (2, 1)] {
        let name = IndexObjectName {
            generation: Generation(g),
            seq: s,
        };
        fs.put_if_absent(&index_object_key(t, tl, name), index_json(g, &[&kept]))
            .await
            .unwrap();
    }
    for l in [&kept, &orphan] {
        fs.put_if_absent(&layer_object_key(t, tl, l), Bytes::from("abc"))
            .await
            .unwrap();
    }
    (
        layer_object_key(t, tl, &kept),
        layer_object_key(t, tl, &orphan),
    )
}

/// What another process does, run inside a listing.
type Hook = Box<dyn FnOnce(&LocalFs) + Send>;

/// A backend that runs `hook` once, before the first listing whose prefix ends with `trigger`.
struct Acting {
    inner: LocalFs,
    trigger: &'static str,
    hook: Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Acting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acting")
    }
}

impl RemoteStorage for Acting {
    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, anyhow::Result<PutOutcome>> {
        self.inner.put_if_absent(key, data)
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Bytes>>> {
        self.inner.get(key)
    }
    fn list_sized<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<Vec<ListedObject>>> {
        if prefix.ends_with(self.trigger) {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook(&self.inner);
            }
        }
        self.inner.list_sized(prefix)
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.delete(key)
    }
    fn remove_leftovers<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, anyhow::Result<usize>> {
        self.inner.remove_leftovers(prefix)
    }
}

fn options() -> ScrubOptions {
    ScrubOptions {
        tenant: None,
        verify_checksums: true,
        keep_index_versions: 5,
        progress: false,
    }
}

fn local(dir: &std::path::Path) -> LocalFs {
    let engine = layer_format::io::open_engine(layer_format::io::EngineChoice::Std).unwrap();
    LocalFs::new(dir, engine).unwrap()
}

/// Claims generation 3 in the bucket rooted at `root`, with a plain file write (the hook runs
/// inside a listing, where nothing may be awaited).
fn claim_three(root: &std::path::Path) -> impl FnOnce(&LocalFs) + Send + use<> {
    let (t, _) = ids();
    let path = root.join(generation_claim_key(t, Generation(3)));
    move |_: &LocalFs| std::fs::write(path, b"{}").unwrap()
}

#[tokio::test]
async fn the_orphan_is_garbage_in_a_quiet_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let fs = local(dir.path());
    let (_, orphan) = bucket(&fs).await;
    let report = scrub(&fs, &options()).await.unwrap();
    let garbage: Vec<&str> = report
        .verdicts()
        .flat_map(|v| v.garbage.iter().map(|g| g.object.as_str()))
        .collect();
    assert_eq!(garbage, vec![orphan.as_str()]);
    assert_eq!(
        report.tenants[0].generations_without_objects,
        Vec::<String>::new(),
        "generation 1 wrote the layers, 2 an index"
    );
    let out = purge(&fs, &report, true).await.unwrap();
    assert_eq!(out.objects, vec![orphan.clone()]);
    assert_eq!(fs.get(&orphan).await.unwrap(), None);
}

/// Found in review: an attachment that claims after the scrub listed the claims may load an
/// index older than the one the scrub judges. The claims are listed again after the timelines:
/// nothing of the tenant is garbage, and the change is reported.
#[tokio::test]
async fn a_claim_made_while_the_timelines_are_listed_blocks_every_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let fs = local(dir.path());
    let (_, orphan) = bucket(&fs).await;
    let acting = Acting {
        hook: Mutex::new(Some(Box::new(claim_three(dir.path())))),
        inner: fs,
        // The listing of the tenant's objects, after its claims were listed.
        trigger: "0123456789abcdef0123456789abcdef/",
    };
    let report = scrub(&acting, &options()).await.unwrap();
    assert_eq!(report.summary.garbage_objects, 0, "{report:#?}");
    // Claim 3 was not listed at first; a rerun would show it with no object yet.
    let again = scrub(&acting.inner, &options()).await.unwrap();
    assert_eq!(
        again.tenants[0].generations_without_objects,
        vec!["00000003"]
    );
    let tenant = &report.tenants[0];
    assert!(
        tenant.problems.iter().any(|p| p.kind == "claims_changed"),
        "{tenant:#?}"
    );
    assert!(
        report
            .verdicts()
            .flat_map(|v| v.kept.iter())
            .any(|k| k.object == orphan)
    );
}

/// And a claim made between the scrub and the purge: purge lists the claims once more and
/// deletes nothing of that tenant.
#[tokio::test]
async fn a_claim_made_after_the_scrub_stops_the_purge_of_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let fs = local(dir.path());
    let (_, orphan) = bucket(&fs).await;
    let report = scrub(&fs, &options()).await.unwrap();
    assert_eq!(report.summary.garbage_objects, 1);
    claim_three(dir.path())(&fs);
    let out = purge(&fs, &report, true).await.unwrap();
    assert_eq!(out.skipped_tenants, vec![T.to_string()]);
    assert!(out.objects.is_empty());
    assert!(fs.get(&orphan).await.unwrap().is_some(), "not deleted");
}

/// A listing is no snapshot: a layer that lands while it runs may be missed while the index
/// naming it is seen. The scrub looks again before it calls the layer missing.
#[tokio::test]
async fn a_layer_the_listing_missed_is_looked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    let fs = local(dir.path());
    let (kept, _) = bucket(&fs).await;
    let bytes = fs.get(&kept).await.unwrap().unwrap();
    fs.delete(&kept).await.unwrap();
    let missing = |report: &ScrubReport| -> Vec<String> {
        report
            .verdicts()
            .flat_map(|v| v.problems.iter())
            .filter(|p| p.kind == "missing")
            .map(|p| p.object.clone())
            .collect()
    };
    let report = scrub(&fs, &options()).await.unwrap();
    assert_eq!(
        missing(&report),
        vec![kept.clone()],
        "truly missing is reported"
    );

    // The layer lands after the timeline was listed and before the second look (whose
    // listing is of the layer's own key): not missing, and its checksum is verified.
    let path = dir.path().join(&kept);
    let acting = Acting {
        hook: Mutex::new(Some(Box::new(move |_: &LocalFs| {
            std::fs::write(path, &bytes).unwrap();
        }))),
        inner: fs,
        trigger: kept.rsplit('/').next().unwrap().to_string().leak(),
    };
    let report = scrub(&acting, &options()).await.unwrap();
    assert_eq!(missing(&report), Vec::<String>::new(), "{report:#?}");
}
