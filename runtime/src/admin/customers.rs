//! Customers (seed 000): who licenses belong to. A customer is a record in the catalog
//! store, indexed for search in the same atomic write; a license names at most one by id
//! (`customer_id`) and keeps the name as `customer_name`, renamed with the customer.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tessera_actors::{LicenseKey, LicensePatch, LicenseRecord};
use utoipa::ToSchema;

use super::edit::{MAX_METADATA, MAX_NOTE_LEN, MAX_VALUE_LEN, double_option, name, text};
use super::error::AdminError;
use super::service::Admin;
use crate::search::terms;
use crate::store::catalog::{CatalogKind, Entry, numeric_id};

/// Longest customer name, company or email.
pub const MAX_FIELD_LEN: usize = 200;
/// Customers per page of seed 000's Select2 search.
pub const SELECT2_PAGE: usize = 20;
/// Deepest Select2 page served (a search box is refined, not paged through).
pub const MAX_SELECT2_PAGE: u32 = 50;
/// Most licenses one customer listing returns.
pub const MAX_CUSTOMER_LICENSES: usize = 500;
/// How many times a change is retried when another server changed the customer between
/// its read and its write.
const CAS_ATTEMPTS: usize = 8;

/// A customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    /// Numeric id.
    pub id: u64,
    /// Name (a person or an organization).
    pub name: String,
    /// Contact email.
    pub email: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Operator note.
    pub note: Option<String>,
    /// Operator-defined key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Customer {
    /// Seed 000's Select2 text: `"Name - email"` (or the name alone).
    pub fn select2_text(&self) -> String {
        match &self.email {
            Some(e) => format!("{} - {e}", self.name),
            None => self.name.clone(),
        }
    }

    fn fields(&self) -> Vec<&str> {
        [self.name.as_str()]
            .into_iter()
            .chain(self.email.as_deref())
            .chain(self.company.as_deref())
            .collect()
    }

    /// Whether the customer matches a search query (name, email or company).
    pub fn matches(&self, query: &str) -> bool {
        terms::matches(query, self.fields())
    }
}

/// `POST /api/admin/customers` body: a new customer, `name` required.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    /// Name.
    #[schema(
        max_length = 200,
        pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: String,
    /// Contact email.
    #[serde(default)]
    #[schema(
        max_length = 200,
        pattern = "^\\s*([^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[^@\\s\\x00-\\x1f\\x7f-\\x9f]+)?\\s*$"
    )]
    pub email: Option<String>,
    /// Company.
    #[serde(default)]
    #[schema(max_length = 200, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub company: Option<String>,
    /// Operator note.
    #[serde(default)]
    #[schema(max_length = 2000, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub note: Option<String>,
    /// Metadata.
    #[serde(default)]
    #[schema(schema_with = super::edit::metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl From<NewCustomer> for CustomerInput {
    fn from(n: NewCustomer) -> Self {
        Self {
            name: Some(n.name),
            email: n.email.map(Some),
            company: n.company.map(Some),
            note: n.note.map(Some),
            metadata: n.metadata,
        }
    }
}

/// What an edit changes (absent fields stay; `null` clears).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 200,
        pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$"
    )]
    pub name: Option<String>,
    /// Contact email.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^\\s*([^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[^@\\s\\x00-\\x1f\\x7f-\\x9f]+)?\\s*$")]
    pub email: Option<Option<String>>,
    /// Company.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub company: Option<Option<String>>,
    /// Operator note.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, max_length = 2000, pattern = "^[^\\x00-\\x09\\x0b-\\x1f\\x7f-\\x9f]*$")]
    pub note: Option<Option<String>>,
    /// Metadata (replaces the whole map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::edit::metadata_schema)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// One page of customers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerPage {
    /// The customers.
    pub customers: Vec<Customer>,
    /// Whether another page follows.
    pub more: bool,
}

fn email(v: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(e) = text("email", v, MAX_FIELD_LEN)? else {
        return Ok(None);
    };
    let ok = e.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !e.chars().any(char::is_whitespace);
    if ok {
        Ok(Some(e))
    } else {
        Err(AdminError::invalid("email", "must be an email address"))
    }
}

