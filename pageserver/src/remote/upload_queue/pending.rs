//! What an upload queue still has to do, kept so that its size does not depend on how long
//! remote storage has been down (#13).
//!
//! * Layer uploads, in the order they were queued; several may run at once.
//! * One index: the newest queued. A newer index replaces an older one that has not been
//!   uploaded (its sequence number is then never used): the newer one references every layer
//!   the older one kept, so uploading it alone acknowledges as much and more.
//! * One set of objects to delete, each removed from the layer map by an index queued before
//!   the deletion; it waits until an index at least that new is uploaded.
//! * The barrier: the first index of a loaded timeline (its loaded index, re-uploaded under
//!   this attachment's generation and a sequence number above every earlier one). It goes
//!   before everything else: from then on no index of an earlier incarnation can be chosen
//!   authoritative again, which the conflict rule of `execute.rs` relies on (I11).
//!
//! The order rules (I4, I8): an index is uploaded only when no layer queued before it is
//! waiting or in flight; a deletion only after the index that no longer references its
//! objects (or a newer one) was uploaded. Memory: one entry per queued layer (a name, a path
//! and the metadata), one index and one list of names, whatever the number of flushes.

use index_part::IndexPart;
use index_part::LayerMetadata;
use index_part::names::LayerFileName;
use std::collections::VecDeque;
use std::path::PathBuf;

/// One layer to upload.
#[derive(Debug, Clone)]
pub struct LayerJob {
    /// Its file and object name.
    pub file_name: LayerFileName,
    /// The local file.
    pub path: PathBuf,
    /// What the index records of it.
    pub meta: LayerMetadata,
}

/// What the executor does next.
#[derive(Debug)]
pub enum Work {
    /// Upload these layers (at once).
    Layers(Vec<LayerJob>),
    /// Upload this index under `seq`.
    Index(Box<IndexPart>, u32),
    /// Delete these objects.
    Delete(Vec<LayerFileName>),
}

/// The pending work of one queue.
#[derive(Debug, Default)]
pub struct Pending {
    layers: VecDeque<LayerJob>,
    barrier: Option<(Box<IndexPart>, u32)>,
    index: Option<(Box<IndexPart>, u32)>,
    deletes: Vec<LayerFileName>,
    /// The sequence number of the newest index queued before the newest deletion.
    deletes_after: Option<u32>,
    /// The sequence number of the newest index queued.
    last_index_pushed: Option<u32>,
    /// The newest index uploaded by this queue.
    uploaded_seq: Option<u32>,
    /// Indexes replaced before they were uploaded.
    pub coalesced: u64,
    /// Whether an index of this incarnation is in remote storage (the barrier, or the first
    /// index of a created timeline).
    pub index_landed: bool,
}

impl Pending {
    /// Queues a layer upload.
    pub fn push_layer(&mut self, job: LayerJob) {
        self.layers.push_back(job);
    }

    /// Queues an index; returns whether it replaced an older one.
    pub fn push_index(&mut self, index: Box<IndexPart>, seq: u32) -> bool {
        assert!(
            self.last_index_pushed.is_none_or(|s| s < seq),
            "index sequence numbers are queued in increasing order"
        );
        self.last_index_pushed = Some(seq);
        if !self.index_landed && self.barrier.is_none() && self.index.is_none() {
            self.barrier = Some((index, seq));
            return false;
        }
        let replaced = self.index.replace((index, seq)).is_some();
        if replaced {
            self.coalesced += 1;
        }
        replaced
    }

    /// Queues the deletion of objects that the newest queued index no longer references.
    pub fn push_delete(&mut self, layers: Vec<LayerFileName>) {
        self.deletes.extend(layers);
        self.deletes_after = self.last_index_pushed;
    }

    /// The next work, up to `max_layers` layers and `max_bytes` bytes of them at once (at
    /// least one). `None` if nothing can run now.
    pub fn next(&self, max_layers: usize, max_bytes: u64) -> Option<Work> {
        if let Some((index, seq)) = &self.barrier {
            return Some(Work::Index(index.clone(), *seq));
        }
        if !self.layers.is_empty() {
            let mut bytes = 0u64;
            let mut jobs = Vec::new();
            for job in self.layers.iter().take(max_layers.max(1)) {
                if !jobs.is_empty() && bytes + job.meta.file_size > max_bytes {
                    break;
                }
                bytes += job.meta.file_size;
                jobs.push(job.clone());
            }
            return Some(Work::Layers(jobs));
        }
        if let Some((index, seq)) = &self.index {
            return Some(Work::Index(index.clone(), *seq));
        }
        if !self.deletes.is_empty() {
            let ready = match (self.deletes_after, self.uploaded_seq) {
                (None, _) => true,
                (Some(after), Some(up)) => up >= after,
                (Some(_), None) => false,
            };
            if ready {
                return Some(Work::Delete(self.deletes.clone()));
            }
        }
        None
    }

    /// A layer of [`Work::Layers`] is uploaded.
    pub fn layer_done(&mut self, file_name: &LayerFileName) {
        if let Some(i) = self.layers.iter().position(|j| &j.file_name == file_name) {
            self.layers.remove(i);
        }
    }

