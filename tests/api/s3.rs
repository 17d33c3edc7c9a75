//! An S3-compatible server (s3s-fs) inside the process, on a loopback port: the storage tests'
//! bucket, and the replica Litestream streams to (in the tests and in `make bench`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aimake::config::{Config, Secret, StorageKind};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An S3-compatible server (s3s-fs) on a loopback port, inside the test process. It checks
/// signatures, presigned URLs (query-string SigV4, with their expiry) included, and lets
/// anyone read the bucket's `public/` folder, as a bucket policy or a CDN set up for
/// `storage.public_base_url` would; everything else needs a signature.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    _root: tempfile::TempDir,
    stop: CancellationToken,
    accept: JoinHandle<()>,
    /// Signed HEAD requests for objects under `public/` (aimake asking whether a file is
    /// published).
    public_heads: Arc<AtomicUsize>,
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let bucket = "aimake-test".to_string();
        // Every sub-directory of the root is a bucket.
        std::fs::create_dir(root.path().join(&bucket)).unwrap();
        let (access_key, secret_key) = ("AKIATESTKEY".to_string(), "test-secret-key".to_string());
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let public_heads = Arc::new(AtomicUsize::new(0));
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(
                access_key.clone(),
                secret_key.clone(),
            ));
            b.set_access(PublicFolder {
                heads: public_heads.clone(),
            });
            b.build()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let stop_accept = stop.clone();
        let accept = tokio::spawn(async move {
            loop {
                let socket = tokio::select! {
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                    () = stop_accept.cancelled() => return,
                };
                let service = service.clone();
                let stop_conn = stop_accept.clone();
                tokio::spawn(async move {
                    let builder = ConnBuilder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(socket), service);
                    // Stopping the server drops open keep-alive connections too.
                    tokio::select! {
                        _ = conn => {}
                        () = stop_conn.cancelled() => {}
                    }
                });
            }
        });
        Self {
            endpoint,
            bucket,
            access_key,
            secret_key,
            _root: root,
            stop,
            accept,
            public_heads,
        }
    }

    /// How many times aimake has asked whether a file under `public/` is there.
    pub fn public_heads(&self) -> usize {
        self.public_heads.load(Ordering::Relaxed)
    }

    /// The address of an object, as an anonymous client would ask for it.
    pub fn object_url(&self, key: &str) -> String {
        format!("{}/{}/{key}", self.endpoint, self.bucket)
    }

    /// Where the bucket's `public/` folder is served (`storage.public_base_url`).
    pub fn public_base_url(&self) -> String {
        self.object_url("public")
    }

    /// Points a config at this server.
    pub fn configure(&self, config: &mut Config) {
        config.storage.kind = StorageKind::S3;
        let s3 = &mut config.storage.s3;
        s3.endpoint = self.endpoint.clone();
        s3.bucket = self.bucket.clone();
        s3.access_key = Some(Secret::new(&self.access_key));
        s3.secret_key = Some(Secret::new(&self.secret_key));
        s3.path_style = true;
        s3.timeout_s = 2;
        s3.max_retries = 1;
    }

    /// The same as `AIMAKE_*` variables, for a server in its own process.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AIMAKE_STORAGE__KIND", "s3".into()),
            ("AIMAKE_STORAGE__S3__ENDPOINT", self.endpoint.clone()),
            ("AIMAKE_STORAGE__S3__BUCKET", self.bucket.clone()),
            ("AIMAKE_STORAGE__S3__ACCESS_KEY", self.access_key.clone()),
            ("AIMAKE_STORAGE__S3__SECRET_KEY", self.secret_key.clone()),
            ("AIMAKE_STORAGE__S3__PATH_STYLE", "true".into()),
        ]
    }

    /// Points a config's backup target at this server (`backup.target = "s3"`).
    pub fn configure_backup(&self, config: &mut Config) {
        config.backup.target = "s3".into();
        let s3 = &mut config.backup.s3;
        s3.endpoint = self.endpoint.clone();
        s3.bucket = self.bucket.clone();
        s3.access_key = Some(Secret::new(&self.access_key));
        s3.secret_key = Some(Secret::new(&self.secret_key));
        s3.path_style = true;
        s3.timeout_s = 5;
        s3.max_retries = 1;
    }

    /// Stops accepting and closes every open connection, like a crashed server.
    pub async fn stop(&self) {
        self.stop.cancel();
        while !self.accept.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}

/// Anonymous reads of `public/*` (GetObject, HeadObject), like a bucket policy granting
/// `s3:GetObject` on that prefix to everyone; any other anonymous request is refused.
struct PublicFolder {
    heads: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl s3s::access::S3Access for PublicFolder {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        let public_read = matches!(cx.s3_op().name(), "GetObject" | "HeadObject")
            && matches!(
                cx.s3_path(),
                s3s::path::S3Path::Object { key, .. } if key.starts_with("public/")
            );
        if cx.credentials().is_some() && public_read && cx.s3_op().name() == "HeadObject" {
            self.heads.fetch_add(1, Ordering::Relaxed);
        }
        if cx.credentials().is_some() || public_read {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Signature is required"))
        }
    }
}
