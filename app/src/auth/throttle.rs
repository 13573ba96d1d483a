//! Login throttling: how many password checks run at once, and how often one client or one
//! operator name may fail before it has to wait.
//!
//! A password check is argon2, ~19 MiB of memory and tens of milliseconds of a core by design.
//! Unbounded, a login flood (300 at once) held gigabytes and the server answered 500s. So at
//! most [`LoginThrottle::concurrent`] checks run at once, a bounded number wait for their turn,
//! and anything beyond is refused at once (429). Repeated failures slow the guesser down: after
//! [`FREE_FAILURES`] a client address (IPv6: its /64) or a known operator name must wait, twice
//! as long after each further failure, before it may try again (also 429, with the wait).
//! A name waits at most [`MAX_NAME_WAIT`], so a flood against `admin` cannot lock `admin` out
//! for long; an address waits up to [`MAX_CLIENT_WAIT`]. Unknown names are not tracked (there is
//! nothing to protect, and a flood of random names must not grow memory). The bookkeeping is
//! bounded ([`MAX_TRACKED`] entries) and pure: callers hand in the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Metric: logins with a wrong name or password.
pub const LOGINS_FAILED: &str = "thermoalert_login_failures_total";
/// Metric: logins refused before their password was checked, by `reason`.
pub const LOGINS_REFUSED: &str = "thermoalert_logins_refused_total";

/// Failures a client or name may have before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// Failures older than this are forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The longest wait imposed on a client address.
pub const MAX_CLIENT_WAIT: Duration = Duration::from_secs(5 * 60);
/// The longest wait imposed on an operator name.
pub const MAX_NAME_WAIT: Duration = Duration::from_secs(60);
/// Clients and names tracked at most; beyond, the least recently failed are forgotten.
pub const MAX_TRACKED: usize = 10_000;

/// Why a login is refused before its password is even checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many logins at once; try again in a few seconds")]
    Busy,
    #[error("too many failed logins; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyFailures { retry_after: Duration },
}

impl Refusal {
    /// A short stable code, for metrics and the login page.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Busy => "busy",
            Refusal::TooManyFailures { .. } => "throttled",
        }
    }

    /// Seconds for the `Retry-After` header.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refusal::Busy => 1,
            Refusal::TooManyFailures { retry_after } => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
        }
    }
}

/// Shared by every login; cheap to clone, clones share the limits.
#[derive(Clone)]
pub struct LoginThrottle {
    checks: Arc<Semaphore>,
    /// The checking threads' queue (see [`LoginThrottle::run`]).
    jobs: std::sync::mpsc::Sender<Job>,
    /// Checks running or waiting.
    admitted: Arc<AtomicUsize>,
    concurrent: usize,
    queue: usize,
    failures: Arc<Mutex<Failures>>,
}

/// A password check for one of the checking threads.
type Job = Box<dyn FnOnce() + Send>;

/// The right to check one password; the slot is given back when dropped.
pub struct Permit {
    _check: OwnedSemaphorePermit,
    admitted: Arc<AtomicUsize>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Who is trying: the client address and, when it is a known operator, the name.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub client: IpAddr,
    pub known_name: Option<&'a str>,
}

impl LoginThrottle {
    /// At most `concurrent` checks at once and `queue` more waiting.
    pub fn new(concurrent: usize, queue: usize) -> LoginThrottle {
        let concurrent = concurrent.max(1);
        let (jobs, queued) = std::sync::mpsc::channel::<Job>();
        let queued = Arc::new(Mutex::new(queued));
        for _ in 0..concurrent {
            let queued = Arc::clone(&queued);
            // Ends when the last clone of the throttle (the sender) is gone.
            let checker = move || loop {
                let job = queued.lock().expect("password check queue lock").recv();
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            };
            if let Err(e) = std::thread::Builder::new().name("password-check".into()).spawn(checker)
            {
                tracing::error!("cannot start a password-check thread: {e}");
            }
        }
        LoginThrottle {
            checks: Arc::new(Semaphore::new(concurrent)),
            jobs,
            admitted: Arc::default(),
            concurrent,
            queue,
            failures: Arc::default(),
        }
    }

    /// Checks that may run at once.
    pub fn concurrent(&self) -> usize {
        self.concurrent
    }

