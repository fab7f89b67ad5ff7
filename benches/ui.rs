//! Web UI benchmark: server time of the Applications page for 300 applications (each with
//! ten recorded syncs), rendered through the router in-process, and the page's weight with
//! its stylesheet and script. Prints the median and the slowest of 50 renders.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use reconcile::controller::decide::SyncStatus;
use reconcile::controller::status::{self, AppStatus, Revision, SyncRecord};
use reconcile::engine::Engine;
use reconcile::rollout::health::Status as Health;
use reconcile::ui::{self, Ui};
use tower::ServiceExt;

const APPS: usize = 300;
const RUNS: usize = 50;

fn statuses() -> Vec<AppStatus> {
    (0..APPS)
        .map(|i| {
            let mut s = AppStatus {
                name: format!("team-{:02}-service-{i:03}", i % 17),
                path: format!("apps/team-{:02}/service-{i:03}/overlays/prod", i % 17),
                target: "engine".into(),
                revision: Revision {
                    repo: "https://git.example.com/platform/monorepo.git".into(),
                    reference: Some("main".into()),
                    sha: Some(format!("{:040x}", i * 7919)),
                    digest: None,
                },
                sync: if i % 10 == 0 {
                    SyncStatus::OutOfSync
                } else {
                    SyncStatus::Synced
                },
                health: Some(match i % 25 {
                    0 => Health::Degraded,
                    1 => Health::Progressing,
                    _ => Health::Healthy,
                }),
                last_error: (i % 25 == 0).then(|| {
                    format!("apps/team/service-{i:03}/deployment.yaml: image pull failed")
                }),
                last_synced_at: Some("2026-12-05T01:00:00Z".into()),
                ..AppStatus::default()
            };
            for n in 0..10 {
                s.record(SyncRecord {
                    revision: format!("{:040x}", i * 7919 + n),
                    started_at: "2026-12-05T01:00:00Z".into(),
                    duration_ms: 120 + n as u64,
                    result: "Succeeded".into(),
                    message: "applied 7 objects".into(),
                });
            }
            s
        })
        .collect()
}

async fn fetch(ui: &Arc<Ui>, uri: &str) -> (Duration, usize) {
    let started = Instant::now();
    let request = Request::get(uri).body(Body::empty()).unwrap_or_default();
    let Ok(response) = ui::router(ui.clone()).oneshot(request).await;
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    (started.elapsed(), bytes.len())
}

fn main() {
    let mut engine = Engine::in_memory(3).unwrap_or_else(|e| panic!("engine: {e}"));
    for s in statuses() {
        status::save(&mut engine, &s).unwrap_or_else(|e| panic!("status: {e}"));
    }
    let ui = Ui::new(engine, None, None).unwrap_or_else(|e| panic!("ui: {e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    runtime.block_on(async {
        let (_, html) = fetch(&ui, "/").await;
        let (_, css) = fetch(&ui, "/ui/ui.css").await;
        let (_, js) = fetch(&ui, "/ui/ui.js").await;
        let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            times.push(fetch(&ui, "/").await.0);
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "ui: Applications page, {APPS} apps: median {:.1} ms, slowest {:.1} ms of {RUNS} (server time, in-process)",
            ms(times[RUNS / 2]),
            ms(times[RUNS - 1])
        );
        println!(
            "ui: page weight {:.0} KB (HTML {:.0} KB + CSS {:.0} KB + JS {:.0} KB)",
            (html + css + js) as f64 / 1024.0,
            html as f64 / 1024.0,
            css as f64 / 1024.0,
            js as f64 / 1024.0
        );
    });
}
