//! `TestApp::spawn()` and an in-process S3-compatible server for the storage tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use aimake::app::{App, AppState};
use aimake::config::{Config, Secret, StorageKind};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The running server's state, for tests that watch what happens inside it.
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A config for tests: temp data dir, port 0, nothing from the environment.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".into();
    config.data.dir = dir.to_path_buf();
    config.server.shutdown_grace_s = 5;
    // Tests that want scheduled backups set a schedule of their own.
    config.backup.schedule = String::new();
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        customize(&mut config);
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self {
            addr,
            client,
            dir,
            state,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

/// An S3-compatible server (s3s-fs) on a loopback port, inside the test process.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    _root: tempfile::TempDir,
    stop: CancellationToken,
    accept: JoinHandle<()>,
}

impl S3Server {
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let bucket = "aimake-test".to_string();
        // Every sub-directory of the root is a bucket.
        std::fs::create_dir(root.path().join(&bucket)).unwrap();
        let (access_key, secret_key) = ("AKIATESTKEY".to_string(), "test-secret-key".to_string());
        let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(
                access_key.clone(),
                secret_key.clone(),
            ));
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
        }
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

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aimake"))
}
