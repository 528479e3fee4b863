//! `tessera license ...`: thin callers of the admin service. Each command becomes one
//! [`AdminCommand`], run on a stopped server's store (the same service a running server
//! uses) or, through the control socket, by the running server that holds it. `--json`
//! prints the answer the HTTP API gives for the same operation.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;
use tessera_actors::LimitOverrides;

use super::admin_call::{Common, column, fields, finish, load_config, pretty};
use crate::admin::bulk::{BulkAction, BulkRequest, BulkTarget};
use crate::admin::command::AdminCommand;
use crate::admin::{BundleRequest, LicenseEdit, LicenseFilter, NewLicense, StatusFilter};

/// `tessera license ...`.
#[derive(Debug, Subcommand)]
pub enum LicenseCommand {
    /// Issue a license and print its key.
    Create(CreateArgs),
    /// List licenses (filters, key order, pages).
    List(ListArgs),
    /// Print a license with its limits, devices, live sessions and resources (JSON).
    Show(One),
    /// Change validity, limits, plan, customer, note, metadata or features.
    Edit(EditArgs),
    /// Extend validity by N days.
    Renew(RenewArgs),
    /// Make a license active again.
    Activate(StatusArgs),
    /// Suspend a license (its live sessions end).
    Suspend(StatusArgs),
    /// Revoke a license (its live sessions end).
    Revoke(StatusArgs),
    /// Delete a license with its devices and sessions.
    Delete(DeleteArgs),
    /// List a license's devices.
    Devices(One),
    /// Deactivate one device (its sessions end).
    DeactivateDevice(DeviceArgs),
    /// Deactivate every device of a license.
    HwidReset(HwidArgs),
    /// List a license's live sessions.
    Sessions(One),
    /// End one live session (reason `admin`).
    Kick(KickArgs),
    /// One action over many licenses (by keys or by filter), with --dry-run.
    Bulk(BulkArgs),
    /// Apply a bundle preset from `[presets.NAME]`: features, limits, one more cycle.
    Bundle(BundleArgs),
}

/// `tessera license bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// License key or numeric id.
    pub license: String,
    /// Preset name (`[presets.NAME]`).
    #[arg(long)]
    pub preset: String,
    /// `monthly`, `yearly` or `lifetime` (default: the preset's).
    #[arg(long)]
    pub cycle: Option<String>,
    /// Operator note, kept as the license's note.
    #[arg(long)]
    pub note: Option<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// Options of a new license; unset limits inherit from the plan, then `[licenses]`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Plan (configured under `[plans.<name>]`).
    #[arg(long)]
    pub plan: Option<String>,
    /// Product (default: `licenses.default_product`).
    #[arg(long)]
    pub product: Option<String>,
    /// Customer name.
    #[arg(long)]
    pub customer: Option<String>,
    /// The customer (by id) the license belongs to (`tessera customer list`).
    #[arg(long)]
    pub customer_id: Option<u64>,
    /// Devices at once.
    #[arg(long)]
    pub max_devices: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    #[arg(long)]
    pub max_activations: Option<u32>,
    /// Live sessions at once.
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// Validity in days (default: the plan's, else perpetual).
    #[arg(long)]
    pub days: Option<u32>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// The filter options of `list` and `bulk`.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// `active`, `suspended`, `revoked`, `banned` or `expired`.
    #[arg(long)]
    pub status: Option<String>,
    /// Plan name.
    #[arg(long)]
    pub plan: Option<String>,
    /// Product name.
    #[arg(long)]
    pub product: Option<String>,
    /// Customer id or part of the customer name.
    #[arg(long)]
    pub customer: Option<String>,
    /// Valid until before this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub expires_before: Option<String>,
    /// Part of the key, customer name or note.
    #[arg(long)]
    pub q: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> anyhow::Result<LicenseFilter> {
        Ok(LicenseFilter {
            status: self
                .status
                .as_deref()
                .map(|s| StatusFilter::parse("status", s))
                .transpose()?,
            plan: self.plan.clone(),
            product: self.product.clone(),
            customer: self.customer.clone(),
            expires_before: self.expires_before.as_deref().map(time).transpose()?,
            q: self.q.clone(),
        })
    }
}

