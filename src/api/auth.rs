//! Who a request comes from: the bearer token of the kubeconfig serve writes (its admin, in
//! group `system:masters`) or one of the static tokens of `--token-auth-file`, in
//! kube-apiserver's CSV format (`token,user,uid,"group1,group2"`).
//!
//! Invariant: tokens are compared in constant time and never appear in an error or a
//! `Debug` output; every authenticated user is also in `system:authenticated`.

use std::path::Path;
use std::sync::Arc;

/// The group RBAC never restricts (kube-apiserver's privileged group).
pub const MASTERS: &str = "system:masters";
/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The user of the kubeconfig serve writes.
pub const ADMIN: &str = "reconcile-engine-admin";

/// An authenticated user, as RBAC and `kubectl auth whoami` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (`jane`).
    pub name: String,
    /// The UID given in the token file (empty for the admin).
    pub uid: String,
    /// The groups, `system:authenticated` included.
    pub groups: Vec<String>,
    /// Extra attributes (only impersonation sets them: `Impersonate-Extra-KEY`).
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl User {
    fn new(name: &str, uid: &str, groups: Vec<String>) -> User {
        let mut groups = groups;
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        User {
            name: name.to_string(),
            uid: uid.to_string(),
            groups,
            extra: Default::default(),
        }
    }

    /// Whether RBAC is bypassed (`system:masters`).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// A token file that cannot be used; the message names the file and the record, never a
/// token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A record is not `token,user,uid[,groups]`.
    #[error("token file {path}: record {record}: {message}")]
    Record {
        /// The file.
        path: String,
        /// The record's number (from 1).
        record: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The file names no token at all.
    #[error("token file {path}: no token in it")]
    Empty {
        /// The file.
        path: String,
    },
}

/// The users of a `--token-auth-file`, read and checked.
pub struct TokenFile {
    users: Vec<(String, User)>,
    /// Records skipped or overridden, as kube-apiserver warns about them (no token in them).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens never appear in output.
        write!(f, "TokenFile({} users)", self.users.len())
    }
}

impl TokenFile {
    /// Reads and checks a token file.
    pub fn read(path: &Path) -> Result<TokenFile, TokenFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| TokenFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let (users, warnings) = parse_token_file(&text, &shown)?;
        if users.is_empty() {
            return Err(TokenFileError::Empty { path: shown });
        }
        Ok(TokenFile { users, warnings })
    }
}

/// The tokens serve accepts.
pub struct Authenticator {
    tokens: Vec<(String, Arc<User>)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens never appear in output.
        write!(f, "Authenticator({} tokens)", self.tokens.len())
    }
}

impl Authenticator {
    /// Accepts `admin_token` only, as the admin.
    pub fn new(admin_token: &str) -> Authenticator {
        Authenticator {
            tokens: vec![(
                admin_token.to_string(),
                Arc::new(User::new(ADMIN, "", vec![MASTERS.to_string()])),
            )],
        }
    }

    /// Adds the users of a token file.
    pub fn add_token_file(&mut self, file: TokenFile) {
        // A later record for the same token wins, as upstream.
        for (token, user) in file.users.into_iter().rev() {
            if !self.tokens.iter().any(|(t, _)| *t == token) {
                self.tokens.push((token, Arc::new(user)));
            }
        }
    }

    /// The user of an `Authorization` header's bearer token, if it is one serve knows.
    pub fn authenticate(&self, authorization: &str) -> Option<Arc<User>> {
        let presented = authorization.strip_prefix("Bearer ")?.trim();
        if presented.is_empty() {
            return None;
        }
        self.user_of_token(presented)
    }

    /// The user a token stands for (TokenReview).
    pub fn user_of_token(&self, token: &str) -> Option<Arc<User>> {
        // Every token is compared, so the time taken does not say which one was close.
        let mut found = None;
        for (known, user) in &self.tokens {
            if same_secret(token.as_bytes(), known.as_bytes()) && found.is_none() {
                found = Some(user.clone());
            }
        }
        found
    }
}

