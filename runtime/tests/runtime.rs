//! Runtime behaviour seen from outside: actors (panics, restarts, resources, shutdown) and tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use rl_runtime::{
    Actor, ActorContext, ActorHandle, ActorOptions, BoxError, DEFAULT_MAILBOX_CAPACITY, Isolation, ObjectRef, Reply,
    Runtime, RuntimeError, RuntimeOptions, TryTellError, Unrecoverable, decode, encode,
};
use serde::{Deserialize, Serialize};

/// Fails to compile if the handles lose `Send + Sync`.
fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_send_and_sync() {
    assert_send_sync::<ActorHandle<Worker>>();
    assert_send_sync::<ObjectRef>();
    assert_send_sync::<Runtime>();
    assert_send_sync::<Reply<Option<ObjectRef>>>();
}

#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Add(u64),
    Panic,
    Fail,
    FailForGood,
    PutObject(Vec<u8>),
    /// Panics with a payload whose drop panics again, outside the handler's `catch_unwind`: the
    /// actor's thread then dies under the call.
    PanicWithExplodingPayload,
}

/// A panic payload whose drop panics.
struct ExplodesOnDrop;

impl Drop for ExplodesOnDrop {
    fn drop(&mut self) {
        panic!("the panic payload exploded while being dropped");
    }
}

struct Worker {
    total: u64,
}

impl Actor for Worker {
    const TYPE_NAME: &'static str = "Worker";
    type Init = u64;
    type Msg = Msg;
    type Reply = Option<ObjectRef>;

    fn new(init: u64, ctx: &ActorContext) -> Result<Self, BoxError> {
        match init {
            REFUSED => Err("refusing init 999".into()),
            PANICS_IN_NEW => panic!("constructor exploded"),
            BUILDS_ONCE if !BUILT_ONCE.lock().unwrap().insert(ctx.name().to_string()) => {
                Err("refusing to rebuild".into())
            }
            _ => Ok(Worker { total: init }),
        }
    }

    fn handle(&mut self, msg: Msg, ctx: &ActorContext) -> Result<Option<ObjectRef>, BoxError> {
        match msg {
            Msg::Add(x) => {
                self.total += x;
                Ok(Some(ctx.runtime().put(encode(&self.total)?)?))
            }
            Msg::Panic => panic!("worker exploded at total {}", self.total),
            Msg::Fail => Err("a handled failure".into()),
            Msg::FailForGood => Err(Box::new(Unrecoverable::new("a bug no restart fixes".into()))),
            Msg::PutObject(v) => Ok(Some(ctx.runtime().put(Bytes::from(v))?)),
            Msg::PanicWithExplodingPayload => std::panic::panic_any(ExplodesOnDrop),
        }
    }
}

/// `Worker` inits with special constructors.
const REFUSED: u64 = 999;
const PANICS_IN_NEW: u64 = 997;
/// Builds the first time under a given actor name, fails every rebuild (so restarts fail).
const BUILDS_ONCE: u64 = 998;
static BUILT_ONCE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn runtime(num_cpus: f64) -> Runtime {
    let rt = Runtime::local(RuntimeOptions { num_cpus, num_task_threads: 2, ..Default::default() }).unwrap();
    rt.register_actor::<Worker>();
    rt
}

fn total(rt: &Runtime, reply: Option<ObjectRef>) -> u64 {
    decode(&rt.get_blocking(&reply.unwrap(), None).unwrap()).unwrap()
}

#[test]
fn actor_keeps_state_and_replies_through_the_store() {
    let rt = runtime(2.0);
    let w = rt.spawn::<Worker>(1, ActorOptions::default()).unwrap();
    w.call(Msg::Add(2)).wait().unwrap();
    let r = w.call(Msg::Add(3)).wait().unwrap();
    assert_eq!(total(&rt, r), 6);
    rt.shutdown();
}

