//! The receiver's HTTP surface.
//!
//! | route                         | auth   | what                                   |
//! |-------------------------------|--------|----------------------------------------|
//! | `POST /v1/nodes/{name}/events`| report | store one status event (idempotent)    |
//! | `GET /v1/nodes?after=&limit=` | -      | node summaries, 500 a page (`next`); machine ids as fingerprints without an admin token |
//! | `GET /v1/nodes/{name}`        | -      | one node's summary and history (the same) |
//! | `GET /v1/serve/events?from=N` | -  | serve's own events: credentials minted, init elections, stale Nodes removed (`journal`; no secrets) |
//! | `GET /v1/documents/{role}`    | documents:{role} | the bundle's document for a role (fresh join credentials with `--fresh-credentials`; 503 + Retry-After while the cluster cannot mint) |
//! | `GET /v1/groups/{name}/document` | the group's credential | a document for this machine of node group `name` (`groups` module; needs `--fresh-credentials`) |
//! | `GET /v1/pod-routes`          | a node's bound report credential | every Node's pod subnet and InternalIP, for `kubeboot pod-routes` (needs `--bundle`) |
//! | `GET /`                       | -      | the dashboard                          |
//! | `GET /metrics`                | -      | Prometheus / OpenMetrics text          |
//! | `GET /healthz`                | -      | liveness                               |
//!
//! Status events hold no secrets, so reading is open; bind to loopback (the
//! default) or put the receiver behind a proxy if node facts are sensitive.
//! Bearer tokens carry scopes (`tokens` module): a node's report token reads no
//! document.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::documents::{Asker, DocumentError};
use super::election::Candidate;
use super::journal::{ActionKind, ServeEvent};
use super::report_binding;
use super::tokens::{Denied, Pass, Scope};
use super::{App, Stored};
use kubeboot_core::document::{formats::is_dns_name, Role};
use kubeboot_core::status::{StatusEvent, LOG_TAIL_MAX_LINES, MAX_EVENT_BYTES};

/// The dashboard page, with the phase list from the one definition (`Phase::ALL`).
static DASHBOARD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let phases: Vec<&str> = kubeboot_core::status::Phase::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    let page = include_str!("dashboard.html");
    assert!(
        page.contains("__PHASES__"),
        "dashboard.html lost its phase list"
    );
    page.replace(
        "__PHASES__",
        &serde_json::to_string(&phases).expect("strings"),
    )
});

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(DASHBOARD.as_str()) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node))
        .route("/v1/nodes/{name}/events", post(post_event))
        .route("/v1/serve/events", get(serve_events))
        .route("/v1/documents/{role}", get(get_document))
        .route("/v1/groups/{name}/document", get(get_group_document))
        .route("/v1/pod-routes", get(get_pod_routes))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
        .with_state(app)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The request's bearer token may do `wanted` (a `once` token is spent here),
/// or the refusal to send.
fn authorize(app: &App, headers: &HeaderMap, wanted: Scope) -> Result<(), Box<Response>> {
    let pass = check(app, headers, wanted)?;
    spend(app, headers, &pass)
}

/// The request's bearer token may do `wanted`; a `once` token is not spent yet.
fn check(app: &App, headers: &HeaderMap, wanted: Scope) -> Result<Pass, Box<Response>> {
    let presented = presented_token(headers);
    crate::blocking(|| app.tokens.check(presented, wanted))
        .map_err(|d| refusal(app, presented.is_some(), d))
}

/// Spend a `once` pass: the answer is a success and is about to leave.
fn spend(app: &App, headers: &HeaderMap, pass: &Pass) -> Result<(), Box<Response>> {
    crate::blocking(|| app.tokens.spend(pass))
        .map_err(|d| refusal(app, presented_token(headers).is_some(), d))
}