    /// Waits for the turn of `attempt` to check a password, or says why it may not (and
    /// counts the refusal).
    pub async fn admit(&self, attempt: Attempt<'_>, now: Instant) -> Result<Permit, Refusal> {
        let refused = |refusal: Refusal| {
            metrics::counter!(LOGINS_REFUSED, "reason" => refusal.code()).increment(1);
            refusal
        };
        self.failures.lock().expect("login failures lock").check(attempt, now).map_err(refused)?;
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.concurrent + self.queue {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(refused(Refusal::Busy));
        }
        let admitted = Arc::clone(&self.admitted);
        match Arc::clone(&self.checks).acquire_owned().await {
            Ok(check) => Ok(Permit { _check: check, admitted }),
            // The semaphore is never closed.
            Err(_) => {
                admitted.fetch_sub(1, Ordering::AcqRel);
                Err(Refusal::Busy)
            }
        }
    }

    /// Runs `check` (an argon2 verification, with a [`Permit`]) on one of the throttle's own
    /// `concurrent` threads; `None` if none runs. argon2's ~19 MiB stay with the allocator of
    /// the thread that ran it, for reuse: on tokio's blocking pool (up to hundreds of threads,
    /// each with an arena) a flood of 40 logins left 420 MB held; on threads of its own, at
    /// most one such buffer per thread.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(check());
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }

    /// Records (and counts) a wrong password or unknown name for `attempt`.
    pub fn failed(&self, attempt: Attempt<'_>, now: Instant) {
        metrics::counter!(LOGINS_FAILED).increment(1);
        self.failures.lock().expect("login failures lock").failed(attempt, now);
    }

    /// A successful login clears the client's and the name's failures.
    pub fn succeeded(&self, attempt: Attempt<'_>) {
        self.failures.lock().expect("login failures lock").succeeded(attempt);
    }
}

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An IPv4 address, or the /64 prefix of an IPv6 one (one host usually holds a /64).
    Client(IpAddr),
    Name(Box<str>),
}

