//! `make bench`: measures aimake against nginx on this machine and writes
//! `bench/results.json` and `BENCHMARKS.md`. Needs `wrk` and `nginx` on the PATH.
//!
//! Every case runs `ROUNDS` times; the report keeps medians and compares ratios measured in
//! the same run, since absolute numbers move with the machine's mood.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

const ROUNDS: usize = 3;
const DURATION: &str = "5s";

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/aimake");
    anyhow::ensure!(bin.exists(), "build the release binary first (make build)");
    for tool in ["wrk", "nginx"] {
        anyhow::ensure!(
            which(tool),
            "{tool} is not installed (apt-get install wrk nginx)"
        );
    }
    let tmp = tempfile::tempdir()?;
    let mut report = Report::default();

    let asset = find_asset(&root.join("web/dist/assets"))?;
    let nginx = Nginx::start(tmp.path(), &root.join("web/dist"))?;
    let started = Instant::now();
    let mut server = Server::start(&bin, &tmp.path().join("data"))?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;

    let idle_rss = rss_mb(server.child.id());
    let ours = format!("http://{}", server.addr);
    let theirs = format!("http://127.0.0.1:{}", nginx.port);

    report.case(
        "liveness",
        "GET /health, 64 connections, vs nginx returning a fixed body",
        compare(
            &format!("{ours}/health"),
            &format!("{theirs}/health"),
            64,
            &[],
        ),
        Target::RatioAtLeast(0.8),
    );
    report.case(
        "spa_asset",
        "hashed JS asset with Accept-Encoding: br, gzip, vs nginx serving the same file (gzip_static)",
        compare(
            &format!("{ours}/assets/{asset}"),
            &format!("{theirs}/assets/{asset}"),
            64,
            &["Accept-Encoding: br, gzip"],
        ),
        Target::RatioAtLeast(1.0),
    );

    let pid = server.child.id();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0.0f64;
        let end = Instant::now() + Duration::from_secs(6);
        while Instant::now() < end {
            peak = peak.max(rss_mb(pid));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    });
    wrk(&format!("{ours}/health"), 250, &[]);
    let busy_rss = sampler.join().unwrap_or_default();
    let binary_mb = std::fs::metadata(&bin)?.len() as f64 / 1e6;
    report.footprint(idle_rss, busy_rss, ready_ms, binary_mb);

    server.stop();
    drop(nginx);
    report.write(&root)?;
    Ok(())
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_asset(dir: &Path) -> anyhow::Result<String> {
    let mut best: Option<(u64, String)> = None;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") {
            let len = e.metadata()?.len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, name));
            }
        }
    }
    best.map(|b| b.1)
        .ok_or_else(|| anyhow::anyhow!("no JS asset in web/dist/assets: run make web"))
}

/// A process's resident memory in MB, from /proc.
fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
struct WrkResult {
    requests_per_s: f64,
    bytes_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn wrk(url: &str, connections: u32, headers: &[&str]) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{DURATION}"),
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().expect("wrk runs");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn parse_wrk(text: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in text.lines().map(str::trim) {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some("Requests/sec:"), Some(v)) => r.requests_per_s = v.parse().unwrap_or(0.0),
            (Some("Transfer/sec:"), Some(v)) => r.bytes_per_s = parse_size(v),
            (Some("50%"), Some(v)) => r.p50_ms = parse_ms(v),
            (Some("99%"), Some(v)) => r.p99_ms = parse_ms(v),
            _ => {}
        }
    }
    r
}

fn parse_size(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    n * match unit {
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    }
}

fn parse_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    n * match unit {
        "us" => 0.001,
        "s" => 1000.0,
        "m" => 60_000.0,
        _ => 1.0,
    }
}

#[derive(Debug, Serialize)]
struct Pair {
    aimake: WrkResult,
    nginx: WrkResult,
    ratio_requests: f64,
    ratio_bytes: f64,
}

/// Alternates the two servers `ROUNDS` times and keeps the median of each figure.
fn compare(ours: &str, theirs: &str, connections: u32, headers: &[&str]) -> Pair {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for _ in 0..ROUNDS {
        a.push(wrk(ours, connections, headers));
        b.push(wrk(theirs, connections, headers));
    }
    let (a, b) = (median(&a), median(&b));
    Pair {
        aimake: a,
        nginx: b,
        ratio_requests: a.requests_per_s / b.requests_per_s.max(f64::MIN_POSITIVE),
        ratio_bytes: a.bytes_per_s / b.bytes_per_s.max(f64::MIN_POSITIVE),
    }
}

fn median(results: &[WrkResult]) -> WrkResult {
    let pick = |f: fn(&WrkResult) -> f64| {
        let mut v: Vec<f64> = results.iter().map(f).collect();
        v.sort_by(|x, y| x.total_cmp(y));
        v[v.len() / 2]
    };
    WrkResult {
        requests_per_s: pick(|r| r.requests_per_s),
        bytes_per_s: pick(|r| r.bytes_per_s),
        p50_ms: pick(|r| r.p50_ms),
        p99_ms: pick(|r| r.p99_ms),
    }
}

