//! Every admin operation as one serializable command, run the same way wherever it comes
//! from: the control socket (a CLI talking to a running server) and the CLI on a stopped
//! server's store. The answers are the same JSON views the HTTP API sends, so `--json`
//! output and API replies agree.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::bulk::{BulkRequest, Classify};
use super::bundle::BundleRequest;
use super::customers::{CustomerInput, MAX_CUSTOMER_LICENSES, SELECT2_PAGE};
use super::edit::LicenseEdit;
use super::error::AdminError;
use super::issue::NewLicense;
use super::list::{DEFAULT_PAGE, LicenseFilter};
use super::products::{NewRelease, PlanInput, ProductInput};
use super::search::{DEFAULT_LIMIT as SEARCH_LIMIT, SearchType};
use super::service::{Admin, parse_status};
use super::view::{
    AdminLicense, AdminSession, CustomerLicenses, Deleted, DeviceList, DeviceView, HwidResetResult,
    LicenseList, ProductView, Renewed, SessionList, StatusResult, rfc3339,
};

/// One administrative command; `license` is a key or a numeric id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AdminCommand {
    /// Issue licenses.
    Issue {
        /// What they get.
        new: NewLicense,
        /// How many.
        count: u32,
    },
    /// A page of licenses.
    List {
        /// Which.
        #[serde(default)]
        filter: LicenseFilter,
        /// Continue after this key.
        #[serde(default)]
        cursor: Option<String>,
        /// Page size.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// One license in full.
    Show {
        /// The license.
        license: String,
    },
    /// Change fields.
    Edit {
        /// The license.
        license: String,
        /// What changes.
        edit: LicenseEdit,
    },
    /// Extend validity.
    Renew {
        /// The license.
        license: String,
        /// Days.
        days: u32,
    },
    /// Set the status.
    SetStatus {
        /// The license.
        license: String,
        /// `active|suspended|revoked|banned`.
        status: String,
        /// Operator note.
        #[serde(default)]
        reason: Option<String>,
        /// Lapse after this many seconds.
        #[serde(default)]
        duration_secs: Option<u64>,
    },
    /// Delete (`confirm` = the key).
    Delete {
        /// The license.
        license: String,
        /// Must be the license key.
        #[serde(default)]
        confirm: Option<String>,
    },
    /// The license's devices.
    Devices {
        /// The license.
        license: String,
    },
    /// Deactivate one device.
    DeactivateDevice {
        /// The license.
        license: String,
        /// Device id.
        device_id: u64,
    },
    /// Deactivate every device.
    HwidReset {
        /// The license.
        license: String,
        /// Also reset the lifetime activation count.
        #[serde(default)]
        refund_activations: bool,
    },
    /// Live sessions.
    Sessions {
        /// The license.
        license: String,
    },
    /// End one session with reason `admin`.
    Kick {
        /// The license.
        license: String,
        /// Session id (token SHA-256 hex).
        session_id: String,
    },
    /// A bulk action.
    Bulk(BulkRequest),
    /// Apply a bundle preset.
    Bundle {
        /// The license.
        license: String,
        /// Preset, cycle, note.
        request: BundleRequest,
    },
    /// A page of customers.
    Customers {
        /// Search text.
        #[serde(default)]
        query: Option<String>,
        /// Page, from 1.
        #[serde(default)]
        page: Option<u32>,
    },
    /// One customer.
    Customer {
        /// Customer id.
        id: u64,
    },
    /// Create a customer.
    CreateCustomer {
        /// Its fields.
        input: CustomerInput,
    },
    /// Change a customer.
    EditCustomer {
        /// Customer id.
        id: u64,
        /// What changes.
        input: CustomerInput,
    },
    /// Delete a customer without licenses.
    DeleteCustomer {
        /// Customer id.
        id: u64,
    },
    /// A customer's licenses.
    CustomerLicenses {
        /// Customer id.
        id: u64,
        /// Continue after this license id.
        #[serde(default)]
        cursor: Option<u64>,
        /// Page size.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Search customers, licenses and devices.
    Search {
        /// Search text.
        query: String,
        /// Only this type.
        #[serde(default)]
        kind: Option<SearchType>,
        /// Most results.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Every product.
    Products,
    /// One product.
    Product {
        /// Product id.
        id: String,
    },
    /// Create a product.
    CreateProduct {
        /// Product id.
        id: String,
        /// Its settings.
        input: ProductInput,
    },
    /// Change a product.
    EditProduct {
        /// Product id.
        id: String,
        /// What changes.
        input: ProductInput,
    },
    /// Publish a release.
    PublishRelease {
        /// Product id.
        product: String,
        /// The release.
        release: NewRelease,
    },
    /// Every plan.
    Plans,
    /// Create a plan.
    CreatePlan {
        /// Plan name.
        name: String,
        /// Its limits.
        input: PlanInput,
    },
    /// Change a plan.
    EditPlan {
        /// Plan name.
        name: String,
        /// What changes.
        input: PlanInput,
    },
}

/// Failures named as the CLI prints them (no HTTP codes off the wire).
fn plain(e: &AdminError) -> (String, String) {
    let code = match e {
        AdminError::Invalid { .. } => "VALIDATION_ERROR",
        AdminError::License(tessera_actors::LicenseError::NotFound) => "LICENSE_NOT_FOUND",
        AdminError::DeviceNotFound(_) => "DEVICE_NOT_FOUND",
        AdminError::CustomerNotFound(_) => "CUSTOMER_NOT_FOUND",
        AdminError::ProductNotFound(_) => "PRODUCT_NOT_FOUND",
        AdminError::PlanNotFound(_) => "PLAN_NOT_FOUND",
        AdminError::Conflict(_) => "CONFLICT",
        AdminError::ConfirmationRequired => "CONFIRMATION_REQUIRED",
        AdminError::Store(_)
        | AdminError::License(tessera_actors::LicenseError::StoreUnavailable) => {
            "STORE_UNAVAILABLE"
        }
        AdminError::License(_) => "REFUSED",
        AdminError::Unexpected => "INTERNAL_ERROR",
    };
    (code.to_string(), e.to_string())
}

fn to_json(v: impl Serialize) -> Result<Value, AdminError> {
    serde_json::to_value(v).map_err(|_| AdminError::Unexpected)
}

impl AdminCommand {
    /// Runs the command; the answer is the JSON the HTTP API would send for it.
    pub async fn run(self, admin: &Admin) -> Result<Value, AdminError> {
        self.run_with(admin, plain).await
    }

    /// [`AdminCommand::run`] with bulk failures named by `classify`.
    pub async fn run_with(self, admin: &Admin, classify: Classify) -> Result<Value, AdminError> {
        let now = Utc::now();
        let out = match self {
            Self::Issue { new, count } => {
                let issued = admin.issue(new, count).await?;
                json!({
                    "count": issued.len(),
                    "licenses": issued.iter().map(|r| json!({
                        "license_key": r.key.to_string(),
                        "id": r.id,
                        "plan": r.plan,
                        "product": r.product,
                        "valid_until": r.valid_until.map(rfc3339),
                    })).collect::<Vec<_>>(),
                })
            }
            Self::List {
                filter,
                cursor,
                limit,
            } => {
                let cursor = match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                    Some(c) => Some(
                        tessera_actors::LicenseKey::parse(c)
                            .map_err(|e| AdminError::invalid("cursor", e.to_string()))?,
                    ),
                    None => None,
                };
                let page = admin
                    .list(&filter, cursor, limit.unwrap_or(DEFAULT_PAGE))
                    .await?;
                to_json(LicenseList::of(&page, now))?
            }
            Self::Show { license } => {
                let key = admin.resolve(&license).await?;
                to_json(AdminLicense::of(&admin.show_full(&key).await?, now))?
            }
            Self::Edit { license, edit } => {
                let key = admin.resolve(&license).await?;
                admin.edit(&key, &edit).await?;
                to_json(AdminLicense::of(&admin.show_full(&key).await?, now))?
            }
            Self::Renew { license, days } => {
                let key = admin.resolve(&license).await?;
                let view = admin.renew(&key, days).await?;
                to_json(Renewed {
                    license_key: key.to_string(),
                    valid_until: view.record.valid_until.map(rfc3339),
                })?
            }
            Self::SetStatus {
                license,
                status,
                reason,
                duration_secs,
            } => {
                let key = admin.resolve(&license).await?;
                let status = parse_status("status", &status)?;
                let reason = super::edit::text("reason", reason.as_deref(), 256)?;
                let change = admin
                    .set_status(&key, status, reason, duration_secs)
                    .await?;
                to_json(StatusResult {
                    status: change.status.as_str().into(),
                    ended_sessions: change.ended_sessions,
                })?
            }
            Self::Delete { license, confirm } => {
                let key = admin.resolve(&license).await?;
                let ended = admin.delete(&key, confirm.as_deref()).await?;
                to_json(Deleted {
                    deleted: key.to_string(),
                    ended_sessions: ended,
                })?
            }
            Self::Devices { license } => {
                let key = admin.resolve(&license).await?;
                let devices = admin.devices(&key).await?;
                to_json(DeviceList {
                    devices: devices.iter().map(DeviceView::from).collect(),
                })?
            }
            Self::DeactivateDevice { license, device_id } => {
                let key = admin.resolve(&license).await?;
                let ended = admin.deactivate_device(&key, device_id).await?;
                json!({ "device_id": device_id, "ended_sessions": ended })
            }
            Self::HwidReset {
                license,
                refund_activations,
            } => {
                let key = admin.resolve(&license).await?;
                let reset = admin.hwid_reset(&key, refund_activations).await?;
                to_json(HwidResetResult {
                    deactivated: reset.deactivated,
                    ended_sessions: reset.ended_sessions,
                })?
            }
            Self::Sessions { license } => {
                let key = admin.resolve(&license).await?;
                let sessions = admin.sessions(&key).await?;
                to_json(SessionList {
                    sessions: sessions.iter().map(AdminSession::from).collect(),
                })?
            }
            Self::Kick {
                license,
                session_id,
            } => {
                let key = admin.resolve(&license).await?;
                admin.kick(&key, &session_id).await?;
                json!({ "ended": session_id.trim() })
            }
            Self::Bulk(req) => to_json(admin.bulk(req, classify).await?)?,
            Self::Bundle { license, request } => {
                let key = admin.resolve(&license).await?;
                admin.bundle(&key, &request).await?;
                to_json(AdminLicense::of(&admin.show_full(&key).await?, now))?
            }
            Self::Customers { query, page } => to_json(
                admin
                    .customers(query.as_deref(), page.unwrap_or(1), SELECT2_PAGE)
                    .await?,
            )?,
            Self::Customer { id } => to_json(admin.customer(id).await?)?,
            Self::CreateCustomer { input } => to_json(admin.create_customer(&input).await?)?,
            Self::EditCustomer { id, input } => to_json(admin.edit_customer(id, &input).await?)?,
            Self::DeleteCustomer { id } => {
                admin.delete_customer(id).await?;
                json!({ "deleted": id })
            }
            Self::CustomerLicenses { id, cursor, limit } => {
                let limit = limit.unwrap_or(100).clamp(1, MAX_CUSTOMER_LICENSES);
                let customer = admin.customer(id).await?;
                let records = admin.customer_licenses(id, cursor, limit).await?;
                to_json(CustomerLicenses::of(customer, &records, limit, now))?
            }
            Self::Search { query, kind, limit } => to_json(
                admin
                    .search(&query, kind, limit.unwrap_or(SEARCH_LIMIT))
                    .await?,
            )?,
            Self::Products => {
                let products: Vec<ProductView> =
                    admin.products().into_iter().map(Into::into).collect();
                json!({ "products": products })
            }
            Self::Product { id } => to_json(ProductView::from(admin.product(&id)?))?,
            Self::CreateProduct { id, input } => {
                to_json(ProductView::from(admin.create_product(&id, &input).await?))?
            }
            Self::EditProduct { id, input } => {
                to_json(ProductView::from(admin.edit_product(&id, &input).await?))?
            }
            Self::PublishRelease { product, release } => to_json(ProductView::from(
                admin.publish_release(&product, &release).await?,
            ))?,
            Self::Plans => json!({ "plans": admin.plans() }),
            Self::CreatePlan { name, input } => to_json(admin.create_plan(&name, &input).await?)?,
            Self::EditPlan { name, input } => to_json(admin.edit_plan(&name, &input).await?)?,
        };
        Ok(out)
    }
}