#[test]
fn panic_surfaces_as_error_and_the_process_lives_on() {
    let rt = runtime(2.0);
    let w = rt.spawn::<Worker>(5, ActorOptions::default()).unwrap();
    let err = w.call(Msg::Panic).wait().unwrap_err();
    assert_eq!(
        err,
        RuntimeError::ActorPanicked { actor: w.name().to_string(), message: "worker exploded at total 5".into() }
    );
    // No restarts: the actor is dead and says why.
    let err = w.call(Msg::Add(1)).wait().unwrap_err();
    assert!(matches!(&err, RuntimeError::NotDelivered { reason, .. } if reason.contains("max_restarts = 0")), "{err}");
    assert!(!w.is_alive());
    // Its CPU was given back, and other actors still work.
    assert_eq!(rt.available_resources()["CPU"], 2.0);
    let w2 = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    assert_eq!(total(&rt, w2.call(Msg::Add(4)).wait().unwrap()), 4);
    rt.shutdown();
}

#[test]
fn panicked_actor_restarts_from_its_init() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(10, ActorOptions { max_restarts: 1, ..Default::default() }).unwrap();
    w.call(Msg::Add(5)).wait().unwrap();
    assert!(matches!(w.call(Msg::Panic).wait(), Err(RuntimeError::ActorPanicked { .. })));
    // Rebuilt from init 10: the +5 is gone.
    assert_eq!(total(&rt, w.call(Msg::Add(1)).wait().unwrap()), 11);
    assert!(matches!(w.call(Msg::Panic).wait(), Err(RuntimeError::ActorPanicked { .. })));
    assert!(matches!(w.call(Msg::Add(1)).wait(), Err(RuntimeError::NotDelivered { .. })));
    rt.shutdown();
}

#[test]
fn handler_errors_do_not_kill_the_actor() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    let err = w.call(Msg::Fail).wait().unwrap_err();
    assert_eq!(err.to_string(), format!("actor {} failed: a handled failure", w.name()));
    assert!(matches!(err, RuntimeError::ActorFailed { recoverable: true, .. }));
    assert!(w.call(Msg::Add(1)).wait().is_ok());
    // An error the actor marks unrecoverable says so, with the same text.
    let err = w.call(Msg::FailForGood).wait().unwrap_err();
    assert_eq!(err.to_string(), format!("actor {} failed: a bug no restart fixes", w.name()));
    assert!(matches!(err, RuntimeError::ActorFailed { recoverable: false, .. }));
    let err = rt.spawn::<Worker>(999, ActorOptions { num_cpus: 0.0, ..Default::default() }).unwrap_err();
    assert!(matches!(err, RuntimeError::ActorFailed { recoverable: true, .. }), "{err}");
    rt.shutdown();
}

#[test]
fn constructor_error_is_reported_and_frees_resources() {
    let rt = runtime(1.0);
    let err = rt.spawn::<Worker>(999, ActorOptions::default()).unwrap_err();
    assert!(err.to_string().contains("refusing init 999"), "{err}");
    assert_eq!(rt.available_resources()["CPU"], 1.0);
    rt.shutdown();
}

#[test]
fn resources_are_reserved_and_checked() {
    let rt = runtime(1.0);
    let _w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    let err = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InsufficientResources { resource, needed, available, total, .. }
            if resource == "CPU" && *needed == 1.0 && *available == 0.0 && *total == 1.0),
        "{err}"
    );
    let gpu = ActorOptions { num_cpus: 0.0, num_gpus: 1.0, ..Default::default() };
    assert!(matches!(rt.spawn::<Worker>(0, gpu), Err(RuntimeError::InsufficientResources { .. })));
    rt.shutdown();
}

#[test]
fn unregistered_actor_type_is_an_error() {
    let rt = Runtime::local(RuntimeOptions::default()).unwrap();
    assert_eq!(
        rt.spawn::<Worker>(0, ActorOptions::default()).unwrap_err(),
        RuntimeError::UnknownActorType("Worker".into())
    );
    rt.shutdown();
}

