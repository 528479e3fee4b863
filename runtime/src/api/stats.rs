//! Statistics (seed 002): `GET /api/admin/stats/{day|week|month}`.

use axum::Json;
use axum::extract::{Path, State};

use crate::http::error::ApiError;
use crate::state::AppState;
use crate::stats::{Period, StatsReport};

/// Activations, session starts and ends, rejections by code, bans, logins and login
/// failures per day and product, and the day's peak of live sessions: today (`day`), the
/// last 7 days (`week`) or the last 30 (`month`), UTC days.
#[utoipa::path(get, path = "/api/admin/stats/{period}", tag = "events",
    params(("period" = String, Path, description = "`day`, `week` or `month`", pattern = "^(day|week|month)$")),
    responses(
        (status = 200, description = "The report", body = StatsReport),
        (status = 400, description = "VALIDATION_ERROR: unknown period", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn report(
    State(state): State<AppState>,
    Path(period): Path<String>,
) -> Result<Json<StatsReport>, ApiError> {
    let period = Period::parse(&period)
        .ok_or_else(|| ApiError::validation("period", "must be day, week or month"))?;
    let report = state.stats.report(period).await.map_err(ApiError::store)?;
    Ok(Json(report))
}
