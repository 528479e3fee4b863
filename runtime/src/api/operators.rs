//! Operator accounts and admin API keys over HTTP (`/api/admin/operators`,
//! `/api/admin/keys`), every route `operators:write`. Thin callers of `auth::commands`, the
//! commands `tessera operator|admin-key` run on a stopped store and through the control
//! socket, so the three behave alike. Each change is audited with the command's own record
//! (the caller and the client address filled in, never a password or a key) and published
//! before it is answered. A new key's secret is in the answer to its creation and nowhere
//! else.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::access::Caller;
use crate::auth::commands::{
    self, AdminKeyView, CredentialCommand, CredentialReply, OperatorView, Secret,
};
use crate::auth::operators::check_username;
use crate::auth::scopes::{Role, Scope};
use crate::events::Severity;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::ApiJson;
use crate::state::AppState;

/// Most scopes one key names (repeats included; they count once).
const MAX_SCOPES: usize = 16;

/// Runs `cmd` on the server's credentials, then audits and publishes what it changed.
async fn run(
    state: &AppState,
    caller: &Caller,
    cmd: CredentialCommand,
    severity: Severity,
) -> Result<CredentialReply, ApiError> {
    let entry = cmd.audit_entry();
    let reply = commands::run(state.auth.meta().as_ref(), cmd).await?;
    if let Some(entry) = entry {
        super::audit::record_entry(state, caller, entry, severity).await?;
    }
    Ok(reply)
}

fn unexpected(reply: &CredentialReply) -> ApiError {
    ApiError::internal(anyhow::anyhow!(
        "credential command answered {reply:?}, not what its route renders"
    ))
}