/// Compares in time independent of where the inputs differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads kube-apiserver's token file: CSV records `token,user,uid` with an optional fourth
/// column of comma-separated groups (quoted). Records with an empty token are skipped with
/// a warning, as upstream; a duplicate token is warned about and the later record wins.
/// The users of a token file, each with its token, and the warnings about skipped records.
type TokenUsers = (Vec<(String, User)>, Vec<String>);

fn parse_token_file(text: &[u8], path: &str) -> Result<TokenUsers, TokenFileError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::Fields)
        .from_reader(text);
    let mut users: Vec<(String, User)> = Vec::new();
    let mut warnings = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let number = index + 1;
        let bad = |message: String| TokenFileError::Record {
            path: path.to_string(),
            record: number,
            message,
        };
        let record = record.map_err(|e| {
            // The csv error's text can quote the record: name only the position.
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            bad(format!("malformed CSV at line {line}"))
        })?;
        if record.len() < 3 {
            return Err(bad(format!(
                "must have at least 3 columns (token, user name, user uid), found {}",
                record.len()
            )));
        }
        let token = &record[0];
        if token.is_empty() {
            warnings.push(format!(
                "token file {path}: record {number}: empty token, skipped"
            ));
            continue;
        }
        if record[1].is_empty() {
            return Err(bad("the user name is empty".into()));
        }
        let groups: Vec<String> = record
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if users.iter().any(|(t, _)| t == token) {
            warnings.push(format!(
                "token file {path}: record {number}: duplicate token (the later record wins)"
            ));
        }
        users.push((token.to_string(), User::new(&record[1], &record[2], groups)));
    }
    Ok((users, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_read_as_kube_apiserver_reads_them() {
        let text = b"t1,jane,u-1,\"dev,ops\"\nt2,bob,u-2\n,nobody,u-3\nt1,jane2,u-4\n";
        let (users, warnings) = parse_token_file(text, "tokens.csv").expect("parses");
        assert_eq!(users.len(), 3);
        assert_eq!(users[0].1.name, "jane");
        assert_eq!(
            users[0].1.groups,
            vec!["dev", "ops", AUTHENTICATED],
            "groups split, system:authenticated added"
        );
        assert_eq!(users[1].1.groups, vec![AUTHENTICATED]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("record 3: empty token"));
        assert!(warnings[1].contains("record 4: duplicate token"));
        assert!(warnings.iter().all(|w| !w.contains("t1")));

        let short = parse_token_file(b"secret-token,jane\n", "tokens.csv")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            short,
            "token file tokens.csv: record 1: must have at least 3 columns (token, user name, user uid), found 2"
        );
        let quote = parse_token_file(b"ok,a,1\n\"secret-token,jane,1\n", "f")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            quote.starts_with("token file f: record ") && !quote.contains("secret-token"),
            "{quote}"
        );
    }

    #[test]
    fn the_admin_is_a_master_and_file_users_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tokens.csv");
        std::fs::write(
            &file,
            "t1,jane,u-1,\"dev\"\nt2,jane-old,u-0\nt1,jane-new,u-2\n",
        )
        .expect("write");
        let mut auth = Authenticator::new("admin-token");
        let read = TokenFile::read(&file).expect("token file");
        assert_eq!(read.warnings.len(), 1);
        assert!(!format!("{read:?}").contains("t1"));
        auth.add_token_file(read);
        let admin = auth.authenticate("Bearer admin-token").expect("admin");
        assert!(admin.is_master() && admin.name == ADMIN);
        let jane = auth.authenticate("Bearer t1").expect("jane");
        assert_eq!(jane.name, "jane-new", "the later record wins");
        assert!(!jane.is_master());
        assert!(auth.authenticate("Bearer nope").is_none());
        assert!(auth.authenticate("t1").is_none(), "not a bearer header");
        assert!(!format!("{auth:?}").contains("t1"));
        std::fs::write(&file, "").expect("write");
        assert!(auth.authenticate("Bearer ").is_none());
        assert!(matches!(
            TokenFile::read(&file),
            Err(TokenFileError::Empty { .. })
        ));
        let missing = TokenFile::read(&dir.path().join("absent.csv"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(missing.contains("absent.csv"), "{missing}");
    }
}
