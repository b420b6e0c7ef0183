//! The attachment marker: which generation claims of a tenant this node made (brief section 6,
//! "Start-up"; #13).
//!
//! File: `<workdir>/tenants/<tenant>/attached-<generation:08x>`, one per claim this node made
//! or tried to make. Contents: the claim's token, 32 lowercase hex digits, and a newline. The
//! same token is in the body of the claim object `tenants/<tenant>/generations/<generation>`.
//!
//! Protocol (driven by `remote::generation::claim_generation_recorded`):
//! 1. Before the create-only put of claim G, G's marker is written and made durable (the file
//!    fsynced, then the directory). No claim of this node exists remotely without its marker.
//! 2. Claim created: the markers of lower generations are removed (they are superseded).
//! 3. Claim refused: G's marker is removed (G is someone else's).
//! 4. Outcome unknown: G's marker stays (G may be ours; step 2 of a later claim removes it).
//!
//! A crash anywhere leaves at most markers of claims that never landed, or whose token the
//! claim object does not hold; they verify as not ours and change nothing.
//!
//! Rule at start-up ([`decide`]): this node's generation is the highest one whose marker's
//! token the claim object holds. The tenant is re-attached only if no higher generation has
//! been claimed since; otherwise it moved to another node (or this node never held it) and is
//! not attached.

use crate::remote::RemoteStorage;
use crate::remote::generation::{ClaimRecorder, claim_token, highest_generation};
use anyhow::Context;
use index_part::names::{Generation, TenantId};
use layer_format::io::IoEngine;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PREFIX: &str = "attached-";

/// The markers of one tenant directory.
pub struct Markers {
    engine: Arc<dyn IoEngine>,
    dir: PathBuf,
}

impl Markers {
    /// The markers in tenant directory `dir` (which must exist).
    pub fn new(engine: Arc<dyn IoEngine>, dir: &Path) -> Markers {
        Markers {
            engine,
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, g: Generation) -> PathBuf {
        self.dir.join(format!("{PREFIX}{g}"))
    }

    /// Every marker's generation, highest first.
    pub fn list(&self) -> anyhow::Result<Vec<Generation>> {
        let names = match self.engine.list_dir(&self.dir) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("list {}", self.dir.display())),
        };
        let mut gens: Vec<Generation> = names
            .iter()
            .filter_map(|n| n.to_str()?.strip_prefix(PREFIX)?.parse().ok())
            .collect();
        gens.sort_unstable_by(|a, b| b.cmp(a));
        Ok(gens)
    }

    /// The token recorded for `g` (`None` if the marker is missing or torn).
    fn token(&self, g: Generation) -> Option<String> {
        let path = self.path(g);
        let file = self.engine.open_read(&path).ok()?;
        let mut buf = vec![0u8; 33];
        if file.size().ok()? != 33 {
            return None;
        }
        file.read_exact_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf).ok()?;
        let token = text.strip_suffix('\n')?;
        (token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| token.to_string())
    }

    fn write(&self, g: Generation, token: &str) -> anyhow::Result<()> {
        let path = self.path(g);
        // A marker of an earlier attempt at the same generation (outcome unknown, then
        // refused) is replaced: its claim is not ours.
        match self.engine.unlink(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", path.display())),
        }
        let file = self
            .engine
            .create_exclusive(&path)
            .with_context(|| format!("create {}", path.display()))?;
        let written = file
            .write_all_at(format!("{token}\n").as_bytes(), 0)
            .and_then(|()| file.fsync())
            .with_context(|| format!("write {}", path.display()))
            .and_then(|()| {
                self.engine
                    .fsync_dir(&self.dir)
                    .with_context(|| format!("fsync {}", self.dir.display()))
            });
        if written.is_err() {
            // No claim is made; a marker left behind would only verify as not ours.
            let _ = self.engine.unlink(&path);
        }
        written
    }

    fn remove(&self, gens: impl Iterator<Item = Generation>) {
        let mut removed = false;
        for g in gens {
            match self.engine.unlink(&self.path(g)) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // A marker left behind only costs a remote read at the next start.
                Err(e) => {
                    tracing::warn!(path = %self.path(g).display(), "could not remove an attachment marker: {e}")
                }
            }
        }
        if removed && let Err(e) = self.engine.fsync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "fsync after removing attachment markers: {e}");
        }
    }
}

impl ClaimRecorder for Markers {
    fn before_claim(&self, generation: Generation, token: &str) -> anyhow::Result<()> {
        self.write(generation, token)
    }
    fn claimed(&self, generation: Generation) {
        match self.list() {
            Ok(all) => self.remove(all.into_iter().filter(|g| *g < generation)),
            Err(e) => tracing::warn!("list attachment markers: {e:#}"),
        }
    }
    fn refused(&self, generation: Generation) {
        self.remove(std::iter::once(generation));
    }
}

