//! The local transport's two system pieces: a shared region (a sealed memfd mapped by the
//! client and the daemon) and file-descriptor passing over the Unix socket (SCM_RIGHTS).
//!
//! The client creates the memfd, sizes it, seals it against shrinking and growing, maps it,
//! and passes the fd with its `AttachRegion` frame. The daemon checks the seals and the size
//! before mapping: a region that could shrink under the daemon would make its copies fault
//! (SIGBUS), so an unsealed fd is refused. Block bytes then move between the region and the
//! tiers with one copy; the socket carries descriptors only.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Seals a region must carry before the daemon maps it.
const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// A shared mapping of a memfd. Both sides map it `MAP_SHARED`; bytes one side writes are
/// visible to the other once the request/reply exchange orders them.
pub struct Region {
    ptr: *mut u8,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain memory valid for the Region's life; callers coordinate access to
// ranges through the protocol (a range belongs to the daemon while its request is in flight).
unsafe impl Send for Region {}
// SAFETY: as above; `Region` hands out raw pointers and bounds-checked copies only.
unsafe impl Sync for Region {}

impl Region {
    /// Creates a sealed memfd of `len` bytes and maps it (client side).
    pub fn create(len: usize) -> io::Result<Region> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "region of 0 bytes",
            ));
        }
        let name = c"mcos-region";
        // SAFETY: `name` is a valid C string; flags are defined constants.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: memfd_create returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: fd is open; len fits off_t on 64-bit Linux (checked by the conversion).
        let off = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "region too large"))?;
        if unsafe { libc::ftruncate(fd.as_raw_fd(), off) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is an open memfd created with MFD_ALLOW_SEALING.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, REQUIRED_SEALS) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Region::map(fd, len)
    }

    /// Maps a region a client passed (daemon side): refused unless it is sealed against
    /// shrinking and growing and holds at least `len` bytes.
    pub fn attach(fd: OwnedFd, len: usize, max_len: usize) -> io::Result<Region> {
        if len == 0 || len > max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("region of {len} bytes is outside 1..={max_len}"),
            ));
        }
        // SAFETY: fd is open (owned); F_GET_SEALS has no other argument.
        let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
        if seals < 0 || seals & (libc::F_SEAL_SHRINK | libc::F_SEAL_GROW) == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "region fd is not a memfd sealed against shrinking (F_SEAL_SHRINK | F_SEAL_GROW)",
            ));
        }
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "region fd is not sealed against shrinking (F_SEAL_SHRINK)",
            ));
        }
        // SAFETY: fd is open; st is written by fstat before being read.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if (st.st_size as u64) < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "region fd holds {} bytes, the client announced {len}",
                    st.st_size
                ),
            ));
        }
        Region::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of an open fd at least `len` bytes long; the result is
        // checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region {
            ptr: ptr.cast(),
            len,
            fd,
        })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never, once created).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd (sent to the daemon).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The range `offset..offset+len` as a raw pointer, if it lies inside the region.
    pub fn range(&self, offset: u64, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len as u64)?;
        if end > self.len as u64 {
            return None;
        }
        // SAFETY: offset + len <= self.len, so the pointer stays inside the mapping.
        Some(unsafe { self.ptr.add(offset as usize) })
    }

    /// The range as a mutable slice, for the side that owns it for the duration of a request.
    ///
    /// # Safety
    /// No other reference to these bytes may be used while the slice lives. Between processes
    /// the protocol gives that guarantee: a client does not touch a range while its request is
    /// in flight; a client that breaks it can only garble its own bytes (u8 has no invalid
    /// values, and the daemon checksums what it stores).
    // The region is shared memory (two processes map it): `&self` cannot express exclusivity,
    // the protocol does, hence `unsafe` and this allowance.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let p = self.range(offset, len)?;
        // SAFETY: in bounds (range); exclusivity is the caller's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    /// The range as a shared slice.
    ///
    /// # Safety
    /// No mutable reference to these bytes may be used while the slice lives (see
    /// [`Region::slice_mut`]).
    pub unsafe fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let p = self.range(offset, len)?;
        // SAFETY: in bounds (range); no concurrent writer is the caller's contract.
        Some(unsafe { std::slice::from_raw_parts(p, len) })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping made in `map`, unmapped once.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// Writes every part in order with vectored writes (a frame head and its payloads in one
/// system call where the socket takes them). Either transport, either side.
pub fn write_all_vectored(mut w: impl io::Write, parts: &[&[u8]]) -> io::Result<()> {
    let mut v: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
    let mut s = &mut v[..];
    while !s.is_empty() {
        match w.write_vectored(s) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut s, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `bytes` with `fd` attached (SCM_RIGHTS) in one message.
pub fn send_with_fd(sock: &UnixStream, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes, enough for one header carrying one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    // SAFETY: msg is fully initialised; the socket fd is open.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if (n as usize) < bytes.len() {
        // The fd went with the first byte; the rest is ordinary data.
        use std::io::Write;
        (&*sock).write_all(&bytes[n as usize..])?;
    }
    Ok(())
}

/// Receives into `buf` like `read`, also collecting any fds that arrive (SCM_RIGHTS) into
/// `fds`. Ancillary data beyond one 4-fd message is dropped by the kernel (and its fds closed).
pub fn recv_with_fds(
    sock: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    const MAX_FDS: usize = 4;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space =
        unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = [0u64; 16]; // 128 bytes, 8-aligned: more than CMSG_SPACE for 4 fds
    debug_assert!(space <= std::mem::size_of_val(&cbuf));
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg is fully initialised; MSG_CMSG_CLOEXEC marks received fds close-on-exec.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled msg_control with well-formed headers up to msg_controllen;
    // the CMSG_* macros walk them within that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let n_fds = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                for i in 0..n_fds {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_passes_between_sockets_and_shares_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        let mine = Region::create(1 << 16).unwrap();
        send_with_fd(&a, b"hello", mine.fd()).unwrap();
        let mut buf = [0u8; 16];
        let mut fds = Vec::new();
        let n = recv_with_fds(&b, &mut buf, &mut fds).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        let fd = fds.pop().unwrap();
        let theirs = Region::attach(fd, 1 << 16, 1 << 20).unwrap();
        // SAFETY: this test is the only user of both mappings.
        unsafe {
            theirs.slice_mut(100, 3).unwrap().copy_from_slice(b"xyz");
            assert_eq!(mine.slice(100, 3).unwrap(), b"xyz");
        }
        assert!(theirs.range(1 << 16, 1).is_none(), "past the end");
        assert!(theirs.range(u64::MAX, 2).is_none(), "overflow");
    }

    #[test]
    fn unsealed_or_short_fd_refused() {
        // SAFETY: plain memfd creation for the test; the result is checked.
        let raw = unsafe { libc::memfd_create(c"t".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(raw >= 0);
        // SAFETY: fresh fd owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: open fd.
        assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 4096) }, 0);
        let e = Region::attach(fd, 4096, 1 << 20).err().unwrap();
        assert!(e.to_string().contains("sealed"), "{e}");
        let r = Region::create(4096).unwrap();
        // SAFETY: dup of an open fd.
        let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(r.fd())) };
        let e = Region::attach(dup, 8192, 1 << 20).err().unwrap();
        assert!(e.to_string().contains("holds 4096"), "{e}");
    }
}
