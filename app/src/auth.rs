//! Operators: who may change what ThermoAlert does (acknowledge alerts, edit thresholds).
//!
//! Accounts live in a file of `name:<argon2 PHC hash>` lines (`THERMO_OPERATORS_FILE`; the
//! `thermoalert operator add` command writes them). A login checks the password against the
//! hash and opens a session: a random token in an HttpOnly, SameSite=Strict cookie, known
//! only to this process (a restart logs everyone out). Cross-site requests are refused before
//! they reach a handler (see `edge::same_origin`), so the cookie alone is enough
//! for a write.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub mod throttle;

use throttle::LoginThrottle;

/// The session cookie's name.
pub const COOKIE: &str = "thermoalert_session";

/// How long a session lasts without a new login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Sessions kept at most; the oldest go first (a flood of logins cannot grow memory).
const MAX_SESSIONS: usize = 10_000;
/// Password checks waiting for a free core at most; more at once are refused (429).
const LOGIN_QUEUE: usize = 32;

/// Why the operators file cannot be used, or a hash cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("operators file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("operators file {path}, line {line}: {reason}")]
    Line { path: String, line: usize, reason: String },
    #[error("operator name `{0}`: use 1 to 64 letters, digits, `-`, `_` or `.`")]
    Name(String),
    #[error("password: {0}")]
    Password(String),
}

/// The address of the client that sent a request, put in its extensions by the server's
/// connection loop (login throttling counts failures per address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// The accounts and their open sessions. Cheap to clone; clones share the sessions.
#[derive(Clone)]
pub struct Operators {
    accounts: Arc<BTreeMap<String, String>>,
    sessions: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Adds `Secure` to the cookie (set when the server is reached over HTTPS).
    pub secure_cookie: bool,
    /// Bounds the password checks: at most one per core at once, and repeated failures wait.
    pub throttle: LoginThrottle,
    /// Counts the sessions ended by a logout: what depends on a session (a live stream)
    /// looks again when it changes.
    ended: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for Operators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&String> = self.accounts.keys().collect();
        f.debug_struct("Operators").field("accounts", &names).finish()
    }
}

impl Operators {
    /// Reads the operators file: one `name:hash` per line; blank lines and `#` comments are
    /// skipped. Every hash must parse, so a typo fails the start, not a login.
    pub fn load(path: &Path, secure_cookie: bool) -> Result<Operators, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| AuthError::Io { path: shown.clone(), source })?;
        let mut accounts = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| AuthError::Line { path: shown.clone(), line: i + 1, reason };
            let (name, hash) =
                line.split_once(':').ok_or_else(|| bad("expected `name:hash`".into()))?;
            validate_name(name).map_err(|e| bad(e.to_string()))?;
            PasswordHash::new(hash).map_err(|e| bad(format!("not an argon2 hash: {e}")))?;
            if accounts.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(bad(format!("operator `{name}` is listed twice")));
            }
        }
        if accounts.is_empty() {
            return Err(AuthError::Line {
                path: shown,
                line: 0,
                reason: "no operator listed (add one: thermoalert operator add NAME)".into(),
            });
        }
        // One argon2 check per core: more at once only add memory (~19 MiB each), not speed.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Operators {
            accounts: Arc::new(accounts),
            sessions: Arc::default(),
            secure_cookie,
            throttle: LoginThrottle::new(cores, LOGIN_QUEUE),
            ended: Arc::new(tokio::sync::watch::channel(0).0),
        })
    }

    /// Whether `name` is an operator's.
    pub fn is_known(&self, name: &str) -> bool {
        self.accounts.contains_key(name)
    }

    /// The operators' names.
    pub fn names(&self) -> Vec<String> {
        self.accounts.keys().cloned().collect()
    }

    /// Checks `password` for `name` (slow on purpose: argon2) and opens a session: its token.
    /// An unknown name costs the same as a wrong password, so names cannot be probed.
    pub fn login(&self, name: &str, password: &str, now: Instant) -> Option<String> {
        let known = self.accounts.get(name);
        let hash = match known {
            Some(hash) => hash.as_str(),
            None => dummy_hash()?,
        };
        let parsed = PasswordHash::new(hash).ok()?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        if !(ok && known.is_some()) {
            return None;
        }
        let token = random_hex(32)?;
        let mut sessions = self.sessions.lock().expect("sessions lock");
        sessions.retain(|_, (_, expires)| *expires > now);
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, (_, e))| *e).map(|(t, _)| t.clone());
            if let Some(t) = oldest {
                sessions.remove(&t);
            }
        }
        sessions.insert(token.clone(), (name.to_owned(), now + SESSION_TTL));
        Some(token)
    }

    /// The operator whose session the request's `Cookie` header carries, if it is open.
    pub fn operator(&self, cookie_header: Option<&str>, now: Instant) -> Option<String> {
        let token = session_token(cookie_header?)?;
        let sessions = self.sessions.lock().expect("sessions lock");
        let (name, expires) = sessions.get(token)?;
        (*expires > now).then(|| name.clone())
    }

    /// Ends the session the `Cookie` header carries.
    pub fn logout(&self, cookie_header: Option<&str>) {
        if let Some(token) = cookie_header.and_then(session_token) {
            self.sessions.lock().expect("sessions lock").remove(token);
            self.ended.send_modify(|n| *n += 1);
        }
    }

    /// Changes each time a session ends by a logout.
    pub fn session_ends(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ended.subscribe()
    }

    /// The `Set-Cookie` value that opens a session.
    pub fn cookie(&self, token: &str) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        let max_age = SESSION_TTL.as_secs();
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// The `Set-Cookie` value that ends one.
    pub fn expired_cookie(&self) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// A hash of a password no one knows, verified against when the name is unknown, so that