#[test]
fn shutdown_answers_queued_calls_then_stops() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    let replies: Vec<_> = (0..50).map(|_| w.call(Msg::Add(1))).collect();
    rt.shutdown();
    let last = replies.into_iter().map(|r| r.wait().unwrap()).last().unwrap();
    assert_eq!(total(&rt, last), 50);
    assert!(matches!(w.call(Msg::Add(1)).wait(), Err(RuntimeError::NotDelivered { .. })));
}

#[tokio::test]
async fn replies_can_be_awaited() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(7, ActorOptions::default()).unwrap();
    let r = w.call(Msg::Add(1)).await.unwrap().unwrap();
    let v: u64 = decode(&rt.get(&r).await.unwrap()).unwrap();
    assert_eq!(v, 8);
    let rt2 = rt.clone();
    tokio::task::spawn_blocking(move || rt2.shutdown()).await.unwrap();
}

#[test]
fn objects_put_by_an_actor_are_freed_when_the_caller_drops_them() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    let r = w.call(Msg::PutObject(vec![1; 1000])).wait().unwrap().unwrap();
    assert_eq!(rt.store_stats().used_bytes, 1000);
    drop(r);
    assert_eq!(rt.store_stats().used_bytes, 0);
    rt.shutdown();
}

#[test]
fn tasks_run_and_report_failures() {
    let rt = runtime(1.0);
    rt.register_task("double", |b: Bytes| Ok(encode(&(2 * decode::<u32>(&b)?))?));
    rt.register_task("boom", |_b: Bytes| panic!("task went wrong"));
    let refs: Vec<ObjectRef> = (0..8u32).map(|i| rt.submit("double", encode(&i).unwrap()).unwrap()).collect();
    let (done, pending) = rt.wait_blocking(&refs, refs.len(), Some(Duration::from_secs(60)));
    assert_eq!((done.len(), pending.len()), (8, 0));
    let outs: Vec<u32> = refs.iter().map(|r| decode(&rt.get_blocking(r, None).unwrap()).unwrap()).collect();
    assert_eq!(outs, (0..8).map(|i| 2 * i).collect::<Vec<_>>());
    let bad = rt.submit("boom", Bytes::new()).unwrap();
    let err = rt.get_blocking(&bad, None).unwrap_err();
    assert!(err.to_string().contains("task boom panicked: task went wrong"), "{err}");
    assert_eq!(rt.submit("nope", Bytes::new()).unwrap_err(), RuntimeError::UnknownTask("nope".into()));
    rt.shutdown();
    assert_eq!(rt.submit("double", Bytes::new()).unwrap_err(), RuntimeError::Shutdown);
}

// === Death is one step: whoever sees it also sees the resources free ===
//
// Each test repeats its scenario so that a wrong order (reply or `NotDelivered` before the
// resources are back) is likely to show even on an idle machine.

const ROUNDS: usize = 200;

fn cpus_free(rt: &Runtime) -> f64 {
    rt.available_resources()["CPU"]
}

#[test]
fn the_panic_reply_of_an_actor_with_no_restarts_comes_after_its_release() {
    let rt = runtime(1.0);
    for i in 0..ROUNDS {
        // Spawning needs the only CPU, so it also checks the previous round gave it back.
        let w = rt.spawn::<Worker>(i as u64, ActorOptions::default()).unwrap();
        if i % 2 == 0 {
            let err = w.call(Msg::Panic).wait().unwrap_err();
            assert!(matches!(err, RuntimeError::ActorPanicked { .. }), "{err}");
        } else {
            // A panic from `tell` has no reply; the next call's `NotDelivered` is the first sign.
            w.tell(Msg::Panic).unwrap();
            let err = w.call(Msg::Add(1)).wait().unwrap_err();
            assert!(
                matches!(&err, RuntimeError::NotDelivered { reason, .. } if reason.contains("max_restarts")),
                "{err}"
            );
        }
        assert!(!w.is_alive(), "round {i}");
        assert_eq!(cpus_free(&rt), 1.0, "round {i}");
    }
    rt.shutdown();
}

