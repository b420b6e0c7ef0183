//! Every name this project puts on disk or in object storage, parsed and formatted in one
//! place (brief section 4). Layer names, generations and temp names are defined next to the
//! layer writer in [`layer_format::name`] and re-exported here; everything else is defined here.
//!
//! ```text
//! tenant id, timeline id   32 lowercase hex digits
//! layer file / object      <layer name>-<generation:08x>
//! index object             index_part.json-<generation:08x>-<seq:08x>
//! remote timeline prefix   tenants/<tenant_id>/timelines/<timeline_id>/
//! generation claim         tenants/<tenant_id>/generations/<generation:08x>
//! local timeline dir       <workdir>/tenants/<tenant_id>/timelines/<timeline_id>/
//! quarantine               <local timeline dir>/lost+found/
//! ```
//!
//! Ids are checked when parsed, so a string that is not exactly 32 hex digits can never reach a
//! path or an object key.

pub use layer_format::name::{
    Generation, LayerFileName, LayerName, ParseNameError, TEMP_SUFFIX, is_temp_file_name,
    temp_file_name,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Prefix of every index object name.
pub const INDEX_PART_PREFIX: &str = "index_part.json-";
/// Name of the quarantine directory beside a timeline's layer files.
pub const LOST_AND_FOUND: &str = "lost+found";

fn parse_hex32(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(s, 16).ok().map(u128::to_be_bytes)
}

macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " id: 16 bytes, written as 32 lowercase hex digits.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 16]);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:032x}", u128::from_be_bytes(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseNameError;
            fn from_str(s: &str) -> Result<$name, ParseNameError> {
                parse_hex32(s).map($name).ok_or_else(|| ParseNameError {
                    name: s.to_string(),
                    reason: concat!($what, " id is not 32 lowercase hex digits"),
                })
            }
        }
    };
}

id_type!(TenantId, "tenant");
id_type!(TimelineId, "timeline");

/// The name of one version of a timeline's index: `index_part.json-<generation>-<seq>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct IndexObjectName {
    /// The generation of the attachment that wrote it.
    pub generation: Generation,
    /// Its sequence number within that generation.
    pub seq: u32,
}

impl fmt::Display for IndexObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{INDEX_PART_PREFIX}{}-{:08x}", self.generation, self.seq)
    }
}

impl FromStr for IndexObjectName {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<IndexObjectName, ParseNameError> {
        let err = |reason| ParseNameError {
            name: s.to_string(),
            reason,
        };
        let rest = s
            .strip_prefix(INDEX_PART_PREFIX)
            .ok_or_else(|| err("not an index object name"))?;
        let (g, seq) = rest
            .split_once('-')
            .ok_or_else(|| err("index name lacks -<seq>"))?;
        let generation: Generation = g.parse().map_err(|_| err("bad generation in index name"))?;
        let seq = parse_hex8(seq).ok_or_else(|| err("sequence is not 8 lowercase hex digits"))?;
        Ok(IndexObjectName { generation, seq })
    }
}

