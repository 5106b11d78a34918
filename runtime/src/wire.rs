//! The context of one cluster message's (de)serialization: what an [`ObjectRef`] inside it does.
//!
//! `encode` and `decode` of an actor message bound for, or arriving from, another node run inside
//! [`with_refs`], which sets a thread-local [`WireRefs`] for the peer. `ObjectRef`'s `Serialize`
//! calls [`export`] (record a borrow by the peer at the owner) and its `Deserialize` calls
//! [`import`] (build a ref that holds that borrow). Outside `with_refs` both do nothing, and a
//! deserialized ref is merely borrowed, as in an embedded runtime.

use std::cell::RefCell;
use std::rc::Rc;

use crate::object_store::ObjectRef;

/// What refs do while one message to or from a peer node is (de)serialized.
pub(crate) trait WireRefs {
    /// Records that the peer will hold a borrow of `r` (called while serializing).
    fn export(&self, r: &ObjectRef) -> Result<(), String>;
    /// A ref to object `id` holding the borrow its sender recorded (called while deserializing).
    fn import(&self, id: u64) -> ObjectRef;
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<dyn WireRefs>>> = const { RefCell::new(None) };
}

/// Runs `f` with `refs` as the context of every ref (de)serialized on this thread meanwhile.
pub(crate) fn with_refs<T>(refs: Rc<dyn WireRefs>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Rc<dyn WireRefs>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONTEXT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(CONTEXT.with(|c| c.borrow_mut().replace(refs)));
    f()
}

/// The current context's export of `r`, or nothing outside one.
pub(crate) fn export(r: &ObjectRef) -> Result<(), String> {
    match CONTEXT.with(|c| c.borrow().clone()) {
        Some(refs) => refs.export(r),
        None => Ok(()),
    }
}

/// The current context's import of object `id`, or `None` outside one.
pub(crate) fn import(id: u64) -> Option<ObjectRef> {
    CONTEXT.with(|c| c.borrow().clone()).map(|refs| refs.import(id))
}
