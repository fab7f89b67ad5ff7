//! The engine's own thread: it owns the [`Engine`], runs the jobs async handlers send it one
//! at a time (each a short SQLite transaction), lets virtual time follow the wall clock, and
//! after every job feeds the watch [`Journal`] with what changed and publishes what is
//! [`Served`] (before the job's answer goes out, so a client that created a CRD finds it in
//! discovery at once; writes by other processes show within a tick).
//!
//! Why a thread and not a lock: `Engine` holds a SQLite connection and the whole state; one
//! owner serializes writes exactly as the API server's storage does, and handlers never block
//! the async runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::journal::Journal;
use super::status::ApiError;
use crate::engine::Engine;
use crate::engine::clock::{Millis, SECOND};
use crate::engine::served::Served;

/// How virtual time moves while serving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// Virtual time follows the wall clock, `speed` times as fast.
    Follow {
        /// 1.0: real time.
        speed: f64,
    },
    /// Virtual time moves only when something asks the engine to advance (tests).
    Frozen,
}

type Job = Box<dyn FnOnce(&mut Engine) + Send>;

/// How often the clock ticks while idle.
const TICK: Duration = Duration::from_millis(100);

/// A handle to the engine thread; cheap to clone.
#[derive(Clone)]
pub struct Worker {
    jobs: mpsc::Sender<Job>,
    journal: Arc<Journal>,
    now: Arc<AtomicU64>,
    served: Published,
}

/// What the engine serves, as of its last job or tick.
type Published = Arc<RwLock<Arc<Served>>>;

/// Publishes what `engine` serves now (kept as it was when the store cannot be read).
fn publish(engine: &mut Engine, slot: &Published) {
    if let Ok(served) = engine.served()
        && let Ok(mut current) = slot.write()
        && !Arc::ptr_eq(&*current, &served)
    {
        *current = served;
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Worker")
    }
}

impl Worker {
    /// Starts the thread with `engine`; it stops when the last handle is dropped.
    pub fn start(mut engine: Engine, clock: Clock) -> Worker {
        let journal = Arc::new(Journal::new());
        // Priming also starts the store's change tracking the journal then reads.
        if let Ok((state, _)) = engine.fresh_changes() {
            journal.prime(state);
        }
        let (jobs, inbox) = mpsc::channel::<Job>();
        let feed = journal.clone();
        let now = Arc::new(AtomicU64::new(engine.now_millis().max(0) as u64));
        let shown = now.clone();
        let served: Published = Arc::new(RwLock::new(Arc::new(Served::builtin())));
        publish(&mut engine, &served);
        let published = served.clone();
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || run(engine, inbox, feed, clock, shown, published))
            .ok();
        Worker {
            jobs,
            journal,
            now,
            served,
        }
    }

    /// The kinds the engine serves (discovery and routing), as of its last job or tick,
    /// read without waiting for the engine thread.
    pub fn served(&self) -> Arc<Served> {
        match self.served.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The engine's virtual time (milliseconds since the epoch) as of its last job or tick,
    /// read without waiting for the engine thread.
    pub fn now_millis(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    /// The watch journal fed by this engine.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Runs `job` on the engine thread and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        let served = self.served.clone();
        let boxed: Job = Box::new(move |engine| {
            let result = job(engine);
            publish(engine, &served);
            let _ = reply.send(result);
        });
        self.jobs
            .send(boxed)
            .map_err(|_| ApiError::new(503, "ServiceUnavailable", "the engine has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::new(500, "InternalError", "the engine dropped the request"))
    }
}

fn run(
    mut engine: Engine,
    inbox: mpsc::Receiver<Job>,
    journal: Arc<Journal>,
    clock: Clock,
    now: Arc<AtomicU64>,
    served: Published,
) {
    let mut last_tick = Instant::now();
    // Fractions of a virtual millisecond carried from tick to tick, so slow speeds still move.
    let mut carry = 0.0_f64;
    loop {
        match inbox.recv_timeout(TICK) {
            Ok(job) => job(&mut engine),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if let Clock::Follow { speed } = clock
            && last_tick.elapsed() >= TICK
        {
            let elapsed = last_tick.elapsed();
            last_tick = Instant::now();
            carry += elapsed.as_secs_f64() * speed * SECOND as f64;
            let step = carry.floor() as Millis;
            carry -= step as f64;
            // A failed tick (the file busy with another process) is retried on the next one:
            // the time is carried, not lost.
            if step > 0 && engine.advance(step).is_err() {
                carry += step as f64;
            }
        }
        if let Ok((state, changed)) = engine.fresh_changes() {
            journal.record(state, changed);
        }
        publish(&mut engine, &served);
        now.store(engine.now_millis().max(0) as u64, Ordering::Relaxed);
    }
}