enum Target {
    RatioAtLeast(f64),
}

#[derive(Default)]
struct Report {
    cases: Vec<Value>,
    rows: Vec<String>,
}

impl Report {
    fn case(&mut self, name: &str, how: &str, pair: Pair, target: Target) {
        let Target::RatioAtLeast(min) = target;
        let met = pair.ratio_requests >= min;
        self.rows.push(format!(
            "| {name} | {:.0} req/s | {:.0} req/s | {:.2}× | ≥ {min}× | {} |",
            pair.aimake.requests_per_s,
            pair.nginx.requests_per_s,
            pair.ratio_requests,
            if met { "met" } else { "missed" }
        ));
        self.cases.push(
            json!({ "case": name, "how": how, "result": pair, "target_ratio": min, "met": met }),
        );
        println!("{}", self.rows.last().unwrap());
    }

    fn footprint(&mut self, idle: f64, busy: f64, ready_ms: f64, binary_mb: f64) {
        let row = format!(
            "| footprint | idle RSS {idle:.1} MB (< 40), RSS at 250 connections {busy:.1} MB (< 150), start to ready {ready_ms:.0} ms (< 300), binary {binary_mb:.1} MB | | | | {} |",
            if idle < 40.0 && busy < 150.0 && ready_ms < 300.0 {
                "met"
            } else {
                "missed"
            }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": "footprint", "idle_rss_mb": idle, "busy_rss_mb": busy,
            "start_to_ready_ms": ready_ms, "binary_mb": binary_mb
        }));
    }

    fn write(&self, root: &Path) -> anyhow::Result<()> {
        let date = time::OffsetDateTime::now_utc().date().to_string();
        let machine = machine();
        std::fs::create_dir_all(root.join("bench"))?;
        let json = json!({ "date": date, "machine": machine, "rounds": ROUNDS, "duration": DURATION, "cases": self.cases });
        std::fs::write(
            root.join("bench/results.json"),
            serde_json::to_string_pretty(&json)? + "\n",
        )?;
        let mut md = format!(
            "# Benchmarks\n\nMeasured by `make bench` on {date}, {machine}. Each case ran {ROUNDS} times for {DURATION} \
             against aimake and nginx alternately on 127.0.0.1; the figures are medians, and the ratio compares \
             the two servers measured in the same run.\n\n| case | aimake | nginx | ratio | target | |\n|---|---|---|---|---|---|\n"
        );
        for row in &self.rows {
            md.push_str(row);
            md.push('\n');
        }
        std::fs::write(root.join("BENCHMARKS.md"), md)?;
        Ok(())
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu})")
}

struct Nginx {
    port: u16,
    child: Child,
}

impl Nginx {
    fn start(tmp: &Path, dist: &Path) -> anyhow::Result<Self> {
        let port = free_port();
        let dir = tmp.join("nginx");
        std::fs::create_dir_all(dir.join("logs"))?;
        let conf = format!(
            "worker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/logs/error.log;\ndaemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
               types {{ text/javascript js; text/css css; audio/mpeg mp3; }}\n\
               client_body_temp_path {dir}/tmp;\n  proxy_temp_path {dir}/tmp;\n  fastcgi_temp_path {dir}/tmp;\n  uwsgi_temp_path {dir}/tmp;\n  scgi_temp_path {dir}/tmp;\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location = /health {{ default_type application/json; return 200 '{{\"status\":\"ok\",\"version\":\"0.0.0\"}}'; }}\n\
                 location /assets/ {{ root {dist}; gzip_static on; add_header Cache-Control \"public, max-age=31536000, immutable\"; }}\n\
                 location /files/ {{ alias {dir}/files/; }}\n\
               }}\n}}\n",
            dir = dir.display(),
            dist = dist.display(),
        );
        std::fs::create_dir_all(dir.join("files"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        std::fs::write(dir.join("nginx.conf"), conf)?;
        let child = Command::new("nginx")
            .args([
                "-c",
                &dir.join("nginx.conf").display().to_string(),
                "-p",
                &dir.display().to_string(),
            ])
            .stderr(Stdio::null())
            .spawn()?;
        wait_port(port)?;
        Ok(Self { port, child })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

struct Server {
    addr: String,
    child: Child,
}

impl Server {
    fn start(bin: &Path, data: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(["serve", "--log-format", "json"])
            .env("AIMAKE_DATA__DIR", data)
            .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
            .env("AIMAKE_LOG__LEVEL", "warn,aimake::app=info")
            .env("AIMAKE_LIMITS__REQUESTS_PER_MINUTE", "100000000")
            .env("AIMAKE_LIMITS__MAX_IN_FLIGHT", "100000")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .ok_or_else(|| anyhow::anyhow!("aimake exited before it was ready"))??;
            if line.contains("aimake is ready") {
                let v: Value = serde_json::from_str(&line)?;
                break v["addr"].as_str().unwrap_or_default().to_string();
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { addr, child })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("nothing listens on port {port}")
}
