//! The dashboard in a real browser: headless Chromium (Debian package `chromium`, which
//! `.ci/run` installs) opens `GET /` of a `vallee up` with simulated traffic, and the live
//! values the API serves must appear in the page.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// The browser: `VALLEE_CHROMIUM`, else the first of the usual names on `PATH`.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VALLEE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// The page's DOM after its scripts ran against the hub.
pub fn dump_dom(browser: &PathBuf, url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn graphql(http: std::net::SocketAddr, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("http://{http}/graphql"))
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_values_from_the_api_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("VALLEE_REQUIRE_CHROMIUM").is_err(),
            "VALLEE_REQUIRE_CHROMIUM is set but no chromium was found"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (broker, http) = (free_addr(), free_addr());
    let mut hub = KillOnDrop(spawn_up(
        &dir.path().join("data"),
        broker,
        http,
        &dir.path().join("up.log"),
        &["--speed", "300", "--rate", "1500"],
    ));
    eventually(Duration::from_secs(90), "the hub is ready", || async {
        matches!(http_get(http, "/readyz"), Ok((200, _)))
    })
    .await;
    // Operations: readiness names its checks; every metrics series exists from the start.
    let (status, ready) = http_get(http, "/readyz").unwrap();
    assert_eq!(status, 200);
    for check in [
        "broker",
        "lakeWritable",
        "ingestLag",
        "citizenView",
        "alertsFeed",
    ] {
        assert!(
            ready.contains(&format!("\"{check}\":true")),
            "{check}: {ready}"
        );
    }
    let (status, metrics) = http_get(http, "/metrics").unwrap();
    assert_eq!(status, 200);
    for series in [
        "vallee_consumer_lag{topic=\"vallee.beacons\",partition=\"2\"}",
        "vallee_dead_letters_total{reason=\"too_large\"} 0",
        "vallee_events_out_total{table=\"staff_audit\"} ",
        "vallee_commit_seconds_count",
        "vallee_lake_files{table=\"footfall\"}",
        "vallee_watermark_delay_seconds{stream=\"beacons\"}",
        // Simulated citizens may have written already: the series exists, whatever its value.
        "vallee_graphql_requests_total{operation=\"mutation\",outcome=\"ok\"} ",
        "vallee_graphql_request_seconds_count{operation=\"query\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    let submitted = graphql(
        http,
        "mutation($input: SubmitReportInput!) { submitReport(input: $input) { report { id } } }",
        json!({"input": {"serviceCode": "street-light", "description": "Lampadaire éteint rue du Pont",
            "lat": 43.6521, "long": 3.5512}}),
    )
    .await;
    let report = submitted["data"]["submitReport"]["report"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{submitted}"))
        .to_string();

    let url = format!("http://{http}/");
    let last = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    eventually(Duration::from_secs(120), "live values in the page", || {
        let (browser, url, last, report) =
            (browser.clone(), url.clone(), last.clone(), report.clone());
        async move {
            let api = graphql(
                http,
                "{ bins { id } fillAlerts(open: true) { alertId } reports(first: 8) { edges { node { id } } } }",
                json!({}),
            )
            .await;
            // The page loads after the API answered: it knows every bin the API did (bins
            // keep registering while the valley starts, so the other order raced them).
            let browser_saw = tokio::task::block_in_place(|| dump_dom(&browser, &url));
            last.lock().unwrap().clone_from(&browser_saw);
            let bins = api["data"]["bins"].as_array().cloned().unwrap_or_default();
            let alerts = api["data"]["fillAlerts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let latest: Vec<String> = api["data"]["reports"]["edges"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["node"]["id"].as_str().map(str::to_string))
                .collect();
            let circles = browser_saw.matches("class=\"bin ").count();
            let checks = [
                ("page loaded", browser_saw.contains("data-loaded=\"true\"")),
                // The page lists the eight latest reports: ours, or, once simulated
                // citizens wrote eight more (a slow machine), the latest the API knew.
                (
                    "our report or the latest ones",
                    (browser_saw.contains(&format!("data-report-id=\"{report}\""))
                        && browser_saw.contains("Lampadaire éteint rue du Pont"))
                        || (!latest.contains(&report)
                            && latest.iter().any(|id| {
                                browser_saw.contains(&format!("data-report-id=\"{id}\""))
                            })),
                ),
                // The monthly collection figures, from the open dataset.
                (
                    "collection figures",
                    browser_saw.contains("<tr data-commune=\""),
                ),
                // The sensors' health, in words (the simulated bins report every 30 min).
                (
                    "sensors working",
                    browser_saw.contains("<tr data-state=\"WORKING\">"),
                ),
                ("sensors in words", browser_saw.contains("en service.")),
                ("100 bins in the API", bins.len() >= 100),
                // Every bin the API knew a moment before is drawn (more may have come since).
                ("every bin drawn", circles + 5 >= bins.len()),
                (
                    "the first bins by id",
                    bins.iter().take(20).all(|b| {
                        browser_saw
                            .contains(&format!("data-id=\"{}\"", b["id"].as_str().unwrap_or("?")))
                    }),
                ),
                (
                    "an open alert",
                    alerts.is_empty()
                        || alerts.iter().any(|a| {
                            browser_saw.contains(&format!(
                                "data-alert-id=\"{}\"",
                                a["alertId"].as_str().unwrap_or("?")
                            ))
                        }),
                ),
            ];
            let missing: Vec<&str> = checks
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(n, _)| *n)
                .collect();
            if !missing.is_empty() {
                // Shown when the test fails: which part of the page never came.
                eprintln!(
                    "not in the page yet: {missing:?} ({} bins, {circles} drawn)",
                    bins.len()
                );
            }
            missing.is_empty()
        }
    })
    .await;
    let last = last.lock().unwrap().clone();
    // Accessibility basics (RGAA): language, a heading per panel, labelled graphics.
    assert!(last.contains("<html lang=\"fr\""));
    assert_eq!(
        last.matches("<section").count(),
        last.matches("<h2").count()
    );
    assert!(last.contains("role=\"img\" aria-labelledby=\"t-plan resume-bacs\""));
    assert!(last.contains("conteneurs connectés"));

    if std::env::var_os("VALLEE_SCREENSHOT").is_some() {
        let out = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dashboard.png");
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1400,1500",
                "--virtual-time-budget=10000",
                &format!("--screenshot={out}"),
                &url,
            ])
            .status()
            .unwrap();
    }
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    let mutations: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("vallee_graphql_requests_total{operation=\"mutation\",outcome=\"ok\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Ours, and the simulated citizens' (tokens, reports, ideas) through the same API.
    assert!(mutations >= 1, "mutations are counted: {mutations}");
    terminate(&hub.0);
    let status = wait_exit(&mut hub.0, Duration::from_secs(60)).await;
    assert!(status.success(), "vallee up exited with {status}");
}
