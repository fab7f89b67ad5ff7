//! Remote URLs: one bare mirror per URL in the cache folder, fetched under a lock, with a
//! deadline on every network operation and credentials from the environment, the URL, git's
//! credential helpers or `ssh-agent`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{AutotagOption, Cred, CredentialType, FetchOptions, RemoteCallbacks, Repository};
use sha2::Digest;

use super::{GitError, GitOptions, redact_url, scp_like, scrub, strip_userinfo, userinfo};

/// Where the mirror keeps the remote's HEAD (its default branch) after a fetch.
const REMOTE_HEAD: &str = "refs/reconcile/remote-head";

/// A remote URL and the mirror that caches it.
#[derive(Clone)]
pub(super) struct Remote {
    /// The URL without user info: what git is given and what names the mirror.
    url: String,
    display: String,
    /// User name and password written in the URL.
    url_user: Option<(String, Option<String>)>,
    mirror: PathBuf,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.display)
            .field("mirror", &self.mirror)
            .finish()
    }
}

/// An exclusive lock on a mirror, released when dropped (the OS releases it if the process
/// dies, so a crash leaves no stale lock).
struct MirrorLock {
    file: File,
}

impl Drop for MirrorLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Remote {
    pub(super) fn new(url: &str, options: &GitOptions) -> Remote {
        let bare_url = strip_userinfo(url);
        let digest = sha2::Sha256::digest(bare_url.as_bytes());
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        let url_user = userinfo(url).or_else(|| {
            scp_like(url)
                .and_then(|(host, _)| host.split_once('@'))
                .map(|(user, _)| (user.to_string(), None))
        });
        Remote {
            url: bare_url,
            display: redact_url(url),
            url_user,
            mirror: options.cache_dir.join(name),
        }
    }

    pub(super) fn mirror_dir(&self) -> &Path {
        &self.mirror
    }

    pub(super) fn secrets(&self) -> Vec<String> {
        self.url_user
            .iter()
            .filter_map(|(_, p)| p.clone())
            .filter(|p| !p.is_empty())
            .collect()
    }

    fn cache_error(&self, path: &Path, cause: impl std::fmt::Display) -> GitError {
        GitError::Cache {
            path: path.display().to_string(),
            cause: cause.to_string(),
        }
    }