    /// The index `seq` is uploaded.
    pub fn index_done(&mut self, seq: u32) {
        self.uploaded_seq = Some(self.uploaded_seq.map_or(seq, |s| s.max(seq)));
        self.index_landed = true;
        if self.barrier.as_ref().is_some_and(|(_, s)| *s == seq) {
            self.barrier = None;
        }
        if self.index.as_ref().is_some_and(|(_, s)| *s <= seq) {
            self.index = None;
        }
    }

    /// An object of [`Work::Delete`] is deleted.
    pub fn delete_done(&mut self, file_name: &LayerFileName) {
        self.deletes.retain(|f| f != file_name);
    }

    /// Operations queued and not done: each layer, the barrier, the index, the deletion.
    pub fn count(&self) -> usize {
        self.layers.len()
            + usize::from(self.barrier.is_some())
            + usize::from(self.index.is_some())
            + usize::from(!self.deletes.is_empty())
    }

    /// Bytes held: the queued entries, and the queued indexes as JSON.
    pub fn held_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|j| std::mem::size_of::<LayerJob>() + j.path.as_os_str().len())
            .sum();
        let indexes: usize = [&self.barrier, &self.index]
            .into_iter()
            .flatten()
            .map(|(i, _)| i.to_json().map_or(0, |j| j.len()))
            .sum();
        layers + indexes + self.deletes.len() * std::mem::size_of::<LayerFileName>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use index_part::names::{Generation, LayerName, TenantId, TimelineId};
    use index_part::{IndexPart, TimelineMetadata};
    use layer_format::{Key, Lsn};

    fn index() -> Box<IndexPart> {
        Box::new(IndexPart::new(
            Generation(1),
            TimelineMetadata {
                tenant_id: TenantId([1; 16]),
                timeline_id: TimelineId([2; 16]),
                created_at: std::time::SystemTime::UNIX_EPOCH,
            },
        ))
    }

    fn job(i: u128) -> LayerJob {
        LayerJob {
            file_name: LayerFileName {
                layer: LayerName::Image {
                    key_range: Key::from_u128(i)..Key::from_u128(i + 1),
                    lsn: Lsn(1),
                },
                generation: Generation(1),
            },
            path: PathBuf::from(format!("/x/{i}")),
            meta: LayerMetadata {
                file_size: 100,
                generation: Generation(1),
                checksum: 0,
                level: None,
            },
        }
    }

    #[test]
    fn the_barrier_goes_first_then_layers_then_the_newest_index_then_deletes() {
        let mut p = Pending::default();
        p.push_index(index(), 5);
        p.push_layer(job(1));
        p.push_index(index(), 6);
        p.push_delete(vec![job(9).file_name]);
        p.push_layer(job(2));
        p.push_index(index(), 7);
        assert_eq!(p.coalesced, 1, "6 was replaced by 7");
        assert_eq!(
            p.count(),
            5,
            "two layers, the barrier, the index, the deletion"
        );
        assert!(matches!(p.next(8, 1000), Some(Work::Index(_, 5))));
        p.index_done(5);
        let Some(Work::Layers(jobs)) = p.next(8, 1000) else {
            panic!()
        };
        assert_eq!(jobs.len(), 2);
        // Bounded by bytes (but always one).
        let Some(Work::Layers(jobs)) = p.next(8, 150) else {
            panic!()
        };
        assert_eq!(jobs.len(), 1);
        p.layer_done(&jobs[0].file_name);
        p.layer_done(&job(2).file_name);
        assert!(matches!(p.next(8, 1000), Some(Work::Index(_, 7))));
        p.index_done(7);
        let Some(Work::Delete(d)) = p.next(8, 1000) else {
            panic!()
        };
        assert_eq!(d, vec![job(9).file_name]);
        p.delete_done(&d[0]);
        assert!(p.next(8, 1000).is_none());
        assert_eq!(p.count(), 0);
    }

    #[test]
    fn a_deletion_waits_for_its_index() {
        let mut p = Pending {
            index_landed: true,
            ..Pending::default()
        };
        p.push_index(index(), 3);
        p.push_delete(vec![job(1).file_name]);
        assert!(matches!(p.next(8, 1000), Some(Work::Index(_, 3))));
        // Not uploaded yet: nothing else may run.
        p.layer_done(&job(1).file_name);
        assert!(matches!(p.next(8, 1000), Some(Work::Index(_, 3))));
        p.index_done(3);
        assert!(matches!(p.next(8, 1000), Some(Work::Delete(_))));
    }

    #[test]
    fn memory_does_not_grow_with_queued_indexes() {
        let mut p = Pending {
            index_landed: true,
            ..Pending::default()
        };
        p.push_index(index(), 1);
        let one = p.held_bytes();
        for seq in 2..2000 {
            p.push_index(index(), seq);
        }
        assert_eq!(p.held_bytes(), one);
        assert_eq!(p.coalesced, 1998);
    }
}
