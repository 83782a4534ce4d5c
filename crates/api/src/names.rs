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
}