#[tokio::test]
async fn an_awaited_panic_reply_also_comes_after_the_release() {
    let rt = runtime(1.0);
    for i in 0..ROUNDS {
        let w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
        assert!(matches!(w.call(Msg::Panic).await, Err(RuntimeError::ActorPanicked { .. })));
        assert!(!w.is_alive(), "round {i}");
        assert_eq!(cpus_free(&rt), 1.0, "round {i}");
    }
    let rt2 = rt.clone();
    tokio::task::spawn_blocking(move || rt2.shutdown()).await.unwrap();
}

#[test]
fn a_failed_restart_is_settled_before_the_panic_reply() {
    let rt = runtime(1.0);
    for i in 0..ROUNDS {
        let options = ActorOptions { name: Some(format!("builds-once-{i}")), max_restarts: 1, ..Default::default() };
        let w = rt.spawn::<Worker>(BUILDS_ONCE, options).unwrap();
        assert!(matches!(w.call(Msg::Panic).wait(), Err(RuntimeError::ActorPanicked { .. })));
        assert!(!w.is_alive(), "round {i}");
        assert_eq!(cpus_free(&rt), 1.0, "round {i}");
        let err = w.call(Msg::Add(1)).wait().unwrap_err();
        assert!(
            matches!(&err, RuntimeError::NotDelivered { reason, .. } if reason.contains("refusing to rebuild")),
            "{err}"
        );
    }
    rt.shutdown();
}

#[test]
fn a_restarted_actor_keeps_its_reservation_and_a_stopped_one_returns_it() {
    let rt = runtime(1.0);
    for i in 0..ROUNDS {
        let w = rt.spawn::<Worker>(10, ActorOptions { max_restarts: 1, ..Default::default() }).unwrap();
        w.call(Msg::Add(5)).wait().unwrap();
        assert!(matches!(w.call(Msg::Panic).wait(), Err(RuntimeError::ActorPanicked { .. })));
        // Rebuilt before the reply: alive, still holding its CPU, and back at its init.
        assert!(w.is_alive(), "round {i}");
        assert_eq!(cpus_free(&rt), 0.0, "round {i}");
        assert_eq!(total(&rt, w.call(Msg::Add(1)).wait().unwrap()), 11);
        w.stop();
        let err = w.call(Msg::Add(1)).wait().unwrap_err();
        assert!(matches!(&err, RuntimeError::NotDelivered { reason, .. } if reason == "stopped"), "{err}");
        assert!(!w.is_alive(), "round {i}");
        assert_eq!(cpus_free(&rt), 1.0, "round {i}");
    }
    rt.shutdown();
}

#[test]
fn a_failed_constructor_returns_the_reservation_before_spawn_returns() {
    let rt = runtime(1.0);
    for i in 0..ROUNDS {
        let (init, says) =
            if i % 2 == 0 { (REFUSED, "refusing init 999") } else { (PANICS_IN_NEW, "constructor exploded") };
        let err = rt.spawn::<Worker>(init, ActorOptions::default()).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(cpus_free(&rt), 1.0, "round {i}");
    }
    rt.shutdown();
}

#[test]
fn after_shutdown_every_actor_is_dead_and_every_resource_free() {
    for i in 0..ROUNDS {
        let mut options = RuntimeOptions { num_cpus: 2.0, num_task_threads: 1, ..Default::default() };
        options.resources = BTreeMap::from([("slot".to_string(), 3.0)]);
        let rt = Runtime::local(options).unwrap();
        rt.register_actor::<Worker>();
        let with_slot =
            || ActorOptions { resources: BTreeMap::from([("slot".to_string(), 1.0)]), ..Default::default() };
        let workers: Vec<_> = (0..2).map(|_| rt.spawn::<Worker>(0, with_slot()).unwrap()).collect();
        let replies: Vec<_> = workers.iter().map(|w| w.call(Msg::Add(1))).collect();
        if i % 2 == 0 {
            rt.shutdown();
        } else {
            // Two shutdowns at once: each returns only when the work is done.
            let rt2 = rt.clone();
            let other = std::thread::spawn(move || {
                rt2.shutdown();
                rt2.available_resources() == rt2.total_resources()
            });
            rt.shutdown();
            assert_eq!(rt.available_resources(), rt.total_resources(), "round {i}");
            assert!(other.join().unwrap(), "round {i}: the other shutdown returned early");
        }
        assert_eq!(rt.available_resources(), rt.total_resources(), "round {i}");
        assert!(workers.iter().all(|w| !w.is_alive()), "round {i}");
        for r in replies {
            assert!(r.wait().is_ok(), "calls queued before shutdown are answered");
        }
        assert_eq!(rt.spawn::<Worker>(0, ActorOptions::default()).unwrap_err(), RuntimeError::Shutdown);
    }
}

