//! The client side of one other node: its call stream, and handles to the actors it hosts.
//!
//! A [`Peer`] opens one bidirectional `Calls` stream to its node and keeps it: every call from
//! this process to that node's actors is a `CallFrame` on it, every answer a `ReplyFrame`
//! matched by call id. If the stream breaks, every call waiting on it fails with
//! [`RuntimeError::DiedDuringCall`] (it may have run), and later sends open a new stream or fail
//! with [`RuntimeError::NotDelivered`].

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::auth::AddToken;
use super::node::NodeCore;
use super::proto::node_client::NodeClient;
use super::proto::{CallFrame, ReplyFrame};
use super::{MAX_MESSAGE_BYTES, error_chain, status_error};
use crate::actor::DeathNote;
use crate::error::{Result, RuntimeError};
use crate::object_store::ObjectRef;
use crate::wire::{self, WireRefs};

/// A client of the `Node` service, with the token interceptor.
pub(crate) type NodeRpc = NodeClient<InterceptedService<Channel, AddToken>>;

/// What to do with a call's answer.
pub(crate) type OnReply = Box<dyn FnOnce(Result<Bytes>) + Send>;

/// How many frames may wait to be written to one peer before senders feel backpressure.
const SEND_QUEUE: usize = 1024;

/// The calls waiting for answers; `None` once the stream is gone (nothing may be added then).
type Pending = Mutex<Option<HashMap<u64, (Arc<str>, OnReply)>>>;

/// One other node, as this process talks to it.
pub(crate) struct Peer {
    pub(crate) node_id: u32,
    pub(crate) rpc: NodeRpc,
    tx: mpsc::Sender<CallFrame>,
    pending: Arc<Pending>,
    next_call: AtomicU64,
    /// Why the stream ended, once it has.
    lost: Arc<OnceLock<String>>,
}

impl Peer {
    /// Connects to node `node_id` at `address` and opens the call stream.
    pub(crate) async fn connect(core: &NodeCore, node_id: u32, address: String) -> Result<Arc<Self>> {
        let channel = super::connect(&address, node_id, core.tls.as_ref()).await?;
        let rpc = NodeClient::with_interceptor(channel, AddToken::new(&core.token, core.node_id)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        let inbound = rpc
            .clone()
            .calls(ReceiverStream::new(rx))
            .await
            .map_err(|s| status_error(&s, node_id, &address))?
            .into_inner();
        let peer = Arc::new(Self {
            node_id,
            rpc,
            tx,
            pending: Arc::new(Mutex::new(Some(HashMap::new()))),
            next_call: AtomicU64::new(0),
            lost: Arc::new(OnceLock::new()),
        });
        tokio::spawn(read_replies(inbound, peer.pending.clone(), peer.lost.clone(), node_id));
        Ok(peer)
    }

    /// Whether the call stream has ended.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.get().is_some()
    }

    /// Fails every waiting call and refuses new ones (the node was declared dead).
    pub(crate) fn fail_all(&self, reason: &str) {
        let _ = self.lost.set(reason.to_string());
        fail_pending(&self.pending, reason);
    }

    /// Sends one frame for `actor` (named `name`); `on_reply` gets the answer, or `None` for a
    /// tell. Waits for room on the send queue unless on an async executor's thread, where a full
    /// queue fails with [`RuntimeError::MailboxFull`].
    fn send(&self, actor_id: u64, name: &Arc<str>, payload: Bytes, on_reply: Option<OnReply>) -> Result<()> {
        let not_delivered = |reason: String| RuntimeError::NotDelivered { actor: name.to_string(), reason };
        if let Some(reason) = self.lost.get() {
            return Err(not_delivered(reason.clone()));
        }
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let want_reply = on_reply.is_some();
        if let Some(cb) = on_reply {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.as_mut() {
                Some(p) => p.insert(call_id, (name.clone(), cb)),
                None => return Err(not_delivered(self.lost.get().cloned().unwrap_or_default())),
            };
        }
        let unregister = || {
            if want_reply && let Some(p) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                p.remove(&call_id);
            }
        };
        let frame = CallFrame { call_id, actor_id, payload, want_reply };
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(frame)) => {
                if tokio::runtime::Handle::try_current().is_ok() {
                    unregister();
                    return Err(RuntimeError::MailboxFull { actor: name.to_string(), capacity: SEND_QUEUE });
                }
                self.tx.blocking_send(frame).map_err(|_| {
                    unregister();
                    not_delivered(format!("the connection to node {} closed", self.node_id))
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                unregister();
                Err(not_delivered(format!("the connection to node {} closed", self.node_id)))
            }
        }
    }

    /// Like [`Peer::send`] for a tell, but a full queue fails at once.
    fn try_send(&self, actor_id: u64, name: &Arc<str>, payload: Bytes) -> Result<()> {
        if let Some(reason) = self.lost.get() {
            return Err(RuntimeError::NotDelivered { actor: name.to_string(), reason: reason.clone() });
        }
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(CallFrame { call_id, actor_id, payload, want_reply: false }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                RuntimeError::MailboxFull { actor: name.to_string(), capacity: SEND_QUEUE }
            }
            mpsc::error::TrySendError::Closed(_) => RuntimeError::NotDelivered {
                actor: name.to_string(),
                reason: format!("the connection to node {} closed", self.node_id),
            },
        })
    }
}