/// What start-up does with a tenant directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// This node's claim `own` is the highest: re-attach (with a new generation).
    Reattach {
        /// This node's newest claim.
        own: Generation,
    },
    /// A higher generation than this node's newest claim (`own`, if any) has been claimed:
    /// the tenant belongs to another attachment. It is not attached here.
    Moved {
        /// This node's newest claim, if it ever made one.
        own: Option<Generation>,
        /// The highest claim.
        highest: Generation,
    },
    /// No generation of the tenant was ever claimed: a creation or an attach that stopped
    /// before its claim. Nothing to attach.
    NeverClaimed,
}

/// Decides whether a tenant directory is re-attached at start-up (the rule above).
pub async fn decide(
    storage: &dyn RemoteStorage,
    markers: &Markers,
    tenant: TenantId,
) -> anyhow::Result<Decision> {
    let Some(highest) = highest_generation(storage, tenant).await? else {
        return Ok(Decision::NeverClaimed);
    };
    let mut own = None;
    for g in markers.list()? {
        if g > highest {
            // A claim that never landed.
            continue;
        }
        let Some(local) = markers.token(g) else {
            continue;
        };
        if claim_token(storage, tenant, g).await?.as_deref() == Some(local.as_str()) {
            own = Some(g);
            break;
        }
    }
    Ok(match own {
        Some(own) if own == highest => Decision::Reattach { own },
        own => Decision::Moved { own, highest },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::generation::{claim_generation, claim_generation_recorded};
    use crate::remote::local::LocalFs;
    use layer_format::io::{EngineChoice, open_engine};

    #[tokio::test]
    async fn own_claims_are_told_from_other_nodes_claims() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open_engine(EngineChoice::Std).unwrap();
        let fs = LocalFs::new(&dir.path().join("remote"), engine.clone()).unwrap();
        let tdir = dir.path().join("tenant");
        std::fs::create_dir_all(&tdir).unwrap();
        let markers = Markers::new(engine.clone(), &tdir);
        let tenant = TenantId([9; 16]);
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::NeverClaimed
        );

        let g1 = claim_generation_recorded(&fs, tenant, Some(&markers))
            .await
            .unwrap();
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::Reattach { own: g1 }
        );
        let g2 = claim_generation_recorded(&fs, tenant, Some(&markers))
            .await
            .unwrap();
        assert_eq!(
            markers.list().unwrap(),
            vec![g2],
            "older markers are removed"
        );
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::Reattach { own: g2 }
        );

        // Another node claims: the tenant moved.
        let other = claim_generation(&fs, tenant).await.unwrap();
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::Moved {
                own: Some(g2),
                highest: other
            }
        );

        // A marker forged for the other node's generation (a claim whose outcome we never
        // learned, then won by the other node) does not verify.
        markers.write(other, &"0".repeat(32)).unwrap();
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::Moved {
                own: Some(g2),
                highest: other
            }
        );
        // A torn marker does not verify either.
        std::fs::write(tdir.join(format!("{PREFIX}{g2}")), b"").unwrap();
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::Moved {
                own: None,
                highest: other
            }
        );
    }

    /// A marker that cannot be made durable is removed, and no claim is made.
    #[cfg(feature = "testing")]
    #[tokio::test]
    async fn a_marker_that_fails_to_persist_is_removed_and_nothing_is_claimed() {
        use layer_format::io::sim::SimEngine;
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFs::new(
            &dir.path().join("remote"),
            open_engine(EngineChoice::Std).unwrap(),
        )
        .unwrap();
        let sim = Arc::new(SimEngine::unrecorded());
        let engine: Arc<dyn IoEngine> = sim.clone();
        let tdir = Path::new("/tenant");
        engine.create_dir_all(tdir).unwrap();
        let markers = Markers::new(engine, tdir);
        let tenant = TenantId([7; 16]);
        sim.fail_fsync_in(0);
        let err = claim_generation_recorded(&fs, tenant, Some(&markers))
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("record the claim locally"),
            "{err:#}"
        );
        assert_eq!(markers.list().unwrap(), vec![], "the torn marker is gone");
        assert_eq!(
            crate::remote::generation::highest_generation(&fs, tenant)
                .await
                .unwrap(),
            None,
            "no claim was made"
        );
        // The next attempt works.
        let g = claim_generation_recorded(&fs, tenant, Some(&markers))
            .await
            .unwrap();
        assert_eq!(
            decide(&fs, &markers, tenant).await.unwrap(),
            Decision::Reattach { own: g }
        );
    }
}