#[test]
fn shutdown_waits_for_spawns_under_way() {
    for i in 0..ROUNDS / 4 {
        let rt = Runtime::local(RuntimeOptions { num_cpus: 1e6, num_task_threads: 1, ..Default::default() }).unwrap();
        rt.register_actor::<Worker>();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let rt2 = rt.clone();
        let spawner = std::thread::spawn(move || {
            let mut spawned = Vec::new();
            loop {
                match rt2.spawn::<Worker>(0, ActorOptions::default()) {
                    Ok(w) => spawned.push(w),
                    Err(e) => return (spawned, e),
                }
                let _ = first_tx.send(());
            }
        });
        first_rx.recv().unwrap();
        rt.shutdown();
        // Checked before the spawner is joined: a spawn that was under way must be undone too.
        assert_eq!(rt.available_resources(), rt.total_resources(), "round {i}");
        let (spawned, err) = spawner.join().unwrap();
        assert_eq!(err, RuntimeError::Shutdown);
        assert!(spawned.iter().all(|w| !w.is_alive()), "round {i}");
    }
}

#[test]
fn a_reply_moved_locally_owns_its_object_and_a_serialized_one_borrows_it() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    let owning = w.call(Msg::PutObject(vec![3; 100])).wait().unwrap().unwrap();
    assert!(owning.is_owning(), "a local reply moves the actor's owning ref");
    // What a reply from another process looks like today: the codec drops ownership, so the
    // object lives only while the sender's owning ref does.
    let borrowed: ObjectRef = decode(&encode(&owning).unwrap()).unwrap();
    assert!(!borrowed.is_owning());
    assert_eq!(rt.get_blocking(&borrowed, None).unwrap().len(), 100);
    drop(owning);
    assert_eq!(rt.get_blocking(&borrowed, None), Err(RuntimeError::ObjectFreed(borrowed.id())));
    assert_eq!(rt.store_stats().used_bytes, 0);
    rt.shutdown();
}

// === Replies from any thread, deadlines, retry-safe errors, bounded mailboxes ===

/// What a `Gate` actor takes from the test when it is built, keyed by its init (and name).
struct GateEnds {
    release: mpsc::Receiver<()>,
    entered: mpsc::Sender<()>,
    handled: mpsc::Sender<u64>,
}

static GATES: Mutex<BTreeMap<String, GateEnds>> = Mutex::new(BTreeMap::new());

/// An actor the test holds up: `Block` says it has entered, then waits for the test's release.
struct Gate {
    ends: GateEnds,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum GateMsg {
    /// Reports `entered`, then blocks until released; answers 0.
    Block,
    /// Reports the number as handled and answers it.
    Echo(u64),
}

impl Actor for Gate {
    const TYPE_NAME: &'static str = "Gate";
    type Init = String;
    type Msg = GateMsg;
    type Reply = u64;

    fn new(key: String, _ctx: &ActorContext) -> Result<Self, BoxError> {
        let ends = GATES.lock().unwrap().remove(&key).ok_or("no gate ends for this key")?;
        Ok(Gate { ends })
    }

