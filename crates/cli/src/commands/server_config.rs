//! `kiln server --config FILE`: a YAML mapping whose keys are `kiln server`'s flags.
//!
//! ```yaml
//! bind: 0.0.0.0:8443
//! tls-cert: /etc/kiln/tls.pem
//! allow-path: [/srv/data, /srv/models]
//! insecure-no-auth: false
//! ```
//!
//! A value from the file counts only where neither the command line nor the environment set the
//! flag: flags win over the environment, which wins over the file, which wins over the defaults.
//! The file's values become the flags they name before `kiln server` is parsed, so they are read
//! exactly as the flags are; each is checked first on its own, so that a bad one is refused
//! naming the file, the line and the key.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_norway::Value;

/// The flags the file of `kiln server --config FILE` adds to the command line `matches` were
/// parsed from (`command`'s), to be appended to it; none for any other command line.
pub fn flags(command: &Command, matches: &ArgMatches) -> anyhow::Result<Vec<String>> {
    let Some(("server", server)) = matches.subcommand() else {
        return Ok(Vec::new());
    };
    let (Some(path), Some(flags)) = (
        server.get_one::<PathBuf>("config"),
        command.find_subcommand("server"),
    ) else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--config {}", path.display()))?;
    let given = |id: &str| {
        matches!(
            server.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    flags_of(path, &text, flags, given)
}

/// The file's entries as `--flag=value` arguments of `command`, leaving out the flags `given`
/// says were set otherwise.
fn flags_of(
    path: &Path,
    text: &str,
    command: &Command,
    given: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<String>> {
    let document: Value =
        serde_norway::from_str(text).map_err(|error| anyhow!("{}: {error}", path.display()))?;
    let entries = match document {
        Value::Mapping(entries) => entries,
        Value::Null => return Ok(Vec::new()),
        _ => bail!(
            "{}: must be a mapping of kiln server's flags to values (bind: 127.0.0.1:8080)",
            path.display()
        ),
    };
    let mut flags = Vec::new();
    for (key, value) in entries {
        let Value::String(key) = key else {
            bail!("{}: the key {key:?} is not a flag's name", path.display());
        };
        let at = format!("{}:{}: {key}", path.display(), line_of(text, &key));
        let arg = settable(command)
            .find(|arg| arg.get_long() == Some(key.as_str()))
            .ok_or_else(|| {
                let mut keys: Vec<&str> = settable(command).filter_map(Arg::get_long).collect();
                keys.sort_unstable();
                anyhow!(
                    "{at}: no such key; the keys are kiln server's flags: {}",
                    keys.join(", ")
                )
            })?;
        if given(arg.get_id().as_str()) {
            continue;
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match value {
                Value::Bool(true) => flags.push(format!("--{key}")),
                Value::Bool(false) => {}
                _ => bail!("{at}: is true or false"),
            }
            continue;
        }
        let values = match value {
            Value::Sequence(items) if matches!(arg.get_action(), ArgAction::Append) => items
                .into_iter()
                .map(|item| scalar(item).ok_or_else(|| anyhow!("{at}: lists plain values")))
                .collect::<anyhow::Result<Vec<_>>>()?,
            Value::Sequence(_) => bail!("{at}: takes one value, not a list"),
            value => vec![scalar(value).ok_or_else(|| anyhow!("{at}: takes a plain value"))?],
        };
        for value in values {
            check(arg, &value).map_err(|reason| anyhow!("{at}: {reason}"))?;
            flags.push(format!("--{key}={value}"));
        }
    }
    Ok(flags)
}

/// The flags a file may set: all of the command's own but `--config`.
fn settable(command: &Command) -> impl Iterator<Item = &Arg> {
    command
        .get_arguments()
        .filter(|arg| !arg.is_global_set() && arg.get_long().is_some_and(|long| long != "config"))
}

/// A YAML scalar as the text a flag would be given.
fn scalar(value: Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Parses `value` as `arg`'s value, alone (its relations to other flags are checked later, with
/// the whole command line): the reason it is refused, in clap's words.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default();
    let alone = Arg::new(arg.get_id().clone())
        .long(long.to_string())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    Command::new("kiln-server")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from([format!("--{long}={value}")])
        .map(drop)
        .map_err(|error| {
            let text = error.to_string();
            text.lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
                .trim_start_matches("error: ")
                .to_string()
        })
}

/// The line (from 1) where the top-level `key` is written; 1 if it cannot be found.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            line.trim_start_matches(['"', '\''])
                .strip_prefix(key)
                .is_some_and(|rest| {
                    rest.trim_start_matches(['"', '\''])
                        .trim_start()
                        .starts_with(':')
                })
        })
        .map_or(1, |index| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Args as _;

    fn server() -> Command {
        crate::commands::server::ServerArgs::augment_args(Command::new("server"))
    }

    fn flags(text: &str, given: &[&str]) -> anyhow::Result<Vec<String>> {
        flags_of(Path::new("kiln.yaml"), text, &server(), |id| {
            given.contains(&id)
        })
    }

    #[test]
    fn keys_become_flags_unless_given_otherwise() {
        let text = "bind: 0.0.0.0:9000\nallow-path: [/a, /b]\ninsecure-no-auth: true\n\
                    allow-unconfined-code: false\nmax-batch-size: 32\n";
        assert_eq!(
            flags(text, &[]).unwrap(),
            [
                "--bind=0.0.0.0:9000",
                "--allow-path=/a",
                "--allow-path=/b",
                "--insecure-no-auth",
                "--max-batch-size=32"
            ]
        );
        assert_eq!(
            flags(text, &["bind", "allow_paths"]).unwrap(),
            ["--insecure-no-auth", "--max-batch-size=32"]
        );
        assert!(flags("", &[]).unwrap().is_empty());
    }

    #[test]
    fn refusals_name_the_line_and_the_key() {
        let unknown = flags("bind: 127.0.0.1:1\nbnd: x\n", &[]).unwrap_err();
        assert!(
            unknown
                .to_string()
                .starts_with("kiln.yaml:2: bnd: no such key")
                && unknown.to_string().contains("tls-cert"),
            "{unknown}"
        );
        let bad = flags("\n\nbind: nowhere\n", &[]).unwrap_err().to_string();
        assert!(
            bad.starts_with("kiln.yaml:3: bind: invalid value 'nowhere'"),
            "{bad}"
        );
        let choice = flags("sandbox: maybe\n", &[]).unwrap_err().to_string();
        assert!(
            choice.contains("sandbox") && choice.contains("auto"),
            "{choice}"
        );
        for (text, reason) in [
            ("insecure-no-auth: yes please\n", "true or false"),
            ("bind: [a, b]\n", "one value"),
            ("allow-path: [{a: 1}]\n", "plain values"),
            ("config: other.yaml\n", "no such key"),
            ("project: p\n", "no such key"),
            ("- bind\n", "mapping"),
        ] {
            let error = flags(text, &[]).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
        }
        let syntax = flags("bind: [\n", &[]).unwrap_err().to_string();
        assert!(syntax.contains("line"), "{syntax}");
    }
}
