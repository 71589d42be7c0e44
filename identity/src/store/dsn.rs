//! Database DSNs in Kratos' forms (`postgres://…`, `sqlite://path?_fk=true`, `memory`)
//! translated into URLs sqlx understands.

use super::StoreError;

/// A DSN translated into what sqlx understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    pub url: String,
    pub memory: bool,
    /// The SQLite file, when there is one (its folder is created on connect).
    pub file: Option<String>,
}

impl Dsn {
    /// Accepts `postgres://…`, `sqlite://<path>?mode=rwc`, Kratos' `sqlite:///path?_fk=true`
    /// and `memory`.
    pub fn parse(dsn: &str) -> Result<Self, StoreError> {
        let dsn = dsn.trim();
        if dsn == "memory" || dsn == "sqlite::memory:" || dsn == "sqlite://:memory:" {
            return Ok(Self {
                url: "sqlite::memory:".to_owned(),
                memory: true,
                file: None,
            });
        }
        if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
            return Ok(Self {
                url: dsn.to_owned(),
                memory: false,
                file: None,
            });
        }
        let Some(rest) = dsn
            .strip_prefix("sqlite://")
            .or_else(|| dsn.strip_prefix("sqlite:"))
        else {
            return Err(StoreError::Dsn(
                "expected postgres://…, sqlite://<path> or memory".to_owned(),
            ));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err(StoreError::Dsn("sqlite DSN without a path".to_owned()));
        }
        if path == ":memory:" {
            return Self::parse("memory");
        }
        // Keep the parameters sqlx knows; drop Kratos/Go driver ones such as `_fk=true`.
        let mut kept: Vec<&str> = query
            .split('&')
            .filter(|p| p.starts_with("mode=") || p.starts_with("cache="))
            .collect();
        if !kept.iter().any(|p| p.starts_with("mode=")) {
            kept.push("mode=rwc");
        }
        Ok(Self {
            url: format!("sqlite://{path}?{}", kept.join("&")),
            memory: false,
            file: Some(path.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kratos_sqlite_dsns_are_translated() {
        let d = Dsn::parse("sqlite:///var/lib/kratos/db.sqlite?_fk=true").unwrap();
        assert_eq!(d.url, "sqlite:///var/lib/kratos/db.sqlite?mode=rwc");
        let d = Dsn::parse("sqlite://.local/identity.sqlite?mode=rwc").unwrap();
        assert_eq!(d.url, "sqlite://.local/identity.sqlite?mode=rwc");
        assert_eq!(d.file.as_deref(), Some(".local/identity.sqlite"));
        assert!(Dsn::parse("memory").unwrap().memory);
        assert!(Dsn::parse("mysql://x").is_err());
    }
}