    fn handle(&mut self, msg: GateMsg, _ctx: &ActorContext) -> Result<u64, BoxError> {
        match msg {
            GateMsg::Block => {
                self.ends.entered.send(())?;
                // A test that fails drops its end, which unblocks the actor instead of hanging.
                self.ends.release.recv()?;
                Ok(0)
            }
            GateMsg::Echo(x) => {
                self.ends.handled.send(x)?;
                Ok(x)
            }
        }
    }
}

/// The test's ends of a gate.
struct GateControl {
    release: mpsc::Sender<()>,
    entered: mpsc::Receiver<()>,
    handled: mpsc::Receiver<u64>,
}

/// Spawns a `Gate` named `name` with a mailbox of `capacity`.
fn gate(rt: &Runtime, name: &str, capacity: usize) -> (ActorHandle<Gate>, GateControl) {
    rt.register_actor::<Gate>();
    let (release_tx, release_rx) = mpsc::channel();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (handled_tx, handled_rx) = mpsc::channel();
    GATES
        .lock()
        .unwrap()
        .insert(name.into(), GateEnds { release: release_rx, entered: entered_tx, handled: handled_tx });
    let options = ActorOptions { name: Some(name.into()), mailbox_capacity: capacity, ..Default::default() };
    let g = rt.spawn::<Gate>(name.into(), options).unwrap();
    (g, GateControl { release: release_tx, entered: entered_rx, handled: handled_rx })
}

/// Blocks `g` in a `Block` call and returns that call's reply once the actor is inside it.
fn block(g: &ActorHandle<Gate>, ctl: &GateControl) -> Reply<u64> {
    let blocked = g.call(GateMsg::Block);
    ctl.entered.recv().unwrap();
    blocked
}

#[test]
fn wait_works_inside_a_tokio_runtime() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(1, ActorOptions::default()).unwrap();
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let r = tokio_rt.block_on(async { w.call(Msg::Add(2)).wait() }).unwrap();
    assert_eq!(total(&rt, r), 3);
    let r = tokio_rt.block_on(async { w.call(Msg::Add(3)).wait_timeout(Duration::from_secs(600)) }).unwrap();
    assert_eq!(total(&rt, r), 6);
    // `.await` in the same runtime still works.
    let r = tokio_rt.block_on(async { w.call(Msg::Add(4)).await }).unwrap();
    assert_eq!(total(&rt, r), 10);
    rt.shutdown();
}

#[test]
fn an_awaited_reply_wakes_its_task_when_the_answer_comes() {
    let rt = runtime(1.0);
    let (g, ctl) = gate(&rt, "gate-await", 4);
    let mut reply = g.call(GateMsg::Block);
    let mut released = false;
    let tokio_rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let answer = tokio_rt.block_on(std::future::poll_fn(|cx| {
        let poll = Pin::new(&mut reply).poll(cx);
        if poll.is_pending() && !released {
            // Released only after a poll came back pending, so the answer must come through the
            // stored waker.
            released = true;
            ctl.release.send(()).unwrap();
        }
        poll
    }));
    assert_eq!(answer, Ok(0));
    assert!(released, "the first poll found the reply pending");
    rt.shutdown();
}

#[test]
fn wait_timeout_names_the_actor_and_leaves_the_call_queued() {
    let rt = runtime(1.0);
    let (g, ctl) = gate(&rt, "gate-timeout", 4);
    let blocked = block(&g, &ctl);
    let deadline = Duration::from_millis(20);
    let err = g.call(GateMsg::Echo(7)).wait_timeout(deadline).unwrap_err();
    assert_eq!(err, RuntimeError::Timeout(deadline, "a reply from actor gate-timeout".into()));
    assert_eq!(err.to_string(), "timed out after 20ms waiting for a reply from actor gate-timeout");
    assert!(err.is_retryable_if_idempotent() && !err.is_retryable_anywhere());
    // The blocked call times out the same way; the actor lives on.
    assert!(matches!(blocked.wait_timeout(Duration::ZERO), Err(RuntimeError::Timeout(..))));
    assert!(g.is_alive());
    ctl.release.send(()).unwrap();
    // The timed-out call stayed queued and runs; only its answer is dropped.
    assert_eq!(ctl.handled.recv().unwrap(), 7);
    assert_eq!(g.call(GateMsg::Echo(8)).wait_timeout(Duration::from_secs(600)), Ok(8));
    rt.shutdown();
}