impl CustomerInput {
    /// Applies this input to `c`, checking every field it sets.
    fn apply(&self, c: &mut Customer) -> Result<(), AdminError> {
        if let Some(n) = &self.name {
            c.name = text("name", Some(n), MAX_FIELD_LEN)?
                .ok_or_else(|| AdminError::invalid("name", "must not be blank"))?;
        }
        if let Some(e) = &self.email {
            c.email = email(e.as_deref())?;
        }
        if let Some(v) = &self.company {
            c.company = text("company", v.as_deref(), MAX_FIELD_LEN)?;
        }
        if let Some(v) = &self.note {
            c.note = text("note", v.as_deref(), MAX_NOTE_LEN)?;
        }
        if let Some(m) = &self.metadata {
            if m.len() > MAX_METADATA {
                return Err(AdminError::invalid(
                    "metadata",
                    format!("at most {MAX_METADATA} entries"),
                ));
            }
            for (k, v) in m {
                name("metadata", k)?;
                text("metadata", Some(v), MAX_VALUE_LEN)?;
            }
            c.metadata = m.clone();
        }
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Result<Customer, AdminError> {
    serde_json::from_slice(bytes).map_err(|e| {
        AdminError::Store(tessera_actors::StoreError::Corrupt(format!(
            "customer record: {e}"
        )))
    })
}

fn encode(c: &Customer) -> Result<Vec<u8>, AdminError> {
    serde_json::to_vec(c).map_err(|e| {
        AdminError::Store(tessera_actors::StoreError::Corrupt(format!(
            "customer record: {e}"
        )))
    })
}

impl Admin {
    fn catalog_store(&self) -> &std::sync::Arc<dyn crate::store::CatalogStore> {
        self.search.store()
    }

    /// Writes `c` if the stored bytes are still `expected`.
    async fn put_customer(
        &self,
        c: &Customer,
        expected: Option<&[u8]>,
    ) -> Result<bool, AdminError> {
        let bytes = encode(c)?;
        let terms = terms::terms_of(c.fields());
        let entry = Entry {
            value: &bytes,
            terms: &terms,
        };
        Ok(self
            .catalog_store()
            .swap(
                CatalogKind::Customer,
                &numeric_id(c.id),
                expected,
                Some(entry),
            )
            .await?)
    }

    /// Creates a customer; `name` is required.
    pub async fn create_customer(&self, input: &CustomerInput) -> Result<Customer, AdminError> {
        if input.name.is_none() {
            return Err(AdminError::invalid("name", "is required"));
        }
        let now = Utc::now();
        let mut c = Customer {
            id: 0,
            name: String::new(),
            email: None,
            company: None,
            note: None,
            metadata: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        };
        input.apply(&mut c)?;
        c.id = self.catalog_store().next_id(CatalogKind::Customer).await?;
        if !self.put_customer(&c, None).await? {
            // A fresh id is never taken: another writer broke the sequence.
            return Err(AdminError::Conflict(format!(
                "customer id {} is already taken",
                c.id
            )));
        }
        self.emit(
            "admin.customer.created",
            None,
            format!("customer {} created", c.id),
            json!({ "customer_id": c.id }),
        )
        .await?;
        Ok(c)
    }

    async fn customer_bytes(&self, id: u64) -> Result<(Customer, Vec<u8>), AdminError> {
        let bytes = self
            .catalog_store()
            .get(CatalogKind::Customer, &numeric_id(id))
            .await?
            .ok_or(AdminError::CustomerNotFound(id))?;
        Ok((decode(&bytes)?, bytes))
    }

    /// One customer.
    pub async fn customer(&self, id: u64) -> Result<Customer, AdminError> {
        Ok(self.customer_bytes(id).await?.0)
    }

    /// Changes a customer; a new name reaches the `customer_name` of its licenses.
    pub async fn edit_customer(
        &self,
        id: u64,
        input: &CustomerInput,
    ) -> Result<Customer, AdminError> {
        if *input == CustomerInput::default() {
            return Err(AdminError::invalid("body", "names nothing to change"));
        }
        for _ in 0..CAS_ATTEMPTS {
            let (old, bytes) = self.customer_bytes(id).await?;
            let mut c = old.clone();
            input.apply(&mut c)?;
            c.updated_at = Utc::now();
            if !self.put_customer(&c, Some(&bytes)).await? {
                continue;
            }
            if c.name != old.name {
                self.rename_licenses(id, &c.name).await?;
            }
            self.emit(
                "admin.customer.edited",
                None,
                format!("customer {id} edited"),
                json!({ "customer_id": id, "edit": input }),
            )
            .await?;
            return Ok(c);
        }
        Err(AdminError::Conflict(format!(
            "customer {id} kept changing under this request; retry"
        )))
    }

    async fn rename_licenses(&self, id: u64, name: &str) -> Result<(), AdminError> {
        let mut after = None;
        loop {
            let ids = self.search.licenses_of_customer(id, after, 100).await?;
            let Some(last) = ids.last() else { break };
            after = Some(*last);
            for key in self.keys_of(&ids).await? {
                let patch = LicensePatch {
                    customer_name: Some(Some(name.to_owned())),
                    ..LicensePatch::default()
                };
                match self
                    .licenses
                    .call(&key, tessera_actors::Request::Update(patch))
                    .await
                {
                    Ok(tessera_actors::Reply::Updated { license }) => {
                        self.reindex(&license.record).await
                    }
                    Ok(_) => return Err(AdminError::Unexpected),
                    // Deleted since it was indexed: nothing to rename.
                    Err(tessera_actors::LicenseError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn keys_of(&self, ids: &[u64]) -> Result<Vec<LicenseKey>, AdminError> {
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(k) = self.licenses.store().key_for_id(*id).await? {
                keys.push(k);
            }
        }
        Ok(keys)
    }

    /// Deletes a customer that no license belongs to.
    pub async fn delete_customer(&self, id: u64) -> Result<(), AdminError> {
        let (_, bytes) = self.customer_bytes(id).await?;
        if !self.customer_licenses(id, None, 1).await?.is_empty() {
            return Err(AdminError::Conflict(format!(
                "customer {id} still has licenses; move or delete them first"
            )));
        }
        if !self
            .catalog_store()
            .swap(CatalogKind::Customer, &numeric_id(id), Some(&bytes), None)
            .await?
        {
            return Err(AdminError::Conflict(format!(
                "customer {id} changed under this request; retry"
            )));
        }
        self.emit(
            "admin.customer.deleted",
            None,
            format!("customer {id} deleted"),
            json!({ "customer_id": id }),
        )
        .await?;
        Ok(())
    }

    /// Customers matching `query` (name, email or company; every customer when blank), page
    /// `page` (from 1) of `per_page`.
    pub async fn customers(
        &self,
        query: Option<&str>,
        page: u32,
        per_page: usize,
    ) -> Result<CustomerPage, AdminError> {
        if !(1..=MAX_SELECT2_PAGE).contains(&page) {
            return Err(AdminError::invalid(
                "page",
                format!("must be between 1 and {MAX_SELECT2_PAGE}"),
            ));
        }
        let skip = (page as usize - 1) * per_page;
        let want = skip + per_page + 1;
        let query = query.map(str::trim).filter(|q| !q.is_empty());
        let mut found = Vec::new();
        match query {
            None => {
                for (_, bytes) in self
                    .catalog_store()
                    .list(CatalogKind::Customer, None, want)
                    .await?
                {
                    found.push(decode(&bytes)?);
                }
            }
            Some(q) => {
                let ids = self
                    .search
                    .candidates(CatalogKind::Customer, q, want)
                    .await?;
                for id in ids {
                    if found.len() >= want {
                        break;
                    }
                    if let Some(bytes) =
                        self.catalog_store().get(CatalogKind::Customer, &id).await?
                    {
                        let c = decode(&bytes)?;
                        if c.matches(q) {
                            found.push(c);
                        }
                    }
                }
            }
        }
        let more = found.len() > skip + per_page;
        let customers = found.into_iter().skip(skip).take(per_page).collect();
        Ok(CustomerPage { customers, more })
    }

    /// Up to `limit` licenses of customer `id`, in id order, after license id `after`.
    pub async fn customer_licenses(
        &self,
        id: u64,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, AdminError> {
        let limit = limit.clamp(1, MAX_CUSTOMER_LICENSES);
        let mut out = Vec::new();
        let mut cursor = after;
        // Index entries can be stale (a license moved to another customer): keep reading
        // until `limit` licenses that really belong to the customer, or the index ends.
        while out.len() < limit {
            let ids = self
                .search
                .licenses_of_customer(id, cursor, limit - out.len())
                .await?;
            let Some(last) = ids.last() else { break };
            cursor = Some(*last);
            for key in self.keys_of(&ids).await? {
                if let Some(snap) = self.licenses.store().load(&key).await?
                    && snap.record.customer_id == Some(id)
                {
                    out.push(snap.record);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Customer {
        let now = Utc::now();
        Customer {
            id: 1,
            name: "ACME Corp".into(),
            email: None,
            company: None,
            note: None,
            metadata: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn inputs_are_checked_and_null_clears() {
        let mut c = customer();
        let input: CustomerInput =
            serde_json::from_str(r#"{"email":"admin@acme.com","company":"ACME"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        input.apply(&mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.select2_text(), "ACME Corp - admin@acme.com");
        let clear: CustomerInput =
            serde_json::from_str(r#"{"email":null}"#).unwrap_or_else(|e| panic!("{e}"));
        clear.apply(&mut c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.email, None);
        assert_eq!(c.company.as_deref(), Some("ACME"));
        for bad in [
            r#"{"email":"not-an-email"}"#,
            r#"{"email":"a@b@c"}"#,
            r#"{"name":"   "}"#,
            r#"{"metadata":{"bad key":"x"}}"#,
        ] {
            let input: CustomerInput = serde_json::from_str(bad).unwrap_or_else(|e| panic!("{e}"));
            assert!(input.apply(&mut c.clone()).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<CustomerInput>(r#"{"nmae":"x"}"#).is_err());
    }

    #[test]
    fn a_customer_matches_on_name_email_and_company() {
        let mut c = customer();
        c.email = Some("admin@acme.com".into());
        c.company = Some("Road Runner Inc".into());
        assert!(c.matches("acme"));
        assert!(c.matches("admin@"));
        assert!(c.matches("runner"));
        assert!(!c.matches("coyote"));
    }
}
