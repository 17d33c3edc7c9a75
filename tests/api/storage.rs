//! The same storage round trip against the local filesystem and a real S3-compatible server.

use aimake::config::Config;
use aimake::db::{AudioId, JobId, UserId};
use aimake::storage::{Storage, StorageError, keys};
use bytes::Bytes;
use ulid::Ulid;

use crate::helpers::S3Server;

async fn round_trip(store: &Storage) {
    let user: UserId = Ulid::generate().into();
    let audio: AudioId = Ulid::generate().into();
    let key = keys::audio(user, audio, "mp3");
    let body: Bytes = (0..=255u8)
        .cycle()
        .take(100_000)
        .collect::<Vec<u8>>()
        .into();

    store.put(&key, body.clone()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), body);
    assert_eq!(
        store.get_range(&key, 1000..1010).await.unwrap(),
        body.slice(1000..1010)
    );
    let info = store.head(&key).await.unwrap();
    assert_eq!(info.size, 100_000);
    assert_eq!(info.key, key);

    let job: JobId = Ulid::generate().into();
    for i in 0..3 {
        store
            .put(
                &keys::job_chunk(job, i, "wav"),
                Bytes::from(vec![i as u8; 10]),
            )
            .await
            .unwrap();
    }
    let listed = store.list(&keys::job_prefix(job)).await.unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        (0..3)
            .map(|i| keys::job_chunk(job, i, "wav"))
            .collect::<Vec<_>>()
    );
    assert!(listed.iter().all(|o| o.size == 10));
    assert_eq!(
        store.delete_prefix(&keys::job_prefix(job)).await.unwrap(),
        3
    );
    assert!(store.list(&keys::job_prefix(job)).await.unwrap().is_empty());

    store.delete(&key).await.unwrap();
    assert!(matches!(
        store.get(&key).await,
        Err(StorageError::NotFound(_))
    ));
    store
        .delete(&key)
        .await
        .expect("deleting a deleted object succeeds");
    store.probe().await.unwrap();
}

#[tokio::test]
async fn local_storage_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.data.dir = dir.path().to_path_buf();
    let store = Storage::from_config(&config).unwrap();
    round_trip(&store).await;
    assert!(dir.path().join("media").is_dir());
}

#[tokio::test]
async fn s3_storage_round_trip() {
    let s3 = S3Server::start().await;
    let mut config = Config::default();
    s3.configure(&mut config);
    let store = Storage::from_config(&config).unwrap();
    round_trip(&store).await;
}

#[tokio::test]
async fn s3_with_wrong_credentials_fails_clearly() {
    let s3 = S3Server::start().await;
    let mut config = Config::default();
    s3.configure(&mut config);
    config.storage.s3.secret_key = Some(aimake::config::Secret::new("wrong"));
    let store = Storage::from_config(&config).unwrap();
    let err = store.probe().await.unwrap_err();
    assert!(
        format!("{err:#}").contains("403")
            || format!("{err:#}").to_lowercase().contains("signature"),
        "{err:#}"
    );
}
