//! The model against the brief's examples, its wire decoder, and the server's redo.

use super::*;

#[test]
fn pages_follow_the_brief() {
    let k = [7u8; 16];
    let mut m = PageModel::default();
    assert_eq!(m.page(k, 10), ModelPage::NotFound);
    m.add(
        k,
        5,
        ModelValue::Delta {
            will_init: false,
            patches: vec![(0, vec![1])],
        },
    );
    assert_eq!(m.page(k, 10), ModelPage::NoBase);
    m.add(k, 6, ModelValue::Image(vec![9; PAGE]));
    m.add(
        k,
        8,
        ModelValue::Delta {
            will_init: false,
            patches: vec![(1, vec![2, 3]), (PAGE as u16 - 1, vec![4])],
        },
    );
    let ModelPage::Page(p) = m.page(k, 8) else {
        panic!()
    };
    assert_eq!((&p[..4], p[PAGE - 1]), (&[9u8, 2, 3, 9][..], 4));
    assert_eq!(m.page(k, 7), ModelPage::Page(vec![9; PAGE]));
    m.add(
        k,
        9,
        ModelValue::Delta {
            will_init: true,
            patches: vec![(2, vec![5])],
        },
    );
    let ModelPage::Page(p) = m.page(k, 9) else {
        panic!()
    };
    assert_eq!(&p[..4], &[0, 0, 5, 0]);
    m.truncate_above(8);
    assert_eq!(m.records_above(5).len(), 2);
}

#[test]
fn the_wire_decoder_refuses_what_the_brief_refuses() {
    assert!(ModelValue::from_wire(0, &[0; 100]).is_err());
    assert!(ModelValue::from_wire(3, &[]).is_err());
    assert!(ModelValue::from_wire(1, &[0, 0, 0]).is_err());
    assert!(ModelValue::from_wire(1, &[0x1f, 0xff, 0, 2, 1, 2]).is_err());
    assert_eq!(
        ModelValue::from_wire(2, &[0, 7, 0, 1, 9]),
        Ok(ModelValue::Delta {
            will_init: true,
            patches: vec![(7, vec![9])]
        })
    );
}

use proptest::prelude::*;

fn value() -> impl Strategy<Value = ModelValue> {
    let patch = (0usize..PAGE, 0usize..300, any::<u8>()).prop_map(|(at, len, b)| {
        let len = len.min(PAGE - at);
        (at as u16, vec![b; len])
    });
    prop_oneof![
        1 => (any::<u8>(), 0usize..PAGE).prop_map(|(b, at)| {
            let mut p = vec![b; PAGE];
            p[at] = b.wrapping_add(1);
            ModelValue::Image(p)
        }),
        4 => (any::<bool>(), proptest::collection::vec(patch, 0..4))
            .prop_map(|(will_init, patches)| ModelValue::Delta { will_init, patches }),
    ]
}

fn server_value(v: &ModelValue) -> Value {
    let mut body = Vec::new();
    encode_record(&mut body, [0; 16], 0, v);
    let kind = body[24];
    let payload = Bytes::copy_from_slice(&body[29..]);
    match kind {
        0 => Value::Image(payload),
        k => Value::Delta {
            will_init: k == 2,
            record: payload,
        },
    }
}

proptest! {
    /// The differential check: the model and the server's `redo` agree on every chain,
    /// and on which chains have no base; the wire decoder reads back what the encoder
    /// wrote.
    #[test]
    fn the_model_and_the_servers_redo_agree(chain in proptest::collection::vec(value(), 1..12), at in 0usize..12) {
        let key = Key::from_u128(5);
        let mut m = PageModel::default();
        for (i, v) in chain.iter().enumerate() {
            m.add(key.0, i as u64 + 1, v.clone());
            prop_assert_eq!(&ModelValue::of(&server_value(v)).unwrap(), v);
        }
        let lsn = (at % chain.len()) as u64 + 1;
        // What a read collects: newest first, down to the first base.
        let mut values = Vec::new();
        for (i, v) in chain[..lsn as usize].iter().enumerate().rev() {
            let sv = server_value(v);
            let base = sv.is_base();
            values.push((Lsn(i as u64 + 1), sv));
            if base {
                break;
            }
        }
        let redo = layer_format::redo::reconstruct(key, Lsn(lsn), &values);
        match (m.page(key.0, lsn), redo) {
            (ModelPage::Page(p), Ok(r)) => prop_assert!(p == r.as_ref(), "pages differ"),
            (ModelPage::NoBase, Err(layer_format::redo::RedoError::NoBase { .. })) => {}
            (mine, theirs) => prop_assert!(false, "model {:?}, redo {:?}", mine, theirs.map(|b| b.len())),
        }
    }
}