/// Reads answers off the call stream until it ends, then fails what is still waiting.
async fn read_replies(
    mut inbound: tonic::Streaming<ReplyFrame>,
    pending: Arc<Pending>,
    lost: Arc<OnceLock<String>>,
    node: u32,
) {
    let reason = loop {
        match inbound.message().await {
            Ok(Some(frame)) => {
                let waiting =
                    pending.lock().unwrap_or_else(|e| e.into_inner()).as_mut().and_then(|p| p.remove(&frame.call_id));
                if let Some((_, on_reply)) = waiting {
                    on_reply(frame_result(frame));
                }
            }
            Ok(None) => break format!("node {node} closed the connection"),
            Err(status) => break format!("the connection to node {node} broke: {}", status.message()),
        }
    };
    let _ = lost.set(reason.clone());
    fail_pending(&pending, &reason);
}

/// Fails every waiting call with [`RuntimeError::DiedDuringCall`] and closes the table.
fn fail_pending(pending: &Pending, reason: &str) {
    let waiting = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
    for (_, (actor, on_reply)) in waiting.into_iter().flatten() {
        on_reply(Err(RuntimeError::DiedDuringCall { actor: actor.to_string(), reason: reason.to_string() }));
    }
}

/// The answer a reply frame carries.
fn frame_result(frame: ReplyFrame) -> Result<Bytes> {
    if frame.ok {
        return Ok(frame.payload);
    }
    Err(crate::decode::<RuntimeError>(&frame.payload)
        .unwrap_or_else(|e| RuntimeError::Cluster(format!("an undecodable error reply: {e}"))))
}

/// An actor on another node, as its handles in this process reach it.
pub(crate) struct RemoteActor {
    pub(crate) actor_id: u64,
    pub(crate) node_id: u32,
    pub(crate) address: String,
    pub(crate) pid: u32,
    pub(crate) name: Arc<str>,
    pub(crate) mailbox_capacity: usize,
    /// Set once this process learns that the actor died.
    pub(crate) death: DeathNote,
    pub(crate) core: Arc<NodeCore>,
}

impl RemoteActor {
    /// The node that hosts it.
    pub(crate) fn node_id(&self) -> u32 {
        self.node_id
    }

    /// Its node's address.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    fn peer(&self) -> Result<Arc<Peer>> {
        if let Some(reason) = self.death.get() {
            return Err(RuntimeError::NotDelivered { actor: self.name.to_string(), reason: reason.clone() });
        }
        self.core
            .peer_blocking(self.node_id, &self.address)
            .map_err(|e| RuntimeError::NotDelivered { actor: self.name.to_string(), reason: e.to_string() })
    }

    /// Encodes a message for this actor; refs in it become borrows of its node.
    pub(crate) fn encode<T: Serialize>(&self, msg: &T) -> Result<Bytes> {
        wire::with_refs(PeerRefs::rc(&self.core, self.node_id), || crate::encode(msg))
    }

    /// Decodes a reply from this actor; refs in it hold the borrows its node recorded.
    pub(crate) fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        wire::with_refs(PeerRefs::rc(&self.core, self.node_id), || crate::decode(bytes))
    }

    /// Sends an encoded message; `on_reply` gets the answer.
    pub(crate) fn send(self: &Arc<Self>, payload: Bytes, on_reply: Option<OnReply>) -> Result<()> {
        let peer = self.peer()?;
        let on_reply = on_reply.map(|cb| {
            let me = self.clone();
            Box::new(move |result: Result<Bytes>| {
                if let Err(RuntimeError::NotDelivered { reason, .. }) = &result {
                    let _ = me.death.set(reason.clone());
                }
                cb(result)
            }) as OnReply
        });
        peer.send(self.actor_id, &self.name, payload, on_reply)?;
        self.core.counters.calls_sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends an encoded tell if there is room now.
    pub(crate) fn try_send(&self, payload: Bytes) -> Result<()> {
        self.peer()?.try_send(self.actor_id, &self.name, payload)
    }

    /// Asks its node to stop it (without waiting); with `force`, to kill it at once.
    pub(crate) fn stop(&self, force: bool) {
        self.core.stop_remote_actor(self.node_id, self.address.clone(), self.actor_id, force);
    }
}

/// The wire context of one message to or from node `peer`.
pub(crate) struct PeerRefs {
    core: Arc<NodeCore>,
    peer: u32,
}

impl PeerRefs {
    pub(crate) fn rc(core: &Arc<NodeCore>, peer: u32) -> Rc<dyn WireRefs> {
        Rc::new(Self { core: core.clone(), peer })
    }
}

impl WireRefs for PeerRefs {
    fn export(&self, r: &ObjectRef) -> std::result::Result<(), String> {
        self.core.add_borrow(r.id(), self.peer).map_err(|e| error_chain(&e))
    }

    fn import(&self, id: u64) -> ObjectRef {
        ObjectRef::borrowed_with(id, self.core.release_fn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz_harness;

    /// A reply frame from a peer decodes to its payload or to an error, whatever its bytes.
    #[test]
    fn fuzz_reply_frames() {
        let strategy = (proptest::bool::ANY, fuzz_harness::hostile(super::super::tests::encoded_errors(), 256));
        fuzz_harness::run("reply_frames", strategy, |(ok, payload)| {
            let frame = ReplyFrame { call_id: 1, ok, payload: payload.clone().into() };
            match frame_result(frame) {
                Ok(p) => assert!(ok && p == payload),
                Err(e) => assert!(!ok && !e.to_string().is_empty()),
            }
        });
    }
}
