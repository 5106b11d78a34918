//! Actors a node hosts for callers on other nodes: decoding their calls, encoding the answers on
//! the actor's thread, and actor options in their wire form.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use tonic::Status;

use super::node::NodeCore;
use super::peer::PeerRefs;
use super::proto::{self, CallFrame, ReplyFrame};
use crate::actor::{Actor, ActorHandle, ActorOptions, Isolation, Placement, died_during_call, not_delivered};
use crate::error::Result;
use crate::wire;

/// An actor this node hosts, served to callers on other nodes through encoded messages.
pub(crate) trait Hosted: Send + Sync {
    /// Decodes one call from `caller`, hands it to the actor, and (if `want_reply`) sends the
    /// encoded answer on `replies`.
    fn serve(
        &self,
        core: &Arc<NodeCore>,
        frame: CallFrame,
        caller: u32,
        replies: &mpsc::Sender<std::result::Result<ReplyFrame, Status>>,
    );
    /// Asks the actor to stop.
    fn stop(&self);
    /// The actor's name.
    fn name(&self) -> &str;
    /// Its id.
    fn id(&self) -> u64;
    /// Itself, for a typed handle when the head placed the actor on the asking node.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Whether the actor still runs.
    fn is_alive(&self) -> bool;
}

/// A local actor of type `A`, hosted for other nodes.
pub(crate) struct HostedActor<A: Actor> {
    pub(crate) handle: ActorHandle<A>,
}

impl<A: Actor> HostedActor<A> {
    pub(crate) fn new(handle: ActorHandle<A>) -> Self {
        Self { handle }
    }
}

/// A reply frame carrying `result` (an encoded reply or an encoded error).
pub(crate) fn reply_frame(call_id: u64, result: Result<Bytes>) -> ReplyFrame {
    match result {
        Ok(payload) => ReplyFrame { call_id, ok: true, payload },
        Err(e) => ReplyFrame { call_id, ok: false, payload: crate::encode(&e).unwrap_or_default() },
    }
}

impl<A: Actor> Hosted for HostedActor<A> {
    fn serve(
        &self,
        core: &Arc<NodeCore>,
        frame: CallFrame,
        caller: u32,
        replies: &mpsc::Sender<std::result::Result<ReplyFrame, Status>>,
    ) {
        let CallFrame { call_id, payload, want_reply, .. } = frame;
        let decoded: Result<A::Msg> = wire::with_refs(PeerRefs::rc(core, caller), || crate::decode(&payload));
        let msg = match decoded {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(actor = %self.handle.name(), error = %e, "refused a malformed message");
                if want_reply {
                    let _ = replies.try_send(Ok(reply_frame(call_id, Err(e))));
                }
                return;
            }
        };
        let (core, replies, name, death) =
            (core.clone(), replies.clone(), self.handle.name().to_string(), self.handle.death_note());
        self.handle.call_with(msg, move |answer, handled| {
            let result = match answer {
                Some(r) => r,
                None if handled => Err(died_during_call(&name, &death)),
                None => Err(not_delivered(&name, &death)),
            };
            if !want_reply {
                if let Err(e) = result {
                    tracing::error!(actor = %name, error = %e, "message sent with tell failed");
                }
                return;
            }
            let frame = Ok(reply_frame(call_id, result.and_then(|r| encode_for(&core, caller, &r))));
            send_reply_frame(&replies, frame);
        });
    }

    fn stop(&self) {
        self.handle.stop();
    }

    fn name(&self) -> &str {
        self.handle.name()
    }

    fn id(&self) -> u64 {
        self.handle.id()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn is_alive(&self) -> bool {
        self.handle.is_alive()
    }
}

/// Queues a reply frame from any thread: at once if there is room, else from a task (on a
/// network thread) or by blocking (on an actor thread) until there is.
fn send_reply_frame(
    replies: &mpsc::Sender<std::result::Result<ReplyFrame, Status>>,
    frame: std::result::Result<ReplyFrame, Status>,
) {
    match replies.try_send(frame) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(frame)) => match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let replies = replies.clone();
                handle.spawn(async move {
                    let _ = replies.send(frame).await;
                });
            }
            Err(_) => {
                let _ = replies.blocking_send(frame);
            }
        },
    }
}

/// Encodes `value` for node `peer`: refs in it become borrows of `peer`.
pub(crate) fn encode_for<T: Serialize>(core: &Arc<NodeCore>, peer: u32, value: &T) -> Result<Bytes> {
    wire::with_refs(PeerRefs::rc(core, peer), || crate::encode(value))
}

/// The proto form of actor options.
pub(crate) fn options_proto(o: &ActorOptions) -> proto::ActorOptionsProto {
    let mut amounts = o.resources.clone();
    for (key, value) in [("CPU", o.num_cpus), ("GPU", o.num_gpus)] {
        if value > 0.0 {
            amounts.insert(key.into(), value);
        }
    }
    proto::ActorOptionsProto {
        name: o.name.clone().unwrap_or_default(),
        resources: Some(resources(&amounts)),
        max_restarts: o.max_restarts,
        mailbox_capacity: o.mailbox_capacity as u64,
        node_id: match o.placement {
            Placement::Node(n) => n,
            Placement::Any | Placement::Local | Placement::Group { .. } => 0,
        },
        placement_timeout_ms: o.placement_timeout.as_millis() as u64,
        placement_group_id: match o.placement {
            Placement::Group { group, .. } => group,
            _ => 0,
        },
        bundle_index: match o.placement {
            Placement::Group { bundle: Some(i), .. } => i as i32,
            _ => -1,
        },
        process: o.isolation == Isolation::Process,
        env: o.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// Actor options from their proto form (the node builds the actor locally).
pub(crate) fn options_from_proto(p: proto::ActorOptionsProto) -> ActorOptions {
    let mut amounts = p.resources.map(|r| r.amounts).unwrap_or_default();
    let num_cpus = amounts.remove("CPU").unwrap_or(0.0);
    let num_gpus = amounts.remove("GPU").unwrap_or(0.0);
    ActorOptions {
        name: (!p.name.is_empty()).then_some(p.name),
        num_cpus,
        num_gpus,
        resources: amounts.into_iter().collect(),
        max_restarts: p.max_restarts,
        mailbox_capacity: usize::try_from(p.mailbox_capacity).unwrap_or(usize::MAX),
        placement: Placement::Local,
        placement_timeout: Duration::from_millis(p.placement_timeout_ms),
        isolation: if p.process { Isolation::Process } else { Isolation::Thread },
        env: p.env.into_iter().collect(),
    }
}

/// Resources in proto form.
pub(crate) fn resources(r: &BTreeMap<String, f64>) -> proto::Resources {
    proto::Resources { amounts: r.iter().map(|(k, v)| (k.clone(), *v)).collect() }
}