fn refusal(app: &App, presented: bool, denied: Denied) -> Box<Response> {
    app.rejected.fetch_add(1, Ordering::Relaxed);
    let mut resp = match denied {
        Denied::Unknown if !presented => {
            error(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <token>`")
        }
        Denied::Unknown => error(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not one this receiver holds (kubeboot serve token list)",
        ),
        Denied::Scope { needed } => error(
            StatusCode::FORBIDDEN,
            format!("the bearer token lacks the scope {needed} (kubeboot serve token add --scope {needed})"),
        ),
        Denied::Spent { at } => error(
            StatusCode::GONE,
            format!("this once-only token was used at {at}; make another with kubeboot serve token add"),
        ),
        Denied::Unreadable => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "serve cannot read its tokens file or record a once token's use (see serve's log); \
             nothing was served",
        ),
    };
    if resp.status() == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
    }
    Box::new(resp)
}

fn check_name(name: &str) -> Result<(), Box<Response>> {
    if is_dns_name(name) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!(
                "node name {:?} is not a DNS subdomain (lowercase a-z, 0-9, '-', '.'; at most 253 characters)",
                name.chars().take(80).collect::<String>()
            ),
        )))
    }
}

/// Reject what a well-behaved agent never sends, naming the field.
pub(crate) fn check_event(name: &str, body: &[u8]) -> Result<StatusEvent, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let ev: StatusEvent = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" {
            format!("malformed status event: {inner}")
        } else {
            format!("malformed status event: field `{path}`: {inner}")
        }
    })?;
    if ev.node != name {
        return Err(format!(
            "field `node` is {:?} but the URL names node {name:?}",
            ev.node
        ));
    }
    for (field, value) in [("machine_id", &ev.machine_id), ("boot_id", &ev.boot_id)] {
        let fine = !value.is_empty()
            && value.len() <= 64
            && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !fine {
            return Err(format!(
                "field `{field}` must be 1-64 characters of a-z, A-Z, 0-9 and '-'"
            ));
        }
    }
    if ev.log_tail.len() > LOG_TAIL_MAX_LINES {
        return Err(format!(
            "field `log_tail` has {} lines; at most {LOG_TAIL_MAX_LINES} are accepted",
            ev.log_tail.len()
        ));
    }
    Ok(ev)
}

async fn post_event(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A credential bound to one node (report_binding) is checked against the
    // event itself; a shared report token against the tokens file.
    let bound = presented_token(&headers).filter(|t| report_binding::is_bound(t));
    if bound.is_none() {
        if let Err(r) = authorize(&app, &headers, Scope::Report) {
            return *r;
        }
    }
    if let Err(r) = check_name(&name) {
        return *r;
    }
    let ev = match check_event(&name, &body) {
        Ok(ev) => ev,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if let Some(token) = bound {
        if !app.binder.verify(token, &ev.node, &ev.machine_id) {
            app.rejected.fetch_add(1, Ordering::Relaxed);
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "this report credential was not issued to node {:?} with machine id {:?}: a \
                     node's credential posts events for that node only",
                    ev.node, ev.machine_id
                ),
            );
        }
    }
    let seq = ev.seq;
    let observed = bound.is_some().then(|| ev.clone());
    let stored = app.store(ev).await;
    if let (Stored::New, Some(ev), Some(documents)) = (&stored, observed, &app.documents) {
        if let Err(e) = documents.observe(&ev).await {
            tracing::error!(
                "the init election could not record {}'s report: {e}",
                ev.node
            );
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
    }
    match stored {
        Stored::New => (
            StatusCode::CREATED,
            Json(json!({ "stored": true, "duplicate": false, "seq": seq })),
        )
            .into_response(),
        Stored::Duplicate => (
            StatusCode::OK,
            Json(json!({ "stored": true, "duplicate": true, "seq": seq })),
        )
            .into_response(),
        Stored::DiskFull(m) => error(StatusCode::INSUFFICIENT_STORAGE, m),
        Stored::Failed(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

#[derive(serde::Deserialize)]
struct NodesPage {
    /// Names after this one (the previous page's `next`).
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The most node summaries per page of `GET /v1/nodes`.
const NODES_PAGE_MAX: usize = 1000;

/// Node summaries by name, a page at a time (`?after=NAME&limit=N`, at most
/// 1000, default 500; `next` names where the following page starts). Machine
/// ids appear as fingerprints unless the request carries an admin token.
async fn list_nodes(
    State(app): State<Arc<App>>,
    axum::extract::Query(page): axum::extract::Query<NodesPage>,
    headers: HeaderMap,
) -> Response {
    let limit = page.limit.unwrap_or(500).clamp(1, NODES_PAGE_MAX);
    let mut nodes: Vec<super::NodeSummary> = {
        let view = app.shared.nodes.read().expect("nodes lock");
        view.summaries()
            .into_iter()
            .filter(|n| page.after.as_ref().is_none_or(|a| n.name > *a))
            .take(limit + 1)
            .collect()
    };
    let next = (nodes.len() > limit).then(|| {
        nodes.truncate(limit);
        nodes.last().map(|n| n.name.clone())
    });
    if !is_admin(&app, &headers) {
        for n in &mut nodes {
            n.machine_id = app.binder.fingerprint(&n.machine_id);
        }
    }
    Json(json!({ "nodes": nodes, "next": next.flatten() })).into_response()
}

/// Does the request carry an admin token? (Spends nothing.)
fn is_admin(app: &App, headers: &HeaderMap) -> bool {
    presented_token(headers)
        .is_some_and(|t| crate::blocking(|| app.tokens.check(Some(t), Scope::Admin)).is_ok())
}

#[derive(serde::Deserialize)]
struct EventsFrom {
    #[serde(default)]
    from: u64,
}

/// serve's own events, oldest first, from `?from=N` (at most 1000 per page;
/// `next` is where the following page starts).
async fn serve_events(
    State(app): State<Arc<App>>,
    axum::extract::Query(q): axum::extract::Query<EventsFrom>,
    headers: HeaderMap,
) -> Response {
    const PAGE: usize = 1000;
    let store = app.store.clone();
    let read = tokio::task::spawn_blocking(move || store.serve_events(q.from, PAGE)).await;
    match read {
        Ok(Ok(mut events)) => {
            if !is_admin(&app, &headers) {
                for e in &mut events {
                    e.machine_id = e.machine_id.as_deref().map(|m| app.binder.fingerprint(m));
                }
            }
            let next = events.last().map_or(q.from, |e| e.seq + 1);
            Json(json!({ "events": events, "next": next })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_node(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = check_name(&name) {
        return *r;
    }
    let detail = app.shared.nodes.read().expect("nodes lock").detail(&name);
    match detail {
        Some(mut d) => {
            if !is_admin(&app, &headers) {
                d.summary.machine_id = app.binder.fingerprint(&d.summary.machine_id);
                for ev in &mut d.history {
                    ev.machine_id = app.binder.fingerprint(&ev.machine_id);
                }
            }
            Json(d).into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!("no events from node {name:?} yet"),
        ),
    }
}

async fn get_document(
    State(app): State<Arc<App>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(documents) = &app.documents else {
        return error(
            StatusCode::NOT_FOUND,
            "this receiver serves no node documents: start it with --bundle DIR",
        );
    };
    let role: Role = match role.parse() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::NOT_FOUND, e),
    };
    let requester = presented_token(&headers)
        .map(|t| hex::encode(&super::tokens::hash(t)[..6]))
        .unwrap_or_default();
    let (candidate, claim) = match (candidate(&headers), claim(&headers)) {
        (Ok(c), Ok(claim)) => (c, claim),
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    // Nothing is rendered or minted for a request that is not authorised; a
    // once-only token is spent only when a document is sent (`respond`).
    let pass = match check(&app, &headers, Scope::Documents(role)) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let asker = Asker {
        requester: &requester,
        candidate: candidate.as_ref(),
        claim,
        may_elect: pass.scope != Scope::Admin,
        group: None,
    };
    let served = documents.render(role, &asker).await;
    respond(
        &app,
        &format!("{role} document (token {requester})"),
        candidate.as_ref(),
        served,
        Some((&headers, &pass)),
    )
    .await
}

/// Every Node's pod route, for a node that names itself and presents the report
/// credential serve bound to it (`report_binding`): what `kubeboot pod-routes`
/// reads where a node's own credentials may not list Nodes (Kubernetes ≥ 1.32).
async fn get_pod_routes(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(documents) = &app.documents else {
        return error(
            StatusCode::NOT_FOUND,
            "this receiver knows no cluster: start it with --bundle DIR",
        );
    };
    let c = match candidate(&headers) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "name the node: Kubeboot-Node and Kubeboot-Machine-Id",
            )
        }
        Err(r) => return *r,
    };
    let bound = presented_token(&headers).filter(|t| report_binding::is_bound(t));
    if !bound.is_some_and(|t| app.binder.verify(t, &c.node, &c.machine_id)) {
        app.rejected.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::UNAUTHORIZED,
            "present the report credential serve gave this node (its document's [report] token)",
        );
    }
    match documents.pod_routes().await {
        Ok(routes) => Json(json!({ "routes": routes })).into_response(),
        Err(DocumentError::Bundle(m)) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        Err(e) => {
            tracing::warn!("pod routes for {}: {e}", c.node);
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

/// A document for one machine of a node group (`groups` module).
async fn get_group_document(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (Some(documents), Some(groups)) = (&app.documents, &app.groups) else {
        return error(
            StatusCode::NOT_FOUND,
            "this receiver serves no node groups: start it with --bundle DIR --fresh-credentials",
        );
    };
    let candidate = match candidate(&headers) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "a group document is made for one machine: send Kubeboot-Node and Kubeboot-Machine-Id (the kubeboot agent does)",
            )
        }
        Err(r) => return *r,
    };
    let admission =
        match crate::blocking(|| groups.admit(&name, presented_token(&headers), &candidate)) {
            Ok(a) => a,
            Err(refused) => return group_refusal(&app, refused),
        };
    let claim = match claim(&headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let role = admission.group.role;
    let requester = format!("group {name}");
    let asker = Asker {
        requester: &requester,
        candidate: Some(&candidate),
        claim,
        may_elect: true,
        group: Some(&name),
    };
    let served = match documents.render(role, &asker).await {
        Ok(s) => match super::groups::personalize(&admission, &s.text) {
            Ok(text) => Ok(super::documents::Served { text, ..s }),
            Err(e) => {
                documents.withdraw(&s.tokens).await;
                Err(DocumentError::Bundle(e.to_string()))
            }
        },
        Err(e) => Err(e),
    };
    if let Err(e) = crate::blocking(|| admission.settle(served.is_ok())) {
        tracing::error!(
            "group {name}: could not record machine {}: {e}",
            candidate.machine_id
        );
        if let Ok(s) = &served {
            documents.withdraw(&s.tokens).await;
        }
        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    respond(
        &app,
        &format!("{role} document for {} (group {name})", candidate.node),
        Some(&candidate),
        served,
        None,
    )
    .await
}

fn group_refusal(app: &App, refused: super::groups::Refused) -> Response {
    use super::groups::Refused;
    app.rejected.fetch_add(1, Ordering::Relaxed);
    match refused {
        Refused::Unauthorized => {
            let mut resp = error(
                StatusCode::UNAUTHORIZED,
                "no such group, or not its credential (kubeboot serve group list)",
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
            resp
        }
        Refused::Revoked(m) | Refused::Full(m) => {
            tracing::warn!("{m}");
            error(StatusCode::FORBIDDEN, m)
        }
        Refused::TooMany(m, seconds) => too_many(m, seconds),
        Refused::Unavailable(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

fn too_many(m: String, seconds: u64) -> Response {
    tracing::warn!("{m}");
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, m);
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        seconds.to_string().parse().expect("digits"),
    );
    resp
}

/// The answer to a document request: the document (with what was minted and done
/// for it logged and stored as serve's own events, never the secrets), or the
/// refusal with its status. A document whose events cannot be stored is not
/// served: every credential serve hands out is on record. A document for a
/// named machine carries that machine's own report credential
/// (`report_binding`). `pass` (a document token's) is spent last, when
/// nothing else can fail.
async fn respond(
    app: &Arc<App>,
    what: &str,
    candidate: Option<&Candidate>,
    served: Result<super::documents::Served, DocumentError>,
    pass: Option<(&HeaderMap, &Pass)>,
) -> Response {
    let (Some(documents), Ok(s)) = (&app.documents, &served) else {
        return answer(app, what, candidate, served, pass).await;
    };
    // Nothing minted is left behind: tokens of an answer that is not sent are
    // withdrawn; those of one that is are on record as served before it leaves.
    let tokens = s.tokens.clone();
    let response = answer(app, what, candidate, served, pass).await;
    if response.status() != StatusCode::OK {
        documents.withdraw(&tokens).await;
        return response;
    }
    match documents.record(&tokens, super::minted::State::Served) {
        Ok(()) => response,
        Err(e) => {
            tracing::error!("the {what} is not served: its tokens could not be recorded: {e}");
            documents.withdraw(&tokens).await;
            error(StatusCode::INTERNAL_SERVER_ERROR, e)
        }
    }
}

/// [`respond`] without the minted tokens' bookkeeping.
async fn answer(
    app: &Arc<App>,
    what: &str,
    candidate: Option<&Candidate>,
    served: Result<super::documents::Served, DocumentError>,
    pass: Option<(&HeaderMap, &Pass)>,
) -> Response {
    match served {
        Ok(mut served) => {
            if let Some(c) = candidate {
                let ours =
                    |t: &str| crate::blocking(|| app.tokens.check(Some(t), Scope::Report)).is_ok();
                let bound_for = |node: &str| {
                    app.binder.token(&Candidate {
                        node: node.to_string(),
                        machine_id: c.machine_id.clone(),
                    })
                };
                match report_binding::bind_document(&served.text, ours, bound_for, &c.node) {
                    Ok(text) => served.text = text,
                    Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
            let done: Vec<&str> = served.actions.iter().map(|a| a.message.as_str()).collect();
            if done.is_empty() {
                tracing::info!("served the {what}");
            } else {
                tracing::info!("served a {what}: {}", done.join("; "));
                let node = candidate.map(|c| (c.node.as_str(), c.machine_id.as_str()));
                let mut events =
                    ServeEvent::for_request(&served.actions, what, node, chrono::Utc::now());
                let store = app.store.clone();
                let stored = tokio::task::spawn_blocking(move || {
                    store.append_serve_events(&mut events).map(|()| events)
                })
                .await;
                match stored {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!("the {what} is not served: {e}");
                        return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
                    }
                    Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
            let minted = served
                .actions
                .iter()
                .filter(|a| a.kind == ActionKind::CredentialMinted)
                .count();
            app.minted.fetch_add(minted as u64, Ordering::Relaxed);
            if let Some((headers, pass)) = pass {
                if let Err(r) = spend(app, headers, pass) {
                    return *r;
                }
            }
            ([(header::CONTENT_TYPE, "application/toml")], served.text).into_response()
        }
        Err(DocumentError::Missing(m)) => error(StatusCode::NOT_FOUND, m),
        Err(DocumentError::Bundle(m)) => {
            tracing::error!("{m}");
            error(StatusCode::INTERNAL_SERVER_ERROR, m)
        }
        Err(DocumentError::BadRequest(m)) => error(StatusCode::BAD_REQUEST, m),
        Err(DocumentError::Conflict(m)) => {
            tracing::warn!("{what} refused: {m}");
            error(StatusCode::CONFLICT, m)
        }
        Err(DocumentError::TooMany(m, seconds)) => too_many(m, seconds),
        Err(DocumentError::ClusterUnavailable(m)) => later(what, m, 30),
        Err(DocumentError::Waiting(m, wait)) => {
            // What serve knows (a lease's or a grace period's end), a second past
            // it, from 1 s to the agent's longest wait (300 s).
            let seconds = (wait.as_secs_f64().ceil() as u64 + 1).clamp(1, 300);
            later(what, m, seconds)
        }
    }
}

/// 503 with Retry-After: the node asks again then.
fn later(what: &str, m: String, seconds: u64) -> Response {
    tracing::warn!("{what} not served yet: {m}");
    let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, m);
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        seconds.to_string().parse().expect("digits"),
    );
    resp
}

/// The node a document request says it comes from (`Kubeboot-Node`,
/// `Kubeboot-Machine-Id`): None if it says nothing, 400 if it says it badly.
fn candidate(headers: &HeaderMap) -> Result<Option<Candidate>, Box<Response>> {
    let get = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let (node, machine_id) = match (get("kubeboot-node"), get("kubeboot-machine-id")) {
        (None, None) => return Ok(None),
        (Some(n), Some(m)) => (n, m),
        _ => {
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "send both Kubeboot-Node and Kubeboot-Machine-Id, or neither",
            )))
        }
    };
    check_name(node)?;
    let hex_id =
        (8..=64).contains(&machine_id.len()) && machine_id.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_id {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "Kubeboot-Machine-Id: not a machine id (8 to 64 hex digits, /etc/machine-id)",
        )));
    }
    Ok(Some(Candidate {
        node: node.to_string(),
        machine_id: machine_id.to_ascii_lowercase(),
    }))
}

/// The claim secret the agent sends with every document request
/// (`Kubeboot-Claim`): what proves an elected machine asking again is the one
/// that asked first. Never logged; a malformed one is a 400 that does not quote it.
fn claim(headers: &HeaderMap) -> Result<Option<&str>, Box<Response>> {
    let Some(v) = headers.get("kubeboot-claim") else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(c)
            if (16..=128).contains(&c.len())
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(Some(c))
        }
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "Kubeboot-Claim: not a claim (16 to 128 characters of A-Z, a-z, 0-9, '-', '_')",
        ))),
    }
}

async fn metrics(State(app): State<Arc<App>>, _headers: HeaderMap) -> Response {
    match super::metrics::render(&app) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_field_by_field() {
        let good = json!({
            "node": "w1", "machine_id": "abc", "boot_id": "b-1", "seq": 1, "role": "worker",
            "phase": "source", "state": "started", "attempt": 1,
            "at": "2026-11-21T10:00:00Z", "agent_version": "0.1.0"
        });
        let body = |v: &serde_json::Value| serde_json::to_vec(v).unwrap();
        assert!(check_event("w1", &body(&good)).is_ok());
        assert!(check_event("w2", &body(&good))
            .unwrap_err()
            .contains("field `node`"));
        let mut bad = good.clone();
        bad["phase"] = json!("warp");
        assert!(check_event("w1", &body(&bad))
            .unwrap_err()
            .contains("field `phase`"));
        let mut bad = good.clone();
        bad["boot_id"] = json!("../../etc");
        assert!(check_event("w1", &body(&bad))
            .unwrap_err()
            .contains("boot_id"));
        assert!(check_event("w1", b"{not json")
            .unwrap_err()
            .starts_with("malformed"));
    }

    mod fuzz {
        use super::*;
        use axum::http::HeaderValue;
        use kubeboot_core::fuzz::{apply, config, edits, Edit};
        use proptest::prelude::*;

        /// What serve relies on in an event it stores: the node of the URL,
        /// ids it may use in keys, a bounded log tail.
        fn storable(ev: &StatusEvent, name: &str) -> bool {
            let id = |v: &str| {
                (1..=64).contains(&v.len())
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            };
            ev.node == name
                && is_dns_name(&ev.node)
                && id(&ev.machine_id)
                && id(&ev.boot_id)
                && ev.log_tail.len() <= LOG_TAIL_MAX_LINES
        }

        /// A header value made from mutated bytes, if HTTP allows it.
        fn header(seed: &str, e: &[Edit]) -> Option<HeaderValue> {
            HeaderValue::from_bytes(&apply(seed.as_bytes(), e)).ok()
        }

        /// The 400 answer's body, which the request's claim must not be in.
        fn body_of(r: Response) -> String {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let bytes = rt
                .block_on(axum::body::to_bytes(r.into_body(), MAX_EVENT_BYTES))
                .unwrap();
            String::from_utf8_lossy(&bytes).into_owned()
        }

        const CLAIM: &str = "hV3q9ZtL0xPw7KcR2mYb5NfJ8sDg4Ua6";

        proptest! {
            #![proptest_config(config())]

            /// A mutated status event is accepted or refused with a message
            /// naming the problem, never a panic; an accepted one satisfies what
            /// the store relies on and reads back the same from its JSON.
            #[test]
            fn mutated_events_are_checked_without_panics(e in edits()) {
                let good = serde_json::to_vec(&json!({
                    "node": "w1", "machine_id": "abc", "boot_id": "b-1", "seq": 1, "role": "worker",
                    "phase": "kubeadm", "state": "failed", "attempt": 2,
                    "at": "2026-11-21T10:00:00Z", "duration_ms": 1500, "agent_version": "0.1.0",
                    "error": {"kind": "kubeadm_failed", "message": "exit 1"},
                    "log_tail": ["a", "b"]
                }))
                .unwrap();
                match check_event("w1", &apply(&good, &e)) {
                    Ok(ev) => {
                        prop_assert!(storable(&ev, "w1"), "{:?}", ev);
                        let again = check_event("w1", &serde_json::to_vec(&ev).unwrap());
                        prop_assert_eq!(again, Ok(ev));
                    }
                    Err(why) => prop_assert!(
                        why.starts_with("malformed status event") || why.starts_with("field `"),
                        "{}", why
                    ),
                }
            }

            /// Mutated Kubeboot-Node, Kubeboot-Machine-Id, Kubeboot-Claim and
            /// Authorization headers never panic their readers. A candidate
            /// taken has a DNS node name and a lowercase hex machine id; a claim
            /// taken is well-formed; a refusal is a 400 that does not quote the
            /// claim; a bearer token is the header's, trimmed.
            #[test]
            fn mutated_request_headers_are_read_without_panics(
                node in edits(), id in edits(), claimed in edits(), bearer in edits(),
            ) {
                let mut headers = HeaderMap::new();
                let node = header("w-07.rack4", &node);
                let id = header("4c4c4544004e4a10804bb7c04f535032", &id);
                for (name, v) in [("kubeboot-node", &node), ("kubeboot-machine-id", &id)] {
                    if let Some(v) = v {
                        headers.insert(name, v.clone());
                    }
                }
                if let Some(v) = header(CLAIM, &claimed) {
                    headers.insert("kubeboot-claim", v);
                }
                let auth = header("Bearer 3f9a1c7e5b2d8f0a4c6e1b3d5f7a9c2e4b6d8f0a1c3e5b7d", &bearer);
                if let Some(v) = &auth {
                    headers.insert(header::AUTHORIZATION, v.clone());
                }

                match candidate(&headers) {
                    Ok(Some(c)) => {
                        prop_assert!(is_dns_name(&c.node), "{:?}", c.node);
                        prop_assert_eq!(Some(c.node.as_str()), node.as_ref().and_then(|v| v.to_str().ok()));
                        prop_assert!((8..=64).contains(&c.machine_id.len()));
                        prop_assert!(c.machine_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{}", c.machine_id);
                    }
                    Ok(None) => prop_assert!(node.is_none() && id.is_none()),
                    Err(r) => prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST),
                }
                match claim(&headers) {
                    Ok(Some(c)) => {
                        prop_assert!((16..=128).contains(&c.len()), "{}", c);
                        prop_assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{}", c);
                    }
                    Ok(None) => prop_assert!(!headers.contains_key("kubeboot-claim")),
                    Err(r) => {
                        prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST);
                        let sent = String::from_utf8_lossy(headers["kubeboot-claim"].as_bytes()).into_owned();
                        let body = body_of(*r);
                        prop_assert!(sent.len() < 8 || !body.contains(&sent), "{}", body);
                    }
                }
                if let Some(t) = presented_token(&headers) {
                    let v = auth.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
                    prop_assert_eq!(Some(t), v.strip_prefix("Bearer ").map(str::trim));
                    prop_assert_eq!(t, t.trim());
                }
            }
        }
    }
}