/// `tessera license list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Continue after this key (`next_cursor` of the previous page).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Rows (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// A command on one license.
#[derive(Debug, Clone, Args)]
pub struct One {
    /// License key or numeric id.
    pub license: String,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license edit`.
#[derive(Debug, Clone, Args)]
pub struct EditArgs {
    /// License key or numeric id.
    pub license: String,
    /// End of validity (YYYY-MM-DD or RFC 3339), or `never`.
    #[arg(long)]
    pub valid_until: Option<String>,
    /// Plan.
    #[arg(long)]
    pub plan: Option<String>,
    /// Devices at once.
    #[arg(long)]
    pub max_devices: Option<u32>,
    /// Lifetime activations (0 = unlimited).
    #[arg(long)]
    pub max_activations: Option<u32>,
    /// Live sessions at once (lowering it ends the excess).
    #[arg(long)]
    pub max_sessions: Option<u32>,
    /// Customer name (empty clears it).
    #[arg(long)]
    pub customer: Option<String>,
    /// The customer (by id) the license belongs to; `none` detaches it.
    #[arg(long, value_name = "ID|none")]
    pub customer_id: Option<String>,
    /// Operator note (empty clears it).
    #[arg(long)]
    pub note: Option<String>,
    /// Metadata entry KEY=VALUE (repeat; replaces the whole map).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Feature (repeat; replaces the list).
    #[arg(long = "feature", value_name = "NAME")]
    pub features: Vec<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license renew`.
#[derive(Debug, Clone, Args)]
pub struct RenewArgs {
    /// License key or numeric id.
    pub license: String,
    /// Days to add.
    #[arg(long)]
    pub days: u32,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license activate|suspend|revoke`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// License key or numeric id.
    pub license: String,
    /// Operator note.
    #[arg(long)]
    pub reason: Option<String>,
    /// Lapse after this many seconds (suspend only; default: until changed).
    #[arg(long)]
    pub for_secs: Option<u64>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license delete`.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// License key or numeric id.
    pub license: String,
    /// The license key again, to confirm.
    #[arg(long)]
    pub confirm: Option<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license deactivate-device`.
#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// License key or numeric id.
    pub license: String,
    /// Device id (see `devices`).
    pub device_id: u64,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license hwid-reset`.
#[derive(Debug, Clone, Args)]
pub struct HwidArgs {
    /// License key or numeric id.
    pub license: String,
    /// Also reset the lifetime activation count.
    #[arg(long)]
    pub refund_activations: bool,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license kick`.
#[derive(Debug, Clone, Args)]
pub struct KickArgs {
    /// License key or numeric id.
    pub license: String,
    /// Session id (see `sessions`).
    pub session_id: String,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera license bulk`.
#[derive(Debug, Clone, Args)]
pub struct BulkArgs {
    /// `activate`, `suspend`, `revoke`, `renew`, `hwid-reset` or `delete`.
    pub action: String,
    /// These licenses (comma-separated keys) instead of a filter.
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Filters.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// For renew: days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Only show what would be touched.
    #[arg(long)]
    pub dry_run: bool,
    /// For delete: the number of licenses matched (from --dry-run).
    #[arg(long)]
    pub confirm: Option<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// A date (midnight UTC) or an RFC 3339 time, as the API takes them.
fn time(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(crate::admin::edit::parse_time("time", raw)?)
}

fn cleared(v: &Option<String>) -> Option<Option<String>> {
    v.as_ref()
        .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
}

impl EditArgs {
    fn edit(&self) -> anyhow::Result<LicenseEdit> {
        let valid_until = match self.valid_until.as_deref() {
            Some("never") => Some(None),
            Some(t) => Some(Some(time(t)?)),
            None => None,
        };
        let metadata = if self.meta.is_empty() {
            None
        } else {
            let mut m = BTreeMap::new();
            for entry in &self.meta {
                let (k, v) = entry
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--meta `{entry}` is not KEY=VALUE"))?;
                m.insert(k.trim().to_string(), v.to_string());
            }
            Some(m)
        };
        Ok(LicenseEdit {
            valid_until,
            plan: self.plan.clone(),
            max_devices: self.max_devices,
            max_activations: self.max_activations,
            max_sessions: self.max_sessions,
            on_session_limit: None,
            customer_name: cleared(&self.customer),
            customer_id: match self.customer_id.as_deref().map(str::trim) {
                None => None,
                Some("none") => Some(None),
                Some(id) => Some(Some(id.parse().map_err(|_| {
                    anyhow::anyhow!("--customer-id `{id}` is neither a number nor `none`")
                })?)),
            },
            note: cleared(&self.note),
            metadata,
            features: (!self.features.is_empty()).then(|| self.features.clone()),
        })
    }
}

impl LicenseCommand {
    fn common(&self) -> &Common {
        match self {
            Self::Create(a) => &a.common,
            Self::List(a) => &a.common,
            Self::Show(a) | Self::Devices(a) | Self::Sessions(a) => &a.common,
            Self::Edit(a) => &a.common,
            Self::Renew(a) => &a.common,
            Self::Activate(a) | Self::Suspend(a) | Self::Revoke(a) => &a.common,
            Self::Delete(a) => &a.common,
            Self::DeactivateDevice(a) => &a.common,
            Self::HwidReset(a) => &a.common,
            Self::Kick(a) => &a.common,
            Self::Bulk(a) => &a.common,
            Self::Bundle(a) => &a.common,
        }
    }

