//! A one-shot timer the event loop can wait on (a `timerfd`): it wakes the
//! load generator when the next order is due to the microsecond, where
//! `epoll`'s own timeout rounds up to the next millisecond (which would add
//! up to a millisecond to every measured latency).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// A `timerfd` on the monotonic clock, armed for one expiry at a time.
pub struct Timer {
    fd: OwnedFd,
    /// When it is armed to fire (None: disarmed or fired).
    armed: Option<Instant>,
}

impl Timer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a descriptor we just opened and own.
        Ok(Timer { fd: unsafe { OwnedFd::from_raw_fd(fd) }, armed: None })
    }

    /// Its descriptor, readable once it fired.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fires at `at` (at once if that is past); nothing to do if it is
    /// already armed for that moment.
    pub fn arm_at(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        // Zero would disarm it: the past is one nanosecond from now.
        let after = at.saturating_duration_since(Instant::now()).max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: after.as_secs() as libc::time_t, tv_nsec: after.subsec_nanos() as _ },
        };
        // SAFETY: a valid descriptor and itimerspec; the old value is not wanted.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed = Some(at);
        Ok(())
    }

    /// It fired: the next [`Timer::arm_at`] arms it even for the same
    /// moment. (The expiry count is not read: re-arming resets it, and an
    /// edge-triggered poll sees every expiry.)
    pub fn fired(&mut self) {
        self.armed = None;
    }

    /// Takes the expiry (so the descriptor is not readable until it fires again).
    #[cfg(test)]
    pub fn clear(&mut self) {
        let mut n = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), n.as_mut_ptr().cast(), 8) };
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_when_armed_and_not_before() {
        let mut t = Timer::new().unwrap();
        let mut pfd = libc::pollfd { fd: t.fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let ready = |p: &mut libc::pollfd, ms| unsafe { libc::poll(p, 1, ms) };
        assert_eq!(ready(&mut pfd, 0), 0, "disarmed");
        let at = Instant::now() + Duration::from_millis(20);
        t.arm_at(at).unwrap();
        assert_eq!(ready(&mut pfd, 0), 0, "not yet");
        assert_eq!(ready(&mut pfd, 1000), 1);
        assert!(Instant::now() >= at);
        t.clear();
        assert_eq!(ready(&mut pfd, 0), 0, "taken");
        t.arm_at(Instant::now() - Duration::from_millis(5)).unwrap();
        assert_eq!(ready(&mut pfd, 100), 1, "the past fires at once");
        // Not read, but re-armed: not readable until it fires again.
        t.fired();
        t.arm_at(Instant::now() + Duration::from_millis(20)).unwrap();
        assert_eq!(ready(&mut pfd, 0), 0, "re-arming resets the expiry");
        assert_eq!(ready(&mut pfd, 1000), 1);
    }
}