/// `{username}` of a path: exactly a stored username (no surrounding blanks).
fn path_username(raw: &str) -> Result<String, ApiError> {
    match check_username(raw) {
        Ok(name) if name == raw => Ok(name),
        Ok(_) => Err(ApiError::validation(
            "username",
            "must be 1 to 64 characters of letters, digits and . _ - @",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/admin/operators` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperatorList {
    /// Every operator, disabled ones included, in creation order.
    pub operators: Vec<OperatorView>,
}

/// `POST /api/admin/operators` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperator {
    /// Login name: 1 to 64 of letters, digits and `. _ - @` (trimmed).
    #[schema(pattern = "^\\s*[A-Za-z0-9._@-]{1,64}\\s*$")]
    pub username: String,
    /// `admin` or `super_admin`.
    pub role: Role,
    /// 12 to 256 characters; stored only as an Argon2id hash.
    #[schema(value_type = String, min_length = 12, max_length = 256)]
    pub password: Secret,
}

/// List operators (never a password hash).
#[utoipa::path(get, path = "/api/admin/operators", tag = "credentials",
    responses((status = 200, description = "The operators", body = OperatorList)),
    security(("bearer" = [])))]
pub async fn list_operators(State(state): State<AppState>) -> Result<Json<OperatorList>, ApiError> {
    match commands::run(state.auth.meta().as_ref(), CredentialCommand::ListOperators).await? {
        CredentialReply::Operators(operators) => Ok(Json(OperatorList { operators })),
        other => Err(unexpected(&other)),
    }
}

/// Create an operator, who can then log in (`POST /api/auth/login`). Audited as
/// `admin.operator.created` (the username and role).
#[utoipa::path(post, path = "/api/admin/operators", tag = "credentials",
    request_body = NewOperator,
    responses(
        (status = 201, description = "Created", body = OperatorView),
        (status = 400, description = "VALIDATION_ERROR (username, role, password), INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: an operator with this username exists", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create_operator(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewOperator>,
) -> Result<(StatusCode, Json<OperatorView>), ApiError> {
    let cmd = CredentialCommand::CreateOperator {
        username: body.username,
        role: body.role,
        password: body.password,
    };
    match run(&state, &caller, cmd, Severity::Info).await? {
        CredentialReply::Operator(o) => Ok((StatusCode::CREATED, Json(o))),
        other => Err(unexpected(&other)),
    }
}

/// Keeps the server administrable: an operator may not disable their own account (they
/// would lose the session they act in), and the last enabled super_admin stays enabled (no
/// one could manage operators or use the emergency controls over the API after it).
async fn refuse_lockout(state: &AppState, caller: &Caller, username: &str) -> Result<(), ApiError> {
    if let Caller::Operator(me) = caller
        && me.username == username
    {
        return Err(ApiError::validation(
            "username",
            "you cannot disable your own account; another super_admin can",
        ));
    }
    let all = crate::auth::operators::list(state.auth.meta().as_ref()).await?;
    let target_is_super = all
        .iter()
        .any(|o| o.username == username && o.role == Role::SuperAdmin && !o.disabled);
    let other_supers = all
        .iter()
        .filter(|o| o.username != username && o.role == Role::SuperAdmin && !o.disabled)
        .count();
    if target_is_super && other_supers == 0 {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("`{username}` is the last enabled super_admin; create or enable another first"),
        ));
    }
    Ok(())
}

async fn set_disabled(
    state: &AppState,
    caller: &Caller,
    username: &str,
    disabled: bool,
) -> Result<Json<OperatorView>, ApiError> {
    let username = path_username(username)?;
    if disabled {
        refuse_lockout(state, caller, &username).await?;
    }
    let cmd = CredentialCommand::SetOperatorDisabled { username, disabled };
    let severity = if disabled {
        Severity::Warning
    } else {
        Severity::Info
    };
    match run(state, caller, cmd, severity).await? {
        CredentialReply::Operator(o) => Ok(Json(o)),
        other => Err(unexpected(&other)),
    }
}

/// Disable an operator: their logins are refused and their tokens stop working at once,
/// on every server. Not one's own account, not the last enabled super_admin. Audited as
/// `admin.operator.changed`.
#[utoipa::path(post, path = "/api/admin/operators/{username}/disable", tag = "credentials",
    params(("username" = String, Path, description = "The operator", pattern = "^[A-Za-z0-9._@-]{1,64}$")),
    responses(
        (status = 200, description = "The operator, disabled", body = OperatorView),
        (status = 400, description = "VALIDATION_ERROR: not a username, or the caller's own account", body = crate::http::error::ErrorSchema),
        (status = 404, description = "OPERATOR_NOT_FOUND", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: the last enabled super_admin", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn disable_operator(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<Json<OperatorView>, ApiError> {
    set_disabled(&state, &caller, &username, true).await
}

/// Enable a disabled operator again: they can log in; tokens issued before the disable stay
/// ended. Audited as `admin.operator.changed`.
#[utoipa::path(post, path = "/api/admin/operators/{username}/enable", tag = "credentials",
    params(("username" = String, Path, description = "The operator", pattern = "^[A-Za-z0-9._@-]{1,64}$")),
    responses(
        (status = 200, description = "The operator, enabled", body = OperatorView),
        (status = 400, description = "VALIDATION_ERROR: not a username", body = crate::http::error::ErrorSchema),
        (status = 404, description = "OPERATOR_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn enable_operator(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
) -> Result<Json<OperatorView>, ApiError> {
    set_disabled(&state, &caller, &username, false).await
}

/// `POST /api/admin/operators/{username}/password` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// 12 to 256 characters; stored only as an Argon2id hash.
    #[schema(value_type = String, min_length = 12, max_length = 256)]
    pub password: Secret,
}

/// Set an operator's password (as `tessera operator reset-password` does): the lockout is
/// cleared and every token issued before ends, on every server. Audited as
/// `admin.operator.password_reset` (never the password).
#[utoipa::path(post, path = "/api/admin/operators/{username}/password", tag = "credentials",
    params(("username" = String, Path, description = "The operator", pattern = "^[A-Za-z0-9._@-]{1,64}$")),
    request_body = NewPassword,
    responses(
        (status = 200, description = "The operator", body = OperatorView),
        (status = 400, description = "VALIDATION_ERROR (username, password), INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 404, description = "OPERATOR_NOT_FOUND", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Json<OperatorView>, ApiError> {
    let cmd = CredentialCommand::ResetPassword {
        username: path_username(&username)?,
        password: body.password,
    };
    match run(&state, &caller, cmd, Severity::Warning).await? {
        CredentialReply::Operator(o) => Ok(Json(o)),
        other => Err(unexpected(&other)),
    }
}

/// `GET /api/admin/keys` reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminKeyList {
    /// Every admin key ever created, revoked ones included, oldest first.
    pub keys: Vec<AdminKeyView>,
}

/// `POST /api/admin/keys` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAdminKey {
    /// Who or what uses it: 1 to 64 printable characters (trimmed); unique among active keys.
    #[schema(
        pattern = "^\\s*[^\\s\\x00-\\x1f\\x7f-\\x9f](?:[^\\x00-\\x1f\\x7f-\\x9f]{0,62}[^\\s\\x00-\\x1f\\x7f-\\x9f])?\\s*$"
    )]
    pub name: String,
    /// What it may do (`licenses:read`, ..., `*` for everything); 1 to 16 (repeats count once).
    #[schema(min_items = 1, max_items = 16)]
    pub scopes: Vec<Scope>,
}

/// `POST /api/admin/keys` reply: the key's record and the key itself.
#[derive(Serialize, ToSchema)]
pub struct CreatedAdminKey {
    /// Id (`key_…`), for revoking.
    pub id: String,
    /// Name.
    pub name: String,
    /// Scopes, sorted.
    pub scopes: Vec<Scope>,
    /// The key's first 8 characters, to recognize it in a list.
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Always `null` for a new key.
    pub revoked_at: Option<i64>,
    /// The key (`tsa_…`), for `Authorization: Bearer`: shown this once, stored only as its
    /// SHA-256.
    pub secret: String,
}

/// `{id}` of a key: `key_` and 12 letters or digits.
fn key_id(raw: &str) -> Result<&str, ApiError> {
    let ok = raw
        .strip_prefix("key_")
        .is_some_and(|rest| rest.len() == 12 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::validation(
            "id",
            "must be a key id: key_ and 12 letters or digits",
        ))
    }
}

/// List admin keys (never a key or its hash; `hint` is its first 8 characters).
#[utoipa::path(get, path = "/api/admin/keys", tag = "credentials",
    responses((status = 200, description = "The keys", body = AdminKeyList)),
    security(("bearer" = [])))]
pub async fn list_keys(State(state): State<AppState>) -> Result<Json<AdminKeyList>, ApiError> {
    match commands::run(state.auth.meta().as_ref(), CredentialCommand::ListAdminKeys).await? {
        CredentialReply::AdminKeys(keys) => Ok(Json(AdminKeyList { keys })),
        other => Err(unexpected(&other)),
    }
}

/// Create an admin key. The answer carries the key (`secret`) this once; it is not logged
/// or audited. Audited as `admin.admin_key.created` (the name and scopes).
#[utoipa::path(post, path = "/api/admin/keys", tag = "credentials",
    request_body = NewAdminKey,
    responses(
        (status = 201, description = "Created, with the key", body = CreatedAdminKey),
        (status = 400, description = "VALIDATION_ERROR (name, scopes), INVALID_JSON", body = crate::http::error::ErrorSchema),
        (status = 409, description = "CONFLICT: an active key with this name exists", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewAdminKey>,
) -> Result<(StatusCode, Json<CreatedAdminKey>), ApiError> {
    if body.scopes.len() > MAX_SCOPES {
        return Err(ApiError::validation(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    // As `tessera admin-key create --scopes` does: each scope once, in order.
    let mut scopes = body.scopes;
    scopes.sort();
    scopes.dedup();
    let cmd = CredentialCommand::CreateAdminKey {
        name: body.name,
        scopes,
    };
    match run(&state, &caller, cmd, Severity::Info).await? {
        CredentialReply::CreatedAdminKey { key, secret } => Ok((
            StatusCode::CREATED,
            Json(CreatedAdminKey {
                id: key.id,
                name: key.name,
                scopes: key.scopes,
                hint: key.hint,
                created_at: key.created_at,
                revoked_at: key.revoked_at,
                secret: secret.0,
            }),
        )),
        other => Err(unexpected(&other)),
    }
}

/// Revoke an admin key: it stops working at once, on every server. Audited as
/// `admin.admin_key.revoked`.
#[utoipa::path(delete, path = "/api/admin/keys/{id}", tag = "credentials",
    params(("id" = String, Path, description = "The key's id", pattern = "^key_[A-Za-z0-9]{12}$")),
    responses(
        (status = 200, description = "The key, revoked", body = AdminKeyView),
        (status = 400, description = "VALIDATION_ERROR: not a key id", body = crate::http::error::ErrorSchema),
        (status = 404, description = "ADMIN_KEY_NOT_FOUND: no active key with this id", body = crate::http::error::ErrorSchema),
    ),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<AdminKeyView>, ApiError> {
    let cmd = CredentialCommand::RevokeAdminKey {
        key: key_id(&id)?.to_owned(),
    };
    match run(&state, &caller, cmd, Severity::Warning).await? {
        CredentialReply::AdminKey(k) => Ok(Json(k)),
        other => Err(unexpected(&other)),
    }
}