impl Key {
    fn client(ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(_) => Key::Client(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Key::Client(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Key::Client(IpAddr::V6(prefix.into()))
                }
            },
        }
    }

    fn max_wait(&self) -> Duration {
        match self {
            Key::Client(_) => MAX_CLIENT_WAIT,
            Key::Name(_) => MAX_NAME_WAIT,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl Record {
    /// When the next attempt may come: right away within the free failures, then one second
    /// doubled for each failure beyond, capped at `max`.
    fn next_allowed(&self, max: Duration) -> Instant {
        if self.failures < FREE_FAILURES {
            return self.last;
        }
        let doublings = (self.failures - FREE_FAILURES).min(20);
        self.last + Duration::from_secs(1 << doublings).min(max)
    }
}

/// The failure records, bounded.
#[derive(Debug, Default)]
struct Failures {
    records: HashMap<Key, Record>,
}

impl Failures {
    fn keys(attempt: Attempt<'_>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::client(attempt.client))
            .chain(attempt.known_name.map(|n| Key::Name(n.into())))
    }

    fn check(&self, attempt: Attempt<'_>, now: Instant) -> Result<(), Refusal> {
        let wait = Self::keys(attempt)
            .filter_map(|key| {
                let record = self.records.get(&key)?;
                if now.duration_since(record.last) >= FORGET_AFTER {
                    return None;
                }
                Some(record.next_allowed(key.max_wait()).saturating_duration_since(now))
            })
            .max()
            .unwrap_or_default();
        if wait.is_zero() { Ok(()) } else { Err(Refusal::TooManyFailures { retry_after: wait }) }
    }

    fn failed(&mut self, attempt: Attempt<'_>, now: Instant) {
        for key in Self::keys(attempt) {
            if !self.records.contains_key(&key) {
                self.make_room(now);
            }
            let record = self.records.entry(key).or_insert(Record { failures: 0, last: now });
            if now.duration_since(record.last) >= FORGET_AFTER {
                record.failures = 0;
            }
            record.failures = record.failures.saturating_add(1);
            record.last = now;
        }
    }

    fn succeeded(&mut self, attempt: Attempt<'_>) {
        for key in Self::keys(attempt) {
            self.records.remove(&key);
        }
    }

    /// Forgets old records, then if still full the least recently failed one.
    fn make_room(&mut self, now: Instant) {
        if self.records.len() < MAX_TRACKED {
            return;
        }
        self.records.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
        if self.records.len() >= MAX_TRACKED {
            let oldest = self.records.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| k.clone());
            if let Some(key) = oldest {
                self.records.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));

    fn attempt(client: IpAddr, name: Option<&str>) -> Attempt<'_> {
        Attempt { client, known_name: name }
    }

    #[test]
    fn a_client_waits_after_its_free_failures_twice_as_long_each_time() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let a = attempt(CLIENT, None);
        for i in 0..FREE_FAILURES {
            assert_eq!(f.check(a, t0), Ok(()), "failure {i} is free");
            f.failed(a, t0);
        }
        // Five failures: the next try waits 1 s, then 2 s after the sixth, 4 s after the seventh.
        assert_eq!(f.check(a, t0), Err(Refusal::TooManyFailures { retry_after: secs(1) }));
        assert_eq!(f.check(a, t0 + secs(1)), Ok(()));
        f.failed(a, t0 + secs(1));
        assert_eq!(
            f.check(a, t0 + secs(2)),
            Err(Refusal::TooManyFailures { retry_after: secs(1) }),
            "the sixth failure at 1 s: next at 3 s"
        );
        f.failed(a, t0 + secs(3));
        assert_eq!(
            f.check(a, t0 + secs(3)),
            Err(Refusal::TooManyFailures { retry_after: secs(4) })
        );
        // Another client is not concerned.
        assert_eq!(f.check(attempt(OTHER, None), t0 + secs(3)), Ok(()));
        // Long after, everything is forgotten.
        assert_eq!(f.check(a, t0 + FORGET_AFTER + secs(3)), Ok(()));
    }

    #[test]
    fn waits_are_capped_and_shorter_for_a_name_than_for_an_address() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        for _ in 0..40 {
            f.failed(attempt(CLIENT, Some("admin")), t0);
        }
        let wait = |f: &Failures, a| match f.check(a, t0) {
            Err(Refusal::TooManyFailures { retry_after }) => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(&f, attempt(CLIENT, None)), MAX_CLIENT_WAIT);
        assert_eq!(
            wait(&f, attempt(OTHER, Some("admin"))),
            MAX_NAME_WAIT,
            "the name from elsewhere"
        );
        assert_eq!(f.check(attempt(OTHER, Some("bob")), t0), Ok(()));
    }

    #[test]
    fn a_success_clears_the_client_and_the_name() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        let a = attempt(CLIENT, Some("admin"));
        for _ in 0..FREE_FAILURES + 3 {
            f.failed(a, t0);
        }
        f.succeeded(a);
        assert_eq!(f.check(a, t0), Ok(()));
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix_and_a_mapped_ipv4_its_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Key::client(a), Key::client(b));
        assert_ne!(Key::client(a), Key::client(c));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(Key::client(mapped), Key::client(CLIENT));
        assert_ne!(Key::client(IpAddr::V6(Ipv6Addr::LOCALHOST)), Key::client(CLIENT));
    }

    #[test]
    fn the_records_stay_bounded_under_a_flood_of_addresses() {
        let mut f = Failures::default();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            f.failed(attempt(client, None), t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(f.records.len(), MAX_TRACKED);
        // The most recent are the ones kept.
        let last = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + MAX_TRACKED as u32 + 499));
        assert!(f.records.contains_key(&Key::client(last)));
        assert!(!f.records.contains_key(&Key::client(IpAddr::V4(Ipv4Addr::from(0x0a00_0000)))));
    }

    #[tokio::test]
    async fn checks_run_on_the_throttle_s_own_threads() {
        let throttle = LoginThrottle::new(2, 0);
        let name = throttle.run(|| std::thread::current().name().map(str::to_owned)).await;
        assert_eq!(name, Some(Some("password-check".to_owned())));
        let sum = throttle.run(|| 40 + 2).await;
        assert_eq!(sum, Some(42));
    }

    #[tokio::test]
    async fn checks_beyond_the_running_and_the_queued_are_refused_at_once() {
        let throttle = LoginThrottle::new(2, 3);
        let now = Instant::now();
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(throttle.admit(attempt(CLIENT, None), now).await.expect("a free slot"));
        }
        // Three may wait for a slot; they are queued (their futures pend).
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let t = throttle.clone();
                tokio::spawn(async move { t.admit(attempt(CLIENT, None), now).await.is_ok() })
            })
            .collect();
        tokio::task::yield_now().await;
        while throttle.admitted.load(Ordering::Acquire) < 5 {
            tokio::task::yield_now().await;
        }
        assert_eq!(throttle.admit(attempt(OTHER, None), now).await.err(), Some(Refusal::Busy));
        drop(held);
        for w in waiting {
            assert!(w.await.unwrap(), "a queued check gets its turn");
        }
        assert_eq!(throttle.admitted.load(Ordering::Acquire), 0, "every slot given back");
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
}