#[test]
fn a_zero_mailbox_capacity_is_refused_before_anything_is_reserved() {
    let rt = runtime(1.0);
    let options = ActorOptions { name: Some("no-mailbox".into()), mailbox_capacity: 0, ..Default::default() };
    let err = rt.spawn::<Worker>(0, options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot spawn actor no-mailbox: mailbox_capacity must be at least 1, found 0",
        "{err:?}"
    );
    assert_eq!(cpus_free(&rt), 1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions::default()).unwrap();
    assert_eq!(w.mailbox_capacity(), DEFAULT_MAILBOX_CAPACITY);
    rt.shutdown();
}

#[test]
fn env_needs_process_isolation_and_process_isolation_needs_a_cluster() {
    let rt = runtime(1.0);
    let env = BTreeMap::from([("RL_TEST_VAR".to_string(), "x".to_string())]);
    let threaded = ActorOptions { name: Some("threaded".into()), env: env.clone(), ..Default::default() };
    let err = rt.spawn::<Worker>(0, threaded).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidActorOption { option, found, .. } if option == "env" && found == "RL_TEST_VAR"),
        "{err}"
    );
    let bad_name = ActorOptions {
        isolation: Isolation::Process,
        env: BTreeMap::from([("A=B".to_string(), "x".to_string())]),
        ..Default::default()
    };
    let err = rt.spawn::<Worker>(0, bad_name).unwrap_err();
    assert!(err.to_string().contains("no '='"), "{err}");
    let process =
        ActorOptions { name: Some("isolated".into()), isolation: Isolation::Process, env, ..Default::default() };
    let err = rt.spawn::<Worker>(0, process).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::InvalidActorOption { option, .. } if option == "isolation")
            && err.to_string().contains("embedded runtime"),
        "{err}"
    );
    assert_eq!(cpus_free(&rt), 1.0, "nothing was reserved");
    rt.shutdown();
}

#[test]
fn a_full_mailbox_hands_try_tell_its_message_back_and_tell_waits_for_room() {
    let rt = runtime(1.0);
    let (g, ctl) = gate(&rt, "gate-full", 2);
    assert_eq!(g.mailbox_capacity(), 2);
    let blocked = block(&g, &ctl);
    g.try_tell(GateMsg::Echo(1)).unwrap();
    g.try_tell(GateMsg::Echo(2)).unwrap();
    let err = g.try_tell(GateMsg::Echo(3)).unwrap_err();
    assert!(
        matches!(&err, TryTellError::MailboxFull { msg: GateMsg::Echo(3), actor, capacity: 2 } if actor == "gate-full"),
        "{err}"
    );
    let err = RuntimeError::from(err);
    assert_eq!(err, RuntimeError::MailboxFull { actor: "gate-full".into(), capacity: 2 });
    assert!(err.is_retryable_anywhere());
    // `tell` waits for room instead: this one is queued only once the actor takes a message.
    let g2 = g.clone();
    let producer = std::thread::spawn(move || g2.tell(GateMsg::Echo(3)));
    ctl.release.send(()).unwrap();
    assert_eq!(blocked.wait(), Ok(0));
    producer.join().unwrap().unwrap();
    let handled: Vec<u64> = (0..3).map(|_| ctl.handled.recv().unwrap()).collect();
    assert_eq!(handled, [1, 2, 3]);
    // The actor has taken every message out, so there is room again.
    g.try_tell(GateMsg::Echo(4)).unwrap();
    assert_eq!(ctl.handled.recv().unwrap(), 4);
    rt.shutdown();
}