    /// Waits (up to the timeout) for the mirror's lock.
    fn lock(&self, timeout: Duration) -> Result<MirrorLock, GitError> {
        let parent = self.mirror.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| self.cache_error(parent, e))?;
        let path = self.mirror.with_extension("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.cache_error(&path, e))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(MirrorLock { file }),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(GitError::Timeout {
                        repo: self.display.clone(),
                        what: format!("waiting for the cache lock {}", path.display()),
                        seconds: timeout.as_secs(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(self.cache_error(&path, e)),
            }
        }
    }

    fn open_or_init(&self) -> Result<Repository, GitError> {
        match Repository::open_bare(&self.mirror) {
            Ok(repo) => Ok(repo),
            Err(_) => {
                Repository::init_bare(&self.mirror).map_err(|e| self.cache_error(&self.mirror, e))
            }
        }
    }

    /// Fetches branches, tags, the remote's HEAD and `extra` refs into the mirror.
    pub(super) fn fetch(&self, extra: &[&str], options: &GitOptions) -> Result<(), GitError> {
        let _lock = self.lock(options.timeout)?;
        let repo = self.open_or_init()?;
        let millis = i32::try_from(options.timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: libgit2's global options are set before any connection of this process
        // is opened from this thread, and only ever to the same value.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(millis);
            let _ = git2::opts::set_server_timeout_in_milliseconds(millis);
        }
        let mut secrets = options.credentials.secrets();
        secrets.extend(self.secrets());
        let failed = |message: &str| {
            let cause = scrub(message, &secrets);
            GitError::Fetch {
                repo: self.display.clone(),
                cause,
            }
        };
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| failed(e.message()))?;
        let deadline = Instant::now() + options.timeout;
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(self.credentials(options));
        callbacks.transfer_progress(move |_| Instant::now() < deadline);
        callbacks.sideband_progress(move |_| Instant::now() < deadline);
        let mut fetch = FetchOptions::new();
        fetch.remote_callbacks(callbacks);
        fetch.download_tags(AutotagOption::None);
        fetch.prune(git2::FetchPrune::On);
        let mut refspecs = vec![
            "+refs/heads/*:refs/heads/*".to_string(),
            "+refs/tags/*:refs/tags/*".to_string(),
            format!("+HEAD:{REMOTE_HEAD}"),
        ];
        refspecs.extend(extra.iter().map(|r| format!("+{r}:{r}")));
        if let Err(e) = remote.fetch(&refspecs, Some(&mut fetch), None) {
            if Instant::now() >= deadline
                || e.class() == git2::ErrorClass::Net && e.message().contains("timed out")
            {
                return Err(GitError::Timeout {
                    repo: self.display.clone(),
                    what: "fetch".into(),
                    seconds: options.timeout.as_secs(),
                });
            }
            return Err(failed(e.message()));
        }
        // HEAD of the mirror follows the remote's default branch, so `HEAD~2` means there
        // what it means in a clone.
        if let Ok(head) = repo.refname_to_id(REMOTE_HEAD) {
            repo.set_head_detached(head)
                .map_err(|e| self.cache_error(&self.mirror, e.message()))?;
        }
        Ok(())
    }

    /// Pushes the mirror's `refs/heads/BRANCH` to the remote's branch of the same name
    /// (never forced: a branch that moved on the remote is refused, not overwritten).
    pub(super) fn push(&self, branch: &str, options: &GitOptions) -> Result<(), GitError> {
        let _lock = self.lock(options.timeout)?;
        let repo = self.open_or_init()?;
        let mut secrets = options.credentials.secrets();
        secrets.extend(self.secrets());
        let failed = |message: &str| GitError::Push {
            repo: self.display.clone(),
            branch: branch.to_string(),
            cause: scrub(message, &secrets),
        };
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| failed(e.message()))?;
        let deadline = Instant::now() + options.timeout;
        let rejected = std::cell::RefCell::new(None::<String>);
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(self.credentials(options));
        callbacks.push_update_reference(|_, status| {
            if let Some(status) = status {
                *rejected.borrow_mut() = Some(status.to_string());
            }
            Ok(())
        });
        let mut push = git2::PushOptions::new();
        push.remote_callbacks(callbacks);
        let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
        if let Err(e) = remote.push(&[refspec.as_str()], Some(&mut push)) {
            if Instant::now() >= deadline {
                return Err(GitError::Timeout {
                    repo: self.display.clone(),
                    what: "push".into(),
                    seconds: options.timeout.as_secs(),
                });
            }
            return Err(failed(e.message()));
        }
        drop(push);
        if let Some(status) = rejected.into_inner() {
            return Err(failed(&format!("rejected by the remote: {status}")));
        }
        Ok(())
    }

    /// The credentials callback: environment first, then the URL's user info, then git's
    /// credential helpers (HTTP); `ssh-agent`, then the usual key files (SSH). Each way is
    /// offered once, so a refusal ends in an error instead of a loop.
    fn credentials(
        &self,
        options: &GitOptions,
    ) -> impl FnMut(&str, Option<&str>, CredentialType) -> Result<Cred, git2::Error> + use<> {
        let from_env = options.credentials.basic();
        let from_url = self
            .url_user
            .clone()
            .and_then(|(user, password)| password.map(|p| (user, p)));
        let url_user = self.url_user.as_ref().map(|(u, _)| u.clone());
        let mut tried_env = false;
        let mut tried_url = false;
        let mut tried_helper = false;
        let mut tried_agent = false;
        let mut key_files: Vec<PathBuf> = options.credentials.ssh_keys.clone();
        key_files.reverse();
        let agent = options.credentials.ssh_agent;
        move |url, username, allowed| {
            let user = username
                .map(str::to_string)
                .or_else(|| url_user.clone())
                .unwrap_or_else(|| "git".to_string());
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                if !tried_env {
                    tried_env = true;
                    if let Some((u, p)) = &from_env {
                        return Cred::userpass_plaintext(u, p);
                    }
                }
                if !tried_url {
                    tried_url = true;
                    if let Some((u, p)) = &from_url {
                        return Cred::userpass_plaintext(u, p);
                    }
                }
                if !tried_helper {
                    tried_helper = true;
                    if let Ok(config) = git2::Config::open_default()
                        && let Ok(cred) = Cred::credential_helper(&config, url, username)
                    {
                        return Ok(cred);
                    }
                }
                return Err(git2::Error::from_str(
                    "authentication failed (set RECONCILE_GIT_USERNAME and RECONCILE_GIT_PASSWORD or RECONCILE_GIT_TOKEN, or configure a git credential helper)",
                ));
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                if !tried_agent {
                    tried_agent = true;
                    if agent {
                        return Cred::ssh_key_from_agent(&user);
                    }
                }
                if let Some(key) = key_files.pop() {
                    return Cred::ssh_key(&user, None, &key, None);
                }
                return Err(git2::Error::from_str(
                    "ssh authentication failed (no key accepted from ssh-agent or ~/.ssh)",
                ));
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(&user);
            }
            Err(git2::Error::from_str("no supported authentication method"))
        }
    }
}
