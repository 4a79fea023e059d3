//! The buffer a thread reads sockets through: held by no connection between reads (an idle
//! connection keeps nothing), and zeroed once per thread rather than on every read.

use std::cell::RefCell;

/// Its size: a whole request head, or many frames, in one read.
pub const SIZE: usize = 8192;

thread_local! {
    static BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SIZE].into_boxed_slice());
}

/// Runs `f` with this thread's buffer. `f` must not call back into here.
pub fn with<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with_borrow_mut(|buf| f(buf))
}
