//! Database URLs whose password never leaves the type: `Display` and `Debug` redact it.

use serde::Deserialize;

/// A database URL whose password never leaves this type: `Display` and `Debug` redact it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DbUrl(String);

impl DbUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DbUrl(url.into())
    }

    /// The URL with its password, for the drivers only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.split("://").next().unwrap_or("")
    }

    /// The URL with `user:***@` in place of `user:password@`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return "<unparseable url>".to_string();
        };
        // The userinfo ends at the last '@' before the first '/' (a password may hold '@').
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                let password = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{password}@{}{tail}", &authority[at + 1..])
            }
            None => self.0.clone(),
        }
    }
}

impl std::fmt::Display for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_password_everywhere() {
        let url = DbUrl::new("mysql://app:s3cr@t!@db.example:3306/prod");
        for shown in [url.to_string(), format!("{url:?}"), url.redacted()] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(shown.contains("app:***@db.example:3306/prod"), "{shown}");
        }
    }

    #[test]
    fn redaction_keeps_urls_without_password() {
        assert_eq!(
            DbUrl::new("postgres://app@host/db").redacted(),
            "postgres://app@host/db"
        );
        assert_eq!(
            DbUrl::new("postgres://host/db").redacted(),
            "postgres://host/db"
        );
    }
}
