use super::*;
use proptest::prelude::*;

fn delta(k: (u128, u128), l: (u64, u64), level: Option<Level>) -> Drawn {
    Drawn {
        name: LayerName::Delta {
            key_range: Key::from_u128(k.0)..Key::from_u128(k.1),
            lsn_range: Lsn(l.0)..Lsn(l.1),
        },
        level,
        generation: Generation(3),
    }
}

fn image(k: (u128, u128), lsn: u64) -> Drawn {
    Drawn {
        name: LayerName::Image {
            key_range: Key::from_u128(k.0)..Key::from_u128(k.1),
            lsn: Lsn(lsn),
        },
        level: None,
        generation: Generation(1),
    }
}

/// `(tag, class, y, y + height)` of the element drawing each layer, by name.
fn shapes(svg: &str) -> std::collections::BTreeMap<String, (String, String, f64, f64)> {
    let doc = roxmltree::Document::parse(svg).expect("the SVG parses as XML");
    let num = |n: roxmltree::Node, a: &str| n.attribute(a).map_or(0.0, |v| v.parse().unwrap());
    let mut out = std::collections::BTreeMap::new();
    for n in doc.descendants().filter(|n| n.has_attribute("data-layer")) {
        let name = n.attribute("data-layer").unwrap().to_string();
        let (top, bottom) = match n.tag_name().name() {
            "rect" => (num(n, "y"), num(n, "y") + num(n, "height")),
            _ => (num(n, "y1"), num(n, "y1")),
        };
        let shape = (
            n.tag_name().name().to_string(),
            n.attribute("class").unwrap_or("").to_string(),
            top,
            bottom,
        );
        assert!(
            out.insert(name.clone(), shape).is_none(),
            "{name} drawn twice"
        );
    }
    out
}

#[test]
fn kinds_levels_and_marks_are_told_apart() {
    let layers = vec![
        delta((0, u128::MAX), (10, 20), Some(Level::L0)),
        delta((0, 5), (1, 10), Some(Level::L1)),
        delta((5, 9), (1, 10), None),
        image((0, 9), 1),
    ];
    let marks = Marks {
        gc_cutoff: Some(Lsn(5)),
        remote_consistent: Some(Lsn(19)),
    };
    let svg = svg("tenant <t> & timeline", &layers, &marks);
    let got = shapes(&svg);
    assert_eq!(got.len(), 4);
    let kind = |l: &Drawn| {
        let s = &got[&l.name.to_string()];
        (s.0.as_str(), s.1.as_str())
    };
    assert_eq!(kind(&layers[0]), ("rect", "layer delta l0"));
    assert_eq!(kind(&layers[1]), ("rect", "layer delta l1"));
    assert_eq!(kind(&layers[2]), ("rect", "layer delta"));
    assert_eq!(kind(&layers[3]), ("line", "layer image"));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let marked: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("mark")))
        .map(|n| n.attribute("class").unwrap())
        .collect();
    assert_eq!(marked, ["mark gc", "mark remote"]);
    assert!(svg.contains("tenant &lt;t&gt; &amp; timeline"));
}

#[test]
fn an_empty_map_is_a_valid_drawing() {
    let svg = svg("empty", &[], &Marks::default());
    assert!(shapes(&svg).is_empty());
}

proptest! {
    /// One element per layer, and LSN order is kept on the page: a layer whose LSNs are all
    /// below another's is drawn lower (larger y; coordinates are printed to 0.1).
    #[test]
    fn one_shape_per_layer_in_lsn_order(
        specs in proptest::collection::btree_set((0u128..50, 1u128..50, 0u64..100, 1u64..50, any::<bool>()), 0..30),
    ) {
        let layers: Vec<Drawn> = specs
            .iter()
            .map(|&(k, kw, l, lw, is_image)| {
                if is_image {
                    image((k, k + kw), l)
                } else {
                    delta((k, k + kw), (l, l + lw), Some(if kw == 1 { Level::L0 } else { Level::L1 }))
                }
            })
            .collect();
        let mut unique = layers.clone();
        unique.sort_by_key(|l| l.name.to_string());
        unique.dedup_by_key(|l| l.name.to_string());
        let got = shapes(&svg("t", &unique, &Marks::default()));
        prop_assert_eq!(got.len(), unique.len());
        for a in &unique {
            for b in &unique {
                let (ra, rb) = (a.name.lsn_range(), b.name.lsn_range());
                if ra.end <= rb.start && a.name.is_delta() && b.name.is_delta() {
                    let (sa, sb) = (&got[&a.name.to_string()], &got[&b.name.to_string()]);
                    prop_assert!(sa.2 >= sb.3 - 0.2, "{} drawn above {}", a.name, b.name);
                }
            }
        }
    }
}
