//! `tessera admin-key create|list|revoke` and `tessera operator create|list|disable|enable|
//! reset-password`: thin callers of `auth::commands`, on a stopped server's store or through
//! a running server's control socket. Passwords come from stdin or a prompt, never argv.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tessera_config::Config;

use super::config::ConfigArgs;
use super::target::{Target, ask_running, reach};
use crate::auth::commands::{
    AdminKeyView, CredentialCommand, CredentialReply, OperatorView, Secret,
};
use crate::auth::scopes::{Role, Scope};
use crate::control::{ControlReply, ControlRequest};

/// `tessera admin-key ...`.
#[derive(Debug, Subcommand)]
pub enum AdminKeyCommand {
    /// Create an admin API key and print it once.
    Create {
        /// Who or what uses it (unique among active keys).
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. `licenses:read,licenses:write` (`*` for all).
        #[arg(long)]
        scopes: String,
        /// Config file.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List admin keys (never the keys themselves).
    List(ConfigArgs),
    /// Revoke an admin key by id or name; it stops working at once.
    Revoke {
        /// Id (`key_...`) or name.
        key: String,
        /// Config file.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `tessera operator ...`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator account; the password is read from stdin or a prompt.
    Create {
        /// Login name.
        #[arg(long)]
        username: String,
        /// `admin` or `super_admin`.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Config file.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List operators.
    List(ConfigArgs),
    /// Disable an operator: no login, and its tokens stop working.
    Disable(UsernameArgs),
    /// Enable a disabled operator again.
    Enable(UsernameArgs),
    /// Set a new password (read from stdin or a prompt); ends the operator's tokens.
    ResetPassword(UsernameArgs),
}

/// An operator's name and the config.
#[derive(Debug, Args)]
pub struct UsernameArgs {
    /// Login name.
    #[arg(long)]
    pub username: String,
    /// Config file.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Reads a password: a prompt without echo on a terminal, else one line of stdin.
pub(super) fn read_password(prompt: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        anyhow::bail!("no password given (pipe it on stdin or type it at the prompt)");
    }
    Ok(password)
}

async fn execute(config: &Config, cmd: CredentialCommand) -> anyhow::Result<CredentialReply> {
    match reach(config).await? {
        Target::Stopped(stopped) => {
            let entry = cmd.audit_entry();
            let reply = crate::auth::commands::run(stopped.meta.as_ref(), cmd).await;
            let audited = match (&reply, entry) {
                (Ok(_), Some(e)) => stopped.audit_log().record(e).await.map(|_| ()),
                _ => Ok(()),
            };
            stopped.close().await;
            let reply = reply?;
            audited.map_err(|e| anyhow::anyhow!("done, but not audited: {e}"))?;
            Ok(reply)
        }
        Target::Running => match ask_running(config, ControlRequest::Credentials(cmd)).await? {
            ControlReply::Credentials(reply) => Ok(reply),
            _ => anyhow::bail!("unexpected reply from the server"),
        },
    }
}

fn print_key(k: &AdminKeyView) {
    let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
    let state = if k.revoked_at.is_some() {
        "revoked"
    } else {
        "active"
    };
    println!(
        "{}  {}  {}…  {}  [{}]",
        k.id,
        k.name,
        k.hint,
        state,
        scopes.join(",")
    );
}

fn print_operator(o: &OperatorView) {
    let state = if o.disabled {
        "disabled"
    } else if o
        .locked_until
        .is_some_and(|t| t > chrono::Utc::now().timestamp())
    {
        "locked"
    } else {
        "active"
    };
    println!("{}  {}  {}", o.username, o.role.as_str(), state);
}

fn load(args: &ConfigArgs) -> Result<Config, ExitCode> {
    tessera_config::load(args.path().as_deref()).map_err(|errs| {
        eprintln!("{errs}");
        ExitCode::from(2)
    })
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `tessera admin-key ...`.
pub async fn run_admin_key(cmd: AdminKeyCommand) -> ExitCode {
    let (args, request) = match cmd {
        AdminKeyCommand::Create {
            name,
            scopes,
            config,
        } => match Scope::parse_list(&scopes) {
            Ok(scopes) => (config, CredentialCommand::CreateAdminKey { name, scopes }),
            Err(e) => {
                eprintln!("error: --scopes: {e}");
                return ExitCode::from(2);
            }
        },
        AdminKeyCommand::List(config) => (config, CredentialCommand::ListAdminKeys),
        AdminKeyCommand::Revoke { key, config } => {
            (config, CredentialCommand::RevokeAdminKey { key })
        }
    };
    let config = match load(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    finish(execute(&config, request).await.map(|reply| match reply {
        CredentialReply::CreatedAdminKey { key, secret } => {
            println!(
                "Admin key `{}` ({}), shown only now; the server keeps only its SHA-256:",
                key.name, key.id
            );
            println!();
            println!("    {}", secret.0);
            println!();
            println!("Send it as `Authorization: Bearer <key>`.");
        }
        CredentialReply::AdminKey(k) => print_key(&k),
        CredentialReply::AdminKeys(keys) => keys.iter().for_each(print_key),
        CredentialReply::Operator(o) => print_operator(&o),
        CredentialReply::Operators(ops) => ops.iter().for_each(print_operator),
    }))
}

/// Runs `tessera operator ...`.
pub async fn run_operator(cmd: OperatorCommand) -> ExitCode {
    let built: anyhow::Result<(ConfigArgs, CredentialCommand)> = (|| {
        Ok(match cmd {
            OperatorCommand::Create {
                username,
                role,
                config,
            } => {
                let role = Role::parse(&role).ok_or_else(|| {
                    anyhow::anyhow!("--role: `{role}` is not admin or super_admin")
                })?;
                let password = read_password(&format!("Password for {username}: "))?;
                (
                    config,
                    CredentialCommand::CreateOperator {
                        username,
                        role,
                        password: Secret(password),
                    },
                )
            }
            OperatorCommand::List(config) => (config, CredentialCommand::ListOperators),
            OperatorCommand::Disable(a) => (
                a.config,
                CredentialCommand::SetOperatorDisabled {
                    username: a.username,
                    disabled: true,
                },
            ),
            OperatorCommand::Enable(a) => (
                a.config,
                CredentialCommand::SetOperatorDisabled {
                    username: a.username,
                    disabled: false,
                },
            ),
            OperatorCommand::ResetPassword(a) => {
                let password = read_password(&format!("New password for {}: ", a.username))?;
                (
                    a.config,
                    CredentialCommand::ResetPassword {
                        username: a.username,
                        password: Secret(password),
                    },
                )
            }
        })
    })();
    let (args, request) = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let config = match load(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    finish(execute(&config, request).await.map(|reply| match reply {
        CredentialReply::Operator(o) => print_operator(&o),
        CredentialReply::Operators(ops) => ops.iter().for_each(print_operator),
        CredentialReply::AdminKey(k) => print_key(&k),
        CredentialReply::AdminKeys(keys) => keys.iter().for_each(print_key),
        CredentialReply::CreatedAdminKey { key, .. } => print_key(&key),
    }))
}
