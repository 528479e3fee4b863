//! The credential administration commands (`tessera admin-key ...`, `tessera operator ...`)
//! as one typed request/reply pair, run the same way on a stopped server's store (by the
//! CLI) and on a running server (through its control socket).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin_keys::{self, AdminKey};
use super::error::AuthError;
use super::operators::{self, Operator};
use super::scopes::{Role, Scope};
use crate::store::MetaStore;

/// A password in transit: never printed by `Debug`.
#[derive(Clone, Serialize, Deserialize)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// One credential command.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CredentialCommand {
    /// Create an admin key.
    CreateAdminKey {
        /// Who or what uses it.
        name: String,
        /// What it may do.
        scopes: Vec<Scope>,
    },
    /// List admin keys.
    ListAdminKeys,
    /// Revoke an admin key by id or name.
    RevokeAdminKey {
        /// Id (`key_…`) or name.
        key: String,
    },
    /// Create an operator.
    CreateOperator {
        /// Login name.
        username: String,
        /// Role.
        role: Role,
        /// Password.
        password: Secret,
    },
    /// List operators.
    ListOperators,
    /// Disable or enable an operator.
    SetOperatorDisabled {
        /// Login name.
        username: String,
        /// Disabled?
        disabled: bool,
    },
    /// Set a new password.
    ResetPassword {
        /// Login name.
        username: String,
        /// The new password.
        password: Secret,
    },
}

/// An admin key as listed (no hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminKeyView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<Scope>,
    /// First characters of the key.
    pub hint: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

impl From<AdminKey> for AdminKeyView {
    fn from(k: AdminKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            scopes: k.scopes,
            hint: k.hint,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// An operator as listed (no hash).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperatorView {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Disabled?
    pub disabled: bool,
    /// Unix seconds until which logins are refused, if locked.
    pub locked_until: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<Operator> for OperatorView {
    fn from(o: Operator) -> Self {
        Self {
            username: o.username,
            role: o.role,
            disabled: o.disabled,
            locked_until: o.locked_until,
            created_at: o.created_at,
        }
    }
}

/// What a command produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", content = "value", rename_all = "snake_case")]
pub enum CredentialReply {
    /// A created admin key with the key itself (shown once).
    CreatedAdminKey {
        /// The record.
        key: AdminKeyView,
        /// The key.
        secret: Secret,
    },
    /// One admin key.
    AdminKey(AdminKeyView),
    /// Admin keys.
    AdminKeys(Vec<AdminKeyView>),
    /// One operator.
    Operator(OperatorView),
    /// Operators.
    Operators(Vec<OperatorView>),
}

/// Runs `cmd` against the credentials in `meta`.
pub async fn run(
    meta: &dyn MetaStore,
    cmd: CredentialCommand,
) -> Result<CredentialReply, AuthError> {
    Ok(match cmd {
        CredentialCommand::CreateAdminKey { name, scopes } => {
            let (key, secret) = admin_keys::create(meta, &name, scopes).await?;
            tracing::info!(name = %key.name, id = %key.id, "admin key created");
            CredentialReply::CreatedAdminKey {
                key: key.into(),
                secret: Secret(secret),
            }
        }
        CredentialCommand::ListAdminKeys => CredentialReply::AdminKeys(
            admin_keys::list(meta)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ),
        CredentialCommand::RevokeAdminKey { key } => {
            let k = admin_keys::revoke(meta, &key).await?;
            tracing::info!(name = %k.name, id = %k.id, "admin key revoked");
            CredentialReply::AdminKey(k.into())
        }
        CredentialCommand::CreateOperator {
            username,
            role,
            password,
        } => {
            let o = operators::create(meta, &username, role, &password.0).await?;
            tracing::info!(operator = %o.username, role = o.role.as_str(), "operator created");
            CredentialReply::Operator(o.into())
        }
        CredentialCommand::ListOperators => CredentialReply::Operators(
            operators::list(meta)
                .await?
                .into_iter()
                .map(Into::into)
                .collect(),
        ),
        CredentialCommand::SetOperatorDisabled { username, disabled } => {
            let o = operators::set_disabled(meta, &username, disabled).await?;
            tracing::info!(operator = %o.username, disabled, "operator changed");
            CredentialReply::Operator(o.into())
        }
        CredentialCommand::ResetPassword { username, password } => {
            let o = operators::reset_password(meta, &username, &password.0).await?;
            tracing::info!(operator = %o.username, "operator password reset");
            CredentialReply::Operator(o.into())
        }
    })
}

impl CredentialCommand {
    /// The audit record of this command once it succeeded, for the changing ones (never a
    /// password or a key): who is the local administrator (`cli`), from no address.
    pub fn audit_entry(&self) -> Option<crate::audit::AuditEntry> {
        let (action, target, summary, after) = match self {
            Self::CreateAdminKey { name, scopes } => {
                // Stored trimmed, so audited trimmed.
                let name = name.trim();
                (
                    "admin.admin_key.created",
                    format!("admin_key:{name}"),
                    format!("admin key {name} created"),
                    serde_json::json!({ "name": name, "scopes": scopes }),
                )
            }
            Self::RevokeAdminKey { key } => (
                "admin.admin_key.revoked",
                format!("admin_key:{key}"),
                format!("admin key {key} revoked"),
                serde_json::json!({ "key": key }),
            ),
            Self::CreateOperator { username, role, .. } => {
                let username = username.trim();
                (
                    "admin.operator.created",
                    format!("operator:{username}"),
                    format!("operator {username} created"),
                    serde_json::json!({ "username": username, "role": role.as_str() }),
                )
            }
            Self::SetOperatorDisabled { username, disabled } => (
                "admin.operator.changed",
                format!("operator:{username}"),
                format!(
                    "operator {username} {}",
                    if *disabled { "disabled" } else { "enabled" }
                ),
                serde_json::json!({ "username": username, "disabled": disabled }),
            ),
            Self::ResetPassword { username, .. } => (
                "admin.operator.password_reset",
                format!("operator:{username}"),
                format!("operator {username} password reset"),
                serde_json::json!({ "username": username }),
            ),
            Self::ListAdminKeys | Self::ListOperators => return None,
        };
        Some(crate::audit::AuditEntry {
            actor: "cli".into(),
            ip: None,
            action: action.into(),
            target: Some(target),
            summary,
            before: None,
            after,
        })
    }
}
