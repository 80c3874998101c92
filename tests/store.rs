//! The document store over a real S3-compatible server (moto, `tests/common/emulator.rs`):
//!
//! * `s3_writes_are_conditional`: concurrent creates of one document → exactly one wins and
//!   the others get `AlreadyExists`; a replace from a stale read → `Conflict`; nothing is
//!   overwritten silently (S3 `If-None-Match: *` and `If-Match` on PutObject).

mod common;

use std::sync::Arc;

use bytes::Bytes;

use common::emulator::{block_on, Backend, Emulator};
use jit_origin::store::{DocPath, Store, StoreError, STREAMING_LOCATORS};

#[test]
fn s3_writes_are_conditional() {
    let s3 = Emulator::start(Backend::S3);
    let store = Arc::new(Store::new(Arc::new(s3.storage("docs")), "ams").expect("store"));
    block_on(async {
        let path = DocPath::new(STREAMING_LOCATORS, "raced").unwrap();
        let creates: Vec<_> = (0..8)
            .map(|i| {
                let (store, path) = (store.clone(), path.clone());
                tokio::spawn(async move { store.create(&path, Bytes::from(format!("{{\"writer\":{i}}}"))).await })
            })
            .collect();
        let mut created = Vec::new();
        for create in creates {
            match create.await.expect("task") {
                Ok(document) => created.push(document),
                Err(StoreError::AlreadyExists(p)) => assert_eq!(p, path),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(created.len(), 1, "exactly one create wins");
        let stored = store.get(&path).await.unwrap().expect("created");
        assert_eq!(stored.body, created[0].body);

        let replaced = store.replace(&stored, Bytes::from_static(b"{\"v\":2}")).await.expect("replace");
        for stale in [&created[0], &stored] {
            let lost = store.replace(stale, Bytes::from_static(b"{\"v\":3}")).await;
            assert!(matches!(lost, Err(StoreError::Conflict(_))), "{lost:?}");
        }
        assert_eq!(&store.get(&path).await.unwrap().unwrap().body[..], b"{\"v\":2}");
        store.replace(&replaced, Bytes::from_static(b"{\"v\":4}")).await.expect("replace from the latest read");

        assert!(store.delete(&path).await.unwrap());
        assert!(!store.delete(&path).await.unwrap());
        let lost = store.replace(&replaced, Bytes::from_static(b"{}")).await;
        assert!(matches!(lost, Err(StoreError::Conflict(_))), "a deleted document is not brought back: {lost:?}");
        assert!(store.snapshot().await.unwrap().documents.is_empty());
    });
}