    /// The admin command this CLI command runs.
    fn command(self) -> anyhow::Result<AdminCommand> {
        let status = |license: String, status: &str, a: StatusArgs| AdminCommand::SetStatus {
            license,
            status: status.into(),
            reason: a.reason,
            duration_secs: a.for_secs,
        };
        Ok(match self {
            Self::Create(a) => AdminCommand::Issue {
                new: NewLicense {
                    plan: a.plan,
                    product: a.product,
                    customer_name: a.customer,
                    customer_id: a.customer_id,
                    overrides: LimitOverrides {
                        max_devices: a.max_devices,
                        max_activations: a.max_activations,
                        max_sessions: a.max_sessions,
                        on_session_limit: None,
                    },
                    days: a.days,
                },
                count: 1,
            },
            Self::List(a) => AdminCommand::List {
                filter: a.filter.filter()?,
                cursor: a.cursor,
                limit: Some(a.limit),
            },
            Self::Show(a) => AdminCommand::Show { license: a.license },
            Self::Edit(a) => AdminCommand::Edit {
                edit: a.edit()?,
                license: a.license,
            },
            Self::Renew(a) => AdminCommand::Renew {
                license: a.license,
                days: a.days,
            },
            Self::Activate(a) => status(a.license.clone(), "active", a),
            Self::Suspend(a) => status(a.license.clone(), "suspended", a),
            Self::Revoke(a) => status(a.license.clone(), "revoked", a),
            Self::Delete(a) => AdminCommand::Delete {
                license: a.license,
                confirm: a.confirm,
            },
            Self::Devices(a) => AdminCommand::Devices { license: a.license },
            Self::DeactivateDevice(a) => AdminCommand::DeactivateDevice {
                license: a.license,
                device_id: a.device_id,
            },
            Self::HwidReset(a) => AdminCommand::HwidReset {
                license: a.license,
                refund_activations: a.refund_activations,
            },
            Self::Sessions(a) => AdminCommand::Sessions { license: a.license },
            Self::Kick(a) => AdminCommand::Kick {
                license: a.license,
                session_id: a.session_id,
            },
            Self::Bundle(a) => AdminCommand::Bundle {
                license: a.license,
                request: BundleRequest {
                    preset: a.preset,
                    cycle: match a.cycle.as_deref() {
                        None => None,
                        Some(c) => Some(
                            serde_json::from_value(Value::String(c.trim().into())).map_err(
                                |_| {
                                    anyhow::anyhow!(
                                        "--cycle `{c}` is not one of monthly, yearly, lifetime"
                                    )
                                },
                            )?,
                        ),
                    },
                    admin_note: a.note,
                },
            },
            Self::Bulk(a) => {
                let action: BulkAction = serde_json::from_value(Value::String(a.action.clone()))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "`{}` is not one of activate, suspend, revoke, renew, hwid-reset, delete",
                            a.action
                        )
                    })?;
                let target = if a.keys.is_empty() {
                    BulkTarget::Filter(a.filter.filter()?)
                } else {
                    BulkTarget::Keys(
                        a.keys
                            .iter()
                            .map(|k| tessera_actors::LicenseKey::parse(k.trim()))
                            .collect::<Result<_, _>>()?,
                    )
                };
                AdminCommand::Bulk(BulkRequest {
                    action,
                    target,
                    days: a.days,
                    dry_run: a.dry_run,
                    confirm: a.confirm,
                    request_id: None,
                })
            }
        })
    }
}

/// Runs `tessera license ...`.
pub async fn run(cmd: LicenseCommand) -> ExitCode {
    let common = cmd.common().clone();
    let Some(config) = load_config(&common) else {
        return ExitCode::from(2);
    };
    let render: fn(&Value) -> String = match &cmd {
        LicenseCommand::Create(_) => |v| column(v, "licenses", &["license_key"]),
        LicenseCommand::List(_) => |v| {
            let mut out = column(
                v,
                "licenses",
                &[
                    "id",
                    "license_key",
                    "status",
                    "plan",
                    "customer_name",
                    "valid_until",
                ],
            );
            if let Some(c) = v["next_cursor"].as_str() {
                out.push_str(&format!("next page: --cursor {c}\n"));
            }
            out
        },
        LicenseCommand::Devices(_) => |v| {
            column(
                v,
                "devices",
                &[
                    "id",
                    "is_active",
                    "machine_name",
                    "hardware_hash",
                    "last_heartbeat",
                ],
            )
        },
        LicenseCommand::Sessions(_) => |v| {
            column(
                v,
                "sessions",
                &[
                    "session_id",
                    "machine_id",
                    "version",
                    "started_at",
                    "expires_at",
                ],
            )
        },
        LicenseCommand::Show(_) | LicenseCommand::Edit(_) | LicenseCommand::Bundle(_) => pretty,
        _ => fields,
    };
    let command = cmd.command();
    finish(&config, &common, command, render).await
}
