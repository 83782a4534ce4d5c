//! Resource-name rules.

/// Checks a model, version or job name: starts with a letter, then letters, digits and
/// underscores, at most 128 characters (the API's rule). Returns the problem, naming `field`.
pub fn check_name(field: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = name.len() <= 128
        && chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "{field} {name:?} is invalid: it must start with a letter and contain only letters, \
             numbers and underscores, at most 128 characters"
        )),
    }
}

/// The last segment of a resource name: `census` of `projects/p/models/census`.
pub fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The short name in a create request's `name`: the name itself, or the full resource name under
/// `parent` (`projects/p/models` for a model). A name with separators that is not under `parent`
/// is refused rather than cut to its last segment, which would create it somewhere it does not say.
pub fn given_name<'a>(field: &str, name: &'a str, parent: &str) -> Result<&'a str, String> {
    if !name.contains('/') {
        return Ok(name);
    }
    match name
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(short) if !short.is_empty() && !short.contains('/') => Ok(short),
        _ => Err(format!(
            "Field: {field} Error: {name:?} is not a name under {parent}: give the short name \
             or {parent}/NAME"
        )),
    }
}

/// Most labels a resource may carry (ML Engine's limit).
pub const MAX_LABELS: usize = 64;
/// Longest label key or value, in characters.
pub const MAX_LABEL_LENGTH: usize = 63;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 8192;

/// Checks labels as ML Engine does: at most [`MAX_LABELS`]; keys of 1-63 lowercase letters,
/// digits, underscores and dashes starting with a letter; values of at most 63 such characters.
/// Returns every problem, naming `field`.
pub fn check_labels(
    field: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let allowed = |c: char| c.is_lowercase() || c.is_numeric() || c == '_' || c == '-';
    let mut problems = Vec::new();
    if labels.len() > MAX_LABELS {
        problems.push(format!(
            "Field: {field} Error: {} labels given; at most {MAX_LABELS} are allowed",
            labels.len()
        ));
    }
    for (key, value) in labels {
        let key_ok = key.chars().count() <= MAX_LABEL_LENGTH
            && key.starts_with(char::is_lowercase)
            && key.chars().all(allowed);
        if !key_ok {
            problems.push(format!(
                "Field: {field} Error: label key {:?} must be 1-{MAX_LABEL_LENGTH} lowercase letters, digits, \
                 underscores or dashes, starting with a letter",
                truncated(key)
            ));
        }
        if value.chars().count() > MAX_LABEL_LENGTH || !value.chars().all(allowed) {
            problems.push(format!(
                "Field: {field}.{} Error: a label value must be at most {MAX_LABEL_LENGTH} lowercase letters, \
                 digits, underscores or dashes",
                truncated(key)
            ));
        }
    }
    problems
}

/// Checks a description's size: at most [`MAX_DESCRIPTION_BYTES`].
pub fn check_description(field: &str, description: &str) -> Result<(), String> {
    match description.len() <= MAX_DESCRIPTION_BYTES {
        true => Ok(()),
        false => Err(format!(
            "Field: {field} Error: the description has {} bytes; at most {MAX_DESCRIPTION_BYTES} are allowed",
            description.len()
        )),
    }
}

/// The first characters of a long text, for a message.
fn truncated(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_string(),
    }
}

/// Checks a project id: 1-63 lowercase letters, digits and hyphens, starting with a letter or digit.
pub fn check_project(project: &str) -> Result<(), String> {
    let valid = !project.is_empty()
        && project.len() <= 63
        && project
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !project.starts_with('-');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "project {project:?} is invalid: use 1-63 lowercase letters, digits and hyphens"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("model", "census_v2").is_ok());
        assert!(check_name("model", "2census").is_err());
        assert!(check_name("model", "cen-sus").is_err());
        assert!(check_name("model", "").is_err());
        assert!(check_project("my-project-1").is_ok());
        assert!(check_project("My_Project").is_err());
    }

    #[test]
    fn given_names_are_short_or_under_their_parent() {
        assert_eq!(
            given_name("model.name", "census", "projects/p/models"),
            Ok("census")
        );
        assert_eq!(
            given_name(
                "model.name",
                "projects/p/models/census",
                "projects/p/models"
            ),
            Ok("census")
        );
        for name in [
            "projects/pb/models/x",
            "projects/p/models/a/b",
            "x/y",
            "projects/p/models/",
        ] {
            let error = given_name("model.name", name, "projects/p/models").unwrap_err();
            assert!(error.contains("model.name"), "{name}: {error}");
        }
    }

    #[test]
    fn labels_and_descriptions_have_limits() {
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert!(check_labels("labels", &labels(&[("env", "prod"), ("team-a", "")])).is_empty());
        let many: std::collections::BTreeMap<_, _> =
            (0..65).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_labels("labels", &many)[0].contains("at most 64"));
        for (key, value) in [
            ("Env", "x"),
            ("", "x"),
            ("1a", "x"),
            ("env", "Prod"),
            ("env", &"x".repeat(64)),
        ] {
            assert_eq!(
                check_labels("model.labels", &labels(&[(key, value)])).len(),
                1,
                "{key}={value}"
            );
        }
        assert!(check_description("d", &"x".repeat(8192)).is_ok());
        assert!(
            check_description("d", &"x".repeat(8193))
                .unwrap_err()
                .contains("8192")
        );
    }
}
