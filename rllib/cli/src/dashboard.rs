//! The head's live web dashboard: one static page over a small JSON API, behind the cluster token.
//!
//! The head implements [`DashboardSource`] and calls [`Dashboard::serve`]; the server runs on
//! a thread of its own (a single-threaded tokio runtime with axum), so it neither shares nor
//! slows the cluster's runtime, and it stops when the [`Dashboard`] is dropped. The page is
//! plain HTML, CSS and JavaScript compiled into the binary: nothing to build, no external URLs.
//!
//! # Routes
//!
//! | route                         | answer                                                      |
//! |-------------------------------|-------------------------------------------------------------|
//! | `GET /`                       | the page; it polls the API every second while visible       |
//! | `GET /app.js`                 | the page's script                                           |
//! | `GET /api/status`             | [`DashboardSource::status`]: the JSON of `rl status --json` |
//! | `GET /api/jobs/{id}/progress` | the job's learning curve (below); 404 for an unknown job    |
//! | `GET /healthz`                | `ok`, **without** authentication (for liveness probes)      |
//!
//! The progress route reads the job's `progress.csv` as it grows and answers
//! `{"job": ID, "x": "num_env_steps_sampled_lifetime", "rows": N, "skipped_rows": K,
//! "series": {"env_runners/episode_return_mean": [[x, y], ...],
//! "evaluation/episode_return_mean": [[x, y], ...]}}`: one series per return column the header
//! has, each point a row where both cells are finite numbers. The partly written last line is
//! ignored; a complete line that does not parse is counted in `skipped_rows`.
//!
//! # Authentication
//!
//! Every route but `/healthz` needs the cluster token, as `Authorization: Bearer TOKEN` or as
//! the cookie that opening `/?token=TOKEN` once sets (`HttpOnly`, `SameSite=Strict`, for the
//! browser session; the answer redirects to `/`, so the token leaves the address bar). Without
//! it the answer is 401 with a short text saying how to authenticate. Tokens are compared in
//! constant time.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use rl_cli::dashboard::{Dashboard, DashboardSource};
//!
//! struct Empty;
//! impl DashboardSource for Empty {
//!     fn status(&self) -> anyhow::Result<serde_json::Value> {
//!         Ok(serde_json::json!({"head": null, "nodes": [], "actors": [], "placement_groups": [], "jobs": []}))
//!     }
//!     fn job_run_dir(&self, _id: &str) -> Option<std::path::PathBuf> {
//!         None
//!     }
//! }
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let token = rl_runtime::cluster::Token::generate();
//! let dashboard = Dashboard::serve(listener, token, Arc::new(Empty))?;
//! println!("dashboard at http://{}/", dashboard.local_addr());
//! # Ok::<(), anyhow::Error>(())
//! ```

mod auth;
mod curve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rl_runtime::cluster::Token;
use rllib::run_dir::PROGRESS_FILE;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot};

use self::auth::{Credentials, Verdict};
use self::curve::Curves;

/// What the dashboard shows; the head implements it.
///
/// Both methods are called on a blocking thread of the dashboard's runtime, so they may block
/// (wait for the cluster's runtime, read files); each call serves one HTTP request.
pub trait DashboardSource: Send + Sync + 'static {
    /// The cluster's state as the JSON document `rl status --json` prints: an object with
    /// `head`, `nodes`, `actors`, `placement_groups` and `jobs` (fields may be null where
    /// unknown). The dashboard passes it through unchanged.
    fn status(&self) -> Result<Value>;

    /// The run directory of job `id` (it holds `progress.csv`), if the job exists. The directory
    /// or its `progress.csv` may not exist yet: the curve is then empty.
    fn job_run_dir(&self, id: &str) -> Option<PathBuf>;
}

/// A running dashboard server; stops when dropped.
///
/// Dropping it stops accepting connections, lets requests in progress finish (for at most
/// [`STOP_GRACE`]), then ends its thread.
pub struct Dashboard {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long a stopping dashboard waits for requests in progress.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// Requests served at once; more are answered 503 (each may hold a blocking thread).
const MAX_IN_FLIGHT: usize = 32;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
/// The page runs only its own script, talks only to its own origin, and cannot be framed.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

impl Dashboard {
    /// Serves on `listener` (bind `host:0` for a free port), requiring `token`.
    ///
    /// Fails only if the listener cannot be used (its address read, made non-blocking) or the
    /// server's thread cannot start.
    pub fn serve(listener: std::net::TcpListener, token: Token, source: Arc<dyn DashboardSource>) -> Result<Dashboard> {
        Self::serve_with_routes(listener, token, source, Router::new())
    }

