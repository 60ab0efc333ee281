//! A web service over the crate: axum on tokio, through `AsyncPool`. It shows the
//! pattern (every call off the runtime's workers, the caller's user taken from the
//! request, errors mapped to status codes); it is not a product.
//!
//! ```sh
//! DATABASE_URL=postgres://... API_ADDR=127.0.0.1:3000 cargo run --example api
//! curl -H "Authorization: Bearer $TOKEN" localhost:3000/tasks?completed=false
//! ```
//!
//! Who is calling: `Authorization: Bearer <token>` with a token of
//! `SessionRepo::create`, checked with `SessionRepo::authenticate` on every request; or,
//! for a demo without sign-in, `X-User-Id: <uuid>` (a real service would not trust a
//! header the client sets). Routes, all for the caller's own tasks:
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
//! Errors: 401 without a valid caller, 404 `NotFound` (another user's task too), 409
//! `Conflict`, 422 `Validation`, 503 `PoolTimeout`, 500 for the rest (logged, not
//! shown); each as `{"error": ..., "field": ...}`.

use std::net::SocketAddr;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use todo_store::serde_support::TaskQueryParams;
use todo_store::{
    AsyncPool, DbConfig, Error, NewTask, SessionRepo, TaskPatch, TaskQuery, TaskRepo,
};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = AsyncPool::connect(&DbConfig::from_env()?).await?;
    let addr: SocketAddr = std::env::var("API_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The address actually bound (with API_ADDR=127.0.0.1:0, the port chosen).
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(pool))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn app(pool: AsyncPool) -> Router {
    Router::new()
        .route("/tasks", get(list_tasks).post(create_task))
        .route(
            "/tasks/{id}",
            get(get_task).patch(update_task).delete(delete_task),
        )
        .route("/tasks/{id}/complete", post(complete_task))
        .with_state(pool)
}

/// An error as the client sees it.
struct ApiError(StatusCode, serde_json::Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let (status, body) = match &err {
            Error::Validation { field, reason } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("invalid {field}: {reason}"), "field": field}),
            ),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, json!({"error": err.to_string()})),
            Error::Conflict { .. } => (StatusCode::CONFLICT, json!({"error": err.to_string()})),
            Error::PoolTimeout { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the service is busy: try again"}),
            ),
            _ => {
                eprintln!("internal error: {err}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal error"}),
                )
            }
        };
        ApiError(status, body)
    }
}

fn unauthorized() -> ApiError {
    ApiError(
        StatusCode::UNAUTHORIZED,
        json!({"error": "sign in: send Authorization: Bearer <session token>"}),
    )
}

/// The caller's user id: from the session token, else (demo) from `X-User-Id`.
async fn caller(pool: &AsyncPool, headers: &HeaderMap) -> Result<Uuid, ApiError> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some(token) = bearer {
        let session = pool
            .run(move |conn| SessionRepo::authenticate(conn, &token))
            .await?;
        return session.map(|(_, user)| user.id).ok_or_else(unauthorized);
    }
    headers
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(unauthorized)
}

async fn list_tasks(
    State(pool): State<AsyncPool>,
    headers: HeaderMap,
    Query(params): Query<TaskQueryParams>,
) -> Result<Response, ApiError> {
    let user = caller(&pool, &headers).await?;
    let query = TaskQuery::try_from(params)?;
    let page = pool
        .run(move |conn| TaskRepo::list(conn, user, &query))
        .await?;
    Ok(Json(page).into_response())
}

async fn create_task(
    State(pool): State<AsyncPool>,
    headers: HeaderMap,
    Json(new): Json<NewTask>,
) -> Result<Response, ApiError> {
    let user = caller(&pool, &headers).await?;
    let task = pool
        .run(move |conn| TaskRepo::create(conn, user, &new))
        .await?;
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

async fn get_task(
    State(pool): State<AsyncPool>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = caller(&pool, &headers).await?;
    let task = pool.run(move |conn| TaskRepo::get(conn, user, id)).await?;
    Ok(Json(task).into_response())
}

async fn update_task(
    State(pool): State<AsyncPool>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(patch): Json<TaskPatch>,
) -> Result<Response, ApiError> {
    let user = caller(&pool, &headers).await?;
    let task = pool
        .run(move |conn| TaskRepo::update(conn, user, id, &patch))
        .await?;
    Ok(Json(task).into_response())
}

async fn complete_task(
    State(pool): State<AsyncPool>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = caller(&pool, &headers).await?;
    let task = pool
        .run(move |conn| TaskRepo::set_completed(conn, user, id, true))
        .await?;
    Ok(Json(task).into_response())
}

async fn delete_task(
    State(pool): State<AsyncPool>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, ApiError> {
    let user = caller(&pool, &headers).await?;
    pool.run(move |conn| TaskRepo::delete(conn, user, id))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
