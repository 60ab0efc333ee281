//! A web service over the crate: axum on tokio, through `AsyncPool`. It shows the
//! pattern (every call off the runtime's workers, one trip to the database per request
//! that carries the caller and the work together, the caller known before anything of
//! the request past its headers is read, every error in one JSON format); it is not a
//! product.
//!
//! ```sh
//! DATABASE_URL=postgres://... API_ADDR=127.0.0.1:3000 cargo run --example api
//! curl -H "Authorization: Bearer $TOKEN" localhost:3000/tasks?completed=false
//! ```
//!
//! The first line on stdout is `listening on http://ADDR`, the address bound
//! (`API_ADDR=127.0.0.1:0` picks a free port); at shutdown (Ctrl-C) it prints what the
//! pool did (`served: trips=.. checkouts=.. statements=..`, counted since it started).
//!
//! One trip per request: a request without a body is answered by one call of
//! `AsyncPool::run_authenticated` (find the caller's session and do the work, one
//! checkout, two prepared statements). A request with a body (`Content-Length` above 0
//! or a chunked body) is authenticated by the layer in front of the routes before the
//! body is read, so that no unknown client is ever waited for or buffered: two trips.
//!
//! `API_CALLS` picks how handlers reach the database, to measure the crate's path
//! against the alternatives with the same handlers (the benchmark's `--http` mode):
//! `async` (the default, `AsyncPool`), `direct` (the same calls on the runtime's worker
//! threads: no thread hop, but a stalled server or an exhausted pool stalls the worker
//! and every task on it), `spawn_blocking` (tokio's blocking pool, a checkout there) and
//! `block_in_place` (on the worker, after handing its other tasks to another thread).
//!
//! Who is calling: `Authorization: Bearer <token>` with a token of
//! `SessionRepo::create`, checked with `SessionRepo::authenticate` on every request
//! (unknown routes too): for a request without a body in the same trip as its work, for
//! one with a body by the layer in front of every route. Without a live session the
//! answer is 401 whatever the method, path, query or body, and the body is not read. No
//! header names the user directly: a service must not take the client's word for who
//! it is.
//! Routes, all for the caller's own tasks:
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /tasks?completed=..&priority=high,low&sort=due_date&direction=asc&limit=..&after=..` | | 200 `Page<Task>` |
//! | `POST /tasks` | `NewTask` | 201 `Task` |
//! | `GET /tasks/{id}` | | 200 `Task` |
//! | `PATCH /tasks/{id}` | `TaskPatch` (`expected_version` for optimistic concurrency) | 200 `Task` |
//! | `POST /tasks/{id}/complete` | | 200 `Task` |
//! | `DELETE /tasks/{id}` | | 204 |
//!
//! Query parameters are those of `TaskQueryParams`; bodies are JSON objects of the
//! fields of `NewTask` or `TaskPatch` (others are refused), at most 2 MB, sent with
//! `Content-Type: application/json`.
//!
//! Every error is JSON, `{"error": "<what to fix>", "field": "<name>" | null}`, where
//! `field` is the body's field, query parameter or path parameter at fault. A request is
//! checked in this order and the first failure answers: the caller, the route and
//! method, the path, the query, the body (content type, size, syntax, fields), then what
//! the crate refuses.
//!
//! | status | when |
//! |---|---|
//! | 401 | no `Authorization: Bearer`, or a token of no live session (with `WWW-Authenticate: Bearer`) |
//! | 400 | the body is not JSON; `{id}` is not a UUID (`field`: `id`); a query parameter is unknown or not of its form (`?limit=abc`) |
//! | 404 | `NotFound` (another user's task too); an unknown route |
//! | 405 | a method the route does not have |
//! | 409 | `Conflict`: a stale `expected_version` (other conflicts without the constraint's name) |
//! | 413 | a body over 2 MB |
//! | 415 | a body without `Content-Type: application/json` |
//! | 422 | a JSON body that is not an object, or has an unknown field or a value of the wrong type; `Validation` (`field`: the field) |
//! | 503 | `PoolTimeout` |
//! | 500 | anything else (logged to stderr, not shown) |
//!
//! Messages name the public field at fault, never a table, constraint, SQL statement or
//! Rust type (serde's own wording, which names the latter, is not passed on).

use std::error::Error as StdError;
use std::net::SocketAddr;

use axum::body::HttpBody;
use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, JsonRejection, PathRejection, QueryRejection,
};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use todo_store::pool::checkout;
use todo_store::serde_support::TaskQueryParams;
use todo_store::{
    AsyncPool, ConflictKind, DbConfig, Error, NewTask, PgConnection, PoolOptions, SessionRepo,
    TaskId, TaskPatch, TaskQuery, TaskRepo, UserId,
};

/// The largest body a route reads (axum's default, stated here as the docs say it).
const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// [`BODY_LIMIT`] as the 413 error names it.
const BODY_LIMIT_TEXT: &str = "2 MB";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls = Calls::from_env()?;
    let config = DbConfig::from_env()?;
    // As AsyncPool::connect, keeping the pool's counters for the shutdown line.
    let (pool, metrics) =
        tokio::task::spawn_blocking(move || PoolOptions::new(&config).connect_with_metrics())
            .await??;
    let db = Db {
        pool: AsyncPool::new(pool),
        calls,
    };
    let addr: SocketAddr = std::env::var("API_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The address actually bound (with API_ADDR=127.0.0.1:0, the port chosen).
    println!("listening on http://{}", listener.local_addr()?);
    let (start, trips) = (metrics.snapshot(), db.pool.get_stats().trips);
    axum::serve(listener, app(db.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let end = metrics.snapshot();
    println!(
        "served: trips={} checkouts={} statements={}",
        db.pool.get_stats().trips - trips,
        end.checkouts - start.checkouts,
        end.statements - start.statements
    );
    Ok(())
}

fn app(db: Db) -> Router {
    Router::new()
        .route("/tasks", get(list_tasks).post(create_task))
        .route(
            "/tasks/{id}",
            get(get_task).patch(update_task).delete(delete_task),
        )
        .route("/tasks/{id}/complete", post(complete_task))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Outermost, after the fallbacks: nothing answers an unknown caller but 401.
        .layer(middleware::from_fn_with_state(db.clone(), authenticate))
        .with_state(db)
}

/// An error as the client sees it: `{"error": ..., "field": ...}` with a status.
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field,
        }
    }

    fn internal(what: impl std::fmt::Display) -> Self {
        eprintln!("internal error: {what}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error", None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.message, "field": self.field}));
        if self.status == StatusCode::UNAUTHORIZED {
            (self.status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match &err {
            Error::Validation { field, reason } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("invalid {field}: {reason}"),
                Some(field.clone()),
            ),
            Error::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, err.to_string(), None),
            // Conflicts the caller can act on; any other names a constraint.
            Error::Conflict {
                kind: ConflictKind::StaleVersion { .. } | ConflictKind::EmailTaken,
            } => ApiError::new(StatusCode::CONFLICT, err.to_string(), None),
            Error::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflicts with what is stored: reload and retry",
                None,
            ),
            Error::PoolTimeout { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the service is busy: try again",
                None,
            ),
            _ => ApiError::internal(err),
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "sign in: send Authorization: Bearer <session token>",
        None,
    )
}

/// Who is calling, put on every request by [`authenticate`]: known already when the
/// layer had to check before a body, else the token that the request's one trip checks.
#[derive(Clone)]
enum Caller {
    Known(UserId),
    Token(String),
}

/// The layer in front of every route: 401 for a request without a bearer token, before
/// any of it past its headers is read. A request with a body is authenticated here, so
/// that the body of an unknown client is never read; one without is authenticated in
/// the same trip as its work ([`Db::as_caller`]).
async fn authenticate(
    State(db): State<Db>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer_token(request.headers()).ok_or_else(unauthorized)?;
    let caller = if has_body(&request) {
        let user = db
            .as_caller(Caller::Token(token), |_, user| Ok(user))
            .await?;
        Caller::Known(user)
    } else {
        Caller::Token(token)
    };
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// Whether a request may carry a body: `Content-Length` or `Transfer-Encoding` present
/// (even `Content-Length: 0`'s spellings other than `0` count), or a body that says it
/// has not ended, whatever the framing (HTTP/2 needs no header for one).
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
        || !request.body().is_end_stream()
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Only missing on a route outside the layer: refuse rather than guess.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(unauthorized)
    }
}

/// How handlers reach the database (`API_CALLS`; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Calls {
    Async,
    Direct,
    SpawnBlocking,
    BlockInPlace,
}

impl Calls {
    fn from_env() -> Result<Calls, String> {
        match std::env::var("API_CALLS").as_deref() {
            Err(_) | Ok("async") => Ok(Calls::Async),
            Ok("direct") => Ok(Calls::Direct),
            Ok("spawn_blocking") => Ok(Calls::SpawnBlocking),
            Ok("block_in_place") => Ok(Calls::BlockInPlace),
            Ok(other) => Err(format!(
                "API_CALLS={other:?}: use async, direct, spawn_blocking or block_in_place"
            )),
        }
    }
}

/// The handlers' way to the database.
#[derive(Clone)]
struct Db {
    pool: AsyncPool,
    calls: Calls,
}

impl Db {
    /// `work` as `caller`, in one trip on one connection: with a token, its session is
    /// found first on the same connection (401 when it names no live session, before
    /// `work` runs: so the errors `work` carries, of the path, query or body, answer
    /// only a known caller).
    async fn as_caller<T, F>(&self, caller: Caller, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut PgConnection, UserId) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let done = match (self.calls, caller) {
            (Calls::Async, Caller::Token(token)) => {
                self.pool
                    .run_authenticated(token, move |conn, _session, user| Ok(work(conn, user.id)))
                    .await
            }
            (Calls::Async, Caller::Known(user)) => {
                self.pool.run(move |conn| Ok(Some(work(conn, user)))).await
            }
            // The alternatives, measured against the crate's path.
            (calls, caller) => {
                let pool = self.pool.pool().clone();
                let run = move || {
                    let conn = &mut checkout(&pool)?;
                    let user = match caller {
                        Caller::Known(user) => user,
                        Caller::Token(token) => match SessionRepo::authenticate(conn, &token)? {
                            Some((_, user)) => user.id,
                            None => return Ok(None),
                        },
                    };
                    Ok(Some(work(conn, user)))
                };
                match calls {
                    Calls::SpawnBlocking => tokio::task::spawn_blocking(run)
                        .await
                        .map_err(ApiError::internal)?,
                    Calls::BlockInPlace => tokio::task::block_in_place(run),
                    _ => run(),
                }
            }
        };
        done?.ok_or_else(unauthorized)?
    }
}

/// `Json`, with its rejections as [`ApiError`]s.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Body(value))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "the body is not valid JSON", None)
            }
            JsonRejection::JsonDataError(err) => match field_at_fault::<serde_json::Error>(&err) {
                Some(field) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "`{field}` is not a field of this body or has a value of the wrong type"
                    ),
                    Some(field),
                ),
                None => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the body must be a JSON object of this route's fields",
                    None,
                ),
            },
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON, with Content-Type: application/json",
                None,
            ),
            JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
                FailedToBufferBody::LengthLimitError(_),
            )) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {BODY_LIMIT_TEXT}"),
                None,
            ),
            other => ApiError::new(other.status(), "the body could not be read", None),
        }
    }
}

/// `Query`, with its rejections as [`ApiError`]s.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(err)) => {
                let field = field_at_fault::<serde_urlencoded::de::Error>(&err);
                let message = match &field {
                    Some(field) => format!(
                        "the query parameter `{field}` is unknown or has a value of the wrong form"
                    ),
                    None => "the query string cannot be read".to_owned(),
                };
                Err(ApiError::new(StatusCode::BAD_REQUEST, message, field))
            }
            Err(other) => Err(ApiError::new(
                other.status(),
                "the query string cannot be read",
                None,
            )),
        }
    }
}

/// The `{id}` of a task route: a [`TaskId`], parsed from the path by its serde form.
struct TaskPath(TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<TaskId>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(TaskPath(id)),
            Err(PathRejection::FailedToDeserializePathParams(err))
                if err.status().is_client_error() =>
            {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "the task id in the path (`id`) must be a UUID",
                    Some("id".to_owned()),
                ))
            }
            // The route and the extractor disagree: a bug here, not in the request.
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// The field a body or query string failed on, as serde_path_to_error (under axum's
/// rejection) recorded it; `None` for the whole value (a JSON array instead of an
/// object, say). Serde's own message is not used: it names Rust types.
fn field_at_fault<E: StdError + 'static>(rejection: &(dyn StdError + 'static)) -> Option<String> {
    let mut source = Some(rejection);
    while let Some(err) = source {
        if let Some(err) = err.downcast_ref::<serde_path_to_error::Error<E>>() {
            let path = err.path();
            return path.iter().next().is_some().then(|| path.to_string());
        }
        source = err.source();
    }
    None
}

/// Every request's caller is known before it is answered, an unknown route's too.
async fn no_such_route(State(db): State<Db>, caller: Caller) -> Result<Response, ApiError> {
    db.as_caller(caller, |_, _| {
        Err(ApiError::new(StatusCode::NOT_FOUND, "no such route", None))
    })
    .await
}

async fn method_not_allowed(State(db): State<Db>, caller: Caller) -> Result<Response, ApiError> {
    db.as_caller(caller, |_, _| {
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this method is not allowed on this route",
            None,
        ))
    })
    .await
}

// The handlers take what they extract as `Result`s and look at them only inside
// `as_caller`, after the caller is known: a request's path, query or body is judged
// only for a signed-in caller.

async fn list_tasks(
    State(db): State<Db>,
    caller: Caller,
    params: Result<Params<TaskQueryParams>, ApiError>,
) -> Result<Response, ApiError> {
    let query = params.and_then(|Params(params)| Ok(TaskQuery::try_from(params)?));
    let page = db
        .as_caller(caller, move |conn, user| {
            Ok(TaskRepo::list(conn, user, &query?)?)
        })
        .await?;
    Ok(Json(page).into_response())
}

async fn create_task(
    State(db): State<Db>,
    caller: Caller,
    body: Result<Body<NewTask>, ApiError>,
) -> Result<Response, ApiError> {
    let task = db
        .as_caller(caller, move |conn, user| {
            let Body(new) = body?;
            Ok(TaskRepo::create(conn, user, &new)?)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

async fn get_task(
    State(db): State<Db>,
    caller: Caller,
    path: Result<TaskPath, ApiError>,
) -> Result<Response, ApiError> {
    let task = db
        .as_caller(caller, move |conn, user| {
            Ok(TaskRepo::get(conn, user, path?.0)?)
        })
        .await?;
    Ok(Json(task).into_response())
}

async fn update_task(
    State(db): State<Db>,
    caller: Caller,
    path: Result<TaskPath, ApiError>,
    body: Result<Body<TaskPatch>, ApiError>,
) -> Result<Response, ApiError> {
    let task = db
        .as_caller(caller, move |conn, user| {
            let id = path?.0;
            let Body(patch) = body?;
            Ok(TaskRepo::update(conn, user, id, &patch)?)
        })
        .await?;
    Ok(Json(task).into_response())
}

async fn complete_task(
    State(db): State<Db>,
    caller: Caller,
    path: Result<TaskPath, ApiError>,
) -> Result<Response, ApiError> {
    let task = db
        .as_caller(caller, move |conn, user| {
            Ok(TaskRepo::set_completed(conn, user, path?.0, true)?)
        })
        .await?;
    Ok(Json(task).into_response())
}

async fn delete_task(
    State(db): State<Db>,
    caller: Caller,
    path: Result<TaskPath, ApiError>,
) -> Result<Response, ApiError> {
    db.as_caller(caller, move |conn, user| {
        Ok(TaskRepo::delete(conn, user, path?.0)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