    /// [`Dashboard::serve`] with more routes (the head's jobs API), behind the same token.
    pub fn serve_with_routes(
        listener: std::net::TcpListener,
        token: Token,
        source: Arc<dyn DashboardSource>,
        routes: Router,
    ) -> Result<Dashboard> {
        let addr = listener.local_addr().context("the dashboard's listener has no address")?;
        listener.set_nonblocking(true).context("cannot make the dashboard's listener non-blocking")?;
        let shared = Arc::new(Shared {
            credentials: Credentials::new(&token),
            source,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        });
        let app = router(shared, routes);
        let (stop, stopped) = oneshot::channel();
        // The runtime is built, and dropped, on the server's thread only: the caller may be
        // inside a runtime of its own, where dropping another one panics.
        let (started, start) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rl-dashboard".into())
            .spawn(move || run(listener, app, started, stopped))
            .context("cannot start the dashboard's thread")?;
        let ready =
            start.recv().unwrap_or_else(|_| Err(anyhow::anyhow!("the dashboard's thread ended while starting")));
        if let Err(e) = ready {
            let _ = thread.join();
            return Err(e);
        }
        Ok(Dashboard { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The server thread: starts its runtime (reporting on `started`), serves until `stopped` fires
/// (or its sender is gone), then drains.
fn run(
    listener: std::net::TcpListener,
    app: Router,
    started: std::sync::mpsc::Sender<Result<()>>,
    stopped: oneshot::Receiver<()>,
) {
    let setup = || -> Result<_> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the dashboard's runtime")?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).context("cannot register the dashboard's listener")?
        };
        Ok((runtime, listener))
    };
    let (runtime, listener) = match setup() {
        Ok(ok) => {
            let _ = started.send(Ok(()));
            ok
        }
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let (drain, draining) = oneshot::channel::<()>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = draining.await;
        });
        let mut server = std::pin::pin!(server.into_future());
        tokio::select! {
            res = &mut server => {
                if let Err(e) = res {
                    tracing::warn!("the dashboard stopped: {e}");
                }
            }
            _ = stopped => {
                let _ = drain.send(());
                if tokio::time::timeout(STOP_GRACE, server).await.is_err() {
                    tracing::warn!("the dashboard stopped with requests still in progress");
                }
            }
        }
    });
    // A source call stuck on a blocking thread must not hold up the drop.
    runtime.shutdown_timeout(Duration::from_millis(100));
}

/// What every handler shares.
struct Shared {
    credentials: Credentials,
    source: Arc<dyn DashboardSource>,
    in_flight: Semaphore,
}

fn router(shared: Arc<Shared>, routes: Router) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(script))
        .route("/api/status", get(status))
        .route("/api/jobs/{id}/progress", get(progress))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(shared.clone())
        .merge(routes)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared, gate))
}

/// Authenticates every request but `/healthz`, then bounds the requests in progress.
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/healthz" {
        match shared.credentials.check(req.uri(), req.headers()) {
            Verdict::Allow => {}
            Verdict::SetCookie(location) => return shared.credentials.set_cookie(&location),
            Verdict::Deny => return auth::unauthorized(),
        }
    }
    let Ok(_permit) = shared.in_flight.try_acquire() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the dashboard is busy; try again".into());
    };
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

async fn page() -> Response {
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY)),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
    ];
    (headers, PAGE).into_response()
}

async fn script() -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"))], SCRIPT).into_response()
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    let source = shared.source.clone();
    match tokio::task::spawn_blocking(move || source.status()).await {
        Ok(Ok(value)) => json_response(StatusCode::OK, &value),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the cluster's status: {e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the cluster's status failed: {e}")),
    }
}

async fn progress(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let source = shared.source.clone();
    let job = id.clone();
    let read = move || {
        let dir = source.job_run_dir(&job)?;
        let path = dir.join(PROGRESS_FILE);
        Some(Curves::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display())))
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Some(Ok(curves))) => json_response(StatusCode::OK, &curves.to_json(&id)),
        Ok(Some(Err(message))) => error(StatusCode::INTERNAL_SERVER_ERROR, message),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no job {id:?}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the progress of job {id:?} failed: {e}")),
    }
}

async fn not_found(req: Request) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such page: {}", req.uri().path()))
}

/// `{"error": message}` with `status`.
pub(crate) fn error(status: StatusCode, message: String) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"cannot encode JSON: {e}\"}}"));
    (status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
