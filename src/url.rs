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

/// `text` with the password of every URL in it replaced by `***`: for messages that quote
/// what the operator typed (a command line clap refused, a config line TOML refused).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends where a path, a quote or white space begins; its userinfo at
        // the last '@' in it (a password may hold '@').
        let end = after
            .find(|c: char| c == '/' || c == '"' || c == '\'' || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_a_message_quotes_a_url() {
        let text = "error: unexpected argument 'mysql://u:S3cretPW@db:3306/x' found\n\
                    2 | source = \"mysql://app:p@ss@host/db\ntarget = postgres://me@h/db and postgres://a:b@h";
        let shown = redact_urls(text);
        assert!(
            !shown.contains("S3cretPW") && !shown.contains("p@ss"),
            "{shown}"
        );
        assert!(shown.contains("'mysql://u:***@db:3306/x'"), "{shown}");
        assert!(shown.contains("\"mysql://app:***@host/db"), "{shown}");
        assert!(shown.contains("postgres://me@h/db"), "{shown}");
        assert!(shown.ends_with("postgres://a:***@h"), "{shown}");
        assert_eq!(redact_urls("no url here"), "no url here");
    }

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