#[test]
fn stop_skips_a_full_mailbox_and_fails_what_was_queued_as_not_delivered() {
    let rt = runtime(1.0);
    let (g, ctl) = gate(&rt, "gate-stop", 2);
    let blocked = block(&g, &ctl);
    let queued = [g.call(GateMsg::Echo(1)), g.call(GateMsg::Echo(2))];
    // The mailbox is full: this caller waits for room (or finds the actor dead).
    let g2 = g.clone();
    let producer = std::thread::spawn(move || g2.call(GateMsg::Echo(3)).wait());
    // Never blocks, although the mailbox is full and the actor is busy.
    g.stop();
    assert!(g.is_alive(), "the message in progress finishes first");
    ctl.release.send(()).unwrap();
    assert_eq!(blocked.wait(), Ok(0));
    let stopped = RuntimeError::NotDelivered { actor: "gate-stop".into(), reason: "stopped".into() };
    for reply in queued {
        assert_eq!(reply.wait(), Err(stopped.clone()));
    }
    assert_eq!(producer.join().unwrap(), Err(stopped.clone()));
    // Dead and released, and none of the queued messages ran (the actor, and its end of
    // `handled`, are gone).
    assert!(!g.is_alive());
    assert_eq!(cpus_free(&rt), 1.0);
    assert_eq!(ctl.handled.recv(), Err(mpsc::RecvError));
    assert_eq!(g.tell(GateMsg::Echo(4)), Err(stopped.clone()));
    let err = g.try_tell(GateMsg::Echo(5)).unwrap_err();
    assert!(matches!(&err, TryTellError::NotDelivered { msg: GateMsg::Echo(5), reason, .. } if reason == "stopped"));
    assert!(RuntimeError::from(err).is_retryable_anywhere());
    rt.shutdown();
}

#[test]
fn shutdown_with_a_full_mailbox_and_a_waiting_sender_returns_once_the_handler_does() {
    for i in 0..ROUNDS / 10 {
        let rt = runtime(1.0);
        let (g, ctl) = gate(&rt, &format!("gate-shutdown-{i}"), 2);
        let blocked = block(&g, &ctl);
        let queued = [g.call(GateMsg::Echo(1)), g.call(GateMsg::Echo(2))];
        let g2 = g.clone();
        let producer = std::thread::spawn(move || g2.tell(GateMsg::Echo(3)));
        let rt2 = rt.clone();
        let shutdown = std::thread::spawn(move || rt2.shutdown());
        ctl.release.send(()).unwrap();
        shutdown.join().unwrap();
        assert_eq!(blocked.wait(), Ok(0));
        // Calls queued before the shutdown are answered; the waiting sender got in or was refused.
        let answers: Vec<_> = queued.into_iter().map(|r| r.wait()).collect();
        assert_eq!(answers, [Ok(1), Ok(2)], "round {i}");
        let told = producer.join().unwrap();
        assert!(matches!(told, Ok(()) | Err(RuntimeError::NotDelivered { .. })), "round {i}: {told:?}");
        assert!(!g.is_alive(), "round {i}");
        assert_eq!(rt.available_resources(), rt.total_resources(), "round {i}");
    }
}

#[test]
fn a_thread_that_dies_under_a_call_fails_it_as_died_during_call() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions { name: Some("dies-mid-call".into()), ..Default::default() }).unwrap();
    let err = w.call(Msg::PanicWithExplodingPayload).wait().unwrap_err();
    assert_eq!(
        err,
        RuntimeError::DiedDuringCall {
            actor: "dies-mid-call".into(),
            reason: "the actor thread exited unexpectedly".into()
        }
    );
    assert!(err.is_retryable_if_idempotent() && !err.is_retryable_anywhere());
    // Whoever sees the death also sees the release, and later calls were never delivered.
    assert!(!w.is_alive());
    assert_eq!(cpus_free(&rt), 1.0);
    let err = w.call(Msg::Add(1)).wait().unwrap_err();
    assert!(matches!(&err, RuntimeError::NotDelivered { reason, .. } if reason.contains("unexpectedly")), "{err}");
    rt.shutdown();
}

#[test]
fn handler_errors_and_panics_are_not_retryable() {
    let rt = runtime(1.0);
    let w = rt.spawn::<Worker>(0, ActorOptions { max_restarts: 1, ..Default::default() }).unwrap();
    for msg in [Msg::Fail, Msg::FailForGood, Msg::Panic] {
        let err = w.call(msg).wait().unwrap_err();
        assert!(!err.is_retryable_anywhere() && !err.is_retryable_if_idempotent(), "{err}");
    }
    rt.shutdown();
}
