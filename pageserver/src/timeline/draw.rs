//! A timeline's layer map drawn as SVG (`pagectl timeline draw`, `GET .../layer_map.svg`).
//!
//! Keys run left to right and LSNs bottom to top. Both axes are *rank* scales: the distinct
//! range boundaries (and marked LSNs) are spaced evenly, in order, so that a layer of one key
//! or one LSN is as visible as one over the whole key space; positions show order, not
//! distance. A delta layer is a rectangle (L0 and L1 in different colours, classes `l0` and
//! `l1`), an image layer a horizontal line at its LSN. The GC cutoff and
//! `remote_consistent_lsn` are dashed lines across the drawing. Every layer is exactly one
//! element carrying `data-layer="<name>"` and a `<title>` (shown on hover).

use index_part::names::Generation;
use index_part::{LayerName, Level};
use layer_format::{Key, Lsn};
use std::fmt::Write as _;

/// One layer to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    /// Its name (ranges and kind).
    pub name: LayerName,
    /// How a delta was produced; `None` for an image, or when not known.
    pub level: Option<Level>,
    /// The generation that wrote it.
    pub generation: Generation,
}

/// LSNs marked across the drawing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// Reads below it are refused.
    pub gc_cutoff: Option<Lsn>,
    /// Every record at or below it is in remote storage.
    pub remote_consistent: Option<Lsn>,
}

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 800.0;
const LEFT: f64 = 20.0;
const TOP: f64 = 50.0;

/// An even spacing of sorted distinct values over `[from, from + span]`.
struct Ranks<T: Ord>(Vec<T>);

impl<T: Ord + Copy> Ranks<T> {
    fn new(mut v: Vec<T>) -> Ranks<T> {
        v.sort();
        v.dedup();
        Ranks(v)
    }
    /// Position of `x` (one of the values) as a fraction of the span.
    fn at(&self, x: T) -> f64 {
        let i = self.0.partition_point(|v| *v < x);
        if self.0.len() <= 1 {
            0.5
        } else {
            i as f64 / (self.0.len() - 1) as f64
        }
    }
}

/// The SVG document for `layers` with `marks`, headed by `title`.
pub fn svg(title: &str, layers: &[Drawn], marks: &Marks) -> String {
    let mut keys: Vec<Key> = Vec::new();
    let mut lsns: Vec<Lsn> = Vec::new();
    for l in layers {
        let (k, r) = (l.name.key_range(), l.name.lsn_range());
        keys.extend([k.start, k.end]);
        lsns.extend([r.start, r.end]);
    }
    lsns.extend(marks.gc_cutoff);
    lsns.extend(marks.remote_consistent);
    let (keys, lsns) = (Ranks::new(keys), Ranks::new(lsns));
    let x = |k: Key| LEFT + keys.at(k) * WIDTH;
    let y = |l: Lsn| TOP + (1.0 - lsns.at(l)) * HEIGHT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
        w = WIDTH + 2.0 * LEFT,
        h = HEIGHT + TOP + 40.0
    );
    let _ = writeln!(
        out,
        r#"<style>.l0{{fill:#f4a261;fill-opacity:.45;stroke:#9c4a0b}} .l1{{fill:#5b8def;fill-opacity:.35;stroke:#1d3f8f}} .delta{{fill:#999;fill-opacity:.35;stroke:#444}} .image{{stroke:#2a9d57;stroke-width:3}} .mark{{stroke-dasharray:6 4;stroke-width:1.5}} .gc{{stroke:#c0392b}} .remote{{stroke:#7d3c98}} text{{font:12px sans-serif}}</style>"#
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="18">{} ({} layers; keys left to right, LSNs upwards, both by rank)</text>"#,
        escape(title),
        layers.len()
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="36">orange: L0 delta, blue: L1 delta, grey: delta of unknown level, green line: image; dashed: red GC cutoff, purple remote_consistent_lsn</text>"#
    );
    for l in layers {
        let (k, r) = (l.name.key_range(), l.name.lsn_range());
        let name = l.name.to_string();
        let level = match l.level {
            Some(Level::L0) => "L0",
            Some(Level::L1) => "L1",
            None => "",
        };
        let tip = format!(
            "{name} (generation {}{}{level})",
            l.generation,
            if level.is_empty() { "" } else { ", " }
        );
        let (x0, x1) = (x(k.start), x(k.end));
        if l.name.is_delta() {
            let class = match l.level {
                Some(Level::L0) => "layer delta l0",
                Some(Level::L1) => "layer delta l1",
                None => "layer delta",
            };
            let (top, bottom) = (y(r.end), y(r.start));
            let _ = writeln!(
                out,
                r#"<rect class="{class}" data-layer="{name}" x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{:.1}"><title>{tip}</title></rect>"#,
                (x1 - x0).max(1.0),
                (bottom - top).max(1.0)
            );
        } else {
            let at = y(r.start);
            let _ = writeln!(
                out,
                r#"<line class="layer image" data-layer="{name}" x1="{x0:.1}" y1="{at:.1}" x2="{x1:.1}" y2="{at:.1}"><title>{tip}</title></line>"#
            );
        }
    }
    for (lsn, class, label) in [
        (marks.gc_cutoff, "mark gc", "GC cutoff"),
        (
            marks.remote_consistent,
            "mark remote",
            "remote_consistent_lsn",
        ),
    ] {
        let Some(lsn) = lsn else { continue };
        let at = y(lsn);
        let _ = writeln!(
            out,
            r#"<line class="{class}" x1="{LEFT}" y1="{at:.1}" x2="{:.1}" y2="{at:.1}"><title>{label} {lsn}</title></line>"#,
            LEFT + WIDTH
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{label} {lsn}</text>"#,
            LEFT + WIDTH,
            at - 3.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
