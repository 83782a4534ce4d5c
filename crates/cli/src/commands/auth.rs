//! `kiln auth ...`: log in, who am I, tokens (service accounts), the audit log, and a way back in
//! for the machine's owner who lost the first administrator token.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::client::Context;
use crate::{config, output};

/// `kiln auth` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuthCommand {
    /// Check a token against the server and save it, with the endpoint, in the config file.
    Login {
        /// The token; read from standard input when absent (keeps it out of the shell history).
        #[arg(long)]
        token: Option<String>,
    },
    /// Remove the saved token.
    Logout,
    /// Show who the current token authenticates as.
    Whoami,
    /// Tokens (administrators only).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The audit log of mutating calls: the project's, or with --all the whole server's.
    AuditLog {
        /// Every project and the server-wide calls (administrators only).
        #[arg(long)]
        all: bool,
        /// `--filter` such as `status>=400` or `member=serviceAccount:ci`.
        #[command(flatten)]
        list: crate::listing::ListArgs,
    },
    /// Make an administrator token directly in a server's data directory, without the server
    /// (for the machine's owner who lost the first one).
    Bootstrap {
        /// The server's data directory; default `~/.kiln`.
        #[arg(long, env = "KILN_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The server's metadata database, when it is not the data directory's (`kiln server
        /// --database`).
        #[arg(long, env = "KILN_DATABASE", hide_env_values = true)]
        database: Option<String>,
        /// Service account of the new token.
        #[arg(long, default_value = "admin")]
        service_account: String,
    },
}

/// `kiln auth tokens ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Create a token for a service account; prints its secret once.
    Create {
        /// Service account; policies name it `serviceAccount:NAME`.
        service_account: String,
        /// Lifetime, such as `90d`, `12h`, `30m` (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
        /// A server administrator token (every permission everywhere).
        #[arg(long)]
        admin: bool,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// A role the token holds on --grant-resource (and what lies under it) besides its
        /// service account's bindings, such as roles/ml.modelUser.
        #[arg(long, requires = "grant_resource")]
        grant_role: Option<String>,
        /// The resource of --grant-role, such as projects/p/models/m.
        #[arg(long, requires = "grant_role")]
        grant_resource: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        list: crate::listing::ListArgs,
    },
    /// Revoke a token at once.
    Revoke {
        /// Token id (`tokens/ID` or `ID`).
        id: String,
    },
}

/// Runs a `kiln auth` command.
pub fn run(command: AuthCommand, context: &Context) -> anyhow::Result<()> {
    match command {
        AuthCommand::Login { token } => {
            let token = match token {
                Some(token) => token,
                None => {
                    eprintln!("Paste the token and press Enter:");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line
                }
            };
            let token = token.trim().to_string();
            let checked = Context {
                token: Some(token.clone()),
                ..context.clone()
            };
            let identity = checked.root().get("whoami")?;
            let mut saved = config::load()?;
            saved.endpoint = Some(context.endpoint.clone());
            saved.token = Some(token);
            if let Some(ca_file) = &context.ca_file {
                saved.ca_file = Some(std::path::absolute(ca_file)?);
            }
            let path = config::save(&saved)?;
            eprintln!(
                "Logged in to {} as {}; saved in {}.",
                context.endpoint,
                identity["member"].as_str().unwrap_or_default(),
                path.display()
            );
            Ok(())
        }
        AuthCommand::Logout => {
            let mut saved = config::load()?;
            saved.token = None;
            let path = config::save(&saved)?;
            eprintln!("Removed the token from {}.", path.display());
            Ok(())
        }
        AuthCommand::Whoami => {
            output::print_resource(context.format.as_ref(), &context.root().get("whoami")?);
            Ok(())
        }
        AuthCommand::Tokens(command) => tokens(command, context),
        AuthCommand::AuditLog { all, list } => {
            let api = match all {
                true => context.root(),
                false => context.client(),
            };
            let entries = list.list(&api, "auditLogs", "entries")?;
            output::print_list(
                context.format.as_ref(),
                &entries,
                &[
                    ("TIME", "time"),
                    ("MEMBER", "member"),
                    ("METHOD", "method"),
                    ("RESOURCE", "resource"),
                    ("STATUS", "status"),
                ],
            );
            Ok(())
        }
        AuthCommand::Bootstrap {
            data_dir,
            database,
            service_account,
        } => {
            let data_dir = data_dir.unwrap_or_else(super::server::default_data_dir);
            if database.is_none() && !data_dir.join(kiln_server::DATABASE_FILE).exists() {
                bail!("{} holds no Kiln server data", data_dir.display());
            }
            let token =
                kiln_server::issue_admin_token(&data_dir, database.as_deref(), &service_account)
                    .with_context(|| format!("making a token in {}", data_dir.display()))?;
            println!("{}", token.secret);
            eprintln!(
                "Created administrator token {} for serviceAccount:{service_account}; it is shown once.",
                token.name
            );
            Ok(())
        }
    }
}

fn tokens(command: TokensCommand, context: &Context) -> anyhow::Result<()> {
    let api = context.root();
    match command {
        TokensCommand::Create {
            service_account,
            expires_in,
            admin,
            description,
            grant_role,
            grant_resource,
        } => {
            let mut body = json!({ "serviceAccount": service_account, "admin": admin });
            if let (Some(role), Some(resource)) = (grant_role, grant_resource) {
                body["grant"] = json!({ "role": role, "resource": resource });
            }
            if let Some(text) = expires_in {
                let lifetime = parse_lifetime(&text)?;
                let expiry = chrono::Utc::now() + lifetime;
                body["expireTime"] =
                    json!(expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            }
            if let Some(description) = description {
                body["description"] = json!(description);
            }
            let token = api.post("tokens", &body)?;
            println!("{}", token["secret"].as_str().unwrap_or_default());
            eprintln!(
                "Created {} for serviceAccount:{}{}; the secret above is shown once.",
                token["name"].as_str().unwrap_or_default(),
                token["serviceAccount"].as_str().unwrap_or_default(),
                token["expireTime"]
                    .as_str()
                    .map(|time| format!(", expiring {time}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        TokensCommand::List { list } => {
            let tokens = list.list(&api, "tokens", "tokens")?;
            output::print_list(
                context.format.as_ref(),
                &tokens,
                &[
                    ("NAME", "name"),
                    ("SERVICE_ACCOUNT", "serviceAccount"),
                    ("ADMIN", "admin"),
                    ("EXPIRES", "expireTime"),
                    ("REVOKED", "revokeTime"),
                ],
            );
            Ok(())
        }
        TokensCommand::Revoke { id } => {
            let id = id.trim_start_matches("tokens/");
            api.delete(&format!("tokens/{id}"))?;
            eprintln!("Revoked tokens/{id}.");
            Ok(())
        }
    }
}

/// `90d`, `12h`, `30m` or `45s`.
fn parse_lifetime(text: &str) -> anyhow::Result<chrono::Duration> {
    let split = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .ok()
        .filter(|number| *number > 0)
        .with_context(|| {
            format!("--expires-in {text:?}: use a positive number and d, h, m or s, such as 90d")
        })?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => bail!("--expires-in {text:?}: the unit must be d, h, m or s, such as 90d"),
    };
    chrono::Duration::try_seconds(number.saturating_mul(seconds))
        .with_context(|| format!("--expires-in {text:?} is too long"))
}