fn parse_hex8(s: &str) -> Option<u32> {
    let ok = s.len() == 8 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if ok {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// `tenants/<tenant_id>`: everything remote of a tenant lives under it.
pub fn tenant_prefix(tenant: TenantId) -> String {
    format!("tenants/{tenant}")
}

/// `tenants/<tenant_id>/timelines/<timeline_id>`: a timeline's layer and index objects.
pub fn timeline_prefix(tenant: TenantId, timeline: TimelineId) -> String {
    format!("tenants/{tenant}/timelines/{timeline}")
}

/// The object key of a layer file.
pub fn layer_object_key(tenant: TenantId, timeline: TimelineId, file: &LayerFileName) -> String {
    format!("{}/{file}", timeline_prefix(tenant, timeline))
}

/// The object key of an index version.
pub fn index_object_key(tenant: TenantId, timeline: TimelineId, index: IndexObjectName) -> String {
    format!("{}/{index}", timeline_prefix(tenant, timeline))
}

/// `tenants/<tenant_id>/generations`: the claim objects of a tenant.
pub fn generations_prefix(tenant: TenantId) -> String {
    format!("tenants/{tenant}/generations")
}

/// The claim object of `generation`.
pub fn generation_claim_key(tenant: TenantId, generation: Generation) -> String {
    format!("{}/{generation}", generations_prefix(tenant))
}

/// The generation a claim object key (or its last component) names, if it is one.
pub fn parse_generation_claim(key: &str) -> Option<Generation> {
    key.rsplit('/').next()?.parse().ok()
}

/// `<workdir>/tenants/<tenant_id>/timelines/<timeline_id>`: a timeline's local layer files.
pub fn local_timeline_dir(workdir: &Path, tenant: TenantId, timeline: TimelineId) -> PathBuf {
    workdir
        .join("tenants")
        .join(tenant.to_string())
        .join("timelines")
        .join(timeline.to_string())
}

/// What a file found in a local timeline directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalFile {
    /// A layer file.
    Layer(LayerFileName),
    /// A temp file of some writer.
    Temp,
    /// The quarantine directory.
    LostAndFound,
    /// Anything else: quarantined by reconciliation.
    Unrecognised,
}

/// Classifies a name found in a local timeline directory.
pub fn classify_local(name: &str) -> LocalFile {
    if is_temp_file_name(name) {
        LocalFile::Temp
    } else if name == LOST_AND_FOUND {
        LocalFile::LostAndFound
    } else {
        name.parse()
            .map(LocalFile::Layer)
            .unwrap_or(LocalFile::Unrecognised)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shapes_match_the_brief() {
        let t = TenantId::from_str("0123456789abcdef0123456789abcdef").unwrap();
        let tl = TimelineId([0xab; 16]);
        let idx = IndexObjectName {
            generation: Generation(2),
            seq: 0x1f,
        };
        assert_eq!(idx.to_string(), "index_part.json-00000002-0000001f");
        assert_eq!(
            index_object_key(t, tl, idx),
            format!("tenants/{t}/timelines/{tl}/index_part.json-00000002-0000001f")
        );
        assert_eq!(
            generation_claim_key(t, Generation(7)),
            format!("tenants/{t}/generations/00000007")
        );
        assert_eq!(
            parse_generation_claim(&generation_claim_key(t, Generation(7))),
            Some(Generation(7))
        );
        assert_eq!(
            local_timeline_dir(Path::new("/w"), t, tl),
            PathBuf::from(format!("/w/tenants/{t}/timelines/{tl}"))
        );
    }

    #[test]
    fn ids_that_could_escape_a_path_are_refused() {
        for s in [
            "",
            "../../etc/passwd",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef/123456789abcdef",
            " 123456789abcdef0123456789abcdef",
        ] {
            assert!(s.parse::<TenantId>().is_err(), "{s:?}");
            assert!(s.parse::<TimelineId>().is_err(), "{s:?}");
        }
        for s in [
            "index_part.json",
            "index_part.json-00000001",
            "index_part.json-00000001-0000000G",
            "index_part.json-1-1",
            "index_part.json-00000001-00000001-",
            "xindex_part.json-00000001-00000001",
        ] {
            assert!(s.parse::<IndexObjectName>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn local_files_are_classified() {
        let layer = "00000000000000000000000000000000-00000000000000000000000000000009__0000000000000001-0000000000000005-00000001";
        assert!(matches!(classify_local(layer), LocalFile::Layer(_)));
        assert_eq!(classify_local(&temp_file_name(layer, 3)), LocalFile::Temp);
        assert_eq!(classify_local("lost+found"), LocalFile::LostAndFound);
        assert_eq!(classify_local("notes.txt"), LocalFile::Unrecognised);
        assert_eq!(
            classify_local(&layer[..layer.len() - 1]),
            LocalFile::Unrecognised
        );
    }

    proptest! {
        #[test]
        fn ids_and_index_names_round_trip(id: [u8; 16], g: u32, seq: u32) {
            prop_assert_eq!(TenantId(id).to_string().parse::<TenantId>(), Ok(TenantId(id)));
            prop_assert_eq!(TimelineId(id).to_string().parse::<TimelineId>(), Ok(TimelineId(id)));
            let n = IndexObjectName { generation: Generation(g), seq };
            prop_assert_eq!(n.to_string().parse::<IndexObjectName>(), Ok(n));
            prop_assert_eq!(parse_generation_claim(&Generation(g).to_string()), Some(Generation(g)));
        }

        #[test]
        fn index_name_order_is_generation_then_seq(a: (u32, u32), b: (u32, u32)) {
            let na = IndexObjectName { generation: Generation(a.0), seq: a.1 };
            let nb = IndexObjectName { generation: Generation(b.0), seq: b.1 };
            prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
        }
    }
}
