//! `tessera customer ...`: customers (seed 000) from the command line, on a stopped
//! server's store or through a running server's control socket, like `tessera license`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::admin_call::{Common, column, finish, load_config, pretty};
use crate::admin::CustomerInput;
use crate::admin::command::AdminCommand;

/// `tessera customer ...`.
#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// List customers (optionally matching a search), 20 per page.
    List(ListArgs),
    /// Print one customer (JSON).
    Show(One),
    /// Create a customer and print it.
    Create(FieldArgs),
    /// Change a customer (an empty value clears a field).
    Edit(EditArgs),
    /// Delete a customer no license belongs to.
    Delete(One),
    /// List a customer's licenses.
    Licenses(One),
}

/// `tessera customer list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Search text (a prefix of a word of the name, email or company).
    #[arg(long, short = 'q')]
    pub query: Option<String>,
    /// Page, from 1.
    #[arg(long, default_value_t = 1)]
    pub page: u32,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// One customer by id.
#[derive(Debug, Args)]
pub struct One {
    /// Customer id.
    pub id: u64,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// A customer's fields.
#[derive(Debug, Args)]
pub struct FieldArgs {
    /// Name.
    #[arg(long)]
    pub name: Option<String>,
    /// Contact email.
    #[arg(long)]
    pub email: Option<String>,
    /// Company.
    #[arg(long)]
    pub company: Option<String>,
    /// Operator note.
    #[arg(long)]
    pub note: Option<String>,
    /// Metadata entry KEY=VALUE (repeat; replaces the whole map).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `tessera customer edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// Customer id.
    pub id: u64,
    /// What changes.
    #[command(flatten)]
    pub fields: FieldArgs,
}

/// `Some(None)` for an empty value (clears the field), `Some(Some(v))` otherwise.
fn cleared(v: &Option<String>) -> Option<Option<String>> {
    v.as_ref()
        .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
}

impl FieldArgs {
    fn input(&self) -> anyhow::Result<CustomerInput> {
        let metadata = if self.meta.is_empty() {
            None
        } else {
            let mut m = BTreeMap::new();
            for entry in &self.meta {
                let (k, v) = entry
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--meta `{entry}` is not KEY=VALUE"))?;
                m.insert(k.trim().to_owned(), v.to_owned());
            }
            Some(m)
        };
        Ok(CustomerInput {
            name: self.name.clone(),
            email: cleared(&self.email),
            company: cleared(&self.company),
            note: cleared(&self.note),
            metadata,
        })
    }
}

impl CustomerCommand {
    fn common(&self) -> &Common {
        match self {
            Self::List(a) => &a.common,
            Self::Show(a) | Self::Delete(a) | Self::Licenses(a) => &a.common,
            Self::Create(a) => &a.common,
            Self::Edit(a) => &a.fields.common,
        }
    }

    fn command(self) -> anyhow::Result<AdminCommand> {
        Ok(match self {
            Self::List(a) => AdminCommand::Customers {
                query: a.query,
                page: Some(a.page),
            },
            Self::Show(a) => AdminCommand::Customer { id: a.id },
            Self::Create(a) => AdminCommand::CreateCustomer { input: a.input()? },
            Self::Edit(a) => AdminCommand::EditCustomer {
                id: a.id,
                input: a.fields.input()?,
            },
            Self::Delete(a) => AdminCommand::DeleteCustomer { id: a.id },
            Self::Licenses(a) => AdminCommand::CustomerLicenses {
                id: a.id,
                cursor: None,
                limit: None,
            },
        })
    }
}

/// Runs `tessera customer ...`.
pub async fn run(cmd: CustomerCommand) -> ExitCode {
    let common = cmd.common().clone();
    let Some(config) = load_config(&common) else {
        return ExitCode::from(2);
    };
    let render: fn(&Value) -> String = match &cmd {
        CustomerCommand::List(_) => |v| {
            let mut out = column(v, "customers", &["id", "name", "email", "company"]);
            if v["more"].as_bool() == Some(true) {
                out.push_str("more: --page N+1\n");
            }
            out
        },
        CustomerCommand::Licenses(_) => |v| {
            column(
                v,
                "licenses",
                &["id", "license_key", "status", "plan", "valid_until"],
            )
        },
        CustomerCommand::Delete(_) => |v| format!("deleted customer {}\n", v["deleted"]),
        _ => pretty,
    };
    finish(&config, &common, cmd.command(), render).await
}