/// both answers take as long.
fn dummy_hash() -> Option<&'static str> {
    static HASH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_hex(16)?).ok()).as_deref()
}

/// The token of our cookie in a `Cookie` header.
fn session_token(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `n` random bytes from the OS, as hex.
fn random_hex(n: usize) -> Option<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub fn validate_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok { Ok(()) } else { Err(AuthError::Name(name.to_owned())) }
}

/// The argon2id hash (PHC string) of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < 8 {
        return Err(AuthError::Password("use at least 8 characters".into()));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Password(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Password(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Password(e.to_string()))
}

/// Adds (or replaces) `name` in the operators file at `path`, creating it (mode 0600).
pub fn add_operator(path: &Path, name: &str, password: &str) -> Result<(), AuthError> {
    validate_name(name)?;
    let hash = hash_password(password)?;
    let shown = path.display().to_string();
    let io = |source| AuthError::Io { path: shown.clone(), source };
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let mut text: String = old
        .lines()
        .filter(|l| l.trim().split_once(':').is_none_or(|(n, _)| n != name))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{name}:{hash}\n"));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    write_private(&tmp, text.as_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Creates the operators file with one operator, `admin`, and a random password, unless the
/// file exists: the password, to show once, or `None`.
pub fn bootstrap(path: &Path) -> Result<Option<String>, AuthError> {
    if path.exists() {
        return Ok(None);
    }
    let password = random_hex(12).ok_or_else(|| AuthError::Password("no randomness".into()))?;
    add_operator(path, "admin", &password)?;
    Ok(Some(password))
}

/// Writes `bytes` to a new file at `path` that only its owner may read (mode 0600), synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operators(dir: &Path) -> Operators {
        let path = dir.join("operators");
        add_operator(&path, "alice", "correct horse").unwrap();
        add_operator(&path, "bob", "battery staple").unwrap();
        Operators::load(&path, false).unwrap()
    }

    #[test]
    fn a_login_opens_a_session_that_names_its_operator_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let ops = operators(dir.path());
        assert_eq!(ops.names(), ["alice", "bob"]);
        let now = Instant::now();
        assert_eq!(ops.login("alice", "wrong", now), None);
        assert_eq!(ops.login("carol", "correct horse", now), None, "unknown name");
        let token = ops.login("alice", "correct horse", now).unwrap();
        let cookie = ops.cookie(&token);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let header = format!("theme=dark; {COOKIE}={token}");
        assert_eq!(ops.operator(Some(&header), now).as_deref(), Some("alice"));
        assert_eq!(ops.operator(Some(&header), now + SESSION_TTL), None, "expired");
        assert_eq!(ops.operator(Some(&format!("{COOKIE}=ab")), now), None);
        assert_eq!(ops.operator(None, now), None);
        ops.logout(Some(&header));
        assert_eq!(ops.operator(Some(&header), now), None, "logged out");
    }

    #[test]
    fn the_file_is_checked_at_load_and_rewritten_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops");
        std::fs::write(&path, "# comment\n\nalice:not-a-hash\n").unwrap();
        let e = Operators::load(&path, false).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("argon2"), "{e}");
        std::fs::write(&path, "").unwrap();
        assert!(Operators::load(&path, false).unwrap_err().to_string().contains("no operator"));
        assert!(add_operator(&path, "../etc", "long enough").is_err());
        assert!(add_operator(&path, "alice", "short").is_err());
        add_operator(&path, "alice", "first password").unwrap();
        add_operator(&path, "alice", "second password").unwrap();
        let ops = Operators::load(&path, true).unwrap();
        assert_eq!(ops.names(), ["alice"]);
        assert!(ops.login("alice", "second password", Instant::now()).is_some());
        assert!(ops.cookie("x").ends_with("; Secure"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bootstrap_creates_an_admin_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operators");
        let password = bootstrap(&path).unwrap().expect("a new password");
        assert_eq!(bootstrap(&path).unwrap(), None, "the second start keeps the file");
        let ops = Operators::load(&path, false).unwrap();
        assert!(ops.login("admin", &password, Instant::now()).is_some());
    }
}
