//! Locations as operators write them: SQLite URLs in every spelling
//! (sqlx, SQLAlchemy, pyiceberg), warehouse locations, paths relative to
//! the directory the configuration is resolved against, and URLs with
//! their password redacted for logs. Used by the SQL catalogs here and by
//! the gateway's own store and configuration.

use std::path::{Component, Path, PathBuf};

/// Whether `url` is a SQLite URL (`sqlite:` scheme).
pub fn is_sqlite_url(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("sqlite:"))
}

/// The file path (or `:memory:`) and query string of a SQLite URL.
///
/// Accepted forms: `sqlite:///abs/x.db` (sqlx), `sqlite:////abs/x.db`
/// (SQLAlchemy / pyiceberg), `sqlite://./rel.db`, `sqlite://rel.db`,
/// `sqlite:rel.db`, `sqlite::memory:`; any may end in `?key=value…`.
pub fn split_sqlite_url(url: &str) -> Option<(&str, Option<&str>)> {
    if !is_sqlite_url(url) {
        return None;
    }
    let rest = &url[7..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    // SQLAlchemy's absolute form has four slashes: keep exactly one.
    let rest = if rest.starts_with("//") {
        &rest[1..]
    } else {
        rest
    };
    Some(match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    })
}

/// Rewrites a SQLite URL to sqlx's absolute form `sqlite:///abs/path[?query]`,
/// resolving a relative path against `base`.
pub fn normalize_sqlite_url(url: &str, base: &Path) -> Result<String, String> {
    let (path, query) = split_sqlite_url(url).ok_or_else(|| format!("not a sqlite URL: {url}"))?;
    if path.is_empty() {
        return Err(format!("no database path in '{url}'"));
    }
    if path == ":memory:" {
        return Ok(url.to_string());
    }
    Ok(sqlite_url(&absolute(base, Path::new(path)), query))
}

pub fn sqlite_url(path: &Path, query: Option<&str>) -> String {
    let mut s = format!("sqlite://{}", path.display());
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    s
}

/// A warehouse location: URLs with a scheme other than `file:` are kept;
/// plain paths and `file:` URLs become `file:///abs/path`.
pub fn normalize_warehouse(w: &str, base: &Path) -> String {
    let path = if let Some(rest) = w.strip_prefix("file://") {
        rest
    } else if let Some(rest) = w.strip_prefix("file:") {
        rest
    } else if w.contains("://") {
        return w.to_string();
    } else {
        w
    };
    format!("file://{}", absolute(base, Path::new(path)).display())
}

/// `path` made absolute against `base`, with `.` components removed.
pub fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Words that mark a key (a URL's query parameter, a catalog property) as
/// naming a credential.
const SENSITIVE_KEY_WORDS: [&str; 6] = ["secret", "password", "token", "credential", "key", "auth"];

/// Whether the value of `key` is a credential, by its name.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SENSITIVE_KEY_WORDS.iter().any(|w| key.contains(w))
}

/// A URL with its password and the values of query parameters that name
/// credentials (`?password=`, `?token=`) replaced by `***`, for logs and
/// errors. An unchanged URL keeps its spelling.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "[unparseable url]".to_string();
    };
    let mut changed = false;
    if u.password().is_some() {
        // Cannot fail: the URL has a host (it has a password).
        let _ = u.set_password(Some("***"));
        changed = true;
    }
    if u.query_pairs().any(|(k, _)| is_sensitive_key(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_sensitive_key(&k) {
                    "***".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        url.to_string()
    }
}

/// A configuration value for logs: redacted like a URL when it is one,
/// as it is otherwise.
pub fn redact_value(value: &str) -> String {
    match url::Url::parse(value) {
        Ok(_) => redact_url(value),
        Err(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_in_every_spelling_become_absolute() {
        let b = Path::new("/cwd");
        let n = |u: &str| normalize_sqlite_url(u, b).unwrap();
        assert_eq!(n("sqlite:///abs/x.db"), "sqlite:///abs/x.db");
        assert_eq!(n("sqlite:////abs/x.db"), "sqlite:///abs/x.db");
        assert_eq!(n("sqlite://./rel/x.db"), "sqlite:///cwd/rel/x.db");
        assert_eq!(n("sqlite://rel.db"), "sqlite:///cwd/rel.db");
        assert_eq!(n("sqlite:rel.db?mode=rwc"), "sqlite:///cwd/rel.db?mode=rwc");
        assert_eq!(n("sqlite::memory:"), "sqlite::memory:");
        assert!(normalize_sqlite_url("sqlite://", b).is_err());
        assert_eq!(normalize_warehouse("./wh", b), "file:///cwd/wh");
        assert_eq!(normalize_warehouse("file:///abs/wh", b), "file:///abs/wh");
        assert_eq!(normalize_warehouse("s3://bucket/wh", b), "s3://bucket/wh");
    }

    #[test]
    fn redact_url_hides_passwords_in_the_user_info_and_the_query_string() {
        assert_eq!(
            redact_url("postgres://u:p4ss@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        let r = redact_url("postgres://u@db/cat?sslmode=require&password=hunter2");
        assert!(
            !r.contains("hunter2") && r.contains("sslmode=require"),
            "{r}"
        );
        let r = redact_url("https://rest.example/catalog?Token=abc123&x=1");
        assert!(!r.contains("abc123") && r.contains("x=1"), "{r}");
        // Unchanged URLs keep their spelling.
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact_url("sqlite:rel.db?mode=rwc"),
            "sqlite:rel.db?mode=rwc"
        );
        assert_eq!(redact_url("not a url"), "[unparseable url]");
        assert_eq!(redact_value("us-east-1"), "us-east-1");
        assert!(!redact_value("http://a:b@h").contains(":b@"));
    }
}
